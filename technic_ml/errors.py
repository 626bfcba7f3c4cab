"""Exceptions shared by every layer.

Each error message names what was wrong, the value received and what was expected, so that a
Failed state in the Prefect UI or a non-zero CLI exit tells the user what to fix without a traceback.
"""

from __future__ import annotations


class TechnicError(Exception):
    """Base class for every error technic-ml raises on purpose."""


class ContractError(TechnicError, ValueError):
    """A record or configuration violates a data contract (see technic_ml.contracts)."""


class MarketDataError(TechnicError):
    """Market data could not be read or fetched (missing file, empty download, time-out...)."""


class MarketDataUnavailable(MarketDataError):
    """The live source could not be reached (time-out, failed call, empty answer): may pass later.

    The one market-data failure worth retrying (``tasks/market.py``); a bad file or a bad setting
    stays a plain :class:`MarketDataError`.
    """


class StoreError(TechnicError):
    """A persistent store (scan history, snapshots) is unreadable or was used incorrectly."""


class SettingsError(TechnicError, ValueError):
    """A setting has a value the program cannot use."""


class RegistryError(TechnicError):
    """The model registry refused an operation: a missing, tampered or incompatible model version."""

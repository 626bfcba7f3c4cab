"""Market snapshots as a pipeline step: conditions taken from the configured source at a moment
and persisted (flow ``market-snapshot`` and the main job, through ``tasks/market.py``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from technic_ml import stores
from technic_ml.contracts import MarketConditions
from technic_ml.market_conditions import default_as_of, snapshot_market
from technic_ml.market_data import open_market_data
from technic_ml.market_data.base import AsOf
from technic_ml.nyse import to_ny
from technic_ml.settings import TechnicSettings


@dataclass(frozen=True)
class Snapshot:
    """A persisted market snapshot and the moment it was taken for."""

    conditions: MarketConditions
    path: Path
    as_of: dt.datetime
    as_of_reason: str
    market_source: str
    is_sample: bool

    @property
    def last_bar(self) -> dt.date:
        """The session of the last daily bar the conditions were computed from."""
        return self.conditions.spy_bar_date or self.as_of.date()

    def to_dict(self) -> dict[str, Any]:
        """What a run reports of it (the main job's summary, the market-snapshot flow's result)."""
        return {
            "market_source": self.market_source,
            "sample_data": self.is_sample,
            "as_of": self.as_of.isoformat(),
            "as_of_reason": self.as_of_reason,
            "market_conditions": self.conditions.model_dump(mode="json"),
            "snapshot_file": str(self.path),
        }


def take_snapshot(settings: TechnicSettings, as_of: AsOf | None = None) -> Snapshot:
    """Snapshot market conditions from the configured source and persist the snapshot.

    A failed refresh that the source could serve from its cache comes back ``degraded`` with the
    reasons; with nothing to serve, the source's :class:`~technic_ml.errors.MarketDataError` is raised.
    """
    market = open_market_data(settings)
    if as_of is None:
        when, reason = default_as_of(market)
    else:
        when, reason = to_ny(as_of), "given"
    conditions = snapshot_market(market, when)
    path = stores.snapshot_store(settings).save(conditions)
    return Snapshot(conditions, path, when, reason, market.source, market.is_sample)

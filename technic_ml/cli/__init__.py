"""The ``technic-ml`` command's library commands: market, scans, history, models, predictions.

One module per group of commands (``market``, ``scans``, ``history``, ``predictors``,
``optimizer``, ``api``) over :mod:`.common`, which holds the app, the consoles, settings, errors
and the option groups they share. Importing this package registers every command on :data:`app`.
"""

import importlib

from technic_ml.cli.common import app

# Registration, in the order the root help lists the commands.
for _module in ("market", "scans", "history", "predictors", "optimizer", "api"):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point alias
    app()

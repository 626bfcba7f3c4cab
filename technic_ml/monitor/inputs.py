"""What the monitor reads: the prediction ledger's outcomes and the collected scan history.

Read paths only. A data root where the API never ran has no ledger: that is an empty frame (the
monitor then reports "too few outcomes"), and the ledger file is not created by looking for it.
"""

from __future__ import annotations

import pandas as pd

from technic_ml import stores
from technic_ml.api.ledger import OUTCOME_COLUMNS, PredictionLedger
from technic_ml.monitor.drift import DEFAULT_INPUTS
from technic_ml.settings import TechnicSettings


def ledger_outcomes(settings: TechnicSettings, since: str | None = None) -> pd.DataFrame:
    """Served and shadowed predictions with their outcomes (``PredictionLedger.outcomes_frame``)."""
    path = settings.ledger_path
    if not path.exists():
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    ledger = PredictionLedger(path)
    try:
        return ledger.outcomes_frame(since)
    finally:
        ledger.close()


def scan_history(settings: TechnicSettings) -> pd.DataFrame | None:
    """The history's timestamps and model inputs (``drift.DEFAULT_INPUTS``); None when empty."""
    frame = stores.history_store(settings).frame()
    if frame.empty:
        return None
    return frame[["timestamp", *[c for c in DEFAULT_INPUTS if c in frame.columns]]]

"""market-snapshot: conditions from the configured source, persisted, shown in the UI.

On a yfinance outage the source serves its cache and the snapshot comes back degraded: the run
logs a WARNING and the ``market-snapshot`` artifact says DEGRADED with the reasons. With no cache
the task fails with the source's message, and so does the run.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows import scheduled_day_check
from tasks import artifacts, market
from technic_ml.settings import TechnicSettings


@flow(name="market-snapshot")
def market_snapshot(as_of: str | None = None, skip_non_trading_days: bool = True) -> dict | None:
    """Snapshot market conditions (``as_of`` default: now live, the data's last close offline).

    With ``skip_non_trading_days``, a run the scheduler created for an NYSE holiday ends Completed.
    """
    logger = get_run_logger()
    if skip_non_trading_days and (reason := scheduled_day_check()):
        logger.info("%s: no snapshot today", reason)
        return None
    snapshot = market.take_snapshot(TechnicSettings(), as_of)
    artifacts.snapshot_artifact(snapshot)
    if snapshot.conditions.degraded:
        logger.warning("snapshot DEGRADED: %s", "; ".join(snapshot.conditions.degraded_reasons or []))
    return snapshot.to_dict()

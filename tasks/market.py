"""Market tasks: snapshot conditions from the configured source (yfinance I/O is retried)."""

from __future__ import annotations

from prefect import task

from technic_ml.errors import MarketDataUnavailable
from technic_ml.jobs import market
from technic_ml.settings import TechnicSettings


def _transient(task, task_run, state) -> bool:
    """Retry only network failures of the live source; a bad directory will not heal in 10 s."""
    try:
        state.result()
    except MarketDataUnavailable:
        return True
    except Exception:
        return False
    return False


@task(retries=2, retry_delay_seconds=[5, 20], retry_condition_fn=_transient, log_prints=True)
def take_snapshot(settings: TechnicSettings, as_of: str | None = None) -> market.Snapshot:
    return market.take_snapshot(settings, as_of)

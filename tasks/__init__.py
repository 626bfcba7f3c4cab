"""Prefect tasks: thin ``@task`` wrappers, each over one ``technic_ml`` call.

Retries only where I/O can fail transiently (yfinance); cache policies only where a re-run skips
real work (a backfill chunk). Importing this package routes the library's standard ``logging``
(logger ``technic_ml``) into the Prefect run logs, as ``PREFECT_LOGGING_EXTRA_LOGGERS`` would.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

LIBRARY_LOGGER = "technic_ml"


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, silent outside a flow or task run (the CLI's library commands)."""

    def emit(self, record: logging.LogRecord) -> None:
        if FlowRunContext.get() is None and TaskRunContext.get() is None:
            return
        super().emit(record)


def route_library_logs() -> None:
    """Send the library's INFO and above to the run logs in the UI.

    Prefect's own ``PREFECT_LOGGING_EXTRA_LOGGERS`` works only when set before Prefect configures
    logging, which depends on how the flow is started; one handler added here holds in every case.
    The records still propagate, so the console shows what it showed before.
    """
    library = logging.getLogger(LIBRARY_LOGGER)
    if not any(isinstance(h, RunLogHandler) for h in library.handlers):
        library.addHandler(RunLogHandler(level=logging.INFO))
    if library.level == logging.NOTSET or library.level > logging.INFO:
        library.setLevel(logging.INFO)


route_library_logs()

"""collect-history: inbox -> store, processed folder, quarantine, idempotent on a repeated file."""

from __future__ import annotations

import shutil

import pytest

from flows.collect_history import collect_history
from technic_ml.history import ScanHistoryStore
from technic_ml.history.jsonl import sample_scan_log
from tests.flows.conftest import artifacts_of, run_id

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_imports_moves_quarantines_and_ignores_a_repeat(settings):
    inbox = settings.inbox_path
    inbox.mkdir(parents=True)
    lines = sample_scan_log().read_text().splitlines()
    (inbox / "scanner-a.jsonl").write_text("\n".join([*lines[:100], "{not json", *lines[100:]]) + "\n")

    # The API predicted scan train_0005 before the scanner's log came in: the import matches it.
    from technic_ml.api.ledger import PredictionLedger
    from technic_ml.predictors.estimators import Prediction

    ledger = PredictionLedger(settings.ledger_path)
    count = Prediction("count", "model", 50.0, 40.0, 60.0, 0.9, p_empty=0.0, version="v")
    ledger.record("p-5", {}, count, Prediction("duration", "heuristic", 20.0), scan_id="train_0005")
    ledger.close()

    state = collect_history(return_state=True)
    assert state.is_completed(), state.message
    first = state.result()
    assert first == {
        "files_imported": 1, "files_duplicate": 0, "files_unreadable": 0, "added": 150, "invalid": 1,
        "outcomes_matched": 1,
    }  # fmt: skip
    assert PredictionLedger(settings.ledger_path).performance()["count"].n == 1
    assert not list(inbox.glob("*.jsonl"))
    assert list(settings.processed_path.rglob("scanner-a*.jsonl"))
    assert ScanHistoryStore(settings.history_path).count() == 150
    quarantined = "".join(p.read_text() for p in settings.quarantine_path.glob("*.jsonl"))
    assert "{not json" in quarantined
    assert "scanner-a.jsonl" in str(artifacts_of(run_id(state))["collect-history"].data)

    # The same file arrives again: nothing new, and it still leaves the inbox.
    shutil.copy(next(settings.processed_path.rglob("scanner-a*.jsonl")), inbox / "scanner-a.jsonl")
    again = collect_history(return_state=True).result()
    assert again["files_duplicate"] == 1 and again["added"] == 0
    assert ScanHistoryStore(settings.history_path).count() == 150
    assert not list(inbox.glob("*.jsonl"))

"""The prediction ledger on hand-checked outcomes: MAE, coverage, width, idempotence, scan ids."""

from __future__ import annotations

import pytest

from technic_ml.api.ledger import PredictionLedger, UnknownPrediction
from technic_ml.predictors.estimators import Prediction


def _count(value, lower, upper, state="model"):
    return Prediction("count", state, value, lower, upper, 0.9, p_empty=0.0, version="c1")


DURATION = Prediction("duration", "heuristic", 10.0)


@pytest.fixture
def ledger(tmp_path):
    led = PredictionLedger(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def test_mae_coverage_and_width_over_the_last_outcomes(ledger):
    # (prediction value, lower, upper) and the actual count: errors 2, 0, 6; covered yes, yes, no.
    cases = [((10, 8, 14), 12), ((20, 15, 25), 20), ((30, 26, 33), 36)]
    for i, ((v, lo, hi), actual) in enumerate(cases):
        ledger.record(f"p{i}", {"max_symbols": 10}, _count(v, lo, hi), DURATION)
        assert ledger.report(f"p{i}", actual, None) is True
    perf = ledger.performance(last=10)
    assert perf["count"].n == 3 and perf["count"].mae == pytest.approx(8 / 3)
    assert perf["count"].coverage == pytest.approx(2 / 3) and perf["count"].mean_width == pytest.approx(
        23 / 3
    )
    # The heuristic duration has no interval: it is not scored.
    assert perf["duration"].n == 0 and perf["duration"].mae is None
    # Only the last two outcomes (p1, p2).
    two = ledger.performance(last=2)["count"]
    assert two.n == 2 and two.mae == pytest.approx(3.0) and two.coverage == pytest.approx(0.5)


def test_the_first_outcome_is_kept_and_unknown_ids_are_refused(ledger):
    ledger.record("p", {}, _count(5, 3, 8), DURATION)
    assert ledger.report("p", 4, None) is True
    assert ledger.report("p", 99, None) is False
    assert ledger.performance()["count"].mae == pytest.approx(1.0)
    with pytest.raises(UnknownPrediction):
        ledger.report("nope", 1, None)


def test_abstentions_are_not_scored_and_history_rows_match_by_scan_id(ledger):
    import pandas as pd

    ledger.record("a", {}, Prediction("count", "abstain", None), DURATION, scan_id="s1")
    ledger.record("b", {}, _count(5, 3, 8), DURATION, scan_id="s2")
    rows = pd.DataFrame({"scan_id": ["s2", "zz"], "result_count": [7, 1], "total_seconds": [0.5, 0.1]})
    assert ledger.match_frame(rows) == 1
    assert ledger.report_scan("s1", 3, None) == ["a"]
    perf = ledger.performance()["count"]
    assert perf.n == 1 and perf.mae == pytest.approx(2.0)
    assert ledger.counts() == {"predictions": 2, "outcomes": 2}
    with pytest.raises(ValueError, match="last: received 0"):
        ledger.performance(last=0)


def test_the_history_import_matches_predictions_that_named_a_scan_id(settings):
    from technic_ml.api.ledger import match_outcomes
    from technic_ml.history import ScanHistoryStore

    assert match_outcomes(settings) is None  # no API ran here: no ledger
    row = ScanHistoryStore(settings.history_path).frame().iloc[0]
    ledger = PredictionLedger(settings.ledger_path)
    ledger.record(
        "p1", {}, _count(row.result_count + 3, 0, row.result_count + 10), DURATION, scan_id=row.scan_id
    )
    ledger.record("p2", {}, _count(1, 0, 2), DURATION, scan_id="never-imported")
    ledger.close()
    assert match_outcomes(settings) == 1
    again = PredictionLedger(settings.ledger_path)
    perf = again.performance()["count"]
    assert perf.n == 1 and perf.mae == pytest.approx(3.0) and perf.coverage == 1.0
    assert again.pending_scan_ids() == {"never-imported"}
    again.close()
    assert match_outcomes(settings) == 0  # nothing new to match


@pytest.mark.parametrize("extra", [1, 2**64, -(2**70)])
def test_configs_are_stored_as_compact_sorted_json_whatever_their_integers(ledger, extra):
    # orjson refuses integers beyond 64 bits; a config's free extra fields may hold one.
    import json
    import sqlite3

    ledger.record("p", {"z": extra, "max_symbols": 10}, _count(1, 0, 2), DURATION)
    ledger.flush()
    with sqlite3.connect(ledger.path) as db:
        (text,) = db.execute("SELECT config FROM predictions WHERE prediction_id = 'p'").fetchone()
    assert text == f'{{"max_symbols":10,"z":{extra}}}' and json.loads(text)["z"] == extra


def test_shadowed_challengers_sit_next_to_the_served_prediction_in_the_outcomes_frame(ledger):
    challenger = Prediction("count", "model", 11.0, 9.0, 13.0, 0.9, version="c2")
    ledger.record("p0", {"max_symbols": 10}, _count(10, 8, 14), DURATION, "s0", shadows=(challenger,))
    ledger.record("p1", {"max_symbols": 20}, _count(20, 15, 25), DURATION, shadows=(challenger,))
    assert ledger.report("p0", 12, 3.5) is True
    frame = ledger.outcomes_frame()
    # two predictions x (served count, served duration) + two shadows
    assert len(frame) == 6
    p0 = frame[frame.prediction_id == "p0"].set_index(["target", "role"])
    assert p0.loc[("count", "served"), "version"] == "c1"
    assert p0.loc[("count", "shadow"), "version"] == "c2"
    assert p0.loc[("count", "shadow"), "actual"] == 12 and p0.loc[("count", "served"), "actual"] == 12
    assert p0.loc[("duration", "served"), "state"] == "heuristic"
    assert p0.loc[("duration", "served"), "actual"] == 3.5
    p1 = frame[frame.prediction_id == "p1"]
    assert p1["actual"].isna().all()  # no outcome yet: kept, unscored
    # a later cut-off keeps nothing
    assert ledger.outcomes_frame(since="9999-01-01").empty


def test_a_ledger_written_before_shadows_existed_opens_and_reads(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    old = PredictionLedger(path)
    old.record("p0", {}, _count(10, 8, 14), DURATION)
    old.close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE shadows")
    reopened = PredictionLedger(path)
    try:
        assert reopened.report("p0", 9, None) is True
        assert list(reopened.outcomes_frame()["role"]) == ["served", "served"]
    finally:
        reopened.close()


def test_an_outcome_waits_for_a_recent_prediction_another_worker_still_buffers(tmp_path):
    """Two workers, one file: worker B is told the outcome of a prediction worker A made moments
    ago and has not flushed; B waits for A's next flush instead of answering 404. An id that no
    worker made moments ago is refused at once."""
    import threading
    import time

    from technic_ml.api import prediction_ids

    a = PredictionLedger(tmp_path / "ledger.sqlite", flush_seconds=3600)  # A flushes only when told
    b = PredictionLedger(tmp_path / "ledger.sqlite", flush_seconds=0.2)
    try:
        pid = prediction_ids.new()
        a.record(pid, {"max_symbols": 10}, _count(10, 8, 12), DURATION)
        threading.Timer(0.3, a.flush).start()
        started = time.monotonic()
        assert b.report(pid, 11, None) is True
        assert 0.25 <= time.monotonic() - started < b.visible_within
        assert b.counts() == {"predictions": 1, "outcomes": 1}

        for unknown in ("x" * 32, "not-an-id", "00000000000000000000000000000000", prediction_ids.new()[:-1]):
            started = time.monotonic()
            with pytest.raises(UnknownPrediction):
                b.report(unknown, 1, None)
            assert time.monotonic() - started < 0.2, unknown
        # Made moments ago but never written anywhere: refused once it would have been visible.
        started = time.monotonic()
        with pytest.raises(UnknownPrediction):
            b.report(prediction_ids.new(), 1, None)
        assert time.monotonic() - started <= b.visible_within + 0.2
    finally:
        a.close()
        b.close()


def test_prediction_ids_carry_their_time_and_nothing_else_parses():
    import time

    from technic_ml.api import prediction_ids

    pid = prediction_ids.new()
    assert len(pid) == 32 and int(pid, 16) >= 0
    assert abs(prediction_ids.created_at(pid) - time.time()) < 1
    assert prediction_ids.new() != pid
    for other in ("", "abc", "g" * 32, "x" * 32, pid + "0"):
        assert prediction_ids.created_at(other) is None


def test_a_forked_process_draws_other_ids():
    import os

    from technic_ml.api import prediction_ids

    prediction_ids.new()  # the pool holds bytes the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, prediction_ids.new().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    mine = prediction_ids.new()
    assert child[12:] != mine[12:]


def test_a_flush_that_cannot_take_the_lock_keeps_its_rows_for_the_next_one(tmp_path):
    """Another process holding the write lock past the busy wait: the flush fails, nothing is
    half-written or lost, and the next flush writes every row."""
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    ledger = PredictionLedger(path, flush_seconds=3600, busy_seconds=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        ledger.record("p1", {"max_symbols": 10}, _count(10, 8, 12), DURATION)
        other.execute("BEGIN IMMEDIATE")  # another worker mid-flush, for too long
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            ledger.flush()
        ledger.record("p2", {"max_symbols": 10}, _count(10, 8, 12), DURATION)
        other.execute("ROLLBACK")
        assert ledger.counts() == {"predictions": 2, "outcomes": 0}
        assert ledger.report("p1", 9, None) is True
    finally:
        other.close()
        ledger.close()

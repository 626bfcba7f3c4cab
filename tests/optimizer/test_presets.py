"""The presets document's provenance and the history on disk: idempotent, crash-tolerant, fail closed."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from technic_ml.errors import StoreError
from technic_ml.nyse import NY
from technic_ml.optimizer import Optimizer, PresetsHistory, daily_presets, hot_sectors


@pytest.fixture(scope="module")
def document(predictors, conditions, history_template):
    from technic_ml.history import ScanHistoryStore

    optimizer = Optimizer(predictors)
    suggestions = optimizer.suggest_all(conditions)
    hot = hot_sectors(ScanHistoryStore(history_template).frame(), conditions.as_of, window_days=120)
    return daily_presets(
        suggestions,
        hot,
        conditions,
        snapshot_id="20181220T133000000000Z-abc",
        models={"count": predictors.count, "duration": predictors.duration},
        searched=7182,
        elapsed_seconds=0.5,
    )


def test_the_document_carries_its_provenance(document):
    assert document["for_session"] == "2018-12-20" and document["source"] == "model"
    prov = document["provenance"]
    assert prov["snapshot_id"] == "20181220T133000000000Z-abc" and prov["snapshot_degraded"] is False
    assert prov["models"]["count"]["version"] == "count-test"
    assert prov["models"]["duration"]["version"] == "duration-test"
    assert set(document["presets"]) == {"quick", "balanced", "deep"}
    assert document["hot_sectors"]["window_days"] == 120
    json.dumps(document, allow_nan=False)


def test_the_markdown_says_whether_each_budget_binds(document):
    from technic_ml.optimizer.reporting import preset_rows, presets_markdown

    markdown = presets_markdown(document)
    for preset in document["presets"].values():
        assert preset["budget_binds"] is False  # millisecond sample scans against 10-120 s budgets
        assert preset["budget_note"] in markdown
    assert "duration bound within" not in markdown
    assert {r["budget_binds"] for r in preset_rows(document)} == {"no"}


def test_the_id_hashes_the_inputs_not_the_clock(predictors, conditions, document):
    again = daily_presets(
        Optimizer(predictors).suggest_all(conditions),
        None,
        conditions,
        snapshot_id="20181220T133000000000Z-abc",
        models={"count": predictors.count, "duration": predictors.duration},
        searched=7182,
        elapsed_seconds=0.9,
        generated_at=dt.datetime(2030, 1, 1, tzinfo=NY),
    )
    assert again["presets_id"] == document["presets_id"]
    other = {**document, "presets_id": "x"}
    assert other["presets_id"] != document["presets_id"]


def test_saving_twice_is_idempotent_and_latest_is_the_newest(tmp_path, document):
    history = PresetsHistory(tmp_path / "presets")
    assert history.latest() is None and history.history() == []
    assert history.save(document) is True
    assert history.save(document) is False
    newer = {**document, "presets_id": "newer", "for_session": "2018-12-21"}
    assert history.save(newer) is True
    assert [d["presets_id"] for d in history.history()] == ["newer", document["presets_id"]]
    assert history.latest()["presets_id"] == "newer"
    assert history.history(limit=1)[0]["presets_id"] == "newer"


def test_a_torn_last_line_is_skipped_then_repaired(tmp_path, document, caplog):
    history = PresetsHistory(tmp_path / "presets")
    history.save(document)
    with open(history.history_file, "ab") as fh:
        fh.write(b'{"schema_version": 1, "presets_id": "half')  # a writer killed mid-append
    with caplog.at_level(logging.WARNING):
        assert [d["presets_id"] for d in history.history()] == [document["presets_id"]]
    assert "torn last line" in caplog.text
    assert history.save({**document, "presets_id": "after"}) is True
    assert [d["presets_id"] for d in history.history()] == ["after", document["presets_id"]]
    assert (
        history.history_file.with_suffix(".jsonl.torn")
        .read_bytes()
        .startswith(b'{"schema_version": 1, "presets_id": "half')
    )


def test_a_corrupt_line_in_the_middle_is_an_error_naming_it(tmp_path, document):
    history = PresetsHistory(tmp_path / "presets")
    history.save(document)
    with open(history.history_file, "ab") as fh:
        fh.write(b"not json\n")
    history_lines = history.history_file.read_bytes()
    with pytest.raises(StoreError, match=r"history.jsonl:2"):
        history.history()
    with pytest.raises(StoreError, match=r"history.jsonl:2"):
        history.save({**document, "presets_id": "y"})
    assert history.history_file.read_bytes() == history_lines  # nothing appended, nothing lost


def test_unknown_schema_versions_are_refused(tmp_path, document):
    history = PresetsHistory(tmp_path / "presets")
    history.save(document)
    history.latest_file.write_text(json.dumps({**document, "schema_version": 2}))
    with pytest.raises(StoreError, match="schema_version 2; expected 1"):
        history.latest()
    with pytest.raises(StoreError, match="schema_version None"):
        history.save({"presets_id": "x"})


def test_a_save_killed_between_its_two_writes_is_completed_by_the_rerun(tmp_path, document):
    history = PresetsHistory(tmp_path / "presets")
    older = {**document, "presets_id": "older", "generated_at": "2018-12-20T08:30:00-05:00"}
    assert history.save(older) is True
    # The save of `document` appended it to the history, then the process died before latest.json.
    with open(history.history_file, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(document, sort_keys=True) + "\n")
    assert history.latest()["presets_id"] == "older"
    assert history.save(document) is False  # already in the history: not appended twice
    assert history.latest()["presets_id"] == document["presets_id"]
    assert [d["presets_id"] for d in history.history()] == [document["presets_id"], "older"]
    # Re-saving the older document does not move the latest back.
    assert history.save(older) is False and history.latest()["presets_id"] == document["presets_id"]


def test_latest_follows_the_instant_not_the_text_across_a_daylight_saving_change(tmp_path, document):
    history = PresetsHistory(tmp_path / "presets")
    # 01:30 EDT (-04:00) comes before 01:10 EST (-05:00) on 2018-11-04, though its text sorts after.
    first = {**document, "presets_id": "first", "generated_at": "2018-11-04T01:30:00-04:00"}
    second = {**document, "presets_id": "second", "generated_at": "2018-11-04T01:10:00-05:00"}
    assert history.save(second) is True
    assert history.save(first) is True
    assert history.latest()["presets_id"] == "second"


def test_an_unreadable_latest_file_is_replaced_by_the_next_save(tmp_path, document, caplog):
    history = PresetsHistory(tmp_path / "presets")
    history.save({**document, "presets_id": "before"})
    history.latest_file.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert history.save(document) is True
    assert history.latest()["presets_id"] == document["presets_id"]
    assert "replace it" in caplog.text


def test_a_document_without_a_readable_generated_at_is_refused_naming_it(tmp_path, document):
    history = PresetsHistory(tmp_path / "presets")
    with pytest.raises(StoreError, match="generated_at 'yesterday'; expected an ISO 8601 date-time"):
        history.save({**document, "generated_at": "yesterday"})
    assert history.history() == [] and history.latest() is None

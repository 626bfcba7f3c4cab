"""The daily presets' steps without Prefect: what daily-presets does on a fresh data root (no
champions: every preset falls back, flagged and logged) and with published champions."""

from __future__ import annotations

import datetime as dt
import logging
import shutil

import pytest

from technic_ml.jobs import presets
from technic_ml.market_conditions import snapshot_market
from technic_ml.market_data import open_market_data
from technic_ml.nyse import NY
from technic_ml.optimizer import daily_presets
from technic_ml.settings import TechnicSettings

WHEN = dt.datetime(2018, 12, 20, 8, 30, tzinfo=NY)


@pytest.fixture
def settings(tmp_path, history_template):
    settings = TechnicSettings(data_root=tmp_path)
    shutil.copytree(history_template, settings.history_path)
    return settings


def test_without_champions_every_preset_falls_back_flagged_and_says_so(settings, caplog):
    predictors = presets.load_predictors(settings, WHEN)
    assert predictors.count is None and predictors.duration is None
    conditions = snapshot_market(open_market_data(settings), WHEN)
    with caplog.at_level(logging.WARNING, logger="technic_ml.jobs.presets"):
        suggestions, searched, seconds = presets.suggest_presets(predictors, conditions)
    assert set(suggestions) == {"quick", "balanced", "deep"} and searched > 0 and seconds >= 0
    assert all(s.source != "model" for s in suggestions.values())
    # The run's log names each fallback: a user watching the flow sees no model served them.
    mine = [r.getMessage() for r in caplog.records if r.name == "technic_ml.jobs.presets"]
    assert {m.split(" preset:")[0] for m in mine} == {"quick", "balanced", "deep"}, mine


def test_with_champions_presets_are_the_models_and_are_saved_once(settings, history_template):
    from tests.support.champions import publish_sample_champions

    publish_sample_champions(settings.data_root, history_template)
    predictors = presets.load_predictors(settings, WHEN)
    assert predictors.count is not None and predictors.duration is not None
    conditions = snapshot_market(open_market_data(settings), WHEN)
    suggestions, searched, seconds = presets.suggest_presets(predictors, conditions)
    assert {s.source for s in suggestions.values()} == {"model"}
    hot = presets.rank_hot_sectors(settings, WHEN, window_days=120)
    assert hot.sectors and hot.scans > 0, "the sample history has sector scans in the window"
    document = daily_presets(
        suggestions, hot, conditions, snapshot_id="s1",
        models={"count": predictors.count, "duration": predictors.duration},
        searched=searched, elapsed_seconds=seconds,
    )  # fmt: skip
    assert presets.save_presets(settings, document) is True
    assert presets.save_presets(settings, document) is False  # the same presets: nothing appended

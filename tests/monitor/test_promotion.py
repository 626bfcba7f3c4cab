"""The promotion rule on paired live outcomes: evidence, a better error on the same scans, coverage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from technic_ml.monitor.live import Thresholds
from technic_ml.monitor.promotion import compare, paired

RNG = np.random.default_rng(7)


def frame(n, champion_err, challenger_err, challenger_halfwidth=5.0, shared=None):
    """n scans with actual 50; each model predicts 50 + its error; the challenger's interval is
    value +- challenger_halfwidth. ``shared``: only the first ``shared`` have an outcome."""
    rows = []
    for i in range(n):
        actual = 50.0 if shared is None or i < shared else np.nan
        for role, version, err, half in (
            ("served", "champ", champion_err[i], 5.0),
            ("shadow", "chall", challenger_err[i], challenger_halfwidth),
        ):
            v = 50.0 + err
            rows.append(
                dict(prediction_id=f"p{i}", target="count", role=role, version=version, state="model",
                     value=v, lower=v - half, upper=v + half, actual=actual)
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_a_clearly_better_calibrated_challenger_is_promoted_with_its_figures():
    champ = RNG.normal(0, 4, 150)
    chall = champ * 0.5
    c = compare(frame(150, champ, chall), "count", "champ", "chall", stated_coverage=0.9)
    assert c.promote, c.reason
    assert c.n == 150 and c.challenger_mae == pytest.approx(c.champion_mae / 2)
    assert c.reason.startswith("live: on 150 shared outcomes") and c.p_value < 0.05


def test_not_enough_shared_outcomes():
    champ = RNG.normal(0, 4, 150)
    c = compare(frame(150, champ, champ * 0.5, shared=60), "count", "champ", "chall", stated_coverage=0.9)
    assert not c.promote and c.reason == "60 shared outcomes; at least 100 needed"


def test_a_lower_mae_from_noise_is_not_better():
    champ = RNG.normal(0, 4, 200)
    chall = champ + RNG.normal(0, 0.5, 200)
    chall[0] = 0.0  # one scan the challenger nails
    c = compare(frame(200, champ, chall), "count", "champ", "chall", stated_coverage=0.9)
    assert not c.promote and "not better" in c.reason


def test_a_better_but_miscalibrated_challenger_is_kept_out():
    champ = RNG.normal(0, 4, 150)
    c = compare(
        frame(150, champ, champ * 0.5, challenger_halfwidth=0.5),
        "count",
        "champ",
        "chall",
        stated_coverage=0.9,
    )
    assert not c.promote and "below the floor" in c.reason


def test_the_same_model_twice_is_no_evidence():
    champ = RNG.normal(0, 4, 150)
    c = compare(frame(150, champ, champ), "count", "champ", "chall", stated_coverage=0.9)
    assert not c.promote and c.p_value == 1.0


def test_pairs_need_both_models_to_have_predicted_with_an_interval():
    champ = RNG.normal(0, 4, 120)
    f = frame(120, champ, champ * 0.5)
    f.loc[(f.version == "chall") & (f.prediction_id == "p0"), ["state", "lower", "upper"]] = [
        "abstain",
        None,
        None,
    ]
    assert len(paired(f, "count", "champ", "chall")) == 119
    assert (
        compare(
            f, "count", "champ", "chall", stated_coverage=0.9, thresholds=Thresholds(promote_min_outcomes=120)
        ).n
        == 119
    )

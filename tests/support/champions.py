"""Champions published from a small sample history: a few seconds, for tests that need a registry."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from technic_ml.settings import TechnicSettings


def publish_sample_champions(root: Path, history_template: Path, *, max_iter: int = 60) -> TechnicSettings:
    """Copy the sample history under ``root`` and publish both champions (lenient gates: the
    sample's millisecond durations are mostly noise; accuracy is tested elsewhere)."""
    from technic_ml.jobs.predictors import training_data
    from technic_ml.predictors.registry import ModelRegistry
    from technic_ml.predictors.training import FoldPlan, publish_predictors, train_predictors
    from technic_ml.predictors.validation import Candidate, Gates

    settings = TechnicSettings(data_root=root)
    if not settings.history_path.exists():
        shutil.copytree(history_template, settings.history_path)
    data, note = training_data(settings)
    run = train_predictors(
        data,
        candidates=(Candidate("hgb", "enriched", {"max_iter": max_iter}),),
        gates=Gates(duration_r2_min=-math.inf, duration_mae_max=math.inf, coverage_tolerance=0.5),
        folds=FoldPlan(n_folds=2),
        data_note=note,
    )
    outcomes = publish_predictors(ModelRegistry(settings.model_registry_path), run)
    assert all(o.serving for o in outcomes.values()), outcomes
    return settings

"""The result-count and duration predictors, from features to a published, verified model.

Modules, one idea each:

* ``universe``: exact scan statistics at the previous close (the cheap part of a count prediction).
* ``features``: the seed and enriched feature sets; the training matrix and the serving row.
* ``estimators``: ``ResultCountPredictor`` and ``DurationPredictor`` (scikit-learn contract) and
  the ``Prediction`` they return.
* ``conformal``: split conformal intervals on a log scale.
* ``runtime``: the compiled flat-tree runtime that serves one row in microseconds.
* ``metrics`` / ``validation``: rolling-origin backtests, baselines, gates, model selection.
* ``portable``: the serving file of a model (plain arrays and JSON) that loads under any library
  versions.
* ``registry``: versioned, hash-verified models with champion/challenger aliases.
* ``training``: the train -> validate -> publish steps the CLI and the flows call.
* ``reporting``: what the Prefect UI shows of a run: validation figures, feature importances,
  registry tables and the publish decision (content only; ``tasks/artifacts.py`` publishes it).
* ``serving``: champions loaded from the registry answering "how many, how long" for a config.
"""

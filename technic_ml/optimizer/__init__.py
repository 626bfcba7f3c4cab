"""The parameter optimizer: the published predictors turned into daily presets and advice.

Modules, one idea each:

* ``goals``: what quick, balanced and deep mean (count range, duration budget, P(empty) limit,
  objective), the user's ``Constraints`` and the seed's static presets.
* ``search``: the grid of candidate configs, scored by both champions in one batch.
* ``optimizer``: ``Optimizer.suggest`` / ``suggest_all``: the constrained choice per goal and the
  reasoning in plain words; the flagged static fallback when no champion exists.
* ``analysis``: ``analyze(config)``: predictions, risk labels with reasons, concrete fixes.
* ``hot_sectors``: sectors ranked by recent signals per symbol scanned, shrunk toward the market.
* ``presets``: the daily presets document with its provenance, and its history on disk.
"""

from technic_ml.optimizer.analysis import Analysis, Review, analyze
from technic_ml.optimizer.goals import DEFAULT_GOALS, STATIC_PRESETS, Constraints, Goal, static_preset
from technic_ml.optimizer.hot_sectors import HotSectors, hot_sectors
from technic_ml.optimizer.optimizer import Optimizer, Suggestion
from technic_ml.optimizer.presets import PresetsHistory, daily_presets
from technic_ml.optimizer.search import SearchSpace

__all__ = [
    "DEFAULT_GOALS",
    "STATIC_PRESETS",
    "Analysis",
    "Constraints",
    "Goal",
    "HotSectors",
    "Optimizer",
    "PresetsHistory",
    "Review",
    "SearchSpace",
    "Suggestion",
    "analyze",
    "daily_presets",
    "hot_sectors",
    "static_preset",
]

"""One worker of the shared-bucket test (tests/test_shared_bucket.py), run as its own process.

Reads everything from the environment the test gives it (TECHNIC_DATA_ROOT=s3://..., its own
TECHNIC_LOCAL_ROOT, the AWS endpoint of the test's S3 server, PREFECT_API_URL of the test's
Prefect server) and runs collect-history, train-predictors and daily-presets in that order, as a
worker of a work pool would. Prints one JSON line with what each flow returned.
"""

from __future__ import annotations

import json
import math
import sys


def main() -> int:
    from flows.collect_history import collect_history
    from flows.daily_presets import PresetsParams, daily_presets
    from flows.train_predictors import TrainParams, train_predictors
    from technic_ml.predictors.validation import Gates

    collected = collect_history()
    # The orchestration is under test, not accuracy: one candidate, two folds, lenient gates
    # (the same settings as tests/flows/test_train_predictors.py).
    lenient = Gates(duration_r2_min=-math.inf, duration_mae_max=math.inf, coverage_tolerance=0.5)
    trained = train_predictors(
        TrainParams(candidates=["hgb/enriched"], n_folds=2, collect=False, gates=lenient)
    )
    presets = daily_presets(PresetsParams(skip_non_trading_days=False))
    print(json.dumps({"collected": collected, "trained": trained, "presets": presets}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

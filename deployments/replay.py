"""The replay harness: real days through the real system, under three retraining policies.

``technic-ml replay --start D --end D`` (and ``bench/bench_replay.py``) drive this. Before the
first day, a history is backfilled from ``--train-start`` up to the day before ``--start`` and the
initial champions are trained by the ``train-predictors`` flow; every policy starts from a copy of
that data root. Then, session by session (``technic_ml.replay``):

1. the day's scans run on the reference scanner over that day's point-in-time data (the truth,
   shared by all policies);
2. per policy, each scan is predicted through the API's own code (``create_app`` on the policy's
   data root, ``POST /scan/predict`` with the scan's time and ``scan_id``) and its outcome reported
   (``POST /scan/outcome`` by ``scan_id``), into that policy's ledger;
3. per policy that learns, the day's scanner log goes to its inbox and the ``collect-history``
   flow imports it; ``nightly`` then runs ``train-predictors``; ``monitor`` runs ``model-monitor``
   and, for each degraded model whose last retrain is ``cooldown_days`` sessions ago or more,
   ``train-predictors`` on its target (the retrain automation's rule, on the replay's clock: the
   automation itself is exercised by the end-to-end test against a served deployment);
4. the API reloads the champions a training published.

Flows run on Prefect's ephemeral server unless ``PREFECT_API_URL`` names one. The result is each
policy's ledger outcomes and retrain log, and the per-month table (``technic_ml.replay.markdown``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deployments import prefect_env
from technic_ml import replay
from technic_ml.backfill import plan_backfill, run_plan
from technic_ml.fsio import write_bytes_atomic
from technic_ml.history import ScanHistoryStore
from technic_ml.market_data import open_market_data
from technic_ml.nyse import NY
from technic_ml.predictors.features import TARGETS, source_name
from technic_ml.settings import TechnicSettings


@dataclass
class ReplayResult:
    days: int
    scans: int
    outcomes: dict[str, pd.DataFrame]
    retrains: dict[str, list[tuple[dt.date, str]]]
    scan_dates: dict[str, dt.date]
    seconds: float
    flow_seconds: dict[str, float] = field(default_factory=dict)

    def table(self, target: str = "count") -> pd.DataFrame:
        return replay.monthly_table(self.outcomes, self.retrains, self.scan_dates, target)


def _use_root(root: Path) -> None:
    os.environ["TECHNIC_DATA_ROOT"] = str(root)  # the flows read their settings from the environment


def run_replay(
    start: dt.date,
    end: dt.date,
    out: Path,
    *,
    market_dir: Path | None = None,
    train_start: dt.date | None = None,
    initial_scans: int = 6000,
    per_day: int = 20,
    seed: int = 11,
    policies: tuple[str, ...] = replay.POLICIES,
    candidates: tuple[str, ...] = ("hgb/enriched",),
    n_folds: int = 2,
    cooldown_days: int = 5,
    timing_runs: int = 3,
    retrain_targets: tuple[str, ...] = ("count", "duration"),
    gates=None,
    log: Callable[[str], None] = print,
) -> ReplayResult:
    bad = [p for p in policies if p not in replay.POLICIES]
    if bad:
        raise ValueError(f"policies: received {bad}; expected some of {list(replay.POLICIES)}")
    if not retrain_targets or any(t not in TARGETS for t in retrain_targets):
        raise ValueError(
            f"retrain_targets: received {list(retrain_targets)}; expected some of {list(TARGETS)}"
        )
    if end < start:
        raise ValueError(f"end: received {end}; expected on or after start ({start})")
    t0 = time.perf_counter()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        # A second pass over the same ledgers would count every outcome twice.
        raise ValueError(f"out: received {out}, which is not empty; expected a new directory")
    if market_dir is not None:
        os.environ["TECHNIC_MARKET_DIR"] = str(market_dir)
        os.environ["TECHNIC_MARKET_SOURCE"] = "parquet"
    base = TechnicSettings(data_root=out / "initial")
    market = open_market_data(base)
    universe = market.universe()
    days = replay.plan_days(start, end, per_day, seed, universe)
    scan_dates = {p.scan_id: d.session for d in days for p in d.scans}
    log(f"replay {start}..{end}: {len(days)} sessions, {len(scan_dates)} scans, policies {policies}")

    prefect_env.set_defaults()
    prefect_env.start_ephemeral_server()
    from fastapi.testclient import TestClient

    from flows.collect_history import collect_history
    from flows.model_monitor import MonitorParams, model_monitor
    from flows.train_predictors import TrainParams, train_predictors
    from technic_ml.api.app import create_app
    from technic_ml.api.service import PredictionService
    from technic_ml.client import NoCountModel, TechnicClient

    flow_seconds: dict[str, float] = {}

    def timed(name, fn, *args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            flow_seconds[name] = flow_seconds.get(name, 0.0) + time.perf_counter() - t

    def train(as_of: dt.datetime, targets=("count", "duration")) -> dict:
        params = TrainParams(
            targets=list(targets),
            candidates=list(candidates),
            n_folds=n_folds,
            collect=False,
            as_of=as_of.isoformat(),
            skip_non_trading_days=False,
            **({"gates": gates} if gates is not None else {}),
        )
        state = timed("train-predictors", train_predictors, params, return_state=True)
        return {"state": state.name, "message": state.message or ""}

    # The past: a backfilled history up to the day before the first replayed session, and the
    # champions the train-predictors flow publishes from it.
    initial = out / "initial"
    first = train_start or dt.date(start.year - 3, start.month, start.day)
    plan = plan_backfill(first, start - dt.timedelta(days=1), initial_scans, seed + 1, universe)
    summary = run_plan(plan, market, ScanHistoryStore(initial / "history"), timing_runs=timing_runs)
    log(f"initial history: {summary}")
    _use_root(initial)
    first_close = dt.datetime.combine(start - dt.timedelta(days=1), dt.time(16), tzinfo=NY)
    trained = train(first_close)
    log(f"initial champions: {trained}")
    from technic_ml.predictors.registry import ModelRegistry

    registry = ModelRegistry(initial / "models")
    held = registry.aliases("result-count")["champion"]
    # A reported duration is the scan's measured work on the scale the labels use: work x the
    # source's rate in the initial training data (technic_ml.timing). The truth's total_seconds
    # carries each replayed day's own batch rate, the machine's speed of the moment, which no
    # model can predict and which would read as a degraded duration model.
    duration_champion = registry.aliases("duration")["champion"]
    rate = None
    if duration_champion is not None:
        rates = registry.manifest("duration", duration_champion).get("label_rates") or {}
        rate = rates.get(source_name(market.source))
    if rate is None:
        log("no duration label rate for the initial champion: durations are not reported")
    if held is None:
        # Every policy would answer 503 on every scan: nothing to compare. Say why, stop.
        raise RuntimeError(
            f"no result-count champion after the initial training in {initial}: see its"
            " train-predictors run (more --initial-scans, other --candidates, or gates that fit)"
        )
    truth = ScanHistoryStore(out / "truth" / "history")
    roots, apis, clients = {}, {}, {}
    for policy in policies:
        roots[policy] = out / policy
        shutil.copytree(initial, roots[policy])
        apis[policy] = PredictionService(
            TechnicSettings(data_root=roots[policy]), reload_seconds=3600, universe_since=start
        )
        # The API's own client over the app in process: the replay speaks to it as a scanner would.
        clients[policy] = TechnicClient(http=TestClient(create_app(apis[policy], reload=False)).__enter__())
    retrains: dict[str, list[tuple[dt.date, str]]] = {p: [] for p in policies}
    last_retrain: dict[tuple[str, str], int] = {}  # (policy, target) -> session index
    try:
        for i, day in enumerate(days):
            replay.run_day(day, market, truth, timing_runs=timing_runs)
            ids = {p.scan_id for p in day.scans}
            frame = truth.frame()
            actual = frame[frame["scan_id"].isin(ids)].set_index("scan_id")
            close = dt.datetime.combine(day.session, dt.time(16, 5), tzinfo=NY)
            for policy in policies:
                _use_root(roots[policy])
                client = clients[policy]
                for p in day.scans:
                    # A 503 (no count champion) is recorded all the same, with the flagged duration.
                    with contextlib.suppress(NoCountModel):
                        client.predict(p.config, as_of=p.as_of, scan_id=p.scan_id)
                    row = actual.loc[p.scan_id]
                    work = json.loads(row["performance_extra"] or "{}").get("work_units")
                    client.report_outcome(
                        scan_id=p.scan_id,
                        actual_count=int(row["result_count"]),
                        actual_duration_s=None if rate is None or work is None else float(work) * rate,
                    )
                apis[policy].ledger.flush()
                if policy == "frozen":
                    continue
                replay.ship_day(day, truth, roots[policy] / "inbox")
                timed("collect-history", collect_history)
                why, targets = None, retrain_targets
                if policy == "nightly":
                    why = "nightly"
                else:
                    report = timed("model-monitor", model_monitor, MonitorParams(skip_non_trading_days=False))
                    # Only what a retrain retrains: a finding about a target it leaves alone
                    # would retrain again every cooldown and fix nothing.
                    due = {
                        t: m["findings"]
                        for t, m in (report or {}).get("models", {}).items()
                        if t in retrain_targets and m["findings"]
                        and i - last_retrain.get((policy, t), -(10**9)) >= cooldown_days
                    }  # fmt: skip
                    if due:
                        targets = tuple(t for t in TARGETS if t in due)
                        why = "; ".join(f"{t}: {f}" for t, fs in due.items() for f in fs)
                if why:
                    result = train(close, targets)
                    retrains[policy].append((day.session, why))
                    for t in targets:
                        last_retrain[(policy, t)] = i
                    apis[policy].refresh()
                    log(f"{day.session} {policy}: retrained ({why[:120]}): {result['state']}")
            if (i + 1) % 20 == 0 or i + 1 == len(days):
                log(f"{day.session}: {i + 1}/{len(days)} sessions, {time.perf_counter() - t0:.0f} s")
                # A long replay can be stopped at any moment: what it has judged so far is on disk.
                _checkpoint(out, {p: apis[p].ledger.outcomes_frame() for p in policies}, retrains, scan_dates)
        outcomes = {p: apis[p].ledger.outcomes_frame() for p in policies}
    finally:
        for policy in policies:
            clients[policy].http.__exit__(None, None, None)
    result = ReplayResult(
        len(days), len(scan_dates), outcomes, retrains, scan_dates, time.perf_counter() - t0, flow_seconds
    )
    _checkpoint(out, outcomes, retrains, scan_dates)
    return result


def stopped_tables(out: Path) -> dict[str, str]:
    """target -> markdown table of a replay directory as it stands (a replay stopped before its
    last session included): each policy's ledger, the retrain log, and the truth's scan dates."""
    from technic_ml.monitor.inputs import ledger_outcomes

    out = Path(out)
    logged = json.loads((out / "retrains.json").read_text())
    retrains = {p: [(dt.date.fromisoformat(d), w) for d, w in r] for p, r in logged.items()}
    truth = ScanHistoryStore(out / "truth" / "history").frame()
    scan_dates = dict(zip(truth["scan_id"], truth["timestamp"].dt.tz_convert(NY).dt.date, strict=True))
    outcomes = {p: ledger_outcomes(TechnicSettings(data_root=out / p)) for p in retrains}
    return _tables(outcomes, retrains, scan_dates)


def _tables(outcomes, retrains, scan_dates) -> dict[str, str]:
    return {
        target: replay.markdown(replay.monthly_table(outcomes, retrains, scan_dates, target))
        for target in TARGETS
    }


def _checkpoint(out: Path, outcomes, retrains, scan_dates) -> None:
    """retrains.json and table-<target>.md for the sessions replayed so far (replaced atomically)."""
    log = {p: [(str(d), w) for d, w in r] for p, r in retrains.items()}
    write_bytes_atomic(out / "retrains.json", json.dumps(log, indent=1).encode())
    for target, text in _tables(outcomes, retrains, scan_dates).items():
        write_bytes_atomic(out / f"table-{target}.md", text.encode())

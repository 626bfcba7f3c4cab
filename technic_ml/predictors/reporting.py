"""Report content for people: figures, importances, registry tables and the publish decision.

The library's validation (:mod:`.validation`), training (:mod:`.training`) and registry
(:mod:`.registry`) decide; this module only shows what they decided, as plain values (PNG bytes,
markdown text, data frames and lists of dicts). The Prefect flows turn these into UI artifacts
(``tasks/artifacts.py``) and the CLI can print them; nothing here imports Prefect or writes anywhere.

* :func:`validation_figure_png`: predicted vs actual per fold and interval coverage per fold for
  one validated model, from the holdout rows ``ModelResult.predictions`` keeps.
* :func:`png_data_uri` / :func:`image_markdown`: a PNG inlined in markdown, so it renders without a
  file server (a Prefect markdown artifact shows it offline).
* :func:`feature_importances`: permutation importance of a trained predictor's features.
* :func:`registry_rows` / :func:`alias_history_rows`: every version and every alias event.
* :func:`decision_markdown`: one training run's validation tables and what was published, or why not.

Figures use matplotlib's object API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``), never
``pyplot``: pyplot keeps global state and picks a GUI backend, neither of which is safe in a worker
thread of a flow run.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from technic_ml.errors import RegistryError
from technic_ml.predictors.features import Dataset
from technic_ml.predictors.registry import MANIFEST_FILE, MODEL_FILE, MODEL_NAMES, ModelRegistry
from technic_ml.predictors.training import PublishOutcome, TrainedTarget, TrainingRun
from technic_ml.predictors.validation import Gates, TargetReport, markdown

log = logging.getLogger(__name__)

#: At most this many holdout points are drawn: more only blurs the scatter and bloats the PNG.
MAX_SCATTER_POINTS = 5000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMPORTANCE_COLUMNS = ("feature", "importance", "std", "rank")
IMPORTANCE_METHOD = (
    "Permutation importance: the mean increase in MAE when one feature's values are shuffled, over"
    " the newest {n} rows ({repeats} shuffles each). These rows were part of the final model's"
    " training data (it is refitted on all rows), so this says which features the model relies on,"
    " not how accurate it is on unseen data (the validation folds say that)."
)


# -- validation figure ---------------------------------------------------------------------------


def validation_figure_png(
    report: TargetReport, *, name: str | None = None, gates: Gates | None = None, dpi: int = 100
) -> bytes:
    """PNG of one validated model: predicted vs actual per fold (left), coverage per fold (right).

    ``name`` picks a result of the report (default: the chosen candidate). The gate floor drawn
    under the coverage bars is each fold's floor (``Gates.coverage_floor``); pass the
    run's gates (``TrainingRun.gates``) when they differ from the defaults, since a report does not
    record them. Raises ValueError when the report has no such result or no holdout predictions
    (too few records to validate).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gates = gates or Gates()
    if report.too_few:
        raise ValueError(
            f"report: {report.target} has no holdout predictions to plot (too few records: {report.too_few})"
        )
    name = name if name is not None else report.chosen
    if name is None:
        raise ValueError(f"report: {report.target} has no chosen model; pass name= one of its results")
    try:
        result = report.result(name)
    except KeyError:
        names = [r.name for r in report.results]
        raise ValueError(f"name: received {name!r}; expected one of {names}") from None
    stacked = result.predictions
    if stacked is None or len(stacked) == 0:
        raise ValueError(
            f"report: {report.target} result {name!r} holds no holdout predictions"
            " (expected a ModelResult from backtest or a baseline)"
        )

    fig = Figure(figsize=(12, 5), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    scatter, bars = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.3, 1]})
    colors = _fold_colors(len(report.folds))
    _scatter_panel(scatter, stacked, report, colors)
    _coverage_panel(bars, result.per_fold, report, gates, colors)
    pooled = result.pooled
    fig.suptitle(
        f"{report.target}: {name} ({result.kind}); pooled MAE {pooled.get('mae', float('nan')):.4g},"
        f" R² {pooled.get('r2', float('nan')):.3f}; {len(stacked)} holdout rows in {len(report.folds)} folds"
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _fold_colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


def _scatter_panel(ax, stacked: np.ndarray, report: TargetReport, colors: list) -> None:
    # Evenly spaced rows, not a random draw: the same report always gives the same picture, and
    # each fold keeps its share of the points.
    rows = np.arange(len(stacked))
    if len(rows) > MAX_SCATTER_POINTS:
        rows = np.unique(np.linspace(0, len(stacked) - 1, MAX_SCATTER_POINTS).astype(int))
    shown = stacked[rows]
    fold, y, point = shown[:, 0].astype(int), shown[:, 1], shown[:, 2]
    for k, f in enumerate(report.folds):
        mine = fold == f.index
        if mine.any():
            n_fold = int((stacked[:, 0] == f.index).sum())
            ax.scatter(
                y[mine],
                point[mine],
                s=6,
                alpha=0.5,
                color=colors[k],
                linewidths=0,
                label=f"fold {k + 1}: {f.label} (n={n_fold})",
            )
    finite = np.isfinite(y) & np.isfinite(point)
    lo = float(min(y[finite].min(), point[finite].min()))
    hi = float(max(y[finite].max(), point[finite].max()))
    if lo > 0:
        ax.set_xscale("log")
        ax.set_yscale("log")
        scale = "log"
    elif lo >= 0:
        # Counts of zero (empty scans) have no logarithm: linear up to 1, logarithmic beyond.
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_yscale("symlog", linthresh=1.0)
        scale = "symlog"
    else:
        scale = "linear"
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, linestyle="--", label="predicted = actual")
    unit = "results" if report.target == "count" else "seconds"
    ax.set_xlabel(f"actual ({unit}, {scale} axis)")
    ax.set_ylabel(f"predicted ({unit})")
    subsampled = f"; {len(shown)} of {len(stacked)} rows shown" if len(shown) < len(stacked) else ""
    ax.set_title(f"Predicted vs actual on each fold's future rows{subsampled}", fontsize="medium")
    ax.legend(loc="upper left", fontsize="small", markerscale=2)
    ax.grid(True, alpha=0.3)


def _coverage_panel(ax, per_fold: list[dict], report: TargetReport, gates: Gates, colors: list) -> None:
    floor = report.coverage - gates.coverage_tolerance
    values = [m.get("coverage") for m in per_fold]
    # One date per line: two date ranges side by side do not fit under a bar.
    labels = [
        f"fold {k + 1}\n{f.test_start:%Y-%m-%d}\n..{f.test_end:%Y-%m-%d}" for k, f in enumerate(report.folds)
    ]
    if not any(v is not None and np.isfinite(v) for v in values):
        ax.text(0.5, 0.5, "no interval (never calibrated)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    heights = [v if v is not None and np.isfinite(v) else 0.0 for v in values]
    positions = np.arange(len(heights))
    ax.bar(positions, heights, color=colors[: len(heights)], alpha=0.8)
    for x, v in zip(positions, heights, strict=True):
        ax.text(x, v, f"{v:.1%}", ha="center", va="bottom", fontsize="small")
    ax.axhline(report.coverage, color="black", linewidth=1, label=f"stated coverage {report.coverage:.0%}")
    # Each fold's own floor: lower than stated - tolerance on a fold too small to measure that.
    floors = [gates.coverage_floor(report.coverage, m.get("n")) for m in per_fold][: len(heights)]
    ax.hlines(
        floors,
        positions - 0.4,
        positions + 0.4,
        color="tab:red",
        linewidth=1,
        linestyle="--",
        label=f"gate floor (stated - max({gates.coverage_tolerance:g}, {gates.coverage_z:g} binomial SE))",
    )
    floor = min([floor, *floors])
    ax.set_xticks(positions, labels[: len(heights)], fontsize="small")
    low = min([*heights, floor])
    ax.set_ylim(max(0.0, low - 0.1), 1.12)  # headroom above 100% for the legend
    ax.set_yticks([t for t in ax.get_yticks() if low - 0.1 <= t <= 1.0])  # no "110%" tick
    ax.yaxis.set_major_formatter(_percent)
    ax.set_ylabel("share of actuals inside the interval")
    ax.set_title("Interval coverage per fold", fontsize="medium")
    ax.legend(loc="upper center", fontsize="small", ncols=2)
    ax.grid(True, axis="y", alpha=0.3)


def _percent(value: float, _pos: int) -> str:
    return f"{value:.0%}"


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for ``png`` (raises ValueError if it is not a PNG)."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError(f"png: received {len(png)} bytes starting {png[:8]!r}; expected PNG bytes")
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image_markdown(png: bytes, alt: str) -> str:
    """``![alt](data:image/png;base64,...)``: an image that renders with no file to fetch."""
    # Brackets in the alt text would end the link syntax early.
    safe = alt.replace("[", "(").replace("]", ")").replace("\n", " ")
    return f"![{safe}]({png_data_uri(png)})"


# -- feature importances -------------------------------------------------------------------------


def feature_importances(
    trained: TrainedTarget,
    data: Dataset,
    *,
    n_rows: int = 2000,
    n_repeats: int = 3,
    random_state: int = 0,
) -> pd.DataFrame:
    """Permutation importance of the trained predictor's features, most important first.

    Columns ``feature``, ``importance`` (mean increase in MAE when the feature's values are
    shuffled among the rows), ``std`` (over the ``n_repeats`` shuffles) and ``rank`` (1 = most
    important). The rows are the newest ``n_rows`` of ``data`` (time order), scored with the
    predictor's own feature matrix. These rows were part of the final model's training data (it
    is refitted on all rows), so this says which features the model relies on, not holdout
    accuracy; the validation folds measure that. ``df.attrs["method"]`` holds that sentence with
    the row and shuffle counts; when there is no fitted predictor the frame is empty and
    ``attrs["method"]`` says why. (pandas drops ``attrs`` on some operations: read it first.)
    """
    if n_rows < 2:
        raise ValueError(f"n_rows: received {n_rows!r}; expected at least 2 rows to shuffle")
    if n_repeats < 1:
        raise ValueError(f"n_repeats: received {n_repeats!r}; expected at least 1")
    predictor = trained.predictor
    if predictor is None:
        frame = pd.DataFrame({c: pd.Series(dtype=float) for c in IMPORTANCE_COLUMNS})
        frame["feature"] = frame["feature"].astype(object)
        frame.attrs["method"] = f"no importances for {trained.target}: no model was fitted on all rows" + (
            f" ({trained.report.too_few})" if trained.report.too_few else ""
        )
        return frame
    columns = list(predictor.features.columns)
    X_all = data.X(predictor.features)
    start = max(len(X_all) - n_rows, 0)
    X = X_all.iloc[start:].to_numpy(dtype=np.float64)
    y = data.y(trained.target)[start:]
    n = len(X)
    rng = np.random.default_rng(random_state)
    base = float(np.mean(np.abs(predictor.predict(X) - y)))
    importance, spread = [], []
    for j in range(len(columns)):
        # All shuffles of one feature in one predict call: one thread-pool setup, not n_repeats.
        stacked = np.tile(X, (n_repeats, 1))
        for r in range(n_repeats):
            stacked[r * n : (r + 1) * n, j] = X[rng.permutation(n), j]
        errors = np.abs(predictor.predict(stacked) - np.tile(y, n_repeats)).reshape(n_repeats, n)
        increase = errors.mean(axis=1) - base
        importance.append(float(increase.mean()))
        spread.append(float(increase.std()))
    frame = pd.DataFrame({"feature": columns, "importance": importance, "std": spread})
    frame = frame.sort_values("importance", ascending=False, kind="stable", ignore_index=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    frame.attrs["method"] = IMPORTANCE_METHOD.format(n=n, repeats=n_repeats)
    frame.attrs["baseline_mae"] = base
    return frame


# -- registry tables -----------------------------------------------------------------------------


def registry_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """One row per version of each model (result-count, then duration), newest first.

    Validation figures come from the manifest (the chosen candidate's pooled numbers on the
    rolling-origin folds). A version directory the registry does not list (unreadable manifest, or
    a model file of the wrong size) appears with its ``problem`` instead of being left out, so
    damage is visible; every other row has an empty ``problem``.
    """
    rows: list[dict[str, Any]] = []
    for model in MODEL_NAMES.values():
        aliases = _aliases(registry, model)
        listed = registry.versions(model)
        model_rows = [_version_row(model, v.version, v.manifest, aliases) for v in listed]
        known = {v.version for v in listed}
        for version, problem in _damaged_versions(registry, model, known):
            row = _version_row(model, version, {}, aliases)
            row["problem"] = problem
            model_rows.append(row)
        # Version ids start with their UTC creation time, so the id orders them by age.
        rows.extend(sorted(model_rows, key=lambda r: r["version"], reverse=True))
    return rows


def _aliases(registry: ModelRegistry, model: str) -> dict[str, str | None]:
    try:
        return registry.aliases(model)
    except RegistryError as exc:
        log.warning("%s: alias history unreadable, rows show no alias: %s", model, exc)
        return {}


def _version_row(
    model: str, version: str, manifest: dict[str, Any], aliases: dict[str, str | None]
) -> dict[str, Any]:
    window = manifest.get("training_window") or {}
    validation = manifest.get("validation") or {}
    pooled = validation.get("pooled") or {}
    per_fold = validation.get("per_fold") or []
    fold_coverage = [m["coverage"] for m in per_fold if m.get("coverage") is not None]
    held = [alias for alias, holder in aliases.items() if holder == version]
    return {
        "model": model,
        "version": version,
        "alias": ", ".join(held),
        "created_at": manifest.get("created_at"),
        "created_by": manifest.get("created_by"),
        "feature_set": manifest.get("feature_set"),
        "kind": (manifest.get("params") or {}).get("model"),
        "estimator": str(manifest.get("estimator", "")).rsplit(".", 1)[-1] or None,
        "train_first": window.get("first"),
        "train_last": window.get("last"),
        "records": window.get("records"),
        "mae": pooled.get("mae"),
        "r2": pooled.get("r2"),
        "coverage": pooled.get("coverage"),
        "min_fold_coverage": min(fold_coverage) if fold_coverage else None,
        "stated_coverage": manifest.get("coverage"),
        "problem": "",
    }


def _damaged_versions(registry: ModelRegistry, model: str, known: set[str]) -> list[tuple[str, str]]:
    """(directory name, problem) of version directories ``registry.versions`` skipped."""
    # The layout (<root>/<model>/versions/<version>/) is the registry's documented one; the registry
    # only logs what it skips, so the directories are listed here to put the damage in the table.
    base = f"{registry.root}/{model}/versions"
    try:
        infos = registry.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except OSError as exc:
        return [("?", f"cannot list {base}: {exc}")]
    out = []
    for info in infos:
        if info.type != pafs.FileType.Directory or info.base_name in known:
            continue
        out.append((info.base_name, _damage(registry, model, info.path)))
    return out


def _damage(registry: ModelRegistry, model: str, path: str) -> str:
    if registry.fs.get_file_info(f"{path}/{MANIFEST_FILE}").type == pafs.FileType.NotFound:
        return f"damaged: {MANIFEST_FILE} is missing"
    try:
        manifest = registry.manifest(model, path.rsplit("/", 1)[1])
    except RegistryError as exc:
        return f"damaged: {exc}"
    size = registry.fs.get_file_info(f"{path}/{MODEL_FILE}").size
    if size != manifest.get("model_bytes"):
        return f"incomplete: {MODEL_FILE} has {size} of {manifest.get('model_bytes')} bytes"
    if manifest.get("version") != path.rsplit("/", 1)[1]:
        return f"damaged: the manifest names version {manifest.get('version')!r} (a copied directory)"
    return "not listed by the registry"


def alias_history_rows(registry: ModelRegistry) -> list[dict[str, Any]]:
    """Every alias event of each model (promote, challenger set/clear, rollback), newest first.

    Columns: model, time, alias, action, version, reason, who. An unreadable event log gives one
    row with action ``unreadable`` and the error as its reason instead of raising.
    """
    rows: list[dict[str, Any]] = []
    for model in MODEL_NAMES.values():
        try:
            events = registry.alias_history(model)
        except RegistryError as exc:
            rows.append(
                {
                    "model": model,
                    "time": None,
                    "alias": None,
                    "action": "unreadable",
                    "version": None,
                    "reason": str(exc),
                    "who": None,
                }
            )
            continue
        for event in reversed(events):
            rows.append(
                {
                    "model": model,
                    "time": event.get("at"),
                    "alias": event.get("alias"),
                    "action": event.get("action"),
                    "version": event.get("version"),
                    "reason": event.get("reason"),
                    "who": event.get("by"),
                }
            )
    return rows


# -- decision ------------------------------------------------------------------------------------


def decision_markdown(run: TrainingRun, outcomes: dict[str, PublishOutcome] | None) -> str:
    """One training run as markdown: per target the validation table and the publish decision.

    ``outcomes`` is what :func:`~technic_ml.predictors.training.publish_predictors` returned;
    None means the run only validated (nothing was offered to the registry).
    """
    data = run.dataset
    lines = ["# Predictor training run", ""]
    if len(data):
        span = f"{data.timestamp.iloc[0]:%Y-%m-%d %H:%M}..{data.timestamp.iloc[-1]:%Y-%m-%d %H:%M}"
        lines.append(f"**Records**: {len(data)} scans, {span}.")
    else:
        lines.append("**Records**: none.")
    if len(data.dropped):
        lines.append(f"\n{len(data.dropped)} history records were left out: {_dropped_reasons(data)}.")
    lines.append(f"\n**Data**: {run.data_note or 'no note recorded'}.")
    for target, trained in run.targets.items():
        report = trained.report
        lines += [
            "",
            f"## {target} ({MODEL_NAMES.get(target, target)})",
            "",
            f"{len(report.folds)} rolling-origin folds: "
            + (", ".join(f.label for f in report.folds) or "none")
            + ".",
            "",
            markdown(report, run.gates),
            "",
            "**Decision**: " + _decision(trained, outcomes),
        ]
    return "\n".join(lines) + "\n"


def _dropped_reasons(data: Dataset) -> str:
    counts = data.dropped["reason"].value_counts()
    return "; ".join(f"{n} x {reason}" for reason, n in counts.items())


def _decision(trained: TrainedTarget, outcomes: dict[str, PublishOutcome] | None) -> str:
    report = trained.report
    if outcomes is None:
        passed = "passed" if report.publishable else "failed"
        verdict = "" if report.chosen is None else f" ({report.chosen} {passed} its gates)"
        return f"validation only (not published){verdict}."
    outcome = outcomes.get(trained.target)
    if outcome is None:
        return "no publish decision was recorded for this target."
    if outcome.published:
        why = "" if outcome.alias == "champion" else f": {outcome.reason}"
        return f"published as **{outcome.alias}** version `{outcome.version}`{why}."
    if outcome.alias is not None:
        # Not published because the serving champion was trained on exactly this data.
        return f"**NOT published**: {outcome.reason} (`{outcome.version}` stays {outcome.alias})."
    return f"**NOT published**: {outcome.reason}."

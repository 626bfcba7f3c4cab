"""What the model monitor shows people: realized coverage and error over time, drift per input.

Plain values only (PNG bytes, markdown): the ``model-monitor`` flow turns them into Prefect
artifacts and the CLI can print them. Figures use matplotlib's object API on an Agg canvas, never
``pyplot`` (global state, GUI backends; see ``predictors.reporting``).
"""

from __future__ import annotations

import io

import pandas as pd

from technic_ml.monitor.live import coverage_series
from technic_ml.monitor.report import ModelReport, MonitorReport
from technic_ml.predictors.reporting import image_markdown


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def model_figure_png(outcomes: pd.DataFrame, m: ModelReport, window: int, dpi: int = 90) -> bytes:
    """Realized coverage (left) and MAE (middle) over time against the stated coverage, the gate
    floor and the validated MAE; PSI per input (right) against the limit."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    cov, err, drift = fig.subplots(1, 3)
    c = m.champion
    for perf, style in ((c, "-"), (m.challenger, "--")):
        if perf is None:
            continue
        series = coverage_series(outcomes, m.target, perf.version, window)
        label = f"{perf.role} {perf.version}"
        if not series.empty:
            cov.plot(series["at"], series["coverage"], style, label=label)
            err.plot(series["at"], series["mae"], style, label=label)
    if c is not None and c.stated_coverage is not None:
        cov.axhline(c.stated_coverage, color="green", lw=1, label=f"stated {c.stated_coverage:.0%}")
    if c is not None and c.coverage_floor is not None:
        cov.axhline(c.coverage_floor, color="red", lw=1, ls=":", label=f"floor {c.coverage_floor:.1%}")
    if c is not None and c.validated_mae:
        err.axhline(c.validated_mae, color="green", lw=1, label="validated MAE")
    cov.set_title(f"{m.model}: realized coverage (last {window} outcomes)")
    err.set_title("MAE (same window)")
    for ax in (cov, err):
        ax.legend(fontsize=7, loc="lower left")
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    judged = [d for d in m.drift if d.psi is not None]
    if judged:
        drift.barh([d.column for d in judged], [d.psi for d in judged], color="tab:orange")
        drift.axvline(judged[0].threshold, color="red", lw=1, ls=":", label="limit")
        drift.tick_params(axis="y", labelsize=7)
        drift.legend(fontsize=7)
    else:
        drift.text(0.5, 0.5, "too few recent scans\nto judge drift", ha="center", va="center")
        drift.set_axis_off()
    drift.set_title("input drift (PSI vs training window)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def monitor_markdown(report: MonitorReport, outcomes: pd.DataFrame | None = None) -> str:
    """The monitor's findings as markdown: a table per model, each finding, figures inline."""
    t = report.thresholds
    lines = [
        f"# Model monitor, {report.at:%Y-%m-%d %H:%M} UTC",
        f"{report.predictions} predictions in the ledger, {report.outcomes} with an outcome."
        f" Judged over each model's last {t.window} outcomes, from {t.min_outcomes} on.",
        "",
        "| model | role | version | outcomes | coverage (floor) | MAE (validated) | q-error | abstained |"
        " verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in report.models.values():
        for perf in (m.champion, m.challenger):
            if perf is None:
                continue
            verdict = "too few outcomes" if perf.too_few else ("**degraded**" if perf.findings else "healthy")
            lines.append(
                f"| {m.model} | {perf.role} | {perf.version} | {perf.n_outcomes} |"
                f" {_fmt(perf.coverage, '.1%')} ({_fmt(perf.coverage_floor, '.1%')}) |"
                f" {_fmt(perf.mae, '.4g')} ({_fmt(perf.validated_mae, '.4g')}) |"
                f" {_fmt(perf.q_error, '.3g')} |"
                f" {_fmt(perf.abstain_share, '.1%')} | {verdict} |"
            )
        if m.champion is None:
            lines.append(f"| {m.model} | - | - | - | - | - | - | - | {m.note} |")
    for m in report.models.values():
        if m.findings:
            lines += ["", f"## {m.model}: degraded"] + [f"- {f}" for f in m.findings]
        if m.comparison is not None:
            verdict = "promote" if m.comparison.promote else "keep the champion"
            head = f"## {m.model}: challenger {m.comparison.challenger}: {verdict}"
            lines += ["", head, m.comparison.reason]
        if outcomes is not None and m.champion is not None:
            png = model_figure_png(outcomes, m, t.window)
            lines += ["", image_markdown(png, f"{m.model} realized coverage, MAE and drift")]
    return "\n".join(lines) + "\n"

"""What a presets document looks like to a person: markdown and table rows (content only).

``tasks/artifacts.py`` publishes these in the Prefect UI and the CLI prints the same rows, so the
two always agree.

Each preset's duration budget is shown for what it is (``budget_binds`` and ``budget_note``, see
:func:`technic_ml.optimizer.optimizer.budget_check`): ``budget binds`` is yes, no, or ``?`` when
unknown (heuristic durations, the model abstained, a static preset, or a document saved before the
field existed). Documents saved without these fields are rendered as before.
"""

from __future__ import annotations

from typing import Any


def _interval(p: dict[str, Any], fmt: str) -> str:
    if p.get("lower") is None:
        return "-"
    return f"{format(p['lower'], fmt)}-{format(p['upper'], fmt)}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.2g} ms" if value < 1 else f"{value:.3g} s"


def _binds(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def preset_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for goal, s in document["presets"].items():
        c, count, duration = s["config"], s["count"], s["duration"]
        rows.append(
            {
                "goal": goal,
                "source": s["source"],
                "tier": s.get("tier"),
                "max_symbols": c["max_symbols"],
                "min_tech_rating": c["min_tech_rating"],
                "min_dollar_vol": c["min_dollar_vol"],
                "lookback_days": c["lookback_days"],
                "sectors": ", ".join(c.get("sectors") or []) or "all",
                "count": None if count["value"] is None else round(count["value"], 1),
                "count_interval": _interval(count, ".0f"),
                "p_empty": count.get("p_empty"),
                "duration": _seconds(duration["value"]),
                "duration_upper": _seconds(duration.get("upper")),
                "duration_state": duration["state"],
                "budget_s": (s.get("goal_spec") or {}).get("duration_budget_s"),
                "budget_binds": _binds(s.get("budget_binds")),
            }
        )
    return rows


def hot_sector_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    hot = document.get("hot_sectors") or {}
    return [
        {
            "rank": s["rank"],
            "sector": s["sector"],
            "scans": s["scans"],
            "symbols_scanned": s["symbols_scanned"],
            "signals": s["signals"],
            "raw_rate": round(s["raw_rate"], 4),
            "shrunk_rate": round(s["rate"], 4),
            "lift": round(s["lift"], 3),
        }
        for s in hot.get("sectors", [])
    ]


def presets_markdown(document: dict[str, Any], *, saved: bool | None = None) -> str:
    prov = document["provenance"]
    models = prov["models"]
    lines = [f"# Daily presets for {document['for_session']}", ""]
    if document["flags"]:
        lines += ["**Flags:**", *[f"- {f}" for f in document["flags"]], ""]
    lines += [
        "| provenance | |",
        "|---|---|",
        f"| presets id | `{document['presets_id']}`"
        + ("" if saved is None else (" (new)" if saved else " (already saved: same inputs)"))
        + " |",
        f"| generated at | {document['generated_at']} |",
        f"| snapshot | `{prov['snapshot_id']}` as of {prov['snapshot_as_of']}"
        + (" **DEGRADED**" if prov["snapshot_degraded"] else "")
        + " |",
    ]
    for target in ("count", "duration"):
        m = models.get(target)
        if m is None:
            lines.append(f"| {target} model | none (see flags) |")
        else:
            verified = m.get("coverage_verified")
            lines.append(
                f"| {target} model | `{m['version']}` ({m.get('chosen') or '?'}; stated coverage"
                f" {m['coverage']:.0%}, reached {'-' if verified is None else f'{verified:.1%}'}"
                " on the worst held-out fold) |"
            )
    lines.append(
        f"| search | {prov['searched_configs']} configs per goal in {prov['elapsed_seconds']:.2f} s |"
    )
    for goal, s in document["presets"].items():
        lines += ["", f"## {goal} ({s['source']})", ""]
        lines += [f"- {line}" for line in s["reasoning"]]
        note = s.get("budget_note")
        if note and note not in s["reasoning"]:
            lines.append(f"- {note}")
        lines += [f"- **{flag}**" for flag in s["flags"]]
    hot = document.get("hot_sectors")
    if hot:
        lines += ["", f"## Hot sectors (last {hot['window_days']} days)", ""]
        if hot["sectors"]:
            lines += [
                "| rank | sector | scans | symbols scanned | signals | raw rate | shrunk rate |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in hot_sector_rows(document):
                lines.append(
                    f"| {r['rank']} | {r['sector']} | {r['scans']} | {r['symbols_scanned']} | {r['signals']}"
                    f" | {r['raw_rate']:.2%} | {r['shrunk_rate']:.2%} |"
                )
            overall = hot["overall_rate"]
            lines.append(
                f"\nOverall rate {overall:.2%} signals per symbol scanned; prior weight"
                f" {hot['prior_symbols']:.0f} symbols scanned."
            )
        lines += [f"- {n}" for n in hot["notes"]]
    return "\n".join(lines)

"""Feature sets: what the predictors see of a scan before it runs.

Two families, each for both targets:

* **seed**: the original report's features, kept as the reference model. Result count: 15 (6 config
  + 9 market, named in ``../shared/seed/phase-3e-c-week1.md``). Duration: the report says "9 input
  features optimized for timing" without naming them; we read them as the 6 config features plus
  the three time features (``time_of_day``, ``day_of_week``, ``is_market_hours``), since market load,
  not market direction, is what moves a scan's wall time. ``min_dollar_vol`` is "normalized" as
  millions of dollars.
* **enriched**: the seed features plus exact statistics at the previous close
  (:mod:`technic_ml.predictors.universe`): how many symbols pass the cheap filters and the cap,
  how many of them can be rated, how many were rated at or above the threshold, and how many sat
  within a few points of it. Duration also gets the scan's work (rated symbols x lookback) and its
  **duration source** (``data_source``, coded by ``SOURCE_CODES``).

What a duration is depends on its source (:func:`duration_labels`): for a production scanner's
log (``scanner_log``) the seconds it logged; for the reference scanner on each kind of market data
(``sample``, ``parquet``, ``yfinance``) its measured work (:mod:`technic_ml.timing`) x that source's
rate. A model never sees two sources' durations without the source as an input.

Every feature is computable before the scan runs and point in time: config and market conditions
are known when the user asks, and universe statistics read only closes up to the session before
the scan's last bar. :func:`dataset_from_history` builds the training matrix from the history store;
:func:`feature_vector` builds one row for serving, and the two are tested to agree.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from technic_ml.contracts import MarketConditions, ScanConfig
from technic_ml.errors import ContractError
from technic_ml.nyse import calendar
from technic_ml.predictors.universe import UniverseStats

CONFIG_FEATURES = (
    "max_symbols",
    "min_tech_rating",
    "min_dollar_vol",
    "num_sectors",
    "num_industries",
    "lookback_days",
)
MARKET_FEATURES = (
    "trend_encoded",
    "volatility",
    "momentum",
    "return_5d",
    "return_20d",
    "vix_level",
    "time_of_day",
    "day_of_week",
    "is_market_hours",
)
TIME_FEATURES = ("time_of_day", "day_of_week", "is_market_hours")
UNIVERSE_FEATURES = ("n_universe", "n_rated", "prev_count", "prev_share", "n_near")
TREND_CODES = {"bullish": 1.0, "neutral": 0.0, "bearish": -1.0}
#: Duration sources as numbers: the reference scanner on each kind of market data (a scan on live
#: yfinance downloads bars; a parquet directory reads a file), and a production scanner's own log.
SOURCE_CODES = {"sample": 0.0, "parquet": 1.0, "yfinance": 2.0, "scanner_log": 3.0}
SOURCES = tuple(SOURCE_CODES)
TARGETS = ("count", "duration")


@dataclass(frozen=True)
class FeatureSet:
    name: str
    target: str
    columns: tuple[str, ...]
    needs_universe: bool

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target: received {self.target!r}; expected one of {list(TARGETS)}")


FEATURE_SETS: dict[tuple[str, str], FeatureSet] = {
    ("seed", "count"): FeatureSet("seed", "count", CONFIG_FEATURES + MARKET_FEATURES, False),
    ("seed", "duration"): FeatureSet("seed", "duration", CONFIG_FEATURES + TIME_FEATURES, False),
    ("enriched", "count"): FeatureSet(
        "enriched", "count", CONFIG_FEATURES + MARKET_FEATURES + UNIVERSE_FEATURES, True
    ),
    ("enriched", "duration"): FeatureSet(
        "enriched",
        "duration",
        CONFIG_FEATURES + TIME_FEATURES + ("n_universe", "n_rated", "prev_count", "work", "data_source"),
        True,
    ),
}


def feature_set(name: str, target: str) -> FeatureSet:
    try:
        return FEATURE_SETS[(name, target)]
    except KeyError:
        names = sorted({n for n, _ in FEATURE_SETS})
        raise ValueError(
            f"feature_set: received {name!r} for target {target!r}; expected one of {names}"
        ) from None


def source_code(data_source: str | None) -> float:
    """``"parquet:/data/market"`` -> 1.0; unknown or missing sources are NaN (the model abstains)."""
    if not data_source:
        return float("nan")
    return SOURCE_CODES.get(source_name(data_source), float("nan"))


def source_name(data_source: str) -> str:
    """``"parquet:/data/market"`` -> ``"parquet"``: the duration source a data source names."""
    return str(data_source).split(":", 1)[0]


def duration_sources(frame: pd.DataFrame) -> np.ndarray:
    """Each history record's duration source (see the module docstring); "" when it has none.

    A production scanner's log (``provenance_source == "scanner_log"``) is its own source, whatever
    market data it read; a backfilled scan is the reference scanner on its data source's kind.
    """
    origin = frame["provenance_source"].to_numpy(dtype=object)
    data = frame["provenance_data_source"].to_numpy(dtype=object)
    out = np.empty(len(frame), dtype=object)
    for i, (o, d) in enumerate(zip(origin, data, strict=True)):
        if o == "backfill":
            out[i] = source_name(d) if d else ""
        else:  # scanner_log, or no provenance: an imported production log
            out[i] = "scanner_log"
    return out


def duration_labels(
    frame: pd.DataFrame, sources: np.ndarray
) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
    """(duration label per record, rate per reference source, why a record has no label).

    * scanner_log: the logged ``total_seconds``, as the production scanner measured it.
    * reference scanner, measured by :mod:`technic_ml.timing`: its work (probe units) x the source's
      rate, the median probe seconds over all of that source's records. The batch-by-batch rate is
      the machine's momentary speed (it moved 30 % between two batches of one idle run), which no
      feature of a scan can predict; one rate per source keeps it out of the labels, and the
      predictor's rate for the source (``rates_``) is re-estimated from its scans.
    * reference scanner with a single wall-clock reading (scanner 1.2.0 and earlier, no
      ``timing`` key), or on a data source that names no duration source: no label (NaN), and the
      reason says so. Its count is still learned.
    """
    total = frame["total_seconds"].to_numpy(np.float64)
    label = total.copy()
    why = np.full(len(frame), "", dtype=object)
    units = np.full(len(frame), np.nan)
    probes = np.full(len(frame), np.nan)
    extras = frame["performance_extra"].to_numpy(dtype=object) if "performance_extra" in frame else ()
    for i, text in enumerate(extras):
        if sources[i] == "scanner_log":
            continue
        if sources[i] not in SOURCE_CODES:  # the model could not be told which scale it is
            why[i] = f"unknown duration source {sources[i]!r} (backfilled data source not in {list(SOURCES)})"
            continue
        extra = json.loads(text) if isinstance(text, str) and text else {}
        if extra.get("timing") and extra.get("work_units") and extra.get("probe_seconds"):
            units[i], probes[i] = float(extra["work_units"]), float(extra["probe_seconds"])
        else:
            why[i] = (
                "duration is one wall-clock reading (backfilled before scanner timing); re-run the backfill"
            )
    if len(extras) == 0:
        why[sources != "scanner_log"] = "no performance details to read a measured duration from"
    rates = {}
    for source in sorted(set(sources[np.isfinite(probes)])):
        rows = (sources == source) & np.isfinite(probes)
        rates[source] = float(np.median(probes[rows]))
        label[rows] = units[rows] * rates[source]
    reference = sources != "scanner_log"
    label[reference & ~np.isfinite(units)] = np.nan
    return label, rates, why


@dataclass
class Dataset:
    """Feature columns for every feature set, targets and times, time-ordered; plus what was dropped."""

    features: pd.DataFrame  # every column of every feature set
    count: np.ndarray
    duration: np.ndarray
    timestamp: pd.Series  # tz-aware New York
    scan_id: np.ndarray
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["scan_id", "reason"]))
    has_universe: bool = False
    data_source: str = ""
    #: Each row's duration source (``SOURCES``); the duration label's meaning depends on it.
    source: np.ndarray | None = None
    #: Seconds per probe unit of each reference source (see :func:`duration_labels`).
    rates: dict[str, float] = field(default_factory=dict)
    #: Rows kept for the count but without a duration label, with the reason (``for_target``).
    no_duration: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["scan_id", "reason"]))

    def __len__(self) -> int:
        return len(self.features)

    def X(self, fs: FeatureSet) -> pd.DataFrame:
        missing = [c for c in fs.columns if c not in self.features]
        if missing:
            raise ValueError(
                f"feature_set {fs.name!r}: columns {missing} are not in this dataset"
                " (enriched features need market data covering the scans)"
            )
        return self.features.loc[:, list(fs.columns)]

    def y(self, target: str) -> np.ndarray:
        if target not in TARGETS:
            raise ValueError(f"target: received {target!r}; expected one of {list(TARGETS)}")
        return self.count if target == "count" else self.duration

    def subset(self, rows: np.ndarray) -> Dataset:
        return Dataset(
            features=self.features.iloc[rows].reset_index(drop=True),
            count=self.count[rows],
            duration=self.duration[rows],
            timestamp=self.timestamp.iloc[rows].reset_index(drop=True),
            scan_id=self.scan_id[rows],
            dropped=self.dropped,
            has_universe=self.has_universe,
            data_source=self.data_source,
            source=None if self.source is None else self.source[rows],
            rates=self.rates,
            no_duration=self.no_duration,
        )

    def for_target(self, target: str) -> Dataset:
        """The rows with a label for ``target`` (a duration measured as one wall-clock reading has
        none), time order kept."""
        y = self.y(target)
        known = np.isfinite(y)
        return self if known.all() else self.subset(np.flatnonzero(known))

    def fingerprint(self, fs: FeatureSet, target: str) -> str:
        """sha256 of exactly what a model trained on this data saw (feature matrix, target, ids)."""
        h = hashlib.sha256()
        h.update(",".join(fs.columns).encode())
        h.update(np.ascontiguousarray(self.X(fs).to_numpy(dtype=np.float64)).tobytes())
        h.update(np.ascontiguousarray(self.y(target), dtype=np.float64).tobytes())
        h.update("\n".join(map(str, self.scan_id)).encode())
        return h.hexdigest()


def _base_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Seed columns (config + market) from history-store columns, one row per record."""

    def n_items(values: pd.Series) -> np.ndarray:
        return np.array([0 if v is None or len(v) == 0 else len(v) for v in values], dtype=np.float64)

    trend = frame["spy_trend"].map(TREND_CODES)
    if trend.isna().any():
        bad = frame.loc[trend.isna(), "spy_trend"].iloc[0]
        raise ContractError(f"spy_trend: received {bad!r}; expected one of {list(TREND_CODES)}")
    return pd.DataFrame(
        {
            "max_symbols": frame["max_symbols"].to_numpy(np.float64),
            "min_tech_rating": frame["min_tech_rating"].to_numpy(np.float64),
            "min_dollar_vol": frame["min_dollar_vol"].to_numpy(np.float64) / 1e6,
            "num_sectors": n_items(frame["sectors"]),
            "num_industries": n_items(frame["industries"]),
            "lookback_days": frame["lookback_days"].to_numpy(np.float64),
            "trend_encoded": trend.to_numpy(np.float64),
            "volatility": frame["spy_volatility"].to_numpy(np.float64),
            "momentum": frame["spy_momentum"].to_numpy(np.float64),
            "return_5d": frame["spy_return_5d"].to_numpy(np.float64),
            "return_20d": frame["spy_return_20d"].to_numpy(np.float64),
            "vix_level": pd.to_numeric(frame["vix_level"]).to_numpy(np.float64),
            "time_of_day": frame["time_of_day"].to_numpy(np.float64),
            "day_of_week": frame["day_of_week"].to_numpy(np.float64),
            "is_market_hours": frame["is_market_hours"].to_numpy(np.float64),
        }
    )


def bar_dates(timestamps: pd.Series) -> np.ndarray:
    """The last session each scan saw (``last_completed_session``), vectorized over the calendar."""
    closes = calendar().closes
    utc = pd.DatetimeIndex(timestamps).tz_convert("UTC")
    pos = closes.searchsorted(utc, side="right") - 1
    if (pos < 0).any():
        raise ValueError(f"timestamp: received {utc[pos < 0][0]}; expected a time after the calendar starts")
    return closes.index[pos].to_numpy()


def dataset_from_history(frame: pd.DataFrame, universe: UniverseStats | None = None) -> Dataset:
    """Features and targets for every history record (``ScanHistoryStore.frame()`` columns).

    Rows the enriched features cannot be computed for (no market data at the previous close) are
    kept for the seed feature sets only when no universe is given; with a universe they are dropped
    and listed in ``dropped`` with the reason, so every model of one run sees the same rows.
    Rows with a missing value in a seed feature (a degraded snapshot without VIX) are dropped too.
    """
    frame = frame.sort_values(["timestamp", "scan_id"], kind="stable", ignore_index=True)
    features = _base_columns(frame)
    dropped: list[pd.DataFrame] = []
    keep = np.ones(len(frame), dtype=bool)

    nan_rows = features.isna().any(axis=1).to_numpy()
    if nan_rows.any():
        cols = features.columns[features.isna().any(axis=0)].tolist()
        dropped.append(pd.DataFrame({"scan_id": frame.loc[nan_rows, "scan_id"], "reason": f"missing {cols}"}))
        keep &= ~nan_rows

    if universe is not None:
        bars = frame["provenance_bar_date"]
        known = bars.notna().to_numpy()
        session = np.empty(len(frame), dtype="datetime64[ns]")
        if known.any():
            session[known] = pd.to_datetime(bars[known]).to_numpy(dtype="datetime64[ns]")
        if (~known).any():
            session[~known] = bar_dates(frame.loc[~known, "timestamp"]).astype("datetime64[ns]")
        rows = universe.feature_rows(session)
        uncovered = rows < 0
        if uncovered.any():
            first, last = universe.panel.dates[0].date(), universe.panel.dates[-1].date()
            dropped.append(
                pd.DataFrame(
                    {
                        "scan_id": frame.loc[uncovered & keep, "scan_id"],
                        "reason": f"no market data at the previous close (data covers {first}..{last})",
                    }
                )
            )
            keep &= ~uncovered
        stats = np.zeros((len(frame), 4), dtype=np.float64)
        sectors, industries = frame["sectors"].to_numpy(), frame["industries"].to_numpy()
        cols = [
            frame[c].to_numpy() for c in ("max_symbols", "min_tech_rating", "min_dollar_vol", "lookback_days")
        ]
        # Group by (session, lookback) so each rating row is computed once and stays hot in cache.
        order = np.lexsort((cols[3], rows))
        for i in order:
            if not keep[i]:
                continue
            stats[i] = universe.stats_of(
                cols[0][i], cols[1][i], cols[2][i], sectors[i], industries[i], cols[3][i], int(rows[i])
            )
        features["n_universe"], features["n_rated"] = stats[:, 0], stats[:, 1]
        features["prev_count"], features["n_near"] = stats[:, 2], stats[:, 3]
        features["prev_share"] = np.where(stats[:, 1] > 0, stats[:, 2] / np.maximum(stats[:, 1], 1), 0.0)
        features["work"] = stats[:, 1] * features["lookback_days"].to_numpy()
    sources = duration_sources(frame)
    features["data_source"] = [SOURCE_CODES.get(s, np.nan) for s in sources]
    durations, rates, no_duration = duration_labels(frame, sources)

    rows_kept = np.flatnonzero(keep)
    unlabelled = keep & (no_duration != "")
    no_label = pd.DataFrame(
        {"scan_id": frame.loc[unlabelled, "scan_id"].to_numpy(), "reason": no_duration[unlabelled]}
    )
    return Dataset(
        features=features.iloc[rows_kept].reset_index(drop=True),
        count=frame["result_count"].to_numpy(np.float64)[rows_kept],
        duration=durations[rows_kept],
        timestamp=frame["timestamp"].iloc[rows_kept].reset_index(drop=True),
        scan_id=frame["scan_id"].to_numpy()[rows_kept],
        dropped=pd.concat(dropped, ignore_index=True)
        if dropped
        else pd.DataFrame(columns=["scan_id", "reason"]),
        has_universe=universe is not None,
        data_source=universe.panel.source if universe is not None else "",
        source=sources[rows_kept],
        rates=rates,
        no_duration=no_label,
    )


def feature_values(
    config: ScanConfig,
    conditions: MarketConditions,
    universe: UniverseStats | None = None,
    *,
    data_source: str | None = None,
) -> dict[str, float]:
    """Every feature of every set for a scan about to run with ``config`` under ``conditions``.

    The scan's moment is ``conditions.as_of`` (a snapshot carries it); its time features come from
    the conditions. Missing inputs become NaN, and the predictors abstain on NaN rather than guess.
    Universe statistics are computed once here and shared by both predictors.
    """
    values = {
        "max_symbols": float(config.max_symbols),
        "min_tech_rating": float(config.min_tech_rating),
        "min_dollar_vol": float(config.min_dollar_vol) / 1e6,
        "num_sectors": float(len(config.sectors or ())),
        "num_industries": float(len(config.industries or ())),
        "lookback_days": float(config.lookback_days),
        "trend_encoded": TREND_CODES[conditions.spy_trend],
        "volatility": conditions.spy_volatility,
        "momentum": conditions.spy_momentum,
        "return_5d": conditions.spy_return_5d,
        "return_20d": conditions.spy_return_20d,
        "vix_level": float("nan") if conditions.vix_level is None else conditions.vix_level,
        "time_of_day": float(conditions.time_of_day),
        "day_of_week": float(conditions.day_of_week),
        "is_market_hours": float(conditions.is_market_hours),
    }
    row = -1
    if universe is not None and conditions.as_of is not None:
        row = universe.feature_row_at(conditions.as_of)
    stats = (np.nan,) * 4 if row < 0 else universe.stats(config, row)
    n_universe, n_rated, prev_count, n_near = (float(s) for s in stats)
    values.update(
        n_universe=n_universe,
        n_rated=n_rated,
        prev_count=prev_count,
        n_near=n_near,
        prev_share=prev_count / n_rated if n_rated > 0 else (0.0 if n_rated == 0 else float("nan")),
        work=n_rated * float(config.lookback_days),
        data_source=source_code(data_source if data_source is not None else conditions.data_source),
    )
    return values


def vector(fs: FeatureSet, values: dict[str, float]) -> np.ndarray:
    """The row of ``fs`` out of :func:`feature_values`."""
    return np.array([values[c] for c in fs.columns], dtype=np.float64)


def feature_vector(
    fs: FeatureSet,
    config: ScanConfig,
    conditions: MarketConditions,
    universe: UniverseStats | None = None,
    *,
    data_source: str | None = None,
) -> np.ndarray:
    """One row of ``fs`` for a scan about to run (see :func:`feature_values`)."""
    if not fs.needs_universe:
        universe = None
    return vector(fs, feature_values(config, conditions, universe, data_source=data_source))

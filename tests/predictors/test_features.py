"""Feature sets: names, exactness of the previous-close statistics, point in time, serving = training."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from technic_ml.contracts import ScanConfig
from technic_ml.nyse import NY, calendar
from technic_ml.panel import Panel
from technic_ml.predictors.features import (
    FEATURE_SETS,
    dataset_from_history,
    feature_set,
    feature_vector,
    source_code,
)
from technic_ml.predictors.universe import UniverseStats
from technic_ml.scanner import Scanner


def test_seed_feature_sets_are_the_reports_15_and_9():
    count, duration = feature_set("seed", "count"), feature_set("seed", "duration")
    assert len(count.columns) == 15 and len(duration.columns) == 9
    assert count.columns[:6] == (
        "max_symbols",
        "min_tech_rating",
        "min_dollar_vol",
        "num_sectors",
        "num_industries",
        "lookback_days",
    )
    assert "trend_encoded" in count.columns and "is_market_hours" in duration.columns
    for (name, _), fs in FEATURE_SETS.items():
        assert fs.needs_universe == (name == "enriched")
        assert len(set(fs.columns)) == len(fs.columns)


def test_unknown_feature_set_is_named():
    with pytest.raises(ValueError, match="feature_set: received 'x'"):
        feature_set("x", "count")


@pytest.mark.parametrize(("source", "code"), [("sample", 0.0), ("parquet:/data", 1.0), ("yfinance", 2.0)])
def test_source_codes(source, code):
    assert source_code(source) == code
    assert np.isnan(source_code(None)) and np.isnan(source_code("ftp:x"))


@pytest.fixture(scope="module")
def sample_panel(sample_market):
    return Panel.from_market(sample_market, "2018-12-31", start=pd.Timestamp("2011-01-01").date())


@pytest.fixture(scope="module")
def sample_data(sample_history, sample_panel):
    frame = sample_history.frame()
    return frame, dataset_from_history(frame, UniverseStats(sample_panel))


def test_previous_close_statistics_equal_a_real_scan_at_that_close(sample_data, sample_panel):
    frame, data = sample_data
    frame = frame.sort_values(["timestamp", "scan_id"], ignore_index=True)
    scanner = Scanner(sample_panel)
    stats = UniverseStats(sample_panel)
    closes = calendar().closes
    checked = 0
    for i in range(0, len(frame), 53):
        row = frame.iloc[i]
        feature_row = int(stats.feature_rows(np.array([np.datetime64(row["provenance_bar_date"], "ns")]))[0])
        session = sample_panel.dates[feature_row]
        close = closes.loc[session].tz_convert(NY).to_pydatetime()
        config = ScanConfig(
            max_symbols=int(row["max_symbols"]),
            min_tech_rating=float(row["min_tech_rating"]),
            min_dollar_vol=float(row["min_dollar_vol"]),
            sectors=row["sectors"],
            industries=row["industries"],
            lookback_days=int(row["lookback_days"]),
        )
        record = scanner.scan(config, close).record
        j = int(np.flatnonzero(data.scan_id == row["scan_id"])[0])
        assert data.features.loc[j, "prev_count"] == record.results.count
        assert data.features.loc[j, "n_rated"] == record.performance.symbols_scanned
        checked += 1
    assert checked >= 25


def test_statistics_never_read_the_scans_own_bar_or_later(sample_market, sample_panel):
    """A panel that ends at the feature session gives the same statistics as the full panel."""
    full = UniverseStats(sample_panel)
    config = ScanConfig(max_symbols=120, min_tech_rating=55, min_dollar_vol=2e6, lookback_days=60)
    for day in ("2015-03-10", "2016-11-09", "2018-10-11"):
        bar = np.array([np.datetime64(day, "ns")])
        row = int(full.feature_rows(bar)[0])
        session = sample_panel.dates[row]
        close = calendar().closes.loc[session].tz_convert(NY).to_pydatetime()
        truncated_panel = Panel.from_market(sample_market, close, start=sample_panel.dates[0].date())
        assert truncated_panel.dates[-1] == session
        truncated = UniverseStats(truncated_panel)
        assert full.stats(config, row) == truncated.stats(config, len(truncated_panel.dates) - 1)


def test_serving_row_equals_the_training_row(sample_history, sample_data, sample_panel):
    _frame, data = sample_data
    stats = UniverseStats(sample_panel)
    records = {r.scan_id: r for r in sample_history.recent(200)}
    index = {sid: i for i, sid in enumerate(data.scan_id)}
    for name in ("seed", "enriched"):
        for target in ("count", "duration"):
            fs = feature_set(name, target)
            X = data.X(fs)
            for scan_id, record in list(records.items())[:60]:
                x = feature_vector(
                    fs,
                    record.config,
                    record.market_conditions,
                    stats,
                    data_source=record.provenance.data_source,
                )
                np.testing.assert_allclose(x, X.iloc[index[scan_id]].to_numpy(), rtol=0, atol=1e-12)


def test_rows_outside_the_market_data_are_dropped_with_a_reason(sample_history, sample_market):
    late = Panel.from_market(sample_market, "2018-12-31", start=pd.Timestamp("2017-01-01").date())
    frame = sample_history.frame()
    data = dataset_from_history(frame, UniverseStats(late))
    early = int((frame["provenance_bar_date"] < pd.Timestamp("2017-01-04").date()).sum())
    assert len(data.dropped) >= early > 0
    assert data.dropped["reason"].str.contains("no market data at the previous close").all()
    assert len(data) + len(data.dropped) == len(frame)


def test_seed_only_dataset_without_market_data(sample_history):
    data = dataset_from_history(sample_history.frame())
    assert not data.has_universe and "prev_count" not in data.features
    assert len(data) == sample_history.count()
    assert data.timestamp.is_monotonic_increasing
    with pytest.raises(ValueError, match="enriched features need market data"):
        data.X(feature_set("enriched", "count"))


@pytest.mark.parametrize("seed", range(4))
def test_compiled_universe_counts_equal_the_numpy_definition(seed):
    from technic_ml.predictors.universe import NEAR_POINTS, _count

    rng = np.random.default_rng(seed)
    n = 300
    adv = np.sort(rng.lognormal(15, 2, n))[::-1]
    sector, industry = rng.integers(0, 5, n), rng.integers(0, 9, n)
    ratings = rng.uniform(0, 100, n)
    ratings[rng.random(n) < 0.1] = np.nan
    sectors, industries = rng.random(5) < 0.6, rng.random(9) < 0.7
    min_dv, max_symbols, min_rating = float(np.quantile(adv, 0.3)), int(rng.integers(5, 400)), 50.0
    keep = (adv >= min_dv) & sectors[sector] & industries[industry]
    chosen = ratings[np.flatnonzero(keep)[:max_symbols]]
    with np.errstate(invalid="ignore"):
        expected = (
            len(chosen),
            int(np.isfinite(chosen).sum()),
            int((chosen >= min_rating).sum()),
            int((np.abs(chosen - min_rating) < NEAR_POINTS).sum()),
        )
    got = _count(
        adv, sector, industry, sectors, industries, min_dv, max_symbols, ratings, min_rating, NEAR_POINTS
    )
    assert tuple(got) == expected


def test_duration_labels_per_source():
    import json

    import pandas as pd

    from technic_ml.predictors.features import duration_labels, duration_sources

    timed = lambda units, probe: json.dumps(  # noqa: E731
        {
            "timing": "thread-cpu/probe, median of interleaved runs",
            "work_units": units,
            "probe_seconds": probe,
        }
    )
    frame = pd.DataFrame(
        {
            "provenance_source": [
                "backfill",
                "backfill",
                "backfill",
                "scanner_log",
                None,
                "backfill",
                "backfill",
            ],
            "provenance_data_source": ["sample", "sample", "sample", None, None, "parquet:/data", "csv:/x"],
            "total_seconds": [0.002, 0.004, 0.003, 17.2, 12.0, 0.5, 0.002],
            "performance_extra": [
                timed(2.0, 0.001),
                timed(3.0, 0.003),
                None,  # one wall-clock reading, backfilled before scanner timing
                None,
                None,
                timed(4.0, 0.002),
                timed(1.0, 0.002),  # a data source that names no duration source
            ],
        }
    )
    sources = duration_sources(frame)
    assert sources.tolist() == ["sample", "sample", "sample", "scanner_log", "scanner_log", "parquet", "csv"]
    label, rates, why = duration_labels(frame, sources)
    # One rate per reference source (the median of its probes), so a batch's momentary speed is
    # not in the labels; the production log keeps its own seconds; the legacy reading has no label.
    assert rates == {"parquet": 0.002, "sample": 0.002}
    assert label[:2].tolist() == [pytest.approx(0.004), pytest.approx(0.006)]
    assert np.isnan(label[2]) and "wall-clock reading" in why[2]
    assert label[3:5].tolist() == [17.2, 12.0]
    assert label[5] == pytest.approx(0.008)
    assert why[[0, 1, 3, 4, 5]].tolist() == [""] * 5
    assert np.isnan(label[6]) and "unknown duration source 'csv'" in why[6]


def test_legacy_durations_leave_only_the_duration_predictor(sample_history, sample_market):
    from technic_ml.predictors.features import dataset_from_history
    from technic_ml.predictors.universe import UniverseStats

    frame = sample_history.frame().head(400).copy()
    frame.loc[frame.index[:100], "performance_extra"] = None  # as scanner 1.2.0 wrote them
    panel = Panel.from_market(sample_market, frame["timestamp"].max(), start=dt.date(2012, 1, 1))
    data = dataset_from_history(frame, UniverseStats(panel))
    assert len(data.for_target("count")) == len(data) == 400
    assert len(data.for_target("duration")) == 300
    assert np.isfinite(data.for_target("duration").duration).all()
    assert len(data.dropped) == 0
    assert len(data.no_duration) == 100
    assert data.no_duration["reason"].str.contains("one wall-clock reading").all()

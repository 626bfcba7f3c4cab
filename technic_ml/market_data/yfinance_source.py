"""Yahoo Finance through yfinance, bounded in time and written through to a local cache.

``YFinanceMarketData`` is the live market source (``TECHNIC_MARKET_SOURCE=yfinance``). It follows
the team's rule for yfinance: every call is bounded, an empty answer is a failure, and failures
are visible. How it works:

* **Bounded calls.** Each ``yfinance.download`` runs in a daemon thread; after ``timeout`` seconds
  the caller gets ``MarketDataError("yfinance timed out after Xs fetching [...]")`` and the thread
  is abandoned (a daemon thread does not keep the interpreter alive; a ``ThreadPoolExecutor``
  would, since its workers are joined at exit). yfinance's own per-request ``timeout`` is set to
  the same value so the abandoned thread ends too. Symbols are fetched in batches of
  ``batch_size``, one bounded call per batch; after a call that times out, raises or returns an
  empty frame (what yfinance returns when the network is down), the remaining batches are not
  attempted, so a dead network costs one ``timeout``, not one per batch.
* **Empty or partial answers are failures.** A symbol without rows in the answer is failed, named
  in the error.
* **Write-through cache.** Every successful download is merged into a market-data directory at
  ``cache_dir`` (the format of ``docs/market-data-format.md``), plus ``coverage.parquet`` recording,
  per series, the date range already fetched. A request the coverage spans (up to the last
  completed NYSE session of the as-of) is served from the cache with no network call, so later
  runs work offline. A longer history than ever fetched re-downloads that series from the new
  start; newer sessions are fetched from ``OVERLAP_SESSIONS`` before the cached end, and when the
  overlapping closes differ (a dividend or split re-adjusted Yahoo's history, since
  ``auto_adjust=True``) the series is re-downloaded in full so the cache never mixes bases.
  When Yahoo has not published the latest session yet, coverage stops at the last date it did
  publish, and the next call asks again.
* **Degrade visibly.** When a refresh fails but the cache holds older data for the failed series,
  the cached data is served, a WARNING is logged (``logging.getLogger(__name__)``) naming the
  series, the error and the last cached date, and the same text is appended to ``self.warnings``
  (market snapshots copy it into their ``degraded`` reasons). With no cached data, the error is
  raised.

Data: SPY is ticker ``SPY`` and VIX ``^VIX``; symbols are Yahoo tickers (``BRK-B``, not ``BRK.B``).
OHLC are adjusted for splits and dividends (``auto_adjust=True``), volume for splits.
``dollar_volume`` is ``close * volume``: an approximation built from the *adjusted* close, so older
bars of dividend payers understate the dollars actually traded by the cumulative dividend yield
(the shared real data stores raw close x raw volume instead).

Universe: ``universe_file`` (parquet or CSV) with columns ``symbol``, ``sector``, ``industry`` and
optionally ``name`` (the symbol is used when absent); other columns are ignored, so the shared
``symbols.parquet`` works as is and its GICS ``sector``/``industry`` are used (not ``yf_sector``/
``yf_industry``), the same taxonomy as the parquet source. The file is copied to the cache's
``symbols.parquet``, which is the universe when no file is configured.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa

from technic_ml.errors import MarketDataError, MarketDataUnavailable
from technic_ml.fsio import write_parquet_atomic
from technic_ml.market_data.base import UNIVERSE_COLUMNS, MarketData
from technic_ml.market_data.parquet_dir import (
    FILES,
    read_market_file,
    write_market_dir,
)
from technic_ml.nyse import sessions_between

__all__ = ["HISTORY_START", "SPY_TICKER", "VIX_TICKER", "YFinanceMarketData"]

log = logging.getLogger(__name__)

SPY_TICKER = "SPY"
VIX_TICKER = "^VIX"
#: First date fetched when a request has no ``start`` (the NYSE calendar's first session here).
HISTORY_START = dt.date(1990, 1, 2)
#: Cached sessions re-downloaded with each refresh to detect re-adjusted history.
OVERLAP_SESSIONS = 5
#: Relative close difference above which cached history is considered re-adjusted.
ADJUSTMENT_TOLERANCE = 1e-4
COVERAGE_FILE = "coverage.parquet"
_PRICE_FIELDS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
_KIND_TICKERS = {"spy": SPY_TICKER, "vix": VIX_TICKER}
#: How the messages of a failed call (``_call``) start: Yahoo was not reached or answered nothing.
_UNREACHABLE = ("yfinance timed out", "yfinance failed fetching", "yfinance returned an empty frame")

Downloader = Callable[..., pd.DataFrame | None]


def _names(tickers: Sequence[str], limit: int = 20) -> str:
    shown = list(tickers[:limit])
    more = f" (+{len(tickers) - limit} more)" if len(tickers) > limit else ""
    return f"{shown}{more}"


class YFinanceMarketData(MarketData):
    """Market data from Yahoo Finance via yfinance, with a write-through parquet cache."""

    is_sample = False

    def __init__(
        self,
        cache_dir: Path | str,
        *,
        universe_file: Path | str | None = None,
        timeout: float = 30.0,
        download: Downloader | None = None,
        batch_size: int = 20,
    ):
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise MarketDataError(f"timeout: received {timeout!r}; expected a positive number of seconds")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MarketDataError(f"batch_size: received {batch_size!r}; expected a positive integer")
        self.cache_dir = Path(cache_dir)
        self.universe_file = None if universe_file is None else Path(universe_file)
        self.timeout = float(timeout)
        self.batch_size = batch_size
        self.source = f"yfinance:{self.cache_dir}"
        #: Human-readable degradations (stale cache served after a failed refresh), oldest first.
        self.warnings: list[str] = []
        self._download = download
        self._universe: pd.DataFrame | None = None
        self._lock = threading.RLock()

    # -- universe ---------------------------------------------------------------------------------
    def _load_universe(self) -> pd.DataFrame:
        if self._universe is not None:
            return self._universe
        if self.universe_file is not None:
            universe = self._read_universe_file(self.universe_file)
            # The cache copy lets later runs without TECHNIC_UNIVERSE_FILE (or offline) use it.
            write_parquet_atomic(
                self.cache_dir / FILES["symbols"][0], pa.Table.from_pandas(universe, preserve_index=False)
            )
        elif (self.cache_dir / FILES["symbols"][0]).is_file():
            universe = read_market_file(self.cache_dir, "symbols")
        else:
            raise MarketDataError(
                f"{self.source}: no symbol universe; set TECHNIC_UNIVERSE_FILE to a parquet or CSV file with "
                f"columns symbol, sector, industry (name optional), e.g. "
                f"../shared/data/market/symbols.parquet, "
                f"or place a symbols.parquet in the cache directory {self.cache_dir}"
            )
        self._universe = universe
        return universe

    @staticmethod
    def _read_universe_file(path: Path) -> pd.DataFrame:
        suffix = path.suffix.lower()
        if not path.is_file():
            raise MarketDataError(
                f"universe file {path}: not found; expected a parquet or CSV file (TECHNIC_UNIVERSE_FILE)"
            )
        try:
            if suffix == ".parquet":
                frame = pd.read_parquet(path)
            elif suffix == ".csv":
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            else:
                raise MarketDataError(f"universe file {path}: suffix {suffix!r}; expected .parquet or .csv")
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise MarketDataError(f"universe file {path}: unreadable ({exc})") from exc
        required = ["symbol", "sector", "industry"]
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise MarketDataError(
                f"universe file {path}: columns {missing} missing; "
                f"expected columns {required} (name optional), "
                f"found {list(frame.columns)}"
            )
        frame = frame.copy()
        if "name" not in frame.columns:
            frame["name"] = frame["symbol"]
        if frame["symbol"].isna().any():
            raise MarketDataError(
                f"universe file {path}: {int(frame['symbol'].isna().sum())} rows without a symbol"
            )
        frame["symbol"] = frame["symbol"].astype(str).str.strip()
        duplicated = frame.loc[frame["symbol"].duplicated(), "symbol"].tolist()
        if duplicated:
            raise MarketDataError(f"universe file {path}: duplicated symbols {_names(duplicated)}")
        return frame[UNIVERSE_COLUMNS].reset_index(drop=True)

    # -- bars -------------------------------------------------------------------------------------
    def _load_bars(self, symbols: list[str] | None, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        tickers = list(self._load_universe()["symbol"]) if symbols is None else symbols
        return self._serve("prices", tickers, start, end)

    def _load_spy(self, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        return self._serve("spy", [SPY_TICKER], start, end)

    def _load_vix(self, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        return self._serve("vix", [VIX_TICKER], start, end)

    # -- the cache --------------------------------------------------------------------------------
    def _read_coverage(self) -> pd.DataFrame:
        path = self.cache_dir / COVERAGE_FILE
        columns = ["kind", "ticker", "start", "end", "fetched_at"]
        if not path.is_file():
            return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise MarketDataError(
                f"{path}: unreadable cache coverage file ({exc}); delete it to refetch"
            ) from exc
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise MarketDataError(f"{path}: columns {missing} missing; expected columns {columns}")
        return frame[columns]

    def _write_coverage(self, coverage: pd.DataFrame) -> None:
        coverage = coverage.sort_values(["kind", "ticker"], ignore_index=True)
        for col in ("start", "end"):
            coverage[col] = pd.to_datetime(coverage[col]).astype("datetime64[us]")
        coverage["fetched_at"] = pd.to_datetime(coverage["fetched_at"], utc=True)
        write_parquet_atomic(
            self.cache_dir / COVERAGE_FILE, pa.Table.from_pandas(coverage, preserve_index=False)
        )

    def _cached(
        self, kind: str, tickers: Sequence[str], start: dt.date | None, end: dt.date | None
    ) -> pd.DataFrame:
        """Cached rows of ``tickers`` as a long frame with a ``symbol`` column (for every kind)."""
        if not (self.cache_dir / FILES[kind][0]).is_file():
            columns = ["date", "symbol", *(c for c in FILES[kind][1] if c not in ("date", "symbol"))]
            empty = {c: pd.Series(dtype="float64") for c in columns}
            return pd.DataFrame(empty).astype({"date": "datetime64[us]", "symbol": "str"})
        if kind == "prices":
            return read_market_file(self.cache_dir, kind, symbols=tickers, start=start, end=end)
        frame = read_market_file(self.cache_dir, kind, start=start, end=end)
        return frame.assign(symbol=_KIND_TICKERS[kind])

    # -- serving ----------------------------------------------------------------------------------
    def _serve(self, kind: str, tickers: list[str], start: dt.date | None, end: dt.date) -> pd.DataFrame:
        with self._lock:
            if start is None or start <= end:  # an empty window needs no download
                self._refresh(kind, tickers, start or HISTORY_START, end)
            frame = self._cached(kind, tickers, start, end)
        if kind != "prices":
            frame = frame.drop(columns="symbol")
        return frame

    def _refresh(self, kind: str, tickers: list[str], start: dt.date, end: dt.date) -> None:
        coverage = self._read_coverage()
        mine = coverage[coverage["kind"] == kind].set_index("ticker")
        covered = {t: (pd.Timestamp(r.start).date(), pd.Timestamp(r.end).date()) for t, r in mine.iterrows()}

        # Plan: (fetch start, fetch end) -> tickers. Tails are fetched with an overlap of cached
        # sessions, to detect a re-adjusted history.
        plan: dict[tuple[dt.date, dt.date], list[str]] = {}
        for ticker in tickers:
            span = covered.get(ticker)
            if span is None:
                plan.setdefault((start, end), []).append(ticker)
            elif start < span[0]:
                plan.setdefault((start, max(end, span[1])), []).append(ticker)
            elif end > span[1]:
                plan.setdefault((self._overlap_start(span[1]), end), []).append(ticker)
        if not plan:
            return

        fetched: list[pd.DataFrame] = []
        new_spans: dict[str, tuple[dt.date, dt.date]] = {}
        failures: dict[str, str] = {}
        refetch: dict[tuple[dt.date, dt.date], list[str]] = {}
        broken: str | None = None  # set after a call-level failure: stop calling
        for (fstart, fend), group in plan.items():
            for i in range(0, len(group), self.batch_size):
                batch = group[i : i + self.batch_size]
                if broken is not None:
                    failures.update(
                        dict.fromkeys(batch, f"not attempted after an earlier failure ({broken})")
                    )
                    continue
                try:
                    rows, problems, data_end = self._fetch(kind, batch, fstart, fend)
                except MarketDataError as exc:
                    broken = str(exc)
                    failures.update(dict.fromkeys(batch, broken))
                    continue
                failures.update(problems)
                ok = [t for t in batch if t not in problems]
                readjusted = self._readjusted(
                    kind, rows, [t for t in ok if t in covered and fstart > covered[t][0]]
                )
                for t in ok:
                    if t in readjusted:
                        refetch.setdefault((covered[t][0], fend), []).append(t)
                        continue
                    first = min(fstart, covered[t][0]) if t in covered else fstart
                    last = max(data_end, covered[t][1]) if t in covered else data_end
                    new_spans[t] = (first, last)
                fetched.append(rows[~rows["symbol"].isin(readjusted)])

        # Series whose history Yahoo re-adjusted: download in full so cached rows share one basis.
        for (fstart, fend), group in refetch.items():
            for i in range(0, len(group), self.batch_size):
                batch = group[i : i + self.batch_size]
                if broken is not None:
                    skipped = (
                        f"adjusted history changed; full refetch not attempted after a failure ({broken})"
                    )
                    failures.update(dict.fromkeys(batch, skipped))
                    continue
                try:
                    rows, problems, data_end = self._fetch(kind, batch, fstart, fend)
                except MarketDataError as exc:
                    broken = str(exc)
                    failures.update(
                        dict.fromkeys(batch, f"adjusted history changed; full refetch failed: {broken}")
                    )
                    continue
                failures.update(
                    {t: f"adjusted history changed; full refetch: {why}" for t, why in problems.items()}
                )
                for t in batch:
                    if t not in problems:
                        new_spans[t] = (fstart, max(data_end, covered[t][1]))
                fetched.append(rows)

        self._store(kind, fetched, new_spans, coverage)
        if failures:
            self._report(kind, failures, covered)

    def _overlap_start(self, cached_end: dt.date) -> dt.date:
        recent = sessions_between(cached_end - dt.timedelta(days=3 * OVERLAP_SESSIONS), cached_end)
        return recent[-OVERLAP_SESSIONS].date() if len(recent) >= OVERLAP_SESSIONS else cached_end

    def _readjusted(self, kind: str, rows: pd.DataFrame, tickers: list[str]) -> set[str]:
        """Tickers whose re-downloaded overlap closes differ from the cached closes."""
        if not tickers:
            return set()
        fresh = rows[rows["symbol"].isin(tickers)]
        if fresh.empty:
            return set()
        old = self._cached(kind, tickers, fresh["date"].min().date(), fresh["date"].max().date())
        both = fresh[["symbol", "date", "close"]].merge(
            old[["symbol", "date", "close"]].astype({"date": fresh["date"].dtype}),
            on=["symbol", "date"],
            suffixes=("_new", "_old"),
        )
        ratio = (both["close_new"].astype(float) / both["close_old"].astype(float) - 1.0).abs()
        return set(both.loc[ratio > ADJUSTMENT_TOLERANCE, "symbol"])

    def _store(
        self,
        kind: str,
        fetched: list[pd.DataFrame],
        new_spans: dict[str, tuple[dt.date, dt.date]],
        coverage: pd.DataFrame,
    ) -> None:
        if not new_spans:
            return
        rows = pd.concat(fetched, ignore_index=True)
        rows = rows[rows["symbol"].isin(new_spans)]
        if kind == "prices":
            rows = rows.assign(dollar_volume=rows["close"] * rows["volume"])
            write_market_dir(self.cache_dir, prices=rows)
        else:
            write_market_dir(self.cache_dir, **{kind: rows.drop(columns="symbol")})
        now = pd.Timestamp.now(tz="UTC")
        updates = pd.DataFrame(
            [
                {
                    "kind": kind,
                    "ticker": t,
                    "start": pd.Timestamp(s),
                    "end": pd.Timestamp(e),
                    "fetched_at": now,
                }
                for t, (s, e) in new_spans.items()
            ]
        )
        keep = coverage[~((coverage["kind"] == kind) & coverage["ticker"].isin(new_spans))]
        self._write_coverage(pd.concat([keep, updates], ignore_index=True) if len(keep) else updates)

    def _report(
        self, kind: str, failures: dict[str, str], covered: dict[str, tuple[dt.date, dt.date]]
    ) -> None:
        """Degrade (warn, serve cache) for failed series with cached data; raise for the others."""
        uncached = [t for t in failures if t not in covered]
        stale: dict[tuple[str, dt.date], list[str]] = {}
        for t, error in failures.items():
            if t in covered:
                stale.setdefault((error, covered[t][1]), []).append(t)
        for (error, last), group in stale.items():
            message = (
                f"yfinance refresh failed for {kind} {_names(group)}: {error}; "
                f"serving cached data through {last}"
            )
            log.warning(message)
            self.warnings.append(message)
        if uncached:
            errors = sorted({failures[t] for t in uncached})
            # Every cause a failed call to Yahoo (not an unknown symbol): worth retrying later.
            unreachable = all(e.startswith(_UNREACHABLE) for e in errors)
            raise (MarketDataUnavailable if unreachable else MarketDataError)(
                f"{self.source}: no data for {kind} {_names(uncached)} and nothing cached; "
                f"{'; '.join(errors)}"
            )

    # -- one bounded yfinance call ----------------------------------------------------------------
    def _downloader(self) -> Downloader:
        if self._download is None:
            try:
                import yfinance
            except ImportError as exc:
                raise MarketDataError(
                    "package 'yfinance' is not installed; install it or use "
                    "TECHNIC_MARKET_SOURCE=sample or parquet"
                ) from exc
            # yfinance keeps cookie and timezone caches under ~/.cache by default; keep every file the
            # program writes under the data root instead.
            state = self.cache_dir / "yfinance-state"
            state.mkdir(parents=True, exist_ok=True)
            yfinance.set_tz_cache_location(str(state))
            self._download = yfinance.download
        return self._download

    def _call(self, tickers: list[str], start: dt.date, end: dt.date) -> pd.DataFrame:
        download = self._downloader()
        outcome: dict[str, object] = {}

        def run() -> None:
            try:
                outcome["frame"] = download(
                    list(tickers),
                    start=start.isoformat(),
                    end=(end + dt.timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
                    auto_adjust=True,
                    actions=False,
                    progress=False,
                    threads=False,
                    group_by="column",
                    multi_level_index=True,
                    timeout=self.timeout,
                )
            except BaseException as exc:  # reported to the caller below
                outcome["error"] = exc

        worker = threading.Thread(target=run, name=f"yfinance-download-{tickers[0]}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise MarketDataUnavailable(
                f"yfinance timed out after {self.timeout:g}s fetching {_names(tickers)}"
            )
        if "error" in outcome:
            exc = outcome["error"]
            raise MarketDataUnavailable(
                f"yfinance failed fetching {_names(tickers)}: {type(exc).__name__}: {exc}"
            ) from exc  # type: ignore[misc]
        frame = outcome.get("frame")
        if frame is None or not isinstance(frame, pd.DataFrame) or frame.empty:
            raise MarketDataUnavailable(
                f"yfinance returned an empty frame fetching {_names(tickers)} ({start}..{end}); "
                f"the network may be down or Yahoo unreachable"
            )
        return frame

    def _fetch(
        self, kind: str, tickers: list[str], start: dt.date, end: dt.date
    ) -> tuple[pd.DataFrame, dict[str, str], dt.date | None]:
        """Download ``tickers`` over [start, end].

        Returns the long rows of the usable tickers, ``{ticker: reason}`` for the unusable ones
        (no rows, or rows with a close but no open/high/low/volume) and the last date in the answer
        (None without usable rows). Only a failed call (time-out, exception, empty frame, unexpected
        shape) raises ``MarketDataError``: that is what stops the remaining batches.
        """
        frame = self._call(tickers, start, end)
        rows = _long_rows(frame, tickers, need_volume=kind != "vix")
        rows = rows[(rows["date"] >= pd.Timestamp(start)) & (rows["date"] <= pd.Timestamp(end))]
        problems: dict[str, str] = {}
        fields = ["open", "high", "low", "close"] + (["volume"] if kind != "vix" else [])
        incomplete = rows[fields].isna().any(axis=1)
        for t, count in rows.loc[incomplete, "symbol"].value_counts().items():
            problems[t] = (
                f"yfinance returned {count} rows for {t!r} with a close but missing open/high/low/volume"
            )
        present = set(rows["symbol"])
        for t in tickers:
            if t not in present:
                problems[t] = (
                    f"yfinance returned no rows for {t!r} ({start}..{end}); the symbol may be unknown or "
                    f"delisted on Yahoo"
                )
        rows = rows[~rows["symbol"].isin(problems)]
        rows = rows.drop(columns="volume") if kind == "vix" else rows.astype({"volume": "int64"})
        last = rows["date"].max().date() if len(rows) else None
        return rows.reset_index(drop=True), problems, last


def _long_rows(frame: pd.DataFrame, tickers: list[str], *, need_volume: bool) -> pd.DataFrame:
    """yfinance 1.x ``download(group_by='column')`` output -> date, symbol, open, high, low, close, volume.

    The frame has a DatetimeIndex ("Date") and MultiIndex columns (Price, Ticker) with Price in
    Close/High/Low/Open/Volume (plus "Adj Close" when a ticker failed). Tickers come back
    upper-cased; they are mapped back to the requested spelling. Dates without a close for a
    ticker (the union index of several tickers) are dropped.
    """
    columns = frame.columns
    if not isinstance(columns, pd.MultiIndex) or columns.nlevels != 2:
        raise MarketDataError(
            f"yfinance: unexpected frame columns {list(columns)[:8]}; expected MultiIndex (Price, Ticker)"
        )
    price_level = columns.names.index("Price") if "Price" in columns.names else 0
    ticker_level = 1 - price_level
    fields = set(columns.get_level_values(price_level))
    needed = [f for f in _PRICE_FIELDS if f != "Volume" or need_volume]
    missing = [f for f in needed if f not in fields]
    if missing:
        raise MarketDataError(f"yfinance: price fields {missing} missing; got {sorted(fields)}")
    long = frame.stack(level=ticker_level)
    long.index = long.index.set_names(["date", "ticker"])
    long = long.reset_index()
    if "Volume" not in long.columns:
        long["Volume"] = float("nan")
    long = long.rename(columns=_PRICE_FIELDS)
    long = long.dropna(subset=["close"])
    dates = pd.to_datetime(long["date"])
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    by_upper = {t.upper(): t for t in tickers}
    out = pd.DataFrame(
        {
            "date": dates.dt.normalize(),
            "symbol": long["ticker"].astype(str).str.upper().map(by_upper),
            **{col: long[col].astype("float64") for col in ("open", "high", "low", "close", "volume")},
        }
    )
    out = out.dropna(subset=["symbol"])
    return out.sort_values(["symbol", "date"], ignore_index=True)

"""A market-data directory on disk: the project's storage format, read point-in-time and written atomically.

A market-data directory holds four parquet files (``prices.parquet``, ``symbols.parquet``,
``spy.parquet``, ``vix.parquet``; see ``docs/market-data-format.md``). It is the format of the real
data in ``../shared/data/market``, of the yfinance write-through cache and of the directories the
tests build. ``ParquetMarketData`` serves it through the ``MarketData`` interface;
``write_market_dir`` creates or merges one.

Reads push the request down to pyarrow: only the needed columns are read, and the symbol and date
bounds become a dataset filter, so row groups whose statistics cannot match are skipped (the
writer keeps ``prices.parquet`` sorted by symbol, then date, so each row group spans a narrow range
of symbols). The small files (symbols, SPY, VIX) are read once per instance and kept.

Writes go to a temporary file in the same directory, then ``os.replace`` it over the target: a
reader sees the old file or the new one, never a torn one. Two processes merging into the same
file concurrently are last-writer-wins for that file (rows of the losing writer are not merged).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from technic_ml.errors import MarketDataError
from technic_ml.fsio import write_parquet_atomic
from technic_ml.market_data.base import BAR_COLUMNS, SPY_COLUMNS, UNIVERSE_COLUMNS, VIX_COLUMNS, MarketData

__all__ = ["FILES", "ParquetMarketData", "read_market_file", "write_market_dir"]

#: kind -> (file name, required columns, key columns). Extra columns are allowed and kept.
FILES: dict[str, tuple[str, list[str], list[str]]] = {
    "prices": ("prices.parquet", BAR_COLUMNS, ["symbol", "date"]),
    "symbols": ("symbols.parquet", UNIVERSE_COLUMNS, ["symbol"]),
    "spy": ("spy.parquet", SPY_COLUMNS, ["date"]),
    "vix": ("vix.parquet", VIX_COLUMNS, ["date"]),
}
_EXPECTED_FILES = ", ".join(name for name, _, _ in FILES.values())
_FORMAT_HINT = f"a market-data directory holds {_EXPECTED_FILES} (see docs/market-data-format.md)"

# Rows per row group of prices.parquet: the shared data uses 256k, which keeps row-group pruning
# on symbol useful (about 55 symbols x 20 years per group) without tiny groups.
PRICES_ROW_GROUP_SIZE = 256_000


def _path(root: Path, kind: str) -> Path:
    return Path(root) / FILES[kind][0]


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except FileNotFoundError:
        raise MarketDataError(f"{path}: file not found; {_FORMAT_HINT}") from None
    except (pa.ArrowException, OSError) as exc:
        raise MarketDataError(f"{path}: not a readable parquet file ({exc}); {_FORMAT_HINT}") from exc


def _check_schema(path: Path, kind: str, schema: pa.Schema) -> None:
    required = FILES[kind][1]
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise MarketDataError(f"{path}: columns {missing} missing; expected columns {required}")
    if "date" in required and not pa.types.is_timestamp(schema.field("date").type):
        raise MarketDataError(
            f"{path}: column 'date' has type {schema.field('date').type}; expected a naive timestamp"
        )
    if "date" in required and schema.field("date").type.tz is not None:
        raise MarketDataError(
            f"{path}: column 'date' is timezone-aware ({schema.field('date').type}); "
            "expected naive session dates"
        )


def read_market_file(
    root: Path,
    kind: str,
    *,
    columns: Sequence[str] | None = None,
    symbols: Sequence[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """Read one file of a market-data directory, pushing column, symbol and date selection down.

    ``kind`` is one of ``FILES`` (prices, symbols, spy, vix). ``columns`` defaults to the required
    columns of that kind. Raises ``MarketDataError`` naming the path when the file is missing,
    unreadable or lacks a required column.
    """
    if kind not in FILES:
        raise MarketDataError(f"kind: received {kind!r}; expected one of {sorted(FILES)}")
    path = _path(root, kind)
    schema = _schema(path)
    _check_schema(path, kind, schema)
    columns = list(FILES[kind][1] if columns is None else columns)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise MarketDataError(f"{path}: columns {missing} missing; file has columns {schema.names}")

    expr = None
    if symbols is not None:
        expr = pc.field("symbol").isin(pa.array(list(symbols), type=schema.field("symbol").type))
    date_type = schema.field("date").type if "date" in schema.names else None
    for bound, op in ((start, "ge"), (end, "le")):
        if bound is None or date_type is None:
            continue
        scalar = pa.scalar(pd.Timestamp(bound).to_pydatetime(), type=date_type)
        term = pc.field("date") >= scalar if op == "ge" else pc.field("date") <= scalar
        expr = term if expr is None else expr & term
    try:
        table = ds.dataset(path, format="parquet").to_table(columns=columns, filter=expr)
    except (pa.ArrowException, OSError) as exc:
        raise MarketDataError(f"{path}: read failed ({exc})") from exc
    return table.to_pandas()


class ParquetMarketData(MarketData):
    """Market data served from a market-data directory (see the module docstring).

    The directory and its four files are checked when the instance is created (missing directory,
    file or column -> ``MarketDataError`` naming the path and what was expected). Symbols, SPY and
    VIX are cached on first use; price bars are read on demand with predicate pushdown.
    Price columns keep the dtype stored on disk (float32 in the shared data).
    """

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser().resolve()
        self.source = f"parquet:{self.root}"
        #: Degradations noticed while serving (none for this source; kept for a uniform interface).
        self.warnings: list[str] = []
        if not self.root.is_dir():
            raise MarketDataError(
                f"market-data directory {self.root}: not found or not a directory; {_FORMAT_HINT}"
            )
        missing = [name for name, _, _ in FILES.values() if not (self.root / name).is_file()]
        if missing:
            raise MarketDataError(
                f"market-data directory {self.root}: files {missing} missing; {_FORMAT_HINT}"
            )
        for kind in FILES:
            path = _path(self.root, kind)
            _check_schema(path, kind, _schema(path))
        self._small: dict[str, pd.DataFrame] = {}

    def _cached(self, kind: str) -> pd.DataFrame:
        if kind not in self._small:
            self._small[kind] = read_market_file(self.root, kind)
        return self._small[kind]

    def _load_universe(self) -> pd.DataFrame:
        return self._cached("symbols")

    def _load_bars(self, symbols: list[str] | None, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        if symbols is not None:
            known = set(self._cached("symbols")["symbol"])
            unknown = [s for s in symbols if s not in known]
            if unknown:
                raise MarketDataError(
                    f"{self.source}: symbols {unknown[:20]}{' ...' if len(unknown) > 20 else ''} are not in "
                    f"{_path(self.root, 'symbols')}; expected symbols of the universe"
                )
        return read_market_file(self.root, "prices", symbols=symbols, start=start, end=end)

    def _load_spy(self, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        return self._cached("spy")

    def _load_vix(self, start: dt.date | None, end: dt.date) -> pd.DataFrame:
        return self._cached("vix")


# -- writing ------------------------------------------------------------------------------------


def _normalize(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Check required columns and bring dtypes to the documented format (a copy; input untouched)."""
    name, required, keys = FILES[kind]
    if not isinstance(frame, pd.DataFrame):
        raise MarketDataError(f"{kind}: received {type(frame).__name__}; expected a pandas DataFrame")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MarketDataError(f"{kind}: columns {missing} missing; expected columns {required} for {name}")
    out = frame.reset_index(drop=True).copy()
    if "date" in out.columns:
        dates = pd.to_datetime(out["date"])
        if dates.dt.tz is not None:
            raise MarketDataError(
                f"{kind}: column 'date' is timezone-aware ({dates.dt.tz}); expected naive session dates"
            )
        if dates.isna().any():
            raise MarketDataError(f"{kind}: column 'date' has {int(dates.isna().sum())} missing values")
        out["date"] = dates.dt.normalize().astype("datetime64[us]")
    if "symbol" in out.columns:
        if out["symbol"].isna().any():
            raise MarketDataError(
                f"{kind}: column 'symbol' has {int(out['symbol'].isna().sum())} missing values"
            )
        out["symbol"] = out["symbol"].astype("str")
    if "volume" in out.columns:
        vol = out["volume"]
        if vol.isna().any():
            raise MarketDataError(
                f"{kind}: column 'volume' has {int(vol.isna().sum())} missing values; "
                "expected whole share counts"
            )
        out["volume"] = vol.astype("int64")
    duplicated = out.duplicated(keys, keep=False)
    if duplicated.any():
        sample = out.loc[duplicated, keys].head(5).to_dict("records")
        raise MarketDataError(f"{kind}: {int(duplicated.sum())} rows share a key {keys}, e.g. {sample}")
    return out


def write_market_dir(
    root: Path | str,
    *,
    prices: pd.DataFrame | None = None,
    symbols: pd.DataFrame | None = None,
    spy: pd.DataFrame | None = None,
    vix: pd.DataFrame | None = None,
) -> Path:
    """Create or merge into the market-data directory ``root``; returns ``root``.

    Each frame given is merged into its file: rows whose key (symbol+date for prices, symbol for
    symbols, date for spy/vix) already exists are replaced by the new rows, others are kept. Each
    file is written atomically. Frames are validated first (required columns, no missing dates or
    volumes, no duplicated keys), so a bad frame raises ``MarketDataError`` and writes nothing.
    """
    root = Path(root)
    frames = {"prices": prices, "symbols": symbols, "spy": spy, "vix": vix}
    normalized = {kind: _normalize(kind, f) for kind, f in frames.items() if f is not None}
    if root.exists() and not root.is_dir():
        raise MarketDataError(f"market-data directory {root}: exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    for kind, new in normalized.items():
        path = _path(root, kind)
        keys = FILES[kind][2]
        if path.exists():
            old = read_market_file(root, kind, columns=pq.read_schema(path).names)
            old = _normalize(kind, old)
            # Rows of ``new`` win: drop old rows with the same key, then append.
            old_keys = pd.MultiIndex.from_frame(old[keys]) if len(keys) > 1 else pd.Index(old[keys[0]])
            new_keys = pd.MultiIndex.from_frame(new[keys]) if len(keys) > 1 else pd.Index(new[keys[0]])
            kept = old.loc[~old_keys.isin(new_keys)]
            merged = pd.concat([kept, new], ignore_index=True) if len(kept) else new
        else:
            merged = new
        merged = merged.sort_values(keys, kind="stable", ignore_index=True)
        table = pa.Table.from_pandas(merged, preserve_index=False)
        write_parquet_atomic(
            path,
            table,
            compression="zstd",
            row_group_size=PRICES_ROW_GROUP_SIZE if kind == "prices" else None,
        )
    return root

"""Shared fixtures: the real DRR day (2024-09-05) as one lake partition, read straight from the raw CSVs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pytest

from dpsim import schema
from dpsim.config import Config, load_config, parse_hhmm
from dpsim.lake import PartitionKey
from dpsim.tradingtime import trading_date

# shared/ sits beside the repository (locally and in CI)
DRR_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "drr-2024-09-05"
DRR_KEY = PartitionKey(110621, date(2024, 9, 5))

# Raw header (lower-cased) -> canonical name, for the headers of this drop that are not canonical yet.
_ALIASES: dict[str, dict[str, str]] = {
    "orders": {},
    "trades": {
        "tradetime": schema.TIMESTAMP,
        "orderid": schema.ORDER_ID,
        "securitycode": schema.SECURITY_CODE,
    },
    "nbbo": {"bidprice": schema.BID, "offerprice": schema.OFFER, "orderbookid": schema.SECURITY_CODE},
}


def _read_kind(kind: schema.RawKind) -> pl.DataFrame:
    """One raw file as the lake would hold it: canonical names, lake dtypes, only rows of DRR_KEY's trading date."""
    path = DRR_DIR / f"{kind.name}.csv.gz"
    header = pl.read_csv(path, n_rows=0).columns
    rename = {h: _ALIASES[kind.name].get(h.strip().lower(), h.strip().lower()) for h in header}
    dtypes = schema.polars_schema(kind.arrow_schema)
    overrides = {raw: dtypes[canon] for raw, canon in rename.items() if canon in dtypes}
    df = pl.read_csv(path, schema_overrides=overrides).rename(rename)
    day = trading_date(pl.col(schema.TIMESTAMP), "Australia/Sydney", parse_hhmm("19:00"))
    lake: pa.Schema = kind.lake_schema
    return df.filter(day == DRR_KEY.date).select(lake.names).cast(pl.Schema(schema.polars_schema(lake)))


@pytest.fixture(scope="session")
def drr_partition() -> dict[str, Any]:
    """{orders, trades, nbbo}: LazyFrames of the DRR partition (lake columns, no partition keys) + `key`."""
    frames: dict[str, Any] = {
        k.name: _read_kind(k).lazy() for k in (schema.ORDERS, schema.TRADES, schema.NBBO)
    }
    frames["key"] = DRR_KEY
    return frames


# ---- tiny hand-written frames ---------------------------------------------------------------------
EventRows = Callable[[Sequence[dict[str, Any]]], pl.LazyFrame]

_EVENT_DEFAULTS: dict[str, Any] = {
    "exchange": 3,
    "price": 0,
    "side": 1,
    "changereason": 6,
    "orderstatus": 1,
    "quantity": 100,
    "leavesquantity": 100,
    "ordertype": 1,
    "exchangeordertype": 2048,
    "national_bid": 3350,
    "national_offer": 3360,
    "bid": 3350,
    "offer": 3360,
    "participantid": 1,
    "preferenceonly": 0,
    "midtick": 0,
    "singlefillminimumquantity": 2,
    "minimumquantity": 0,
    "crossingkey": 0,
    "totalmatchedquantity": 0,
    "shortsellquantity": 0,
    "triggercondition": 0,
    "timevaliditydecoded": "Rest of Day",
    "timevalidity": 256,
}
_TRADE_DEFAULTS: dict[str, Any] = {
    "exchange": 3,
    "tradedate": "2024-09-05",
    "dealsource": 1,
    "dealsourcedecoded": "",
    "exchangeinfo": "",
    "matchgroupid": 1,
    "nationalbidpricesnapshot": 3350,
    "nationalofferpricesnapshot": 3360,
    "tradeprice": 3360,
    "quantity": 100,
    "side": 1,
    "sidedecoded": "",
    "participantid": 1,
    "passiveaggressive": 1,
}


_QUOTE_DEFAULTS: dict[str, Any] = {
    "partition": 1,
    "tradedate": 1_725_456_000_000_000_000,  # as the DRR export stamps 2024-09-05
    "creationtime": None,
    "userid": None,
    "runid": None,
}


def _frame(kind: schema.RawKind, rows: Sequence[dict[str, Any]], defaults: dict[str, Any]) -> pl.LazyFrame:
    """Rows given as dicts of the columns that matter; sequence and row_num default to the row position."""
    lake = schema.polars_schema(kind.lake_schema)
    auto = {schema.SEQUENCE: lambda i: i + 1, "row_num": lambda i: i + 1}
    full = [
        {
            c: r[c] if c in r else defaults[c] if c in defaults else auto[c](i) if c in auto else None
            for c in lake
        }
        for i, r in enumerate(rows)
    ]
    return pl.DataFrame(full, schema=lake).lazy()


@pytest.fixture
def make_events() -> EventRows:
    """Order events (orders lake columns): give order_id, timestamp and what differs from the defaults."""
    return lambda rows: _frame(schema.ORDERS, rows, _EVENT_DEFAULTS)


@pytest.fixture
def make_trades() -> EventRows:
    """Trade rows (trades lake columns): give order_id, timestamp and what differs from the defaults."""
    return lambda rows: _frame(schema.TRADES, rows, _TRADE_DEFAULTS)


@pytest.fixture
def make_quotes() -> EventRows:
    """NBBO quotes (nbbo lake columns): give timestamp, bid, offer; sequence defaults to the position."""
    return lambda rows: _frame(schema.NBBO, rows, _QUOTE_DEFAULTS)


def _local_ns(text: str, nanos: int = 0, tz: str = "Australia/Sydney") -> int:
    dt = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz))
    return int(dt.timestamp()) * 1_000_000_000 + nanos


@pytest.fixture
def local_ns() -> Callable[..., int]:
    """ns since epoch UTC of a local wall-clock time 'YYYY-MM-DD HH:MM:SS' (+ extra nanoseconds), DST-aware."""
    return _local_ns


@pytest.fixture
def cfg(tmp_path: Path) -> Callable[..., Config]:
    """cfg(overrides) = the built-in defaults (an empty YAML file, not conf/default.yaml) plus dotted-key
    overrides such as {"time.max_quote_age_s": 30}."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    return lambda overrides=None: load_config(empty, overrides)


@pytest.fixture
def at(local_ns: Callable[..., int]) -> Callable[..., int]:
    """at("10:30:00", nanos) = ns UTC of that local time on 2024-09-05."""
    return lambda hms, nanos=0: local_ns(f"2024-09-05 {hms}", nanos)


# ---- the DRR day through the CLI, once per session (report and notebook tests) ------------------------
REPO = Path(__file__).resolve().parents[1]


def run_dpsim(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> Any:
    """`python -m dpsim ARGS` in a fresh process (CI=1: plain tables); fails the test on a non-zero exit."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "dpsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1", **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def drr_cli_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real DRR day shredded and processed (all scenarios, aggregates) by the CLI into a fresh lake."""
    if not DRR_DIR.exists():
        pytest.skip("shared DRR data not present")
    lake = tmp_path_factory.mktemp("drr-cli") / "lake-drr"
    run_dpsim("shred", "--config", "conf/drr.yaml", "--lake", str(lake))
    run_dpsim("process", "--config", "conf/drr.yaml", "--lake", str(lake), "--workers", "1")
    return lake

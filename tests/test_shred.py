"""shred: raw CSV -> hive partitions, rejects with reasons, manifest, idempotence (README "The lake", docs/methodology.md §1)."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from upath import UPath

import dpsim.shred as shred_module
import dpsim.shred.parse as shred_parse
import dpsim.shred.read as shred_read
import dpsim.shred.stream as shred_stream
import dpsim.shred.write as shred_write
from dpsim import schema
from dpsim.config import Aliases, Columns, Config, Shred, TimeConfig
from dpsim.errors import InputError
from dpsim.lake import Lake, PartitionKey, manifests, source_id
from dpsim.shred import SourceResult, shred

REPO = Path(__file__).resolve().parents[1]
DRR = Path(__file__).resolve().parents[2] / "shared" / "data" / "drr-2024-09-05"
NO_INPUTS: dict[str, list[str]] = {k: [] for k in shred_module.KINDS}
SYD = ZoneInfo("Australia/Sydney")
ORDERS_HEADER = list(schema.ORDERS.columns)
TRADES_HEADER = [
    "EXCHANGE",
    "sequence",
    "tradedate",
    "tradetime",
    "securitycode",
    "orderid",
    "dealsource",
    "dealsourcedecoded",
    "exchangeinfo",
    "matchgroupid",
    "nationalbidpricesnapshot",
    "nationalofferpricesnapshot",
    "tradeprice",
    "quantity",
    "side",
    "sidedecoded",
    "participantid",
    "passiveaggressive",
    "row_num",
]
NBBO_HEADER = [
    "partition",
    "sequence",
    "tradedate",
    "bidprice",
    "creationtime",
    "offerprice",
    "orderbookid",
    "timestamp",
    "userid",
    "runid",
]


def local_ns(text: str) -> int:
    """ns UTC of a Sydney wall-clock time (zoneinfo picks AEST or AEDT)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=SYD).timestamp()) * 1_000_000_000


def utc_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


T0 = local_ns("2024-09-05 10:00:00")
ORDER_DEFAULTS: dict[str, Any] = {
    "order_id": 7904794000131579632,
    "exchange": 3,
    "timestamp": T0,
    "security_code": 110621,
    "price": 3355,
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
    "participantid": 54,
    "preferenceonly": 0,
    "midtick": 2,
    "singlefillminimumquantity": 2,
    "minimumquantity": 0,
    "sequence": 1,
    "crossingkey": 0,
    "totalmatchedquantity": 0,
    "shortsellquantity": 0,
    "triggercondition": 0,
    "timevaliditydecoded": "Rest of Day",
    "row_num": 1,
    "timevalidity": 256,
}
TRADE_DEFAULTS: dict[str, Any] = {
    "EXCHANGE": 3,
    "sequence": 1,
    "tradedate": "2024-09-05",
    "tradetime": T0,
    "securitycode": 110621,
    "orderid": 7904794000124046634,
    "dealsource": 1,
    "dealsourcedecoded": "Continuous Lit",
    "exchangeinfo": "ON Market",
    "matchgroupid": 7904794000123498546,
    "nationalbidpricesnapshot": 3330,
    "nationalofferpricesnapshot": 3340,
    "tradeprice": 3340,
    "quantity": 10,
    "side": 1,
    "sidedecoded": "Buy",
    "participantid": 8,
    "passiveaggressive": 0,
    "row_num": 1,
}
NBBO_DEFAULTS: dict[str, Any] = {
    "partition": 1,
    "sequence": 1,
    "tradedate": 1725456000000000000,
    "bidprice": 3360,
    "creationtime": T0,
    "offerprice": 3370,
    "orderbookid": 110621,
    "timestamp": T0,
    "userid": 262826,
    "runid": 1751364092,
}


def line(defaults: dict[str, Any], **values: Any) -> str:
    row = {**defaults, **values}
    return ",".join(str(v) for v in row.values())


def order(**values: Any) -> str:
    return line(ORDER_DEFAULTS, **values)


def write(path: Path, header: list[str], lines: Sequence[str | bytes], *, final_newline: bool = True) -> Path:
    """A CSV file (.gz / .zst by suffix); lines may be bytes to inject invalid UTF-8."""
    rows = [ln.encode() if isinstance(ln, str) else ln for ln in [",".join(header), *lines]]
    data = b"\n".join(rows) + (b"\n" if final_newline else b"")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    elif path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def run(lake: Path, cfg: Config | None = None, *, force: bool = False, **inputs: Any) -> list[SourceResult]:
    given_inputs = {k: [str(p) for p in (v if isinstance(v, list) else [v])] for k, v in inputs.items()}
    return shred(cfg or Config(), Lake(lake), inputs={**NO_INPUTS, **given_inputs}, force=force)


def shred_cfg(**shred_values: Any) -> Config:
    return replace(Config(), shred=replace(Shred(), **shred_values))


def read_part(lake: Path, kind: str, code: int, day: str) -> pl.DataFrame:
    files = Lake(lake).partition_files(kind, PartitionKey(code, date.fromisoformat(day)))
    assert files, f"no files in {kind} {code}/{day}"
    return pl.concat([pl.read_parquet(str(f)) for f in files])


def rejects(lake: Path, kind: str, path: Path) -> pl.DataFrame:
    return pl.read_parquet(str(Lake(lake).rejects_path(kind, source_id(path))))


def lake_files(lake: Path) -> dict[str, int]:
    """Every visible lake file -> mtime_ns."""
    return {str(p.relative_to(lake)): p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()}


def part_files(lake: Path, kind: str = "orders") -> list[Path]:
    return sorted((lake / kind).rglob("*.parquet"))


def is_sorted(df: pl.DataFrame) -> bool:
    return df.select(["timestamp", "sequence"]).equals(
        df.select(["timestamp", "sequence"]).sort(["timestamp", "sequence"], maintain_order=True)
    )


def counts_ok(r: SourceResult) -> bool:
    return r.rows_read == r.rows_written + r.rows_rejected


# ---- the real DRR drop ------------------------------------------------------------------------------

drr = pytest.mark.skipif(not DRR.is_dir(), reason="DRR drop not found beside the repository")


@pytest.fixture(scope="module")
def drr_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SourceResult]]:
    lake = tmp_path_factory.mktemp("drr") / "lake"
    results = run(lake, orders=DRR / "orders.csv.gz", trades=DRR / "trades.csv.gz", nbbo=DRR / "nbbo.csv.gz")
    return lake, results


@drr
def test_drr_every_row_accounted_for(drr_lake: tuple[Path, list[SourceResult]]) -> None:
    lake, results = drr_lake
    by_kind = {r.kind: r for r in results}
    expected = {"orders": 28_452, "trades": 8_302, "nbbo": 380}
    for kind, n in expected.items():
        r = by_kind[kind]
        assert (r.status, r.rows_read, r.rows_written, r.rows_rejected) == ("shredded", n, n, 0), r
        # Day roll (docs/methodology.md §1): the 52 order rows and 10 quotes stamped 2024-09-04 21:22 local are the
        # overnight reload for 2024-09-05, so everything lands in one partition.
        assert r.partitions == ["110621/2024-09-05"]
        assert read_part(lake, kind, 110621, "2024-09-05").height == n


@drr
def test_drr_evening_rows_stay_on_the_calendar_date_without_the_roll(tmp_path: Path) -> None:
    """The README's split (52 rows on local 2024-09-04, 28,400 on 09-05) is the plain local date: a roll
    later than 21:22 reproduces it, which shows the 52 rows are the 21:22 reload."""
    cfg = replace(Config(), time=TimeConfig(day_roll="23:59"))
    (r,) = run(tmp_path, cfg, orders=DRR / "orders.csv.gz")
    assert r.partitions == ["110621/2024-09-04", "110621/2024-09-05"]
    assert read_part(tmp_path, "orders", 110621, "2024-09-04").height == 52
    assert read_part(tmp_path, "orders", 110621, "2024-09-05").height == 28_400


@drr
def test_drr_ids_exact_sorted_and_duplicate_line_kept(drr_lake: tuple[Path, list[SourceResult]]) -> None:
    lake, _ = drr_lake
    orders = read_part(lake, "orders", 110621, "2024-09-05")
    with gzip.open(DRR / "orders.csv.gz", "rt") as f:
        raw_ids = sorted(int(ln.split(",", 1)[0]) for ln in f.read().splitlines()[1:])
    assert sorted(orders["order_id"].to_list()) == raw_ids  # 19-digit ids, compared as Python ints
    assert 7904794000131579632 in raw_ids
    dup = orders.filter((pl.col("order_id") == 7904794000131579632) & (pl.col("sequence") == 49953864))
    assert dup.height == 2  # the duplicated raw line is a real row
    for kind in ("orders", "trades", "nbbo"):
        assert is_sorted(read_part(lake, kind, 110621, "2024-09-05"))
    trades = read_part(lake, "trades", 110621, "2024-09-05")
    assert trades.schema == pl.Schema(schema.polars_schema(schema.TRADES.lake_schema))
    last = trades.filter(pl.col("row_num") == 8302)  # the last line has no final newline
    assert last["order_id"].to_list() == [7904794000132543971]
    nbbo = read_part(lake, "nbbo", 110621, "2024-09-05")
    evening = nbbo.filter(pl.col("timestamp") < local_ns("2024-09-05 00:00:00"))
    assert evening.height == 10
    assert evening["timestamp"].min() == 1725448941574323178  # 2024-09-04 21:22:21 AEST


@drr
def test_drr_lake_schema_and_manifest(drr_lake: tuple[Path, list[SourceResult]]) -> None:
    lake, results = drr_lake
    f = part_files(lake, "orders")[0]
    assert pq.read_schema(f).remove_metadata().equals(schema.ORDERS.lake_schema)
    meta = pq.ParquetFile(f).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.row_group(0).column(0).statistics.has_min_max
    manifest = manifests.read_source(Lake(lake), results[0].source_id)
    assert manifest is not None
    assert manifest["status"] == "shredded"
    assert manifest["fingerprint"].startswith("xxh3-128:") and len(manifest["fingerprint"]) == 9 + 32
    assert manifest["rows_read"] == manifest["rows_written"] + manifest["rows_rejected"] == 28_452
    assert manifest["size"] == (DRR / "orders.csv.gz").stat().st_size
    assert manifest["partitions"] == ["110621/2024-09-05"] and manifest["seconds"] > 0


# ---- headers ------------------------------------------------------------------------------------------


def test_header_aliases_spaces_and_case(tmp_path: Path) -> None:
    o_header = [
        " OrderId" if c == "order_id" else "SecurityCode" if c == "security_code" else c.upper()
        for c in ORDERS_HEADER
        if c != "row_num"
    ] + ["comment"]
    o_values = [v for c, v in ORDER_DEFAULTS.items() if c != "row_num"] + ["dropped"]
    orders = write(tmp_path / "o.csv", o_header, [",".join(map(str, o_values))])
    t_header = [
        " SecurityCode" if h == "securitycode" else "TRADETIME" if h == "tradetime" else h
        for h in TRADES_HEADER
    ]
    trades = write(tmp_path / "t.csv", t_header, [line(TRADE_DEFAULTS)])
    n_header = [
        "BidPrice"
        if h == "bidprice"
        else "OrderBookId"
        if h == "orderbookid"
        else "quote_time"
        if h == "timestamp"
        else h
        for h in NBBO_HEADER
    ]
    nbbo = write(tmp_path / "n.csv", n_header, [line(NBBO_DEFAULTS)])
    cfg = replace(Config(), columns=Columns(aliases=Aliases(nbbo={"Quote_Time": "timestamp"})))
    results = run(tmp_path / "lake", cfg, orders=orders, trades=trades, nbbo=nbbo)
    assert [r.status for r in results] == ["shredded"] * 3
    o = read_part(tmp_path / "lake", "orders", 110621, "2024-09-05")
    assert o["order_id"].to_list() == [7904794000131579632]
    assert o["row_num"].to_list() == [None]  # optional column absent from the file -> null of its type
    assert o.schema == pl.Schema(schema.polars_schema(schema.ORDERS.lake_schema))
    t = read_part(tmp_path / "lake", "trades", 110621, "2024-09-05")
    assert t.select("timestamp", "order_id", "exchange").row(0) == (T0, 7904794000124046634, 3)
    n = read_part(tmp_path / "lake", "nbbo", 110621, "2024-09-05")
    assert n.select("bid", "offer", "timestamp").row(0) == (3360, 3370, T0)
    manifest = manifests.read_source(Lake(tmp_path / "lake"), source_id(orders))
    assert manifest is not None
    assert manifest["dropped_columns"] == ["comment"] and manifest["null_columns"] == ["row_num"]
    assert manifest["columns"]["order_id"] == " OrderId"


def test_missing_required_column_fails_that_source_before_writing(tmp_path: Path) -> None:
    header = [c for c in ORDERS_HEADER if c != "sequence"]
    bad = write(
        tmp_path / "orders.csv",
        header,
        [",".join(str(v) for c, v in ORDER_DEFAULTS.items() if c != "sequence")],
    )
    trades = write(tmp_path / "trades.csv", TRADES_HEADER, [line(TRADE_DEFAULTS)])
    lake = tmp_path / "lake"
    o, t = run(lake, orders=bad, trades=trades)
    assert o.status == "failed" and t.status == "shredded"
    assert o.error is not None
    assert str(bad) in o.error and "'sequence'" in o.error and "columns.aliases.orders" in o.error
    assert not (lake / "orders").exists() and not (lake / "_rejects").exists()
    assert not (lake / "_tmp").exists()
    manifest = manifests.read_source(Lake(lake), o.source_id)
    assert manifest is not None and manifest["status"] == "failed" and manifest["error"] == o.error


def test_two_headers_mapping_to_one_column_fail(tmp_path: Path) -> None:
    bad = write(tmp_path / "orders.csv", [*ORDERS_HEADER, "SecurityCode"], [order() + ",1"])
    (r,) = run(tmp_path / "lake", orders=bad)
    assert r.status == "failed" and r.error is not None
    assert "'security_code' and 'SecurityCode' both map to 'security_code'" in r.error


def test_empty_file_fails_and_header_only_file_is_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = write(tmp_path / "header.csv", ORDERS_HEADER, [])
    e, h = run(tmp_path / "lake", orders=[empty, header_only])
    assert e.status == "failed" and e.error == f"{empty}: the file is empty (no header line): re-export it"
    assert (h.status, h.rows_read, h.partitions) == ("shredded", 0, [])


# ---- rejects ------------------------------------------------------------------------------------------

GOOD_1 = order(order_id=1, sequence=1)
GOOD_2 = order(order_id=2, sequence=2, timevaliditydecoded='"Current Max"', price='"3360"')
# (line in the file, raw line, reason); the header is line 1
BAD_ORDER_LINES: list[tuple[int, str | bytes, str]] = [
    (3, ",".join(order().split(",")[:-1]), "wrong field count: 28 fields, expected 29"),
    (4, order() + ",99", "wrong field count: 30 fields, expected 29"),
    (5, order(quantity="abc"), "unparseable int64 in column 'quantity': 'abc'"),
    (6, order(side=3), "bad side (expected 1 or 2): 3"),
    (7, order(quantity=-5), "negative value in column 'quantity': -5"),
    (8, order(leavesquantity=-1), "negative value in column 'leavesquantity': -1"),
    (9, order(totalmatchedquantity=-2), "negative value in column 'totalmatchedquantity': -2"),
    (
        10,
        order(timestamp=utc_ns("1999-12-31 23:00:00")),
        f"timestamp outside 2000-01-01..2100-01-01: {utc_ns('1999-12-31 23:00:00')}",
    ),
    (
        11,
        order(timestamp=utc_ns("2100-01-01 00:00:00")),
        f"timestamp outside 2000-01-01..2100-01-01: {utc_ns('2100-01-01 00:00:00')}",
    ),
    (12, order(order_id=""), "missing value in required column 'order_id'"),
    (13, order(security_code="NULL"), "missing value in required column 'security_code'"),
    (14, "", "empty line"),
    (15, order(timevaliditydecoded="Rest of Day").encode().replace(b"Rest", b"R\xffst"), "invalid UTF-8"),
    (16, order(timevaliditydecoded='"Rest of Day'), "unbalanced quote"),
    (
        18,
        order(order_id="79047940001315796320"),
        "unparseable int64 in column 'order_id': '79047940001315796320'",
    ),
    (19, order(price="33.55"), "unparseable int64 in column 'price': '33.55'"),
    (20, order()[:40], "wrong field count: 3 fields, expected 29"),  # truncated last line, no newline
]


def _reject_file(path: Path, bad: list[tuple[int, str | bytes, str]]) -> Path:
    lines: dict[int, str | bytes] = {ln: raw for ln, raw, _ in bad}
    last = max([*lines, 17])
    body = [
        lines.get(n, GOOD_1 if n == 2 else GOOD_2 if n == 17 else order(order_id=n, sequence=n))
        for n in range(2, last + 1)
    ]
    return write(path, ORDERS_HEADER, body, final_newline=False)


@pytest.mark.parametrize("block_mb", [8.0, 0.0005])  # one block, or a couple of lines per block
def test_every_reject_reason_with_its_line(tmp_path: Path, block_mb: float) -> None:
    path = _reject_file(tmp_path / "orders.csv", BAD_ORDER_LINES)
    (r,) = run(tmp_path / "lake", shred_cfg(block_size_mb=block_mb), orders=path)
    assert (r.status, r.rows_read, r.rows_written, r.rows_rejected) == ("shredded", 19, 2, 17)
    rej = rejects(tmp_path / "lake", "orders", path)
    assert rej.schema == pl.Schema(schema.polars_schema(schema.REJECTS))
    assert rej.select("line", "reason").rows() == [(ln, reason) for ln, _, reason in BAD_ORDER_LINES]
    expected_raw = [
        raw if isinstance(raw, str) else raw.decode("utf-8", "replace") for _, raw, _ in BAD_ORDER_LINES
    ]
    assert rej["raw"].to_list() == expected_raw
    assert set(rej["source"]) == {str(path)}
    good = read_part(tmp_path / "lake", "orders", 110621, "2024-09-05")
    assert good.select("order_id", "price", "timevaliditydecoded").rows() == [
        (1, 3355, "Rest of Day"),
        (2, 3360, "Current Max"),
    ]
    manifest = manifests.read_source(Lake(tmp_path / "lake"), r.source_id)
    assert manifest is not None and manifest["rows_rejected"] == 17
    assert manifest["rejects_by_reason"]["wrong field count"] == 3
    assert manifest["rejects_by_reason"]["negative value in column 'quantity'"] == 1


def test_value_rejects_without_parse_errors(tmp_path: Path) -> None:
    """Only value checks fail: the typed fast path reports the same reasons as the string fallback."""
    bad = [b for b in BAD_ORDER_LINES if b[0] in (6, 7, 10, 12)]
    path = _reject_file(tmp_path / "orders.csv", bad)
    (r,) = run(tmp_path / "lake", orders=path)
    assert (r.rows_read, r.rows_written, r.rows_rejected) == (16, 12, 4)
    assert rejects(tmp_path / "lake", "orders", path).select("line", "reason").rows() == [
        (ln, reason) for ln, _, reason in bad
    ]


def test_a_chunk_over_many_parser_blocks_keeps_every_line_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CSV reader parses a chunk in blocks of PARSE_BLOCK_BYTES (here 1 KB: ~6 lines each, 200 lines in
    one chunk): a wrong field count in a late block and a value check still name their physical lines."""
    monkeypatch.setattr(shred_parse, "PARSE_BLOCK_BYTES", 1024)
    wrong_count, negative = {5, 77, 201}, 150  # lines with a 30th field; the line with a negative quantity
    lines = [
        order(order_id=n, sequence=n, **({"quantity": -5} if n == negative else {}))
        + (",99" if n in wrong_count else "")
        for n in range(2, 202)
    ]
    path = write(tmp_path / "orders.csv", ORDERS_HEADER, lines)
    (r,) = run(tmp_path / "lake", shred_cfg(block_size_mb=8.0), orders=path)
    assert (r.rows_read, r.rows_written, r.rows_rejected) == (200, 196, 4)
    rej = rejects(tmp_path / "lake", "orders", path).select("line", "reason").rows()
    assert rej == [
        (5, "wrong field count: 30 fields, expected 29"),
        (77, "wrong field count: 30 fields, expected 29"),
        (150, "negative value in column 'quantity': -5"),
        (201, "wrong field count: 30 fields, expected 29"),
    ]
    good = read_part(tmp_path / "lake", "orders", 110621, "2024-09-05")
    assert sorted(good["order_id"]) == [n for n in range(2, 202) if n not in {*wrong_count, negative}]


def test_trades_and_nbbo_rejects(tmp_path: Path) -> None:
    trades = write(
        tmp_path / "trades.csv",
        TRADES_HEADER,
        [
            line(TRADE_DEFAULTS),
            line(TRADE_DEFAULTS, side=0),
            line(TRADE_DEFAULTS, quantity=-10),
            line(TRADE_DEFAULTS, orderid=""),
            line(TRADE_DEFAULTS, tradeprice="3.34"),
        ],
        final_newline=False,
    )
    nbbo = write(
        tmp_path / "nbbo.csv",
        NBBO_HEADER,
        [
            line(NBBO_DEFAULTS),
            line(NBBO_DEFAULTS, bidprice=""),
            line(NBBO_DEFAULTS, offerprice=-9223372036854775808),
        ],
    )
    t, n = run(tmp_path / "lake", trades=trades, nbbo=nbbo)
    assert (t.rows_read, t.rows_written, t.rows_rejected) == (5, 1, 4)
    assert rejects(tmp_path / "lake", "trades", trades)["reason"].to_list() == [
        "bad side (expected 1 or 2): 0",
        "negative value in column 'quantity': -10",
        "missing value in required column 'order_id'",
        "unparseable int64 in column 'tradeprice': '3.34'",
    ]
    # Long.MIN is how the feed says "no offer": a valid value, kept (the pipeline treats <= 0 as missing)
    assert (n.rows_read, n.rows_written, n.rows_rejected) == (3, 2, 1)
    assert rejects(tmp_path / "lake", "nbbo", nbbo)["reason"].to_list() == [
        "missing value in required column 'bid'"
    ]


def test_numbers_parse_the_same_in_clean_and_dirty_blocks(tmp_path: Path) -> None:
    """Spaces around a number and hex are read by pyarrow's CSV reader; the fallback must agree."""
    odd = order(order_id=7, price=" 42 ", minimumquantity="0x10")
    clean = write(tmp_path / "clean.csv", ORDERS_HEADER, [odd])
    dirty = write(tmp_path / "dirty.csv", ORDERS_HEADER, [odd, order(quantity="x")])
    for path in (clean, dirty):
        lake = tmp_path / path.stem
        (r,) = run(lake, orders=path)
        assert r.rows_written == 1
        assert read_part(lake, "orders", 110621, "2024-09-05").select("price", "minimumquantity").row(0) == (
            42,
            16,
        )


def test_quotes_that_would_swallow_lines_reject_only_their_own(tmp_path: Path) -> None:
    """A quote opened mid-value, and a quoted value with a newline (unsupported: blocks are cut at
    newlines), cost only their own physical lines."""
    path = write(
        tmp_path / "orders.csv",
        ORDERS_HEADER,
        [
            order(order_id=1, sequence=1),
            order(order_id=2, timevaliditydecoded='x"y,"z'),
            order(order_id=3, sequence=3),
            order(order_id=4, timevaliditydecoded='"Rest\nof Day"'),
            order(order_id=5, sequence=5),
        ],
    )
    (r,) = run(tmp_path / "lake", orders=path)
    assert (r.rows_read, r.rows_written, r.rows_rejected) == (6, 3, 3)
    assert rejects(tmp_path / "lake", "orders", path).select("line", "reason").rows() == [
        (3, "wrong field count: 28 fields, expected 29"),
        (5, "unbalanced quote"),
        (6, "unbalanced quote"),
    ]
    assert read_part(tmp_path / "lake", "orders", 110621, "2024-09-05")["order_id"].to_list() == [1, 3, 5]


def test_crlf_line_ends(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(("\r\n".join([",".join(ORDERS_HEADER), order(), order(side=5)]) + "\r\n").encode())
    (r,) = run(tmp_path / "lake", orders=path)
    assert (r.rows_read, r.rows_written, r.rows_rejected) == (2, 1, 1)
    assert rejects(tmp_path / "lake", "orders", path)["raw"].to_list() == [order(side=5)]


# ---- inputs that are not what they claim --------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["gzip", "zstd", "plain"])
def test_compression_is_told_by_the_bytes_not_the_name(tmp_path: Path, codec: str) -> None:
    """Before: a gzip file named .csv was a traceback."""
    plain = write(tmp_path / "orders.csv", ORDERS_HEADER, [order(order_id=1), order(order_id=2, sequence=2)])
    data = plain.read_bytes()
    named = tmp_path / ("orders.gz" if codec == "plain" else "orders-packed.csv")
    named.write_bytes(
        gzip.compress(data)
        if codec == "gzip"
        else zstandard.ZstdCompressor().compress(data)
        if codec == "zstd"
        else data
    )
    (r,) = run(tmp_path / "lake", orders=named)
    assert (r.status, r.rows_read, r.rows_written) == ("shredded", 2, 2), r.error


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (
            bz2.compress(b"a,b\n1,2\n"),
            "this is a bzip2 file, not a CSV export (plain, gzip or zstd): decompress it",
        ),
        (
            b"PK\x03\x04" + b"\0" * 40,
            "this is a zip file, not a CSV export (plain, gzip or zstd): decompress it",
        ),
        (
            b"PAR1" + b"\0" * 40,
            "this is a Parquet file, not a CSV export (plain, gzip or zstd): export the table",
        ),
        (b"order_id,\x00\x01\x02binary\n1,2\n", "binary data in its first line: not a CSV export"),
        (b"order_id,timestamp\r1,2\r3,4\r", "its lines end with CR only (old Mac line ends)"),
    ],
)
def test_files_that_are_not_csv_exports_fail_in_one_line(tmp_path: Path, content: bytes, what: str) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    (r,) = run(tmp_path / "lake", orders=path)
    assert r.status == "failed" and r.error is not None
    assert r.error.startswith(f"{path}: {what}"), r.error
    assert not Lake(tmp_path / "lake").partitions("orders")


def test_cr_only_line_ends_say_how_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_bytes("\r".join([",".join(ORDERS_HEADER), order()]).encode() + b"\r")
    (r,) = run(tmp_path / "lake", orders=path)
    assert r.error == (
        f"{path}: its lines end with CR only (old Mac line ends), which dpsim does not read: convert them to "
        "LF, e.g. tr '\\r' '\\n' < IN > OUT, and shred the converted file"
    )


@pytest.mark.parametrize(
    ("scale", "unit"), [(1_000_000, "milliseconds"), (1_000, "microseconds"), (1_000_000_000, "seconds")]
)
def test_a_source_whose_every_row_is_rejected_fails_with_its_top_reasons(
    tmp_path: Path, scale: int, unit: str
) -> None:
    """Before: timestamps in ms or us got every row rejected, yet shred exited 0 silently."""
    lines = [order(order_id=i, sequence=i, timestamp=(T0 + i) // scale) for i in range(1, 4)]
    lines.append(order(order_id=9, side=7))  # and one row bad for another reason
    path = write(tmp_path / "orders.csv", ORDERS_HEADER, lines)
    (r,) = run(tmp_path / "lake", orders=path)
    assert r.status == "failed"
    assert r.error == (
        f"{path}: every one of its 4 rows was rejected; top reasons: timestamps look like {unit}, expected ns "
        "since the epoch (3 rows); bad side (expected 1 or 2) (1 rows); fix the export or the config "
        "(columns.aliases, time), then rerun"
    )
    assert not Lake(tmp_path / "lake").partitions("orders")


def test_the_cli_exits_1_when_every_row_of_a_source_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "orders.csv", ORDERS_HEADER, [order(timestamp=T0 // 1_000_000)])
    conf = tmp_path / "c.yaml"
    conf.write_text(
        f"lake: '{tmp_path / 'lake'}'\ninputs:\n  orders: ['{path}']\n  trades: []\n  nbbo: []\n"
        "  reference: []\n  session: []\n  participants: []\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dpsim", "shred", "--config", str(conf)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 1
    assert (
        f"dpsim: {path}: every one of its 1 rows was rejected; top reasons: timestamps look like milliseconds, "
        "expected ns since the epoch (1 rows)" in proc.stderr
    )
    assert "Traceback" not in proc.stderr


# A small universe of instants around the AEST->AEDT change (2024-10-06 02:00 local) and the day roll.
_INSTANTS = st.integers(utc_ns("2024-10-04 00:00:00"), utc_ns("2024-10-08 00:00:00"))
_GARBAGE = st.sampled_from(
    [
        ("wrong field count", lambda i: ",".join(order(order_id=i).split(",")[:5])),
        ("unparseable int64 in column 'quantity'", lambda i: order(order_id=i, quantity="1e3")),
        ("bad side (expected 1 or 2)", lambda i: order(order_id=i, side=7)),
        ("negative value in column 'leavesquantity'", lambda i: order(order_id=i, leavesquantity=-3)),
        ("empty line", lambda i: ""),
        ("unbalanced quote", lambda i: order(order_id=i, timevaliditydecoded='x"y')),
        ("wrong field count", lambda i: order(order_id=i, timevaliditydecoded='x"y,"z')),
        ("invalid UTF-8", lambda i: order(order_id=i).encode() + b"\xc3"),
    ]
)


def expected_date(ts: int) -> date:
    """Independent of the code under test: zoneinfo local time, plus a day at or after 19:00."""
    local = datetime.fromtimestamp(ts // 1_000_000_000, SYD)
    return local.date() + timedelta(days=1) if local.hour >= 19 else local.date()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(st.one_of(st.tuples(st.just("good"), st.integers(1, 3), _INSTANTS), _GARBAGE), max_size=40),
    block_mb=st.sampled_from([8.0, 0.0004, 0.002]),
    final_newline=st.booleans(),
)
def test_property_every_line_is_written_or_rejected(
    rows: list[Any], block_mb: float, final_newline: bool
) -> None:
    lines: list[str | bytes] = []
    good: dict[int, tuple[int, date]] = {}  # order_id (= its line number) -> expected partition
    bad: dict[int, str] = {}
    for n, row in enumerate(rows, start=2):
        if row[0] == "good":
            _, code, ts = row
            lines.append(order(order_id=n, security_code=code, timestamp=ts, sequence=n))
            good[n] = (code, expected_date(ts))
        else:
            reason, make = row
            lines.append(make(n))
            bad[n] = reason
    if not final_newline and lines and lines[-1] == "":
        bad.pop(len(lines) + 1)  # a trailing empty string without a newline is no line at all
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp) / "orders.csv", ORDERS_HEADER, lines, final_newline=final_newline)
        (r,) = run(Path(tmp) / "lake", shred_cfg(block_size_mb=block_mb), orders=path)
        if bad and not good:  # every row rejected: the source fails, with its top reasons
            assert r.status == "failed" and r.error is not None
            assert r.error.startswith(
                f"{path}: every one of its {len(bad):,} rows was rejected; top reasons: "
            )
            assert not Lake(Path(tmp) / "lake").partitions("orders")
            return
        assert r.status == "shredded", r.error
        assert (r.rows_read, r.rows_written, r.rows_rejected) == (len(good) + len(bad), len(good), len(bad))
        if bad:
            rej = rejects(Path(tmp) / "lake", "orders", path)
            assert dict(zip(rej["line"], (x.split(": ")[0] for x in rej["reason"]), strict=True)) == bad
        found: dict[int, tuple[int, date]] = {}
        for key in Lake(Path(tmp) / "lake").partitions("orders"):
            df = read_part(Path(tmp) / "lake", "orders", key.security_code, key.date.isoformat())
            assert is_sorted(df)
            found.update({oid: (key.security_code, key.date) for oid in df["order_id"]})
        assert found == good


# ---- time zone and day roll ------------------------------------------------------------------------------


def test_dst_and_day_roll_dates(tmp_path: Path) -> None:
    cases = [  # (UTC instant, local wall clock, trading date worked out by hand)
        ("2024-10-05 08:59:59", "2024-10-05 18:59:59 AEST (+10)", "2024-10-05"),
        ("2024-10-05 09:00:00", "2024-10-05 19:00:00 AEST: day roll", "2024-10-06"),
        ("2024-10-05 15:59:59", "2024-10-06 01:59:59 AEST, just before the clocks jump", "2024-10-06"),
        ("2024-10-05 16:00:00", "2024-10-06 03:00:00 AEDT (+11)", "2024-10-06"),
        ("2024-10-06 07:59:59", "2024-10-06 18:59:59 AEDT", "2024-10-06"),
        (
            "2024-10-06 08:30:00",
            "2024-10-06 19:30 AEDT: next day (a fixed +10 h says 18:30, same day)",
            "2024-10-07",
        ),
        ("2024-10-07 23:30:00", "2024-10-08 10:30 AEDT (the UTC date is 10-07)", "2024-10-08"),
        (
            "2025-04-06 08:30:00",
            "2025-04-06 18:30 AEST after the autumn change (+11 would say 19:30)",
            "2025-04-06",
        ),
        ("2025-04-05 08:30:00", "2025-04-05 19:30 AEDT: next day", "2025-04-06"),
    ]
    lines = [order(order_id=i, timestamp=utc_ns(u), sequence=i) for i, (u, _, _) in enumerate(cases)]
    (r,) = run(tmp_path / "lake", orders=write(tmp_path / "orders.csv", ORDERS_HEADER, lines))
    got = {}
    for key in Lake(tmp_path / "lake").partitions("orders"):
        for oid in read_part(tmp_path / "lake", "orders", key.security_code, key.date.isoformat())[
            "order_id"
        ]:
            got[oid] = key.date.isoformat()
    assert got == {i: d for i, (_, _, d) in enumerate(cases)}
    assert r.partitions == [
        "110621/2024-10-05",
        "110621/2024-10-06",
        "110621/2024-10-07",
        "110621/2024-10-08",
        "110621/2025-04-06",
    ]


# ---- compression, corruption, many files -------------------------------------------------------------------


def _orders_lines(n: int, code: int = 110621, start: int = 0) -> list[str | bytes]:
    return [
        order(
            order_id=start + i,
            sequence=start + i,
            timestamp=T0 + i * 1_000_000,
            security_code=code,
            timevaliditydecoded=f"row {start + i} " + "x" * 40,
        )
        for i in range(n)
    ]


def test_gz_zst_and_many_files_per_kind(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    write(drop / "orders-1.csv", ORDERS_HEADER, _orders_lines(100, start=0))
    g = write(drop / "orders-2.csv.gz", ORDERS_HEADER, _orders_lines(200, start=1000))
    more = "\n".join(str(x) for x in _orders_lines(30, start=8000)).encode()
    g.write_bytes(g.read_bytes() + gzip.compress(more, mtime=0))  # a second gzip member
    z = write(drop / "orders-3.csv.zst", ORDERS_HEADER, _orders_lines(50, start=5000))
    extra = zstandard.ZstdCompressor().compress(b"\n".join(x.encode() for x in _orders_lines(25, start=9000)))  # type: ignore[union-attr]
    z.write_bytes(z.read_bytes() + extra)  # a second zstd frame, as `cat a.zst b.zst` makes
    results = shred(
        Config(), Lake(tmp_path / "lake"), inputs={**NO_INPUTS, "orders": [str(drop / "orders-*.csv*")]}
    )
    assert [(Path(r.path).name, r.status, r.rows_written) for r in results] == [
        ("orders-1.csv", "shredded", 100),
        ("orders-2.csv.gz", "shredded", 230),
        ("orders-3.csv.zst", "shredded", 75),
    ]
    assert len(part_files(tmp_path / "lake")) == 3  # one file per source in the shared partition
    assert read_part(tmp_path / "lake", "orders", 110621, "2024-09-05").height == 405


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_corrupt_gz_tail_fails_that_file_clearly(tmp_path: Path, damage: str) -> None:
    path = write(tmp_path / "orders.csv.gz", ORDERS_HEADER, _orders_lines(20_000))
    (first,) = run(tmp_path / "lake", orders=path)
    assert first.status == "shredded" and part_files(tmp_path / "lake")
    data = path.read_bytes()
    bad = data[:-200] if damage == "truncated" else data[:-300] + bytes(200) + data[-100:]
    path.write_bytes(bad)
    trades = write(tmp_path / "trades.csv", TRADES_HEADER, [line(TRADE_DEFAULTS)])
    o, t = run(tmp_path / "lake", shred_cfg(block_size_mb=0.25), orders=path, trades=trades)
    assert o.status == "failed" and t.status == "shredded"
    assert o.error is not None
    assert o.error.startswith(f"{path}: compressed stream is corrupt or truncated after ")
    assert o.error.endswith("re-export or re-copy the file")
    assert not part_files(tmp_path / "lake")  # neither the partial new parts nor the old version's
    manifest = manifests.read_source(Lake(tmp_path / "lake"), o.source_id)
    assert manifest is not None and manifest["status"] == "failed" and manifest["partitions"] == []


def test_truncated_zst_fails(tmp_path: Path) -> None:
    path = write(tmp_path / "orders.csv.zst", ORDERS_HEADER, _orders_lines(2_000))
    path.write_bytes(path.read_bytes()[:-50])
    (r,) = run(tmp_path / "lake", orders=path)
    assert (
        r.status == "failed"
        and r.error is not None
        and "compressed stream is corrupt or truncated" in r.error
    )
    assert "middle of a frame" in r.error


def test_write_failure_fails_the_source_with_nothing_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shred_write.PartWriter, "_append", disk_full)
    path = write(tmp_path / "orders.csv", ORDERS_HEADER, _interleaved(3, 2, 20))
    (r,) = run(tmp_path / "lake", orders=path)
    assert r.status == "failed"
    assert r.error == (
        f"{path}: I/O error ([Errno 28] No space left on device): check that the file is readable and that "
        f"{tmp_path / 'lake'} is writable and has free space, then rerun"
    )
    assert [p.name for p in (tmp_path / "lake").rglob("*") if p.is_file()] == [f"{r.source_id}.json"]


def test_unmatched_globs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(InputError, match=r"no orders file matches '.*nothing-\*\.csv'"):
        run(tmp_path / "lake", orders=tmp_path / "nothing-*.csv")
    orders = write(tmp_path / "orders.csv", ORDERS_HEADER, [order()])
    results = run(tmp_path / "lake", orders=orders, nbbo=tmp_path / "nbbo-*.csv")
    assert [r.status for r in results] == ["shredded"]
    assert "no nbbo file matches" in caplog.text


# ---- idempotence, incremental, interrupted ------------------------------------------------------------------


def test_rerun_skips_force_rewrites_and_a_changed_source_replaces_only_its_files(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    a = write(
        tmp_path / "a.csv", ORDERS_HEADER, _orders_lines(10, code=1) + _orders_lines(10, code=2, start=100)
    )
    b = write(tmp_path / "b.csv", ORDERS_HEADER, _orders_lines(10, code=2, start=200))
    first = run(lake, orders=[a, b])
    assert [r.status for r in first] == ["shredded", "shredded"]
    before = lake_files(lake)

    second = run(lake, orders=[a, b])
    assert [r.status for r in second] == ["skipped", "skipped"]
    assert [(r.rows_read, r.partitions, r.fingerprint) for r in second] == [
        (r.rows_read, r.partitions, r.fingerprint) for r in first
    ]
    assert lake_files(lake) == before  # nothing touched

    forced = run(lake, orders=[a, b], force=True)
    assert [r.status for r in forced] == ["shredded", "shredded"]
    after_force = lake_files(lake)
    assert after_force.keys() == before.keys()
    assert all(after_force[k] != before[k] for k in before if k.endswith(".parquet"))

    time.sleep(0.01)
    write(a, ORDERS_HEADER, _orders_lines(5, code=3, start=300) + _orders_lines(3, code=2, start=400))
    third = run(lake, orders=[a, b])
    assert [r.status for r in third] == ["shredded", "skipped"]
    assert third[0].partitions == ["2/2024-09-05", "3/2024-09-05"]
    now = lake_files(lake)
    sid_a, sid_b = source_id(a), source_id(b)
    assert not any(f"part-{sid_a}" in k for k in now if "security_code=1/" in k)  # a's old partition is gone
    assert {k: v for k, v in now.items() if sid_b in k} == {
        k: v for k, v in after_force.items() if sid_b in k
    }
    assert (
        read_part(lake, "orders", 2, "2024-09-05").height == 13
        and read_part(lake, "orders", 3, "2024-09-05").height == 5
    )


def _interleaved(n_codes: int, days: int, per: int) -> list[str | bytes]:
    """Rows cycling over securities and days, so every partition is touched again and again."""
    out: list[str | bytes] = []
    for i in range(per * n_codes * days):
        code, day = i % n_codes + 1, (i // n_codes) % days
        out.append(
            order(order_id=i, sequence=i, security_code=code, timestamp=T0 + day * 86_400_000_000_000 + i)
        )
    return out


@pytest.mark.parametrize("order_", ["time-ordered", "reversed"])
def test_memory_pressure_flushes_pieces_and_compacts_them(tmp_path: Path, order_: str) -> None:
    rows = _interleaved(6, 2, 50)
    path = write(tmp_path / "orders.csv", ORDERS_HEADER, rows if order_ == "time-ordered" else rows[::-1])
    (calm,) = run(tmp_path / "calm", orders=path)
    (pressed,) = run(tmp_path / "pressed", shred_cfg(max_open_partitions=2, block_size_mb=0.002), orders=path)
    assert pressed.rows_written == calm.rows_written == 600 and pressed.partitions == calm.partitions
    assert len(pressed.partitions) == 12 and pressed.files_written == 12
    manifest = manifests.read_source(Lake(tmp_path / "pressed"), pressed.source_id)
    assert manifest is not None
    assert manifest["flushes"] > 12 and manifest["compacted_partitions"] > 0
    assert len(part_files(tmp_path / "pressed")) == 12  # one file per partition, pieces compacted away
    for key in Lake(tmp_path / "pressed").partitions("orders"):
        got = read_part(tmp_path / "pressed", "orders", key.security_code, key.date.isoformat())
        assert is_sorted(got)
        assert got.equals(read_part(tmp_path / "calm", "orders", key.security_code, key.date.isoformat()))


def test_interrupted_shred_leaves_nothing_visible_and_reruns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "orders.csv", ORDERS_HEADER, _interleaved(4, 2, 40))
    cfg = shred_cfg(max_open_partitions=1, block_size_mb=0.002)
    real = shred_stream.parse_chunk
    calls = {"n": 0}

    def flaky(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(shred_stream, "parse_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "lake", cfg, orders=path)
    assert not part_files(tmp_path / "lake")  # pieces were flushed, but only into staging
    manifest = manifests.read_source(Lake(tmp_path / "lake"), source_id(path))
    assert manifest is not None and manifest["status"] == "running"
    monkeypatch.setattr(shred_stream, "parse_chunk", real)
    (r,) = run(tmp_path / "lake", cfg, orders=path)
    assert (r.status, r.rows_written, len(part_files(tmp_path / "lake"))) == ("shredded", 320, 8)
    assert not (tmp_path / "lake" / "_tmp").exists()


def test_interrupted_publish_is_cleaned_by_the_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = tmp_path / "lake"
    path = write(
        tmp_path / "orders.csv", ORDERS_HEADER, _orders_lines(5, code=1) + _orders_lines(5, code=2, start=10)
    )
    run(lake, orders=path)
    write(path, ORDERS_HEADER, _orders_lines(4, code=2, start=20) + _orders_lines(4, code=3, start=30))
    real = Lake.put_many

    def first_file_then_interrupted(self: Lake, moves: Mapping[UPath, Path]) -> None:
        real(self, dict(list(moves.items())[:1]))
        raise KeyboardInterrupt

    monkeypatch.setattr(Lake, "put_many", first_file_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(lake, orders=path)
    monkeypatch.setattr(Lake, "put_many", real)
    (r,) = run(lake, orders=path)  # the manifest still says "running", so the source is not skipped
    assert (r.status, r.partitions) == ("shredded", ["2/2024-09-05", "3/2024-09-05"])
    assert [p.parent.parent.name for p in part_files(lake)] == ["security_code=2", "security_code=3"]
    assert read_part(lake, "orders", 2, "2024-09-05")["order_id"].to_list() == [20, 21, 22, 23]


# ---- reference files ----------------------------------------------------------------------------------------


def test_reference_files(tmp_path: Path) -> None:
    ref = tmp_path / "reference.csv"
    ref.write_text("Id,Name,DecimalsInPrice\n110621,DRR,3\n", encoding="utf-8")
    parts = write(
        tmp_path / "participants.csv.gz", ["Id", " ParticipantName"], ["54,Broker A", "61,Broker B"]
    )
    results = run(tmp_path / "lake", reference=ref, participants=parts)
    assert [(r.kind, r.status, r.rows_written) for r in results] == [
        ("reference", "shredded", 1),
        ("participants", "shredded", 2),
    ]
    lake = Lake(tmp_path / "lake")
    assert pl.read_parquet(str(lake.reference_path("reference"))).rows() == [(110621, "DRR", 3)]
    assert pl.read_parquet(str(lake.reference_path("participants"))).columns == [
        "participantid",
        "participantname",
    ]
    assert all((manifests.read_source(lake, r.source_id) or {}).get("status") == "shredded" for r in results)
    assert [r.status for r in run(tmp_path / "lake", reference=ref, participants=parts)] == [
        "skipped",
        "skipped",
    ]


# ---- readable by everyone ------------------------------------------------------------------------------------


def test_lake_opens_in_duckdb_polars_and_pyarrow_with_pruning(tmp_path: Path) -> None:
    lines = _orders_lines(30, code=1) + _orders_lines(20, code=2, start=100)
    lines += [
        order(order_id=500 + i, security_code=2, sequence=500 + i, timestamp=local_ns("2024-09-06 11:00:00"))
        for i in range(7)
    ]
    run(tmp_path / "lake", orders=write(tmp_path / "orders.csv", ORDERS_HEADER, lines))
    glob_ = str(tmp_path / "lake" / "orders" / "**" / "*.parquet")
    con = duckdb.connect()
    n, files = con.execute(
        "SELECT count(*), count(DISTINCT filename) FROM read_parquet(?, hive_partitioning = true, filename = true) "
        "WHERE security_code = 2 AND date = DATE '2024-09-05'",
        [glob_],
    ).fetchone() or (0, 0)
    assert (n, files) == (20, 1)
    assert con.execute(
        "SELECT typeof(date), typeof(security_code) FROM read_parquet(?, hive_partitioning = true) LIMIT 1",
        [glob_],
    ).fetchone() == ("DATE", "BIGINT")
    lf = pl.scan_parquet(glob_, hive_partitioning=True)
    assert (
        lf.filter((pl.col("security_code") == 2) & (pl.col("date") == date(2024, 9, 6))).collect().height == 7
    )
    dataset = ds.dataset(tmp_path / "lake" / "orders", format="parquet", partitioning="hive")
    frags = list(dataset.get_fragments(filter=ds.field("security_code") == 1))
    assert len(frags) == 1  # pruned by the path alone
    assert dataset.to_table(filter=ds.field("security_code") == 2).num_rows == 27


# ---- memory at scale ----------------------------------------------------------------------------------------

_PEAK_SCRIPT = """
import sys
from dataclasses import replace
from dpsim.config import Config, Shred
from dpsim.lake import Lake
from dpsim.shred import shred, KINDS
cfg = replace(Config(), shred=replace(Shred(), memory_budget_mb=int(sys.argv[3])))
(r,) = shred(cfg, Lake(sys.argv[2]), inputs={**{k: [] for k in KINDS}, "orders": [sys.argv[1]]})
assert r.status == "shredded" and r.rows_read == r.rows_written + r.rows_rejected, r
"""


def _peak_rss(args: list[str]) -> int:
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", _PEAK_SCRIPT, *args])
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    assert proc.returncode == 0
    return peak


@pytest.mark.slow
def test_peak_memory_is_flat_in_the_input_size(tmp_path: Path) -> None:
    """Under an 800 MB budget about 490 MB go to parsing and ~300 MB to partition buffers, so memory grows
    with the input until the buffers are full (a 100 MB file never fills them) and is flat after that:
    both inputs here are larger than the buffers."""
    from dpsim import synth

    budget_mb = 800
    peaks = {}
    for mb in (400, 1000):
        out = tmp_path / f"drop{mb}"
        synth.generate(out, securities=60, days=mb // 20, seed=1, scale=("bytes", mb * 1_000_000))
        peaks[mb] = _peak_rss([str(out / "orders.csv"), str(tmp_path / f"lake{mb}"), str(budget_mb)])
        shutil.rmtree(out)
    assert peaks[1000] < budget_mb * 2**20
    assert peaks[1000] < peaks[400] * 1.15, peaks


def test_threads_are_released(tmp_path: Path) -> None:
    before = threading.active_count()
    run(tmp_path / "lake", orders=write(tmp_path / "orders.csv", ORDERS_HEADER, [order()]))
    assert threading.active_count() == before


def test_manifest_is_plain_json(tmp_path: Path) -> None:
    (r,) = run(tmp_path / "lake", orders=write(tmp_path / "orders.csv", ORDERS_HEADER, [order()]))
    data = json.loads(Lake(tmp_path / "lake").manifest_path(r.source_id).read_text())
    assert {k: data[k] for k in ("kind", "path", "status", "rows_read", "files_written")} == {
        "kind": "orders",
        "path": str(tmp_path / "orders.csv"),
        "status": "shredded",
        "rows_read": 1,
        "files_written": 1,
    }
    assert os.path.isabs(data["path"]) and data["mtime_ns"] == (tmp_path / "orders.csv").stat().st_mtime_ns


def test_compressed_chunks_stay_under_two_blocks(tmp_path: Path) -> None:
    """The memory model counts a chunk of compressed input as two blocks: inflated pieces (capped at one
    block each) pile up past the block size before the newline cut, but never past two blocks."""
    text = b"".join(b"%d,%d,some text to inflate\n" % (i, i * 7919) for i in range(200_000))
    path = tmp_path / "lines.csv.gz"
    path.write_bytes(gzip.compress(text, compresslevel=9))
    block = 64 << 10
    stored = shred_read.StoredFile(str(path))
    try:
        chunks = list(shred_read.line_chunks(shred_read.decoded_blocks(stored, str(path), block), block))
    finally:
        stored.close()
    assert b"".join(chunks) == text
    assert all(c.endswith(b"\n") for c in chunks)
    assert max(len(c) for c in chunks) <= 2 * block
    assert sum(len(c) > block for c in chunks) > 0  # the case the model covers does happen

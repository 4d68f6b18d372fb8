"""Synthetic drops: the invariants the pipeline relies on, determinism, scale, time zones, streaming memory."""

from __future__ import annotations

import gzip
import resource
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from dpsim import schema
from dpsim.synth import KINDS, SynthSummary, generate, parse_scale, trading_dates

DRR_DIR = Path(__file__).resolve().parents[2] / "shared/data/drr-2024-09-05"
SYDNEY = ZoneInfo("Australia/Sydney")
INT_COLS = {"orders": "timevaliditydecoded", "trades": "tradedate|dealsourcedecoded|exchangeinfo|sidedecoded"}


def _read(path: Path, kind: str) -> pl.DataFrame:
    """All numeric columns as Int64 (never through float), the text columns as strings."""
    df = pl.read_csv(path, infer_schema_length=0)
    text = set(INT_COLS.get(kind, "").split("|"))
    return df.with_columns(pl.col(c).cast(pl.Int64) for c in df.columns if c not in text)


@dataclass(frozen=True)
class Drop:
    summary: SynthSummary
    orders: pl.DataFrame
    trades: pl.DataFrame
    nbbo: pl.DataFrame


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Drop:
    summary = generate(tmp_path_factory.mktemp("drop"), securities=5, days=2, seed=42)
    return Drop(summary, *(_read(summary.files[k], k) for k in ("orders", "trades", "nbbo")))


def _local(ts: pl.Expr) -> pl.Expr:
    return (
        pl.from_epoch(ts, time_unit="ns").dt.replace_time_zone("UTC").dt.convert_time_zone("Australia/Sydney")
    )


# ---- parse_scale ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("400MB", ("bytes", 400_000_000)),
        ("2GB", ("bytes", 2_000_000_000)),
        ("1.5GB", ("bytes", 1_500_000_000)),
        ("512kb", ("bytes", 512_000)),
        ("5000000", ("rows", 5_000_000)),
        ("5_000_000", ("rows", 5_000_000)),
        (None, None),
    ],
)
def test_parse_scale(text: str | None, expected: tuple[str, int] | None) -> None:
    assert parse_scale(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "12XB", "1.5", "-3MB", "0", "0MB"])
def test_parse_scale_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid scale {text!r}"):
        parse_scale(text)


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="securities must be"):
        generate(tmp_path, securities=0)
    with pytest.raises(ValueError, match="invalid scale"):
        generate(tmp_path, scale=("lines", 10))


def test_trading_dates_skip_weekends() -> None:
    assert trading_dates(date(2024, 10, 3), 3) == [date(2024, 10, 3), date(2024, 10, 4), date(2024, 10, 7)]
    assert trading_dates(date(2024, 10, 5), 1) == [date(2024, 10, 7)]


# ---- layout --------------------------------------------------------------------------------------
def test_writes_every_kind(drop: Drop) -> None:
    summary = drop.summary
    assert set(summary.files) == set(KINDS)
    for kind, path in summary.files.items():
        assert path.name == f"{kind}.csv"
        assert summary.bytes[kind] == path.stat().st_size
    assert summary.rows["orders"] == drop.orders.height
    assert summary.rows["trades"] == drop.trades.height
    assert summary.partitions == 10  # 5 securities x 2 days, all active
    ref = pl.read_csv(summary.files["reference"])
    assert ref.columns[:3] == ["Id", "Name", "DecimalsInPrice"] and ref.height == 5
    assert pl.read_csv(summary.files["session"]).columns == ["OrderBookId", "Name", "Timestamp"]
    assert pl.read_csv(summary.files["participants"]).columns == ["Id", "ParticipantName", "ParticipantType"]


@pytest.mark.skipif(not DRR_DIR.exists(), reason="real DRR drop not available")
@pytest.mark.parametrize("kind", ["orders", "trades", "nbbo"])
def test_headers_equal_the_drr_exports(drop: Drop, kind: str) -> None:
    with gzip.open(DRR_DIR / f"{kind}.csv.gz", "rt") as fh:
        real = fh.readline()
    ours = drop.summary.files[kind].read_text().split("\n", 1)[0] + "\n"
    assert ours == real


@pytest.mark.parametrize("kind", ["orders", "trades", "nbbo"])
def test_export_headers_map_onto_the_canonical_columns(kind: str) -> None:
    # the headers synth writes (schema.EXPORT_HEADERS) are read back through the default aliases
    raw = schema.PARTITIONED_KINDS[kind]
    aliases = schema.DEFAULT_ALIASES[kind]
    canonical = [aliases.get(h.strip().lower(), h.strip().lower()) for h in schema.EXPORT_HEADERS[kind]]
    assert canonical == list(raw.columns)


def test_order_ids_are_exact_int64(drop: Drop) -> None:
    path = drop.summary.files["orders"]
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"order_id": pa.int64()}))
    ids = table.column("order_id").to_pylist()
    text_ids = [line.split(",", 1)[0] for line in path.read_text().splitlines()[1:]]
    assert [str(i) for i in ids] == text_ids
    assert all(len(t) == 19 for t in text_ids)


# ---- orders ----------------------------------------------------------------------------------------
def test_order_id_never_shared_by_two_orders(drop: Drop) -> None:
    per_id = drop.orders.group_by("order_id").agg(
        pl.col("security_code", "side", "exchangeordertype").n_unique()
    )
    assert per_id.select(pl.exclude("order_id").max()).row(0) == (1, 1, 1)


def test_quantity_is_leaves_plus_matched(drop: Drop) -> None:
    o = drop.orders
    assert (o["quantity"] == o["leavesquantity"] + o["totalmatchedquantity"]).all()


def test_sequence_monotone_and_shared_with_trades(drop: Drop) -> None:
    o, t = drop.orders, drop.trades
    assert o["timestamp"].is_sorted()
    assert (o["sequence"].diff().drop_nulls() > 0).all()
    assert (t["sequence"].diff().drop_nulls() > 0).all()
    both = pl.concat([o["sequence"], t["sequence"]])
    assert both.n_unique() == len(both)


def test_row_num_counts_rows(drop: Drop) -> None:
    for kind in ("orders", "trades"):
        assert getattr(drop, kind)["row_num"].to_list() == list(range(1, getattr(drop, kind).height + 1))


def test_order_types_cover_lit_and_centre_point(drop: Drop) -> None:
    types = set(drop.orders["exchangeordertype"].unique())
    assert {0, 2, 64, 2048, 2050, 4096, 4098} <= types
    cp = drop.orders.filter((pl.col("exchangeordertype") & (64 | 256 | 2048 | 4096)) != 0)
    assert (cp["minimumquantity"] > 0).any() and (cp["minimumquantity"] == 0).any()
    assert set(cp.filter(pl.col("minimumquantity") > 0)["singlefillminimumquantity"].unique()) <= {1, 2}
    non_sweep = cp.filter((pl.col("exchangeordertype") & 2048) == 0)
    assert (non_sweep["price"] == 0).any() and (non_sweep["price"] > 0).any()
    lit_qty = drop.trades.filter(pl.col("dealsource") == 1)["quantity"].sum()
    assert lit_qty > drop.trades.filter(pl.col("dealsource").is_in([46, 47, 48]))["quantity"].sum()


def test_change_reasons_and_statuses(drop: Drop) -> None:
    o = drop.orders
    assert {1, 3, 5, 6, 9, 30} <= set(o["changereason"].unique())
    assert set(o["orderstatus"].unique()) == {1, 2}
    cancels = o.filter(pl.col("changereason") == 1)
    assert (cancels["leavesquantity"] > 0).all()  # leaves are kept, not zeroed, on cancel


def test_reloads_on_the_previous_evening(drop: Drop) -> None:
    reloads = drop.orders.filter(pl.col("changereason") == 30).with_columns(local=_local(pl.col("timestamp")))
    assert reloads.height > 0
    assert (reloads["local"].dt.hour() >= 19).all()
    trading = {date(2024, 9, 30), date(2024, 10, 1)}
    assert {d + timedelta(days=1) for d in reloads["local"].dt.date()} <= trading


def test_events_outside_continuous_hours(drop: Drop) -> None:
    hours = drop.orders.select(_local(pl.col("timestamp")).dt.hour())["timestamp"]
    assert ((hours >= 7) & (hours < 10)).any() and ((hours >= 16) & (hours < 19)).any()
    assert ((hours >= 10) & (hours < 16)).sum() > 0.9 * len(hours)


def test_security_activity_is_skewed(drop: Drop) -> None:
    counts = drop.orders["security_code"].value_counts()["count"].sort(descending=True)
    assert counts[0] > 3 * counts[-1]


# ---- trades ----------------------------------------------------------------------------------------
def test_every_trade_order_is_in_orders(drop: Drop) -> None:
    assert drop.trades["orderid"].is_in(drop.orders["order_id"].implode()).all()


def test_two_rows_per_execution(drop: Drop) -> None:
    g = drop.trades.group_by("matchgroupid").agg(
        pl.len(),
        pl.col("side").sort(),
        pl.col("quantity", "tradeprice", "tradetime").n_unique().name.suffix("_n"),
    )
    assert (g["len"] == 2).all()
    assert g["side"].to_list() == [[1, 2]] * g.height
    assert (g["quantity_n"] == 1).all() and (g["tradeprice_n"] == 1).all() and (g["tradetime_n"] == 1).all()


def test_matched_quantity_equals_traded(drop: Drop) -> None:
    """Per order and trading date (a reload starts from zero), the last matched quantity = sum of its trades."""
    o = drop.orders.with_columns(
        date=(_local(pl.col("timestamp")).dt.replace_time_zone(None) + pl.duration(hours=5))
        .dt.date()
        .cast(pl.Utf8)
    )
    last = o.group_by("order_id", "date").agg(pl.col("totalmatchedquantity").last())
    traded = drop.trades.group_by("orderid", "tradedate").agg(pl.col("quantity").sum())
    j = last.join(traded, left_on=["order_id", "date"], right_on=["orderid", "tradedate"], how="left")
    assert (j["totalmatchedquantity"] == j["quantity"].fill_null(0)).all()


def test_dealsources_and_prices(drop: Drop) -> None:
    t = drop.trades
    assert {1, 20, 44, 46, 47, 48} <= set(t["dealsource"].unique())
    cp = t.filter(pl.col("dealsource").is_in([46, 47, 48]))
    assert (2 * cp["tradeprice"] == cp["nationalbidpricesnapshot"] + cp["nationalofferpricesnapshot"]).all()
    cont = t.filter(~pl.col("dealsource").is_in([20, 45]))  # auction prints: neither side aggressive
    assert set(cont["passiveaggressive"].unique()) == {0, 1}
    assert (
        cont.group_by("matchgroupid").agg(pl.col("passiveaggressive").sum())["passiveaggressive"] == 1
    ).all()


def test_sweeps_cp_then_lit_at_arrival(drop: Drop) -> None:
    """Some sweeps fill in CP and on the lit book at their arrival timestamp; others never fill or fill fully."""
    o, t = drop.orders, drop.trades
    sweeps = o.filter((pl.col("exchangeordertype") & 2048) != 0)
    arrival = sweeps.group_by("order_id").agg(pl.col("timestamp").first().alias("arrival"))
    st = t.join(arrival, left_on="orderid", right_on="order_id").filter(
        pl.col("tradetime") == pl.col("arrival")
    )
    mixed = st.group_by("orderid").agg(pl.col("dealsource").unique())
    assert any({1, 47} <= set(ds) for ds in mixed["dealsource"])
    final = sweeps.group_by("order_id").agg(pl.all().last())
    assert (final["totalmatchedquantity"] == 0).any()
    assert ((final["leavesquantity"] == 0) & (final["changereason"] == 3)).any()


def test_nbbo_has_odd_quotes_and_half_unit_mids(drop: Drop) -> None:
    n = drop.nbbo
    both = n.filter((pl.col("bidprice") > 0) & (pl.col("offerprice") > 0))
    assert (both["bidprice"] > both["offerprice"]).any() and (both["bidprice"] == both["offerprice"]).any()
    assert (n["bidprice"] == -(2**63)).any() or (n["offerprice"] == -(2**63)).any()
    assert ((both["bidprice"] + both["offerprice"]) % 2 == 1).any()
    assert (n["timestamp"] == n["creationtime"]).all()
    assert n["sequence"].to_list() == list(range(1, n.height + 1))


# ---- determinism, gzip, scale, dates --------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", securities=3, days=1, seed=7, scale=("rows", 3000))
    b = generate(tmp_path / "b", securities=3, days=1, seed=7, scale=("rows", 3000))
    c = generate(tmp_path / "c", securities=3, days=1, seed=8, scale=("rows", 3000))
    for kind in KINDS:
        assert a.files[kind].read_bytes() == b.files[kind].read_bytes()
    assert a.files["orders"].read_bytes() != c.files["orders"].read_bytes()


def test_gzip_decompresses_to_the_plain_bytes(tmp_path: Path) -> None:
    plain = generate(tmp_path / "plain", securities=2, days=1, seed=3, scale=("rows", 2000))
    packed = generate(tmp_path / "gz", securities=2, days=1, seed=3, scale=("rows", 2000), gzip=True)
    again = generate(tmp_path / "gz2", securities=2, days=1, seed=3, scale=("rows", 2000), gzip=True)
    for kind in KINDS:
        assert packed.files[kind].name == f"{kind}.csv.gz"
        assert gzip.decompress(packed.files[kind].read_bytes()) == plain.files[kind].read_bytes()
        assert packed.files[kind].read_bytes() == again.files[kind].read_bytes()


@pytest.mark.parametrize("n", [5_000, 40_000])
def test_scale_rows(tmp_path: Path, n: int) -> None:
    summary = generate(tmp_path, securities=4, days=2, seed=1, scale=("rows", n))
    assert abs(summary.rows["orders"] - n) <= 0.15 * n
    assert summary.rows["trades"] > 0.1 * n and summary.rows["nbbo"] > 0.02 * n


def test_scale_bytes(tmp_path: Path) -> None:
    seen: list[int] = []
    summary = generate(
        tmp_path, securities=4, days=2, seed=1, scale=("bytes", 3_000_000), progress=seen.append
    )
    assert abs(summary.bytes["orders"] - 3_000_000) <= 0.15 * 3_000_000
    assert seen and seen == sorted(seen) and seen[-1] == summary.bytes["orders"]


def test_dst_span(tmp_path: Path) -> None:
    """2024-10-06 starts AEDT: local midnight moves from 14:00 to 13:00 UTC and every event keeps its date."""
    summary = generate(tmp_path, securities=3, days=3, start=date(2024, 10, 3), seed=2, scale=("rows", 6000))
    expected = ["2024-10-03", "2024-10-04", "2024-10-07"]
    trades = _read(summary.files["trades"], "trades")
    assert sorted(trades["tradedate"].unique()) == expected
    local_dates = trades.select(_local(pl.col("tradetime")).dt.date().cast(pl.Utf8))["tradetime"]
    assert (local_dates == trades["tradedate"]).all()
    midnights = sorted(_read(summary.files["nbbo"], "nbbo")["tradedate"].unique())
    utc = [datetime.fromtimestamp(ns / 1e9, ZoneInfo("UTC")) for ns in midnights]
    assert [u.hour for u in utc] == [14, 14, 13]  # +10, +10, +11
    assert [u.astimezone(SYDNEY).date().isoformat() for u in utc] == expected
    opens = pl.read_csv(summary.files["session"]).filter(pl.col("Name") == "Open")
    local_open = opens.select(_local(pl.col("Timestamp")))["Timestamp"]
    assert ((local_open.dt.hour() == 10) & (local_open.dt.minute() == 0)).all()


@pytest.mark.slow
def test_200mb_streams_in_bounded_memory(tmp_path: Path) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    summary = generate(tmp_path, securities=20, days=5, seed=9, scale=("bytes", 200_000_000))
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert abs(summary.bytes["orders"] - 200_000_000) <= 0.15 * 200_000_000
    assert grown_mib < 1024

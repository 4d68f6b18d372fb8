"""The real DRR day (110621, 2024-09-05) through the pipeline, against the upstream figures and hand checks.

Upstream figures (data README): 4,193 sweeps whose final event is on 09-05; 1,650 full / 37 partial /
2,506 none by leaves; 1,687 with >= 1 trade; 1,273 qualifying.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import polars as pl
import pytest

from dpsim import schema
from dpsim.config import Config, Filters, Hours
from dpsim.steps.classify import CLASSIFY
from dpsim.steps.lifecycle import LIFECYCLE
from dpsim.steps.metrics import METRICS
from dpsim.steps.pipeline import STEPS, PipelineFrames, build
from dpsim.steps.quotes import QUOTES
from dpsim.tradingtime import local_time_of_day_ns

ALL_HOURS = dataclasses.replace(Config(), filters=Filters(trading_hours=Hours("00:00", "23:59")))
TZ = "Australia/Sydney"


def run(part: dict[str, Any], cfg: Config, has_feed: bool = True) -> tuple[pl.DataFrame, pl.DataFrame]:
    nbbo = part["nbbo"] if has_feed else part["nbbo"].head(0)
    frames: PipelineFrames = build(part["orders"], part["trades"], nbbo, cfg, has_feed)
    cp, sweeps = pl.collect_all([frames.cp_orders, frames.sweeps])
    return cp, sweeps


@pytest.fixture(scope="module")
def default_run(drr_partition) -> tuple[pl.DataFrame, pl.DataFrame]:
    return run(drr_partition, Config())


@pytest.fixture(scope="module")
def all_hours(drr_partition) -> pl.DataFrame:
    return run(drr_partition, ALL_HOURS)[1]


def final_local_date() -> pl.Expr:
    return (
        pl.from_epoch("final_time", time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(TZ)
        .dt.date()
    )


def test_sweeps_table_schema_and_order(default_run) -> None:
    _, sweeps = default_run
    assert sweeps.schema == schema.polars_schema(schema.sweeps_schema(Config().metrics.markout_horizons_s))
    keys = sweeps.select("arrival_time", "arrival_sequence", "order_id")
    assert keys.equals(keys.sort("arrival_time", "arrival_sequence", "order_id"))
    assert sweeps["order_id"].is_unique().all()


def test_steps_deliver_their_declared_columns(drr_partition) -> None:
    frames = build(drr_partition["orders"], drr_partition["trades"], drr_partition["nbbo"], Config(), True)
    assert [s.name for s in STEPS] == ["select", "quotes", "lifecycle", "classify", "metrics"]
    assert dict(frames.quotes.collect_schema()) == dict(QUOTES.adds)
    assert dict(frames.cp_orders.collect_schema()) == dict(LIFECYCLE.adds)
    sweeps = frames.sweeps.collect_schema()
    assert all(sweeps[c] == t for step in (CLASSIFY, METRICS) for c, t in step.adds.items())


def test_partition_counts(default_run, all_hours) -> None:
    cp, sweeps = default_run
    assert cp.height == 8262  # every CP order of the drop (all 28,452 rows have trading date 09-05)
    # Partition-based count with the hours filter off: 4,207 type-2048 orders, 14 more than upstream's 4,193.
    # The 14 are orders reloaded (changereason 30) on the evening of 09-04 and cancelled/purged that same
    # evening: their events are after the 19:00 day roll, so they belong to the 09-05 partition, but their
    # final event has the calendar date 09-04, which is how upstream dated orders. None of them ever traded.
    assert all_hours.height == 4207
    on_0905 = all_hours.filter(final_local_date() == date(2024, 9, 5))
    assert on_0905.height == 4193
    extra = all_hours.filter(final_local_date() == date(2024, 9, 4))
    assert extra.height == 14
    assert extra["has_new_event"].sum() == 0 and extra["filled_quantity"].sum() == 0
    assert extra["group"].unique().to_list() == ["none"]
    # With the default 10:00-16:00 filter, 4,117 sweeps are analysed; 90 are filtered by hours:
    # 25 arrive before 10:00, 45 from 16:00 to 19:00, 20 are overnight reloads (21:22 on 09-04).
    assert sweeps.height == 4117
    hour = local_time_of_day_ns(pl.col("arrival_time"), TZ) / 3_600_000_000_000
    out = all_hours.filter(~pl.col("order_id").is_in(sweeps["order_id"].implode()))
    assert out.height == 90
    buckets = out.select(
        (hour < 10).sum().alias("before_10"),
        ((hour >= 16) & (hour < 19)).sum().alias("after_16"),
        (hour >= 19).sum().alias("reloads"),
    )
    assert buckets.row(0) == (25, 45, 20)
    # The end is exclusive: sweep 7904794000132252046 arrives at 16:00:00.002976437 (t=1725516000002976437) and
    # is out; the last one before 10:00 arrives at 09:59:52.797595249 (7904794000123998994).
    assert 7904794000132252046 in out["order_id"] and 7904794000123998994 in out["order_id"]


def test_groups_trades_and_qualifying_match_upstream(all_hours) -> None:
    s = all_hours.filter(final_local_date() == date(2024, 9, 5))
    groups = dict(s.group_by("group").len().iter_rows())
    assert groups == {"full": 1650, "partial": 37, "none": 2506}
    # "full" (matched >= final quantity) is exactly "final leaves 0" here, as upstream counted it
    assert s.filter(pl.col("group") == "full").equals(s.filter(pl.col("final_leaves") == 0))
    assert s.filter(pl.col("n_fills") >= 1).height == 1687
    assert s["qualifying"].sum() == 1273
    assert all_hours["qualifying"].sum() == 1273  # the 14 reloads never qualify


def test_qualifying_unchanged_by_the_hours_filter(default_run) -> None:
    assert default_run[1]["qualifying"].sum() == 1273


def test_real_metrics_equal_lifecycle_totals(default_run) -> None:
    cp, sweeps = default_run
    cols = ["filled_quantity", "n_fills", "vwap", "first_fill_time", "last_fill_time"]
    joined = sweeps.select("order_id", *cols).join(cp.select("order_id", *cols), on="order_id", suffix="_lc")
    assert joined.height == sweeps.height
    for c in cols:
        assert joined[c].equals(joined[f"{c}_lc"], null_equal=True), c
    assert (sweeps["filled_quantity"] == sweeps["filled_dark"] + sweeps["filled_lit"]).all()


def by_id(df: pl.DataFrame, order_id: int) -> dict[str, Any]:
    return df.filter(pl.col("order_id") == order_id).row(0, named=True)


# Sweep 1, a qualifying buy. orders.csv rows (order_id, timestamp, price, side, changereason, orderstatus,
# quantity, leavesquantity, ordertype, exchangeordertype, national_bid, national_offer, participantid,
# singlefillminimumquantity, minimumquantity, sequence, totalmatchedquantity, row_num):
#   7904794000124202592,1725494661203352848,3360,1,6,2,78,78,1,2048,3350,3360,51,2,0,3435536,0,2861
#   7904794000124202592,1725494661203352848,3360,1,3,2,78,0,1,2048,3350,3360,51,2,0,3435539,78,2862
# trades.csv rows (EXCHANGE,sequence,tradedate,tradetime,securitycode,orderid,dealsource,dealsourcedecoded,
# exchangeinfo,matchgroupid,nationalbid,nationaloffer,tradeprice,quantity,side,sidedecoded,participantid,pa,row_num):
#   3,3435542,2024-09-05,1725494661203352848,110621,7904794000124202592,1,Continuous Lit,ON Market,...605,3350,3360,3360,8,1,Buy,51,1,423
#   3,3435544,2024-09-05,1725494661203352848,110621,7904794000124202592,1,Continuous Lit,ON Market,...606,3350,3360,3360,70,1,Buy,51,1,425
# nbbo.csv: the latest quote at or before arrival is sequence 20 (t=1725494657388226656) 3350/3360.
# Arrival 10:04:21.2 AEST; mid (3350+3360)/2 = 3355; vwap = (8*3360 + 70*3360)/78 = 3360;
# cost = +1*(3360-3355)/3355*1e4 = 14.90 bps; both fills lit continuous (dealsource 1): 0 dark, 78 lit.
SWEEP_1 = 7904794000124202592
# Sweep 2, a buy filled partly in Centre Point (48, dark) then lit (1):
#   7904794000124225738,1725494697326050647,3370,1,6,2,120,120,1,2048,3360,3370,67,0,0,3551892,0,3053
#   7904794000124225738,1725494697326050647,3370,1,3,2,120,0,1,2048,3360,3370,67,0,0,3551895,120,3054
#   3,3551898,2024-09-05,1725494697326050647,110621,7904794000124225738,48,Centre Point UCP,ON Market,...660,3360,3370,3365,7,1,Buy,67,1,453
#   3,3551900,2024-09-05,1725494697326050647,110621,7904794000124225738,1,Continuous Lit,ON Market,...661,3360,3370,3370,113,1,Buy,67,1,455
# nbbo sequence 23 (t=1725494671960979115) 3360/3370 -> mid 3365; vwap = (7*3365 + 113*3370)/120 = 404365/120
# = 3369.7083; cost = (404365/120 - 3365)/3365*1e4 = 13.99 bps; 7 dark, 113 lit; not qualifying (a dark fill).
SWEEP_2 = 7904794000124225738
# Sweep 3, a sell partly filled in Centre Point, the rest cancelled by the system (9):
#   7904794000127175023,1725501379813954419,3430,2,6,2,797,797,1,2048,3420,3440,146,2,0,22215587,0,16186
#   7904794000127175023,1725501379813954419,3430,2,3,2,797,654,1,2048,3420,3440,146,2,0,22215590,143,16187
#   7904794000127175023,1725501379813954419,3430,2,9,2,797,654,1,2048,3420,3440,146,2,0,22215593,143,16188
#   3,22215596,2024-09-05,1725501379813954419,110621,7904794000127175023,47,Centre Point,ON Market,...591,3420,3440,3430,143,2,Sell,146,1,2568
# nbbo sequence 150 (t=1725501379672480533) 3420/3440 -> mid 3430; vwap 3430 (at the mid) -> cost
# -1*(3430-3430) = 0; 143 dark, 0 lit; matched 143 of 797 -> partial; residual after arrival 654 (the last row
# at the arrival timestamp, the cancel); +60 s the mid is 3425 (nbbo seq 164, 3420/3430): markout
# -1*(3425-3430)/3430*1e4 = +14.58 bps.
SWEEP_3 = 7904794000127175023


@pytest.mark.parametrize("has_feed", [True, False])
def test_three_sweeps_by_hand(drr_partition, has_feed) -> None:
    _, sweeps = run(drr_partition, Config(), has_feed)
    s1, s2, s3 = (by_id(sweeps, i) for i in (SWEEP_1, SWEEP_2, SWEEP_3))
    source = (
        "feed" if has_feed else "snapshot"
    )  # without feed: the arrival row's own national bid/offer, same here

    assert (s1["side"], s1["arrival_quantity"], s1["limit_price"], s1["participantid"]) == (1, 78, 3360, 51)
    assert (s1["arrival_bid"], s1["arrival_offer"], s1["arrival_mid"], s1["nbbo_source"]) == (
        3350,
        3360,
        3355.0,
        source,
    )
    assert s1["arrival_spread_bps"] == pytest.approx(10 / 3355 * 1e4)
    assert (s1["n_fills"], s1["filled_quantity"], s1["filled_dark"], s1["filled_lit"], s1["vwap"]) == (
        2,
        78,
        0,
        78,
        3360.0,
    )
    assert s1["arrival_cost_bps"] == pytest.approx(5 / 3355 * 1e4)
    assert (s1["group"], s1["qualifying"], s1["size_bucket"], s1["time_bucket"]) == (
        "full",
        True,
        "tiny",
        "morning",
    )
    assert (s1["residual_after_arrival"], s1["time_to_first_fill_s"], s1["vw_exec_time_s"]) == (0, 0.0, 0.0)

    assert (s2["arrival_mid"], s2["filled_dark"], s2["filled_lit"]) == (3365.0, 7, 113)
    assert s2["vwap"] == pytest.approx(404365 / 120)
    assert s2["arrival_cost_bps"] == pytest.approx((404365 / 120 - 3365) / 3365 * 1e4)
    assert (s2["group"], s2["qualifying"], s2["size_bucket"]) == ("full", False, "small")

    assert (s3["side"], s3["arrival_mid"], s3["vwap"], s3["arrival_cost_bps"]) == (2, 3430.0, 3430.0, 0.0)
    assert (s3["filled_dark"], s3["filled_lit"], s3["group"], s3["qualifying"]) == (143, 0, "partial", False)
    assert (s3["residual_after_arrival"], s3["final_changereason"], s3["final_leaves"]) == (654, 9, 654)
    assert s3["fill_ratio"] == pytest.approx(143 / 797)
    if has_feed:
        assert s3["markout_60s_bps"] == pytest.approx(5 / 3430 * 1e4)


def test_snapshot_mode_keeps_the_classification(drr_partition, default_run) -> None:
    _, with_feed = default_run
    _, without = run(drr_partition, Config(), has_feed=False)
    cols = ["order_id", "group", "qualifying", "filled_quantity", "vwap", "size_bucket", "time_bucket"]
    assert without.select(cols).equals(with_feed.select(cols))
    assert without["nbbo_source"].unique().to_list() == ["snapshot"]

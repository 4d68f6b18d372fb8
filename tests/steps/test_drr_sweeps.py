"""The real DRR day (110621, 2024-09-05) through the measurement pipeline, against the upstream figures, a
second route in plain DuckDB SQL over the raw frames, and hand checks.

Upstream figures (data README), over EVERY sweep (type 2048) of the drop whose final event is on 09-05, not
only the analysed ones: 4,193 sweeps; 1,650 full / 37 partial / 2,506 none by leaves; 1,687 with >= 1 trade
row; 1,273 qualifying. v2 (docs/methodology.md §1, §4): the session opens at the first auction print at or after
10:00 local, 10:02:16.001032398 AEST, and 4,100 sweeps arrive in [open, 16:00): the analysed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import polars as pl
import pytest

from dpsim import schema
from dpsim.config import Config
from dpsim.steps.classify import CLASSIFY, classify_sweeps
from dpsim.steps.lifecycle import LIFECYCLE
from dpsim.steps.metrics import METRICS
from dpsim.steps.pipeline import build
from dpsim.steps.quotes import USABLE_COLUMNS
from dpsim.steps.session import Session, check_dealsources, classified_trades, session_bounds
from dpsim.tradingtime import local_time_of_day_ns

CFG = Config()
TZ = "Australia/Sydney"
DAY = date(2024, 9, 5)
WHOLE_DAY = Session(open=0, close=2**62, open_source="config")  # to classify every sweep, as upstream did
# The default fill classes (docs/methodology.md §2), written out for the SQL route
FILL_CODES = "1, 46, 47, 49, 50, 51, 52, 20, 5"
BOOKING_CODES = "44, 45, 48"


@dataclass(frozen=True)
class Run:
    session: Session
    quotes: pl.DataFrame
    cp: pl.DataFrame
    sweeps: pl.DataFrame
    quality: pl.DataFrame


def run(part: dict[str, Any], has_feed: bool = True) -> Run:
    """The measurement steps as compute_partition runs them (session from the classified trades first)."""
    trades = classified_trades(part["trades"], CFG.codes).collect()
    check_dealsources(trades, "DRR")
    session = session_bounds(trades, DAY, CFG.time)
    nbbo = part["nbbo"] if has_feed else part["nbbo"].head(0)
    frames = build(part["orders"], trades.lazy(), nbbo, session, CFG, has_feed)
    quotes, cp, sweeps, quality = pl.collect_all(
        [frames.usable_quotes, frames.cp_orders, frames.sweeps, frames.quality]
    )
    return Run(session, quotes, cp, sweeps, quality)


@pytest.fixture(scope="module")
def feed(drr_partition) -> Run:
    return run(drr_partition, has_feed=True)


@pytest.fixture(scope="module")
def snapshot(drr_partition) -> Run:
    return run(drr_partition, has_feed=False)


@pytest.fixture(scope="module")
def every_sweep(feed) -> pl.DataFrame:
    """classify_sweeps over the lifecycle of every CP order with a session holding every arrival."""
    return classify_sweeps(feed.cp.lazy(), WHOLE_DAY, CFG).collect()


@pytest.fixture(scope="module")
def sql(drr_partition) -> duckdb.DuckDBPyConnection:
    """The raw partition frames as DuckDB tables (the second route reads only these)."""
    con = duckdb.connect()
    for kind in ("orders", "trades", "nbbo"):
        con.register(kind, drr_partition[kind].collect().to_arrow())
    return con


def query(sql: duckdb.DuckDBPyConnection, text: str, params: Any = None) -> pl.DataFrame:
    return sql.sql(text, params=params).pl()


def final_local_date() -> pl.Expr:
    return (
        pl.from_epoch("final_time", time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(TZ)
        .dt.date()
    )


def by_id(df: pl.DataFrame, order_id: int) -> dict[str, Any]:
    return df.filter(pl.col("order_id") == order_id).row(0, named=True)


# ---- shape ----------------------------------------------------------------------------------------------
def test_sweeps_table_schema_and_order(feed) -> None:
    sweeps = feed.sweeps
    assert sweeps.schema == schema.polars_schema(schema.sweeps_schema(CFG.metrics.horizons_s))
    keys = sweeps.select("arrival_time", "arrival_sequence", "order_id")
    assert keys.equals(keys.sort("arrival_time", "arrival_sequence", "order_id"))
    assert sweeps["order_id"].is_unique().all()


def test_steps_deliver_their_declared_columns(feed) -> None:
    assert dict(feed.quotes.schema) == USABLE_COLUMNS
    assert dict(feed.cp.schema) == dict(LIFECYCLE.adds)
    assert all(feed.sweeps.schema[c] == t for step in (CLASSIFY, METRICS) for c, t in step.adds.items())


# ---- upstream figures: over the lifecycle of every sweep -----------------------------------------------
def test_upstream_counts_over_every_sweep(feed, every_sweep) -> None:
    assert feed.cp.height == 8262  # every CP order of the drop (all 28,452 rows have trading date 09-05)
    # Partition-based count: 4,207 type-2048 orders, 14 more than upstream's 4,193. The 14 are orders
    # reloaded (changereason 30) on the evening of 09-04 and cancelled/purged that same evening: their events
    # are after the 19:00 day roll, so they belong to the 09-05 partition, but their final event has the
    # calendar date 09-04, which is how upstream dated orders. None of them ever traded.
    assert every_sweep.height == 4207
    on_0905 = every_sweep.filter(final_local_date() == DAY)
    assert on_0905.height == 4193
    extra = every_sweep.filter(final_local_date() == date(2024, 9, 4))
    assert extra.height == 14
    assert extra["has_new_event"].sum() == 0 and extra["n_trade_rows"].sum() == 0
    assert extra["group"].unique().to_list() == ["none"]


def test_groups_trades_and_qualifying_match_upstream(every_sweep) -> None:
    s = every_sweep.filter(final_local_date() == DAY)
    groups = dict(s.group_by("group").len().iter_rows())
    assert groups == {"full": 1650, "partial": 37, "none": 2506}
    # "full" (matched >= final quantity) is exactly "final leaves 0" here, as upstream counted it
    assert s.filter(pl.col("group") == "full").equals(s.filter(pl.col("final_leaves") == 0))
    # upstream's "with a trade" is any trade row, booking reports included
    assert s.filter(pl.col("n_trade_rows") >= 1).height == 1687
    # v2: 171 of them traded only by booking reports (UCP), which are not fills
    assert s.filter(pl.col("n_fills") >= 1).height == 1516
    assert s["qualifying"].sum() == 1273
    assert every_sweep["qualifying"].sum() == 1273  # the 14 reloads never qualify


# ---- v2: the session and the analysed sweeps -----------------------------------------------------------
def test_session_opens_at_the_opening_auction_print(feed, sql, local_ns) -> None:
    ten, four = local_ns("2024-09-05 10:00:00"), local_ns("2024-09-05 16:00:00")
    opening = local_ns("2024-09-05 10:02:16", 1_032_398)
    assert (feed.session.open, feed.session.close, feed.session.open_source) == (opening, four, "auction")
    # second route: the first auction (dealsource 20) print in [10:00, 16:00)
    first_print = query(
        sql,
        "SELECT min(timestamp) AS t FROM trades WHERE dealsource = 20 AND timestamp >= ? AND timestamp < ?",
        [ten, four],
    )
    assert first_print["t"].to_list() == [opening]
    q = feed.quality.row(0, named=True)
    assert (q["open"], q["close"], q["open_source"], q["nbbo_source"]) == (opening, four, "auction", "feed")


def analysed_by_sql(sql: duckdb.DuckDBPyConnection, session: Session) -> pl.DataFrame:
    """order_id, arrival_time of every sweep (type & 2048) whose first event lies in [open, close)."""
    return query(
        sql,
        """
        SELECT order_id, min(timestamp) AS arrival_time FROM orders
        WHERE exchangeordertype & 2048 <> 0
        GROUP BY order_id HAVING min(timestamp) >= ? AND min(timestamp) < ?
        ORDER BY order_id
        """,
        [session.open, session.close],
    )


def test_analysed_sweeps_arrive_in_the_session(feed, every_sweep, sql) -> None:
    sweeps = feed.sweeps
    assert sweeps.height == 4100
    second = analysed_by_sql(sql, feed.session)
    assert second.height == 4100
    assert second.equals(sweeps.select("order_id", "arrival_time").sort("order_id"))
    q = feed.quality.row(0, named=True)
    assert (q["n_sweeps"], q["n_sweeps_analysed"], q["n_sweeps_outside_session"]) == (4207, 4100, 107)
    # The 107 others: 25 arrive before 10:00, 17 between 10:00 and the open (v1's 10:00-16:00 clock window
    # analysed them: 4,117), 45 from 16:00 to 19:00, 20 are overnight reloads (21:22 on 09-04).
    out = every_sweep.filter(~pl.col("order_id").is_in(sweeps["order_id"].implode()))
    assert out.height == 107
    hour = local_time_of_day_ns(pl.col("arrival_time"), TZ) / 3_600_000_000_000
    day = (
        pl.from_epoch("arrival_time", time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(TZ)
        .dt.date()
    )
    before_open = (day == DAY) & (pl.col("arrival_time") < feed.session.open)
    buckets = out.select(
        (before_open & (hour < 10)).sum().alias("before_10"),
        (before_open & (hour >= 10)).sum().alias("ten_to_open"),
        ((day == DAY) & (hour >= 16)).sum().alias("after_16"),
        (day < DAY).sum().alias("reloads"),
    )
    assert buckets.row(0) == (25, 17, 45, 20)
    # Both ends: the last sweep before the open arrives at 10:02:12.383897426 and is out; the first analysed
    # one at 10:02:16.146303235; 7904794000132252046 arrives at 16:00:00.002976437 and is out (end exclusive);
    # the last analysed one at 15:59:59.584713343.
    assert 7904794000124128342 in out["order_id"] and 7904794000132252046 in out["order_id"]
    assert (sweeps["order_id"][0], sweeps["arrival_time"][0]) == (7904794000124132444, 1725494536146303235)
    assert (sweeps["order_id"][-1], sweeps["arrival_time"][-1]) == (7904794000132248424, 1725515999584713343)
    # none of the 107 qualifies: the analysed sweeps hold all 1,273
    assert sweeps["qualifying"].sum() == 1273
    assert dict(sweeps.group_by("group").len().iter_rows()) == {"full": 1587, "partial": 37, "none": 2476}


def test_fills_and_booking_reports_by_a_second_route(feed, sql) -> None:
    sweeps = feed.sweeps
    per_order = query(
        sql,
        f"""
        SELECT order_id,
            coalesce(sum(quantity) FILTER (WHERE dealsource IN ({FILL_CODES})), 0) AS filled,
            count(*) FILTER (WHERE dealsource IN ({FILL_CODES})) AS fills,
            coalesce(sum(quantity) FILTER (WHERE dealsource = 1), 0) AS lit,
            coalesce(sum(quantity) FILTER (WHERE dealsource IN (46, 47, 49, 50, 51, 52)), 0) AS dark,
            coalesce(sum(quantity) FILTER (WHERE dealsource = 20), 0) AS auction,
            coalesce(sum(quantity) FILTER (WHERE dealsource = 5), 0) AS reported,
            coalesce(sum(quantity) FILTER (WHERE dealsource IN ({BOOKING_CODES})), 0) AS booking
        FROM trades GROUP BY order_id
        """,
    )
    cols = {
        "filled_quantity": "filled",
        "n_fills": "fills",
        "filled_lit": "lit",
        "filled_dark": "dark",
        "filled_auction": "auction",
        "filled_reported": "reported",
        "booking_quantity": "booking",
    }
    joined = sweeps.select("order_id", *cols).join(per_order, on="order_id", how="left").fill_null(0)
    for ours, theirs in cols.items():
        assert joined[ours].cast(pl.Int64).equals(joined[theirs].cast(pl.Int64)), ours
    totals = sweeps.select(pl.col(*cols).sum()).row(0, named=True)
    # the analysed sweeps' fills: 1,739,854 shares = 1,638,545 lit + 80,142 dark + 21,167 auction + 0 reported;
    # 141,957 shares of booking reports (UCP) are not fills
    assert totals["filled_quantity"] == 1_739_854
    assert (totals["filled_lit"], totals["filled_dark"]) == (1_638_545, 80_142)
    assert (totals["filled_auction"], totals["filled_reported"]) == (21_167, 0)
    assert totals["booking_quantity"] == 141_957
    # 1,624 analysed sweeps have >= 1 trade row; 171 of them only booking reports: 1,453 have a fill
    assert sweeps.filter((pl.col("n_fills") >= 1) | (pl.col("booking_quantity") > 0)).height == 1624
    assert sweeps.filter(pl.col("n_fills") >= 1).height == 1453
    # order size, unfilled, fill ratio: Q = max(largest event quantity, filled) >= filled
    assert (sweeps["order_quantity"] >= sweeps["filled_quantity"]).all()
    assert (sweeps["unfilled_quantity"] == sweeps["order_quantity"] - sweeps["filled_quantity"]).all()


def real_vs_lifecycle(feed: Run, cols: list[str]) -> pl.DataFrame:
    """The sweeps' metric columns (steps.metrics) beside the same columns of their lifecycle rows."""
    sweeps = feed.sweeps.select("order_id", *cols)
    joined = sweeps.join(feed.cp.select("order_id", *cols), on="order_id", suffix="_lc")
    assert joined.height == feed.sweeps.height
    return joined


def test_real_metrics_equal_lifecycle_totals(feed) -> None:
    cols = ["filled_quantity", "n_fills", "first_fill_time", "last_fill_time"]
    joined = real_vs_lifecycle(feed, cols)
    for c in cols:
        assert joined[c].equals(joined[f"{c}_lc"], null_equal=True), c
    sweeps = feed.sweeps
    fills = sum(sweeps[f"filled_{c}"] for c in ("lit", "dark", "auction", "reported"))
    assert (sweeps["filled_quantity"] == fills).all()


def test_real_vwap_equals_lifecycle_vwap(feed) -> None:
    joined = real_vs_lifecycle(feed, ["vwap"])
    assert joined["vwap"].equals(joined["vwap_lc"], null_equal=True)


ARRIVAL_QUOTES_SQL = """
WITH q AS (
    SELECT timestamp AS quote_time, bid, offer FROM {source}
    WHERE timestamp BETWEEN $open AND $close AND bid > 0 AND offer > 0 AND bid < offer
    QUALIFY row_number() OVER (PARTITION BY timestamp ORDER BY sequence DESC) = 1
), s AS (
    SELECT order_id, min(timestamp) AS arrival_time FROM orders WHERE exchangeordertype & 2048 <> 0
    GROUP BY order_id HAVING min(timestamp) >= $open AND min(timestamp) < $close
)
SELECT s.order_id, q.bid, q.offer, (q.bid + q.offer) / 2.0 AS mid, s.arrival_time - q.quote_time AS age_ns
FROM s ASOF LEFT JOIN q ON s.arrival_time > q.quote_time
ORDER BY s.order_id
"""
SNAPSHOT_SOURCE = """(
    SELECT timestamp, sequence, national_bid AS bid, national_offer AS offer FROM orders
    WHERE exchangeordertype & 6464 <> 0
)"""


@pytest.mark.parametrize("has_feed", [True, False])
def test_arrival_quotes_strictly_before_by_a_second_route(feed, snapshot, sql, has_feed) -> None:
    """Every analysed sweep's arrival quote = the latest usable quote (in [open, close], both sides > 0,
    bid < offer; the highest sequence in its nanosecond) STRICTLY before arrival (DuckDB ASOF with >):
    the feed, or the CP order-event rows' snapshots when there is no feed."""
    res = feed if has_feed else snapshot
    text = ARRIVAL_QUOTES_SQL.format(source="nbbo" if has_feed else SNAPSHOT_SOURCE)
    second = query(sql, text, {"open": res.session.open, "close": res.session.close})
    ours = res.sweeps.select(
        "order_id", "arrival_bid", "arrival_offer", "arrival_mid", "arrival_quote_age_s", "nbbo_source"
    ).sort("order_id")
    assert second.height == ours.height == 4100
    assert ours["order_id"].equals(second["order_id"])
    assert ours["arrival_bid"].equals(second["bid"].cast(pl.Int64))
    assert ours["arrival_offer"].equals(second["offer"].cast(pl.Int64))
    assert ours["arrival_mid"].equals(second["mid"].cast(pl.Float64))
    assert (ours["arrival_quote_age_s"] - second["age_ns"] / 1e9).abs().max() < 1e-9
    # every analysed sweep has a usable quote before it on this day
    assert second["mid"].null_count() == 0
    assert ours["nbbo_source"].unique().to_list() == ["feed" if has_feed else "snapshot"]
    assert res.quality["n_sweeps_without_mid"].item() == 0


# Sweep 1, a qualifying buy. orders.csv rows (order_id, exchange, timestamp, security_code, price, side,
# changereason, orderstatus, quantity, leavesquantity, ordertype, exchangeordertype, national_bid,
# national_offer, bid, offer, participantid, preferenceonly, midtick, singlefillminimumquantity,
# minimumquantity, sequence, crossingkey, totalmatchedquantity, shortsellquantity, triggercondition,
# timevaliditydecoded, row_num, timevalidity):
#   7904794000124202592,3,1725494661203352848,110621,3360,1,6,2,78,78,1,2048,3350,3360,3350,3370,51,2,2,2,0,3435536,555,0,0,0,Bouncing,2861,0
#   7904794000124202592,3,1725494661203352848,110621,3360,1,3,2,78,0,1,2048,3350,3360,3350,3360,51,2,2,2,0,3435539,555,78,0,0,Bouncing,2862,0
# trades.csv rows (EXCHANGE,sequence,tradedate,tradetime,securitycode,orderid,dealsource,dealsourcedecoded,
# exchangeinfo,matchgroupid,nationalbid,nationaloffer,tradeprice,quantity,side,sidedecoded,participantid,pa,row_num):
#   3,3435542,2024-09-05,1725494661203352848,110621,7904794000124202592,1,Continuous Lit,ON Market,...605,3350,3360,3360,8,1,Buy,51,1,423
#   3,3435544,2024-09-05,1725494661203352848,110621,7904794000124202592,1,Continuous Lit,ON Market,...606,3350,3360,3360,70,1,Buy,51,1,425
# nbbo.csv (partition,sequence,tradedate,bidprice,creationtime,offerprice,orderbookid,timestamp,...): the
# latest quote strictly before the arrival 1725494661203352848 is sequence 20,
#   1,20,1725456000000000000,3350,1725494657388226656,3360,110621,1725494657388226656,262826,1751364092
# (the next one, sequence 21, is at 1725494666546165710, after it), age 3.815126192 s. Without the feed, the
# latest CP event row strictly before it (its own rows are at the arrival nanosecond) is
#   7904794000124201838,3,1725494660626872109,...,3350,3360,...,3432313,...  -> 3350/3360, age 0.576480739 s.
# Arrival 10:04:21.2 AEST; mid (3350+3360)/2 = 3355; vwap = (8*3360 + 70*3360)/78 = 3360;
# AC = +1*(3360-3355)/3355*1e4 = 14.90 bps = IS (all filled); both fills lit (dealsource 1): 0 dark, 78 lit.
# Price improvement against the far touch (the offer 3360): (3360 - 3360) / 3355 = 0.
SWEEP_1 = 7904794000124202592
# Sweep 2, a buy: 7 shares by a Centre Point UCP booking report (48: not a fill in v2; v1 counted it dark),
# then 113 lit (1):
#   7904794000124225738,3,1725494697326050647,110621,3370,1,6,2,120,120,1,2048,3360,3370,3360,3370,67,0,2,0,0,3551892,1,0,0,0,Bouncing,3053,0
#   7904794000124225738,3,1725494697326050647,110621,3370,1,3,2,120,0,1,2048,3360,3370,3360,3370,67,0,2,0,0,3551895,1,120,0,0,Bouncing,3054,0
#   3,3551898,2024-09-05,1725494697326050647,110621,7904794000124225738,48,Centre Point UCP,ON Market,...660,3360,3370,3365,7,1,Buy,67,1,453
#   3,3551900,2024-09-05,1725494697326050647,110621,7904794000124225738,1,Continuous Lit,ON Market,...661,3360,3370,3370,113,1,Buy,67,1,455
# nbbo sequence 23 (t=1725494671960979115, 3360/3370, the last before 1725494700000000000) -> mid 3365, age
# 25.365071532 s; snapshot: CP event row at 1725494690324459670 (sequence 3538233), 3360/3370, age
# 7.001590977 s. Fills: 113 at 3370, vwap 3370; AC = (3370-3365)/3365*1e4 = 14.86 bps; Q = 120, unfilled 7
# (the booking quantity), m_end = the mid before the final event (the arrival nanosecond) = 3365: OC = 0;
# IS = (113 * 5/3365 + 7 * 0) / 120 * 1e4 = 13.99 bps. Group full (the exchange matched 120 of 120);
# not qualifying (a booking row).
SWEEP_2 = 7904794000124225738
# Sweep 3, a sell partly filled in Centre Point (47), the rest cancelled by the system (9):
#   7904794000127175023,3,1725501379813954419,110621,3430,2,6,2,797,797,1,2048,3420,3440,3420,3440,146,2,2,2,0,22215587,2,0,0,0,Bouncing,16186,0
#   7904794000127175023,3,1725501379813954419,110621,3430,2,3,2,797,654,1,2048,3420,3440,3420,3440,146,2,2,2,0,22215590,2,143,0,0,Bouncing,16187,0
#   7904794000127175023,3,1725501379813954419,110621,3430,2,9,2,797,654,1,2048,3420,3440,3420,3440,146,2,2,2,0,22215593,2,143,0,0,Bouncing,16188,0
#   3,22215596,2024-09-05,1725501379813954419,110621,7904794000127175023,47,Centre Point,ON Market,...591,3420,3440,3430,143,2,Sell,146,1,2568
# nbbo: sequence 150 (t=1725501379672480533) 3420/3440 is the last before the arrival (sequence 151 is at
# 1725501379814123178, after it) -> mid 3430, age 0.141473886 s; snapshot: CP event row at
# 1725501379781137686, 3420/3440, age 0.032816733 s. vwap 3430 (at the mid) -> AC = -1*(3430-3430) = 0;
# 143 dark, 0 lit; matched 143 of 797 -> partial; residual after arrival 654 (the last row at the arrival
# timestamp, the cancel); m_end = 3430 -> OC = 0, IS = 0. ES = 2*-1*(3430-3430)/3430 = 0.
# +60 s (1725501439813954419) the latest quote is sequence 164 (t=1725501404180947332, 3420/3430, mid 3425):
# RS_60 = 2*-1*(3430-3425)/3430*1e4 = -29.15 bps, PI_60 = 2*-1*(3425-3430)/3430*1e4 = +29.15 bps.
# Price improvement against the arrival bid 3420: -1*(3420-3430)/3430*1e4 = +29.15 bps.
SWEEP_3 = 7904794000127175023
BPS = 1e4


@pytest.mark.parametrize("has_feed", [True, False])
def test_three_sweeps_by_hand(feed, snapshot, has_feed) -> None:
    sweeps = (feed if has_feed else snapshot).sweeps
    s1, s2, s3 = (by_id(sweeps, i) for i in (SWEEP_1, SWEEP_2, SWEEP_3))
    source = "feed" if has_feed else "snapshot"
    ages = (3.815126192, 25.365071532, 0.141473886) if has_feed else (0.576480739, 7.001590977, 0.032816733)

    assert (s1["side"], s1["arrival_quantity"], s1["limit_price"], s1["participantid"]) == (1, 78, 3360, 51)
    assert (s1["arrival_bid"], s1["arrival_offer"], s1["arrival_mid"], s1["nbbo_source"]) == (
        3350,
        3360,
        3355.0,
        source,
    )
    assert s1["arrival_quote_age_s"] == pytest.approx(ages[0], rel=1e-12)
    assert s1["arrival_spread_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)
    assert (s1["n_fills"], s1["filled_quantity"], s1["filled_dark"], s1["filled_lit"], s1["vwap"]) == (
        2,
        78,
        0,
        78,
        3360.0,
    )
    assert s1["arrival_cost_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    assert s1["implementation_shortfall_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    assert s1["opportunity_cost_bps"] is None  # nothing unfilled
    assert s1["price_improvement_bps"] == 0.0
    assert (s1["group"], s1["qualifying"], s1["size_bucket"], s1["time_bucket"]) == (
        "full",
        True,
        "tiny",
        "morning",
    )
    assert (s1["residual_after_arrival"], s1["time_to_first_fill_s"], s1["vw_exec_time_s"]) == (0, 0.0, 0.0)

    assert (s2["arrival_bid"], s2["arrival_offer"], s2["arrival_mid"]) == (3360, 3370, 3365.0)
    assert s2["arrival_quote_age_s"] == pytest.approx(ages[1], rel=1e-12)
    assert (s2["filled_dark"], s2["filled_lit"], s2["booking_quantity"], s2["n_fills"]) == (0, 113, 7, 1)
    assert (s2["filled_quantity"], s2["order_quantity"], s2["unfilled_quantity"]) == (113, 120, 7)
    assert s2["fill_ratio"] == pytest.approx(113 / 120, rel=1e-12)
    assert s2["vwap"] == 3370.0
    assert s2["arrival_cost_bps"] == pytest.approx(5 / 3365 * BPS, rel=1e-12)
    assert (s2["end_mid"], s2["opportunity_cost_bps"]) == (3365.0, 0.0)
    assert s2["implementation_shortfall_bps"] == pytest.approx(113 * 5 / 3365 / 120 * BPS, rel=1e-12)
    assert (s2["group"], s2["qualifying"], s2["size_bucket"]) == ("full", False, "small")

    assert (s3["side"], s3["arrival_mid"], s3["vwap"], s3["arrival_cost_bps"]) == (2, 3430.0, 3430.0, 0.0)
    assert s3["arrival_quote_age_s"] == pytest.approx(ages[2], rel=1e-12)
    assert (s3["filled_dark"], s3["filled_lit"], s3["group"], s3["qualifying"]) == (143, 0, "partial", False)
    assert (s3["residual_after_arrival"], s3["final_changereason"], s3["final_leaves"]) == (654, 9, 654)
    assert s3["fill_ratio"] == pytest.approx(143 / 797, rel=1e-12)
    assert (s3["opportunity_cost_bps"], s3["implementation_shortfall_bps"]) == (0.0, 0.0)
    assert s3["effective_spread_bps"] == 0.0
    assert s3["price_improvement_bps"] == pytest.approx(10 / 3430 * BPS, rel=1e-12)
    if has_feed:
        assert s3["realized_spread_60s_bps"] == pytest.approx(-10 / 3430 * BPS, rel=1e-12)
        assert s3["price_impact_60s_bps"] == pytest.approx(10 / 3430 * BPS, rel=1e-12)


def test_snapshot_mode_keeps_the_classification(feed, snapshot) -> None:
    cols = ["order_id", "group", "qualifying", "filled_quantity", "vwap", "size_bucket", "time_bucket"]
    assert snapshot.sweeps.select(cols).equals(feed.sweeps.select(cols))
    assert snapshot.session == feed.session  # the open comes from the trades, not the quotes
    assert snapshot.quality["nbbo_source"].item() == "snapshot"

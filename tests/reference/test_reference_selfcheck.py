"""Self-checks of the the methodology reference on hand-built partitions (expected values worked out by hand).

All hand-built cases are on 2024-09-05, Australia/Sydney (AEST, UTC+10), with no auction print unless
stated, so the session is [10:00, 16:00) local. A quote 3350/3360 has the mid 3355; tick(3350) = 10
(limits ≥ 2000), so half a tick is 5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

import polars as pl
import pytest

from dpsim import schema
from dpsim.errors import InputError

from .domain_v2 import Params, Scenario, local_instant, local_trading_date, reference_partition

DAY = date(2024, 9, 5)
QuoteRows = Callable[[Sequence[dict[str, Any]]], pl.LazyFrame]


@pytest.fixture
def make_quotes() -> QuoteRows:
    """NBBO feed rows (lake columns): give timestamp, bid, offer; sequence defaults to the row position."""
    lake = schema.polars_schema(schema.NBBO.lake_schema)

    def build(rows: Sequence[dict[str, Any]]) -> pl.LazyFrame:
        full = [{c: r.get(c, i + 1 if c == "sequence" else None) for c in lake} for i, r in enumerate(rows)]
        return pl.DataFrame(full, schema=lake).lazy()

    return build


def bps(x: float) -> float:
    return x / 3355 * 1e4  # a price difference in thousandths against the mid 3355, in bps


def run(
    events: pl.LazyFrame, trades: pl.LazyFrame, quotes: pl.LazyFrame, params: Params | None = None
) -> dict[str, Any]:
    return reference_partition(events, trades, quotes, DAY, params or Params())


def one(df: pl.DataFrame, order_id: int) -> dict[str, Any]:
    rows = df.filter(pl.col("order_id") == order_id).to_dicts()
    assert len(rows) == 1
    return rows[0]


# ---------------------------------------------------------------------------------------------------
def test_quote_at_the_events_own_nanosecond_is_not_used(make_events, make_trades, make_quotes, local_ns):
    # R: real CP sell (64) resting from 10:01 to 15:00. S: sweep buy 100 arriving at 10:05:00, cancelled
    # at 10:30. Quotes: 3350/3360 at 10:00 (mid 3355) and 3360/3370 stamped exactly at 10:05:00 (mid 3365).
    t = local_ns
    events = make_events(
        [
            {"order_id": 11, "timestamp": t("2024-09-05 10:01:00"), "exchangeordertype": 64, "side": 2},
            {"order_id": 21, "timestamp": t("2024-09-05 10:05:00")},
            {"order_id": 21, "timestamp": t("2024-09-05 10:30:00"), "changereason": 1, "orderstatus": 2},
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 15:00:00"),
                "exchangeordertype": 64,
                "side": 2,
                "changereason": 1,
                "orderstatus": 2,
            },
        ]
    )
    quotes = [
        {"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360},
        {"timestamp": t("2024-09-05 10:05:00"), "bid": 3360, "offer": 3370},
    ]
    res = run(events, make_trades([]), make_quotes(quotes), Params(scenarios={"baseline": Scenario()}))
    s = one(res["sweeps"], 21)
    # the 10:05:00 quote is the arrival's consequence: the benchmark is the 10:00 quote, 300 s old
    assert (s["arrival_bid"], s["arrival_offer"], s["arrival_mid"]) == (3350, 3360, 3355.0)
    assert s["arrival_quote_age_s"] == 300.0
    # never filled: m_end = prevailing(10:30) = 3365; OC = IS = +10/3355 bps (a buy, the mid went up)
    assert s["filled_quantity"] == 0 and s["end_mid"] == 3365.0
    assert s["opportunity_cost_bps"] == pytest.approx(bps(10))
    assert s["implementation_shortfall_bps"] == pytest.approx(bps(10))
    assert s["arrival_cost_bps"] is None
    # replay: S meets R as incoming at the 10:00 mid 3355, not 3365
    fills = res["sim_fills"]["baseline"].to_dicts()
    assert fills == [
        {
            "sweep_order_id": 21,
            "contra_order_id": 11,
            "role": "incoming",
            "contra_is_sweep": False,
            "timestamp": t("2024-09-05 10:05:00"),
            "quantity": 100,
            "price": 3355.0,
            "mid": 3355.0,
        }
    ]
    so = one(res["sim_orders"]["baseline"], 21)
    # nothing left to rest (100 − 100 filled as incoming); window last_fill → no real fill → final 10:30
    assert so["sim_quantity"] == 0 and so["sim_filled_incoming"] == 100 and so["sim_filled_resting"] == 0
    assert so["sim_window_end"] == t("2024-09-05 10:30:00")
    assert so["sim_vwap"] == 3355.0 and so["sim_arrival_cost_bps"] == 0.0
    assert so["sim_implementation_shortfall_bps"] == 0.0  # all filled at the arrival mid
    assert so["set"] == "sim_only"
    assert so["delta_implementation_shortfall_bps"] == pytest.approx(-bps(10))

    # one nanosecond earlier the second quote is the benchmark and the price: mid 3365
    quotes[1]["timestamp"] -= 1
    res = run(events, make_trades([]), make_quotes(quotes), Params(scenarios={"baseline": Scenario()}))
    assert one(res["sweeps"], 21)["arrival_mid"] == 3365.0
    assert res["sim_fills"]["baseline"]["price"].to_list() == [3365.0]


def test_real_resting_order_ahead_of_a_resting_sweep_fills_first(
    make_events, make_trades, make_quotes, local_ns
):
    # R: real CP buy 100 (4096) at 10:01, really traded out at 10:03 against E (dealsource 47).
    # S: sweep buy 100 at 10:02, on the book, cancelled at 11:00.
    # E: real CP sell 150 at 10:03, not on the book after its arrival.
    t = local_ns
    events = make_events(
        [
            {"order_id": 11, "timestamp": t("2024-09-05 10:01:00"), "exchangeordertype": 4096},
            {"order_id": 21, "timestamp": t("2024-09-05 10:02:00")},
            {
                "order_id": 31,
                "timestamp": t("2024-09-05 10:03:00"),
                "exchangeordertype": 64,
                "side": 2,
                "quantity": 150,
                "leavesquantity": 50,
                "orderstatus": 2,
                "totalmatchedquantity": 100,
            },
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 10:03:00"),
                "exchangeordertype": 4096,
                "changereason": 3,
                "orderstatus": 2,
                "leavesquantity": 0,
                "totalmatchedquantity": 100,
            },
            {"order_id": 21, "timestamp": t("2024-09-05 11:00:00"), "changereason": 1, "orderstatus": 2},
        ]
    )
    trades = make_trades(
        [
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 10:03:00"),
                "dealsource": 47,
                "matchgroupid": 7,
                "side": 1,
                "tradeprice": 3355,
            },
            {
                "order_id": 31,
                "timestamp": t("2024-09-05 10:03:00"),
                "dealsource": 47,
                "matchgroupid": 7,
                "side": 2,
                "tradeprice": 3355,
            },
        ]
    )
    quotes = make_quotes([{"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360}])
    params = Params(scenarios={"baseline": Scenario(), "no_queue": Scenario(real_queue=False)})
    res = run(events, trades, quotes, params)
    # baseline: E (150) meets R first (100; R's window ends at its final event 10:03, inclusive),
    # then S gets 50
    fills = res["sim_fills"]["baseline"].to_dicts()
    assert [
        (f["sweep_order_id"], f["contra_order_id"], f["role"], f["quantity"], f["price"]) for f in fills
    ] == [(21, 31, "resting", 50, 3355.0)]
    base = one(res["sim_orders"]["baseline"], 21)
    assert (base["sim_quantity"], base["sim_filled_resting"], base["sim_filled_incoming"]) == (100, 50, 0)
    # half filled at the mid, the rest marked at the mid before 11:00 (3355): simulated IS 0, real IS 0
    assert (
        base["sim_implementation_shortfall_bps"] == 0.0 and base["delta_implementation_shortfall_bps"] == 0.0
    )
    # no_queue: R never rests, so S gets all 100
    assert one(res["sim_orders"]["no_queue"], 21)["sim_filled_resting"] == 100
    # reality: S does not rest; E fills R 100, exactly the real 47 execution
    fid = res["replay_fidelity"].to_dicts()[0]
    assert fid == {
        "real_cp_quantity": 100,
        "real_cp_executions": 1,
        "replayed_quantity": 100,
        "replayed_matches": 1,
        "reproduced_quantity": 100,
        "real_pairs": 1,
        "reproduced_pairs": 1,
        "fidelity": 1.0,
        "preferencing_quantity": 0,
        "cp_booking_quantity": 0,
    }


def test_midtick_half_tick_through_the_limit(make_events, make_trades, make_quotes, local_ns):
    # Mid 3355; limit 3350 has tick 10, half tick 5.
    # R1: real buy, limit 3350, midtick 2 (10:01). R2: real buy, limit 3350, midtick 1 (10:02).
    # S: sweep sell 100, no limit (10:03, incoming): 3350 ≥ 3355 fails for R1; 3350 + 5 ≥ 3355 holds for R2.
    # S2: sweep buy 100, limit 3350, midtick 2, resting from 10:04 to 11:00. E: real sell 100 at 10:05.
    t = local_ns
    real_buy = {"exchangeordertype": 64, "price": 3350}
    events = make_events(
        [
            {"order_id": 11, "timestamp": t("2024-09-05 10:01:00"), "midtick": 2, **real_buy},
            {"order_id": 12, "timestamp": t("2024-09-05 10:02:00"), "midtick": 1, **real_buy},
            {"order_id": 21, "timestamp": t("2024-09-05 10:03:00"), "side": 2},
            {"order_id": 22, "timestamp": t("2024-09-05 10:04:00"), "price": 3350, "midtick": 2},
            {
                "order_id": 31,
                "timestamp": t("2024-09-05 10:05:00"),
                "exchangeordertype": 64,
                "side": 2,
                "orderstatus": 2,
            },
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 11:00:00"),
                "side": 2,
                "changereason": 1,
                "orderstatus": 2,
            },
            {
                "order_id": 22,
                "timestamp": t("2024-09-05 11:00:00"),
                "price": 3350,
                "midtick": 2,
                "changereason": 1,
                "orderstatus": 2,
            },
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 15:00:00"),
                "midtick": 2,
                "changereason": 1,
                "orderstatus": 2,
                **real_buy,
            },
            {
                "order_id": 12,
                "timestamp": t("2024-09-05 15:00:00"),
                "midtick": 1,
                "changereason": 1,
                "orderstatus": 2,
                **real_buy,
            },
        ]
    )
    quotes = make_quotes([{"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360}])
    params = Params(
        scenarios={
            "baseline": Scenario(),
            "midtick": Scenario(sweep_midtick=True),
            "ignore_limit": Scenario(ignore_sweep_limit=True),
        }
    )
    res = run(events, make_trades([]), quotes, params)

    def fills(name: str) -> list[tuple[int, int, str, int, float]]:
        f = res["sim_fills"][name]
        cols = ("sweep_order_id", "contra_order_id", "role", "quantity", "price")
        return list(zip(*(f[c].to_list() for c in cols), strict=True))

    # baseline: S skips R1 (midtick 2) and fills R2 (midtick 1) half a tick through its limit;
    # S2 (midtick 2, limit 3350) refuses E at 3355, and R1 refuses E too
    assert fills("baseline") == [(21, 12, "incoming", 100, 3355.0)]
    # midtick scenario: the analysed sweep S2 accepts the half tick (R1, a real order, still does not)
    assert fills("midtick") == [(21, 12, "incoming", 100, 3355.0), (22, 31, "resting", 100, 3355.0)]
    # ignore_limit: S2 has no limit at all
    assert fills("ignore_limit") == [(21, 12, "incoming", 100, 3355.0), (22, 31, "resting", 100, 3355.0)]


def test_fill_and_kill_sweep_never_rests(make_events, make_trades, make_quotes, local_ns):
    # S1: sweep buy 100 at 10:01, not on the book after arrival (status 2: fill-and-kill, nothing filled).
    # S2: the same but on the book (status 1) until 11:00. E: real sell 100 at 10:03.
    t = local_ns
    events = make_events(
        [
            {"order_id": 21, "timestamp": t("2024-09-05 10:01:00"), "orderstatus": 2, "timevalidity": 0},
            {"order_id": 22, "timestamp": t("2024-09-05 10:02:00")},
            {
                "order_id": 31,
                "timestamp": t("2024-09-05 10:03:00"),
                "exchangeordertype": 64,
                "side": 2,
                "orderstatus": 2,
            },
            {"order_id": 22, "timestamp": t("2024-09-05 11:00:00"), "changereason": 1, "orderstatus": 2},
        ]
    )
    quotes = make_quotes([{"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360}])
    params = Params(scenarios={"baseline": Scenario(), "eod": Scenario(window="end_of_day", quantity="full")})
    res = run(events, make_trades([]), quotes, params)
    assert res["sweeps"]["rests"].to_list() == [False, True]
    for name in ("baseline", "eod"):
        s1, s2 = one(res["sim_orders"][name], 21), one(res["sim_orders"][name], 22)
        assert (s1["sim_quantity"], s1["sim_filled_quantity"], s1["set"]) == (0, 0, "neither")
        assert (s2["sim_quantity"], s2["sim_filled_resting"]) == (100, 100)
        assert res["sim_fills"][name]["sweep_order_id"].to_list() == [22]
    # the window end is reported also for the sweep that did not rest: no fill → its final event (10:01)
    assert one(res["sim_orders"]["baseline"], 21)["sim_window_end"] == t("2024-09-05 10:01:00")
    assert one(res["sim_orders"]["eod"], 21)["sim_window_end"] == local_instant(
        DAY, Params().close, "Australia/Sydney"
    )


def test_pre_open_incoming_order_matches_nothing(make_events, make_trades, make_quotes, local_ns):
    # Opening auction print at 10:04:00 → open = 10:04 (not the configured 10:00).
    # R: real sell 100 resting from 09:50 (pre-open entry, on the book) to 15:00.
    # S0: sweep buy at 10:02 (before the open: not analysed, matches nothing).
    # E: real buy 100 at 10:03 (before the open): matches nothing, then rests.
    # S: sweep buy 100 at 10:06: meets R at the 10:04:30 mid 3365 (the 10:00 quote is stale).
    t = local_ns
    events = make_events(
        [
            {"order_id": 11, "timestamp": t("2024-09-05 09:50:00"), "exchangeordertype": 64, "side": 2},
            {"order_id": 20, "timestamp": t("2024-09-05 10:02:00")},
            {"order_id": 12, "timestamp": t("2024-09-05 10:03:00"), "exchangeordertype": 64},
            {"order_id": 21, "timestamp": t("2024-09-05 10:06:00")},
            {"order_id": 20, "timestamp": t("2024-09-05 10:30:00"), "changereason": 1, "orderstatus": 2},
            {"order_id": 21, "timestamp": t("2024-09-05 11:00:00"), "changereason": 1, "orderstatus": 2},
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 15:00:00"),
                "exchangeordertype": 64,
                "side": 2,
                "changereason": 1,
                "orderstatus": 2,
            },
            {
                "order_id": 12,
                "timestamp": t("2024-09-05 15:00:00"),
                "exchangeordertype": 64,
                "changereason": 1,
                "orderstatus": 2,
            },
        ]
    )
    trades = make_trades(
        [
            {
                "order_id": 901,
                "timestamp": t("2024-09-05 10:04:00"),
                "dealsource": 20,
                "side": 1,
                "matchgroupid": 5,
            },
            {
                "order_id": 902,
                "timestamp": t("2024-09-05 10:04:00"),
                "dealsource": 20,
                "side": 2,
                "matchgroupid": 5,
            },
        ]
    )
    quotes = make_quotes(
        [
            {"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360},
            {"timestamp": t("2024-09-05 10:04:30"), "bid": 3360, "offer": 3370},
        ]
    )
    res = run(events, trades, quotes, Params(scenarios={"baseline": Scenario()}))
    q = res["quality"].to_dicts()[0]
    assert (q["open"], q["open_source"]) == (t("2024-09-05 10:04:00"), "auction")
    assert (q["n_quotes"], q["n_stale_quotes"], q["n_usable_quotes"]) == (2, 1, 1)
    assert (q["n_sweeps"], q["n_sweeps_analysed"], q["n_sweeps_outside_session"]) == (2, 1, 1)
    assert q["quantity_auction"] == 100  # one execution, counted once
    assert res["sweeps"]["order_id"].to_list() == [21]
    assert one(res["sweeps"], 21)["arrival_mid"] == 3365.0
    # reality: E (10:03) did not take R; the only match is S (incoming in reality too) with R
    fid = res["replay_fidelity"].to_dicts()[0]
    assert (fid["replayed_matches"], fid["replayed_quantity"]) == (1, 100)
    f = res["sim_fills"]["baseline"].to_dicts()
    assert [(r["sweep_order_id"], r["contra_order_id"], r["role"], r["price"]) for r in f] == [
        (21, 11, "incoming", 3365.0)
    ]


def test_impact_moves_the_price_for_sweep_vs_real_not_sweep_vs_sweep(
    make_events, make_trades, make_quotes, local_ns
):
    # S1: sweep buy 100 resting 10:01–11:00. E1: real sell 50 at 10:02. S2: sweep sell 50 at 10:03 (incoming
    # only: not on the book after arrival). impact 5 bps against the sweep: S1 (buy) pays 3355 · 1.0005
    # = 3356.6775 to E1; S2 vs S1 (both analysed) trade at the mid 3355.
    t = local_ns
    events = make_events(
        [
            {"order_id": 21, "timestamp": t("2024-09-05 10:01:00")},
            {
                "order_id": 31,
                "timestamp": t("2024-09-05 10:02:00"),
                "exchangeordertype": 64,
                "side": 2,
                "quantity": 50,
                "leavesquantity": 50,
                "orderstatus": 2,
            },
            {
                "order_id": 22,
                "timestamp": t("2024-09-05 10:03:00"),
                "side": 2,
                "quantity": 50,
                "leavesquantity": 50,
                "orderstatus": 2,
            },
            {"order_id": 21, "timestamp": t("2024-09-05 11:00:00"), "changereason": 1, "orderstatus": 2},
        ]
    )
    quotes = make_quotes([{"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360}])
    res = run(events, make_trades([]), quotes, Params(scenarios={"impact_5bps": Scenario(impact_bps=5)}))
    rows = res["sim_fills"]["impact_5bps"].to_dicts()
    got = [
        (r["sweep_order_id"], r["contra_order_id"], r["role"], r["contra_is_sweep"], r["quantity"])
        for r in rows
    ]
    assert got == [
        (21, 31, "resting", False, 50),
        (21, 22, "resting", True, 50),
        (22, 21, "incoming", True, 50),
    ]
    assert rows[0]["price"] == pytest.approx(3356.6775) and rows[0]["mid"] == 3355.0
    assert [r["price"] for r in rows[1:]] == [3355.0, 3355.0]
    # S1: VWAP (50 · 3356.6775 + 50 · 3355) / 100 = 3355.83875 → simulated arrival cost = IS = 2.5 bps;
    # real: never filled, marked at 3355 → 0; delta +2.5
    s1 = one(res["sim_orders"]["impact_5bps"], 21)
    assert s1["sim_vwap"] == pytest.approx(3355.83875)
    assert s1["sim_implementation_shortfall_bps"] == pytest.approx(2.5)
    assert s1["delta_implementation_shortfall_bps"] == pytest.approx(2.5)
    assert one(res["sim_orders"]["impact_5bps"], 22)["sim_arrival_cost_bps"] == 0.0


def test_ucp_booking_row_is_not_a_fill(make_events, make_trades, make_quotes, local_ns):
    # S: sweep buy 100 at 10:01; 30 filled in CP (47) at 10:02, 20 "matched" by a CP UCP booking (48) at
    # 10:03; cancelled at 10:10 with matched 50, leaves 50. Quotes: 3355 mid from 10:00, 3365 from 10:05.
    t = local_ns
    events = make_events(
        [
            {"order_id": 21, "timestamp": t("2024-09-05 10:01:00")},
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 10:02:00"),
                "changereason": 3,
                "leavesquantity": 70,
                "totalmatchedquantity": 30,
            },
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 10:03:00"),
                "changereason": 3,
                "leavesquantity": 50,
                "totalmatchedquantity": 50,
            },
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 10:10:00"),
                "changereason": 1,
                "orderstatus": 2,
                "leavesquantity": 50,
                "totalmatchedquantity": 50,
            },
        ]
    )
    trades = make_trades(
        [
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 10:02:00"),
                "dealsource": 47,
                "quantity": 30,
                "tradeprice": 3355,
                "side": 1,
                "matchgroupid": 1,
            },
            {
                "order_id": 41,
                "timestamp": t("2024-09-05 10:02:00"),
                "dealsource": 47,
                "quantity": 30,
                "tradeprice": 3355,
                "side": 2,
                "matchgroupid": 1,
            },
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 10:03:00"),
                "dealsource": 48,
                "quantity": 20,
                "tradeprice": 3355,
                "side": 1,
                "matchgroupid": 2,
            },
            {
                "order_id": 42,
                "timestamp": t("2024-09-05 10:03:00"),
                "dealsource": 48,
                "quantity": 20,
                "tradeprice": 3355,
                "side": 2,
                "matchgroupid": 2,
            },
        ]
    )
    quotes = make_quotes(
        [
            {"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360},
            {"timestamp": t("2024-09-05 10:05:00"), "bid": 3360, "offer": 3370},
        ]
    )
    res = run(events, trades, quotes, Params(scenarios={"baseline": Scenario()}))
    s = one(res["sweeps"], 21)
    assert (s["filled_quantity"], s["filled_dark"], s["booking_quantity"], s["n_fills"]) == (30, 30, 20, 1)
    assert (s["order_quantity"], s["unfilled_quantity"], s["fill_ratio"]) == (100, 70, 0.3)
    assert (s["matched_quantity"], s["group"], s["qualifying"]) == (50, "partial", False)  # exchange's view
    assert s["last_fill_time"] == t("2024-09-05 10:02:00")  # the booking at 10:03 is not a fill
    # AC = 0 (filled at the arrival mid); OC = +10/3355 (m_end = prevailing(10:10) = 3365) on 70 of 100
    assert s["arrival_cost_bps"] == 0.0
    assert s["implementation_shortfall_bps"] == pytest.approx(0.7 * bps(10))
    assert one(res["sim_orders"]["baseline"], 21)["sim_window_end"] == t("2024-09-05 10:02:00")
    q = res["quality"].to_dicts()[0]
    assert (q["quantity_dark"], q["quantity_booking"]) == (30, 20)
    fid = res["replay_fidelity"].to_dicts()[0]
    # the 47 contra (41) is not a CP order of the partition: no real CP execution; booking reported apart
    assert (fid["real_cp_quantity"], fid["fidelity"], fid["cp_booking_quantity"]) == (0, None, 20)


def test_unfilled_opportunity_cost_and_implementation_shortfall(
    make_events, make_trades, make_quotes, local_ns
):
    # Quotes: mid 3355 from 10:00, 3375 from 10:30, 3385 from 15:00.
    # A: sweep sell 100 at 10:10, 40 filled lit at 3350 at its arrival, 60 left on the book, cancelled 11:00.
    # B: sweep buy 100 at 10:10:01, nothing filled, cancelled 11:00.
    # C: sweep buy 100 at 10:10:02, nothing filled, still on the book after its last event (an amend, 11:00).
    t = local_ns
    ta = t("2024-09-05 10:10:00")
    events = make_events(
        [
            {"order_id": 21, "timestamp": ta, "side": 2, "orderstatus": 2},
            {
                "order_id": 21,
                "timestamp": ta,
                "side": 2,
                "changereason": 3,
                "leavesquantity": 60,
                "totalmatchedquantity": 40,
            },
            {"order_id": 22, "timestamp": t("2024-09-05 10:10:01")},
            {"order_id": 23, "timestamp": t("2024-09-05 10:10:02")},
            {
                "order_id": 21,
                "timestamp": t("2024-09-05 11:00:00"),
                "side": 2,
                "changereason": 1,
                "orderstatus": 2,
                "leavesquantity": 60,
                "totalmatchedquantity": 40,
            },
            {"order_id": 22, "timestamp": t("2024-09-05 11:00:00"), "changereason": 1, "orderstatus": 2},
            {"order_id": 23, "timestamp": t("2024-09-05 11:00:00"), "changereason": 5},
        ]
    )
    trades = make_trades(
        [
            {"order_id": 21, "timestamp": ta, "dealsource": 1, "quantity": 40, "tradeprice": 3350, "side": 2},
            {
                "order_id": 999,
                "timestamp": ta,
                "dealsource": 1,
                "quantity": 40,
                "tradeprice": 3350,
                "side": 1,
            },
        ]
    )
    quotes = make_quotes(
        [
            {"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360},
            {"timestamp": t("2024-09-05 10:30:00"), "bid": 3370, "offer": 3380},
            {"timestamp": t("2024-09-05 15:00:00"), "bid": 3380, "offer": 3390},
        ]
    )
    res = run(events, trades, quotes, Params(scenarios={"baseline": Scenario()}))
    a, b, c = (one(res["sweeps"], i) for i in (21, 22, 23))
    # A (sell, s = −1): AC = −(3350 − 3355)/3355 = +5 → 14.90 bps; m_end = prevailing(11:00) = 3375,
    # OC = −(3375 − 3355)/3355 = −20 → −59.61 bps;
    # IS = (40 · 5 + 60 · (−20)) / 100 = −10 → −29.81 bps
    assert a["arrival_cost_bps"] == pytest.approx(bps(5))
    assert a["opportunity_cost_bps"] == pytest.approx(bps(-20))
    assert a["implementation_shortfall_bps"] == pytest.approx(bps(-10))
    assert (a["fill_ratio"], a["end_mid"]) == (0.4, 3375.0)
    assert a["effective_spread_bps"] == pytest.approx(bps(10))  # 2 · (−1) · (3350 − 3355)
    assert a["realized_spread_300s_bps"] == pytest.approx(bps(10)) and a["price_impact_300s_bps"] == 0.0
    # price improvement against the far touch (bid 3350 for a sell): −(3350 − 3350) = 0.0, not −0.0
    assert a["price_improvement_bps"] == 0.0 and math.copysign(1.0, a["price_improvement_bps"]) == 1.0
    # B: nothing filled → AC null, IS = OC = +20 → 59.61 bps
    assert b["arrival_cost_bps"] is None and b["vwap"] is None and b["fill_ratio"] == 0.0
    assert b["implementation_shortfall_bps"] == pytest.approx(bps(20))
    # C: still working → m_end = prevailing(close) = 3385 → IS = +30 → 89.42 bps
    assert c["end_mid"] == 3385.0 and c["implementation_shortfall_bps"] == pytest.approx(bps(30))
    # A simulated (baseline): the lit fill at its arrival stays; its window ends at its last fill (10:10),
    # so B (10:10:01) cannot reach it; the 60 unfilled are marked at prevailing(10:10) = 3355 → OC 0;
    # sim IS = 40 · 5 / 100 = 2 → 5.96 bps; delta = 2 − (−10) = 12 → 35.77 bps
    sa = one(res["sim_orders"]["baseline"], 21)
    assert (sa["sim_filled_quantity"], sa["sim_filled_resting"], sa["sim_quantity"]) == (40, 0, 60)
    assert sa["sim_end_mid"] == 3355.0 and sa["sim_opportunity_cost_bps"] == 0.0
    assert sa["sim_implementation_shortfall_bps"] == pytest.approx(bps(2))
    assert sa["delta_implementation_shortfall_bps"] == pytest.approx(bps(12))
    assert sa["set"] == "both"
    # C simulated: window last_fill → no fill → final event 11:00 → marked at 3375 (not the close)
    sc = one(res["sim_orders"]["baseline"], 23)
    assert sc["sim_implementation_shortfall_bps"] == pytest.approx(bps(20))
    assert sc["delta_implementation_shortfall_bps"] == pytest.approx(bps(-10))


def test_maq_single_and_first_fill(make_events, make_trades, make_quotes, local_ns):
    # R1: real buy 300, MAQ 200 single-fill (10:01). R2: real buy 100, MAQ 50 first fill only (10:02).
    # E1 sell 60 (10:03): R1 refused (60 < 200), R2 fills 60 (≥ 50). E2 sell 30 (10:04): R1 refused,
    # R2 fills 30 (< 50 but not its first fill). E3 sell 250 (10:05): R1 fills 250 (≥ 200).
    t = local_ns
    buy = {"exchangeordertype": 64}
    sell = {"exchangeordertype": 64, "side": 2, "orderstatus": 2}
    events = make_events(
        [
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 10:01:00"),
                "quantity": 300,
                "leavesquantity": 300,
                "minimumquantity": 200,
                "singlefillminimumquantity": 1,
                **buy,
            },
            {"order_id": 12, "timestamp": t("2024-09-05 10:02:00"), "minimumquantity": 50, **buy},
            {"order_id": 31, "timestamp": t("2024-09-05 10:03:00"), "quantity": 60, **sell},
            {"order_id": 32, "timestamp": t("2024-09-05 10:04:00"), "quantity": 30, **sell},
            {"order_id": 33, "timestamp": t("2024-09-05 10:05:00"), "quantity": 250, **sell},
            {
                "order_id": 11,
                "timestamp": t("2024-09-05 15:00:00"),
                "changereason": 1,
                "orderstatus": 2,
                **buy,
            },
            {
                "order_id": 12,
                "timestamp": t("2024-09-05 15:00:00"),
                "changereason": 1,
                "orderstatus": 2,
                **buy,
            },
        ]
    )

    def execution(group: int, buy_id: int, sell_id: int, qty: int) -> list[dict[str, Any]]:
        base = {
            "timestamp": t("2024-09-05 10:05:00"),
            "dealsource": 47,
            "quantity": qty,
            "matchgroupid": group,
        }
        return [{**base, "order_id": buy_id, "side": 1}, {**base, "order_id": sell_id, "side": 2}]

    # real CP executions: (12, 31) 60, (12, 32) 30, (11, 33) 250, and (11, 31) 60 that the replay refuses
    trades = make_trades(
        execution(1, 12, 31, 60)
        + execution(2, 12, 32, 30)
        + execution(3, 11, 33, 250)
        + execution(4, 11, 31, 60)
    )
    quotes = make_quotes([{"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360}])
    res = run(events, trades, quotes, Params(scenarios={}))
    fid = res["replay_fidelity"].to_dicts()[0]
    assert (fid["replayed_matches"], fid["replayed_quantity"]) == (3, 340)
    assert (fid["real_cp_quantity"], fid["real_cp_executions"], fid["real_pairs"]) == (400, 4, 4)
    assert (fid["reproduced_quantity"], fid["reproduced_pairs"]) == (340, 3)
    assert fid["fidelity"] == pytest.approx(0.85)


def test_max_quote_age_and_unknown_dealsource(make_events, make_trades, make_quotes, local_ns):
    t = local_ns
    events = make_events([{"order_id": 21, "timestamp": t("2024-09-05 10:05:00"), "orderstatus": 2}])
    quotes = make_quotes([{"timestamp": t("2024-09-05 10:00:00"), "bid": 3350, "offer": 3360}])
    # a 300 s old quote with max_quote_age_s = 60 counts as none
    res = run(events, make_trades([]), quotes, Params(max_quote_age_s=60, scenarios={}))
    s = one(res["sweeps"], 21)
    assert (s["arrival_mid"], s["nbbo_source"], s["implementation_shortfall_bps"]) == (None, "none", None)
    assert res["quality"]["n_sweeps_without_mid"].to_list() == [1]
    bad = make_trades([{"order_id": 21, "timestamp": t("2024-09-05 10:05:00"), "dealsource": 99}])
    with pytest.raises(InputError, match="99"):
        run(events, bad, quotes)


def test_trading_date_day_roll(local_ns):
    p = Params()
    assert local_trading_date(local_ns("2024-09-04 18:59:59"), p) == date(2024, 9, 4)
    assert local_trading_date(local_ns("2024-09-04 19:00:00"), p) == date(2024, 9, 5)
    # DST-aware: 16:00 local on a summer day is 05:00 UTC (UTC+11)
    assert local_instant(date(2024, 12, 2), p.close, p.timezone) == local_ns("2024-12-02 16:00:00")


# ---------------------------------------------------------------------------------------------------
def test_drr_day_runs_and_is_sane(drr_partition):
    key = drr_partition["key"]
    orders, trades, nbbo = (drr_partition[k].collect() for k in ("orders", "trades", "nbbo"))
    params = Params()
    start = time.perf_counter()
    res = reference_partition(orders, trades, nbbo, key.date, params)
    elapsed = time.perf_counter() - start
    assert elapsed < 60

    # the session open, worked out here from the trades: first auction print (20) in [10:00, 16:00) local
    t_open = local_instant(key.date, params.open, params.timezone)
    t_close = local_instant(key.date, params.close, params.timezone)
    auction = trades.filter(
        (pl.col("dealsource") == 20) & (pl.col("timestamp") >= t_open) & (pl.col("timestamp") < t_close)
    )
    open_ = auction["timestamp"].min()
    q = res["quality"].to_dicts()[0]
    assert (q["open"], q["close"], q["open_source"], q["nbbo_source"]) == (open_, t_close, "auction", "feed")

    # sweeps arriving in [open, close)
    arrivals = (
        orders.filter((pl.col("exchangeordertype") & 2048) != 0)
        .sort("timestamp", "sequence", "row_num")
        .group_by("order_id", maintain_order=True)
        .first()
    )
    in_session = arrivals.filter((pl.col("timestamp") >= open_) & (pl.col("timestamp") < t_close))
    sweeps = res["sweeps"]
    assert sweeps.height == in_session.height == q["n_sweeps_analysed"]
    assert q["n_sweeps"] == arrivals.height == 4207  # README: 4,207 type-2048 orders
    assert sorted(sweeps["order_id"].to_list()) == sorted(in_session["order_id"].to_list())
    assert sweeps["qualifying"].sum() <= 1273  # README: 1,273 qualifying sweeps over the whole day

    fid = res["replay_fidelity"].to_dicts()[0]
    assert 0 < fid["fidelity"] <= 1
    assert fid["reproduced_quantity"] <= min(fid["real_cp_quantity"], fid["replayed_quantity"])
    assert set(res["sim_orders"]) == set(params.scenarios) == set(res["sim_fills"])
    ids = set(sweeps["order_id"].to_list())
    for name, so in res["sim_orders"].items():
        assert so.height == sweeps.height and set(so["order_id"].to_list()) == ids, name
        assert (so["sim_filled_resting"] <= so["sim_quantity"]).all(), name
        assert so["delta_implementation_shortfall_bps"].null_count() == 0, name  # every sweep has a mid here
        assert set(res["sim_fills"][name]["sweep_order_id"].to_list()) <= ids, name

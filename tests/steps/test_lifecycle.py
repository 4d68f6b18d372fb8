"""One row per CP order: arrival, post-arrival, final state and trade totals (DOMAIN §5.2)."""

from __future__ import annotations

import polars as pl

from dpsim.config import Codes
from dpsim.steps.lifecycle import LIFECYCLE, LIFECYCLE_COLUMNS, order_lifecycle
from dpsim.steps.quotes import quote_series

LONG_MIN = -(2**63)


def lifecycle(events: pl.LazyFrame, trades: pl.LazyFrame) -> dict[int, dict]:
    quotes = quote_series(
        pl.LazyFrame(
            schema={"timestamp": pl.Int64, "sequence": pl.Int64, "bid": pl.Int64, "offer": pl.Int64}
        ),
        events,
        trades,
    )
    out = LIFECYCLE(events, trades, quotes, False, Codes()).collect()
    assert dict(out.schema) == LIFECYCLE_COLUMNS
    return {r["order_id"]: r for r in out.iter_rows(named=True)}


def test_arrival_post_arrival_and_final_with_shared_timestamps(make_events, make_trades) -> None:
    t0, t1 = 1_000, 2_000
    # Order 1: three events at t0 (new -> immediate dark fill of 400 -> rests with 600), filled at t1.
    # Given out of order on purpose: the step must sort by (timestamp, sequence).
    events = make_events(
        [
            {
                "order_id": 1,
                "timestamp": t1,
                "sequence": 40,
                "changereason": 3,
                "orderstatus": 2,
                "quantity": 1000,
                "leavesquantity": 0,
                "totalmatchedquantity": 1000,
                "price": 3400,
            },
            {
                "order_id": 1,
                "timestamp": t0,
                "sequence": 30,
                "changereason": 6,
                "orderstatus": 1,
                "quantity": 1000,
                "leavesquantity": 600,
                "totalmatchedquantity": 400,
                "price": 3400,
            },
            {
                "order_id": 1,
                "timestamp": t0,
                "sequence": 10,
                "changereason": 6,
                "orderstatus": 2,
                "quantity": 1000,
                "leavesquantity": 1000,
                "price": 3400,
                "side": 2,
                "participantid": 7,
                "minimumquantity": 500,
                "singlefillminimumquantity": 1,
            },
            {
                "order_id": 1,
                "timestamp": t0,
                "sequence": 20,
                "changereason": 3,
                "orderstatus": 2,
                "quantity": 1000,
                "leavesquantity": 600,
                "totalmatchedquantity": 400,
                "price": 3400,
            },
        ]
    )
    trades = make_trades(
        [
            # 400 at 3355 in Centre Point (dark, 47) at t0, 600 at 3360 lit (1) at t1
            {
                "order_id": 1,
                "timestamp": t0,
                "tradeprice": 3355,
                "quantity": 400,
                "dealsource": 47,
                "side": 2,
            },
            {"order_id": 1, "timestamp": t1, "tradeprice": 3360, "quantity": 600, "dealsource": 1, "side": 2},
            {
                "order_id": 99,
                "timestamp": t1,
                "tradeprice": 3360,
                "quantity": 600,
            },  # contra side, not a CP order
        ]
    )
    o = lifecycle(events, trades)
    assert set(o) == {1}
    r = o[1]
    # arrival = sequence 10 (first of t0): side/participant/MAQ come from that row
    assert (r["arrival_time"], r["arrival_sequence"], r["arrival_quantity"], r["limit_price"]) == (
        t0,
        10,
        1000,
        3400,
    )
    assert (r["side"], r["participantid"], r["maq"], r["maq_single"]) == (2, 7, 500, True)
    # post-arrival = last event at t0 = sequence 30: 600 left after the immediate fill
    assert r["residual_after_arrival"] == 600
    # final = t1 row
    assert (r["final_time"], r["final_changereason"], r["final_status"], r["final_leaves"]) == (t1, 3, 2, 0)
    assert (r["matched_quantity"], r["final_quantity"], r["has_new_event"]) == (1000, 1000, True)
    # trades: 2 fills, 1000 shares, 400 dark / 600 lit, vwap = (400*3355 + 600*3360)/1000 = 3358000/1000
    assert (r["n_fills"], r["filled_quantity"], r["filled_dark"], r["filled_lit"]) == (2, 1000, 400, 600)
    assert r["vwap"] == 3358.0
    assert (r["first_fill_time"], r["last_fill_time"]) == (t0, t1)
    assert r["all_fills_lit_continuous"] is False  # the dark fill breaks it


def test_duplicated_event_line_and_unfilled_order(make_events, make_trades) -> None:
    # Order 2: new at 10, user cancel at 20 written twice verbatim (same sequence and row_num), as in the
    # DRR export. Leaves are not zeroed on cancel: final_leaves stays 500.
    cancel = {
        "order_id": 2,
        "timestamp": 20,
        "sequence": 7,
        "row_num": 41000,
        "changereason": 1,
        "orderstatus": 2,
        "quantity": 500,
        "leavesquantity": 500,
    }
    events = make_events(
        [
            {"order_id": 2, "timestamp": 10, "sequence": 5, "quantity": 500, "leavesquantity": 500},
            cancel,
            cancel,
        ]
    )
    r = lifecycle(events, make_trades([]))[2]
    assert (r["arrival_time"], r["residual_after_arrival"]) == (10, 500)
    assert (r["final_time"], r["final_changereason"], r["final_leaves"], r["matched_quantity"]) == (
        20,
        1,
        500,
        0,
    )
    # no trades: zero counts, no prices, not "all lit continuous"
    assert (r["n_fills"], r["filled_quantity"], r["filled_dark"], r["filled_lit"]) == (0, 0, 0, 0)
    assert (r["vwap"], r["first_fill_time"], r["all_fills_lit_continuous"]) == (None, None, False)


def test_overnight_reload(make_events, make_trades, local_ns) -> None:
    # Order 3 was entered on an earlier day and reloaded (changereason 30) on the evening of 2024-09-04
    # (21:22 local, trading date 09-05 by the 19:00 roll): the reload is its arrival in this partition; it has
    # no changereason 6 event. Then an amend (5) on 09-05 and a cancel.
    t_reload = local_ns("2024-09-04 21:22:21")
    t_amend = local_ns("2024-09-05 10:30:00")
    t_cancel = local_ns("2024-09-05 11:00:00")
    events = make_events(
        [
            {
                "order_id": 3,
                "timestamp": t_reload,
                "changereason": 30,
                "orderstatus": 2,
                "quantity": 258,
                "leavesquantity": 258,
                "minimumquantity": LONG_MIN,
            },
            {
                "order_id": 3,
                "timestamp": t_reload,
                "changereason": 30,
                "orderstatus": 1,
                "quantity": 258,
                "leavesquantity": 258,
                "minimumquantity": LONG_MIN,
            },
            {"order_id": 3, "timestamp": t_amend, "changereason": 5, "quantity": 200, "leavesquantity": 200},
            {
                "order_id": 3,
                "timestamp": t_cancel,
                "changereason": 1,
                "orderstatus": 2,
                "quantity": 200,
                "leavesquantity": 200,
            },
        ]
    )
    r = lifecycle(events, make_trades([]))[3]
    assert (r["arrival_time"], r["arrival_quantity"], r["residual_after_arrival"]) == (t_reload, 258, 258)
    assert r["maq"] == 0  # Long.MIN = no MAQ
    assert r["maq_single"] is False  # singlefillminimumquantity 2
    assert r["has_new_event"] is False
    assert (r["final_time"], r["final_changereason"], r["final_quantity"]) == (t_cancel, 1, 200)


def test_maq_normalisation(make_events, make_trades) -> None:
    # minimumquantity null, Long.MIN, 0, -5 -> 0 (no MAQ); 300 -> 300.
    maqs = {10: None, 11: LONG_MIN, 12: 0, 13: -5, 14: 300}
    events = make_events([{"order_id": i, "timestamp": i, "minimumquantity": m} for i, m in maqs.items()])
    out = lifecycle(events, make_trades([]))
    assert {i: out[i]["maq"] for i in maqs} == {10: 0, 11: 0, 12: 0, 13: 0, 14: 300}


def test_output_order_is_arrival_order(make_events, make_trades) -> None:
    # same arrival time: by arrival sequence, then order id
    events = make_events(
        [
            {"order_id": 5, "timestamp": 100, "sequence": 2},
            {"order_id": 4, "timestamp": 100, "sequence": 2},
            {"order_id": 6, "timestamp": 100, "sequence": 1},
            {"order_id": 7, "timestamp": 50, "sequence": 9},
        ]
    )
    quotes = quote_series(
        pl.LazyFrame(
            schema={"timestamp": pl.Int64, "sequence": pl.Int64, "bid": pl.Int64, "offer": pl.Int64}
        ),
        events,
        make_trades([]),
    )
    out = order_lifecycle(events, make_trades([]), quotes, False, Codes()).collect()
    assert out["order_id"].to_list() == [7, 6, 4, 5]

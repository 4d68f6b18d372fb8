"""One row per CP order: arrival, post-arrival, final state and trade totals by fill class (docs/methodology.md §2, §5)."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim.config import Codes
from dpsim.errors import InputError
from dpsim.steps.lifecycle import LIFECYCLE, LIFECYCLE_COLUMNS, order_lifecycle
from dpsim.steps.quotes import FEED, USABLE_COLUMNS
from dpsim.steps.session import classified_trades

LONG_MIN = -(2**63)
BIG = 7904794000131579632  # a 19-digit id: must come through exactly (never through float64)
NO_QUOTES = pl.LazyFrame(schema=USABLE_COLUMNS)


def lifecycle(events: pl.LazyFrame, trades: pl.LazyFrame) -> dict[int, dict]:
    out = LIFECYCLE(events, classified_trades(trades, Codes()), NO_QUOTES, FEED, None).collect()
    assert dict(out.schema) == LIFECYCLE_COLUMNS
    return {r["order_id"]: r for r in out.iter_rows(named=True)}


def test_arrival_post_arrival_and_final_with_shared_timestamps(make_events, make_trades) -> None:
    t0, t1 = 1_000, 2_000
    # Order BIG: three events at t0 (new -> immediate dark fill of 400 -> rests with 600), filled at t1.
    # Given out of order on purpose: the step must sort by (timestamp, sequence).
    events = make_events(
        [
            {
                "order_id": BIG,
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
                "order_id": BIG,
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
                "order_id": BIG,
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
                "midtick": 4,
                "timevalidity": 0,
            },
            {
                "order_id": BIG,
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
                "order_id": BIG,
                "timestamp": t0,
                "tradeprice": 3355,
                "quantity": 400,
                "dealsource": 47,
                "side": 2,
            },
            {
                "order_id": BIG,
                "timestamp": t1,
                "tradeprice": 3360,
                "quantity": 600,
                "dealsource": 1,
                "side": 2,
            },
            # the contra side, not a CP order (linked by order id only)
            {"order_id": 99, "timestamp": t1, "tradeprice": 3360, "quantity": 600, "sequence": 40},
        ]
    )
    o = lifecycle(events, trades)
    assert set(o) == {BIG}
    r = o[BIG]
    # arrival = sequence 10 (first of t0): side/participant/MAQ/midtick/validity come from that row
    assert (r["arrival_time"], r["arrival_sequence"], r["arrival_quantity"], r["limit_price"]) == (
        t0,
        10,
        1000,
        3400,
    )
    assert (r["side"], r["participantid"], r["maq"], r["maq_single"]) == (2, 7, 500, True)
    assert (r["midtick"], r["timevalidity"], r["exchangeordertype"]) == (4, 0, 2048)
    # post-arrival = last event at t0 = sequence 30: 600 left after the immediate fill, on the book
    assert (r["residual_after_arrival"], r["rests"]) == (600, True)
    # final = t1 row
    assert (r["final_time"], r["final_changereason"], r["final_status"], r["final_leaves"]) == (t1, 3, 2, 0)
    assert (r["matched_quantity"], r["final_quantity"], r["has_new_event"]) == (1000, 1000, True)
    # trades: 2 fills, 1000 shares, 400 dark / 600 lit, vwap = (400*3355 + 600*3360)/1000 = 3358000/1000
    assert (r["n_fills"], r["filled_quantity"], r["filled_dark"], r["filled_lit"]) == (2, 1000, 400, 600)
    assert (r["filled_auction"], r["filled_reported"], r["booking_quantity"]) == (0, 0, 0)
    assert r["vwap"] == 3358.0
    assert (r["first_fill_time"], r["last_fill_time"]) == (t0, t1)
    assert (r["n_trade_rows"], r["all_trades_lit"]) == (2, False)  # the dark fill breaks "all lit"
    # Q = max(largest quantity 1000, filled 1000); nothing unfilled
    assert (r["order_quantity"], r["unfilled_quantity"]) == (1000, 0)


def test_fill_classes_and_booking_reports(make_events, make_trades) -> None:
    # A fill-and-kill order (post-arrival status 2: it does not rest) with one trade row of each class.
    # Order size 1000; the booking rows (44 Lit UCP, 48 CP UCP) are not fills.
    t0, t1, t2 = 1_000, 2_000, 3_000
    events = make_events(
        [
            {"order_id": BIG, "timestamp": t0, "quantity": 1000, "leavesquantity": 1000, "orderstatus": 2},
            {
                "order_id": BIG,
                "timestamp": t0,
                "changereason": 3,
                "orderstatus": 2,
                "quantity": 1000,
                "leavesquantity": 0,
                "totalmatchedquantity": 1000,
            },
        ]
    )
    rows = [
        (t0, 44, 3360, 50),  # booking, earlier than every fill: not the first fill time
        (t1, 1, 3360, 100),  # lit
        (t1, 46, 3355, 200),  # dark (CP preferencing)
        (t1, 20, 3350, 300),  # auction
        (t1, 5, 3340, 150),  # reported
        (t2, 48, 3355, 70),  # booking, later than every fill: not the last fill time
    ]
    trades = make_trades(
        [
            {"order_id": BIG, "timestamp": t, "dealsource": d, "tradeprice": p, "quantity": q}
            for t, d, p, q in rows
        ]
    )
    r = lifecycle(events, trades)[BIG]
    assert (r["residual_after_arrival"], r["rests"]) == (0, False)
    assert (r["filled_lit"], r["filled_dark"], r["filled_auction"], r["filled_reported"]) == (
        100,
        200,
        300,
        150,
    )
    # fills: 100 + 200 + 300 + 150 = 750 in 4 rows; booking 50 + 70 = 120 in 2 more trade rows
    assert (r["filled_quantity"], r["n_fills"], r["booking_quantity"], r["n_trade_rows"]) == (750, 4, 120, 6)
    # vwap over the fills only: (100*3360 + 200*3355 + 300*3350 + 150*3340) / 750
    # = (336,000 + 671,000 + 1,005,000 + 501,000) / 750 = 2,513,000 / 750
    assert r["vwap"] == pytest.approx(2_513_000 / 750, rel=1e-12)
    assert (r["first_fill_time"], r["last_fill_time"]) == (t1, t1)
    # Q = max(1000, 750) = 1000; unfilled 250 (the booking quantity counts as unfilled)
    assert (r["order_quantity"], r["unfilled_quantity"]) == (1000, 250)
    assert r["all_trades_lit"] is False
    # the matched quantity is the exchange's (booking included): 1000
    assert r["matched_quantity"] == 1000


def test_booking_reports_only_is_no_fill(make_events, make_trades) -> None:
    # One CP UCP booking row (48) and no fill: no fill totals at all, exactly as for an order without trades.
    events = make_events([{"order_id": BIG, "timestamp": 10}])
    trades = make_trades(
        [{"order_id": BIG, "timestamp": 10, "dealsource": 48, "tradeprice": 3355, "quantity": 40}]
    )
    r = lifecycle(events, trades)[BIG]
    assert (r["n_fills"], r["filled_quantity"], r["booking_quantity"], r["n_trade_rows"]) == (0, 0, 40, 1)
    assert (r["first_fill_time"], r["last_fill_time"]) == (None, None)
    assert r["vwap"] is None


def test_duplicated_event_line_and_unfilled_order(make_events, make_trades) -> None:
    # Order BIG: new at 10, user cancel at 20 written twice verbatim (same sequence and row_num), as in the
    # DRR export. Leaves are not zeroed on cancel: final_leaves stays 500.
    cancel = {
        "order_id": BIG,
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
            {"order_id": BIG, "timestamp": 10, "sequence": 5, "quantity": 500, "leavesquantity": 500},
            cancel,
            cancel,
        ]
    )
    o = lifecycle(events, make_trades([]))
    assert list(o) == [BIG]  # one row, whatever the duplicate
    r = o[BIG]
    assert (r["arrival_time"], r["residual_after_arrival"], r["rests"]) == (10, 500, True)
    assert (r["final_time"], r["final_changereason"], r["final_leaves"], r["matched_quantity"]) == (
        20,
        1,
        500,
        0,
    )
    # no trades: zero counts, no prices, not "all trades lit"
    assert (r["n_fills"], r["filled_quantity"], r["filled_dark"], r["filled_lit"]) == (0, 0, 0, 0)
    assert (r["booking_quantity"], r["n_trade_rows"]) == (0, 0)
    assert (r["vwap"], r["first_fill_time"], r["all_trades_lit"]) == (None, None, False)
    assert (r["order_quantity"], r["unfilled_quantity"]) == (500, 500)


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
    assert r["rests"] is True  # the second reload row puts it on the book
    assert r["maq"] == 0  # Long.MIN = no MAQ
    assert r["maq_single"] is False  # singlefillminimumquantity 2
    assert r["has_new_event"] is False
    assert (r["final_time"], r["final_changereason"], r["final_quantity"]) == (t_cancel, 1, 200)
    # amended down 258 -> 200: the order size is still the largest quantity, 258
    assert r["order_quantity"] == 258


def test_maq_normalisation(make_events, make_trades) -> None:
    # minimumquantity null, Long.MIN, 0, -5 -> 0 (no MAQ); 300 -> 300. singlefillminimumquantity 1 only
    # means single-fill; 2, 0 and null do not.
    maqs = {10: None, 11: LONG_MIN, 12: 0, 13: -5, 14: 300}
    singles = {10: 1, 11: 2, 12: 0, 13: None, 14: 1}
    events = make_events(
        [
            {"order_id": i, "timestamp": i, "minimumquantity": m, "singlefillminimumquantity": singles[i]}
            for i, m in maqs.items()
        ]
    )
    out = lifecycle(events, make_trades([]))
    assert {i: out[i]["maq"] for i in maqs} == {10: 0, 11: 0, 12: 0, 13: 0, 14: 300}
    assert {i: out[i]["maq_single"] for i in maqs} == {10: True, 11: False, 12: False, 13: False, 14: True}


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
    out = order_lifecycle(
        events, classified_trades(make_trades([]), Codes()), NO_QUOTES, FEED, None
    ).collect()
    assert out["order_id"].to_list() == [7, 6, 4, 5]


def test_step_rejects_an_event_frame_without_row_num(make_events) -> None:
    # row_num breaks (timestamp, sequence) ties in the event order: the step needs it, by name.
    events = make_events([{"order_id": 1, "timestamp": 1}]).drop("row_num")
    with pytest.raises(InputError, match=r"step 'lifecycle'.*row_num \(missing\)"):
        LIFECYCLE(events, pl.LazyFrame(), NO_QUOTES, FEED, None)

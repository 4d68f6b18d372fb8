"""Session, fill classes, analysed sweeps, groups, qualifying and buckets (docs/methodology.md §1, §2, §4, §5)."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import polars as pl
import pytest

from dpsim.config import Codes, Config, Filters, TimeConfig
from dpsim.errors import InputError
from dpsim.steps.classify import CLASSIFY, classify_sweeps
from dpsim.steps.lifecycle import LIFECYCLE_COLUMNS
from dpsim.steps.session import Session, check_dealsources, classified_trades, executions, session_bounds

# A qualifying sweep: traded out (3, leaves 0), has a new event, one lit trade row.
BASE: dict[str, Any] = {
    "order_id": 1,
    "side": 1,
    "participantid": 1,
    "exchangeordertype": 2048,
    "arrival_time": 0,
    "arrival_sequence": 1,
    "arrival_quantity": 500,
    "order_quantity": 500,
    "limit_price": 3360,
    "maq": 0,
    "maq_single": False,
    "residual_after_arrival": 0,
    "rests": False,
    "final_time": 0,
    "final_changereason": 3,
    "final_status": 2,
    "final_leaves": 0,
    "final_quantity": 500,
    "matched_quantity": 500,
    "has_new_event": True,
    "n_fills": 1,
    "filled_quantity": 500,
    "filled_lit": 500,
    "filled_dark": 0,
    "filled_auction": 0,
    "filled_reported": 0,
    "booking_quantity": 0,
    "unfilled_quantity": 0,
    "n_trade_rows": 1,
    "all_trades_lit": True,
}
# Classification rules apart from the session: a session holding every arrival of these tests.
WHOLE_DAY = Session(open=0, close=2**62, open_source="config")
CFG = Config()


def classify(
    rows: list[dict[str, Any]], session: Session = WHOLE_DAY, cfg: Config = CFG
) -> dict[int, dict[str, Any]]:
    full = [{c: r.get(c, BASE.get(c)) for c in LIFECYCLE_COLUMNS} for r in rows]
    out = CLASSIFY(pl.LazyFrame(full, schema=LIFECYCLE_COLUMNS), session, cfg).collect()
    return {r["order_id"]: r for r in out.iter_rows(named=True)}


def row(order_id: int, **changes: Any) -> dict[str, Any]:
    return {**BASE, "order_id": order_id, **changes}


def session_of(day: str, trades: pl.LazyFrame, time_cfg: TimeConfig = CFG.time) -> Session:
    return session_bounds(classified_trades(trades, Codes()).collect(), date.fromisoformat(day), time_cfg)


def test_only_sweeps_by_bitmask(local_ns) -> None:
    t = local_ns("2024-09-05 11:00:00")
    types = {1: 2048, 2: 2050, 3: 4098, 4: 64, 5: 4096}
    got = classify([row(i, exchangeordertype=ty, arrival_time=t) for i, ty in types.items()])
    assert set(got) == {1, 2}  # 2048 and 2050 (sweep + short sell); 4098 = block + short sell is not


@pytest.mark.parametrize("day", ["2024-09-05", "2024-10-08"])  # AEST (+10) and AEDT (+11)
def test_analysed_session_local_start_inclusive_end_exclusive(local_ns, make_trades, day) -> None:
    # No auction print: the session is [time.open, time.close) = [10:00, 16:00) local, DST-aware.
    session = session_of(day, make_trades([]))
    assert (session.open, session.close, session.open_source) == (
        local_ns(f"{day} 10:00:00"),
        local_ns(f"{day} 16:00:00"),
        "config",
    )
    arrivals = {
        1: local_ns(f"{day} 09:59:59", 999_999_999),  # out: one ns before 10:00
        2: local_ns(f"{day} 10:00:00"),  # in
        3: local_ns(f"{day} 15:59:59", 999_000_000),  # in: 15:59:59.999
        4: local_ns(f"{day} 16:00:00"),  # out: end exclusive
        5: local_ns(f"{day} 16:30:00"),  # out (the prototype's "hour <= 16" kept it)
    }
    got = classify([row(i, arrival_time=t) for i, t in arrivals.items()], session)
    assert set(got) == {2, 3}


def test_session_opens_at_the_first_auction_print(local_ns, make_trades) -> None:
    # As on the DRR day: the opening auction prints at 10:02:16.001032398, and the session opens there.
    day = "2024-09-05"
    t_open = local_ns(f"{day} 10:02:16", 1_032_398)
    trades = make_trades(
        [
            {"order_id": 90, "timestamp": local_ns(f"{day} 09:59:59"), "dealsource": 20},  # before 10:00
            {"order_id": 91, "timestamp": local_ns(f"{day} 10:01:00"), "dealsource": 45},  # booking, never
            {"order_id": 92, "timestamp": local_ns(f"{day} 10:01:30"), "dealsource": 1},  # lit
            {"order_id": 93, "timestamp": t_open, "dealsource": 20},  # the opening print
            {"order_id": 94, "timestamp": local_ns(f"{day} 10:05:00"), "dealsource": 20},
        ]
    )
    session = session_of(day, trades)
    assert (session.open, session.close, session.open_source) == (
        t_open,
        local_ns(f"{day} 16:00:00"),
        "auction",
    )
    arrivals = {
        1: local_ns(f"{day} 10:00:00"),  # out: after 10:00 but before the open (v1 analysed it)
        2: t_open - 1,  # out
        3: t_open,  # in: the open is inclusive
        4: local_ns(f"{day} 10:03:00"),  # in
    }
    got = classify([row(i, arrival_time=t) for i, t in arrivals.items()], session)
    assert set(got) == {3, 4}


def test_closing_auction_never_sets_the_open(local_ns, make_trades) -> None:
    # Auction prints at and after 16:00 (the closing auction): not in [10:00, 16:00), so open = 10:00.
    day = "2024-09-05"
    trades = make_trades(
        [
            {"order_id": 90, "timestamp": local_ns(f"{day} 16:00:00"), "dealsource": 20},
            {"order_id": 91, "timestamp": local_ns(f"{day} 16:10:00"), "dealsource": 20},
        ]
    )
    session = session_of(day, trades)
    assert (session.open, session.open_source) == (local_ns(f"{day} 10:00:00"), "config")
    # a configured open moves the window and the print search with it
    later = dataclasses.replace(CFG.time, open="10:05")
    session = session_of(day, trades, later)
    assert (session.open, session.open_source) == (local_ns(f"{day} 10:05:00"), "config")


def test_fill_classes_and_unknown_dealsource(make_trades) -> None:
    codes = {1: "lit", 46: "dark", 47: "dark", 20: "auction", 5: "reported", 44: "booking", 48: "booking"}
    trades = make_trades([{"order_id": i, "timestamp": i, "dealsource": d} for i, d in enumerate(codes)])
    classified = classified_trades(trades, Codes()).collect()
    assert dict(zip(classified["dealsource"], classified["fill_class"], strict=True)) == codes
    check_dealsources(classified, "partition x")  # every code known: no error
    unknown = classified_trades(make_trades([{"order_id": 1, "timestamp": 1, "dealsource": 99}]), Codes())
    with pytest.raises(InputError, match=r"partition x: dealsource 99 .*codes\.fill_classes"):
        check_dealsources(unknown.collect(), "partition x")


def test_executions_one_row_per_match_group(make_trades) -> None:
    # the two rows of one execution share matchgroupid; a row without one is its own execution
    rows = [
        (5, 11, 1, 47, 100),  # matchgroupid, order_id, side, dealsource, quantity
        (5, 12, 2, 47, 100),
        (3, 22, 2, 1, 50),
        (3, 21, 1, 1, 50),
        (None, 31, 1, 48, 7),
    ]
    trades = make_trades(
        [
            {"matchgroupid": g, "order_id": o, "side": side, "dealsource": d, "quantity": q, "timestamp": 1}
            for g, o, side, d, q in rows
        ]
    )
    out = executions(classified_trades(trades, Codes())).collect()
    assert out.columns == ["dealsource", "fill_class", "quantity", "buy_id", "sell_id"]
    assert sorted(out.rows(), key=lambda r: r[2]) == [
        (48, "booking", 7, 31, None),
        (1, "lit", 50, 21, 22),
        (47, "dark", 100, 11, 12),
    ]


def test_fixed_offset_would_be_wrong_on_a_dst_day(local_ns, make_trades) -> None:
    # 2024-10-08 16:30 AEDT = 05:30 UTC; a fixed +10 h offset reads 15:30 and would keep it.
    session = session_of("2024-10-08", make_trades([]))
    got = classify([row(1, arrival_time=local_ns("2024-10-08 16:30:00"))], session)
    assert got == {}


def test_participant_filter_is_not_applied_here(local_ns) -> None:
    # v2: the filter selects which rows are reported (when results are written); the replay needs every
    # analysed sweep, so classification keeps them all (v1 dropped participant 8 here).
    t = local_ns("2024-09-05 11:00:00")
    cfg = dataclasses.replace(CFG, filters=Filters(participants=(7, 9)))
    got = classify(
        [row(1, participantid=7, arrival_time=t), row(2, participantid=8, arrival_time=t)], cfg=cfg
    )
    assert set(got) == {1, 2}


def test_groups_from_the_final_event() -> None:
    got = classify(
        [
            row(1, matched_quantity=0, final_leaves=500, final_changereason=1),  # none
            row(2, matched_quantity=500),  # full: matched 500 >= final quantity 500
            row(3, matched_quantity=200, final_leaves=300, final_changereason=9),  # partial: 0 < 200 < 500
            # amended down 1000 -> 600 and then filled 600: full against the FINAL quantity (600), although
            # less than the arrival quantity (1000)
            row(4, arrival_quantity=1000, final_quantity=600, matched_quantity=600),
            # the exchange's view: 100 matched of 100 is full even when 40 of it was a booking report
            row(5, final_quantity=100, matched_quantity=100, filled_quantity=60, booking_quantity=40),
        ]
    )
    assert {i: r["group"] for i, r in got.items()} == {
        1: "none",
        2: "full",
        3: "partial",
        4: "full",
        5: "full",
    }


@pytest.mark.parametrize(
    ("changes", "qualifies"),
    [
        ({}, True),
        ({"final_changereason": 9}, False),  # final event not a trade
        ({"final_leaves": 10}, False),  # something left
        ({"has_new_event": False}, False),  # reloaded order, never entered today
        ({"n_trade_rows": 0, "n_fills": 0, "all_trades_lit": False}, False),  # no trade at all
        ({"n_trade_rows": 2, "n_fills": 2, "all_trades_lit": False}, False),  # a fill that was not lit
        # a lit fill and a booking report (UCP): every trade row must be lit, booking rows included
        ({"n_trade_rows": 2, "n_fills": 1, "booking_quantity": 40, "all_trades_lit": False}, False),
    ],
)
def test_qualifying_each_condition(changes, qualifies) -> None:
    assert classify([row(1, **changes)])[1]["qualifying"] is qualifies


def test_size_buckets_max_inclusive_by_order_quantity() -> None:
    # by order_quantity (the largest quantity of the order's events), not the arrival quantity (1 here)
    sizes = {1: 1, 2: 100, 3: 101, 4: 1000, 5: 1001, 6: 10000, 7: 10001}
    got = classify([row(i, order_quantity=q, arrival_quantity=1) for i, q in sizes.items()])
    assert {i: r["size_bucket"] for i, r in got.items()} == {
        1: "tiny",
        2: "tiny",
        3: "small",
        4: "small",
        5: "medium",
        6: "medium",
        7: "large",
    }


def test_time_buckets_start_inclusive(local_ns) -> None:
    times = {
        1: local_ns("2024-09-05 10:00:00"),
        2: local_ns("2024-09-05 11:59:59", 999_999_999),
        3: local_ns("2024-09-05 12:00:00"),
        4: local_ns("2024-09-05 15:00:00"),
        5: local_ns("2024-09-05 15:59:59"),
        6: local_ns("2024-09-05 16:00:00"),  # outside every bucket (kept here: the whole-day session)
        7: local_ns("2024-09-04 21:22:21"),  # overnight reload
        8: local_ns("2024-10-08 12:30:00"),  # AEDT: a fixed +10 h would read 11:30, morning
        9: local_ns("2024-10-08 15:30:00"),  # AEDT: a fixed +10 h would read 14:30, midday
    }
    got = classify([row(i, arrival_time=t) for i, t in times.items()])
    assert {i: r["time_bucket"] for i, r in got.items()} == {
        1: "morning",
        2: "morning",
        3: "midday",
        4: "afternoon",
        5: "afternoon",
        6: None,
        7: None,
        8: "midday",
        9: "afternoon",
    }


def test_classify_keeps_lifecycle_columns() -> None:
    out = classify_sweeps(pl.LazyFrame([BASE], schema=LIFECYCLE_COLUMNS), WHOLE_DAY, CFG).collect_schema()
    assert list(out)[: len(LIFECYCLE_COLUMNS)] == list(LIFECYCLE_COLUMNS)
    assert list(out)[len(LIFECYCLE_COLUMNS) :] == ["group", "qualifying", "size_bucket", "time_bucket"]


def test_step_rejects_a_frame_without_order_quantity() -> None:
    # v1 frames had no order_quantity (buckets were by arrival quantity): refused by name
    lf = pl.LazyFrame([BASE], schema=LIFECYCLE_COLUMNS).drop("order_quantity")
    with pytest.raises(InputError, match=r"step 'classify'.*order_quantity \(missing\)"):
        CLASSIFY(lf, WHOLE_DAY, CFG)

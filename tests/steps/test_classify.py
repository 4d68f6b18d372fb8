"""Sweep selection, trading-hours filter, fill groups, qualification and buckets (DOMAIN §5.1, §5.3)."""

from __future__ import annotations

import dataclasses
from typing import Any

import polars as pl
import pytest

from dpsim.config import Config, Filters, Hours
from dpsim.steps.classify import CLASSIFY, classify_sweeps
from dpsim.steps.lifecycle import LIFECYCLE_COLUMNS

# A qualifying sweep: traded out (3, leaves 0), has a new event, one lit continuous fill.
BASE: dict[str, Any] = {
    "order_id": 1,
    "side": 1,
    "participantid": 1,
    "exchangeordertype": 2048,
    "arrival_time": 0,
    "arrival_sequence": 1,
    "arrival_quantity": 500,
    "limit_price": 3360,
    "maq": 0,
    "maq_single": False,
    "residual_after_arrival": 0,
    "final_time": 0,
    "final_changereason": 3,
    "final_status": 2,
    "final_leaves": 0,
    "final_quantity": 500,
    "matched_quantity": 500,
    "has_new_event": True,
    "n_fills": 1,
    "filled_quantity": 500,
    "filled_dark": 0,
    "filled_lit": 500,
    "all_fills_lit_continuous": True,
}
ALL_HOURS = dataclasses.replace(Config(), filters=Filters(trading_hours=Hours("00:00", "23:59")))


def classify(rows: list[dict[str, Any]], cfg: Config = ALL_HOURS) -> dict[int, dict[str, Any]]:
    full = [{c: r.get(c, BASE.get(c)) for c in LIFECYCLE_COLUMNS} for r in rows]
    out = CLASSIFY(pl.LazyFrame(full, schema=LIFECYCLE_COLUMNS), cfg).collect()
    return {r["order_id"]: r for r in out.iter_rows(named=True)}


def row(order_id: int, **changes: Any) -> dict[str, Any]:
    return {**BASE, "order_id": order_id, **changes}


def test_only_sweeps_by_bitmask(local_ns) -> None:
    t = local_ns("2024-09-05 11:00:00")
    types = {1: 2048, 2: 2050, 3: 4098, 4: 64, 5: 4096}
    got = classify([row(i, exchangeordertype=ty, arrival_time=t) for i, ty in types.items()], Config())
    assert set(got) == {1, 2}  # 2048 and 2050 (sweep + short sell); 4098 = block + short sell is not


@pytest.mark.parametrize("day", ["2024-09-05", "2024-10-08"])  # AEST (+10) and AEDT (+11)
def test_trading_hours_local_start_inclusive_end_exclusive(local_ns, day) -> None:
    arrivals = {
        1: local_ns(f"{day} 09:59:59", 999_999_999),  # out: one ns before 10:00
        2: local_ns(f"{day} 10:00:00"),  # in
        3: local_ns(f"{day} 15:59:59", 999_000_000),  # in: 15:59:59.999
        4: local_ns(f"{day} 16:00:00"),  # out: end exclusive
        5: local_ns(f"{day} 16:30:00"),  # out (the prototype's "hour <= 16" kept it)
    }
    got = classify([row(i, arrival_time=t) for i, t in arrivals.items()], Config())
    assert set(got) == {2, 3}


def test_fixed_offset_would_be_wrong_on_a_dst_day(local_ns) -> None:
    # 2024-10-08 16:30 AEDT = 05:30 UTC; a fixed +10 h offset reads 15:30 and would keep it.
    got = classify([row(1, arrival_time=local_ns("2024-10-08 16:30:00"))], Config())
    assert got == {}


def test_participant_filter(local_ns) -> None:
    t = local_ns("2024-09-05 11:00:00")
    cfg = dataclasses.replace(Config(), filters=Filters(participants=(7, 9)))
    got = classify([row(1, participantid=7, arrival_time=t), row(2, participantid=8, arrival_time=t)], cfg)
    assert set(got) == {1}


def test_groups_from_the_final_event() -> None:
    got = classify(
        [
            row(1, matched_quantity=0, final_leaves=500, final_changereason=1),  # none
            row(2, matched_quantity=500),  # full: matched 500 >= final quantity 500
            row(3, matched_quantity=200, final_leaves=300, final_changereason=9),  # partial: 0 < 200 < 500
            # amended down 1000 -> 600 and then filled 600: full against the FINAL quantity (600), although
            # less than the arrival quantity (1000)
            row(4, arrival_quantity=1000, final_quantity=600, matched_quantity=600),
        ]
    )
    assert {i: r["group"] for i, r in got.items()} == {1: "none", 2: "full", 3: "partial", 4: "full"}


@pytest.mark.parametrize(
    ("changes", "qualifies"),
    [
        ({}, True),
        ({"final_changereason": 9}, False),  # final event not a trade
        ({"final_leaves": 10}, False),  # something left
        ({"has_new_event": False}, False),  # reloaded order, never entered today
        ({"n_fills": 0, "all_fills_lit_continuous": False}, False),  # no trade at all
        ({"n_fills": 2, "all_fills_lit_continuous": False}, False),  # a fill that was not lit continuous
    ],
)
def test_qualifying_each_condition(changes, qualifies) -> None:
    assert classify([row(1, **changes)])[1]["qualifying"] is qualifies


def test_size_buckets_max_inclusive() -> None:
    sizes = {1: 1, 2: 100, 3: 101, 4: 1000, 5: 1001, 6: 10000, 7: 10001}
    got = classify([row(i, arrival_quantity=q) for i, q in sizes.items()])
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
        6: local_ns("2024-09-05 16:00:00"),  # outside every bucket (kept here: all-hours config)
        7: local_ns("2024-09-04 21:22:21"),  # overnight reload
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
    }


def test_classify_keeps_lifecycle_columns() -> None:
    out = classify_sweeps(pl.LazyFrame([BASE], schema=LIFECYCLE_COLUMNS), ALL_HOURS).collect_schema()
    assert list(out)[: len(LIFECYCLE_COLUMNS)] == list(LIFECYCLE_COLUMNS)
    assert list(out)[len(LIFECYCLE_COLUMNS) :] == ["group", "qualifying", "size_bucket", "time_bucket"]

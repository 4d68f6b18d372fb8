"""Tests of the Centre Point replay kernel: hand-worked cases, invariants, and a brute-force reference."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsim.steps.matching import MatchEvents, MatchParams, MatchResult, match

BUY, SELL = 1, 2
NEVER = np.iinfo(np.int64).max  # window_end for end_of_day
NAN = float("nan")


def events(*rows: dict[str, Any]) -> MatchEvents:
    """Tiny MatchEvents: each row needs side and quantity; timestamp defaults to the row index."""
    defaults: dict[str, Any] = {
        "limit": 0,
        "maq": 0,
        "maq_single": False,
        "mid": 1000.0,
        "rests": False,
        "window_end": NEVER,
    }
    full = [
        {"order_id": 101 + k, "timestamp": k, **defaults, "rest_cap": r["quantity"], **r}
        for k, r in enumerate(rows)
    ]

    def col(name: str, dtype: type) -> np.ndarray:
        return np.array([r[name] for r in full], dtype=dtype)

    return MatchEvents(
        order_id=col("order_id", np.int64),
        timestamp=col("timestamp", np.int64),
        side=col("side", np.int8),
        quantity=col("quantity", np.int64),
        limit=col("limit", np.int64),
        maq=col("maq", np.int64),
        maq_single=col("maq_single", np.bool_),
        mid=col("mid", np.float64),
        rests=col("rests", np.bool_),
        rest_cap=col("rest_cap", np.int64),
        window_end=col("window_end", np.int64),
    )


def rest(side: int, quantity: int, **kw: Any) -> dict[str, Any]:
    """A sweep that rests with its whole quantity (unless rest_cap says otherwise)."""
    return {"side": side, "quantity": quantity, "rests": True, **kw}


def order(side: int, quantity: int, **kw: Any) -> dict[str, Any]:
    """A plain incoming CP order."""
    return {"side": side, "quantity": quantity, **kw}


def fills(result: MatchResult) -> list[tuple[int, int, int]]:
    """(resting index, incoming index, quantity) per fill, in the order they happened."""
    return list(
        zip(
            result.resting_idx.tolist(),
            result.incoming_idx.tolist(),
            result.quantity.tolist(),
            strict=True,
        )
    )


BASE = MatchParams()


# --- hand-worked cases -------------------------------------------------------------------------


def test_time_priority_earliest_resting_sweep_fills_first() -> None:
    # buys rest at t=0 (idx 0) and t=1 (idx 1); a sell of 100 at t=2 meets idx 0 only.
    r = match(events(rest(BUY, 100), rest(BUY, 100), order(SELL, 100)), BASE)
    assert fills(r) == [(0, 2, 100)]
    assert r.rested_quantity.tolist() == [100, 100, 0]


def test_contra_liquidity_is_shared_across_two_sweeps() -> None:
    # sell 300 vs resting buys 200, 200: min(300, 200) = 200 from idx 0, then min(100, 200) = 100 from idx 1.
    r = match(events(rest(BUY, 200), rest(BUY, 200), order(SELL, 300)), BASE)
    assert fills(r) == [(0, 2, 200), (1, 2, 100)]
    # idx 1 keeps 200 - 100 = 100 for a later seller of 500: one fill of 100.
    r = match(events(rest(BUY, 200), rest(BUY, 200), order(SELL, 300), order(SELL, 500)), BASE)
    assert fills(r) == [(0, 2, 200), (1, 2, 100), (1, 3, 100)]


def test_sweep_budget_is_used_once_as_incoming_and_resting() -> None:
    # idx 0 rests a sell of 60. Sweep idx 1 (buy 100, residual 100) fills 60 as incoming,
    # so it rests min(rest_cap 100, 100 - 60) = 40; a later sell of 100 gets only 40.
    r = match(events(rest(SELL, 60), rest(BUY, 100, rest_cap=100), order(SELL, 100)), BASE)
    assert fills(r) == [(0, 1, 60), (1, 2, 40)]
    assert r.rested_quantity.tolist() == [60, 40, 0]
    # with residual_after_arrival 30 < 40 it rests min(30, 40) = 30.
    r = match(events(rest(SELL, 60), rest(BUY, 100, rest_cap=30), order(SELL, 100)), BASE)
    assert fills(r) == [(0, 1, 60), (1, 2, 30)]


def test_window_end_is_inclusive() -> None:
    # window ends at t=1000: an incoming sell at exactly 1000 matches, one at 1001 does not.
    at_end = events(rest(BUY, 100, window_end=1000), order(SELL, 100, timestamp=1000))
    assert fills(match(at_end, BASE)) == [(0, 1, 100)]
    after = events(rest(BUY, 100, window_end=1000), order(SELL, 100, timestamp=1001))
    assert fills(match(after, BASE)) == []


def test_expired_sweep_is_passed_over_for_a_later_open_one() -> None:
    # idx 0's window ended at t=5; idx 1 (open to end of day) fills the sell at t=10.
    ev = events(rest(BUY, 100, window_end=5), rest(BUY, 100), order(SELL, 100, timestamp=10))
    assert fills(match(ev, BASE)) == [(1, 2, 100)]


def test_incoming_limit_blocks_when_mid_is_beyond_it() -> None:
    # mid 1000.5: a buy limited at 1000 (< 1000.5) cannot pay the mid; one at 1001 can.
    blocked = events(rest(SELL, 100, mid=1000.5), order(BUY, 100, limit=1000, mid=1000.5))
    assert fills(match(blocked, BASE)) == []
    ok = events(rest(SELL, 100, mid=1000.5), order(BUY, 100, limit=1001, mid=1000.5))
    assert fills(match(ok, BASE)) == [(0, 1, 100)]
    # a sell limited at 1000 (<= 1000.0) accepts a mid of exactly 1000.0.
    equal = events(rest(BUY, 100), order(SELL, 100, limit=1000))
    assert fills(match(equal, BASE)) == [(0, 1, 100)]


def test_sweep_limit_ignored_by_default_respected_when_asked() -> None:
    # resting buy idx 0 limited at 990 < mid 1000; resting buy idx 1 has no limit.
    ev = events(rest(BUY, 100, limit=990), rest(BUY, 100), order(SELL, 100))
    # default: the sweep is pegged to the mid, its lit limit ignored -> idx 0 fills (time priority).
    assert fills(match(ev, BASE)) == [(0, 2, 100)]
    # sweep_limit: 990 >= 1000 fails -> idx 0 skipped, idx 1 fills; idx 0 stays open.
    assert fills(match(ev, MatchParams(sweep_limit=True))) == [(1, 2, 100)]


def test_single_fill_maq_skips_small_candidate_and_goes_on() -> None:
    # sell 300 with MAQ 150 (single): idx 0 offers min(300, 100) = 100 < 150 -> skip;
    # idx 1 gives min(300, 200) = 200 >= 150 -> fill; 100 left < 150 -> no further fill.
    # idx 0 stays open: a plain sell of 100 at idx 3 then takes it.
    ev = events(
        rest(BUY, 100),
        rest(BUY, 200),
        order(SELL, 300, maq=150, maq_single=True),
        order(SELL, 100),
    )
    assert fills(match(ev, BASE)) == [(1, 2, 200), (0, 3, 100)]


def test_single_fill_maq_on_the_resting_sweep() -> None:
    # resting buy 300 with MAQ 150 (single): sell 100 -> 100 < 150 skip; sell 200 -> fill 200;
    # then 300 - 200 = 100 left < 150 -> it can never fill again, even against a sell of 500.
    ev = events(
        rest(BUY, 300, maq=150, maq_single=True),
        order(SELL, 100),
        order(SELL, 200),
        order(SELL, 500),
    )
    assert fills(match(ev, BASE)) == [(0, 2, 200)]


def test_cumulative_maq_only_first_fill_must_meet_it() -> None:
    # sell 300, MAQ 150, not single; resting buys 200, 50, 100:
    # first fill min(300, 200) = 200 >= 150 ok; then 50 and min(50, 100) = 50 are allowed.
    rows = [rest(BUY, 200), rest(BUY, 50), rest(BUY, 100)]
    ev = events(*rows, order(SELL, 300, maq=150, maq_single=False))
    assert fills(match(ev, BASE)) == [(0, 3, 200), (1, 3, 50), (2, 3, 50)]
    # the same with single-fill MAQ: after 200, 100 left < 150 ends the scan.
    ev = events(*rows, order(SELL, 300, maq=150, maq_single=True))
    assert fills(match(ev, BASE)) == [(0, 3, 200)]


def test_cumulative_maq_on_resting_sweep_counts_its_incoming_fill() -> None:
    # resting buy 300, MAQ 150 not single: sell 100 (< 150, first fill) skip; sell 200 fills;
    # the later sell 50 is not its first fill -> allowed.
    ev = events(rest(BUY, 300, maq=150), order(SELL, 100), order(SELL, 200), order(SELL, 50))
    assert fills(match(ev, BASE)) == [(0, 2, 200), (0, 3, 50)]
    # sweep idx 1 (buy 300, MAQ 150) first fills 200 as incoming against idx 0, so its
    # first simulated fill is done: it rests 300 - 200 = 100 and a sell of 30 may take 30.
    ev = events(rest(SELL, 200), rest(BUY, 300, maq=150), order(SELL, 30))
    assert fills(match(ev, BASE)) == [(0, 1, 200), (1, 2, 30)]


def test_nan_mid_matches_nothing_but_a_sweep_still_rests() -> None:
    # the caller sets NaN for a missing, crossed or locked quote.
    # sweep idx 1 (sell, NaN) meets nothing although buy idx 0 is open, yet rests 100;
    # the buy at idx 2 then takes those 100, the sell at idx 3 takes idx 0's 100.
    ev = events(rest(BUY, 100), rest(SELL, 100, mid=NAN), order(BUY, 100), order(SELL, 100))
    r = match(ev, BASE)
    assert fills(r) == [(1, 2, 100), (0, 3, 100)]
    assert r.rested_quantity.tolist() == [100, 100, 0, 0]


def test_max_fill_fraction_floors_to_whole_shares() -> None:
    # 0.5 * 7 = 3.5 -> rests 3.
    r = match(events(rest(BUY, 7), order(SELL, 10)), MatchParams(max_fill_fraction=0.5))
    assert r.rested_quantity.tolist() == [3, 0]
    assert fills(r) == [(0, 1, 3)]
    # 0.29 * 100 = 29 exactly (binary float would give 28.999... -> 28).
    r = match(events(rest(BUY, 100)), MatchParams(max_fill_fraction=0.29))
    assert r.rested_quantity.tolist() == [29]
    # 0.5 * 1 = 0.5 -> 0: does not rest, so nothing fills.
    r = match(events(rest(BUY, 1), order(SELL, 1)), MatchParams(max_fill_fraction=0.5))
    assert r.rested_quantity.tolist() == [0, 0] and fills(r) == []


def test_impact_moves_price_against_the_resting_sweep() -> None:
    p = MatchParams(impact_bps=5)
    # resting buy pays more: 1000.5 * (1 + 5/1e4) = 1000.5 * 1.0005 = 1001.00025
    r = match(events(rest(BUY, 10, mid=1000.5), order(SELL, 10, mid=1000.5)), p)
    assert r.price.tolist() == [1000.5 * (1 + 5 / 1e4)]
    assert r.price[0] == pytest.approx(1001.00025, abs=1e-9)
    assert r.mid.tolist() == [1000.5]
    # resting sell receives less: 1000.5 * (1 - 5/1e4) = 1000.5 * 0.9995 = 999.99975
    r = match(events(rest(SELL, 10, mid=1000.5), order(BUY, 10, mid=1000.5)), p)
    assert r.price.tolist() == [1000.5 * (1 + -1 * 5 / 1e4)]
    assert r.price[0] == pytest.approx(999.99975, abs=1e-9)


def test_price_is_the_incoming_events_mid() -> None:
    # the sweep rested at mid 1000; the buy arrives at mid 1002.5 -> fill at 1002.5.
    r = match(events(rest(SELL, 10, mid=1000.0), order(BUY, 10, mid=1002.5)), BASE)
    assert r.price.tolist() == [1002.5] and r.timestamp.tolist() == [1]


def test_equal_timestamps_follow_array_order() -> None:
    # all at t=7: priority is array order (the caller sorted by sequence, order_id).
    ev = events(
        rest(BUY, 100, timestamp=7, order_id=900),
        rest(BUY, 100, timestamp=7, order_id=100),
        order(SELL, 150, timestamp=7),
    )
    # 100 from idx 0 (despite its larger order id), then 50 from idx 1.
    assert fills(match(ev, BASE)) == [(0, 2, 100), (1, 2, 50)]


def test_order_never_matches_itself_and_same_side_never_matches() -> None:
    # a lone resting sweep has nothing to meet.
    assert fills(match(events(rest(BUY, 100)), BASE)) == []
    # buys never meet buys, sells never meet sells.
    assert fills(match(events(rest(BUY, 100), order(BUY, 100)), BASE)) == []
    assert fills(match(events(rest(SELL, 100), rest(SELL, 100), order(SELL, 100)), BASE)) == []


def test_empty_events() -> None:
    r = match(events(), BASE)
    assert fills(r) == [] and r.rested_quantity.tolist() == []
    assert r.price.dtype == np.float64 and r.quantity.dtype == np.int64


def test_rejects_unsorted_timestamps() -> None:
    ev = events(order(BUY, 1, timestamp=5), order(SELL, 1, timestamp=4))
    with pytest.raises(ValueError, match=r"event 1 \(order_id 102\) is earlier than the one before it"):
        match(ev, BASE)


def test_rejects_bad_side_and_fraction() -> None:
    with pytest.raises(ValueError, match=r"event 0 \(order_id 101\) has 3"):
        match(events(order(3, 1)), BASE)
    with pytest.raises(ValueError, match="max_fill_fraction must be between 0 and 1, got 1.5"):
        MatchParams(max_fill_fraction=1.5)


# --- brute-force reference and properties -----------------------------------------------------


def reference(ev: MatchEvents, p: MatchParams) -> tuple[list[tuple[int, int, int, float]], list[int]]:
    """§5.5 written directly: for each event scan every earlier sweep, O(S * C)."""
    n = len(ev.order_id)
    left = ev.quantity.tolist()  # budget per order, shared by both roles
    rested = [0] * n
    resting_left = [0] * n
    filled_before = [False] * n
    out: list[tuple[int, int, int, float]] = []

    def limit_ok(k: int, price: float) -> bool:
        lim = int(ev.limit[k])
        return lim <= 0 or (lim >= price if ev.side[k] == BUY else lim <= price)

    def maq_ok(k: int, q: int) -> bool:
        m = int(ev.maq[k])
        return m <= 0 or q >= m or (not ev.maq_single[k] and filled_before[k])

    for i in range(n):
        mid = float(ev.mid[i])
        if not math.isnan(mid):
            for j in range(i):
                if left[i] == 0:
                    break
                if ev.side[j] == ev.side[i] or resting_left[j] == 0 or ev.window_end[j] < ev.timestamp[i]:
                    continue
                s = 1 if ev.side[j] == BUY else -1
                price = mid * (1 + s * p.impact_bps / 1e4)
                q = min(left[i], resting_left[j])
                if not limit_ok(i, price) or (p.sweep_limit and not limit_ok(j, price)):
                    continue
                if not maq_ok(i, q) or not maq_ok(j, q):
                    continue
                out.append((j, i, q, price))
                left[i] -= q
                resting_left[j] -= q
                filled_before[i] = filled_before[j] = True
        if ev.rests[i]:
            base = min(int(ev.rest_cap[i]), left[i])
            rested[i] = max(0, math.floor(base * Fraction(str(p.max_fill_fraction))))
            resting_left[i] = rested[i]
    return out, rested


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[MatchEvents, MatchParams]:
    n = draw(st.integers(0, 25))
    # half the cases drop prices and windows, so quantity and MAQ interactions get exercised densely
    plain = draw(st.booleans())
    times = sorted(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))

    def row(t: int) -> dict[str, Any]:
        quantity = draw(st.integers(0, 12))
        return {
            "timestamp": t,
            "side": draw(st.sampled_from([BUY, SELL])),
            "quantity": quantity,
            "limit": 0 if plain else draw(st.sampled_from([0, 0, 0, -5, 999, 1000, 1001])),
            "maq": draw(st.sampled_from([0, 0, 3, 5])),
            "maq_single": draw(st.booleans()),
            "mid": 1000.0 if plain else draw(st.sampled_from([NAN, 1000.0, 1000.0, 1000.5, 1001.0])),
            "rests": draw(st.booleans()),
            # usually the whole arrival quantity, as when a sweep's residual is everything left
            "rest_cap": draw(st.one_of(st.just(quantity), st.integers(-1, 14))),
            "window_end": NEVER if plain else draw(st.sampled_from([NEVER, t - 1, t, t + 3, t + 10])),
        }

    rows = [row(t) for t in times]
    params = MatchParams(
        sweep_limit=draw(st.booleans()),
        impact_bps=draw(st.sampled_from([0.0, 5.0, -3.0, 12.5, 20.0])),
        max_fill_fraction=draw(st.sampled_from([1.0, 0.5, 0.3, 0.0])),
    )
    return events(*rows), params


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_matches_brute_force_reference(case: tuple[MatchEvents, MatchParams]) -> None:
    ev, p = case
    r = match(ev, p)
    want, want_rested = reference(ev, p)
    got = [(j, i, q, price) for (j, i, q), price in zip(fills(r), r.price.tolist(), strict=True)]
    assert got == want
    assert r.rested_quantity.tolist() == want_rested


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_invariants(case: tuple[MatchEvents, MatchParams]) -> None:
    ev, p = case
    r = match(ev, p)
    used: dict[int, int] = defaultdict(int)
    as_resting: dict[int, int] = defaultdict(int)
    fills_of: dict[int, list[int]] = defaultdict(list)
    for j, i, q, price, mid, t in zip(
        *(x.tolist() for x in (r.resting_idx, r.incoming_idx, r.quantity, r.price, r.mid, r.timestamp)),
        strict=True,
    ):
        assert q > 0 and j < i and ev.side[j] != ev.side[i]
        assert t == ev.timestamp[i] and ev.window_end[j] >= t
        s = 1 if ev.side[j] == BUY else -1
        assert mid == ev.mid[i] and price == ev.mid[i] * (1 + s * p.impact_bps / 1e4)
        for k, enforced in ((i, True), (j, p.sweep_limit)):
            lim = ev.limit[k]
            if enforced and lim > 0:
                assert lim >= price if ev.side[k] == BUY else lim <= price
        used[i] += q
        used[j] += q
        as_resting[j] += q
        fills_of[i].append(q)
        fills_of[j].append(q)
    for k, total in used.items():
        assert total <= ev.quantity[k]
    for j, total in as_resting.items():
        assert total <= r.rested_quantity[j]
    for k, qs in fills_of.items():  # in chronological order
        m = ev.maq[k]
        if m > 0:
            assert all(q >= m for q in qs) if ev.maq_single[k] else qs[0] >= m


@settings(max_examples=50, deadline=None)
@given(scenarios())
def test_deterministic(case: tuple[MatchEvents, MatchParams]) -> None:
    ev, p = case
    a, b = match(ev, p), match(ev, p)
    for name in MatchResult.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# --- scale ------------------------------------------------------------------------------------


def synthetic(n: int, seed: int) -> MatchEvents:
    """n CP arrivals over a 6 h session, ~20 % resting sweeps with windows up to a minute."""
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(0, 43_000_000, n)).astype(np.int64)
    mid = 1000.0 + np.cumsum(rng.choice([-0.5, 0.0, 0.5], n))
    mid[rng.random(n) < 0.01] = np.nan
    qty = rng.integers(1, 5_000, n).astype(np.int64)
    limit = np.round(np.nan_to_num(mid, nan=1000.0) + rng.integers(-3, 4, n)).astype(np.int64)
    limit[rng.random(n) >= 0.3] = 0  # 30 % carry a limit near the mid
    rests = rng.random(n) < 0.2
    return MatchEvents(
        order_id=np.arange(n, dtype=np.int64) + 7_000_000_000_000_000_000,
        timestamp=ts,
        side=rng.integers(1, 3, n).astype(np.int8),
        quantity=qty,
        limit=limit,
        maq=np.where(rng.random(n) < 0.1, rng.integers(1, 1_000, n), 0).astype(np.int64),
        maq_single=rng.random(n) < 0.5,
        mid=mid,
        rests=rests,
        rest_cap=(qty * rng.random(n)).astype(np.int64),
        window_end=ts + rng.integers(0, 60_000_000_000, n),
    )


@pytest.mark.slow
def test_one_million_events_timing() -> None:
    ev = synthetic(1_000_000, seed=1)
    start = time.perf_counter()
    r = match(ev, MatchParams(sweep_limit=True, impact_bps=5.0))
    elapsed = time.perf_counter() - start
    print(
        f"\nmatch: 1,000,000 events, {int(ev.rests.sum()):,} sweeps, {len(r.quantity):,} fills in {elapsed:.2f} s"
    )

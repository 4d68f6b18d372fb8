"""The replay kernel against a brute-force scan of the same rules, and its input checks.

The kernel indexes resting orders in segment trees (by arrival rank, with the smallest price bound,
binding MAQ and largest remainder per subtree); the reference below scans every open resting order in
time priority, exactly as the rules read. Random books with many limits, mid-tick bounds, MAQs, windows
and both kinds of orders must give the same matches in the same order and the same rested quantities.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsim.steps.matching import BUY, SELL, MatchParams, ReplayBook, match

INF = math.inf


def brute_force(book: ReplayBook, params: MatchParams) -> tuple[list[tuple[int, int, int, float]], list[int]]:
    """(resting, incoming, quantity, price) per match in order, and the rested quantity per order."""
    n = len(book.order_id)
    frac = Fraction(repr(float(params.max_fill_fraction)))
    rem = [0] * n
    open_: list[int] = []  # resting orders in arrival order
    had = [False] * n
    rested = [0] * n
    out: list[tuple[int, int, int, float]] = []

    def accepts(k: int, price: float) -> bool:
        return bool(price <= book.bound[k]) if book.side[k] == BUY else bool(price >= book.bound[k])

    def one_pass(i: int, need: int, t: int, m: float) -> int:
        """Order i meets the open resting orders of the other side once, in time priority."""
        si = int(book.side[i])
        had_i = had[i]
        for j in list(open_):
            if need == 0:
                break
            if j == i or int(book.side[j]) == si or rem[j] == 0 or book.window_end[j] < t:
                continue
            sweep_i, sweep_j = bool(book.is_sweep[i]), bool(book.is_sweep[j])
            price = m
            if sweep_i != sweep_j:  # impact against the one analysed sweep
                s = 1.0 if int(book.side[i if sweep_i else j]) == BUY else -1.0
                price = m * (1.0 + s * params.impact_bps / 1e4)
            if not (accepts(i, price) and accepts(j, price)):
                continue
            q = min(need, rem[j])
            maq_i = int(book.maq[i]) if book.maq[i] > 0 and (book.maq_single[i] or not had_i) else 0
            maq_j = int(book.maq[j]) if book.maq[j] > 0 and (book.maq_single[j] or not had[j]) else 0
            if q < maq_i or q < maq_j:
                continue
            out.append((j, i, q, price))
            need -= q
            rem[j] -= q
            had[j] = had_i = True
        had[i] = had_i
        return need

    def can_fill(k: int) -> bool:
        maq_k = int(book.maq[k]) if book.maq[k] > 0 and (book.maq_single[k] or not had[k]) else 0
        return rem[k] > 0 and rem[k] >= maq_k

    def rematch(t: int, m: float) -> None:
        """The optional rule: the earliest resting buy and sell accepting m; the later one is incoming."""
        while True:
            firsts = []
            for side in (BUY, SELL):
                live = [k for k in open_ if book.side[k] == side and can_fill(k) and book.window_end[k] >= t]
                firsts.append(next((k for k in live if accepts(k, m)), -1))
            if min(firsts) < 0:
                return
            later = max(firsts)
            left = one_pass(later, rem[later], t, m)
            if left == rem[later]:
                return
            rem[later] = left

    quotes = list(zip(book.quote_time.tolist(), book.quote_mid.tolist(), strict=True))
    quotes = quotes if params.rematch_on_quote else []
    k = 0
    for i in range(n):
        t = int(book.timestamp[i])
        while k < len(quotes) and quotes[k][0] < t:
            rematch(*quotes[k])
            k += 1
        need = int(book.quantity[i])
        m = float(book.mid[i])
        if need > 0 and not math.isnan(m):
            need = one_pass(i, need, t, m)
        if book.rests[i]:
            base = min(int(book.rest_cap[i]), need)
            r = math.floor(frac * base) if book.is_sweep[i] else base
            if r > 0:
                rested[i] = r
                rem[i] = r
                open_.append(i)
    for quote in quotes[k:]:
        rematch(*quote)
    return out, rested


def kernel(book: ReplayBook, params: MatchParams) -> tuple[list[tuple[int, int, int, float]], list[int]]:
    r = match(book, params)
    matches = list(
        zip(
            r.resting_idx.tolist(),
            r.incoming_idx.tolist(),
            r.quantity.tolist(),
            r.price.tolist(),
            strict=True,
        )
    )
    return matches, r.rested_quantity.tolist()


def book_of(rows: list[dict], quotes: list[tuple[int, float]] = ()) -> ReplayBook:  # type: ignore[assignment]
    """A book from dicts in arrival order (defaults: buy, 100 shares, no limit, no MAQ, mid 3355, real)."""
    defaults = {
        "side": BUY,
        "quantity": 100,
        "bound": None,
        "maq": 0,
        "maq_single": False,
        "mid": 3355.0,
        "is_sweep": False,
        "rests": True,
        "rest_cap": None,
        "window_end": 10**18,
    }
    full = [{**defaults, **r} for r in rows]
    for r in full:
        if r["bound"] is None:
            r["bound"] = INF if r["side"] == BUY else -INF
        if r["rest_cap"] is None:
            r["rest_cap"] = r["quantity"]
    col = lambda k, dt: np.array([r[k] for r in full], dtype=dt)  # noqa: E731
    return ReplayBook(
        order_id=np.arange(1, len(full) + 1, dtype=np.int64),
        timestamp=col("t", np.int64) if "t" in full[0] else np.arange(len(full), dtype=np.int64),
        side=col("side", np.int64),
        quantity=col("quantity", np.int64),
        bound=col("bound", np.float64),
        maq=col("maq", np.int64),
        maq_single=col("maq_single", bool),
        mid=col("mid", np.float64),
        is_sweep=col("is_sweep", bool),
        rests=col("rests", bool),
        rest_cap=col("rest_cap", np.int64),
        window_end=col("window_end", np.int64),
        quote_time=np.array([t for t, _ in quotes], dtype=np.int64),
        quote_mid=np.array([m for _, m in quotes], dtype=np.float64),
    )


# ---- hand-worked cases ----------------------------------------------------------------------------


def test_time_priority_skips_a_refusing_limit_and_keeps_it_for_later() -> None:
    # two resting sells: 0 will not sell below 3360 (refuses the 3355 mid), 1 has no limit.
    # incoming buy 2 (200) takes 100 from 1 only; then the mid rises to 3365 and buy 3 takes 0's 100.
    book = book_of(
        [
            {"side": SELL, "bound": 3360.0},
            {"side": SELL},
            {"side": BUY, "quantity": 200, "rests": False},
            {"side": BUY, "mid": 3365.0, "rests": False},
        ]
    )
    matches, rested = kernel(book, MatchParams())
    assert matches == [(1, 2, 100, 3355.0), (0, 3, 100, 3365.0)]
    assert rested == [100, 100, 0, 0]


def test_maq_single_and_first_fill_only() -> None:
    # resting sell 0: MAQ 150 single-fill (every fill >= 150); resting sell 1: MAQ 150, first fill only.
    # buy 2 (100) can fill neither: 100 < 150 for both. buy 3 (200) fills 0 with 200? 0 has 300: q = 200 >= 150.
    # buy 4 (100): 0 has 100 left < 150 single -> 0 is dead; 1 first fill 100 < 150 -> refused.
    # buy 5 (160): 1's first fill 160 >= 150; then buy 6 (50): 1 has had a fill, 50 fine.
    book = book_of(
        [
            {"side": SELL, "quantity": 300, "maq": 150, "maq_single": True},
            {"side": SELL, "quantity": 300, "maq": 150},
            {"rests": False},
            {"quantity": 200, "rests": False},
            {"rests": False},
            {"quantity": 160, "rests": False},
            {"quantity": 50, "rests": False},
        ]
    )
    matches, _ = kernel(book, MatchParams())
    assert [(j, i, q) for j, i, q, _ in matches] == [(0, 3, 200), (1, 5, 160), (1, 6, 50)]


def test_one_pass_a_candidate_skipped_for_the_incoming_maq_is_not_revisited() -> None:
    # resting sells 0 (30) and 1 (100); incoming buy 2 (200, MAQ 50, first fill only): 0 would give 30 < 50,
    # skipped; 1 gives 100 and lifts the MAQ, but the pass has moved on past 0. A later buy 3 gets 0's 10.
    book = book_of(
        [
            {"side": SELL, "quantity": 30},
            {"side": SELL},
            {"quantity": 200, "maq": 50, "rests": False},
            {"quantity": 10, "rests": False},
        ]
    )
    matches, _ = kernel(book, MatchParams())
    assert [(j, i, q) for j, i, q, _ in matches] == [(1, 2, 100), (0, 3, 10)]
    assert brute_force(book, MatchParams())[0] == matches


def test_impact_moves_the_price_against_the_single_sweep_only() -> None:
    # resting real sell 0, resting sweep sell 1; incoming sweep buy 2 meets 0 first at 3355·1.0005,
    # then (budget left) sweep 1 at the mid; incoming real buy 3 meets nothing left.
    book = book_of(
        [
            {"side": SELL, "quantity": 50},
            {"side": SELL, "quantity": 50, "is_sweep": True},
            {"quantity": 100, "is_sweep": True, "rests": False},
        ]
    )
    matches, _ = kernel(book, MatchParams(impact_bps=5.0))
    assert matches == [(0, 2, 50, 3355.0 * (1 + 5.0 / 1e4)), (1, 2, 50, 3355.0)]


def test_window_ends_inclusively_and_fraction_floors() -> None:
    # sweep sell 0 rests floor(0.29 · 100) = 29 until t = 5; buy at t = 5 fills, buy at t = 6 does not.
    book = book_of(
        [
            {"t": 0, "side": SELL, "is_sweep": True, "window_end": 5},
            {"t": 5, "quantity": 10, "rests": False},
            {"t": 6, "quantity": 10, "rests": False},
        ]
    )
    matches, rested = kernel(book, MatchParams(max_fill_fraction=0.29))
    assert rested[0] == 29
    assert [(j, i, q) for j, i, q, _ in matches] == [(0, 1, 10)]


def test_a_fraction_too_fine_for_int64_still_floors_exactly() -> None:
    # 0.3333333333333333 is 3333333333333333 / 10^16: 10^6 shares times that numerator overflow int64, so
    # the kernel floors the sweep's resting share with Python's integers: floor(10^6 · 0.3333333333333333)
    # = 333,333, which a buy of 400,000 then takes whole.
    book = book_of(
        [{"side": SELL, "quantity": 10**6, "is_sweep": True}, {"quantity": 400_000, "rests": False}]
    )
    params = MatchParams(max_fill_fraction=0.3333333333333333)
    matches, rested = kernel(book, params)
    assert rested[0] == 333_333
    assert [(j, i, q) for j, i, q, _ in matches] == [(0, 1, 333_333)]
    assert brute_force(book, params) == (matches, rested)


def test_an_order_without_a_mid_matches_nothing_but_rests() -> None:
    book = book_of([{"side": SELL, "mid": float("nan")}, {"side": BUY, "mid": float("nan")}, {}])
    matches, rested = kernel(book, MatchParams())
    assert matches == [(0, 2, 100, 3355.0)]
    assert rested == [100, 100, 0]


def test_rematch_on_quote_matches_two_resting_orders_when_the_mid_moves() -> None:
    # a buy limited at 3360 and a sell limited at 3360 rest at mid 3355 (the sell refuses it). A quote at
    # t = 5 moves the mid to 3360: with the rule the later order (the sell) meets the buy at 3360; a quote
    # at t = 9 (mid 3365) is after the buy is exhausted. Without the rule nothing matches.
    book = book_of(
        [{"t": 0, "bound": 3360.0}, {"t": 1, "side": SELL, "quantity": 60, "bound": 3360.0}, {"t": 10}],
        quotes=[(5, 3360.0), (9, 3365.0)],
    )
    assert kernel(book, MatchParams())[0] == []
    matches, _ = kernel(book, MatchParams(rematch_on_quote=True))
    assert matches == [(0, 1, 60, 3360.0)]
    assert brute_force(book, MatchParams(rematch_on_quote=True))[0] == matches


def test_inputs_are_checked() -> None:
    book = book_of([{"t": 5}, {"t": 4}])
    with pytest.raises(ValueError, match="not sorted by timestamp"):
        match(book, MatchParams())
    with pytest.raises(ValueError, match="max_fill_fraction"):
        MatchParams(max_fill_fraction=1.5)
    with pytest.raises(ValueError, match="more than 18 decimal places"):
        MatchParams(max_fill_fraction=1.2345678901234567e-05)  # 12345678901234567 / 10^21


# ---- property: the kernel equals the brute-force scan -------------------------------------------------


@st.composite
def books(draw: st.DrawFn) -> tuple[ReplayBook, MatchParams]:
    n = draw(st.integers(1, 60))
    rows = []
    t = 0
    for _ in range(n):
        t += draw(st.integers(0, 3))
        side = draw(st.sampled_from([BUY, SELL]))
        limit = draw(st.sampled_from([None, 3340, 3350, 3355, 3360, 3370]))
        half = draw(st.sampled_from([0.0, 0.0, 5.0]))
        bound = None if limit is None else (limit + half if side == BUY else limit - half)
        quantity = draw(st.sampled_from([0, 10, 50, 100, 300]))
        rows.append(
            {
                "t": t,
                "side": side,
                "quantity": quantity,
                "bound": bound,
                "maq": draw(st.sampled_from([0, 0, 0, 20, 60, 150, 400])),
                "maq_single": draw(st.booleans()),
                "mid": draw(st.sampled_from([3345.0, 3355.0, 3357.5, 3365.0, float("nan")])),
                "is_sweep": draw(st.booleans()),
                "rests": draw(st.booleans()),
                "rest_cap": draw(st.sampled_from([quantity, quantity // 2, 0])),
                "window_end": t + draw(st.sampled_from([0, 2, 10, 10**6])),
            }
        )
    params = MatchParams(
        impact_bps=draw(st.sampled_from([0.0, 5.0, 30.0])),
        max_fill_fraction=draw(st.sampled_from([1.0, 0.5, 0.29])),
        rematch_on_quote=draw(st.booleans()),
    )
    quote_times = sorted(set(draw(st.lists(st.integers(0, t + 3), max_size=12))))
    quotes = [(qt, draw(st.sampled_from([3345.0, 3355.0, 3357.5, 3365.0]))) for qt in quote_times]
    return book_of(rows, quotes), params


@settings(max_examples=400, deadline=None)
@given(books())
def test_kernel_equals_the_brute_force_scan(case: tuple[ReplayBook, MatchParams]) -> None:
    book, params = case
    assert kernel(book, params) == brute_force(book, params)

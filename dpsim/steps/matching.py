"""Centre Point replay kernel: every CP order arrives as an incoming order, then may rest (docs/methodology.md).

A loop over arrays compiled with numba (`_replay`; compiled once per machine and cached beside this file),
because matching is inherently sequential: each fill changes what later orders can meet, so it cannot be
vectorised, and as plain Python it was 64 % of a year-sized partition's job. `steps.replay` builds
`ReplayBook` and turns `MatchResult` back into frames.

An incoming order meets the open resting orders of the other side in time priority (arrival order),
skipping a candidate when either side's limit refuses the price or either side's minimum acceptable
quantity (MAQ) is not met. Skipped candidates stay for later incoming orders.

Index. The resting orders of one side and one kind (analysed sweeps, real orders: the kinds can see
different prices when `impact_bps` moves the price against a sweep) live in a segment tree over their
arrival rank, so the leftmost leaf is the earliest arrival. Each node keeps, over its subtree, the
smallest price bound (a sell's lowest acceptable price; a buy's highest, negated), the smallest MAQ
still binding, and the largest remaining quantity. The incoming order asks for the leftmost leaf whose
bound accepts its price, whose MAQ its remaining quantity meets, and whose remainder meets its own MAQ;
subtrees failing any of the three are never entered, so refused candidates cost nothing and are never
re-pushed. A fill, an exhausted order, or an order that can no longer meet its own MAQ updates one
leaf and its O(log N) ancestors; an order whose window ended is removed when the query reaches it. An
order whose window ends before any later order of the other side arrives never enters its tree: nothing
could meet it (about a third of the DRR day's resting orders).

Complexity, N = CP orders of the partition: O(N log N) time when at most one of (limit, resting MAQ,
incoming MAQ) binds in a query, which is every query without a MAQ on either side (each query descends
one root-to-leaf path per fill or removal, and each order is inserted and removed once); O(N + fills)
memory. When two conditions bind on different orders of one subtree the descent may enter it in vain
and backtrack, bounded by the size of that subtree; `make bench` measures µs per event on realistic
partitions to show it flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from numba import njit, objmode

BUY = 1
SELL = 2
INF = math.inf
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class MatchParams:
    """The scenario knobs that act inside the kernel."""

    impact_bps: float = 0.0  # moves the price against the analysed sweep when exactly one side is one
    max_fill_fraction: float = 1.0  # share of an analysed sweep's resting quantity that rests (floored)
    rematch_on_quote: bool = False  # optional rule beyond the methodology's: see `match.rematch`

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_fill_fraction <= 1.0:
            raise ValueError(
                f"max_fill_fraction must be between 0 and 1, got {self.max_fill_fraction!r}: "
                "a sweep cannot rest with more than it has"
            )
        if not math.isfinite(self.impact_bps):
            raise ValueError(f"impact_bps must be a finite number, got {self.impact_bps!r}")
        if max(self.fill_fraction.as_integer_ratio()) > INT64_MAX:
            raise ValueError(
                f"max_fill_fraction {self.max_fill_fraction!r} has more than 18 decimal places: round it "
                "(the replay floors a sweep's resting share exactly, as that decimal fraction)"
            )

    @property
    def fill_fraction(self) -> Fraction:
        """max_fill_fraction as the decimal it is written as (0.1 is exactly a tenth)."""
        return Fraction(repr(float(self.max_fill_fraction)))


@dataclass(frozen=True)
class ReplayBook:
    """One entry per CP order arrival, ALREADY sorted by (timestamp, sequence, order_id).

    Prices share one unit, thousandths of a dollar. `bound` is the limit as the matching sees it: the
    highest price a buy accepts (limit + half a tick when it accepts the mid-tick; +inf without a limit),
    the lowest a sell accepts (limit − half a tick; −inf without a limit).
    """

    order_id: np.ndarray  # int64
    timestamp: np.ndarray  # int64 ns
    side: np.ndarray  # 1 buy, 2 sell
    quantity: np.ndarray  # int64 arrival quantity = the order's one budget (incoming, then resting)
    bound: np.ndarray  # float64
    maq: np.ndarray  # int64; > 0 is a minimum acceptable quantity
    maq_single: np.ndarray  # bool: every fill >= MAQ; False = only the order's first replay fill
    mid: np.ndarray  # float64 mid of the prevailing quote before the arrival; NaN = matches nothing
    is_sweep: np.ndarray  # bool: an analysed sweep (impact applies to it; its fills are reported)
    rests: np.ndarray  # bool: rests after its incoming pass
    rest_cap: np.ndarray  # int64: at most this rests (post-arrival leaves, or arrival quantity)
    window_end: np.ndarray  # int64 ns, inclusive end of the resting window
    # usable quotes within the session, for the optional rule `rematch_on_quote` (may be empty)
    quote_time: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    quote_mid: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.float64))


@dataclass(frozen=True)
class MatchResult:
    """Every replayed match (one entry each, in the order they happen) and what each order rested."""

    resting_idx: np.ndarray  # int64 index into the book of the resting order
    incoming_idx: np.ndarray  # int64 index of the incoming order
    timestamp: np.ndarray  # int64, the incoming event time
    quantity: np.ndarray  # int64
    price: np.ndarray  # float64: the mid, moved against the sweep when exactly one side is a sweep
    mid: np.ndarray  # float64
    rested_quantity: np.ndarray  # int64 per order: what it rested with (0 when it did not rest)


# ---- the compiled kernel ----------------------------------------------------------------------------------
# The four trees (side × kind) share flat arrays: tree t = 2 * (side - 1) + kind holds nodes 1 .. 2 * size - 1
# at key/tmaq/trem[off[t] + node] and its leaves' book indices, in arrival order, at members[moff[t] + pos].


@njit(cache=True)
def _tree_set(key, tmaq, trem, off, size, pos, kv, mv, rv):
    """Set one leaf and refresh its ancestors, stopping where a node's summary does not change."""
    v = pos + size
    key[off + v], tmaq[off + v], trem[off + v] = kv, mv, rv
    v >>= 1
    while v:
        a = off + 2 * v
        b = a + 1
        k2 = key[a] if key[a] < key[b] else key[b]
        m2 = tmaq[a] if tmaq[a] < tmaq[b] else tmaq[b]
        r2 = trem[a] if trem[a] > trem[b] else trem[b]
        c = off + v
        if k2 == key[c] and m2 == tmaq[c] and r2 == trem[c]:
            return
        key[c], tmaq[c], trem[c] = k2, m2, r2
        v >>= 1


@njit(cache=True)
def _tree_activate(key, tmaq, trem, off, size, pos, kv, mv, rv):
    """Set a leaf that was empty: each ancestor's summary can only move towards the new values, so a
    comparison with the ancestor alone suffices, and the walk stops at the first unchanged one."""
    v = pos + size
    key[off + v], tmaq[off + v], trem[off + v] = kv, mv, rv
    v >>= 1
    while v:
        c = off + v
        changed = False
        if kv < key[c]:
            key[c] = kv
            changed = True
        if mv < tmaq[c]:
            tmaq[c] = mv
            changed = True
        if rv > trem[c]:
            trem[c] = rv
            changed = True
        if not changed:
            return
        v >>= 1


@njit(cache=True)
def _tree_leftmost(key, tmaq, trem, off, size, threshold, need, min_rem, lo, scratch):
    """Position >= lo of the earliest order with key <= threshold, MAQ <= need, remainder >= min_rem; -1 if none.

    The subtrees covering [lo, size) are tried left to right; within one, the descent is greedy (left child
    first), which the summaries make exact when one condition binds; a dead end (two conditions met by
    different orders of a subtree) falls back to a full search of that subtree."""
    n_cover = 0
    if lo == 0:
        scratch[0] = 1
        n_cover = 1
    else:
        left, right = lo + size, 2 * size
        n_tail = 0
        while left < right:  # the cover's left part in order; its right part from the end of scratch
            if left & 1:
                scratch[n_cover] = left
                n_cover += 1
                left += 1
            if right & 1:
                right -= 1
                n_tail += 1
                scratch[scratch.size - n_tail] = right
            left >>= 1
            right >>= 1
        for q in range(n_tail):  # the right part, reversed: left to right
            scratch[n_cover] = scratch[scratch.size - n_tail + q]
            n_cover += 1
    for c in range(n_cover):
        top = scratch[c]
        if key[off + top] > threshold or tmaq[off + top] > need or trem[off + top] < min_rem:
            continue
        v = top
        while v < size:
            v *= 2
            if key[off + v] > threshold or tmaq[off + v] > need or trem[off + v] < min_rem:
                v += 1
                if key[off + v] > threshold or tmaq[off + v] > need or trem[off + v] < min_rem:
                    v = _tree_search(key, tmaq, trem, off, size, top, threshold, need, min_rem)
                    break
        if v >= 0:
            return v - size
    return -1


@njit(cache=True)
def _tree_search(key, tmaq, trem, off, size, top, threshold, need, min_rem):
    """Leftmost matching leaf (as a node number) under `top` by a full search; -1 when none."""
    stack = np.empty(130, np.int64)  # depth-first: at most two nodes a level wait (trees < 2^64 leaves)
    stack[0] = top
    n = 1
    while n:
        n -= 1
        v = stack[n]
        if key[off + v] > threshold or tmaq[off + v] > need or trem[off + v] < min_rem:
            continue
        if v >= size:
            return v
        stack[n] = 2 * v + 1
        stack[n + 1] = 2 * v
        n += 2
    return -1


@njit(cache=True)
def _bisect_right(a, lo, hi, x):
    """The first position in a[lo:hi] (sorted) whose value is > x, as an offset from lo."""
    start = lo
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - start


@njit(cache=True)
def _refresh(j, trees, book, rem, had_fill, kind_of, pos):
    """Update resting order j's leaf after a fill: gone when exhausted or below its own MAQ."""
    key, tmaq, trem, toff, tsize = trees[0], trees[1], trees[2], trees[3], trees[4]
    side, maq, single = book[0], book[3], book[4]
    t = 2 * (side[j] - 1) + kind_of[j]
    mj = maq[j] if maq[j] > 0 and (single[j] or not had_fill[j]) else 0
    if rem[j] == 0 or rem[j] < mj:
        _tree_set(key, tmaq, trem, toff[t], tsize[t], pos[j], INF, INF, -1)
    else:
        kv = key[toff[t] + pos[j] + tsize[t]]
        _tree_set(key, tmaq, trem, toff[t], tsize[t], pos[j], kv, float(mj), rem[j])


@njit(cache=True)
def _incoming_pass(i, need, t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch):
    """Order i meets the open resting orders of the other side at mid m; returns what it has left."""
    key, tmaq, trem, toff, tsize, members, moff, mcount = trees
    side, bound, sweep, maq, single, wend = book
    split, up, down = prices
    sd = side[i]
    other = SELL if sd == BUY else BUY
    # the price each kind of candidate sees, and the tree threshold that accepts it
    own = up if sd == BUY else down
    contra = up if other == BUY else down
    vs_real, vs_sweep = (m * own, m) if sweep[i] else (m, m * contra)
    n_kinds = 0
    k_tree = np.empty(2, np.int64)
    k_price = np.empty(2, np.float64)
    for kind in range(2 if split else 1):
        price = (vs_sweep if kind else vs_real) if split else m
        ok = price <= bound[i] if sd == BUY else price >= bound[i]
        tt = 2 * (other - 1) + kind
        if ok and trem[toff[tt] + 1] > 0:
            k_tree[n_kinds] = tt
            k_price[n_kinds] = price
            n_kinds += 1
    mi = maq[i]
    had_i = had_fill[i]
    visited = -1
    while n_kinds and need > 0:
        mi_eff = mi if mi > 0 and (single[i] or not had_i) else 0
        if need < mi_eff:
            break  # every fill would be below the incoming order's MAQ
        best = -1
        best_tree = -1
        best_price = 0.0
        for c in range(n_kinds):
            tt = k_tree[c]
            price = k_price[c]
            threshold = price if sd == BUY else -price
            # one pass in time priority: candidates before the last one visited are not revisited
            # (only the incoming MAQ could relax, after its first fill, and a skip is final)
            lo = _bisect_right(members, moff[tt], moff[tt] + mcount[tt], visited) if visited >= 0 else 0
            p = _tree_leftmost(key, tmaq, trem, toff[tt], tsize[tt], threshold, need, mi_eff, lo, scratch)
            if p >= 0 and (best < 0 or members[moff[tt] + p] < best):
                best, best_tree, best_price = members[moff[tt] + p], tt, price
        if best_tree < 0:
            break
        j = visited = best
        if wend[j] < t:  # its window ended; time only moves forward
            _tree_set(key, tmaq, trem, toff[best_tree], tsize[best_tree], pos[j], INF, INF, -1)
            continue
        r = rem[j]
        q = need if need < r else r
        o_rest, o_inc, o_ts, o_qty, o_price, o_mid, o_n = out
        n_out = o_n[0]
        o_rest[n_out], o_inc[n_out], o_ts[n_out], o_qty[n_out] = j, i, t, q
        o_price[n_out], o_mid[n_out] = best_price, m
        o_n[0] = n_out + 1
        had_i = True
        had_fill[j] = True
        need -= q
        rem[j] = r - q
        _refresh(j, trees, book, rem, had_fill, kind_of, pos)
    had_fill[i] = had_i
    return need


@njit(cache=True)
def _earliest_resting(sd, m, t, trees, wend, kind_of, pos, scratch):
    """The earliest resting order of side sd whose bound accepts m and whose window is open; -1 if none."""
    key, tmaq, trem, toff, tsize, members, moff = (
        trees[0],
        trees[1],
        trees[2],
        trees[3],
        trees[4],
        trees[5],
        trees[6],
    )
    threshold = -m if sd == BUY else m
    while True:
        best = -1
        for kind in range(2):
            tt = 2 * (sd - 1) + kind
            p = _tree_leftmost(key, tmaq, trem, toff[tt], tsize[tt], threshold, 1 << 62, 0, 0, scratch)
            if p >= 0 and (best < 0 or members[moff[tt] + p] < best):
                best = members[moff[tt] + p]
        if best < 0 or wend[best] >= t:
            return best
        tt = 2 * (sd - 1) + kind_of[best]
        _tree_set(key, tmaq, trem, toff[tt], tsize[tt], pos[best], INF, INF, -1)


@njit(cache=True)
def _rematch(t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch):
    """A new quote: resting orders both of whose limits accept its mid match, the later one incoming.

    (Optional rule `replay.rematch_on_quote`; stops at the first pair whose MAQs block a match.)"""
    wend = book[5]
    while True:
        b = _earliest_resting(BUY, m, t, trees, wend, kind_of, pos, scratch)
        s_ = _earliest_resting(SELL, m, t, trees, wend, kind_of, pos, scratch)
        if b < 0 or s_ < 0:
            return
        later = b if b > s_ else s_
        left = _incoming_pass(
            later, rem[later], t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch
        )
        if left == rem[later]:
            return
        rem[later] = left
        _refresh(later, trees, book, rem, had_fill, kind_of, pos)


@njit(cache=True)
def _floor_share(base, num, den, exact):
    """floor(base × num / den), in int64 when it cannot overflow (`exact`), else with Python's integers."""
    if exact:
        return base * num // den
    with objmode(r="int64"):
        r = int(base) * int(num) // int(den)
    return r


@njit(cache=True, nogil=True)  # threads of one process (a Dask worker's) replay side by side
def _replay(ts, qty, mids, rests, cap, reach, quotes, trees, book, prices, kind_of, pos, share, out, rested):
    """Every order in array order: matched as incoming, then it may rest (the loop of `match`)."""
    key, tmaq, trem, toff, tsize = trees[0], trees[1], trees[2], trees[3], trees[4]
    side, bound, sweep, maq, single = book[0], book[1], book[2], book[3], book[4]
    split = prices[0]
    num, den, exact = share
    qt, qm = quotes
    nq = qt.size
    n = ts.size
    rem = np.zeros(n, np.int64)
    had_fill = np.zeros(n, np.bool_)  # has had a replay fill in either role (first-fill MAQ)
    scratch = np.empty(256, np.int64)
    buy_tree, sell_tree = 0, 2  # (BUY, real) and (SELL, real): the only trees without impact
    k = 0
    for i in range(n):
        need = qty[i]
        m = mids[i]
        t = ts[i]
        while k < nq and qt[k] < t:  # quotes stamped before this arrival (a quote at its ns is its result)
            _rematch(qt[k], qm[k], trees, book, prices, rem, had_fill, kind_of, pos, out, scratch)
            k += 1
        if need > 0 and m == m:  # m == m is False only for NaN: outside the session or no quote
            if split:
                need = _incoming_pass(
                    i, need, t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch
                )
            else:  # one tree and one price: skip the pass when its root shows no candidate could take m
                buys = side[i] == BUY
                tt = sell_tree if buys else buy_tree
                if (m <= bound[i] if buys else m >= bound[i]) and key[toff[tt] + 1] <= (m if buys else -m):
                    need = _incoming_pass(
                        i, need, t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch
                    )
        if rests[i]:
            base = cap[i] if cap[i] < need else need  # need = budget left after its incoming pass
            r = (_floor_share(base, num, den, exact) if sweep[i] else base) if base > 0 else 0
            if r > 0:
                rested[i] = r
                rem[i] = r
                mj = maq[i] if maq[i] > 0 and (single[i] or not had_fill[i]) else 0
                if r >= mj and reach[i]:  # below its own MAQ, or unreachable, it could never fill
                    kv = -bound[i] if side[i] == BUY else bound[i]
                    tt = 2 * (side[i] - 1) + kind_of[i]
                    _tree_activate(key, tmaq, trem, toff[tt], tsize[tt], pos[i], kv, float(mj), r)
    while k < nq:
        _rematch(qt[k], qm[k], trees, book, prices, rem, had_fill, kind_of, pos, out, scratch)
        k += 1


def _validate(book: ReplayBook) -> None:
    """Reject inputs that would silently give wrong fills (lazy expiry needs time order)."""
    n = len(book.order_id)
    for name in ReplayBook.__dataclass_fields__:
        if name.startswith("quote_"):
            continue
        length = len(getattr(book, name))
        if length != n:
            raise ValueError(f"ReplayBook.{name} has {length} entries, order_id has {n}; all must be equal")
    backwards = np.flatnonzero(np.diff(book.timestamp) < 0)
    if backwards.size:
        i = int(backwards[0]) + 1
        raise ValueError(
            f"ReplayBook not sorted by timestamp: entry {i} (order_id {int(book.order_id[i])}) "
            "is earlier than the one before it; sort by (timestamp, sequence, order_id) first"
        )
    bad_side = np.flatnonzero((book.side != BUY) & (book.side != SELL))
    if bad_side.size:
        i = int(bad_side[0])
        raise ValueError(
            f"ReplayBook.side must be 1 (buy) or 2 (sell); entry {i} "
            f"(order_id {int(book.order_id[i])}) has {int(book.side[i])}"
        )


def _reachable(book: ReplayBook, rematch_on_quote: bool) -> np.ndarray:
    """Per order: could an incoming order meet it while it rests? Incoming passes happen only at later
    arrivals of orders with a mid, so an order whose window ends before the next such arrival of the other
    side never can (the pass checks the window). With `rematch_on_quote` a quote can match it too: all are."""
    n = len(book.side)
    if rematch_on_quote:
        return np.ones(n, dtype=bool)
    next_other = np.full(n, np.iinfo(np.int64).max)  # when the next order of the other side arrives
    index = np.arange(n)
    for sd in (BUY, SELL):
        arrivals = np.flatnonzero((book.side == sd) & ~np.isnan(book.mid))
        after = np.searchsorted(arrivals, index, side="right")  # the first one later than each order
        take = (book.side != sd) & (after < arrivals.size)
        next_other[take] = book.timestamp[arrivals[after[take]]]
    return np.asarray(book.window_end >= next_other)


def match(book: ReplayBook, params: MatchParams) -> MatchResult:
    """Replay the book in array order: each order is matched as incoming, then may rest.

    Builds the kernel's arrays (the trees' members and leaf positions, the orders no incoming order can
    reach) with numpy, then runs the compiled loop `_replay` once."""
    _validate(book)
    n = len(book.order_id)
    split = params.impact_bps != 0.0
    side = np.ascontiguousarray(book.side, dtype=np.int64)
    rests = np.ascontiguousarray(book.rests, dtype=np.bool_)
    # trees[2 * (side - 1) + kind]; a leaf per order that may rest, in arrival order. The kinds (sweep, real)
    # see different prices only under impact; without it one tree per side serves both.
    kind_of = np.asarray(book.is_sweep, dtype=np.int64) if split else np.zeros(n, dtype=np.int64)
    tree_of = 2 * (side - 1) + kind_of
    pos = np.zeros(n, dtype=np.int64)
    groups = [np.flatnonzero(rests & (tree_of == t)) for t in range(4)]
    for group in groups:
        pos[group] = np.arange(group.size)
    counts = np.array([g.size for g in groups], dtype=np.int64)
    sizes = np.array([1 << max(int(c) - 1, 0).bit_length() for c in counts], dtype=np.int64)
    node_off = np.concatenate(([0], np.cumsum(2 * sizes)[:-1])).astype(np.int64)
    member_off = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    nodes = int(2 * sizes.sum())
    trees = (
        np.full(nodes, INF),  # smallest price bound (sells) / negated highest (buys)
        np.full(nodes, INF),  # smallest binding MAQ
        np.full(nodes, -1, dtype=np.int64),  # largest remaining quantity
        node_off,
        sizes,
        np.concatenate(groups).astype(np.int64),  # leaf position -> book index, tree after tree
        member_off,
        counts,
    )
    kernel_book = (
        side,
        np.ascontiguousarray(book.bound, dtype=np.float64),
        np.ascontiguousarray(book.is_sweep, dtype=np.bool_),
        np.ascontiguousarray(book.maq, dtype=np.int64),
        np.ascontiguousarray(book.maq_single, dtype=np.bool_),
        np.ascontiguousarray(book.window_end, dtype=np.int64),
    )
    up = 1.0 + params.impact_bps / 1e4  # a buy sweep pays more
    down = 1.0 - params.impact_bps / 1e4  # a sell sweep receives less
    quantity = np.ascontiguousarray(book.quantity, dtype=np.int64)
    num, den = params.fill_fraction.as_integer_ratio()
    biggest = int(quantity.max()) if n else 0
    share = (num, den, num == 0 or biggest <= INT64_MAX // num)  # floored exactly: int64 or Python ints
    if params.rematch_on_quote:
        quotes = (
            np.ascontiguousarray(book.quote_time, dtype=np.int64),
            np.ascontiguousarray(book.quote_mid, dtype=np.float64),
        )
    else:
        quotes = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    # Each match exhausts its incoming order's pass or a resting order (each rests once): at most 3n.
    # np.empty reserves the room; only the pages written become memory.
    room = 3 * n + 8
    out = (
        np.empty(room, dtype=np.int64),
        np.empty(room, dtype=np.int64),
        np.empty(room, dtype=np.int64),
        np.empty(room, dtype=np.int64),
        np.empty(room, dtype=np.float64),
        np.empty(room, dtype=np.float64),
        np.zeros(1, dtype=np.int64),
    )
    rested = np.zeros(n, dtype=np.int64)
    _replay(
        np.ascontiguousarray(book.timestamp, dtype=np.int64),
        quantity,
        np.ascontiguousarray(book.mid, dtype=np.float64),
        rests,
        np.ascontiguousarray(book.rest_cap, dtype=np.int64),
        _reachable(book, params.rematch_on_quote),
        quotes,
        trees,
        kernel_book,
        (split, up, down),
        kind_of,
        pos,
        share,
        out,
        rested,
    )
    k = int(out[6][0])
    return MatchResult(
        resting_idx=out[0][:k].copy(),
        incoming_idx=out[1][:k].copy(),
        timestamp=out[2][:k].copy(),
        quantity=out[3][:k].copy(),
        price=out[4][:k].copy(),
        mid=out[5][:k].copy(),
        rested_quantity=rested,
    )


def compile_kernel() -> None:
    """Compile the kernel now (`make install` does, so a first run does not wait for it: ~15 s on a slow
    2-core machine), or load it from numba's cache beside this file: a replay of a two-order book."""
    two = np.ones(2, dtype=bool)
    match(
        ReplayBook(
            order_id=np.arange(2),
            timestamp=np.arange(2),
            side=np.array([BUY, SELL]),
            quantity=np.full(2, 100),
            bound=np.array([INF, -INF]),
            maq=np.zeros(2, dtype=np.int64),
            maq_single=~two,
            mid=np.full(2, 1.0),
            is_sweep=two,
            rests=two,
            rest_cap=np.full(2, 100),
            window_end=np.full(2, 10),
        ),
        MatchParams(),
    )

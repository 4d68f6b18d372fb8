"""Centre Point replay kernel: every CP order arrives as an incoming order, then may rest (docs/methodology.md).

Pure Python over arrays (no Polars), because matching is inherently sequential: each fill changes what
later orders can meet. `steps.replay` builds `ReplayBook` and turns `MatchResult` back into frames.

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
from bisect import bisect_right
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

BUY = 1
SELL = 2
INF = math.inf


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


class _RestingTree:
    """Segment tree over one side-and-kind's resting orders by arrival rank (see the module docstring)."""

    __slots__ = ("size", "key", "maq", "rem", "index")

    def __init__(self, indices: list[int]) -> None:
        size = 1
        while size < max(len(indices), 1):
            size *= 2
        self.size = size
        self.key = [INF] * (2 * size)  # smallest price bound (sells) / negated highest (buys)
        self.maq = [INF] * (2 * size)  # smallest binding MAQ
        self.rem = [-1] * (2 * size)  # largest remaining quantity
        self.index = indices  # leaf position -> book index

    def set(self, pos: int, key: float, maq: float, rem: int) -> None:
        """Set one leaf and refresh its ancestors, stopping where a node's summary does not change."""
        k, m, r = self.key, self.maq, self.rem
        v = pos + self.size
        k[v], m[v], r[v] = key, maq, rem
        v >>= 1
        while v:
            a, b = 2 * v, 2 * v + 1
            kv = k[a] if k[a] < k[b] else k[b]
            mv = m[a] if m[a] < m[b] else m[b]
            rv = r[a] if r[a] > r[b] else r[b]
            if kv == k[v] and mv == m[v] and rv == r[v]:
                return
            k[v], m[v], r[v] = kv, mv, rv
            v >>= 1

    def activate(self, pos: int, key: float, maq: float, rem: int) -> None:
        """Set a leaf that was empty: each ancestor's summary can only move towards the new values, so a
        comparison with the ancestor alone suffices, and the walk stops at the first unchanged one."""
        k, m, r = self.key, self.maq, self.rem
        v = pos + self.size
        k[v], m[v], r[v] = key, maq, rem
        v >>= 1
        while v:
            changed = False
            if key < k[v]:
                k[v] = key
                changed = True
            if maq < m[v]:
                m[v] = maq
                changed = True
            if rem > r[v]:
                r[v] = rem
                changed = True
            if not changed:
                return
            v >>= 1

    def leftmost(self, threshold: float, need: int, min_rem: int, lo: int = 0) -> int:
        """Position >= lo of the earliest order with key <= threshold, MAQ <= need, remainder >= min_rem.

        The subtrees covering [lo, size) are tried left to right; within one, the descent is greedy
        (left child first), which the summaries make exact when one condition binds; a dead end (two
        conditions met by different orders of a subtree) falls back to a full search of that subtree.
        """
        k, m, r, size = self.key, self.maq, self.rem, self.size
        if lo == 0:
            cover = [1]
        else:
            left, right, tail = lo + size, 2 * size, []
            cover = []
            while left < right:
                if left & 1:
                    cover.append(left)
                    left += 1
                if right & 1:
                    right -= 1
                    tail.append(right)
                left >>= 1
                right >>= 1
            cover += reversed(tail)
        for top in cover:
            if k[top] > threshold or m[top] > need or r[top] < min_rem:
                continue
            v = top
            while v < size:
                v *= 2
                if k[v] > threshold or m[v] > need or r[v] < min_rem:
                    v += 1
                    if k[v] > threshold or m[v] > need or r[v] < min_rem:
                        v = self._search(top, threshold, need, min_rem)
                        break
            if v >= 0:
                return v - size
        return -1

    def _search(self, top: int, threshold: float, need: int, min_rem: int) -> int:
        """Leftmost matching leaf (as a node number) under `top` by a full search; -1 when none."""
        k, m, r, size = self.key, self.maq, self.rem, self.size
        stack = [top]
        while stack:
            v = stack.pop()
            if k[v] > threshold or m[v] > need or r[v] < min_rem:
                continue
            if v >= size:
                return v
            stack.append(2 * v + 1)
            stack.append(2 * v)
        return -1


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

    The passes are closures over local lists on purpose: it is the hot loop, and local variables are
    what keep it fast in Python (one call per pass, never one per candidate).
    """
    _validate(book)
    n = len(book.order_id)
    ts = book.timestamp.tolist()
    side = book.side.tolist()
    qty = book.quantity.tolist()
    bound = book.bound.tolist()
    maq = book.maq.tolist()
    single = book.maq_single.tolist()
    mids = book.mid.tolist()
    sweep = book.is_sweep.tolist()
    rests = book.rests.tolist()
    cap = book.rest_cap.tolist()
    wend = book.window_end.tolist()

    # trees[(side, kind)]; a leaf per order that may rest, in arrival order. The kinds (sweep, real) see
    # different prices only under impact; without it one tree per side serves both.
    split = params.impact_bps != 0.0
    kind_of = sweep if split else [False] * n
    members: dict[tuple[int, bool], list[int]] = {(s, k): [] for s in (BUY, SELL) for k in (False, True)}
    pos = [0] * n
    for i in range(n):
        if rests[i]:
            group = members[(side[i], kind_of[i])]
            pos[i] = len(group)
            group.append(i)
    trees = {sk: _RestingTree(idx) for sk, idx in members.items()}
    buy_tree, sell_tree = trees[(BUY, False)], trees[(SELL, False)]

    up = 1.0 + params.impact_bps / 1e4  # a buy sweep pays more
    down = 1.0 - params.impact_bps / 1e4  # a sell sweep receives less
    frac_num, frac_den = Fraction(repr(float(params.max_fill_fraction))).as_integer_ratio()

    rem = [0] * n
    had_fill = [False] * n  # has had a replay fill in either role (first-fill MAQ)
    rested = [0] * n
    out_rest: list[int] = []
    out_inc: list[int] = []
    out_ts: list[int] = []
    out_qty: list[int] = []
    out_price: list[float] = []
    out_mid: list[float] = []

    def incoming_pass(i: int, need: int, t: int, m: float) -> int:
        """Order i meets the open resting orders of the other side at mid m; returns what it has left."""
        sd = side[i]
        other = SELL if sd == BUY else BUY
        # the price each kind of candidate sees, and the tree threshold that accepts it
        own, contra = (up if sd == BUY else down), (up if other == BUY else down)
        prices = (m * own, m) if sweep[i] else (m, m * contra)  # (vs real, vs sweep)
        kinds = []
        for kind, price in ((False, prices[0]), (True, prices[1])) if split else ((False, m),):
            ok = price <= bound[i] if sd == BUY else price >= bound[i]
            tree = trees[(other, kind)]
            if ok and tree.rem[1] > 0:
                kinds.append((tree, price, price if sd == BUY else -price))
        mi = maq[i]
        had_i = had_fill[i]
        visited = -1
        while kinds and need > 0:
            mi_eff = mi if mi > 0 and (single[i] or not had_i) else 0
            if need < mi_eff:
                break  # every fill would be below the incoming order's MAQ
            best = -1
            best_tree: _RestingTree | None = None
            best_price = 0.0
            for tree, price, threshold in kinds:
                # one pass in time priority: candidates before the last one visited are not revisited
                # (only the incoming MAQ could relax, after its first fill, and a skip is final)
                lo = bisect_right(tree.index, visited) if visited >= 0 else 0
                p = tree.leftmost(threshold, need, mi_eff, lo)
                if p >= 0 and (best < 0 or tree.index[p] < best):
                    best, best_tree, best_price = tree.index[p], tree, price
            if best_tree is None:
                break
            j = visited = best
            if wend[j] < t:  # its window ended; time only moves forward
                best_tree.set(pos[j], INF, INF, -1)
                continue
            r = rem[j]
            q = need if need < r else r
            out_rest.append(j)
            out_inc.append(i)
            out_ts.append(t)
            out_qty.append(q)
            out_price.append(best_price)
            out_mid.append(m)
            had_i = True
            had_fill[j] = True
            need -= q
            r -= q
            rem[j] = r
            refresh(j)
        had_fill[i] = had_i
        return need

    def refresh(j: int) -> None:
        """Update resting order j's leaf after a fill: gone when exhausted or below its own MAQ."""
        tree = trees[(side[j], kind_of[j])]
        mj = maq[j] if maq[j] > 0 and (single[j] or not had_fill[j]) else 0
        if rem[j] == 0 or rem[j] < mj:
            tree.set(pos[j], INF, INF, -1)
        else:
            tree.set(pos[j], tree.key[pos[j] + tree.size], mj, rem[j])

    def earliest_resting(sd: int, m: float, t: int) -> int:
        """The earliest resting order of side sd whose bound accepts m and whose window is open; -1 if none."""
        threshold = -m if sd == BUY else m
        while True:
            best = -1
            for kind in (False, True):
                tree = trees[(sd, kind)]
                p = tree.leftmost(threshold, 1 << 62, 0)
                if p >= 0 and (best < 0 or tree.index[p] < best):
                    best = tree.index[p]
            if best < 0 or wend[best] >= t:
                return best
            trees[(sd, kind_of[best])].set(pos[best], INF, INF, -1)

    def rematch(t: int, m: float) -> None:
        """A new quote: resting orders both of whose limits accept its mid match, the later one incoming.

        (Optional rule `replay.rematch_on_quote`; stops at the first pair whose MAQs block a match.)"""
        while True:
            b, s_ = earliest_resting(BUY, m, t), earliest_resting(SELL, m, t)
            if b < 0 or s_ < 0:
                return
            later = b if b > s_ else s_
            left = incoming_pass(later, rem[later], t, m)
            if left == rem[later]:
                return
            rem[later] = left
            refresh(later)

    # Orders no incoming order can meet while they rest never enter a tree (`_reachable`).
    reach = _reachable(book, params.rematch_on_quote).tolist()

    qt = book.quote_time.tolist()
    qm = book.quote_mid.tolist()
    nq = len(qt) if params.rematch_on_quote else 0
    k = 0
    for i in range(n):
        need = qty[i]
        m = mids[i]
        t = ts[i]
        while k < nq and qt[k] < t:  # quotes stamped before this arrival (a quote at its ns is its result)
            rematch(qt[k], qm[k])
            k += 1
        if need > 0 and m == m:  # m == m is False only for NaN: outside the session or no quote
            if split:
                need = incoming_pass(i, need, t, m)
            else:  # one tree and one price: skip the pass when its root shows no candidate could take m
                buys = side[i] == BUY
                tree = sell_tree if buys else buy_tree
                if (m <= bound[i] if buys else m >= bound[i]) and tree.key[1] <= (m if buys else -m):
                    need = incoming_pass(i, need, t, m)
        if rests[i]:
            base = cap[i] if cap[i] < need else need  # need = budget left after its incoming pass
            r = (base * frac_num // frac_den if sweep[i] else base) if base > 0 else 0
            if r > 0:
                rested[i] = r
                rem[i] = r
                mj = maq[i] if maq[i] > 0 and (single[i] or not had_fill[i]) else 0
                if r >= mj and reach[i]:  # below its own MAQ, or unreachable, it could never fill
                    key = -bound[i] if side[i] == BUY else bound[i]
                    trees[(side[i], kind_of[i])].activate(pos[i], key, mj, r)
    while k < nq:
        rematch(qt[k], qm[k])
        k += 1

    return MatchResult(
        resting_idx=np.array(out_rest, dtype=np.int64),
        incoming_idx=np.array(out_inc, dtype=np.int64),
        timestamp=np.array(out_ts, dtype=np.int64),
        quantity=np.array(out_qty, dtype=np.int64),
        price=np.array(out_price, dtype=np.float64),
        mid=np.array(out_mid, dtype=np.float64),
        rested_quantity=np.array(rested, dtype=np.int64),
    )

"""Centre Point replay kernel: every CP order arrives as an incoming order, then may rest (docs/methodology.md).

A loop over arrays compiled with numba (`dpsim.steps.kernel`; compiled once per machine and cached beside it),
because matching is inherently sequential: each fill changes what later orders can meet, so it cannot be
vectorised, and as plain Python it was about a third of a year-sized partition's job (BENCHMARKS.md,
the eleventh stop on issue 20). `steps.replay` builds
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
import threading
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from dpsim.compiled import load_in_background, without_scipy

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


def _kernel_array(values: np.ndarray, dtype: type) -> np.ndarray:
    """`values` as the kernel's compiled signature has it: C-contiguous, writeable (a read-only view of a
    Polars column is copied: numba would compile, and cache, a second kernel for read-only arrays)."""
    return np.require(values, dtype=dtype, requirements=("C_CONTIGUOUS", "WRITEABLE"))


def match(book: ReplayBook, params: MatchParams) -> MatchResult:
    """Replay the book in array order: each order is matched as incoming, then may rest.

    Builds the kernel's arrays (the trees' members and leaf positions, the orders no incoming order can
    reach) with numpy, then runs the compiled loop `kernel.replay` once."""
    _validate(book)
    n = len(book.order_id)
    split = params.impact_bps != 0.0
    side = _kernel_array(book.side, np.int64)
    rests = _kernel_array(book.rests, np.bool_)
    # trees[2 * (side - 1) + kind]; a leaf per order that may rest, in arrival order. The kinds (sweep, real)
    # see different prices only under impact; without it one tree per side serves both.
    kind_of = _kernel_array(book.is_sweep, np.int64) if split else np.zeros(n, dtype=np.int64)
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
        _kernel_array(book.bound, np.float64),
        _kernel_array(book.is_sweep, np.bool_),
        _kernel_array(book.maq, np.int64),
        _kernel_array(book.maq_single, np.bool_),
        _kernel_array(book.window_end, np.int64),
    )
    up = 1.0 + params.impact_bps / 1e4  # a buy sweep pays more
    down = 1.0 - params.impact_bps / 1e4  # a sell sweep receives less
    quantity = _kernel_array(book.quantity, np.int64)
    num, den = params.fill_fraction.as_integer_ratio()
    biggest = int(quantity.max()) if n else 0
    share = (num, den, num == 0 or biggest <= INT64_MAX // num)  # floored exactly: int64 or Python ints
    if params.rematch_on_quote:
        quotes = (
            _kernel_array(book.quote_time, np.int64),
            _kernel_array(book.quote_mid, np.float64),
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
    # numba (0.2 s to import, ~0.5 s to load the kernel) is imported by replays only, and types its first call here
    with without_scipy():
        from dpsim.steps.kernel import replay

        replay(
            _kernel_array(book.timestamp, np.int64),
            quantity,
            _kernel_array(book.mid, np.float64),
            rests,
            _kernel_array(book.rest_cap, np.int64),
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


def load_kernel_in_background() -> threading.Thread:
    """Load the compiled kernel (numba's import and its cache: ~1 s on a slow machine) on a thread, once per
    process, while the caller reads and measures a partition in Polars, which releases the GIL; `match`
    waits for it if it has not finished. Returns the thread, for a caller that must not exit before it."""
    return load_in_background("kernel", compile_kernel)

"""Centre Point replay kernel: matches CP order arrivals against resting sweeps (DOMAIN §5.5).

Pure Python over arrays (no Polars), because matching is inherently sequential:
each fill changes what later orders can meet. The Polars step around it builds
`MatchEvents` and turns `MatchResult` back into frames.

Complexity, with S resting sweeps and C events of a partition:
O((S + C) log S) time and O(S + C + fills) memory, plus O(log S) per skipped
candidate. Each sweep is pushed onto its side's heap once and leaves it once
(exhausted, expired or unable ever to meet its own MAQ); a fill that uses up
the incoming order leaves the head sweep in place, so an incoming order costs
O(1) plus O(log S) per sweep it exhausts or discards. The incoming limit and an
incoming MAQ larger than what is left depend only on the incoming order (all
candidates share the fill price: the mid as of the incoming event, moved by
impact in the direction of the one resting side), so they end the scan at
once. Only candidate-specific rejections are real skips, each popped and
pushed back: a resting sweep's own limit (`sweep_limit`), its MAQ versus a
smaller incoming order, or the incoming MAQ versus a smaller resting remainder.
Adversarial data (many resting sweeps whose MAQ exceeds every incoming order)
can make skips O(S * C).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

BUY = 1
SELL = 2


@dataclass(frozen=True)
class MatchParams:
    """The scenario knobs that change matching (DOMAIN §5.5)."""

    sweep_limit: bool = False  # respect the resting sweep's own limit
    impact_bps: float = 0.0
    max_fill_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_fill_fraction <= 1.0:
            raise ValueError(
                f"max_fill_fraction must be between 0 and 1, got {self.max_fill_fraction!r}: "
                "a sweep cannot rest with more than it has"
            )
        if not math.isfinite(self.impact_bps):
            raise ValueError(f"impact_bps must be a finite number, got {self.impact_bps!r}")


@dataclass(frozen=True)
class MatchEvents:
    """One entry per CP order arrival event, ALREADY sorted by (timestamp, sequence, order_id).

    Prices (`limit`, `mid`) share one unit, thousandths of a dollar.
    """

    order_id: np.ndarray  # int64
    timestamp: np.ndarray  # int64 ns
    side: np.ndarray  # 1 buy, 2 sell
    quantity: np.ndarray  # int64 arrival quantity = the order's budget (incoming AND resting share it)
    limit: np.ndarray  # int64 thousandths; <= 0 means no limit
    maq: np.ndarray  # int64; > 0 is a minimum acceptable quantity
    maq_single: np.ndarray  # bool: True = every fill >= MAQ; False = only the first simulated fill
    mid: np.ndarray  # float64 NBBO mid as of this event; NaN = no match possible
    rests: np.ndarray  # bool: an analysed sweep that rests after its arrival
    rest_cap: np.ndarray  # int64: residual_after_arrival (or arrival quantity); ignored unless rests
    window_end: np.ndarray  # int64 ns, inclusive end of the resting window (int64 max = end of day)


@dataclass(frozen=True)
class MatchResult:
    """Simulated fills (one entry each, in the order they happen) and what each sweep rested with."""

    resting_idx: np.ndarray  # int64 index into events of the resting sweep
    incoming_idx: np.ndarray  # int64 index of the incoming order
    timestamp: np.ndarray  # int64, the incoming event time
    quantity: np.ndarray  # int64
    price: np.ndarray  # float64: mid * (1 + s * impact_bps / 1e4), s = resting sweep's side sign
    mid: np.ndarray  # float64
    rested_quantity: np.ndarray  # int64 per event: what each resting sweep rested with (0 otherwise)


def _validate(events: MatchEvents) -> None:
    """Reject inputs that would silently give wrong fills (lazy expiry needs time order)."""
    n = len(events.order_id)
    for name in MatchEvents.__dataclass_fields__:
        length = len(getattr(events, name))
        if length != n:
            raise ValueError(f"MatchEvents.{name} has {length} entries, order_id has {n}; all must be equal")
    backwards = np.flatnonzero(np.diff(events.timestamp) < 0)
    if backwards.size:
        i = int(backwards[0]) + 1
        raise ValueError(
            f"MatchEvents not sorted by timestamp: event {i} (order_id {int(events.order_id[i])}) "
            "is earlier than the one before it; sort by (timestamp, sequence, order_id) first"
        )
    bad_side = np.flatnonzero((events.side != BUY) & (events.side != SELL))
    if bad_side.size:
        i = int(bad_side[0])
        raise ValueError(
            f"MatchEvents.side must be 1 (buy) or 2 (sell); event {i} "
            f"(order_id {int(events.order_id[i])}) has {int(events.side[i])}"
        )


def match(events: MatchEvents, params: MatchParams) -> MatchResult:
    """Replay the events in array order; each is matched as incoming, then (if a sweep) rests."""
    _validate(events)
    n = len(events.order_id)
    ts = events.timestamp.tolist()
    side = events.side.tolist()
    qty = events.quantity.tolist()
    lim = events.limit.tolist()
    maq = events.maq.tolist()
    single = events.maq_single.tolist()
    mids = events.mid.tolist()
    rests = events.rests.tolist()
    cap = events.rest_cap.tolist()
    wend = events.window_end.tolist()

    # Price factor by RESTING side: 1 + s * impact_bps / 1e4 (bit-identical for s = +1, -1).
    factor_rest_buy = 1 + params.impact_bps / 1e4
    factor_rest_sell = 1 - params.impact_bps / 1e4
    sweep_limit = params.sweep_limit
    # The fraction as written in the config (0.29 -> 29/100), so 100 * 0.29 floors to 29, not 28.
    frac_num, frac_den = Fraction(repr(float(params.max_fill_fraction))).as_integer_ratio()

    rest_left = [0] * n  # remaining resting quantity per sweep
    had_fill = [False] * n  # "has had a simulated fill" (as incoming or resting), for cumulative MAQ
    rested = [0] * n
    buy_heap: list[int] = []  # open resting buys by event index = time priority
    sell_heap: list[int] = []

    out_rest: list[int] = []
    out_inc: list[int] = []
    out_ts: list[int] = []
    out_qty: list[int] = []
    out_price: list[float] = []
    out_mid: list[float] = []

    heappush = heapq.heappush
    heappop = heapq.heappop

    for i in range(n):
        need = qty[i]
        had_i = False
        m = mids[i]
        sd = side[i]
        if sd == BUY:
            heap = sell_heap
            factor = factor_rest_sell
        else:
            heap = buy_heap
            factor = factor_rest_buy
        if heap and m == m and need > 0:  # m == m is False only for NaN: no match possible
            price = m * factor
            li = lim[i]
            if li <= 0 or (li >= price if sd == BUY else li <= price):
                t = ts[i]
                mi = maq[i]
                single_i = single[i]
                skipped: list[int] = []
                while heap:
                    if mi > 0 and need < mi and (single_i or not had_i):
                        break  # every candidate's fill would be below the incoming MAQ
                    j = heap[0]
                    if wend[j] < t:
                        heappop(heap)  # window ended; time only moves forward
                        continue
                    r = rest_left[j]
                    mj = maq[j]
                    if mj > 0 and r < mj and (single[j] or not had_fill[j]):
                        heappop(heap)  # can never meet its own MAQ again: r only shrinks
                        continue
                    q = need if need < r else r
                    lj = lim[j]
                    if (
                        (sweep_limit and lj > 0 and (lj > price if sd == BUY else lj < price))
                        or (mj > 0 and q < mj and (single[j] or not had_fill[j]))
                        or (mi > 0 and q < mi and (single_i or not had_i))
                    ):
                        skipped.append(heappop(heap))
                        continue
                    out_rest.append(j)
                    out_inc.append(i)
                    out_ts.append(t)
                    out_qty.append(q)
                    out_price.append(price)
                    out_mid.append(m)
                    had_i = True
                    had_fill[j] = True
                    need -= q
                    r -= q
                    rest_left[j] = r
                    if r == 0:
                        heappop(heap)
                    if need == 0:
                        break
                for j in skipped:
                    heappush(heap, j)
        if rests[i]:
            base = cap[i] if cap[i] < need else need  # need = budget left after its incoming pass
            r = base * frac_num // frac_den if base > 0 else 0
            if r > 0:
                rest_left[i] = r
                rested[i] = r
                had_fill[i] = had_i
                heappush(buy_heap if sd == BUY else sell_heap, i)

    return MatchResult(
        resting_idx=np.array(out_rest, dtype=np.int64),
        incoming_idx=np.array(out_inc, dtype=np.int64),
        timestamp=np.array(out_ts, dtype=np.int64),
        quantity=np.array(out_qty, dtype=np.int64),
        price=np.array(out_price, dtype=np.float64),
        mid=np.array(out_mid, dtype=np.float64),
        rested_quantity=np.array(rested, dtype=np.int64),
    )

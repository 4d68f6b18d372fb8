"""Orders as the episodes create them: ids, sizes, attributes by kind, lives, and their place in the batch."""

from __future__ import annotations

import numpy as np

from dpsim.synth.clock import CLOSE, MIN, PURGE, SEC
from dpsim.synth.events import CANCEL, PURGED, RESTS, SURVIVE, Arr, Batch, Cols
from dpsim.synth.market import Quotes, Universe

GTC = np.array([1288, 1370, 1536])
CROSSING_KEYS = np.array([0, 1, 2, 555, 99999, 194035, 8949669, 999970000])
OID_BASE = 7_904_794_000_000_000_000
OID_RELOADED_BASE = 7_901_232_681_000_000_000  # orders that predate the drop
PARTICIPANTS = np.array(
    [67, 51, 47, 146, 2, 41, 61, 42, 8, 54, 12, 19, 23, 31, 36, 44, 58, 63, 72, 77, 81, 88, 94, 101]
)


class OrderFactory:
    """What every episode draws from: the slice's random stream, the securities, the day's quotes, the
    batch being filled and the order-id counters (which cross slices and days)."""

    def __init__(self, universe: Universe, rng: np.random.Generator) -> None:
        self.universe = universe
        self.rng = rng
        self.batch = Batch()
        self.quotes: Quotes
        self.next_oid = OID_BASE
        self.next_reloaded_oid = OID_RELOADED_BASE

    def ids(self, n: int, reloaded: bool = False) -> Arr:
        gaps = np.cumsum(self.rng.integers(1, 40, n, dtype=np.int64))
        base = self.next_reloaded_oid if reloaded else self.next_oid
        ids = base + gaps
        if reloaded:
            self.next_reloaded_oid = int(ids[-1]) if n else base
        else:
            self.next_oid = int(ids[-1]) if n else base
        return ids

    def sizes(self, n: int, median: float, sigma: float) -> Arr:
        q = np.rint(median * np.exp(sigma * self.rng.standard_normal(n)))
        return np.clip(q, 1, 5_000_000).astype(np.int64)

    def uniform(self, n: int) -> Arr:
        return self.rng.random(n)

    def between(self, lo: Arr, hi: Arr) -> Arr:
        """Uniform int in [lo, hi) (hi > lo)."""
        return lo + np.floor(self.uniform(len(lo)) * (hi - lo)).astype(np.int64)

    def quote(self, sec: Arr, t: Arr) -> tuple[Arr, Arr]:
        i = self.quotes.at(sec, t)
        return self.quotes.bid[i], self.quotes.offer[i]

    def attrs(self, n: int, kind: str, side: Arr) -> Cols:
        """Per-order attributes; kind: 'lit', 'cp' (64/4096/4098) or 'sweep' (2048/2050)."""
        rng, u = self.rng, self.uniform
        sell = side == 2
        pw = 1.0 / np.arange(1, len(PARTICIPANTS) + 1) ** 0.9
        cols: Cols = {
            "participant": PARTICIPANTS[rng.choice(len(PARTICIPANTS), n, p=pw / pw.sum())],
            "validity": rng.choice([256, 1288, 1370, 1536], n, p=[0.92, 0.03, 0.02, 0.03]),
        }
        zero = np.zeros(n, np.int64)
        if kind == "lit":
            cols["order_type"] = np.where(sell & (u(n) < 0.12), 2, 0)
            cols |= {
                "preference": zero,
                "midtick": zero,
                "single_fill_maq": zero,
                "maq": zero,
                "crossing_key": zero,
            }
            return cols
        if kind == "sweep":
            cols["order_type"] = np.where(sell & (u(n) < 0.15), 2050, 2048)
            p_maq = 0.05
        else:
            base = rng.choice([4096, 64], n, p=[0.65, 0.35])
            cols["order_type"] = np.where((base == 4096) & sell & (u(n) < 0.2), 4098, base)
            p_maq = 0.3
        maq = u(n) < p_maq
        cols["maq"] = np.where(maq, self.sizes(n, 100, 1.0), 0)
        cols["single_fill_maq"] = np.where(maq, rng.choice([1, 2], n), rng.choice([0, 2], n, p=[0.3, 0.7]))
        cols["preference"] = rng.choice([0, 2], n, p=[0.3, 0.7])
        cols["midtick"] = rng.choice([1, 2, 3, 4], n, p=[0.3, 0.64, 0.01, 0.05])
        cols["crossing_key"] = CROSSING_KEYS[rng.choice(len(CROSSING_KEYS), n)]
        return cols

    def end_of_life(self, start: Arr, mean_s: float, tv: Arr) -> tuple[Arr, Arr, Arr]:
        """(t_end, end changereason, fate) of resting orders: cancelled after an exponential life; past the
        close, GTC orders mostly survive to be reloaded, others are cancelled just after 16:00 or purged."""
        n, u = len(start), self.uniform
        t_end = start + MIN // 60 + (self.rng.exponential(mean_s, n) * SEC).astype(np.int64)
        late = t_end >= CLOSE
        survive = late & np.isin(tv, GTC) & (u(n) < 0.8)
        purge = late & ~survive & (tv == 256) & (u(n) < 0.2)
        after_close = np.maximum(start + 1, CLOSE) + (u(n) * 10 * MIN).astype(np.int64)
        t_end = np.where(
            purge, PURGE - (u(n) * 10 * MIN).astype(np.int64), np.where(late, after_close, t_end)
        )
        cr = np.where(purge, PURGED, self.rng.choice([1, 9, 10], n, p=[0.85, 0.12, 0.03]))
        return t_end, cr, np.where(survive, SURVIVE, CANCEL)

    def add(self, cols: Cols, **more: Arr | int) -> int:
        n = len(cols["order_id"])
        full = {**cols, **{k: np.broadcast_to(np.asarray(v, dtype=np.int64), n) for k, v in more.items()}}
        full.setdefault("end_time", np.zeros(n, np.int64))
        full.setdefault("end_reason", np.zeros(n, np.int64))
        return self.batch.add_orders(full)

    def add_resting(self, cols: Cols, fills: tuple[Arr, Arr, Arr], last_t: Arr, mean_s: float) -> None:
        """Add orders that rest (fills: local index, time, qty) with their end of life after the last fill."""
        t_end, end_cr, fate = self.end_of_life(last_t, mean_s, cols["validity"])
        first = self.add(
            cols, end_time=t_end, end_reason=end_cr, fate=np.where(cols["fate"] == RESTS, fate, cols["fate"])
        )
        idx, t, q = fills
        self.batch.add_fills(first + idx, t, q)


def limit_ok(side: Arr, limit: Arr, price2: Arr) -> Arr:
    """Does a limit (<= 0: none) accept a price given as twice its value (mids are half units)?"""
    return (limit <= 0) | np.where(side == 1, 2 * limit >= price2, 2 * limit <= price2)

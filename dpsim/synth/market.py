"""The market: the securities of a drop and their NBBO quotes, one trading day at a time (a random walk
carried across days)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpsim.synth.clock import CLOSE, CONT_START, HOUR, KEY, MIN, OPEN, PRE_OPEN, PURGE, SEC
from dpsim.synth.events import Arr, group_cumsum

LONG_MIN = np.int64(-(2**63))  # an absent side of a quote, as the feed writes it
NBBO_PER_ROW = 0.08  # quotes per planned order row


@dataclass(frozen=True)
class Universe:
    """The securities of a drop: codes, names, share of activity, tick, opening price, spread profile."""

    codes: Arr
    names: list[str]
    weight: Arr  # share of activity, sums to 1
    tick: Arr
    price0: Arr
    p_one_tick: Arr  # chance that the spread is one tick: liquid names are tighter


def universe(rng: np.random.Generator, n: int) -> Universe:
    others = rng.choice(np.arange(100_000, 1_000_000), size=n, replace=False)
    codes = np.r_[110621, np.sort(others[others != 110621][: n - 1])].astype(np.int64)
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    names = ["DRR"]
    while len(names) < n:
        name = "".join(rng.choice(letters, 3))
        if name not in names:
            names.append(name)
    zipf = 1.0 / np.arange(1, n + 1) ** 1.1
    weight = rng.permutation(zipf / zipf.sum())
    price = np.clip(4000 * np.exp(rng.standard_normal(n)), 300, 80_000)
    price[0] = 3350
    tick = np.where(price < 2000, 5, 10).astype(np.int64)
    return Universe(
        codes=codes,
        names=names,
        weight=weight,
        tick=tick,
        price0=(np.round(price / tick) * tick).astype(np.int64),
        p_one_tick=0.35 + 0.5 * np.sqrt(weight / weight.max()),
    )


def continuous_cdf() -> tuple[Arr, Arr]:
    """Per-minute U-shaped intensity of continuous trading (busy open, busier close) as a CDF."""
    minutes = np.arange(360) + 0.5
    lam = 1 + 1.5 * np.exp(-minutes / 30) + 1.0 * np.exp(-(360 - minutes) / 20)
    cdf = np.r_[0.0, np.cumsum(lam)] / lam.sum()
    return cdf, np.linspace(CONT_START, CLOSE, 361)


class Quotes:
    """One trading day of NBBO quotes for every security, sorted by (security, time).

    `bid/offer` is the clean quote that episodes trade against; `pub_bid/pub_offer` is what the feed
    and the event snapshots show (crossed / locked / one-sided outside continuous trading).
    """

    def __init__(
        self, sec: Arr, t: Arr, bid: Arr, offer: Arr, pub_bid: Arr, pub_offer: Arr, n_sec: int
    ) -> None:
        self.sec, self.t = sec, t
        self.bid, self.offer = bid, offer
        self.pub_bid, self.pub_offer = pub_bid, pub_offer
        self.key = sec * KEY + t
        self.first = np.searchsorted(sec, np.arange(n_sec))

    def at(self, sec: Arr, t: Arr) -> Arr:
        """Index of the quote in force at t (the security's first quote before its first update)."""
        i = np.searchsorted(self.key, sec * KEY + t, side="right") - 1
        return np.maximum(i, self.first[sec])


class Market:
    """The NBBO walk of every security: its state (the mids) crosses days."""

    def __init__(self, universe: Universe) -> None:
        self.universe = universe
        self.cdf, self.cdf_t = continuous_cdf()
        self.mid_ticks = (universe.price0 // universe.tick).astype(np.int64)

    def day_quotes(self, rng: np.random.Generator, planned: Arr, open_t: Arr) -> Quotes:
        """The day's NBBO walk per security: evening, pre-open, continuous (U-shaped), post-close quotes.
        A clean quote 1 ns after each security's opening auction ends the pre-open oddities (auction
        prints keep the pre-open snapshot, like the real ones). Moves the opening mids to the next day."""
        n_sec = len(self.universe.codes)
        n_q = 12 + np.rint(NBBO_PER_ROW * planned).astype(np.int64)
        segments: list[tuple[Arr, int, int, int]] = [  # (count per security, phase, lo, hi)
            (3 + n_q // 50, 0, SEC, 2 * HOUR + 30 * MIN),
            (4 + n_q // 10, 1, PRE_OPEN, OPEN),
            (2 + n_q // 40, 3, CLOSE, PURGE),
        ]
        cont = np.maximum(n_q - np.sum([s[0] for s in segments], axis=0), 3)
        secs, ts, phases = [], [], []
        for count, code, lo, hi in segments:
            secs.append(np.repeat(np.arange(n_sec), count))
            ts.append(lo + np.floor(rng.random(len(secs[-1])) * (hi - lo)).astype(np.int64))
            phases.append(np.full(len(secs[-1]), code))
        secs.append(np.repeat(np.arange(n_sec), cont))
        ts.append(np.floor(np.interp(rng.random(len(secs[-1])), self.cdf, self.cdf_t)).astype(np.int64))
        phases.append(np.full(len(secs[-1]), 2))
        secs.append(np.arange(n_sec))
        ts.append(open_t + 1)
        phases.append(np.full(n_sec, 2))
        sec, t, phase = np.concatenate(secs), np.concatenate(ts), np.concatenate(phases)
        order = np.lexsort((t, sec))
        sec, t, phase = sec[order], t[order], phase[order]
        n = len(t)
        tick = self.universe.tick[sec]
        # ~1.2 % daily volatility whatever the number of quotes.
        p_move = np.minimum(0.5, (0.012 * self.mid_ticks) ** 2 / np.maximum(cont, 1))[sec]
        step = np.where(rng.random(n) < p_move, rng.choice([-1, 1], n), 0)
        bid_ticks = np.maximum(self.mid_ticks[sec] + group_cumsum(step, sec), 4)
        spread = np.where(
            rng.random(n) < self.universe.p_one_tick[sec],
            1,
            2 + (rng.random(n) < 0.3) + (rng.random(n) < 0.1),
        )
        spread = np.where((phase == 2) & (rng.random(n) < 0.003), 0, spread)
        bid = bid_ticks * tick
        offer = bid + spread * tick
        odd = (phase <= 1) & (rng.random(n) < 0.35)
        kind = rng.choice(4, n, p=[0.45, 0.2, 0.15, 0.2])  # crossed, locked, no bid, no offer
        crossed = bid - rng.integers(1, 4, n) * tick
        pub_offer = np.where(odd & (kind == 0), crossed, np.where(odd & (kind == 1), bid, offer))
        pub_offer = np.where(odd & (kind == 3), LONG_MIN, pub_offer)
        pub_bid = np.where(odd & (kind == 2), LONG_MIN, bid)
        last = np.r_[sec[1:] != sec[:-1], True]
        gap = np.rint(rng.standard_normal(n_sec) * 0.004 * bid_ticks[last]).astype(np.int64)
        self.mid_ticks = np.maximum(bid_ticks[last] + gap, 4)
        return Quotes(sec, t, bid, offer, pub_bid, pub_offer, n_sec)

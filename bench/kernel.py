"""Simulation-kernel benchmark: `dpsim.steps.matching.match` on a liquid generated security-day.

    python -m bench.kernel --sizes 100000,300000,1000000 --scenario-size 1000000 --reps 3

Builds `MatchEvents` directly with numpy: CP order arrivals over 10:00-16:00 local, ~20 % of them analysed
sweeps that rest after arrival, a mid random walk on half ticks (a few % missing/locked: NaN), lognormal
quantities, ~55 % of orders with a limit near the mid (some not marketable), ~12 % with a MAQ (half of
them single-fill). Times `match()` alone (arrays are built before the clock starts), one warm-up, then the
median of `reps` runs, for every default scenario at `--scenario-size` and for `baseline` at each size
of `--sizes` (the growth curve). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import numpy as np

from dpsim.steps.matching import MatchEvents, MatchParams, match

SEC = 1_000_000_000
DAY_START = 1725494400 * SEC  # 2024-09-05 00:00 UTC = 10:00 AEST
DAY_NS = 6 * 3600 * SEC

SCENARIOS = {
    "baseline": ("last_fill", MatchParams()),
    "order_life": ("order_life", MatchParams()),
    "half_cap": ("last_fill", MatchParams(max_fill_fraction=0.5)),
    "impact_5bps": ("last_fill", MatchParams(impact_bps=5.0)),
    "sweep_limit": ("last_fill", MatchParams(sweep_limit=True)),
}


def build(n: int, window: str, seed: int = 7) -> MatchEvents:
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(DAY_START, DAY_START + DAY_NS, n, dtype=np.int64))
    side = rng.integers(1, 3, n).astype(np.int64)
    qty = np.maximum(1, rng.lognormal(np.log(400), 1.1, n)).astype(np.int64)
    # Mid in thousandths on half ticks of a 10-unit tick: a random walk around $3.00.
    steps = rng.choice(np.array([-5, 0, 5]), n, p=[0.03, 0.94, 0.03])
    mid = (3000 + np.cumsum(steps)).clip(500).astype(np.float64)
    mid[rng.random(n) < 0.03] = np.nan  # locked / crossed / one-sided quote: no match
    # Limits: ~45 % pure mid-peg (no limit); the rest within a few ticks of the mid, mostly marketable.
    off = rng.integers(-2, 6, n) * 5
    limit = np.where(side == 1, np.nan_to_num(mid, nan=3000) + off, np.nan_to_num(mid, nan=3000) - off)
    limit = np.where(rng.random(n) < 0.45, 0, limit).astype(np.int64)
    has_maq = rng.random(n) < 0.12
    maq = np.where(has_maq, rng.choice(np.array([100, 200, 500, 1000, 2000]), n), 0).astype(np.int64)
    maq_single = has_maq & (rng.random(n) < 0.5)
    rests = rng.random(n) < 0.20
    rest_cap = np.where(rests, np.floor(qty * rng.uniform(0.2, 1.0, n)), 0).astype(np.int64)
    life_s = rng.exponential(20.0 if window == "last_fill" else 600.0, n)
    window_end = np.where(rests, ts + (life_s * SEC).astype(np.int64), 0).astype(np.int64)
    order_id = (7_900_000_000_000_000_000 + np.arange(n, dtype=np.int64)).astype(np.int64)
    return MatchEvents(
        order_id=order_id,
        timestamp=ts,
        side=side,
        quantity=qty,
        limit=limit,
        maq=maq,
        maq_single=maq_single,
        mid=mid,
        rests=rests,
        rest_cap=rest_cap,
        window_end=window_end,
    )


def timed(events: MatchEvents, params: MatchParams, reps: int) -> dict[str, object]:
    times, fills = [], 0
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        res = match(events, params)
        times.append(time.perf_counter() - t0)
        fills = len(res.quantity)
    med = statistics.median(times)
    n = len(events.order_id)
    return {
        "events": n,
        "resting_sweeps": int(events.rests.sum()),
        "fills": fills,
        "seconds": round(med, 4),
        "runs": [round(t, 4) for t in times],
        "events_per_s": round(n / med),
        "us_per_event": round(med / n * 1e6, 3),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="100000,300000,1000000")
    p.add_argument("--scenario-size", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    sizes = [int(x) for x in a.sizes.split(",") if x]
    warm = build(min(sizes + [a.scenario_size]), "last_fill")
    match(warm, MatchParams())  # warm-up
    growth = []
    for n in sizes:
        growth.append(timed(build(n, "last_fill"), MatchParams(), a.reps))
        print(f"growth {n}: {growth[-1]['seconds']} s", file=sys.stderr)
    scen = {}
    cache: dict[str, MatchEvents] = {}
    for name, (window, params) in SCENARIOS.items():
        ev = cache.setdefault(window, build(a.scenario_size, window))
        scen[name] = timed(ev, params, a.reps)
        print(f"scenario {name}: {scen[name]['seconds']} s", file=sys.stderr)
    print(json.dumps({"growth": growth, "scenarios": scen}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

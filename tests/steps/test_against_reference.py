"""The pipeline against an independent plain-Python implementation of the same rules (tests/reference).

The reference was written from the specification alone (brute force: dicts, bisect, a list scan for the
replay), so agreement on the real DRR day and on random partitions (limits, mid-tick orders, MAQs,
fill-and-kill sweeps, pre-open orders, unusable quotes, booking and auction prints) checks the fast
implementation's every table: sweeps, sim_fills, sim_orders, replay_fidelity and quality.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import date, time
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpsim import config, schema
from dpsim.config import Config, TimeConfig
from dpsim.partition import PartitionResults, compute_partition
from tests.reference import Params, Scenario, reference_partition

DAY = date(2024, 9, 5)
T10 = 1_725_494_400 * 1_000_000_000  # 2024-09-05 10:00:00 AEST
S = 1_000_000_000


def params_of(cfg: Config) -> Params:
    """The reference's parameters for a dpsim config (the same rules, named its own way)."""
    scen = {
        name: Scenario(
            quantity=s.quantity,
            window=s.window_seconds if s.window_seconds is not None else s.window,
            max_fill_fraction=s.max_fill_fraction,
            impact_bps=s.impact_bps,
            sweep_midtick=s.sweep_midtick,
            ignore_sweep_limit=s.ignore_sweep_limit,
            real_queue=s.real_queue,
        )
        for name, s in cfg.scenarios.items()
    }
    hhmm = [time.fromisoformat(cfg.time.open), time.fromisoformat(cfg.time.close)]
    return Params(
        open=hhmm[0],
        close=hhmm[1],
        max_quote_age_s=cfg.time.max_quote_age_s,
        horizons_s=cfg.metrics.horizons_s,
        participants=cfg.filters.participants,
        scenarios=scen,
    )


KEYS = {
    "sweeps": [schema.ORDER_ID],
    "sim_orders": [schema.ORDER_ID],
    "sim_fills": ["timestamp", "sweep_order_id", "contra_order_id", "role"],
    "replay_fidelity": [],
    "quality": [],
}


def assert_same(name: str, ours: pl.DataFrame, ref: pl.DataFrame) -> None:
    """Same rows and values: integers and text exactly, floats to 1e-9 relative (1e-9 absolute near 0)."""
    assert ours.height == ref.height, f"{name}: {ours.height} rows, reference {ref.height}"
    missing = set(ref.columns) - set(ours.columns)
    assert not missing, f"{name}: columns missing: {sorted(missing)}"
    if KEYS[name]:
        ours, ref = ours.sort(KEYS[name]), ref.sort(KEYS[name])
    for col in ref.columns:
        a, b = ours[col].to_list(), ref[col].to_list()
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same = (
                math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
                if isinstance(x, float) and isinstance(y, float | int) and not isinstance(y, bool)
                else x == y
            )
            if not same:
                key = {k: ours[k][i] for k in KEYS[name]}
                pytest.fail(f"{name}.{col} at {key or i}: ours {x!r}, reference {y!r}")


def assert_all_same(ours: PartitionResults, ref: dict[str, Any]) -> None:
    for name in ("sweeps", "replay_fidelity", "quality"):
        assert_same(name, getattr(ours, name), ref[name])
    assert set(ours.sim_orders) == set(ref["sim_orders"])
    for scen in ours.sim_orders:
        assert_same("sim_fills", ours.sim_fills[scen], ref["sim_fills"][scen])
        assert_same("sim_orders", ours.sim_orders[scen], ref["sim_orders"][scen])


def run_both(orders: Any, trades: Any, nbbo: Any, cfg: Config) -> tuple[PartitionResults, dict[str, Any]]:
    ours = compute_partition(orders, trades, nbbo, cfg, DAY)
    ref = reference_partition(orders, trades, nbbo, DAY, params_of(cfg))
    return ours, ref


def test_the_drr_day_equals_the_reference(drr_partition) -> None:
    p = drr_partition
    ours, ref = run_both(p["orders"], p["trades"], p["nbbo"], Config())
    assert ours.sweeps.height == 4100
    assert_all_same(ours, ref)


def test_the_drr_day_without_feed_equals_the_reference(drr_partition) -> None:
    """The snapshot fallback (no NBBO rows: the CP event rows' national quotes), with a quote age limit."""
    p = drr_partition
    cfg = dataclasses.replace(Config(), time=TimeConfig(max_quote_age_s=60.0))
    ours, ref = run_both(p["orders"], p["trades"], p["nbbo"].head(0), cfg)
    assert ours.quality["nbbo_source"][0] == "snapshot"
    assert_all_same(ours, ref)


# ---- random partitions --------------------------------------------------------------------------


def random_partition(seed: int, make_events, make_trades, make_quotes) -> tuple[Any, Any, Any]:
    """A small random partition: CP orders of every kind with events, trades of every class, quotes."""
    rng = random.Random(seed)
    tick = 10
    mid0 = rng.choice([2005, 2500, 3355])
    quotes = []
    t = T10 - 30 * S  # some quotes before the open (stale)
    for k in range(rng.randint(5, 40)):
        t += rng.randint(1, 120) * S // rng.choice([1, 1, 1000])
        half = rng.choice([5, 10, 10, 20])
        m = mid0 + rng.randint(-3, 3) * tick
        bid, offer = m - half, m + half
        kind = rng.random()
        if kind < 0.05:
            offer = bid  # locked
        elif kind < 0.08:
            bid, offer = offer, bid  # crossed
        elif kind < 0.10:
            bid = -(2**63)  # empty side
        quotes.append({"timestamp": t, "bid": bid, "offer": offer, "sequence": k + 1})
    events: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    match_group = 1
    for n in range(rng.randint(3, 30)):
        oid = 7_904_794_000_000_000_000 + n
        kind = rng.random()
        typ = 2048 if kind < 0.5 else rng.choice([64, 4096, 4098, 256])
        side = rng.choice([1, 2])
        arrival = T10 + rng.randint(-60, 600) * S // rng.choice([1, 1, 7])
        if rng.random() < 0.3 and events:
            arrival = rng.choice(events)["timestamp"]  # shares a nanosecond with another event
        qty = rng.choice([50, 100, 300, 1000, 5000])
        limit = 0 if rng.random() < 0.2 else mid0 + rng.randint(-3, 3) * 5
        rests = rng.random() < 0.7
        common = {
            "order_id": oid,
            "side": side,
            "exchangeordertype": typ,
            "price": limit,
            "midtick": rng.choice([1, 2, 2, 3, 4]),
            "minimumquantity": rng.choice([0, 0, 0, 50, 200, 2000, -(2**63)]),
            "singlefillminimumquantity": rng.choice([1, 2]),
            "timevalidity": 256 if rests else 0,
        }
        filled = 0
        if rng.random() < 0.4:  # fills at arrival: lit, dark or booking
            fill_q = rng.randint(1, qty)
            ds = rng.choice([1, 1, 47, 46, 44, 48, 5])
            trades.append(
                {
                    "order_id": oid,
                    "timestamp": arrival,
                    "quantity": fill_q,
                    "tradeprice": mid0 + rng.choice([-10, -5, 0, 5, 10]),
                    "side": side,
                    "dealsource": ds,
                    "matchgroupid": match_group,
                }
            )
            match_group += 1
            filled = fill_q if ds not in (44, 48) else 0
        leaves = qty - filled
        events.append(
            {**common, "timestamp": arrival, "quantity": qty, "leavesquantity": qty, "orderstatus": 2}
        )
        events.append(
            {
                **common,
                "timestamp": arrival,
                "quantity": qty,
                "leavesquantity": leaves,
                "orderstatus": 1 if rests else 2,
                "totalmatchedquantity": filled,
                "changereason": 3 if filled else 6,
            }
        )
        if rng.random() < 0.2:  # an upward amend
            events.append(
                {
                    **common,
                    "timestamp": arrival + rng.randint(1, 100) * S,
                    "quantity": qty * 3,
                    "leavesquantity": leaves + 2 * qty,
                    "orderstatus": 1,
                    "changereason": 5,
                    "totalmatchedquantity": filled,
                }
            )
        end = arrival + rng.randint(1, 4000) * S
        if rng.random() < 0.5 and leaves > 0:  # a later lit or auction fill
            later_q = rng.randint(1, leaves)
            trades.append(
                {
                    "order_id": oid,
                    "timestamp": end,
                    "quantity": later_q,
                    "tradeprice": mid0 + rng.choice([-10, 0, 10]),
                    "side": side,
                    "dealsource": rng.choice([1, 1, 20, 47]),
                    "matchgroupid": match_group,
                }
            )
            match_group += 1
            filled += later_q
        events.append(
            {
                **common,
                "timestamp": end,
                "quantity": qty,
                "leavesquantity": qty - filled,
                "orderstatus": rng.choice([1, 2, 2]),
                "changereason": rng.choice([1, 3, 9]),
                "totalmatchedquantity": filled,
            }
        )
    # real CP executions between the partition's orders (so the fidelity has pairs), and an auction print
    ids = sorted({e["order_id"] for e in events})
    for _ in range(rng.randint(0, 6)):
        a, b = rng.sample(ids, 2)
        t_ex = T10 + rng.randint(0, 900) * S
        q = rng.choice([10, 100, 500])
        for oid, sd in ((a, 1), (b, 2)):
            trades.append(
                {
                    "order_id": oid,
                    "timestamp": t_ex,
                    "quantity": q,
                    "tradeprice": mid0,
                    "side": sd,
                    "dealsource": 47,
                    "matchgroupid": match_group,
                }
            )
        match_group += 1
    if rng.random() < 0.7:
        trades.append(
            {
                "order_id": 1,
                "timestamp": T10 + rng.randint(0, 300) * S,
                "quantity": 100,
                "tradeprice": mid0,
                "dealsource": 20,
                "matchgroupid": match_group,
            }
        )
    seq = {id(e): i + 1 for i, e in enumerate(sorted(events, key=lambda e: e["timestamp"]))}
    for e in events:
        e["sequence"] = seq[id(e)]
    return make_events(events), make_trades(trades), make_quotes(quotes)


CONFIGS = {
    "defaults": Config(),
    "max_quote_age": dataclasses.replace(Config(), time=TimeConfig(max_quote_age_s=30.0)),
    "other_scenarios": dataclasses.replace(
        Config(),
        scenarios={
            "seconds_60": config.Scenario(window="seconds:60"),
            "end_of_day_full": config.Scenario(window="end_of_day", quantity="full"),
            "impact_midtick": config.Scenario(impact_bps=7.5, sweep_midtick=True, max_fill_fraction=0.29),
            "impact_no_limit": config.Scenario(impact_bps=20.0, ignore_sweep_limit=True, real_queue=False),
        },
    ),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(sorted(CONFIGS)))
def test_random_partitions_equal_the_reference(seed, name, make_events, make_trades, make_quotes) -> None:
    orders, trades, nbbo = random_partition(seed, make_events, make_trades, make_quotes)
    ours, ref = run_both(orders, trades, nbbo, CONFIGS[name])
    assert_all_same(ours, ref)

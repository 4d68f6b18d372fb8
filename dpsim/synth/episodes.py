"""Episodes: vectorised scenes of market activity (CP sweeps, lit trades, resting lit and CP orders, the
opening auction, the evening reloads), each creating every order, fill, amend and execution it needs."""

from __future__ import annotations

import numpy as np

from dpsim.synth.clock import CLOSE, CONT_START, HOUR, PRE_OPEN, SEC
from dpsim.synth.events import IOC, NEW, RELOAD, RESTS, SURVIVOR_KEYS, Arr, Cols, concat, group_cumsum, take
from dpsim.synth.legs import cp_leg, later_cp_fills, lit_leg
from dpsim.synth.orders import OrderFactory, limit_ok


def delay(o: OrderFactory, a: Arr, cap_s: float) -> Arr:
    """When the incoming order of an episode arrives: after its contras, before the close."""
    room = np.maximum(np.minimum(int(cap_s * SEC), CLOSE - SEC - a), 0)
    return a + 1_000_000 + np.floor(o.uniform(len(a)) * room).astype(np.int64)


def sweeps(o: OrderFactory, a: Arr, sec: Arr) -> None:
    """CP sweeps: CP leg at the mid, then the lit book, then the residual is cancelled or rests in CP."""
    rng, u, n = o.rng, o.uniform, len(a)
    side = rng.integers(1, 3, n)
    cols = o.attrs(n, "sweep", side)
    q = o.sizes(n, 600, 1.5)
    cols["maq"] = np.minimum(cols["maq"], q)
    t = delay(o, a, 60)
    bid, offer = o.quote(sec, t)
    tick = o.universe.tick[sec]
    buy = side == 1
    marketable = u(n) < 0.4
    k = rng.integers(0, 3, n)
    limit = np.where(
        buy,
        np.where(marketable, offer + k * tick, bid - k * tick),
        np.where(marketable, bid - k * tick, offer + k * tick),
    )
    limit = np.maximum(limit, tick)
    cp_ok = (offer > bid) & ((bid + offer) % 2 == 0) & limit_ok(side, limit, bid + offer)
    cp = cp_ok & (u(n) < 0.25)
    c = np.where(u(n) < 0.15, q, np.maximum(1, np.floor(q * (0.05 + 0.85 * u(n))))).astype(np.int64)
    c = np.where(cp, np.minimum(np.maximum(c, cols["maq"]), q), 0)
    rem = q - c
    lit = marketable & (rem > 0) & (u(n) < 0.9)
    l_qty = np.where(u(n) < 0.75, rem, np.maximum(1, np.floor(rem * (0.1 + 0.8 * u(n))))).astype(np.int64)
    l_qty = np.where(lit, l_qty, 0)
    bouncing = u(n) < 0.35
    cols |= {
        "order_id": o.ids(n),
        "security": sec,
        "side": side,
        "price": limit,
        "quantity": q,
        "validity": np.where(bouncing, 0, np.where(u(n) < 0.06, 1536, 256)),
        "time": t,
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": c + l_qty,
    }
    i = np.flatnonzero(cp)
    cp_leg(o, t[i], sec[i], side[i], c[i], a[i], cols["order_id"][i], cols["participant"][i])
    i = np.flatnonzero(lit)
    lit_leg(o, t[i], sec[i], side[i], limit[i], l_qty[i], a[i], cols["order_id"][i], cols["participant"][i])
    residual = q - c - l_qty
    cols["fate"] = np.where(bouncing, IOC, RESTS)
    resting = np.flatnonzero((residual > 0) & ~bouncing)
    (idx, ft, fq), last = later_cp_fills(o, take(cols, resting), residual[resting], t[resting], 0.35)
    last_t = t.copy()
    last_t[resting] = last
    o.add_resting(cols, (resting[idx], ft, fq), last_t, 600.0)


def lit_trades(o: OrderFactory, a: Arr, sec: Arr) -> None:
    """Lit aggressors that take resting lit orders; a few keep a residual that rests or is cancelled."""
    rng, u, n = o.rng, o.uniform, len(a)
    side = rng.integers(1, 3, n)
    cols = o.attrs(n, "lit", side)
    q = o.sizes(n, 400, 1.3)
    t = delay(o, a, 120)
    bid, offer = o.quote(sec, t)
    tick = o.universe.tick[sec]
    k = rng.choice([0, 1, 2], n, p=[0.7, 0.2, 0.1])
    limit = np.where(side == 1, offer + k * tick, np.maximum(bid - k * tick, tick))
    filled = np.where(u(n) < 0.85, q, np.maximum(1, np.floor(q * (0.3 + 0.6 * u(n))))).astype(np.int64)
    bouncing = u(n) < 0.4
    cols |= {
        "order_id": o.ids(n),
        "security": sec,
        "side": side,
        "price": limit,
        "quantity": q,
        "validity": np.where(bouncing, 0, cols["validity"]),
        "time": t,
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": filled,
        "fate": np.where(bouncing, IOC, RESTS),
    }
    lit_leg(o, t, sec, side, limit, filled, a, cols["order_id"], cols["participant"])
    o.add_resting(cols, (np.zeros(0, np.int64),) * 3, t, 600.0)


def lit_resting(o: OrderFactory, a: Arr, sec: Arr) -> None:
    """Lit orders behind the touch that never trade: amended 0-3 times, then cancelled or purged."""
    rng, n = o.rng, len(a)
    side = rng.integers(1, 3, n)
    cols = o.attrs(n, "lit", side)
    bid, offer = o.quote(sec, a)
    tick = o.universe.tick[sec]
    k = rng.geometric(0.35, n) - 1
    price = np.maximum(np.where(side == 1, bid - k * tick, offer + k * tick), tick)
    cols |= {
        "order_id": o.ids(n),
        "security": sec,
        "side": side,
        "price": price,
        "quantity": o.sizes(n, 800, 1.4),
        "time": a,
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": np.zeros(n, np.int64),
        "fate": np.full(n, RESTS),
    }
    t_end, end_cr, fate = o.end_of_life(a, 1200.0, cols["validity"])
    first = o.add(cols, end_time=t_end, end_reason=end_cr, fate=fate)
    amends(
        o,
        first,
        cols,
        np.minimum(t_end, CLOSE),
        tick,
        rng.choice(4, n, p=[0.55, 0.25, 0.12, 0.08]),
        reprice=True,
    )


def amends(o: OrderFactory, first: int, cols: Cols, until: Arr, tick: Arr, count: Arr, reprice: bool) -> None:
    """User updates (changereason 5) between arrival and `until`: new quantity, for lit orders a new price."""
    u = o.uniform
    rep = np.repeat(np.arange(len(count)), count)
    m = len(rep)
    lo, hi = cols["time"][rep] + 1, np.maximum(until[rep], cols["time"][rep] + 2)
    t = o.between(lo, hi)
    order = np.lexsort((t, rep))
    rep, t = rep[order], t[order]
    step = np.where(u(m) < 0.5, o.rng.choice([-1, 1], m), 0) if reprice else np.zeros(m, np.int64)
    price = np.maximum(cols["price"][rep] + group_cumsum(step, rep) * tick[rep], tick[rep])
    price = np.where(cols["price"][rep] > 0, price, 0)
    qty = np.maximum(1, np.rint(cols["quantity"][rep] * (0.5 + u(m)))).astype(np.int64)
    o.batch.amends.append({"position": first + rep, "time": t, "price": price, "quantity": qty})


def cp_resting(o: OrderFactory, a: Arr, sec: Arr) -> None:
    """CP orders (64/4096/4098) that rest: mid-peg or with a limit, some with MAQ; some are met later."""
    rng, u, n = o.rng, o.uniform, len(a)
    side = rng.integers(1, 3, n)
    cols = o.attrs(n, "cp", side)
    bid, offer = o.quote(sec, a)
    tick = o.universe.tick[sec]
    k = rng.integers(-1, 3, n)
    limit = np.maximum(np.where(side == 1, offer + k * tick, bid - k * tick), tick)
    cols |= {
        "order_id": o.ids(n),
        "security": sec,
        "side": side,
        "price": np.where(u(n) < 0.5, 0, limit),
        "quantity": o.sizes(n, 1500, 1.6),
        "time": a,
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": np.zeros(n, np.int64),
        "fate": np.full(n, RESTS),
    }
    (idx, ft, fq), last = later_cp_fills(o, cols, cols["quantity"], a, 0.35)
    t_end, end_cr, fate = o.end_of_life(last, 1800.0, cols["validity"])
    first = o.add(cols, end_time=t_end, end_reason=end_cr, fate=fate)
    o.batch.add_fills(first + idx, ft, fq)
    quiet = np.ones(n, bool)
    quiet[idx] = False
    count = np.where(quiet & (u(n) < 0.2), 1, 0)
    amends(o, first, cols, np.minimum(t_end, CLOSE), tick, count, reprice=False)


def auction(o: OrderFactory, sec_pairs: Arr, open_t: Arr) -> None:
    """Opening auction: pre-open lit buy/sell pairs matched at 10:00:0x at one price (dealsource 20)."""
    rng, u, n = o.rng, o.uniform, len(sec_pairs)
    if n == 0:
        return
    t_open = open_t[sec_pairs]
    bid, _ = o.quote(sec_pairs, t_open)
    tick = o.universe.tick[sec_pairs]
    q = o.sizes(n, 300, 1.4)
    oids: dict[int, Arr] = {}
    parts: dict[int, Arr] = {}
    for side in (1, 2):
        s = np.full(n, side)
        cols = o.attrs(n, "lit", s)
        k = rng.integers(0, 4, n)
        extra = np.where(u(n) < 0.2, np.ceil(q * u(n)).astype(np.int64), 0)
        cols |= {
            "order_id": o.ids(n),
            "security": sec_pairs,
            "side": s,
            "price": np.maximum(bid + (k if side == 1 else -k) * tick, tick),
            "quantity": q + extra,
            "time": o.between(np.full(n, PRE_OPEN), t_open),
            "entry_reason": np.full(n, NEW),
            "filled_at_entry": np.zeros(n, np.int64),
            "fate": np.full(n, RESTS),
        }
        o.add_resting(cols, (np.arange(n), t_open, q), t_open, 1800.0)
        oids[side], parts[side] = cols["order_id"], cols["participant"]
    o.batch.add_exec(
        time=t_open,
        security=sec_pairs,
        buy_order=oids[1],
        sell_order=oids[2],
        buy_participant=parts[1],
        sell_participant=parts[2],
        price=bid,
        quantity=q,
        deal_source=np.where(u(n) < 0.04, 45, 20),
        aggressor=0,
    )


def reloads(o: OrderFactory, prev: Cols, sec_new: Arr) -> None:
    """Orders reloaded for the day at 19:00-21:00 the evening before (changereason 30): yesterday's
    survivors plus, on the first day, orders that predate the drop. Met later in CP, cancelled, or kept."""
    rng, u = o.rng, o.uniform
    n_prev, m = len(prev["order_id"]), len(sec_new)
    n = n_prev + m
    t = o.between(np.full(n, 5 * SEC), np.full(n, 2 * HOUR))
    side = rng.integers(1, 3, m)
    bid, offer = o.quote(sec_new, t[n_prev:])
    tick = o.universe.tick[sec_new]
    sweep, cp = o.attrs(m, "sweep", side), o.attrs(m, "cp", side)
    is_sweep = u(m) < 0.7
    new = {
        k: np.where(is_sweep, sweep[k], cp[k])
        for k in (
            "order_type",
            "participant",
            "preference",
            "midtick",
            "single_fill_maq",
            "maq",
            "crossing_key",
        )
    }
    k = rng.integers(1, 4, m)
    new |= {
        "order_id": o.ids(m, reloaded=True),
        "security": sec_new,
        "side": side,
        "price": np.maximum(np.where(side == 1, bid - k * tick, offer + k * tick), tick),
        "quantity": o.sizes(m, 800, 1.2),
        "validity": np.full(m, 1536),
    }
    cols = concat([prev, new], SURVIVOR_KEYS)
    cols["maq"] = np.minimum(cols["maq"], cols["quantity"])
    cols |= {
        "time": t,
        "entry_reason": np.full(n, RELOAD),
        "filled_at_entry": np.zeros(n, np.int64),
        "fate": np.full(n, RESTS),
    }
    centre_point = (cols["order_type"] & (64 | 2048 | 4096)) != 0
    i = np.flatnonzero(centre_point)
    (idx, ft, fq), last_cp = later_cp_fills(o, take(cols, i), cols["quantity"][i], cols["time"][i], 0.3)
    last = np.maximum(cols["time"], CONT_START)
    last[i] = np.maximum(last_cp, last[i])
    o.add_resting(cols, (i[idx], ft, fq), last, 7200.0)

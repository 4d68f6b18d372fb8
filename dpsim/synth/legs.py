"""Execution legs: the contra orders that an incoming order trades against, in the lit book or at the
Centre Point mid, created with the executions themselves (both sides of every trade are orders in the file)."""

from __future__ import annotations

import numpy as np

from dpsim.synth.clock import CLOSE, CONT_START, SEC
from dpsim.synth.events import IOC, NEW, RESTS, Arr, Cols, group_cumsum
from dpsim.synth.orders import OrderFactory, limit_ok


def lit_leg(
    o: OrderFactory, t: Arr, sec: Arr, side: Arr, limit: Arr, qty: Arr, earliest: Arr, oid: Arr, part: Arr
) -> None:
    """Resting lit orders at the touch (a level or two deeper when the limit allows) that incoming
    orders hit at t; they arrived in [earliest, t)."""
    rng, u = o.rng, o.uniform
    k = np.minimum(rng.choice([1, 2, 3], len(t), p=[0.6, 0.3, 0.1]), qty)
    rep = np.repeat(np.arange(len(t)), k)
    w = u(len(rep)) + 0.2
    share = w / np.bincount(rep, w, minlength=len(t))[rep]
    parts = 1 + np.floor(share * (qty - k)[rep]).astype(np.int64)
    first = np.cumsum(k) - k
    parts[first] += qty - np.bincount(rep, parts, minlength=len(t)).astype(np.int64)
    bid, offer = o.quote(sec, t)
    tick = o.universe.tick[sec]
    buy = side == 1
    slack = np.maximum(np.where(buy, limit - offer, bid - limit) // tick, 0)
    deeper = (np.arange(len(rep)) != first[rep]) & (u(len(rep)) < 0.25)
    level = np.minimum(group_cumsum(deeper.astype(np.int64), rep), slack[rep])
    touch = np.where(buy, offer, bid)[rep]
    price = np.maximum(np.where(buy[rep], touch + level * tick[rep], touch - level * tick[rep]), tick[rep])
    pside = 3 - side[rep]
    n = len(rep)
    cols = o.attrs(n, "lit", pside)
    extra = np.where(u(n) < 0.3, np.ceil(parts * u(n) * 2).astype(np.int64), 0)
    cols |= {
        "order_id": o.ids(n),
        "security": sec[rep],
        "side": pside,
        "price": price,
        "quantity": parts + extra,
        "time": o.between(earliest[rep], t[rep]),
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": np.zeros(n, np.int64),
        "fate": np.full(n, RESTS),
    }
    o.add_resting(cols, (np.arange(n), t[rep], parts), t[rep], 900.0)
    buy_r = buy[rep]
    o.batch.add_exec(
        time=t[rep],
        security=sec[rep],
        buy_order=np.where(buy_r, oid[rep], cols["order_id"]),
        sell_order=np.where(buy_r, cols["order_id"], oid[rep]),
        buy_participant=np.where(buy_r, part[rep], cols["participant"]),
        sell_participant=np.where(buy_r, cols["participant"], part[rep]),
        price=price,
        quantity=parts,
        deal_source=np.where(u(n) < 0.08, 44, 1),
        aggressor=side[rep],
    )


def cp_leg(
    o: OrderFactory, t: Arr, sec: Arr, side: Arr, qty: Arr, earliest: Arr, oid: Arr, part: Arr
) -> None:
    """Resting Centre Point orders (arrived in [earliest, t)) that incoming orders meet at the mid at t."""
    u, n = o.uniform, len(t)
    cside = 3 - side
    cols = o.attrs(n, "cp", cside)
    bid, offer = o.quote(sec, t)
    tick = o.universe.tick[sec]
    k = o.rng.integers(0, 4, n)
    limit = np.where(cside == 1, offer + k * tick, np.maximum(bid - k * tick, tick))
    extra = np.where(u(n) < 0.4, np.ceil(qty * u(n) * 3).astype(np.int64), 0)
    cols |= {
        "order_id": o.ids(n),
        "security": sec,
        "side": cside,
        "price": np.where(u(n) < 0.55, 0, limit),
        "quantity": qty + extra,
        "maq": np.minimum(cols["maq"], qty),
        "time": o.between(earliest, t),
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": np.zeros(n, np.int64),
        "fate": np.full(n, RESTS),
    }
    o.add_resting(cols, (np.arange(n), t, qty), t, 1800.0)
    cp_exec(o, t, sec, side, oid, part, cols["order_id"], cols["participant"], qty, (bid + offer) // 2)


def cp_exec(
    o: OrderFactory,
    t: Arr,
    sec: Arr,
    aggr: Arr,
    aoid: Arr,
    apart: Arr,
    poid: Arr,
    ppart: Arr,
    qty: Arr,
    mid: Arr,
) -> None:
    buy = aggr == 1
    u = o.uniform(len(t))
    o.batch.add_exec(
        time=t,
        security=sec,
        buy_order=np.where(buy, aoid, poid),
        sell_order=np.where(buy, poid, aoid),
        buy_participant=np.where(buy, apart, ppart),
        sell_participant=np.where(buy, ppart, apart),
        price=mid,
        quantity=qty,
        deal_source=np.where(u < 0.88, 47, np.where(u < 0.96, 46, 48)),
        aggressor=aggr,
    )


def later_cp_fills(
    o: OrderFactory, rest: Cols, remaining: Arr, start: Arr, p: float
) -> tuple[tuple[Arr, Arr, Arr], Arr]:
    """Incoming CP orders that later meet resting CP orders at the mid (1-2 fills each, with probability p,
    only while the mid is a whole unit, the quote is not locked and the resting limit and MAQ allow).
    Returns the resting orders' fills (local index, time, qty) and each one's last event time."""
    u, n = o.uniform, len(remaining)
    last_t = start.copy()
    t1 = np.maximum(start, CONT_START) + (o.rng.exponential(180.0, n) * SEC).astype(np.int64)
    t2 = t1 + (o.rng.exponential(300.0, n) * SEC).astype(np.int64)
    two = u(n) < 0.3
    f1 = np.where(
        two,
        np.ceil(remaining * (0.2 + 0.6 * u(n))),
        np.where(u(n) < 0.6, remaining, np.ceil(remaining * (0.2 + 0.75 * u(n)))),
    )
    f1 = f1.astype(np.int64)
    f2 = np.where(u(n) < 0.5, remaining - f1, np.ceil((remaining - f1) * (0.2 + 0.75 * u(n)))).astype(
        np.int64
    )
    fills: list[tuple[Arr, Arr, Arr]] = []
    left = remaining.copy()

    def fill(t_f: Arr, f_qty: Arr, want: Arr) -> Arr:
        f_qty = np.maximum(f_qty, np.minimum(rest["maq"], left))
        bid, offer = o.quote(rest["security"], t_f)
        ok = (
            want
            & (t_f < CLOSE - SEC)
            & (f_qty > 0)
            & (f_qty <= left)
            & (offer > bid)
            & ((bid + offer) % 2 == 0)
        )
        ok &= limit_ok(rest["side"], rest["price"], bid + offer)
        ok &= (rest["maq"] <= f_qty) | (rest["single_fill_maq"] != 1)
        idx = np.flatnonzero(ok)
        incoming_cp(o, rest, idx, t_f[idx], f_qty[idx], (bid + offer)[idx] // 2)
        fills.append((idx, t_f[idx], f_qty[idx]))
        last_t[idx] = t_f[idx]
        left[idx] -= f_qty[idx]
        return ok

    first_ok = fill(t1, f1, u(n) < p)
    fill(t2, f2, first_ok & two)  # a second fill only follows a first one
    idx, t, q = (np.concatenate(x) for x in zip(*fills, strict=True))
    return (idx, t, q), last_t


def incoming_cp(o: OrderFactory, rest: Cols, idx: Arr, t: Arr, qty: Arr, mid: Arr) -> None:
    """Non-sweep CP orders arriving at t that fill `qty` against resting orders rest[idx] at the mid."""
    u, n = o.uniform, len(idx)
    sec = rest["security"][idx]
    side = 3 - rest["side"][idx]
    cols = o.attrs(n, "cp", side)
    bid, offer = o.quote(sec, t)
    tick = o.universe.tick[sec]
    limit = np.where(
        side == 1,
        offer + tick * o.rng.integers(0, 3, n),
        np.maximum(bid - tick * o.rng.integers(0, 3, n), tick),
    )
    extra = np.where(u(n) < 0.35, np.ceil(qty * u(n) * 2).astype(np.int64), 0)
    bouncing = u(n) < 0.5
    cols |= {
        "order_id": o.ids(n),
        "security": sec,
        "side": side,
        "price": np.where(u(n) < 0.5, 0, limit),
        "quantity": qty + extra,
        "maq": np.minimum(cols["maq"], qty),
        "validity": np.where(bouncing, 0, cols["validity"]),
        "time": t,
        "entry_reason": np.full(n, NEW),
        "filled_at_entry": qty,
        "fate": np.where(bouncing, IOC, RESTS),
    }
    o.add_resting(cols, (np.zeros(0, np.int64),) * 3, t, 1200.0)
    cp_exec(
        o,
        t,
        sec,
        side,
        cols["order_id"],
        cols["participant"],
        rest["order_id"][idx],
        rest["participant"][idx],
        qty,
        mid,
    )

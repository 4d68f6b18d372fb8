"""A slice's orders, fills, amends and executions as columns, turned into every order's event rows."""

from __future__ import annotations

import numpy as np

Arr = np.ndarray
Cols = dict[str, Arr]

NEW, TRADED, AMEND, RELOAD, SYS_CANCEL, PURGED = 6, 3, 5, 30, 9, 24  # change reasons
# What happens to an order's open quantity: IOC is cancelled at arrival (changereason 9), CANCEL at
# t_end, SURVIVE is reloaded the next trading day. RESTS is only an input to _add_resting, which turns
# it into CANCEL or SURVIVE from the order's life after its last fill.
RESTS, IOC, CANCEL, SURVIVE = 0, 1, 2, 3
# Causal order of rows sharing a timestamp: incoming entry, resting contras' fills, incoming fill,
# trades, incoming rest / cancel.
ORD_ENTRY, ORD_PASSIVE, ORD_FILL, ORD_TRADE, ORD_REST, ORD_END = 0, 1, 2, 3, 4, 5


def group_cumsum(values: Arr, groups: Arr) -> Arr:
    """Cumulative sum restarting at each run of equal `groups` (rows already sorted by group)."""
    cs = np.cumsum(values)
    if len(values) == 0:
        return cs
    start = np.r_[True, groups[1:] != groups[:-1]]
    base = (cs - values)[start]
    return cs - base[np.cumsum(start) - 1]


def take(cols: Cols, idx: Arr) -> Cols:
    return {k: v[idx] for k, v in cols.items()}


def concat(parts: list[Cols], keys: tuple[str, ...]) -> Cols:
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64) for k in keys}


def columns(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# Column sets of the in-memory frames (dicts of int64 arrays). Orders: one row per order of a slice, with
# its attributes (order_type = exchangeordertype flags, validity = timevalidity code, maq = minimum
# acceptable quantity), its arrival (time, entry_reason = changereason 6 or 30, filled_at_entry) and its
# fate; rows: order event rows (rank = causal order within a timestamp); executions: one per trade (the
# buy and the sell order, aggressor = 1 | 2, or 0 for auctions); amends and fills: `position` = the order's
# place in the slice's batch.
ATTR_KEYS = columns(
    "order_id security side price order_type participant preference midtick single_fill_maq maq crossing_key validity"
)
ORDER_KEYS = ATTR_KEYS + columns("quantity time entry_reason filled_at_entry fate end_time end_reason")
ROW_KEYS = ATTR_KEYS + columns("time rank change_reason status quantity leaves matched")
EXEC_KEYS = columns(
    "time security buy_order sell_order buy_participant sell_participant price quantity deal_source aggressor"
)
AMEND_KEYS = columns("position time price quantity")
FILL_KEYS = columns("position time quantity")
SURVIVOR_KEYS = ATTR_KEYS + ("quantity",)


class Batch:
    """Orders, passive fills, amends and executions created while generating one slice."""

    def __init__(self) -> None:
        self.orders: list[Cols] = []
        self.fills: list[Cols] = []
        self.amends: list[Cols] = []
        self.execs: list[Cols] = []
        self.n = 0

    def add_orders(self, cols: Cols) -> int:
        """Append orders (all ORDER_KEYS); returns the batch position of the first one."""
        first = self.n
        self.orders.append({k: np.asarray(cols[k], dtype=np.int64) for k in ORDER_KEYS})
        self.n += len(cols["order_id"])
        return first

    def add_fills(self, position: Arr, t: Arr, quantity: Arr) -> None:
        self.fills.append({"position": position, "time": t, "quantity": quantity})

    def add_exec(self, **cols: Arr | int) -> None:
        """Append executions: every EXEC_KEYS column, `time` an array, the others arrays or scalars."""
        n = len(np.asarray(cols["time"]))
        self.execs.append(
            {k: np.broadcast_to(np.asarray(cols[k], dtype=np.int64), n).copy() for k in EXEC_KEYS}
        )

    def finalize(self) -> tuple[Cols, Cols, Cols]:
        """Every order's event rows (quantity = leaves + matched on each), the executions, and the survivors.

        Rows are listed in a fixed order (arrivals, passive fills and amends, ends): the writer's sort by
        (time, rank) is stable, so ties keep it."""
        o = concat(self.orders, ORDER_KEYS)
        f = concat(self.fills, FILL_KEYS)
        a = concat(self.amends, AMEND_KEYS)
        f = take(f, np.lexsort((f["time"], f["position"])))
        a = take(a, np.lexsort((a["time"], a["position"])))
        rows = _Rows(o)
        _arrival_rows(rows, o)
        _passive_rows(rows, o, f, a)
        survivors = _end_rows(rows, o, f, a)
        return concat(rows.parts, ROW_KEYS), concat(self.execs, EXEC_KEYS), survivors


class _Rows:
    """Event rows of a batch's orders, collected in blocks."""

    def __init__(self, orders: Cols) -> None:
        self.orders = orders
        self.parts: list[Cols] = []

    def emit(self, idx: Arr, **over: Arr | int) -> None:
        """One row per order in `idx`: its attributes, with `over`'s columns (arrays or scalars)."""
        cols = {k: self.orders[k][idx] for k in ATTR_KEYS}
        m = len(idx)
        for k, v in over.items():
            cols[k] = np.broadcast_to(np.asarray(v, dtype=np.int64), m)
        self.parts.append({k: np.asarray(cols[k], dtype=np.int64) for k in ROW_KEYS})


def _arrival_rows(rows: _Rows, o: Cols) -> None:
    """Every order's entry; its rest, or its fill at arrival; an IOC's cancel of what is left."""
    qty, m0, fate = o["quantity"], o["filled_at_entry"], o["fate"]
    every = np.arange(len(o["order_id"]))
    rows.emit(
        every,
        time=o["time"],
        rank=ORD_ENTRY,
        change_reason=o["entry_reason"],
        status=2,
        quantity=qty,
        leaves=qty,
        matched=0,
    )
    rest = np.flatnonzero((m0 == 0) & (fate != IOC))
    rows.emit(
        rest,
        time=o["time"][rest],
        rank=ORD_REST,
        change_reason=o["entry_reason"][rest],
        status=1,
        quantity=qty[rest],
        leaves=qty[rest],
        matched=0,
    )
    left = qty - m0
    imm = np.flatnonzero(m0 > 0)
    open_after = (left[imm] > 0) & np.isin(fate[imm], (CANCEL, SURVIVE))
    rows.emit(
        imm,
        time=o["time"][imm],
        rank=ORD_FILL,
        change_reason=TRADED,
        status=np.where(open_after, 1, 2),
        quantity=qty[imm],
        leaves=left[imm],
        matched=m0[imm],
    )
    ioc = np.flatnonzero((fate == IOC) & (left > 0))
    rows.emit(
        ioc,
        time=o["time"][ioc],
        rank=ORD_END,
        change_reason=SYS_CANCEL,
        status=2,
        quantity=qty[ioc],
        leaves=left[ioc],
        matched=m0[ioc],
    )


def _passive_rows(rows: _Rows, o: Cols, f: Cols, a: Cols) -> None:
    """Fills of resting orders (cumulative matched quantity) and user amends."""
    qty, m0 = o["quantity"], o["filled_at_entry"]
    fpos = f["position"]
    cum = m0[fpos] + group_cumsum(f["quantity"], fpos)
    fleft = qty[fpos] - cum
    rows.emit(
        fpos,
        time=f["time"],
        rank=ORD_PASSIVE,
        change_reason=TRADED,
        status=np.where(fleft > 0, 1, 2),
        quantity=qty[fpos],
        leaves=fleft,
        matched=cum,
    )
    rows.emit(
        a["position"],
        time=a["time"],
        rank=ORD_PASSIVE,
        change_reason=AMEND,
        status=1,
        quantity=a["quantity"],
        leaves=a["quantity"],
        matched=0,
        price=a["price"],
    )


def _end_rows(rows: _Rows, o: Cols, f: Cols, a: Cols) -> Cols:
    """The cancel (or purge) of what is left at the end of an order's life, after its last event; returns
    the orders that survive to be reloaded the next trading evening, as amended and with what is left."""
    qty, m0, fate = o["quantity"], o["filled_at_entry"], o["fate"]
    fpos = f["position"]
    matched = m0 + np.bincount(fpos, f["quantity"], minlength=len(qty)).astype(np.int64)
    qty_f, price_f = qty.copy(), o["price"].copy()
    last = np.r_[a["position"][1:] != a["position"][:-1], True] if len(a["position"]) else np.zeros(0, bool)
    qty_f[a["position"][last]] = a["quantity"][last]
    price_f[a["position"][last]] = a["price"][last]
    last_t = o["time"].copy()
    np.maximum.at(last_t, fpos, f["time"])
    np.maximum.at(last_t, a["position"], a["time"])
    leaves_f = qty_f - matched
    end = np.flatnonzero((fate == CANCEL) & (leaves_f > 0))
    cr = o["end_reason"][end]
    rows.emit(
        end,
        time=np.maximum(o["end_time"][end], last_t[end] + 1),
        rank=ORD_END,
        change_reason=cr,
        status=2,
        quantity=qty_f[end],
        leaves=leaves_f[end],
        matched=matched[end],
        price=price_f[end],
        validity=np.where(cr == PURGED, o["validity"][end] | 16384, o["validity"][end]),
    )
    surv = np.flatnonzero((fate == SURVIVE) & (leaves_f > 0))
    survivors = {k: o[k][surv] for k in SURVIVOR_KEYS}
    survivors["price"], survivors["quantity"] = price_f[surv], leaves_f[surv]
    return survivors

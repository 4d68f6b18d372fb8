"""Realistic synthetic raw data drops shaped like the ASX DRR exports (deterministic by seed, streamed).

Model, in short (the why is in the comments below):
- A universe of securities with Zipf-like activity, a price, a tick (5 below $2, else 10 thousandths)
  and a spread profile. Each trading day has a whole-day NBBO random walk per security: one-tick
  spreads mostly, rare locked quotes in continuous trading, frequent crossed / locked / one-sided
  (Long.MIN) quotes in the evening and pre-open.
- A day runs on one time axis from 19:00 local of the previous calendar day (reloads, changereason 30)
  to 19:00 local (the day roll), so every event falls on its own trading date. Continuous trading is
  10:00-16:00 with a U-shaped intensity; auctions open at 10:00:00-10:00:09; leftovers are cancelled
  or purged after 16:00; GTC orders survive and are reloaded the next trading evening.
- Activity is a set of vectorised *episodes* (lit trade, lit resting order, CP sweep, CP resting order,
  opening auction, reload). An episode creates every order it needs, so both sides of every trade are
  orders in the file, and immediate fills share the incoming order's timestamp.
- Centre Point prints at the NBBO mid only when the mid is a whole thousandth: with a 10 tick every
  mid is; with a 5 tick a one-tick spread gives an x.5 mid, and then the CP leg is skipped (the sweep
  goes to the lit book or rests). The NBBO feed and event snapshots still carry those half-unit mids.
- Streaming: each day is cut into time slices of bounded size. A slice generates the episodes that
  start in it, merges them with events carried over from earlier slices, and writes the events
  before the slice end in (timestamp, causal order); the shared order/trade `sequence` is assigned
  at write time, so it is strictly increasing in file order and across both files.
"""

from __future__ import annotations

import gzip as gz
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

log = logging.getLogger(__name__)

Arr = np.ndarray
Cols = dict[str, Arr]

_ORDERS_HEADER_LINE = (
    "order_id,exchange,timestamp,security_code,price,side,changereason,orderstatus,quantity,"
    "leavesquantity,ordertype,exchangeordertype,national_bid,national_offer,bid,offer,participantid,"
    "preferenceonly,midtick,singlefillminimumquantity,minimumquantity,sequence,crossingkey,"
    "totalmatchedquantity,shortsellquantity,triggercondition,timevaliditydecoded,row_num,timevalidity"
)
ORDERS_HEADER = _ORDERS_HEADER_LINE.split(",")
_TRADES_HEADER_LINE = (
    "EXCHANGE,sequence,tradedate,tradetime,securitycode,orderid,dealsource,dealsourcedecoded,"
    "exchangeinfo,matchgroupid,nationalbidpricesnapshot,nationalofferpricesnapshot,tradeprice,quantity,"
    "side,sidedecoded,participantid,passiveaggressive,row_num"
)
TRADES_HEADER = _TRADES_HEADER_LINE.split(",")
_NBBO_HEADER_LINE = (
    "partition,sequence,tradedate,bidprice,creationtime,offerprice,orderbookid,timestamp,userid,runid"
)
NBBO_HEADER = _NBBO_HEADER_LINE.split(",")
REFERENCE_HEADER = ["Id", "Name", "DecimalsInPrice", "TickSize"]
SESSION_HEADER = ["OrderBookId", "Name", "Timestamp"]
PARTICIPANTS_HEADER = ["Id", "ParticipantName", "ParticipantType"]
KINDS = ("orders", "trades", "nbbo", "reference", "session", "participants")

TZ = ZoneInfo("Australia/Sydney")
LONG_MIN = np.int64(-(2**63))
SEC = 1_000_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
# The day axis: ns since 19:00 local on the previous calendar day.
MIDNIGHT = 5 * HOUR
PRE_OPEN = 12 * HOUR  # 07:00
OPEN = 15 * HOUR  # 10:00, auctions at OPEN + 0..9 s
CONT_START = OPEN + 10 * SEC
CLOSE = 21 * HOUR  # 16:00
PURGE = 23 * HOUR + 50 * MIN  # 18:50, end-of-day purges
DAY_END = 24 * HOUR  # 19:00, the day roll
_KEY = 10**14  # > DAY_END: sec * _KEY + t orders quotes by (security, time)

NEW, TRADED, AMEND, RELOAD, SYS_CANCEL, PURGED = 6, 3, 5, 30, 9, 24  # change reasons
# What happens to an order's open quantity: IOC is cancelled at arrival (changereason 9), CANCEL at
# t_end, SURVIVE is reloaded the next trading day. RESTS is only an input to _add_resting, which turns
# it into CANCEL or SURVIVE from the order's life after its last fill.
RESTS, IOC, CANCEL, SURVIVE = 0, 1, 2, 3
# Causal order of rows sharing a timestamp: incoming entry, resting contras' fills, incoming fill,
# trades, incoming rest / cancel.
ORD_ENTRY, ORD_PASSIVE, ORD_FILL, ORD_TRADE, ORD_REST, ORD_END = 0, 1, 2, 3, 4, 5

GTC = np.array([1288, 1370, 1536])
TV_CODES = np.array([0, 256, 1288, 1370, 1536, 16640])  # sorted: searchsorted gives the label index
TV_LABELS = pa.array(["Bouncing", "Rest of Day", "Days", "Days", "Current Max", "Purged Rest of Day"])
DS_CODES = np.array([1, 20, 44, 45, 46, 47, 48])
DS_LABELS = pa.array(
    [
        "Continuous Lit",
        "Auction",
        "Continuous Lit UCP",
        "Auction UCP",
        "Centre Point Preferencing",
        "Centre Point",
        "Centre Point UCP",
    ]
)
SIDE_LABELS = pa.array(["", "Buy", "Sell"])
PARTICIPANTS = np.array(
    [67, 51, 47, 146, 2, 41, 61, 42, 8, 54, 12, 19, 23, 31, 36, 44, 58, 63, 72, 77, 81, 88, 94, 101]
)
PARTICIPANT_TYPES = ("Institutional Broker", "Market Maker", "Retail Broker", "Proprietary Trader")
CROSSING_KEYS = np.array([0, 1, 2, 555, 99999, 194035, 8949669, 999970000])
OID_BASE = 7_904_794_000_000_000_000
OID_RELOADED_BASE = 7_901_232_681_000_000_000  # orders that predate the drop
MATCHGROUP_BASE = 7_904_794_000_123_000_000
NBBO_USERID, NBBO_RUNID = 262826, 1751364092

MAX_SECURITIES = 10_000  # three-letter names run out at 17,576
DEFAULT_ROWS_PER_SECDAY = 3_000
DEFAULT_ROWS_MIN, DEFAULT_ROWS_MAX = 20_000, 50_000
SLICE_ROWS = 200_000  # order rows generated per slice: bounds memory at any scale
BYTES_PER_ROW_GUESS = 145.0  # replaced by the measured figure once rows are written
ROWS_PER_EPISODE_GUESS = 4.9  # replaced by the measured figure once a slice is generated
NBBO_PER_ROW = 0.08
_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65_536)


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    bytes: dict[str, int]
    partitions: int


_SCALE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_scale(text: str | None) -> tuple[str, int] | None:
    """'400MB'|'2GB'|'1.5GB' -> ('bytes', n) (powers of 1000); '5000000' -> ('rows', n); None -> None."""
    if text is None:
        return None
    m = _SCALE.match(text.replace("_", ""))
    hint = (
        "expected a size such as 400MB, 1.5GB (B/KB/MB/GB/TB, powers of 1000) or a row count such as 5000000"
    )
    if not m or (m.group(2) is None and "." in m.group(1)):
        raise ValueError(f"invalid scale {text!r}: {hint}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()] if m.group(2) else int(m.group(1))
    if value < 1:
        raise ValueError(f"invalid scale {text!r}: must be positive; {hint}")
    return ("bytes", int(value)) if m.group(2) else ("rows", int(value))


def trading_dates(start: date, days: int) -> list[date]:
    """The first `days` weekdays from `start` (public holidays are not modelled)."""
    out: list[date] = []
    d = start
    while len(out) < days:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def _utc_ns(d: date, t: time) -> int:
    return int(datetime.combine(d, t, TZ).timestamp()) * SEC


def _group_cumsum(values: Arr, groups: Arr) -> Arr:
    """Cumulative sum restarting at each run of equal `groups` (rows already sorted by group)."""
    cs = np.cumsum(values)
    if len(values) == 0:
        return cs
    start = np.r_[True, groups[1:] != groups[:-1]]
    base = (cs - values)[start]
    return cs - base[np.cumsum(start) - 1]


def _take(cols: Cols, idx: Arr) -> Cols:
    return {k: v[idx] for k, v in cols.items()}


def _concat(parts: list[Cols], keys: tuple[str, ...]) -> Cols:
    return {k: np.concatenate([p[k] for p in parts]) if parts else np.zeros(0, np.int64) for k in keys}


def _keys(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# Column sets of the in-memory frames (dicts of int64 arrays). Orders: one row per order of a slice,
# with its arrival (t, r0 = 6 or 30, m0 = filled at arrival) and fate; rows: order event rows;
# execs: executions (b/s = buy/sell side, aggr = aggressor side or 0 for auctions).
ATTR_KEYS = _keys("oid sec side price eot part pref midtick sfmq mq ck tv")
ORDER_KEYS = ATTR_KEYS + _keys("qty t r0 m0 fate t_end end_cr")
ROW_KEYS = ATTR_KEYS + _keys("t ord cr status qty leaves matched")
EXEC_KEYS = _keys("t sec boid soid bpart spart price qty ds aggr")
AMEND_KEYS = _keys("pos t price qty")
FILL_KEYS = _keys("pos t q")
SURVIVOR_KEYS = ATTR_KEYS + ("qty",)


@dataclass(frozen=True)
class _Universe:
    codes: Arr
    names: list[str]
    weight: Arr  # share of activity, sums to 1
    tick: Arr
    price0: Arr
    p_one_tick: Arr  # chance that the spread is one tick: liquid names are tighter


def _universe(rng: np.random.Generator, n: int) -> _Universe:
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
    return _Universe(
        codes=codes,
        names=names,
        weight=weight,
        tick=tick,
        price0=(np.round(price / tick) * tick).astype(np.int64),
        p_one_tick=0.35 + 0.5 * np.sqrt(weight / weight.max()),
    )


def _continuous_cdf() -> tuple[Arr, Arr]:
    """Per-minute U-shaped intensity of continuous trading (busy open, busier close) as a CDF."""
    minutes = np.arange(360) + 0.5
    lam = 1 + 1.5 * np.exp(-minutes / 30) + 1.0 * np.exp(-(360 - minutes) / 20)
    cdf = np.r_[0.0, np.cumsum(lam)] / lam.sum()
    return cdf, np.linspace(CONT_START, CLOSE, 361)


class _Quotes:
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
        self.key = sec * _KEY + t
        self.first = np.searchsorted(sec, np.arange(n_sec))

    def at(self, sec: Arr, t: Arr) -> Arr:
        """Index of the quote in force at t (the security's first quote before its first update)."""
        i = np.searchsorted(self.key, sec * _KEY + t, side="right") - 1
        return np.maximum(i, self.first[sec])


class _Batch:
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
        self.n += len(cols["oid"])
        return first

    def add_fills(self, pos: Arr, t: Arr, q: Arr) -> None:
        self.fills.append({"pos": pos, "t": t, "q": q})

    def add_exec(self, t: Arr, **cols: Arr | int) -> None:
        n = len(t)
        cols["t"] = t
        self.execs.append(
            {k: np.broadcast_to(np.asarray(cols[k], dtype=np.int64), n).copy() for k in EXEC_KEYS}
        )

    def finalize(self) -> tuple[Cols, Cols, Cols]:
        """Every order's event rows (quantity = leaves + matched on each), the executions, and the survivors."""
        o = _concat(self.orders, ORDER_KEYS)
        f = _concat(self.fills, FILL_KEYS)
        a = _concat(self.amends, AMEND_KEYS)
        order = np.lexsort((f["t"], f["pos"]))
        f = _take(f, order)
        a = _take(a, np.lexsort((a["t"], a["pos"])))
        n = len(o["oid"])
        qty, m0, fate = o["qty"], o["m0"], o["fate"]
        rows: list[Cols] = []

        def emit(idx: Arr, **over: Arr | int) -> None:
            cols = {k: o[k][idx] for k in ATTR_KEYS}
            m = len(idx)
            for k, v in over.items():
                cols[k] = np.broadcast_to(np.asarray(v, dtype=np.int64), m)
            rows.append({k: np.asarray(cols[k], dtype=np.int64) for k in ROW_KEYS})

        every = np.arange(n)
        emit(every, t=o["t"], ord=ORD_ENTRY, cr=o["r0"], status=2, qty=qty, leaves=qty, matched=0)
        rest = np.flatnonzero((m0 == 0) & (fate != IOC))
        emit(
            rest,
            t=o["t"][rest],
            ord=ORD_REST,
            cr=o["r0"][rest],
            status=1,
            qty=qty[rest],
            leaves=qty[rest],
            matched=0,
        )
        left = qty - m0
        imm = np.flatnonzero(m0 > 0)
        open_after = (left[imm] > 0) & np.isin(fate[imm], (CANCEL, SURVIVE))
        emit(
            imm,
            t=o["t"][imm],
            ord=ORD_FILL,
            cr=TRADED,
            status=np.where(open_after, 1, 2),
            qty=qty[imm],
            leaves=left[imm],
            matched=m0[imm],
        )
        ioc = np.flatnonzero((fate == IOC) & (left > 0))
        emit(
            ioc,
            t=o["t"][ioc],
            ord=ORD_END,
            cr=SYS_CANCEL,
            status=2,
            qty=qty[ioc],
            leaves=left[ioc],
            matched=m0[ioc],
        )

        fpos = f["pos"]
        cum = m0[fpos] + _group_cumsum(f["q"], fpos)
        fleft = qty[fpos] - cum
        emit(
            fpos,
            t=f["t"],
            ord=ORD_PASSIVE,
            cr=TRADED,
            status=np.where(fleft > 0, 1, 2),
            qty=qty[fpos],
            leaves=fleft,
            matched=cum,
        )
        emit(
            a["pos"],
            t=a["t"],
            ord=ORD_PASSIVE,
            cr=AMEND,
            status=1,
            qty=a["qty"],
            leaves=a["qty"],
            matched=0,
            price=a["price"],
        )

        matched = m0 + np.bincount(fpos, f["q"], minlength=n).astype(np.int64)
        qty_f, price_f = qty.copy(), o["price"].copy()
        last = np.r_[a["pos"][1:] != a["pos"][:-1], True] if len(a["pos"]) else np.zeros(0, bool)
        qty_f[a["pos"][last]] = a["qty"][last]
        price_f[a["pos"][last]] = a["price"][last]
        last_t = o["t"].copy()
        np.maximum.at(last_t, fpos, f["t"])
        np.maximum.at(last_t, a["pos"], a["t"])
        leaves_f = qty_f - matched
        end = np.flatnonzero((fate == CANCEL) & (leaves_f > 0))
        cr = o["end_cr"][end]
        emit(
            end,
            t=np.maximum(o["t_end"][end], last_t[end] + 1),
            ord=ORD_END,
            cr=cr,
            status=2,
            qty=qty_f[end],
            leaves=leaves_f[end],
            matched=matched[end],
            price=price_f[end],
            tv=np.where(cr == PURGED, o["tv"][end] | 16384, o["tv"][end]),
        )
        surv = np.flatnonzero((fate == SURVIVE) & (leaves_f > 0))
        survivors = {k: o[k][surv] for k in SURVIVOR_KEYS}
        survivors["price"], survivors["qty"] = price_f[surv], leaves_f[surv]
        return _concat(rows, ROW_KEYS), _concat(self.execs, EXEC_KEYS), survivors


class _Sink:
    """One output CSV: the exact header once, then encoded chunks; counts rows and uncompressed bytes."""

    def __init__(self, path: Path, header: list[str], gzip: bool) -> None:
        self._raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._out: BinaryIO | gz.GzipFile = (
            gz.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=self._raw, mtime=0)
            if gzip
            else self._raw
        )
        self.rows = 0
        self.bytes = 0
        self._put((",".join(header) + "\n").encode())

    def _put(self, data: bytes | pa.Buffer) -> None:
        self._out.write(data)
        self.bytes += len(data)

    def write(self, columns: list[pa.Array | Arr], names: list[str]) -> None:
        table = pa.Table.from_arrays(
            [pa.array(c) if isinstance(c, np.ndarray) else c for c in columns], names=names
        )
        if table.num_rows == 0:
            return
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf, _WRITE_OPTIONS)
        self._put(buf.getvalue())
        self.rows += table.num_rows

    def close(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()


class _Synth:
    """Generates the drop day by day, slice by slice; holds the state that crosses slices and days."""

    def __init__(self, out_dir: Path, securities: int, seed: int, gzip: bool, mode: str, target: int) -> None:
        self.seed = seed % 2**64
        self.mode, self.target = mode, target
        self.u = _universe(self._rng(0), securities)
        self.n_sec = securities
        self.cdf, self.cdf_t = _continuous_cdf()
        suffix = ".csv.gz" if gzip else ".csv"
        self.paths = {k: out_dir / f"{k}{suffix}" for k in KINDS}
        self.orders = _Sink(self.paths["orders"], ORDERS_HEADER, gzip)
        self.trades = _Sink(self.paths["trades"], TRADES_HEADER, gzip)
        self.nbbo = _Sink(self.paths["nbbo"], NBBO_HEADER, gzip)
        self.gzip = gzip
        self.mid_ticks = (self.u.price0 // self.u.tick).astype(np.int64)  # NBBO state carried across days
        self.next_oid = OID_BASE
        self.next_reloaded_oid = OID_RELOADED_BASE
        self.next_mg = MATCHGROUP_BASE
        self.seq = 3_000_000
        self.nbbo_seq = 0
        self.carry_rows: Cols = _concat([], ROW_KEYS)
        self.carry_execs: Cols = _concat([], EXEC_KEYS)
        self.survivors: list[Cols] = []
        self.rows_generated = self.cont_rows = self.cont_episodes = 0
        self.rows_per_episode = ROWS_PER_EPISODE_GUESS
        self.session: list[tuple[str, Arr]] = []
        self.partitions: set[tuple[int, int]] = set()
        # Per-day and per-slice state, set by run() and _day().
        self.rng = self._rng(1)
        self.batch = _Batch()
        self.q: _Quotes
        self.day_idx: int
        self.tradedate: str
        self.bases: tuple[int, int]
        self.slice_w: Arr
        self.slice_k: int

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    # ---- small helpers -------------------------------------------------------------------------
    def _ids(self, n: int, reloaded: bool = False) -> Arr:
        gaps = np.cumsum(self.rng.integers(1, 40, n, dtype=np.int64))
        base = self.next_reloaded_oid if reloaded else self.next_oid
        ids = base + gaps
        if reloaded:
            self.next_reloaded_oid = int(ids[-1]) if n else base
        else:
            self.next_oid = int(ids[-1]) if n else base
        return ids

    def _qty(self, n: int, median: float, sigma: float) -> Arr:
        q = np.rint(median * np.exp(sigma * self.rng.standard_normal(n)))
        return np.clip(q, 1, 5_000_000).astype(np.int64)

    def _u(self, n: int) -> Arr:
        return self.rng.random(n)

    def _between(self, lo: Arr, hi: Arr) -> Arr:
        """Uniform int in [lo, hi) (hi > lo)."""
        return lo + np.floor(self._u(len(lo)) * (hi - lo)).astype(np.int64)

    def _quote(self, sec: Arr, t: Arr) -> tuple[Arr, Arr]:
        i = self.q.at(sec, t)
        return self.q.bid[i], self.q.offer[i]

    def _attrs(self, n: int, kind: str, side: Arr) -> Cols:
        """Per-order attributes; kind: 'lit', 'cp' (64/4096/4098) or 'sweep' (2048/2050)."""
        rng, u = self.rng, self._u
        sell = side == 2
        pw = 1.0 / np.arange(1, len(PARTICIPANTS) + 1) ** 0.9
        cols: Cols = {
            "part": PARTICIPANTS[rng.choice(len(PARTICIPANTS), n, p=pw / pw.sum())],
            "tv": rng.choice([256, 1288, 1370, 1536], n, p=[0.92, 0.03, 0.02, 0.03]),
        }
        zero = np.zeros(n, np.int64)
        if kind == "lit":
            cols["eot"] = np.where(sell & (u(n) < 0.12), 2, 0)
            cols |= {"pref": zero, "midtick": zero, "sfmq": zero, "mq": zero, "ck": zero}
            return cols
        if kind == "sweep":
            cols["eot"] = np.where(sell & (u(n) < 0.15), 2050, 2048)
            p_maq = 0.05
        else:
            base = rng.choice([4096, 64], n, p=[0.65, 0.35])
            cols["eot"] = np.where((base == 4096) & sell & (u(n) < 0.2), 4098, base)
            p_maq = 0.3
        maq = u(n) < p_maq
        cols["mq"] = np.where(maq, self._qty(n, 100, 1.0), 0)
        cols["sfmq"] = np.where(maq, rng.choice([1, 2], n), rng.choice([0, 2], n, p=[0.3, 0.7]))
        cols["pref"] = rng.choice([0, 2], n, p=[0.3, 0.7])
        cols["midtick"] = rng.choice([1, 2, 3, 4], n, p=[0.3, 0.64, 0.01, 0.05])
        cols["ck"] = CROSSING_KEYS[rng.choice(len(CROSSING_KEYS), n)]
        return cols

    def _end(self, start: Arr, mean_s: float, tv: Arr) -> tuple[Arr, Arr, Arr]:
        """(t_end, end changereason, fate) of resting orders: cancelled after an exponential life; past the
        close, GTC orders mostly survive to be reloaded, others are cancelled just after 16:00 or purged."""
        n, u = len(start), self._u
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

    def _add(self, cols: Cols, **more: Arr | int) -> int:
        n = len(cols["oid"])
        full = {**cols, **{k: np.broadcast_to(np.asarray(v, dtype=np.int64), n) for k, v in more.items()}}
        full.setdefault("t_end", np.zeros(n, np.int64))
        full.setdefault("end_cr", np.zeros(n, np.int64))
        return self.batch.add_orders(full)

    def _add_resting(self, cols: Cols, fills: tuple[Arr, Arr, Arr], last_t: Arr, mean_s: float) -> None:
        """Add orders that rest (fills: local index, time, qty) with their end of life after the last fill."""
        t_end, end_cr, fate = self._end(last_t, mean_s, cols["tv"])
        first = self._add(
            cols, t_end=t_end, end_cr=end_cr, fate=np.where(cols["fate"] == RESTS, fate, cols["fate"])
        )
        idx, t, q = fills
        self.batch.add_fills(first + idx, t, q)

    @staticmethod
    def _limit_ok(side: Arr, limit: Arr, price2: Arr) -> Arr:
        """Does a limit (<= 0: none) accept a price given as twice its value (mids are half units)?"""
        return (limit <= 0) | np.where(side == 1, 2 * limit >= price2, 2 * limit <= price2)

    # ---- execution legs ------------------------------------------------------------------------
    def _lit_leg(
        self, t: Arr, sec: Arr, side: Arr, limit: Arr, qty: Arr, earliest: Arr, oid: Arr, part: Arr
    ) -> None:
        """Resting lit orders at the touch (a level or two deeper when the limit allows) that incoming
        orders hit at t; they arrived in [earliest, t)."""
        rng, u = self.rng, self._u
        k = np.minimum(rng.choice([1, 2, 3], len(t), p=[0.6, 0.3, 0.1]), qty)
        rep = np.repeat(np.arange(len(t)), k)
        w = u(len(rep)) + 0.2
        share = w / np.bincount(rep, w, minlength=len(t))[rep]
        parts = 1 + np.floor(share * (qty - k)[rep]).astype(np.int64)
        first = np.cumsum(k) - k
        parts[first] += qty - np.bincount(rep, parts, minlength=len(t)).astype(np.int64)
        bid, offer = self._quote(sec, t)
        tick = self.u.tick[sec]
        buy = side == 1
        slack = np.maximum(np.where(buy, limit - offer, bid - limit) // tick, 0)
        deeper = (np.arange(len(rep)) != first[rep]) & (u(len(rep)) < 0.25)
        level = np.minimum(_group_cumsum(deeper.astype(np.int64), rep), slack[rep])
        touch = np.where(buy, offer, bid)[rep]
        price = np.maximum(
            np.where(buy[rep], touch + level * tick[rep], touch - level * tick[rep]), tick[rep]
        )
        pside = 3 - side[rep]
        n = len(rep)
        cols = self._attrs(n, "lit", pside)
        extra = np.where(u(n) < 0.3, np.ceil(parts * u(n) * 2).astype(np.int64), 0)
        cols |= {
            "oid": self._ids(n),
            "sec": sec[rep],
            "side": pside,
            "price": price,
            "qty": parts + extra,
            "t": self._between(earliest[rep], t[rep]),
            "r0": np.full(n, NEW),
            "m0": np.zeros(n, np.int64),
            "fate": np.full(n, RESTS),
        }
        self._add_resting(cols, (np.arange(n), t[rep], parts), t[rep], 900.0)
        buy_r = buy[rep]
        self.batch.add_exec(
            t=t[rep],
            sec=sec[rep],
            boid=np.where(buy_r, oid[rep], cols["oid"]),
            soid=np.where(buy_r, cols["oid"], oid[rep]),
            bpart=np.where(buy_r, part[rep], cols["part"]),
            spart=np.where(buy_r, cols["part"], part[rep]),
            price=price,
            qty=parts,
            ds=np.where(u(n) < 0.08, 44, 1),
            aggr=side[rep],
        )

    def _cp_leg(self, t: Arr, sec: Arr, side: Arr, qty: Arr, earliest: Arr, oid: Arr, part: Arr) -> None:
        """Resting Centre Point orders (arrived in [earliest, t)) that incoming orders meet at the mid at t."""
        u, n = self._u, len(t)
        cside = 3 - side
        cols = self._attrs(n, "cp", cside)
        bid, offer = self._quote(sec, t)
        tick = self.u.tick[sec]
        k = self.rng.integers(0, 4, n)
        limit = np.where(cside == 1, offer + k * tick, np.maximum(bid - k * tick, tick))
        extra = np.where(u(n) < 0.4, np.ceil(qty * u(n) * 3).astype(np.int64), 0)
        cols |= {
            "oid": self._ids(n),
            "sec": sec,
            "side": cside,
            "price": np.where(u(n) < 0.55, 0, limit),
            "qty": qty + extra,
            "mq": np.minimum(cols["mq"], qty),
            "t": self._between(earliest, t),
            "r0": np.full(n, NEW),
            "m0": np.zeros(n, np.int64),
            "fate": np.full(n, RESTS),
        }
        self._add_resting(cols, (np.arange(n), t, qty), t, 1800.0)
        self._cp_exec(t, sec, side, oid, part, cols["oid"], cols["part"], qty, (bid + offer) // 2)

    def _cp_exec(
        self, t: Arr, sec: Arr, aggr: Arr, aoid: Arr, apart: Arr, poid: Arr, ppart: Arr, qty: Arr, mid: Arr
    ) -> None:
        buy = aggr == 1
        u = self._u(len(t))
        self.batch.add_exec(
            t=t,
            sec=sec,
            boid=np.where(buy, aoid, poid),
            soid=np.where(buy, poid, aoid),
            bpart=np.where(buy, apart, ppart),
            spart=np.where(buy, ppart, apart),
            price=mid,
            qty=qty,
            ds=np.where(u < 0.88, 47, np.where(u < 0.96, 46, 48)),
            aggr=aggr,
        )

    def _later_cp_fills(
        self, rest: Cols, remaining: Arr, start: Arr, p: float
    ) -> tuple[tuple[Arr, Arr, Arr], Arr]:
        """Incoming CP orders that later meet resting CP orders at the mid (1-2 fills each, with probability p,
        only while the mid is a whole unit, the quote is not locked and the resting limit and MAQ allow).
        Returns the resting orders' fills (local index, time, qty) and each one's last event time."""
        u, n = self._u, len(remaining)
        last_t = start.copy()
        t1 = np.maximum(start, CONT_START) + (self.rng.exponential(180.0, n) * SEC).astype(np.int64)
        t2 = t1 + (self.rng.exponential(300.0, n) * SEC).astype(np.int64)
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
            f_qty = np.maximum(f_qty, np.minimum(rest["mq"], left))
            bid, offer = self._quote(rest["sec"], t_f)
            ok = (
                want
                & (t_f < CLOSE - SEC)
                & (f_qty > 0)
                & (f_qty <= left)
                & (offer > bid)
                & ((bid + offer) % 2 == 0)
            )
            ok &= self._limit_ok(rest["side"], rest["price"], bid + offer)
            ok &= (rest["mq"] <= f_qty) | (rest["sfmq"] != 1)
            idx = np.flatnonzero(ok)
            self._incoming_cp(rest, idx, t_f[idx], f_qty[idx], (bid + offer)[idx] // 2)
            fills.append((idx, t_f[idx], f_qty[idx]))
            last_t[idx] = t_f[idx]
            left[idx] -= f_qty[idx]
            return ok

        first_ok = fill(t1, f1, u(n) < p)
        fill(t2, f2, first_ok & two)  # a second fill only follows a first one
        idx, t, q = (np.concatenate(x) for x in zip(*fills, strict=True))
        return (idx, t, q), last_t

    def _incoming_cp(self, rest: Cols, idx: Arr, t: Arr, qty: Arr, mid: Arr) -> None:
        """Non-sweep CP orders arriving at t that fill `qty` against resting orders rest[idx] at the mid."""
        u, n = self._u, len(idx)
        sec = rest["sec"][idx]
        side = 3 - rest["side"][idx]
        cols = self._attrs(n, "cp", side)
        bid, offer = self._quote(sec, t)
        tick = self.u.tick[sec]
        limit = np.where(
            side == 1,
            offer + tick * self.rng.integers(0, 3, n),
            np.maximum(bid - tick * self.rng.integers(0, 3, n), tick),
        )
        extra = np.where(u(n) < 0.35, np.ceil(qty * u(n) * 2).astype(np.int64), 0)
        bouncing = u(n) < 0.5
        cols |= {
            "oid": self._ids(n),
            "sec": sec,
            "side": side,
            "price": np.where(u(n) < 0.5, 0, limit),
            "qty": qty + extra,
            "mq": np.minimum(cols["mq"], qty),
            "tv": np.where(bouncing, 0, cols["tv"]),
            "t": t,
            "r0": np.full(n, NEW),
            "m0": qty,
            "fate": np.where(bouncing, IOC, RESTS),
        }
        self._add_resting(cols, (np.zeros(0, np.int64),) * 3, t, 1200.0)
        self._cp_exec(t, sec, side, cols["oid"], cols["part"], rest["oid"][idx], rest["part"][idx], qty, mid)

    # ---- episodes ------------------------------------------------------------------------------
    def _delay(self, a: Arr, cap_s: float) -> Arr:
        """When the incoming order of an episode arrives: after its contras, before the close."""
        room = np.maximum(np.minimum(int(cap_s * SEC), CLOSE - SEC - a), 0)
        return a + 1_000_000 + np.floor(self._u(len(a)) * room).astype(np.int64)

    def _sweeps(self, a: Arr, sec: Arr) -> None:
        """CP sweeps: CP leg at the mid, then the lit book, then the residual is cancelled or rests in CP."""
        rng, u, n = self.rng, self._u, len(a)
        side = rng.integers(1, 3, n)
        cols = self._attrs(n, "sweep", side)
        q = self._qty(n, 600, 1.5)
        cols["mq"] = np.minimum(cols["mq"], q)
        t = self._delay(a, 60)
        bid, offer = self._quote(sec, t)
        tick = self.u.tick[sec]
        buy = side == 1
        marketable = u(n) < 0.4
        k = rng.integers(0, 3, n)
        limit = np.where(
            buy,
            np.where(marketable, offer + k * tick, bid - k * tick),
            np.where(marketable, bid - k * tick, offer + k * tick),
        )
        limit = np.maximum(limit, tick)
        cp_ok = (offer > bid) & ((bid + offer) % 2 == 0) & self._limit_ok(side, limit, bid + offer)
        cp = cp_ok & (u(n) < 0.25)
        c = np.where(u(n) < 0.15, q, np.maximum(1, np.floor(q * (0.05 + 0.85 * u(n))))).astype(np.int64)
        c = np.where(cp, np.minimum(np.maximum(c, cols["mq"]), q), 0)
        rem = q - c
        lit = marketable & (rem > 0) & (u(n) < 0.9)
        l_qty = np.where(u(n) < 0.75, rem, np.maximum(1, np.floor(rem * (0.1 + 0.8 * u(n))))).astype(np.int64)
        l_qty = np.where(lit, l_qty, 0)
        bouncing = u(n) < 0.35
        cols |= {
            "oid": self._ids(n),
            "sec": sec,
            "side": side,
            "price": limit,
            "qty": q,
            "tv": np.where(bouncing, 0, np.where(u(n) < 0.06, 1536, 256)),
            "t": t,
            "r0": np.full(n, NEW),
            "m0": c + l_qty,
        }
        i = np.flatnonzero(cp)
        self._cp_leg(t[i], sec[i], side[i], c[i], a[i], cols["oid"][i], cols["part"][i])
        i = np.flatnonzero(lit)
        self._lit_leg(t[i], sec[i], side[i], limit[i], l_qty[i], a[i], cols["oid"][i], cols["part"][i])
        residual = q - c - l_qty
        cols["fate"] = np.where(bouncing, IOC, RESTS)
        resting = np.flatnonzero((residual > 0) & ~bouncing)
        (idx, ft, fq), last = self._later_cp_fills(_take(cols, resting), residual[resting], t[resting], 0.35)
        last_t = t.copy()
        last_t[resting] = last
        self._add_resting(cols, (resting[idx], ft, fq), last_t, 600.0)

    def _lit_trades(self, a: Arr, sec: Arr) -> None:
        """Lit aggressors that take resting lit orders; a few keep a residual that rests or is cancelled."""
        rng, u, n = self.rng, self._u, len(a)
        side = rng.integers(1, 3, n)
        cols = self._attrs(n, "lit", side)
        q = self._qty(n, 400, 1.3)
        t = self._delay(a, 120)
        bid, offer = self._quote(sec, t)
        tick = self.u.tick[sec]
        k = rng.choice([0, 1, 2], n, p=[0.7, 0.2, 0.1])
        limit = np.where(side == 1, offer + k * tick, np.maximum(bid - k * tick, tick))
        filled = np.where(u(n) < 0.85, q, np.maximum(1, np.floor(q * (0.3 + 0.6 * u(n))))).astype(np.int64)
        bouncing = u(n) < 0.4
        cols |= {
            "oid": self._ids(n),
            "sec": sec,
            "side": side,
            "price": limit,
            "qty": q,
            "tv": np.where(bouncing, 0, cols["tv"]),
            "t": t,
            "r0": np.full(n, NEW),
            "m0": filled,
            "fate": np.where(bouncing, IOC, RESTS),
        }
        self._lit_leg(t, sec, side, limit, filled, a, cols["oid"], cols["part"])
        self._add_resting(cols, (np.zeros(0, np.int64),) * 3, t, 600.0)

    def _lit_resting(self, a: Arr, sec: Arr) -> None:
        """Lit orders behind the touch that never trade: amended 0-3 times, then cancelled or purged."""
        rng, n = self.rng, len(a)
        side = rng.integers(1, 3, n)
        cols = self._attrs(n, "lit", side)
        bid, offer = self._quote(sec, a)
        tick = self.u.tick[sec]
        k = rng.geometric(0.35, n) - 1
        price = np.maximum(np.where(side == 1, bid - k * tick, offer + k * tick), tick)
        cols |= {
            "oid": self._ids(n),
            "sec": sec,
            "side": side,
            "price": price,
            "qty": self._qty(n, 800, 1.4),
            "t": a,
            "r0": np.full(n, NEW),
            "m0": np.zeros(n, np.int64),
            "fate": np.full(n, RESTS),
        }
        t_end, end_cr, fate = self._end(a, 1200.0, cols["tv"])
        first = self._add(cols, t_end=t_end, end_cr=end_cr, fate=fate)
        self._amends(
            first,
            cols,
            np.minimum(t_end, CLOSE),
            tick,
            rng.choice(4, n, p=[0.55, 0.25, 0.12, 0.08]),
            reprice=True,
        )

    def _amends(self, first: int, cols: Cols, until: Arr, tick: Arr, count: Arr, reprice: bool) -> None:
        """User updates (changereason 5) between arrival and `until`: new quantity, for lit orders a new price."""
        u = self._u
        rep = np.repeat(np.arange(len(count)), count)
        m = len(rep)
        lo, hi = cols["t"][rep] + 1, np.maximum(until[rep], cols["t"][rep] + 2)
        t = self._between(lo, hi)
        order = np.lexsort((t, rep))
        rep, t = rep[order], t[order]
        step = np.where(u(m) < 0.5, self.rng.choice([-1, 1], m), 0) if reprice else np.zeros(m, np.int64)
        price = np.maximum(cols["price"][rep] + _group_cumsum(step, rep) * tick[rep], tick[rep])
        price = np.where(cols["price"][rep] > 0, price, 0)
        qty = np.maximum(1, np.rint(cols["qty"][rep] * (0.5 + u(m)))).astype(np.int64)
        self.batch.amends.append({"pos": first + rep, "t": t, "price": price, "qty": qty})

    def _cp_resting(self, a: Arr, sec: Arr) -> None:
        """CP orders (64/4096/4098) that rest: mid-peg or with a limit, some with MAQ; some are met later."""
        rng, u, n = self.rng, self._u, len(a)
        side = rng.integers(1, 3, n)
        cols = self._attrs(n, "cp", side)
        bid, offer = self._quote(sec, a)
        tick = self.u.tick[sec]
        k = rng.integers(-1, 3, n)
        limit = np.maximum(np.where(side == 1, offer + k * tick, bid - k * tick), tick)
        cols |= {
            "oid": self._ids(n),
            "sec": sec,
            "side": side,
            "price": np.where(u(n) < 0.5, 0, limit),
            "qty": self._qty(n, 1500, 1.6),
            "t": a,
            "r0": np.full(n, NEW),
            "m0": np.zeros(n, np.int64),
            "fate": np.full(n, RESTS),
        }
        (idx, ft, fq), last = self._later_cp_fills(cols, cols["qty"], a, 0.35)
        t_end, end_cr, fate = self._end(last, 1800.0, cols["tv"])
        first = self._add(cols, t_end=t_end, end_cr=end_cr, fate=fate)
        self.batch.add_fills(first + idx, ft, fq)
        quiet = np.ones(n, bool)
        quiet[idx] = False
        count = np.where(quiet & (u(n) < 0.2), 1, 0)
        self._amends(first, cols, np.minimum(t_end, CLOSE), tick, count, reprice=False)

    def _auction(self, sec_pairs: Arr, open_t: Arr) -> None:
        """Opening auction: pre-open lit buy/sell pairs matched at 10:00:0x at one price (dealsource 20)."""
        rng, u, n = self.rng, self._u, len(sec_pairs)
        if n == 0:
            return
        t_open = open_t[sec_pairs]
        bid, _ = self._quote(sec_pairs, t_open)
        tick = self.u.tick[sec_pairs]
        q = self._qty(n, 300, 1.4)
        oids: dict[int, Arr] = {}
        parts: dict[int, Arr] = {}
        for side in (1, 2):
            s = np.full(n, side)
            cols = self._attrs(n, "lit", s)
            k = rng.integers(0, 4, n)
            extra = np.where(u(n) < 0.2, np.ceil(q * u(n)).astype(np.int64), 0)
            cols |= {
                "oid": self._ids(n),
                "sec": sec_pairs,
                "side": s,
                "price": np.maximum(bid + (k if side == 1 else -k) * tick, tick),
                "qty": q + extra,
                "t": self._between(np.full(n, PRE_OPEN), t_open),
                "r0": np.full(n, NEW),
                "m0": np.zeros(n, np.int64),
                "fate": np.full(n, RESTS),
            }
            self._add_resting(cols, (np.arange(n), t_open, q), t_open, 1800.0)
            oids[side], parts[side] = cols["oid"], cols["part"]
        self.batch.add_exec(
            t=t_open,
            sec=sec_pairs,
            boid=oids[1],
            soid=oids[2],
            bpart=parts[1],
            spart=parts[2],
            price=bid,
            qty=q,
            ds=np.where(u(n) < 0.04, 45, 20),
            aggr=0,
        )

    def _reloads(self, prev: Cols, sec_new: Arr) -> None:
        """Orders reloaded for the day at 19:00-21:00 the evening before (changereason 30): yesterday's
        survivors plus, on the first day, orders that predate the drop. Met later in CP, cancelled, or kept."""
        rng, u = self.rng, self._u
        n_prev, m = len(prev["oid"]), len(sec_new)
        n = n_prev + m
        t = self._between(np.full(n, 5 * SEC), np.full(n, 2 * HOUR))
        side = rng.integers(1, 3, m)
        bid, offer = self._quote(sec_new, t[n_prev:])
        tick = self.u.tick[sec_new]
        sweep, cp = self._attrs(m, "sweep", side), self._attrs(m, "cp", side)
        is_sweep = u(m) < 0.7
        new = {
            k: np.where(is_sweep, sweep[k], cp[k])
            for k in ("eot", "part", "pref", "midtick", "sfmq", "mq", "ck")
        }
        k = rng.integers(1, 4, m)
        new |= {
            "oid": self._ids(m, reloaded=True),
            "sec": sec_new,
            "side": side,
            "price": np.maximum(np.where(side == 1, bid - k * tick, offer + k * tick), tick),
            "qty": self._qty(m, 800, 1.2),
            "tv": np.full(m, 1536),
        }
        cols = _concat([prev, new], SURVIVOR_KEYS)
        cols["mq"] = np.minimum(cols["mq"], cols["qty"])
        cols |= {"t": t, "r0": np.full(n, RELOAD), "m0": np.zeros(n, np.int64), "fate": np.full(n, RESTS)}
        centre_point = (cols["eot"] & (64 | 2048 | 4096)) != 0
        i = np.flatnonzero(centre_point)
        (idx, ft, fq), last_cp = self._later_cp_fills(_take(cols, i), cols["qty"][i], cols["t"][i], 0.3)
        last = np.maximum(cols["t"], CONT_START)
        last[i] = np.maximum(last_cp, last[i])
        self._add_resting(cols, (i[idx], ft, fq), last, 7200.0)

    # ---- days and slices -----------------------------------------------------------------------
    def _day_quotes(self, rng: np.random.Generator, planned: Arr, open_t: Arr) -> _Quotes:
        """The day's NBBO walk per security: evening, pre-open, continuous (U-shaped), post-close quotes.
        A clean quote 1 ns after each security's opening auction ends the pre-open oddities (auction
        prints keep the pre-open snapshot, like the real ones)."""
        n_q = 12 + np.rint(NBBO_PER_ROW * planned).astype(np.int64)
        segments: list[tuple[Arr, int, int, int]] = [  # (count per security, phase, lo, hi)
            (3 + n_q // 50, 0, SEC, 2 * HOUR + 30 * MIN),
            (4 + n_q // 10, 1, PRE_OPEN, OPEN),
            (2 + n_q // 40, 3, CLOSE, PURGE),
        ]
        cont = np.maximum(n_q - np.sum([s[0] for s in segments], axis=0), 3)
        secs, ts, phases = [], [], []
        for count, code, lo, hi in segments:
            secs.append(np.repeat(np.arange(self.n_sec), count))
            ts.append(lo + np.floor(rng.random(len(secs[-1])) * (hi - lo)).astype(np.int64))
            phases.append(np.full(len(secs[-1]), code))
        secs.append(np.repeat(np.arange(self.n_sec), cont))
        ts.append(np.floor(np.interp(rng.random(len(secs[-1])), self.cdf, self.cdf_t)).astype(np.int64))
        phases.append(np.full(len(secs[-1]), 2))
        secs.append(np.arange(self.n_sec))
        ts.append(open_t + 1)
        phases.append(np.full(self.n_sec, 2))
        sec, t, phase = np.concatenate(secs), np.concatenate(ts), np.concatenate(phases)
        order = np.lexsort((t, sec))
        sec, t, phase = sec[order], t[order], phase[order]
        n = len(t)
        tick = self.u.tick[sec]
        # ~1.2 % daily volatility whatever the number of quotes.
        p_move = np.minimum(0.5, (0.012 * self.mid_ticks) ** 2 / np.maximum(cont, 1))[sec]
        step = np.where(rng.random(n) < p_move, rng.choice([-1, 1], n), 0)
        bid_ticks = np.maximum(self.mid_ticks[sec] + _group_cumsum(step, sec), 4)
        spread = np.where(
            rng.random(n) < self.u.p_one_tick[sec], 1, 2 + (rng.random(n) < 0.3) + (rng.random(n) < 0.1)
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
        gap = np.rint(rng.standard_normal(self.n_sec) * 0.004 * bid_ticks[last]).astype(np.int64)
        self.mid_ticks = np.maximum(bid_ticks[last] + gap, 4)
        return _Quotes(sec, t, bid, offer, pub_bid, pub_offer, self.n_sec)

    def _write_nbbo(self) -> None:
        q = self.q
        order = np.lexsort((q.sec, q.t))
        ts = _to_utc(q.t[order], self.bases)
        n = len(ts)
        seq = self.nbbo_seq + np.arange(1, n + 1)
        self.nbbo_seq += n
        cols = [
            np.ones(n, np.int64),
            seq,
            np.full(n, self.bases[1]),
            q.pub_bid[order],
            ts,
            q.pub_offer[order],
            self.u.codes[q.sec[order]],
            ts,
            np.full(n, NBBO_USERID),
            np.full(n, NBBO_RUNID),
        ]
        self.nbbo.write(cols, NBBO_HEADER)

    def _flush(self, rows: Cols, execs: Cols, upto: int) -> None:
        """Write every pending event before `upto` in (time, causal) order; keep the rest for later slices."""
        rows = _concat([self.carry_rows, rows], ROW_KEYS)
        execs = _concat([self.carry_execs, execs], EXEC_KEYS)
        now = rows["t"] < upto
        self.carry_rows = _take(rows, ~now)
        rows = _take(rows, now)
        now_e = execs["t"] < upto
        self.carry_execs = _take(execs, ~now_e)
        execs = _take(execs, now_e)
        rows = _take(rows, np.lexsort((rows["ord"], rows["t"])))
        execs = _take(execs, np.argsort(execs["t"], kind="stable"))
        n_o, n_e = len(rows["t"]), len(execs["t"])
        # One sequence counter for order rows and trade rows (buy row, then sell row of each execution).
        t_all = np.r_[rows["t"], np.repeat(execs["t"], 2)]
        o_all = np.r_[rows["ord"], np.full(2 * n_e, ORD_TRADE)]
        order = np.lexsort((o_all, t_all))
        seq = np.empty(n_o + 2 * n_e, np.int64)
        seq[order] = self.seq + np.cumsum(self.rng.integers(1, 4, n_o + 2 * n_e))
        if len(seq):
            self.seq = int(seq.max())
        self._write_orders(rows, seq[:n_o])
        self._write_trades(execs, seq[n_o:])
        self.partitions.update((self.day_idx, int(s)) for s in np.unique(rows["sec"]))

    def _write_orders(self, r: Cols, seq: Arr) -> None:
        n = len(seq)
        i = self.q.at(r["sec"], r["t"])
        nb, no = self.q.pub_bid[i], self.q.pub_offer[i]
        tick = self.u.tick[r["sec"]]
        # The second BBO equals the national one on ~90 % of rows, a tick worse otherwise.
        worse = self.rng.random(n) < 0.1
        bid = np.where(worse & (nb > tick), nb - tick, nb)
        offer = np.where(worse & (no > 0), no + tick, no)
        short = (r["eot"] & 2) != 0
        row_num = self.orders.rows + np.arange(1, n + 1)
        tv_label = pc.take(TV_LABELS, pa.array(np.searchsorted(TV_CODES, r["tv"])))
        one = np.ones(n, np.int64)
        cols = [
            r["oid"],
            3 * one,
            _to_utc(r["t"], self.bases),
            self.u.codes[r["sec"]],
            r["price"],
            r["side"],
            r["cr"],
            r["status"],
            r["qty"],
            r["leaves"],
            one,
            r["eot"],
            nb,
            no,
            bid,
            offer,
            r["part"],
            r["pref"],
            r["midtick"],
            r["sfmq"],
            r["mq"],
            seq,
            r["ck"],
            r["matched"],
            np.where(short, r["leaves"], 0),
            0 * one,
            tv_label,
            row_num,
            r["tv"],
        ]
        self.orders.write(cols, ORDERS_HEADER)

    def _write_trades(self, e: Cols, seq: Arr) -> None:
        n = 2 * len(e["t"])
        rep = np.repeat(np.arange(len(e["t"])), 2)
        side = np.tile(np.array([1, 2], np.int64), len(e["t"]))
        ts = _to_utc(e["t"][rep], self.bases)
        i = self.q.at(e["sec"][rep], e["t"][rep])
        mg = self.next_mg + rep + 1
        self.next_mg += len(e["t"])
        ds = e["ds"][rep]
        cols = [
            np.full(n, 3),
            seq,
            pa.repeat(self.tradedate, n),
            ts,
            self.u.codes[e["sec"][rep]],
            np.where(side == 1, e["boid"][rep], e["soid"][rep]),
            ds,
            pc.take(DS_LABELS, pa.array(np.searchsorted(DS_CODES, ds))),
            pa.repeat("ON Market", n),
            mg,
            self.q.pub_bid[i],
            self.q.pub_offer[i],
            e["price"][rep],
            e["qty"][rep],
            side,
            pc.take(SIDE_LABELS, pa.array(side)),
            np.where(side == 1, e["bpart"][rep], e["spart"][rep]),
            (e["aggr"][rep] == side).astype(np.int64),
            self.trades.rows + np.arange(1, n + 1),
        ]
        self.trades.write(cols, TRADES_HEADER)

    # ---- the driver ----------------------------------------------------------------------------
    def _finish_slice(self, upto: int) -> int:
        """Turn the slice's episodes into rows, write what is due before `upto`; returns rows generated."""
        rows, execs, survivors = self.batch.finalize()
        self.survivors.append(survivors)
        self._flush(rows, execs, upto)
        self.batch = _Batch()
        self.rows_generated += len(rows["t"])
        return len(rows["t"])

    def _remaining_rows(self) -> float:
        """Order rows still to generate: for a bytes target, at the bytes per row measured so far."""
        if self.mode == "rows":
            return self.target - self.rows_generated
        written = self.orders.rows
        per_row = self.orders.bytes / written if written >= 2_000 else BYTES_PER_ROW_GUESS
        return (self.target - self.orders.bytes) / per_row - (self.rows_generated - written)

    def run(self, dates: list[date], progress: Callable[[int], None] | None) -> None:
        plan = self._rng(2)
        day_w = np.exp(0.2 * plan.standard_normal(len(dates)))
        est_rows = self.target if self.mode == "rows" else self.target / BYTES_PER_ROW_GUESS
        planned_day = est_rows * day_w / day_w.sum()
        # At least two slices a day, so that a small drop's later slice uses the measured rows per episode.
        n_slices = np.maximum(2, np.ceil(planned_day / SLICE_ROWS)).astype(int)
        self.slice_w = np.repeat(day_w / n_slices, n_slices)  # weight of every continuous slice, in order
        self.slice_k = 0
        for d_idx, d in enumerate(dates):
            self._day(d_idx, d, planned_day[d_idx] * self.u.weight, int(n_slices[d_idx]), progress)
            log.debug("synth: %s done, %d order rows so far", d, self.orders.rows)

    def _day(
        self, d_idx: int, d: date, planned: Arr, n_slices: int, progress: Callable[[int], None] | None
    ) -> None:
        self.day_idx, self.tradedate = d_idx, d.isoformat()
        self.bases = (_utc_ns(d - timedelta(days=1), time(19)), _utc_ns(d, time(0)))
        self.rng = self._rng(3, d_idx)
        n_sec = self.n_sec
        open_t = OPEN + np.floor(self.rng.random(n_sec) * 9 * SEC).astype(np.int64)
        self.q = self._day_quotes(self.rng, planned, open_t)
        self._write_nbbo()
        closed_t = CLOSE + 10 * MIN + np.floor(self.rng.random(n_sec) * 2 * MIN).astype(np.int64)
        for name, t in (
            ("Pre Open", np.full(n_sec, PRE_OPEN)),
            ("Open", open_t),
            ("Pre CSPA", np.full(n_sec, CLOSE)),
            ("Closed", closed_t),
        ):
            self.session.append((name, _to_utc(t, self.bases)))

        # Evening and pre-open: reloads, the opening auction, orders entered before the open.
        prev = _concat(self.survivors, SURVIVOR_KEYS)
        self.survivors = []
        new_reloads = self.rng.poisson(0.0005 * planned) + (1 if d_idx == 0 else 0)
        self._reloads(prev, np.repeat(np.arange(n_sec), new_reloads))
        self._auction(np.repeat(np.arange(n_sec), self.rng.poisson(np.maximum(1.0, 0.004 * planned))), open_t)
        sec = np.repeat(np.arange(n_sec), self.rng.poisson(0.004 * planned))
        a = self._between(np.full(len(sec), PRE_OPEN), np.full(len(sec), OPEN))
        lit = self.rng.random(len(sec)) < 0.5
        self._lit_resting(a[lit], sec[lit])
        self._cp_resting(a[~lit], sec[~lit])
        self._finish_slice(CONT_START)

        for i in range(n_slices):
            self.rng = self._rng(4, d_idx, i)
            k = self.slice_k
            self.slice_k += 1
            rows_target = max(0.0, self._remaining_rows()) * self.slice_w[k] / self.slice_w[k:].sum()
            lo, hi = i / n_slices, (i + 1) / n_slices
            upto = CLOSE if i == n_slices - 1 else int(np.interp(hi, self.cdf, self.cdf_t))
            sec = np.repeat(
                np.arange(n_sec), self.rng.poisson(rows_target / self.rows_per_episode * self.u.weight)
            )
            a = np.floor(np.interp(self.rng.uniform(lo, hi, len(sec)), self.cdf, self.cdf_t)).astype(np.int64)
            kind = self.rng.choice(4, len(sec), p=[0.28, 0.27, 0.25, 0.20])
            for j, episode in enumerate(
                (self._lit_trades, self._lit_resting, self._sweeps, self._cp_resting)
            ):
                episode(a[kind == j], sec[kind == j])
            self.cont_rows += self._finish_slice(upto)
            self.cont_episodes += len(sec)
            if self.cont_episodes >= 100:
                self.rows_per_episode = self.cont_rows / self.cont_episodes
            if progress:
                progress(self.orders.bytes)
        self._finish_slice(DAY_END)
        if progress:
            progress(self.orders.bytes)

    def write_small_files(self) -> dict[str, int]:
        """reference, session and participants: tiny, written whole at the end."""
        u, n = self.u, self.n_sec
        small = {
            "reference": ([u.codes, pa.array(u.names), np.full(n, 3), u.tick], REFERENCE_HEADER),
            "session": (
                [
                    np.tile(u.codes, len(self.session)),
                    pa.array([name for name, _ in self.session for _ in range(n)]),
                    np.concatenate([t for _, t in self.session]),
                ],
                SESSION_HEADER,
            ),
            "participants": (
                [
                    PARTICIPANTS,
                    pa.array([f"Participant {p:03d}" for p in PARTICIPANTS]),
                    pa.array(
                        [PARTICIPANT_TYPES[i % len(PARTICIPANT_TYPES)] for i in range(len(PARTICIPANTS))]
                    ),
                ],
                PARTICIPANTS_HEADER,
            ),
        }
        rows = {}
        for kind, (cols, header) in small.items():
            sink = _Sink(self.paths[kind], header, self.gzip)
            sink.write(cols, header)
            sink.close()
            rows[kind] = sink.rows
        return rows


def _to_utc(t: Arr, day_bases: tuple[int, int]) -> Arr:
    """Day-axis times -> ns UTC. The evening and the day each use their own UTC offset (DST changes at
    2-3 am on a Sunday, so never inside either part of a weekday's axis)."""
    evening, midnight = day_bases
    return np.where(t < MIDNIGHT, evening + t, midnight + (t - MIDNIGHT))


def generate(
    out_dir: Path,
    *,
    securities: int = 5,
    days: int = 2,
    start: date = date(2024, 9, 30),
    seed: int = 42,
    scale: tuple[str, int] | None = None,
    gzip: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic drop (orders, trades, nbbo, reference, session, participants) into out_dir.

    scale: ('rows', n) ~ n order rows; ('bytes', n) ~ n bytes of uncompressed orders.csv; None: a small
    drop (3,000 rows per security-day, clamped to 20,000-50,000). `progress` receives the uncompressed
    bytes of orders.csv written so far (the unit of a bytes scale).
    """
    if not (1 <= securities <= MAX_SECURITIES and days >= 1):
        raise ValueError(
            f"securities must be 1..{MAX_SECURITIES} and days >= 1 (got securities={securities}, days={days})"
        )
    if scale is not None and (scale[0] not in ("rows", "bytes") or scale[1] < 1):
        raise ValueError(f"invalid scale {scale!r}: expected ('rows', n) or ('bytes', n) with n >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    default = min(DEFAULT_ROWS_MAX, max(DEFAULT_ROWS_MIN, DEFAULT_ROWS_PER_SECDAY * securities * days))
    mode, target = scale if scale else ("rows", default)
    dates = trading_dates(start, days)
    log.info(
        "synth: %d securities x %d days from %s, %s target %d, seed %d",
        securities,
        days,
        dates[0],
        mode,
        target,
        seed,
    )
    s = _Synth(out_dir, securities, seed, gzip, mode, target)
    try:
        s.run(dates, progress)
    finally:
        for sink in (s.orders, s.trades, s.nbbo):
            sink.close()
    rows = {"orders": s.orders.rows, "trades": s.trades.rows, "nbbo": s.nbbo.rows} | s.write_small_files()
    summary = SynthSummary(
        out_dir=out_dir,
        files=dict(s.paths),
        rows=rows,
        bytes={k: p.stat().st_size for k, p in s.paths.items()},
        partitions=len(s.partitions),
    )
    log.info("synth: wrote %s", ", ".join(f"{k} {rows[k]} rows" for k in KINDS))
    return summary

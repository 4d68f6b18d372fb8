"""Plain-Python reference of the per-partition pipeline of docs/methodology.md (§1–§9) and docs/results.md.

Brute force on purpose: rows are Python dicts, quotes are looked up with bisect, the replay scans a plain
list of open resting orders in time priority. Polars is used only to read the inputs and to build the
result frames. Rule labels in comments, with the methodology section they refer to: D2.2 fill classes (§2), D3/D3.1
session and quotes (§1, §3), D5.1 analysed sweeps (§4), D5.2/D5.3 lifecycle (§5), D5.4 metrics (§6), D5.5
replay (§7), D5.6 comparison (§8), D5.7 the settled readings of §5–§9, S(c) the settled choices stated there too.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from dpsim.errors import InputError

NS = 1_000_000_000
FILL_CLASSES = ("lit", "dark", "auction", "reported")  # D2.2: booking is never a fill


# ---------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One counterfactual replay (D5.5 / S(a) `scenarios.<name>`)."""

    quantity: str = "residual"  # residual | full
    window: str | float = "last_fill"  # last_fill | order_life | end_of_day | a number N = seconds
    max_fill_fraction: float = 1.0
    impact_bps: float = 0.0
    sweep_midtick: bool = False
    ignore_sweep_limit: bool = False
    real_queue: bool = True


def default_scenarios() -> dict[str, Scenario]:
    """The seven default scenarios of D5.5."""
    return {
        "baseline": Scenario(),
        "order_life": Scenario(window="order_life"),
        "half_cap": Scenario(max_fill_fraction=0.5),
        "impact_5bps": Scenario(impact_bps=5.0),
        "midtick": Scenario(sweep_midtick=True),
        "ignore_limit": Scenario(ignore_sweep_limit=True),
        "no_queue": Scenario(real_queue=False),
    }


def _default_fill_classes() -> dict[str, tuple[int, ...]]:
    return {
        "lit": (1,),
        "dark": (46, 47, 49, 50, 51, 52),
        "auction": (20,),
        "reported": (5,),
        "booking": (44, 45, 48),
    }


@dataclass(frozen=True)
class Params:
    """Every parameter the per-partition computation needs, with the defaults of docs/methodology.md."""

    timezone: str = "Australia/Sydney"
    day_roll: time = time(19, 0)
    open: time = time(10, 0)
    close: time = time(16, 0)
    max_quote_age_s: float | None = None
    centre_point_mask: int = 6464  # 64 | 256 | 2048 | 4096
    sweep_mask: int = 2048
    fill_classes: dict[str, tuple[int, ...]] = field(default_factory=_default_fill_classes)
    centre_point_dealsource: int = 47
    preferencing_dealsource: int = 46
    cp_booking_dealsource: int = 48
    tick_table: tuple[tuple[int, int], ...] = ((0, 1), (100, 5), (2000, 10))  # (from, tick), thousandths
    size_buckets: tuple[tuple[str, int | None], ...] = (
        ("tiny", 100),
        ("small", 1000),
        ("medium", 10000),
        ("large", None),
    )
    time_buckets: tuple[tuple[str, time, time], ...] = (
        ("morning", time(10, 0), time(12, 0)),
        ("midday", time(12, 0), time(15, 0)),
        ("afternoon", time(15, 0), time(16, 0)),
    )
    horizons_s: tuple[float, ...] = (1, 5, 60, 300)
    participants: tuple[int, ...] = ()  # empty = all
    scenarios: dict[str, Scenario] = field(default_factory=default_scenarios)


# ---------------------------------------------------------------------------------------------------
# Output columns (docs/results.md)
# ---------------------------------------------------------------------------------------------------
INT, FLT, BOOL, STR = pl.Int64(), pl.Float64(), pl.Boolean(), pl.String()


def horizon_label(h: float) -> str:
    """Integer horizons print without a decimal point (S(b)); others as e.g. 0p5."""
    return str(int(h)) if float(h).is_integer() else str(h).replace(".", "p")


def _metric_columns(horizons: Sequence[float]) -> list[tuple[str, pl.DataType]]:
    """Metric columns after the fill totals, shared by real (no prefix) and simulated (sim_)."""
    return [
        ("arrival_cost_bps", FLT),
        ("opportunity_cost_bps", FLT),
        ("implementation_shortfall_bps", FLT),
        ("effective_spread_bps", FLT),
        *[(f"realized_spread_{horizon_label(h)}s_bps", FLT) for h in horizons],
        *[(f"price_impact_{horizon_label(h)}s_bps", FLT) for h in horizons],
        ("price_improvement_bps", FLT),
        ("time_to_first_fill_s", FLT),
        ("execution_duration_s", FLT),
        ("vw_exec_time_s", FLT),
    ]


def sweeps_columns(horizons: Sequence[float]) -> list[tuple[str, pl.DataType]]:
    return [
        ("order_id", INT),
        ("side", INT),
        ("participantid", INT),
        ("exchangeordertype", INT),
        ("arrival_time", INT),
        ("arrival_sequence", INT),
        ("arrival_quantity", INT),
        ("order_quantity", INT),
        ("limit_price", INT),
        ("midtick", INT),
        ("maq", INT),
        ("maq_single", BOOL),
        ("timevalidity", INT),
        ("residual_after_arrival", INT),
        ("rests", BOOL),
        ("final_time", INT),
        ("final_changereason", INT),
        ("final_status", INT),
        ("final_leaves", INT),
        ("matched_quantity", INT),
        ("has_new_event", BOOL),
        ("group", STR),
        ("qualifying", BOOL),
        ("filled_quantity", INT),
        ("filled_lit", INT),
        ("filled_dark", INT),
        ("filled_auction", INT),
        ("filled_reported", INT),
        ("booking_quantity", INT),
        ("unfilled_quantity", INT),
        ("n_fills", INT),
        ("vwap", FLT),
        ("first_fill_time", INT),
        ("last_fill_time", INT),
        ("arrival_bid", INT),
        ("arrival_offer", INT),
        ("arrival_mid", FLT),
        ("arrival_spread_bps", FLT),
        ("arrival_quote_age_s", FLT),
        ("nbbo_source", STR),
        ("end_mid", FLT),
        ("fill_ratio", FLT),
        *_metric_columns(horizons),
        ("size_bucket", STR),
        ("time_bucket", STR),
    ]


SIM_FILLS_COLUMNS: list[tuple[str, pl.DataType]] = [
    ("sweep_order_id", INT),
    ("contra_order_id", INT),
    ("role", STR),
    ("contra_is_sweep", BOOL),
    ("timestamp", INT),
    ("quantity", INT),
    ("price", FLT),  # the match price: a mid (possibly a half unit) or an impact-moved mid
    ("mid", FLT),
]

DELTA_COLUMNS: list[tuple[str, pl.DataType]] = [
    ("delta_implementation_shortfall_bps", FLT),
    ("delta_arrival_cost_bps", FLT),
    ("delta_opportunity_cost_bps", FLT),
    ("delta_effective_spread_bps", FLT),
    ("delta_filled_quantity", INT),  # a quantity: Int64 by the dtype rule of S(b)
    ("delta_fill_ratio", FLT),
    ("delta_vw_exec_time_s", FLT),
    ("delta_time_to_first_fill_s", FLT),
]


def sim_orders_columns(horizons: Sequence[float]) -> list[tuple[str, pl.DataType]]:
    return [
        ("order_id", INT),
        ("sim_quantity", INT),
        ("sim_window_end", INT),
        ("sim_filled_quantity", INT),
        ("sim_filled_resting", INT),
        ("sim_filled_incoming", INT),
        ("sim_n_fills", INT),
        ("sim_fill_ratio", FLT),
        ("sim_vwap", FLT),
        ("sim_first_fill_time", INT),
        ("sim_last_fill_time", INT),
        ("sim_end_mid", FLT),
        *[(f"sim_{name}", dtype) for name, dtype in _metric_columns(horizons)],
        ("set", STR),
        *DELTA_COLUMNS,
    ]


FIDELITY_COLUMNS: list[tuple[str, pl.DataType]] = [
    ("real_cp_quantity", INT),
    ("real_cp_executions", INT),
    ("replayed_quantity", INT),
    ("replayed_matches", INT),
    ("reproduced_quantity", INT),
    ("real_pairs", INT),
    ("reproduced_pairs", INT),
    ("fidelity", FLT),
    ("preferencing_quantity", INT),
    ("cp_booking_quantity", INT),
]

QUALITY_COLUMNS: list[tuple[str, pl.DataType]] = [
    ("open", INT),
    ("close", INT),
    ("open_source", STR),
    ("nbbo_source", STR),
    ("n_quotes", INT),
    ("n_usable_quotes", INT),
    ("n_stale_quotes", INT),
    ("n_empty_quotes", INT),
    ("n_crossed_quotes", INT),
    ("n_locked_quotes", INT),
    ("n_sweeps", INT),
    ("n_sweeps_analysed", INT),
    ("n_sweeps_outside_session", INT),
    ("n_sweeps_without_mid", INT),
    ("arrival_quote_age_median_s", FLT),
    ("arrival_quote_age_p95_s", FLT),
    ("quantity_lit", INT),
    ("quantity_dark", INT),
    ("quantity_auction", INT),
    ("quantity_reported", INT),
    ("quantity_booking", INT),
]


def _frame(rows: list[dict[str, Any]], columns: list[tuple[str, pl.DataType]]) -> pl.DataFrame:
    data = {name: [r[name] for r in rows] for name, _ in columns}
    return pl.DataFrame(data, schema=dict(columns))


# ---------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------
def clean(x: float | None) -> float | None:
    """S(c): every float output −0.0 becomes 0.0."""
    return None if x is None else x + 0.0


def local_instant(day: date, clock: time, tz: str) -> int:
    """ns UTC of a local wall-clock time on a date, DST-aware (D3: never a fixed offset)."""
    return int(datetime.combine(day, clock, tzinfo=ZoneInfo(tz)).timestamp()) * NS


def local_time_of(ts: int, tz: str) -> time:
    secs, nanos = divmod(ts, NS)
    return (datetime.fromtimestamp(secs, ZoneInfo(tz)) + timedelta(microseconds=nanos // 1000)).time()


def local_trading_date(ts: int, params: Params) -> date:
    """D3: an instant at or after the day roll belongs to the next calendar day's trading date."""
    secs, _ = divmod(ts, NS)
    local = datetime.fromtimestamp(secs, ZoneInfo(params.timezone))
    return local.date() + timedelta(days=1) if local.time() >= params.day_roll else local.date()


def tick_size(limit: int, table: Sequence[tuple[int, int]]) -> int:
    """D2.1 / D5.7: the tick looked up at the limit price: the last table row whose `from` ≤ limit."""
    tick = table[0][1]
    for start, t in sorted(table):
        if limit >= start:
            tick = t
    return tick


def percentile_linear(values: Sequence[float], p: float) -> float | None:
    """numpy's default ('linear') percentile, p in [0, 1] (D5.7 quality table)."""
    xs = sorted(values)
    if not xs:
        return None
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    if lo + 1 >= len(xs):
        return float(xs[lo])
    return float(xs[lo] + (h - lo) * (xs[lo + 1] - xs[lo]))


def _collect(frame: pl.DataFrame | pl.LazyFrame) -> list[dict[str, Any]]:
    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    return frame.rows(named=True)


# ---------------------------------------------------------------------------------------------------
# Quotes (D3.1, D5.7 "Quotes", S(c) "Session and quotes")
# ---------------------------------------------------------------------------------------------------
@dataclass
class Quote:
    ts: int
    bid: int
    offer: int

    @property
    def mid(self) -> float:
        return (self.bid + self.offer) / 2  # a half unit is kept (D2: never truncate)


@dataclass
class QuoteBook:
    """The usable quotes of the partition, one per timestamp, in time order."""

    quotes: list[Quote]
    close: int
    max_age_s: float | None
    ts: list[int] = field(init=False)

    def __post_init__(self) -> None:
        self.ts = [q.ts for q in self.quotes]

    def _too_old(self, t: int, quote_ts: int) -> bool:
        return self.max_age_s is not None and t - quote_ts > self.max_age_s * 1e9

    def before(self, t: int) -> Quote | None:
        """Prevailing quote before t: the latest usable quote with timestamp strictly < t (D3.1)."""
        i = bisect_left(self.ts, t) - 1
        if i < 0 or self._too_old(t, self.ts[i]):
            return None
        return self.quotes[i]

    def at_or_before(self, t: int) -> Quote | None:
        """For m_{t+h}: latest usable quote with timestamp ≤ min(t, close); age measured from t (D5.7)."""
        i = bisect_right(self.ts, min(t, self.close)) - 1
        if i < 0 or self._too_old(t, self.ts[i]):
            return None
        return self.quotes[i]

    def mid_before(self, t: int) -> float | None:
        q = self.before(t)
        return None if q is None else q.mid


def classify_quote(ts: int, bid: int | None, offer: int | None, open_: int, close: int) -> str:
    """S(c): first that applies: stale (outside [open, close]), empty, crossed, locked, else usable."""
    if ts < open_ or ts > close:
        return "stale"
    if bid is None or offer is None or bid <= 0 or offer <= 0:
        return "empty"
    if bid > offer:
        return "crossed"
    if bid == offer:
        return "locked"
    return "usable"


# ---------------------------------------------------------------------------------------------------
# Orders (D5.2 lifecycle)
# ---------------------------------------------------------------------------------------------------
@dataclass
class Fill:
    ts: int
    price: float
    qty: int
    cls: str  # lit | dark | auction | reported


@dataclass
class Order:
    order_id: int
    events: list[dict[str, Any]]
    is_sweep: bool = False
    analysed: bool = False  # in-session sweep (the replay's notion, whatever the participant filter)
    fills: list[Fill] = field(default_factory=list)
    trade_classes: list[str] = field(default_factory=list)  # class of every trade row (booking included)
    booking_quantity: int = 0

    # --- D5.7 "Event order": arrival, post-arrival state and final state by (timestamp, sequence, row_num)
    @property
    def arrival(self) -> dict[str, Any]:
        return self.events[0]

    @property
    def post_arrival(self) -> dict[str, Any]:
        """The last event at the arrival timestamp: the state right after immediate matching (D5.2)."""
        t0 = self.arrival["timestamp"]
        return [e for e in self.events if e["timestamp"] == t0][-1]

    @property
    def final(self) -> dict[str, Any]:
        return self.events[-1]

    @property
    def arrival_time(self) -> int:
        return self.arrival["timestamp"]

    @property
    def side(self) -> int:
        return self.arrival["side"]

    @property
    def sign(self) -> int:
        return 1 if self.side == 1 else -1

    @property
    def arrival_quantity(self) -> int:
        return self.arrival["quantity"]

    @property
    def limit(self) -> int | None:
        """D5.7: only price > 0 is a limit, read from the arrival row for the whole life."""
        p = self.arrival["price"]
        return p if p is not None and p > 0 else None

    @property
    def maq(self) -> int:
        m = self.arrival["minimumquantity"]
        return m if m is not None and m > 0 else 0

    @property
    def maq_single(self) -> bool:
        return self.arrival["singlefillminimumquantity"] == 1

    @property
    def accepts_midtick(self) -> bool:
        return self.arrival["midtick"] in (1, 4)

    @property
    def residual(self) -> int:
        return self.post_arrival["leavesquantity"]

    @property
    def on_book_after_arrival(self) -> bool:
        return self.post_arrival["orderstatus"] == 1

    @property
    def final_time(self) -> int:
        return self.final["timestamp"]

    @property
    def filled(self) -> int:
        return sum(f.qty for f in self.fills)

    @property
    def order_quantity(self) -> int:
        """D5.7: Q = max(largest quantity of the order's events, filled_quantity)."""
        return max(max(e["quantity"] for e in self.events), self.filled)

    @property
    def last_fill_time(self) -> int | None:
        return max((f.ts for f in self.fills), default=None)


# ---------------------------------------------------------------------------------------------------
# Metrics (D5.4 on real fills, D5.6 on the simulated path)
# ---------------------------------------------------------------------------------------------------
def fill_metrics(
    fills: Sequence[Fill],
    *,
    sign: int,
    order_quantity: int,
    arrival_time: int,
    arrival_quote: Quote | None,
    end_mid: float | None,
    book: QuoteBook,
    horizons: Sequence[float],
) -> dict[str, Any]:
    """The D5.4 metrics of one path of fills (no prefix); unfilled = max(Q − filled, 0)."""
    s = sign
    qty = sum(f.qty for f in fills)
    q_total = order_quantity
    m_arr = None if arrival_quote is None else arrival_quote.mid
    out: dict[str, Any] = {"filled_quantity": qty, "n_fills": len(fills)}
    out["fill_ratio"] = qty / q_total if q_total else None
    vwap = sum(f.price * f.qty for f in fills) / qty if qty > 0 else None
    out["vwap"] = vwap
    out["first_fill_time"] = min((f.ts for f in fills), default=None)
    out["last_fill_time"] = max((f.ts for f in fills), default=None)
    unfilled = max(q_total - qty, 0)

    # arrival_cost_bps = s (vwap − m_arr) / m_arr · 1e4 (cost of the filled part)
    ac = s * (vwap - m_arr) / m_arr * 1e4 if vwap is not None and m_arr is not None else None
    # opportunity_cost_bps = s (m_end − m_arr) / m_arr · 1e4, null when nothing is unfilled (D5.7)
    oc = (
        s * (end_mid - m_arr) / m_arr * 1e4
        if unfilled > 0 and end_mid is not None and m_arr is not None
        else None
    )
    # implementation shortfall (Perold) on the denominator Q·m_arr: (filled·AC + unfilled·OC) / Q, each
    # term 0 when its quantity is 0 (so = AC when filled = Q; an overfilled simulated path, filled > Q,
    # gives filled·AC/Q); null when m_arr is null, or unfilled > 0 without m_end, or Q = 0 (S(c))
    if m_arr is None or q_total == 0 or (unfilled > 0 and oc is None):
        is_bps = None
    else:
        filled_part = qty * ac if qty > 0 and ac is not None else 0.0
        unfilled_part = unfilled * oc if unfilled > 0 and oc is not None else 0.0
        is_bps = (filled_part + unfilled_part) / q_total
    out["arrival_cost_bps"] = ac
    out["opportunity_cost_bps"] = oc
    out["implementation_shortfall_bps"] = is_bps

    # effective spread / realized spread / price impact over the lit and dark fills having m_t (D5.4)
    spread_fills = []
    for f in fills:
        if f.cls not in ("lit", "dark"):
            continue  # an auction print (or a reported trade) has no prevailing spread
        m_t = book.mid_before(f.ts)
        if m_t is not None:
            spread_fills.append((f, m_t))
    if spread_fills:
        den = sum(f.qty for f, _ in spread_fills)
        num = sum(f.qty * 2 * s * (f.price - m_t) / m_t * 1e4 for f, m_t in spread_fills)
        out["effective_spread_bps"] = num / den if den else None
    else:
        out["effective_spread_bps"] = None
    for h in horizons:
        lab = horizon_label(h)
        h_ns = int(round(h * 1e9))
        used = []
        for f, m_t in spread_fills:
            later = book.at_or_before(f.ts + h_ns)
            if later is not None:
                used.append((f, m_t, later.mid))
        den = sum(f.qty for f, _, _ in used)
        rs: float | None = None
        pi: float | None = None
        if used and den:
            rs = sum(f.qty * 2 * s * (f.price - m_h) / m_t * 1e4 for f, m_t, m_h in used) / den
            pi = sum(f.qty * 2 * s * (m_h - m_t) / m_t * 1e4 for f, m_t, m_h in used) / den
        out[f"realized_spread_{lab}s_bps"] = rs
        out[f"price_impact_{lab}s_bps"] = pi

    # price improvement against the arrival far touch: s (far − vwap) / m_arr · 1e4
    if arrival_quote is not None and vwap is not None and m_arr is not None:
        far = arrival_quote.offer if s == 1 else arrival_quote.bid
        out["price_improvement_bps"] = s * (far - vwap) / m_arr * 1e4
    else:
        out["price_improvement_bps"] = None

    # times (seconds)
    if qty > 0:
        first, last = out["first_fill_time"], out["last_fill_time"]
        out["time_to_first_fill_s"] = (first - arrival_time) / 1e9
        out["execution_duration_s"] = (last - first) / 1e9
        out["vw_exec_time_s"] = sum(f.qty * (f.ts - arrival_time) for f in fills) / qty / 1e9
    else:
        out["time_to_first_fill_s"] = out["execution_duration_s"] = out["vw_exec_time_s"] = None
    for k, v in out.items():
        if isinstance(v, float):
            out[k] = clean(v)
    return out


# ---------------------------------------------------------------------------------------------------
# The replay (D5.5, D5.7 "Real resting orders", "Candidates", "Resting quantity", "MAQ", "Impact")
# ---------------------------------------------------------------------------------------------------
@dataclass
class Resting:
    order: Order
    left: int
    window_end: int


@dataclass
class Match:
    incoming: Order
    resting: Order
    ts: int
    qty: int
    price: float
    mid: float


@dataclass
class ReplayResult:
    matches: list[Match]
    rested: dict[int, int]  # order_id -> quantity it rested with (only orders that rested)


def sweep_window_end(o: Order, scen: Scenario, close: int) -> int:
    """D5.5 window of an analysed sweep (inclusive)."""
    if scen.window == "last_fill":
        # D5.5 window last_fill: ends at its last real fill (fill classes only), else at its final event;
        # D5.7: even when that last fill is at the arrival's own nanosecond
        lf = o.last_fill_time
        return lf if lf is not None else o.final_time
    if scen.window == "order_life":
        return o.final_time
    if scen.window == "end_of_day":
        return close
    if isinstance(scen.window, int | float) and not isinstance(scen.window, bool):
        return o.arrival_time + int(round(scen.window * 1e9))  # seconds: N
    raise ValueError(f"unknown window {scen.window!r}")


def _limit_ok(o: Order, price: float, scen: Scenario, ticks: Sequence[tuple[int, int]]) -> bool:
    """D5.5 limit rule: a buy needs L + half ≥ price, a sell L − half ≤ price (half = ½ tick if mid-tick)."""
    limit = o.limit
    if o.analysed and scen.ignore_sweep_limit:
        limit = None  # D5.5: scenario ignore_sweep_limit lifts the analysed sweeps' limits (both roles)
    if limit is None:
        return True  # D5.7: only price > 0 is a limit (≤ 0 = pure mid-peg)
    midtick = o.accepts_midtick or (o.analysed and scen.sweep_midtick)
    half = tick_size(limit, ticks) / 2 if midtick else 0.0
    return limit + half >= price if o.side == 1 else limit - half <= price


def _maq_ok(o: Order, qty: int, has_filled: set[int]) -> bool:
    """D5.7 MAQ: single → every replay fill ≥ MAQ; otherwise only the first replay fill (either role)."""
    if o.maq <= 0:
        return True
    if o.maq_single or o.order_id not in has_filled:
        return qty >= o.maq
    return True


def run_replay(
    orders: Sequence[Order],
    book: QuoteBook,
    open_: int,
    close: int,
    scen: Scenario,
    *,
    reality: bool,
    ticks: Sequence[tuple[int, int]],
) -> ReplayResult:
    """One replay over every CP order in (arrival_time, arrival_sequence, order_id) order."""
    # D5.5 Orders: every CP order by its arrival event, in (timestamp, sequence, order_id) order
    # (the caller sorts them)
    resting: dict[int, list[Resting]] = {1: [], 2: []}  # per side, in time priority (arrival order)
    has_filled: set[int] = set()
    matches: list[Match] = []
    rested: dict[int, int] = {}
    for o in orders:
        t = o.arrival_time
        left = o.arrival_quantity  # D5.5: acts first as incoming, budget = its arrival quantity
        # D5.5 Price: the mid of the prevailing quote strictly before the incoming event; none outside
        # the continuous session [open, close) or without a usable quote → the order matches nothing.
        mid = book.mid_before(t) if open_ <= t < close else None
        if mid is not None and left > 0:
            contra_side = 2 if o.side == 1 else 1
            # D5.7 Candidates: opposite side, arrived before E, quantity left, E.timestamp ≤ window end.
            # (drop exhausted orders and ended windows for good: incoming timestamps never go back)
            queue = [r for r in resting[contra_side] if r.left > 0 and t <= r.window_end]
            resting[contra_side] = queue
            for r in queue:  # D5.7: pure time priority, earliest arrival first, whatever its limit
                if left == 0:
                    break
                if r.left == 0:
                    continue
                # D5.5/D5.7 Impact: mid · (1 + s · impact_bps / 1e4) against the sweep when exactly one
                # side is an analysed sweep (either role); sweep vs sweep and real vs real: the mid
                if o.analysed != r.order.analysed:
                    s = o.sign if o.analysed else r.order.sign
                    price = mid * (1.0 + s * scen.impact_bps / 1e4)
                else:
                    price = mid
                qty = min(left, r.left)
                # D5.5 Matching: skip the candidate (the incoming order goes on) when a limit is violated
                # on either side, checked at the impact-moved price (D5.7) ...
                if not _limit_ok(o, price, scen, ticks) or not _limit_ok(r.order, price, scen, ticks):
                    continue
                # ... or a side's MAQ is not met (D5.7 MAQ: below the MAQ is refused even for a smaller rest)
                if not _maq_ok(o, qty, has_filled) or not _maq_ok(r.order, qty, has_filled):
                    continue
                left -= qty
                r.left -= qty
                has_filled.add(o.order_id)
                has_filled.add(r.order.order_id)
                matches.append(Match(o, r.order, t, qty, price, mid))
        filled_in = o.arrival_quantity - left
        # D5.5 Who rests, with what, until when (one budget: what it filled as incoming is gone as resting)
        qty_rest = 0
        window_end = 0
        if not o.is_sweep:
            # D5.7 Real resting orders: CP without the sweep flag rests iff post-arrival status 1 (not in
            # no_queue), until its final event (inclusive), D5.7 Resting quantity:
            # min(post-arrival leaves, arrival quantity − filled as incoming), no fraction
            if scen.real_queue and o.on_book_after_arrival:
                qty_rest = min(o.residual, o.arrival_quantity - filled_in)
                window_end = o.final_time
        elif o.analysed and not reality and o.on_book_after_arrival:
            # D5.5/D5.7 Resting quantity: an analysed sweep on the book after arrival rests
            # floor(max_fill_fraction · min(cap, budget left)), never in reality; a fill-and-kill or
            # cancelled-at-arrival sweep never rests; other (not analysed) sweeps are incoming only
            cap = o.residual if scen.quantity == "residual" else o.arrival_quantity
            # the fraction as written (0.29 is 29/100, so 100 shares rest 29, not the float product's 28)
            frac = Fraction(repr(float(scen.max_fill_fraction)))
            qty_rest = math.floor(frac * min(cap, o.arrival_quantity - filled_in))
            window_end = sweep_window_end(o, scen, close)
        if qty_rest > 0:
            resting[o.side].append(Resting(o, qty_rest, window_end))
            rested[o.order_id] = qty_rest
    return ReplayResult(matches, rested)


# ---------------------------------------------------------------------------------------------------
# The partition
# ---------------------------------------------------------------------------------------------------
def _dealsource_class(params: Params) -> dict[int, str]:
    out: dict[int, str] = {}
    for cls, codes in params.fill_classes.items():
        for c in codes:
            out[c] = cls
    return out


def _bucket_size(q: int, params: Params) -> str | None:
    for name, edge in params.size_buckets:
        if edge is None or q <= edge:
            return name
    return None


def _bucket_time(ts: int, params: Params) -> str | None:
    local = local_time_of(ts, params.timezone)
    for name, start, end in params.time_buckets:
        if start <= local < end:
            return name
    return None


def _delta(sim: float | int | None, real: float | int | None) -> float | int | None:
    """delta = sim − real (S(c): |δ| < 1e-9 becomes 0.0)."""
    if sim is None or real is None:
        return None
    d = sim - real
    if isinstance(d, float):
        return 0.0 if abs(d) < 1e-9 else d
    return d


def reference_partition(
    orders: pl.DataFrame | pl.LazyFrame,
    trades: pl.DataFrame | pl.LazyFrame,
    nbbo: pl.DataFrame | pl.LazyFrame,
    trading_date: date,
    params: Params,
) -> dict[str, Any]:
    """All per-partition results of the methodology for one security × trading date.

    Returns {"sweeps", "sim_fills": {scenario: df}, "sim_orders": {scenario: df}, "replay_fidelity",
    "quality"} with the columns of docs/results.md. The inputs are taken as the partition's rows (no date
    filter is applied here).
    """
    tz = params.timezone
    horizons = params.horizons_s
    ds_class = _dealsource_class(params)

    # ---- D5.1 select: the Centre Point order events (bitmask), all trades, all quotes ---------------
    event_rows = [r for r in _collect(orders) if (r["exchangeordertype"] or 0) & params.centre_point_mask]
    trade_rows = _collect(trades)
    quote_rows = _collect(nbbo)

    # every trade row gets a fill class; an unknown code is an input error naming it (D2.2)
    for tr in trade_rows:
        if tr["dealsource"] not in ds_class:
            raise InputError(
                f"unknown dealsource {tr['dealsource']} in the trades (not in codes.fill_classes "
                f"{params.fill_classes})"
            )
    trade_rows.sort(key=lambda r: (r["timestamp"], r["sequence"] or 0, r["row_num"] or 0))

    # ---- D3.1 session [open, close) -----------------------------------------------------------------
    cfg_open = local_instant(trading_date, params.open, tz)
    close = local_instant(trading_date, params.close, tz)
    auction_prints = [
        tr["timestamp"]
        for tr in trade_rows
        if ds_class[tr["dealsource"]] == "auction" and cfg_open <= tr["timestamp"] < close
    ]
    if auction_prints:
        open_, open_source = min(auction_prints), "auction"  # the opening auction print is the true start
    else:
        open_, open_source = cfg_open, "config"

    # ---- D5.2 lifecycle: group events per order, in (timestamp, sequence, row_num) order --------------
    by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in event_rows:
        by_order[r["order_id"]].append(r)
    all_orders: list[Order] = []
    for oid, evs in by_order.items():
        evs.sort(
            key=lambda e: (e["timestamp"], e["sequence"], e["row_num"] if e["row_num"] is not None else 0)
        )
        all_orders.append(Order(oid, evs))
    for o in all_orders:
        o.is_sweep = bool(o.arrival["exchangeordertype"] & params.sweep_mask)
        # analysed sweep: arrives within the continuous session [open, close)
        o.analysed = o.is_sweep and open_ <= o.arrival_time < close
    by_id = {o.order_id: o for o in all_orders}

    # trades per order: fills (lit, dark, auction, reported) and booking reports apart (D2.2)
    for tr in trade_rows:
        owner = by_id.get(tr["order_id"])
        if owner is None:
            continue
        cls = ds_class[tr["dealsource"]]
        owner.trade_classes.append(cls)
        if cls == "booking":
            owner.booking_quantity += tr["quantity"]
        else:
            owner.fills.append(Fill(tr["timestamp"], float(tr["tradeprice"]), tr["quantity"], cls))

    # ---- quotes: the feed, else the CP order-event snapshots, else none (D3.1, D5.7) ---------------
    if quote_rows:
        nbbo_source = "feed"
        raw_quotes = [(q["timestamp"], q["sequence"], q["bid"], q["offer"]) for q in quote_rows]
    elif event_rows:
        nbbo_source = "snapshot"
        raw_quotes = [
            (e["timestamp"], e["sequence"], e["national_bid"], e["national_offer"]) for e in event_rows
        ]
    else:
        nbbo_source = "none"
        raw_quotes = []
    counts = {"stale": 0, "empty": 0, "crossed": 0, "locked": 0, "usable": 0}
    best: dict[int, tuple[int, int, Quote]] = {}  # ts -> (sequence, row position, quote)
    for pos, (ts, seq, bid, offer) in enumerate(raw_quotes):
        kind = classify_quote(ts, bid, offer, open_, close)
        counts[kind] += 1
        if kind != "usable":
            continue  # usable quotes are filtered first, then the highest sequence within a ns stands
        key = (seq if seq is not None else -(2**63), pos)  # ties: the later row
        if ts not in best or key >= best[ts][:2]:
            best[ts] = (key[0], key[1], Quote(ts, bid, offer))
    book = QuoteBook([best[t][2] for t in sorted(best)], close, params.max_quote_age_s)

    # ---- the replays (D5.5): every CP order by its arrival event ------------------------------------
    replay_orders = sorted(all_orders, key=lambda o: (o.arrival_time, o.arrival["sequence"], o.order_id))
    reality = run_replay(replay_orders, book, open_, close, Scenario(), reality=True, ticks=params.tick_table)
    runs = {
        name: run_replay(replay_orders, book, open_, close, scen, reality=False, ticks=params.tick_table)
        for name, scen in params.scenarios.items()
    }

    # ---- sweeps (D5.2–5.4): analysed sweeps, reported subject to the participant filter --------------
    def reported(o: Order) -> bool:
        return not params.participants or o.arrival["participantid"] in params.participants

    analysed = sorted(
        (o for o in all_orders if o.analysed and reported(o)),
        key=lambda o: (o.arrival_time, o.arrival["sequence"], o.order_id),
    )
    sweep_rows: list[dict[str, Any]] = []
    real_metrics: dict[int, dict[str, Any]] = {}
    arrival_quotes: dict[int, Quote | None] = {}
    for o in analysed:
        a, post, fin = o.arrival, o.post_arrival, o.final
        q_total = o.order_quantity
        filled = o.filled
        aq = book.before(o.arrival_time)  # arrival NBBO: prevailing quote strictly before the arrival
        arrival_quotes[o.order_id] = aq
        # m_end: before the final event, or before close when still working (final ≥ close or on book)
        if fin["timestamp"] >= close or fin["orderstatus"] == 1:
            end_mid = book.mid_before(close)
        else:
            end_mid = book.mid_before(fin["timestamp"])
        m = fill_metrics(
            o.fills,
            sign=o.sign,
            order_quantity=q_total,
            arrival_time=o.arrival_time,
            arrival_quote=aq,
            end_mid=end_mid,
            book=book,
            horizons=horizons,
        )
        real_metrics[o.order_id] = m
        matched = fin["totalmatchedquantity"] or 0
        # D5.3 fill group from the final event's own matched and quantity
        group = "none" if matched == 0 else "full" if matched >= fin["quantity"] else "partial"
        has_new = any(e["changereason"] == 6 for e in o.events)
        # qualifying: final reason 3 with leaves 0, a new (6) event, ≥ 1 trade row, every row lit
        qualifying = (
            fin["changereason"] == 3
            and fin["leavesquantity"] == 0
            and has_new
            and len(o.trade_classes) > 0
            and all(c == "lit" for c in o.trade_classes)
        )
        mid = None if aq is None else aq.mid
        row: dict[str, Any] = {
            "order_id": o.order_id,
            "side": o.side,
            "participantid": a["participantid"],
            "exchangeordertype": a["exchangeordertype"],
            "arrival_time": o.arrival_time,
            "arrival_sequence": a["sequence"],
            "arrival_quantity": o.arrival_quantity,
            "order_quantity": q_total,
            "limit_price": a["price"],
            "midtick": a["midtick"],
            "maq": o.maq,
            "maq_single": o.maq_single,
            "timevalidity": a["timevalidity"],
            "residual_after_arrival": post["leavesquantity"],
            "rests": post["orderstatus"] == 1,
            "final_time": fin["timestamp"],
            "final_changereason": fin["changereason"],
            "final_status": fin["orderstatus"],
            "final_leaves": fin["leavesquantity"],
            "matched_quantity": fin["totalmatchedquantity"],
            "has_new_event": has_new,
            "group": group,
            "qualifying": qualifying,
            "filled_quantity": filled,
            "filled_lit": sum(f.qty for f in o.fills if f.cls == "lit"),
            "filled_dark": sum(f.qty for f in o.fills if f.cls == "dark"),
            "filled_auction": sum(f.qty for f in o.fills if f.cls == "auction"),
            "filled_reported": sum(f.qty for f in o.fills if f.cls == "reported"),
            "booking_quantity": o.booking_quantity,
            "unfilled_quantity": q_total - filled,
            "n_fills": len(o.fills),
            "arrival_bid": None if aq is None else aq.bid,
            "arrival_offer": None if aq is None else aq.offer,
            "arrival_mid": mid,
            "arrival_spread_bps": None if aq is None else clean((aq.offer - aq.bid) / aq.mid * 1e4),
            "arrival_quote_age_s": None if aq is None else clean((o.arrival_time - aq.ts) / 1e9),
            "nbbo_source": nbbo_source if mid is not None else "none",
            "end_mid": end_mid,
            "size_bucket": _bucket_size(q_total, params),
            "time_bucket": _bucket_time(o.arrival_time, params),
        }
        row.update(m)
        sweep_rows.append(row)
    sweeps_df = _frame(sweep_rows, sweeps_columns(horizons))

    # ---- per scenario: sim_fills, sim_orders (D5.5 output, D5.6 compare) -------------------------------
    reported_ids = {o.order_id for o in analysed}
    sim_fills_out: dict[str, pl.DataFrame] = {}
    sim_orders_out: dict[str, pl.DataFrame] = {}
    for name, scen in params.scenarios.items():
        run = runs[name]
        fill_rows: list[dict[str, Any]] = []
        replay_fills: dict[int, list[tuple[str, Fill]]] = defaultdict(list)
        for mt in run.matches:
            # D5.5 Output: one row per match per analysed sweep involved; role = that sweep's role
            for sweep, contra, role in (
                (mt.incoming, mt.resting, "incoming"),
                (mt.resting, mt.incoming, "resting"),
            ):
                if not sweep.analysed:
                    continue
                replay_fills[sweep.order_id].append((role, Fill(mt.ts, mt.price, mt.qty, "dark")))
                if sweep.order_id in reported_ids:
                    fill_rows.append(
                        {
                            "sweep_order_id": sweep.order_id,
                            "contra_order_id": contra.order_id,
                            "role": role,
                            "contra_is_sweep": contra.analysed,
                            "timestamp": mt.ts,
                            "quantity": mt.qty,
                            "price": clean(mt.price),
                            "mid": clean(mt.mid),
                        }
                    )
        fill_rows.sort(key=lambda r: (r["timestamp"], r["sweep_order_id"], r["contra_order_id"], r["role"]))
        sim_fills_out[name] = _frame(fill_rows, SIM_FILLS_COLUMNS)

        order_rows: list[dict[str, Any]] = []
        for o in sorted(analysed, key=lambda o: o.order_id):
            real = real_metrics[o.order_id]
            # D5.7 Simulated path: its real lit/auction/reported fills at its arrival timestamp (their real
            # prices and classes) + its replay fills in both roles (class dark); unfilled max(Q − sim, 0)
            # marked at the prevailing mid before min(window end, close) (D5.6)
            at_arrival = [f for f in o.fills if f.cls != "dark" and f.ts == o.arrival_time]
            mine = replay_fills.get(o.order_id, [])
            path = at_arrival + [f for _, f in mine]
            window_end = sweep_window_end(o, scen, close)  # also for sweeps that did not rest
            sim_end_mid = book.mid_before(min(window_end, close))
            sm = fill_metrics(
                path,
                sign=o.sign,
                order_quantity=o.order_quantity,
                arrival_time=o.arrival_time,
                arrival_quote=arrival_quotes[o.order_id],
                end_mid=sim_end_mid,
                book=book,
                horizons=horizons,
            )
            sim_filled = sm["filled_quantity"]
            real_filled = real["filled_quantity"]
            row = {
                "order_id": o.order_id,
                "sim_quantity": run.rested.get(o.order_id, 0),
                "sim_window_end": window_end,
                "sim_filled_quantity": sim_filled,
                "sim_filled_resting": sum(f.qty for role, f in mine if role == "resting"),
                "sim_filled_incoming": sum(f.qty for role, f in mine if role == "incoming"),
                "sim_n_fills": sm["n_fills"],
                "sim_fill_ratio": sm["fill_ratio"],
                "sim_vwap": sm["vwap"],
                "sim_first_fill_time": sm["first_fill_time"],
                "sim_last_fill_time": sm["last_fill_time"],
                "sim_end_mid": sim_end_mid,
            }
            for col, _ in _metric_columns(horizons):
                row[f"sim_{col}"] = sm[col]
            row["set"] = (
                "both"
                if real_filled > 0 and sim_filled > 0
                else "real_only"
                if real_filled > 0
                else "sim_only"
                if sim_filled > 0
                else "neither"
            )
            for col, _ in DELTA_COLUMNS:
                base = col.removeprefix("delta_")
                row[col] = _delta(sm[base], real[base])
            order_rows.append(row)
        sim_orders_out[name] = _frame(order_rows, sim_orders_columns(horizons))

    return {
        "sweeps": sweeps_df,
        "sim_fills": sim_fills_out,
        "sim_orders": sim_orders_out,
        "replay_fidelity": _fidelity(trade_rows, by_id, reality, params),
        "quality": _quality(
            all_orders,
            book,
            counts,
            len(raw_quotes),
            open_,
            close,
            open_source,
            nbbo_source,
            trade_rows,
            ds_class,
        ),
    }


def _fidelity(
    trade_rows: Iterable[dict[str, Any]], by_id: dict[int, Order], reality: ReplayResult, params: Params
) -> pl.DataFrame:
    """D5.5 / D5.7 "Fidelity" of the reality replay against the real dealsource-47 executions."""
    # S(c)/D5.7 Fidelity: executions = trade rows grouped by matchgroupid; quantity = the buy row's quantity;
    # a real pair has ≥ 1 dealsource-47 execution with both orders among the partition's CP orders
    # an execution's quantity is its largest row's (the two rows of one execution agree in real data)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for k, tr in enumerate(trade_rows):
        groups[tr["matchgroupid"] if tr["matchgroupid"] is not None else ("row", k)].append(tr)
    preferencing = booking = 0
    real_pairs: dict[tuple[int, int], int] = defaultdict(int)
    real_qty = real_execs = 0
    for rows in groups.values():
        qty = max(r["quantity"] for r in rows)
        if rows[0]["dealsource"] == params.preferencing_dealsource:
            preferencing += qty
        if rows[0]["dealsource"] == params.cp_booking_dealsource:
            booking += qty
        cp = [r for r in rows if r["dealsource"] == params.centre_point_dealsource]
        buys = [r for r in cp if r["side"] == 1]
        sells = [r for r in cp if r["side"] == 2]
        if not buys or not sells:
            continue
        b, s = buys[0], sells[0]
        if b["order_id"] not in by_id or s["order_id"] not in by_id:
            continue  # both orders must be among the partition's CP orders
        real_execs += 1
        real_qty += qty
        real_pairs[(b["order_id"], s["order_id"])] += qty
    replayed: dict[tuple[int, int], int] = defaultdict(int)
    for mt in reality.matches:
        buy, sell = (mt.incoming, mt.resting) if mt.incoming.side == 1 else (mt.resting, mt.incoming)
        replayed[(buy.order_id, sell.order_id)] += mt.qty  # either role; reproduced is capped per pair below
    reproduced = {pair: min(replayed.get(pair, 0), q) for pair, q in real_pairs.items()}
    row = {
        "real_cp_quantity": real_qty,
        "real_cp_executions": real_execs,
        "replayed_quantity": sum(mt.qty for mt in reality.matches),
        "replayed_matches": len(reality.matches),
        "reproduced_quantity": sum(reproduced.values()),
        "real_pairs": len(real_pairs),
        "reproduced_pairs": sum(1 for v in reproduced.values() if v > 0),
        "fidelity": sum(reproduced.values()) / real_qty if real_qty > 0 else None,
        "preferencing_quantity": preferencing,
        "cp_booking_quantity": booking,
    }
    return _frame([row], FIDELITY_COLUMNS)


def _quality(
    all_orders: Sequence[Order],
    book: QuoteBook,
    counts: dict[str, int],
    n_quotes: int,
    open_: int,
    close: int,
    open_source: str,
    nbbo_source: str,
    trade_rows: Iterable[dict[str, Any]],
    ds_class: dict[int, str],
) -> pl.DataFrame:
    """One row: session used, quote classes, sweep counts, arrival quote age, quantity per fill class.

    Partition data quality, so over every sweep whatever the participant filter reports."""
    sweeps = [o for o in all_orders if o.is_sweep]
    analysed = [o for o in sweeps if o.analysed]
    arrival = [book.before(o.arrival_time) for o in analysed]
    ages = [(o.arrival_time - q.ts) / NS for o, q in zip(analysed, arrival, strict=True) if q is not None]
    # executions: rows grouped by matchgroupid (a row without one is its own); quantity = the largest row's
    executions: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for k, tr in enumerate(trade_rows):
        executions[tr["matchgroupid"] if tr["matchgroupid"] is not None else ("row", k)].append(tr)
    per_class: dict[str, int] = defaultdict(int)
    for rows in executions.values():
        per_class[ds_class[rows[0]["dealsource"]]] += max(r["quantity"] for r in rows)
    row = {
        "open": open_,
        "close": close,
        "open_source": open_source,
        "nbbo_source": nbbo_source,
        "n_quotes": n_quotes,
        "n_usable_quotes": counts["usable"],
        "n_stale_quotes": counts["stale"],
        "n_empty_quotes": counts["empty"],
        "n_crossed_quotes": counts["crossed"],
        "n_locked_quotes": counts["locked"],
        "n_sweeps": len(sweeps),
        "n_sweeps_analysed": len(analysed),
        "n_sweeps_outside_session": len(sweeps) - len(analysed),
        "n_sweeps_without_mid": sum(1 for q in arrival if q is None),
        "arrival_quote_age_median_s": percentile_linear(ages, 0.5),
        "arrival_quote_age_p95_s": percentile_linear(ages, 0.95),
        **{f"quantity_{c}": per_class.get(c, 0) for c in (*FILL_CLASSES, "booking")},
    }
    return _frame([row], QUALITY_COLUMNS)

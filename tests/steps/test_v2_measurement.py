"""Measurement, hand-worked (docs/methodology.md): session and usable quotes (§1, §3), lifecycle (§5), metrics (§6),
the quality row.

Every partition is a few hand-written rows on 2024-09-05 (AEST, UTC+10); every expected value is worked out
next to its assert. Prices are thousandths of a dollar; the usual quote 3350/3360 has mid 3355, so a
5-thousandth move is 5 / 3355 * 1e4 = 14.9031... bps. The behaviour tested is
`dpsim.partition.compute_partition` as fixed by the v2 spec; these tests do not look at how it is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl
import pytest

from dpsim.errors import InputError
from dpsim.partition import compute_partition

DAY = date(2024, 9, 5)
HORIZONS = (1, 5, 60, 300)
SWEEP, CP, BLOCK = 2048, 64, 4096  # exchangeordertype flags
LIT, AUCTION, REPORTED, CP_PREF, CP_DARK = 1, 20, 5, 46, 47  # dealsource codes
LIT_UCP, AUCTION_UCP, CP_UCP = 44, 45, 48  # booking reports
LONG_MIN = -(2**63)  # an empty quote side in the export
BPS = 1e4


# ---- building blocks (rows as dicts; conftest fills in the other columns) ---------------------------------
def ev(oid: int, ts: int, **cols: Any) -> dict[str, Any]:
    """One order event. Defaults (conftest): a buy sweep (2048), qty 100, leaves 100, new (6), on book (1)."""
    return {"order_id": oid, "timestamp": ts, **cols}


def resting(
    oid: int, t: int, t_cancel: int | None = None, qty: int = 100, **cols: Any
) -> list[dict[str, Any]]:
    """Arrives and rests unfilled (post-arrival orderstatus 1); cancelled at t_cancel (None: still on)."""
    rows = [ev(oid, t, quantity=qty, leavesquantity=qty, orderstatus=1, **cols)]
    if t_cancel is not None:
        rows.append(
            ev(oid, t_cancel, changereason=1, orderstatus=2, quantity=qty, leavesquantity=qty, **cols)
        )
    return rows


def traded_out(oid: int, t: int, qty: int = 100, **cols: Any) -> list[dict[str, Any]]:
    """Arrives and trades its whole quantity in the same nanosecond (new, then traded: leaves 0)."""
    return [
        ev(oid, t, quantity=qty, leavesquantity=qty, orderstatus=2, **cols),
        ev(
            oid,
            t,
            changereason=3,
            orderstatus=2,
            quantity=qty,
            leavesquantity=0,
            totalmatchedquantity=qty,
            **cols,
        ),
    ]


def tr(oid: int, ts: int, price: int, qty: int, dealsource: int = LIT, **cols: Any) -> dict[str, Any]:
    """One trade row of order `oid` (side 1 unless given)."""
    return {
        "order_id": oid,
        "timestamp": ts,
        "tradeprice": price,
        "quantity": qty,
        "dealsource": dealsource,
        **cols,
    }


def quote(ts: int, bid: int | None, offer: int | None, **cols: Any) -> dict[str, Any]:
    return {"timestamp": ts, "bid": bid, "offer": offer, **cols}


def by_id(df: pl.DataFrame, key: str = "order_id") -> dict[int, dict[str, Any]]:
    return {r[key]: r for r in df.iter_rows(named=True)}


def is_positive_zero(x: float) -> bool:
    return x == 0.0 and math.copysign(1.0, x) == 1.0


@pytest.fixture
def run(make_events, make_trades, make_quotes, cfg) -> Callable[..., Any]:
    """compute_partition over hand-written rows. Rows are put in time order (stable) first, so the default
    `sequence` (the row position) is global and monotone like the exchange's; each trade row without a
    matchgroupid gets its own."""

    def _run(events, trades=(), quotes=(), config=None, scenarios=("baseline",)):
        def timed(rows):
            return sorted(rows, key=lambda r: r["timestamp"])

        trade_rows = [{"matchgroupid": 1000 + i, **r} for i, r in enumerate(timed(trades))]
        return compute_partition(
            make_events(timed(events)),
            make_trades(trade_rows),
            make_quotes(timed(quotes)),
            config if config is not None else cfg(),
            DAY,
            scenarios=list(scenarios),
        )

    return _run


# ---- output shape ---------------------------------------------------------------------------------------
SWEEP_COLUMNS = [
    *[
        "order_id",
        "side",
        "participantid",
        "exchangeordertype",
        "arrival_time",
        "arrival_sequence",
        "arrival_quantity",
    ],
    *[
        "order_quantity",
        "limit_price",
        "midtick",
        "maq",
        "maq_single",
        "timevalidity",
        "residual_after_arrival",
        "rests",
    ],
    *[
        "final_time",
        "final_changereason",
        "final_status",
        "final_leaves",
        "matched_quantity",
        "has_new_event",
        "group",
    ],
    *[
        "qualifying",
        "filled_quantity",
        "filled_lit",
        "filled_dark",
        "filled_auction",
        "filled_reported",
        "booking_quantity",
    ],
    *[
        "unfilled_quantity",
        "n_fills",
        "vwap",
        "first_fill_time",
        "last_fill_time",
        "arrival_bid",
        "arrival_offer",
    ],
    *[
        "arrival_mid",
        "arrival_spread_bps",
        "arrival_quote_age_s",
        "nbbo_source",
        "end_mid",
        "fill_ratio",
        "arrival_cost_bps",
    ],
    *["opportunity_cost_bps", "implementation_shortfall_bps", "effective_spread_bps"],
    *[f"realized_spread_{h}s_bps" for h in HORIZONS],
    *[f"price_impact_{h}s_bps" for h in HORIZONS],
    *["price_improvement_bps", "time_to_first_fill_s", "execution_duration_s", "vw_exec_time_s"],
    *["size_bucket", "time_bucket"],
]
SIM_FILL_COLUMNS = [
    "sweep_order_id",
    "contra_order_id",
    "role",
    "contra_is_sweep",
    "timestamp",
    "quantity",
    "price",
    "mid",
]
SIM_ORDER_COLUMNS = [
    *[
        "order_id",
        "sim_quantity",
        "sim_window_end",
        "sim_filled_quantity",
        "sim_filled_resting",
        "sim_filled_incoming",
    ],
    *[
        "sim_n_fills",
        "sim_fill_ratio",
        "sim_vwap",
        "sim_first_fill_time",
        "sim_last_fill_time",
        "sim_end_mid",
    ],
    *["sim_arrival_cost_bps", "sim_opportunity_cost_bps", "sim_implementation_shortfall_bps"],
    "sim_effective_spread_bps",
    *[f"sim_realized_spread_{h}s_bps" for h in HORIZONS],
    *[f"sim_price_impact_{h}s_bps" for h in HORIZONS],
    *[
        "sim_price_improvement_bps",
        "sim_time_to_first_fill_s",
        "sim_execution_duration_s",
        "sim_vw_exec_time_s",
        "set",
    ],
    *["delta_implementation_shortfall_bps", "delta_arrival_cost_bps", "delta_opportunity_cost_bps"],
    *["delta_effective_spread_bps", "delta_filled_quantity", "delta_fill_ratio", "delta_vw_exec_time_s"],
    "delta_time_to_first_fill_s",
]
FIDELITY_COLUMNS = [
    *[
        "real_cp_quantity",
        "real_cp_executions",
        "replayed_quantity",
        "replayed_matches",
        "reproduced_quantity",
    ],
    *["real_pairs", "reproduced_pairs", "fidelity", "preferencing_quantity", "cp_booking_quantity"],
]
QUALITY_COLUMNS = [
    *[
        "open",
        "close",
        "open_source",
        "nbbo_source",
        "n_quotes",
        "n_usable_quotes",
        "n_stale_quotes",
        "n_empty_quotes",
    ],
    *["n_crossed_quotes", "n_locked_quotes", "n_sweeps", "n_sweeps_analysed", "n_sweeps_outside_session"],
    *["n_sweeps_without_mid", "arrival_quote_age_median_s", "arrival_quote_age_p95_s", "quantity_lit"],
    *["quantity_dark", "quantity_auction", "quantity_reported", "quantity_booking"],
]


def test_output_tables_have_the_spec_columns(run, at) -> None:
    """spec (b): every listed name, spelled exactly (docs/results.md: more columns are welcome; order not fixed);
    a row per analysed sweep; one fidelity row and one quality row."""
    res = run(
        traded_out(1, at("10:30:00")),
        trades=[tr(1, at("10:30:00"), 3360, 100)],
        quotes=[quote(at("10:29:00"), 3350, 3360)],
    )
    tables = {
        "sweeps": (res.sweeps, SWEEP_COLUMNS),
        "sim_fills": (res.sim_fills["baseline"], SIM_FILL_COLUMNS),
        "sim_orders": (res.sim_orders["baseline"], SIM_ORDER_COLUMNS),
        "replay_fidelity": (res.replay_fidelity, FIDELITY_COLUMNS),
        "quality": (res.quality, QUALITY_COLUMNS),
    }
    for name, (df, columns) in tables.items():
        assert [c for c in columns if c not in df.columns] == [], name
    assert (res.sweeps.height, res.sim_orders["baseline"].height) == (1, 1)
    assert (res.replay_fidelity.height, res.quality.height) == (1, 1)
    s = res.sweeps.schema
    for c in (
        "order_id",
        "arrival_time",
        "order_quantity",
        "limit_price",
        "filled_quantity",
        "booking_quantity",
    ):
        assert s[c] == pl.Int64, c
    for c in (
        "arrival_mid",
        "arrival_cost_bps",
        "implementation_shortfall_bps",
        "vw_exec_time_s",
        "fill_ratio",
    ):
        assert s[c] == pl.Float64, c
    for c in ("maq_single", "rests", "has_new_event", "qualifying"):
        assert s[c] == pl.Boolean, c
    for c in ("group", "nbbo_source", "size_bucket", "time_bucket"):
        assert s[c] == pl.String, c


# ---- §1, §3 session and usable quotes ---------------------------------------------------------------------
def test_quote_at_the_events_own_nanosecond_is_not_its_benchmark(run, at) -> None:
    """A quote stamped at the arrival nanosecond is the sweep's consequence: the earlier quote benchmarks it
    (arrival and the fill's m_t alike)."""
    t = at("10:30:00")
    res = run(
        traded_out(1, t),
        trades=[tr(1, t, 3360, 100)],
        quotes=[
            quote(at("10:29:55"), 3350, 3360),  # mid 3355: the benchmark
            quote(t, 3340, 3360),  # mid 3350, stamped with the sweep's own nanosecond: not before it
        ],
    )
    s = by_id(res.sweeps)[1]
    assert (s["arrival_bid"], s["arrival_offer"], s["arrival_mid"]) == (3350, 3360, 3355.0)
    assert s["arrival_quote_age_s"] == pytest.approx(5.0, rel=1e-12)  # 10:30:00 - 10:29:55
    assert s["nbbo_source"] == "feed"
    # spread (3360 - 3350) / 3355 * 1e4
    assert s["arrival_spread_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)
    # bought at 3360 against 3355: +1 * (3360 - 3355) / 3355 * 1e4 = 14.903...
    assert s["arrival_cost_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    # m_t of the fill (at 10:30:00) is 3355 too: 100 * 2 * (3360 - 3355) / 3355 * 1e4 / 100
    assert s["effective_spread_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)


def test_last_usable_quote_by_sequence_stands_for_its_nanosecond(run, at) -> None:
    """Usable quotes are filtered first, then the highest sequence in a nanosecond stands (not row order)."""
    tq = at("10:29:55")
    res = run(
        resting(1, at("10:30:00")),
        quotes=[
            quote(tq, 3350, 3360, sequence=2),  # mid 3355: highest usable sequence -> stands
            quote(tq, 3340, 3360, sequence=1),  # mid 3350, listed later but an earlier sequence
            quote(tq, 3360, 3360, sequence=3),  # locked: highest sequence, but unusable
        ],
    )
    s = by_id(res.sweeps)[1]
    assert (s["arrival_bid"], s["arrival_offer"], s["arrival_mid"]) == (3350, 3360, 3355.0)


def test_sweep_arriving_outside_the_session_is_not_analysed(run, at) -> None:
    """Analysed = sweep flag (bit test) and open <= arrival < close; pre-open and 16:00:00 sweeps are not."""
    res = run(
        [
            *resting(1, at("09:59:59")),  # pre-open
            *resting(2, at("10:15:00")),
            *resting(3, at("16:00:00")),  # at close: [open, close) excludes it
            *resting(4, at("15:59:59", 999_999_999), exchangeordertype=SWEEP | 2),  # 2050: sweep + short sell
            *resting(5, at("10:20:00"), exchangeordertype=BLOCK | 2),  # 4098: CP block + short sell, no sweep
        ],
        quotes=[quote(at("10:00:00"), 3350, 3360)],
    )
    assert res.sweeps["order_id"].to_list() == [2, 4]
    q = res.quality.row(0, named=True)
    # sweeps 1, 2, 3, 4 (order 5 is not a sweep); analysed 2 and 4; outside 1 and 3
    assert (q["n_sweeps"], q["n_sweeps_analysed"], q["n_sweeps_outside_session"]) == (4, 2, 2)


def test_stale_overnight_quote_never_benchmarks_a_sweep_at_the_open_nanosecond(run, at, local_ns) -> None:
    """No usable quote strictly before 10:00:00.000000000: arrival_mid null, nbbo_source none, costs null."""
    t = at("10:00:00")
    res = run(
        traded_out(1, t),
        trades=[tr(1, t, 3360, 100)],
        quotes=[
            quote(local_ns("2024-09-04 19:30:00"), 3350, 3360),  # previous evening: trading date 09-05, stale
            quote(at("09:59:30"), 3340, 3350),  # pre-open: stale
            quote(t, 3350, 3360),  # usable, but at the sweep's own nanosecond
        ],
    )
    s = by_id(res.sweeps)[1]
    assert s["filled_quantity"] == 100
    assert (s["arrival_bid"], s["arrival_offer"], s["arrival_mid"]) == (None, None, None)
    assert s["arrival_quote_age_s"] is None
    assert s["nbbo_source"] == "none"
    assert s["arrival_cost_bps"] is None
    assert s["implementation_shortfall_bps"] is None  # null when m_arr is null
    assert s["effective_spread_bps"] is None  # the one fill has no m_t either
    assert s["price_improvement_bps"] is None
    q = res.quality.row(0, named=True)
    assert (q["n_quotes"], q["n_stale_quotes"], q["n_usable_quotes"]) == (3, 2, 1)
    assert q["n_sweeps_without_mid"] == 1


def test_session_opens_at_the_first_auction_print_at_or_after_ten(run, at) -> None:
    """open = first auction-class trade in [10:00, 16:00): the 10:02:30 print; booking and lit rows, and a
    09:59 auction print, do not set it."""
    res = run(
        [
            *resting(1, at("10:02:00")),  # before the open: not analysed
            *resting(
                2, at("10:02:30")
            ),  # at the open nanosecond: analysed, no quote strictly before in session
            *resting(3, at("10:03:00")),
        ],
        trades=[
            tr(900, at("09:59:00"), 3355, 500, AUCTION),  # before time.open
            tr(901, at("10:01:00"), 3355, 50, AUCTION_UCP),  # booking class, never the open
            tr(902, at("10:01:30"), 3360, 10, LIT),
            tr(903, at("10:02:30"), 3355, 800, AUCTION),  # the opening print
        ],
        quotes=[
            quote(at("10:01:00"), 3350, 3360),  # before the open: stale
            quote(at("10:02:40"), 3340, 3360),  # mid 3350
        ],
    )
    q = res.quality.row(0, named=True)
    assert (q["open"], q["close"], q["open_source"]) == (at("10:02:30"), at("16:00:00"), "auction")
    assert (q["n_stale_quotes"], q["n_usable_quotes"]) == (1, 1)
    assert q["n_sweeps_outside_session"] == 1
    sweeps = by_id(res.sweeps)
    assert sorted(sweeps) == [2, 3]
    assert sweeps[2]["arrival_mid"] is None  # the 10:01:00 quote is stale
    assert sweeps[3]["arrival_mid"] == 3350.0
    assert sweeps[3]["arrival_quote_age_s"] == pytest.approx(20.0, rel=1e-12)  # 10:03:00 - 10:02:40


def test_session_opens_at_time_open_without_an_auction_print(run, at, cfg) -> None:
    """No auction print in [time.open, close) (the closing auction at 16:10 never sets the open): open =
    time.open, open_source 'config'; time.open is configurable."""
    events = [
        *resting(1, at("09:59:59", 999_999_999)),
        *resting(2, at("10:00:00")),
        *resting(3, at("10:05:00")),
    ]
    trades = [tr(900, at("16:10:00"), 3355, 1000, AUCTION)]
    quotes = [quote(at("09:59:00"), 3350, 3360)]
    res = run(events, trades=trades, quotes=quotes)
    q = res.quality.row(0, named=True)
    assert (q["open"], q["close"], q["open_source"]) == (at("10:00:00"), at("16:00:00"), "config")
    assert res.sweeps["order_id"].to_list() == [2, 3]

    later = run(events, trades=trades, quotes=quotes, config=cfg({"time.open": "10:05"}))
    q = later.quality.row(0, named=True)
    assert (q["open"], q["open_source"]) == (at("10:05:00"), "config")
    assert later.sweeps["order_id"].to_list() == [3]


def test_unusable_later_quotes_do_not_hide_an_earlier_usable_one(run, at) -> None:
    """Locked, crossed and empty quotes after the usable 10:30:00 quote are skipped, not taken as 'none'."""
    res = run(
        resting(1, at("10:30:05")),
        quotes=[
            quote(at("10:30:00"), 3350, 3360),  # usable, mid 3355
            quote(at("10:30:02"), 3360, 3360),  # locked
            quote(at("10:30:03"), 3365, 3360),  # crossed
            quote(at("10:30:04"), LONG_MIN, 3360),  # empty bid
            quote(at("10:30:04", 500_000_000), 3350, None),  # empty offer
        ],
    )
    s = by_id(res.sweeps)[1]
    assert s["arrival_mid"] == 3355.0
    assert s["arrival_quote_age_s"] == pytest.approx(5.0, rel=1e-12)  # 10:30:05 - 10:30:00
    q = res.quality.row(0, named=True)
    assert (q["n_usable_quotes"], q["n_locked_quotes"], q["n_crossed_quotes"], q["n_empty_quotes"]) == (
        1,
        1,
        1,
        2,
    )


def test_max_quote_age_makes_an_old_quote_count_as_none(run, at, cfg) -> None:
    """time.max_quote_age_s = 30: a quote exactly 30 s old still counts, 30 s + 1 ns does not; it bounds m_end
    too (a null m_end with unfilled quantity makes the IS null)."""
    events = [
        *resting(1, at("10:30:30"), at("10:31:00")),
        *resting(2, at("10:30:30", 1), at("10:31:00")),
    ]
    quotes = [quote(at("10:30:00"), 3350, 3360)]

    res = run(events, quotes=quotes, config=cfg({"time.max_quote_age_s": 30}))
    s = by_id(res.sweeps)
    assert s[1]["arrival_mid"] == 3355.0  # 30e9 ns old: not more than 30 s
    assert s[1]["arrival_quote_age_s"] == pytest.approx(30.0, rel=1e-12)
    assert s[1]["end_mid"] is None  # prevailing before 10:31:00 is 60 s old
    assert s[1]["implementation_shortfall_bps"] is None  # 100 unfilled, no m_end
    assert s[2]["arrival_mid"] is None  # 30 s + 1 ns old
    assert s[2]["nbbo_source"] == "none"
    assert res.quality.row(0, named=True)["n_sweeps_without_mid"] == 1

    off = by_id(run(events, quotes=quotes).sweeps)  # default: no age limit
    assert off[2]["arrival_mid"] == 3355.0
    assert off[2]["arrival_quote_age_s"] == pytest.approx(30.000000001, rel=1e-12)
    assert off[1]["end_mid"] == 3355.0
    # nothing filled, m_end = m_arr: OC = (3355 - 3355) / 3355 * 1e4 = 0, IS = OC
    assert off[1]["implementation_shortfall_bps"] == 0.0


# ---- §5 lifecycle and classification ----------------------------------------------------------------
def test_ucp_booking_row_is_not_a_fill_and_disqualifies(run, at) -> None:
    """Booking reports (44/48) count in booking_quantity, not as fills; qualifying needs every trade lit."""
    t1, t2, t3 = at("10:30:00"), at("10:31:00"), at("10:32:00")
    res = run(
        [*traded_out(1, t1), *traded_out(2, t2), *traded_out(3, t3)],
        trades=[
            tr(1, t1, 3360, 60, LIT),
            tr(1, t1, 3355, 40, CP_UCP),
            tr(2, t2, 3360, 100, LIT),
            tr(3, t3, 3360, 70, LIT),
            tr(3, t3, 3360, 30, LIT_UCP),
        ],
        quotes=[quote(at("10:29:00"), 3350, 3360)],
    )
    s = by_id(res.sweeps)
    one = s[1]
    assert (one["filled_quantity"], one["filled_lit"], one["filled_dark"], one["n_fills"]) == (60, 60, 0, 1)
    assert (one["booking_quantity"], one["order_quantity"], one["unfilled_quantity"]) == (40, 100, 40)
    assert one["fill_ratio"] == pytest.approx(0.6, rel=1e-12)  # 60 / 100
    assert one["vwap"] == 3360.0
    assert one["group"] == "full"  # the exchange's view: matched 100 >= quantity 100, booking included
    assert one["qualifying"] is False
    # m_end = prevailing before the final event (10:30:00) = 3355 = m_arr: OC = 0 on the 40 unfilled
    assert one["opportunity_cost_bps"] == 0.0
    # IS = (60 * 5/3355e-4 + 40 * 0) / 100 = 3 / 3355 * 1e4
    assert one["implementation_shortfall_bps"] == pytest.approx(3 / 3355 * BPS, rel=1e-12)

    two = s[2]  # one lit row only: qualifying
    assert (two["qualifying"], two["booking_quantity"], two["unfilled_quantity"]) == (True, 0, 0)
    assert two["opportunity_cost_bps"] is None  # nothing unfilled
    assert two["implementation_shortfall_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)  # = AC

    three = s[3]
    assert (three["filled_quantity"], three["booking_quantity"], three["n_fills"]) == (70, 30, 1)
    assert three["qualifying"] is False
    q = res.quality.row(0, named=True)
    assert (q["quantity_lit"], q["quantity_booking"]) == (230, 70)  # 60+100+70; 40+30


def test_amended_order_size_is_its_largest_quantity(run, at) -> None:
    """Order size = the largest quantity of the order's events (5 amended to 5,154), at least the filled."""
    res = run(
        [
            ev(1, at("10:30:00"), quantity=5, leavesquantity=5),
            ev(1, at("10:31:00"), changereason=5, quantity=5154, leavesquantity=5154),
            ev(
                1,
                at("10:32:00"),
                changereason=3,
                quantity=5154,
                leavesquantity=154,
                totalmatchedquantity=5000,
            ),
            ev(
                1,
                at("10:40:00"),
                changereason=1,
                orderstatus=2,
                quantity=5154,
                leavesquantity=154,
                totalmatchedquantity=5000,
            ),
            *traded_out(2, at("10:35:00")),  # quantity 100 in every event ...
        ],
        trades=[
            tr(1, at("10:32:00"), 3355, 5000, CP_DARK),
            tr(2, at("10:35:00"), 3360, 100, LIT),
            tr(2, at("10:35:00"), 3360, 20, LIT),  # ... but 120 filled
        ],
        quotes=[quote(at("10:29:00"), 3350, 3360)],
    )
    s = by_id(res.sweeps)
    one = s[1]
    assert (one["arrival_quantity"], one["order_quantity"], one["filled_quantity"]) == (5, 5154, 5000)
    assert one["unfilled_quantity"] == 154  # 5154 - 5000
    assert one["fill_ratio"] == pytest.approx(5000 / 5154, rel=1e-12)  # 0.970..., not 5000 / 5
    assert one["group"] == "partial"  # final matched 5000 < final quantity 5154
    assert (one["size_bucket"], one["time_bucket"]) == ("medium", "morning")  # 5154 in (1000, 10000]; 10:30
    two = s[2]
    # Q = max(100, filled 120) = 120
    assert (two["order_quantity"], two["filled_quantity"], two["unfilled_quantity"]) == (120, 120, 0)
    assert two["fill_ratio"] == 1.0
    assert two["size_bucket"] == "small"  # 120 in (100, 1000]


# ---- §6 metrics ------------------------------------------------------------------------------------
def test_unfilled_orders_opportunity_cost_and_shortfall(run, at) -> None:
    """m_end = mid before the final event, or before close when the order is still working (still on the book
    after its last event, or its last event at or after 16:00)."""
    t = at("10:30:00")
    res = run(
        [
            *resting(1, t, at("10:40:00")),  # buy, cancelled at 10:40
            *resting(2, t, side=2),  # sell, still on the book: no later event
            ev(3, t, quantity=100, leavesquantity=100),  # buy, purged at 16:05 (after close)
            ev(3, at("16:05:00"), changereason=9, orderstatus=2, quantity=100, leavesquantity=100),
        ],
        quotes=[
            quote(at("10:29:00"), 3350, 3360),  # m_arr 3355
            quote(at("10:35:00"), 3360, 3370),  # 3365
            quote(at("10:40:00"), 3380, 3390),  # 3385, at order 1's final nanosecond: not before it
            quote(at("15:59:59"), 3340, 3350),  # 3345: the last before close
            quote(at("16:00:00"), 3330, 3340),  # usable (close inclusive) but not strictly before close
        ],
    )
    s = by_id(res.sweeps)
    one = s[1]
    assert (one["filled_quantity"], one["n_fills"], one["group"], one["fill_ratio"]) == (0, 0, "none", 0.0)
    assert (one["vwap"], one["arrival_cost_bps"], one["effective_spread_bps"]) == (None, None, None)
    assert (one["price_improvement_bps"], one["time_to_first_fill_s"]) == (None, None)
    assert one["end_mid"] == 3365.0
    # buy: +1 * (3365 - 3355) / 3355 * 1e4 = 29.806...; nothing filled: IS = OC
    assert one["opportunity_cost_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)
    assert one["implementation_shortfall_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)
    two = s[2]
    assert two["end_mid"] == 3345.0
    # sell: -1 * (3345 - 3355) / 3355 * 1e4 = +29.806... (price fell after a sell did not: a cost)
    assert two["opportunity_cost_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)
    assert two["implementation_shortfall_bps"] == pytest.approx(10 / 3355 * BPS, rel=1e-12)
    three = s[3]
    assert three["end_mid"] == 3345.0
    # buy: (3345 - 3355) / 3355 * 1e4 = -29.806... (negative = better)
    assert three["opportunity_cost_bps"] == pytest.approx(-10 / 3355 * BPS, rel=1e-12)


def test_partially_filled_shortfall_weights_filled_and_unfilled_by_order_size(run, at) -> None:
    """IS = (filled * AC + unfilled * OC) / Q (Perold, one denominator Q * m_arr)."""
    t = at("10:30:00")
    res = run(
        [
            ev(1, t, quantity=1000, leavesquantity=1000, orderstatus=2),
            ev(1, t, changereason=3, quantity=1000, leavesquantity=600, totalmatchedquantity=400),
            ev(
                1,
                at("10:45:00"),
                changereason=1,
                orderstatus=2,
                quantity=1000,
                leavesquantity=600,
                totalmatchedquantity=400,
            ),
        ],
        trades=[tr(1, t, 3360, 400)],
        quotes=[quote(at("10:29:00"), 3350, 3360), quote(at("10:44:00"), 3370, 3380)],
    )
    s = by_id(res.sweeps)[1]
    assert (s["filled_quantity"], s["unfilled_quantity"], s["group"]) == (400, 600, "partial")
    assert s["fill_ratio"] == pytest.approx(0.4, rel=1e-12)
    assert s["end_mid"] == 3375.0
    # AC = (3360 - 3355) / 3355 * 1e4 = 14.903...
    assert s["arrival_cost_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    # OC = (3375 - 3355) / 3355 * 1e4 = 59.612...
    assert s["opportunity_cost_bps"] == pytest.approx(20 / 3355 * BPS, rel=1e-12)
    # IS = (400 * 5 + 600 * 20) / 1000 / 3355 * 1e4 = 14 / 3355 * 1e4 = 41.728...
    assert s["implementation_shortfall_bps"] == pytest.approx(14 / 3355 * BPS, rel=1e-12)


def test_a_sells_zero_cost_is_positive_zero(run, at) -> None:
    """s = -1 times a zero difference must give 0.0, not -0.0 (it would print as -0 and sort oddly)."""
    t = at("10:30:00")
    res = run(
        [
            ev(1, t, side=2, orderstatus=2),
            ev(1, t, side=2, changereason=3, leavesquantity=50, totalmatchedquantity=50),
            ev(
                1,
                at("10:40:00"),
                side=2,
                changereason=1,
                orderstatus=2,
                leavesquantity=50,
                totalmatchedquantity=50,
            ),
        ],
        trades=[tr(1, t, 3355, 50, CP_DARK, side=2)],  # sold 50 at the mid
        quotes=[quote(at("10:29:00"), 3350, 3360)],  # the only quote: every mid is 3355
    )
    s = by_id(res.sweeps)[1]
    zeros = [
        "arrival_cost_bps",  # -1 * (3355 - 3355)
        "opportunity_cost_bps",  # -1 * (m_end 3355 - 3355) on the 50 unfilled
        "implementation_shortfall_bps",  # (50 * 0 + 50 * 0) / 100
        "effective_spread_bps",  # 2 * -1 * (3355 - 3355)
        *[f"realized_spread_{h}s_bps" for h in HORIZONS],  # 2 * -1 * (3355 - 3355)
        *[f"price_impact_{h}s_bps" for h in HORIZONS],  # 2 * -1 * (3355 - 3355)
    ]
    for c in zeros:
        assert is_positive_zero(s[c]), (c, s[c])
    # the far touch of a sell is the bid: -1 * (3350 - 3355) / 3355 * 1e4 = +14.903 (better than the bid)
    assert s["price_improvement_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)


def test_effective_spread_over_lit_and_dark_fills_only(run, at) -> None:
    """The effective spread (and RS/PI) use lit and dark fills; an auction or a reported print has no
    prevailing spread. VWAP, AC and the fill counts use every fill."""
    t = at("10:30:00")
    res = run(
        [
            ev(1, t, quantity=400, leavesquantity=400, orderstatus=2),
            ev(
                1,
                t,
                changereason=3,
                quantity=400,
                leavesquantity=300,
                totalmatchedquantity=100,
                orderstatus=2,
            ),
            ev(1, t, changereason=3, quantity=400, leavesquantity=200, totalmatchedquantity=200),
            ev(1, at("10:31:00"), changereason=3, quantity=400, leavesquantity=100, totalmatchedquantity=300),
            ev(
                1,
                at("16:10:00"),
                changereason=3,
                quantity=400,
                leavesquantity=0,
                totalmatchedquantity=400,
                orderstatus=2,
            ),
        ],
        trades=[
            tr(1, t, 3355, 100, CP_DARK),  # at m_t = 3355
            tr(1, t, 3360, 100, LIT),  # 5 above m_t
            tr(1, at("10:31:00"), 3300, 100, REPORTED),  # would be 2 * (3300 - 3335) / 3335 if it counted
            tr(1, at("16:10:00"), 3400, 100, AUCTION),  # closing auction (after close: not the open)
        ],
        quotes=[quote(at("10:29:00"), 3350, 3360), quote(at("10:30:30"), 3330, 3340)],
    )
    s = by_id(res.sweeps)[1]
    assert (s["filled_dark"], s["filled_lit"], s["filled_reported"], s["filled_auction"]) == (
        100,
        100,
        100,
        100,
    )
    assert s["n_fills"] == 4
    # vwap = (3355 + 3360 + 3300 + 3400) * 100 / 400 = 3353.75
    assert s["vwap"] == pytest.approx(3353.75, rel=1e-12)
    assert s["arrival_cost_bps"] == pytest.approx(-1.25 / 3355 * BPS, rel=1e-12)  # (3353.75 - 3355)
    # (100 * 2 * (3355 - 3355) / 3355 + 100 * 2 * (3360 - 3355) / 3355) * 1e4 / 200 = 5 / 3355 * 1e4
    assert s["effective_spread_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    # m_{t+1s} of both fills = latest usable at or before 10:30:01 = 3355: RS_1 = ES, PI_1 = 0
    assert s["realized_spread_1s_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    assert s["price_impact_1s_bps"] == 0.0


def test_realized_spread_plus_price_impact_is_the_effective_spread(run, at) -> None:
    """Two fills with quotes moving between them; for every horizon RS and PI follow the formulas of docs/methodology.md §6
    (both divided by m_t) and add up to the effective spread fill by fill."""
    t1, t2 = at("10:30:00"), at("10:30:10")
    res = run(
        [
            ev(1, t1, quantity=200, leavesquantity=200, orderstatus=2),
            ev(1, t1, changereason=3, quantity=200, leavesquantity=100, totalmatchedquantity=100),
            ev(
                1, t2, changereason=3, quantity=200, leavesquantity=0, totalmatchedquantity=200, orderstatus=2
            ),
        ],
        trades=[tr(1, t1, 3360, 100, LIT), tr(1, t2, 3365, 100, CP_DARK)],
        quotes=[
            quote(at("10:29:00"), 3350, 3360),  # 3355: m_t of fill 1
            quote(at("10:30:00", 500_000_000), 3360, 3370),  # 3365: fill 1 + 1 s
            quote(at("10:30:03"), 3370, 3380),  # 3375: fill 1 + 5 s
            quote(at("10:30:09"), 3360, 3370),  # 3365: m_t of fill 2
            quote(at("10:30:10", 500_000_000), 3380, 3390),  # 3385: fill 2 + 1 s
            quote(at("10:30:14"), 3340, 3350),  # 3345: fill 2 + 5 s; fill 1 + 60 s (10:31:00)
            quote(at("10:31:05"), 3390, 3400),  # 3395: fill 2 + 60 s; fill 1 + 300 s (10:35:00)
            quote(at("10:35:05"), 3300, 3310),  # 3305: fill 2 + 300 s (10:35:10)
        ],
    )
    s = by_id(res.sweeps)[1]
    p1, m1, p2, m2 = 3360, 3355, 3365, 3365  # fill price and m_t; 100 shares each, buy (s = +1)
    # ES = (100 * 2 (3360 - 3355) / 3355 + 100 * 2 (3365 - 3365) / 3365) * 1e4 / 200 = 5 / 3355 * 1e4
    es = (2 * (p1 - m1) / m1 + 2 * (p2 - m2) / m2) * BPS / 2
    assert es == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    assert s["effective_spread_bps"] == pytest.approx(es, rel=1e-12)
    later = {1: (3365, 3385), 5: (3375, 3345), 60: (3345, 3395), 300: (3395, 3305)}  # m_{t+h} of fills 1, 2
    for h, (a1, a2) in later.items():
        # RS = (2 (p1 - a1) / m1 + 2 (p2 - a2) / m2) * 1e4 / 2, e.g. h=1: (-10/3355 - 40/3365) * 1e4 / 2
        rs = (2 * (p1 - a1) / m1 + 2 * (p2 - a2) / m2) * BPS / 2
        # PI = (2 (a1 - m1) / m1 + 2 (a2 - m2) / m2) * 1e4 / 2, e.g. h=1: (20/3355 + 40/3365) * 1e4 / 2
        pi = (2 * (a1 - m1) / m1 + 2 * (a2 - m2) / m2) * BPS / 2
        assert s[f"realized_spread_{h}s_bps"] == pytest.approx(rs, rel=1e-12), h
        assert s[f"price_impact_{h}s_bps"] == pytest.approx(pi, rel=1e-12), h
        assert s[f"realized_spread_{h}s_bps"] + s[f"price_impact_{h}s_bps"] == pytest.approx(es, rel=1e-12), h
    # h=1 by hand: RS = (-10/3355 - 40/3365) * 5000 = -74.341...; PI = (20/3355 + 40/3365) * 5000 = 89.244...
    assert s["realized_spread_1s_bps"] == pytest.approx((-10 / 3355 - 40 / 3365) * 5000, rel=1e-12)
    assert s["price_impact_1s_bps"] == pytest.approx((20 / 3355 + 40 / 3365) * 5000, rel=1e-12)


def test_price_improvement_is_against_the_arrival_far_touch(run, at) -> None:
    """PI = s (far - vwap) / m_arr, far = arrival offer (buy) / bid (sell): not the order's own limit, not the
    quote at fill time."""
    t1, t2, t3 = at("10:30:00"), at("10:31:00"), at("10:32:00")
    res = run(
        [
            ev(1, t1, price=3400, orderstatus=2),  # buy with limit 3400
            ev(1, t1, price=3400, changereason=3, leavesquantity=50, totalmatchedquantity=50, orderstatus=2),
            ev(1, t1, price=3400, changereason=3, leavesquantity=0, totalmatchedquantity=100, orderstatus=2),
            *traded_out(2, t2, side=2),
            ev(3, t3),
            ev(3, at("10:40:00"), changereason=3, orderstatus=2, leavesquantity=0, totalmatchedquantity=100),
        ],
        trades=[
            tr(1, t1, 3355, 50, CP_DARK),
            tr(1, t1, 3360, 50, LIT),
            tr(2, t2, 3350, 100, LIT, side=2),
            tr(3, at("10:40:00"), 3375, 100, CP_DARK),
        ],
        quotes=[quote(at("10:29:00"), 3350, 3360), quote(at("10:35:00"), 3370, 3380)],
    )
    s = by_id(res.sweeps)
    # 1: vwap (50*3355 + 50*3360)/100 = 3357.5; (3360 - 3357.5) / 3355 * 1e4 = 7.451... (not vs limit 3400)
    assert s[1]["price_improvement_bps"] == pytest.approx(2.5 / 3355 * BPS, rel=1e-12)
    # 2: sold at the bid: -1 * (3350 - 3350) = +0.0
    assert is_positive_zero(s[2]["price_improvement_bps"])
    # 3: arrival far touch 3360 (10:29 quote), filled at 3375 after the quote moved: (3360 - 3375) / 3355
    assert s[3]["price_improvement_bps"] == pytest.approx(-15 / 3355 * BPS, rel=1e-12)


def test_fill_times_and_volume_weighted_execution_time(run, at) -> None:
    """time_to_first_fill, execution_duration (last - first) and VWTE = Σ q (t_fill - t_arrival) / Σ q."""
    res = run(
        [
            ev(1, at("10:30:00"), quantity=400, leavesquantity=400),
            ev(1, at("10:30:02"), changereason=3, quantity=400, leavesquantity=300, totalmatchedquantity=100),
            ev(
                1,
                at("10:30:10", 500_000_000),
                changereason=3,
                quantity=400,
                leavesquantity=200,
                totalmatchedquantity=200,
            ),
            ev(
                1,
                at("10:30:40"),
                changereason=3,
                quantity=400,
                leavesquantity=0,
                totalmatchedquantity=400,
                orderstatus=2,
            ),
        ],
        trades=[
            tr(1, at("10:30:02"), 3355, 100, CP_DARK),
            tr(1, at("10:30:10", 500_000_000), 3355, 100, CP_DARK),
            tr(1, at("10:30:40"), 3355, 200, CP_DARK),
        ],
        quotes=[quote(at("10:29:00"), 3350, 3360)],
    )
    s = by_id(res.sweeps)[1]
    assert (s["first_fill_time"], s["last_fill_time"]) == (at("10:30:02"), at("10:30:40"))
    assert s["time_to_first_fill_s"] == pytest.approx(2.0, rel=1e-12)
    assert s["execution_duration_s"] == pytest.approx(38.0, rel=1e-12)  # 10:30:40 - 10:30:02
    # (100 * 2 + 100 * 10.5 + 200 * 40) / 400 = 9250 / 400 = 23.125
    assert s["vw_exec_time_s"] == pytest.approx(23.125, rel=1e-12)


def test_unknown_dealsource_is_an_input_error(run, at, cfg) -> None:
    """A dealsource in no fill class names the code and the config key to extend; once listed it is a fill."""
    t = at("10:30:00")
    events, trades, quotes = traded_out(1, t), [tr(1, t, 3355, 100, 99)], [quote(at("10:29:00"), 3350, 3360)]
    with pytest.raises(InputError) as err:
        run(events, trades=trades, quotes=quotes)
    assert "99" in str(err.value)
    assert "codes.fill_classes" in str(err.value)

    classes = {
        "lit": [1],
        "dark": [46, 47, 49, 50, 51, 52, 99],
        "auction": [20],
        "reported": [5],
        "booking": [44, 45, 48],
    }
    res = run(events, trades=trades, quotes=quotes, config=cfg({"codes.fill_classes": classes}))
    assert by_id(res.sweeps)[1]["filled_dark"] == 100


def test_snapshot_fallback_uses_cp_event_rows_strictly_before(run, at) -> None:
    """No feed rows: the CP order-event rows' national_bid/offer are the quotes, stamped at their event
    (strictly before applies); a non-CP order's rows are not used."""
    res = run(
        [
            # a CP (64) sell: its rows carry 3340/3350 at 10:20 and 3345/3355 at 10:25
            ev(
                1,
                at("10:20:00"),
                exchangeordertype=CP,
                side=2,
                price=3400,
                national_bid=3340,
                national_offer=3350,
            ),
            ev(
                1,
                at("10:25:00"),
                exchangeordertype=CP,
                side=2,
                price=3400,
                changereason=1,
                orderstatus=2,
                national_bid=3345,
                national_offer=3355,
            ),
            ev(9, at("10:28:00"), exchangeordertype=0, national_bid=3000, national_offer=3010),  # not CP
            *resting(2, at("10:30:00"), at("10:45:00"), national_bid=3350, national_offer=3360),
            # arrives in the nanosecond of order 1's first row: nothing strictly before it
            *resting(3, at("10:20:00"), national_bid=3340, national_offer=3350),
        ],
    )
    s = by_id(res.sweeps)
    assert (s[2]["arrival_bid"], s[2]["arrival_offer"], s[2]["arrival_mid"]) == (3345, 3355, 3350.0)
    assert s[2]["arrival_quote_age_s"] == pytest.approx(300.0, rel=1e-12)  # 10:30:00 - 10:25:00
    assert s[2]["nbbo_source"] == "snapshot"
    assert s[3]["arrival_mid"] is None
    assert s[3]["nbbo_source"] == "none"
    assert res.quality.row(0, named=True)["nbbo_source"] == "snapshot"


def test_quality_row(run, at, local_ns) -> None:
    """Quote classes (stale first, then empty, crossed, locked), counted over all rows before the same-ns
    dedupe; sweeps in and out of session and without a mid; arrival quote age median and p95 (numpy
    linear); trade quantity per fill class."""
    tq = at("10:20:00")
    res = run(
        [
            *resting(10, at("09:59:30")),  # pre-open: outside the session
            *resting(11, at("10:00:00")),  # at the open: analysed, no quote strictly before
            *resting(12, at("10:00:01")),  # age 1 s (10:00:00 quote)
            *resting(13, at("10:00:02")),  # age 2 s
            *resting(14, at("10:20:04")),  # age 4 s (10:20:00 quotes)
            *resting(15, at("10:20:10")),  # age 10 s
        ],
        trades=[
            tr(12, at("10:00:01"), 3360, 100, LIT),
            tr(13, at("10:00:02"), 3355, 50, CP_DARK),
            tr(14, at("10:20:04"), 3355, 30, REPORTED),
            tr(15, at("10:20:10"), 3355, 20, CP_UCP),
            tr(900, at("16:10:00"), 3350, 200, AUCTION),  # closing auction of a non-CP order
        ],
        quotes=[
            quote(local_ns("2024-09-04 19:30:00"), 3350, 3360),  # stale (previous evening)
            quote(at("09:59:00"), 3360, 3350),  # crossed and pre-open: stale first
            quote(at("10:00:00"), 3350, 3360),  # usable (the open is inclusive)
            quote(at("10:10:00"), 3355, 3355),  # locked
            quote(at("10:10:01"), 3360, 3350),  # crossed
            quote(at("10:10:02"), LONG_MIN, 3360),  # empty
            quote(at("10:10:03"), 3350, None),  # empty
            quote(tq, 3340, 3360),  # usable
            quote(tq, 3350, 3360),  # usable, same nanosecond: still counted
            quote(at("16:00:00"), 3350, 3360),  # usable (close inclusive)
            quote(at("16:05:00"), 3350, 3360),  # stale (after close)
        ],
    )
    q = res.quality.row(0, named=True)
    assert (q["open"], q["close"], q["open_source"], q["nbbo_source"]) == (
        at("10:00:00"),
        at("16:00:00"),
        "config",
        "feed",
    )
    # 11 rows = 3 stale + 2 empty + 1 crossed + 1 locked + 4 usable
    assert q["n_quotes"] == 11
    assert (q["n_stale_quotes"], q["n_empty_quotes"], q["n_crossed_quotes"], q["n_locked_quotes"]) == (
        3,
        2,
        1,
        1,
    )
    assert q["n_usable_quotes"] == 4
    assert (q["n_sweeps"], q["n_sweeps_analysed"], q["n_sweeps_outside_session"]) == (6, 5, 1)
    assert q["n_sweeps_without_mid"] == 1  # sweep 11
    # ages [1, 2, 4, 10]: median (2 + 4) / 2 = 3; p95 at rank 0.95 * 3 = 2.85: 4 + 0.85 * (10 - 4) = 9.1
    assert q["arrival_quote_age_median_s"] == pytest.approx(3.0, rel=1e-12)
    assert q["arrival_quote_age_p95_s"] == pytest.approx(9.1, rel=1e-12)
    # one row per execution here (buy side only), so rows and executions give the same sums
    assert (q["quantity_lit"], q["quantity_dark"], q["quantity_auction"]) == (100, 50, 200)
    assert (q["quantity_reported"], q["quantity_booking"]) == (30, 20)

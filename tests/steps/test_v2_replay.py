"""the methodology replay, hand-worked: who rests, candidates, limits and the mid-tick, MAQ, impact, windows, the
simulated path and its shortfall, `set`, and the reality replay's fidelity (docs/methodology.md §7–§9).

Every partition is a few hand-written CP orders on 2024-09-05 (AEST, UTC+10) with one quote 3350/3360
(mid 3355) unless a test says otherwise; the expected fills are worked out next to each assert.
Orders: sweeps carry 2048; real CP orders 64 (Centre Point) or 4096 (block). An order "rests" when its
post-arrival orderstatus is 1; "incoming" orders have orderstatus 2 after arrival and no later event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import polars as pl
import pytest

from dpsim.partition import compute_partition

DAY = date(2024, 9, 5)
SWEEP, CP, BLOCK = 2048, 64, 4096  # exchangeordertype flags
LIT, CP_PREF, CP_DARK, CP_UCP = 1, 46, 47, 48  # dealsource codes
BPS = 1e4
MID = 3355.0
CP_BUY: dict[str, Any] = {"exchangeordertype": CP, "side": 1}  # a real Centre Point order (no sweep flag)
CP_SELL: dict[str, Any] = {"exchangeordertype": CP, "side": 2}


# ---- building blocks (rows as dicts; conftest fills in the other columns) ---------------------------------
def ev(oid: int, ts: int, **cols: Any) -> dict[str, Any]:
    """One order event. Defaults (conftest): a buy sweep (2048), qty 100, leaves 100, new (6), on book (1),
    no limit (price 0), midtick 0, no MAQ."""
    return {"order_id": oid, "timestamp": ts, **cols}


def new(oid: int, t: int, qty: int = 100, *, on_book: bool = True, **cols: Any) -> dict[str, Any]:
    """A new-order (6) event of `qty`: on the book (orderstatus 1) or not (2)."""
    return ev(oid, t, quantity=qty, leavesquantity=qty, orderstatus=1 if on_book else 2, **cols)


def traded(oid: int, t: int, qty: int, matched: int, *, on_book: bool = False, **cols: Any) -> dict[str, Any]:
    """A traded (3) event: `matched` of `qty` matched so far; still on the book after it or not."""
    return ev(
        oid,
        t,
        changereason=3,
        quantity=qty,
        leavesquantity=qty - matched,
        totalmatchedquantity=matched,
        orderstatus=1 if on_book else 2,
        **cols,
    )


def cancelled(oid: int, t: int, qty: int = 100, matched: int = 0, **cols: Any) -> dict[str, Any]:
    """A user cancel (1): off the book, leaves kept (not zeroed on cancel)."""
    return ev(
        oid,
        t,
        changereason=1,
        orderstatus=2,
        quantity=qty,
        leavesquantity=qty - matched,
        totalmatchedquantity=matched,
        **cols,
    )


def resting(oid: int, t: int, t_end: int | None = None, qty: int = 100, **cols: Any) -> list[dict[str, Any]]:
    """Arrives and rests (post-arrival orderstatus 1), no real fill; user-cancelled at t_end (final event)."""
    return [new(oid, t, qty, **cols)] + ([cancelled(oid, t_end, qty, **cols)] if t_end is not None else [])


def incoming(oid: int, t: int, qty: int = 100, **cols: Any) -> list[dict[str, Any]]:
    """Arrives off the book (orderstatus 2): it is an incoming order only; its arrival is its final event."""
    return [new(oid, t, qty, on_book=False, **cols)]


def tr(oid: int, ts: int, price: int, qty: int, dealsource: int = CP_DARK, **cols: Any) -> dict[str, Any]:
    """One trade row of order `oid` (side 1 unless given)."""
    return {
        "order_id": oid,
        "timestamp": ts,
        "tradeprice": price,
        "quantity": qty,
        "dealsource": dealsource,
        **cols,
    }


def execution(mg: int, buy: int, sell: int, ts: int, qty: int, price: int = 3355, ds: int = CP_DARK) -> list:
    """Both rows of one execution (shared matchgroupid)."""
    return [
        tr(buy, ts, price, qty, ds, side=1, matchgroupid=mg),
        tr(sell, ts, price, qty, ds, side=2, matchgroupid=mg),
    ]


def quote(ts: int, bid: int, offer: int, **cols: Any) -> dict[str, Any]:
    return {"timestamp": ts, "bid": bid, "offer": offer, **cols}


def by_id(df: pl.DataFrame, key: str = "order_id") -> dict[int, dict[str, Any]]:
    return {r[key]: r for r in df.iter_rows(named=True)}


def fills(res: Any, scenario: str) -> list[dict[str, Any]]:
    return res.sim_fills[scenario].rows(named=True)


def fill(
    sweep: int,
    contra: int,
    role: str,
    ts: int,
    qty: int,
    price: float = MID,
    mid: float | None = None,
    *,
    sweep_contra: bool = False,
) -> dict[str, Any]:
    """An expected sim_fills row (mid defaults to the price); price and mid compared to 1e-12 relative."""
    return {
        "sweep_order_id": sweep,
        "contra_order_id": contra,
        "role": role,
        "contra_is_sweep": sweep_contra,
        "timestamp": ts,
        "quantity": qty,
        "price": pytest.approx(price, rel=1e-12),
        "mid": pytest.approx(price if mid is None else mid, rel=1e-12),
    }


@pytest.fixture
def run(make_events, make_trades, make_quotes, cfg, at) -> Callable[..., Any]:
    """compute_partition over hand-written rows (quotes default: 3350/3360 from 10:00:00). Rows are put in
    time order (stable) first, so the default `sequence` (row position) is global and monotone; each trade
    row without a matchgroupid gets its own."""

    def _run(events, trades=(), quotes=None, config=None, scenarios=("baseline",)):
        def timed(rows):
            return sorted(rows, key=lambda r: r["timestamp"])

        quotes = [quote(at("10:00:00"), 3350, 3360)] if quotes is None else quotes
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


# ---- who rests: the real queue --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("r_arrives", "r_status", "r_type", "sweep_gets"),
    [
        ("10:05:00", 1, BLOCK, 0),  # real block order on the book before the sweep: first in the queue
        ("10:05:00", 1, CP, 0),  # same with a plain Centre Point order
        ("10:15:00", 1, BLOCK, 100),  # arrived after the sweep: behind it
        ("10:05:00", 3, BLOCK, 100),  # untriggered after arrival: never rests
        ("10:05:00", 4, CP, 100),  # inactive after arrival: never rests
    ],
    ids=["block-first", "cp-first", "block-after", "untriggered", "inactive"],
)
def test_real_resting_order_queues_ahead_of_a_later_sweep(run, at, r_arrives, r_status, r_type, sweep_gets):
    """Sweep 1 rests 100 from 10:10; real buy 2 (100, no limit); incoming sell 3 (100) at 10:30 fills the
    earliest-arrived open resting buy first."""
    res = run(
        [
            *resting(1, at("10:10:00"), at("11:00:00")),
            ev(2, at(r_arrives), exchangeordertype=r_type, orderstatus=r_status),
            ev(2, at("11:00:00"), exchangeordertype=r_type, changereason=1, orderstatus=2),
            *incoming(3, at("10:30:00"), **CP_SELL),
        ]
    )
    s = by_id(res.sim_orders["baseline"])[1]
    assert (s["sim_quantity"], s["sim_filled_quantity"]) == (100, sweep_gets)
    expected = [fill(1, 3, "resting", at("10:30:00"), 100)] if sweep_gets else []
    assert fills(res, "baseline") == expected


def test_no_queue_lets_the_sweep_fill_what_the_real_queue_took(run, at) -> None:
    """no_queue (real_queue false): real CP orders never rest, so the sweep gets the incoming sell."""
    res = run(
        [
            *resting(2, at("10:05:00"), at("11:00:00"), exchangeordertype=BLOCK),  # ahead of the sweep
            *resting(1, at("10:10:00"), at("11:00:00")),
            *incoming(3, at("10:30:00"), **CP_SELL),
        ],
        scenarios=("baseline", "no_queue"),
    )
    assert by_id(res.sim_orders["baseline"])[1]["sim_filled_quantity"] == 0  # 2 took all 100
    assert fills(res, "baseline") == []
    assert by_id(res.sim_orders["no_queue"])[1]["sim_filled_quantity"] == 100
    assert fills(res, "no_queue") == [fill(1, 3, "resting", at("10:30:00"), 100)]


def test_sweep_outside_the_session_never_rests(run, at) -> None:
    """A pre-open sweep on the book is not analysed: it does not rest, so the analysed sweep gets the fill."""
    res = run(
        [
            *resting(9, at("09:59:00"), at("11:00:00")),  # sweep, pre-open
            *resting(1, at("10:10:00"), at("11:00:00")),
            *incoming(3, at("10:30:00"), **CP_SELL),
        ]
    )
    assert res.sweeps["order_id"].to_list() == [1]
    assert fills(res, "baseline") == [fill(1, 3, "resting", at("10:30:00"), 100)]


def test_participant_filter_reports_rows_but_the_replay_uses_every_sweep(run, at, cfg) -> None:
    """filters.participants [7]: sweep 1 (participant 1) is not reported but still rests in the replay, ahead
    of the reported sweep 2, and takes the incoming sell."""
    res = run(
        [
            *resting(1, at("10:10:00"), at("11:00:00"), participantid=1),
            *resting(2, at("10:20:00"), at("11:00:00"), participantid=7),
            *incoming(3, at("10:30:00"), **CP_SELL, participantid=3),
        ],
        config=cfg({"filters.participants": [7]}),
    )
    assert res.sweeps["order_id"].to_list() == [2]
    assert res.sim_orders["baseline"]["order_id"].to_list() == [2]
    assert by_id(res.sim_orders["baseline"])[2]["sim_filled_quantity"] == 0  # sweep 1 took the 100


def test_fill_and_kill_sweep_does_not_rest(run, at) -> None:
    """Post-arrival orderstatus 2 (fill-and-kill, leaves kept at 100, timevalidity 0): the owner asked not to
    rest. The window end still follows the scenario rule (last_fill: no fill -> final event)."""
    fak = {"timevalidity": 0, "timevaliditydecoded": "Fill and Kill"}
    res = run(
        [
            ev(1, at("10:10:00"), orderstatus=2, **fak),
            ev(1, at("10:10:00"), changereason=9, orderstatus=2, leavesquantity=100, **fak),  # killed
            *resting(2, at("10:15:00"), at("11:00:00")),
            *incoming(3, at("10:30:00"), **CP_SELL),
        ]
    )
    s = by_id(res.sweeps)[1]
    assert (s["rests"], s["residual_after_arrival"], s["timevalidity"]) == (False, 100, 0)
    sim = by_id(res.sim_orders["baseline"])
    assert (sim[1]["sim_quantity"], sim[1]["sim_filled_quantity"]) == (0, 0)
    assert sim[1]["sim_window_end"] == at("10:10:00")
    assert (sim[2]["sim_quantity"], sim[2]["sim_filled_quantity"]) == (100, 100)
    assert fills(res, "baseline") == [fill(2, 3, "resting", at("10:30:00"), 100)]


# ---- limits and the mid-tick ---------------------------------------------------------------------------
def test_resting_sweep_is_blocked_by_its_own_limit(run, at) -> None:
    """Sweep 1 buys limited at 3350 (midtick 2): the mid 3355 is above its limit, so the incoming sell passes
    it by and fills sweep 2 (no limit). ignore_limit lifts sweep 1's limit: it fills first."""
    res = run(
        [
            *resting(1, at("10:10:00"), at("11:00:00"), price=3350, midtick=2),
            *resting(2, at("10:20:00"), at("11:00:00")),
            *incoming(3, at("10:30:00"), **CP_SELL),
        ],
        scenarios=("baseline", "ignore_limit"),
    )
    # baseline: 3350 >= 3355 fails for 1; 2 has no limit
    assert fills(res, "baseline") == [fill(2, 3, "resting", at("10:30:00"), 100)]
    assert fills(res, "ignore_limit") == [fill(1, 3, "resting", at("10:30:00"), 100)]


def test_ignore_limit_lifts_the_incoming_sweeps_limit_not_the_real_orders(run, at) -> None:
    """Incoming sell sweep 3 limited at 3360 (midtick 2) cannot sell at 3355; in ignore_limit it can, but the
    real buy 1 limited at 3350 still refuses 3355, so it fills real buy 2."""
    res = run(
        [
            *resting(1, at("10:05:00"), at("11:00:00"), **CP_BUY, price=3350, midtick=2),
            *resting(2, at("10:10:00"), at("11:00:00"), **CP_BUY),
            *resting(3, at("10:30:00"), at("10:45:00"), side=2, price=3360, midtick=2),
        ],
        scenarios=("baseline", "ignore_limit"),
    )
    # baseline: vs 1, buy 3350 >= 3355 fails; vs 2, sell 3360 <= 3355 fails; 3 then rests to 10:45, unmet
    assert fills(res, "baseline") == []
    assert by_id(res.sim_orders["baseline"])[3]["sim_filled_quantity"] == 0
    assert fills(res, "ignore_limit") == [fill(3, 2, "incoming", at("10:30:00"), 100)]


@pytest.mark.parametrize(
    ("bid", "offer", "limit", "refuses", "accepts"),
    [
        (3350, 3360, 3360, 2, 1),  # tick 10 at 3360: mid 3355 = 3360 - 5
        (1000, 1005, 1005, 3, 4),  # tick 5 at 1005: mid 1002.5 = 1005 - 2.5
        (50, 51, 51, 2, 1),  # tick 1 at 51: mid 50.5 = 51 - 0.5
        (1990, 2000, 2000, 2, 1),  # tick at the limit 2000 is 10 (not 5 at the mid 1995): 2000 - 5 = 1995
    ],
    ids=["tick10", "tick5-midtick4", "tick1", "tick-at-limit"],
)
def test_midtick_order_fills_half_a_tick_through_its_limit(run, at, bid, offer, limit, refuses, accepts):
    """Two real resting sells at the same limit: the one not accepting the mid-tick (2 or 3) refuses the mid,
    which is half a tick through its limit; the one accepting it (1 or 4) fills. Sweep 5 buys incoming."""
    t = at("10:30:00")
    res = run(
        [
            *resting(1, at("10:10:00"), at("11:00:00"), **CP_SELL, price=limit, midtick=refuses),
            *resting(2, at("10:20:00"), at("11:00:00"), **CP_SELL, price=limit, midtick=accepts),
            *incoming(5, t),
        ],
        quotes=[quote(at("10:00:00"), bid, offer)],
    )
    mid = (bid + offer) / 2
    [f] = fills(res, "baseline")
    assert (f["sweep_order_id"], f["contra_order_id"], f["role"], f["quantity"]) == (5, 2, "incoming", 100)
    assert (f["price"], f["mid"]) == (pytest.approx(mid, rel=1e-12), pytest.approx(mid, rel=1e-12))


def test_sweep_fills_only_in_the_midtick_scenario(run, at) -> None:
    """Resting sweep 1 buys limited at 3350, midtick 2: the mid 3355 is half a tick (5) above it. Scenario
    `midtick` lets analysed sweeps accept the mid-tick (3350 + 5 >= 3355); the real buy 2 ahead of it at the
    same limit does not get that allowance."""
    res = run(
        [
            *resting(2, at("10:05:00"), at("11:00:00"), **CP_BUY, price=3350, midtick=2),
            *resting(1, at("10:10:00"), at("11:00:00"), price=3350, midtick=2),
            *incoming(3, at("10:30:00"), **CP_SELL),
        ],
        scenarios=("baseline", "midtick"),
    )
    assert fills(res, "baseline") == []
    assert fills(res, "midtick") == [fill(1, 3, "resting", at("10:30:00"), 100)]


# ---- price: the quote strictly before the incoming event; the session -------------------------------------
def test_quote_at_the_incoming_events_nanosecond_does_not_price_it(run, at) -> None:
    """The 10:30:00 quote (mid 3365, above sweep 1's limit 3360) is the incoming event's consequence; the
    match is priced at the 10:00 quote's mid 3355, within the limit."""
    t = at("10:30:00")
    res = run(
        [
            *resting(1, at("10:10:00"), at("11:00:00"), price=3360, midtick=2),
            *incoming(3, t, **CP_SELL),
        ],
        quotes=[quote(at("10:00:00"), 3350, 3360), quote(t, 3360, 3370)],
    )
    assert fills(res, "baseline") == [fill(1, 3, "resting", t, 100, 3355.0)]


def test_pre_open_incoming_order_matches_nothing_but_may_rest(run, at) -> None:
    """Sell 3 arrives at 09:55 (pre-open) while buy 2 rests: no match (no session, no usable quote). It still
    rests, and the incoming sweep 1 buys it at 10:30."""
    res = run(
        [
            *resting(2, at("09:50:00"), at("11:00:00"), **CP_BUY),
            *resting(3, at("09:55:00"), at("11:00:00"), **CP_SELL),
            *incoming(1, at("10:30:00")),
        ],
        quotes=[quote(at("09:00:00"), 3350, 3360), quote(at("10:00:00"), 3350, 3360)],
    )
    assert fills(res, "baseline") == [fill(1, 3, "incoming", at("10:30:00"), 100)]


# ---- MAQ --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("single", "expected"),
    [
        (2, [("10:30:00", 12, 200), ("10:40:00", 13, 100)]),  # MAQ on the first replay fill only
        (1, [("10:30:00", 12, 200)]),  # every fill >= 150: the last 100 can no longer fill
    ],
    ids=["first-fill-only", "single-fill"],
)
def test_maq(run, at, single, expected) -> None:
    """Resting sweep 1 buys 300 with MAQ 150. Incoming sells: 11 (100, 10:20), 12 (200, 10:30), 13 (100,
    10:40). 100 < 150 refuses 11 as the first fill in both cases; 12 fills 200 (>= 150); 13's 100 is a later
    fill: allowed unless the MAQ is single-fill (singlefillminimumquantity 1)."""
    res = run(
        [
            *resting(
                1, at("10:10:00"), at("11:00:00"), 300, minimumquantity=150, singlefillminimumquantity=single
            ),
            *incoming(11, at("10:20:00"), 100, **CP_SELL),
            *incoming(12, at("10:30:00"), 200, **CP_SELL),
            *incoming(13, at("10:40:00"), 100, **CP_SELL),
        ]
    )
    s = by_id(res.sweeps)[1]
    assert (s["maq"], s["maq_single"]) == (150, single == 1)
    assert fills(res, "baseline") == [fill(1, c, "resting", at(t), q) for t, c, q in expected]
    assert by_id(res.sim_orders["baseline"])[1]["sim_filled_quantity"] == sum(q for _, _, q in expected)


# ---- impact; sweep vs sweep -------------------------------------------------------------------------
def test_impact_moves_the_price_against_the_sweep_in_both_roles(run, at) -> None:
    """impact_5bps: sweep vs real order at mid * (1 + s * 5e-4): a buy sweep pays 3355 * 1.0005 = 3356.6775,
    a sell sweep gets 3355 * 0.9995 = 3353.3225. Limits are checked at the moved price: sweep 1's buy limit
    3356 takes 3355 but refuses 3356.6775, so sweep 2 behind it fills instead."""
    res = run(
        [
            *resting(1, at("10:05:00"), at("10:35:00"), price=3356, midtick=2),
            *resting(2, at("10:10:00"), at("10:35:00")),
            *incoming(3, at("10:30:00"), **CP_SELL),
            *resting(4, at("10:36:00"), at("11:00:00"), **CP_BUY),  # real buy
            *incoming(5, at("10:40:00"), side=2),  # sell sweep, incoming
        ],
        scenarios=("baseline", "impact_5bps"),
    )
    assert fills(res, "baseline") == [
        fill(1, 3, "resting", at("10:30:00"), 100),  # 3356 >= 3355
        fill(5, 4, "incoming", at("10:40:00"), 100),
    ]
    up, down = 3355 * (1 + 5 / 1e4), 3355 * (1 - 5 / 1e4)  # 3356.6775, 3353.3225
    assert fills(res, "impact_5bps") == [
        fill(2, 3, "resting", at("10:30:00"), 100, up, MID),  # 3356 >= 3356.6775 fails for sweep 1
        fill(5, 4, "incoming", at("10:40:00"), 100, down, MID),
    ]
    sim = by_id(res.sim_orders["impact_5bps"])
    # both fully filled at 5 bps against them: AC = (3356.6775 - 3355) / 3355 * 1e4 = 5.0; sell: -(3353.3225 -
    # 3355) / 3355 * 1e4 = 5.0; nothing unfilled, so the simulated IS is the arrival cost
    for oid in (2, 5):
        assert sim[oid]["sim_arrival_cost_bps"] == pytest.approx(5.0, rel=1e-12)
        assert sim[oid]["sim_implementation_shortfall_bps"] == pytest.approx(5.0, rel=1e-12)


def test_match_between_two_sweeps_is_at_the_mid_and_gives_two_rows(run, at) -> None:
    """Sweep 2 (sell, incoming) meets resting sweep 1: one match, a sim_fills row per sweep, contra_is_sweep
    true, and no impact (both sides are analysed sweeps)."""
    t = at("10:30:00")
    res = run(
        [*resting(1, at("10:10:00"), at("11:00:00")), *incoming(2, t, side=2)],
        scenarios=("baseline", "impact_5bps"),
    )
    expected = [
        fill(1, 2, "resting", t, 100, sweep_contra=True),
        fill(2, 1, "incoming", t, 100, sweep_contra=True),
    ]
    for scenario in ("baseline", "impact_5bps"):
        assert fills(res, scenario) == expected
        sim = by_id(res.sim_orders[scenario])
        assert (sim[1]["sim_filled_resting"], sim[1]["sim_filled_incoming"]) == (100, 0)
        assert (sim[2]["sim_filled_resting"], sim[2]["sim_filled_incoming"]) == (0, 100)


# ---- windows and the resting quantity ------------------------------------------------------------------
WINDOW_SCENARIOS = {
    "baseline": {},
    "order_life": {"window": "order_life"},
    "eod": {"window": "end_of_day"},
    "s30": {"window": {"seconds": 30}},
}


@pytest.mark.parametrize(
    ("scenario", "window_end", "contras"),
    [
        ("s30", "10:10:30", [11]),  # arrival + 30 s
        ("baseline", "10:20:00", [11, 12, 13]),  # last_fill: the real fill at 10:20:00
        ("order_life", "10:50:00", [11, 12, 13, 14, 15]),  # the final event (cancel)
        ("eod", "16:00:00", [11, 12, 13, 14, 15, 16, 17]),  # close
    ],
)
def test_window_rules_end_resting_inclusively(run, at, cfg, scenario, window_end, contras) -> None:
    """Sweep 1 rests 100 from 10:10; it really fills 40 against 13 at 10:20 and is cancelled at 10:50. Each
    window end is inclusive: an incoming sell at the end nanosecond fills, one 1 ns later does not."""
    sells = {  # id: (time, nanos, quantity)
        11: ("10:10:30", 0, 10),
        12: ("10:10:30", 1, 10),
        13: ("10:20:00", 0, 40),
        14: ("10:20:00", 1, 10),
        15: ("10:50:00", 0, 10),
        16: ("10:50:00", 1, 10),
        17: ("15:00:00", 0, 10),
    }
    events = [
        new(1, at("10:10:00")),
        new(13, at("10:20:00"), 40, on_book=False, **CP_SELL),
        traded(13, at("10:20:00"), 40, 40, **CP_SELL),
        traded(1, at("10:20:00"), 100, 40, on_book=True),
        cancelled(1, at("10:50:00"), 100, 40),
    ]
    for oid, (hms, ns, q) in sells.items():
        if oid != 13:
            events += incoming(oid, at(hms, ns), q, **CP_SELL)
    res = run(
        events,
        trades=execution(1, 1, 13, at("10:20:00"), 40),
        config=cfg({"scenarios": WINDOW_SCENARIOS}),
        scenarios=(scenario,),
    )
    s = by_id(res.sim_orders[scenario])[1]
    assert s["sim_quantity"] == 100
    assert s["sim_window_end"] == at(window_end)
    # e.g. baseline: 10 + 10 + 40 = 60; eod: 10 + 10 + 40 + 10 + 10 + 10 + 10 = 100
    assert s["sim_filled_quantity"] == sum(sells[c][2] for c in contras)
    assert [f["contra_order_id"] for f in fills(res, scenario)] == contras


def test_half_cap_floors_the_fraction_of_what_is_left_after_incoming(run, at, cfg) -> None:
    """Sweep 2 buys 102 at 10:10 and really fills 21 there against resting sell 1 (residual 81); as incoming
    in the replay it also fills those 21 first. It then rests floor(f * min(81, 102 - 21))."""
    scenarios = {
        "half_cap": {"max_fill_fraction": 0.5},  # window last_fill = the 10:10 fill: sell 3 comes too late
        "half_life": {"max_fill_fraction": 0.5, "window": "order_life"},
        "order_life": {"window": "order_life"},
    }
    res = run(
        [
            new(1, at("10:05:00"), 21, **CP_SELL),
            traded(1, at("10:10:00"), 21, 21, **CP_SELL),
            new(2, at("10:10:00"), 102),
            traded(2, at("10:10:00"), 102, 21, on_book=True),  # residual 81, on the book
            cancelled(2, at("11:00:00"), 102, 21),
            *incoming(3, at("10:30:00"), 200, **CP_SELL),
        ],
        trades=execution(1, 2, 1, at("10:10:00"), 21),
        config=cfg({"scenarios": scenarios}),
        scenarios=tuple(scenarios),
    )
    assert by_id(res.sweeps)[2]["residual_after_arrival"] == 81
    got = {
        name: {
            k: by_id(res.sim_orders[name])[2][k]
            for k in ("sim_quantity", "sim_filled_incoming", "sim_filled_resting")
        }
        for name in scenarios
    }
    # floor(0.5 * 81) = floor(40.5) = 40; window ends 10:10: nothing more
    assert got["half_cap"] == {"sim_quantity": 40, "sim_filled_incoming": 21, "sim_filled_resting": 0}
    # 40 rest until 11:00; sell 3 (200) takes all 40
    assert got["half_life"] == {"sim_quantity": 40, "sim_filled_incoming": 21, "sim_filled_resting": 40}
    # no fraction: 81 rest and fill: 21 + 81 = 102
    assert got["order_life"] == {"sim_quantity": 81, "sim_filled_incoming": 21, "sim_filled_resting": 81}
    assert by_id(res.sim_orders["order_life"])[2]["sim_filled_quantity"] == 102


# ---- the simulated path, its shortfall, `set` -------------------------------------------------------------
def test_simulated_path_and_shortfall_on_the_same_denominator(run, at) -> None:
    """Buy sweep 1 (Q 300) arrives 10:30: really fills 50 dark against resting sell 2 at 3355 and 100 lit at
    3360, rests 150, fills 40 dark against sell 4 at 10:40 (3375) and is cancelled at 10:50 (110 unfilled).
    Replay: the lit 100 at arrival is kept; the dark 50 is replaced by the replay's incoming 50 against 2;
    the 150 then rest until the last real fill (10:40) and meet sells 3 (60 at 10:35) and 4 (40 at 10:40)."""
    t = at("10:30:00")
    res = run(
        [
            new(2, at("10:20:00"), 50, **CP_SELL),
            traded(2, t, 50, 50, **CP_SELL),
            new(1, t, 300, on_book=False),
            traded(1, t, 300, 50),  # dark 50 against 2
            traded(1, t, 300, 150, on_book=True),  # lit 100; the residual 150 rests
            *incoming(3, at("10:35:00"), 60, **CP_SELL),
            new(4, at("10:40:00"), 40, on_book=False, **CP_SELL),
            traded(4, at("10:40:00"), 40, 40, **CP_SELL),
            traded(1, at("10:40:00"), 300, 190, on_book=True),
            cancelled(1, at("10:50:00"), 300, 190),
        ],
        trades=[
            *execution(1, 1, 2, t, 50, 3355),
            tr(1, t, 3360, 100, LIT, matchgroupid=2),
            *execution(3, 1, 4, at("10:40:00"), 40, 3375),
        ],
        quotes=[
            quote(at("10:29:00"), 3350, 3360),  # 3355: m_arr; prices the 10:30 match
            quote(at("10:34:00"), 3360, 3370),  # 3365: prices the 10:35 match
            quote(at("10:39:00"), 3370, 3380),  # 3375: prices the 10:40 match; the simulated mark (10:40)
            quote(at("10:45:00"), 3380, 3390),  # 3385: the real m_end (before 10:50)
            quote(at("10:55:00"), 3390, 3400),
        ],
    )
    real = by_id(res.sweeps)[1]
    assert (real["order_quantity"], real["filled_quantity"], real["unfilled_quantity"]) == (300, 190, 110)
    assert real["end_mid"] == 3385.0
    # real IS * Q * m_arr / 1e4 = Σ q (p - 3355) + unfilled (m_end - 3355)
    #   = 50*0 + 100*5 + 40*20 + 110*30 = 0 + 500 + 800 + 3300 = 4600  ->  4600 / 300 / 3355 * 1e4 = 45.70...
    assert real["implementation_shortfall_bps"] == pytest.approx(4600 / 300 / 3355 * BPS, rel=1e-12)

    assert fills(res, "baseline") == [
        fill(1, 2, "incoming", t, 50, 3355.0),
        fill(1, 3, "resting", at("10:35:00"), 60, 3365.0),
        fill(1, 4, "resting", at("10:40:00"), 40, 3375.0),
    ]
    sim = by_id(res.sim_orders["baseline"])[1]
    assert sim["sim_quantity"] == 150  # min(residual 150, 300 - 50 filled as incoming)
    assert sim["sim_window_end"] == at("10:40:00")
    # lit 100 + incoming 50 + resting 60 + 40
    assert (sim["sim_filled_quantity"], sim["sim_filled_incoming"], sim["sim_filled_resting"]) == (
        250,
        50,
        100,
    )
    assert sim["sim_n_fills"] == 4
    assert (sim["sim_first_fill_time"], sim["sim_last_fill_time"]) == (t, at("10:40:00"))
    assert sim["sim_end_mid"] == 3375.0  # prevailing before min(10:40, close)
    # vwap = (100*3360 + 50*3355 + 60*3365 + 40*3375) / 250 = 840650 / 250 = 3362.6
    assert sim["sim_vwap"] == pytest.approx(3362.6, rel=1e-12)
    assert sim["sim_fill_ratio"] == pytest.approx(250 / 300, rel=1e-12)
    assert sim["sim_arrival_cost_bps"] == pytest.approx(7.6 / 3355 * BPS, rel=1e-12)  # 3362.6 - 3355
    assert sim["sim_opportunity_cost_bps"] == pytest.approx(20 / 3355 * BPS, rel=1e-12)  # 3375 - 3355
    # sim IS: 100*5 + 50*0 + 60*10 + 40*20 + 50 unfilled * 20 = 500 + 600 + 800 + 1000 = 2900
    assert sim["sim_implementation_shortfall_bps"] == pytest.approx(2900 / 300 / 3355 * BPS, rel=1e-12)
    # delta = sim - real = (2900 - 4600) / 300 / 3355 * 1e4 = -16.89 (the dark pool was better)
    assert sim["delta_implementation_shortfall_bps"] == pytest.approx(-1700 / 300 / 3355 * BPS, rel=1e-12)
    # effective spread: only the lit 100 at 3360 is off its m_t (3355); the replay fills are at their m_t
    assert sim["sim_effective_spread_bps"] == pytest.approx(100 * 2 * 5 / 3355 * BPS / 250, rel=1e-12)
    # VWTE: (150 * 0 + 60 * 300 + 40 * 600) / 250 = 168 s; real: 40 * 600 / 190
    assert sim["sim_vw_exec_time_s"] == pytest.approx(168.0, rel=1e-12)
    assert sim["delta_vw_exec_time_s"] == pytest.approx(168.0 - 24000 / 190, rel=1e-12)
    assert sim["delta_filled_quantity"] == 60  # 250 - 190
    assert sim["set"] == "both"


def test_set_says_who_filled(run, at) -> None:
    """both: real and simulated fills; real_only; sim_only; neither."""
    res = run(
        [
            # 1: fills 50 lit at arrival and rests 50; last_fill = arrival: its window ends at 10:10
            new(1, at("10:10:00"), on_book=False),
            traded(1, at("10:10:00"), 100, 50, on_book=True),
            cancelled(1, at("11:00:00"), 100, 50),
            # 2: fills 100 dark at arrival (contra outside the partition); no resting sell in the replay then
            new(2, at("10:20:00"), on_book=False),
            traded(2, at("10:20:00"), 100, 100),
            # 3 and 4 rest unfilled; the incoming sell 5 at 10:40 fills 3 (earlier), 4 is left
            *resting(3, at("10:30:00"), at("11:00:00")),
            *resting(4, at("10:35:00"), at("11:00:00")),
            *incoming(5, at("10:40:00"), **CP_SELL),
        ],
        trades=[tr(1, at("10:10:00"), 3360, 50, LIT), tr(2, at("10:20:00"), 3355, 100, CP_DARK)],
    )
    sim = by_id(res.sim_orders["baseline"])
    assert {k: v["set"] for k, v in sim.items()} == {1: "both", 2: "real_only", 3: "sim_only", 4: "neither"}
    # sim - real filled: 50 - 50, 0 - 100, 100 - 0, 0 - 0
    assert {k: v["delta_filled_quantity"] for k, v in sim.items()} == {1: 0, 2: -100, 3: 100, 4: 0}


# ---- the reality replay and its fidelity --------------------------------------------------------------
def test_reality_replay_reproduces_the_real_cp_executions(run, at) -> None:
    """Real buy 1 rests 100 from 10:10; incoming sell 2 (60, 10:30) and sell sweep 3 (40, 10:31) trade with it
    in Centre Point (dealsource 47). The replay (no sweep rests) gives the same two matches. A 47 execution
    with an order outside the partition's CP orders (999) is not a real CP execution."""
    res = run(
        [
            new(1, at("10:10:00"), **CP_BUY),
            traded(1, at("10:30:00"), 100, 60, on_book=True, **CP_BUY),
            traded(1, at("10:31:00"), 100, 100, **CP_BUY),
            new(2, at("10:30:00"), 60, on_book=False, **CP_SELL),
            traded(2, at("10:30:00"), 60, 60, **CP_SELL),
            new(3, at("10:31:00"), 40, on_book=False, side=2),  # a sell sweep
            traded(3, at("10:31:00"), 40, 40, side=2),
            new(5, at("10:50:00"), 30, on_book=False, **CP_BUY),
            traded(5, at("10:50:00"), 30, 30, **CP_BUY),
        ],
        trades=[
            *execution(1, 1, 2, at("10:30:00"), 60),
            *execution(2, 1, 3, at("10:31:00"), 40),
            *execution(3, 5, 999, at("10:50:00"), 30),
        ],
    )
    assert res.replay_fidelity.row(0, named=True) == {
        "real_cp_quantity": 100,  # 60 + 40 (the 30 with order 999 is not between two CP orders)
        "real_cp_executions": 2,
        "replayed_quantity": 100,  # (1, 2) 60 + (1, 3) 40
        "replayed_matches": 2,
        "reproduced_quantity": 100,  # min(60, 60) + min(40, 40)
        "real_pairs": 2,
        "reproduced_pairs": 2,
        "fidelity": 1.0,
        "preferencing_quantity": 0,
        "cp_booking_quantity": 0,
    }


def test_reality_replay_fidelity_below_one_when_an_earlier_order_takes_the_fill(run, at) -> None:
    """Real buys 1 (arrived 10:10) and 2 (10:20) rest 100 each. Sell 3 (150, 10:30) really traded 100 with 2
    and 50 with 1; time priority in the replay gives 100 to 1 and 50 to 2. Pair 4-5 traded only through
    preferencing (46) and pair 6-7 only through a UCP booking report (48): both replay, neither is
    reproduced."""
    res = run(
        [
            new(1, at("10:10:00"), **CP_BUY),
            traded(1, at("10:30:00"), 100, 50, on_book=True, **CP_BUY),
            cancelled(1, at("11:00:00"), 100, 50, **CP_BUY),
            new(2, at("10:20:00"), **CP_BUY),
            traded(2, at("10:30:00"), 100, 100, **CP_BUY),
            new(3, at("10:30:00"), 150, on_book=False, **CP_SELL),
            traded(3, at("10:30:00"), 150, 100, **CP_SELL),
            traded(3, at("10:30:00"), 150, 150, **CP_SELL),
            new(4, at("10:40:00"), 20, **CP_BUY),
            traded(4, at("10:45:00"), 20, 20, **CP_BUY),
            new(5, at("10:45:00"), 20, on_book=False, **CP_SELL),
            traded(5, at("10:45:00"), 20, 20, **CP_SELL),
            new(6, at("10:50:00"), 10, participantid=9, **CP_BUY),  # 6 and 7: one participant
            traded(6, at("10:55:00"), 10, 10, participantid=9, **CP_BUY),
            new(7, at("10:55:00"), 10, on_book=False, participantid=9, **CP_SELL),
            traded(7, at("10:55:00"), 10, 10, participantid=9, **CP_SELL),
        ],
        trades=[
            *execution(1, 2, 3, at("10:30:00"), 100),
            *execution(2, 1, 3, at("10:30:00"), 50),
            *execution(3, 4, 5, at("10:45:00"), 20, ds=CP_PREF),
            *execution(4, 6, 7, at("10:55:00"), 10, ds=CP_UCP),
        ],
    )
    # replay: 3 meets 1 (100, earliest) then 2 (50); 5 meets 4 (20: 1 is empty, 2's window ended at 10:30);
    # 7 meets 6 (10)
    assert res.replay_fidelity.row(0, named=True) == {
        "real_cp_quantity": 150,  # 100 + 50 (dealsource 47 only)
        "real_cp_executions": 2,
        "replayed_quantity": 180,  # 100 + 50 + 20 + 10
        "replayed_matches": 4,
        "reproduced_quantity": 100,  # pair (2, 3): min(50, 100) + pair (1, 3): min(100, 50)
        "real_pairs": 2,
        "reproduced_pairs": 2,
        "fidelity": pytest.approx(100 / 150, rel=1e-12),  # 0.667
        "preferencing_quantity": 20,
        "cp_booking_quantity": 10,
    }

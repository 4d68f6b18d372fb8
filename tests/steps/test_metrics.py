"""Execution metrics, hand-worked: one function for real and simulated fills (docs/methodology.md §6)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dpsim import schema
from dpsim.errors import InputError
from dpsim.steps import pl_types
from dpsim.steps.metrics import FILL_INPUT, METRICS, ORDER_INPUT, _fsum, execution_metrics
from dpsim.steps.quotes import USABLE_COLUMNS

S = 1_000_000_000  # ns per second
T0 = 1_725_494_400 * S  # 2024-09-05 10:00:00 AEST
CLOSE = T0 + 3600 * S  # far after every instant below
HORIZONS = (1.0, 10.0)
BPS = 1e4

# Usable quotes (bid/offer -> mid): t=0 3350/3360 -> 3355; t=10 3350/3370 -> 3360; t=20 3340/3360 -> 3350;
# t=30 3360/3380 -> 3370. Nothing before t=0.
# m_t of a fill = the latest quote STRICTLY before it (a quote at the fill's own nanosecond is its
# consequence); m_{t+h} = the latest quote AT OR BEFORE t + h.
QUOTES = pl.LazyFrame(
    [
        (T0 + 0 * S, 3350, 3360, 3355.0),
        (T0 + 10 * S, 3350, 3370, 3360.0),
        (T0 + 20 * S, 3340, 3360, 3350.0),
        (T0 + 30 * S, 3360, 3380, 3370.0),
    ],
    schema=USABLE_COLUMNS,
    orient="row",
)
ORDERS = pl.LazyFrame(
    [
        # order_id, side, arrival_time, order_quantity, arrival bid/offer/mid, end_time (m_end is the
        # prevailing mid before end_time). The arrival quote is the one strictly before arrival.
        (1, 1, T0 + 5 * S, 1000, 3350, 3360, 3355.0, T0 + 40 * S),  # buy
        (2, 2, T0 + 10 * S, 500, 3350, 3360, 3355.0, T0 + 30 * S),  # sell; t=10 quote is at its arrival
        (3, 1, T0 - 10 * S, 100, None, None, None, T0 - 5 * S),  # buy before any quote
        (4, 2, T0 + 5 * S, 200, 3350, 3360, 3355.0, T0 + 25 * S),  # sell, no fills
        (5, 1, T0 + 5 * S, 200, 3350, 3360, 3355.0, T0 + 20 * S),  # buy, auction + reported fills only
    ],
    schema=ORDER_INPUT,
    orient="row",
)
FILLS = pl.LazyFrame(
    [
        # order_id, timestamp, quantity, price, fill class
        (1, T0 + 10 * S, 300, 3370.0, "lit"),
        (1, T0 + 20 * S, 100, 3360.0, "lit"),
        (2, T0 + 30 * S, 300, 3370.0, "lit"),  # given out of time order on purpose
        (2, T0 + 20 * S, 200, 3340.0, "dark"),
        (3, T0 - 5 * S, 100, 3350.0, "lit"),
        (5, T0 + 20 * S, 100, 3380.0, "auction"),
        (5, T0 + 20 * S, 100, 3365.0, "reported"),
        (9, T0, 100, 3000.0, "lit"),  # an order not in `orders`: ignored
    ],
    schema=FILL_INPUT,
    orient="row",
)
METRIC_COLUMNS = list(schema.metric_columns(HORIZONS))


@pytest.fixture(scope="module")
def metrics() -> dict[int, dict]:
    out = METRICS(ORDERS, FILLS, QUOTES, HORIZONS, CLOSE, None).collect()
    assert list(out.columns) == ["order_id", *METRIC_COLUMNS]
    assert dict(out.schema) == {"order_id": pl.Int64, **pl_types(schema.metric_columns(HORIZONS))}
    assert sorted(out["order_id"]) == [1, 2, 3, 4, 5]  # one row per order (order 9 has no row)
    return {r["order_id"]: r for r in out.iter_rows(named=True)}


def test_buy_two_fills(metrics) -> None:
    m = metrics[1]
    assert (m["filled_quantity"], m["n_fills"]) == (400, 2)
    assert m["fill_ratio"] == 0.4  # 400 / 1000
    # vwap = (300*3370 + 100*3360) / 400 = 1,347,000 / 400
    assert m["vwap"] == 3367.5
    # buy: +1 * (3367.5 - 3355) / 3355 * 1e4 (paid above the arrival mid = a positive cost)
    assert m["arrival_cost_bps"] == pytest.approx(12.5 / 3355 * BPS, rel=1e-12)
    # m_end = prevailing mid before t=40 = the t=30 quote, 3370; 600 unfilled:
    # OC = +1 * (3370 - 3355) / 3355 * 1e4
    assert m["end_mid"] == 3370.0
    assert m["opportunity_cost_bps"] == pytest.approx(15 / 3355 * BPS, rel=1e-12)
    # IS = (400 * 12.5 + 600 * 15) / 1000 / 3355 * 1e4 = 14 / 3355 * 1e4
    assert m["implementation_shortfall_bps"] == pytest.approx(14 / 3355 * BPS, rel=1e-12)
    # m_t strictly before each fill: fill at t=10 -> the t=0 quote 3355 (v1 used the t=10 quote, 3360);
    # fill at t=20 -> the t=10 quote 3360. ES = Σ q*2s(p - m_t)/m_t * 1e4 / Σq
    # = (300 * 2 * 15 / 3355 + 100 * 2 * 0 / 3360) * 1e4 / 400
    assert m["effective_spread_bps"] == pytest.approx(300 * 30 / 3355 * BPS / 400, rel=1e-12)
    assert m["spread_notional"] == 1_347_000.0  # Σ q * p of the fills behind it
    # +1 s: fill at 10 -> at or before 11 = the t=10 quote 3360; fill at 20 -> at or before 21 = 3350.
    # RS = Σ q*2s(p - m_h)/m_t, PI = Σ q*2s(m_h - m_t)/m_t (both / m_t, * 1e4 / Σq)
    rs1 = (300 * 2 * (3370 - 3360) / 3355 + 100 * 2 * (3360 - 3350) / 3360) * BPS / 400
    pi1 = (300 * 2 * (3360 - 3355) / 3355 + 100 * 2 * (3350 - 3360) / 3360) * BPS / 400
    assert m["realized_spread_1s_bps"] == pytest.approx(rs1, rel=1e-12)
    assert m["price_impact_1s_bps"] == pytest.approx(pi1, rel=1e-12)
    # +10 s: fill at 10 -> at or before 20 = 3350 (its own nanosecond counts here); fill at 20 -> 30 = 3370
    rs10 = (300 * 2 * (3370 - 3350) / 3355 + 100 * 2 * (3360 - 3370) / 3360) * BPS / 400
    pi10 = (300 * 2 * (3350 - 3355) / 3355 + 100 * 2 * (3370 - 3360) / 3360) * BPS / 400
    assert m["realized_spread_10s_bps"] == pytest.approx(rs10, rel=1e-12)
    assert m["price_impact_10s_bps"] == pytest.approx(pi10, rel=1e-12)
    for h in (1, 10):  # effective = realized + impact
        total = m[f"realized_spread_{h}s_bps"] + m[f"price_impact_{h}s_bps"]
        assert total == pytest.approx(m["effective_spread_bps"], rel=1e-12)
        assert m[f"spread_notional_{h}s"] == 1_347_000.0
    # against the arrival far touch (the offer 3360 for a buy), not the limit:
    # +1 * (3360 - 3367.5) / 3355 * 1e4 (negative = worse than the quote)
    assert m["price_improvement_bps"] == pytest.approx(-7.5 / 3355 * BPS, rel=1e-12)
    assert (m["first_fill_time"], m["last_fill_time"]) == (T0 + 10 * S, T0 + 20 * S)
    assert (m["time_to_first_fill_s"], m["execution_duration_s"]) == (5.0, 10.0)
    assert m["vw_exec_time_s"] == 7.5  # (300*5 + 100*15) / 400


def test_sell_two_fills(metrics) -> None:
    m = metrics[2]
    assert (m["filled_quantity"], m["n_fills"], m["fill_ratio"]) == (500, 2, 1.0)
    # vwap = (200*3340 + 300*3370) / 500 = 1,679,000 / 500
    assert m["vwap"] == 3358.0
    # sell: -1 * (3358 - 3355) / 3355 * 1e4 (sold above the arrival mid = negative cost, better)
    assert m["arrival_cost_bps"] == pytest.approx(-3 / 3355 * BPS, rel=1e-12)
    # nothing unfilled: no opportunity cost, IS = AC; m_end (before t=30 -> the t=20 quote) still reported
    assert (m["opportunity_cost_bps"], m["end_mid"]) == (None, 3350.0)
    assert m["implementation_shortfall_bps"] == pytest.approx(-3 / 3355 * BPS, rel=1e-12)
    # fill at 20 (dark), m_t = the t=10 quote 3360: -2 * (3340 - 3360) / 3360 = +40/3360;
    # fill at 30 (lit), m_t = the t=20 quote 3350: -2 * (3370 - 3350) / 3350 = -40/3350
    es = (200 * 40 / 3360 - 300 * 40 / 3350) * BPS / 500
    assert m["effective_spread_bps"] == pytest.approx(es, rel=1e-12)
    # +1 s: fill at 20 -> 21 -> 3350; fill at 30 -> 31 -> 3370
    # RS = (200 * -2 * (3340 - 3350) / 3360 + 300 * -2 * (3370 - 3370) / 3350) * 1e4 / 500
    # PI = (200 * -2 * (3350 - 3360) / 3360 + 300 * -2 * (3370 - 3350) / 3350) * 1e4 / 500
    assert m["realized_spread_1s_bps"] == pytest.approx(200 * 20 / 3360 * BPS / 500, rel=1e-12)
    assert m["price_impact_1s_bps"] == pytest.approx(
        (200 * 20 / 3360 - 300 * 40 / 3350) * BPS / 500, rel=1e-12
    )
    # +10 s: fill at 20 -> 30 -> 3370; fill at 30 -> 40 -> the t=30 quote 3370 (the latest)
    # RS = (200 * -2 * (3340 - 3370) / 3360 + 0) * 1e4 / 500
    # PI = (200 * -2 * (3370 - 3360) / 3360 + 300 * -2 * (3370 - 3350) / 3350) * 1e4 / 500
    assert m["realized_spread_10s_bps"] == pytest.approx(200 * 60 / 3360 * BPS / 500, rel=1e-12)
    assert m["price_impact_10s_bps"] == pytest.approx(
        (-200 * 20 / 3360 - 300 * 40 / 3350) * BPS / 500, rel=1e-12
    )
    # far touch of a sell = the arrival bid 3350: -1 * (3350 - 3358) / 3355 * 1e4 (better than the bid)
    assert m["price_improvement_bps"] == pytest.approx(8 / 3355 * BPS, rel=1e-12)
    assert (m["time_to_first_fill_s"], m["execution_duration_s"]) == (10.0, 10.0)
    assert m["vw_exec_time_s"] == 16.0  # (200*10 + 300*20) / 500


def test_fill_without_quotes(metrics) -> None:
    m = metrics[3]
    assert (m["filled_quantity"], m["vwap"], m["fill_ratio"]) == (100, 3350.0, 1.0)
    # no arrival mid -> no arrival cost, no shortfall, no price improvement (no far touch either);
    # the fill at -5 s has no quote strictly before it -> no m_t: it is left out of the effective spread
    # and of RS/PI at every horizon (v1 marked it out at +10 s against the t=0 quote)
    nulls = [
        "arrival_cost_bps",
        "implementation_shortfall_bps",
        "effective_spread_bps",
        "price_improvement_bps",
    ]
    assert [m[c] for c in nulls] == [None] * 4
    assert [m[f"realized_spread_{h}s_bps"] for h in (1, 10)] == [None, None]
    assert [m[f"price_impact_{h}s_bps"] for h in (1, 10)] == [None, None]
    assert (m["spread_notional"], m["spread_notional_10s"]) == (0.0, 0.0)
    assert (m["opportunity_cost_bps"], m["end_mid"]) == (None, None)  # nothing unfilled; no quote before -5 s
    assert (m["time_to_first_fill_s"], m["vw_exec_time_s"]) == (5.0, 5.0)


def test_order_without_fills(metrics) -> None:
    m = metrics[4]
    assert (m["filled_quantity"], m["n_fills"], m["fill_ratio"]) == (0, 0, 0.0)
    # m_end = prevailing before t=25 = the t=20 quote 3350; all 200 unfilled:
    # OC = -1 * (3350 - 3355) / 3355 * 1e4 = +14.9 (the price fell while a sell waited: a cost); IS = OC
    assert m["end_mid"] == 3350.0
    assert m["opportunity_cost_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    assert m["implementation_shortfall_bps"] == pytest.approx(5 / 3355 * BPS, rel=1e-12)
    notionals = ["spread_notional", "spread_notional_1s", "spread_notional_10s"]
    assert [m[c] for c in notionals] == [0.0, 0.0, 0.0]
    defined = {"filled_quantity", "n_fills", "fill_ratio", "end_mid", "opportunity_cost_bps"}
    defined |= {"implementation_shortfall_bps", *notionals}
    assert all(m[c] is None for c in METRIC_COLUMNS if c not in defined)


def test_auction_and_reported_fills_have_no_spread(metrics) -> None:
    m = metrics[5]
    # vwap = (100*3380 + 100*3365) / 200 = 3372.5; AC = (3372.5 - 3355) / 3355 * 1e4
    assert (m["filled_quantity"], m["n_fills"], m["vwap"]) == (200, 2, 3372.5)
    assert m["arrival_cost_bps"] == pytest.approx(17.5 / 3355 * BPS, rel=1e-12)
    # neither an auction print nor a reported trade has a prevailing spread: ES/RS/PI null, weight 0
    spreads = [
        "effective_spread_bps",
        *(f"{k}_{h}s_bps" for k in ("realized_spread", "price_impact") for h in (1, 10)),
    ]
    assert [m[c] for c in spreads] == [None] * 5
    assert m["spread_notional"] == 0.0
    # far touch 3360: (3360 - 3372.5) / 3355 * 1e4
    assert m["price_improvement_bps"] == pytest.approx(-12.5 / 3355 * BPS, rel=1e-12)


def test_prefix_for_simulated_fills(metrics) -> None:
    out = execution_metrics(ORDERS, FILLS, QUOTES, HORIZONS, CLOSE, None, prefix="sim_").collect()
    assert out.columns == ["order_id", *(f"sim_{c}" for c in METRIC_COLUMNS)]
    sim = {r["order_id"]: r for r in out.iter_rows(named=True)}
    assert all(sim[i][f"sim_{c}"] == metrics[i][c] for i in metrics for c in METRIC_COLUMNS)


def test_half_unit_fill_prices() -> None:
    # Simulated fills at a half-unit mid (3357.5) keep it: vwap = (100*3357.5 + 100*3360) / 200 = 3358.75
    fills = pl.LazyFrame(
        [(1, T0 + 10 * S, 100, 3357.5, "dark"), (1, T0 + 10 * S, 100, 3360.0, "dark")],
        schema=FILL_INPUT,
        orient="row",
    )
    out = execution_metrics(ORDERS.filter(pl.col("order_id") == 1), fills, QUOTES, HORIZONS, CLOSE, None)
    assert out.collect()["vwap"].item() == 3358.75


def test_step_rejects_orders_without_end_time() -> None:
    with pytest.raises(InputError, match=r"step 'metrics'.*end_time \(missing\)"):
        METRICS(ORDERS.drop("end_time"), FILLS, QUOTES, HORIZONS, CLOSE, None)


def test_float_sums_do_not_depend_on_row_order() -> None:
    """A group's float sum is its terms sorted, added one after another: the same bits whatever order its
    rows arrive in (joins reorder them from run to run), nulls skipped, 0.0 for none; here groups long
    enough for a vectorised sum's blocks (up to 2,000 terms) and values whose sum depends on the order."""
    rng = np.random.default_rng(7)
    sizes = [1, 2, 3, 17, 129, 2000]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    values = rng.standard_normal(groups.size) * 1e3 / 7
    frame = pl.DataFrame({"g": groups, "x": values}).with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 3).then(None).otherwise(pl.col("x")).alias("x")
    )
    frame = pl.concat([frame, pl.DataFrame({"g": [len(sizes)], "x": [None]}, schema=frame.schema)])
    expected = []
    for g in range(len(sizes) + 1):
        total = 0.0
        for v in sorted(x for x in frame.filter(pl.col("g") == g)["x"].to_list() if x is not None):
            total += v  # one after another, in ascending order
        expected.append(total)
    seen = set()
    for seed in range(6):
        shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
        sums = shuffled.group_by("g").agg(_fsum(pl.col("x"))).sort("g")["x"].to_list()
        assert sums == expected  # exactly, bit for bit
        seen.add(tuple(sums))
    assert len(seen) == 1
    # the order matters for these values: a plain sum in another order gives other bits
    assert sum(reversed(sorted(v for v in values[groups == 5]))) != expected[5]

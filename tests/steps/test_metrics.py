"""Fill metrics, hand-worked: one function for real and simulated fills (DOMAIN §5.4)."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim import schema
from dpsim.steps.metrics import METRICS, fill_metrics
from dpsim.steps.quotes import QUOTE_COLUMNS

S = 1_000_000_000  # ns per second
T0 = 1_725_494_400 * S  # 2024-09-05 10:00:00 AEST
HORIZONS = (1.0, 10.0)

# Quotes (bid/offer -> mid): t=0 3350/3360 -> 3355; t=10 3350/3370 -> 3360; t=20 3340/3360 -> 3350;
# t=30 3360/3380 -> 3370. Nothing before t=0.
QUOTES = pl.LazyFrame(
    [
        (T0 + 0 * S, 3350, 3360, 3355.0, "feed"),
        (T0 + 10 * S, 3350, 3370, 3360.0, "feed"),
        (T0 + 20 * S, 3340, 3360, 3350.0, "feed"),
        (T0 + 30 * S, 3360, 3380, 3370.0, "feed"),
    ],
    schema=QUOTE_COLUMNS,
    orient="row",
)
ORDERS = pl.LazyFrame(
    [
        # order_id, side, arrival_time, arrival_quantity, arrival_mid, limit_price
        (1, 1, T0, 1000, 3355.0, 3400),  # buy, arrives at t=0
        (2, 2, T0 + 10 * S, 500, 3360.0, 3340),  # sell, arrives at t=10
        (3, 1, T0 - 10 * S, 100, None, 0),  # buy before any quote, no limit
        (4, 2, T0, 200, 3355.0, 3300),  # no fills
    ],
    schema={
        "order_id": pl.Int64,
        "side": pl.Int64,
        "arrival_time": pl.Int64,
        "arrival_quantity": pl.Int64,
        "arrival_mid": pl.Float64,
        "limit_price": pl.Int64,
    },
    orient="row",
)
FILLS = pl.LazyFrame(
    [
        # order_id, timestamp, quantity, price
        (1, T0 + 10 * S, 300, 3370.0),
        (1, T0 + 20 * S, 100, 3360.0),
        (2, T0 + 30 * S, 300, 3370.0),  # given out of time order on purpose
        (2, T0 + 20 * S, 200, 3340.0),
        (3, T0 - 5 * S, 100, 3350.0),
        (9, T0, 100, 3000.0),  # an order not in `orders`: ignored
    ],
    schema={"order_id": pl.Int64, "timestamp": pl.Int64, "quantity": pl.Int64, "price": pl.Float64},
    orient="row",
)


@pytest.fixture(scope="module")
def metrics() -> dict[int, dict]:
    out = METRICS(ORDERS, FILLS, QUOTES, HORIZONS).collect()
    assert list(out.columns) == ["order_id", *schema.metric_columns(HORIZONS)]
    assert out.schema["filled_quantity"] == pl.Int64 and out.schema["vwap"] == pl.Float64
    return {r["order_id"]: r for r in out.iter_rows(named=True)}


def test_buy_two_fills(metrics) -> None:
    m = metrics[1]
    assert (m["filled_quantity"], m["n_fills"]) == (400, 2)
    assert m["fill_ratio"] == 0.4  # 400 / 1000
    # vwap = (300*3370 + 100*3360) / 400 = 1,347,000 / 400
    assert m["vwap"] == 3367.5
    # buy: +1 * (3367.5 - 3355) / 3355 * 1e4 (paid above the arrival mid = a positive cost)
    assert m["arrival_cost_bps"] == pytest.approx(12.5 / 3355 * 1e4)
    # mids as of each fill: t=10 -> 3360, t=20 -> 3350; Σ q*2s(p-m)/m*1e4 / Σq
    assert m["effective_spread_bps"] == pytest.approx((300 * 2 * 10 / 3360 + 100 * 2 * 10 / 3350) * 1e4 / 400)
    # limit 3400: bought 32.5 below it = +32.5/3400*1e4 (positive = better than the limit)
    assert m["price_improvement_bps"] == pytest.approx(32.5 / 3400 * 1e4)
    assert (m["first_fill_time"], m["last_fill_time"]) == (T0 + 10 * S, T0 + 20 * S)
    assert (m["time_to_first_fill_s"], m["execution_duration_s"]) == (10.0, 10.0)
    assert m["vw_exec_time_s"] == 12.5  # (300*10 + 100*20) / 400
    # +1 s: fill 1 at 11 s -> mid 3360, fill 2 at 21 s -> 3350: Σ q*s(m-p)/p*1e4 / Σq
    assert m["markout_1s_bps"] == pytest.approx(
        (300 * (3360 - 3370) / 3370 + 100 * (3350 - 3360) / 3360) * 1e4 / 400
    )
    # +10 s: fill 1 at 20 s -> 3350, fill 2 at 30 s -> 3370
    assert m["markout_10s_bps"] == pytest.approx(
        (300 * (3350 - 3370) / 3370 + 100 * (3370 - 3360) / 3360) * 1e4 / 400
    )


def test_sell_two_fills(metrics) -> None:
    m = metrics[2]
    assert (m["filled_quantity"], m["n_fills"], m["fill_ratio"]) == (500, 2, 1.0)
    # vwap = (200*3340 + 300*3370) / 500 = 1,679,000 / 500
    assert m["vwap"] == 3358.0
    # sell: -1 * (3358 - 3360) / 3360 * 1e4 = +5.95 (sold below the arrival mid = a cost)
    assert m["arrival_cost_bps"] == pytest.approx(2 / 3360 * 1e4)
    # fill at 20 s vs mid 3350: -1*2*(3340-3350)/3350 = +20/3350; fill at 30 s at the mid 3370: 0
    assert m["effective_spread_bps"] == pytest.approx((200 * 20 / 3350 + 300 * 0) * 1e4 / 500)
    # limit 3340, sold at 3358 on average: -1 * (3340 - 3358) / 3340 * 1e4 = +53.9 (better than the limit)
    assert m["price_improvement_bps"] == pytest.approx(18 / 3340 * 1e4)
    assert (m["time_to_first_fill_s"], m["execution_duration_s"]) == (10.0, 10.0)
    assert m["vw_exec_time_s"] == 16.0  # (200*10 + 300*20) / 500
    # +1 s: 21 s -> 3350: -1*(3350-3340)/3340; 31 s -> 3370: -1*(3370-3370)/3370 = 0
    assert m["markout_1s_bps"] == pytest.approx(200 * (-10 / 3340) * 1e4 / 500)
    # +10 s: 30 s -> 3370: -1*(3370-3340)/3340; 40 s -> 3370 (latest quote): 0
    assert m["markout_10s_bps"] == pytest.approx(200 * (-30 / 3340) * 1e4 / 500)


def test_fill_without_quotes_and_order_without_limit(metrics) -> None:
    m = metrics[3]
    assert (m["filled_quantity"], m["vwap"], m["fill_ratio"]) == (100, 3350.0, 1.0)
    # no arrival mid -> no arrival cost; fill at -5 s has no quote at or before it -> no effective spread;
    # +1 s = -4 s still none; no limit (price 0) -> no price improvement
    assert (m["arrival_cost_bps"], m["effective_spread_bps"], m["price_improvement_bps"]) == (
        None,
        None,
        None,
    )
    assert m["markout_1s_bps"] is None
    # +10 s = 5 s -> mid 3355: +1 * (3355 - 3350) / 3350 * 1e4
    assert m["markout_10s_bps"] == pytest.approx(5 / 3350 * 1e4)
    assert (m["time_to_first_fill_s"], m["vw_exec_time_s"]) == (5.0, 5.0)


def test_order_without_fills(metrics) -> None:
    m = metrics[4]
    assert (m["filled_quantity"], m["n_fills"], m["fill_ratio"]) == (0, 0, 0.0)
    nulls = [
        c for c in schema.metric_columns(HORIZONS) if c not in ("filled_quantity", "n_fills", "fill_ratio")
    ]
    assert all(m[c] is None for c in nulls)


def test_prefix_for_simulated_fills(metrics) -> None:
    out = fill_metrics(ORDERS, FILLS, QUOTES, HORIZONS, prefix="sim_").collect()
    assert out.columns == ["order_id", *(f"sim_{c}" for c in schema.metric_columns(HORIZONS))]
    sim = {r["order_id"]: r for r in out.iter_rows(named=True)}
    assert all(sim[i][f"sim_{c}"] == metrics[i][c] for i in metrics for c in schema.metric_columns(HORIZONS))


def test_half_unit_fill_prices() -> None:
    # Simulated fills at a half-unit mid (3357.5) keep it: vwap = (100*3357.5 + 100*3360) / 200 = 3358.75
    fills = pl.LazyFrame(
        {"order_id": [1, 1], "timestamp": [T0, T0], "quantity": [100, 100], "price": [3357.5, 3360.0]},
        schema={"order_id": pl.Int64, "timestamp": pl.Int64, "quantity": pl.Int64, "price": pl.Float64},
    )
    out = fill_metrics(ORDERS.filter(pl.col("order_id") == 1), fills, QUOTES, HORIZONS).collect()
    assert out["vwap"].item() == 3358.75

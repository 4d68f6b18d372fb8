"""Metrics: execution metrics of a set of orders from a set of fills, real or simulated (DOMAIN §5.4).

One function serves both: the real pipeline passes the orders' trades, the simulation its simulated
fills with `prefix="sim_"`, so both sides of a comparison are computed by the same code. Everything is
volume weighted and signed by side (s = +1 buy, -1 sell; positive cost = worse than the mid):
- vwap = Σpq / Σq; fill_ratio = filled / arrival quantity (0 without fills)
- arrival_cost_bps = s (vwap - m_arrival) / m_arrival · 1e4 (null without an arrival mid)
- effective_spread_bps = Σ q · 2s (p - m_t) / m_t · 1e4 / Σq, m_t the quote mid as of each fill; fills
  without a mid leave both sums
- price_improvement_bps = s (limit - vwap) / limit · 1e4, positive = better than the limit; null for
  orders without a limit (price <= 0, pure mid peg)
- time_to_first_fill_s, execution_duration_s (last - first fill), vw_exec_time_s = Σ q (t - t_arrival) / Σq
- markout_<h>s_bps = Σ q · s (m_{t+h} - p) / p · 1e4 / Σq with m_{t+h} the mid as of fill time + h;
  fills without such a mid leave both sums (null when none has one)
Orders without fills keep their row: filled_quantity 0, n_fills 0, fill_ratio 0, null prices and costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dpsim import schema
from dpsim.steps import Step, pl_types
from dpsim.steps.quotes import MID, asof_quote

BUY = 1
SELL = 2
ORDER_INPUT: dict[str, pl.DataType] = {
    schema.ORDER_ID: pl.Int64(),
    schema.SIDE: pl.Int64(),
    "arrival_time": pl.Int64(),
    "arrival_quantity": pl.Int64(),
    "arrival_mid": pl.Float64(),
    "limit_price": pl.Int64(),
}
FILL_INPUT: dict[str, pl.DataType] = {
    schema.ORDER_ID: pl.Int64(),
    schema.TIMESTAMP: pl.Int64(),
    schema.QUANTITY: pl.Int64(),
    schema.PRICE: pl.Float64(),
}
NS = 1e9


def fill_metrics(
    orders: pl.LazyFrame,
    fills: pl.LazyFrame,
    quotes: pl.LazyFrame,
    horizons_s: Sequence[float],
    prefix: str = "",
) -> pl.LazyFrame:
    """One row per order of `orders`: `order_id` + `schema.metric_columns(horizons_s)` named with `prefix`."""
    markouts = schema.markout_columns(horizons_s)
    per_fill = _per_fill_terms(orders, fills, quotes, horizons_s, markouts)
    q = pl.col("_q")
    weighted = [
        _weighted("_es", "_es_q").alias("effective_spread_bps"),
        *(_weighted(f"_{m}", f"_{m}_q").alias(m) for m in markouts),
    ]
    totals = per_fill.group_by(schema.ORDER_ID).agg(
        pl.col(schema.QUANTITY).sum().alias("filled_quantity"),
        pl.len().cast(pl.Int64).alias("n_fills"),
        (_fsum(pl.col(schema.PRICE) * q) / q.sum()).alias("vwap"),
        pl.col(schema.TIMESTAMP).min().alias("first_fill_time"),
        pl.col(schema.TIMESTAMP).max().alias("last_fill_time"),
        (_fsum(pl.col("_wait_s") * q) / q.sum()).alias("vw_exec_time_s"),
        *weighted,
    )
    s = _sign(pl.col(schema.SIDE))
    vwap, mid, limit = pl.col("vwap"), pl.col("arrival_mid"), pl.col("limit_price")
    out = (
        orders.select(list(ORDER_INPUT))
        .join(totals, on=schema.ORDER_ID, how="left", maintain_order="left")
        .with_columns(pl.col("filled_quantity", "n_fills").fill_null(0))
        .with_columns(
            pl.when(pl.col("arrival_quantity") > 0)
            .then(pl.col("filled_quantity") / pl.col("arrival_quantity"))
            .alias("fill_ratio"),
            (s * (vwap - mid) / mid * 1e4).alias("arrival_cost_bps"),
            pl.when(limit > 0).then(s * (limit - vwap) / limit * 1e4).alias("price_improvement_bps"),
            ((pl.col("first_fill_time") - pl.col("arrival_time")) / NS).alias("time_to_first_fill_s"),
            ((pl.col("last_fill_time") - pl.col("first_fill_time")) / NS).alias("execution_duration_s"),
        )
    )
    metric_types = pl_types(schema.metric_columns(horizons_s))
    return out.select(
        schema.ORDER_ID, *(pl.col(c).cast(t).alias(f"{prefix}{c}") for c, t in metric_types.items())
    )


def _weighted(numerator: str, weight: str) -> pl.Expr:
    """Σ numerator / Σ weight over the fills that have a weight; null when none has."""
    w = pl.col(weight).sum()
    return pl.when(w > 0).then(_fsum(pl.col(numerator)) / w)


def _fsum(terms: pl.Expr) -> pl.Expr:
    """Float sum in a fixed order: the terms sorted, then added one after another (a cumulative sum).

    Polars' vectorised `sum` adds in blocks whose bounds depend on memory layout, so the last bits of a
    float sum could change from run to run; this keeps result files byte-identical run to run and
    executor to executor."""
    return terms.drop_nulls().sort().cum_sum().last().fill_null(0.0)


def _sign(side: pl.Expr) -> pl.Expr:
    return pl.when(side == BUY).then(1.0).when(side == SELL).then(-1.0)


def _per_fill_terms(
    orders: pl.LazyFrame,
    fills: pl.LazyFrame,
    quotes: pl.LazyFrame,
    horizons_s: Sequence[float],
    markouts: Sequence[str],
) -> pl.LazyFrame:
    """Fills of `orders` with their weight `_q` and the numerators/weights of every weighted metric."""
    f = fills.select(list(FILL_INPUT)).join(
        orders.select(schema.ORDER_ID, schema.SIDE, "arrival_time"), on=schema.ORDER_ID, how="inner"
    )
    f = asof_quote(f, quotes, on=schema.TIMESTAMP, prefix="_t_")
    for h, m in zip(horizons_s, markouts, strict=True):
        f = asof_quote(
            f.with_columns((pl.col(schema.TIMESTAMP) + round(h * NS)).alias(f"_at_{m}")),
            quotes,
            on=f"_at_{m}",
            prefix=f"_{m}_",
        )
    q = pl.col(schema.QUANTITY).cast(pl.Float64)
    p = pl.col(schema.PRICE)
    s = _sign(pl.col(schema.SIDE))
    m_t = pl.col(f"_t_{MID}")
    terms = [
        q.alias("_q"),
        ((pl.col(schema.TIMESTAMP) - pl.col("arrival_time")) / NS).alias("_wait_s"),
        (q * 2 * s * (p - m_t) / m_t * 1e4).alias("_es"),
        pl.when(m_t.is_not_null()).then(q).alias("_es_q"),
    ]
    for m in markouts:
        m_h = pl.col(f"_{m}_{MID}")
        usable = m_h.is_not_null() & (p > 0)
        terms += [
            pl.when(usable).then(q * s * (m_h - p) / p * 1e4).alias(f"_{m}"),
            pl.when(usable).then(q).alias(f"_{m}_q"),
        ]
    return f.with_columns(terms)


METRICS = Step(
    name="metrics",
    fn=fill_metrics,
    requires=ORDER_INPUT,
    adds=pl_types(schema.FILL_METRICS),
)

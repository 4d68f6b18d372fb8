"""Metrics: execution metrics of a set of orders from a set of fills, real or simulated.

One function serves both: the real pipeline passes the sweeps' fills, the comparison the simulated
path's fills with `prefix="sim_"`, so both sides of a comparison are computed by the same code.
s = +1 buy, -1 sell; Q = order_quantity; m_arr = arrival mid; m_t = prevailing mid before the fill;
m_{t+h} = latest usable mid at or before min(t + h, close); m_end = prevailing mid before `end_time`.
Costs: positive bps = worse for the order's owner (docs/methodology.md states each with its convention):
- vwap = Σpq / Σq; fill_ratio = filled / Q
- arrival_cost_bps = s (vwap − m_arr) / m_arr · 1e4 (cost of the filled part)
- opportunity_cost_bps = s (m_end − m_arr) / m_arr · 1e4 on unfilled = max(Q − filled, 0) (null when 0)
- implementation_shortfall_bps = (filled · AC + unfilled · OC) / Q (Perold; one denominator Q · m_arr)
- effective_spread_bps = Σ q · 2s (p − m_t) / m_t · 1e4 / Σq over lit and dark fills having m_t
- realized_spread_<h>s_bps = Σ q · 2s (p − m_{t+h}) / m_t · 1e4 / Σq, price_impact_<h>s_bps =
  Σ q · 2s (m_{t+h} − m_t) / m_t · 1e4 / Σq over the same fills having m_{t+h} (effective = realized +
  impact fill by fill, Rule 605 / highfrequency)
- price_improvement_bps = s (far − vwap) / m_arr · 1e4, far = arrival offer (buy) / bid (sell)
- time_to_first_fill_s, execution_duration_s (last − first), vw_exec_time_s = Σ q (t − t_arrival) / Σq
Orders without fills keep their row (filled 0). A zero is 0.0, never −0.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dpsim import schema
from dpsim.steps import Step, pl_types
from dpsim.steps.quotes import MID, at_or_before, prevailing

BUY = 1
SELL = 2
SPREAD_CLASSES = ("lit", "dark")  # an auction print or a reported trade has no prevailing spread
ORDER_INPUT: dict[str, pl.DataType] = {
    schema.ORDER_ID: pl.Int64(),
    schema.SIDE: pl.Int64(),
    schema.ARRIVAL_TIME: pl.Int64(),
    schema.ORDER_QUANTITY: pl.Int64(),
    schema.ARRIVAL_BID: pl.Int64(),
    schema.ARRIVAL_OFFER: pl.Int64(),
    schema.ARRIVAL_MID: pl.Float64(),
    schema.END_TIME: pl.Int64(),  # the unfilled part is marked at the prevailing mid before this instant
}
FILL_INPUT: dict[str, pl.DataType] = {
    schema.ORDER_ID: pl.Int64(),
    schema.TIMESTAMP: pl.Int64(),
    schema.QUANTITY: pl.Int64(),
    schema.PRICE: pl.Float64(),
    schema.FILL_CLASS: pl.String(),
}
NS = 1e9


def execution_metrics(
    orders: pl.LazyFrame,
    fills: pl.LazyFrame,
    quotes: pl.LazyFrame,
    horizons_s: Sequence[float],
    close: int,
    max_quote_age_s: float | None,
    prefix: str = "",
    by: Sequence[str] = (),
) -> pl.LazyFrame:
    """One row per order of `orders`: `order_id` + `schema.metric_columns(horizons_s)` named with `prefix`.

    `by` names extra key columns that `orders` and `fills` both carry (e.g. `scenario`), so that one
    query measures several sets of fills of the same orders at once."""
    keys = [*by, schema.ORDER_ID]
    spreads = [
        (schema.realized_spread_column(h), schema.price_impact_column(h), schema.horizon_notional_column(h))
        for h in horizons_s
    ]
    per_fill = _per_fill_terms(orders, fills, quotes, horizons_s, close, max_quote_age_s, keys)
    q = pl.col("_q")
    totals = per_fill.group_by(keys).agg(
        pl.col(schema.QUANTITY).sum().alias(schema.FILLED_QUANTITY),
        pl.len().cast(pl.Int64).alias(schema.N_FILLS),
        (_fsum(pl.col(schema.PRICE) * q) / q.sum()).alias(schema.VWAP),
        pl.col(schema.TIMESTAMP).min().alias(schema.FIRST_FILL_TIME),
        pl.col(schema.TIMESTAMP).max().alias(schema.LAST_FILL_TIME),
        (_fsum(pl.col("_wait_s") * q) / q.sum()).alias("vw_exec_time_s"),
        _weighted("_es", "_es_q").alias("effective_spread_bps"),
        _fsum(pl.col("_es_n")).alias(schema.SPREAD_NOTIONAL),
        *(_weighted(f"_rs{i}", f"_h{i}_q").alias(rs) for i, (rs, _, _) in enumerate(spreads)),
        *(_weighted(f"_pi{i}", f"_h{i}_q").alias(pi) for i, (_, pi, _) in enumerate(spreads)),
        *(_fsum(pl.col(f"_h{i}_n")).alias(notional) for i, (_, _, notional) in enumerate(spreads)),
    )
    orders = prevailing(orders.select(*by, *ORDER_INPUT), quotes, schema.END_TIME, "_end_", max_quote_age_s)
    s = _sign(pl.col(schema.SIDE))
    vwap, m_arr, big_q = pl.col(schema.VWAP), pl.col(schema.ARRIVAL_MID), pl.col(schema.ORDER_QUANTITY)
    filled = pl.col(schema.FILLED_QUANTITY)
    unfilled = pl.max_horizontal(big_q - filled, pl.lit(0, dtype=pl.Int64))
    far = (
        pl.when(pl.col(schema.SIDE) == BUY)
        .then(pl.col(schema.ARRIVAL_OFFER))
        .otherwise(pl.col(schema.ARRIVAL_BID))
    )
    out = (
        orders.join(totals, on=keys, how="left", maintain_order="left")
        .with_columns(
            pl.col(schema.FILLED_QUANTITY, schema.N_FILLS).fill_null(0),
            pl.col(schema.SPREAD_NOTIONAL, *(n for _, _, n in spreads)).fill_null(0.0),
            pl.col(f"_end_{MID}").alias(schema.END_MID),
        )
        .with_columns(
            pl.when(big_q > 0).then(filled / big_q).alias("fill_ratio"),
            (s * (vwap - m_arr) / m_arr * 1e4).alias("arrival_cost_bps"),
            pl.when(unfilled > 0)
            .then(s * (pl.col(schema.END_MID) - m_arr) / m_arr * 1e4)
            .alias("opportunity_cost_bps"),
            (s * (far - vwap) / m_arr * 1e4).alias("price_improvement_bps"),
            ((pl.col(schema.FIRST_FILL_TIME) - pl.col(schema.ARRIVAL_TIME)) / NS).alias(
                "time_to_first_fill_s"
            ),
            ((pl.col(schema.LAST_FILL_TIME) - pl.col(schema.FIRST_FILL_TIME)) / NS).alias(
                "execution_duration_s"
            ),
            unfilled.alias("_unfilled"),
        )
        .with_columns(_implementation_shortfall().alias("implementation_shortfall_bps"))
    )
    metric_types = pl_types(schema.metric_columns(horizons_s))
    return out.select(
        *keys,
        *(_no_negative_zero(pl.col(c).cast(t)).alias(f"{prefix}{c}") for c, t in metric_types.items()),
    )


def _implementation_shortfall() -> pl.Expr:
    """(filled · AC + unfilled · OC) / Q: null without an arrival mid or Q, or with unfilled but no m_end."""
    filled, unfilled, big_q = (
        pl.col(schema.FILLED_QUANTITY),
        pl.col("_unfilled"),
        pl.col(schema.ORDER_QUANTITY),
    )
    filled_part = pl.when(filled > 0).then(filled * pl.col("arrival_cost_bps")).otherwise(0.0)
    unfilled_part = pl.when(unfilled > 0).then(unfilled * pl.col("opportunity_cost_bps")).otherwise(0.0)
    defined = pl.col(schema.ARRIVAL_MID).is_not_null() & (big_q > 0)
    return pl.when(defined).then((filled_part + unfilled_part) / big_q)


def _no_negative_zero(expr: pl.Expr) -> pl.Expr:
    """−0.0 becomes 0.0 (a sell's zero cost is s · 0 = −0.0); other values and nulls pass unchanged."""
    return pl.when(expr == 0).then(expr.abs()).otherwise(expr)


def _weighted(numerator: str, weight: str) -> pl.Expr:
    """Σ numerator / Σ weight over the fills that have a weight; null when none has."""
    w = pl.col(weight).sum()
    return pl.when(w > 0).then(_fsum(pl.col(numerator)) / w)


def _fsum(terms: pl.Expr) -> pl.Expr:
    """Float sum in a fixed order: the terms sorted, then added one after another (nulls skipped; 0.0 when
    none is left).

    The rows of a group reach an aggregation in the order of the joins before it, which changes from run
    to run, so a plain `sum` changed the last bits of a float sum; sorting the terms first keeps result
    files byte-identical run to run and executor to executor. Not `sort().sum()`: the optimizer drops a
    sort before an order-insensitive aggregation. `implode().list.sum()` adds the same values in the same
    order as a cumulative sum's last value (the same bits) without its per-row output: the DRR day's
    partition computed in 0.79x the time (12 alternated rounds)."""
    return terms.drop_nulls().sort().implode().list.sum()


def _sign(side: pl.Expr) -> pl.Expr:
    return pl.when(side == BUY).then(1.0).when(side == SELL).then(-1.0)


def _per_fill_terms(
    orders: pl.LazyFrame,
    fills: pl.LazyFrame,
    quotes: pl.LazyFrame,
    horizons_s: Sequence[float],
    close: int,
    max_quote_age_s: float | None,
    keys: Sequence[str],
) -> pl.LazyFrame:
    """Fills of `orders` with their weight `_q` and the numerators/weights of every weighted metric."""
    extra = [k for k in keys if k != schema.ORDER_ID]
    f = fills.select(*extra, *FILL_INPUT).join(
        orders.select(*keys, schema.SIDE, schema.ARRIVAL_TIME), on=list(keys), how="inner"
    )
    f = prevailing(f, quotes, schema.TIMESTAMP, "_t_", max_quote_age_s)
    for i, h in enumerate(horizons_s):
        f = at_or_before(
            f.with_columns((pl.col(schema.TIMESTAMP) + round(h * NS)).alias(f"_at{i}")),
            quotes,
            f"_at{i}",
            f"_h{i}_",
            max_quote_age_s,
            close,
        )
    q = pl.col(schema.QUANTITY).cast(pl.Float64)
    p = pl.col(schema.PRICE)
    s2 = 2.0 * _sign(pl.col(schema.SIDE))
    m_t = pl.col(f"_t_{MID}")
    spread_fill = pl.col(schema.FILL_CLASS).is_in(SPREAD_CLASSES) & m_t.is_not_null()
    terms = [
        q.alias("_q"),
        ((pl.col(schema.TIMESTAMP) - pl.col(schema.ARRIVAL_TIME)) / NS).alias("_wait_s"),
        pl.when(spread_fill).then(q * s2 * (p - m_t) / m_t * 1e4).alias("_es"),
        pl.when(spread_fill).then(q).alias("_es_q"),
        pl.when(spread_fill).then(q * p).alias("_es_n"),
    ]
    for i in range(len(horizons_s)):
        m_h = pl.col(f"_h{i}_{MID}")
        usable = spread_fill & m_h.is_not_null()
        terms += [
            pl.when(usable).then(q * s2 * (p - m_h) / m_t * 1e4).alias(f"_rs{i}"),
            pl.when(usable).then(q * s2 * (m_h - m_t) / m_t * 1e4).alias(f"_pi{i}"),
            pl.when(usable).then(q).alias(f"_h{i}_q"),
            pl.when(usable).then(q * p).alias(f"_h{i}_n"),
        ]
    return f.with_columns(terms)


METRICS = Step(
    name="metrics",
    fn=execution_metrics,
    requires=ORDER_INPUT,
    adds=pl_types(schema.metric_columns(())),
)

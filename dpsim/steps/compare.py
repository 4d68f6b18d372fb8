"""Compare: real vs simulated execution per sweep and scenario, on the same denominator.

The simulated path of a sweep is what it would have got had its residual rested in Centre Point: its real
lit, auction and reported fills stamped at its arrival (executions before any resting decision; its dark
fills at arrival are replaced by the replay's incoming fills) plus its replay fills in both roles. The
same metric code as for real fills runs on it, with the unfilled part marked at the prevailing mid
before the end of its window in the scenario (`close` at the latest). So `delta_implementation_shortfall_bps`
compares real and simulated cost over the same order quantity Q for every analysed sweep with an arrival
mid, filled or not. delta = sim − real: a negative cost delta means the dark pool would have been better.
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.steps.metrics import execution_metrics
from dpsim.steps.session import Session

AT_ARRIVAL_CLASSES = ("lit", "auction", "reported")
REPLAY_CLASS = "dark"
ZERO_DELTA = 1e-9  # bps (or shares, seconds): differences below this are float noise, reported as 0


def simulated_path(
    sweeps: pl.LazyFrame, trades: pl.LazyFrame, sim_fills: pl.LazyFrame, scenarios: pl.LazyFrame
) -> pl.LazyFrame:
    """The simulated path's fills [scenario, order_id, timestamp, quantity, price, fill_class] of every sweep,
    for every scenario of `scenarios` (its real fills at arrival are the same in each)."""
    at_arrival = (
        trades.join(sweeps.select(schema.ORDER_ID, schema.ARRIVAL_TIME), on=schema.ORDER_ID, how="inner")
        .filter(
            pl.col(schema.FILL_CLASS).is_in(AT_ARRIVAL_CLASSES)
            & (pl.col(schema.TIMESTAMP) == pl.col(schema.ARRIVAL_TIME))
        )
        .select(
            schema.ORDER_ID,
            schema.TIMESTAMP,
            schema.QUANTITY,
            pl.col(schema.TRADE_PRICE).cast(pl.Float64).alias(schema.PRICE),
            schema.FILL_CLASS,
        )
    )
    replayed = sim_fills.select(
        schema.SCENARIO,
        pl.col(schema.SWEEP_ORDER_ID).alias(schema.ORDER_ID),
        schema.TIMESTAMP,
        schema.QUANTITY,
        schema.PRICE,
        pl.lit(REPLAY_CLASS).alias(schema.FILL_CLASS),
    )
    return pl.concat([scenarios.join(at_arrival, how="cross"), replayed], how="vertical")


def scenarios_of(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(schema.SCENARIO).unique()


def compare(
    sweeps: pl.LazyFrame,
    trades: pl.LazyFrame,
    sim_fills: pl.LazyFrame,
    rested: pl.LazyFrame,
    quotes: pl.LazyFrame,
    session: Session,
    horizons_s: tuple[float, ...],
    max_quote_age_s: float | None,
) -> pl.LazyFrame:
    """One row per sweep and scenario: what rested, the simulated path's metrics (sim_*), `set`, and
    `delta_* = sim − real`. `sim_fills` and `rested` carry a `scenario` column (`rested`: a row per
    analysed sweep and scenario), so every scenario is measured in one query."""
    keys = [schema.SCENARIO, schema.ORDER_ID]
    orders = rested.join(
        sweeps.select(
            schema.ORDER_ID,
            schema.SIDE,
            schema.ARRIVAL_TIME,
            schema.ORDER_QUANTITY,
            schema.ARRIVAL_BID,
            schema.ARRIVAL_OFFER,
            schema.ARRIVAL_MID,
        ),
        on=schema.ORDER_ID,
        how="inner",
    ).with_columns(
        pl.min_horizontal(schema.SIM_WINDOW_END, pl.lit(session.close, dtype=pl.Int64)).alias(schema.END_TIME)
    )
    path = simulated_path(sweeps, trades, sim_fills, scenarios_of(rested))
    sim = execution_metrics(
        orders, path, quotes, horizons_s, session.close, max_quote_age_s, prefix="sim_", by=[schema.SCENARIO]
    )
    by_role = sim_fills.group_by(schema.SCENARIO, schema.SWEEP_ORDER_ID).agg(
        pl.col(schema.QUANTITY).filter(pl.col(schema.ROLE) == role).sum().alias(f"sim_filled_{role}")
        for role in ("resting", "incoming")
    )
    real = sweeps.select(schema.ORDER_ID, *schema.COMPARED_METRICS)
    real_filled = pl.col(schema.FILLED_QUANTITY) > 0
    sim_filled = pl.col("sim_filled_quantity") > 0
    return (
        orders.select(*keys, schema.SIM_QUANTITY, schema.SIM_WINDOW_END)
        .join(sim, on=keys, how="left")
        .join(
            by_role,
            left_on=keys,
            right_on=[schema.SCENARIO, schema.SWEEP_ORDER_ID],
            how="left",
        )
        .join(real, on=schema.ORDER_ID, how="left")
        .with_columns(
            pl.col(schema.SIM_QUANTITY, "sim_filled_resting", "sim_filled_incoming").fill_null(0),
            set=pl.when(real_filled & sim_filled)
            .then(pl.lit("both"))
            .when(real_filled)
            .then(pl.lit("real_only"))
            .when(sim_filled)
            .then(pl.lit("sim_only"))
            .otherwise(pl.lit("neither")),
            **{f"delta_{m}": _delta(m) for m in schema.COMPARED_METRICS},
        )
        .drop(schema.COMPARED_METRICS)
        .sort(keys)  # joins do not keep order; written files must be identical run to run
    )


def _delta(metric: str) -> pl.Expr:
    """sim − real as float64, with |δ| below ZERO_DELTA (and −0.0) reported as 0.0."""
    d = pl.col(f"sim_{metric}").cast(pl.Float64) - pl.col(metric).cast(pl.Float64)
    return pl.when(d.abs() < ZERO_DELTA).then(0.0).otherwise(d)

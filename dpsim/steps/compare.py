"""Real vs simulated per sweep and scenario (DOMAIN §5.6): the same metric code on simulated fills, deltas, set."""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.config import Config
from dpsim.steps.metrics import fill_metrics

ORDER_INPUTS = (
    schema.ORDER_ID,
    schema.SIDE,
    "arrival_time",
    "arrival_quantity",
    "arrival_mid",
    "limit_price",
)


def compare(
    sweeps: pl.DataFrame, sim_fills: pl.DataFrame, rested: pl.DataFrame, quotes: pl.DataFrame, cfg: Config
) -> pl.LazyFrame:
    """One row per analysed sweep: sim_ metrics (by `fill_metrics`, as for real fills), `set`, `delta_* = sim - real`."""
    fills = sim_fills.lazy().select(
        pl.col("sweep_order_id").alias(schema.ORDER_ID), schema.TIMESTAMP, schema.QUANTITY, schema.PRICE
    )
    sim = fill_metrics(
        sweeps.lazy().select(ORDER_INPUTS),
        fills,
        quotes.lazy(),
        cfg.metrics.markout_horizons_s,
        prefix="sim_",
    )
    real = sweeps.lazy().select(schema.ORDER_ID, *schema.COMPARED_METRICS)
    real_filled = pl.col("filled_quantity") > 0
    sim_filled = pl.col("sim_filled_quantity") > 0
    return (
        sim.join(rested.lazy(), on=schema.ORDER_ID, how="left")
        .join(real, on=schema.ORDER_ID, how="left")
        .with_columns(
            pl.col("sim_quantity").fill_null(0),
            set=pl.when(real_filled & sim_filled)
            .then(pl.lit("both"))
            .when(real_filled)
            .then(pl.lit("real_only"))
            .when(sim_filled)
            .then(pl.lit("sim_only"))
            .otherwise(pl.lit("neither")),
            **{
                f"delta_{m}": (pl.col(f"sim_{m}").cast(pl.Float64) - pl.col(m).cast(pl.Float64))
                for m in schema.COMPARED_METRICS
            },
        )
        .drop(schema.COMPARED_METRICS)
        .sort(schema.ORDER_ID)  # joins do not keep order; written files must be identical run to run
    )

"""Dark-pool replay step (DOMAIN §5.5): builds the kernel's event arrays from the partition's CP orders.

Vectorised Polars prepares the arrays (sort, mids, windows, budgets); `matching.match` does the
inherently sequential part; the fills come back as a frame. The incoming price is the arrival quote
of each CP order chosen by the lifecycle step (feed as-of, else the event row's snapshot), and a
locked, crossed or one-sided quote gives no mid, so that order matches nothing.

A fill between a resting sweep R and an incoming order I is reported for R (role 'resting'); when I
is itself an analysed sweep it is reported for I as well (role 'incoming'), because in the replayed
world that quantity came out of I's one budget too. A sweep's simulated metrics use both roles.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dpsim import schema
from dpsim.config import Scenario
from dpsim.steps.matching import MatchEvents, MatchParams, match

INT64_MAX = np.iinfo(np.int64).max


def window_end(sweeps: pl.DataFrame, scenario: Scenario) -> pl.Expr:
    """Inclusive end of each resting sweep's window (DOMAIN §5.5 `window`)."""
    if scenario.window == "last_fill":
        return pl.coalesce(pl.col("last_fill_time"), pl.col("final_time"))
    if scenario.window == "order_life":
        return pl.col("final_time")
    if scenario.window == "end_of_day":
        return pl.lit(INT64_MAX, dtype=pl.Int64)
    seconds = scenario.window_seconds
    assert seconds is not None
    return pl.col("arrival_time") + int(round(seconds * 1e9))


def simulate(
    cp_orders: pl.DataFrame, sweeps: pl.DataFrame, scenario: Scenario
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replay one scenario. Returns (sim_fills with schema.SIM_FILLS columns, rested[order_id, sim_quantity])."""
    resting = sweeps.select(
        schema.ORDER_ID,
        rests=pl.lit(True),
        window_end=window_end(sweeps, scenario),
        rest_cap=pl.col("arrival_quantity")
        if scenario.quantity == "full"
        else pl.col("residual_after_arrival"),
    )
    ev = (
        cp_orders.join(resting, on=schema.ORDER_ID, how="left")
        .sort(["arrival_time", "arrival_sequence", schema.ORDER_ID])
        .with_columns(
            mid=pl.when(pl.col("arrival_bid") != pl.col("arrival_offer"))
            .then(pl.col("arrival_mid"))
            .otherwise(None)
            .fill_null(float("nan")),
            rests=pl.col("rests").fill_null(False),
            rest_cap=pl.col("rest_cap").fill_null(0).clip(lower_bound=0),
            window_end=pl.col("window_end").fill_null(0),
        )
    )
    events = MatchEvents(
        order_id=ev[schema.ORDER_ID].to_numpy(),
        timestamp=ev["arrival_time"].to_numpy(),
        side=ev[schema.SIDE].to_numpy(),
        quantity=ev["arrival_quantity"].to_numpy(),
        limit=ev["limit_price"].fill_null(0).to_numpy(),
        maq=ev["maq"].fill_null(0).to_numpy(),
        maq_single=ev["maq_single"].fill_null(False).to_numpy(),
        mid=ev["mid"].to_numpy(),
        rests=ev["rests"].to_numpy(),
        rest_cap=ev["rest_cap"].to_numpy(),
        window_end=ev["window_end"].to_numpy(),
    )
    result = match(
        events,
        MatchParams(
            sweep_limit=scenario.sweep_limit,
            impact_bps=scenario.impact_bps,
            max_fill_fraction=scenario.max_fill_fraction,
        ),
    )
    ids = events.order_id
    rests = events.rests
    base = {
        schema.TIMESTAMP: result.timestamp,
        schema.QUANTITY: result.quantity,
        schema.PRICE: result.price,
        "mid": result.mid,
    }
    as_resting = pl.DataFrame(
        {
            "sweep_order_id": ids[result.resting_idx],
            "contra_order_id": ids[result.incoming_idx],
            "role": "resting",
            **base,
        }
    )
    incoming_is_sweep = rests[result.incoming_idx]
    as_incoming = pl.DataFrame(
        {
            "sweep_order_id": ids[result.incoming_idx][incoming_is_sweep],
            "contra_order_id": ids[result.resting_idx][incoming_is_sweep],
            "role": "incoming",
            **{k: v[incoming_is_sweep] for k, v in base.items()},
        }
    )
    fills = (
        pl.concat([as_resting, as_incoming], how="vertical")
        .cast(schema.polars_schema(schema.SIM_FILLS))
        .sort([schema.TIMESTAMP, "sweep_order_id", "contra_order_id", "role"])
    )
    rested = pl.DataFrame({schema.ORDER_ID: ids[rests], "sim_quantity": result.rested_quantity[rests]})
    return fills, rested

"""Pipeline: the per-partition steps composed, in order, into the frames a job needs (DOMAIN §5.1–5.4, §6).

`build` returns lazy frames that share their sub-plans (select, quotes, lifecycle), so the job runner
can `pl.collect_all([frames.cp_orders, frames.sweeps])` and pay for the shared work once:
- `quotes`: the partition's quote series (feed, or the snapshot fallback; see `steps.quotes`).
- `cp_orders`: the lifecycle of EVERY Centre Point order (`steps.lifecycle.LIFECYCLE_COLUMNS`), the
  simulation's incoming orders, in (arrival_time, arrival_sequence, order_id) order.
- `sweeps`: `results/sweeps`, the analysed sweeps with exactly `schema.sweeps_schema(horizons)`.
  Its fill metrics come from `steps.metrics.fill_metrics` on the real trades (the same function the
  simulation uses), so real and simulated figures are computed alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dpsim import schema
from dpsim.config import Config
from dpsim.steps import Step
from dpsim.steps.classify import CLASSIFY
from dpsim.steps.lifecycle import LIFECYCLE
from dpsim.steps.metrics import METRICS
from dpsim.steps.quotes import QUOTES
from dpsim.steps.select import SELECT

# The steps in the order `build` runs them (each consumes frames made by the ones before it); also the
# registry of declared output schemas that the tests hold the built frames to.
STEPS: tuple[Step, ...] = (SELECT, QUOTES, LIFECYCLE, CLASSIFY, METRICS)


@dataclass(frozen=True)
class PipelineFrames:
    quotes: pl.LazyFrame
    cp_orders: pl.LazyFrame
    sweeps: pl.LazyFrame


def build(
    orders: pl.LazyFrame, trades: pl.LazyFrame, nbbo: pl.LazyFrame, cfg: Config, has_feed: bool
) -> PipelineFrames:
    """All frames of one partition; `has_feed` = the partition has NBBO feed rows (known from the lake)."""
    events = SELECT(orders, cfg.codes)
    series = QUOTES(nbbo, events, trades)
    cp = LIFECYCLE(events, trades, series, has_feed, cfg.codes)
    analysed = CLASSIFY(cp, cfg)
    horizons = cfg.metrics.markout_horizons_s
    metrics = METRICS(analysed, real_fills(trades), series, horizons)
    target = schema.polars_schema(schema.sweeps_schema(horizons))
    sweeps = (
        analysed.select(list(schema.SWEEP_ATTRIBUTES))
        .join(metrics, on=schema.ORDER_ID, how="left")
        .select(pl.col(c).cast(t) for c, t in target.items())
        .sort("arrival_time", "arrival_sequence", schema.ORDER_ID)
    )
    return PipelineFrames(quotes=series, cp_orders=cp, sweeps=sweeps)


def real_fills(trades: pl.LazyFrame) -> pl.LazyFrame:
    """Trades as `fill_metrics` fills: order_id, timestamp, quantity, price (float64, like simulated ones)."""
    return trades.select(
        schema.ORDER_ID,
        schema.TIMESTAMP,
        schema.QUANTITY,
        pl.col(schema.TRADE_PRICE).cast(pl.Float64).alias(schema.PRICE),
    )


def quotes(orders: pl.LazyFrame, trades: pl.LazyFrame, nbbo: pl.LazyFrame, cfg: Config) -> pl.LazyFrame:
    """The partition's quote series alone (it does not depend on `has_feed`)."""
    return QUOTES(nbbo, SELECT(orders, cfg.codes), trades)


def cp_orders(
    orders: pl.LazyFrame, trades: pl.LazyFrame, nbbo: pl.LazyFrame, cfg: Config, has_feed: bool
) -> pl.LazyFrame:
    """Lifecycle of every Centre Point order (use `build` when the sweeps are needed too)."""
    return build(orders, trades, nbbo, cfg, has_feed).cp_orders


def sweeps_table(
    orders: pl.LazyFrame, trades: pl.LazyFrame, nbbo: pl.LazyFrame, cfg: Config, has_feed: bool
) -> pl.LazyFrame:
    """`results/sweeps` of one partition, cast to `schema.sweeps_schema` and sorted by arrival."""
    return build(orders, trades, nbbo, cfg, has_feed).sweeps

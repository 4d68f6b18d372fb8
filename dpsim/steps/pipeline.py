"""Pipeline: the per-partition measurement steps composed, in order, into the frames a job needs.

`build` returns lazy frames that share their sub-plans (select, quotes, lifecycle), so the job runner
can collect them together and pay for the shared work once:
- `usable_quotes`: the usable quotes (`steps.quotes`), the benchmarks of every metric and of the replay.
- `cp_orders`: the lifecycle of EVERY Centre Point order (`steps.lifecycle.LIFECYCLE_COLUMNS`), the
  replay's orders, in (arrival_time, arrival_sequence, order_id) order.
- `sweeps`: `results/sweeps`, the analysed sweeps with exactly `schema.sweeps_schema(horizons)`; their
  metrics come from `steps.metrics.execution_metrics`, the function the comparison runs on simulated fills.
- `quality`: `results/quality`.
The session (`steps.session.Session`) is an input: it needs the partition's trades, read first.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from dpsim import schema
from dpsim.config import Config
from dpsim.steps import checked_once
from dpsim.steps.classify import CLASSIFY
from dpsim.steps.lifecycle import FILL_CLASSES, LIFECYCLE
from dpsim.steps.metrics import METRICS
from dpsim.steps.quality import quality_row
from dpsim.steps.quotes import FEED, QUOTES, SNAPSHOT, quote_rows, usable_quotes
from dpsim.steps.select import SELECT
from dpsim.steps.session import Session


@dataclass(frozen=True)
class PipelineFrames:
    usable_quotes: pl.LazyFrame
    cp_orders: pl.LazyFrame
    sweeps: pl.LazyFrame
    quality: pl.LazyFrame


def build(
    orders: pl.LazyFrame,
    trades: pl.LazyFrame,
    nbbo: pl.LazyFrame,
    session: Session,
    cfg: Config,
    has_feed: bool,
) -> PipelineFrames:
    """All measurement frames of one partition; `trades` carry `fill_class` (`steps.session`). The steps
    check their schemas once per process for the same input schemas and settings (`checked_once`)."""
    key = (*(str(f.collect_schema()) for f in (orders, trades, nbbo)), has_feed, repr(cfg))
    with checked_once(key):
        max_age = cfg.time.max_quote_age_s
        events = SELECT(orders, cfg.codes)
        classified = QUOTES(quote_rows(nbbo, events, has_feed), session)
        usable = usable_quotes(classified)
        source = FEED if has_feed else SNAPSHOT
        cp = LIFECYCLE(events, trades, usable, source, max_age)
        analysed = CLASSIFY(cp, session, cfg)
        horizons = cfg.metrics.horizons_s
        still_working = (pl.col(schema.FINAL_TIME) >= session.close) | (pl.col(schema.FINAL_STATUS) == 1)
        measured = analysed.with_columns(
            pl.when(still_working)
            .then(pl.lit(session.close))
            .otherwise(pl.col(schema.FINAL_TIME))
            .alias(schema.END_TIME)
        )
        metrics = METRICS(measured, real_fills(trades), usable, horizons, session.close, max_age)
        target = schema.polars_schema(schema.sweeps_schema(horizons))
        sweeps = (
            analysed.select(list(schema.SWEEP_ATTRIBUTES))
            .join(metrics, on=schema.ORDER_ID, how="left")
            .select(pl.col(c).cast(t) for c, t in target.items())
            .sort(schema.ARRIVAL_TIME, schema.ARRIVAL_SEQUENCE, schema.ORDER_ID)
        )
        quality = quality_row(classified, source, cp, trades, session, cfg.codes.sweep_mask)
        return PipelineFrames(usable_quotes=usable, cp_orders=cp, sweeps=sweeps, quality=quality)


def real_fills(trades: pl.LazyFrame) -> pl.LazyFrame:
    """Trades that are fills, as `execution_metrics` fills: order_id, timestamp, quantity, price, fill_class."""
    return trades.filter(pl.col(schema.FILL_CLASS).is_in(FILL_CLASSES)).select(
        schema.ORDER_ID,
        schema.TIMESTAMP,
        schema.QUANTITY,
        pl.col(schema.TRADE_PRICE).cast(pl.Float64).alias(schema.PRICE),
        schema.FILL_CLASS,
    )

"""Classify: which Centre Point orders are analysed sweeps, their fill group, qualification and buckets (DOMAIN §5.1, §5.3).

- sweep: `exchangeordertype & codes.sweep_mask != 0` (bitmask, never "has a trade" or a participant).
- filters: `filters.participants` when configured; trading hours on the LOCAL arrival time of day
  (DST-aware), start inclusive and end exclusive, so 16:00:00.000 is out and 15:59:59.999 is in.
- group, from the final event: none (matched 0), full (matched > 0 and matched >= the final event's
  quantity), partial otherwise. The final event's quantity, not the arrival one, because amends change
  `quantity` and a fully traded amended order must be full: on DRR 2024-09-05 this gives 1,650 full,
  exactly the orders with final leaves 0, where the arrival quantity would give 1,427.
- qualifying: final changereason 3 with final leaves 0, a changereason-6 event, >= 1 trade and every
  trade lit continuous (the sweeps whose whole residual went to the lit book).
- size bucket by arrival quantity (`max` inclusive, the last bucket open), time bucket by local arrival
  time in [start, end) (null outside every bucket).
"""

from __future__ import annotations

from datetime import time

import polars as pl

from dpsim import schema
from dpsim.config import Config, parse_hhmm
from dpsim.steps import Step, pick, pl_types
from dpsim.steps.lifecycle import FINAL_QUANTITY, LIFECYCLE_COLUMNS
from dpsim.steps.select import has_flags
from dpsim.tradingtime import hhmm_ns, local_time_of_day_ns

TRADED_REASON = 3
FULL, PARTIAL, NONE = "full", "partial", "none"

CLASSIFY_COLUMNS = pl_types(
    pick(schema.SWEEP_ATTRIBUTES, "group", "qualifying", schema.SIZE_BUCKET, schema.TIME_BUCKET)
)
REQUIRED = {
    c: LIFECYCLE_COLUMNS[c]
    for c in (
        schema.ORDER_TYPE_FLAGS,
        schema.PARTICIPANT,
        "arrival_time",
        "arrival_quantity",
        "final_changereason",
        "final_leaves",
        FINAL_QUANTITY,
        "matched_quantity",
        "has_new_event",
        "n_fills",
        "all_fills_lit_continuous",
    )
}


def classify_sweeps(lifecycle: pl.LazyFrame, cfg: Config) -> pl.LazyFrame:
    """The analysed sweeps of a lifecycle frame (row order kept) with group, qualifying and buckets."""
    tod = local_time_of_day_ns(pl.col("arrival_time"), cfg.time.timezone)
    keep = has_flags(schema.ORDER_TYPE_FLAGS, cfg.codes.sweep_mask) & _in_window(
        tod, parse_hhmm(cfg.filters.trading_hours.start), parse_hhmm(cfg.filters.trading_hours.end)
    )
    if cfg.filters.participants:
        keep &= pl.col(schema.PARTICIPANT).is_in(cfg.filters.participants)
    matched = pl.col("matched_quantity")
    group = (
        pl.when(matched == 0)
        .then(pl.lit(NONE))
        .when((matched > 0) & (matched >= pl.col(FINAL_QUANTITY)))
        .then(pl.lit(FULL))
        .otherwise(pl.lit(PARTIAL))
    )
    qualifying = (
        (pl.col("final_changereason") == TRADED_REASON)
        & (pl.col("final_leaves") == 0)
        & pl.col("has_new_event")
        & (pl.col("n_fills") >= 1)
        & pl.col("all_fills_lit_continuous")
    ).fill_null(False)
    return lifecycle.filter(keep).with_columns(
        group.alias("group"),
        qualifying.alias("qualifying"),
        _size_bucket(pl.col("arrival_quantity"), cfg).alias(schema.SIZE_BUCKET),
        _time_bucket(tod, cfg).alias(schema.TIME_BUCKET),
    )


def _in_window(tod_ns: pl.Expr, start: time, end: time) -> pl.Expr:
    return (tod_ns >= hhmm_ns(start)) & (tod_ns < hhmm_ns(end))


def _size_bucket(quantity: pl.Expr, cfg: Config) -> pl.Expr:
    """First bucket whose inclusive `max` holds the quantity; the last bucket (no max) takes the rest."""
    *bounded, last = cfg.buckets.size
    expr: pl.Expr = pl.lit(last.name, dtype=pl.String)
    for b in reversed(bounded):
        expr = pl.when(quantity <= b.max).then(pl.lit(b.name)).otherwise(expr)
    return expr


def _time_bucket(tod_ns: pl.Expr, cfg: Config) -> pl.Expr:
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for b in reversed(cfg.buckets.time_of_day):
        expr = (
            pl.when(_in_window(tod_ns, parse_hhmm(b.start), parse_hhmm(b.end)))
            .then(pl.lit(b.name))
            .otherwise(expr)
        )
    return expr


CLASSIFY = Step(name="classify", fn=classify_sweeps, requires=REQUIRED, adds=CLASSIFY_COLUMNS)

"""Classify: which Centre Point orders are analysed sweeps, their fill group, qualification and buckets.

- sweep: `exchangeordertype & codes.sweep_mask != 0` (bitmask, never "has a trade" or a participant).
- analysed: a sweep arriving within the continuous session [open, close) (`steps.session`): a sweep
  that arrived in pre-open has no prevailing quote to be measured against, and Centre Point does not
  match then. The participant filter is applied when results are written, never here, because the
  replay runs on every analysed sweep whatever is reported.
- group, from the final event: none (matched 0), full (matched > 0 and matched >= the final event's
  quantity), partial otherwise (the exchange's own view, booking reports included).
- qualifying: final changereason 3 with final leaves 0, a changereason-6 event, >= 1 trade row and every
  trade row lit (the sweeps whose whole residual went to the lit book; a booking row disqualifies).
- size bucket by `order_quantity` (`max` inclusive, the last bucket open), time bucket by local arrival
  time in [start, end) (null outside every bucket).
"""

from __future__ import annotations

from datetime import time

import polars as pl

from dpsim import schema
from dpsim.config import Config, parse_hhmm
from dpsim.steps import Step, pick, pl_types
from dpsim.steps.lifecycle import ALL_TRADES_LIT, FINAL_QUANTITY, LIFECYCLE_COLUMNS, N_TRADE_ROWS
from dpsim.steps.select import has_flags
from dpsim.steps.session import Session
from dpsim.tradingtime import hhmm_ns, local_time_of_day_ns

TRADED_REASON = 3
FULL, PARTIAL, NONE = "full", "partial", "none"

CLASSIFY_COLUMNS = pl_types(
    pick(schema.SWEEP_ATTRIBUTES, schema.GROUP, schema.QUALIFYING, schema.SIZE_BUCKET, schema.TIME_BUCKET)
)
REQUIRED = {
    c: LIFECYCLE_COLUMNS[c]
    for c in (
        schema.ORDER_TYPE_FLAGS,
        schema.ARRIVAL_TIME,
        schema.ORDER_QUANTITY,
        schema.FINAL_CHANGEREASON,
        schema.FINAL_LEAVES,
        FINAL_QUANTITY,
        schema.MATCHED_QUANTITY,
        schema.HAS_NEW_EVENT,
        N_TRADE_ROWS,
        ALL_TRADES_LIT,
    )
}


def analysed(session: Session, sweep_mask: int) -> pl.Expr:
    """True for the sweeps that arrived within the continuous session."""
    t = pl.col(schema.ARRIVAL_TIME)
    return has_flags(schema.ORDER_TYPE_FLAGS, sweep_mask) & (t >= session.open) & (t < session.close)


def classify_sweeps(lifecycle: pl.LazyFrame, session: Session, cfg: Config) -> pl.LazyFrame:
    """The analysed sweeps of a lifecycle frame (row order kept) with group, qualifying and buckets."""
    matched = pl.col(schema.MATCHED_QUANTITY)
    group = (
        pl.when(matched == 0)
        .then(pl.lit(NONE))
        .when((matched > 0) & (matched >= pl.col(FINAL_QUANTITY)))
        .then(pl.lit(FULL))
        .otherwise(pl.lit(PARTIAL))
    )
    qualifying = (
        (pl.col(schema.FINAL_CHANGEREASON) == TRADED_REASON)
        & (pl.col(schema.FINAL_LEAVES) == 0)
        & pl.col(schema.HAS_NEW_EVENT)
        & (pl.col(N_TRADE_ROWS) >= 1)
        & pl.col(ALL_TRADES_LIT)
    ).fill_null(False)
    tod = local_time_of_day_ns(pl.col(schema.ARRIVAL_TIME), cfg.time.timezone)
    return lifecycle.filter(analysed(session, cfg.codes.sweep_mask)).with_columns(
        group.alias(schema.GROUP),
        qualifying.alias(schema.QUALIFYING),
        _size_bucket(pl.col(schema.ORDER_QUANTITY), cfg).alias(schema.SIZE_BUCKET),
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

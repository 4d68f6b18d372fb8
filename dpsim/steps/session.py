"""Session: the partition's continuous session [open, close) and every trade row's fill class.

ASX opens securities in staggered groups after 10:00, so the session opens at the partition's first
auction print at or after `time.open` (and before `close`), or at `time.open` when there is none; it
closes at `time.close`. Booking reports are never auction prints, so they never set the open.
Fill classes (lit, dark, auction, reported, booking) come from the configured dealsource code lists;
a code in no list is an input error, because a silently unclassified trade would change every figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import polars as pl

from dpsim import schema
from dpsim.config import FILL_CLASSES, Codes, TimeConfig, parse_hhmm
from dpsim.errors import InputError

AUCTION_OPEN = "auction"
CONFIGURED_OPEN = "config"


@dataclass(frozen=True)
class Session:
    """The continuous session of one partition, in ns since the epoch (UTC)."""

    open: int
    close: int
    open_source: str  # auction | config


def local_instant_ns(day: date, hhmm: str, timezone: str) -> int:
    """ns since the epoch of a local wall-clock time on `day` (DST-aware)."""
    t = parse_hhmm(hhmm)
    local = datetime(day.year, day.month, day.day, t.hour, t.minute, tzinfo=ZoneInfo(timezone))
    return int(local.timestamp()) * 1_000_000_000


def fill_class(codes: Codes) -> pl.Expr:
    """The fill class of each trade row from its dealsource (null for an unknown code)."""
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for name in reversed(FILL_CLASSES):
        members = list(getattr(codes.fill_classes, name))
        expr = pl.when(pl.col(schema.DEALSOURCE).is_in(members)).then(pl.lit(name)).otherwise(expr)
    return expr


def classified_trades(trades: pl.LazyFrame, codes: Codes) -> pl.LazyFrame:
    """Trades plus `fill_class`."""
    return trades.with_columns(fill_class(codes).alias(schema.FILL_CLASS))


def executions(trades: pl.LazyFrame) -> pl.LazyFrame:
    """One row per execution: trade rows grouped by `matchgroupid` (a row without one is its own).

    Columns: dealsource and fill_class (of its first row), quantity (its largest row's: the buy and sell
    rows of one execution agree in real data), buy_id and sell_id (the order ids of its buy and sell rows).
    """
    key = pl.coalesce(pl.col(schema.MATCH_GROUP), -pl.col("_row").cast(pl.Int64) - 1)
    buy = pl.col(schema.SIDE) == 1
    return (
        trades.with_row_index("_row")
        .group_by(key.alias("_execution"))
        .agg(
            pl.col(schema.DEALSOURCE, schema.FILL_CLASS).first(),
            pl.col(schema.QUANTITY).max(),
            pl.col(schema.ORDER_ID).filter(buy).first().alias("buy_id"),
            pl.col(schema.ORDER_ID).filter(~buy).first().alias("sell_id"),
        )
        .sort("_execution")
        .drop("_execution")
    )


def check_dealsources(trades: pl.DataFrame, source: str) -> None:
    """Raise an InputError naming the first dealsource of `trades` (already classified) in no fill class."""
    unknown = trades.filter(pl.col(schema.FILL_CLASS).is_null())
    if unknown.height:
        code = sorted(unknown[schema.DEALSOURCE].unique().to_list())[0]
        raise InputError(
            f"{source}: dealsource {code} ({unknown.height} trade rows) is in no fill class: add it to one "
            "of codes.fill_classes (lit, dark, auction, reported, booking) in the config"
        )


def session_bounds(trades: pl.DataFrame, day: date, time_cfg: TimeConfig) -> Session:
    """The session of the partition of trading date `day` (`trades` classified by `classified_trades`)."""
    configured_open = local_instant_ns(day, time_cfg.open, time_cfg.timezone)
    close = local_instant_ns(day, time_cfg.close, time_cfg.timezone)
    ts = pl.col(schema.TIMESTAMP)
    first_auction = trades.filter(
        (pl.col(schema.FILL_CLASS) == AUCTION_OPEN) & (ts >= configured_open) & (ts < close)
    )[schema.TIMESTAMP].min()
    if first_auction is None:
        return Session(configured_open, close, CONFIGURED_OPEN)
    assert isinstance(first_auction, int)
    return Session(first_auction, close, AUCTION_OPEN)

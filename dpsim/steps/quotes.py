"""Quotes: the partition's NBBO series and the as-of lookup every step uses for mids (DOMAIN §2.3, §5.2).

Source: the NBBO feed when the partition has any feed row; otherwise the snapshots carried by the
Centre Point event rows (`national_bid/offer`) and the trades (`national*pricesnapshot`), which share
one sequence space. The choice is made inside the plan (no collect), and `source` says which was used.
How the series is used when there is no feed: the arrival NBBO is the arrival row's own national
bid/offer (lifecycle step, DOMAIN §5.2), while fill-time mids and markouts use this snapshot series.

`mid` = (bid + offer) / 2 as float64, so half units (3355 + 3360 -> 3357.5) stay exact. It is null
when a side is missing (null or <= 0, e.g. Long.MIN) or the quote is crossed (bid > offer). A locked
quote (bid = offer) keeps its mid; the simulation treats locked quotes as unmatchable itself.
Several quotes at one timestamp keep only the last by sequence: "latest at or before t" means that one.
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.steps import Step, pick, pl_types

MID = "mid"
SOURCE = "source"
FEED = "feed"
SNAPSHOT = "snapshot"
NONE = "none"
# Trade-row NBBO snapshot columns (names checked against schema.TRADES at import).
TRADE_BID, TRADE_OFFER = pick(schema.TRADES.columns, "nationalbidpricesnapshot", "nationalofferpricesnapshot")

QUOTE_COLUMNS = {
    schema.TIMESTAMP: pl.Int64(),
    schema.BID: pl.Int64(),
    schema.OFFER: pl.Int64(),
    MID: pl.Float64(),
    SOURCE: pl.String(),
}


def mid_expr(bid: pl.Expr, offer: pl.Expr) -> pl.Expr:
    """Float64 mid of int64 sides; null when a side is missing (<= 0 or null) or the quote is crossed."""
    valid = (bid > 0) & (offer > 0) & (bid <= offer)
    return pl.when(valid).then((bid + offer).cast(pl.Float64) / 2.0).otherwise(None)


def quote_series(nbbo: pl.LazyFrame, cp_events: pl.LazyFrame, trades: pl.LazyFrame) -> pl.LazyFrame:
    """[timestamp, bid, offer, mid, source], one row per timestamp, sorted by timestamp."""
    cols = [schema.TIMESTAMP, schema.SEQUENCE, schema.BID, schema.OFFER]
    feed = nbbo.select(cols).with_columns(pl.lit(FEED).alias(SOURCE))
    snapshots = pl.concat(
        [
            cp_events.select(
                schema.TIMESTAMP,
                schema.SEQUENCE,
                pl.col(schema.NATIONAL_BID).alias(schema.BID),
                pl.col(schema.NATIONAL_OFFER).alias(schema.OFFER),
            ),
            trades.select(
                schema.TIMESTAMP,
                schema.SEQUENCE,
                pl.col(TRADE_BID).alias(schema.BID),
                pl.col(TRADE_OFFER).alias(schema.OFFER),
            ),
        ]
    ).with_columns(pl.lit(SNAPSHOT).alias(SOURCE))
    # Snapshots only count when the feed is empty: a cross join with the feed's row count keeps them lazy.
    snapshots = (
        snapshots.join(feed.select(pl.len().alias("_feed_rows")), how="cross")
        .filter(pl.col("_feed_rows") == 0)
        .drop("_feed_rows")
    )
    return (
        pl.concat([feed, snapshots])
        .filter(pl.col(schema.BID).is_not_null() | pl.col(schema.OFFER).is_not_null())
        .sort(schema.TIMESTAMP, schema.SEQUENCE, nulls_last=False, maintain_order=True)
        .unique(subset=schema.TIMESTAMP, keep="last", maintain_order=True)
        .select(
            schema.TIMESTAMP,
            schema.BID,
            schema.OFFER,
            mid_expr(pl.col(schema.BID), pl.col(schema.OFFER)).alias(MID),
            SOURCE,
        )
    )


def asof_quote(left: pl.LazyFrame, quotes: pl.LazyFrame, on: str, prefix: str) -> pl.LazyFrame:
    """`left` sorted by `on`, plus `<prefix>bid/offer/mid/source` of the latest quote at or before `on`.

    Rows with no earlier quote get nulls (source null too). The prefix keeps the quote columns apart
    from the caller's (several lookups, e.g. one per markout horizon, can be stacked).
    """
    quote_time = f"{prefix}quote_time"
    right = quotes.select(
        pl.col(schema.TIMESTAMP).alias(quote_time),
        *(pl.col(c).alias(f"{prefix}{c}") for c in (schema.BID, schema.OFFER, MID, SOURCE)),
    ).sort(quote_time)
    return (
        left.sort(on, maintain_order=True)
        .join_asof(right, left_on=on, right_on=quote_time, strategy="backward")
        .drop(quote_time, strict=False)
    )


QUOTES = Step(
    name="quotes",
    fn=quote_series,
    requires=pl_types(pick(schema.NBBO.columns, schema.TIMESTAMP, schema.SEQUENCE, schema.BID, schema.OFFER)),
    adds=QUOTE_COLUMNS,
)

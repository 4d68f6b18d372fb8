"""Quotes: the partition's NBBO rows, their usability, and the two lookups every benchmark uses.

Source: the NBBO feed when the partition has any feed row; otherwise the national bid/offer snapshots
carried by the partition's Centre Point event rows, treated as quotes stamped at their event.
A quote is usable when it lies within [open, close] of the session, both sides are > 0 and bid < offer;
the classes, first that applies: stale, empty, crossed, locked, usable. Among usable quotes sharing a
nanosecond the highest `sequence` stands for it.

- `prevailing`: the latest usable quote STRICTLY before t. A quote stamped with an event's own nanosecond
  is that event's consequence, never its benchmark; an unusable later quote never hides an earlier
  usable one; no usable quote before t gives nulls (never a stale fallback).
- `at_or_before`: the latest usable quote at or before min(t, close), for the mids after a fill (t + h).
`max_quote_age_s`, when set, turns a quote older than that (measured from t) into none.
`mid` = (bid + offer) / 2 as float64, so half units (3355 + 3360 -> 3357.5) stay exact.
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.steps import Step, pick, pl_types
from dpsim.steps.session import Session

MID = "mid"
QUOTE_TIME = "quote_time"
QUOTE_CLASS = "quote_class"
FEED, SNAPSHOT, NONE = "feed", "snapshot", "none"
STALE, EMPTY, CROSSED, LOCKED, USABLE = "stale", "empty", "crossed", "locked", "usable"
NS = 1_000_000_000

QUOTE_ROWS = pl_types(pick(schema.NBBO.columns, schema.TIMESTAMP, schema.SEQUENCE, schema.BID, schema.OFFER))
USABLE_COLUMNS = {
    schema.TIMESTAMP: pl.Int64(),
    schema.BID: pl.Int64(),
    schema.OFFER: pl.Int64(),
    MID: pl.Float64(),
}


def quote_rows(nbbo: pl.LazyFrame, cp_events: pl.LazyFrame, has_feed: bool) -> pl.LazyFrame:
    """[timestamp, sequence, bid, offer]: the feed rows, or the CP event rows' snapshots when there are none."""
    if has_feed:
        return nbbo.select(list(QUOTE_ROWS))
    return cp_events.select(
        schema.TIMESTAMP,
        schema.SEQUENCE,
        pl.col(schema.NATIONAL_BID).alias(schema.BID),
        pl.col(schema.NATIONAL_OFFER).alias(schema.OFFER),
    )


def classify_quotes(rows: pl.LazyFrame, session: Session) -> pl.LazyFrame:
    """`rows` plus `quote_class`: stale | empty | crossed | locked | usable (first that applies)."""
    ts, bid, offer = pl.col(schema.TIMESTAMP), pl.col(schema.BID), pl.col(schema.OFFER)
    cls = (
        pl.when((ts < session.open) | (ts > session.close))
        .then(pl.lit(STALE))
        .when(bid.is_null() | offer.is_null() | (bid <= 0) | (offer <= 0))
        .then(pl.lit(EMPTY))
        .when(bid > offer)
        .then(pl.lit(CROSSED))
        .when(bid == offer)
        .then(pl.lit(LOCKED))
        .otherwise(pl.lit(USABLE))
    )
    return rows.with_columns(cls.alias(QUOTE_CLASS))


def usable_quotes(classified: pl.LazyFrame) -> pl.LazyFrame:
    """[timestamp, bid, offer, mid]: usable quotes, one per timestamp (highest sequence), sorted by time."""
    return (
        classified.filter(pl.col(QUOTE_CLASS) == USABLE)
        .sort(schema.TIMESTAMP, schema.SEQUENCE, maintain_order=True)
        .unique(subset=schema.TIMESTAMP, keep="last", maintain_order=True)
        .select(
            schema.TIMESTAMP,
            schema.BID,
            schema.OFFER,
            ((pl.col(schema.BID) + pl.col(schema.OFFER)).cast(pl.Float64) / 2.0).alias(MID),
        )
    )


def prevailing(
    left: pl.LazyFrame, quotes: pl.LazyFrame, on: str, prefix: str, max_age_s: float | None
) -> pl.LazyFrame:
    """`left` plus `<prefix>bid/offer/mid/quote_time` of the latest usable quote strictly before `on`."""
    return _lookup(left, quotes, on, on, prefix, max_age_s, exact=False)


def at_or_before(
    left: pl.LazyFrame, quotes: pl.LazyFrame, on: str, prefix: str, max_age_s: float | None, close: int
) -> pl.LazyFrame:
    """`left` plus the latest usable quote at or before min(`on`, close); its age is measured from `on`."""
    clamped = f"{prefix}_at"
    left = left.with_columns(pl.min_horizontal(pl.col(on), pl.lit(close, dtype=pl.Int64)).alias(clamped))
    return _lookup(left, quotes, clamped, on, prefix, max_age_s, exact=True).drop(clamped)


def _lookup(
    left: pl.LazyFrame,
    quotes: pl.LazyFrame,
    key: str,
    age_from: str,
    prefix: str,
    max_age_s: float | None,
    *,
    exact: bool,
) -> pl.LazyFrame:
    names = {c: f"{prefix}{c}" for c in (schema.BID, schema.OFFER, MID)}
    quote_time = f"{prefix}{QUOTE_TIME}"
    right = quotes.select(
        pl.col(schema.TIMESTAMP).alias(quote_time), *(pl.col(c).alias(n) for c, n in names.items())
    ).sort(quote_time)
    joined = left.sort(key, maintain_order=True).join_asof(
        right, left_on=key, right_on=quote_time, strategy="backward", allow_exact_matches=exact
    )
    if max_age_s is None:
        return joined
    fresh = (pl.col(age_from) - pl.col(quote_time)) <= round(max_age_s * NS)
    return joined.with_columns(pl.when(fresh).then(pl.col(c)).alias(c) for c in (quote_time, *names.values()))


QUOTES = Step(name="quotes", fn=classify_quotes, requires=QUOTE_ROWS, adds={QUOTE_CLASS: pl.String()})

"""Exchange-local time: the DST-aware trading date with the day roll (docs/methodology.md §1), local time of day."""

from __future__ import annotations

from datetime import time

import numpy as np
import polars as pl

MINUTE_NS = 60_000_000_000
# Widest span of a batch's timestamps looked up by the minute (10 days: 14,400 evaluations at most).
MINUTE_TABLE_MAX = 14_400


def _local_naive(ts_ns: pl.Expr, timezone: str) -> pl.Expr:
    """Wall-clock local datetime (no zone) of int64 ns-since-epoch UTC timestamps."""
    return (
        pl.from_epoch(ts_ns, time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(timezone)
        .dt.replace_time_zone(None)
    )


def trading_date(ts_ns: pl.Expr, timezone: str, day_roll: time) -> pl.Expr:
    """Local calendar date, moved to the next day at or after the day roll (19:00 reloads -> next day).

    Shifting the *wall-clock* time by (24h - roll) keeps DST right: the zone conversion already chose
    +10 or +11 for each instant, never a fixed offset.
    """
    shift_ns = (24 * 3600 - (day_roll.hour * 3600 + day_roll.minute * 60)) * 1_000_000_000
    return (_local_naive(ts_ns, timezone) + pl.duration(nanoseconds=shift_ns)).dt.date()


def trading_day_numbers(ts_ns: np.ndarray, timezone: str, day_roll: time) -> np.ndarray:
    """`trading_date` of int64 ns timestamps (no nulls) as days since 1970-01-01 (int64), for the shred's
    split by partition.

    Zone offsets, their changes and the day roll fall on whole minutes, so the trading date is constant
    within each UTC minute: when a batch spans at most MINUTE_TABLE_MAX minutes, each of its minutes is
    converted once (a batch of a time-ordered export spans hours, not its rows' count) and the rows look
    their minute up. Both ends of every minute are converted and compared, so a zone where that does not
    hold falls back to converting every row, as does a wider batch.
    """
    if ts_ns.size == 0:
        return np.empty(0, dtype=np.int64)
    minute = ts_ns // MINUTE_NS
    first = int(minute.min())
    span = int(minute.max()) - first + 1
    if span <= MINUTE_TABLE_MAX:
        starts = (np.arange(span, dtype=np.int64) + first) * MINUTE_NS
        days = _day_numbers(np.concatenate([starts, starts + (MINUTE_NS - 1)]), timezone, day_roll)
        if np.array_equal(days[:span], days[span:]):
            return days[:span][minute - first]
    return _day_numbers(ts_ns, timezone, day_roll)


def _day_numbers(ts_ns: np.ndarray, timezone: str, day_roll: time) -> np.ndarray:
    frame = pl.DataFrame({"ts": ts_ns})
    days = frame.select(trading_date(pl.col("ts"), timezone, day_roll).cast(pl.Int32)).to_series()
    return days.to_numpy().astype(np.int64)


def local_time_of_day_ns(ts_ns: pl.Expr, timezone: str) -> pl.Expr:
    """Nanoseconds since local midnight (for trading-hours filters and time-of-day buckets)."""
    local = _local_naive(ts_ns, timezone)
    return (local - local.dt.truncate("1d")).dt.total_nanoseconds()


def hhmm_ns(t: time) -> int:
    return (t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000_000

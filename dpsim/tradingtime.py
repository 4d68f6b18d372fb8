"""Exchange-local time: the DST-aware trading date with the day roll (docs/methodology.md §1), local time of day."""

from __future__ import annotations

from datetime import time

import polars as pl


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


def local_time_of_day_ns(ts_ns: pl.Expr, timezone: str) -> pl.Expr:
    """Nanoseconds since local midnight (for trading-hours filters and time-of-day buckets)."""
    local = _local_naive(ts_ns, timezone)
    return (local - local.dt.truncate("1d")).dt.total_nanoseconds()


def hhmm_ns(t: time) -> int:
    return (t.hour * 3600 + t.minute * 60 + t.second) * 1_000_000_000

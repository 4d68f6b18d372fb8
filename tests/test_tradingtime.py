"""The shred's trading date by minute lookup (tradingtime.trading_day_numbers) against the reference
implementation's per-instant one (tests/reference/domain_v2.py), around DST changes, the day roll, zones
offset by 30 and 45 minutes, and for batches too wide for the lookup."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsim.tradingtime import MINUTE_TABLE_MAX, trading_day_numbers
from tests.reference.domain_v2 import Params, local_trading_date

NS = 1_000_000_000
EPOCH = date(1970, 1, 1)


def expected_days(ts_ns: np.ndarray, timezone: str, day_roll: time) -> np.ndarray:
    """Each instant on its own, by the reference implementation's trading date (docs/methodology.md §1)."""
    params = Params(timezone=timezone, day_roll=day_roll)
    return np.array([(local_trading_date(ts, params) - EPOCH).days for ts in ts_ns.tolist()], dtype=np.int64)


def ns(year: int, month: int, day: int, hour: int, minute: int, timezone: str) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(timezone)).timestamp()) * NS


def around(instant_ns: int, seconds: int = 150) -> np.ndarray:
    """Every second (and the nanosecond before each) from `seconds` before to `seconds` after an instant."""
    steps = np.arange(-seconds, seconds + 1, dtype=np.int64) * NS + instant_ns
    return np.concatenate([steps, steps - 1])


def test_sydney_dst_changes_and_the_day_roll() -> None:
    tz, roll = "Australia/Sydney", time(19, 0)
    instants = [
        int(datetime(2024, 4, 6, 16, 0, tzinfo=UTC).timestamp()) * NS,  # 03:00 AEDT -> 02:00 AEST
        int(datetime(2024, 10, 5, 16, 0, tzinfo=UTC).timestamp()) * NS,  # 02:00 AEST -> 03:00 AEDT
        ns(2024, 4, 6, 19, 0, tz),  # the roll the evening before the change back
        ns(2024, 4, 7, 19, 0, tz),  # and after it (UTC+10 now)
        ns(2024, 10, 6, 19, 0, tz),  # the roll on the day clocks went forward
    ]
    for instant in instants:
        ts = around(instant)
        assert np.array_equal(trading_day_numbers(ts, tz, roll), expected_days(ts, tz, roll))
    # the roll itself: 18:59:59.999999999 is the day's, 19:00:00 the next day's
    at_roll = ns(2024, 9, 5, 19, 0, tz)
    days = trading_day_numbers(np.array([at_roll - 1, at_roll], dtype=np.int64), tz, roll)
    assert [EPOCH + timedelta(days=int(d)) for d in days] == [date(2024, 9, 5), date(2024, 9, 6)]


def test_zones_offset_by_half_and_three_quarter_hours() -> None:
    for tz, roll in (("Australia/Adelaide", time(19, 30)), ("Asia/Kathmandu", time(17, 15))):
        start = ns(2024, 10, 5, 18, 0, tz)
        ts = np.arange(start, start + 3 * 86_400 * NS, 37 * NS, dtype=np.int64)
        assert np.array_equal(trading_day_numbers(ts, tz, roll), expected_days(ts, tz, roll))


def test_a_batch_wider_than_the_lookup_converts_every_row() -> None:
    tz, roll = "Australia/Sydney", time(19, 0)
    start = ns(2023, 1, 2, 10, 0, tz)
    ts = np.array(
        [start, start + (MINUTE_TABLE_MAX + 5) * 60 * NS, start + 400 * 86_400 * NS], dtype=np.int64
    )
    assert np.array_equal(trading_day_numbers(ts, tz, roll), expected_days(ts, tz, roll))
    assert trading_day_numbers(np.empty(0, dtype=np.int64), tz, roll).size == 0


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(ns(2000, 1, 3, 0, 0, "UTC"), ns(2099, 12, 1, 0, 0, "UTC")),
    offsets=st.lists(st.integers(0, 3 * 86_400 * NS), min_size=1, max_size=200),
    tz=st.sampled_from(["Australia/Sydney", "America/New_York", "Europe/London", "Asia/Kolkata"]),
    roll=st.sampled_from([time(19, 0), time(0, 0), time(2, 30), time(16, 45)]),
)
def test_any_batch_matches_the_per_instant_conversion(
    start: int, offsets: list[int], tz: str, roll: time
) -> None:
    ts = np.array([start + o for o in offsets], dtype=np.int64)
    assert np.array_equal(trading_day_numbers(ts, tz, roll), expected_days(ts, tz, roll))

"""The synthetic day's time axis: nanoseconds since the day roll of the previous calendar day.

The exchange calendar is dpsim's (`config.TimeConfig` defaults: the time zone and the 19:00 day roll), so
every generated event falls on the trading date that dpsim gives it. A day runs from the evening's reloads
(just after the roll) to the next roll; market times are local clock times placed on that axis.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from dpsim.config import TimeConfig, parse_hhmm

TZ = ZoneInfo(TimeConfig().timezone)
DAY_ROLL = parse_hhmm(TimeConfig().day_roll)
SEC = 1_000_000_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY_END = 24 * HOUR  # the next day roll


def local(hh: int, mm: int = 0) -> int:
    """The place of a local clock time on the axis (ns since the previous day roll)."""
    return (hh * HOUR + mm * MIN - (DAY_ROLL.hour * HOUR + DAY_ROLL.minute * MIN)) % DAY_END


MIDNIGHT = local(0)
PRE_OPEN = local(7)
OPEN = local(10)  # auctions at OPEN + 0..9 s
CONT_START = OPEN + 10 * SEC
CLOSE = local(16)
PURGE = local(18, 50)  # end-of-day purges
KEY = 10**14  # > DAY_END: security * KEY + time orders quotes by (security, time)


def day_bases(d: date) -> tuple[int, int]:
    """ns UTC of the axis' start (the previous evening's roll) and of the trading date's midnight."""
    return _utc_ns(d - timedelta(days=1), DAY_ROLL), _utc_ns(d, time(0))


def to_utc(t: np.ndarray, bases: tuple[int, int]) -> np.ndarray:
    """Axis times -> ns UTC. The evening and the day each use their own UTC offset (DST changes at
    2-3 am on a Sunday, so never inside either part of a weekday's axis)."""
    evening, midnight = bases
    return np.where(t < MIDNIGHT, evening + t, midnight + (t - MIDNIGHT))


def _utc_ns(d: date, t: time) -> int:
    return int(datetime.combine(d, t, TZ).timestamp()) * SEC

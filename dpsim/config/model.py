"""The configuration's model: frozen, typed dataclasses with their defaults and their own validation."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from datetime import time
from fractions import Fraction
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Inputs:
    orders: tuple[str, ...] = ("data/sample/orders.csv*",)
    trades: tuple[str, ...] = ("data/sample/trades.csv*",)
    nbbo: tuple[str, ...] = ("data/sample/nbbo.csv*",)
    reference: tuple[str, ...] = ("data/sample/reference.csv*",)
    session: tuple[str, ...] = ("data/sample/session.csv*",)
    participants: tuple[str, ...] = ("data/sample/participants.csv*",)


@dataclass(frozen=True)
class Aliases:
    orders: dict[str, str] = field(default_factory=dict)
    trades: dict[str, str] = field(default_factory=dict)
    nbbo: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Columns:
    aliases: Aliases = Aliases()


@dataclass(frozen=True)
class TimeConfig:
    """Exchange-local calendar and the continuous session (docs/methodology.md, "Session and quotes")."""

    timezone: str = "Australia/Sydney"
    day_roll: str = "19:00"
    open: str = "10:00"  # the session opens at the first auction print at or after this time
    close: str = "16:00"
    max_quote_age_s: float | None = None  # an older prevailing quote counts as none; null = no limit

    def problems(self) -> list[tuple[str, str]]:
        out = _time_problem("day_roll", self.day_roll)
        out += _time_problem("open", self.open) + _time_problem("close", self.close)
        if not out and parse_hhmm(self.open) >= parse_hhmm(self.close):
            out.append(("close", f"must be after open ({self.open})"))
        if self.max_quote_age_s is not None and self.max_quote_age_s <= 0:
            out.append(("max_quote_age_s", "must be > 0 seconds, or null for no limit"))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            out.append(
                ("timezone", f"unknown time zone {self.timezone!r} (use an IANA name like Australia/Sydney)")
            )
        return out


FILL_CLASSES = ("lit", "dark", "auction", "reported", "booking")


@dataclass(frozen=True)
class FillClasses:
    """Trade `dealsource` codes per fill class; booking reports (UCP) are never fills."""

    lit: tuple[int, ...] = (1,)
    dark: tuple[int, ...] = (46, 47, 49, 50, 51, 52)
    auction: tuple[int, ...] = (20,)
    reported: tuple[int, ...] = (5,)
    booking: tuple[int, ...] = (44, 45, 48)

    def problems(self) -> list[tuple[str, str]]:
        seen: dict[int, str] = {}
        out = []
        for name in FILL_CLASSES:
            for code in getattr(self, name):
                if code in seen:
                    first = seen[code]
                    out.append((first, f"dealsource {code} is in both {first} and {name}: give it one class"))
                seen.setdefault(code, name)
        return out

    def of(self, code: int) -> str | None:
        return next((name for name in FILL_CLASSES if code in getattr(self, name)), None)


@dataclass(frozen=True)
class TickStep:
    """From this price (thousandths of a dollar, inclusive) on, the tick is `tick` thousandths."""

    min_price: int
    tick: int


@dataclass(frozen=True)
class Codes:
    centre_point_mask: int = 64 | 256 | 2048 | 4096
    sweep_mask: int = 2048
    fill_classes: FillClasses = FillClasses()
    centre_point_dealsource: int = 47  # the real CP executions the reality replay should reproduce
    tick_table: tuple[TickStep, ...] = (TickStep(0, 1), TickStep(100, 5), TickStep(2000, 10))

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name in ("centre_point_mask", "sweep_mask"):
            if getattr(self, name) <= 0:
                out.append((name, "must be a positive bit mask"))
        steps = self.tick_table
        if not steps or steps[0].min_price != 0:
            out.append(("tick_table", "the first step must start at min_price 0"))
        elif any(a.min_price >= b.min_price for a, b in zip(steps, steps[1:], strict=False)):
            out.append(("tick_table", "min_price must increase from step to step"))
        if any(s.tick <= 0 for s in steps):
            out.append(("tick_table", "every tick must be > 0"))
        return out


@dataclass(frozen=True)
class Filters:
    participants: tuple[int, ...] = ()  # participant ids whose sweeps are reported; empty = all


@dataclass(frozen=True)
class SizeBucket:
    name: str
    max: int | None = None


@dataclass(frozen=True)
class TimeBucket:
    name: str
    start: str
    end: str

    def problems(self) -> list[tuple[str, str]]:
        out = _time_problem("start", self.start) + _time_problem("end", self.end)
        if not out and parse_hhmm(self.start) >= parse_hhmm(self.end):
            out.append(("end", f"must be after start ({self.start})"))
        return out


@dataclass(frozen=True)
class Buckets:
    size: tuple[SizeBucket, ...] = (
        SizeBucket("tiny", 100),
        SizeBucket("small", 1000),
        SizeBucket("medium", 10000),
        SizeBucket("large"),
    )
    time_of_day: tuple[TimeBucket, ...] = (
        TimeBucket("morning", "10:00", "12:00"),
        TimeBucket("midday", "12:00", "15:00"),
        TimeBucket("afternoon", "15:00", "16:00"),
    )

    def problems(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        edges = [b.max for b in self.size]
        if not edges or edges[-1] is not None or any(e is None for e in edges[:-1]):
            out.append(("size", "every size bucket but the last needs `max`; the last has none"))
        elif any(a >= b for a, b in zip(edges[:-2], edges[1:-1], strict=True)):  # type: ignore[operator]
            out.append(("size", "bucket `max` values must increase"))
        return out


@dataclass(frozen=True)
class Metrics:
    horizons_s: tuple[float, ...] = (1.0, 5.0, 60.0, 300.0)  # realized spread / price impact horizons

    def problems(self) -> list[tuple[str, str]]:
        return [("horizons_s", "horizons must be > 0")] if any(h <= 0 for h in self.horizons_s) else []


RESERVED_SCENARIO = "reality"  # the reality replay (no sweep rests), always run
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")  # names become folder names: data, never paths


@dataclass(frozen=True)
class Scenario:
    """One counterfactual replay parameter set (docs/methodology.md, "The replay")."""

    quantity: Literal["residual", "full"] = "residual"
    window: str = "last_fill"  # last_fill | order_life | end_of_day | seconds:N (YAML {seconds: N})
    max_fill_fraction: float = 1.0
    impact_bps: float = 0.0
    sweep_midtick: bool = False  # analysed sweeps accept the mid-tick, as if their midtick were 1
    ignore_sweep_limit: bool = False  # analysed sweeps have no limit (an upper bound, not a plausible world)
    real_queue: bool = True  # real CP orders rest (false: the v1 queue of sweeps only, for contrast)

    @property
    def window_seconds(self) -> float | None:
        return float(self.window.split(":", 1)[1]) if self.window.startswith("seconds:") else None

    @property
    def world(self) -> str:
        """plausible (the orders as stated; or accepting the mid-tick, the alternative for passive sweeps),
        bound (limits lifted or the real queue left out: for contrast only) or sensitivity (the rest)."""
        if self.ignore_sweep_limit or not self.real_queue:
            return "bound"
        if self in (Scenario(), Scenario(sweep_midtick=True)):
            return "plausible"
        return "sensitivity"

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.window not in ("last_fill", "order_life", "end_of_day"):
            try:
                ok = self.window_seconds is not None and self.window_seconds >= 0
            except ValueError:
                ok = False
            if not ok:
                out.append(
                    ("window", f"{self.window!r}: use last_fill, order_life, end_of_day or {{seconds: N}}")
                )
        if not 0 < self.max_fill_fraction <= 1:
            out.append(("max_fill_fraction", "must be in (0, 1]"))
        elif max(Fraction(repr(float(self.max_fill_fraction))).as_integer_ratio()) > 2**63 - 1:
            out.append(
                ("max_fill_fraction", "at most 18 decimal places: the replay floors a sweep's share exactly")
            )
        if not 0 <= self.impact_bps < 1e4:
            out.append(
                ("impact_bps", "must be >= 0 (it always moves the price against the sweep) and < 10000")
            )
        return out


@dataclass(frozen=True)
class ReplayRules:
    """Replay rules beyond the methodology's, for every scenario and the reality replay; off by default."""

    # a new quote lets two resting CP orders whose limits both accept its mid match (the later incoming)
    rematch_on_quote: bool = False


DEFAULT_SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario(),
    "order_life": Scenario(window="order_life"),
    "half_cap": Scenario(max_fill_fraction=0.5),
    "impact_5bps": Scenario(impact_bps=5.0),
    "midtick": Scenario(sweep_midtick=True),
    "ignore_limit": Scenario(ignore_sweep_limit=True),
    "no_queue": Scenario(real_queue=False),
}


# The shortest job timeout that can be enforced: a job's clock starts when it is submitted, and a new
# worker process spends seconds starting Python and importing Polars inside its first job's time.
MIN_JOB_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Run:
    workers: int = 0
    executor: str = "local"
    job_timeout_s: float = 900.0
    max_retries: int = 2
    # One job to run on the local executor: run it in the dpsim process itself (no worker to start, about
    # half a second on a small day); it is then not subject to job_timeout_s. false: a worker, as for many.
    single_job_in_process: bool = True

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.workers < 0:
            out.append(("workers", "must be >= 0 (0 = number of cores)"))
        if self.job_timeout_s < MIN_JOB_TIMEOUT_S:
            out.append(
                (
                    "job_timeout_s",
                    f"{self.job_timeout_s:g} s is too short to enforce: it must be >= {MIN_JOB_TIMEOUT_S:g} s "
                    "(a new worker spends seconds starting inside its first job's time)",
                )
            )
        if self.max_retries < 0:
            out.append(("max_retries", "must be >= 0"))
        ex = self.executor
        if not (
            ex == "local" or ex.startswith("dask://") or ex == "dask-local" or ex.startswith("dask-local:")
        ):
            out.append(("executor", f"{ex!r}: use local, dask://HOST:PORT or dask-local[:N]"))
        return out

    @property
    def effective_workers(self) -> int:
        return self.workers or (os.cpu_count() or 1)


@dataclass(frozen=True)
class Shred:
    block_size_mb: float = 8.0
    memory_budget_mb: int = 1500
    max_open_partitions: int = 2000
    row_group_rows: int = 131072
    workers: int = 1

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name in ("block_size_mb", "memory_budget_mb", "max_open_partitions", "row_group_rows"):
            if getattr(self, name) <= 0:
                out.append((name, "must be > 0"))
        if self.workers < 1:
            out.append(("workers", "must be >= 1"))
        return out


@dataclass(frozen=True)
class Aggregate:
    memory_limit_mb: int = 1500  # peak RSS budget of `dpsim aggregate` and `report` (DuckDB gets its share)
    temp_directory: str = ""


@dataclass(frozen=True)
class Stats:
    bootstrap_n: int = 2000  # cluster-bootstrap resamples of the headline delta
    bootstrap_seed: int = 20240905
    min_segment_n: int = 30  # segments with fewer sweeps are shown greyed out in reports

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.bootstrap_n < 100:
            out.append(("bootstrap_n", "must be >= 100 for a 95 % percentile interval"))
        if self.min_segment_n < 1:
            out.append(("min_segment_n", "must be >= 1"))
        return out


@dataclass(frozen=True)
class Config:
    lake: str = "lake"
    inputs: Inputs = Inputs()
    columns: Columns = Columns()
    time: TimeConfig = TimeConfig()
    codes: Codes = Codes()
    filters: Filters = Filters()
    buckets: Buckets = Buckets()
    metrics: Metrics = Metrics()
    scenarios: dict[str, Scenario] = field(default_factory=lambda: dict(DEFAULT_SCENARIOS))
    replay: ReplayRules = ReplayRules()
    run: Run = Run()
    shred: Shred = Shred()
    aggregate: Aggregate = Aggregate()
    stats: Stats = Stats()
    source: str = "<defaults>"  # where it was loaded from (not a YAML key)

    def problems(self) -> list[tuple[str, str]]:
        out = [("scenarios", "at least one scenario is needed")] if not self.scenarios else []
        for name in self.scenarios:
            if name == RESERVED_SCENARIO:
                out.append((f"scenarios.{name}", "is reserved for the reality replay, which always runs"))
            elif not NAME_PATTERN.match(name):
                out.append((f"scenarios.{name}", "a scenario name may hold only letters, digits, _ and -"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for `dpsim config` and the config hash)."""
        return _plain(self)

    def aggregation_settings(self) -> dict[str, Any]:
        """The sections the aggregates depend on (not paths, workers or memory): what tells whether a
        stored aggregation still holds."""
        d = self.to_dict()
        return {
            k: d[k]
            for k in ("time", "codes", "filters", "buckets", "metrics", "replay", "scenarios", "stats")
        }


def parse_hhmm(text: str) -> time:
    hh, mm = text.split(":")
    return time(int(hh), int(mm))


def _time_problem(key: str, text: str) -> list[tuple[str, str]]:
    try:
        parse_hhmm(text)
    except (ValueError, AttributeError):
        return [(key, f"{text!r} is not a time of day HH:MM")]
    return []


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    return obj

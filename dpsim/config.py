"""YAML configuration -> frozen, typed dataclasses; every problem reported at once with file, line and key."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from dpsim.errors import ConfigError

DEFAULT_CONFIG = Path("conf/default.yaml")  # used when no --config or DPSIM_CONFIG names one, if present
CONFIG_ENV = "DPSIM_CONFIG"
# Settings from the environment: below command-line flags, above the config file (`load_config(env=…)`).
ENV_SETTINGS: dict[str, str] = {
    "DPSIM_LAKE": "lake",
    "DPSIM_EXECUTOR": "run.executor",
    "DPSIM_WORKERS": "run.workers",
    "DPSIM_JOB_TIMEOUT": "run.job_timeout_s",
    "DPSIM_MAX_RETRIES": "run.max_retries",
    "DPSIM_SHRED_WORKERS": "shred.workers",
    "DPSIM_MEMORY_LIMIT_MB": "aggregate.memory_limit_mb",
    "DPSIM_TEMP_DIRECTORY": "aggregate.temp_directory",
}
_STRING_SETTINGS = {"lake", "run.executor", "aggregate.temp_directory"}
# Markers of a project root: relative paths in a config file resolve from the nearest folder at or above
# the file's own that holds one of these (else from the file's folder), never from the working directory.
PROJECT_MARKERS = ("pyproject.toml", ".git")
_ENV_LINE = -1  # in the key -> line map: the key was set by an environment variable


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
    memory_limit_mb: int = 2000
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


def parse_hhmm(text: str) -> time:
    hh, mm = text.split(":")
    return time(int(hh), int(mm))


def _time_problem(key: str, text: str) -> list[tuple[str, str]]:
    try:
        parse_hhmm(text)
    except (ValueError, AttributeError):
        return [(key, f"{text!r} is not a time of day HH:MM")]
    return []


# ---- loading ------------------------------------------------------------------------------------


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """The configuration from, in increasing precedence: the built-in defaults, the config file, the
    `DPSIM_*` variables of `env` (`ENV_SETTINGS`; the CLI passes `os.environ`, a library call none) and
    `overrides` (CLI flags: dotted keys such as "run.workers" or "lake", values typed by argparse).

    The file is `path`, else `env`'s DPSIM_CONFIG, else conf/default.yaml when present, else none.
    Relative paths in the file (lake, inputs, aggregate.temp_directory) resolve from its base
    (`config_base`); those of flags and variables from the working directory, as any command's.
    """
    return load_config_with_origins(path, overrides, env)[0]


def load_config_with_origins(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Config, dict[str, str]]:
    """`load_config`, and where each setting came from: dotted key -> "default", "<file>:<line>",
    "environment DPSIM_…" or "command line"."""
    problems: list[str] = []
    data: dict[str, Any] = {}
    lines: dict[tuple[str, ...], int] = {}
    env = env or {}
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    where = str(path) if path is not None else "<defaults>"
    if path is not None:
        p = Path(path)
        if not p.exists():
            via = f" (from {CONFIG_ENV})" if env.get(CONFIG_ENV) == str(path) else ""
            raise ConfigError([f"{p}{via}: file not found (pass an existing --config or omit it)"])
        try:
            node = yaml.compose(p.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError([f"{p}{at}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
        if node is not None:
            if not isinstance(node, yaml.MappingNode):
                raise ConfigError(
                    [f"{p}:{node.start_mark.line + 1}: the top level must be a mapping of keys"]
                )
            data = _to_python(node, (), lines)
        _resolve_paths(data, config_base(p))
    for var, key in ENV_SETTINGS.items():
        if env.get(var) is not None:
            _set_dotted(data, key.split("."), _env_value(key, env[var]))
            lines[tuple(key.split("."))] = _ENV_LINE
    for key, value in (overrides or {}).items():
        _set_dotted(data, key.split("."), value)
        lines[tuple(key.split("."))] = 0
    cfg = _build(Config, data, (), where, lines, problems)
    if problems:
        raise ConfigError(sorted(problems, key=_line_of))
    assert isinstance(cfg, Config)
    cfg = dataclasses.replace(cfg, source=where)
    return cfg, _origins(cfg.to_dict(), where, lines)


def config_base(path: Path) -> Path:
    """Where a config file's relative paths start: the project root above it (the nearest folder at or
    above the file's folder holding pyproject.toml or .git), or the file's own folder outside a project."""
    folder = path.resolve().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            return candidate
    return folder


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """The file's relative paths and globs made absolute from `base` (URLs and absolute paths unchanged)."""

    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or not value or "://" in value:
            return value
        if value.startswith("~") or os.path.isabs(value):
            return value
        return os.path.normpath(base / value)

    if "lake" in data:
        data["lake"] = resolve(data["lake"])
    inputs = data.get("inputs")
    if isinstance(inputs, dict):
        for kind, globs in inputs.items():
            inputs[kind] = [resolve(g) for g in globs] if isinstance(globs, list) else resolve(globs)
    agg = data.get("aggregate")
    if isinstance(agg, dict) and "temp_directory" in agg:
        agg["temp_directory"] = resolve(agg["temp_directory"])


def _env_value(key: str, text: str) -> Any:
    """A variable's text as its setting's value: numbers are read as YAML would read them."""
    if key in _STRING_SETTINGS:
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text  # reported by the type check, with the variable's name


def _origins(data: dict[str, Any], source: str, lines: dict[tuple[str, ...], int]) -> dict[str, str]:
    """dotted key -> where its value came from: the file line, variable or flag that set it, else default."""
    out: dict[str, str] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, (*path, str(k)))
            return
        line = lines.get(path)
        out[".".join(path)] = "default" if line is None else _origin(source, line, path)

    walk({k: v for k, v in data.items() if k != "source"}, ())
    return out


def _origin(source: str, line: int, path: tuple[str, ...]) -> str:
    if line == 0:
        return "command line"
    if line == _ENV_LINE:
        return "environment " + _env_var(path)
    return f"{source}:{line}"


def _env_var(path: tuple[str, ...]) -> str:
    key = ".".join(path)
    return next((var for var, k in ENV_SETTINGS.items() if k == key), "DPSIM_*")


def _to_python(node: yaml.Node, path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = (
                str(yaml.safe_load(yaml.serialize(k))) if not isinstance(k, yaml.ScalarNode) else str(k.value)
            )
            lines[(*path, key)] = k.start_mark.line + 1
            out[key] = _to_python(v, (*path, key), lines)
            lines[(*path, key)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, str(i)), lines) for i, v in enumerate(node.value)]
    if ":" in node.value and node.tag.endswith((":int", ":float")):
        return node.value  # YAML 1.1 reads 19:00 as a base-60 number; keep the text the user wrote
    return yaml.safe_load(yaml.serialize(node))


def _line_of(problem: str) -> tuple[int, str]:
    m = re.match(r"[^:]*:(\d+):", problem)
    return (int(m.group(1)) if m else 0, problem)


def _set_dotted(data: dict[str, Any], keys: list[str], value: Any) -> None:
    for k in keys[:-1]:
        data = data.setdefault(k, {})
    data[keys[-1]] = value


def _where(source: str, lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> str:
    line = lines.get(path)
    key = ".".join(path) or "<top>"
    if line == 0:
        return f"command line: {key}"
    if line == _ENV_LINE:
        return f"environment {_env_var(path)}: {key}"
    return f"{source}:{line}: {key}" if line else f"{source}: {key}"


def _build(
    tp: Any,
    value: Any,
    path: tuple[str, ...],
    source: str,
    lines: dict[tuple[str, ...], int],
    problems: list[str],
) -> Any:
    """Convert plain YAML data to `tp`, appending a problem (and returning a default) for anything wrong."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if tp is Scenario and isinstance(value, dict) and isinstance(value.get("window"), dict):
            win = value["window"]
            if set(win) == {"seconds"}:
                value = {**value, "window": f"seconds:{win['seconds']}"}
        if not isinstance(value, dict):
            problems.append(f"{_where(source, lines, path)}: expected a mapping, got {value!r}")
            return tp() if _has_defaults(tp) else None  # type: ignore[operator]
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.name != "source"}
        for key in value:
            if key not in fields:
                known = ", ".join(fields)
                problems.append(f"{_where(source, lines, (*path, key))}: unknown key (known keys: {known})")
        kwargs = {}
        for name in fields:
            if name in value:
                kwargs[name] = _build(hints[name], value[name], (*path, name), source, lines, problems)
        missing = [
            n
            for n, f in fields.items()
            if n not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        for n in missing:
            problems.append(f"{_where(source, lines, path)}: missing required key {n!r}")
        if missing or any(v is None and n in value and value[n] is not None for n, v in kwargs.items()):
            return None
        obj = tp(**kwargs)  # type: ignore[operator]
        for key, msg in getattr(obj, "problems", list)():
            problems.append(f"{_where(source, lines, (*path, *key.split('.')))}: {msg}")
        return obj
    if origin is tuple:
        (item_tp, _) = get_args(tp)
        if not isinstance(value, list):
            value = [value] if isinstance(value, (str, int, float)) and item_tp in (str,) else value
        if not isinstance(value, list):
            problems.append(f"{_where(source, lines, path)}: expected a list, got {value!r}")
            return ()
        return tuple(
            _build(item_tp, v, (*path, str(i)), source, lines, problems) for i, v in enumerate(value)
        )
    if origin is dict:
        _, val_tp = get_args(tp)
        if value is None:
            return {}
        if not isinstance(value, dict):
            problems.append(f"{_where(source, lines, path)}: expected a mapping, got {value!r}")
            return {}
        return {str(k): _build(val_tp, v, (*path, str(k)), source, lines, problems) for k, v in value.items()}
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            problems.append(
                f"{_where(source, lines, path)}: {value!r} is not one of {', '.join(map(str, allowed))}"
            )
            return allowed[0]
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(tp):
            return None
        (inner,) = [a for a in get_args(tp) if a is not type(None)]
        return _build(inner, value, path, source, lines, problems)
    return _scalar(tp, value, path, source, lines, problems)


def _scalar(
    tp: Any,
    value: Any,
    path: tuple[str, ...],
    source: str,
    lines: dict[tuple[str, ...], int],
    problems: list[str],
) -> Any:
    ok = (
        (tp is bool and isinstance(value, bool))
        or (tp is int and isinstance(value, int) and not isinstance(value, bool))
        or (tp is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (tp is str and isinstance(value, (str, int, float)) and not isinstance(value, bool))
    )
    if not ok:
        problems.append(f"{_where(source, lines, path)}: expected {tp.__name__}, got {value!r}")
        return tp()
    return tp(value)


def _has_defaults(tp: Any) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(tp)
    )


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    return obj

"""YAML configuration -> the model's dataclasses, with environment settings and CLI overrides; every
problem reported at once with file, line and key."""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from dpsim.config.model import Config, Scenario
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
# libyaml's parser when PyYAML has it (the pure-Python one takes most of a config's load); both give lines
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
            node = yaml.compose(p.read_text(encoding="utf-8"), Loader=_LOADER)
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
            key = str(_value(k)) if not isinstance(k, yaml.ScalarNode) else str(k.value)
            lines[(*path, key)] = k.start_mark.line + 1
            out[key] = _to_python(v, (*path, key), lines)
            lines[(*path, key)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, (*path, str(i)), lines) for i, v in enumerate(node.value)]
    if ":" in node.value and node.tag.endswith((":int", ":float")):
        return node.value  # YAML 1.1 reads 19:00 as a base-60 number; keep the text the user wrote
    return _value(node)


def _value(node: yaml.Node) -> Any:
    """A composed node's Python value, as yaml.safe_load reads it (the tag was resolved when composed)."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


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
            where = (*path, *key.split("."))
            if where not in lines:  # a key that holds a dot itself (a bad scenario name like "a/../b")
                where = (*path, *key.split(".", 1))
            problems.append(f"{_where(source, lines, where)}: {msg}")
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

"""What every command shares: loading the config and the lake, JSON output, notes, number formats."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import their modules when they run: `dpsim --help` stays fast
    from dpsim.config import Config
    from dpsim.lake import Lake


log = logging.getLogger("dpsim")
# Test hook: fault injection for partition jobs ("<action>:<sec>/<date>,…", see jobs.JobTask.faults).


FAULT_ENV = "DPSIM_FAULT_INJECT"


def _load(args: argparse.Namespace, **overrides: Any) -> Config:
    return _load_with_origins(args, **overrides)[0]


def _load_with_origins(args: argparse.Namespace, **overrides: Any) -> tuple[Config, dict[str, str]]:
    """The config of a command: flags > DPSIM_* environment variables > config file > defaults."""
    from dpsim.config import load_config_with_origins

    if getattr(args, "lake", None):
        overrides["lake"] = args.lake
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_config_with_origins(args.config, given, os.environ)


def _lake(cfg: Config) -> Lake:
    from dpsim.lake import Lake

    lake = Lake(cfg.lake)
    lake.check_reachable()
    return lake


def _print_json(obj: Any) -> None:
    """A command's result as JSON on stdout (progress and logs go to stderr)."""
    import json

    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")


def _note(text: str) -> None:
    print(f"dpsim: note: {text}", file=sys.stderr)


def _globs(values: list[str]) -> list[str]:
    """`--KIND none` names no file."""
    return [] if [v.lower() for v in values] == ["none"] else values


def _num(v: Any) -> str:
    return "" if v is None else f"{v:,}"


def _bps(v: Any) -> str:
    return "" if v is None else f"{v:.2f}"


def _fixed(v: Any) -> str:
    return "" if v is None else f"{v:.1f}"


def _pct(v: Any) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _p(v: Any) -> str:
    return "" if v is None else f"{v:.1e}"


def _local(ns: Any, timezone: str) -> str:
    """A ns UTC instant as exchange-local date and time to the millisecond."""
    if ns is None:
        return ""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(ns / 1e9, tz=ZoneInfo(timezone))
    return local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (what `--show-origin` lists)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out

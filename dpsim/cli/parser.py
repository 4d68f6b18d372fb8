"""The argparse tree: one subcommand per library call, its flags and their types."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from dpsim import __version__
from dpsim.cli.commands import (
    _cmd_aggregate,
    _cmd_catalog,
    _cmd_config,
    _cmd_export,
    _cmd_fidelity,
    _cmd_monitor,
    _cmd_plan,
    _cmd_process,
    _cmd_report,
    _cmd_shred,
    _cmd_sql,
    _cmd_status,
    _cmd_synth,
    _cmd_version,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpsim", description=__import__("dpsim").__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    p.add_argument("--version", action="version", version=f"dpsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_setup_commands, _run_commands, _query_commands, _watch_commands):
        add(partial(_command, sub))
    return p


def _command(
    sub: Any,
    name: str,
    help_: str,
    func: Callable[[argparse.Namespace], int],
    config: bool = True,
    lake: bool = True,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """One subcommand with the flags every command shares (--config, --lake, -v)."""
    sp: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_, epilog=epilog)
    sp.set_defaults(func=func)
    if config:
        sp.add_argument(
            "--config", metavar="F", help="YAML config (default: $DPSIM_CONFIG, else conf/default.yaml)"
        )
    if lake:
        sp.add_argument(
            "--lake",
            metavar="DIR|URL",
            help="lake root: a folder or s3://bucket/prefix (overrides config `lake`)",
        )
    sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return sp


def _setup_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """config, version, synth, shred: settings, and getting data into the lake."""
    sp = cmd(
        "config",
        "print the resolved configuration",
        _cmd_config,
        epilog="Settings resolve as: command-line flag > DPSIM_* environment variable (DPSIM_CONFIG, "
        "DPSIM_LAKE, DPSIM_EXECUTOR, DPSIM_WORKERS, DPSIM_JOB_TIMEOUT, DPSIM_MAX_RETRIES, "
        "DPSIM_SHRED_WORKERS, DPSIM_MEMORY_LIMIT_MB, DPSIM_TEMP_DIRECTORY) > config file > default.",
    )
    _json_flag(sp)
    sp.add_argument(
        "--show-origin", action="store_true", help="every setting with where it came from (file:line, …)"
    )
    sp = cmd(
        "version",
        "dpsim's version and those of the packages it runs on",
        _cmd_version,
        config=False,
        lake=False,
    )
    sp.add_argument("--json", action="store_true", help="one JSON object on stdout")
    sp = cmd("synth", "generate a realistic synthetic raw data drop", _cmd_synth, config=False, lake=False)
    sp.add_argument("--out", required=True, type=Path, help="output folder")
    sp.add_argument("--securities", type=int, default=5)
    sp.add_argument("--days", type=int, default=2)
    sp.add_argument("--start", type=date.fromisoformat, default=date(2024, 9, 30), help="YYYY-MM-DD")
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--scale", help="orders file size (400MB, 2GB) or row count (5000000)")
    sp.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    sp = cmd(
        "shred",
        "stream raw CSV exports into the Parquet lake",
        _cmd_shred,
        epilog="Inputs named on the command line replace the config's inputs of that kind; when any of "
        "--orders/--trades/--nbbo is given, the optional --reference/--session/--participants are read "
        "only if given too. `none` names no file (e.g. --reference none).",
    )
    for kind in ("orders", "trades", "nbbo"):
        sp.add_argument(f"--{kind}", nargs="+", metavar="GLOB", help=f"{kind} files (override config inputs)")
    for kind in ("reference", "session", "participants"):
        sp.add_argument(f"--{kind}", nargs="+", metavar="GLOB", help=f"optional {kind} files, or none")
    sp.add_argument("--force", action="store_true", help="re-shred sources whose fingerprint is unchanged")
    sp.add_argument("--workers", type=int, metavar="N", help="worker processes (overrides shred.workers)")
    sp.add_argument(
        "--executor",
        help="where --workers > 1 pieces run: local processes (default) | dask://HOST:PORT | dask-local[:N]",
    )
    _json_flag(sp)


def _run_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """process, plan, aggregate, fidelity: computing the results."""
    sp = cmd("process", "run the per-partition pipeline (one job per security x date)", _cmd_process)
    _selection_flags(sp)
    sp.add_argument("--workers", type=int, help="parallel jobs (default: config run.workers, 0 = cores)")
    sp.add_argument("--executor", help="local | dask://HOST:PORT | dask-local[:N]")
    sp.add_argument(
        "--job-timeout",
        type=float,
        metavar="S",
        help="per-job timeout in seconds (>= 5: shorter ones cannot be enforced)",
    )
    sp.add_argument(
        "--dry-run", action="store_true", help="show what would run and why (as `dpsim plan`); write nothing"
    )
    _json_flag(sp)
    _rematch_flag(sp)
    sp = cmd(
        "plan",
        "the partitions `dpsim process` would run and why the others are skipped; writes nothing",
        _cmd_plan,
    )
    _selection_flags(sp)
    _json_flag(sp)
    _rematch_flag(sp)
    sp = cmd("aggregate", "run the DuckDB aggregations and statistics over the results", _cmd_aggregate)
    _json_flag(sp)
    sp = cmd(
        "fidelity",
        "explain, by cause, the real Centre Point executions the reality replay does not reproduce",
        _cmd_fidelity,
    )
    sp.add_argument("--securities", type=_int_list, metavar="LIST", help="comma-separated security codes")
    sp.add_argument("--dates", type=_date_range, metavar="A..B", help="trading dates YYYY-MM-DD..YYYY-MM-DD")
    sp.add_argument("--out", type=Path, help="also write one row per missed pair to this CSV file")
    _rematch_flag(sp)


def _query_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """sql, catalog, export, report: reading the results."""
    sp = cmd("sql", "run SQL against the lake catalog (no query: list tables and columns)", _cmd_sql)
    sp.set_defaults(brief=True)  # a short read: no cycle collection (dpsim.cli.main)
    sp.add_argument("query", nargs="?", help="SQL text")
    sp.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    sp.add_argument("--out", type=Path, help="write the result to this file")
    sp.add_argument(
        "--max-rows",
        type=_non_negative,
        default=1000,
        metavar="N",
        help="print at most N rows of the answer (default 1000; 0: all); files get every row",
    )
    sp.add_argument(
        "--unsafe",
        action="store_true",
        help="also run statements other than queries (COPY, ATTACH, SET, ...) and read outside the lake",
    )
    sp = cmd(
        "catalog",
        "bring results_by_date up to date and rewrite lake/dpsim.duckdb (e.g. after moving the lake)",
        _cmd_catalog,
    )
    sp.add_argument(
        "--rescan",
        action="store_true",
        help="walk every job output instead of the change journal (after result files were edited by hand)",
    )
    sp = cmd(
        "export", "send results and aggregates to PostgreSQL or to warehouse-loadable Parquet", _cmd_export
    )
    sp.add_argument(
        "--to",
        required=True,
        nargs="+",
        metavar="TARGET",
        help="postgresql://USER@HOST:PORT/DB (password: PGPASSWORD or ~/.pgpass) | parquet DIR",
    )
    sp.add_argument(
        "--schema", default="public", help="PostgreSQL schema (created when missing; default public)"
    )
    sp.add_argument("--profile", choices=("portable",), help="Parquet profile (--to parquet DIR): portable")
    sp.add_argument(
        "--tables",
        metavar="T,…|all",
        help="result tables and aggregates (`aggregates` = every one); default all",
    )
    sp.add_argument("--securities", type=_int_list, help="comma-separated security codes")
    sp.add_argument("--dates", type=_date_range, help="YYYY-MM-DD..YYYY-MM-DD (or one date)")
    sp.add_argument(
        "--workers",
        type=int,
        default=2,
        metavar="N",
        help="database connections sending partitions (default 2)",
    )
    sp.add_argument(
        "--rebuild",
        action="store_true",
        help="drop the selected tables in the target and send everything again",
    )
    sp = cmd(
        "report",
        "write the lake's report: one self-contained HTML page (with --sweep ID: one sweep's story)",
        _cmd_report,
    )
    sp.add_argument(
        "--out", type=Path, metavar="FILE", help="HTML file (default: report.html, or sweep-<ID>.html)"
    )
    sp.add_argument(
        "--scenario", action="append", metavar="NAME", help="show only these scenarios (repeatable)"
    )
    sp.add_argument("--securities", type=_int_list, metavar="LIST", help="comma-separated security codes")
    sp.add_argument("--dates", type=_date_range, metavar="A..B", help="trading dates YYYY-MM-DD..YYYY-MM-DD")
    sp.add_argument("--sweep", type=int, metavar="ORDER_ID", help="one sweep's story instead of the lake's")


def _watch_commands(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """status, monitor: watching runs."""
    sp = cmd("status", "the running and recent shred and process runs of the lake", _cmd_status)
    _json_flag(sp)
    sp.add_argument("--watch", action="store_true", help="show it again every 2 s until Ctrl-C")
    sp.add_argument("--limit", type=int, default=10, metavar="N", help="the N most recent runs (10)")
    sp = cmd(
        "monitor",
        "a live dashboard of the lake's runs in the browser (http://127.0.0.1:PORT/)",
        _cmd_monitor,
    )
    sp.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")


def _selection_flags(sp: argparse.ArgumentParser) -> None:
    """What `process` and `plan` select: partitions, scenarios, and what to rerun."""
    sp.add_argument("--securities", type=_int_list, help="comma-separated security codes")
    sp.add_argument("--dates", type=_date_range, help="YYYY-MM-DD..YYYY-MM-DD (or one date)")
    sp.add_argument(
        "--scenario", action="append", metavar="NAME", help="run only these scenarios (repeatable)"
    )
    sp.add_argument(
        "--only-failed", action="store_true", help="rerun only the partitions that failed last run"
    )
    sp.add_argument(
        "--force", action="store_true", help="rerun partitions whose inputs and config are unchanged"
    )
    sp.add_argument("--no-aggregate", action="store_true", help="skip the aggregation at the end")


def _json_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--json", action="store_true", help="print the result as JSON on stdout (progress and logs on stderr)"
    )


def _rematch_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--rematch-on-quote",
        action="store_const",
        const=True,
        help="replay rule beyond the methodology's: a new quote matches two resting orders "
        "(config replay.rematch_on_quote)",
    )


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated integers like 110621,110622"
        ) from exc


def _date_range(text: str) -> tuple[date, date]:
    try:
        a, _, b = text.partition("..")
        lo, hi = date.fromisoformat(a), date.fromisoformat(b or a)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected YYYY-MM-DD..YYYY-MM-DD") from exc
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text!r}: the first date is after the second")
    return lo, hi


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, 0 or more")
    return value

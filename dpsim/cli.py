"""Command line: parses arguments, calls the library, renders results. No pipeline logic lives here."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpsim import __version__
from dpsim.errors import DpsimError, Interrupted, JobsFailed

if TYPE_CHECKING:  # the commands import their modules when they run: `dpsim --help` stays fast
    import pyarrow as pa

    from dpsim.config import Config
    from dpsim.jobs import RunResult
    from dpsim.lake import Lake
    from dpsim.progress import Progress

log = logging.getLogger("dpsim")
# Test hook: fault injection for partition jobs ("<action>:<sec>/<date>,…", see jobs.JobTask.faults).
FAULT_ENV = "DPSIM_FAULT_INJECT"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # run log files get INFO; the console only what was asked
        handler.setLevel(level)
    try:
        return int(args.func(args) or 0)
    except DpsimError as exc:
        if args.verbose:
            raise
        print(f"dpsim: {'' if isinstance(exc, Interrupted) else 'error: '}{exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # one not worded by the library: still one line, with what to do
        if args.verbose:
            raise
        from dpsim.errors import os_error_text

        print(f"dpsim: error: {os_error_text(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dpsim: interrupted", file=sys.stderr)
        return 130


# ---- argument parsing ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpsim", description=__import__("dpsim").__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    p.add_argument("--version", action="version", version=f"dpsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(
        name: str,
        help_: str,
        func: Callable[[argparse.Namespace], int],
        config: bool = True,
        lake: bool = True,
        epilog: str | None = None,
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, epilog=epilog)
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
        sp.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        return sp

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

    sp = cmd("sql", "run SQL against the lake catalog (no query: list tables and columns)", _cmd_sql)
    sp.add_argument("query", nargs="?", help="SQL text")
    sp.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    sp.add_argument("--out", type=Path, help="write the result to this file")
    sp.add_argument(
        "--unsafe",
        action="store_true",
        help="also run statements other than queries (COPY, ATTACH, SET, ...) and read outside the lake",
    )

    cmd("catalog", "rewrite lake/dpsim.duckdb (e.g. after moving the lake)", _cmd_catalog)

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
    return p


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


# ---- commands ----------------------------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace) -> int:
    import json

    import yaml

    cfg, origins = _load_with_origins(args)
    data = cfg.to_dict()
    if args.show_origin:
        values = _flatten({k: v for k, v in data.items() if k != "source"})
        if args.json:
            _print_json({k: {"value": v, "origin": origins[k]} for k, v in values.items()})
        else:
            width = max(len(o) for o in origins.values())
            for key, value in values.items():
                print(f"{origins[key]:<{width}}  {key} = {json.dumps(value, default=str)}")
        return 0
    if args.json:
        _print_json(data)
        return 0
    data.pop("source", None)
    print(f"# resolved from {cfg.source}")
    print(yaml.safe_dump(data, sort_keys=False), end="")
    return 0


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys (what `--show-origin` lists)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _cmd_version(args: argparse.Namespace) -> int:
    from dpsim import versions

    found = versions()
    if args.json:
        _print_json(found)
    else:
        for name, version in found.items():
            print(f"{name:<12} {version or 'not installed'}")
    return 0


def _print_json(obj: Any) -> None:
    """A command's result as JSON on stdout (progress and logs go to stderr)."""
    import json

    sys.stdout.write(json.dumps(obj, indent=1, default=str) + "\n")


def _cmd_synth(args: argparse.Namespace) -> int:
    from dpsim import synth
    from dpsim.progress import for_terminal

    try:
        scale = synth.parse_scale(args.scale)
    except ValueError as exc:
        raise DpsimError(str(exc)) from exc
    summary = synth.generate(
        args.out,
        securities=args.securities,
        days=args.days,
        start=args.start,
        seed=args.seed,
        scale=scale,
        gzip=args.gzip,
    )
    rows = [(k, str(summary.files[k]), summary.rows[k], summary.bytes[k] / 1e6) for k in summary.files]
    for_terminal().table(
        f"synthetic drop: {summary.partitions} partitions", ("kind", "file", "rows", "MB"), rows
    )
    return 0


def _cmd_shred(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from dpsim.progress import for_terminal
    from dpsim.shred import shred_drop

    cfg = _load(args, **{"shred.workers": args.workers, "run.executor": args.executor})
    kinds = ("orders", "trades", "nbbo", "reference", "session", "participants")
    inputs = {k: _globs(getattr(args, k)) for k in kinds if getattr(args, k)}
    progress = for_terminal()
    results = shred_drop(
        cfg,
        _lake(cfg),
        inputs=inputs or None,
        force=args.force,
        progress=progress,
        command=shlex.join(sys.argv),
    )
    failed = [r for r in results if r.status == "failed"]
    if args.json:
        _print_json({"sources": [asdict(r) for r in results], "failed": len(failed)})
    else:
        progress.table(
            "shred",
            ("kind", "source", "status", "rows read", "written", "rejected", "partitions", "seconds", "MB/s"),
            [
                (
                    r.kind,
                    Path(r.path).name,
                    r.status,
                    r.rows_read,
                    r.rows_written,
                    r.rows_rejected,
                    len(r.partitions),
                    r.seconds,
                    r.size / 1e6 / r.seconds if r.seconds else None,
                )
                for r in results
            ],
        )
    for r in failed:
        print(f"dpsim: {r.error}", file=sys.stderr)  # shred errors start with the file name
    if failed:
        raise DpsimError(
            f"{len(failed)} source file(s) failed; fix them and rerun `dpsim shred` (done files are skipped)"
        )
    return 0


def _globs(values: list[str]) -> list[str]:
    """`--KIND none` names no file."""
    return [] if [v.lower() for v in values] == ["none"] else values


def _process_request(args: argparse.Namespace) -> tuple[Config, Any]:
    """The config and `jobs.ProcessRequest` of `process` and `plan`."""
    from dpsim import jobs

    cfg = _load(
        args,
        **{
            "run.workers": getattr(args, "workers", None),
            "run.executor": getattr(args, "executor", None),
            "run.job_timeout_s": getattr(args, "job_timeout", None),
            "replay.rematch_on_quote": args.rematch_on_quote,
        },
    )
    rerun = ["dpsim", "process", "--only-failed"]
    if args.config:
        rerun += ["--config", args.config]
    if args.lake:
        rerun += ["--lake", args.lake]
    request = jobs.ProcessRequest(
        securities=args.securities,
        dates=args.dates,
        scenarios=args.scenario,
        only_failed=args.only_failed,
        force=args.force,
        aggregate=not args.no_aggregate,
        command=shlex.join(sys.argv),
        faults=os.environ.get(FAULT_ENV, ""),
        rerun=rerun,
    )
    return cfg, request


def _cmd_plan(args: argparse.Namespace) -> int:
    from dpsim import jobs

    cfg, request = _process_request(args)
    found = jobs.plan(cfg, _lake(cfg), request)
    for m in found.missing:
        _note(m)
    rows = [(str(p.key), "run" if p.run else "skip", p.reason) for p in found.partitions]
    n_run = len(found.to_run)
    if args.json:
        _print_json(
            {
                "partitions": [dict(zip(("partition", "action", "reason"), r, strict=True)) for r in rows],
                "to_run": n_run,
                "skipped": len(rows) - n_run,
                "missing": found.missing,
                "aggregate": found.aggregate,
            }
        )
        return 0
    from dpsim.progress import for_terminal

    for_terminal().table(
        f"dpsim process would run {n_run} of {len(rows)} partitions"
        + ("" if found.aggregate else "; the aggregates are up to date"),
        ("partition", "action", "why"),
        rows,
    )
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    from dpsim import jobs
    from dpsim.progress import for_terminal

    if args.dry_run:
        return _cmd_plan(args)
    cfg, request = _process_request(args)
    progress = for_terminal()
    outcome = jobs.process(cfg, _lake(cfg), request, progress=progress, note=_note)
    run = outcome.run
    if args.json:
        _print_json(_process_json(outcome))
    elif run is None:
        print("dpsim: the last run had no failed partitions; nothing to do", file=sys.stderr)
    elif outcome.nothing_ran:
        done = "nothing to do" if outcome.headline is None else "only the aggregates were out of date"
        print(
            f"dpsim: all {len(run.records)} partitions unchanged; {done} (--force reruns them; "
            f"run {run.run_id})",
            file=sys.stderr,
        )
    else:
        _render_run(progress, run)
    if outcome.headline is not None and not args.json:
        _print_headline(progress, *outcome.headline, cfg.time.timezone)
    if outcome.finish_error is not None:
        print(f"dpsim: error: {outcome.finish_error}", file=sys.stderr)
    if run is not None and run.failed:
        raise JobsFailed(run.failure_message(request.rerun))
    return 0


def _process_json(outcome: Any) -> dict[str, Any]:
    from dataclasses import asdict

    run = outcome.run
    body: dict[str, Any] = {"run_id": None, "nothing_to_do": True}
    if run is not None:
        by = {s: sum(1 for r in run.records if r.status == s) for s in ("ok", "failed", "skipped")}
        body = {
            "run_id": run.run_id,
            "manifest": str(run.manifest_path),
            "nothing_to_do": outcome.nothing_ran,
            "partitions": len(run.records),
            **by,
            "seconds": run.seconds,
            "failures": [{"partition": r.partition, "error": r.error} for r in run.failed],
            "jobs": [asdict(r) for r in run.records],
        }
    body["aggregates_unchanged"] = outcome.aggregates_unchanged
    if outcome.headline is not None:
        body["headline"] = outcome.headline[0].to_pylist()
    return body


def _note(text: str) -> None:
    print(f"dpsim: note: {text}", file=sys.stderr)


def _render_run(progress: Progress, result: RunResult) -> None:
    recs = result.records
    ran = [r for r in recs if r.status != "skipped"]
    by = {s: sum(1 for r in recs if r.status == s) for s in ("ok", "failed", "skipped")}
    rows: list[tuple[str, Any]] = [
        ("run", result.run_id),
        ("jobs ok / failed / skipped", f"{by['ok']} / {by['failed']} / {by['skipped']}"),
        ("wall time (s)", result.seconds),
        ("jobs/s", len(ran) / result.seconds if result.seconds else None),
        ("rows in / out", f"{sum(r.rows_in for r in ran):,} / {sum(r.rows_out for r in ran):,}"),
        ("sweeps analysed", sum(r.sweeps for r in ran)),
    ]
    timed = sorted((r for r in ran if r.status == "ok"), key=lambda r: r.seconds)
    if timed:
        rows += [
            ("per-job mean (s)", sum(r.seconds for r in timed) / len(timed)),
            ("fastest job", f"{timed[0].partition} {timed[0].seconds:.3f} s"),
            ("slowest job", f"{timed[-1].partition} {timed[-1].seconds:.3f} s"),
            ("peak worker RSS (MB)", max(r.worker_peak_rss_mb for r in timed)),
        ]
    rows += [(f"FAILED {r.partition}", r.error) for r in result.failed[:20]]
    progress.table("process", ("", ""), rows)


def _print_headline(
    progress: Progress, summary: pa.Table, tests: pa.Table, quality: pa.Table, timezone: str
) -> None:
    """The headline per scenario, the paired test of its delta, and the data quality."""
    rows = summary.to_pylist()
    counts = sorted({_num(r["n_with_delta"]) for r in rows})
    progress.table(
        "Would resting in Centre Point have been cheaper? Implementation shortfall, bps, notional-weighted, "
        f"same sweeps and shares ({' / '.join(counts)} sweeps; delta = sim - real; < 0: the dark pool "
        "was cheaper; rested filled: share of the rested quantity filled while resting)",
        ("scenario", "world", "real", "sim", "delta [95% CI]", "rested\nfilled", "fidelity"),
        [
            (
                r["scenario"],
                r["world"],
                _bps(r["real_is_bps"]),
                _bps(r["sim_is_bps"]),
                f"{_bps(r['delta_is_bps'])} [{_bps(r['ci_low'])}, {_bps(r['ci_high'])}]",
                _pct(r["sim_rested_fill_ratio"]),
                _pct(r["fidelity_mean"]),
            )
            for r in rows
        ],
    )
    progress.table(
        "Paired tests of delta implementation shortfall per sweep (all analysed sweeps; q: "
        "Benjamini-Hochberg within the scenario's family)",
        ("scenario", "n", "mean delta", "95% CI", "p (t)", "q (t)", "p (Wilcoxon)"),
        [
            (
                r["scenario"],
                _num(r["n"]),
                _bps(r["mean_diff"]),
                f"[{_bps(r['ci_low'])}, {_bps(r['ci_high'])}]",
                _p(r["p_value_t"]),
                _p(r["q_value_t"]),
                _p(r["p_value_wilcoxon"]),
            )
            for r in tests.to_pylist()
        ],
    )
    q = quality.to_pylist()[0] if quality.num_rows else {}
    rows = _quality_rows(q, timezone)
    progress.table("Data quality (results/quality; docs/methodology.md)", ("", ""), rows)


def _print_arrow(progress: Progress, title: str, table: pa.Table) -> None:
    progress.table(title, table.column_names, [tuple(r.values()) for r in table.to_pylist()])


def _quality_rows(q: dict[str, Any], timezone: str) -> list[tuple[str, str]]:
    if not q or not q.get("n_partitions"):
        return [("partitions", "0")]
    return [
        ("partitions (open set by an auction print)", f"{q['n_partitions']} ({q['n_open_from_auction']})"),
        (
            "session open (local): first / last",
            f"{_local(q['first_open'], timezone)} / {_local(q['last_open'], timezone)}",
        ),
        (
            "quotes usable / stale / empty / crossed / locked",
            " / ".join(_num(q[f"n_{c}_quotes"]) for c in ("usable", "stale", "empty", "crossed", "locked")),
        ),
        (
            "sweeps analysed / outside the session / without a mid",
            f"{_num(q['n_sweeps_analysed'])} / {_num(q['n_sweeps_outside_session'])} / "
            f"{_num(q['n_sweeps_without_mid'])}",
        ),
        (
            "arrival quote age (s): median / p95",
            f"{_fixed(q['arrival_quote_age_median_s'])} / {_fixed(q['arrival_quote_age_p95_s'])}",
        ),
        (
            "traded quantity lit / dark / auction",
            " / ".join(_num(q[f"quantity_{c}"]) for c in ("lit", "dark", "auction")),
        ),
        (
            "traded quantity reported / booking",
            " / ".join(_num(q[f"quantity_{c}"]) for c in ("reported", "booking")),
        ),
        ("replay fidelity: lowest / overall", f"{_pct(q['fidelity_min'])} / {_pct(q['fidelity_mean'])}"),
    ]


def _local(ns: Any, timezone: str) -> str:
    """A ns UTC instant as exchange-local date and time to the millisecond."""
    if ns is None:
        return ""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(ns / 1e9, tz=ZoneInfo(timezone))
    return local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


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


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from dpsim import jobs
    from dpsim.progress import for_terminal

    cfg = _load(args)
    progress = for_terminal()
    summary, tests, quality = jobs.aggregate(cfg, _lake(cfg), progress)
    if args.json:
        _print_json(
            {
                "headline": summary.to_pylist(),
                "stats_tests": tests.to_pylist(),
                "quality_summary": quality.to_pylist(),
            }
        )
    else:
        _print_headline(progress, summary, tests, quality, cfg.time.timezone)
    return 0


def _cmd_fidelity(args: argparse.Namespace) -> int:
    import polars as pl

    from dpsim import jobs
    from dpsim.partition import lake_fidelity_misses
    from dpsim.progress import for_terminal

    cfg = _load(args, **{"replay.rematch_on_quote": args.rematch_on_quote})
    lake = _lake(cfg)
    partitions, missing = jobs.plan_partitions(lake, args.securities, args.dates)
    for m in missing:
        print(f"dpsim: note: {m}", file=sys.stderr)
    if not partitions:
        raise DpsimError(
            f"{lake.root}: no partitions selected; run `dpsim shred` first or widen the selection"
        )
    misses = lake_fidelity_misses(lake, cfg, partitions)
    if args.out:
        misses.write_csv(args.out)
    total = int(misses["missed_quantity"].sum()) if misses.height else 0
    rows = []
    if misses.height:
        by_cause = misses.group_by("cause").agg(
            pl.len().alias("pairs"), pl.col("missed_quantity").sum().alias("missed")
        )
        for r in by_cause.sort("missed", descending=True).iter_rows(named=True):
            rows.append((r["cause"], _num(r["pairs"]), _num(r["missed"]), _pct(r["missed"] / total)))
    rows.append(("all causes", _num(misses.height), _num(total), _pct(1.0) if total else ""))
    for_terminal().table(
        f"Real CP quantity the reality replay misses, by cause ({len(partitions)} partitions; "
        "docs/methodology.md, 'Replay fidelity')",
        ("cause", "pairs", "missed qty", "share"),
        rows,
    )
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from dpsim.aggregate import describe_catalog, run_sql
    from dpsim.progress import for_terminal

    cfg = _load(args)
    lake = _lake(cfg)
    if not args.query:
        for_terminal().table(f"{lake.catalog_path}", ("view", "column", "type"), describe_catalog(lake))
        return 0
    table = run_sql(lake, args.query, cfg, unsafe=args.unsafe)
    _write_result(table, args.format, args.out)
    return 0


def _write_result(table: pa.Table, fmt: str, out: Path | None) -> None:
    import pyarrow.parquet as pq

    if fmt == "parquet":
        if out is None:
            raise DpsimError("--format parquet needs --out FILE")
        pq.write_table(table, out)
        return
    if fmt == "table":
        if out is None:
            from dpsim.progress import for_terminal

            _print_arrow(for_terminal(), "", table)
            return
        fmt = "csv"  # a table written to a file is a CSV
    if fmt == "csv":
        from dpsim.aggregate import csv_bytes

        text = csv_bytes(table).decode()
    else:
        import json

        text = json.dumps(table.to_pylist(), default=str, indent=1) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


def _cmd_report(args: argparse.Namespace) -> int:
    from dpsim.report import Selection, build_report, build_sweep_report

    cfg = _load(args)
    lake = _lake(cfg)
    selection = Selection(
        scenarios=tuple(args.scenario or ()), securities=tuple(args.securities or ()), dates=args.dates
    )
    if args.sweep is not None:
        out = args.out or Path(f"sweep-{args.sweep}.html")
        written = build_sweep_report(cfg, lake, args.sweep, out, selection)
    else:
        written = build_report(cfg, lake, args.out or Path("report.html"), selection)
    print(
        f"wrote {written.path} ({written.bytes / 1e6:.1f} MB, {len(written.sections)} sections, "
        f"{written.figures} plots) in {written.seconds:.1f} s"
    )
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from dpsim.catalog import refresh_catalog

    cfg = _load(args)
    lake = _lake(cfg)
    views = refresh_catalog(lake)
    print(f"{lake.catalog_path}: {len(views)} views: {', '.join(views)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from dpsim.export import Selection, export_portable, export_postgres, parse_tables
    from dpsim.progress import for_terminal

    cfg = _load(args)
    lake = _lake(cfg)
    selection = Selection(
        tables=parse_tables(args.tables),
        securities=tuple(args.securities) if args.securities else None,
        dates=args.dates,
    )
    progress = for_terminal()
    kind, *rest = args.to
    if kind == "parquet":
        if len(rest) != 1:
            raise DpsimError("--to parquet needs one folder: --to parquet DIR --profile portable")
        if args.profile is None:
            raise DpsimError("--to parquet DIR needs --profile portable (the only Parquet profile)")
        result = export_portable(
            lake, rest[0], profile=args.profile, selection=selection, rebuild=args.rebuild, progress=progress
        )
    else:
        if rest:
            raise DpsimError(f"--to takes one URL, got {len(args.to)} words; quote it if it has spaces")
        if args.profile is not None:
            raise DpsimError("--profile applies to --to parquet DIR, not to a database")
        result = export_postgres(
            lake,
            kind,
            schema=args.schema,
            selection=selection,
            rebuild=args.rebuild,
            workers=args.workers,
            progress=progress,
        )
    unit = "files" if kind == "parquet" else "partitions"
    progress.table(
        f"export {result.export_id} to {result.target}",
        ("table", f"{unit} sent", "unchanged", "removed", "rows"),
        [(t, s.sent, s.unchanged, s.removed, s.rows) for t, s in result.tables.items()],
    )
    rate = f", {result.rows / result.seconds:,.0f} rows/s" if result.seconds and result.rows else ""
    print(
        f"dpsim: exported {result.rows:,} rows ({result.sent} {unit}, {result.aggregates_sent} aggregates; "
        f"{result.unchanged} unchanged) to {result.target} in {result.seconds:.1f} s{rate}"
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import json
    import time

    from dpsim.monitor import lake_state
    from dpsim.progress import for_terminal

    cfg = _load(args)
    lake = _lake(cfg)
    last = ""
    while True:
        state = lake_state(lake, args.limit)
        if args.json:
            text = json.dumps({k: v for k, v in state.items() if k != "read"}, default=str)
            if text != last:  # --watch: one line per change (not per look)
                print(json.dumps(state, default=str, indent=None if args.watch else 1), flush=True)
            last = text
        else:
            if args.watch and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")  # clear the screen: the table replaces the last one
            _render_status(for_terminal(), state)
        if not args.watch:
            return 0
        try:
            time.sleep(2.0)
        except KeyboardInterrupt:
            return 0


def _render_status(progress: Progress, state: dict[str, Any]) -> None:
    runs = state["runs"]
    if not runs:
        print(f"{state['lake']}: no runs yet")
        return
    rows = []
    for r in runs:
        if r["kind"] == "shred":
            done = f"{(r.get('bytes_done') or 0) / 1e6:,.1f} / {(r.get('bytes_total') or 0) / 1e6:,.1f} MB"
            counts = f"rows {r.get('rows_read') or 0:,} / {r.get('rows_written') or 0:,} / {r.get('rows_rejected') or 0:,}"
            rate = f"{r['rate_mb_s']} MB/s" if r.get("rate_mb_s") else ""
        else:
            done = f"{r.get('done') or 0:,} / {r.get('to_run') or 0:,} jobs"
            counts = (
                f"ok {r.get('ok') or 0:,}  failed {r.get('failed') or 0:,}  retried {r.get('retried') or 0:,}  "
                f"running {r.get('n_running') or 0:,}  skipped {r.get('skipped') or 0:,}"
            )
            rate = f"{r['rate_jobs_s']:.2f} jobs/s" if r.get("rate_jobs_s") else ""
        eta = f"{r['eta_s']:,.0f} s" if r["state"] == "running" and r.get("eta_s") is not None else ""
        rows.append((r["run_id"], r["kind"], r["state"], done, counts, rate, eta))
    progress.table(
        f"runs of {state['lake']} (newest first)",
        ("run", "kind", "state", "done", "rows read/written/rejected | jobs", "rate", "ETA"),
        rows,
    )
    for r in runs:
        for f in r.get("failures") or []:
            print(f"{r['run_id']}: FAILED {f['partition']}: {f['error']}")
        if r.get("failures") and r.get("rerun"):
            print(f"{r['run_id']}: rerun only the failed partitions with: {r['rerun']}")


def _cmd_monitor(args: argparse.Namespace) -> int:
    from dpsim.monitor import serve

    cfg = _load(args)
    lake = _lake(cfg)

    def ready(address: str) -> None:
        print(f"dpsim monitor: {address} (lake {lake.root}); Ctrl-C stops it", flush=True)

    try:
        serve(lake, args.port, on_ready=ready)
    except OSError as exc:
        raise DpsimError(
            f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc}): pass another --port, or 0 for any"
        ) from exc
    except KeyboardInterrupt:
        print("dpsim monitor: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

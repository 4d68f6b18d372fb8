"""One function per subcommand: translate the arguments, call one library function, render."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpsim.errors import DpsimError, JobsFailed

if TYPE_CHECKING:  # the commands import their modules when they run: `dpsim --help` stays fast
    from dpsim.config import Config

from dpsim.cli.common import (
    FAULT_ENV,
    _flatten,
    _globs,
    _lake,
    _load,
    _load_with_origins,
    _note,
    _num,
    _pct,
    _print_json,
)
from dpsim.cli.render import _print_headline, _process_json, _render_run, _render_status


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


def _cmd_version(args: argparse.Namespace) -> int:
    from dpsim import versions

    found = versions()
    if args.json:
        _print_json(found)
    else:
        for name, version in found.items():
            print(f"{name:<12} {version or 'not installed'}")
    return 0


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
    from dpsim.progress import for_terminal
    from dpsim.query import describe_catalog, sql_rows, write_answer

    cfg = _load(args)
    lake = _lake(cfg)
    if not args.query:
        for_terminal().table(f"{lake.catalog_path}", ("view", "column", "type"), describe_catalog(lake))
        return 0
    if args.format == "table" and args.out is None:  # printed: no Arrow table on the way
        max_rows = args.max_rows or None  # 0: every row
        columns, rows, more = sql_rows(lake, args.query, cfg, unsafe=args.unsafe, max_rows=max_rows)
        for_terminal().table("", columns, rows)
        if more:
            print(
                f"dpsim: the first {max_rows:,} rows of a longer answer; --max-rows 0 prints every row, "
                "--format csv --out FILE writes them",
                file=sys.stderr,
            )
        return 0
    if args.format == "parquet" and args.out is None:
        raise DpsimError("--format parquet needs --out FILE")
    # a table written to a file is a CSV
    write_answer(
        lake, args.query, cfg, "csv" if args.format == "table" else args.format, args.out, unsafe=args.unsafe
    )
    return 0


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
    from dpsim import jobs

    cfg = _load(args)
    lake = _lake(cfg)
    views = jobs.rebuild_catalog(cfg, lake, rescan=args.rescan)
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

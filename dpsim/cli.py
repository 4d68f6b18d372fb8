"""Command line: parses arguments, calls the library, renders results. No pipeline logic lives here."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from dpsim.errors import DpsimError, JobsFailed

log = logging.getLogger("dpsim")


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
        print(f"dpsim: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dpsim: interrupted", file=sys.stderr)
        return 130


# ---- argument parsing ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpsim", description=__import__("dpsim").__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(
        name: str, help_: str, func: Any, config: bool = True, lake: bool = True
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=func)
        if config:
            sp.add_argument("--config", metavar="F", help="YAML config (default: conf/default.yaml)")
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

    cmd("config", "print the resolved configuration", _cmd_config)

    sp = cmd("synth", "generate a realistic synthetic raw data drop", _cmd_synth, config=False, lake=False)
    sp.add_argument("--out", required=True, type=Path, help="output folder")
    sp.add_argument("--securities", type=int, default=5)
    sp.add_argument("--days", type=int, default=2)
    sp.add_argument("--start", type=date.fromisoformat, default=date(2024, 9, 30), help="YYYY-MM-DD")
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--scale", help="orders file size (400MB, 2GB) or row count (5000000)")
    sp.add_argument("--gzip", action="store_true", help="write .csv.gz files")

    sp = cmd("shred", "stream raw CSV exports into the Parquet lake", _cmd_shred)
    for kind in ("orders", "trades", "nbbo"):
        sp.add_argument(f"--{kind}", nargs="+", metavar="GLOB", help=f"{kind} files (override config inputs)")
    for kind in ("reference", "session", "participants"):
        sp.add_argument(f"--{kind}", nargs="+", metavar="GLOB")
    sp.add_argument("--force", action="store_true", help="re-shred sources whose fingerprint is unchanged")
    sp.add_argument("--workers", type=int, metavar="N", help="worker processes (overrides shred.workers)")
    sp.add_argument(
        "--executor",
        help="where --workers > 1 pieces run: local processes (default) | dask://HOST:PORT | dask-local[:N]",
    )

    sp = cmd("process", "run the per-partition pipeline (one job per security x date)", _cmd_process)
    sp.add_argument("--securities", type=_int_list, help="comma-separated security codes")
    sp.add_argument("--dates", type=_date_range, help="YYYY-MM-DD..YYYY-MM-DD (or one date)")
    sp.add_argument(
        "--scenario", action="append", metavar="NAME", help="run only these scenarios (repeatable)"
    )
    sp.add_argument("--workers", type=int, help="parallel jobs (default: config run.workers, 0 = cores)")
    sp.add_argument("--executor", help="local | dask://HOST:PORT | dask-local[:N]")
    sp.add_argument("--job-timeout", type=float, metavar="S", help="per-job timeout in seconds")
    sp.add_argument(
        "--only-failed", action="store_true", help="rerun only the partitions that failed last run"
    )
    sp.add_argument(
        "--force", action="store_true", help="rerun partitions whose inputs and config are unchanged"
    )
    sp.add_argument("--no-aggregate", action="store_true", help="skip the aggregation at the end")
    _rematch_flag(sp)

    cmd("aggregate", "run the DuckDB aggregations and statistics over the results", _cmd_aggregate)

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

    cmd("catalog", "rewrite lake/dpsim.duckdb (e.g. after moving the lake)", _cmd_catalog)

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


def _load(args: argparse.Namespace, **overrides: Any) -> Any:
    from dpsim.config import load_config

    if getattr(args, "lake", None):
        overrides["lake"] = args.lake
    return load_config(args.config, {k: v for k, v in overrides.items() if v is not None})


def _lake(cfg: Any) -> Any:
    from dpsim.lake import Lake

    lake = Lake(cfg.lake)
    lake.check_reachable()
    return lake


# ---- commands ----------------------------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    cfg = _load(args)
    print(f"# resolved from {cfg.source}")
    data = cfg.to_dict()
    data.pop("source", None)
    print(yaml.safe_dump(data, sort_keys=False), end="")
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
    from dpsim.catalog import refresh_catalog
    from dpsim.progress import for_terminal
    from dpsim.shred import shred

    cfg = _load(args, **{"shred.workers": args.workers, "run.executor": args.executor})
    kinds = ("orders", "trades", "nbbo", "reference", "session", "participants")
    inputs = {k: getattr(args, k) for k in kinds if getattr(args, k)}
    progress = for_terminal()
    lake = _lake(cfg)
    results = shred(cfg, lake, inputs=inputs or None, force=args.force, progress=progress)
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
    refresh_catalog(lake)
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"dpsim: {r.error}", file=sys.stderr)  # shred errors start with the file name
    if failed:
        raise DpsimError(
            f"{len(failed)} source file(s) failed; fix them and rerun `dpsim shred` (done files are skipped)"
        )
    return 0


def _cmd_process(args: argparse.Namespace) -> int:
    from dpsim import jobs
    from dpsim.progress import for_terminal

    cfg = _load(
        args,
        **{
            "run.workers": args.workers,
            "run.executor": args.executor,
            "run.job_timeout_s": args.job_timeout,
            "replay.rematch_on_quote": args.rematch_on_quote,
        },
    )
    lake = _lake(cfg)
    unknown = [s for s in args.scenario or () if s not in cfg.scenarios]
    if unknown:
        raise DpsimError(f"unknown scenario(s) {', '.join(unknown)}; configured: {', '.join(cfg.scenarios)}")
    if not lake.partitions("orders"):
        raise DpsimError(f"{lake.root}: the lake has no orders partitions; run `dpsim shred` first")
    if args.only_failed:
        partitions, missing = jobs.last_failed(lake), list[str]()
        if not partitions:
            print("dpsim: the last run had no failed partitions; nothing to do")
            return 0
    else:
        partitions, missing = jobs.plan_partitions(lake, args.securities, args.dates)
    for m in missing:
        print(f"dpsim: note: {m}", file=sys.stderr)
    progress = for_terminal()
    from dpsim.executors import open_executor

    with open_executor(cfg.run) as executor:
        result = jobs.run_jobs(
            cfg,
            lake,
            partitions,
            scenarios=args.scenario,
            force=args.force or args.only_failed,
            executor=executor,
            progress=progress,
            command=" ".join(shlex.quote(a) for a in sys.argv),
        )
    _render_run(progress, result)
    if not args.no_aggregate:
        _aggregate_and_print(cfg, lake, progress)
    else:
        from dpsim.catalog import refresh_catalog

        refresh_catalog(lake)
    if result.failed:
        rerun = ["dpsim", "process", "--only-failed"]
        if args.config:
            rerun += ["--config", args.config]
        if args.lake:
            rerun += ["--lake", args.lake]
        names = ", ".join(r.partition for r in result.failed[:20]) + (
            " ..." if len(result.failed) > 20 else ""
        )
        raise JobsFailed(
            f"{len(result.failed)} of {len(result.records)} jobs failed ({names}); "
            f"see {result.manifest_path}; rerun only them with: {shlex.join(rerun)}"
        )
    return 0


def _render_run(progress: Any, result: Any) -> None:
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


def _aggregate_and_print(cfg: Any, lake: Any, progress: Any) -> None:
    from dpsim.aggregate import headline, run_aggregates

    run_aggregates(cfg, lake)
    summary, tests, quality = headline(lake)
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
    progress.table("Data quality (results/quality; docs/methodology.md)", ("", ""), _quality_rows(q))


def _print_arrow(progress: Any, title: str, table: Any) -> None:
    progress.table(title, table.column_names, [tuple(r.values()) for r in table.to_pylist()])


def _quality_rows(q: dict[str, Any]) -> list[tuple[str, str]]:
    if not q or not q.get("n_partitions"):
        return [("partitions", "0")]
    return [
        ("partitions (open set by an auction print)", f"{q['n_partitions']} ({q['n_open_from_auction']})"),
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
    from dpsim.progress import for_terminal

    cfg = _load(args)
    _aggregate_and_print(cfg, _lake(cfg), for_terminal())
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
    table = run_sql(lake, args.query, cfg)
    _write_result(table, args.format, args.out)
    return 0


def _write_result(table: Any, fmt: str, out: Path | None) -> None:
    import io

    import pyarrow.csv as pacsv
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
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        text = buf.getvalue().decode()
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


if __name__ == "__main__":
    raise SystemExit(main())

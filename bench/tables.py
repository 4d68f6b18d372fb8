"""The tables of a run: the targets first, then one or more per section."""

from __future__ import annotations

from typing import Any

from bench.rows import SHRED_SECTIONS, TOOL_NAMES, Table, cell, failure, section_rows


def tables(res: dict[str, Any]) -> list[Table]:
    """Every table of a run: the targets first, then one or more per section."""
    out: list[Table] = []
    _shred_tables(res, out)
    _process_table(res, out)
    _seed_table(res, out)
    _kernel_table(res, out)
    _report_table(res, out)
    _prototype_table(res, out)
    _export_table(res, out)
    _profile_tables(res, out)
    _aggregate_tables(res, out)
    _query_tables(res, out)
    t = res.get("targets") or []
    if t:
        out.insert(
            0,
            (
                "Targets (this machine, this run)",
                ["target", "value", "threshold", "status"],
                [[x["target"], str(x["value"]), x["threshold"], x["status"]] for x in t],
            ),
        )
    return out


def _shred_tables(res: dict[str, Any], out: list[Table]) -> None:
    """The shred sections: one table per section, every tool on every input."""
    titles = {
        "shred_peers": "1. Shred vs peers, plain CSV (orders, 60 securities x 5 days)",
        "gzip": "1b. Shred vs peers, gzip input (same rows; MB/s = uncompressed bytes)",
        "scaling": "5. Scaling curve: dpsim shred",
        "many_partitions": "6. Many partitions (same bytes over 200 dates vs 5 dates)",
        "shred_workers": "7. One file, 1 vs 2 shred worker processes (byte ranges)",
    }
    for s in SHRED_SECTIONS:
        rows = [r for r in section_rows(res, s) if r["tool"] != "datecheck"]
        if not rows:
            continue
        body = []
        for r in rows:
            inp = r.get("input") or {}
            ex = r.get("extra") or {}
            vs = dict((r.get("vs_dpsim") or {}).get(r["case"], {}))
            if r["tool"] in ("cat", "gzip_dc"):
                vs.pop("rss", None)  # a floor's RSS is a few MB: the ratio means nothing
            notes = []
            if ex.get("partitions") is not None and r["tool"] != "cat":
                notes.append(
                    f"{ex['partitions']:,} parts / {ex.get('files', 0):,} files (max {ex.get('max_files_per_partition')}/part)"
                )
            if (
                r["tool"] == "dpsim"
                and "rows_written" in ex
                and inp.get("rows")
                and ex["rows_written"] != inp["rows"]
            ):
                notes.append(f"rows written {ex['rows_written']:,} != {inp['rows']:,}")
            if r.get("reused"):
                notes.append("same measurement as above")
            if r.get("error"):
                notes.append("FAILED: " + failure(r, 160))
            body.append(
                [
                    r["case"],
                    TOOL_NAMES.get(r["tool"], r["tool"]),
                    cell(inp.get("uncompressed_bytes", 0) / 1e9 if inp.get("uncompressed_bytes") else None),
                    cell(r.get("wall_s")),
                    cell(r.get("mb_s"), 1),
                    cell(r["rows_s"] / 1e6 if r.get("rows_s") else None, 2),
                    cell(r.get("peak_rss_mb"), 0),
                    cell(vs.get("speed")),
                    cell(vs.get("rss")),
                    "; ".join(notes),
                ]
            )
        out.append(
            (
                titles[s],
                [
                    "case",
                    "tool",
                    "GB",
                    "wall s",
                    "MB/s",
                    "M rows/s",
                    "peak RSS MB",
                    "dpsim/peer speed",
                    "dpsim/peer RSS",
                    "notes",
                ],
                body,
            )
        )


def _process_table(res: dict[str, Any], out: list[Table]) -> None:
    """Process: whole commands, jobs from the run manifest."""
    rows = section_rows(res, "process")
    if rows:
        body = []
        for r in rows:
            ex = r.get("extra") or {}
            notes = []
            if "speedup_1_to_2" in ex:
                notes.append(f"speed-up 1->2 workers {ex['speedup_1_to_2']:.2f}x")
            if ex.get("worker_rss_over_baseline_mb") is not None:
                notes.append(f"worker RSS over import baseline {ex['worker_rss_over_baseline_mb']:.0f} MB")
            if r.get("derived"):
                notes.append(r.get("derived", ""))
            if ex.get("jobs_failed"):
                notes.append(f"{ex['jobs_failed']} jobs FAILED")
            if r.get("error"):
                notes.append("FAILED: " + failure(r, 160))
            body.append(
                [
                    r["case"],
                    r["tool"],
                    cell(r.get("wall_s")),
                    cell(ex.get("jobs")),
                    cell(r.get("jobs_s")),
                    cell(r.get("rows_s") if r["tool"].startswith("dpsim process") else None),
                    cell(ex.get("job_seconds_mean"), 3),
                    cell(ex.get("job_seconds_per_scenario"), 3),
                    cell(ex.get("worker_peak_rss_mb"), 0),
                    cell(r.get("peak_rss_mb"), 0),
                    "; ".join(notes),
                ]
            )
        out.append(
            (
                "2. Process (whole commands; jobs from the run manifest)",
                [
                    "case",
                    "command",
                    "wall s",
                    "jobs",
                    "jobs/s",
                    "rows in/s",
                    "job s (mean)",
                    "job s per scenario",
                    "worker peak RSS MB",
                    "process tree peak RSS MB",
                    "notes",
                ],
                body,
            )
        )


def _seed_table(res: dict[str, Any], out: list[Table]) -> None:
    """The seed notebook against dpsim."""
    rows = [r for r in section_rows(res, "seed") if r["tool"] != "dpsim"]
    if rows:
        body = []
        for r in rows:
            ex = r.get("extra") or {}
            body.append(
                [
                    r["case"],
                    cell(r.get("wall_s")),
                    cell(r.get("peak_rss_mb"), 0),
                    cell(ex.get("rows_scanned")),
                    cell(ex.get("jobs")),
                    cell((ex.get("seed_total_s_1_worker") or 0) / 3600, 2) if ex else "",
                    cell((ex.get("seed_total_s_2_workers") or 0) / 3600, 2) if ex else "",
                    cell(ex.get("dpsim_total_s")),
                    ex.get("dpsim_what", ""),
                    cell(ex.get("seed_over_dpsim_2_workers"), 1),
                    ("FAILED: " + failure(r, 120)) if r.get("error") else "",
                ]
            )
        out.append(
            (
                "3. The seed approach: one (security, date) job re-scans the raw files with pandas chunks (1 GB)",
                [
                    "case",
                    "per job s",
                    "peak RSS MB",
                    "rows scanned",
                    "jobs in matrix",
                    "seed h (1 worker)",
                    "seed h (2 workers)",
                    "dpsim s",
                    "dpsim covers",
                    "seed/dpsim (2 workers)",
                    "notes",
                ],
                body,
            )
        )


def _kernel_table(res: dict[str, Any], out: list[Table]) -> None:
    """The replay kernel."""
    rows = section_rows(res, "kernel")
    if rows:
        body = []
        for r in rows:
            ex = r.get("extra") or {}
            body.append(
                [
                    r["case"],
                    r["tool"],
                    cell(ex.get("events")),
                    cell(ex.get("resting")),
                    cell(ex.get("fills")),
                    cell(ex.get("seconds"), 3),
                    cell(ex.get("events_per_s")),
                    cell(ex.get("us_per_event"), 2),
                    cell(r.get("peak_rss_mb"), 0),
                    ("FAILED: " + failure(r, 120)) if r.get("error") else "",
                ]
            )
        out.append(
            (
                "4. Replay kernel: dpsim.steps.matching.match on real and generated partitions (median of runs, "
                "inputs prebuilt)",
                [
                    "partition",
                    "scenario",
                    "events (CP orders)",
                    "orders resting",
                    "matches",
                    "seconds",
                    "events/s",
                    "us/event",
                    "script peak RSS MB",
                    "notes",
                ],
                body,
            )
        )


def _prototype_table(res: dict[str, Any], out: list[Table]) -> None:
    """The DRR day end to end: dpsim against the prototype it replaces."""
    rows = section_rows(res, "prototype")
    if not rows:
        return
    body = [
        [
            r["case"],
            r["tool"],
            cell(r.get("wall_s")),
            cell(r.get("peak_rss_mb"), 0),
            cell((r.get("extra") or {}).get("speedup")),
            ("FAILED: " + failure(r, 120)) if r.get("error") else "",
        ]
        for r in rows
    ]
    out.append(
        (
            "6. The DRR day end to end against the prototype (whole commands taking turns, median wall s)",
            ["case", "command", "wall s", "peak RSS MB", "prototype / dpsim", "notes"],
            body,
        )
    )


def _report_table(res: dict[str, Any], out: list[Table]) -> None:
    """dpsim report of a lake of many partitions."""
    rows = section_rows(res, "report")
    if not rows:
        return
    body = []
    for r in rows:
        ex = r.get("extra") or {}
        note = (
            ("FAILED: " + failure(r, 120))
            if r.get("error")
            else (
                f"drawn in {ex.get('seconds')} s, {ex.get('requests')} request(s)"
                if r["tool"].startswith("chromium")
                else ""
            )
        )
        body.append(
            [
                r["case"],
                r["tool"],
                cell(r.get("wall_s")),
                cell(r.get("peak_rss_mb"), 0),
                cell(ex.get("html_mb")),
                note,
            ]
        )
    out.append(
        (
            "5. dpsim report of a lake of many partitions (the DRR day's results linked under N keys; its aggregates copied)",
            ["case", "what", "seconds", "peak RSS MB", "HTML MB", "notes"],
            body,
        )
    )


def _export_table(res: dict[str, Any], out: list[Table]) -> None:
    """dpsim export against psycopg COPY FROM STDIN."""
    rows = section_rows(res, "export")
    if not rows:
        return
    body = []
    for r in rows:
        vs = (r.get("extra") or {}).get("vs_peer") or {}
        note = (
            ("FAILED: " + failure(r, 120).replace("|", "/"))
            if r.get("error")
            else ("per round: " + ", ".join(f"{x:.2f}" for x in vs["per_round"]))
            if vs.get("per_round")
            else ""
        )
        body.append(
            [
                r["case"],
                r["tool"],
                cell(r.get("wall_s"), 2),
                cell(r.get("rows_s")),
                cell(r.get("peak_rss_mb"), 0),
                cell(vs.get("speed"), 2),
                note,
            ]
        )
    out.append(
        (
            "8. Export to PostgreSQL (one server, default durability; every run re-creates the table; "
            "the tools take turns, round after round)",
            ["case", "tool", "wall s", "rows/s", "peak RSS MB", "rows/s vs peer", "notes"],
            body,
        )
    )


def _profile_tables(res: dict[str, Any], out: list[Table]) -> None:
    """One table per profiled command."""
    rows = section_rows(res, "profile")
    for r in rows:
        ex = r.get("extra") or {}
        spy = ex.get("pyspy") or {}
        body = [[w["what"], f"{w['share'] * 100:.1f} %"] for w in spy.get("by_function_and_leaf", [])[:12]]
        threads = "busy samples by thread: " + ", ".join(
            f"{k} {v * 100:.0f} %" for k, v in (spy.get("threads") or {}).items()
        )
        if spy.get("idle_samples"):
            threads += "; blocked (not counted): " + ", ".join(
                f"{k} {v:,}" for k, v in spy["idle_samples"].items()
            )
        out.append(
            (
                f"Profile: {r['case']} (py-spy --native, {spy.get('samples', 0)} samples; {threads}; "
                f"files {ex.get('pyspy_file', '')}, {ex.get('pyinstrument_file', '')})",
                ["innermost dpsim function -> native leaf", "share of samples"],
                body or [[ex.get("pyspy_error") or r.get("error") or "no samples", ""]],
            )
        )


_SQL_STEPS = (
    ("startup_s", "start-up"),
    ("import_cli_s", "import cli"),
    ("import_aggregate_s", "import the SQL path"),
    ("import_query_s", "import the SQL path"),
    ("config_s", "config"),
    ("connect_s", "open catalog"),
    ("query_s", "bind + run"),
    ("csv_s", "csv"),
    ("query_csv_s", "run into DuckDB's CSV"),
)


def _aggregate_tables(res: dict[str, Any], out: list[Table]) -> None:
    """dpsim aggregate on lakes of growing size; dpsim sql on a small aggregate; the year extrapolated."""
    rows = section_rows(res, "aggregate")
    if rows:
        body = []
        for r in rows:
            ex = r.get("extra") or {}
            inp = r.get("input") or {}
            notes = []
            if "import_cli_s" in ex:  # bench.tasks.sql_breakdown (older results name some steps otherwise)
                steps = ", ".join(f"{label} {ex[k]:.3f} s" for k, label in _SQL_STEPS if k in ex)
                notes.append(f"in-process: {steps}; loaded {', '.join(ex.get('loaded') or [])}")
            if ex.get("csv_bytes"):
                notes.append(f"answer {ex['csv_bytes'] / 1e9:.2f} GB of CSV")
            if r.get("error"):
                notes.append("FAILED: " + failure(r, 160))
            body.append(
                [
                    r["case"],
                    r["tool"],
                    cell(inp.get("sweeps")),
                    cell(r.get("wall_s")),
                    cell(ex.get("s_per_1000_partitions"), 2),
                    cell(ex.get("cpu_s")),
                    cell(r.get("peak_rss_mb"), 0),
                    cell(ex.get("memory_limit_mb")),
                    "; ".join(notes),
                ]
            )
        out.append(
            (
                "8. Aggregate: dpsim aggregate on lakes of hard-linked results (150 securities per date), and dpsim sql",
                [
                    "lake",
                    "command",
                    "sweeps",
                    "wall s",
                    "s per 1,000 partitions",
                    "CPU s",
                    "peak RSS MB",
                    "memory limit MB",
                    "notes",
                ],
                body,
            )
        )
    rows = section_rows(res, "year")
    if rows:
        body = [
            [
                r["case"] if r["tool"] == "extrapolated" else f"{r['case']}: {r['tool']}",
                cell(r.get("wall_s")),
                cell((r.get("wall_s") or 0) / 3600, 2),
                cell((r.get("extra") or {}).get("cpu_s")),
                cell(r.get("peak_rss_mb"), 0),
                (r.get("extra") or {}).get("formula", ""),
            ]
            for r in rows
        ]
        out.append(
            (
                "9. A year: a sampled year run end to end, and the user's workload (150 securities × 365 days = "
                "54,750 partitions, 400 GB of CSV) extrapolated from it",
                ["step", "wall s", "wall h", "CPU s (one core)", "peak RSS MB", "formula"],
                body,
            )
        )


def _query_tables(res: dict[str, Any], out: list[Table]) -> None:
    """The result layout: compaction, catalog refresh and two queries over job outputs vs files by date."""
    rows = section_rows(res, "query")
    if not rows:
        return
    body = []
    for r in rows:
        ex = r.get("extra") or {}
        inp = r.get("input") or {}
        note = f"{ex['by_date_files']:,} files by date" if "by_date_files" in ex else ""
        if r.get("error"):
            note = "FAILED: " + failure(r, 160)
        body.append(
            [
                r["case"],
                r["tool"],
                cell(inp.get("files")),
                cell(r.get("wall_s"), 3),
                cell(r.get("peak_rss_mb"), 0),
                note,
            ]
        )
    out.append(
        (
            "10. The result layout: job outputs (one file per partition) vs results_by_date (one per date)",
            ["lake", "command", "job output files", "wall s", "peak RSS MB", "notes"],
            body,
        )
    )

#!/usr/bin/env python
"""Results JSON -> tables (terminal and Markdown), target verdicts, and the scaling plot.

    bench/render.py bench/results/<date>.json      rewrite the generated block of BENCHMARKS.md + bench/scaling.png
    bench/render.py A.json B.json ...              the same from several runs (e.g. sections run separately)

BENCHMARKS.md is regenerable from the JSON: only the text between `<!-- bench:begin -->` and
`<!-- bench:end -->` is replaced; the hand-written analysis around it is kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MD = REPO / "BENCHMARKS.md"
PNG = BENCH / "scaling.png"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
SMALL = "input < 1 GB, process start-up dominates"
SHRED_SECTIONS = ("shred_peers", "gzip", "scaling", "many_partitions", "shred_workers")
TOOL_NAMES = {
    "dpsim": "dpsim shred",
    "dpsim_w2": "dpsim shred --workers 2",
    "dpsim_1core": "taskset -c 0 dpsim shred (1 core)",
    "duckdb": "DuckDB COPY (threads=2)",
    "duckdb_mem": "DuckDB COPY (threads=2, memory_limit=budget)",
    "polars": "Polars sink_parquet(PartitionBy)",
    "cat": "cat > /dev/null (floor)",
    "gzip_dc": "gzip -dc > /dev/null (floor)",
}


def _f(x: Any, nd: int = 2) -> str:
    if x is None or x == "":
        return ""
    if isinstance(x, float):
        if x != x:
            return ""
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _rows(res: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return [r for r in res.get("rows", []) if r.get("section") == section]


# ---- targets ---------------------------------------------------------------------------------------------


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue that this run measured: value, threshold, met / MISSED."""
    out: list[dict[str, Any]] = []
    budget = float(res.get("shred_memory_budget_mb") or 1500)

    def add(name: str, value: Any, threshold: str, ok: bool | None, note: str = "") -> None:
        status = "n/a" if ok is None else ("met" if ok else "MISSED")
        if note and ok is not None:
            status = f"{status} (indicative: {note})"
        out.append({"target": name, "value": value, "threshold": threshold, "status": status, "note": note})

    for r in _rows(res, "shred_peers"):
        if r["tool"] == "datecheck":
            ex = r.get("extra") or {}
            bad = ex.get("sample_mismatches_exact")
            add(
                "peers' trading date == dpsim's (DuckDB expression, DST-crossing sample + input rows)",
                f"{bad} of {ex.get('sample_rows', 0):,} differ; roll-edge instants {ex.get('roll_edges_mismatches_exact')} "
                f"of {ex.get('roll_edges_rows', 0):,} (the double-seconds form: {ex.get('roll_edges_mismatches_double')})",
                "0",
                None if bad is None else (bad == 0 and ex.get("roll_edges_mismatches_exact") == 0),
            )
            continue
        if r["tool"] != "dpsim" or r.get("error"):
            continue
        small = SMALL if r["input"].get("uncompressed_bytes", 0) < 0.9e9 else ""
        for case, ratios in (r.get("ratios") or {}).items():
            if "polars" in ratios:
                v = ratios["polars"]["speed"]
                add(
                    f"shred {case}: throughput vs Polars partitioned sink",
                    f"{v:.2f}x",
                    ">= 1.0x",
                    v >= 1.0,
                    small,
                )
            if "duckdb_mem" in ratios:
                v = ratios["duckdb_mem"]["speed"]
                add(
                    f"shred {case}: throughput vs DuckDB COPY, same memory limit",
                    f"{v:.2f}x",
                    ">= 2.0x",
                    v >= 2.0,
                    small,
                )
    shred_rows = [
        r for s in SHRED_SECTIONS for r in _rows(res, s) if r["tool"] == "dpsim" and not r.get("error")
    ]
    if shred_rows:
        worst = max(shred_rows, key=lambda r: r.get("peak_rss_mb") or 0)
        v = worst.get("peak_rss_mb") or 0
        add(
            "shred peak RSS, every input", f"{v:.0f} MB ({worst['case']})", f"<= {budget:.0f} MB", v <= budget
        )
    sc = sorted(
        {
            r["input"]["uncompressed_bytes"]: r
            for r in _rows(res, "scaling")
            if r["tool"] == "dpsim" and not r.get("error")
        }.values(),
        key=lambda r: r["input"]["uncompressed_bytes"],
    )
    big = [r for r in sc if r["input"]["uncompressed_bytes"] >= 0.9e9]
    if len(sc) >= 2 and len(big) < 2:
        add(
            "shred peak RSS flat / time near-linear",
            "inputs below 1 GB only",
            "needs >= 2 sizes >= 1 GB",
            None,
            "start-up dominates small inputs",
        )
    if len(big) >= 2:
        lo, hi = big[0], big[-1]
        dev = max(abs(r["peak_rss_mb"] / lo["peak_rss_mb"] - 1) for r in big)
        add(
            f"shred peak RSS flat from {lo['case']} to {hi['case']}",
            f"{dev * 100:.0f} % max deviation ({lo['peak_rss_mb']:.0f} -> {hi['peak_rss_mb']:.0f} MB)",
            "within +-20 %",
            dev <= 0.20,
        )
        per = [r["wall_s"] / (r["input"]["uncompressed_bytes"] / 1e9) for r in big]
        v = per[-1] / per[0]
        add(
            f"shred time near-linear ({lo['case']} -> {hi['case']})",
            f"{v:.2f} (s/GB {per[0]:.1f} -> {per[-1]:.1f})",
            "s/GB ratio <= 1.2",
            v <= 1.2,
        )
    for r in _rows(res, "gzip"):
        if r["tool"] == "dpsim" and not r.get("error"):
            for case, ratios in (r.get("ratios") or {}).items():
                if "gzip_dc" in ratios:
                    v = ratios["gzip_dc"]["speed"]
                    small = SMALL if r["input"].get("uncompressed_bytes", 0) < 0.9e9 else ""
                    add(
                        f"shred {case}: uncompressed byte rate vs gzip -dc floor",
                        f"{v:.2f}x",
                        ">= 0.8x",
                        v >= 0.8,
                        small,
                    )
            plain = [
                p
                for p in _rows(res, "shred_peers")
                if p["tool"] == "dpsim"
                and not p.get("error")
                and p["input"].get("nominal_gb") == r["input"].get("nominal_gb")
            ]
            if plain and r.get("mb_s") and plain[0].get("mb_s"):
                v = r["mb_s"] / plain[0]["mb_s"]
                add(
                    f"shred {r['case']}: rate vs dpsim on the same rows uncompressed (the ceiling)",
                    f"{v:.2f}x ({r['mb_s']:.0f} vs {plain[0]['mb_s']:.0f} MB/s)",
                    "info",
                    None,
                )
    mp = [r for r in _rows(res, "many_partitions") if r["tool"] == "dpsim" and not r.get("error")]
    if len(mp) == 2:
        base, many = sorted(mp, key=lambda r: r["input"]["partitions"])
        v = many["mb_s"] / base["mb_s"]
        add(
            f"many partitions ({many['input']['partitions']:,}): throughput vs dpsim's own 5-day file",
            f"{v:.2f}x ({many['mb_s']:.0f} vs {base['mb_s']:.0f} MB/s)",
            ">= 0.8x",
            v >= 0.8,
        )
        add(
            "many partitions: peak RSS",
            f"{many['peak_rss_mb']:.0f} MB",
            f"<= {budget:.0f} MB",
            many["peak_rss_mb"] <= budget,
        )
        mf = (many.get("extra") or {}).get("max_files_per_partition")
        add(
            "many partitions: compacted (files per partition, one source)",
            f"max {mf}, {(many.get('extra') or {}).get('partitions_split', '?')} partitions split",
            "1 file per partition per source",
            None if mf is None else mf <= 1,
        )
    for r in _rows(res, "shred_workers"):
        ratios = (r.get("ratios") or {}).get(r["case"]) or {}
        w2, one_core = ratios.get("dpsim_w2"), ratios.get("dpsim_1core")
        if r["tool"] == "dpsim" and w2 and w2.get("speed"):
            v = 1 / w2["speed"]
            add(
                f"shred {r['case']}: 2 worker processes vs 1",
                f"{v:.2f}x",
                ">= 1.7x",
                v >= 1.7,
                f"{res.get('machine', {}).get('nproc', '?')} cores; one process already parses on a 2-thread pool",
            )
            if one_core and one_core.get("speed"):
                add(
                    f"shred {r['case']}: 2 workers on 2 cores vs 1 worker pinned to 1 core",
                    f"{one_core['speed'] / w2['speed']:.2f}x",
                    "scaling with cores (info)",
                    None,
                    "taskset -c 0 for the 1-core run",
                )
    for r in _rows(res, "process"):
        ex = r.get("extra") or {}
        if r["case"].startswith("DRR") and r["tool"] == "dpsim process" and not r.get("error"):
            v = ex.get("job_seconds_per_scenario")
            add(
                "DRR day: processing per scenario",
                f"{v:.3f} s (job {ex.get('job_seconds_sum')} s / {len(ex.get('scenarios') or []) or 5} scenarios; "
                f"whole process {r['wall_s']:.2f} s)",
                "well under 1 s",
                None if v is None else v < 1.0,
            )
        if (
            (r["tool"].startswith("dpsim process --workers") or r["tool"] == "dpsim process")
            and not r.get("error")
            and ex.get("worker_peak_rss_mb")
        ):
            over = ex.get("worker_rss_over_baseline_mb")
            add(
                f"per-partition memory: {r['case']}, {r['tool']}",
                f"worker peak {ex['worker_peak_rss_mb']:.0f} MB"
                + (f" = import baseline + {over:.0f} MB" if over is not None else "")
                + f"; largest partition {ex.get('max_job_rows_in') or 0:,} rows in",
                "bounded by the partition (info)",
                None,
            )
            if "speedup_1_to_2" in ex:
                add("process speed-up 1 -> 2 workers", f"{ex['speedup_1_to_2']:.2f}x", "info (2 cores)", None)
    synth = sorted(
        (
            r["extra"]
            for r in _rows(res, "kernel")
            if (r.get("extra") or {}).get("scenario") == "baseline"
            and str(r["extra"].get("partition", "")).startswith("synth")
        ),
        key=lambda g: g["events"],
    )
    if len(synth) >= 2:
        per_event = [g["us_per_event"] for g in synth]
        v = max(per_event) / min(per_event)
        add(
            f"kernel flat per event, {synth[0]['events']:,} -> {synth[-1]['events']:,} CP orders (baseline)",
            f"{v:.2f} (us/event {' -> '.join(f'{x:.2f}' for x in per_event)})",
            "largest / smallest us per event <= 1.5",
            v <= 1.5,
        )
    for r in _rows(res, "report"):
        ex, n = r.get("extra") or {}, (r.get("input") or {}).get("partitions")
        if r["tool"] == "dpsim report" and r.get("wall_s"):
            add(
                f"report of {n:,} partitions: HTML size (plotly.js included)",
                f"{ex.get('html_mb')} MB",
                "<= 10 MB",
                (ex.get("html_mb") or 99) <= 10,
            )
            add(
                f"report of {n:,} partitions: dpsim report wall time",
                f"{r['wall_s']:.1f} s",
                "seconds (<= 10 s)",
                r["wall_s"] <= 10,
            )
        if r["tool"].startswith("chromium") and ex.get("seconds") is not None:
            add(
                f"report of {n:,} partitions: the page drawn in chromium",
                f"{ex['seconds']:.1f} s",
                "seconds (<= 10 s)",
                ex["seconds"] <= 10,
            )
    return out


# ---- tables ------------------------------------------------------------------------------------------------


def tables(res: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    out: list[tuple[str, list[str], list[list[str]]]] = []
    titles = {
        "shred_peers": "1. Shred vs peers, plain CSV (orders, 60 securities x 5 days)",
        "gzip": "1b. Shred vs peers, gzip input (same rows; MB/s = uncompressed bytes)",
        "scaling": "5. Scaling curve: dpsim shred",
        "many_partitions": "6. Many partitions (same bytes over 200 dates vs 5 dates)",
        "shred_workers": "7. One file, 1 vs 2 shred worker processes (byte ranges)",
    }
    for s in SHRED_SECTIONS:
        rows = [r for r in _rows(res, s) if r["tool"] != "datecheck"]
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
                notes.append("FAILED: " + r["error"][:160].replace("\n", " ").replace("|", "/"))
            body.append(
                [
                    r["case"],
                    TOOL_NAMES.get(r["tool"], r["tool"]),
                    _f(inp.get("uncompressed_bytes", 0) / 1e9 if inp.get("uncompressed_bytes") else None),
                    _f(r.get("wall_s")),
                    _f(r.get("mb_s"), 1),
                    _f(r["rows_s"] / 1e6 if r.get("rows_s") else None, 2),
                    _f(r.get("peak_rss_mb"), 0),
                    _f(vs.get("speed")),
                    _f(vs.get("rss")),
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
    rows = _rows(res, "process")
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
                notes.append(r["derived"])
            if ex.get("jobs_failed"):
                notes.append(f"{ex['jobs_failed']} jobs FAILED")
            if r.get("error"):
                notes.append("FAILED: " + r["error"][:160].replace("\n", " ").replace("|", "/"))
            body.append(
                [
                    r["case"],
                    r["tool"],
                    _f(r.get("wall_s")),
                    _f(ex.get("jobs")),
                    _f(r.get("jobs_s")),
                    _f(r.get("rows_s") if r["tool"].startswith("dpsim process") else None),
                    _f(ex.get("job_seconds_mean"), 3),
                    _f(ex.get("job_seconds_per_scenario"), 3),
                    _f(ex.get("worker_peak_rss_mb"), 0),
                    _f(r.get("peak_rss_mb"), 0),
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
    rows = [r for r in _rows(res, "seed") if r["tool"] != "dpsim"]
    if rows:
        body = []
        for r in rows:
            ex = r.get("extra") or {}
            body.append(
                [
                    r["case"],
                    _f(r.get("wall_s")),
                    _f(r.get("peak_rss_mb"), 0),
                    _f(ex.get("rows_scanned")),
                    _f(ex.get("jobs")),
                    _f((ex.get("seed_total_s_1_worker") or 0) / 3600, 2) if ex else "",
                    _f((ex.get("seed_total_s_2_workers") or 0) / 3600, 2) if ex else "",
                    _f(ex.get("dpsim_total_s")),
                    ex.get("dpsim_what", ""),
                    _f(ex.get("seed_over_dpsim_2_workers"), 1),
                    ("FAILED: " + r["error"][:120]) if r.get("error") else "",
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
    rows = _rows(res, "kernel")
    if rows:
        body = []
        for r in rows:
            ex = r.get("extra") or {}
            body.append(
                [
                    r["case"],
                    r["tool"],
                    _f(ex.get("events")),
                    _f(ex.get("resting")),
                    _f(ex.get("fills")),
                    _f(ex.get("seconds"), 3),
                    _f(ex.get("events_per_s")),
                    _f(ex.get("us_per_event"), 2),
                    _f(r.get("peak_rss_mb"), 0),
                    ("FAILED: " + r["error"][:120]) if r.get("error") else "",
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
    rows = _rows(res, "report")
    if rows:
        out.append(
            (
                "5. dpsim report of a lake of many partitions (the DRR day's results linked under N keys; its aggregates copied)",
                ["case", "what", "seconds", "peak RSS MB", "HTML MB", "notes"],
                [
                    [
                        r["case"],
                        r["tool"],
                        _f(r.get("wall_s")),
                        _f(r.get("peak_rss_mb"), 0),
                        _f((r.get("extra") or {}).get("html_mb")),
                        ("FAILED: " + r["error"][:120])
                        if r.get("error")
                        else (
                            f"drawn in {(r.get('extra') or {}).get('seconds')} s, {(r.get('extra') or {}).get('requests')} request(s)"
                            if r["tool"].startswith("chromium")
                            else ""
                        ),
                    ]
                    for r in rows
                ],
            )
        )
    rows = _rows(res, "profile")
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


def text_report(res: dict[str, Any]) -> str:
    lines = [f"dpsim bench ({res['mode']}, {res['reps']} run(s) after 1 warm-up) {res['started']}"]
    for title, head, body in tables(res):
        widths = [len(h) for h in head]
        cells = [[c if len(c) <= 70 else c[:67] + "..." for c in row] for row in body]
        for row in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=False)]
        lines += [
            "",
            title,
            "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells]
    return "\n".join(lines)


def markdown(res: dict[str, Any], results_path: str) -> str:
    m = res.get("machine") or {}
    v = m.get("versions") or {}
    loads = sorted(x.get("load_1m", 0) for r in res.get("rows", []) for x in (r.get("runs") or []))
    load = (
        f" The 1-minute load average at the start of the measured runs was median {loads[len(loads) // 2]:.1f}, "
        f"max {loads[-1]:.1f}, on {m.get('nproc')} cores"
        + (
            " (the machine was shared with other work: treat absolute figures as pessimistic)."
            if loads[len(loads) // 2] > 1.0
            else "."
        )
        if loads
        else ""
    )
    out = [
        BEGIN,
        "<!-- generated by bench/render.py from the results JSON; edits here are overwritten -->",
        "",
        f"**Run:** `{' '.join(res.get('argv') or [])}` ({res['mode']} mode, median of {res['reps']} run(s) after "
        f"1 warm-up), started {res['started']}, {res.get('total_seconds', 0) / 60:.0f} min; results "
        f"`{results_path}`.",
        "",
        f"**Machine:** {m.get('nproc')} cores ({m.get('cpu_model')}), {m.get('mem_gb')} GiB RAM, Linux "
        f"{m.get('kernel')}; Python {v.get('python')}, dpsim {v.get('dpsim')}, Polars {v.get('polars')}, "
        f"DuckDB {v.get('duckdb')}, pyarrow {v.get('pyarrow')}, pandas {v.get('pandas')}, {v.get('gzip', 'gzip')}; "
        f"commit `{(m.get('git_commit') or '')[:12]}`. Peers run with 2 threads; the memory-limited DuckDB "
        f"uses dpsim's shred budget ({res.get('shred_memory_budget_mb')} MB). Peak RSS is the larger of GNU time's "
        "maximum resident set size and the psutil-sampled sum over the process tree." + load,
        "",
    ]
    if PNG.exists() and any(r["section"] == "scaling" for r in res.get("rows", [])):
        out += ["![shred scaling curve](bench/scaling.png)", ""]
    for title, head, body in tables(res):
        out += [f"#### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in body:
            out.append("| " + " | ".join(c.replace("|", "/").replace("\n", " ") for c in row) + " |")
        out.append("")
    cmds = []
    seen = set()
    for r in res.get("rows", []):
        c = r.get("command")
        if c and c not in seen:
            seen.add(c)
            env = " ".join(f"{k}={val}" for k, val in (r.get("env") or {}).items())
            cmds.append(f"{env + ' ' if env else ''}{c}")
    out += ["<details><summary>Exact commands (run from the repository root)</summary>", "", "```"]
    out += cmds + ["```", "", "</details>", "", END]
    return "\n".join(out)


SKELETON = """# Benchmarks

`make bench` (full, ~1-2 h) and `make bench-quick` (<= 2 min) run `bench/run.py`; both print the tables,
write `bench/results/<date>[-quick].json`, and a full run rewrites the generated block below and
`bench/scaling.png`. `bench/render.py RESULTS.json` regenerates them from any results file.

{block}
"""


def update_benchmarks_md(res: dict[str, Any], results_path: str, md: Path = MD) -> Path:
    plot_scaling(res)
    block = markdown(res, results_path)
    text = md.read_text() if md.exists() else SKELETON.format(block=f"{BEGIN}\n{END}")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    md.write_text(text)
    return md


def plot_scaling(res: dict[str, Any], png: Path = PNG) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts: dict[str, dict[float, tuple[float, float]]] = {}
    for r in res.get("rows", []):
        if r.get("section") not in ("scaling", "shred_peers") or r.get("error") or not r.get("wall_s"):
            continue
        if r["tool"] in ("cat", "gzip_dc", "datecheck") or (r.get("input") or {}).get("gz"):
            continue
        if not (r.get("input") or {}).get("uncompressed_bytes"):
            continue
        gb = r["input"]["uncompressed_bytes"] / 1e9
        pts.setdefault(r["tool"], {})[gb] = (r["wall_s"], r["peak_rss_mb"])
    if not pts.get("dpsim"):
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    style = {
        "dpsim": ("o-", "C0"),
        "polars": ("s--", "C1"),
        "duckdb": ("^--", "C2"),
        "duckdb_mem": ("v--", "C3"),
    }
    for tool, d in sorted(pts.items(), key=lambda kv: kv[0] != "dpsim"):
        xs = sorted(d)
        mk, col = style.get(tool, ("x:", "C4"))
        a1.plot(xs, [d[x][0] for x in xs], mk, color=col, label=TOOL_NAMES.get(tool, tool))
        a2.plot(xs, [d[x][1] for x in xs], mk, color=col, label=TOOL_NAMES.get(tool, tool))
    d = pts["dpsim"]
    x0 = min(d)
    xs = sorted(d)
    a1.plot(xs, [d[x0][0] * x / x0 for x in xs], ":", color="grey", label="linear from the smallest input")
    budget = float(res.get("shred_memory_budget_mb") or 1500)
    a2.axhline(budget, color="red", ls=":", label=f"target {budget:.0f} MB")
    a1.set(xlabel="orders CSV (GB, uncompressed)", ylabel="wall time (s)", title="shred wall time")
    a2.set(xlabel="orders CSV (GB, uncompressed)", ylabel="peak RSS (MB)", title="shred peak RSS")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    fig.suptitle(
        f"dpsim shred scaling ({res['mode']} run {res['started'][:10]}, {res['machine'].get('nproc')} cores)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def merge(results: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """Several results files as one (e.g. sections run separately): rows concatenated, first file's machine;
    a measurement (section, case, tool, command) taken again in a later file replaces the earlier one."""
    if len(results) == 1:
        return results[0]
    out = dict(results[0])
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for res, n in zip(results, names, strict=True):
        for r in res.get("rows", []):
            key = (r["section"], r["case"], r["tool"], r.get("command", ""))
            rows.pop(key, None)  # re-inserted last: the newer figure, in the newer file's order
            rows[key] = dict(r, source=n)
    out["rows"] = list(rows.values())
    out["sections"] = [s for res in results for s in res.get("sections", [])]
    out["argv"] = [" + ".join(" ".join(res.get("argv") or []) for res in results)]
    out["total_seconds"] = sum(res.get("total_seconds") or 0 for res in results)
    out["reps"] = min(res.get("reps") or 1 for res in results)
    out["mode"] = "+".join(sorted({res.get("mode", "?") for res in results}))
    out["merged_from"] = names
    return out


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    paths = [Path(a) for a in argv]
    names = []
    for path in paths:
        try:
            names.append(str(path.resolve().relative_to(REPO)))
        except ValueError:
            names.append(str(path))
    res = merge([json.loads(p.read_text()) for p in paths], names)
    res["targets"] = targets(res)
    md = update_benchmarks_md(res, ", ".join(names))
    print(text_report(res))
    print(f"\nupdated {md} and {PNG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

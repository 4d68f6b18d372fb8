"""The aggregation section (issue 20): `dpsim aggregate` on lakes of 600 / 6,000 / 54,000 partitions, and `dpsim sql`
on a small aggregate (the year section, `bench.sections_year`, scales the largest lake's figures to a year).

The large lakes are made by hard-linking the result files of a processed generated drop (the process
section's `bench/work/lake-drop`, made here when missing) under 150 securities × N/150 business days, so
rows scale with partitions at no disk cost: every partition is a real dpsim result, repeated (its
differences tie with those of its copies, which the rank pass handles as ties). `sim_fills` are not linked:
the aggregation does not read them. Each lake is aggregated three ways: cold (no partial aggregates), again
with nothing changed, and after one date's result files changed (a reprocessed day: its files touched).
A lake's results by date are written before its cold runs (by the warm-up, or by `dpsim catalog` where a
large lake has none), so a cold run times the aggregation alone, at every size; the query section times
the compaction.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench import harness as H
from bench.rows import Row
from bench.sections_process import drop
from bench.session import Session
from dpsim.synth import trading_dates

SECURITIES = 150  # per date in the linked lakes, as in the user's workload
LINKED_TABLES = ("sweeps", "quality", "replay_fidelity")
SMALL_QUERY = "SELECT * FROM global_summary"


def aggregate(ses: Session) -> None:
    template = _template(ses)
    for n in ses.cfg["agg_partitions"]:
        _aggregate_lake(ses, template, n)
    sql_small(ses)


# ---- the lakes ---------------------------------------------------------------------------------------------


def _template(ses: Session) -> Path:
    """A processed generated drop whose partitions the large lakes repeat (the process section's, or made here)."""
    lake = H.WORK / "lake-drop"
    if not any((lake / "results" / "sweeps").glob("*/*/*.parquet")):
        meta = drop(ses)
        f = meta["files"]
        H.say("  processing the generated drop for the aggregation lakes ...")
        for args in (
            ["shred", "--force", "--orders", f["orders"], "--trades", f["trades"], "--nbbo", f["nbbo"]],
            ["process", "--force", "--no-aggregate", "--workers", "2"],
        ):
            cmd = [*H.DPSIM, args[0], "--config", H.rel(ses.config), "--lake", H.rel(lake), *args[1:]]
            subprocess.run(cmd, cwd=H.REPO, check=True, capture_output=True)
    return lake


def linked_lake(template: Path, n: int, *, with_fills: bool = False) -> tuple[Path, dict[str, Any]]:
    """`bench/work/agg-lakes/p<n>`: n partitions (150 securities × n/150 business days from 2023-01-02), each a
    hard link of one template partition's result files, in turn. Reused while the template is unchanged.
    `with_fills`: `q<n>`, with sim_fills too (the query section looks sweeps' fills up)."""
    dest = H.WORK / "agg-lakes" / f"{'q' if with_fills else 'p'}{n}"
    results = template / "results"
    pool = sorted(p.relative_to(results / "sweeps") for p in (results / "sweeps").glob("*/*") if p.is_dir())
    scenarios = sorted(p.name for p in (results / "_scenarios").iterdir())
    stamp = {
        "template": H.rel(template),
        "template_partitions": len(pool),
        "template_mtime": max((results / "sweeps" / p / "part-0.parquet").stat().st_mtime for p in pool),
        "partitions": n,
        "with_fills": with_fills,
        "layout": "one file per partition, every scenario in it",
    }
    marker = dest / "linked.json"
    if marker.exists() and json.loads(marker.read_text()).get("stamp") == stamp:
        return dest, json.loads(marker.read_text())
    H.rm(dest)
    H.need_disk(1.0, f"linking a {n:,}-partition lake")
    t0 = time.perf_counter()
    rows = {p: pq.ParquetFile(results / "sweeps" / p / "part-0.parquet").metadata.num_rows for p in pool}
    tables = [*LINKED_TABLES, "sim_orders", *(["sim_fills"] if with_fills else [])]
    days = trading_dates(date(2023, 1, 2), -(-n // SECURITIES))
    sweeps = 0
    for i in range(n):
        tpl = pool[i % len(pool)]
        key = f"security_code={100000 + i % SECURITIES}/date={days[i // SECURITIES].isoformat()}"
        sweeps += rows[tpl]
        for t in tables:
            folder = dest / "results" / t / key
            folder.mkdir(parents=True, exist_ok=True)
            os.link(results / t / tpl / "part-0.parquet", folder / "part-0.parquet")
    shutil.copytree(results / "_scenarios", dest / "results" / "_scenarios")
    info = {
        "stamp": stamp,
        "partitions": n,
        "dates": len(days),
        "securities": SECURITIES,
        "sweeps": sweeps,
        "scenarios": len(scenarios),
        "files": n * len(tables),
        "last_date": days[-1].isoformat(),
        "link_seconds": round(time.perf_counter() - t0, 1),
    }
    marker.write_text(json.dumps(info, indent=1))
    H.say(f"  linked {n:,} partitions ({sweeps:,} sweeps) in {info['link_seconds']} s")
    return dest, info


def _touch_date(lake: Path, day: str) -> None:
    """A reprocessed day: every result file of `day` is replaced by a copy (a new file, a new modification
    time: new fingerprints). Not `utime`: the files are hard links, and touching one inode would change the
    files of every date that links it."""
    for path in (lake / "results").glob(f"**/date={day}/*.parquet"):
        copy = path.with_name(f".{path.name}.copy")
        shutil.copyfile(path, copy)
        os.replace(copy, path)


# ---- measurements ------------------------------------------------------------------------------------------


def _aggregate_lake(ses: Session, template: Path, n: int) -> None:
    lake, info = linked_lake(template, n)
    big = n >= 20_000  # a cold run of the largest lake takes many minutes: one run, no warm-up
    reps, warmup = (1, 0) if big else (ses.reps, 1)
    if not warmup:
        # The smaller lakes' warm-up writes their files by date; without one the cold run would also time
        # the compaction of every date (the query section's row), which the smaller lakes' cold runs do not.
        subprocess.run([*H.DPSIM, "catalog", "--lake", H.rel(lake)], cwd=H.REPO, check=True)
    cmd = [*H.DPSIM, "aggregate", "--config", H.rel(ses.config), "--lake", H.rel(lake)]
    inp = {k: info[k] for k in ("partitions", "dates", "securities", "sweeps", "scenarios", "files")}
    inp["path"] = H.rel(lake)
    case = f"{n:,} partitions"
    cases: list[tuple[str, Any]] = [
        ("cold (no partial aggregates)", lambda: H.rm(lake / "aggregates")),
        ("nothing changed", None),
        ("one date changed", lambda: _touch_date(lake, info["last_date"])),
    ]
    for what, before in cases:
        m = H.measure(
            cmd,
            label=f"aggregate-{n}-{what.split()[0]}",
            reps=reps,
            warmup=warmup if what.startswith("cold") else 0,
            before=before,
            timeout=6 * 3600,
        )
        row = ses.row("aggregate", case, f"dpsim aggregate, {what}", inp, m)
        if m.runs:
            cpu = sorted(r.user_s + r.sys_s for r in m.runs)[len(m.runs) // 2]
            row["extra"].update(
                s_per_1000_partitions=round(m.wall_s / (n / 1000), 3),
                cpu_s=round(cpu, 1),
                cpu_s_per_1000_partitions=round(cpu / (n / 1000), 3),
                memory_limit_mb=_memory_limit_mb(),
                sweeps_per_s=round(info["sweeps"] / m.wall_s),
            )
        ses.rows.append(row)
    ses.rows.append(_whole_answer(ses, lake, case, inp, reps))


def _whole_answer(ses: Session, lake: Path, case: str, inp: dict[str, Any], reps: int) -> Row:
    """Every sweep of the lake as one CSV file through `dpsim sql`: the answer streams through DuckDB's
    writer, so its peak RSS should not grow with the answer (the file is removed after each run)."""
    answer = H.WORK / "answer.csv"

    def size(_: int) -> dict[str, Any]:
        out = {"csv_bytes": answer.stat().st_size if answer.exists() else None}
        H.rm(answer)
        return out

    cmd = [
        *H.DPSIM,
        "sql",
        "--lake",
        H.rel(lake),
        "SELECT * FROM sweeps",
        "--format",
        "csv",
        "--out",
        H.rel(answer),
    ]
    m = H.measure(cmd, label=f"sql-every-sweep-{case.split()[0]}", reps=reps, warmup=0, after=size)
    return ses.row("aggregate", case, 'dpsim sql "SELECT * FROM sweeps" --format csv --out FILE', inp, m)


def _memory_limit_mb() -> int:
    from dpsim.config import Aggregate

    return Aggregate().memory_limit_mb


def sql_small(ses: Session) -> None:
    """`dpsim sql` on the DRR day's aggregate (made here when the process section did not), and where its
    time goes, measured inside one process (bench.tasks sql-breakdown)."""
    lake = H.WORK / "lake-drr"
    if not (lake / "aggregates" / "global_summary.parquet").exists():
        for step in ("shred", "process"):
            extra = ["--force"] + (["--workers", "1"] if step == "process" else [])
            subprocess.run(
                [*H.DPSIM, step, "--config", "conf/drr.yaml", "--lake", H.rel(lake), *extra],
                cwd=H.REPO,
                check=True,
                capture_output=True,
            )
    case = "DRR 110621 2024-09-05 (one partition)"
    for form, flags in (("printed", []), ("--format csv", ["--format", "csv"])):  # csv: written by DuckDB
        cmd = [*H.DPSIM, "sql", "--lake", H.rel(lake), SMALL_QUERY, *flags]
        m = H.measure(cmd, label=f"sql-small {form}", reps=max(ses.reps, 5), warmup=1)
        row = ses.row("aggregate", case, f'dpsim sql "{SMALL_QUERY}", {form}', {}, m)
        if m.runs and flags:
            with_breakdown = H.task("sql-breakdown", H.rel(lake), SMALL_QUERY)
            row["extra"].update(json.loads(with_breakdown))
        ses.rows.append(row)

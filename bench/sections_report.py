"""The report section: `dpsim report` of a lake of many partitions, and the page drawn in chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench import harness as H
from bench.sections_process import process_drr
from bench.session import Session


def report(ses: Session) -> None:
    """dpsim report of a lake of many partitions: the DRR day's results hard-linked under N keys
    (bench.many), so every query scans N partitions' files; then the page opened in chromium.

    The lake's aggregates are the DRR day's, copied: the report reads a handful of their rows, and
    `dpsim aggregate` over thousands of partitions is not what this section measures."""
    n = ses.cfg["report_partitions"]
    source = H.WORK / "lake-drr"
    if not (source / "aggregates" / "headline.parquet").exists():
        process_drr(ses)
    lake = H.WORK / f"lake-report-{n}"
    m = H.measure(
        [*H.module("many"), H.rel(source), H.rel(lake), str(n)], label="report-build", reps=1, warmup=0
    )
    built = m.last_json()
    shutil.copytree(source / "aggregates", lake / "aggregates", dirs_exist_ok=True)
    m = H.measure([*H.DPSIM, "catalog", "--lake", H.rel(lake)], label=f"report-compact-{n}", reps=1, warmup=0)
    compacted = m  # the views read results_by_date: the linked job outputs compacted by date first
    sweeps = _parquet_rows(source / "results" / "sweeps") * n
    inp = {"path": H.rel(lake), "partitions": n, "files": built.get("files"), "sweeps": sweeps}
    case = f"{n:,} partitions (DRR results x {n:,}: {sweeps:,} sweeps, {built.get('files', 0):,} files)"
    ses.rows.append(
        ses.row("report", case, "dpsim catalog (compacting every date, before the reports)", inp, compacted)
    )
    out = H.WORK / "report" / f"report-{n}.html"
    cmd = [*H.DPSIM, "report", "--lake", H.rel(lake), "--out", H.rel(out)]
    m = H.measure(cmd, label=f"report-{n}", reps=ses.reps)  # the warm-up run builds the catalog
    row = ses.row("report", case, "dpsim report", inp, m)
    if out.exists():
        row["extra"]["html_mb"] = round(out.stat().st_size / 1e6, 2)
    ses.rows.append(row)
    sweep = _first_sweep(source)
    sweep_out = H.WORK / "report" / f"sweep-{n}.html"
    cmd = [*H.DPSIM, "report", "--lake", H.rel(lake), "--sweep", str(sweep), "--out", H.rel(sweep_out)]
    cmd += ["--securities", "100001", "--dates", "2024-01-02"]
    m = H.measure(cmd, label=f"report-sweep-{n}", reps=ses.reps)
    row = ses.row("report", case, "dpsim report --sweep (one partition selected)", inp, m)
    if sweep_out.exists():
        row["extra"]["html_mb"] = round(sweep_out.stat().st_size / 1e6, 2)
    ses.rows.append(row)
    if out.exists():
        m = H.measure([*H.module("page"), H.rel(out)], label=f"report-page-{n}", reps=ses.reps)
        row = ses.row("report", case, "chromium: open the page until every plot is drawn", inp, m)
        row["extra"].update(m.last_json())
        ses.rows.append(row)
    H.rm(lake)


def _parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.rglob("*.parquet"))


def _first_sweep(lake: Path) -> int:
    import pyarrow.parquet as pq

    first = next((lake / "results" / "sweeps").rglob("*.parquet"))
    return int(pq.read_table(first, columns=["order_id"])["order_id"][0].as_py())

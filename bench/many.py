"""A lake of many partitions for the report benchmark: one partition's result files hard-linked under N keys.

    python -m bench.many SOURCE_LAKE TARGET_LAKE N

Every (security_code, date) key gets the source partition's raw tables (orders, trades, nbbo) and results
(sweeps, quality, replay_fidelity, sim_orders and sim_fills, every scenario in them) as hard links (copies
across filesystems), and one run JSON lists a job per key, so the report's queries scan N partitions'
files exactly as in a real lake of that size. Prints a JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

from dpsim.synth import trading_dates

DATES_PER_SECURITY = 50


def keys(n: int) -> list[tuple[int, date]]:
    """N keys: 50 trading dates (weekdays from 2024-01-02) per security, securities 100001, 100002, …"""
    days = trading_dates(date(2024, 1, 2), DATES_PER_SECURITY)
    return [(100_001 + i // DATES_PER_SECURITY, days[i % DATES_PER_SECURITY]) for i in range(n)]


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def build(source: Path, target: Path, n: int) -> dict[str, object]:
    t0 = time.perf_counter()
    tables = ("results", "orders", "trades", "nbbo")
    files = sorted(p.relative_to(source) for t in tables for p in (source / t).rglob("*.parquet"))
    shutil.rmtree(target, ignore_errors=True)
    linked = 0
    for sec, day in keys(n):
        hive = f"security_code={sec}/date={day.isoformat()}"
        for rel in files:
            parts = [p for p in rel.parts if not p.startswith(("security_code=", "date="))]
            *head, name = parts  # [results/]table/part-….parquet
            _link(source / rel, target / Path(*head) / hive / name)
            linked += 1
    markers = source / "results" / "_scenarios"  # which scenarios the results hold
    if markers.is_dir():
        shutil.copytree(markers, target / "results" / "_scenarios")
    runs = sorted((source / "_runs").glob("*.json"))
    run = json.loads(runs[-1].read_text(encoding="utf-8"))
    job = next(j for j in run["jobs"] if j["status"] == "ok")
    run["jobs"] = [dict(job, partition=f"{sec}/{day.isoformat()}") for sec, day in keys(n)]
    run["run_id"] = "bench-many"
    (target / "_runs").mkdir(parents=True, exist_ok=True)
    (target / "_runs" / "bench-many.json").write_text(json.dumps(run), encoding="utf-8")
    return {"partitions": n, "files": linked, "seconds": round(time.perf_counter() - t0, 2)}


if __name__ == "__main__":
    print(json.dumps(build(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))))

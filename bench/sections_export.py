"""The export section: `dpsim export` of a >= 1,000-partition lake into PostgreSQL, against psycopg's
`COPY … FROM STDIN` (bench.peers pgcopy: pyarrow CSV, one transaction per partition)."""

from __future__ import annotations

import os
import subprocess
from datetime import date, timedelta
from pathlib import Path

from bench import harness as H
from bench.rows import Row
from bench.session import Session


def export(ses: Session) -> None:
    """Both tools load one server started here (tests/pgserver.py) with PostgreSQL's default durability,
    both re-creating the table each run (--rebuild); then an export with nothing changed (the incremental
    check alone). The tools take turns, round after round (`H.measure_turns`)."""
    from tests import pgserver

    bins = pgserver.bin_dir()
    if bins is None:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
    n = int(ses.cfg["export_partitions"])
    lake, rows = _export_lake(n)
    inp = {"path": H.rel(lake), "partitions": n, "rows": rows}
    case = f"sweeps of {n:,} partitions ({rows:,} rows, DRR day's file linked under each key)"
    with pgserver.running(bins, durable=True) as server:
        env = {"PGPASSWORD": pgserver.PASSWORD}  # libpq reads it: no password in the recorded commands
        url = server.url(password=None)
        base = [*H.DPSIM, "export", "--config", H.rel(ses.config), "--lake", H.rel(lake), "--to", url]
        base += ["--tables", "sweeps"]
        tools = (
            ("dpsim export", [*base, "--schema", "bench_dpsim", "--rebuild"]),
            (
                "dpsim export --workers 1",
                [*base, "--schema", "bench_dpsim_w1", "--rebuild", "--workers", "1"],
            ),
            ("psycopg COPY FROM STDIN", [*H.module("peers"), "pgcopy", H.rel(lake), url, "--schema", "peer"]),
            ("dpsim export (nothing changed)", [*base, "--schema", "bench_dpsim"]),
        )
        specs = {t: H.Spec(cmd, f"export-{t}", env) for t, cmd in tools}
        ms = H.measure_turns(specs, reps=ses.reps)
    measured: dict[str, Row] = {}
    for tool, _ in tools:
        m = ms[tool]
        row = ses.row("export", case, tool, inp, m)
        if m.runs and "nothing" not in tool:
            row["rows_s"] = round(rows / m.wall_s)
        measured[tool] = row
        ses.rows.append(row)
    peer = measured["psycopg COPY FROM STDIN"]
    for tool in ("dpsim export", "dpsim export --workers 1"):
        d = measured[tool]
        if d.get("rows_s") and peer.get("rows_s"):
            rounds = H.turn_ratios(ms[tool].runs, ms[peer["tool"]].runs)
            peer_rss = peer.get("peak_rss_mb")
            d["extra"] = {
                **d.get("extra", {}),
                "vs_peer": {
                    "speed": round(d["rows_s"] / peer["rows_s"], 2),
                    "rss": round((d.get("peak_rss_mb") or 0) / peer_rss, 2) if peer_rss else None,
                    "per_round": [round(x, 2) for x in rounds],  # same round = about the same machine load
                },
            }


def _export_lake(n: int) -> tuple[Path, int]:
    """A lake whose results/sweeps has n partitions, each a hard link to the DRR day's sweeps file (the
    export reads and sends every one in full); built once under bench/work."""
    import pyarrow.parquet as pq

    src_lake = H.WORK / "export-src"
    src = src_lake / "results" / "sweeps" / "security_code=110621" / "date=2024-09-05" / "part-0.parquet"
    if not src.exists():
        conf = ["--config", "conf/drr.yaml", "--lake", H.rel(src_lake)]
        for step in (
            ["shred", "--force"],
            ["process", "--force", "--no-aggregate", "--scenario", "baseline"],
        ):
            H.say(f"  building {H.rel(src_lake)}: dpsim {step[0]}")
            subprocess.run([*H.DPSIM, step[0], *conf, *step[1:]], cwd=H.REPO, check=True, capture_output=True)
    per = pq.ParquetFile(src).metadata.num_rows
    lake = H.WORK / f"lake-export-{n}"
    days = 25
    keys = [(100_000 + i // days, date(2024, 1, 1) + timedelta(days=i % days)) for i in range(n)]
    sweeps = lake / "results" / "sweeps"
    if not sweeps.exists() or sum(1 for _ in sweeps.glob("*/*/part-0.parquet")) != n:
        H.rm(lake)
        for sec, day in keys:
            part = sweeps / f"security_code={sec}" / f"date={day}" / "part-0.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, part)
    return lake, per * n

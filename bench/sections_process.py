"""The process sections: the DRR day and a generated drop end to end, and the seed notebook against dpsim."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import harness as H
from bench.lake_figures import (
    extrapolate,
    first_partition,
    first_partition_of_csv,
    run_manifest,
)
from bench.sections_shred import shred_input, shred_tool
from bench.session import Session


def process(ses: Session) -> None:
    worker_baseline(ses)
    process_drr(ses)
    if ses.cfg["process_drop"] or ses.only:
        process_drop(ses)


def worker_baseline(ses: Session) -> None:
    """Peak RSS of a process that only imports what a job worker imports: the floor under worker RSS."""
    cmd = [*H.module("tasks"), "worker-imports"]
    m = H.measure(cmd, label="process-worker-baseline", reps=ses.reps)
    row = ses.row("process", "worker import baseline", "python -m bench.tasks worker-imports", {}, m)
    ses.worker_baseline_mb = m.peak_rss_mb if m.runs else None
    ses.rows.append(row)


def process_drr(ses: Session) -> None:
    lake = H.WORK / "lake-drr"
    H.rm(lake)
    conf = "conf/drr.yaml"
    inp = {"path": "../shared/data/drr-2024-09-05/*.csv.gz", "partitions": 1}
    base = [*H.DPSIM]
    steps = [
        ("shred", [*base, "shred", "--config", conf, "--lake", H.rel(lake), "--force"]),
        (
            "process",
            [
                *base,
                "process",
                "--config",
                conf,
                "--lake",
                H.rel(lake),
                "--force",
                "--no-aggregate",
                "--workers",
                "1",
            ],
        ),
        ("aggregate", [*base, "aggregate", "--config", conf, "--lake", H.rel(lake)]),
    ]
    total = 0.0
    for step, cmd in steps:
        m = H.measure(cmd, label=f"process-drr-{step}", reps=ses.reps)
        row = ses.row("process", "DRR 110621 2024-09-05", f"dpsim {step}", inp, m)
        if step == "process" and m.runs:
            row["extra"].update(run_manifest(lake))
            if row["extra"].get("worker_peak_rss_mb") and ses.worker_baseline_mb:
                row["extra"]["worker_rss_over_baseline_mb"] = round(
                    row["extra"]["worker_peak_rss_mb"] - ses.worker_baseline_mb, 1
                )
            n_scen = len(row["extra"].get("scenarios") or []) or 5
            row["extra"]["job_seconds_per_scenario"] = round(
                row["extra"].get("job_seconds_sum", 0) / n_scen, 4
            )
            row["extra"]["wall_seconds_per_scenario"] = round(m.wall_s / n_scen, 4)
        total += m.wall_s if m.runs else float("nan")
        ses.rows.append(row)
    ses.rows.append(
        {
            "section": "process",
            "case": "DRR 110621 2024-09-05",
            "tool": "dpsim end to end",
            "command": " && ".join(r["command"] for r in ses.rows[-3:]),
            "wall_s": round(total, 3),
            "peak_rss_mb": max((r.get("peak_rss_mb") or 0) for r in ses.rows[-3:]),
            "input": inp,
            "extra": {},
            "error": None,
            "derived": "sum of the three medians above",
        }
    )


def drop(ses: Session) -> dict[str, Any]:
    d = ses.cfg["drop"]
    return H.drop(
        "process",
        securities=d["securities"],
        days=d["days"],
        start="2024-10-01",
        scale_bytes=d["scale_bytes"],
    )


def process_drop(ses: Session) -> None:
    meta = drop(ses)
    lake = H.WORK / "lake-drop"
    H.rm(lake)
    f = meta["files"]
    inp = {
        "path": H.rel(Path(f["orders"]).parent),
        "rows": meta["rows"]["orders"],
        "uncompressed_bytes": meta["bytes"]["orders"] + meta["bytes"]["trades"] + meta["bytes"]["nbbo"],
        "partitions": meta["partitions"],
        "securities": meta["params"]["securities"],
        "days": meta["params"]["days"],
    }
    case = f"generated drop {inp['securities']} sec x {inp['days']} days ({inp['partitions']} partitions)"
    shred = [
        *H.DPSIM,
        "shred",
        "--config",
        H.rel(ses.config),
        "--lake",
        H.rel(lake),
        "--force",
        "--orders",
        H.rel(f["orders"]),
        "--trades",
        H.rel(f["trades"]),
        "--nbbo",
        H.rel(f["nbbo"]),
    ]
    m = H.measure(shred, label="process-drop-shred", reps=ses.reps)
    row = ses.row("process", case, "dpsim shred (orders+trades+nbbo)", inp, m)
    ses.rows.append(row)
    walls = {}
    for w in (1, 2):
        cmd = [
            *H.DPSIM,
            "process",
            "--config",
            H.rel(ses.config),
            "--lake",
            H.rel(lake),
            "--force",
            "--no-aggregate",
            "--workers",
            str(w),
        ]
        m = H.measure(cmd, label=f"process-drop-w{w}", reps=ses.reps)
        row = ses.row("process", case, f"dpsim process --workers {w}", inp, m)
        if m.runs:
            man = run_manifest(lake)
            if man.get("worker_peak_rss_mb") and ses.worker_baseline_mb:
                man["worker_rss_over_baseline_mb"] = round(
                    man["worker_peak_rss_mb"] - ses.worker_baseline_mb, 1
                )
            row["extra"].update(man)
            row["jobs_s"] = round(man.get("jobs", 0) / m.wall_s, 2)
            row["rows_s"] = round(man.get("rows_in", 0) / m.wall_s)
            walls[w] = m.wall_s
        ses.rows.append(row)
    if 1 in walls and 2 in walls:
        ses.rows[-1]["extra"]["speedup_1_to_2"] = round(walls[1] / walls[2], 2)
    m = H.measure(
        [*H.DPSIM, "aggregate", "--config", H.rel(ses.config), "--lake", H.rel(lake)],
        label="process-drop-aggregate",
        reps=ses.reps,
    )
    ses.rows.append(ses.row("process", case, "dpsim aggregate", inp, m))


def seed(ses: Session) -> None:
    """The seed plan's per-(security, date) job: re-scan the raw files with pandas chunks, extrapolated."""
    if ses.cfg["process_drop"] or ses.only:
        seed_drop(ses)
    seed_big(ses)


def seed_drop(ses: Session) -> None:
    meta = drop(ses)
    f = meta["files"]
    # dpsim's cost for the same drop: shred once + process all partitions (2 workers), from this run
    mine = {r["tool"]: r for r in ses.rows if r["section"] == "process" and r["case"].startswith("generated")}
    sec, day = first_partition(H.WORK / "lake-drop") or first_partition_of_csv(f["orders"])
    jobs = meta["partitions"]
    cmd = [
        *H.module("peers"),
        "seed",
        H.rel(f["orders"]),
        "--trades",
        H.rel(f["trades"]),
        "--security",
        str(sec),
        "--date",
        day,
        "--chunk-mb",
        "1024",
    ]
    inp = {
        "path": H.rel(f["orders"]),
        "rows": meta["rows"]["orders"] + meta["rows"]["trades"],
        "uncompressed_bytes": meta["bytes"]["orders"] + meta["bytes"]["trades"],
        "partitions": jobs,
    }
    m = H.measure(cmd, label="seed-drop", reps=ses.reps)
    row = ses.row("seed", f"generated drop, one job ({sec} {day})", "seed pandas re-scan", inp, m)
    row["extra"].update(m.last_json())
    dpsim_total = None
    if "dpsim shred (orders+trades+nbbo)" in mine and "dpsim process --workers 2" in mine:
        shred_s = mine["dpsim shred (orders+trades+nbbo)"].get("wall_s")
        process_s = mine["dpsim process --workers 2"].get("wall_s")
        dpsim_total = shred_s + process_s if shred_s is not None and process_s is not None else None
    row["extra"].update(extrapolate(m.wall_s if m.runs else None, jobs, dpsim_total))
    ses.rows.append(row)


def seed_big(ses: Session) -> None:
    """The same job on the largest plain orders file measured in this run (orders scan only)."""
    big = [
        r
        for r in ses.rows
        if r["tool"] == "dpsim"
        and r["section"] in ("shred_peers", "scaling")
        and not r.get("error")
        and not r["input"].get("gz")
    ]
    if not big:  # sections run alone: measure dpsim on the largest shred_peers input here
        gb = max(ses.cfg["shred_gb"])
        big = [shred_tool(ses, "seed", f"{gb:g} GB plain", "dpsim", shred_input(ses, gb))]
    if big and not big[0].get("error"):
        b = max(big, key=lambda r: r["input"]["uncompressed_bytes"])
        bi = b["input"]
        sec, day = first_partition_of_csv(str(H.REPO / bi["path"]))
        cmd = [
            *H.module("peers"),
            "seed",
            bi["path"],
            "--security",
            str(sec),
            "--date",
            day,
            "--chunk-mb",
            "1024",
        ]
        m = H.measure(cmd, label="seed-big", reps=ses.reps)
        row = ses.row(
            "seed", f"{bi['nominal_gb']:g} GB orders, one job ({sec} {day})", "seed pandas re-scan", bi, m
        )
        row["extra"].update(m.last_json())
        row["extra"].update(
            extrapolate(
                m.wall_s if m.runs else None,
                bi["partitions"],
                b["wall_s"],
                dpsim_what="dpsim shred of the same file (orders only)",
            )
        )
        ses.rows.append(row)

"""Figures read back from a measured command's lake (through dpsim.lake: manifests, partitions) or input."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench import harness as H
from dpsim.lake import Lake, manifests


def manifest_rows(lake: Path) -> dict[str, Any]:
    """The orders sources' figures from the lake's source manifests."""
    out: dict[str, Any] = {}
    for m in manifests.read_sources(Lake(lake)):
        if m.get("kind") == "orders":
            out["rows_written"] = out.get("rows_written", 0) + int(m.get("rows_written") or 0)
            out["rows_rejected"] = out.get("rows_rejected", 0) + int(m.get("rows_rejected") or 0)
            out["shred_seconds"] = m.get("seconds")
    return out


def run_manifest(lake: Path) -> dict[str, Any]:
    """The latest run's figures from its run manifest."""
    body = manifests.latest_run(Lake(lake))
    if body is None:
        return {}
    jobs = [j for j in body.get("jobs", []) if j.get("status") == "ok"]
    secs = [j.get("seconds", 0.0) for j in jobs]
    return {
        "run_manifest": H.rel(str(Lake(lake).runs_dir / f"{body['run_id']}.json")),
        "jobs": len(jobs),
        "jobs_failed": sum(1 for j in body.get("jobs", []) if j.get("status") == "failed"),
        "run_seconds": body.get("seconds"),
        "job_seconds_sum": round(sum(secs), 3),
        "job_seconds_mean": round(statistics.mean(secs), 4) if secs else None,
        "job_seconds_max": round(max(secs), 4) if secs else None,
        "rows_in": sum(int(j.get("rows_in") or 0) for j in jobs),
        "rows_out": sum(int(j.get("rows_out") or 0) for j in jobs),
        "max_job_rows_in": max((int(j.get("rows_in") or 0) for j in jobs), default=0),
        "worker_peak_rss_mb": max((float(j.get("worker_peak_rss_mb") or 0) for j in jobs), default=None),
        "workers": len({j.get("worker_pid") for j in jobs}),
        "scenarios": body.get("scenarios"),
    }


def first_partition(lake: Path) -> tuple[int, str] | None:
    partitions = Lake(lake).partitions("orders")
    return (partitions[0].security_code, partitions[0].date.isoformat()) if partitions else None


def first_partition_of_csv(path: str) -> tuple[int, str]:
    """(security_code, trading date) of the first data row with a 10:00-16:00 timestamp, via dpsim's rule."""
    code, day = H.task("first-partition", path).split()
    return int(code), day


def extrapolate(
    per_job: float | None,
    jobs: int,
    dpsim_total: float | None,
    dpsim_what: str = "dpsim shred (orders+trades+nbbo) + process --workers 2",
) -> dict[str, Any]:
    if not per_job:
        return {}
    out: dict[str, Any] = {
        "jobs": jobs,
        "seed_total_s_1_worker": round(per_job * jobs, 1),
        "seed_total_s_2_workers": round(per_job * jobs / 2, 1),
    }
    if dpsim_total:
        out["dpsim_total_s"] = round(dpsim_total, 2)
        out["dpsim_what"] = dpsim_what
        out["seed_over_dpsim_2_workers"] = round(per_job * jobs / 2 / dpsim_total, 1)
    return out

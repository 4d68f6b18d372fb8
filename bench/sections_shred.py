"""The shred sections: dpsim against its peers on plain and gzip input, scaling, many partitions, byte ranges."""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any

from bench import harness as H
from bench.lake_figures import (
    manifest_rows,
)
from bench.rows import Row
from bench.session import GB, MANY_DAYS, SHRED_DAYS, SHRED_SECURITIES, THREADS, Session


def shred_input(ses: Session, gb: float, *, many: bool = False, gz: bool = False) -> dict[str, Any]:
    days = MANY_DAYS if many else SHRED_DAYS
    start = "2024-01-02" if many else "2024-10-01"
    meta = H.drop(
        "many" if many else "shred",
        securities=SHRED_SECURITIES,
        days=days,
        start=start,
        scale_bytes=int(gb * GB),
        gz=gz,
    )
    path = meta["orders_gz"] if gz else meta["files"]["orders"]
    return {
        "path": H.rel(path),
        "gz": gz,
        "file_bytes": meta["orders_gz_bytes"] if gz else meta["bytes"]["orders"],
        "uncompressed_bytes": meta["bytes"]["orders"],
        "rows": meta["rows"]["orders"],
        "partitions": meta["partitions"],
        "securities": SHRED_SECURITIES,
        "days": days,
        "nominal_gb": gb,
    }


def shred_tool(ses: Session, section: str, case: str, tool: str, inp: dict[str, Any]) -> Row:
    """One tool's row: measured on its own, or reused when an earlier section measured it on this input."""
    return measured_rows(ses, section, case, [tool], inp)[tool]


def measured_rows(
    ses: Session, section: str, case: str, tools: list[str], inp: dict[str, Any]
) -> dict[str, Row]:
    """The tools' rows on `inp`, in their order: those measured before on this input reused, the others
    measured now, taking turns round by round (`H.measure_turns`)."""
    reused: dict[str, Row] = {}
    specs: dict[str, H.Spec] = {}
    for tool in tools:
        key = (tool, inp["path"])
        if key in ses.memo:
            row = copy.deepcopy(ses.memo[key])
            row["section"], row["case"], row["reused"] = section, case, True
            row.pop("ratios", None)  # ratios belong to the case they were computed for
            row.pop("vs_dpsim", None)
            reused[tool] = row
        else:
            specs[tool] = _spec(ses, section, tool, inp)
    measured = H.measure_turns(specs, reps=ses.reps) if specs else {}
    rows = {}
    for tool in tools:
        if tool in reused:
            rows[tool] = reused[tool]
        else:
            rows[tool] = ses.row(section, case, tool, inp, measured[tool])
            ses.memo[(tool, inp["path"])] = rows[tool]
        ses.rows.append(rows[tool])
    return rows


def _spec(ses: Session, section: str, tool: str, inp: dict[str, Any]) -> H.Spec:
    """The command that shreds `inp` with `tool` into bench/work/out/<tool>, emptied before and after each run."""
    src = inp["path"]
    out = H.WORK / "out" / tool
    tmp = H.WORK / "tmp" / tool
    env: dict[str, str] = {}
    if tool in ("dpsim", "dpsim_w2", "dpsim_1core"):
        cmd = [
            *(["taskset", "-c", "0"] if tool == "dpsim_1core" else []),
            *H.DPSIM,
            "shred",
            "--config",
            H.rel(ses.config),
            "--lake",
            H.rel(out),
            "--orders",
            src,
            "--force",
        ]
        if tool == "dpsim_w2":
            cmd += ["--workers", "2"]
    elif tool in ("duckdb", "duckdb_mem"):
        cmd = [
            *H.module("peers"),
            "duckdb",
            src,
            H.rel(out),
            "--threads",
            str(THREADS),
            "--temp",
            H.rel(tmp),
        ]
        if tool == "duckdb_mem":
            cmd += ["--memory-limit", f"{ses.budget_mb}MB"]
    elif tool == "polars":
        cmd = [*H.module("peers"), "polars", src, H.rel(out), "--threads", str(THREADS)]
        env = {"POLARS_MAX_THREADS": str(THREADS)}
    elif tool == "cat":
        cmd = ["sh", "-c", f"cat {src} > /dev/null"]
    elif tool == "gzip_dc":
        cmd = ["sh", "-c", f"gzip -dc {src} > /dev/null"]
    else:
        raise ValueError(tool)

    def before() -> None:
        H.rm(out)
        H.rm(tmp)

    def after(i: int) -> dict[str, Any] | None:
        info = None
        if tool not in ("cat", "gzip_dc"):
            info = H.partition_files(out / "orders" if tool.startswith("dpsim") else out)
            if tool.startswith("dpsim"):
                info.update(manifest_rows(out))
        H.rm(out)
        H.rm(tmp)
        return info

    return H.Spec(cmd, f"{section}-{tool}-{Path(src).name}-{inp['nominal_gb']}", env, before, after)


def peers(ses: Session, section: str, case: str, inp: dict[str, Any], tools: list[str]) -> None:
    """The tools taking turns on one input; a peer's speed ratio (its seconds over dpsim's) is the median of
    the rounds' ratios when the two ran in the same rounds, else the ratio of their medians."""
    rows = measured_rows(ses, section, case, tools, inp)
    d = rows.get("dpsim")
    d_wall, d_rss = (d.get("wall_s"), d.get("peak_rss_mb")) if d else (None, None)
    if not d or d.get("error") or not d_wall:
        return
    ratios = {}
    for t, r in rows.items():
        wall, rss = r.get("wall_s"), r.get("peak_rss_mb")
        if t == "dpsim" or r.get("error") or not wall:
            continue
        per_round = _paired(d, r)
        ratios[t] = {
            "speed": round(statistics.median(per_round) if per_round else wall / d_wall, 2),
            "speed_per_round": [round(x, 2) for x in per_round],
            "rss": round(d_rss / rss, 2) if rss and d_rss else None,
        }
        r.setdefault("vs_dpsim", {})[case] = ratios[t]
    d.setdefault("ratios", {})[case] = ratios


def _paired(dpsim: Row, peer: Row) -> list[float]:
    """The peer's seconds over dpsim's, round by round, when the two were measured taking turns."""
    if dpsim.get("reused") or peer.get("reused") or len(dpsim["runs"]) != len(peer["runs"]):
        return []
    return [p["wall_s"] / q["wall_s"] for q, p in zip(dpsim["runs"], peer["runs"], strict=True)]


# ---- sections ---------------------------------------------------------------------------------------


def shred_peers(ses: Session) -> None:
    """dpsim shred vs DuckDB (same threads; and under dpsim's memory budget) vs Polars vs cat, plain CSV."""
    for i, gb in enumerate(ses.cfg["shred_gb"]):
        inp = shred_input(ses, gb)
        if i == 0:
            datecheck(ses, inp)
        H.drop_page_cache_warm(H.REPO / inp["path"])
        peers(ses, "shred_peers", f"{gb:g} GB plain", inp, ses.cfg["shred_tools"])


def datecheck(ses: Session, inp: dict[str, Any]) -> None:
    """DuckDB's trading-date expression against dpsim.tradingtime on a DST-crossing sample + the input's rows."""
    cmd = [*H.module("peers"), "datecheck", inp["path"]]
    m = H.measure(cmd, label="datecheck", reps=1, warmup=0)
    row = ses.row("shred_peers", "trading date check", "datecheck", {}, m)
    row["extra"] = m.last_json()
    ses.rows.append(row)


def gzip(ses: Session) -> None:
    """The same files gzipped (-6): dpsim vs the gzip -dc floor (uncompressed bytes/s) and the peers."""
    for gb in ses.cfg["gzip_gb"]:
        inp = shred_input(ses, gb, gz=True)
        peers(ses, "gzip", f"{gb:g} GB .gz", inp, ses.cfg["gzip_tools"])


def scaling(ses: Session) -> None:
    """dpsim shred wall time and peak RSS against input size (time near-linear, memory flat)."""
    for gb in ses.cfg["scaling_gb"]:
        inp = shred_input(ses, gb)
        H.drop_page_cache_warm(H.REPO / inp["path"])
        shred_tool(ses, "scaling", f"{gb:g} GB plain", "dpsim", inp)
        if gb >= 20:  # free the disk the biggest input takes once it is measured
            H.rm(H.REPO / inp["path"])


def many_partitions(ses: Session) -> None:
    """~1 GB over 200 dates x 60 securities (12,000 partitions) vs the 5-day file of the same size."""
    gb = ses.cfg["many_gb"]
    base = shred_input(ses, gb)
    many = shred_input(ses, gb, many=True)
    for label, inp in (
        (f"{gb:g} GB, 5 days ({base['partitions']} partitions)", base),
        (f"{gb:g} GB, {MANY_DAYS} days ({many['partitions']:,} partitions)", many),
    ):
        H.drop_page_cache_warm(H.REPO / inp["path"])
        peers(ses, "many_partitions", label, inp, ["dpsim", "duckdb_mem", "polars"])


def shred_workers(ses: Session) -> None:
    """The largest plain file shredded by one process and by two (byte ranges): the scale-out speed-up.
    Also one process pinned to one core (taskset): with it, 2 workers on 2 cores vs 1 worker on 1 core
    shows how byte ranges scale with cores, which the unpinned pair cannot show on a 2-core machine."""
    gb = max(ses.cfg["shred_gb"])
    inp = shred_input(ses, gb)
    H.drop_page_cache_warm(H.REPO / inp["path"])
    peers(ses, "shred_workers", f"{gb:g} GB plain", inp, ["dpsim", "dpsim_w2", "dpsim_1core"])

"""The code-level sections: the matching kernel alone, and profiles of shred (py-spy, pyinstrument)."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime

from bench import harness as H
from bench.sections_shred import shred_input
from bench.session import Session


def kernel(ses: Session) -> None:
    """The replay kernel alone on realistic partitions (DRR day, generated days), every scenario."""
    sizes = ",".join(str(n) for n in ses.cfg["kernel_sizes"])
    cmd = [*H.module("kernel"), "--sizes", sizes, "--reps", str(max(ses.reps, 3))]
    m = H.measure(cmd, label="kernel", reps=1, warmup=0)  # the script warms up and repeats inside
    res = m.last_json()
    for part in res.get("partitions", []):
        for name, s in part["scenarios"].items():
            ses.rows.append(
                {
                    "section": "kernel",
                    "case": f"{part['partition']} {s['events']:,} events",
                    "tool": f"match {name}",
                    "command": m.command,
                    "input": {},
                    "extra": {**s, "partition": part["partition"], "scenario": name},
                    "wall_s": s["seconds"],
                    "peak_rss_mb": m.peak_rss_mb,
                    "error": m.error,
                }
            )
    if not res:
        ses.rows.append(
            {
                "section": "kernel",
                "case": "kernel",
                "tool": "match",
                "command": m.command,
                "input": {},
                "extra": {},
                "wall_s": None,
                "peak_rss_mb": None,
                "error": m.error or "no output",
            }
        )


def profile(ses: Session) -> None:
    """py-spy (native, all threads) and pyinstrument profiles of dpsim shred: plain, .gz, many partitions."""
    gb = ses.cfg["profile_gb"]
    for label, gz, many in (
        ("plain", False, False),
        (".gz", True, False),
        ("12,000 partitions", False, True),
    ):
        inp = shred_input(ses, gb, gz=gz, many=many)
        out = H.WORK / "out" / "profile"
        H.rm(out)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        suffix = "-gz" if gz else ("-many" if many else "")
        prefix = H.BENCH / "results" / f"profile-{stamp}-shred-{gb:g}GB{suffix}"
        cmd = [
            *H.module("profile"),
            H.rel(prefix),
            "--",
            H.PY,
            "-m",
            "dpsim",
            "shred",
            "--config",
            H.rel(ses.config),
            "--lake",
            H.rel(out),
            "--orders",
            inp["path"],
            "--force",
        ]
        H.say(f"  [profile] {' '.join(cmd)}")

        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=H.REPO, capture_output=True, text=True)
        H.rm(out)
        try:
            info = json.loads(r.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            info = {"error": r.stderr[-800:]}
        for k in ("pyspy_file", "pyinstrument_file"):
            if k in info:
                info[k] = H.rel(info[k])
        ses.rows.append(
            {
                "section": "profile",
                "case": f"dpsim shred {gb:g} GB {label}",
                "tool": "py-spy + pyinstrument",
                "command": " ".join(cmd),
                "input": inp,
                "wall_s": round(time.perf_counter() - t0, 1),
                "peak_rss_mb": None,
                "extra": info,
                "error": info.get("error"),
            }
        )

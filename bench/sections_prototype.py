"""The prototype section: the real DRR day end to end, dpsim (shred + process + aggregate, every scenario)
against the prototype it replaces (one scenario), as whole commands taking turns."""

from __future__ import annotations

import shlex
import statistics

from bench import harness as H
from bench.proto import PROTO, SRC
from bench.session import Session


def prototype(ses: Session) -> None:
    """Skipped, with a row saying how to rebuild it, when bench/work/proto is absent (`python -m bench.proto`)."""
    case = "DRR 110621 2024-09-05 end to end"
    if not (SRC / "src" / "main.py").exists() or not (PROTO / "venv" / "bin" / "python").exists():
        ses.rows.append(
            {
                "section": "prototype",
                "case": case,
                "tool": "prototype",
                "command": "",
                "input": {},
                "extra": {},
                "wall_s": None,
                "peak_rss_mb": None,
                "error": "prototype not rebuilt: python -m bench.proto SNAPSHOT_GIT_DIR (BENCHMARKS.md)",
            }
        )
        return
    # its sources as installed, as bench.run has done for dpsim's before any section
    H.compile_sources(str(PROTO / "venv" / "bin" / "python"), SRC / "src")
    lake = H.rel(H.WORK / "lake-e2e")
    dpsim = " && ".join(
        shlex.join([*H.DPSIM, cmd, "--config", "conf/drr.yaml", "--lake", lake, "--force"])
        for cmd in ("shred", "process")
    )
    proto = (
        f"cd {shlex.quote(str(SRC))} && rm -rf data/processed data/outputs data/aggregated && "
        f"{shlex.quote(str(PROTO / 'venv' / 'bin' / 'python'))} src/main.py --ticker drr --date 20240905"
    )
    tools = (
        ("dpsim shred + process (7 scenarios, the reality replay, aggregation)", ["sh", "-c", dpsim]),
        ("prototype src/main.py (one scenario)", ["sh", "-c", proto]),
    )
    runs: dict[str, list[H.Sample]] = {t: [] for t, _ in tools}
    errors: dict[str, str | None] = {t: None for t, _ in tools}
    for rnd in range(ses.reps + 1):  # round 0 warms both up; the tools take turns so a load weighs alike
        for tool, cmd in tools:
            sample = H.run_once(cmd, log=H.WORK / "logs" / "prototype.log")
            H.say(f"  [{tool}] round {rnd}: {sample.wall_s:.2f} s (load {sample.load_1m:.1f})")
            if sample.rc:
                errors[tool] = f"exit {sample.rc} (log bench/work/logs/prototype.log)"
            elif rnd:
                runs[tool].append(sample)
    ratios = [p.wall_s / d.wall_s for d, p in zip(runs[tools[0][0]], runs[tools[1][0]], strict=False)]
    for tool, cmd in tools:
        m = H.Measured(command=shlex.join(cmd), env={}, runs=runs[tool], warmup=1, error=errors[tool])
        if m.runs:
            m.wall_s = round(statistics.median(r.wall_s for r in m.runs), 3)
            m.peak_rss_mb = round(statistics.median(r.peak_rss_mb for r in m.runs), 1)
        row = ses.row("prototype", case, tool, {"path": "../shared/data/drr-2024-09-05"}, m)
        if tool.startswith("dpsim") and ratios:
            row["extra"] = {
                "speedup": round(statistics.median(ratios), 2),
                "per_round": [round(x, 2) for x in ratios],
            }
        ses.rows.append(row)

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
    # round 0 warms both up; the tools take turns so a load weighs alike
    ms = H.measure_turns({t: H.Spec(cmd, "prototype-" + t.split()[0]) for t, cmd in tools}, reps=ses.reps)
    ratios = H.turn_ratios(*(ms[t].runs for t, _ in tools))
    for tool, _ in tools:
        row = ses.row("prototype", case, tool, {"path": "../shared/data/drr-2024-09-05"}, ms[tool])
        if tool.startswith("dpsim") and ratios:
            row["extra"] = {
                "speedup": round(statistics.median(ratios), 2),
                "per_round": [round(x, 2) for x in ratios],
            }
        ses.rows.append(row)

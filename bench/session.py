"""A benchmark session: the mode's settings, the shred config every command uses, the rows measured so far."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from bench import harness as H
from bench.rows import Row

GB = 1_000_000_000


SHRED_SECURITIES, SHRED_DAYS = 60, 5  # every shred input: 60 securities x 5 days = 300 partitions
MANY_DAYS = 200  # the many-partitions file: 60 securities x 200 days = 12,000 partitions
THREADS = 2


MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "reps": 1,
        "shred_gb": [0.1],
        "gzip_gb": [0.1],
        "scaling_gb": [0.05, 0.1, 0.2],
        "many_gb": 0.1,
        "drop": {"securities": 20, "days": 5, "scale_bytes": None},
        "kernel_sizes": [10_000, 100_000],
        "profile_gb": 0.1,
        # the <= 2 minute budget: fewer peers, and the generated-drop process runs only with --only process
        "shred_tools": ["dpsim", "duckdb_mem", "polars", "cat"],
        "gzip_tools": ["dpsim", "gzip_dc"],
        "process_drop": False,
        "export_partitions": 200,
        "report_partitions": 300,
        "agg_partitions": [600],  # the aggregate section (not in the quick default: it processes a drop)
        "query_partitions": [600],  # the query section (likewise)
        "year_days": 1,  # the year section's sample: 150 securities × this many dates ...
        "year_scale": 0.1,  # ... at this fraction of the year's bytes per partition
    },
    "full": {
        "reps": 3,
        "shred_gb": [1, 5],
        "gzip_gb": [1, 5],
        "scaling_gb": [1, 2, 5],
        "many_gb": 1,
        "drop": {"securities": 25, "days": 5, "scale_bytes": 250_000_000},
        "kernel_sizes": [10_000, 100_000, 1_000_000],
        "profile_gb": 1,
        "shred_tools": ["dpsim", "duckdb", "duckdb_mem", "polars", "cat"],
        "gzip_tools": ["dpsim", "gzip_dc", "duckdb", "duckdb_mem", "polars"],
        "process_drop": True,
        "export_partitions": 1000,
        "report_partitions": 3000,
        "agg_partitions": [600, 6_000, 54_000],  # lakes of hard-linked results: 150 securities × N/150 days
        "query_partitions": [600, 6_000, 54_000],  # the same, with sim_fills
        "year_days": 2,  # the year section's sample: 150 securities × 2 dates at the year's bytes per partition
        "year_scale": 1.0,
    },
}


class Session:
    """What every section reads (settings, repetitions, the config, dpsim's shred budget) and writes (rows)."""

    def __init__(self, mode: str, reps: int, sections: list[str], only: bool = False) -> None:
        self.mode = mode
        self.cfg = dict(MODES[mode])
        if mode == "full" and os.environ.get("BENCH_BIG") == "1":
            self.cfg["scaling_gb"] = [*self.cfg["scaling_gb"], 20]
        self.reps = reps
        self.sections = sections
        self.only = only
        self.rows: list[Row] = []
        self.memo: dict[tuple[str, str], Row] = {}  # (tool, input path) -> row, shared by sections
        H.WORK.mkdir(parents=True, exist_ok=True)
        self.config = H.WORK / "bench.yaml"
        self.config.write_text(
            "# written by bench/run.py: no default inputs (each command names its files), default shred budget\n"
            "lake: bench/work/lake\n"
            "inputs: {orders: [], trades: [], nbbo: [], reference: [], session: [], participants: []}\n"
        )
        self.budget_mb = self._budget()
        self.worker_baseline_mb: float | None = None  # set by the process section

    def _budget(self) -> int:
        try:
            return int(H.task("budget", str(self.config)))
        except (ValueError, IndexError, subprocess.CalledProcessError):
            return 1500

    # ---- shred-like measurements ------------------------------------------------------------------------

    def row(self, section: str, case: str, tool: str, inp: dict[str, Any], m: H.Measured) -> Row:
        row: Row = {
            "section": section,
            "case": case,
            "tool": tool,
            "input": inp,
            "command": m.command,
            "env": m.env,
            "warmup": m.warmup,
            "reps": len(m.runs),
            "runs": m.to_dict()["runs"],
            "wall_s": m.wall_s,
            "peak_rss_mb": m.peak_rss_mb,
            "extra": m.extra,
            "error": m.error,
        }
        if m.runs and inp.get("uncompressed_bytes"):
            row["mb_s"] = round(inp["uncompressed_bytes"] / 1e6 / m.wall_s, 1)
            if inp.get("rows"):
                row["rows_s"] = round(inp["rows"] / m.wall_s)
        return row

"""A small generated drop and its CLI config, for tests that run the real `dpsim` commands as processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from dpsim.synth import generate

REPO = Path(__file__).resolve().parents[1]


def small_drop(out: Path, securities: int = 3, days: int = 2, rows: int = 12000) -> Path:
    generate(out, securities=securities, days=days, start=date(2024, 10, 2), seed=5, scale=("rows", rows))
    return out


def write_config(path: Path, drop: Path, lake: Path, *, extra: str = "") -> Path:
    """A config for `drop` into `lake`: one scenario, two workers, a small bootstrap (fast aggregates)."""
    path.write_text(
        f"lake: '{lake}'\n"
        "inputs:\n"
        f"  orders: ['{drop}/orders.csv*']\n"
        f"  trades: ['{drop}/trades.csv*']\n"
        f"  nbbo: ['{drop}/nbbo.csv*']\n"
        "  reference: []\n  session: []\n  participants: []\n"
        "scenarios:\n  baseline: {}\n"
        "run:\n  workers: 2\n"
        "stats:\n  bootstrap_n: 100\n" + extra,
        encoding="utf-8",
    )
    return path


def dpsim_args(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "dpsim", *map(str, args)]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CI": "1", **extra}


def run_dpsim(*args: str | Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dpsim_args(*args), cwd=REPO, capture_output=True, text=True, env=env(**(extra_env or {}))
    )


def start_dpsim(*args: str | Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        dpsim_args(*args),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(**(extra_env or {})),
    )


def finish(procs: Sequence[subprocess.Popen[str]], timeout: float = 600) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each process once it ends."""
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        out.append((p.returncode, stdout, stderr))
    return out


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("dpsim: error:")]

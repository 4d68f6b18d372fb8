"""A small generated drop and its CLI config, for tests that run the real `dpsim` commands as processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from dpsim.lake import Lake, PartitionKey
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


def dpsim_args(*args: object) -> list[str]:
    return [sys.executable, "-m", "dpsim", *map(str, args)]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CI": "1", **extra}


def run_dpsim(*args: object, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        dpsim_args(*args), cwd=REPO, capture_output=True, text=True, env=env(**(extra_env or {}))
    )


def start_dpsim(*args: object, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
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


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int) -> Iterator[Path]:
    """A small filesystem of its own at `path` (a tmpfs: needs root), unmounted at the end; skips the test
    where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, mode: str) -> None:
    """Remount a `tmpfs` read-only ("ro") or read-write ("rw")."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def fill(path: Path, leave_kb: int) -> Path:
    """Fill the filesystem of `path` up to `leave_kb` free kilobytes with one file; returns it."""
    filler = path / "filler"
    free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize // 1024
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_kb) * 1024)
    return filler


def stray_temp_files(lake: Path) -> list[Path]:
    """Temp files anywhere in the lake, and anything left in its scratch folder."""
    temps = [p for p in lake.rglob("*") if ".tmp" in p.name]
    return temps + (list((lake / "_tmp").rglob("*")) if (lake / "_tmp").exists() else [])


def write_scenario_results(
    lake: Lake, table: str, key: PartitionKey, by_scenario: Mapping[str, pa.Table]
) -> None:
    """A partition's scenario table as a job writes it: every scenario's rows in one file, `scenario` first."""
    parts = [
        t.add_column(0, "scenario", pa.array([name] * t.num_rows, pa.string()))
        for name, t in by_scenario.items()
    ]
    lake.write_parquet(pa.concat_tables(parts), lake.result_path(table, key))
    lake.note_scenarios(by_scenario)

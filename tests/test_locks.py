"""One writer per lake scope: real `dpsim` commands in parallel processes, a held lock, a killed holder."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from dpsim.lake import Lake, source_id
from dpsim.lake.locks import LakeLocked
from tests.lakes import REPO, error_lines, finish, run_dpsim, small_drop, start_dpsim, write_config


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_drop(tmp_path_factory.mktemp("drop"))


@pytest.fixture()
def shredded(drop: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(config, lake) of the drop, shredded."""
    lake = tmp_path / "lake"
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    proc = run_dpsim("shred", "--config", conf)
    assert proc.returncode == 0, proc.stderr
    return conf, lake


def rows(lake: Path, table: str = "orders") -> int:
    return int(pl.scan_parquet(str(lake / table / "**" / "*.parquet")).select(pl.len()).collect().item())


def holder_line(stderr: str, what: str, lake: Path) -> str:
    (line,) = error_lines(stderr)
    assert line.startswith(
        f"dpsim: error: {lake}: another dpsim process is writing {what} (pid {os.getpid()} "
    )
    assert f" on {socket.gethostname()}, since " in line
    assert line.endswith("); wait for it to finish and rerun")
    return line


def test_a_second_writer_exits_1_with_one_line_naming_the_holder(
    shredded: tuple[Path, Path], drop: Path
) -> None:
    conf, lake = shredded
    sid = source_id((drop / "orders.csv").resolve())
    with Lake(lake).lock(f"source-{sid}"):
        proc = run_dpsim("shred", "--config", conf, "--force")
    assert proc.returncode == 1
    holder_line(proc.stderr, f"source {sid}", lake)
    with Lake(lake).lock("results"):
        for command in (["process"], ["aggregate"]):
            proc = run_dpsim(*command, "--config", conf)
            assert proc.returncode == 1, proc.stderr
            holder_line(proc.stderr, "the results and aggregates", lake)
    assert not (lake / "_locks").exists()  # released locks leave no trace


_HOLD = """
import sys, time
from dpsim.lake import Lake
with Lake(sys.argv[1]).lock(sys.argv[2] if len(sys.argv) > 2 else "results"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lake = Lake(tmp_path / "lake")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lake.root)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with (
        pytest.raises(LakeLocked, match=rf"pid {holder.pid} on {socket.gethostname()}"),
        lake.lock("results", wait_s=0.5),
    ):
        pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    left = json.loads((tmp_path / "lake" / "_locks" / "results.lock").read_text())
    assert left["pid"] == holder.pid  # the file stays, naming its dead holder ...
    with (
        caplog.at_level(logging.INFO, logger="dpsim.lake.locks"),
        lake.lock("results"),
    ):  # ... and is taken over
        mine = json.loads((tmp_path / "lake" / "_locks" / "results.lock").read_text())
        assert mine["pid"] == os.getpid()
    assert f"taken over from pid {holder.pid}" in caplog.text
    assert not (tmp_path / "lake" / "_locks").exists()


def test_a_waiting_writer_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD.replace("600", "1.5"), str(lake.root)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    with lake.lock("results", wait_s=60):
        assert time.monotonic() - started > 0.5
    holder.wait()


def test_two_forced_shreds_of_one_source_at_once_keep_every_row(shredded: tuple[Path, Path]) -> None:
    """Before the lock, one run's cleanup deleted the other's parts: the lake kept zero rows of the source."""
    conf, lake = shredded
    expected = rows(lake)
    for _ in range(2):
        results = finish([start_dpsim("shred", "--config", conf, "--force") for _ in range(2)])
        codes = sorted(code for code, _, _ in results)
        assert codes in ([0, 0], [0, 1]), results
        for code, _, stderr in results:
            if (
                code == 1
            ):  # refused at the first source the other holds: orders, or later ones on a busy machine
                assert re.search(r"another dpsim process is writing source (orders|trades|nbbo)-", stderr), (
                    stderr
                )
        assert rows(lake) == expected


def test_two_process_runs_at_once_one_writes_the_other_is_told(shredded: tuple[Path, Path]) -> None:
    """Before the lock, jobs failed with FileNotFoundError or the aggregate could not open a file."""
    conf, lake = shredded
    results = finish([start_dpsim("process", "--config", conf, "--force") for _ in range(2)])
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 1]), results
    for code, _, stderr in results:
        if code == 1:
            assert "another dpsim process is writing the results and aggregates" in stderr, stderr
    partitions = Lake(lake).partitions("orders")
    assert Lake(lake).partitions("sweeps") == partitions
    assert (lake / "aggregates" / "headline.parquet").exists()
    assert not list(lake.rglob("*.tmp"))


def test_reference_files_have_one_writer(tmp_path: Path) -> None:
    from dpsim.shred.reference import shred_reference

    ref = tmp_path / "session.csv"
    ref.write_text("orderbookid,open\n110621,10:00\n", encoding="utf-8")
    lake = Lake(tmp_path / "lake")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(lake.root), "reference-session"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LakeLocked, match=rf"is writing the session reference file \(pid {holder.pid} "):
            shred_reference("session", [str(ref)], lake, force=False)
    finally:
        holder.kill()
        holder.wait()
    (r,) = shred_reference("session", [str(ref)], lake, force=False)
    assert r.status == "shredded"

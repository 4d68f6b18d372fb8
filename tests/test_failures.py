"""Clean failures: a full disk, a read-only lake, a file where a folder should be, what killed writers left.

Each command fails with one line naming the path and what to do, with the right exit code (3 and the rerun
command when partition jobs failed), and the rerun leaves no temporary file behind. The disk is a small
tmpfs (mounting one needs root: elsewhere those tests are skipped).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpsim.config import load_config
from dpsim.lake import Lake
from dpsim.shred import shred_drop
from tests.lakes import (
    error_lines,
    fill,
    remount,
    run_dpsim,
    small_drop,
    stray_temp_files,
    tmpfs,
    write_config,
)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_drop(tmp_path_factory.mktemp("drop"), securities=2, days=1)


@pytest.fixture()
def small_disk(tmp_path: Path, drop: Path) -> Iterator[tuple[Path, Path]]:
    """(config, lake): the drop shredded into a lake on a 3 MB filesystem of its own."""
    with tmpfs(tmp_path / "lake", 3072) as lake:
        conf = write_config(tmp_path / "c.yaml", drop, lake)
        shred_drop(load_config(conf), Lake(lake))
        yield conf, lake


def no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def test_disk_full_during_process_fails_the_jobs_with_exit_3_and_the_rerun_completes(
    small_disk: tuple[Path, Path],
) -> None:
    """Before: chained tracebacks, exit 1, no rerun hint, and .tmp files that no rerun removed."""
    conf, lake = small_disk
    filler = fill(lake, leave_kb=60)
    proc = run_dpsim("process", "--config", conf)
    no_traceback(proc.stderr)
    assert proc.returncode == 3, proc.stderr
    last = error_lines(proc.stderr)[-1]
    assert last.endswith(f"rerun only them with: dpsim process --only-failed --config {conf}"), last
    assert "no space left on device" in proc.stderr
    filler.unlink()
    again = run_dpsim("process", "--only-failed", "--config", conf)
    assert again.returncode == 0, again.stderr
    assert Lake(lake).partitions("sweeps") == Lake(lake).partitions("orders")
    assert not stray_temp_files(lake)


def test_disk_full_during_aggregate_is_one_line_and_leaves_nothing(small_disk: tuple[Path, Path]) -> None:
    conf, lake = small_disk
    assert run_dpsim("process", "--config", conf, "--no-aggregate").returncode == 0
    filler = fill(lake, leave_kb=20)
    proc = run_dpsim("aggregate", "--config", conf)
    no_traceback(proc.stderr)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert "no space left on device" in line and "free space on that disk, then rerun" in line
    assert not stray_temp_files(lake)
    filler.unlink()
    assert run_dpsim("aggregate", "--config", conf).returncode == 0
    assert (lake / "aggregates" / "headline.parquet").exists()
    assert not stray_temp_files(lake)


def test_a_read_only_lake_fails_every_writer_in_one_line_and_still_reads(
    small_disk: tuple[Path, Path],
) -> None:
    conf, lake = small_disk
    remount(lake, "ro")
    try:
        for command in (["shred", "--force"], ["process"], ["aggregate"], ["catalog"]):
            proc = run_dpsim(*command, "--config", conf)
            no_traceback(proc.stderr)
            assert proc.returncode == 1, (command, proc.stderr)
            assert error_lines(proc.stderr) == [
                f"dpsim: error: {lake}: the lake is read-only ({lake}/_locks: Read-only file system); "
                "use a writable --lake, or fix its permissions"
            ]
        proc = run_dpsim("sql", "--config", conf, "SELECT count(*) AS n FROM orders", "--format", "csv")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == "n"
    finally:
        remount(lake, "rw")


def test_a_file_given_as_the_lake_or_where_a_folder_should_be(tmp_path: Path, drop: Path) -> None:
    afile = tmp_path / "not-a-lake"
    afile.write_text("x")
    conf = write_config(tmp_path / "c.yaml", drop, afile)
    for command in (["shred"], ["process"], ["sql", "SELECT 1"]):  # a writer that locks, one that does not
        proc = run_dpsim(*command, "--config", conf)
        no_traceback(proc.stderr)
        assert proc.returncode == 1
        assert error_lines(proc.stderr) == [
            f"dpsim: error: {afile}: not a lake folder (it is a file); pass --lake DIR of a folder"
        ]
    lake = tmp_path / "lake"
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    assert run_dpsim("shred", "--config", conf).returncode == 0
    (lake / "results").write_text("in the way")
    proc = run_dpsim("process", "--config", conf)
    no_traceback(proc.stderr)
    assert proc.returncode == 3
    assert f"a file is where a folder should be ({lake / 'results'}): move it away, then rerun" in proc.stderr
    (lake / "results").unlink()
    assert run_dpsim("process", "--only-failed", "--config", conf).returncode == 0


def test_what_killed_writers_left_is_removed_by_the_next_writer(tmp_path: Path, drop: Path) -> None:
    """Before: `.dpsim.duckdb.<pid>.tmp` and `_runs/.<run>.json.<pid>.tmp` of killed runs stayed for good.
    Now every temp file lives in its process's scratch folder, which the next writer removes once that
    process is gone; a catalog temp file of a killed refresh goes at the next refresh."""
    lake = tmp_path / "lake"
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    assert run_dpsim("shred", "--config", conf).returncode == 0
    dead = 2**22 + 12345  # above the default pid_max: no such process
    assert not os.path.exists(f"/proc/{dead}")
    left = lake / "_tmp" / f"{socket.gethostname()}-{dead}"
    for name in ("write/7-part-0.parquet", "shred/orders-123/110621_2024-10-02_0.parquet", "duckdb/x.tmp"):
        (left / name).parent.mkdir(parents=True, exist_ok=True)
        (left / name).write_bytes(b"half a file")
    (lake / f".dpsim.duckdb.{dead}.tmp").write_bytes(b"half a catalog")
    other_host = lake / "_tmp" / f"elsewhere.example-{dead}"  # another machine's: not ours to judge
    other_host.mkdir()
    assert run_dpsim("process", "--config", conf).returncode == 0
    assert not left.exists()
    assert not (lake / f".dpsim.duckdb.{dead}.tmp").exists()
    assert other_host.exists()

"""A source is published whole or not at all, and results follow their inputs (real commands, real SIGKILL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from dpsim.lake import Lake, manifests, source_id
from tests.lakes import REPO, error_lines, run_dpsim, small_drop, write_config


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_drop(tmp_path_factory.mktemp("drop"), securities=2, days=2)


def _orders(drop: Path) -> pl.DataFrame:
    return pl.read_csv(drop / "orders.csv", infer_schema=False)


def _write_orders(df: pl.DataFrame, path: Path) -> Path:
    df.write_csv(path)
    return path


def _sql(conf: Path, query: str) -> list[str]:
    proc = run_dpsim("sql", "--config", conf, query, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()[1:]


# Shreds one source with a publish that is SIGKILLed after its first file moved into place.
_KILLED_MID_PUBLISH = """
import os, signal, sys
from dpsim.config import load_config
from dpsim.lake import Lake
from dpsim.lake.store import LocalStore
from dpsim.shred import shred

real = LocalStore.put_many
def first_file_then_killed(self, moves):
    real(self, dict(list(moves.items())[:1]))
    os.kill(os.getpid(), signal.SIGKILL)
LocalStore.put_many = first_file_then_killed
cfg = load_config(sys.argv[1])
shred(cfg, Lake(cfg.lake), inputs={"orders": [sys.argv[2]]}, force=True)
"""


def test_a_publish_killed_half_way_is_invisible_refused_and_completed_by_the_rerun(
    drop: Path, tmp_path: Path
) -> None:
    """Before: part of the source stayed visible with its manifest at "running", and `dpsim process`
    ran on it with exit 0 and no warning."""
    lake = tmp_path / "lake"
    source = _write_orders(_orders(drop), tmp_path / "orders.csv")
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    conf.write_text(conf.read_text().replace(f"{drop}/orders.csv*", str(source)))
    assert run_dpsim("shred", "--config", conf).returncode == 0
    (before,) = _sql(conf, "SELECT count(*) FROM orders")
    # a new version of the source (each row twice), whose shred is killed after one file moved into place
    doubled = _write_orders(pl.concat([_orders(drop), _orders(drop)]), source)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_PUBLISH, str(conf), str(doubled)], cwd=REPO, capture_output=True
    )
    assert killed.returncode == -9, killed.stderr
    sid = source_id(doubled)
    body = manifests.read_source(Lake(lake), sid)
    assert body is not None and body["status"] == "publishing"

    # readers leave the half-published source out (here the lake's only orders source)
    (during,) = _sql(conf, "SELECT count(*) FROM orders")
    assert int(during) == 0
    proc = run_dpsim("process", "--config", conf)
    assert proc.returncode == 1
    (line,) = error_lines(proc.stderr)
    assert line.startswith(
        f"dpsim: error: {doubled}: its shred was interrupted while publishing, so partition(s) "
    )
    assert line.endswith(
        f"hold a mix of two shreds; complete it first with: dpsim shred --orders {doubled} "
        "(same --config and --lake), then rerun"
    )
    # the rerun completes it
    assert run_dpsim("shred", "--config", conf).returncode == 0
    (after,) = _sql(conf, "SELECT count(*) FROM orders")
    assert int(after) == 2 * int(before)
    assert run_dpsim("process", "--config", conf).returncode == 0


def test_results_and_aggregates_follow_a_reshred_that_drops_a_partition(drop: Path, tmp_path: Path) -> None:
    """Before: the dropped partition's old results stayed, and the aggregates counted them next to the new."""
    lake = tmp_path / "lake"
    source = _write_orders(_orders(drop), tmp_path / "orders.csv")
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    conf.write_text(conf.read_text().replace(f"{drop}/orders.csv*", str(source)))
    assert run_dpsim("shred", "--config", conf).returncode == 0
    assert run_dpsim("process", "--config", conf).returncode == 0
    codes = sorted({k.security_code for k in Lake(lake).partitions("orders")})
    assert len(codes) == 2
    kept, dropped = codes
    # the corrected source has no rows of one security any more
    _write_orders(_orders(drop).filter(pl.col("security_code") == str(kept)), source)
    proc = run_dpsim("shred", "--config", conf)
    assert proc.returncode == 0, proc.stderr
    assert "and the aggregates that counted them" in proc.stderr
    assert {k.security_code for k in Lake(lake).partitions("sweeps")} == {kept}
    assert not (lake / "aggregates" / "headline.parquet").exists()  # stale figures are not left to read
    assert run_dpsim("process", "--config", conf).returncode == 0
    (n_sweeps,) = _sql(conf, "SELECT count(*) FROM sweeps")
    (by_security,) = _sql(conf, "SELECT string_agg(security_code::VARCHAR, ',') FROM by_security")
    assert by_security == str(kept)
    (headline,) = _sql(conf, "SELECT n_sweeps FROM headline")
    assert int(headline) == int(n_sweeps)


def test_results_a_shred_could_not_remove_are_pruned_by_the_next_aggregate(
    drop: Path, tmp_path: Path
) -> None:
    """A re-shred that drops a partition while a process run holds the results leaves their removal to
    the next process or aggregate, before it aggregates."""
    lake = tmp_path / "lake"
    source = _write_orders(_orders(drop), tmp_path / "orders.csv")
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    conf.write_text(conf.read_text().replace(f"{drop}/orders.csv*", str(source)))
    assert run_dpsim("shred", "--config", conf).returncode == 0
    assert run_dpsim("process", "--config", conf, "--no-aggregate").returncode == 0
    kept, dropped = sorted({k.security_code for k in Lake(lake).partitions("orders")})
    _write_orders(_orders(drop).filter(pl.col("security_code") == str(kept)), source)
    with Lake(lake).lock("results"):  # as a running process would
        proc = run_dpsim("shred", "--config", conf)
    assert proc.returncode == 0, proc.stderr
    assert "stay until the running process removes them" in proc.stderr
    assert dropped in {k.security_code for k in Lake(lake).partitions("sweeps")}
    assert run_dpsim("aggregate", "--config", conf).returncode == 0
    assert {k.security_code for k in Lake(lake).partitions("sweeps")} == {kept}
    assert {k.security_code for k in Lake(lake).partitions("sim_orders")} == {kept}
    # results whose orders were deleted by hand (not by a shred) are kept
    key = Lake(lake).partitions("orders")[0]
    for f in Lake(lake).partition_files("orders", key):
        f.unlink()
    assert run_dpsim("aggregate", "--config", conf).returncode == 0
    assert key in Lake(lake).partitions("sweeps")

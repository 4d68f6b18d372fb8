"""Readers during a rewrite: a partition's results never disappear while `process --force` rewrites them."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dpsim.config import load_config
from dpsim.lake import Lake
from dpsim.shred import shred_drop
from tests.lakes import finish, run_dpsim, small_drop, start_dpsim, write_config


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Lake]:
    tmp = tmp_path_factory.mktemp("readers")
    drop = small_drop(tmp / "drop", securities=3, days=2)
    conf = write_config(tmp / "c.yaml", drop, tmp / "lake")
    lake = Lake(load_config(conf).lake)
    shred_drop(load_config(conf), lake)
    assert run_dpsim("process", "--config", conf, "--no-aggregate").returncode == 0
    return conf, lake


def test_results_never_disappear_during_a_forced_rewrite(processed: tuple[Path, Lake]) -> None:
    """Before: `process --force` cleared a partition's results, then wrote them: readers saw them missing."""
    conf, lake = processed
    keys = lake.partitions("orders")
    expected = {table: [lake.result_path(table, k) for k in keys] for table in ("sweeps", "quality")}
    expected["sim_orders"] = [lake.result_path("sim_orders", k) for k in keys]
    rewrite = start_dpsim("process", "--config", conf, "--force", "--no-aggregate")
    looks = 0
    while rewrite.poll() is None:
        for table, paths in expected.items():
            for path in paths:
                assert path.exists(), f"{table}: {path} missing during the rewrite"
                pq.read_metadata(path)  # a whole file, never half of one
        looks += 1
        time.sleep(0.01)
    ((code, _, stderr),) = finish([rewrite])
    assert code == 0, stderr
    assert looks > 5

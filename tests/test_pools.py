"""No orphans: the pool workers of a `dpsim process` die with it when it is killed (SIGKILL or SIGTERM); each
worker's Polars thread pool is its share of the cores."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from dpsim.config import load_config
from dpsim.lake import Lake
from dpsim.pools import process_pool
from dpsim.shred import shred
from tests.lakes import small_drop, start_dpsim, write_config


@pytest.fixture(scope="module")
def lake_conf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Lake]:
    tmp = tmp_path_factory.mktemp("orphans")
    drop = small_drop(tmp / "drop", securities=2, days=1)
    conf = write_config(tmp / "c.yaml", drop, tmp / "lake")
    cfg = load_config(conf)
    lake = Lake(cfg.lake)
    assert all(r.status == "shredded" for r in shred(cfg, lake))
    return conf, lake


def _workers(parent: psutil.Process, n: int, timeout: float = 120) -> list[psutil.Process]:
    """The parent's `n` spawned pool workers, once they all run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
        if len(workers) >= n:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"{n} workers did not start")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(lake_conf: tuple[Path, Lake], sig: signal.Signals) -> None:
    conf, lake = lake_conf
    stuck = ",".join(f"sleep:{key}" for key in lake.partitions("orders"))  # every job hangs
    proc = start_dpsim(
        "process", "--config", conf, "--force", "--no-aggregate", extra_env={"DPSIM_FAULT_INJECT": stuck}
    )
    parent = psutil.Process(proc.pid)
    workers = _workers(parent, 2)
    try:
        time.sleep(1.0)  # the jobs are running (sleeping)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(workers, timeout=20)
    finally:
        for p in workers:  # never leave them behind, even when the test fails
            if p.is_running():
                p.kill()
        proc.communicate()
    assert not alive, f"{len(alive)} workers outlived their parent"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_dask_local_cluster_dies_with_its_parent(lake_conf: tuple[Path, Lake], sig: signal.Signals) -> None:
    pytest.importorskip("distributed")
    conf, lake = lake_conf
    stuck = ",".join(f"sleep:{key}" for key in lake.partitions("orders"))
    proc = start_dpsim(
        "process",
        "--config",
        conf,
        "--force",
        "--no-aggregate",
        "--executor",
        "dask-local:2",
        extra_env={"DPSIM_FAULT_INJECT": stuck},
    )
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 120
    while len(parent.children(recursive=True)) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5.0)  # the tasks are running (sleeping)
    descendants = parent.children(recursive=True)
    try:
        proc.send_signal(sig)
        proc.wait(timeout=60)
        _, alive = psutil.wait_procs(descendants, timeout=60)
    finally:
        for p in descendants:
            if p.is_running():
                p.kill()
        proc.communicate()
    assert not alive, f"{len(alive)} processes of the cluster outlived their parent"


def _polars_threads() -> int:
    """In a worker: the size of the thread pool Polars made there."""
    import polars as pl

    return pl.thread_pool_size()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_workers_polars_pool_is_its_share_of_the_cores(
    workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    with process_pool(workers) as pool:
        sizes = {f.result(timeout=120) for f in [pool.submit(_polars_threads) for _ in range(workers)]}
    assert sizes == {max(1, cores // workers)}  # 2 workers on 2 cores: one thread each, not two


def test_a_polars_pool_size_set_by_the_user_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARS_MAX_THREADS", "3")
    with process_pool(2) as pool:
        assert pool.submit(_polars_threads).result(timeout=120) == 3

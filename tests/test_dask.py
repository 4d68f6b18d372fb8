"""The same runs on a Dask LocalCluster: identical result files, and a killed worker is survived."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import date
from pathlib import Path

import pytest

from dpsim import jobs
from dpsim.config import Config, Run, Scenario
from dpsim.lake import Lake
from dpsim.pools import open_executor
from dpsim.shred import shred
from dpsim.synth import generate
from tests.configs import drop_config

pytest.importorskip("distributed")

DRR = Path(__file__).resolve().parents[2] / "shared" / "data" / "drr-2024-09-05"


def _cfg(lake: Path, orders: str, trades: str, nbbo: str) -> Config:
    scenarios = {"baseline": Scenario(), "impact_5bps": Scenario(impact_bps=5.0)}
    return drop_config(lake, orders, trades, nbbo, scenarios, Run(workers=2, max_retries=2))


def _results(lake: Lake) -> dict[str, bytes]:
    base = lake.root / "results"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*.parquet"))}


def _run(cfg: Config, faults: str = "") -> jobs.RunResult:
    lake = Lake(cfg.lake)
    with open_executor(cfg.run) as executor:
        return jobs.run_jobs(
            cfg, lake, lake.partitions("orders"), executor=executor, force=True, faults=faults
        )


@pytest.fixture(scope="module")
def synth_drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drop")
    generate(out, securities=4, days=2, start=date(2024, 10, 3), seed=5, scale=("rows", 12000))
    return out


@pytest.mark.parametrize("source", ["drr", "synth"])
def test_dask_local_cluster_gives_identical_files(source: str, synth_drop: Path, tmp_path: Path) -> None:
    if source == "drr":
        if not DRR.exists():
            pytest.skip("shared DRR data not present")
        globs = [str(DRR / f"{k}.csv.gz") for k in ("orders", "trades", "nbbo")]
    else:
        globs = [str(synth_drop / f"{k}.csv") for k in ("orders", "trades", "nbbo")]
    local = _cfg(tmp_path / "lake", *globs)
    assert all(r.status == "shredded" for r in shred(local, Lake(local.lake)))
    run = _run(local)
    assert run.records and not run.failed
    expected = _results(Lake(local.lake))
    shutil.rmtree(Path(local.lake) / "results")
    dask_run = _run(dataclasses.replace(local, run=dataclasses.replace(local.run, executor="dask-local:2")))
    assert sorted(r.partition for r in dask_run.records) == sorted(r.partition for r in run.records)
    assert not dask_run.failed
    assert _results(Lake(local.lake)) == expected  # same files, same bytes


def test_dask_survives_a_killed_worker(
    synth_drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path / "lake", *[str(synth_drop / f"{k}.csv") for k in ("orders", "trades", "nbbo")])
    lake = Lake(cfg.lake)
    shred(cfg, lake)
    victim = lake.partitions("orders")[1]
    dask = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, executor="dask-local:2"))
    run = _run(dask, faults=f"killonce:{victim}")
    assert (
        lake.local_dir("faults") / f"killed-{victim.security_code}-{victim.date}"
    ).exists()  # the worker really died
    assert not run.failed and len(run.records) == len(lake.partitions("orders"))
    assert lake.result_path("sweeps", victim).exists()


def test_local_pool_survives_a_transient_kill(
    synth_drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tmp_path / "lake", *[str(synth_drop / f"{k}.csv") for k in ("orders", "trades", "nbbo")])
    lake = Lake(cfg.lake)
    shred(cfg, lake)
    victim = lake.partitions("orders")[0]
    run = _run(cfg, faults=f"killonce:{victim}")
    assert not run.failed  # the suspect was rerun alone and succeeded
    assert lake.result_path("sweeps", victim).exists()


def test_dask_fails_a_job_that_overruns_its_timeout_and_goes_on(synth_drop: Path, tmp_path: Path) -> None:
    """Before: the Dask executor ignored the timeout, and one stuck job hung the run forever."""
    cfg = _cfg(tmp_path / "lake", *[str(synth_drop / f"{k}.csv") for k in ("orders", "trades", "nbbo")])
    lake = Lake(cfg.lake)
    shred(cfg, lake)
    stuck = lake.partitions("orders")[1]
    run_cfg = dataclasses.replace(cfg.run, executor="dask-local:2", job_timeout_s=8.0)
    run = _run(dataclasses.replace(cfg, run=run_cfg), faults=f"sleep:{stuck}")
    assert [r.partition for r in run.failed] == [str(stuck)]
    assert (run.failed[0].error or "").startswith("timed out after 8 s")
    assert sum(r.status == "ok" for r in run.records) == len(lake.partitions("orders")) - 1

"""The job runner on a generated drop of >= 20 partitions: parallel, isolated failures, resumable, incremental."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from dpsim import cli, jobs, pools
from dpsim.config import Config, Run, Scenario
from dpsim.lake import Lake, PartitionKey
from dpsim.shred import shred
from dpsim.synth import generate
from tests.configs import drop_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drop")
    generate(out, securities=8, days=3, start=date(2024, 10, 2), seed=11, scale=("rows", 30000))
    return out


def _config(drop: Path, lake: Path) -> Config:
    orders, trades, nbbo = (str(drop / f"{k}.csv*") for k in ("orders", "trades", "nbbo"))
    scenarios = {"baseline": Scenario(), "half_cap": Scenario(max_fill_fraction=0.5)}
    return drop_config(lake, orders, trades, nbbo, scenarios, Run(workers=2))


@pytest.fixture()
def lake(drop: Path, tmp_path: Path) -> tuple[Config, Lake]:
    cfg = _config(drop, tmp_path / "lake")
    lake = Lake(cfg.lake)
    results = shred(cfg, lake)
    assert all(r.status == "shredded" for r in results)
    return cfg, lake


def test_runs_every_partition_in_parallel_then_skips_unchanged(lake: tuple[Config, Lake]) -> None:
    cfg, lk = lake
    parts = lk.partitions("orders")
    assert len(parts) >= 20
    first = jobs.run_jobs(cfg, lk, parts)
    assert [r.status for r in first.records] == ["ok"] * len(parts), [r.error for r in first.failed]
    assert len({r.worker_pid for r in first.records}) == 2  # both workers took jobs
    for key in parts:
        assert lk.result_path("sweeps", key).exists()
        for table in ("sim_orders", "sim_fills"):  # every scenario in one file per partition
            got = set(pq.read_table(lk.result_path(table, key), columns=["scenario"])["scenario"].to_pylist())
            assert got <= {"baseline", "half_cap"} and (
                table == "sim_fills" or got == {"baseline", "half_cap"}
            )
    body = json.loads(first.manifest_path.read_text())
    assert body["config_hash"] and len(body["jobs"]) == len(parts)
    assert {"partition", "status", "seconds", "rows_in", "rows_out", "error", "fingerprint"} <= set(
        body["jobs"][0]
    )
    assert (lk.runs_dir / f"{first.run_id}.log").exists()

    again = jobs.run_jobs(cfg, lk, parts)
    assert {r.status for r in again.records} == {"skipped"}
    forced = jobs.run_jobs(cfg, lk, parts[:3], force=True)
    assert [r.status for r in forced.records] == ["ok"] * 3

    # a config change that affects results reruns everything; a new drop touching one partition reruns it
    changed = dataclasses.replace(cfg, scenarios={**cfg.scenarios, "baseline": Scenario(impact_bps=1.0)})
    assert {r.status for r in jobs.run_jobs(changed, lk, parts[:2]).records} == {"ok"}
    f = lk.partition_files("orders", parts[5])[0]
    os.utime(str(f), ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    statuses = {r.partition: r.status for r in jobs.run_jobs(cfg, lk, parts).records}
    # parts[0:2] hold results of the changed config, so the original config reruns them as well
    assert sorted(p for p, s in statuses.items() if s == "ok") == sorted(
        map(str, [parts[0], parts[1], parts[5]])
    )


def test_failures_are_isolated_and_only_failed_completes(
    lake: tuple[Config, Lake], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, lk = lake
    parts = lk.partitions("orders")
    killed, raised, corrupt = parts[1], parts[4], parts[7]
    # a corrupt partition file: the job reading it fails, no other job does
    bad = lk.partition_files("trades", corrupt)[0]
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"not a parquet file")
    run = jobs.run_jobs(cfg, lk, parts, faults=f"kill:{killed},raise:{raised}")
    failed = {r.partition: r.error for r in run.failed}
    assert set(failed) == {str(killed), str(raised), str(corrupt)}
    assert "worker process died" in (failed[str(killed)] or "")
    assert failed[str(raised)] == f"RuntimeError: injected fault for {raised}"
    assert sum(r.status == "ok" for r in run.records) == len(parts) - 3
    assert jobs.last_failed(lk) == sorted([killed, raised, corrupt])

    # repair and rerun only the failed ones
    bad.write_bytes(good_bytes)
    rerun = jobs.run_jobs(cfg, lk, jobs.last_failed(lk), force=True)
    assert sorted(r.partition for r in rerun.records if r.status == "ok") == sorted(
        map(str, [killed, raised, corrupt])
    )
    assert jobs.last_failed(lk) == []
    assert all(lk.result_path("sweeps", k).exists() for k in parts)


def test_timeout_fails_the_job_only(lake: tuple[Config, Lake], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, lk = lake
    parts = lk.partitions("orders")[:4]
    slow = parts[2]
    cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, job_timeout_s=5.0))
    run = jobs.run_jobs(cfg, lk, parts, faults=f"sleep:{slow}")
    assert [r.partition for r in run.failed] == [str(slow)]
    assert (run.failed[0].error or "").startswith("timed out after 5 s")
    assert 5.0 < run.failed[0].seconds < 5.3  # enforced at its deadline, not at the next 1 s poll
    assert sum(r.status == "ok" for r in run.records) == 3


def test_plan_reports_requested_partitions_without_data(lake: tuple[Config, Lake]) -> None:
    _, lk = lake
    parts = lk.partitions("orders")
    sec = parts[0].security_code
    chosen, missing = jobs.plan_partitions(lk, [sec, 999999], (date(2024, 10, 2), date(2024, 10, 3)))
    assert chosen and all(k.security_code == sec and k.date <= date(2024, 10, 3) for k in chosen)
    assert missing == ["security 999999: no orders in the lake"]


def test_job_reads_only_its_own_partition(lake: tuple[Config, Lake], monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, lk = lake
    key = lk.partitions("orders")[3]
    opened: list[str] = []
    real_scan = pl.scan_parquet

    def spy(source: object, *a: object, **k: object) -> pl.LazyFrame:
        opened.extend(str(s) for s in (source if isinstance(source, list) else [source]))
        return real_scan(source, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "scan_parquet", spy)
    rec = jobs.run_job(jobs.JobTask(str(lk.root), key, cfg, ("baseline",), "fp"))
    assert rec.status == "ok", rec.error
    assert opened and all(key.hive in p for p in opened)


def test_cli_exit_3_names_failed_partitions_and_rerun_command(
    lake: tuple[Config, Lake], tmp_path: Path
) -> None:
    cfg, lk = lake
    conf = tmp_path / "c.yaml"
    conf.write_text(f"lake: {lk.root}\nscenarios:\n  baseline: {{}}\nrun:\n  workers: 2\n", encoding="utf-8")
    key: PartitionKey = lk.partitions("orders")[0]
    env = {**os.environ, cli.FAULT_ENV: f"raise:{key}", "CI": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dpsim", "process", "--config", str(conf), "--no-aggregate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"1 of {len(lk.partitions('orders'))} jobs failed ({key})" in last
    assert last.endswith(f"rerun only them with: dpsim process --only-failed --config {conf}")
    env.pop(cli.FAULT_ENV)
    ok = subprocess.run(
        [sys.executable, "-m", "dpsim", "process", "--only-failed", "--config", str(conf), "--no-aggregate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "jobs ok / failed / skipped │ 1 / 0 / 0" in ok.stdout or "1 / 0 / 0" in ok.stdout


class _BreaksOnSecondSubmit(cf.Executor):
    """A process pool whose worker died between two submits: the first job finished, the second submit fails."""

    def __init__(self) -> None:
        self.submits = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submits += 1
        if self.submits == 2:
            raise cf.process.BrokenProcessPool("a child process terminated abruptly")
        future: cf.Future[jobs.JobRecord] = cf.Future()
        future.set_result(jobs.JobRecord(partition=str(args[0].key), status="ok"))
        return future


def test_a_pool_broken_before_a_submit_puts_the_job_back() -> None:
    first, second = (
        jobs.JobTask("lake", PartitionKey(c, date(2024, 9, 5)), Config(), (), "") for c in (1, 2)
    )
    pending, done = [second, first], list[jobs.JobRecord]()
    gone: list[pools.Lost[jobs.JobTask]] = []
    supervisor = pools.Supervisor(
        jobs.run_job, lambda _task, rec: done.append(rec), gone.append, workers=1, timeout_s=900.0
    )
    lost = supervisor.drain(_BreaksOnSecondSubmit(), pending, in_flight_max=1, own_pool=True)
    assert [r.partition for r in done] == ["1/2024-09-05"]
    assert lost == []  # nothing was running on the broken pool
    assert pending == [second]  # never started: runs on the next pool


def test_an_input_gone_before_its_job_reads_it_fails_the_job_and_the_rerun_redoes_it(
    lake: tuple[Config, Lake],
) -> None:
    """Before: the job was recorded ok with 0 sweeps, its good results were replaced by empty ones, and
    when the identical file came back the partition was skipped for good."""
    cfg, lk = lake
    parts = lk.partitions("orders")[:3]
    assert not jobs.run_jobs(cfg, lk, parts).failed
    key = parts[1]
    good = pl.read_parquet(str(lk.result_path("sweeps", key)))
    assert good.height > 0
    (orders,) = lk.partition_files("orders", key)
    stat = orders.stat()
    run = jobs.run_jobs(cfg, lk, parts, force=True, faults=f"vanish:{key}")
    assert [(r.partition, r.error) for r in run.failed] == [
        (
            str(key),
            f"{orders}: an input of partition {key} is gone since the run was planned (removed or "
            "rewritten by a shred meanwhile?); rerun the command when the shred is done",
        )
    ]
    assert pl.read_parquet(str(lk.result_path("sweeps", key))).equals(good)  # the good results stay
    # the identical file comes back (same name, size and mtime): the partition is not skipped
    os.replace(lk.local_dir("faults") / f"vanished-{orders.name}", str(orders))
    assert orders.stat().st_mtime_ns == stat.st_mtime_ns
    again = {r.partition: r.status for r in jobs.run_jobs(cfg, lk, parts).records}
    assert again == {str(parts[0]): "skipped", str(key): "ok", str(parts[2]): "skipped"}


def test_a_partition_whose_results_are_gone_is_not_skipped(lake: tuple[Config, Lake]) -> None:
    cfg, lk = lake
    parts = lk.partitions("orders")[:2]
    assert not jobs.run_jobs(cfg, lk, parts).failed
    lk.result_path("sim_orders", parts[0]).unlink()
    again = {r.partition: r.status for r in jobs.run_jobs(cfg, lk, parts).records}
    assert again == {str(parts[0]): "ok", str(parts[1]): "skipped"}

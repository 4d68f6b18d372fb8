"""A lake in an object store (s3://), served by an in-process S3 server (moto): the same files as a local lake.

Every read and write goes through the lake module and fsspec; nothing of the lake is staged in the
bucket (no `_tmp/`), and the DuckDB catalog of a remote lake is a local cache whose views read the
bucket's URLs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

import dpsim.shred as shred_module
import dpsim.shred.ranges as shred_ranges
from dpsim import jobs, synth
from dpsim.aggregate import run_aggregates
from dpsim.config import Config, Run, Scenario, Shred
from dpsim.lake import Lake, source_id
from dpsim.pools import open_executor
from dpsim.query import run_sql
from dpsim.shred import shred
from tests.configs import drop_config
from tests.test_shred_parallel import garbage_orders, part_bytes

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

REPO = Path(__file__).resolve().parents[1]
DRR = REPO.parent / "shared" / "data" / "drr-2024-09-05"
BUCKET = "dpsim-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An S3 endpoint with one empty bucket; credentials and endpoint in the environment, as on a cluster."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request in failure reports
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ALLOW_HTTP": "true",  # Polars' object_store refuses plain http otherwise
            "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache")),  # the remote lake's catalog cache
        }.items():
            mp.setenv(name, value)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()


def _cfg(lake: str | Path, executor: str = "local") -> Config:
    scenarios = {"baseline": Scenario(), "impact_5bps": Scenario(impact_bps=5.0)}
    orders, trades, nbbo = (str(DRR / f"{k}.csv.gz") for k in ("orders", "trades", "nbbo"))
    return drop_config(
        lake, orders, trades, nbbo, scenarios, Run(workers=2, max_retries=2, executor=executor)
    )


def _files(lake: Lake, *folders: str) -> dict[str, bytes]:
    """Path below the root -> bytes, for every Parquet file under the given folders."""
    root = str(lake.root)
    return {
        str(path)[len(root) + 1 :]: path.read_bytes()
        for folder in folders
        for path in (lake.root / folder).glob("**/*.parquet")
    }


def _keys(prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _process(cfg: Config, lake: Lake) -> jobs.RunResult:
    with open_executor(cfg.run) as executor:
        return jobs.run_jobs(cfg, lake, lake.partitions("orders"), executor=executor)


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The DRR day shredded, processed and aggregated in a local lake: the reference for the bucket."""
    if not DRR.exists():
        pytest.skip("shared DRR data not present")
    cfg = _cfg(tmp_path_factory.mktemp("local") / "lake")
    lake = Lake(cfg.lake)
    shred(cfg, lake)
    assert not _process(cfg, lake).failed
    run_aggregates(cfg, lake)
    return lake


def test_drr_day_in_a_bucket_gives_the_local_lake_files(s3: str, local_lake: Lake) -> None:
    cfg = _cfg(f"s3://{BUCKET}/drr", executor="dask-local:2")
    lake = Lake(cfg.lake)
    assert not lake.is_local
    results = shred(cfg, lake)
    assert [r.status for r in results] == ["shredded"] * 3
    assert lake.partitions("orders") == local_lake.partitions("orders")
    assert _files(lake, "orders", "trades", "nbbo") == _files(local_lake, "orders", "trades", "nbbo")

    run = _process(cfg, lake)  # Dask workers in other processes read and write the bucket themselves
    assert run.records and not run.failed
    assert _files(lake, "results") == _files(local_lake, "results")  # same files, same bytes
    assert str(run.manifest_path).startswith(f"s3://{BUCKET}/drr/_runs/")
    assert f"drr/_runs/{run.run_id}.log" in _keys("drr/_runs/")  # the run's log, uploaded when it ended
    assert len(_keys("drr/results_by_date/_changes/")) == len(run.records)  # one change marker per job

    aggregates = run_aggregates(cfg, lake)
    for name, table in aggregates.items():  # DuckDB's parallel float sums vary in the last bits between runs
        expected = local_lake.read_parquet(local_lake.aggregates_dir / f"{name}.parquet")
        assert_frame_equal(pl.DataFrame(table), pl.DataFrame(expected), rel_tol=1e-9, abs_tol=1e-9)
    assert not _keys(
        "drr/results_by_date/_changes/"
    )  # the workers' change markers, consumed by the compaction
    assert sorted(_files(lake, "results_by_date")) == sorted(_files(local_lake, "results_by_date"))
    query = "SELECT scenario, count(*) AS n, sum(sim_quantity) AS q FROM sim_orders GROUP BY 1 ORDER BY 1"
    assert run_sql(lake, query, cfg).equals(run_sql(local_lake, query))
    assert lake.catalog_path.exists() and not _keys("drr/dpsim.duckdb")  # the catalog is a local cache
    assert not _keys("drr/_tmp")  # nothing staged in the bucket
    assert not lake.own_dir("shred").exists()  # the local staging folder is gone too


def test_unchanged_sources_and_partitions_are_skipped_in_a_bucket(s3: str, local_lake: Lake) -> None:
    cfg = _cfg(f"s3://{BUCKET}/rerun")
    lake = Lake(cfg.lake)
    shred(cfg, lake)
    first = _process(cfg, lake)
    assert [r.status for r in first.records] == ["ok"]
    assert [r.status for r in shred(cfg, lake)] == ["skipped"] * 3  # manifests read back from the bucket
    again = _process(cfg, lake)
    assert [r.status for r in again.records] == ["skipped"]  # fingerprints from the objects' sizes and times
    before = _files(lake, "orders", "trades", "nbbo")
    assert [r.status for r in shred(cfg, lake, force=True)] == ["shredded"] * 3
    assert _files(lake, "orders", "trades", "nbbo") == before  # replaced in place, no second copy
    assert [r.status for r in _process(cfg, lake).records] == ["ok"]  # new objects: the inputs changed
    sweeps = lake.result_path("sweeps", lake.partitions("orders")[0])
    assert (
        lake.read_parquet(sweeps).num_rows
        == pq.read_table(local_lake.result_path("sweeps", local_lake.partitions("orders")[0])).num_rows
    )


def test_cli_and_other_readers_use_the_bucket_urls(s3: str, local_lake: Lake, tmp_path: Path) -> None:
    """`dpsim --lake s3://…` end to end in a fresh process, then Polars reads the same URLs itself."""
    conf = tmp_path / "conf.yaml"
    conf.write_text(
        "inputs:\n"
        + "".join(f"  {k}: [{DRR / f'{k}.csv.gz'}]\n" for k in ("orders", "trades", "nbbo"))
        + "  reference: []\n  session: []\n  participants: []\nscenarios:\n  baseline: {}\n",
        encoding="utf-8",
    )
    url = f"s3://{BUCKET}/cli"
    for command in (["shred"], ["process"], ["sql", "SELECT count(*) AS n FROM sweeps"]):
        proc = subprocess.run(
            [sys.executable, "-m", "dpsim", *command[:1], "--config", str(conf), "--lake", url, *command[1:]],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "CI": "1"},
        )
        assert proc.returncode == 0, proc.stderr
    expected = pq.read_table(local_lake.result_path("sweeps", local_lake.partitions("orders")[0])).num_rows
    assert f"{expected:,}" in proc.stdout.split()  # the count, bare in its cell
    sweeps = pl.scan_parquet(f"{url}/results/sweeps/**/*.parquet", hive_partitioning=True).collect()
    assert sweeps.height == expected and sweeps["security_code"].unique().to_list() == [110621]


def test_byte_ranges_shredded_by_dask_workers_into_a_bucket(
    s3: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Range tasks stage their files in the bucket (the client may be on another machine), the client
    publishes them with in-store copies; the rows, rejects and line numbers are those of local processes."""
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(shred_ranges, "SPLIT_MIN_BYTES", 0)
    synth.generate(
        tmp_path / "drop", securities=3, days=1, start=date(2024, 10, 3), seed=3, scale=("rows", 6000)
    )
    src, _ = garbage_orders(tmp_path / "drop", tmp_path)
    inputs = {**{k: [] for k in shred_module.KINDS}, "orders": [str(src)]}
    cfg = dataclasses.replace(Config(), shred=dataclasses.replace(Shred(), workers=2))
    (procs,) = shred(cfg, Lake(tmp_path / "procs"), inputs=inputs)
    bucket = Lake(f"s3://{BUCKET}/ranges")
    # workers with their own temp folder, as on other machines: nothing may pass through a shared /tmp
    (tmp_path / "elsewhere").mkdir()
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, env={"TMPDIR": str(tmp_path / "elsewhere")}
    ) as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        dask_cfg = dataclasses.replace(cfg, run=dataclasses.replace(Run(), executor=f"dask://{address}"))
        (dask,) = shred(dask_cfg, bucket, inputs=inputs)
    assert next((tmp_path / "elsewhere").rglob("shred"), None) is not None  # the workers staged there
    assert dask.status == "shredded" and dask.rows_rejected == procs.rows_rejected == 4
    assert (dask.rows_read, dask.rows_written, dask.files_written) == (
        procs.rows_read,
        procs.rows_written,
        procs.files_written,
    )
    assert _files(bucket, "orders") == part_bytes(tmp_path / "procs")
    rejects = bucket.read_parquet(bucket.rejects_path("orders", source_id(src)))
    assert rejects.equals(pq.read_table(Lake(tmp_path / "procs").rejects_path("orders", source_id(src))))
    assert not _keys("ranges/_tmp")  # the staged objects were moved, none left behind
    shred(Config(), Lake(tmp_path / "one"), inputs=inputs)
    assert shred(Config(), bucket, inputs=inputs, force=True)[0].status == "shredded"
    assert _files(bucket, "orders") == part_bytes(tmp_path / "one")  # the range pieces (-1) were deleted


def test_a_missing_bucket_is_one_clear_line(s3: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dpsim",
            "shred",
            "--config",
            "conf/drr.yaml",
            "--lake",
            "s3://no-such-bucket/lake",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "dpsim: error: s3://no-such-bucket/lake: cannot reach bucket 'no-such-bucket' (FileNotFoundError: "
        "Not Found); check the name, the credentials and the endpoint in the environment "
        "(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, …)"
    ]


def test_the_notebook_api_and_the_report_read_a_bucket(s3: str, local_lake: Lake, tmp_path: Path) -> None:
    """`dpsim.open_lake("s3://…")` scans the bucket's URLs with Polars, and `dpsim report` reads it through
    DuckDB: the same frames and the same headline as the local lake."""
    import dpsim
    from dpsim.report import build_report

    cfg = _cfg(f"s3://{BUCKET}/notebook")
    lake = Lake(cfg.lake)
    for folder in (
        "results",
        "results_by_date",
        "aggregates",
        "_runs",
    ):  # the local lake's files, as they are
        lake.root.fs.put(str(local_lake.root / folder), f"{lake.root.path}/{folder}", recursive=True)
    remote, local = dpsim.open_lake(cfg.lake), dpsim.open_lake(local_lake.root)
    keys = ["security_code", "date", "order_id"]
    assert_frame_equal(remote.sweeps().collect().sort(keys), local.sweeps().collect().sort(keys))
    fills = remote.sim_fills("impact_5bps").filter(pl.col("role") == "resting").collect()
    assert fills.height == local.sim_fills("impact_5bps").filter(pl.col("role") == "resting").collect().height
    assert remote.aggregate("headline")["scenario"].to_list() == ["baseline", "impact_5bps"]
    written = build_report(cfg, lake, tmp_path / "report.html")
    text = written.path.read_text(encoding="utf-8")
    assert written.sections[0] == "headline" and f"s3://{BUCKET}/notebook" in text


def test_one_writer_per_scope_in_a_bucket(s3: str, caplog: pytest.LogCaptureFixture) -> None:
    """The lock of a bucket lake is an object created only when absent (a conditional PUT)."""
    import json
    import socket

    from dpsim.lake.locks import LakeLocked

    lake = Lake(f"s3://{BUCKET}/locked")
    lock = lake.root / "_locks" / "results.lock"
    with lake.lock("results"):
        held = json.loads(lock.read_bytes())
        assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
    assert not lock.exists()  # released: deleted
    # held by a run on another machine: named, with the object to delete once that run is known gone
    other = {
        "pid": 4242,
        "host": "elsewhere.example",
        "command": "dpsim process",
        "since": "2026-01-01T00:00:00",
    }
    lock.write_bytes(json.dumps(other).encode())
    with pytest.raises(LakeLocked) as err, lake.lock("results", wait_s=0.5):
        pass
    assert str(err.value) == (
        f"{lake.root}: another dpsim process is writing the results and aggregates (pid 4242 on "
        "elsewhere.example, since 2026-01-01T00:00:00 UTC: dpsim process); wait for it to finish and rerun "
        f"(if that run is known to be gone, delete the lock object {lock} and rerun)"
    )
    # left by a process of this host that is gone: removed, and the lock taken
    dead = {**other, "host": socket.gethostname(), "pid": 2**22 + 12345}
    lock.write_bytes(json.dumps(dead).encode())
    with caplog.at_level(logging.INFO, logger="dpsim.lake.locks"), lake.lock("results"):
        assert json.loads(lock.read_bytes())["pid"] == os.getpid()
    assert f"its holder pid {2**22 + 12345} on {socket.gethostname()}" in caplog.text
    assert not lock.exists()

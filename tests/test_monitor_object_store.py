"""Status and monitor read an object-store lake's runs through its store, as they read a local one: the run
manifests with their live status are objects rewritten whole (one PUT each), listed and read by prefix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpsim import jobs
from dpsim.config import Run, Scenario
from dpsim.lake import Lake
from dpsim.monitor import lake_state
from dpsim.monitor.server import serve
from dpsim.shred import shred_drop
from tests.configs import drop_config
from tests.test_object_store import BUCKET, DRR, s3  # noqa: F401 (the in-process S3 server fixture)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bucket(s3: str) -> Iterator[str]:  # noqa: F811
    """The S3 server of this module. fsspec caches a filesystem per set of arguments, and its endpoint
    comes from the environment: forget the cached ones before and after, or another module's server
    (gone, or still to come) would be asked."""
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()
    yield s3
    S3FileSystem.clear_instance_cache()


def test_status_and_monitor_follow_runs_in_a_bucket(bucket: str) -> None:
    if not DRR.exists():
        pytest.skip("shared DRR data not present")
    orders, trades, nbbo = (str(DRR / f"{k}.csv.gz") for k in ("orders", "trades", "nbbo"))
    url = f"s3://{BUCKET}/watched"
    cfg = drop_config(url, orders, trades, nbbo, {"baseline": Scenario()}, Run(workers=1))
    lake = Lake(url)
    assert lake_state(lake)["runs"] == []  # no _runs/ yet: nothing, not an error

    assert [r.status for r in shred_drop(cfg, lake)] == ["shredded"] * 3
    (key,) = lake.partitions("orders")
    request = jobs.ProcessRequest(
        aggregate=False, faults=f"raise:{key}", rerun=["dpsim", "process", "--only-failed"]
    )
    run = jobs.process(cfg, lake, request).run
    assert run is not None and len(run.failed) == 1

    state = lake_state(lake)
    assert [(r["kind"], r["state"]) for r in state["runs"]] == [
        ("process", "finished"),
        ("shred", "finished"),
    ]
    process, shredded = state["runs"]
    assert (process["failed"], process["rerun"]) == (1, "dpsim process --only-failed")
    assert process["failures"][0]["error"] == f"RuntimeError: injected fault for {key}"
    assert [s["rows_read"] > 0 for s in shredded["sources"]] == [True] * 3

    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "dpsim",
            "status",
            "--lake",
            url,
            "--json",
            "--config",
            str(REPO / "conf/drr.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    assert status.returncode == 0, status.stderr
    assert [r["run_id"] for r in json.loads(status.stdout)["runs"]] == [process["run_id"], shredded["run_id"]]

    ready: list[str] = []
    server = threading.Thread(target=serve, args=(lake, 0), kwargs={"on_ready": ready.append}, daemon=True)
    server.start()
    for _ in range(100):
        if ready:
            break
        threading.Event().wait(0.1)
    with urllib.request.urlopen(ready[0] + "state.json", timeout=10) as page:  # noqa: S310 (local server)
        served = json.loads(page.read())
    assert [r["run_id"] for r in served["runs"]] == [process["run_id"], shredded["run_id"]]

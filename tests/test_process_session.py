"""The `dpsim process` session as a user meets it: nothing to do on an unchanged lake, a selection that
matches nothing, progress while aggregating, the plan and its reasons, JSON results, the run manifest's
live status, and Ctrl-C. Each defect's test here failed before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dpsim import cli, jobs, live
from dpsim.config import load_config
from dpsim.lake import Lake
from dpsim.shred import shred
from dpsim.synth import generate

REPO = Path(__file__).resolve().parents[1]
CONF = """lake: {lake}
inputs:
  orders: [{drop}/orders.csv]
  trades: [{drop}/trades.csv]
  nbbo: [{drop}/nbbo.csv]
  reference: []
  session: []
  participants: []
scenarios:
  baseline: {{}}
run:
  workers: 2
stats:
  bootstrap_n: 200
"""


@pytest.fixture(scope="module")
def shredded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated drop of 3 securities x 2 days shredded into a lake (tests work on copies)."""
    base = tmp_path_factory.mktemp("session")
    generate(base / "drop", securities=3, days=2, start=date(2024, 10, 2), seed=5, scale=("rows", 12000))
    conf = base / "c.yaml"
    conf.write_text(CONF.format(lake=base / "lake", drop=base / "drop"), encoding="utf-8")
    cfg = load_config(conf)
    shred(cfg, Lake(cfg.lake))
    return base


@pytest.fixture()
def conf(shredded: Path, tmp_path: Path) -> Path:
    """A config of a fresh copy of the shredded lake."""
    shutil.copytree(shredded / "lake", tmp_path / "lake")
    path = tmp_path / "c.yaml"
    path.write_text(CONF.format(lake=tmp_path / "lake", drop=shredded / "drop"), encoding="utf-8")
    return path


class Recorder:
    """A Progress that remembers every task: description, total and how far it got."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[Any]:
        rec: dict[str, Any] = {"description": description, "total": total, "done": 0.0, "status": []}
        self.tasks.append(rec)

        class _Task:
            def advance(self, n: float = 1, **fields: Any) -> None:
                rec["done"] += n
                rec["status"].append(fields.get("status"))

        yield _Task()

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        pass


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}


def test_unchanged_lake_says_nothing_to_do_and_skips_the_aggregation(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["process", "--config", str(conf)]) == 0
    capsys.readouterr()
    aggregates = conf.parent / "lake" / "aggregates"
    before = _mtimes(aggregates)
    assert cli.main(["process", "--config", str(conf)]) == 0
    out, err = capsys.readouterr()
    assert "dpsim: all 6 partitions unchanged; nothing to do (--force reruns them; run " in err
    assert "0/0" not in out + err and "headline" not in out
    assert _mtimes(aggregates) == before  # not aggregated again
    # a change that only the aggregation reads (the bootstrap) recomputes the aggregates, and only them
    conf.write_text(conf.read_text().replace("bootstrap_n: 200", "bootstrap_n: 300"))
    assert cli.main(["process", "--config", str(conf)]) == 0
    out, err = capsys.readouterr()
    assert "all 6 partitions unchanged; only the aggregates were out of date" in err
    assert _mtimes(aggregates) != before


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (["--dates", "2030-01-01"], "no partition matches --dates 2030-01-01..2030-01-01: the lake "),
        (["--securities", "999999"], "no partition matches --securities 999999: the lake "),
    ],
)
def test_a_selection_matching_no_data_exits_non_zero(
    conf: Path, capsys: pytest.CaptureFixture[str], selection: list[str], message: str
) -> None:
    assert cli.main(["process", "--config", str(conf), *selection]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "holds 3 securities (" in err and "2 dates (2024-10-02..2024-10-03)" in err
    assert not (conf.parent / "lake" / "_runs").exists()  # nothing was run or recorded


def test_aggregation_shows_progress_in_process_and_aggregate(conf: Path) -> None:
    cfg = load_config(conf)
    lake = Lake(cfg.lake)
    progress = Recorder()
    jobs.process(cfg, lake, jobs.ProcessRequest(), progress=progress)
    assert [t["description"] for t in progress.tasks] == ["process", "aggregate"]
    agg = progress.tasks[1]
    assert agg["done"] == agg["total"] > 10
    assert "headline" in agg["status"] and "stats_tests" in agg["status"]
    again = Recorder()
    jobs.aggregate(cfg, lake, again)
    assert [t["description"] for t in again.tasks] == ["aggregate"]


def test_plan_says_why_each_partition_runs_or_is_skipped_and_writes_nothing(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = conf.parent / "lake"

    def plan(*extra: str) -> dict[str, Any]:
        assert cli.main(["plan", "--config", str(conf), "--json", *extra]) == 0
        return dict(json.loads(capsys.readouterr().out))

    first = plan()
    assert first["to_run"] == 6 and first["skipped"] == 0 and first["aggregate"]
    assert {p["reason"] for p in first["partitions"]} == {"never processed"}
    assert not (lake / "_runs").exists() and not (lake / "aggregates").exists()

    cfg = load_config(conf)
    key = Lake(cfg.lake).partitions("orders")[1]
    run = jobs.process(cfg, Lake(cfg.lake), jobs.ProcessRequest(faults=f"raise:{key}")).run
    assert run is not None
    second = plan()
    verdicts = {p["partition"]: (p["action"], p["reason"]) for p in second["partitions"]}
    assert verdicts.pop(str(key)) == ("run", f"failed in run {run.run_id}")
    assert set(verdicts.values()) == {("skip", f"unchanged since run {run.run_id}")}
    runs = sorted((lake / "_runs").glob("*.json"))

    # an input file re-shredded, and a config change
    part = next((lake / "trades").rglob("*.parquet"))
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    changed = [p for p in plan()["partitions"] if p["reason"].startswith("inputs changed")]
    assert len(changed) == 1 and changed[0]["action"] == "run"
    conf.write_text(conf.read_text().replace("baseline: {}", "baseline: {impact_bps: 1}"))
    reasons = {p["reason"] for p in plan()["partitions"]}
    assert reasons == {"configuration or scenarios changed", f"failed in run {run.run_id}"}

    # process --dry-run is the same plan, as a table; nothing is written
    assert cli.main(["process", "--config", str(conf), "--dry-run"]) == 0
    assert "dpsim process would run 6 of 6 partitions" in capsys.readouterr().out
    assert sorted((lake / "_runs").glob("*.json")) == runs


def test_json_results_on_stdout(conf: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(conf)
    key = Lake(cfg.lake).partitions("orders")[0]
    os.environ[cli.FAULT_ENV] = f"raise:{key}"
    try:
        assert cli.main(["process", "--config", str(conf), "--json"]) == 3
    finally:
        os.environ.pop(cli.FAULT_ENV)
    out, err = capsys.readouterr()
    body = json.loads(out)
    assert (body["partitions"], body["ok"], body["failed"], body["skipped"]) == (6, 5, 1, 0)
    assert body["failures"] == [{"partition": str(key), "error": f"RuntimeError: injected fault for {key}"}]
    assert [r["scenario"] for r in body["headline"]] == ["baseline"]
    assert err.strip().endswith(f"rerun only them with: dpsim process --only-failed --config {conf}")

    assert cli.main(["aggregate", "--config", str(conf), "--json"]) == 0
    agg = json.loads(capsys.readouterr().out)
    assert set(agg) == {"headline", "stats_tests", "quality_summary"}
    assert agg["quality_summary"][0]["n_partitions"] == 5

    assert cli.main(["config", "--config", str(conf), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scenarios"] == {
        "baseline": cfg.scenarios["baseline"].__dict__
    }

    assert cli.main(["shred", "--config", str(conf), "--json"]) == 0
    shredded = json.loads(capsys.readouterr().out)
    assert [s["status"] for s in shredded["sources"]] == ["skipped"] * 3 and shredded["failed"] == 0


def test_the_run_manifest_holds_the_live_status_and_the_rerun_command(
    conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = load_config(conf)
    lake = Lake(cfg.lake)
    key, crashes = lake.partitions("orders")[2], lake.partitions("orders")[4]
    request = jobs.ProcessRequest(
        faults=f"raise:{key},killonce:{crashes}",  # a worker dies once: its job is retried and succeeds
        rerun=["dpsim", "process", "--only-failed", "--config", str(conf)],
    )
    run = jobs.process(cfg, lake, request).run
    assert run is not None
    body = json.loads(run.manifest_path.read_text())
    assert (body["kind"], body["state"], body["pid"]) == ("process", "finished", os.getpid())
    assert body["rerun"] == f"dpsim process --only-failed --config {conf}"
    live = body["live"]
    assert live["phase"] == "done"
    assert (live["partitions"], live["to_run"], live["ok"], live["failed"], live["n_running"]) == (
        6,
        6,
        5,
        1,
        0,
    )
    assert live["failures"] == [{"partition": str(key), "error": f"RuntimeError: injected fault for {key}"}]
    assert len(live["slowest"]) == len(live["fastest"]) == 3
    assert live["slowest"][0]["seconds"] >= live["fastest"][0]["seconds"] > 0
    assert live["rate_jobs_s"] > 0 and live["eta_s"] is None
    assert live["retried"] >= 1  # the crashed job, and any that ran beside it on the broken pool

    assert cli.main(["status", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert run.run_id in out and "finished" in out and "ok 5  failed 1" in out
    assert f"{run.run_id}: FAILED {key}: RuntimeError: injected fault for {key}" in out
    assert (
        f"{run.run_id}: rerun only the failed partitions with: dpsim process --only-failed --config {conf}"
        in out
    )

    shred_runs = list((lake.root / "_runs" / "shred").glob("*.json"))
    assert shred_runs == []  # the fixture shredded through the library's `shred`, not a session
    assert cli.main(["shred", "--config", str(conf), "--force"]) == 0
    (session,) = (json.loads(p.read_text()) for p in (lake.root / "_runs" / "shred").glob("*.json"))
    assert (session["kind"], session["state"], session["live"]["phase"]) == ("shred", "finished", "done")
    sources = session["live"]["sources"]
    assert [s["kind"] for s in sources] == ["orders", "trades", "nbbo"]
    assert all(s["status"] == "shredded" and s["rows_read"] == s["rows_written"] > 0 for s in sources)
    assert session["live"]["bytes_done"] == session["live"]["bytes_total"] > 0


def test_status_watch_prints_each_change_until_ctrl_c(conf: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpsim", "status", "--config", str(conf), "--watch", "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["runs"] == [] and first["running"] == 0
        time.sleep(2.5)  # one more look: nothing changed, nothing printed
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out == "" and "Traceback" not in err


def test_a_running_manifest_whose_writer_is_gone_reads_as_stopped() -> None:
    now = datetime(2024, 10, 2, 12, 0, tzinfo=UTC)
    fresh = {"state": "running", "host": socket.gethostname(), "pid": os.getpid(), "updated": now.isoformat()}
    assert live.effective_state(fresh, now) == "running"
    assert live.effective_state({**fresh, "pid": 2**22 + 1}, now) == "stopped"  # no such process here
    elsewhere = {**fresh, "host": "another-machine"}
    assert live.effective_state(elsewhere, now + timedelta(seconds=live.STALE_S - 1)) == "running"
    assert live.effective_state(elsewhere, now + timedelta(seconds=live.STALE_S + 1)) == "stopped"
    assert live.effective_state({**fresh, "state": "interrupted"}, now) == "interrupted"
    aggregating = {**elsewhere, "live": {"phase": "aggregate"}}  # it does not rewrite its manifest then
    assert live.effective_state(aggregating, now + timedelta(seconds=live.STALE_S + 1)) == "running"
    late = now + timedelta(seconds=live.STALE_AGGREGATING_S + 1)
    assert live.effective_state(aggregating, late) == "stopped"
    long_ago = now - timedelta(days=1)  # here, a live process is trusted whatever the file's age
    assert live.effective_state({**fresh, "updated": long_ago.isoformat()}, now) == "running"


def _wait(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _alive(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def test_ctrl_c_prints_one_line_and_leaves_no_worker(conf: Path) -> None:
    cfg = load_config(conf)
    keys = Lake(cfg.lake).partitions("orders")
    # one job never ends, the others do: at Ctrl-C one worker is inside a job and the other idle, waiting
    # for work (where an unprotected worker prints a KeyboardInterrupt traceback)
    env = {**os.environ, cli.FAULT_ENV: f"sleep:{keys[0]}", "CI": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpsim", "process", "--config", str(conf)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    runs = conf.parent / "lake" / "_runs"

    def only_the_endless_job_left() -> bool:
        for p in runs.glob("*.json"):
            try:
                live = json.loads(p.read_text())["live"]
            except (ValueError, KeyError):
                return False
            return bool(live["done"] == len(keys) - 1 and live["n_running"] == 1)
        return False

    try:
        _wait(only_the_endless_job_left, 120, "every job but the endless one to end")
        time.sleep(1.0)
        import psutil

        workers = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("dpsim: interrupted: run ")
    assert lines[0].endswith("run the same command again to go on (they are skipped)")
    assert "Traceback" not in out + err
    _wait(lambda: not any(_alive(w) for w in workers), 10, "the workers to end")
    (manifest,) = runs.glob("*.json")
    assert json.loads(manifest.read_text())["state"] == "interrupted"


def test_one_job_runs_in_the_dpsim_process_and_gives_the_workers_results(conf: Path) -> None:
    """A single job needs no worker (its start-up is most of a small day's process time); with
    run.single_job_in_process false it gets one, and both write the same result files."""
    from dataclasses import replace

    cfg = load_config(conf)
    lake = Lake(cfg.lake)
    key = lake.partitions("orders")[0]
    one = jobs.ProcessRequest(securities=[key.security_code], dates=(key.date, key.date), aggregate=False)
    here = jobs.process(cfg, lake, one).run
    assert here is not None and [r.worker_pid for r in here.records] == [os.getpid()]
    first = {p.relative_to(lake.root): p.read_bytes() for p in (lake.root / "results").rglob("*.parquet")}
    assert first

    pooled_cfg = replace(cfg, run=replace(cfg.run, single_job_in_process=False))
    pooled = jobs.process(pooled_cfg, lake, replace(one, force=True)).run
    assert pooled is not None and pooled.records[0].status == "ok"
    assert pooled.records[0].worker_pid not in (0, os.getpid())
    again = {p.relative_to(lake.root): p.read_bytes() for p in (lake.root / "results").rglob("*.parquet")}
    assert again == first

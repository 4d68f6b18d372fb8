"""One job per (security_code, date) partition on any concurrent.futures executor; failure isolation; run manifest.

The parent process plans the job matrix, skips partitions whose inputs and config are unchanged, submits
small `JobTask`s and records the small `JobRecord`s that come back; workers read their own partition
files by path, run the pipeline, and write their outputs atomically. A job that raises is recorded and
the others go on; a worker that dies (killed, out of memory) breaks a process pool, so the pool is
replaced and the jobs that were running on it are retried one at a time to find the culprit.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import os
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from upath import UPath

from dpsim import __version__
from dpsim.config import Config
from dpsim.lake import Lake, PartitionKey
from dpsim.progress import Progress, SilentProgress

log = logging.getLogger(__name__)

# Fault injection for resilience tests: comma-separated "<action>:<sec>/<date>" with action kill (every attempt),
# killonce (first attempt only; a marker file in the lake's _tmp remembers it), raise or sleep.
FAULT_ENV = "DPSIM_FAULT_INJECT"


@dataclass(frozen=True)
class JobTask:
    """Everything a worker needs: picklable, small (no frames)."""

    lake_root: str
    key: PartitionKey
    config: Config
    scenarios: tuple[str, ...]
    fingerprint: str


@dataclass
class JobRecord:
    """What a job returns and the run manifest stores."""

    partition: str
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    rows_in: int = 0
    rows_out: int = 0
    sweeps: int = 0
    error: str | None = None
    fingerprint: str = ""
    worker_pid: int = 0
    worker_peak_rss_mb: float = 0.0
    attempts: int = 1


@dataclass
class RunResult:
    run_id: str
    manifest_path: UPath
    records: list[JobRecord]
    missing: list[str] = field(default_factory=list)  # requested partitions with no data
    seconds: float = 0.0

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "failed"]


# ---- planning -------------------------------------------------------------------------------------


def plan_partitions(
    lake: Lake,
    securities: Sequence[int] | None = None,
    dates: tuple[date, date] | None = None,
) -> tuple[list[PartitionKey], list[str]]:
    """Partitions present in the lake's orders table intersected with the requested securities and dates.

    Returns (partitions, requested-but-absent descriptions). Absent partitions are reported, not errors.
    """
    present = lake.partitions("orders")
    chosen = [
        k
        for k in present
        if (not securities or k.security_code in securities)
        and (dates is None or dates[0] <= k.date <= dates[1])
    ]
    missing: list[str] = []
    present_secs = {k.security_code for k in present}
    for s in securities or ():
        if s not in present_secs:
            missing.append(f"security {s}: no orders in the lake")
        elif dates is not None and not any(k.security_code == s for k in chosen):
            missing.append(f"security {s}: no orders between {dates[0]} and {dates[1]}")
    if dates is not None and not securities and not chosen:
        missing.append(f"no partitions between {dates[0]} and {dates[1]}")
    return chosen, missing


def config_hash(cfg: Config, scenarios: Sequence[str]) -> str:
    """Hash of everything that changes a partition's results (code version included)."""
    d = cfg.to_dict()
    relevant = {k: d[k] for k in ("time", "codes", "filters", "buckets", "metrics", "replay")}
    relevant["scenarios"] = {s: d["scenarios"][s] for s in scenarios}
    relevant["version"] = __version__
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def input_fingerprints(lake: Lake, keys: Sequence[PartitionKey]) -> dict[PartitionKey, str]:
    """Names, sizes and mtimes of each partition's raw files: changes when a new drop touches it."""
    signatures = {table: lake.file_signatures(table, keys) for table in ("orders", "trades", "nbbo")}
    out = {}
    for key in keys:
        h = hashlib.sha256()
        for table, files in signatures.items():
            for f in files[key]:
                h.update(f"{table}/{f};".encode())
        out[key] = h.hexdigest()[:16]
    return out


# ---- the worker side ------------------------------------------------------------------------------


def run_job(task: JobTask) -> JobRecord:
    """Run one partition in this process; never raises (errors become a failed record)."""
    start = time.perf_counter()
    record = JobRecord(
        partition=str(task.key), status="ok", fingerprint=task.fingerprint, worker_pid=os.getpid()
    )
    try:
        _inject_fault(Lake(task.lake_root), task.key)
        from dpsim.partition import process_partition  # imported here: workers pay for polars once

        counts = process_partition(Lake(task.lake_root), task.key, task.config, task.scenarios)
        record.rows_in, record.rows_out, record.sweeps = counts.rows_in, counts.rows_out, counts.sweeps
    except BaseException as exc:  # a job must never take the worker (or the run) down with it
        if isinstance(exc, KeyboardInterrupt):
            raise
        record.status = "failed"
        record.error = _one_line(exc)
        log.debug("job %s failed:\n%s", task.key, traceback.format_exc())
    record.seconds = round(time.perf_counter() - start, 4)
    record.worker_peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return record


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _inject_fault(lake: Lake, key: PartitionKey) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    for item in filter(None, spec.split(",")):
        action, _, target = item.partition(":")
        if target != str(key):
            continue
        marker = lake.local_dir("faults") / f"killed-{key.security_code}-{key.date}"
        if action == "killonce" and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "raise":
            raise RuntimeError(f"injected fault for {key}")
        elif action == "sleep":
            time.sleep(3600)


# ---- the parent side ------------------------------------------------------------------------------


class RunManifest:
    """`_runs/<run-id>.json`, rewritten atomically as jobs finish (at most every `every_s` seconds)."""

    def __init__(self, lake: Lake, run_id: str, header: dict[str, Any], every_s: float = 2.0) -> None:
        self.lake, self.path, self.header, self.every_s = (
            lake,
            lake.runs_dir / f"{run_id}.json",
            header,
            every_s,
        )
        self.records: list[JobRecord] = []
        self._last = 0.0

    def add(self, record: JobRecord) -> None:
        self.records.append(record)
        if time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self, **extra: Any) -> None:
        self.header.update(extra)
        body = {**self.header, "jobs": [asdict(r) for r in self.records]}
        self.lake.write_json(body, self.path)
        self._last = time.monotonic()


def completed_fingerprints(lake: Lake) -> dict[str, str]:
    """partition -> fingerprint of its latest successful job, over all previous run manifests."""
    done: dict[str, str] = {}
    for p in sorted(lake.runs_dir.glob("*.json")) if lake.runs_dir.is_dir() else []:
        try:
            body = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for job in body.get("jobs", []):
            if job.get("status") in ("ok", "skipped"):
                done[job["partition"]] = job.get("fingerprint", "")
            elif job.get("status") == "failed":
                done.pop(job["partition"], None)
    return done


def last_failed(lake: Lake) -> list[PartitionKey]:
    """Partitions that failed in the most recent run (for --only-failed)."""
    runs = sorted(lake.runs_dir.glob("*.json")) if lake.runs_dir.is_dir() else []
    if not runs:
        return []
    body = json.loads(runs[-1].read_text(encoding="utf-8"))
    out = []
    for job in body.get("jobs", []):
        if job.get("status") == "failed":
            sec, d = job["partition"].split("/")
            out.append(PartitionKey(int(sec), date.fromisoformat(d)))
    return out


def run_jobs(
    cfg: Config,
    lake: Lake,
    partitions: Sequence[PartitionKey],
    *,
    scenarios: Sequence[str] | None = None,
    force: bool = False,
    executor: cf.Executor | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    command: str = "",
) -> RunResult:
    """Run every partition job; returns the records (the caller decides the exit code)."""
    progress = progress or SilentProgress()
    scen = tuple(scenarios or cfg.scenarios)
    chash = config_hash(cfg, scen)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    with lake.local_file(lake.runs_dir / f"{run_id}.log") as log_path:
        file_log = _attach_log_file(log_path)
        started = time.perf_counter()
        manifest = RunManifest(
            lake,
            run_id,
            {
                "run_id": run_id,
                "started": datetime.now(UTC).isoformat(),
                "command": command,
                "config_source": cfg.source,
                "config_hash": chash,
                "scenarios": list(scen),
                "version": __version__,
            },
        )
        done = {} if force else completed_fingerprints(lake)
        tasks: list[JobTask] = []
        for key, inputs in input_fingerprints(lake, partitions).items():
            fp = f"{chash}:{inputs}"
            if done.get(str(key)) == fp:
                manifest.add(JobRecord(partition=str(key), status="skipped", fingerprint=fp, attempts=0))
            else:
                tasks.append(JobTask(str(lake.root), key, cfg, scen, fp))
        log.info(
            "run %s: %d partitions, %d to run, %d unchanged",
            run_id,
            len(partitions),
            len(tasks),
            len(partitions) - len(tasks),
        )
        try:
            with progress.task("process", total=len(tasks)) as bar:
                counts = {"ok": 0, "failed": 0}

                def on_done(rec: JobRecord) -> None:
                    counts["ok" if rec.status == "ok" else "failed"] += 1
                    manifest.add(rec)
                    if rec.status == "failed":
                        log.error("job %s failed: %s", rec.partition, rec.error)
                    bar.advance(1, status=f"ok {counts['ok']}  failed {counts['failed']}")

                _execute(tasks, on_done, cfg, executor=executor, workers=workers or cfg.run.effective_workers)
        finally:
            elapsed = round(time.perf_counter() - started, 3)
            manifest.flush(finished=datetime.now(UTC).isoformat(), seconds=elapsed)
            logging.getLogger("dpsim").removeHandler(file_log)
            file_log.close()
    return RunResult(run_id, manifest.path, manifest.records, seconds=elapsed)


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("dpsim")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


def _execute(
    tasks: Iterable[JobTask],
    on_done: Callable[[JobRecord], None],
    cfg: Config,
    *,
    executor: cf.Executor | None,
    workers: int,
) -> None:
    """Keep at most `workers` jobs in flight (so a broken pool only ever implicates those)."""
    pending = list(tasks)
    pending.reverse()  # pop() from the end keeps the planned order
    if executor is not None:
        _drain(executor, pending, on_done, cfg, in_flight_max=max(workers, 1), own_pool=False)
        return
    suspects: list[JobTask] = []
    while pending or suspects:
        if suspects:  # after a crash: rerun each suspect alone to find the one that kills its worker
            task = suspects.pop()
            with _process_pool(1) as pool:
                broken = _drain(pool, [task], on_done, cfg, in_flight_max=1, own_pool=True)
            for t in broken:
                on_done(_crashed(t))
            continue
        with _process_pool(workers) as pool:
            suspects = _drain(pool, pending, on_done, cfg, in_flight_max=workers, own_pool=True)


def _process_pool(workers: int) -> cf.ProcessPoolExecutor:
    import multiprocessing as mp

    # spawn: polars' thread pool is not fork-safe; workers are long-lived so the import is paid once each
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


def _crashed(task: JobTask) -> JobRecord:
    return JobRecord(
        partition=str(task.key),
        status="failed",
        fingerprint=task.fingerprint,
        attempts=2,
        error="worker process died while running this job (killed, or out of memory); "
        "check its input size or the worker memory, then rerun with --only-failed",
    )


def _drain(
    pool: cf.Executor,
    pending: list[JobTask],
    on_done: Callable[[JobRecord], None],
    cfg: Config,
    *,
    in_flight_max: int,
    own_pool: bool,
) -> list[JobTask]:
    """Submit from `pending` (consumed) keeping `in_flight_max` running; returns tasks lost to a broken pool."""
    in_flight: dict[cf.Future[JobRecord], tuple[JobTask, float]] = {}
    timeout = cfg.run.job_timeout_s
    while pending or in_flight:
        while pending and len(in_flight) < in_flight_max:
            task = pending.pop()
            try:
                in_flight[pool.submit(run_job, task)] = (task, time.monotonic())
            except cf.process.BrokenProcessPool:  # a worker died since the last wait: `task` never started
                pending.append(task)
                return [t for t, _ in in_flight.values()]
        done, _ = cf.wait(in_flight, timeout=1.0, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            task, _t0 = in_flight.pop(fut)
            try:
                on_done(fut.result())
            except cf.process.BrokenProcessPool:
                lost = [task, *(t for t, _ in in_flight.values())]
                return lost
            except Exception as exc:  # e.g. a distributed worker lost beyond its retries
                on_done(
                    JobRecord(
                        partition=str(task.key),
                        status="failed",
                        fingerprint=task.fingerprint,
                        error=_one_line(exc),
                    )
                )
        now = time.monotonic()
        late = [(f, t, t0) for f, (t, t0) in in_flight.items() if now - t0 > timeout]
        if late and own_pool:
            for fut, task, t0 in late:
                in_flight.pop(fut)
                on_done(
                    JobRecord(
                        partition=str(task.key),
                        status="failed",
                        fingerprint=task.fingerprint,
                        seconds=round(now - t0, 3),
                        error=f"timed out after {timeout:g} s (run.job_timeout_s); raise it or check the partition size",
                    )
                )
            survivors = [t for t, _ in in_flight.values()]
            _kill_pool(pool)
            return survivors
    return []


def _kill_pool(pool: cf.Executor) -> None:
    """Terminate a process pool's workers (the only way to stop a job that overran its timeout)."""
    procs = getattr(pool, "_processes", None) or {}
    for p in list(procs.values()):
        p.kill()
    pool.shutdown(wait=False, cancel_futures=True)

"""One job per (security_code, date) partition on any concurrent.futures executor; failure isolation; run manifest.

`process` is the whole `dpsim process` session: it plans the job matrix (or the last run's failed
partitions), skips partitions whose inputs and config are unchanged, runs the others on the local pool or
a cluster (`pools`), records every job in the run manifest (`lake.manifests`), then aggregates. The
parent submits small `JobTask`s and records the small `JobRecord`s that come back; workers read their
own partition files by path, run the pipeline, and write their outputs atomically. A job that raises is
recorded and the others go on; a worker that dies is found and failed by the pool supervisor.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import shlex
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
from upath import UPath

from dpsim import __version__
from dpsim.config import Config
from dpsim.errors import DpsimError, LakeError, os_error_text
from dpsim.lake import Lake, PartitionKey, publish
from dpsim.lake.manifests import RunManifest, completed_fingerprints, last_failed, log_path
from dpsim.pools import Lost, Supervisor, open_executor
from dpsim.progress import Progress, SilentProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobTask:
    """Everything a worker needs: picklable, small (no frames)."""

    lake_root: str
    key: PartitionKey
    config: Config
    scenarios: tuple[str, ...]
    fingerprint: str
    # Fault injection for resilience tests: comma-separated "<action>:<sec>/<date>" with action kill (every
    # attempt), killonce (first attempt only; a marker file in the lake's _tmp remembers it), raise, sleep,
    # or vanish (the partition's orders files are moved to the lake's _tmp/faults before the job reads them).
    faults: str = ""
    # The raw file names the plan fingerprinted, per table of RAW_INPUTS: the job reads exactly these, and
    # fails when one is gone (None: the job lists its partition's files itself).
    inputs: tuple[tuple[str, ...], ...] | None = None


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
    unrecorded: str | None = None  # why the run manifest could not be written (a full disk), if so

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "failed"]

    def failure_message(self, rerun: Sequence[str]) -> str:
        """Which jobs failed, where the run is recorded, and the command (`rerun`, with --only-failed) that
        reruns only them; when the run could not be recorded, the command without --only-failed (it reruns
        every partition without a recorded result)."""
        failed = self.failed
        names = ", ".join(r.partition for r in failed[:20]) + (" ..." if len(failed) > 20 else "")
        if self.unrecorded is None:
            return (
                f"{len(failed)} of {len(self.records)} jobs failed ({names}); "
                f"see {self.manifest_path}; rerun only them with: {shlex.join(rerun)}"
            )
        return (
            f"{len(failed)} of {len(self.records)} jobs failed ({names}) and the run could not be recorded "
            f"({self.unrecorded}); rerun with: {shlex.join(a for a in rerun if a != '--only-failed')}"
        )


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


PUBLISH_WAIT_S = 120.0  # a shred publishing its files (renames) is waited for this long


def refuse_half_published(lake: Lake, partitions: Sequence[PartitionKey]) -> None:
    """Stop before any job when a planned partition holds a source whose publish a crash interrupted (a mix
    of two shreds), naming the command that completes it; a publish under way is waited for."""
    wanted = {str(k) for k in partitions}
    for body in publish.crashed_publishes(lake, wait_s=PUBLISH_WAIT_S):
        hit = sorted(wanted & set(body.get("partitions", [])))
        if hit:
            raise LakeError(
                f"{body['path']}: its shred was interrupted while publishing, so partition(s) "
                f"{', '.join(hit[:5])}{' ...' if len(hit) > 5 else ''} hold a mix of two shreds; complete it "
                f"first with: dpsim shred --{body['kind']} {shlex.quote(body['path'])} (same --config and "
                "--lake), then rerun"
            )


def config_hash(cfg: Config, scenarios: Sequence[str]) -> str:
    """Hash of everything that changes a partition's results (code version included)."""
    d = cfg.to_dict()
    relevant = {k: d[k] for k in ("time", "codes", "filters", "buckets", "metrics", "replay")}
    relevant["scenarios"] = {s: d["scenarios"][s] for s in scenarios}
    relevant["version"] = __version__
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


RAW_INPUTS = ("orders", "trades", "nbbo")


def input_fingerprints(lake: Lake, keys: Sequence[PartitionKey]) -> dict[PartitionKey, str]:
    """Names, sizes and mtimes of each partition's raw files: changes when a new drop touches it."""
    return {key: fp for key, (fp, _) in planned_inputs(lake, keys).items()}


def planned_inputs(
    lake: Lake, keys: Sequence[PartitionKey]
) -> dict[PartitionKey, tuple[str, tuple[tuple[str, ...], ...]]]:
    """Per partition: the fingerprint of its raw files (names, sizes, mtimes) and their names per raw table
    (`RAW_INPUTS` order), from one listing per table: what its job reads, and nothing else."""
    signatures = {table: lake.file_signatures(table, keys) for table in RAW_INPUTS}
    out = {}
    for key in keys:
        h = hashlib.sha256()
        for table, files in signatures.items():
            for f in files[key]:
                h.update(f"{table}/{f};".encode())
        names = tuple(tuple(f.split(":", 1)[0] for f in signatures[table][key]) for table in RAW_INPUTS)
        out[key] = (h.hexdigest()[:16], names)
    return out


# ---- the worker side ------------------------------------------------------------------------------


def run_job(task: JobTask) -> JobRecord:
    """Run one partition in this process; never raises (errors become a failed record)."""
    start = time.perf_counter()
    record = JobRecord(
        partition=str(task.key), status="ok", fingerprint=task.fingerprint, worker_pid=os.getpid()
    )
    try:
        _inject_fault(Lake(task.lake_root), task.key, task.faults)
        from dpsim.partition import process_partition  # imported here: workers pay for polars once

        inputs = dict(zip(RAW_INPUTS, task.inputs, strict=True)) if task.inputs is not None else None
        counts = process_partition(Lake(task.lake_root), task.key, task.config, task.scenarios, inputs)
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
    """A job's error on one line: dpsim's own wording, or the exception's type and first line (an OS
    error: what it means and what to do)."""
    if isinstance(exc, DpsimError):
        return next(iter(str(exc).strip().splitlines()), type(exc).__name__)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {os_error_text(exc)}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _inject_fault(lake: Lake, key: PartitionKey, spec: str) -> None:
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
        elif action == "vanish":
            marker.parent.mkdir(parents=True, exist_ok=True)
            for f in lake.partition_files("orders", key):
                os.replace(f.path, marker.with_name(f"vanished-{f.name}"))


# ---- the parent side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessRequest:
    """What a `dpsim process` session is asked for, besides the config (CLI flags)."""

    securities: Sequence[int] | None = None
    dates: tuple[date, date] | None = None
    scenarios: Sequence[str] | None = None  # None: every configured scenario
    only_failed: bool = False  # the partitions that failed in the last run, rerun regardless
    force: bool = False  # rerun partitions whose inputs and config are unchanged
    aggregate: bool = True  # aggregate the results at the end (else only refresh the catalog)
    command: str = ""  # recorded in the run manifest
    faults: str = ""  # fault injection for resilience tests (JobTask.faults)


@dataclass
class ProcessOutcome:
    """What a session did: its run (None when --only-failed found nothing to rerun) and the headline
    tables of the aggregates (headline, its paired test, quality summary) when it aggregated."""

    run: RunResult | None
    headline: tuple[pa.Table, pa.Table, pa.Table] | None = None
    finish_error: str | None = None  # why the aggregation failed after some jobs failed, if it did


def process(
    cfg: Config,
    lake: Lake,
    request: ProcessRequest,
    *,
    progress: Progress | None = None,
    note: Callable[[str], None] = log.warning,
) -> ProcessOutcome:
    """The `dpsim process` session: plan, run every job, record the run, aggregate (or refresh the catalog).

    Requested partitions without data are passed to `note` before the run; failed jobs are in the result
    (`RunResult.failed`), not raised: the caller decides the exit code.
    """
    unknown = [s for s in request.scenarios or () if s not in cfg.scenarios]
    if unknown:
        raise DpsimError(f"unknown scenario(s) {', '.join(unknown)}; configured: {', '.join(cfg.scenarios)}")
    if not lake.partitions("orders"):
        raise DpsimError(f"{lake.root}: the lake has no orders partitions; run `dpsim shred` first")
    with lake.lock("results"):  # one writer of the results and aggregates at a time
        return _process(cfg, lake, request, progress, note)


def _process(
    cfg: Config,
    lake: Lake,
    request: ProcessRequest,
    progress: Progress | None,
    note: Callable[[str], None],
) -> ProcessOutcome:
    if request.only_failed:
        partitions = last_failed(lake)
        if not partitions:
            return ProcessOutcome(None)
    else:
        partitions, missing = plan_partitions(lake, request.securities, request.dates)
        for m in missing:
            note(m)
    refuse_half_published(lake, partitions)
    publish.prune_dropped_results(lake)  # results of partitions a re-shred left without orders
    with open_executor(cfg.run) as executor:
        result = run_jobs(
            cfg,
            lake,
            partitions,
            scenarios=request.scenarios,
            force=request.force or request.only_failed,
            executor=executor,
            progress=progress,
            command=request.command,
            faults=request.faults,
        )
    lake.clean_scratch()  # the workers are gone: what a killed one left goes too
    try:
        return _finish(cfg, lake, request, result)
    except DpsimError as exc:
        if not result.failed:
            raise
        # the failed jobs decide the exit code and the rerun command, which aggregates again
        return ProcessOutcome(result, finish_error=str(exc))


def _finish(cfg: Config, lake: Lake, request: ProcessRequest, result: RunResult) -> ProcessOutcome:
    """Aggregate (or only refresh the catalog)."""
    # imported here, not at the top: job workers import this module and need neither DuckDB nor SciPy,
    # and a run without aggregation needs no SciPy either
    if not request.aggregate:
        from dpsim.catalog import refresh_catalog

        refresh_catalog(lake)
        return ProcessOutcome(result)
    from dpsim.aggregate import headline, run_aggregates

    run_aggregates(cfg, lake)
    return ProcessOutcome(result, headline(lake))


def run_jobs(
    cfg: Config,
    lake: Lake,
    partitions: Sequence[PartitionKey],
    *,
    scenarios: Sequence[str] | None = None,
    force: bool = False,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    command: str = "",
    faults: str = "",
) -> RunResult:
    """Run every partition job (on `executor`, else on supervised local processes); returns the records.
    Holds the lake's "results" lock meanwhile."""
    with lake.lock("results"):
        return _run_jobs(
            cfg, lake, partitions, scenarios, force, executor, workers, progress, command, faults
        )


def _run_jobs(
    cfg: Config,
    lake: Lake,
    partitions: Sequence[PartitionKey],
    scenarios: Sequence[str] | None,
    force: bool,
    executor: Executor | None,
    workers: int | None,
    progress: Progress | None,
    command: str,
    faults: str,
) -> RunResult:
    progress = progress or SilentProgress()
    scen = tuple(scenarios or cfg.scenarios)
    chash = config_hash(cfg, scen)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    with lake.local_file(log_path(lake, run_id)) as log_file, _run_log(log_file):
        started = time.perf_counter()
        manifest: RunManifest[JobRecord] = RunManifest(
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
        tasks = _tasks(cfg, lake, partitions, scen, chash, faults, manifest, force)
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

                supervisor = Supervisor(
                    run_job,
                    lambda _task, rec: on_done(rec),
                    lambda lost: on_done(_lost_record(lost, cfg.run.job_timeout_s)),
                    workers=workers or cfg.run.effective_workers,
                    timeout_s=cfg.run.job_timeout_s,
                )
                supervisor.run(tasks, executor)
        finally:
            elapsed = round(time.perf_counter() - started, 3)
            manifest.flush(finished=datetime.now(UTC).isoformat(), seconds=elapsed)
    return RunResult(run_id, manifest.path, manifest.records, seconds=elapsed, unrecorded=manifest.error)


def _tasks(
    cfg: Config,
    lake: Lake,
    partitions: Sequence[PartitionKey],
    scenarios: tuple[str, ...],
    chash: str,
    faults: str,
    manifest: RunManifest[JobRecord],
    force: bool,
) -> list[JobTask]:
    """The jobs to run; partitions whose inputs and config are unchanged, and whose results are there, are
    recorded as skipped."""
    done = {} if force else completed_fingerprints(lake)
    have = lake.partitions_with_results(scenarios) if done else set()
    tasks: list[JobTask] = []
    for key, (inputs, names) in planned_inputs(lake, partitions).items():
        fp = f"{chash}:{inputs}"
        if done.get(str(key)) == fp and key in have:
            manifest.add(JobRecord(partition=str(key), status="skipped", fingerprint=fp, attempts=0))
        else:
            tasks.append(JobTask(str(lake.root), key, cfg, scenarios, fp, faults, names))
    return tasks


def _lost_record(lost: Lost[JobTask], timeout_s: float) -> JobRecord:
    """The failed record of a job that gave none."""
    task = lost.task
    if lost.reason == "crashed":
        return JobRecord(
            partition=str(task.key),
            status="failed",
            fingerprint=task.fingerprint,
            attempts=2,
            error="worker process died while running this job (killed, or out of memory); "
            "check its input size or the worker memory, then rerun with --only-failed",
        )
    if lost.reason == "timeout":
        return JobRecord(
            partition=str(task.key),
            status="failed",
            fingerprint=task.fingerprint,
            seconds=lost.seconds,
            error=f"timed out after {timeout_s:g} s (run.job_timeout_s); raise it or check the partition size",
        )
    assert lost.error is not None
    return JobRecord(
        partition=str(task.key), status="failed", fingerprint=task.fingerprint, error=_one_line(lost.error)
    )


class _QuietFileHandler(logging.FileHandler):
    """A run log that cannot be written (a full disk) loses lines, not the run: no traceback per record."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


@contextmanager
def _run_log(path: Path) -> Iterator[None]:
    """The run's log file gets the `dpsim` loggers' records at INFO and above while the run lasts."""
    handler = _QuietFileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("dpsim")
    level = root.level
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()

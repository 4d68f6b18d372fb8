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
import shlex
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from dpsim import __version__
from dpsim.compaction import compact
from dpsim.config import Config
from dpsim.errors import DpsimError, Interrupted, LakeError
from dpsim.job import JobRecord, JobTask, one_line, run_job
from dpsim.lake import Lake, PartitionKey, publish
from dpsim.lake.manifests import RunManifest, completed_fingerprints, last_failed, log_path
from dpsim.lake.migration import migrate_job_outputs
from dpsim.live import Heartbeat, JobBoard, session_fields
from dpsim.planning import (
    Planned,
    config_hash,
    describe_lake,
    input_fingerprints,
    plan_jobs,
    plan_partitions,
)
from dpsim.pools import Lost, Supervisor, open_executor
from dpsim.progress import Progress, SilentProgress

if TYPE_CHECKING:
    from upath import UPath

__all__ = [  # planning's functions are part of this module's interface (the CLI and tests use them here)
    "JobRecord",
    "JobTask",
    "ProcessOutcome",
    "ProcessRequest",
    "RunResult",
    "aggregate",
    "config_hash",
    "input_fingerprints",
    "last_failed",
    "plan",
    "plan_partitions",
    "process",
    "run_job",
    "run_jobs",
]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    manifest_path: UPath
    records: list[JobRecord]
    missing: list[str] = field(default_factory=list)  # requested partitions with no data
    seconds: float = 0.0
    manifest: RunManifest[JobRecord] | None = None  # the run's manifest (whether it could be written)

    @property
    def failed(self) -> list[JobRecord]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def unrecorded(self) -> str | None:
        """Why the run manifest could not be written (a full disk), if it could not."""
        return self.manifest.error if self.manifest is not None else None

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
    rerun: Sequence[str] = ()  # the command that reruns only the failed partitions (run manifest, message)


@dataclass
class ProcessOutcome:
    """What a session did: its run (None when --only-failed found nothing to rerun), the headline tables
    of the aggregates (headline, its paired test, quality summary) when it aggregated, and whether the
    aggregation was skipped because nothing changed since the last one."""

    run: RunResult | None
    headline: tuple[pa.Table, pa.Table, pa.Table] | None = None
    aggregates_unchanged: bool = False
    finish_error: str | None = None  # why the aggregation failed after some jobs failed, if it did

    @property
    def nothing_ran(self) -> bool:
        return self.run is not None and all(r.status == "skipped" for r in self.run.records)


@dataclass(frozen=True)
class Plan:
    """What a process run would do (`dpsim plan`, `process --dry-run`): every selected partition's
    verdict, the requested partitions without data, and whether the aggregates would be recomputed."""

    partitions: list[Planned]
    missing: list[str]
    aggregate: bool

    @property
    def to_run(self) -> list[Planned]:
        return [p for p in self.partitions if p.run]


def plan(cfg: Config, lake: Lake, request: ProcessRequest) -> Plan:
    """The verdict of every partition a `process` with this request would select; writes nothing."""
    scen = _scenarios(cfg, request)
    partitions, missing = _select(lake, request)
    planned = plan_jobs(cfg, lake, partitions, scen, request.force or request.only_failed)
    stale = request.aggregate and (any(p.run for p in planned) or not _aggregates_current(cfg, lake))
    return Plan(planned, missing, stale)


def process(
    cfg: Config,
    lake: Lake,
    request: ProcessRequest,
    *,
    progress: Progress | None = None,
    note: Callable[[str], None] = log.warning,
) -> ProcessOutcome:
    """The `dpsim process` session: plan, run the jobs whose partitions changed, record the run (live, in
    its manifest), aggregate unless nothing changed since the last aggregation (or refresh the catalog).

    Requested partitions without data are passed to `note` before the run; a selection that matches no
    partition is an error; failed jobs are in the result (`RunResult.failed`), not raised: the caller
    decides the exit code. Ctrl-C stops the workers and raises `Interrupted` (the run is recorded so).
    Holds the lake's "results" lock throughout (one writer of the results and aggregates).
    """
    progress = progress or SilentProgress()
    scen = _scenarios(cfg, request)
    with lake.lock("results"):
        partitions, missing = _select(lake, request)
        for m in missing:
            note(m)
        if request.only_failed and not partitions:
            return ProcessOutcome(None)
        refuse_half_published(lake, partitions)
        migrate_job_outputs(lake)  # a lake from before one file per partition: first, so pruning sees it all
        publish.prune_dropped_results(lake)  # results of partitions a re-shred left without orders
        planned = plan_jobs(cfg, lake, partitions, scen, request.force or request.only_failed)
        with _session(cfg, lake, scen, planned, request.command, request.rerun) as session:
            result = session.run(progress, request.faults)
            lake.clean_scratch()  # the workers are gone: what a killed one left goes too
            ran = not all(r.status == "skipped" for r in result.records)
            # what follows reads the run manifests, this one too (an object store must not replace it
            # meanwhile)
            session.heartbeat.pause()
            try:
                return _finish(cfg, lake, request, result, ran, session, progress)
            except DpsimError as exc:
                if not result.failed:
                    raise
                # the failed jobs decide the exit code and the rerun command, which aggregates again
                return ProcessOutcome(result, finish_error=str(exc))


def _finish(
    cfg: Config,
    lake: Lake,
    request: ProcessRequest,
    result: RunResult,
    ran: bool,
    session: _Session,
    progress: Progress,
) -> ProcessOutcome:
    """Aggregate (or only refresh the catalog), unless nothing changed since the last aggregation."""
    # imported here, not at the top: job workers import this module and need neither DuckDB nor SciPy,
    # and a run without aggregation needs no SciPy either
    if not request.aggregate:
        rebuild_catalog(cfg, lake)
        return ProcessOutcome(result)
    if not ran and _aggregates_current(cfg, lake):
        return ProcessOutcome(result, aggregates_unchanged=True)
    session.board.set_phase("aggregate")
    session.heartbeat.beat()
    return ProcessOutcome(result, aggregate(cfg, lake, progress))


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


def aggregate(
    cfg: Config, lake: Lake, progress: Progress | None = None
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """`dpsim aggregate`: every aggregate of the lake's results, what they were computed from recorded
    (so an unchanged lake is not aggregated again), and the headline tables."""
    from dpsim.aggregate import headline, run_aggregates

    with lake.lock("results"):
        run_aggregates(cfg, lake, progress=progress)
        lake.write_json({"fingerprint": _aggregates_fingerprint(cfg, lake)}, lake.aggregates_state_path)
        return headline(lake)


def rebuild_catalog(cfg: Config, lake: Lake, *, rescan: bool = False) -> list[str]:
    """The results compacted by date where their job outputs changed (on a lake from before
    results_by_date, or with `rescan`: every table walked), then the catalog's views rewritten; returns the
    view names."""
    from dpsim.catalog import refresh_catalog

    with lake.lock("results"):
        migrate_job_outputs(lake)  # `dpsim catalog` on a lake from before one file per partition
        compact(lake, cfg.aggregate, rescan=rescan)
        return refresh_catalog(lake)


def _aggregates_fingerprint(cfg: Config, lake: Lake) -> str:
    """Everything the aggregates depend on: each partition's latest results (their job fingerprints) and
    the configuration that the aggregation reads."""
    relevant = cfg.aggregation_settings()
    relevant["results"] = sorted(completed_fingerprints(lake).items())
    relevant["version"] = __version__
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _aggregates_current(cfg: Config, lake: Lake) -> bool:
    """Whether the aggregates were computed from the lake's present results with this configuration."""
    try:
        state = lake.read_json(lake.aggregates_state_path)
    except (OSError, ValueError):
        return False
    if not state or not (lake.aggregates_dir / "headline.parquet").exists():
        return False
    return bool(state.get("fingerprint") == _aggregates_fingerprint(cfg, lake))


def _scenarios(cfg: Config, request: ProcessRequest) -> tuple[str, ...]:
    unknown = [s for s in request.scenarios or () if s not in cfg.scenarios]
    if unknown:
        raise DpsimError(f"unknown scenario(s) {', '.join(unknown)}; configured: {', '.join(cfg.scenarios)}")
    return tuple(request.scenarios or cfg.scenarios)


def _select(lake: Lake, request: ProcessRequest) -> tuple[list[PartitionKey], list[str]]:
    """The requested partitions (or the last run's failed ones) and notes on requested ones without data;
    a selection that matches nothing is an error, not a run over nothing."""
    if not lake.partitions("orders"):
        raise DpsimError(f"{lake.root}: the lake has no orders partitions; run `dpsim shred` first")
    if request.only_failed:
        return last_failed(lake), []
    partitions, missing = plan_partitions(lake, request.securities, request.dates)
    if not partitions:
        asked = []
        if request.securities:
            asked.append("--securities " + ",".join(map(str, request.securities)))
        if request.dates:
            asked.append(f"--dates {request.dates[0]}..{request.dates[1]}")
        raise DpsimError(
            f"no partition matches {' '.join(asked)}: the lake {lake.root} holds {describe_lake(lake)}"
        )
    return partitions, missing


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
    scen = tuple(scenarios or cfg.scenarios)
    with lake.lock("results"):
        planned = plan_jobs(cfg, lake, partitions, scen, force)
        with _session(cfg, lake, scen, planned, command, (), executor=executor, workers=workers) as session:
            return session.run(progress or SilentProgress(), faults)


@dataclass
class _Session:
    """One process run: its manifest with the live status, kept current by a heartbeat thread."""

    cfg: Config
    lake: Lake
    scenarios: tuple[str, ...]
    planned: Sequence[Planned]
    manifest: RunManifest[JobRecord]
    board: JobBoard
    heartbeat: Heartbeat
    executor: Executor | None
    workers: int | None

    def run(self, progress: Progress, faults: str) -> RunResult:
        """The jobs of the planned partitions that changed; the unchanged ones are recorded as skipped."""
        cfg, lake, manifest, board = self.cfg, self.lake, self.manifest, self.board
        run_id = manifest.header["run_id"]
        tasks = []
        for p in self.planned:
            if p.run:
                tasks.append(
                    JobTask(str(lake.root), p.key, cfg, self.scenarios, p.fingerprint, faults, p.inputs)
                )
            else:
                manifest.add(
                    JobRecord(partition=str(p.key), status="skipped", fingerprint=p.fingerprint, attempts=0)
                )
        log.info(
            "run %s: %d partitions, %d to run, %d unchanged",
            run_id,
            len(self.planned),
            len(tasks),
            len(self.planned) - len(tasks),
        )
        started = time.perf_counter()
        try:
            if tasks:
                with progress.task("process", total=len(tasks)) as bar:

                    def on_done(rec: JobRecord) -> None:
                        board.finished(rec)
                        manifest.add(rec)
                        if rec.status == "failed":
                            log.error("job %s failed: %s", rec.partition, rec.error)
                        bar.advance(1, status=f"ok {board.ok}  failed {board.failed}")

                    supervisor = Supervisor(
                        run_job,
                        lambda _task, rec: on_done(rec),
                        lambda lost: on_done(_lost_record(lost, cfg.run.job_timeout_s)),
                        workers=self.workers or cfg.run.effective_workers,
                        timeout_s=cfg.run.job_timeout_s,
                        on_submit=lambda task: board.submitted(str(task.key)),
                    )
                    if self._in_process(tasks, faults):
                        board.submitted(str(tasks[0].key))
                        on_done(run_job(tasks[0]))
                    elif self.executor is not None:
                        supervisor.run(tasks, self.executor)
                    else:
                        with open_executor(cfg.run) as executor:
                            supervisor.run(tasks, executor)
        finally:
            elapsed = round(time.perf_counter() - started, 3)
            manifest.header.update(finished=datetime.now(UTC).isoformat(), seconds=elapsed)
        return RunResult(run_id, manifest.path, manifest.records, seconds=elapsed, manifest=manifest)

    def _in_process(self, tasks: Sequence[JobTask], faults: str) -> bool:
        """One job on the local executor runs here: a worker would cost its start-up and imports (about
        half a second) for nothing to run beside it. Injected faults (tests) always get a worker."""
        run = self.cfg.run
        return (
            len(tasks) == 1
            and self.executor is None
            and run.executor == "local"
            and run.single_job_in_process
            and not faults
        )


@contextmanager
def _session(
    cfg: Config,
    lake: Lake,
    scenarios: tuple[str, ...],
    planned: Sequence[Planned],
    command: str,
    rerun: Sequence[str],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
) -> Iterator[_Session]:
    """Open a run: its manifest (state running, rewritten every second by a heartbeat) and its log; on the
    way out the manifest gets its final state: finished, interrupted (Ctrl-C: raises `Interrupted`) or
    error (anything else, re-raised)."""
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    header = {
        "run_id": run_id,
        "kind": "process",
        "started": datetime.now(UTC).isoformat(),
        "command": command,
        "rerun": shlex.join(rerun) if rerun else "",
        "config_source": cfg.source,
        "config_hash": config_hash(cfg, scenarios),
        "scenarios": list(scenarios),
        "version": __version__,
        **session_fields(),
    }
    with lake.local_file(log_path(lake, run_id)) as log_file, _run_log(log_file):
        manifest: RunManifest[JobRecord] = RunManifest(lake, run_id, header)
        board = JobBoard(partitions=len(planned), to_run=sum(p.run for p in planned))
        heartbeat = Heartbeat(manifest, board.snapshot).start()
        session = _Session(cfg, lake, scenarios, planned, manifest, board, heartbeat, executor, workers)
        try:
            yield session
        except KeyboardInterrupt:
            heartbeat.stop("interrupted")
            raise Interrupted(
                f"interrupted: run {run_id} stopped, its finished partitions are kept ({manifest.path}); "
                "run the same command again to go on (they are skipped)"
            ) from None
        except BaseException as exc:
            heartbeat.stop("error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
            raise
        board.set_phase("done")
        heartbeat.stop("finished")


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
        partition=str(task.key), status="failed", fingerprint=task.fingerprint, error=one_line(lost.error)
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

"""One partition job on a worker: the task it receives, the record it returns, and its body.

Everything here crosses a process boundary (pickled to a pool worker or a Dask task), so it stays small:
a task names the partition, its input files and the config; a record carries counts, times and a
one-line error, never frames. `run_job` never raises: a job's failure is its record.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import time
import traceback
from dataclasses import dataclass

from dpsim.config import Config
from dpsim.errors import DpsimError, os_error_text
from dpsim.lake import Lake, PartitionKey
from dpsim.planning import RAW_INPUTS

log = logging.getLogger("dpsim.jobs")


@dataclass(frozen=True)
class JobTask:
    """Everything a worker needs: picklable, small (no frames)."""

    lake_root: str
    key: PartitionKey
    config: Config
    scenarios: tuple[str, ...]
    fingerprint: str
    # Fault injection for resilience tests: comma-separated "<action>:<sec>/<date>" with action kill (every
    # attempt), killonce (first attempt only; a marker file in the lake's _tmp remembers it), raise, sleep
    # (an hour), slow (2 s, then the job runs) or vanish (the partition's orders files are moved to the
    # lake's _tmp/faults before the job reads them).
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

        inputs = dict(zip(RAW_INPUTS, task.inputs, strict=True)) if task.inputs else None
        counts = process_partition(Lake(task.lake_root), task.key, task.config, task.scenarios, inputs)
        record.rows_in, record.rows_out, record.sweeps = counts.rows_in, counts.rows_out, counts.sweeps
    except BaseException as exc:  # a job must never take the worker (or the run) down with it
        if isinstance(exc, KeyboardInterrupt):
            raise
        record.status = "failed"
        record.error = one_line(exc)
        log.debug("job %s failed:\n%s", task.key, traceback.format_exc())
    record.seconds = round(time.perf_counter() - start, 4)
    record.worker_peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return record


def one_line(exc: BaseException) -> str:
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
        elif action == "slow":  # a job that takes 2 s longer, then runs as usual (a monitor has time to look)
            time.sleep(2.0)
        elif action == "vanish":
            marker.parent.mkdir(parents=True, exist_ok=True)
            for f in lake.partition_files("orders", key):
                os.replace(str(f), marker.with_name(f"vanished-{f.name}"))

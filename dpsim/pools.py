"""The one place that starts, supervises and replaces worker processes (partition jobs, shred pieces).

Work runs on a local process pool (spawned: Polars' thread pool is not fork-safe; workers are long-lived,
so each pays for the imports once) or on a Dask cluster through its concurrent.futures executor.
`run_supervised` keeps a bounded number of tasks in flight, so a broken pool only ever implicates those:
a worker that dies (killed, out of memory) breaks a local pool, which is replaced, and the tasks that were
running on it are retried one at a time to find the culprit; a task that overruns its timeout is failed
and its pool's workers are killed (the only way to stop it). Dask tasks are retried by the scheduler.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar

from dpsim.config import Run
from dpsim.errors import DpsimError

Task = TypeVar("Task")
Result = TypeVar("Result")


# ---- starting pools -----------------------------------------------------------------------------------


def process_pool(workers: int, *, quiet: bool = False) -> cf.ProcessPoolExecutor:
    """`workers` spawned processes; `quiet` workers log warnings and errors only (to stderr)."""
    return cf.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(quiet,),
    )


def _init_worker(quiet: bool) -> None:
    """Ctrl-C in a terminal reaches every process of its group: the parent stops the workers itself, so
    they ignore it instead of printing a traceback each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if quiet:
        logging.basicConfig(level=logging.WARNING)


@contextmanager
def open_executor(run: Run) -> Iterator[cf.Executor | None]:
    """None for `local` (the caller supervises its own crash-tolerant process pool), else a Dask executor.

    Dask tasks get `retries=run.max_retries`: a task whose worker is lost is resubmitted by the
    scheduler; tasks return only small records, so a retry costs one task.
    """
    if run.executor == "local":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise DpsimError(
            f"executor {run.executor!r} needs Dask: pip install 'dpsim[dask]' (or use --executor local)"
        ) from exc
    if run.executor.startswith("dask://"):
        address = run.executor.removeprefix("dask://")
        try:
            client = Client(f"tcp://{address}", timeout="10s")
        except OSError as exc:
            raise DpsimError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        cluster = None
    else:
        n = int(run.executor.split(":", 1)[1]) if ":" in run.executor else run.effective_workers
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        yield client.get_executor(retries=run.max_retries, pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def worker_pool(run: Run, n: int) -> Iterator[cf.Executor]:
    """`n` quiet local processes, or the cluster of `run.executor` (shred pieces: no supervision needed,
    a failed piece fails its source)."""
    if run.executor == "local":
        pool = process_pool(n, quiet=True)
        try:
            yield pool
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return
    with open_executor(replace(run, workers=n)) as executor:
        assert executor is not None
        yield executor


# ---- supervising tasks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lost(Generic[Task]):
    """A task that gave no result: its worker died, it overran the timeout, or the executor raised."""

    task: Task
    reason: Literal["crashed", "timeout", "error"]
    seconds: float = 0.0  # how long it ran (timeout)
    error: BaseException | None = None  # what the executor raised (error)


@dataclass(frozen=True)
class Supervisor(Generic[Task, Result]):
    """Runs `fn` over tasks; every task ends in exactly one `on_result` or `on_lost` call, in the parent."""

    fn: Callable[[Task], Result]
    on_result: Callable[[Task, Result], None]
    on_lost: Callable[[Lost[Task]], None]
    workers: int
    timeout_s: float
    on_submit: Callable[[Task], None] | None = None  # a task was handed to a worker (again, on a retry)

    def run(self, tasks: Iterable[Task], executor: cf.Executor | None = None) -> None:
        """On `executor` (a cluster: it retries lost workers itself), else on local pools that are replaced
        when a worker dies; the tasks that were running then are rerun alone to find the one that kills it."""
        pending = list(tasks)
        pending.reverse()  # pop() from the end keeps the given order
        if executor is not None:
            self.drain(executor, pending, in_flight_max=max(self.workers, 1), own_pool=False)
            return
        suspects: list[Task] = []
        while pending or suspects:
            if suspects:
                task = suspects.pop()
                with process_pool(1) as pool:
                    broken = self.drain(pool, [task], in_flight_max=1, own_pool=True)
                for t in broken:
                    self.on_lost(Lost(t, "crashed"))
                continue
            with process_pool(self.workers) as pool:
                suspects = self.drain(pool, pending, in_flight_max=self.workers, own_pool=True)

    def drain(
        self, pool: cf.Executor, pending: list[Task], *, in_flight_max: int, own_pool: bool
    ) -> list[Task]:
        """Submit from `pending` (consumed from the end) keeping `in_flight_max` running; returns the tasks
        lost to a broken pool (a task whose submit failed goes back to `pending`: it never started)."""
        in_flight: dict[cf.Future[Result], tuple[Task, float]] = {}
        try:
            return self._drain(pool, pending, in_flight, in_flight_max, own_pool)
        except KeyboardInterrupt:  # stop now: the running tasks would otherwise finish first
            if own_pool:
                kill_pool(pool)
            else:
                for fut in in_flight:
                    fut.cancel()
            raise

    def _drain(
        self,
        pool: cf.Executor,
        pending: list[Task],
        in_flight: dict[cf.Future[Result], tuple[Task, float]],
        in_flight_max: int,
        own_pool: bool,
    ) -> list[Task]:
        while pending or in_flight:
            while pending and len(in_flight) < in_flight_max:
                task = pending.pop()
                try:
                    in_flight[pool.submit(self.fn, task)] = (task, time.monotonic())
                except cf.process.BrokenProcessPool:  # a worker died since the last wait
                    pending.append(task)
                    return [t for t, _ in in_flight.values()]
                if self.on_submit is not None:
                    self.on_submit(task)
            done, _ = cf.wait(in_flight, timeout=self._next_check(in_flight), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                task, _t0 = in_flight.pop(fut)
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    return [task, *(t for t, _ in in_flight.values())]
                except Exception as exc:  # e.g. a distributed worker lost beyond its retries
                    self.on_lost(Lost(task, "error", error=exc))
                    continue
                self.on_result(task, result)
            late = self._late(in_flight) if own_pool else []
            if late:
                survivors = [t for t, _ in in_flight.values()]
                kill_pool(pool)
                return survivors
        return []

    def _next_check(self, in_flight: dict[cf.Future[Result], tuple[Task, float]]) -> float:
        """Seconds to wait for a result: at most 1 s, and no later than the first running task's deadline
        (so a timeout is enforced within a few hundredths of a second)."""
        if not in_flight:
            return 1.0
        first = min(t0 for _, t0 in in_flight.values()) + self.timeout_s
        return min(1.0, max(first - time.monotonic(), 0.0) + 0.01)

    def _late(self, in_flight: dict[cf.Future[Result], tuple[Task, float]]) -> list[Task]:
        """Fail (and take out of `in_flight`) the tasks running longer than the timeout."""
        now = time.monotonic()
        late = [(f, t, t0) for f, (t, t0) in in_flight.items() if now - t0 > self.timeout_s]
        for fut, task, t0 in late:
            in_flight.pop(fut)
            self.on_lost(Lost(task, "timeout", seconds=round(now - t0, 3)))
        return [task for _, task, _ in late]


def kill_pool(pool: cf.Executor) -> None:
    """Terminate a process pool's workers (the only way to stop a task that overran its timeout)."""
    procs = getattr(pool, "_processes", None) or {}
    for p in list(procs.values()):
        p.kill()
    pool.shutdown(wait=False, cancel_futures=True)

"""The one place that starts, supervises and replaces worker processes (partition jobs, shred pieces).

Work runs on a local process pool (spawned: Polars' thread pool is not fork-safe; workers are long-lived,
so each pays for the imports once) or on a Dask cluster through a concurrent.futures executor.
`run_supervised` keeps a bounded number of tasks in flight, so a broken pool only ever implicates those:
a worker that dies (killed, out of memory) breaks a local pool, which is replaced, and the tasks that were
running on it are retried one at a time to find the culprit. A task that overruns its timeout, counted
from when it starts on a worker (not from its submission: a worker's start-up is not the task's time), is
failed and stopped: a local pool's workers are killed (the only way to stop it), a Dask task is cancelled
and its worker restarted by its nanny. Dask tasks whose worker is lost are retried by the scheduler.

**No orphans.** Local workers die with the process that started them, however it ends (SIGKILL or SIGTERM
included): each sets the parent-death signal (Linux `PR_SET_PDEATHSIG`; elsewhere a thread watches the
parent). Dask's own worker processes (`dask-local`) exit when their parent's pipe closes.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Generic, Literal, TypeVar

from dpsim.config import Run
from dpsim.errors import DpsimError

Task = TypeVar("Task")
Result = TypeVar("Result")


# ---- starting pools -----------------------------------------------------------------------------------


PR_SET_PDEATHSIG = 1  # linux/prctl.h
log = logging.getLogger(__name__)


class LocalPool(cf.ProcessPoolExecutor):
    """A spawned process pool whose workers die with this process and report when each task starts."""

    def __init__(self, workers: int, *, quiet: bool = False) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.started: Any = ctx.SimpleQueue()  # tokens of tasks as they start on a worker
        super().__init__(
            max_workers=workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(os.getpid(), quiet, self.started, worker_env(workers)),
        )

    def started_tokens(self) -> list[int]:
        out = []
        while not self.started.empty():
            out.append(self.started.get())
        return out


def process_pool(workers: int, *, quiet: bool = False) -> LocalPool:
    """`workers` spawned processes; `quiet` workers log warnings and errors only (to stderr)."""
    return LocalPool(workers, quiet=quiet)


def worker_env(workers: int) -> dict[str, str]:
    """The environment each of `workers` processes on this machine runs with: Polars' thread pool sized to
    the worker's share of the cores. Polars sizes it to every core by default, so n workers would run n
    pools on the same cores: on 2 cores, two workers of one thread each took 0.92x the wall time and
    0.93x the CPU of two workers of two threads on a generated drop (whole commands, side by side). A
    POLARS_MAX_THREADS set by the user is kept."""
    if "POLARS_MAX_THREADS" in os.environ:
        return {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"POLARS_MAX_THREADS": str(max(1, cores // max(1, workers)))}


_started_queue: Any = None  # in a worker: where `_marked` reports a task's start


def _init_worker(parent: int, quiet: bool, started: Any, env: dict[str, str]) -> None:
    """First thing in every local worker: die with the parent, set its environment (before anything imports
    Polars), then set up logging. Ctrl-C in a terminal reaches every process of its group: the parent stops
    the workers itself, so they ignore it instead of printing a traceback each."""
    global _started_queue
    die_with_parent(parent)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _started_queue = started
    if quiet:
        logging.basicConfig(level=logging.WARNING)


def die_with_parent(parent: int) -> None:
    """Be killed when `parent` ends, however it ends: the kernel's parent-death signal on Linux, else a
    thread that polls the parent. A parent already gone by now (it died while this process started) ends
    this one at once."""
    armed = False
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="dpsim-parent-watch", daemon=True).start()


def _marked(fn: Callable[[Any], Any], token: int, task: Any) -> Any:
    """Run `fn(task)` on a local worker after telling the parent that the task started."""
    if _started_queue is not None:
        _started_queue.put(token)
    return fn(task)


class DaskExecutor(cf.Executor):
    """A Dask client as a concurrent.futures executor that can also tell which tasks started and stop one
    (cancel it and restart the worker running it: a running task cannot be interrupted otherwise)."""

    def __init__(self, client: Any, retries: int) -> None:
        self.client, self.retries = client, retries
        self._tasks: dict[cf.Future[Any], Any] = {}

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        task = self.client.submit(fn, *args, pure=False, retries=self.retries, **kwargs)
        out: cf.Future[Any] = cf.Future()

        def done(f: Any) -> None:
            if out.done():
                return
            try:
                out.set_result(f.result())
            except BaseException as exc:  # the task's error, a lost worker, a cancellation
                out.set_exception(exc)

        self._tasks[out] = task
        out.add_done_callback(lambda f: self._tasks.pop(f, None))
        task.add_done_callback(done)
        return out

    def running(self, futures: Iterable[cf.Future[Any]]) -> set[cf.Future[Any]] | None:
        """The futures whose task a worker is processing now (one scheduler call); None when the scheduler
        cannot tell (then they are timed from their submission)."""
        try:
            processing = {k for keys in self.client.processing().values() for k in keys}
        except Exception:
            return None
        return {f for f in futures if f in self._tasks and self._tasks[f].key in processing}

    def stop(self, fut: cf.Future[Any]) -> None:
        """Cancel a task and restart the worker that runs it (through its nanny)."""
        task = self._tasks.pop(fut, None)
        if task is None:
            return
        try:
            workers = [w for w, keys in self.client.processing().items() if task.key in keys]
        except Exception:
            workers = []
        task.cancel()
        if workers:
            try:
                self.client.restart_workers(workers, raise_for_error=False)
            except Exception as exc:  # no nanny: the worker keeps running the stuck task
                log.warning("could not restart Dask worker(s) %s: %s", ", ".join(workers), exc)

    def cancel(self, fut: cf.Future[Any]) -> None:
        """Cancel a task (a running one finishes on its worker: see `stop`)."""
        task = self._tasks.pop(fut, None)
        if task is not None:
            task.cancel()
        fut.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for task in list(self._tasks.values()):
                task.cancel()


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
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None, env=worker_env(n)
        )
        client = Client(cluster)
    try:
        yield DaskExecutor(client, run.max_retries)
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
                # one task more than workers waits in the pool's queue: a worker that finishes a job starts
                # the next at once instead of idling through the round trip to this process and back
                suspects = self.drain(pool, pending, in_flight_max=self.workers + 1, own_pool=True)

    def drain(
        self, pool: cf.Executor, pending: list[Task], *, in_flight_max: int, own_pool: bool
    ) -> list[Task]:
        """Submit from `pending` (consumed from the end) keeping `in_flight_max` running; returns the tasks
        lost to a broken pool (a task whose submit failed goes back to `pending`: it never started)."""
        in_flight: dict[cf.Future[Result], _InFlight[Task]] = {}
        try:
            return self._drain(pool, pending, in_flight, in_flight_max, own_pool)
        except KeyboardInterrupt:  # stop now: the running tasks would otherwise finish first
            if own_pool:
                kill_pool(pool)
            else:
                for fut in in_flight:
                    pool.cancel(fut) if isinstance(pool, DaskExecutor) else fut.cancel()
            raise

    def _drain(
        self,
        pool: cf.Executor,
        pending: list[Task],
        in_flight: dict[cf.Future[Result], _InFlight[Task]],
        in_flight_max: int,
        own_pool: bool,
    ) -> list[Task]:
        tokens = itertools.count()
        while pending or in_flight:
            while pending and len(in_flight) < in_flight_max:
                task = pending.pop()
                token = next(tokens)
                try:
                    if isinstance(pool, LocalPool):
                        fut = pool.submit(_marked, self.fn, token, task)
                    else:
                        fut = pool.submit(self.fn, task)
                except cf.process.BrokenProcessPool:  # a worker died since the last wait
                    pending.append(task)
                    return [f.task for f in in_flight.values()]
                # a plain executor tells nothing of starts: its tasks are timed from their submission
                stamped = isinstance(pool, LocalPool | DaskExecutor)
                in_flight[fut] = _InFlight(
                    task, token, time.monotonic(), None if stamped else time.monotonic()
                )
                if self.on_submit is not None:
                    self.on_submit(task)
            done, _ = cf.wait(in_flight, timeout=self._next_check(in_flight), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                task = in_flight.pop(fut).task
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    return [task, *(f.task for f in in_flight.values())]
                except Exception as exc:  # e.g. a distributed worker lost beyond its retries
                    self.on_lost(Lost(task, "error", error=exc))
                    continue
                self.on_result(task, result)
            _mark_started(pool, in_flight)
            late = self._late(in_flight)
            if late and isinstance(pool, DaskExecutor):
                for fut in late:
                    pool.stop(fut)
            elif late and own_pool:
                survivors = [f.task for f in in_flight.values()]
                kill_pool(pool)
                return survivors
        return []

    def _next_check(self, in_flight: dict[cf.Future[Result], _InFlight[Task]]) -> float:
        """Seconds to wait for a result: at most 1 s (starts are learned at each look), and no later than
        the first started task's deadline (so a timeout is enforced within a few hundredths of a second)."""
        starts = [r.started for r in in_flight.values() if r.started is not None]
        if not starts:
            return 1.0
        first = min(starts) + self.timeout_s
        return min(1.0, max(first - time.monotonic(), 0.0) + 0.01)

    def _late(self, in_flight: dict[cf.Future[Result], _InFlight[Task]]) -> list[cf.Future[Result]]:
        """Fail (and take out of `in_flight`) the tasks running longer than the timeout."""
        now = time.monotonic()
        late = [f for f, r in in_flight.items() if r.started is not None and now - r.started > self.timeout_s]
        for fut in late:
            record = in_flight.pop(fut)
            assert record.started is not None
            self.on_lost(Lost(record.task, "timeout", seconds=round(now - record.started, 3)))
        return late


@dataclass
class _InFlight(Generic[Task]):
    """A submitted task: when it was submitted, and when it started on a worker (None: not yet known)."""

    task: Task
    token: int
    submitted: float
    started: float | None


def _mark_started(pool: cf.Executor, in_flight: dict[cf.Future[Any], _InFlight[Any]]) -> None:
    """Stamp the tasks that started since the last look (local workers report it; Dask's scheduler is asked)."""
    now = time.monotonic()
    waiting = {f: r for f, r in in_flight.items() if r.started is None}
    if not waiting:
        return
    if isinstance(pool, LocalPool):
        by_token = {r.token: r for r in waiting.values()}
        for token in pool.started_tokens():
            if token in by_token:
                by_token[token].started = now
    elif isinstance(pool, DaskExecutor):
        running = pool.running(waiting)
        for fut in waiting if running is None else running:
            waiting[fut].started = now if running is not None else waiting[fut].submitted


def kill_pool(pool: cf.Executor) -> None:
    """Terminate a process pool's workers (the only way to stop a task that overran its timeout)."""
    procs = getattr(pool, "_processes", None) or {}
    for p in list(procs.values()):
        p.kill()
    pool.shutdown(wait=False, cancel_futures=True)

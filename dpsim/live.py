"""A session's live status: what a running `dpsim process` or `dpsim shred` writes into its run manifest
(about once a second, each write atomic) so that another process, `dpsim status` or `dpsim monitor`, even
on another machine of an object-store lake, can follow it; and how a reader tells a live run from a dead one.

Writers: a `JobBoard` (process: jobs ok / failed / retried / running, rate, ETA, worker memory, the slowest
and fastest partitions, failures) or a `ShredBoard` (the sources with bytes and rows), and a `Heartbeat`
that rewrites the manifest from a background thread. Readers: `summarise` turns a manifest into what
status and monitor show.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from dpsim.lake.manifests import RunManifest
from dpsim.progress import Progress

HEARTBEAT_S = 1.0  # how often a running session rewrites its manifest
# A running session of another machine whose manifest is older than this has stopped (killed, machine
# lost); while it aggregates it does not rewrite its manifest (the aggregation reads it), so longer then.
STALE_S = 30.0
STALE_AGGREGATING_S = 1800.0
RUNNING = "running"
ENDED = ("finished", "failed", "interrupted")  # the final states a session writes itself


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def session_fields() -> dict[str, Any]:
    """Who writes the manifest: the reader checks the process when the file stops changing."""
    return {"state": RUNNING, "pid": os.getpid(), "host": socket.gethostname(), "updated": now_iso()}


class _Record(Protocol):
    partition: str
    status: str
    seconds: float
    error: str | None


# ---- process runs ----------------------------------------------------------------------------------


@dataclass
class JobBoard:
    """The jobs of one process run as they go; every method is called from the session's main thread,
    `snapshot` also from the heartbeat's."""

    partitions: int  # selected
    to_run: int  # the others are unchanged (skipped)
    phase: str = "jobs"  # jobs | aggregate | done
    started: float = field(default_factory=time.monotonic)
    ok: int = 0
    failed: int = 0
    retried: int = 0
    running: dict[str, float] = field(default_factory=dict)  # partition -> when it was submitted
    attempts: dict[str, int] = field(default_factory=dict)
    times: list[tuple[float, str]] = field(default_factory=list)  # (seconds, partition) of ok jobs
    failures: list[dict[str, str]] = field(default_factory=list)
    jobs_seconds: float | None = None  # how long the jobs phase took, once it is over
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_phase(self, phase: str) -> None:
        """aggregate, then done: the jobs' rate and elapsed time stop at the end of the jobs phase."""
        with self._lock:
            if self.jobs_seconds is None:
                self.jobs_seconds = time.monotonic() - self.started
            self.phase = phase

    def submitted(self, partition: str) -> None:
        with self._lock:
            n = self.attempts.get(partition, 0) + 1
            self.attempts[partition] = n
            self.retried += n == 2  # a job counts once however often it is retried
            self.running[partition] = time.monotonic()

    def finished(self, record: _Record) -> None:
        with self._lock:
            self.running.pop(record.partition, None)
            if record.status == "ok":
                self.ok += 1
                self.times.append((record.seconds, record.partition))
            else:
                self.failed += 1
                self.failures.append({"partition": record.partition, "error": record.error or ""})

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            elapsed = self.jobs_seconds if self.jobs_seconds is not None else now - self.started
            done = self.ok + self.failed
            rate = done / elapsed if done and elapsed > 0 else None
            left = self.to_run - done
            times = sorted(self.times)
            running = sorted(self.running.items(), key=lambda kv: kv[1])
            return {
                "phase": self.phase,
                "partitions": self.partitions,
                "to_run": self.to_run,
                "skipped": self.partitions - self.to_run,
                "done": done,
                "ok": self.ok,
                "failed": self.failed,
                "retried": self.retried,
                "n_running": len(running),
                "running": [{"partition": p, "seconds": round(now - t0, 1)} for p, t0 in running[:20]],
                "elapsed_s": round(elapsed, 1),
                "rate_jobs_s": round(rate, 3) if rate else None,
                "eta_s": round(left / rate, 1) if rate and self.phase == "jobs" else None,
                "workers": worker_memory(),
                "slowest": [{"partition": p, "seconds": s} for s, p in reversed(times[-3:])],
                "fastest": [{"partition": p, "seconds": s} for s, p in times[:3]],
                "failures": self.failures[:50],
            }


def worker_memory() -> list[dict[str, Any]]:
    """pid and resident memory (MB) of this process's worker processes (local pools and a local Dask
    cluster: spawned interpreters); a remote cluster's workers are not seen (their jobs' peak RSS is)."""
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if not any("spawn_main" in part for part in child.cmdline()):
                continue
            out.append({"pid": child.pid, "rss_mb": round(child.memory_info().rss / 2**20, 1)})
        except psutil.Error:  # it ended meanwhile
            continue
    return sorted(out, key=lambda w: w["pid"])


# ---- shred sessions --------------------------------------------------------------------------------


@dataclass
class _Source:
    kind: str
    path: str
    size: int
    status: str = "waiting"  # waiting | running | shredded | skipped | failed
    bytes_done: int = 0
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    seconds: float = 0.0
    error: str | None = None


class ShredBoard:
    """The sources of one shred session as they go: bytes and rows read while a source streams (from its
    progress task), then its final counts."""

    def __init__(self, files: Mapping[str, Sequence[str]]) -> None:
        self.sources = [_Source(kind, path, _size(path)) for kind, paths in files.items() for path in paths]
        self.phase = "shred"  # shred | catalog | done
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def progress(self, inner: Progress) -> Progress:
        """`inner`, also recording the bytes and rows of every source's task into the board."""
        return _RecordingProgress(inner, self)

    def _find(self, description: str) -> _Source | None:
        """The source a progress task describes ("<kind> <file name>"): the first not yet finished."""
        for src in self.sources:
            if f"{src.kind} {Path(src.path).name}" == description and src.status in ("waiting", "running"):
                return src
        return None

    def advanced(self, description: str, n: float, fields: Mapping[str, Any]) -> None:
        with self._lock:
            src = self._find(description)
            if src is not None:
                src.status = "running"
                src.bytes_done = min(src.size, src.bytes_done + int(n))
                if isinstance(fields.get("rows_read"), int):
                    src.rows_read = fields["rows_read"]

    def finished(self, result: Any) -> None:
        """A source's final result (`shred.SourceResult`)."""
        with self._lock:
            for src in self.sources:
                if src.path == result.path and src.status in ("waiting", "running"):
                    src.status = result.status
                    src.bytes_done = src.size
                    src.rows_read, src.rows_written = result.rows_read, result.rows_written
                    src.rows_rejected, src.seconds = result.rows_rejected, round(result.seconds, 2)
                    src.error = result.error
                    return

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            elapsed = time.monotonic() - self.started
            total = sum(s.size for s in self.sources)
            # skipped sources are done at once: the rate counts only the bytes read
            skipped = sum(s.size for s in self.sources if s.status == "skipped")
            read = sum(s.bytes_done for s in self.sources if s.status != "skipped")
            rate = read / elapsed if read and elapsed > 0 else None
            left = total - skipped - read
            return {
                "phase": self.phase,
                "elapsed_s": round(elapsed, 1),
                "bytes_total": total,
                "bytes_done": read + skipped,
                "rate_mb_s": round(rate / 1e6, 2) if rate else None,
                "eta_s": round(left / rate, 1) if rate and self.phase == "shred" else None,
                "rows_read": sum(s.rows_read for s in self.sources),
                "rows_written": sum(s.rows_written for s in self.sources),
                "rows_rejected": sum(s.rows_rejected for s in self.sources),
                "sources": [
                    {
                        "kind": s.kind,
                        "file": Path(s.path).name,
                        "path": s.path,
                        "status": s.status,
                        "size": s.size,
                        "bytes_done": s.bytes_done,
                        "rows_read": s.rows_read,
                        "rows_written": s.rows_written,
                        "rows_rejected": s.rows_rejected,
                        "seconds": s.seconds,
                        "error": s.error,
                    }
                    for s in self.sources
                ],
            }


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


class _RecordingProgress:
    def __init__(self, inner: Progress, board: ShredBoard) -> None:
        self.inner, self.board = inner, board

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[Any]:
        board = self.board
        with self.inner.task(description, total, unit) as task:

            class _Task:
                def advance(self, n: float = 1, **fields: Any) -> None:
                    task.advance(n, **fields)
                    board.advanced(description, n, fields)

            yield _Task()

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.inner.table(title, columns, rows)


# ---- the heartbeat ----------------------------------------------------------------------------------


class Heartbeat:
    """Rewrites a session's manifest with `snapshot()` under `live` every `every_s` seconds from a daemon
    thread, until `stop`; the session writes the final state itself."""

    def __init__(
        self, manifest: RunManifest[Any], snapshot: Callable[[], dict[str, Any]], every_s: float = HEARTBEAT_S
    ) -> None:
        self.manifest, self.snapshot, self.every_s = manifest, snapshot, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dpsim-heartbeat", daemon=True)

    def beat(self, **extra: Any) -> None:
        self.manifest.flush(live=self.snapshot(), updated=now_iso(), **extra)

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def pause(self) -> None:
        """Write once more and stop rewriting until `stop`: before the session reads its own manifest
        (the catalog's `runs` view), which an object store must not replace while it is being read."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.beat()

    def stop(self, state: str, **extra: Any) -> None:
        """Stop the thread and write the final state."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.beat(state=state, **extra)

    def _run(self) -> None:
        while not self._stop.wait(self._interval()):
            try:
                self.beat()
            except Exception:  # a failed status write must not stop the run; the next one may succeed
                continue

    def _interval(self) -> float:
        """Longer for huge runs: the manifest lists every job (10,000 jobs: one write every 2 s)."""
        return max(self.every_s, len(self.manifest.records) / 5000)


# ---- reading -----------------------------------------------------------------------------------------


def effective_state(body: Mapping[str, Any], now: datetime | None = None) -> str:
    """The state a manifest says, except that a "running" session that stopped is "stopped": on this
    machine, its process is gone; on another, its manifest has not changed for `STALE_S` seconds
    (`STALE_AGGREGATING_S` while it aggregates)."""
    state = str(body.get("state") or ("finished" if body.get("finished") else "unknown"))
    if state != RUNNING:
        return state
    if body.get("host") == socket.gethostname():
        return RUNNING if _alive(body.get("pid")) else "stopped"
    try:
        updated = datetime.fromisoformat(str(body.get("updated")))
    except ValueError:
        return "stopped"
    age = ((now or datetime.now(UTC)) - updated).total_seconds()
    aggregating = (body.get("live") or {}).get("phase") == "aggregate"
    return "stopped" if age > (STALE_AGGREGATING_S if aggregating else STALE_S) else RUNNING


def _alive(pid: Any) -> bool:
    import psutil

    try:
        return isinstance(pid, int) and psutil.pid_exists(pid)
    except psutil.Error:
        return False


def summarise(body: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """What status and monitor show of one session's manifest (process or shred)."""
    kind = str(body.get("kind", "process"))
    live: dict[str, Any] = dict(body.get("live") or {})
    out: dict[str, Any] = {
        "run_id": body.get("run_id"),
        "kind": kind,
        "state": effective_state(body, now),
        "started": body.get("started"),
        "updated": body.get("updated") or body.get("finished"),
        "finished": body.get("finished"),
        "command": body.get("command", ""),
        "config_source": body.get("config_source"),
    }
    if kind == "shred":
        out.update(live)
        return out
    jobs = body.get("jobs") or []
    if not live:  # a manifest written before live status existed: counts from its jobs
        live = {
            "partitions": len(jobs),
            "to_run": sum(j.get("status") != "skipped" for j in jobs),
            "skipped": sum(j.get("status") == "skipped" for j in jobs),
            "ok": sum(j.get("status") == "ok" for j in jobs),
            "failed": sum(j.get("status") == "failed" for j in jobs),
            "failures": [
                {"partition": j["partition"], "error": j.get("error") or ""}
                for j in jobs
                if j.get("status") == "failed"
            ][:50],
        }
        live["done"] = live["ok"] + live["failed"]
    out.update(live)
    if out.get("failures") and body.get("rerun"):
        out["rerun"] = body["rerun"]
    return out

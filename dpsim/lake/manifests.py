"""The lake's records of what was done: source manifests (`_manifest/`) and run manifests (`_runs/`).

The one reader and writer of both, for shred, jobs, the catalog's views, status, monitor and the benchmarks.
A source manifest is one JSON object per source file (status running | shredded | failed, size, mtime,
fingerprint, rows, partitions, …); a run manifest is one JSON object per `dpsim process` run with a
`jobs` list (one record per partition: status ok | failed | skipped, fingerprint, timings, error), and
one per `dpsim shred` session in `_runs/shred/`. While a session runs its manifest also holds its live
`state` and `live` status (`dpsim.live`), rewritten atomically about once a second.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dpsim.errors import LakeError
from dpsim.lake.lake import Lake
from dpsim.lake.layout import PartitionKey, run_path

if TYPE_CHECKING:
    from upath import UPath

Record = TypeVar("Record")
log = logging.getLogger(__name__)


def now() -> str:
    """The manifests' timestamps: UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---- source manifests -------------------------------------------------------------------------------


def read_source(lake: Lake, source: str) -> dict[str, Any] | None:
    """A source's manifest, or None when it was never shredded."""
    body: dict[str, Any] | None = lake.read_json(lake.manifest_path(source))
    return body


def write_source(lake: Lake, source: str, body: dict[str, Any]) -> None:
    lake.write_json(body, lake.manifest_path(source))


def read_sources(lake: Lake) -> list[dict[str, Any]]:
    """Every source manifest of the lake, by source id."""
    folder = lake.manifest_dir
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def source_partitions(body: dict[str, Any] | None) -> list[PartitionKey]:
    """The partitions a source manifest lists (that may hold the source's files)."""
    return [PartitionKey.parse(text) for text in (body or {}).get("partitions", [])]


def unchanged(body: dict[str, Any] | None, path: str, st: os.stat_result) -> bool:
    """Whether a source was shredded from this very file (same path, size and mtime: no read needed)."""
    return bool(
        body
        and body.get("status") == "shredded"
        and body.get("path") == path
        and body.get("size") == st.st_size
        and body.get("mtime_ns") == st.st_mtime_ns
    )


# ---- run manifests ----------------------------------------------------------------------------------


class RunManifest(Generic[Record]):
    """`_runs/<run-id>.json` (or `path`), rewritten atomically as jobs finish (at most every `every_s`
    seconds) and by a session's heartbeat; safe to add to and flush from two threads.

    `Record`s are dataclasses (a job's record); the file lists them under `jobs` (a shred session has none).
    A write that fails (a full disk) does not stop the run: `error` keeps why, and the next flush tries again.
    """

    def __init__(
        self,
        lake: Lake,
        run_id: str,
        header: dict[str, Any],
        every_s: float = 2.0,
        path: UPath | None = None,
        with_jobs: bool = True,
    ) -> None:
        self.lake, self.header, self.every_s, self.with_jobs = lake, header, every_s, with_jobs
        self.path = path if path is not None else run_path(lake.root, run_id)
        self.records: list[Record] = []
        self._rows: list[dict[str, Any]] = []  # each record as written, converted once (not per flush)
        self.error: str | None = None  # why the last write failed; None once written
        self._last = 0.0
        self._lock = threading.Lock()

    def add(self, record: Record) -> None:
        """Keep a finished record (not changed afterwards), flushing when the last write is old enough."""
        row = asdict(record)  # type: ignore[call-overload]
        with self._lock:
            self.records.append(record)
            self._rows.append(row)
        if time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self, **extra: Any) -> bool:
        """Write the manifest; False (and `error` set, logged once) when it cannot be written."""
        with self._lock:
            self.header.update(extra)
            body = {**self.header}
            if self.with_jobs:
                body["jobs"] = self._rows
            self._last = time.monotonic()
            try:
                self.lake.write_json(body, self.path)
            except LakeError as exc:
                if self.error is None:
                    log.error("cannot record the run: %s", exc)
                self.error = str(exc)
                return False
            self.error = None
            return True


def log_path(lake: Lake, run_id: str) -> UPath:
    """The run's log file, beside its manifest."""
    return run_path(lake.root, run_id, ".log")


def read_runs(lake: Lake) -> Iterator[dict[str, Any]]:
    """Every readable run manifest, oldest first (run ids start with their UTC start time)."""
    folder = lake.runs_dir
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            yield json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue


def recent_sessions(lake: Lake, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent process runs and shred sessions, newest first (an unreadable file is left out:
    on an object store a reader may list a manifest a moment before it can read it)."""
    paths: list[UPath] = []
    for folder in (lake.runs_dir, lake.shred_runs_dir):
        if folder.is_dir():
            paths += folder.glob("*.json")
    paths.sort(key=lambda p: p.stem, reverse=True)  # run ids start with their UTC start time
    out = []
    for p in paths[:limit]:
        try:
            body = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        body.setdefault("kind", "shred" if p.parent.name == "shred" else "process")
        body.setdefault("run_id", p.stem)
        out.append(body)
    return out


def last_outcomes(lake: Lake) -> dict[str, dict[str, str]]:
    """partition -> {status ok | failed, fingerprint, run_id} of its latest job that ran (skips carry
    the previous outcome), over all run manifests: why a partition reruns or is skipped."""
    out: dict[str, dict[str, str]] = {}
    for body in read_runs(lake):
        for job in body.get("jobs", []):
            if job.get("status") in ("ok", "failed"):
                out[job["partition"]] = {
                    "status": job["status"],
                    "fingerprint": job.get("fingerprint", ""),
                    "run_id": body.get("run_id", ""),
                }
    return out


def latest_run(lake: Lake) -> dict[str, Any] | None:
    """The most recent run manifest, or None before the first run."""
    folder = lake.runs_dir
    runs = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not runs:
        return None
    body: dict[str, Any] = json.loads(runs[-1].read_text(encoding="utf-8"))
    return body


def completed_fingerprints(lake: Lake) -> dict[str, str]:
    """partition -> fingerprint of its latest successful job, over all previous run manifests."""
    done: dict[str, str] = {}
    for body in read_runs(lake):
        for job in body.get("jobs", []):
            if job.get("status") in ("ok", "skipped"):
                done[job["partition"]] = job.get("fingerprint", "")
            elif job.get("status") == "failed":
                done.pop(job["partition"], None)
    return done


def last_failed(lake: Lake) -> list[PartitionKey]:
    """Partitions that failed in the most recent run (for --only-failed)."""
    body = latest_run(lake) or {}
    return [
        PartitionKey.parse(job["partition"]) for job in body.get("jobs", []) if job.get("status") == "failed"
    ]

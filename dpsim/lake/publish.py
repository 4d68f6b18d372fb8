"""A source's files staged outside the lake, then committed whole or aborted: readers never see half a source.

    stage = begin_source(lake, kind, path, force=…)   # unchanged -> Unchanged(previous manifest)
    ... write the source's part files and rejects into stage.staging ...
    commit_source(lake, stage, {lake path: staged file}, staged rejects, result fields, details)
    abort_source(lake, stage, failed result fields)   # on any error: nothing of the source stays
    with stage.lock: …                                # releases the lock if interrupted (a no-op after
                                                      # the commit or abort, which release it)

One writer per source: `begin_source` takes the source's lake lock (`source-<id>`), held until the commit or
abort, so a second shred of the same source fails at once with one line naming the holder.

The manifest is written first with status "running", listing every partition that may hold the source's
files (those of its previous shred), and again before the files move (adding the new partitions), so an
interrupted shred is simply run again: it removes what the run left behind. Committing replaces this
source's older part files and nothing else, moves the staged files into place (renames, or uploads), and
writes the final manifest last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upath import UPath

from dpsim.lake import manifests
from dpsim.lake.lake import Lake
from dpsim.lake.layout import PartitionKey, source_id


@dataclass(frozen=True)
class Unchanged:
    """A source shredded before from this very file (same path, size and mtime): its manifest."""

    manifest: dict[str, Any]


@dataclass(frozen=True)
class SourceStage:
    """A source being shredded: where its files are staged and what the lake knew of it."""

    kind: str
    path: str
    source_id: str
    stat: os.stat_result
    stale: list[PartitionKey]  # partitions that may hold this source's files from an earlier run
    base: dict[str, Any]  # the manifest fields known from the start
    staging: Path  # local staging folder
    shared: UPath | None  # in-lake staging folder for cluster workers on other machines, if any
    started: float  # time.perf_counter() at the start
    lock: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # the source's lake lock

    def rejects_path(self, lake: Lake) -> UPath:
        """Where the source's rejects are published."""
        return lake.rejects_path(self.kind, self.source_id)


def begin_source(
    lake: Lake, kind: str, path: str, *, force: bool, shared: bool = False
) -> SourceStage | Unchanged:
    """Skip an unchanged source, or mark it running and prepare an empty staging folder (and, with
    `shared`, name an in-lake one for workers on other machines)."""
    sid = source_id(path)
    lock = contextlib.ExitStack()
    lock.enter_context(lake.lock(f"source-{sid}"))
    try:
        return _begin(lake, kind, path, sid, force, shared, lock)
    except BaseException:
        lock.close()
        raise


def _begin(
    lake: Lake, kind: str, path: str, sid: str, force: bool, shared: bool, lock: contextlib.ExitStack
) -> SourceStage | Unchanged:
    st = os.stat(path)
    prev = manifests.read_source(lake, sid)
    if not force and prev is not None and manifests.unchanged(prev, path, st):
        lock.close()
        return Unchanged(prev)
    stale = manifests.source_partitions(prev)
    base = {
        "kind": kind,
        "path": path,
        "source_id": sid,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "started_at": manifests.now(),
    }
    manifests.write_source(lake, sid, {**base, "status": "running", "partitions": [str(k) for k in stale]})
    staging = lake.staging_dir(sid)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return SourceStage(
        kind,
        path,
        sid,
        st,
        stale,
        base,
        staging,
        lake.shared_staging_dir(sid) if shared else None,
        time.perf_counter(),
        lock,
    )


def release(stage: SourceStage) -> None:
    """Release the source's lock (idempotent: `with stage.lock` releases it too)."""
    stage.lock.close()


def commit_source(
    lake: Lake,
    stage: SourceStage,
    parts: Mapping[UPath, Path | UPath],
    rejects: Path | None,
    result: Callable[[], dict[str, Any]],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Move the staged part files (lake path -> staged file) and rejects into the lake, replacing this
    source's older files and nothing else, then write the final manifest: the base fields, `result()`'s
    (called once the files are in place, so its time includes the publish), the time, then `details`.
    Returns that manifest."""
    keys = {_partition(lake, path) for path in parts}
    touched = sorted(set(stage.stale) | keys)
    # Record every partition that may hold this source's files before touching them, so an interrupted
    # publish is cleaned up by the next run.
    manifests.write_source(
        lake, stage.source_id, {**stage.base, "status": "running", "partitions": [str(k) for k in touched]}
    )
    lake.remove_source_parts(stage.kind, stage.source_id, touched, keep=set(parts))
    lake.put_many(parts)
    if rejects is not None:
        lake.put(rejects, stage.rejects_path(lake))
    else:
        stage.rejects_path(lake).unlink(missing_ok=True)
    _remove_staging(lake, stage)
    try:
        return _finish(lake, stage, result(), details)
    finally:
        release(stage)


def abort_source(lake: Lake, stage: SourceStage, result: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Remove everything of a failed source from the lake and its staging, then write the failed manifest
    (the base fields, `result()`'s: status, error, …, and the time). Returns that manifest."""
    lake.remove_source_parts(stage.kind, stage.source_id, stage.stale)
    stage.rejects_path(lake).unlink(missing_ok=True)
    _remove_staging(lake, stage)
    try:
        return _finish(lake, stage, result(), {})
    finally:
        release(stage)


def _finish(
    lake: Lake, stage: SourceStage, result: dict[str, Any], details: Mapping[str, Any]
) -> dict[str, Any]:
    body = {**stage.base, **result, "finished_at": manifests.now(), **details}
    manifests.write_source(lake, stage.source_id, body)
    return body


def _partition(lake: Lake, part: UPath) -> PartitionKey:
    """The partition of a part file's path (its two partition folders)."""
    key = PartitionKey.from_folders(part.parent.parent.name, part.parent.name)
    if key is None:
        raise ValueError(f"{part}: not a part file of a partition of {lake.root}")
    return key


def _remove_staging(lake: Lake, stage: SourceStage) -> None:
    if stage.shared is not None:
        lake.remove_tree(stage.shared)
    shutil.rmtree(stage.staging, ignore_errors=True)
    lake.tidy_scratch()

"""A source's files staged outside the lake, then committed whole or aborted: readers never see half a source.

    stage = begin_source(lake, kind, path, force=…)   # unchanged -> Unchanged(previous manifest)
    ... write the source's part files and rejects into stage.staging ...
    commit_source(lake, stage, {lake path: staged file}, staged rejects, result fields, details)
    abort_source(lake, stage, failed result fields)   # on any error: nothing of the source stays
    with stage.lock: …                                # releases the lock if interrupted (a no-op after
                                                      # the commit or abort, which release it)

One writer per source: `begin_source` takes the source's lake lock (`source-<id>`), held until the commit or
abort, so a second shred of the same source fails at once with one line naming the holder.

**Status.** The manifest says "running" while the source is read (the lake still holds its previous
version, whole, or nothing of it), "publishing" while its files move (the new files are renamed into
place first, then the old ones that were not replaced are removed, so no partition disappears
meanwhile), and "shredded" or "failed" at the end. A source left "publishing" by a crash holds a mix of
two shreds: `half_published` names it, `process` refuses its partitions with the command that repairs it,
dpsim's readers leave its files out, and rerunning `shred` completes it (it is not "shredded", so it is
shredded again, and the rerun removes what the crash left).

**Results follow their inputs.** An orders source that no longer has a partition (re-shredded with other
data, or failed) takes that partition's results with it, and the aggregates that counted them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpsim.lake import manifests
from dpsim.lake.lake import Lake
from dpsim.lake.layout import PartitionKey, source_id
from dpsim.lake.locks import LakeLocked
from dpsim.lake.store import make_dirs

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)


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
    # partitions its earlier shreds dropped (their results may still be waiting to be removed)
    dropped: tuple[PartitionKey, ...] = ()

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
    make_dirs(staging, exist_ok=False)
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
        tuple(PartitionKey.parse(t) for t in (prev or {}).get("dropped_partitions", [])),
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
    # publish is known as such (and cleaned up by the next run).
    _publishing(lake, stage, touched)
    lake.put_many(parts)  # the new files first: no partition disappears meanwhile
    lake.remove_source_parts(stage.kind, stage.source_id, touched, keep=set(parts))
    if rejects is not None:
        lake.put(rejects, stage.rejects_path(lake))
    else:
        stage.rejects_path(lake).unlink(missing_ok=True)
    _remove_staging(lake, stage)
    try:
        dropped = _dropped(lake, stage, keys)
        body = _finish(lake, stage, result(), {**details, "dropped_partitions": [str(k) for k in dropped]})
        _results_follow(lake, stage, dropped)
        return body
    finally:
        release(stage)


def abort_source(lake: Lake, stage: SourceStage, result: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Remove everything of a failed source from the lake and its staging, then write the failed manifest
    (the base fields, `result()`'s: status, error, …, and the time). Returns that manifest."""
    _publishing(lake, stage, stage.stale)
    lake.remove_source_parts(stage.kind, stage.source_id, stage.stale)
    stage.rejects_path(lake).unlink(missing_ok=True)
    _remove_staging(lake, stage)
    try:
        dropped = _dropped(lake, stage, set())
        body = _finish(lake, stage, result(), {"dropped_partitions": [str(k) for k in dropped]})
        _results_follow(lake, stage, dropped)
        return body
    finally:
        release(stage)


def half_published(lake: Lake) -> list[dict[str, Any]]:
    """Manifests of sources whose files are moving, or were moving when a crash stopped them."""
    return [m for m in manifests.read_sources(lake) if m.get("status") == "publishing"]


def crashed_publishes(lake: Lake, wait_s: float) -> list[dict[str, Any]]:
    """`half_published` sources whose shred is gone (a live one is waited for, up to `wait_s` each)."""
    out = []
    for body in half_published(lake):
        with lake.lock(f"source-{body['source_id']}", wait_s=wait_s):
            now = manifests.read_source(lake, body["source_id"])
        if now is not None and now.get("status") == "publishing":
            out.append(now)
    return out


def _publishing(lake: Lake, stage: SourceStage, partitions: Sequence[PartitionKey]) -> None:
    manifests.write_source(
        lake,
        stage.source_id,
        {**stage.base, "status": "publishing", "partitions": [str(k) for k in sorted(partitions)]},
    )


def _dropped(lake: Lake, stage: SourceStage, keys: set[PartitionKey]) -> list[PartitionKey]:
    """Partitions an orders source no longer has and that have no orders left at all (with those its
    previous shred dropped, still without orders): their results must go. Recorded in the manifest, so a
    process or aggregate removes them if this shred cannot (`prune_dropped_results`)."""
    if stage.kind != "orders":
        return []
    candidates = (set(stage.stale) | set(stage.dropped)) - keys
    return sorted(k for k in candidates if not lake.partition_files("orders", k))


def prune_dropped_results(lake: Lake) -> list[PartitionKey]:
    """Remove the results (and aggregates) of partitions that orders sources dropped and that still have
    no orders: what a shred could not remove while a process run held the results. Hold "results".
    Results of partitions whose raw files were deleted by hand are kept: only a shred's word counts."""
    dropped = {
        PartitionKey.parse(t)
        for body in manifests.read_sources(lake)
        if body.get("kind") == "orders"
        for t in body.get("dropped_partitions", [])
    }
    gone = [k for k in sorted(dropped) if not lake.partition_files("orders", k)]
    return lake.remove_results(gone) if gone else []


def _results_follow(lake: Lake, stage: SourceStage, gone: Sequence[PartitionKey]) -> None:
    """Remove the results (and the aggregates) of partitions that have no orders left: else the
    aggregates would count them next to their replacements. When a process run holds the results, it
    prunes them itself before it aggregates."""
    if not gone:
        return
    try:
        with lake.lock("results"):
            removed = lake.remove_results(gone)
    except LakeLocked:
        log.warning(
            "%s: the results of %d partition(s) without orders stay until the running process removes them",
            stage.path,
            len(gone),
        )
        return
    if removed:
        log.warning(
            "%s: removed the results of %d partition(s) that have no orders any more (%s) and the aggregates "
            "that counted them; `dpsim process` rebuilds the aggregates",
            stage.path,
            len(removed),
            ", ".join(map(str, removed[:5])) + (" ..." if len(removed) > 5 else ""),
        )


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

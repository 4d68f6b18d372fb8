"""One partitioned source as a transaction: begin (or skip), stream, then commit or abort it whole.

**Atomicity.** Part files are written to `<lake>/_tmp/shred/<source-id>/` and renamed into place only after
  the whole source has been read, so readers never see a half-shredded source. The source's manifest is
  written first with status "running" (listing every partition that may hold its files), and last with
  status "shredded": an interrupted shred is simply run again, and it removes what the run left behind.
  A failed source (corrupt compression, missing required column, ...) leaves no part file in the lake.

**Idempotence.** A source is skipped when its manifest says "shredded" for the same path, size and
  mtime (`os.stat`, no read): hashing 200 GB only to learn nothing changed would cost minutes. The manifest
  still stores an XXH3-128 fingerprint of the file's bytes, computed while streaming it (at ~25 GB/s).
  `force=True` re-shreds regardless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpsim import schema
from dpsim.config import Config
from dpsim.errors import InputError
from dpsim.lake import Lake, PartitionKey, publish
from dpsim.progress import Progress
from dpsim.shred.plan import Plan
from dpsim.shred.stream import SourceRun
from dpsim.shred.write import MAX_OPEN_FILES, PartWriter, RejectSink

if TYPE_CHECKING:
    from upath import UPath

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceResult:
    """What happened to one source file; the manifest JSON holds the same fields plus details."""

    kind: str
    path: str
    source_id: str
    size: int
    fingerprint: str
    rows_read: int
    rows_written: int
    rows_rejected: int
    partitions: list[str]  # "security_code/YYYY-MM-DD"
    files_written: int
    seconds: float
    status: str  # "shredded" | "skipped" (unchanged since the last shred) | "failed"
    error: str | None = None


def shred_source(
    kind: schema.RawKind, path: str, cfg: Config, lake: Lake, force: bool, progress: Progress
) -> SourceResult:
    src = publish.begin_source(lake, kind.name, path, force=force)
    if isinstance(src, publish.Unchanged):
        return skipped(src.manifest)
    with src.lock:  # released by the commit or abort; here too if interrupted
        return _shred_staged(kind, src, cfg, lake, progress)


def _shred_staged(
    kind: schema.RawKind, src: publish.SourceStage, cfg: Config, lake: Lake, progress: Progress
) -> SourceResult:
    path = src.path
    writer = PartWriter(
        kind,
        src.source_id,
        lake,
        src.staging,
        cfg.shred.row_group_rows,
        min(cfg.shred.max_open_partitions, MAX_OPEN_FILES),
    )
    rejects = RejectSink(src.staging / "rejects.parquet")
    run = SourceRun(kind, path, cfg, writer, rejects)
    try:
        with progress.task(f"{kind.name} {Path(path).name}", total=src.stat.st_size, unit="bytes") as task:
            run.stream(task)
        rejects.close()
        if run.rows_read != writer.rows + rejects.rows:
            raise RuntimeError(
                f"rows read {run.rows_read} != written {writer.rows} + rejected {rejects.rows}"
            )
        check_some_rows_kept(path, run.rows_read, writer.rows, rejects)
    except Exception as exc:  # one bad source must not stop the drop; the message names the file
        writer.abort()
        # rows read before the failure; nothing of the source is in the lake
        return fail_source(src, lake, exc, rejects, fingerprint=run.fingerprint, rows_read=run.rows_read)
    finally:
        writer.abort()  # a no-op unless interrupted (KeyboardInterrupt): the next run cleans the staging folder
    plan = run.plan
    assert plan is not None
    keys = writer.partitions
    return commit_source(
        src,
        lake,
        writer.staged_parts(),
        rejects,
        plan,
        fingerprint=run.fingerprint,
        rows_read=run.rows_read,
        rows_written=writer.rows,
        keys=keys,
        extra={"flushes": writer.flushes, "compacted_partitions": writer.compacted},
    )


TOP_REASONS = 3  # reasons named when every row of a source was rejected


def check_some_rows_kept(path: str, rows_read: int, rows_written: int, rejects: RejectSink) -> None:
    """A source whose every row was rejected is not shredded: it fails with its top reject reasons (a
    wrong unit or a wrong column is the usual cause, and an empty source would hide it)."""
    if rows_read == 0 or rows_written > 0:
        return
    top = "; ".join(f"{reason} ({n:,} rows)" for reason, n in rejects.reasons.most_common(TOP_REASONS))
    raise InputError(
        f"{path}: every one of its {rows_read:,} rows was rejected; top reasons: {top}; fix the export "
        "or the config (columns.aliases, time), then rerun"
    )


def fail_source(
    src: publish.SourceStage,
    lake: Lake,
    exc: Exception,
    rejects: RejectSink,
    *,
    fingerprint: str,
    rows_read: int,
) -> SourceResult:
    """Remove everything of a failed source from the lake and record why (the message names the file)."""
    error = failure_message(exc, src.path, lake)
    rejects.close()

    def failed() -> dict[str, Any]:
        return asdict(_result(src, "failed", fingerprint=fingerprint, rows_read=rows_read, error=error))

    manifest = publish.abort_source(lake, src, failed)
    LOG.error("%s", error)
    return _from_manifest(manifest)


def commit_source(
    src: publish.SourceStage,
    lake: Lake,
    parts: Mapping[UPath, Path | UPath],
    rejects: RejectSink,
    plan: Plan,
    *,
    fingerprint: str,
    rows_read: int,
    rows_written: int,
    keys: list[PartitionKey],
    extra: dict[str, Any],
) -> SourceResult:
    """Publish the staged files and the final manifest of a shredded source; log its figures."""

    def shredded() -> dict[str, Any]:  # called once the files are in place: its time includes the publish
        return asdict(
            _result(
                src,
                "shredded",
                fingerprint=fingerprint,
                rows_read=rows_read,
                rows_written=rows_written,
                rows_rejected=rejects.rows,
                partitions=[str(k) for k in keys],
                files_written=len(parts),
            )
        )

    details = {
        "rejects_by_reason": dict(rejects.reasons),
        "rejects_file": str(src.rejects_path(lake)) if rejects.rows else None,
        "columns": plan.header,
        "dropped_columns": plan.dropped,
        "null_columns": plan.missing,
        **extra,
    }
    manifest = publish.commit_source(
        lake, src, parts, rejects.path if rejects.rows else None, shredded, details
    )
    result = _from_manifest(manifest)
    LOG.info(
        "%s: %d rows read, %d written, %d rejected, %d partitions, %d files, %.1f s (%.1f MB/s)",
        src.path,
        rows_read,
        rows_written,
        rejects.rows,
        len(keys),
        len(parts),
        result.seconds,
        src.stat.st_size / 1e6 / max(result.seconds, 1e-9),
    )
    return result


def _result(
    src: publish.SourceStage,
    status: str,
    *,
    fingerprint: str,
    rows_read: int,
    rows_written: int = 0,
    rows_rejected: int = 0,
    partitions: list[str] | None = None,
    files_written: int = 0,
    error: str | None = None,
) -> SourceResult:
    """A source's result now (its seconds run from the start of the source)."""
    return SourceResult(
        kind=src.kind,
        path=src.path,
        source_id=src.source_id,
        size=src.stat.st_size,
        fingerprint=fingerprint,
        rows_read=rows_read,
        rows_written=rows_written,
        rows_rejected=rows_rejected,
        partitions=partitions or [],
        files_written=files_written,
        seconds=time.perf_counter() - src.started,
        status=status,
        error=error,
    )


def _from_manifest(manifest: dict[str, Any]) -> SourceResult:
    return SourceResult(**{f: manifest[f] for f in SourceResult.__dataclass_fields__})


def failure_message(exc: Exception, path: str, lake: Lake) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, OSError):
        return (
            f"{path}: I/O error ({exc}): check that the file is readable and that {lake.root} is writable "
            "and has free space, then rerun"
        )
    LOG.exception("shredding %s failed", path)
    return f"{path}: unexpected error: {exc!r}"


def skipped(prev: dict[str, Any]) -> SourceResult:
    fields = {f: prev[f] for f in SourceResult.__dataclass_fields__ if f in prev}
    return SourceResult(**{**fields, "seconds": 0.0, "status": "skipped", "error": None})

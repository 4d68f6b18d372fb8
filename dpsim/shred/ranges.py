"""Several processes: byte ranges of one large plain file, or several files at once.

**Several processes** (`shred.workers` > 1). A plain file larger than SPLIT_MIN_BYTES is cut into that many
  byte ranges, each boundary moved to just after a newline; each range is shredded by its own process
  (spawned; the header is parsed once by the parent) into its own staged files, published as piece k
  (`part-<source-id>[-k].parquet`), so a partition may have one file per range, each sorted. The parent
  hashes the file meanwhile, renumbers the rejects (lines of earlier ranges + 1) into one rejects file,
  writes one manifest, and publishes only when every range succeeded. Files that cannot be split
  (compressed, or small) are shredded whole, several at once, one per process. Each process gets
  `memory_budget_mb` / processes. One worker (the default) is the single-process path above.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dpsim import pools, schema
from dpsim.config import Config
from dpsim.errors import InputError
from dpsim.lake import Lake, PartitionKey, make_dirs, publish
from dpsim.progress import Progress, SilentProgress
from dpsim.shred.plan import Plan, make_plan
from dpsim.shred.read import (
    fingerprint_file,
    is_compressed,
    read_plain_header,
)
from dpsim.shred.source import (
    SourceResult,
    check_some_rows_kept,
    commit_source,
    fail_source,
    shred_source,
    skipped,
)
from dpsim.shred.stream import SourceRun, without_huge_pages
from dpsim.shred.write import MAX_OPEN_FILES, PartWriter, RejectSink

if TYPE_CHECKING:
    from upath import UPath

SPLIT_MIN_BYTES = 64 << 20  # with shred.workers > 1, a larger plain file is split into byte ranges


def shred_parallel(
    cfg: Config,
    lake: Lake,
    sources: list[tuple[schema.RawKind, str]],
    force: bool,
    progress: Progress,
) -> list[SourceResult]:
    """`shred.workers` > 1: a large plain file is split into byte ranges, one process each (one file at a
    time); the other files (compressed ones cannot be split) are shredded whole, one per process."""
    workers = cfg.shred.workers
    results: dict[int, SourceResult] = {}
    whole: list[int] = []
    for i, (kind, path) in enumerate(sources):
        if _splittable(path):
            results[i] = _shred_source_ranges(kind, path, cfg, lake, force, progress, workers)
        else:
            whole.append(i)
    if len(whole) == 1:
        i = whole[0]
        results[i] = shred_source(sources[i][0], sources[i][1], cfg, lake, force, progress)
    elif whole:
        child = _child_config(cfg, min(workers, len(whole)))
        with pools.worker_pool(cfg.run, min(workers, len(whole))) as pool:
            futures = {
                i: pool.submit(
                    _shred_source_child, sources[i][0].name, sources[i][1], child, str(lake.root), force
                )
                for i in whole
            }
            for i, fut in futures.items():
                results[i] = fut.result()
    return [results[i] for i in range(len(sources))]


def _splittable(path: str) -> bool:
    return not is_compressed(path) and os.path.getsize(path) > SPLIT_MIN_BYTES


def _child_config(cfg: Config, processes: int) -> Config:
    """Local processes share `shred.memory_budget_mb`; a Dask task has all of it (it runs on a worker whose
    `--memory-limit` the cluster sets, possibly alone on its machine)."""
    if cfg.run.executor != "local":
        return cfg
    return replace(
        cfg, shred=replace(cfg.shred, memory_budget_mb=max(1, cfg.shred.memory_budget_mb // processes))
    )


def _shred_source_child(kind: str, path: str, cfg: Config, root: str, force: bool) -> SourceResult:
    """One whole source in a worker process."""
    with without_huge_pages():
        return shred_source(schema.PARTITIONED_KINDS[kind], path, cfg, Lake(root), force, SilentProgress())


def byte_ranges(path: str, start: int, end: int, n: int) -> list[tuple[int, int]]:
    """[start, end) cut into at most n ranges, each boundary moved forward to just after a newline."""
    cuts = [start]
    with open(path, "rb") as f:
        for k in range(1, n):
            at = max(start + (end - start) * k // n, cuts[-1])
            if at >= end:
                break
            f.seek(at - 1)  # a boundary right after a newline stays where it is
            while True:
                data = f.read(1 << 16)
                nl = data.find(b"\n")
                if not data:
                    at = end
                    break
                if nl >= 0:
                    at = f.tell() - len(data) + nl + 1
                    break
            if at >= end:
                break
            if at > cuts[-1]:
                cuts.append(at)
    cuts.append(end)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


@dataclass
class _RangeResult:
    """What one byte range of a parallel shred produced (returned by its worker process)."""

    lines: int
    rows_written: int
    rejects_rows: int
    reasons: Counter[str]
    # partition -> its staged file; a local path, or with `in_lake` a path under the lake root
    staged: dict[PartitionKey, str]
    rejects: str | None  # staged rejects, `line` counted from 0 in the range
    in_lake: bool  # staged in the lake (`Lake.shared_staging_dir`), for a client on another machine
    flushes: int
    compacted: int


def _shred_range(
    kind: str,
    path: str,
    cfg: Config,
    plan: Plan,
    root: str,
    sid: str,
    staging: Path,
    span: tuple[int, int],
    in_lake: bool,
) -> _RangeResult:
    """One byte range of a plain file, in a worker process: its lines into its own staged files, uploaded
    to the lake's shared staging folder when the parent may be on another machine (`in_lake`)."""
    rk = schema.PARTITIONED_KINDS[kind]
    lake = Lake(root)
    if in_lake:  # the client's scratch path may not exist here: stage in this machine's own
        staging = lake.staging_dir(sid) / staging.name
    make_dirs(staging)
    writer = PartWriter(
        rk, sid, lake, staging, cfg.shred.row_group_rows, min(cfg.shred.max_open_partitions, MAX_OPEN_FILES)
    )
    rejects = RejectSink(staging / "rejects.parquet")
    threads = max(1, min(os.cpu_count() or 1, 8) // max(1, cfg.shred.workers))
    run = SourceRun(rk, path, cfg, writer, rejects, threads=threads)
    with without_huge_pages(), SilentProgress().task("", total=0) as task:
        try:
            run.stream(task, span, plan)
        finally:
            writer.abort()
            rejects.close()
    staged = {k: writer.staged(k, 0) for k in writer.partitions}
    staged_rejects = rejects.path if rejects.rows else None
    shared = lake.shared_staging_dir(sid) / staging.name

    def location(f: Path) -> str:
        return lake.key_of(shared / f.name) if in_lake else str(f)

    if in_lake:  # the client may be on another machine: hand the files over through the lake
        lake.put_many({shared / f.name: f for f in [*staged.values(), *filter(None, [staged_rejects])]})
        shutil.rmtree(staging, ignore_errors=True)
    return _RangeResult(
        lines=run.rows_read,
        rows_written=writer.rows,
        rejects_rows=rejects.rows,
        reasons=rejects.reasons,
        staged={k: location(f) for k, f in staged.items()},
        rejects=location(staged_rejects) if staged_rejects else None,
        in_lake=in_lake,
        flushes=writer.flushes,
        compacted=writer.compacted,
    )


def _staged_file(lake: Lake, part: _RangeResult, name: str) -> Path | UPath:
    return lake.root / name if part.in_lake else Path(name)


@dataclass
class _Tally:
    """What the parent learns of a ranged source as it goes (kept for the failed manifest too)."""

    fingerprint: str = ""
    rows_read: int = 0


def _shred_source_ranges(
    kind: schema.RawKind,
    path: str,
    cfg: Config,
    lake: Lake,
    force: bool,
    progress: Progress,
    workers: int,
) -> SourceResult:
    """A large plain file split into `workers` byte ranges cut at newlines, each shredded by its own process
    into its own staged files (range k publishes piece k: part-<source-id>[-k].parquet). The parent reads the
    header once, hashes the file while the ranges run, renumbers the rejects (lines of earlier ranges + 1
    for the header) into one rejects file, and publishes only when every range succeeded."""
    in_lake = not lake.is_local and cfg.run.executor != "local"  # workers may not share this machine's disk
    src = publish.begin_source(lake, kind.name, path, force=force, shared=in_lake)
    if isinstance(src, publish.Unchanged):
        return skipped(src.manifest)
    with src.lock:  # released by the commit or abort; here too if interrupted
        return _shred_ranges_staged(kind, src, cfg, lake, progress, workers, in_lake)


def _shred_ranges_staged(
    kind: schema.RawKind,
    src: publish.SourceStage,
    cfg: Config,
    lake: Lake,
    progress: Progress,
    workers: int,
    in_lake: bool,
) -> SourceResult:
    path = src.path
    rejects = RejectSink(src.staging / "rejects.parquet")
    tally = _Tally()
    try:
        header, data_start = read_plain_header(path)
        if header is None:
            raise InputError(f"{path}: the file is empty (no header line): re-export it")
        plan = make_plan(kind, path, header, cfg)
        spans = byte_ranges(path, data_start, src.stat.st_size, workers)
        parts = _run_ranges(kind, cfg, lake, src, plan, spans, in_lake, progress, tally)
        _merge_rejects(lake, parts, rejects, tally)
        written = sum(p.rows_written for p in parts)
        if tally.rows_read != written + rejects.rows:
            raise RuntimeError(f"rows read {tally.rows_read} != written {written} + rejected {rejects.rows}")
        check_some_rows_kept(path, tally.rows_read, written, rejects)
    except Exception as exc:
        return fail_source(src, lake, exc, rejects, fingerprint=tally.fingerprint, rows_read=tally.rows_read)
    targets = {
        lake.raw_part_path(kind.name, k, src.source_id, piece): _staged_file(lake, p, staged)
        for piece, p in enumerate(parts)
        for k, staged in p.staged.items()
    }
    return commit_source(
        src,
        lake,
        targets,
        rejects,
        plan,
        fingerprint=tally.fingerprint,
        rows_read=tally.rows_read,
        rows_written=written,
        keys=sorted({k for p in parts for k in p.staged}),
        extra={
            "flushes": sum(p.flushes for p in parts),
            "compacted_partitions": sum(p.compacted for p in parts),
            "byte_ranges": [list(span) for span in spans],
        },
    )


def _run_ranges(
    kind: schema.RawKind,
    cfg: Config,
    lake: Lake,
    src: publish.SourceStage,
    plan: Plan,
    spans: list[tuple[int, int]],
    in_lake: bool,
    progress: Progress,
    tally: _Tally,
) -> list[_RangeResult]:
    """Every range in its own process; the parent hashes the file meanwhile. A range's input error names
    its bytes (its line numbers count from the range's first line)."""
    child = _child_config(cfg, max(1, len(spans)))
    parts: list[_RangeResult] = []
    with (
        progress.task(f"{kind.name} {Path(src.path).name}", total=src.stat.st_size, unit="bytes") as task,
        pools.worker_pool(cfg.run, max(1, len(spans))) as pool,
    ):
        futures = [
            pool.submit(
                _shred_range,
                kind.name,
                src.path,
                child,
                plan,
                str(lake.root),
                src.source_id,
                src.staging / f"r{k}",
                span,
                in_lake,
            )
            for k, span in enumerate(spans)
        ]
        tally.fingerprint = fingerprint_file(src.path)  # the parent is idle meanwhile
        for fut, (a, b) in zip(futures, spans, strict=True):
            try:
                parts.append(fut.result())
            except InputError as exc:
                raise InputError(
                    f"{exc} (in bytes {a:,}-{b:,} of the file, shredded separately: line numbers "
                    "count from the first line of that range; rerun with shred.workers=1 for file lines)"
                ) from exc
            task.advance(b - a)
    return parts


def _merge_rejects(lake: Lake, parts: list[_RangeResult], rejects: RejectSink, tally: _Tally) -> None:
    """The ranges' rejects in one file, their lines renumbered to file lines (earlier ranges + the header)."""
    line = 2
    for part in parts:
        if part.rejects is not None:
            with _staged_file(lake, part, part.rejects).open("rb") as staged_rejects:
                for batch in pq.ParquetFile(staged_rejects).iter_batches():
                    table = pa.Table.from_batches([batch], schema=schema.REJECTS)
                    absolute = pc.add(table.column("line"), line)
                    rejects.add(table.set_column(1, "line", absolute), Counter())
        rejects.reasons.update(part.reasons)
        line += part.lines
        tally.rows_read += part.lines
    rejects.close()

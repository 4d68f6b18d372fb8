"""Stream raw CSV exports (plain, .gz, .zst) in bounded blocks into the lake's hive partitions, with rejects.

Design, and why:

- **Reading.** The file is read as stored through a counter (progress in bytes of the file) and an XXH3-128
  hash (the content fingerprint), inflated by ISA-L (gzip members) or zstandard (zstd frames), both checked for
  a stream that ends too early, and cut at newlines into blocks of `shred.block_size_mb`. Cutting the
  blocks ourselves, rather than using pyarrow's streaming reader, lets several blocks be parsed at once
  (that reader parses on one core): a pool of threads (pyarrow and Polars release the GIL) parses and
  writes while the main thread reads, decompresses and numbers the lines of each block in file order.
- **Parsing.** Each block is parsed by `pyarrow.csv.read_csv` with the canonical int64/string types of
  `schema.py` (no inference, so no drift between blocks; 19-digit ids stay exact) and an invalid-row handler
  that collects lines with the wrong field count. A block whose typed parse fails (a value that is not a
  number, invalid UTF-8, an unbalanced quote) is parsed again as strings and cast column by column with the
  same rules, so only the bad rows are rejected; if even that parse cannot be lined up with the lines (a
  quote opened mid-value swallows the next lines), that block is read line by line with the `csv` module.
  Value checks (required values, side, negative quantities, timestamp range) are vectorised Polars
  expressions. Blocks are cut at newlines, so a quoted value containing a newline is not supported: its
  lines are rejected ("unbalanced quote").
- **Line numbers.** `line` in the rejects is the 1-based physical line of the file (the header is line 1).
  An empty line is a reject ("empty line"), so `rows_read` is the number of physical lines after the header
  and `rows_read = rows_written + rows_rejected` holds exactly.
- **Partitioning.** The trading date is `tradingtime.trading_date` (zone conversion per row, DST-aware, with
  the day roll). Each block is grouped by (security_code, date) with one stable argsort and one Arrow
  `take`, then cut into zero-copy slices: several times cheaper than a group-by per partition.
- **Memory.** Slices are buffered per partition; memory is counted per parsed block (its slices share its
  buffers). The buffer gets what `shred.memory_budget_mb` leaves after the interpreter and the blocks in
  flight (see the memory model by BUDGET_USABLE). When buffered blocks exceed it, or more than
  `shred.max_open_partitions` partitions are buffered, the least recently touched partitions are flushed
  (exports are mostly time-ordered, so those are the finished ones) until half of either limit is left.
  A flush is appended, as row groups, to the partition's open Parquet file, so a time-ordered partition
  flushed many times is still one sorted file written once. At most min(`max_open_partitions`, 256) files
  stay open (least recently used closed first); a partition whose file was closed gets a second piece.
  Partitions with several pieces, out-of-order appends or many tiny row groups are rewritten as one
  sorted file at the end of the source. Memory is therefore bounded by the budget (plus one partition
  being compacted per thread), whatever the input size or the number of partitions. Transparent huge
  pages are turned off while shredding (see `_without_huge_pages`).
- **Writing.** zstd, statistics, `sorting_columns` (timestamp, sequence), dictionaries only for text
  columns (on int64 columns they cost 2-3x the write time for files no smaller), BYTE_STREAM_SPLIT int64
  pages (40 % less write time than plain pages, files no larger). Writes and closes run in
  the same thread pool as parsing, serialised per partition; files are opened directly (no filesystem
  lookup per file), which matters when a year-long export makes tens of thousands of small files.
- **Atomicity.** Part files are written to `<lake>/_tmp/shred/<source-id>/` and renamed into place only after
  the whole source has been read, so readers never see a half-shredded source. The source's manifest is
  written first with status "running" (listing every partition that may hold its files), and last with
  status "shredded": an interrupted shred is simply run again, and it removes what the run left behind.
  A failed source (corrupt compression, missing required column, ...) leaves no part file in the lake.
- **Several processes** (`shred.workers` > 1). A plain file larger than SPLIT_MIN_BYTES is cut into that many
  byte ranges, each boundary moved to just after a newline; each range is shredded by its own process
  (spawned; the header is parsed once by the parent) into its own staged files, published as piece k
  (`part-<source-id>[-k].parquet`), so a partition may have one file per range, each sorted. The parent
  hashes the file meanwhile, renumbers the rejects (lines of earlier ranges + 1) into one rejects file,
  writes one manifest, and publishes only when every range succeeded. Files that cannot be split
  (compressed, or small) are shredded whole, several at once, one per process. Each process gets
  `memory_budget_mb` / processes. One worker (the default) is the single-process path above.
- **Idempotence.** A source is skipped when its manifest says "shredded" for the same path, size and
  mtime (`os.stat`, no read): hashing 200 GB only to learn nothing changed would cost minutes. The manifest
  still stores an XXH3-128 fingerprint of the file's bytes, computed while streaming it (at ~25 GB/s).
  `force=True` re-shreds regardless.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import glob
import logging
import os
import shutil
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import xxhash
import zstandard
from isal import isal_zlib
from upath import UPath

from dpsim import pools, schema
from dpsim.catalog import refresh_catalog
from dpsim.config import Config, parse_hhmm
from dpsim.errors import InputError
from dpsim.lake import Lake, PartitionKey, manifests, publish, source_id
from dpsim.progress import Progress, SilentProgress
from dpsim.tradingtime import trading_date

LOG = logging.getLogger(__name__)

KINDS = ("orders", "trades", "nbbo", *schema.REFERENCE_KINDS)
REQUIRED_KINDS = ("orders",)

# Cell texts read as null (anything else that is not a number in an int64 column is a reject).
NULL_VALUES = ["", "NULL", "null", "NA", "N/A"]
# A partitioning timestamp outside [TS_MIN, TS_MAX) is a reject: it is garbage, not a trading day.
TS_MIN_DATE, TS_MAX_DATE = date(2000, 1, 1), date(2100, 1, 1)
TS_MIN = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
TS_MAX = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
# Columns that must not be negative, per kind.
NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "orders": (schema.QUANTITY, schema.LEAVES, schema.MATCHED),
    "trades": (schema.QUANTITY,),
    "nbbo": (),
}
SIDED_KINDS = ("orders", "trades")
# Header aliases of the small reference files (their columns are otherwise kept as found, lower-cased).
REFERENCE_ALIASES: dict[str, dict[str, str]] = {
    "reference": {
        "id": schema.SECURITY_CODE,
        "orderbookid": schema.SECURITY_CODE,
        "securitycode": schema.SECURITY_CODE,
    },
    "session": {
        "orderbookid": schema.SECURITY_CODE,
        "securitycode": schema.SECURITY_CODE,
        "id": schema.SECURITY_CODE,
    },
    "participants": {"id": schema.PARTICIPANT},
}

# Memory model (measured): peak RSS ~ interpreter and libraries + blocks in flight (each block of CSV is
# held as bytes, parsed, gathered and encoded: ~6x its size) + buffered rows. The buffer gets the rest.
BUDGET_USABLE = 0.85  # share of shred.memory_budget_mb planned for, the rest is allocator slack
FIXED_OVERHEAD = 300 << 20  # interpreter, Polars, pyarrow, open writers, allocator caches
BLOCK_FOOTPRINT = 6  # bytes of memory per byte of a block in flight
MIN_BUFFER = 64 << 20
REJECTS_SPILL_BYTES = 8 << 20  # rejects held in memory before they are appended to the rejects file
COMPRESSED_READ = 1 << 20  # bytes of a compressed file fed to the decompressor at a time
GZIP_WBITS = 16 + isal_zlib.MAX_WBITS  # the inflater reads (and checks) the gzip header and trailer
SPLIT_MIN_BYTES = 64 << 20  # with shred.workers > 1, a larger plain file is split into byte ranges
FINGERPRINT_PREFIX = "xxh3-128:"
MAX_OPEN_FILES = 256  # partition files kept open for appending (each holds a descriptor)
WRITE_BUFFER = 128 << 10  # bytes buffered per open partition file (at most MAX_OPEN_FILES of them)
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42  # linux/prctl.h
_ISAL_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]  # the stub declares an instance
_CORRUPT_ERRORS = (EOFError, _ISAL_ERROR, zstandard.ZstdError)


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


def shred_drop(
    cfg: Config,
    lake: Lake,
    *,
    inputs: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> list[SourceResult]:
    """The `dpsim shred` session: shred the drop (see `shred`), then refresh the lake's DuckDB catalog."""
    results = shred(cfg, lake, inputs=inputs, force=force, progress=progress)
    refresh_catalog(lake)
    return results


def shred(
    cfg: Config,
    lake: Lake,
    *,
    inputs: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> list[SourceResult]:
    """Shred every source file of a data drop into the lake; failed sources are reported, not raised.

    `inputs` maps kind -> globs and overrides `cfg.inputs` for the kinds it names. `progress` gets one
    bytes task per source file (the caller renders the summary table from the returned results).
    """
    progress = progress or SilentProgress()
    files = _resolve_inputs(cfg, inputs or {})
    results: list[SourceResult] = []
    with _without_huge_pages():
        if cfg.shred.workers > 1:
            sources = [
                (schema.PARTITIONED_KINDS[k], p)
                for k, ps in files.items()
                if k in schema.PARTITIONED_KINDS
                for p in ps
            ]
            results.extend(_shred_parallel(cfg, lake, sources, force, progress))
        for kind, paths in files.items():
            if kind in schema.PARTITIONED_KINDS and cfg.shred.workers > 1:
                continue
            if kind in schema.PARTITIONED_KINDS:
                for path in paths:
                    results.append(
                        _shred_source(schema.PARTITIONED_KINDS[kind], path, cfg, lake, force, progress)
                    )
            elif paths:
                results.extend(_shred_reference(kind, paths, lake, force))
    return results


@contextlib.contextmanager
def _without_huge_pages() -> Iterator[None]:
    """Turn transparent huge pages off for this process while shredding (Linux), then restore the setting.

    Arrow's allocator asks for huge pages and hands freed memory back to the OS, so every block re-faults
    and zeroes whole 2 MB pages: measured on a 500 MB file, half of the kernel time (4 s -> 2 s of 10 s)
    and 70 MB of peak RSS.
    """
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    previous = libc.prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) if libc is not None else -1
    if previous < 0 or libc is None or libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
        yield
        return
    try:
        yield
    finally:
        libc.prctl(PR_SET_THP_DISABLE, previous, 0, 0, 0)


def _resolve_inputs(cfg: Config, inputs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Expand the globs of every kind (absolute paths, sorted, de-duplicated); fail early on missing orders."""
    unknown = sorted(set(inputs) - set(KINDS))
    if unknown:
        raise InputError(f"unknown input kind(s) {', '.join(unknown)}: use {', '.join(KINDS)}")
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        globs = inputs[kind] if kind in inputs else getattr(cfg.inputs, kind)
        paths: dict[str, None] = {}
        for pattern in globs:
            matches = sorted(
                p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p)
            )
            if not matches:
                if kind in REQUIRED_KINDS:
                    raise InputError(
                        f"no {kind} file matches {pattern!r}: check inputs.{kind} in the config or --{kind}"
                    )
                LOG.warning("no %s file matches %r; carrying on without it", kind, pattern)
            for m in matches:
                paths[str(Path(m).resolve())] = None
        out[kind] = list(paths)
    return out


# ---- one partitioned source ---------------------------------------------------------------------


def _shred_source(
    kind: schema.RawKind, path: str, cfg: Config, lake: Lake, force: bool, progress: Progress
) -> SourceResult:
    src = publish.begin_source(lake, kind.name, path, force=force)
    if isinstance(src, publish.Unchanged):
        return _skipped(src.manifest)
    writer = _PartWriter(
        kind,
        src.source_id,
        lake,
        src.staging,
        cfg.shred.row_group_rows,
        min(cfg.shred.max_open_partitions, MAX_OPEN_FILES),
    )
    rejects = _RejectSink(src.staging / "rejects.parquet")
    run = _SourceRun(kind, path, cfg, writer, rejects)
    try:
        with progress.task(f"{kind.name} {Path(path).name}", total=src.stat.st_size, unit="bytes") as task:
            run.stream(task)
        rejects.close()
        if run.rows_read != writer.rows + rejects.rows:
            raise RuntimeError(
                f"rows read {run.rows_read} != written {writer.rows} + rejected {rejects.rows}"
            )
    except Exception as exc:  # one bad source must not stop the drop; the message names the file
        writer.abort()
        # rows read before the failure; nothing of the source is in the lake
        return _failed(src, lake, exc, rejects, fingerprint=run.fingerprint, rows_read=run.rows_read)
    finally:
        writer.abort()  # a no-op unless interrupted (KeyboardInterrupt): the next run cleans the staging folder
    plan = run.plan
    assert plan is not None
    keys = writer.partitions
    return _commit(
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


def _failed(
    src: publish.SourceStage,
    lake: Lake,
    exc: Exception,
    rejects: _RejectSink,
    *,
    fingerprint: str,
    rows_read: int,
) -> SourceResult:
    """Remove everything of a failed source from the lake and record why (the message names the file)."""
    error = _failure_message(exc, src.path, lake)
    rejects.close()
    result: list[SourceResult] = []

    def failed() -> dict[str, Any]:
        result.append(
            SourceResult(
                kind=src.kind,
                path=src.path,
                source_id=src.source_id,
                size=src.stat.st_size,
                fingerprint=fingerprint,
                rows_read=rows_read,
                rows_written=0,
                rows_rejected=0,
                partitions=[],
                files_written=0,
                seconds=time.perf_counter() - src.started,
                status="failed",
                error=error,
            )
        )
        return asdict(result[0])

    publish.abort_source(lake, src, failed)
    LOG.error("%s", error)
    return result[0]


def _commit(
    src: publish.SourceStage,
    lake: Lake,
    parts: Mapping[UPath, Path | UPath],
    rejects: _RejectSink,
    plan: _Plan,
    *,
    fingerprint: str,
    rows_read: int,
    rows_written: int,
    keys: list[PartitionKey],
    extra: dict[str, Any],
) -> SourceResult:
    """Publish the staged files and the final manifest of a shredded source; log its figures."""
    result: list[SourceResult] = []

    def shredded() -> dict[str, Any]:
        result.append(
            SourceResult(
                kind=src.kind,
                path=src.path,
                source_id=src.source_id,
                size=src.stat.st_size,
                fingerprint=fingerprint,
                rows_read=rows_read,
                rows_written=rows_written,
                rows_rejected=rejects.rows,
                partitions=[str(k) for k in keys],
                files_written=len(parts),
                seconds=time.perf_counter() - src.started,
                status="shredded",
            )
        )
        return asdict(result[0])

    details = {
        "rejects_by_reason": dict(rejects.reasons),
        "rejects_file": str(src.rejects_path(lake)) if rejects.rows else None,
        "columns": plan.header,
        "dropped_columns": plan.dropped,
        "null_columns": plan.missing,
        **extra,
    }
    publish.commit_source(lake, src, parts, rejects.path if rejects.rows else None, shredded, details)
    seconds = result[0].seconds
    LOG.info(
        "%s: %d rows read, %d written, %d rejected, %d partitions, %d files, %.1f s (%.1f MB/s)",
        src.path,
        rows_read,
        rows_written,
        rejects.rows,
        len(keys),
        len(parts),
        seconds,
        src.stat.st_size / 1e6 / max(seconds, 1e-9),
    )
    return result[0]


def _failure_message(exc: Exception, path: str, lake: Lake) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, OSError):
        return (
            f"{path}: I/O error ({exc}): check that the file is readable and that {lake.root} is writable "
            "and has free space, then rerun"
        )
    LOG.exception("shredding %s failed", path)
    return f"{path}: unexpected error: {exc!r}"


def _skipped(prev: dict[str, Any]) -> SourceResult:
    fields = {f: prev[f] for f in SourceResult.__dataclass_fields__ if f in prev}
    return SourceResult(**{**fields, "seconds": 0.0, "status": "skipped", "error": None})


# ---- column plan: header -> canonical columns -----------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How one file's header maps to the canonical columns of its kind (fixed for the whole file)."""

    kind: schema.RawKind
    path: str
    names: list[str]  # names given to pyarrow, in header order (canonical, or a placeholder for dropped ones)
    present: list[str]  # canonical columns found, in schema order
    header: dict[str, str]  # canonical -> raw header text
    dropped: list[str]  # raw headers not in the schema
    missing: list[str]  # optional lake columns absent from the file: written as nulls
    timezone: str
    day_roll: dtime

    @property
    def typed(self) -> dict[str, pa.DataType]:
        return {c: self.kind.columns[c] for c in self.present}

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.typed.items()))

    @property
    def sort_keys(self) -> list[str]:
        return [c for c in (schema.TIMESTAMP, schema.SEQUENCE) if c in self.present]


def _plan(kind: schema.RawKind, path: str, header_line: str, cfg: Config) -> _Plan:
    """Match the header through the alias map; a missing required column fails before any data is read."""
    fields = next(csv.reader([header_line]))
    extra_aliases = getattr(cfg.columns.aliases, kind.name, {})
    aliases = {
        **schema.DEFAULT_ALIASES.get(kind.name, {}),
        **{k.strip().lower(): v for k, v in extra_aliases.items()},
    }
    names: list[str] = []
    header: dict[str, str] = {}
    dropped: list[str] = []
    for i, raw in enumerate(fields):
        canon = aliases.get(raw.strip().lower(), raw.strip().lower())
        if canon not in kind.columns:
            dropped.append(raw)
            names.append(f"__dropped_{i}")
            continue
        if canon in header:
            raise InputError(
                f"{path}: header columns {header[canon]!r} and {raw!r} both map to {canon!r}: "
                f"remove one from the export or change columns.aliases.{kind.name} in the config"
            )
        header[canon] = raw
        names.append(canon)
    missing_required = [c for c in kind.required if c not in header]
    if missing_required:
        what = ", ".join(repr(c) for c in missing_required)
        raise InputError(
            f"{path}: required {kind.name} column {what} missing from the header (line 1 has: "
            f"{', '.join(fields)}): rename the header or map it with columns.aliases.{kind.name} in the config"
        )
    if dropped:
        LOG.info("%s: dropping columns not in the %s schema: %s", path, kind.name, ", ".join(dropped))
    present = [c for c in kind.columns if c in header]
    missing = [c for c in kind.lake_schema.names if c not in header]
    return _Plan(
        kind, path, names, present, header, dropped, missing, cfg.time.timezone, parse_hhmm(cfg.time.day_roll)
    )


# ---- reading: bytes as stored -> decompressed blocks -> line-aligned chunks --------------------------


class _StoredFile:
    """The file as stored on disk: every byte read is counted (progress) and hashed (fingerprint)."""

    def __init__(self, path: str, start: int = 0, end: int | None = None) -> None:
        """The whole file, or only bytes [start, end) (a byte range of a parallel shred: not hashed)."""
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.hash = xxhash.xxh3_128()
        self.consumed = 0
        self._left = None if end is None else end - start
        self._hashing = start == 0 and end is None
        if start:
            self._f.seek(start)

    def read(self, n: int = -1, /) -> bytes:
        if self._left is not None:
            n = self._left if n < 0 else min(n, self._left)
        data = self._f.read(n)
        if self._hashing:
            self.hash.update(data)
        if self._left is not None:
            self._left -= len(data)
        self.consumed += len(data)
        return data

    def fingerprint(self) -> str:
        """The content fingerprint of every byte read: XXH3-128, about 20x cheaper than SHA-256 (which
        took a tenth of a shred's CPU) and plenty to tell one export from another."""
        return f"{FINGERPRINT_PREFIX}{self.hash.hexdigest()}"

    def close(self) -> None:
        self._f.close()


def _compressed(path: str) -> bool:
    return path.lower().endswith((".gz", ".zst"))


def _decoded_blocks(stored: _StoredFile, path: str, block: int) -> Iterator[bytes]:
    """Decompressed content in blocks; a corrupt or truncated stream raises one of _CORRUPT_ERRORS."""
    name = path.lower()
    if name.endswith(".gz"):
        yield from _gunzip(stored, block)
    elif name.endswith(".zst"):
        yield from _unzstd(stored)
    else:
        while data := stored.read(block):
            yield data


def _gunzip(stored: _StoredFile, block: int) -> Iterator[bytes]:
    """gzip members one after another, inflated by ISA-L's zlib-compatible inflate (3-4x zlib's speed on
    this machine); it checks each member's CRC, and a stream that ends inside a member is an error. Output
    per call is capped at one block, so a pathological ratio cannot blow memory and a line-cut chunk stays
    under two blocks (which the memory model assumes for compressed input, see `_SourceRun._buffer_limit`)."""
    dobj = isal_zlib.decompressobj(GZIP_WBITS)
    in_member = False
    while buf := stored.read(COMPRESSED_READ):
        while buf:
            out = dobj.decompress(buf, block)
            if out:
                yield out
            if dobj.eof:
                buf, dobj, in_member = (
                    dobj.unused_data.lstrip(b"\0"),
                    isal_zlib.decompressobj(GZIP_WBITS),
                    False,
                )
            else:
                buf, in_member = dobj.unconsumed_tail, True
    if in_member:
        raise EOFError("the gzip stream ended in the middle of a member")


def _unzstd(stored: _StoredFile) -> Iterator[bytes]:
    """zstd frames one after another; unlike zstandard's stream reader, a truncated last frame is an error."""
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    in_frame = False
    while buf := stored.read(COMPRESSED_READ):
        while buf:
            out = dobj.decompress(buf)
            if out:
                yield out
            if dobj.eof:
                buf, dobj, in_frame = dobj.unused_data, dctx.decompressobj(), False
            else:
                buf, in_frame = b"", True
    if in_frame:
        raise EOFError("the zstd stream ended in the middle of a frame")


def _split_header(blocks: Iterator[bytes]) -> tuple[str | None, bytes]:
    """The first line (decoded, without BOM and line end) and the bytes after it."""
    parts: list[bytes] = []
    for data in blocks:
        parts.append(data)
        if b"\n" in data:
            break
    text = b"".join(parts)
    if not text:
        return None, b""
    cut = text.find(b"\n")
    head, rest = (text, b"") if cut < 0 else (text[:cut], text[cut + 1 :])
    return head.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r"), rest


def _line_chunks(blocks: Iterable[bytes], target: int) -> Iterator[bytes]:
    """Re-cut blocks into chunks of about `target` bytes that end at a newline (the last one may not)."""
    parts: list[bytes] = []
    size = 0
    for data in blocks:
        if not data:
            continue
        parts.append(data)
        size += len(data)
        if size < target:
            continue
        joined = b"".join(parts) if len(parts) > 1 else parts[0]
        cut = joined.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: keep collecting
            parts = [joined]
            continue
        yield joined[:cut]
        rest = joined[cut:]
        parts, size = ([rest], len(rest)) if rest else ([], 0)
    if size:
        yield b"".join(parts)


# ---- one source: stream, parse in threads, buffer, flush --------------------------------------------


@dataclass
class _ChunkResult:
    n_lines: int  # physical lines in the chunk
    parts: list[tuple[PartitionKey, pa.Table]]  # zero-copy slices of one block of `nbytes`
    nbytes: int
    rejects: pa.Table | None  # `line` counted from 0 within the chunk; made absolute in file order
    reasons: Counter[str]


class _ChunkError(Exception):
    """A chunk that cannot be read at all; the main thread adds the file name and line numbers."""


def _count_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


class _SourceRun:
    """Streams one source: the main thread reads and decompresses, a thread pool parses, the main thread buffers."""

    def __init__(
        self,
        kind: schema.RawKind,
        path: str,
        cfg: Config,
        writer: _PartWriter,
        rejects: _RejectSink,
        threads: int | None = None,
    ):
        self.kind, self.path, self.cfg = kind, path, cfg
        self.writer, self.rejects = writer, rejects
        self.plan: _Plan | None = None
        self.rows_read = 0
        self.fingerprint = ""
        self.workers = threads or max(1, min(os.cpu_count() or 1, 8))

    def stream(self, task: Any, byte_range: tuple[int, int] | None = None, plan: _Plan | None = None) -> None:
        """Shred the file; or, with `byte_range` and the `plan` of the file's header, only the lines in that
        range of a plain file (a parallel shred): rejects' `line` is then counted from 0 in the range."""
        block = max(1, int(self.cfg.shred.block_size_mb * (1 << 20)))
        stored = _StoredFile(self.path) if byte_range is None else _StoredFile(self.path, *byte_range)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="shred")
        buffers = _PartitionBuffers(
            self.writer,
            pool,
            self._buffer_limit(block, _compressed(self.path)),
            self.cfg.shred.max_open_partitions,
        )
        try:
            blocks = _decoded_blocks(stored, self.path, block)
            pending: deque[tuple[Future[_ChunkResult], int, bytes]] = deque()
            line = 2  # the next physical line to number (the header is line 1)
            if plan is None:
                header, rest = self._guard(lambda: _split_header(blocks), stored, lambda: 1)
                if header is None:
                    raise InputError(f"{self.path}: the file is empty (no header line): re-export it")
                plan = _plan(self.kind, self.path, header, self.cfg)
            else:
                line, rest = 0, b""
            self.plan = plan
            reported = 0
            started = time.perf_counter()

            def consume() -> None:
                """Take the oldest chunk's result: chunks are numbered and buffered in file order."""
                nonlocal reported, line
                fut, consumed, data = pending.popleft()
                try:
                    res = fut.result()
                except _ChunkError as exc:
                    raise InputError(
                        f"{self.path}: lines {line:,}-{line + _count_lines(data) - 1:,}: {exc}"
                    ) from exc
                if res.rejects is not None:
                    absolute = pc.add(res.rejects.column("line"), line)
                    self.rejects.add(res.rejects.set_column(1, "line", absolute), res.reasons)
                line += res.n_lines
                self.rows_read += res.n_lines
                buffers.add(res.parts, res.nbytes)
                rate = self.rows_read / max(time.perf_counter() - started, 1e-9)
                task.advance(consumed - reported, rows=f"{self.rows_read:,} ({rate:,.0f}/s)")
                reported = consumed

            def next_line() -> int:
                return line + sum(_count_lines(d) for _, _, d in pending)

            chunks = _line_chunks(chain([rest], blocks), block)
            while (data := self._guard(lambda: next(chunks, None), stored, next_line)) is not None:
                pending.append((pool.submit(_parse_chunk, data, plan), stored.consumed, data))
                while len(pending) > self.workers + 1:
                    consume()
            while pending:
                consume()
            task.advance(stored.consumed - reported)
            buffers.flush_all()
            self.writer.finish(pool)
            self.fingerprint = stored.fingerprint()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            stored.close()

    def _buffer_limit(self, block: int, compressed: bool) -> int:
        """Bytes of parsed rows to buffer: what the budget leaves after the fixed part and the chunks in flight.

        A plain file is read a block at a time, so a line-cut chunk is about one block; decompressed pieces
        (at most a block each) pile up past the block size before the cut, so a chunk can reach two blocks:
        a 5 GB .gz shred peaked 4 MB over its budget when chunks were counted as one block.
        """
        budget = self.cfg.shred.memory_budget_mb << 20
        chunk = 2 * block if compressed else block
        reserved = FIXED_OVERHEAD + (self.workers + 2) * chunk * BLOCK_FOOTPRINT
        limit = int(budget * BUDGET_USABLE) - reserved
        if limit < MIN_BUFFER:
            LOG.warning(
                "shred.memory_budget_mb=%d is tight: about %d MB go to %d threads parsing %.0f MB chunks; "
                "buffering %d MB only (more, smaller flushes); raise the budget or lower shred.block_size_mb",
                self.cfg.shred.memory_budget_mb,
                (reserved >> 20),
                self.workers,
                chunk / 2**20,
                MIN_BUFFER >> 20,
            )
            limit = MIN_BUFFER
        return limit

    def _guard(self, step: Any, stored: _StoredFile, line: Any) -> Any:
        """Run a read step, turning a decompression error into a clear per-file error."""
        try:
            return step()
        except _CORRUPT_ERRORS as exc:
            raise InputError(
                f"{self.path}: compressed stream is corrupt or truncated after {stored.consumed:,} bytes "
                f"(near line {line():,}; {exc}): re-export or re-copy the file"
            ) from exc


# ---- parsing one chunk (runs in a worker thread) ------------------------------------------------------


class _Lines:
    """Line offsets of a chunk, computed only when a chunk needs them (rejects, quotes)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        arr = np.frombuffer(data, np.uint8)
        nl = np.flatnonzero(arr == 10)
        self.ends = nl if data.endswith(b"\n") else np.append(nl, len(data))
        self.starts = np.concatenate(([0], nl + 1))[: len(self.ends)]

    def __len__(self) -> int:
        return len(self.ends)

    def text(self, i: int) -> str:
        return self.data[self.starts[i] : self.ends[i]].decode("utf-8", "replace").removesuffix("\r")

    def odd_quotes(self) -> np.ndarray:
        """Lines with an odd number of double quotes (a quoted value left open)."""
        quotes = np.flatnonzero(np.frombuffer(self.data, np.uint8) == 34)
        counts = np.bincount(np.searchsorted(self.ends, quotes), minlength=len(self))
        return counts % 2 == 1

    def bad_utf8(self) -> np.ndarray:
        out = np.zeros(len(self), dtype=bool)
        for i, (s, e) in enumerate(zip(self.starts, self.ends, strict=True)):
            try:
                self.data[s:e].decode("utf-8")
            except UnicodeDecodeError:
                out[i] = True
        return out

    def keep(self, index: np.ndarray) -> bytes:
        """The chunk with only the lines in `index` (each with its newline)."""
        mask = np.zeros(len(self), dtype=bool)
        mask[index] = True
        lengths = np.minimum(self.ends + 1, len(self.data)) - self.starts
        return np.frombuffer(self.data, np.uint8)[np.repeat(mask, lengths)].tobytes()


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_csv(data: bytes, plan: _Plan, typed: bool) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The CSV reader on one chunk; lines with the wrong field count come back as (line index, reason)."""
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: Any) -> str:  # row.number: the line within `data`, known to the serial reader
        invalid.append((row.number - 1, _wrong_count(row.actual_columns, row.expected_columns)))
        return "skip"

    types = plan.typed if typed else {c: pa.string() for c in plan.present}
    table = pacsv.read_csv(
        pa.py_buffer(data),
        # One parser block per chunk: contiguous columns make the later gather several times faster.
        read_options=pacsv.ReadOptions(column_names=plan.names, use_threads=False, block_size=len(data) + 1),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=plan.present,
            null_values=NULL_VALUES,
            strings_can_be_null=True,
        ),
    )
    return table, invalid


def _parse_chunk(data: bytes, plan: _Plan) -> _ChunkResult:
    """Parse, validate and split one chunk; every physical line ends up in a part or in the rejects."""
    # Without quotes or carriage returns the CSV reader splits rows exactly at newlines, so the rows it
    # returns plus the invalid ones are the physical lines: no need to count them.
    n_lines = None if b'"' not in data and b"\r" not in data else _count_lines(data)
    lines: _Lines | None = None
    table: pa.Table | None = None
    invalid: list[tuple[int, str]] = []  # (index among the lines given to the reader, reason)
    if _is_utf8(data) and (b'"' not in data or not (lines := _Lines(data)).odd_quotes().any()):
        try:
            table, invalid = _read_csv(data, plan, typed=True)
        except pa.ArrowInvalid:
            table = None
        if table is not None and n_lines is None:
            n_lines = table.num_rows + len(invalid)
        elif table is not None and table.num_rows + len(invalid) != n_lines:
            table = None
    if n_lines is None:
        n_lines = _count_lines(data)
    rel: list[np.ndarray] = []  # line numbers (from 0 in the chunk) of rejects, and their reasons, in blocks
    why: list[list[str]] = []
    unparseable: pl.Series | None = None
    fed: np.ndarray | None = None  # the lines given to the reader, when not all of them
    if table is not None:
        df = pl.from_arrow(table)
    else:
        lines = lines or _Lines(data)
        bad_text = lines.bad_utf8() if not _is_utf8(data) else np.zeros(len(lines), dtype=bool)
        odd = lines.odd_quotes() & ~bad_text
        for mask, text in ((bad_text, "invalid UTF-8"), (odd, "unbalanced quote")):
            if mask.any():
                rel.append(np.flatnonzero(mask))
                why.append([text] * int(mask.sum()))
        fed = np.flatnonzero(~(bad_text | odd))
        strings, invalid = _read_strings(lines, fed, plan)
        df, unparseable = _cast_strings(strings, plan)
        table = df.to_arrow().cast(plan.schema)
    assert isinstance(df, pl.DataFrame)
    fed_lines = np.arange(n_lines) if fed is None else fed
    inv_idx = np.array([i for i, _ in invalid], dtype=np.int64)
    if invalid:
        rel.append(fed_lines[inv_idx])
        why.append([r for _, r in invalid])
    reason = _reasons(df, plan, unparseable)
    if reason is not None:
        bad = reason.is_not_null()
        rel.append(np.delete(fed_lines, inv_idx)[np.flatnonzero(bad.to_numpy())])
        why.append(reason.filter(bad).to_list())
        table = table.filter(pa.array(~bad.to_numpy()))
    rejects, reasons = None, Counter[str]()
    if rel:
        lines = lines or _Lines(data)
        line_idx = np.concatenate(rel)
        texts = [lines.text(int(i)) for i in line_idx]
        reason_list = [r for block in why for r in block]
        reason_list = ["empty line" if not t else r for t, r in zip(texts, reason_list, strict=True)]
        reasons.update(r.split(": ", 1)[0] for r in reason_list)
        rejects = pa.table(
            {
                "source": pa.array([plan.path] * len(texts), pa.string()),
                "line": pa.array(line_idx),
                "reason": pa.array(reason_list, pa.string()),
                "raw": pa.array(texts, pa.string()),
            },
            schema=schema.REJECTS,
        ).sort_by("line")
    if table.num_rows + (0 if rejects is None else rejects.num_rows) != n_lines:  # a safety net, never seen
        raise _ChunkError("the parsed rows do not match the lines of the file: check the file's format")
    parts, nbytes = _split(table, plan)
    return _ChunkResult(n_lines, parts, nbytes, rejects, reasons)


def _read_strings(lines: _Lines, fed: np.ndarray, plan: _Plan) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """Every column as text, for a chunk the typed read refused: by the CSV reader, or line by line with
    the csv module when the reader's rows do not line up with the lines (a quote opening mid-value would
    swallow the lines after it)."""
    if len(fed):
        try:
            data = lines.data if len(fed) == len(lines) else lines.keep(fed)
            table, invalid = _read_csv(data, plan, typed=False)
            if table.num_rows + len(invalid) == len(fed):
                return _frame(table), invalid
        except pa.ArrowInvalid:
            pass
    return _read_lines_one_by_one(lines, fed, plan)


def _read_lines_one_by_one(
    lines: _Lines, fed: np.ndarray, plan: _Plan
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    width = len(plan.names)
    index = [plan.names.index(c) for c in plan.present]
    columns: list[list[str | None]] = [[] for _ in index]
    invalid: list[tuple[int, str]] = []
    nulls = set(NULL_VALUES)
    for j, i in enumerate(fed):
        text = lines.text(int(i))
        try:  # an empty line is a row of nulls, as the CSV reader gives it
            fields = next(csv.reader([text])) if text else [""] * width
        except csv.Error as exc:
            invalid.append((j, f"unparseable line: {exc}"))
            continue
        if len(fields) != width:
            invalid.append((j, _wrong_count(len(fields), width)))
            continue
        for column, k in zip(columns, index, strict=True):
            column.append(None if fields[k] in nulls else fields[k])
    return pl.DataFrame(
        {c: pl.Series(c, v, pl.String) for c, v in zip(plan.present, columns, strict=True)}
    ), invalid


def _frame(table: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def _wrong_count(fields: int, expected: int) -> str:
    return f"wrong field count: {fields} fields, expected {expected}"


def _cast_strings(df: pl.DataFrame, plan: _Plan) -> tuple[pl.DataFrame, pl.Series | None]:
    """Cast string columns to their types like pyarrow's CSV reader; the reason of the first bad cell per row."""
    exprs: list[pl.Expr] = []
    fails: list[tuple[str, pl.Expr]] = []
    for name, dtype in plan.typed.items():
        if dtype == pa.string():
            exprs.append(pl.col(name))
            continue
        assert dtype == pa.int64(), dtype
        text = pl.col(name).str.strip_chars(" \t")  # the CSV reader ignores spaces around numbers
        cast = text.cast(pl.Int64, strict=False)
        accepted = _arrow_only_ints(df, name)  # the few texts pyarrow reads but Polars does not (0x1F)
        if accepted:
            cast = (
                pl.when(text.is_in(list(accepted)))
                .then(text.replace_strict(accepted, default=None, return_dtype=pl.Int64))
                .otherwise(cast)
            )
        exprs.append(cast.alias(name))
        fails.append((name, pl.col(name).is_not_null() & cast.is_null()))
    if not fails:
        return df.select(exprs), None
    reason = df.select(
        pl.coalesce(
            [
                pl.when(f).then(pl.format(f"unparseable int64 in column '{n}': '{{}}'", pl.col(n)))
                for n, f in fails
            ]
        ).alias("reason")
    ).to_series()
    return df.select(exprs), (reason if reason.null_count() < len(reason) else None)


def _arrow_only_ints(df: pl.DataFrame, name: str) -> dict[str, int]:
    text = pl.col(name).str.strip_chars(" \t")
    failing = df.select(
        text.filter(pl.col(name).is_not_null() & text.cast(pl.Int64, strict=False).is_null()).unique()
    )
    out = {}
    for value in failing.to_series().to_list():
        try:
            out[value] = pc.cast(pa.array([value]), pa.int64())[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return out


def _checks(plan: _Plan) -> list[tuple[pl.Expr, pl.Expr]]:
    """(bad-row mask, reason) per validation rule, in the order reasons are reported."""
    out = [
        (pl.col(c).is_null(), pl.lit(f"missing value in required column '{c}'")) for c in plan.kind.required
    ]
    if plan.kind.name in SIDED_KINDS:
        side = pl.col(schema.SIDE)
        out.append(
            (side.is_in([1, 2]).not_().fill_null(False), pl.format("bad side (expected 1 or 2): {}", side))
        )
    for c in NON_NEGATIVE[plan.kind.name]:
        out.append(
            ((pl.col(c) < 0).fill_null(False), pl.format(f"negative value in column '{c}': {{}}", pl.col(c)))
        )
    ts = pl.col(schema.TIMESTAMP)
    out.append(
        (
            ((ts < TS_MIN) | (ts >= TS_MAX)).fill_null(False),
            pl.format(f"timestamp outside {TS_MIN_DATE}..{TS_MAX_DATE}: {{}}", ts),
        )
    )
    return out


def _reasons(df: pl.DataFrame, plan: _Plan, unparseable: pl.Series | None) -> pl.Series | None:
    """The reject reason of every row (null = good), or None when every row is good (the usual case)."""
    checks = _checks(plan)
    if unparseable is None and not df.select(pl.any_horizontal([m for m, _ in checks]).any()).item():
        return None
    reason = df.select(pl.coalesce([pl.when(m).then(r) for m, r in checks]).alias("reason")).to_series()
    return reason if unparseable is None else unparseable.zip_with(unparseable.is_not_null(), reason)


def _split(table: pa.Table, plan: _Plan) -> tuple[list[tuple[PartitionKey, pa.Table]], int]:
    """Rows grouped by (security_code, trading date): one stable argsort and one gather for the whole block,
    then zero-copy slices (several times cheaper than a group-by per partition). The key columns are
    dropped (they live in the path). Also returns the bytes the slices keep alive."""
    if table.num_rows == 0:
        return [], 0
    ts = pl.from_arrow(table.column(schema.TIMESTAMP))
    assert isinstance(ts, pl.Series)
    days = (
        ts.to_frame()
        .select(trading_date(pl.first(), plan.timezone, plan.day_roll).cast(pl.Int32))
        .to_series()
    )
    day = days.to_numpy().astype(np.int64)
    code = table.column(schema.SECURITY_CODE).to_numpy()
    span = int(day.max() - day.min()) + 1
    if int(code.max()) - int(code.min()) < (1 << 62) // span:
        key = (code - code.min()) * span + (day - day.min())
        order = None if bool((key[1:] >= key[:-1]).all()) else np.argsort(key, kind="stable")
    else:  # codes too far apart for one int64 key
        order = np.lexsort((day, code))
    body = table.drop_columns([schema.SECURITY_CODE])
    if order is not None:  # `take` on one-chunk columns: 3x faster than on the table's chunked columns
        body, code, day = body.combine_chunks().take(pa.array(order)), code[order], day[order]
    starts = np.flatnonzero((code[1:] != code[:-1]) | (day[1:] != day[:-1])) + 1
    bounds = [0, *starts.tolist(), len(code)]
    epoch = date(1970, 1, 1)
    parts = [
        (PartitionKey(int(code[a]), epoch + timedelta(days=int(day[a]))), body.slice(a, b - a))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return parts, body.nbytes


# ---- buffering and writing -----------------------------------------------------------------------------


@dataclass(eq=False)
class _Block:
    """The memory of one parsed block, alive while any of its partition slices is buffered."""

    nbytes: int
    rows: int
    live: int


class _PartitionBuffers:
    """Rows per partition until memory pressure or the end; flushes the least recently touched first.

    Memory is counted per parsed block (its slices share its buffers), so a block is released when its
    last slice is flushed. Flushed rows are appended by the thread pool and count until written.
    """

    def __init__(
        self, writer: _PartWriter, pool: ThreadPoolExecutor, limit_bytes: int, max_open: int
    ) -> None:
        self.writer, self.pool = writer, pool
        self.limit = limit_bytes
        self.max_open = max_open
        self.tables: OrderedDict[PartitionKey, list[tuple[pa.Table, _Block]]] = OrderedDict()
        self.total = 0
        self.writing: deque[tuple[Future[None], int]] = deque()
        self.writing_bytes = 0

    def add(self, parts: list[tuple[PartitionKey, pa.Table]], nbytes: int) -> None:
        if parts:
            block = _Block(nbytes, sum(t.num_rows for _, t in parts), len(parts))
            self.total += nbytes
            for key, table in parts:
                self.tables.setdefault(key, []).append((table, block))
                self.tables.move_to_end(key)
        if self.total > self.limit or len(self.tables) > self.max_open:
            while self.tables and (self.total > self.limit // 2 or len(self.tables) > self.max_open // 2):
                self._flush(next(iter(self.tables)))
        self._wait(self.limit)

    def flush_all(self) -> None:
        while self.tables:
            self._flush(next(iter(self.tables)))
        self._wait(0)

    def _flush(self, key: PartitionKey) -> None:
        items = self.tables.pop(key)
        for _, block in items:
            block.live -= 1
            if block.live == 0:
                self.total -= block.nbytes
        n = sum(
            block.nbytes * t.num_rows // block.rows for t, block in items
        )  # Table.nbytes is slow on slices
        self.writing.append((self.writer.submit(self.pool, key, [t for t, _ in items]), n))
        self.writing_bytes += n

    def _wait(self, limit: int) -> None:
        """Collect finished writes; wait for the oldest while buffered + in-flight bytes exceed `limit`."""
        while self.writing and (self.writing[0][0].done() or self.total + self.writing_bytes > limit):
            fut, n = self.writing.popleft()
            fut.result()
            self.writing_bytes -= n


@dataclass
class _Piece:
    """One staged part file being appended to (by one pool thread at a time)."""

    path: Path
    sink: pa.NativeFile | None = None
    writer: pq.ParquetWriter | None = None
    last: tuple[int, ...] | None = None  # sort key of the last row written
    rows: int = 0
    row_groups: int = 0
    unsorted: bool = False


class _PartWriter:
    """A source's partition files, staged: each flush is appended to the partition's open file as row groups.

    Exports are mostly time-ordered, so successive flushes of a partition continue where the last one
    stopped and the file stays sorted without a second pass. Open files are bounded (least recently used
    closed first); a partition whose file was closed and flushed again gets a second piece. At the end,
    partitions with several pieces, out-of-order appends or many tiny row groups are rewritten as one
    sorted file (read back whole: one partition at a time must fit in memory).
    """

    def __init__(
        self, kind: schema.RawKind, sid: str, lake: Lake, staging: Path, row_group_rows: int, max_open: int
    ) -> None:
        self.kind, self.sid, self.lake, self.staging = kind, sid, lake, staging
        self.row_group_rows = row_group_rows
        self.max_open = max_open
        self.schema = kind.lake_schema
        self.options = _write_options(self.schema)
        self.open: OrderedDict[PartitionKey, _Piece] = OrderedDict()
        self.busy: dict[PartitionKey, Future[None]] = {}
        self.closing: deque[tuple[Future[None], _Piece]] = deque()
        self.pieces: dict[PartitionKey, int] = {}
        self.to_compact: set[PartitionKey] = set()
        self.rows = 0
        self.flushes = 0
        self.compacted = 0

    @property
    def partitions(self) -> list[PartitionKey]:
        return sorted(self.pieces)

    def staged(self, key: PartitionKey, piece: int) -> Path:
        """Flat staging names (no hive folders to create and remove): <code>_<date>_<piece>.parquet."""
        return self.staging / f"{key.security_code}_{key.date.isoformat()}_{piece}.parquet"

    def submit(self, pool: ThreadPoolExecutor, key: PartitionKey, tables: list[pa.Table]) -> Future[None]:
        """Queue an append (main thread only: all bookkeeping happens here, so it needs no lock)."""
        if key in self.busy:  # appends to one file are serial
            self.busy.pop(key).result()
        piece = self.open.get(key)
        if piece is None:
            n = self.pieces.get(key, 0)
            self.pieces[key] = n + 1
            if n:
                self.to_compact.add(key)
            piece = self.open[key] = _Piece(self.staged(key, n))
            while len(self.open) > self.max_open:
                self._close(pool, next(iter(self.open)))
        self.open.move_to_end(key)
        self.rows += sum(t.num_rows for t in tables)
        self.flushes += 1
        fut = self.busy[key] = pool.submit(self._append, piece, tables)
        while self.closing and self.closing[0][0].done():
            self.closing.popleft()[0].result()  # a failed close fails the source now
        return fut

    def _append(self, piece: _Piece, tables: list[pa.Table]) -> None:
        table = self._sorted_table(pa.concat_tables(tables))
        if piece.writer is None:
            # Buffered: the Parquet writer issues a write and a seek per page and column chunk otherwise
            # (~100 system calls for a small partition file, a fifth of the time with 12,000 partitions).
            piece.sink = pa.BufferedOutputStream(pa.OSFile(str(piece.path), "wb"), WRITE_BUFFER)
            piece.writer = pq.ParquetWriter(piece.sink, self.schema, **self.options)
        first, last = _sort_key(table, 0), _sort_key(table, table.num_rows - 1)
        if piece.last is not None and first < piece.last:
            piece.unsorted = True
        piece.writer.write_table(table, row_group_size=self.row_group_rows)
        piece.last = max(last, piece.last) if piece.last is not None else last
        piece.rows += table.num_rows
        piece.row_groups += -(-table.num_rows // self.row_group_rows)

    def _close(self, pool: ThreadPoolExecutor, key: PartitionKey) -> None:
        """Close a partition's file in the pool, after its last append: the pool is first-in first-out, so
        that append has started (or finished) on another thread by the time the close runs and waits for it."""
        piece = self.open.pop(key)
        self.closing.append((pool.submit(self._close_piece, key, piece, self.busy.pop(key, None)), piece))

    def _close_piece(self, key: PartitionKey, piece: _Piece, appending: Future[None] | None) -> None:
        if appending is not None:
            appending.result()
        if piece.writer is not None:
            piece.writer.close()
        if piece.sink is not None:
            piece.sink.close()
        small_groups = piece.row_groups > 4 and piece.rows < piece.row_groups * self.row_group_rows // 8
        if piece.unsorted or small_groups:
            self.to_compact.add(key)  # a set add is atomic; read by the main thread after every close

    def finish(self, pool: ThreadPoolExecutor) -> None:
        """Close every file, then rewrite the partitions that need it, in parallel."""
        while self.open:
            self._close(pool, next(iter(self.open)))
        while self.closing:
            self.closing.popleft()[0].result()
        for _ in pool.map(self._compact, sorted(self.to_compact)):
            self.compacted += 1

    def abort(self) -> None:
        """Close open files after a failure (the staging folder is removed next); errors are moot."""
        pieces = [*self.open.values(), *(piece for _, piece in self.closing)]
        for piece in pieces:  # the pool has stopped: closes that did not run are done here
            for closeable in (piece.writer, piece.sink):
                if closeable is not None:
                    with contextlib.suppress(Exception):
                        closeable.close()
        self.open.clear()
        self.closing.clear()

    def _compact(self, key: PartitionKey) -> None:
        paths = [self.staged(key, p) for p in range(self.pieces[key])]
        table = self._sorted_table(pa.concat_tables(pq.read_table(p, schema=self.schema) for p in paths))
        tmp = paths[0].with_name(f".{paths[0].name}.compact")
        pq.write_table(table, tmp, row_group_size=self.row_group_rows, **self.options)
        os.replace(tmp, paths[0])
        for p in paths[1:]:
            p.unlink()
        self.pieces[key] = 1

    def _sorted_table(self, table: pa.Table) -> pa.Table:
        """Rows in (timestamp, sequence) order with exactly the lake columns (absent ones as typed nulls)."""
        keys = _sort_columns(table.column_names)
        if not _is_sorted(table, keys):
            table = table.sort_by([(k, "ascending", "at_end") for k in keys])  # a stable sort
        n, have = table.num_rows, set(table.column_names)
        columns = [table.column(f.name) if f.name in have else pa.nulls(n, f.type) for f in self.schema]
        return pa.Table.from_arrays(columns, schema=self.schema)

    def staged_parts(self, piece: int = 0) -> dict[UPath, Path]:
        """Lake path -> staged file of every partition (after `finish`: one file each), published as `piece`."""
        return {
            self.lake.raw_part_path(self.kind.name, key, self.sid, piece): self.staged(key, 0)
            for key in self.partitions
        }


def _write_options(lake_schema: pa.Schema) -> dict[str, Any]:
    return {
        "compression": "zstd",
        "write_statistics": True,
        # Dictionaries pay off on the few low-cardinality text columns; on int64 columns they cost
        # 2-3x the write time for files no smaller. BYTE_STREAM_SPLIT int64 pages (Parquet 2.11; read by
        # DuckDB, Polars and pyarrow) compress as well as plain ones and cut the write time by ~40 %.
        "use_dictionary": [f.name for f in lake_schema if f.type == pa.string()],
        "column_encoding": {f.name: "BYTE_STREAM_SPLIT" for f in lake_schema if f.type == pa.int64()},
        "sorting_columns": [
            pq.SortingColumn(lake_schema.get_field_index(c)) for c in _sort_columns(lake_schema.names)
        ],
    }


def _sort_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in (schema.TIMESTAMP, schema.SEQUENCE) if c in columns]


def _sort_key(table: pa.Table, i: int) -> tuple[int, ...]:
    """(timestamp, sequence) of row i as a tuple that orders like the sort (null sequence last)."""
    ts = table.column(schema.TIMESTAMP)[i].as_py()
    seq = table.column(schema.SEQUENCE)[i].as_py()
    return (ts, 0, seq) if seq is not None else (ts, 1, 0)


def _is_sorted(table: pa.Table, keys: list[str]) -> bool:
    """Whether rows are already in (timestamp, sequence) order: usual for time-ordered exports, and O(n)."""
    if table.num_rows < 2:
        return True
    step = np.diff(table.column(keys[0]).to_numpy())
    if (step < 0).any():
        return False
    if len(keys) == 1:
        return True
    seq = table.column(keys[1])
    if seq.null_count:  # rare: let the sort place the nulls
        return False
    return not ((step == 0) & (np.diff(seq.to_numpy()) < 0)).any()


@dataclass
class _RejectSink:
    """Rejected rows of one source, appended to a staged Parquet file in bounded batches."""

    path: Path
    rows: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    _pending: list[pa.Table] = field(default_factory=list)
    _bytes: int = 0
    _writer: pq.ParquetWriter | None = None

    def add(self, table: pa.Table, reasons: Counter[str]) -> None:
        self.rows += table.num_rows
        self.reasons.update(reasons)
        self._pending.append(table)
        self._bytes += table.nbytes
        if self._bytes > REJECTS_SPILL_BYTES:
            self._spill()

    def _spill(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, schema.REJECTS, compression="zstd")
        self._writer.write_table(pa.concat_tables(self._pending))
        self._pending, self._bytes = [], 0

    def close(self) -> None:
        if self.rows:
            self._spill()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# ---- several processes: byte ranges of one large plain file, or several files at once -------------------


def _shred_parallel(
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
        results[i] = _shred_source(sources[i][0], sources[i][1], cfg, lake, force, progress)
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
    return not _compressed(path) and os.path.getsize(path) > SPLIT_MIN_BYTES


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
    with _without_huge_pages():
        return _shred_source(schema.PARTITIONED_KINDS[kind], path, cfg, Lake(root), force, SilentProgress())


def _read_header(path: str) -> tuple[str | None, int]:
    """The header line of a plain file (as `_split_header` gives it) and the offset of the first data byte."""
    with open(path, "rb") as f:
        raw = f.readline()
    if not raw:
        return None, 0
    return raw.rstrip(b"\n").decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r"), len(raw)


def _byte_ranges(path: str, start: int, end: int, n: int) -> list[tuple[int, int]]:
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
    in_lake: bool  # staged in the lake (`Lake.shared_dir`), for a client on another machine
    flushes: int
    compacted: int


def _shred_range(
    kind: str,
    path: str,
    cfg: Config,
    plan: _Plan,
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
    staging.mkdir(parents=True, exist_ok=True)
    writer = _PartWriter(
        rk, sid, lake, staging, cfg.shred.row_group_rows, min(cfg.shred.max_open_partitions, MAX_OPEN_FILES)
    )
    rejects = _RejectSink(staging / "rejects.parquet")
    threads = max(1, min(os.cpu_count() or 1, 8) // max(1, cfg.shred.workers))
    run = _SourceRun(rk, path, cfg, writer, rejects, threads=threads)
    with _without_huge_pages(), SilentProgress().task("", total=0) as task:
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
        return _skipped(src.manifest)
    rejects = _RejectSink(src.staging / "rejects.parquet")
    fingerprint = ""
    rows_read = 0
    try:
        header, data_start = _read_header(path)
        if header is None:
            raise InputError(f"{path}: the file is empty (no header line): re-export it")
        plan = _plan(kind, path, header, cfg)
        spans = _byte_ranges(path, data_start, src.stat.st_size, workers)
        child = _child_config(cfg, max(1, len(spans)))
        parts: list[_RangeResult] = []
        with (
            progress.task(f"{kind.name} {Path(path).name}", total=src.stat.st_size, unit="bytes") as task,
            pools.worker_pool(cfg.run, max(1, len(spans))) as pool,
        ):
            futures = [
                pool.submit(
                    _shred_range,
                    kind.name,
                    path,
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
            fingerprint = _fingerprint(path)  # the parent is idle meanwhile
            for fut, (a, b) in zip(futures, spans, strict=True):
                try:
                    parts.append(fut.result())
                except InputError as exc:  # its line numbers count from the range's first line
                    raise InputError(
                        f"{exc} (in bytes {a:,}-{b:,} of the file, shredded separately: line numbers "
                        "count from the first line of that range; rerun with shred.workers=1 for file lines)"
                    ) from exc
                task.advance(b - a)
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
            rows_read += part.lines
        rejects.close()
        written = sum(p.rows_written for p in parts)
        if rows_read != written + rejects.rows:
            raise RuntimeError(f"rows read {rows_read} != written {written} + rejected {rejects.rows}")
    except Exception as exc:
        return _failed(src, lake, exc, rejects, fingerprint=fingerprint, rows_read=rows_read)
    keys = sorted({k for p in parts for k in p.staged})
    targets = {
        lake.raw_part_path(kind.name, k, src.source_id, piece): _staged_file(lake, p, staged)
        for piece, p in enumerate(parts)
        for k, staged in p.staged.items()
    }
    return _commit(
        src,
        lake,
        targets,
        rejects,
        plan,
        fingerprint=fingerprint,
        rows_read=rows_read,
        rows_written=written,
        keys=keys,
        extra={
            "flushes": sum(p.flushes for p in parts),
            "compacted_partitions": sum(p.compacted for p in parts),
            "byte_ranges": [list(span) for span in spans],
        },
    )


def _fingerprint(path: str) -> str:
    stored = _StoredFile(path)
    try:
        while stored.read(8 << 20):
            pass
    finally:
        stored.close()
    return stored.fingerprint()


# ---- small reference files -----------------------------------------------------------------------------


def _shred_reference(kind: str, paths: list[str], lake: Lake, force: bool) -> list[SourceResult]:
    """Read every file of a reference kind whole (types inferred) into one lake file; skipped when unchanged."""
    stats = {p: os.stat(p) for p in paths}
    prevs = {p: manifests.read_source(lake, source_id(p)) for p in paths}
    unchanged = {
        p: prev for p, prev in prevs.items() if prev is not None and manifests.unchanged(prev, p, stats[p])
    }
    if not force and len(unchanged) == len(paths):
        return [_skipped(unchanged[p]) for p in paths]
    results, tables = [], []
    for p in paths:
        started = time.perf_counter()
        stored = _StoredFile(p)
        table, error = None, None
        try:
            data = b"".join(_decoded_blocks(stored, p, 8 << 20))
            table = pacsv.read_csv(pa.py_buffer(data))
            aliases = REFERENCE_ALIASES[kind]
            table = table.rename_columns(
                [aliases.get(n.strip().lower(), n.strip().lower()) for n in table.column_names]
            )
            tables.append(table)
        except (*_CORRUPT_ERRORS, pa.ArrowInvalid) as exc:
            error = f"{p}: cannot read the {kind} file ({exc}): re-export or re-copy it"
            LOG.error("%s", error)
        finally:
            stored.close()
        n = table.num_rows if table is not None else 0
        results.append(
            SourceResult(
                kind=kind,
                path=p,
                source_id=source_id(p),
                size=stats[p].st_size,
                fingerprint=stored.fingerprint(),
                rows_read=n,
                rows_written=n,
                rows_rejected=0,
                partitions=[],
                files_written=int(table is not None),
                seconds=time.perf_counter() - started,
                status="failed" if error else "shredded",
                error=error,
            )
        )
    try:
        combined = pa.concat_tables(tables, promote_options="permissive") if tables else None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        error = f"{', '.join(paths)}: the {kind} files do not share column types ({exc}): make them agree"
        results = [replace(r, rows_written=0, files_written=0, status="failed", error=error) for r in results]
        combined = None
    if combined is not None:
        lake.write_parquet(combined, lake.reference_path(kind))
    else:  # nothing readable: no stale copy of an older drop's file
        lake.reference_path(kind).unlink(missing_ok=True)
    for r in results:
        manifests.write_source(
            lake,
            r.source_id,
            {
                **asdict(r),
                "mtime_ns": stats[r.path].st_mtime_ns,
                "finished_at": manifests.now(),
                "file": str(lake.reference_path(kind)),
            },
        )
    return results

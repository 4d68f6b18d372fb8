"""One source streamed: the main thread reads and decompresses, a thread pool parses, the buffers flush.

**Memory.** Slices are buffered per partition; memory is counted per parsed block (its slices share its
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
  pages are turned off while shredding (see `without_huge_pages`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import chain
from typing import Any

import pyarrow as pa

from dpsim import schema
from dpsim.buffers import from_numpy, to_numpy
from dpsim.config import Config
from dpsim.errors import InputError
from dpsim.lake import PartitionKey
from dpsim.shred.parse import ChunkError, ChunkResult, count_lines, parse_chunk
from dpsim.shred.plan import Plan, make_plan
from dpsim.shred.read import (
    CORRUPT_ERRORS,
    StoredFile,
    decoded_blocks,
    is_compressed,
    line_chunks,
    split_header,
)
from dpsim.shred.write import PartWriter, RejectSink

LOG = logging.getLogger(__name__)


# Memory model (measured): peak RSS ~ interpreter and libraries + blocks in flight (each block of CSV is
# held as bytes, parsed, gathered and encoded: ~6x its size) + buffered rows. The buffer gets the rest.
BUDGET_USABLE = 0.85  # share of shred.memory_budget_mb planned for, the rest is allocator slack
FIXED_OVERHEAD = 300 << 20  # interpreter, Polars, pyarrow, open writers, allocator caches
BLOCK_FOOTPRINT = 6  # bytes of memory per byte of a block in flight
MIN_BUFFER = 64 << 20
PR_SET_THP_DISABLE, PR_GET_THP_DISABLE = 41, 42  # linux/prctl.h


@contextlib.contextmanager
def without_huge_pages() -> Iterator[None]:
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


class SourceRun:
    """Streams one source: the main thread reads and decompresses, a thread pool parses, the main thread buffers."""

    def __init__(
        self,
        kind: schema.RawKind,
        path: str,
        cfg: Config,
        writer: PartWriter,
        rejects: RejectSink,
        threads: int | None = None,
    ):
        self.kind, self.path, self.cfg = kind, path, cfg
        self.writer, self.rejects = writer, rejects
        self.plan: Plan | None = None
        self.rows_read = 0
        self.fingerprint = ""
        self.workers = threads or max(1, min(os.cpu_count() or 1, 8))

    def stream(self, task: Any, byte_range: tuple[int, int] | None = None, plan: Plan | None = None) -> None:
        """Shred the file; or, with `byte_range` and the `plan` of the file's header, only the lines in that
        range of a plain file (a parallel shred): rejects' `line` is then counted from 0 in the range."""
        block = max(1, int(self.cfg.shred.block_size_mb * (1 << 20)))
        stored = StoredFile(self.path) if byte_range is None else StoredFile(self.path, *byte_range)
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="shred")
        buffers = _PartitionBuffers(
            self.writer,
            pool,
            self._buffer_limit(block, is_compressed(self.path)),
            self.cfg.shred.max_open_partitions,
        )
        try:
            blocks = decoded_blocks(stored, self.path, block)
            pending: deque[tuple[Future[ChunkResult], int, bytes]] = deque()
            line = 2  # the next physical line to number (the header is line 1)
            if plan is None:
                header, rest = self._guard(lambda: split_header(blocks, self.path), stored, lambda: 1)
                if header is None:
                    raise InputError(f"{self.path}: the file is empty (no header line): re-export it")
                plan = make_plan(self.kind, self.path, header, self.cfg)
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
                except ChunkError as exc:
                    raise InputError(
                        f"{self.path}: lines {line:,}-{line + count_lines(data) - 1:,}: {exc}"
                    ) from exc
                if res.rejects is not None:
                    absolute = from_numpy(to_numpy(res.rejects.column("line")) + line, pa.int64())
                    self.rejects.add(res.rejects.set_column(1, "line", absolute), res.reasons)
                line += res.n_lines
                self.rows_read += res.n_lines
                buffers.add(res.parts, res.nbytes)
                rate = self.rows_read / max(time.perf_counter() - started, 1e-9)
                task.advance(
                    consumed - reported, rows=f"{self.rows_read:,} ({rate:,.0f}/s)", rows_read=self.rows_read
                )
                reported = consumed

            def next_line() -> int:
                return line + sum(count_lines(d) for _, _, d in pending)

            chunks = line_chunks(chain([rest], blocks), block)
            while (data := self._guard(lambda: next(chunks, None), stored, next_line)) is not None:
                pending.append((pool.submit(parse_chunk, data, plan), stored.consumed, data))
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

    def _guard(self, step: Any, stored: StoredFile, line: Any) -> Any:
        """Run a read step, turning a decompression error into a clear per-file error."""
        try:
            return step()
        except CORRUPT_ERRORS as exc:
            raise InputError(
                f"{self.path}: compressed stream is corrupt or truncated after {stored.consumed:,} bytes "
                f"(near line {line():,}; {exc}): re-export or re-copy the file"
            ) from exc


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

    def __init__(self, writer: PartWriter, pool: ThreadPoolExecutor, limit_bytes: int, max_open: int) -> None:
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

"""`dpsim export --to parquet DIR --profile portable`: the results as Parquet every warehouse loader reads.

The lake's own files use int64 BYTE_STREAM_SPLIT pages and keep the partition keys in folder names; loaders
such as BigQuery's `bq load` and Snowflake's `COPY INTO` want neither. The portable profile writes:

    DIR/<table>/<table>-<YYYY-MM-DD>.parquet   one file per table and date: every security (and scenario)
    DIR/aggregates/<name>.parquet              one file per aggregate

with the partition keys as real columns (scenario, security_code, date), only PLAIN and dictionary
encodings (RLE only for levels and dictionary indices), data page v1, snappy compression, statistics, and
row groups of at least ROW_GROUP_BYTES of uncompressed data (except a file's last). Rows are streamed
partition by partition: memory holds one row group. Like the database export it is incremental: a date's
file is rewritten only when one of its partitions changed (the lake's export state for this folder).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dpsim.errors import TargetError
from dpsim.export.source import (
    WHOLE,
    ExportResult,
    Part,
    Selection,
    file_batches,
    file_schema,
    hive_fields,
    inventory,
    load_state,
    new_export_id,
    part_batches,
    save_state,
)
from dpsim.lake import Lake
from dpsim.progress import Progress, SilentProgress

PROFILES = ("portable",)
ROW_GROUP_BYTES = 16 * 2**20
# What the portable files may contain: PLAIN and dictionary pages; RLE/BIT_PACKED only encode levels and
# dictionary indices. Never BYTE_STREAM_SPLIT or DELTA_*, which older readers reject.
ENCODINGS = frozenset({"PLAIN", "PLAIN_DICTIONARY", "RLE_DICTIONARY", "RLE", "BIT_PACKED"})
WRITE_OPTIONS = {
    "compression": "snappy",
    "use_dictionary": True,
    "use_byte_stream_split": False,
    "data_page_version": "1.0",
    "write_statistics": True,
}


def export_portable(
    lake: Lake,
    out_dir: str | Path,
    *,
    profile: str = "portable",
    selection: Selection | None = None,
    rebuild: bool = False,
    row_group_bytes: int = ROW_GROUP_BYTES,
    progress: Progress | None = None,
) -> ExportResult:
    """Write the selected results (one file per table and date) and aggregates under out_dir; only dates
    whose partitions changed since the last export to this folder are rewritten."""
    if profile not in PROFILES:
        raise TargetError(f"--profile {profile}: unknown profile; choose from {', '.join(PROFILES)}")
    if "://" in str(out_dir):
        raise TargetError(f"{out_dir}: the portable profile writes to a local folder; give a path")
    selection = selection or Selection()
    progress = progress or SilentProgress()
    out = Path(out_dir).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TargetError(
            f"{out}: cannot create the output folder ({exc.strerror}); give a writable path"
        ) from None
    inv = inventory(lake, selection)
    started = time.perf_counter()
    result = ExportResult(f"parquet:{out}", new_export_id())
    state = load_state(lake, f"parquet:{out}")
    try:
        for table, parts in inv.parts.items():
            info = state.table(table)
            if rebuild:
                info["sent"] = {}
            sent: dict[str, str] = info["sent"]
            stats = result.stats(table)
            by_date: dict[str, list[Part]] = {}
            for part in parts:
                by_date.setdefault(part.key.date.isoformat(), []).append(part)
            todo = {
                day: ps
                for day, ps in by_date.items()
                if sent.get(day) != _signature(ps) or not _file(out, table, day).exists()
            }
            stats.unchanged = len(by_date) - len(todo)
            with progress.task(f"export {table}", total=len(todo), unit="files") as bar:
                for day, ps in todo.items():
                    files = file_schema(lake, [f for p in ps for f in p.files])
                    schema = _without_duplicates(
                        pa.schema(hive_fields(table in inv.scenario_tables) + list(files))
                    )
                    batches = (b for p in ps for b in part_batches(lake, p, schema))
                    stats.rows += _write(_file(out, table, day), schema, batches, row_group_bytes)
                    sent[day] = _signature(ps)
                    stats.sent += 1
                    bar.advance(1)
            for day in [d for d in sent if d not in by_date and _in_range(selection, d)]:
                _file(out, table, day).unlink(missing_ok=True)
                del sent[day]
                stats.removed += 1
        for agg in inv.aggregates:
            result.aggregates.add(agg.name)
            info, stats = state.table(agg.name), result.stats(agg.name)
            path = out / "aggregates" / f"{agg.name}.parquet"
            if not rebuild and info["sent"].get(WHOLE) == agg.signature and path.exists():
                stats.unchanged = 1
                continue
            schema = file_schema(lake, [agg.path])
            stats.rows = _write(path, schema, file_batches(lake, agg.path, schema, {}), row_group_bytes)
            stats.sent = 1
            info["sent"] = {WHOLE: agg.signature}
    finally:
        save_state(lake, state)
    result.seconds = time.perf_counter() - started
    return result


def portable_files(out_dir: str | Path) -> list[Path]:
    """Every Parquet file of a portable export folder."""
    return sorted(Path(out_dir).glob("*/*.parquet"))


def _file(out: Path, table: str, day: str) -> Path:
    return out / table / f"{table}-{day}.parquet"


def _signature(parts: list[Part]) -> str:
    return hashlib.sha1(";".join(f"{p.key}:{p.signature}" for p in parts).encode()).hexdigest()[:20]


def _in_range(selection: Selection, day: str) -> bool:
    from datetime import date

    d = date.fromisoformat(day)
    return selection.dates is None or selection.dates[0] <= d <= selection.dates[1]


def _without_duplicates(schema: pa.Schema) -> pa.Schema:
    """Keys first; a file column that repeats a key name (the scenario tables hold `scenario`) is dropped."""
    seen: set[str] = set()
    fields = []
    for f in schema:
        if f.name not in seen:
            seen.add(f.name)
            fields.append(f)
    return pa.schema(fields)


def _write(path: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch], row_group_bytes: int) -> int:
    """Stream batches into one file, a row group each time ≥ row_group_bytes are buffered; atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, **WRITE_OPTIONS) as writer:
            buf: list[pa.RecordBatch] = []
            size = 0
            for batch in batches:
                buf.append(batch)
                size += batch.nbytes
                rows += batch.num_rows
                if size >= row_group_bytes:
                    _row_group(writer, schema, buf)
                    buf, size = [], 0
            if buf:
                _row_group(writer, schema, buf)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TargetError(
            f"{path}: cannot write ({exc.strerror or exc}); check the folder and free space"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _row_group(writer: pq.ParquetWriter, schema: pa.Schema, batches: list[pa.RecordBatch]) -> None:
    table = pa.Table.from_batches(batches, schema=schema)
    writer.write_table(table, row_group_size=max(table.num_rows, 1))

"""Parsing one chunk (in a worker thread): CSV -> typed rows, rejects with their reasons, rows split by partition.

**Parsing.** Each block is parsed by `pyarrow.csv.read_csv` with the canonical int64/string types of
  `schema.py` (no inference, so no drift between blocks; 19-digit ids stay exact) and an invalid-row handler
  that collects lines with the wrong field count. A block whose typed parse fails (a value that is not a
  number, invalid UTF-8, an unbalanced quote) is parsed again as strings and cast column by column with the
  same rules, so only the bad rows are rejected; if even that parse cannot be lined up with the lines (a
  quote opened mid-value swallows the next lines), that block is read line by line with the `csv` module.
  Value checks (required values, side, negative quantities, timestamp range) are vectorised Polars
  expressions. Blocks are cut at newlines, so a quoted value containing a newline is not supported: its
  lines are rejected ("unbalanced quote").

**Line numbers.** `line` in the rejects is the 1-based physical line of the file (the header is line 1).
  An empty line is a reject ("empty line"), so `rows_read` is the number of physical lines after the header
  and `rows_read = rows_written + rows_rejected` holds exactly.

**Partitioning.** The trading date is `tradingtime.trading_date` (DST-aware, with the day roll), converted
  once per minute the block spans (`trading_day_numbers`). Each block is grouped by (security_code, date)
  with one stable argsort and one Arrow `take`, then cut into zero-copy slices: several times cheaper than
  a group-by per partition.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dpsim import buffers, schema
from dpsim.lake import PartitionKey
from dpsim.shred.plan import Plan
from dpsim.shred.rules import reject_reasons
from dpsim.tradingtime import trading_day_numbers

# Cell texts read as null (anything else that is not a number in an int64 column is a reject).
NULL_VALUES = ["", "NULL", "null", "NA", "N/A"]
# The CSV reader's block, about a core's L2 cache: a chunk parsed as one 8 MB block cost 2-3.5x the CPU on a
# machine with 512 KB of L2, most of it in the int64 conversion (BENCHMARKS.md, "Ninth stop"). The blocks'
# columns are then combined: contiguous columns make the later gather several times faster.
PARSE_BLOCK_BYTES = 512 << 10


@dataclass
class ChunkResult:
    n_lines: int  # physical lines in the chunk
    parts: list[tuple[PartitionKey, pa.Table]]  # zero-copy slices of one block of `nbytes`
    nbytes: int
    rejects: pa.Table | None  # `line` counted from 0 within the chunk; made absolute in file order
    reasons: Counter[str]


class ChunkError(Exception):
    """A chunk that cannot be read at all; the main thread adds the file name and line numbers."""


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


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


def _read_csv(data: bytes, plan: Plan, typed: bool) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The CSV reader on one chunk; lines with the wrong field count come back as (line index, reason)."""
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: Any) -> str:  # row.number: the line within `data`, known to the serial reader
        invalid.append((row.number - 1, _wrong_count(row.actual_columns, row.expected_columns)))
        return "skip"

    types = plan.typed if typed else {c: pa.string() for c in plan.present}
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(
            column_names=plan.names, use_threads=False, block_size=PARSE_BLOCK_BYTES
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=plan.present,
            null_values=NULL_VALUES,
            strings_can_be_null=True,
        ),
    ).combine_chunks()
    return table, invalid


def parse_chunk(data: bytes, plan: Plan) -> ChunkResult:
    """Parse, validate and split one chunk; every physical line ends up in a part or in the rejects."""
    # Without quotes or carriage returns the CSV reader splits rows exactly at newlines, so the rows it
    # returns plus the invalid ones are the physical lines: no need to count them.
    n_lines = None if b'"' not in data and b"\r" not in data else count_lines(data)
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
        n_lines = count_lines(data)
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
    reason = reject_reasons(df, plan, unparseable)
    if reason is not None:
        bad = reason.is_not_null()
        rel.append(np.delete(fed_lines, inv_idx)[np.flatnonzero(bad.to_numpy())])
        why.append(reason.filter(bad).to_list())
        table = table.filter((~bad).to_arrow())
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
                "source": buffers.from_values([plan.path] * len(texts), pa.string()),
                "line": buffers.from_numpy(line_idx, pa.int64()),
                "reason": buffers.from_values(reason_list, pa.string()),
                "raw": buffers.from_values(texts, pa.string()),
            },
            schema=schema.REJECTS,
        ).sort_by("line")
    if table.num_rows + (0 if rejects is None else rejects.num_rows) != n_lines:  # a safety net, never seen
        raise ChunkError("the parsed rows do not match the lines of the file: check the file's format")
    parts, nbytes = split_partitions(table, plan)
    return ChunkResult(n_lines, parts, nbytes, rejects, reasons)


def _read_strings(lines: _Lines, fed: np.ndarray, plan: Plan) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
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
    lines: _Lines, fed: np.ndarray, plan: Plan
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


def _cast_strings(df: pl.DataFrame, plan: Plan) -> tuple[pl.DataFrame, pl.Series | None]:
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
            out[value] = pc.cast(buffers.from_values([value], pa.string()), pa.int64())[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return out


def split_partitions(table: pa.Table, plan: Plan) -> tuple[list[tuple[PartitionKey, pa.Table]], int]:
    """Rows grouped by (security_code, trading date): one stable argsort and one gather for the whole block,
    then zero-copy slices (several times cheaper than a group-by per partition). The key columns are
    dropped (they live in the path). Also returns the bytes the slices keep alive."""
    if table.num_rows == 0:
        return [], 0
    day = trading_day_numbers(buffers.to_numpy(table.column(schema.TIMESTAMP)), plan.timezone, plan.day_roll)
    code = buffers.to_numpy(table.column(schema.SECURITY_CODE))
    span = int(day.max() - day.min()) + 1
    if int(code.max()) - int(code.min()) < (1 << 62) // span:
        key = (code - code.min()) * span + (day - day.min())
        order = None if bool((key[1:] >= key[:-1]).all()) else np.argsort(key, kind="stable")
    else:  # codes too far apart for one int64 key
        order = np.lexsort((day, code))
    body = table.drop_columns([schema.SECURITY_CODE])
    if order is not None:  # `take` on one-chunk columns: 3x faster than on the table's chunked columns
        body, code, day = (
            body.combine_chunks().take(buffers.from_numpy(order, pa.int64())),
            code[order],
            day[order],
        )
    starts = np.flatnonzero((code[1:] != code[:-1]) | (day[1:] != day[:-1])) + 1
    bounds = [0, *starts.tolist(), len(code)]
    epoch = date(1970, 1, 1)
    parts = [
        (PartitionKey(int(code[a]), epoch + timedelta(days=int(day[a]))), body.slice(a, b - a))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return parts, body.nbytes

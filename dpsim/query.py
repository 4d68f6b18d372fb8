"""Ad hoc SQL against the lake (`dpsim sql`, `dpsim.open_lake(...).sql`): safe by default, errors on one line.

Kept apart from the aggregation so that a query pays only for DuckDB and the catalog's views: `dpsim sql`
printing a small answer is a process start, a few imports and the query; CSV, JSON and Parquet answers are
written by DuckDB itself (pyarrow, and numpy with it, is imported only for an Arrow answer: a notebook).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from dpsim.catalog import connect, corrupt_file_hint, spill_dir, view_names, views_named_in
from dpsim.config import Aggregate, Config
from dpsim.errors import DpsimError, first_line
from dpsim.lake import Lake

if TYPE_CHECKING:
    import pyarrow as pa

_MISSING_TABLE = re.compile(r"Table with name .+ does not exist")

# What `dpsim sql` runs without --unsafe: queries (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE
# parse as SELECT) and EXPLAIN. COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, EXPORT and writes do not run.
_READING = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def run_sql(lake: Lake, query: str, cfg: Config | None = None, *, unsafe: bool = False) -> pa.Table:
    """Run ad hoc SQL against the lake's views; any DuckDB error becomes a one-line DpsimError.

    Safe by default: only queries run (no COPY, ATTACH, SET, writes: checked on the parsed statements), and
    nothing outside the lake can be read (`catalog.connect(safe=True)`). `unsafe` lifts both."""
    import pyarrow as pa

    with _answer(lake, query, cfg, unsafe) as rel:
        return rel.to_arrow_table() if rel is not None else pa.table({})


def sql_rows(
    lake: Lake, query: str, cfg: Config | None = None, *, unsafe: bool = False, max_rows: int | None = None
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """`run_sql`'s answer as column names and Python rows, for a terminal: no Arrow on the way. At most
    `max_rows` (None: all), and whether the answer has more: the query stops there (a LIMIT around it), so
    printing `SELECT * FROM sweeps` of a year is quick and small."""
    with _answer(lake, query, cfg, unsafe) as rel:
        if rel is None:
            return [], [], False
        rows = rel.fetchall() if max_rows is None else rel.limit(max_rows + 1).fetchall()
        more = max_rows is not None and len(rows) > max_rows
        return list(rel.columns), rows[:max_rows] if more else rows, more


@contextmanager
def _answer(
    lake: Lake, query: str, cfg: Config | None, unsafe: bool, scratch: Path | None = None
) -> Iterator[duckdb.DuckDBPyRelation | None]:
    """The query's relation on a fresh connection (None for a statement without a result); DuckDB errors
    raised while it is read become one line. `scratch`: a folder the answer may be written to."""
    if not query.strip():
        raise DpsimError('empty SQL query: pass a statement, e.g. "SELECT * FROM global_summary"')
    con = connect(lake, cfg, safe=not unsafe, only=views_named_in(query), scratch=scratch)
    try:
        if not unsafe:
            _only_queries(con, query)
        yield con.sql(query)
    except duckdb.Error as exc:
        raise DpsimError(_sql_error(exc, lake, cfg, unsafe)) from exc
    finally:
        con.close()


def _only_queries(con: duckdb.DuckDBPyConnection, query: str) -> None:
    for statement in con.extract_statements(query):
        if statement.type not in _READING:
            kind = statement.type.name.replace("_", " ")
            raise DpsimError(
                f"{kind} statements do not run here: `dpsim sql` only reads the lake (queries and EXPLAIN); "
                "pass --unsafe to run it anyway"
            )


def write_answer(
    lake: Lake, query: str, cfg: Config | None, fmt: str, out: Path | None, *, unsafe: bool = False
) -> None:
    """`run_sql`'s answer as CSV, JSON or Parquet, written by DuckDB as the query streams: no Arrow table of
    the whole answer in memory (a year's sweeps stay within DuckDB's memory limit), no pyarrow import. Into
    a private scratch folder, then renamed to `out` (a reader never sees half a file) or copied to standard
    output: beside `out`, else where DuckDB spills (on disk in the lake, not a temp folder that may be RAM)."""
    if out is not None and not out.parent.is_dir():
        raise DpsimError(f"--out {out}: no such folder {out.parent} (create it, or pass another path)")
    if out is not None:
        parent = out.parent
    else:
        parent = spill_dir(lake, cfg.aggregate if cfg is not None else Aggregate()).parent
        parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".dpsim-sql-", dir=parent))
    try:
        answer = scratch / f"answer.{fmt}"
        with _answer(lake, query, cfg, unsafe, scratch) as rel:
            if rel is None:  # a statement without a result (--unsafe only)
                answer.write_text("[]\n" if fmt == "json" else "")
            elif fmt == "csv":
                write_csv(rel, answer)
            elif fmt == "parquet":
                rel.write_parquet(str(answer), compression="zstd")
            else:
                rel.query("answer", f"COPY answer TO {_literal(answer)} (FORMAT json, ARRAY true)")
        if out is not None:
            os.replace(answer, out)
        else:
            sys.stdout.flush()
            with answer.open("rb") as src:
                shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
            sys.stdout.buffer.flush()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_csv(rel: duckdb.DuckDBPyRelation, path: Path) -> None:
    """`rel` as CSV by DuckDB's writer (RFC 4180: a header, text quoted only when it must be, NULL empty,
    times to their last digit); nested columns (lists, structs, maps) as their JSON text, which CSV cannot
    hold."""
    types = [t.id for t in rel.types]
    if any(t in _NESTED for t in types):
        rel = rel.project(
            ", ".join(
                f"to_json({_ident(c)})::VARCHAR AS {_ident(c)}" if t in _NESTED else _ident(c)
                for c, t in zip(rel.columns, types, strict=True)
            )
        )
    rel.write_csv(str(path))


_NESTED = frozenset({"list", "array", "struct", "map", "union"})


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe_catalog(lake: Lake) -> list[tuple[str, str, str]]:
    """(view, column, type) of every catalog view, for `dpsim sql` with no query."""
    con = connect(lake, safe=True)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    return [(str(v), str(c), str(t)) for v, c, t in rows]


def _sql_error(exc: duckdb.Error, lake: Lake, cfg: Config | None, unsafe: bool) -> str:
    """DuckDB's first line, plus what to do: the available views when a table is unknown (the query's
    session has only the views it names), how to rebuild a corrupt lake file, why a file outside the lake
    cannot be read."""
    first = first_line(exc)
    if isinstance(exc, duckdb.CatalogException) and _MISSING_TABLE.search(first):
        every = connect(lake, cfg)
        try:
            return f"{first} (available views: {', '.join(view_names(every))})"
        finally:
            every.close()
    if isinstance(exc, duckdb.PermissionException) and not unsafe:
        return (
            f"{first} (`dpsim sql` reads only inside the lake {lake.root}; pass --unsafe to read elsewhere)"
        )
    return corrupt_file_hint(first) or first

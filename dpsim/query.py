"""Ad hoc SQL against the lake (`dpsim sql`, `dpsim.open_lake(...).sql`): safe by default, errors on one line.

Kept apart from the aggregation so that a query pays only for DuckDB and the catalog's views: `dpsim sql`
printing a small answer is a process start, a few imports and the query (pyarrow, and numpy with it, is
imported only for an Arrow answer: a notebook, CSV, JSON or Parquet).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb

from dpsim.catalog import connect, corrupt_file_hint, view_names, views_named_in
from dpsim.config import Config
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
    lake: Lake, query: str, cfg: Config | None = None, *, unsafe: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """`run_sql`'s answer as column names and Python rows, for a terminal: no Arrow on the way."""
    with _answer(lake, query, cfg, unsafe) as rel:
        return (list(rel.columns), rel.fetchall()) if rel is not None else ([], [])


@contextmanager
def _answer(
    lake: Lake, query: str, cfg: Config | None, unsafe: bool
) -> Iterator[duckdb.DuckDBPyRelation | None]:
    """The query's relation on a fresh connection (None for a statement without a result); DuckDB errors
    raised while it is read become one line."""
    if not query.strip():
        raise DpsimError('empty SQL query: pass a statement, e.g. "SELECT * FROM global_summary"')
    con = connect(lake, cfg, safe=not unsafe, only=views_named_in(query))
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


def csv_bytes(table: pa.Table) -> bytes:
    """A table as CSV; nested columns (lists, structs, maps) as their JSON text, which CSV cannot hold."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    if nested:
        con = duckdb.connect()
        try:
            con.register("result", table)
            columns = ", ".join(
                f"to_json({_ident(c)})::VARCHAR AS {_ident(c)}" if c in nested else _ident(c)
                for c in table.column_names
            )
            table = con.sql(f"SELECT {columns} FROM result").to_arrow_table()
        finally:
            con.close()
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


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

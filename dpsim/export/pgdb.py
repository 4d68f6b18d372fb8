"""One ADBC connection to a PostgreSQL target schema: every statement `dpsim export` sends, Arrow -> PostgreSQL
types, and the driver's errors as one line naming the target (never its password).

Credentials come from the URL, the PG* environment variables or ~/.pgpass: libpq reads them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

from dpsim import __version__
from dpsim.errors import DpsimError, TargetError
from dpsim.export.source import (
    AggregateFile,
    ExportResult,
    Part,
    Selection,
    file_batches,
    file_schema,
    key_of,
    part_batches,
)
from dpsim.lake import Lake
from dpsim.schema import DATE_COL, SECURITY_CODE

log = logging.getLogger(__name__)

MANIFEST_TABLE = "dpsim_exports"
SCHEMES = ("postgresql", "postgres")


class Database:
    """One ADBC connection to the target schema: every statement dpsim sends, and its errors in one line."""

    def __init__(self, con: Any, url: str, schema: str, label: str, password: str | None) -> None:
        self.con, self.url, self.schema = con, url, schema
        self.label, self.password = label, password
        self.cur = con.cursor()
        self.identity = label
        self.user = ""
        self.export_id = ""

    @classmethod
    @contextmanager
    def connect(cls, url: str, schema: str) -> Iterator[Database]:
        label, password = redact(url), urlparse(url).password
        if urlparse(url).scheme not in SCHEMES:
            raise TargetError(f"{label}: not a PostgreSQL URL; give postgresql://USER@HOST:PORT/DB")
        try:
            import adbc_driver_postgresql.dbapi as pg
        except ImportError as exc:
            raise TargetError(
                f"{label}: exporting to PostgreSQL needs the ADBC driver: pip install 'dpsim[postgres]'"
            ) from exc
        try:
            con = pg.connect(_with_timeout(url))
        except pg.Error as exc:
            raise TargetError(_connect_error(label, url, _text(exc, password))) from None
        db = cls(con, url, schema, label, password)
        try:
            db._identify()
            yield db
        finally:
            try:
                db.cur.close()
                con.close()
            except Exception:  # noqa: BLE001 -- closing a broken connection must not hide the real error
                log.debug("closing %s", label, exc_info=True)

    # ---- statements -----------------------------------------------------------------------------------
    def _sql(self, sql: str, params: tuple[Any, ...] | None = None, what: str = "") -> list[tuple[Any, ...]]:
        try:
            self.cur.execute(sql, params)
            return list(self.cur.fetchall()) if self.cur.description else []
        except Exception as exc:
            self._rollback()
            raise TargetError(self._error(exc, what)) from None

    def _rollback(self) -> None:
        try:
            self.con.rollback()
        except Exception:  # noqa: BLE001 -- the connection may be gone; the original error is what matters
            log.debug("rollback on %s failed", self.label, exc_info=True)

    def _commit(self, what: str) -> None:
        try:
            self.con.commit()
        except Exception as exc:
            self._rollback()
            raise TargetError(self._error(exc, what)) from None

    def _identify(self) -> None:
        rows = self._sql("SELECT current_user, current_database(), current_setting('port')")
        user, database, port = rows[0]
        parsed = urlparse(self.url)
        host = parsed.hostname or os.environ.get("PGHOST") or "localhost"
        self.user = str(user)
        self.identity = f"postgresql://{user}@{host}:{port}/{database}?schema={self.schema}"
        self._rollback()  # end the read-only transaction the driver opened

    def prepare(self, export_id: str, lake: Lake, selection: Selection) -> None:
        """Schema present and writable, no concurrent export into it, the manifest row of this export."""
        s = self.schema
        if not self._sql("SELECT 1 FROM pg_namespace WHERE nspname = $1", (s,), "schema"):
            ((may_create,),) = self._sql("SELECT has_database_privilege(current_database(), 'CREATE')")
            if not may_create:
                raise TargetError(
                    f"{self.label}: schema {s} does not exist and user {self.user} may not create it; have the "
                    f"owner run CREATE SCHEMA {_ident(s)} AUTHORIZATION {self.user}, or pass --schema of an existing one"
                )
            self._sql(f"CREATE SCHEMA {_ident(s)}", what=f"create schema {s}")
            self._commit(f"create schema {s}")
        ((usage, create),) = self._sql(
            "SELECT has_schema_privilege($1, 'USAGE'), has_schema_privilege($1, 'CREATE')", (s,), "schema"
        )
        if not (usage and create):
            raise TargetError(self._no_rights())
        (locked,) = self._sql("SELECT pg_try_advisory_lock(hashtext($1))", (f"dpsim export {s}",))[0]
        if not locked:
            raise TargetError(
                f"{self.label}: another dpsim export into schema {s} is running; wait for it to end"
            )
        self._sql(
            f"CREATE TABLE IF NOT EXISTS {self._q(MANIFEST_TABLE)} ("
            "export_id TEXT PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
            "finished_at TIMESTAMPTZ, status TEXT NOT NULL, lake TEXT, dpsim_version TEXT, selection TEXT, "
            "partitions_sent BIGINT, partitions_unchanged BIGINT, partitions_removed BIGINT, "
            "aggregates_sent BIGINT, rows_sent BIGINT, seconds DOUBLE PRECISION, error TEXT)",
            what="create the manifest table",
        )
        self._sql(
            f"INSERT INTO {self._q(MANIFEST_TABLE)} (export_id, status, lake, dpsim_version, selection) "
            "VALUES ($1, 'running', $2, $3, $4)",
            (export_id, str(lake.root), __version__, _describe(selection)),
            "record the export",
        )
        self._commit("record the export")
        self.export_id = export_id

    def finish(self, result: ExportResult, status: str, error: str | None = None) -> None:
        self._sql(
            f"UPDATE {self._q(MANIFEST_TABLE)} SET finished_at = now(), status = $2, partitions_sent = $3, "
            "partitions_unchanged = $4, partitions_removed = $5, aggregates_sent = $6, rows_sent = $7, "
            "seconds = $8, error = $9 WHERE export_id = $1",
            (
                result.export_id,
                status,
                result.sent,
                result.unchanged,
                result.removed,
                result.aggregates_sent,
                result.rows,
                round(result.seconds, 3),
                error or "",
            ),
            "record the export",
        )
        self._commit("record the export")

    def fail(self, result: ExportResult, exc: BaseException) -> None:
        """Best effort: mark the manifest row failed (the connection may be what failed)."""
        if not self.export_id:
            return
        try:
            self._rollback()
            self.finish(result, "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception:  # noqa: BLE001
            log.debug("could not mark export %s failed", self.export_id, exc_info=True)

    def oid(self, table: str) -> int | None:
        (oid,) = self._sql("SELECT to_regclass($1)::oid::bigint", (self._q(table),))[0]
        self._rollback()
        return None if oid is None else int(oid)

    def columns(self, table: str) -> dict[str, str]:
        rows = self._sql(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (self._q(table),),
        )
        return {str(n): str(t) for n, t in rows}

    def drop(self, table: str) -> None:
        self._sql(f"DROP TABLE IF EXISTS {self._q(table)}", what=f"drop {table}")
        self._commit(f"drop {table}")

    def ensure_table(
        self, table: str, keys: list[pa.Field], schema: pa.Schema
    ) -> tuple[dict[str, str], bool]:
        """The table ready for rows of `schema` (the union of what is about to be sent), committed: created
        with the keys first (and no index yet: `index` adds it once the first load is in, which is cheaper
        than keeping it up to date row by row), or given the columns and the index it lacks; a type it
        cannot take is an error naming the fix. Returns its columns (name -> type) and whether it is new."""
        existing = self.columns(table)
        if not existing:
            self._create(table, keys, schema)
        else:
            for f in schema:
                want = pg_type(f.type, f"{table}.{f.name}", self.label)
                have = existing.get(f.name)
                if f.name in {k.name for k in keys} or want is None:
                    continue  # an all-null column waits for a file that types it
                if have is None:
                    self._sql(
                        f"ALTER TABLE {self._q(table)} ADD COLUMN {_ident(f.name)} {want}",
                        what=f"add column {table}.{f.name}",
                    )
                elif want != have and not widens(want, have):
                    raise TargetError(
                        f"{self.label}: column {self.schema}.{table}.{f.name} is {have} in the target but {want} "
                        f"in the lake; rerun with --rebuild to drop and re-create {table}"
                    )
            self._index(table)  # a first load that was killed before its index was built
        self._commit(f"prepare table {table}")
        return self.columns(table), not existing

    def index(self, table: str) -> None:
        """The index each partition's DELETE looks up, (security_code, date): scenario is not in it, all the
        scenarios of a partition go together."""
        self._index(table)
        self._commit(f"index {table}")

    def _index(self, table: str) -> None:
        key_cols = ", ".join(_ident(k) for k in (SECURITY_CODE, DATE_COL))
        self._sql(
            f"CREATE INDEX IF NOT EXISTS {_ident(table + '_partition')} ON {self._q(table)} ({key_cols})",
            what=f"index {table}",
        )

    def replace_partition(
        self,
        lake: Lake,
        table: str,
        part: Part,
        send: pa.Schema,
        *,
        fresh: bool = False,
    ) -> int:
        """One transaction: delete the partition's rows (not in a table created by this export, which holds
        only partitions it sent once each), stream its files in as `send` (COPY), commit."""
        what = f"replace {part.label}"
        if not fresh:
            self._sql(
                f"DELETE FROM {self._q(table)} WHERE {_ident(SECURITY_CODE)} = $1 AND {_ident(DATE_COL)} = $2",
                (part.key.security_code, part.key.date),
                what,
            )
        rows = self._ingest(
            table, pa.RecordBatchReader.from_batches(send, part_batches(lake, part, send)), what
        )
        self._commit(what)
        return rows

    def delete_partition(self, table: str, label: str) -> None:
        key = key_of(label)
        self._sql(
            f"DELETE FROM {self._q(table)} WHERE {_ident(SECURITY_CODE)} = $1 AND {_ident(DATE_COL)} = $2",
            (key.security_code, key.date),
            f"delete {table}/{label}",
        )
        self._commit(f"delete {table}/{label}")

    def replace_aggregate(self, lake: Lake, agg: AggregateFile) -> int:
        schema = file_schema(lake, [agg.path])
        what = f"replace aggregate {agg.name}"
        self._sql(f"DROP TABLE IF EXISTS {self._q(agg.name)}", what=what)
        self._create(agg.name, [], schema)
        batches = file_batches(lake, agg.path, schema, {})
        rows = self._ingest(agg.name, pa.RecordBatchReader.from_batches(schema, batches), what)
        self._commit(what)
        return rows

    def _create(self, table: str, keys: list[pa.Field], schema: pa.Schema) -> None:
        cols = [f"{_ident(k.name)} {pg_type(k.type)} NOT NULL" for k in keys]
        names = {k.name for k in keys}
        for f in schema:
            t = pg_type(f.type, f"{table}.{f.name}", self.label)
            if t is not None and f.name not in names:
                cols.append(f"{_ident(f.name)} {t}")
        self._sql(f"CREATE TABLE {self._q(table)} ({', '.join(cols)})", what=f"create table {table}")

    def _ingest(self, table: str, reader: pa.RecordBatchReader, what: str) -> int:
        try:
            n = self.cur.adbc_ingest(table, reader, mode="append", db_schema_name=self.schema)
        except Exception as exc:
            self._rollback()
            if isinstance(exc, DpsimError):  # a lake file that cannot be read, named by source.py
                raise
            raise TargetError(self._error(exc, what)) from None
        return int(n) if n is not None and n >= 0 else 0

    # ---- naming and errors ---------------------------------------------------------------------------------
    def _q(self, table: str) -> str:
        return f"{_ident(self.schema)}.{_ident(table)}"

    def _no_rights(self) -> str:
        s = _ident(self.schema)
        return (
            f"{self.label}: user {self.user} may not create tables in schema {self.schema}; "
            f"GRANT USAGE, CREATE ON SCHEMA {s} TO {self.user}, or pass --schema of a schema it owns"
        )

    def _error(self, exc: BaseException, what: str) -> str:
        text = _text(exc, self.password)
        where = f"{self.label}: {what + ': ' if what else ''}{text}"
        if "must be owner" in text:
            return (
                f"{where}; the table belongs to another user: have its owner drop it or make {self.user} "
                "its owner, or pass --schema of another schema"
            )
        if "permission denied" in text:
            return f"{where}; " + self._no_rights().split("; ", 1)[1]
        return where


def send_schema(keys: list[pa.Field], lake_schema: pa.Schema, columns: dict[str, str]) -> pa.Schema:
    """What to send for files of `lake_schema` into a table with `columns`: the keys, then every file column
    the table has, cast to the table's type where the lake's differs (widening, or an all-null column)."""
    fields = list(keys)
    key_names = {k.name for k in keys}
    for f in lake_schema:
        have = columns.get(f.name)
        if f.name in key_names or have is None:
            continue  # an all-null column the table does not have yet
        fields.append(f if pg_type(f.type) == have else pa.field(f.name, ARROW_OF.get(have, f.type)))
    return pa.schema(fields)


# ---- types ---------------------------------------------------------------------------------------------

# PostgreSQL type (as format_type prints it) -> the Arrow type sent for it when the lake's type differs.
ARROW_OF: dict[str, pa.DataType] = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", "UTC"),
    "timestamp without time zone": pa.timestamp("us"),
}
_WIDER = {"smallint": 0, "integer": 1, "bigint": 2}


def widens(lake: str, target: str) -> bool:
    """A lake type the target column takes: narrower integers, and integers or reals into double (what a
    table created from partitions that disagree takes, as Arrow's permissive schema union does)."""
    if lake in _WIDER and target in _WIDER:
        return _WIDER[lake] <= _WIDER[target]
    return target == "double precision" and (lake == "real" or lake in _WIDER)


def pg_type(t: pa.DataType, column: str = "", label: str = "") -> str | None:
    """The PostgreSQL column type of an Arrow type; None for an all-null column (no type to give yet)."""
    if pa.types.is_null(t):
        return None
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_duration(t):
        return "interval"
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type, column, label)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = pg_type(t.value_type, column, label)
        return f"{inner}[]" if inner else None
    raise TargetError(
        f"{label}: column {column} has Arrow type {t}, which dpsim does not export to PostgreSQL"
    )


# ---- helpers -----------------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its password and query (which may hold one): what messages and the state name."""
    p = urlparse(url)
    if not p.scheme or not p.netloc:
        return re.sub(r"password=[^\s&]*", "password=***", url)
    user = f"{unquote(p.username)}@" if p.username else ""
    hostport = p.netloc.rpartition("@")[2]  # as given (a bad port is the server's to report)
    return f"{p.scheme}://{user}{hostport}{p.path}"


CONNECT_TIMEOUT_S = 10


def _with_timeout(url: str) -> str:
    """A host that drops packets must not hang the export: libpq waits forever unless told otherwise."""
    if "connect_timeout=" in url:
        return url
    return f"{url}{'&' if urlparse(url).query else '?'}connect_timeout={CONNECT_TIMEOUT_S}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(exc: BaseException, password: str | None) -> str:
    """The driver's message on one line, without ADBC's prefixes and never with the password."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^[A-Z_]+: ", "", text)  # ADBC's status code (IO:, UNAUTHORIZED:, …)
    text = text.replace("[libpq] ", "")
    text = re.sub(r"Failed to (execute|prepare) query '.*': ", "", text)  # the statement is in `what`
    text = re.sub(r"^Failed to connect: ", "", text)
    text = re.sub(r"\bFATAL: +", "", text)
    text = re.sub(r"\bERROR: +", "", text)
    text = re.sub(r"\. SQLSTATE: [0-9A-Z]{5}.*$", "", text)
    if password:
        for form in {password, unquote(password)}:
            text = text.replace(form, "***")
    return text.strip()


def _connect_error(label: str, url: str, text: str) -> str:
    p = urlparse(url)
    user = p.username or os.environ.get("PGUSER") or "the user"
    db = p.path.lstrip("/") or os.environ.get("PGDATABASE") or "the database"
    if re.search(
        r"password authentication failed|no password supplied|role .* does not exist|no pg_hba", text
    ):
        return (
            f"{label}: authentication failed for {user} ({text}); give the password in the URL, in "
            "PGPASSWORD or in ~/.pgpass, and check the user name"
        )
    if re.search(r'database ".*" does not exist', text):
        return f"{label}: database {db} does not exist ({text}); create it (createdb {db}) or name another in the URL"
    if re.search(
        r"Connection refused|could not translate host|timeout expired|No route|Network is unreachable", text
    ):
        return f"{label}: cannot reach the server ({text}); start it, or fix the host and port in the URL"
    return f"{label}: cannot connect ({text})"


def _describe(selection: Selection) -> str:
    parts = [f"tables={','.join(selection.tables) if selection.tables else 'all'}"]
    if selection.securities is not None:
        parts.append("securities=" + ",".join(str(s) for s in selection.securities))
    if selection.dates is not None:
        parts.append(f"dates={selection.dates[0]}..{selection.dates[1]}")
    return " ".join(parts)

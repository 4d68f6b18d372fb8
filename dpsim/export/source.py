"""The lake side of an export: which result partitions and aggregates exist, their signatures, their rows as
Arrow batches with the hive keys as real columns, and what was already sent to a target (the export state).

Nothing here names a column of a result table: tables, scenarios, partitions and schemas are discovered
from the lake, so tables and columns added by later metric versions are exported as they appear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from dpsim.errors import DpsimError, LakeError
from dpsim.lake import SCENARIO_TABLES, Lake, PartitionKey
from dpsim.schema import DATE_COL, PARTITION_TYPES, SCENARIO, SECURITY_CODE

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)

ALL = "all"
AGGREGATES = "aggregates"  # in --tables: every aggregate
WHOLE = "*"  # the one partition label of an aggregate in the export state
BATCH_ROWS = 65_536  # rows per Arrow batch read from a lake file: memory is bounded by this, not the lake


@dataclass(frozen=True)
class Part:
    """One (table, security, date) partition: its files (every scenario in them), sent or skipped as a unit."""

    table: str
    key: PartitionKey
    files: tuple[UPath, ...]  # sorted
    signature: str

    @property
    def label(self) -> str:
        return f"{self.table}/{self.key}"


@dataclass(frozen=True)
class AggregateFile:
    name: str
    path: UPath
    signature: str


@dataclass(frozen=True)
class Selection:
    """What to export: table names (results or aggregates; None = all), securities, an inclusive date range."""

    tables: tuple[str, ...] | None = None
    securities: tuple[int, ...] | None = None
    dates: tuple[date, date] | None = None

    def wants_key(self, key: PartitionKey) -> bool:
        if self.securities is not None and key.security_code not in self.securities:
            return False
        return self.dates is None or self.dates[0] <= key.date <= self.dates[1]


@dataclass
class Inventory:
    """The selected result partitions per table (scenario-partitioned or not) and aggregate files."""

    parts: dict[str, list[Part]] = field(default_factory=dict)
    scenario_tables: set[str] = field(default_factory=set)
    aggregates: list[AggregateFile] = field(default_factory=list)

    @property
    def rows_hint(self) -> int:
        return sum(len(p) for p in self.parts.values())


def parse_tables(text: str | None) -> tuple[str, ...] | None:
    """`--tables sweeps,sim_orders` -> names; `all` or nothing -> None (everything)."""
    if text is None:
        return None
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    return None if not names or ALL in names else names


def inventory(lake: Lake, selection: Selection) -> Inventory:
    """List the selected tables' partitions and the aggregates, with signatures (size and mtime of each file).

    Raises when a named table is neither a result table nor an aggregate, or when the lake has no results.
    """
    tables = lake.result_tables()
    aggregates = _aggregate_paths(lake)
    if not tables and not aggregates:
        raise LakeError(f"{lake.root}: the lake has no results to export; run `dpsim process` first")
    wanted = selection.tables
    if wanted is not None:
        known = set(tables) | set(aggregates) | {AGGREGATES}
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise DpsimError(
                f"--tables: no table {', '.join(unknown)} in {lake.root}; "
                f"results: {', '.join(tables) or '(none)'}; aggregates: {', '.join(aggregates) or '(none)'} "
                f"(or `{AGGREGATES}`, `{ALL}`)"
            )
    inv = Inventory()
    for table in tables:
        if wanted is not None and table not in wanted:
            continue
        if table in SCENARIO_TABLES:
            inv.scenario_tables.add(table)
        inv.parts[table] = _parts(lake, table, selection)
    for name, path in aggregates.items():
        if name in tables:
            log.warning("aggregate %s has the name of a result table: not exported", name)
            continue
        if wanted is None or name in wanted or AGGREGATES in wanted:
            inv.aggregates.append(AggregateFile(name, path, _signature([path])))
    return inv


def _aggregate_paths(lake: Lake) -> dict[str, UPath]:
    folder = lake.aggregates_dir
    paths = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return {p.stem: p for p in paths if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p.stem)}


def _parts(lake: Lake, table: str, selection: Selection) -> list[Part]:
    if table in SCENARIO_TABLES and lake.first_layout_scenarios(table):
        raise LakeError(
            f"{lake.table_dir(table)}: its results are in the first layout (a folder per scenario); run "
            "`dpsim aggregate` once to migrate them to one file per partition, then export"
        )
    files = {
        key: lake.partition_files(table, key) for key in lake.partitions(table) if selection.wants_key(key)
    }
    return [Part(table, key, tuple(fs), _signature(fs)) for key, fs in sorted(files.items())]


def _signature(files: Iterable[UPath]) -> str:
    """A short digest of `<file>:<size>:<mtime>` of every file: changes when any file is rewritten."""
    text = ";".join(f"{f.name}:{_size_mtime(f)}" for f in files)
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _size_mtime(path: UPath) -> str:
    st = path.stat()
    mtime = getattr(st, "st_mtime_ns", None)
    if mtime is None:
        try:
            mtime = st.st_mtime
        except (AttributeError, KeyError, TypeError):  # an object store that reports no time: size alone
            mtime = ""
    return f"{st.st_size}:{mtime}"


# ---- reading --------------------------------------------------------------------------------------------


def hive_fields(scenario_table: bool) -> list[pa.Field]:
    """The partition keys as columns: scenario (if any), security_code, date; never null."""
    keys = ([SCENARIO] if scenario_table else []) + [SECURITY_CODE, DATE_COL]
    return [pa.field(k, PARTITION_TYPES[k], nullable=False) for k in keys]


def open_file(lake: Lake, path: UPath) -> pq.ParquetFile:
    """A lake file for streaming reads (local: memory-mapped path; object store: a file object)."""
    try:
        if lake.is_local:
            return pq.ParquetFile(str(path), memory_map=True)
        return pq.ParquetFile(path.open("rb"))
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"{path}: cannot read ({exc}); rerun `dpsim process` for this partition") from exc


def file_schema(lake: Lake, paths: Sequence[UPath]) -> pa.Schema:
    """The unified schema of some lake files (footers only): null-typed columns take the type seen elsewhere."""
    schemas = []
    for p in paths:
        pf = open_file(lake, p)
        schemas.append(pf.schema_arrow)
        pf.close()
    return unify(schemas, str(paths[0].parent) if paths else "")


def unify(schemas: Sequence[pa.Schema], where: str = "") -> pa.Schema:
    """One schema for files written by different metric versions: columns of all, null types resolved,
    integers widened to float where files disagree; `where` names the files in the error when they conflict."""
    if not schemas:
        return pa.schema([])
    try:
        return _interned(normalise(pa.unify_schemas(list(schemas), promote_options="permissive")))
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise LakeError(
            f"{where}: the files to export disagree on a column's type ({exc}); rerun "
            "`dpsim process --force` so that every partition has the current schema"
        ) from exc


_SCHEMAS: dict[pa.Schema, pa.Schema] = {}


def _interned(schema: pa.Schema) -> pa.Schema:
    """One object per distinct schema: an export holds one per partition it sends (thousands, mostly equal)."""
    return _SCHEMAS.setdefault(schema, schema)


def normalise(schema: pa.Schema) -> pa.Schema:
    """Plain types for targets: large/view strings and binaries become the ordinary ones; dictionaries
    their values. Metadata is dropped (it belongs to the writer, not the data)."""
    return pa.schema([pa.field(f.name, _plain(f.type)) for f in schema])


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return _plain(t.value_type)
    if pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_plain(t.value_type))
    return t


def part_batches(lake: Lake, part: Part, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """The partition's rows as batches of `schema` (hive keys first, then the file columns): keys filled in,
    columns a file lacks as nulls, types cast to the schema's. Reads BATCH_ROWS rows at a time."""
    keys: dict[str, Any] = {SECURITY_CODE: part.key.security_code, DATE_COL: part.key.date}
    for path in part.files:
        yield from file_batches(lake, path, schema, keys)


def file_batches(
    lake: Lake, path: UPath, schema: pa.Schema, keys: dict[str, Any]
) -> Iterator[pa.RecordBatch]:
    pf = open_file(lake, path)
    try:
        names = set(pf.schema_arrow.names)
        wanted = [f.name for f in schema if f.name in names and f.name not in keys]
        # One thread: files are a partition each (small); pool hand-offs cost more than they save here.
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=wanted, use_threads=False):
            yield conform(batch, schema, keys)
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"{path}: cannot read ({exc}); rerun `dpsim process` for this partition") from exc
    finally:
        pf.close()


def conform(batch: pa.RecordBatch, schema: pa.Schema, keys: dict[str, Any]) -> pa.RecordBatch:
    n = batch.num_rows
    arrays = []
    for f in schema:
        if f.name in keys:
            arrays.append(pa.repeat(pa.scalar(keys[f.name], f.type), n))
        elif f.name in batch.schema.names:
            col = batch.column(f.name)
            arrays.append(_without_validity(col if col.type == f.type else col.cast(f.type)))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _without_validity(array: pa.Array) -> pa.Array:
    """The array without its validity bitmap when it has no null (zero copy): Parquet readers allocate one
    for every nullable column, and a writer then tests a bit per value for nothing."""
    buffers = array.buffers()
    if array.null_count or not buffers or buffers[0] is None or not _flat(array.type):
        return array
    return pa.Array.from_buffers(
        array.type, len(array), [None, *buffers[1:]], null_count=0, offset=array.offset
    )


def _flat(t: pa.DataType) -> bool:
    return not (pa.types.is_nested(t) or pa.types.is_dictionary(t) or isinstance(t, pa.ExtensionType))


# ---- what was sent where ---------------------------------------------------------------------------------


@dataclass
class ExportState:
    """What the lake sent to one target: per table (result or aggregate) {partition label: signature} and
    the table's id in the target (a database table's OID: a table dropped and re-created behind dpsim's
    back is sent again whole). An aggregate is one partition labelled `WHOLE`. Saved as
    lake/_exports/<target>.json, never holding credentials."""

    target: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {"id": None, "sent": {}})

    def sent(self, name: str) -> dict[str, str]:
        sent: dict[str, str] = self.table(name)["sent"]
        return sent

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": self.tables,
        }


def state_path(lake: Lake, target: str) -> UPath:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", target).strip("_")[-60:]
    return lake.exports_dir / f"{slug}-{hashlib.sha1(target.encode()).hexdigest()[:8]}.json"


def load_state(lake: Lake, target: str) -> ExportState:
    path = state_path(lake, target)
    if not path.exists():
        return ExportState(target)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable export state (%s): everything is sent again", path, exc)
        return ExportState(target)
    if data.get("target") != target:
        return ExportState(target)
    return ExportState(target, dict(data.get("tables") or {}))


def save_state(lake: Lake, state: ExportState) -> None:
    lake.write_json(state.to_json(), state_path(lake, state.target))


def key_of(label: str) -> PartitionKey:
    """The partition of a state label `<security_code>/<YYYY-MM-DD>` (PartitionKey's str)."""
    sec, _, day = label.partition("/")
    return PartitionKey(int(sec), date.fromisoformat(day))


# ---- what an export did ----------------------------------------------------------------------------------


@dataclass
class TableStats:
    sent: int = 0  # partitions (an aggregate: 1) written
    unchanged: int = 0  # partitions skipped: same signature as last sent
    removed: int = 0  # partitions deleted from the target: gone from the lake
    rows: int = 0  # rows written


@dataclass
class ExportResult:
    target: str  # without credentials
    export_id: str
    tables: dict[str, TableStats] = field(default_factory=dict)  # results and aggregates, in export order
    aggregates: set[str] = field(default_factory=set)  # which of `tables` are aggregates
    seconds: float = 0.0

    def stats(self, table: str) -> TableStats:
        return self.tables.setdefault(table, TableStats())

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def _partitions(self) -> list[TableStats]:
        return [s for t, s in self.tables.items() if t not in self.aggregates]

    @property
    def sent(self) -> int:
        """Result partitions (or portable files) written; aggregates are counted apart."""
        return sum(t.sent for t in self._partitions())

    @property
    def unchanged(self) -> int:
        return sum(t.unchanged for t in self._partitions())

    @property
    def removed(self) -> int:
        return sum(t.removed for t in self._partitions())

    @property
    def aggregates_sent(self) -> int:
        return sum(s.sent for t, s in self.tables.items() if t in self.aggregates)


def new_export_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + hashlib.sha1(os.urandom(8)).hexdigest()[:6]

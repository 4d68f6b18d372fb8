"""`Lake`: one lake root, its layout (`layout`) and its storage back end (`store`) behind one object."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dpsim.lake import layout
from dpsim.lake.layout import RESULT_TABLES, PartitionKey
from dpsim.lake.store import open_store
from dpsim.lake.table_files import TableFiles

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath


# (root, scenario) markers this process has written or seen: a job writes each scenario's marker once.
_NOTED: set[tuple[UPath, str]] = set()


class Lake:
    """Paths and atomic file operations under one lake root (a folder, a file:// URL or an object store)."""

    def __init__(self, root: str | Path | UPath) -> None:
        self.store = open_store(root)
        self.root = self.store.root

    def check_reachable(self) -> None:
        """One clear line when an object store's bucket is missing or unreachable, before any work starts."""
        self.store.check_reachable()

    @contextmanager
    def lock(self, scope: str, *, wait_s: float = 0.0) -> Iterator[None]:
        """One writer per scope ("results", "catalog", "source-<id>"): held for the block; another
        process holding it makes this wait up to `wait_s`, then fail with one line naming the holder.
        A writer first removes what killed writers left in the scratch folder, and tidies its own after."""
        with self.store.lock(scope, wait_s):
            self.store.clean_scratch()
            try:
                yield
            finally:
                self.store.tidy_scratch()

    def clean_scratch(self) -> None:
        """Remove the scratch folders of this host's processes that are gone (killed workers' temp files)."""
        self.store.clean_scratch()

    def tidy_scratch(self) -> None:
        """Remove this process's empty scratch folders (and `_tmp` when nothing else is in it)."""
        self.store.tidy_scratch()

    @property
    def is_local(self) -> bool:
        """A filesystem path (renames are atomic), not an object store."""
        return self.store.is_local

    # ---- paths ----------------------------------------------------------------------------------
    def table_dir(self, table: str) -> UPath:
        return layout.table_dir(self.root, table)

    def partition_dir(self, table: str, key: PartitionKey) -> UPath:
        return layout.partition_dir(self.root, table, key)

    def by_date_dir(self, table: str) -> UPath:
        return layout.by_date_dir(self.root, table)

    def by_date_path(self, table: str, day: date) -> UPath:
        return layout.by_date_path(self.root, table, day)

    def by_date_glob(self, table: str) -> UPath:
        return layout.by_date_glob(self.root, table)

    @property
    def by_date_state_path(self) -> UPath:
        return layout.by_date_state_path(self.root)

    def result_path(self, table: str, key: PartitionKey) -> UPath:
        return layout.result_path(self.root, table, key)

    def raw_part_path(self, kind: str, key: PartitionKey, source: str, piece: int = 0) -> UPath:
        return layout.raw_part_path(self.root, kind, key, source, piece)

    def reference_path(self, kind: str) -> UPath:
        return layout.reference_path(self.root, kind)

    @property
    def manifest_dir(self) -> UPath:
        return layout.manifest_dir(self.root)

    def manifest_path(self, source: str) -> UPath:
        return layout.manifest_path(self.root, source)

    def rejects_path(self, kind: str, source: str) -> UPath:
        return layout.rejects_path(self.root, kind, source)

    @property
    def runs_dir(self) -> UPath:
        return layout.runs_dir(self.root)

    @property
    def shred_runs_dir(self) -> UPath:
        return layout.shred_runs_dir(self.root)

    @property
    def aggregates_dir(self) -> UPath:
        return layout.aggregates_dir(self.root)

    @property
    def partials_dir(self) -> UPath:
        return layout.partials_dir(self.root)

    def partial_path(self, name: str) -> UPath:
        return layout.partial_path(self.root, name)

    def partial_stream_path(self, scenario: str, day: date) -> UPath:
        return layout.partial_stream_path(self.root, scenario, day)

    @property
    def partials_manifest_path(self) -> UPath:
        return layout.partials_manifest_path(self.root)

    @property
    def partials_merged_path(self) -> UPath:
        return layout.partials_merged_path(self.root)

    @property
    def exports_dir(self) -> UPath:
        """One JSON per export target: the signatures of the partitions sent there (incremental exports)."""
        return layout.exports_dir(self.root)

    @property
    def aggregates_state_path(self) -> UPath:
        return layout.aggregates_state_path(self.root)

    @property
    def catalog_path(self) -> Path:
        """The DuckDB catalog: in the lake, or for an object store in a local cache (rebuilt when missing)."""
        return self.store.catalog_path()

    def shared_dir(self, name: str) -> UPath:
        """A scratch folder every worker of a cluster reaches: `<root>/_tmp/<name>`, in the lake itself."""
        return layout.scratch_dir(self.root, name)

    def local_dir(self, name: str) -> Path:
        """A local scratch folder `name` shared by the lake's processes: `<root>/_tmp/<name>` for a local
        lake, else under the system temp folder, one per lake."""
        return self.store.local_dir(name)

    def own_dir(self, name: str) -> Path:
        """This process's local scratch folder `name` (`<root>/_tmp/<host>-<pid>/<name>` for a local lake),
        removed by the next writer once the process is gone, however it ended."""
        return self.store.own_dir(name)

    def staging_dir(self, source: str) -> Path:
        """The local folder where a source's files are staged before they are published."""
        return self.own_dir("shred") / source

    def shared_staging_dir(self, source: str) -> UPath:
        """The in-lake folder where cluster workers stage a source's files for a client on another machine."""
        return self.shared_dir(f"shred/{source}")

    def key_of(self, path: UPath) -> str:
        """A lake path as its key below the root (to hand to a process whose root object is its own)."""
        return layout.relative_key(self.root, path)

    # ---- listing --------------------------------------------------------------------------------
    def partitions(self, table: str = "orders") -> list[PartitionKey]:
        """Partitions present for a table, from the folder names (no file is opened)."""
        return self.store.partitions(self.table_dir(table))

    def partitions_with_results(self, scenarios: Sequence[str]) -> set[PartitionKey]:
        """Partitions with sweeps (and, when scenarios run, sim_orders) in the lake (one listing each). Which
        scenarios a partition's file holds is not listed: the job fingerprint of its last run names them."""
        have = set(self.partitions("sweeps"))
        if scenarios:
            have &= set(self.partitions("sim_orders"))
        return have

    def partition_files(self, table: str, key: PartitionKey) -> list[UPath]:
        d = self.partition_dir(table, key)
        return sorted(d.glob("*.parquet")) if d.is_dir() else []

    def result_tables(self) -> list[str]:
        """Every table under results/, from the folder names: the result set grows with the metrics, so
        exports discover it rather than relying on RESULT_TABLES."""
        d = layout.results_dir(self.root)
        names = (p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else iter(())
        return sorted(n for n in names if not n.startswith((".", "_")))

    def scenarios(self) -> list[str]:
        """The scenarios whose results jobs have written (`results/_scenarios` markers), sorted."""
        d = layout.scenarios_dir(self.root)
        names = (p.name for p in d.iterdir()) if d.is_dir() else iter(())
        return sorted(n for n in names if layout.NAME_RE.match(n))  # a name no scenario could have: not one

    def note_scenarios(self, names: Iterable[str]) -> None:
        """Mark these scenarios as having results (before a job's files are published: a marker without
        rows costs a warning-free empty scenario, never a scenario whose rows are not listed)."""
        for name in names:
            if (self.root, name) not in _NOTED:
                self.store.touch(layout.scenario_marker(self.root, name))
                _NOTED.add((self.root, name))

    def first_layout_scenarios(self, table: str) -> list[str]:
        """The scenario folders of a table's job outputs in their first layout (one file per scenario and
        partition), which `dpsim.lake.migration` rewrites."""
        d = self.table_dir(table)
        names = (p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else iter(())
        found = (n.split("=", 1)[1] for n in names if n.startswith("scenario="))
        return sorted(n for n in found if layout.NAME_RE.match(n))

    def any_match(self, pattern: UPath) -> bool:
        """Whether a glob under the root matches a file (the catalog makes views only over existing tables)."""
        return self.store.any_match(pattern)

    def file_signatures(self, table: str, keys: Sequence[PartitionKey]) -> dict[PartitionKey, list[str]]:
        """`<file>:<size>:<modified>` of each partition's files, sorted: what tells changed inputs from
        unchanged ones. An object store answers from one listing of the table, not a request per file."""
        folders = [self.partition_dir(table, key) for key in keys]
        return dict(zip(keys, self.store.file_signatures(self.table_dir(table), folders), strict=True))

    def table_files(self, table: str, days: Collection[date] | None = None) -> TableFiles:
        """Every file of a result table by trading date, from one walk of the table (one listing in an
        object store); of the given dates only, when given (a local lake then opens only those date
        folders)."""
        base = self.table_dir(table)
        return TableFiles.of(str(base).rstrip("/"), self.store.list_part_files(base, days))

    # ---- the change journal of the job outputs (what the compaction rewrites) --------------------
    def note_result_changes(self, keys: Iterable[PartitionKey]) -> None:
        """One marker per partition whose job outputs are about to be published or removed. Written before
        the change: a crash in between costs the compaction one needless rewrite, never a missed one."""
        token = uuid.uuid4().hex[:12]
        for key in sorted(set(keys), key=str):
            self.store.touch(layout.change_marker(self.root, key, token))

    def result_changes(self) -> dict[UPath, date]:
        """The change markers waiting for the compaction, with the trading date each names."""
        folder = layout.changes_dir(self.root)
        if not folder.is_dir():
            return {}
        found = ((p, layout.changed_date(p.name)) for p in folder.iterdir())
        return {p: day for p, day in found if day is not None}

    # ---- reading and writing --------------------------------------------------------------------
    def write_parquet(self, table: pa.Table, path: UPath, *, row_group_rows: int = 131072) -> int:
        """Write atomically (temp + rename, or one PUT), zstd, with statistics; returns bytes written."""
        self.store.write_parquet(
            table, path, compression="zstd", write_statistics=True, row_group_size=row_group_rows
        )
        return int(path.stat().st_size)

    def write_json(self, obj: Any, path: UPath) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=False, default=str).encode(), path)

    def write_bytes(self, data: bytes, path: UPath) -> None:
        self.store.write_bytes(data, path)

    def read_json(self, path: UPath) -> Any:
        """A JSON file's content, or None when it does not exist."""
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def read_parquet(self, path: UPath, columns: Sequence[str] | None = None) -> pa.Table:
        return self.store.read_parquet(path, columns)

    def put(self, local: Path, path: UPath) -> None:
        """Move a finished local file (from `local_dir`) to its lake path: a rename, or an upload."""
        self.store.put_many({path: local})

    def put_many(self, moves: Mapping[UPath, Path | UPath]) -> None:
        """`put` for many files (a shredded source's parts); a source that is already an object of the
        store (staged there by a cluster worker) is copied within the store."""
        self.store.put_many(moves)

    def local_file(self, path: UPath) -> AbstractContextManager[Path]:
        """A local file to write `path` through while it grows (a run's log): the path itself in a local
        lake, else a scratch file uploaded at the end."""
        ctx: AbstractContextManager[Path] = self.store.local_file(path)
        return ctx

    def remove_tree(self, path: UPath) -> None:
        self.store.remove_tree(path)

    def remove_files(self, paths: Sequence[UPath]) -> None:
        self.store.remove_files(paths)

    def remove_source_parts(
        self, kind: str, source: str, partitions: Sequence[PartitionKey], keep: Collection[UPath] = ()
    ) -> int:
        """Delete a source's part files (every piece) in the given partitions, except the paths in `keep`
        (before re-shredding it: `keep` holds the files about to be replaced in place)."""
        folders = [self.partition_dir(kind, key) for key in partitions]
        return self.store.remove_parts(self.table_dir(kind), folders, source, keep)

    def remove_results(self, keys: Sequence[PartitionKey]) -> list[PartitionKey]:
        """Remove every result of these partitions (every table and scenario) and, when there were any,
        the aggregates that counted them. Returns the partitions that had results. Hold "results"."""
        wanted, removed = set(keys), set()
        self.note_result_changes(wanted)
        for table in RESULT_TABLES:
            for key in wanted & set(self.partitions(table)):
                self.remove_tree(self.partition_dir(table, key))
                removed.add(key)
            for scenario in self.first_layout_scenarios(table):  # not yet migrated: not to come back with it
                folder = layout.per_scenario_dir(self.root, table, scenario)
                for key in wanted & set(self.store.partitions(folder)):
                    self.remove_tree(folder / key.hive)
                    removed.add(key)
        if removed:
            self.remove_aggregates()
        return sorted(removed)

    def remove_aggregates(self) -> None:
        """Remove every aggregate file and the record of what they were computed from (they are rebuilt
        whole by the next aggregation)."""
        folder = self.aggregates_dir
        for f in sorted(folder.glob("*")) if folder.is_dir() else []:
            if f.suffix in (".parquet", ".csv") or f == self.aggregates_state_path:
                f.unlink(missing_ok=True)

    def publish_results(self, tables: Mapping[UPath, pa.Table], *, row_group_rows: int = 131072) -> None:
        """A partition's result files, published together: every file is written to a temp file first and
        renamed into place only when all are written, so readers never see a result disappear or a job
        that failed half-way leave a mix of old and new files.

        Dictionaries only on text columns: on the many numeric ones of a job's small files they took a
        quarter of the write time for files no smaller (as in the shred's writes). Snappy, not zstd: on a
        job's 17 small files zstd took 40 % of the write time (21.5 against 13.0 ms of CPU per job on the
        generated drop) for files 7 % smaller; the results by date, which the views read, stay zstd."""
        from dpsim.schema import text_columns  # pyarrow on first use (`store.pq`)

        text = {c for t in tables.values() for c in text_columns(t.schema)}
        self.note_result_changes(filter(None, (layout.key_of_result_path(p) for p in tables)))
        self.store.write_parquet_many(
            tables,
            compression="snappy",
            write_statistics=True,
            use_dictionary=sorted(text),
            row_group_size=row_group_rows,
        )

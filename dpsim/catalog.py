"""The DuckDB catalog `lake/dpsim.duckdb`: views over every lake table, so any DuckDB client can query the lake.

For an object-store lake (`s3://…`) the catalog is a local cache file (`Lake.catalog_path`) whose views
hold the lake's URLs; dpsim's connections read them through the lake's fsspec filesystem, other DuckDB
clients through httpfs.

The views hold absolute paths because DuckDB resolves relative paths against the client's working
directory, not the database file; after moving the lake, `refresh_catalog` (`dpsim catalog`) rewrites
them. A view exists only for a table that has at least one file: a view over an empty glob cannot be
created, and an empty typed stand-in would hide that a step never ran. The views glob at query time,
so partitions added later show up without a refresh; a new table (first run JSON, first aggregate)
needs one, which shred, process and aggregate do themselves.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb
from upath import UPath

from dpsim.config import Aggregate, Config
from dpsim.errors import LakeError
from dpsim.lake import RAW_TABLES, RESULT_TABLES, SCENARIO_TABLES, Lake
from dpsim.schema import REFERENCE_KINDS

log = logging.getLogger(__name__)

# Older DuckDB clients (1.x) cannot open a file in 2.0's default storage format; views need nothing newer.
STORAGE_VERSION = "v1.0.0"
# Run JSONs list one job per partition: tens of thousands of jobs exceed read_json's 16 MB default. DuckDB
# reserves twice this per read, so 1 GB failed under the default 2 GB memory limit; 128 MB holds ~400,000 jobs.
_MAX_JSON_BYTES = 1 << 27
_HIVE_TYPES = {"scenario": "VARCHAR", "security_code": "BIGINT", "date": "DATE"}


def refresh_catalog(lake: Lake) -> list[str]:
    """(Re)create lake/dpsim.duckdb with a view per existing table; returns the view names.

    Written to a temp file and renamed into place, so a reader never sees a half-built catalog.
    Call it while no other process holds the catalog open read-write.
    """
    if lake.is_local:
        lake = Lake(lake.root.resolve())
    if not lake.root.is_dir():
        raise LakeError(
            f"{lake.root}: no such lake folder (pass --lake DIR of an existing lake, or run `dpsim shred`)"
        )
    target = lake.catalog_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for stale in (tmp, _wal(tmp)):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp), config={"storage_compatibility_version": STORAGE_VERSION})
    try:
        _register(con, lake)
        names = _create_views(con, lake)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    _wal(target).unlink(missing_ok=True)  # a WAL left by a crashed writer would be replayed onto the new file
    os.replace(tmp, target)
    log.info("catalog %s: %d views", target, len(names))
    return names


def connect(lake: Lake, cfg: Config | None = None, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the catalog (building it when missing) with DuckDB's memory limit and spill folder from the config.

    DuckDB shares one database instance per file within a process: close a connection before
    refreshing the catalog or before opening it again with another configuration.
    """
    if not lake.catalog_path.exists():
        refresh_catalog(lake)
    settings = cfg.aggregate if cfg is not None else Aggregate()
    temp = Path(settings.temp_directory) if settings.temp_directory else lake.local_dir("duckdb")
    temp.parent.mkdir(parents=True, exist_ok=True)  # DuckDB makes the spill folder, not its parents
    con = duckdb.connect(
        str(lake.catalog_path),
        read_only=read_only,
        config={"memory_limit": f"{settings.memory_limit_mb}MB", "temp_directory": str(temp.resolve())},
    )
    _register(con, lake)
    return con


def _register(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Serve an object-store lake's URLs through its fsspec filesystem (no httpfs extension needed)."""
    if not lake.is_local:
        con.register_filesystem(lake.root.fs)


def view_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The catalog's views (not the temporary ones of a session)."""
    rows = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary ORDER BY view_name"
    ).fetchall()
    return [r[0] for r in rows]


# ---- view definitions ---------------------------------------------------------------------------


def _create_views(con: duckdb.DuckDBPyConnection, lake: Lake) -> list[str]:
    """Create every view whose files exist; a view that DuckDB cannot bind is skipped with a warning.

    Paths are literals, not bound parameters: a view stores its SQL text and cannot hold parameters.
    """
    names: list[str] = []
    for name, pattern, select in _definitions(lake):
        if not lake.any_match(pattern):
            continue
        try:
            con.execute(f"CREATE OR REPLACE VIEW {_ident(name)} AS {select}")
        except duckdb.Error as exc:
            log.warning("catalog: no view %s over %s: %s", name, pattern, str(exc).splitlines()[0])
            continue
        names.append(name)
    if "runs" in names and _has_job_list(con):
        con.execute("CREATE OR REPLACE VIEW jobs AS SELECT run_id, unnest(jobs, recursive := true) FROM runs")
        names.append("jobs")
    return sorted(names)


def _definitions(lake: Lake) -> list[tuple[str, UPath, str]]:
    """(view name, glob whose first match proves the table exists, SELECT) for every lake table."""
    out: list[tuple[str, UPath, str]] = []
    for table in (*RAW_TABLES, *RESULT_TABLES):
        keys = (
            ("scenario", "security_code", "date") if table in SCENARIO_TABLES else ("security_code", "date")
        )
        pattern = lake.table_dir(table).joinpath(*["*"] * len(keys), "*.parquet")
        hive = ", ".join(f"'{k}': {_HIVE_TYPES[k]}" for k in keys)
        cols = ", ".join(keys)
        out.append(
            (
                table,
                pattern,
                f"SELECT {cols}, * EXCLUDE ({cols}) FROM read_parquet({_lit(pattern)}, "
                f"hive_partitioning = true, hive_types = {{{hive}}})",
            )
        )
    for kind in REFERENCE_KINDS:
        path = lake.reference_path(kind)
        out.append((kind, path, f"SELECT * FROM read_parquet({_lit(path)})"))
    rejects = lake.rejects_path("*", "*")
    out.append(
        (
            "rejects",
            rejects,
            "SELECT regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS kind, * EXCLUDE (filename) "
            f"FROM read_parquet({_lit(rejects)}, filename = true)",
        )
    )
    for name, pattern in (("manifest", lake.manifest_path("*")), ("runs", lake.runs_dir / "*.json")):
        out.append(
            (
                name,
                pattern,
                f"SELECT * FROM read_json({_lit(pattern)}, union_by_name = true, maximum_object_size = {_MAX_JSON_BYTES})",
            )
        )
    for path in sorted(lake.aggregates_dir.glob("*.parquet")) if lake.aggregates_dir.is_dir() else []:
        if path.stem.isidentifier() and path.stem not in {name for name, _, _ in out}:
            out.append((path.stem, path, f"SELECT * FROM read_parquet({_lit(path)})"))
    return out


def _has_job_list(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the run JSONs carry a `jobs` list of records to flatten (defensive: the format may evolve)."""
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE runs)").fetchall())
    jobs = types.get("jobs", "")
    return "run_id" in types and jobs.startswith("STRUCT(") and jobs.endswith("[]")


def _lit(path: UPath) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")

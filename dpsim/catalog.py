"""The DuckDB catalog `lake/dpsim.duckdb`: views over every lake table, so any DuckDB client can query the lake.

For an object-store lake (`s3://…`) the catalog is a local cache file (`Lake.catalog_path`) whose views
hold the lake's URLs; dpsim's connections read them through the lake's fsspec filesystem, other DuckDB
clients through httpfs.

The views hold absolute paths because DuckDB resolves relative paths against the client's working
directory, not the database file; after moving the lake, `refresh_catalog` (`dpsim catalog`) rewrites
them. A view exists only for a table that has at least one file: a view over an empty glob cannot be
created, and an empty typed stand-in would hide that a step never ran. The views glob at query time,
so partitions added later show up without a refresh (results: once their date is compacted into
results_by_date, see `dpsim.compaction`); a new table (first run JSON, first aggregate) needs one, which
shred, process and aggregate do themselves. Glob characters in the lake's own path are
escaped, so a lake folder named `lake[1]` works.

dpsim's own connections (`connect`: sql, aggregate, reports) do not open the catalog file: they create the
same views in an in-memory database from the lake as it is now. So they never conflict with another DuckDB
session holding the file, never follow the views of a copied lake back to the original's files, leave
out a source whose publish was interrupted, and work on a read-only lake. A `safe` connection (the default
of `dpsim sql`) reads only inside the lake: DuckDB's external access is off except for the lake's folder,
and its configuration is locked.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from dpsim.config import Aggregate, Config
from dpsim.errors import LakeError, first_line, os_error_text
from dpsim.lake import RAW_TABLES, REFERENCE_KINDS, RESULT_TABLES, SCENARIO_TABLES, Lake, locks, publish
from dpsim.lake.layout import slug

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)

# Older DuckDB clients (1.x) cannot open a file in 2.0's default storage format; views need nothing newer.
STORAGE_VERSION = "v1.0.0"
# Run JSONs list one job per partition: tens of thousands of jobs exceed read_json's 16 MB default, but
# DuckDB allocates twice the maximum object size up front (1 GiB failed under a 2 GB memory limit), so
# the maximum follows the largest file, with room for runs that grow until the next refresh.
_MIN_JSON_BYTES = 16 << 20
CATALOG_WAIT_S = 120.0  # a refresh takes seconds: a second writer waits for the first one
# The columns of schema.REJECTS in DuckDB's types, for the empty `rejects` view of a lake without rejects;
# spelled out so that a query does not import pyarrow (tests/test_catalog.py checks that the two agree).
REJECT_COLUMNS = (("source", "VARCHAR"), ("line", "BIGINT"), ("reason", "VARCHAR"), ("raw", "VARCHAR"))
_HIVE_TYPES = {"scenario": "VARCHAR", "security_code": "BIGINT", "date": "DATE"}


def refresh_catalog(lake: Lake) -> list[str]:
    """(Re)create lake/dpsim.duckdb with a view per existing table; returns the view names.

    Written to a temp file and renamed into place, so a reader never sees a half-built catalog; one
    writer at a time (the lake's "catalog" lock: a second one waits for it).
    """
    if lake.is_local:
        lake = Lake(lake.root.resolve())
    if not lake.root.is_dir():
        raise LakeError(
            f"{lake.root}: no such lake folder (pass --lake DIR of an existing lake, or run `dpsim shred`)"
        )
    with lake.lock("catalog", wait_s=CATALOG_WAIT_S):
        return _refresh(lake)


def _refresh(lake: Lake) -> list[str]:
    target = lake.catalog_path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    for stale in target.parent.glob(f".{target.name}.*.tmp*"):  # left by a writer that was killed
        stale.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp), config={"storage_compatibility_version": STORAGE_VERSION})
        try:
            _register(con, lake)
            names = _create_views(con, lake)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        # a WAL left by a crashed writer would be replayed onto the new file
        _wal(target).unlink(missing_ok=True)
        os.replace(tmp, target)
        record = tmp.with_name(f"{tmp.name}.root")
        record.write_text(_views_root(lake), encoding="utf-8")
        os.replace(record, _root_record(target))
    except (duckdb.Error, OSError) as exc:
        raise LakeError(f"{target}: cannot write the catalog: {_why(exc)}") from exc
    finally:
        for leftover in (tmp, _wal(tmp), tmp.with_name(f"{tmp.name}.root")):
            leftover.unlink(missing_ok=True)
    log.info("catalog %s: %d views", target, len(names))
    return names


def connect(
    lake: Lake,
    cfg: Config | None = None,
    read_only: bool = True,
    *,
    safe: bool = False,
    only: Collection[str] | None = None,
    scratch: Path | None = None,
    budgeted: bool = False,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session with the catalog's views over the lake as it is now, DuckDB's memory
    limit and spill folder from the config. The lake's files are only read (`read_only` is kept for
    callers; nothing is written either way). `safe`: nothing outside the lake can be read (external
    access off but for the lake's folder, configuration locked); statements are checked by `run_sql`.
    `only`: just these views (`views_named_in` a query; binding a view reads its files' footers), else all.
    `scratch`: a private empty folder a safe session may also write to (where `dpsim sql` writes its answer).
    `budgeted`: DuckDB gets its share of `aggregate.memory_limit_mb` (`duckdb_memory_limit_mb`), for a
    process that does more work beside it (the report), instead of the whole of it."""
    if lake.is_local:
        lake = Lake(lake.root.resolve())
    if not lake.root.is_dir():
        raise LakeError(
            f"{lake.root}: no such lake folder (pass --lake DIR of an existing lake, or run `dpsim shred`)"
        )
    settings = cfg.aggregate if cfg is not None else Aggregate()
    limit_mb = duckdb_memory_limit_mb(settings.memory_limit_mb) if budgeted else settings.memory_limit_mb
    con = duckdb.connect(
        ":memory:",
        config={
            "memory_limit": f"{limit_mb}MB",
            "temp_directory": str(spill_dir(lake, settings)),
        },
    )
    try:
        _register(con, lake)
        _create_views(con, lake, strict=True, only=only)
        if safe:
            _lock_down(con, lake, scratch)
    except BaseException:
        con.close()
        raise
    _check_catalog_file(lake)
    return con


# What `dpsim aggregate` holds outside DuckDB's memory_limit beyond the process's size when its DuckDB session
# opens (the interpreter, its libraries and the lake's file index, measured then): two rank passes' Arrow
# batches and numpy temporaries (~45 MB each), DuckDB's allocations outside its buffer pool and the Arrow
# results it hands over (~5 % of its limit), the bootstrap's index chunks (~100 MB, after the sorts). Measured
# at 54,000 partitions: at most ~320 MB above the process's size at session open; the rest is margin.
WORK_RESERVE_MB = 450
# The least DuckDB gets, whatever the budget (it runs out of memory well below): half a smaller budget.
MIN_DUCKDB_MB = 256


def duckdb_memory_limit_mb(total_mb: int, process_mb: int | None = None) -> int:
    """DuckDB's share of a budget of `total_mb` for the whole process: the budget less the process's current
    size (`process_mb`, else measured: the lake's index grows with its files) and WORK_RESERVE_MB. Below
    MIN_DUCKDB_MB (or half the budget, when smaller) DuckDB cannot work: it gets that, and a warning says
    the peak may exceed the budget."""
    process_mb = process_rss_mb() if process_mb is None else process_mb
    share = total_mb - process_mb - WORK_RESERVE_MB
    least = min(MIN_DUCKDB_MB, total_mb // 2)
    if share < least:
        log.warning(
            "aggregate.memory_limit_mb = %d MB is less than this process needs (%d MB now, %d MB while it "
            "aggregates) plus DuckDB's %d MB: its peak memory may exceed the limit",
            total_mb,
            process_mb,
            WORK_RESERVE_MB,
            least,
        )
        return least
    return share


def budgeted_session(
    lake: Lake, settings: Aggregate, *, keep_order: bool = True, loading_mb: int = 0
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session for work over many lake files (the aggregation, the compaction by date):
    DuckDB's share of the memory budget (`duckdb_memory_limit_mb`), spilling to `spill_dir`, no progress bar
    (dpsim reports progress itself). `keep_order=False` lets DuckDB stream and spill instead of buffering to
    keep row order (for queries whose every output has an ORDER BY). `loading_mb`: what a library loading on
    another thread will add to the process, not yet in its size."""
    limit_mb = duckdb_memory_limit_mb(settings.memory_limit_mb, process_rss_mb() + loading_mb)
    log.info(
        "DuckDB memory limit %d MB of aggregate.memory_limit_mb %d MB", limit_mb, settings.memory_limit_mb
    )
    con = duckdb.connect(
        config={
            "memory_limit": f"{limit_mb}MB",
            "temp_directory": str(spill_dir(lake, settings)),
            "preserve_insertion_order": keep_order,
            # keeps an entry for every file read (~0.5 KB, a year's 918,000 files: ~420 MB by the end of a cold
            # run): each file is read once, so the cache only grows
            "enable_external_file_cache": False,
        }
    )
    con.execute("SET enable_progress_bar = false")
    if not lake.is_local:
        con.register_filesystem(lake.root.fs)
    return con


def process_rss_mb() -> int:
    """This process's resident memory in MB (its peak so far where the current size cannot be read)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import resource
    except ImportError:  # Windows: the size of an interpreter with dpsim's libraries loaded
        return 250
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return int(peak // (2**20 if sys.platform == "darwin" else 1024))


def spill_dir(lake: Lake, settings: Aggregate) -> Path:
    """DuckDB's spill folder: the configured one, else this process's scratch in the lake, or in the system
    temp folder when the lake cannot be written (DuckDB creates the folder itself, its parent is made here)."""
    if settings.temp_directory:
        temp = Path(settings.temp_directory).resolve()
    elif lake.is_local and os.access(str(lake.root), os.W_OK):
        temp = lake.own_dir("duckdb")
    else:
        temp = Path(tempfile.gettempdir()) / "dpsim" / slug(lake.root) / locks.owner_tag() / "duckdb"
    temp.parent.mkdir(parents=True, exist_ok=True)  # DuckDB makes the spill folder, not its parents
    return temp


def _lock_down(con: duckdb.DuckDBPyConnection, lake: Lake, scratch: Path | None) -> None:
    """Read only inside the lake: external access off except its folder (as written, and as the views
    write it, glob-escaped) and the caller's `scratch` folder, configuration locked so a query cannot undo it."""
    root = str(lake.root).rstrip("/") + "/"
    allowed = {root, escape_glob(str(lake.root).rstrip("/")) + "/"}
    if scratch is not None:
        allowed.add(str(scratch.resolve()).rstrip("/") + "/")
    con.execute(f"SET allowed_directories = [{', '.join(_quote(a) for a in sorted(allowed))}]")
    con.execute("SET allowed_configs = ['preserve_insertion_order']")  # the aggregations' one setting
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _check_catalog_file(lake: Lake) -> None:
    """Warn when the lake's catalog file holds views over another folder (the lake was copied or moved):
    other DuckDB clients would read that folder's files. Read from the folder the refresh recorded beside
    the catalog (`_root_record`: a small text file, where opening the catalog costs a DuckDB session);
    a catalog written before that record existed is opened."""
    path = lake.catalog_path
    if not path.exists():
        return
    try:
        elsewhere = _root_record(path).read_text(encoding="utf-8") != _views_root(lake)
    except OSError:  # no record: a catalog written before records were
        sql = _first_view_sql(path)
        if sql is None:
            return
        elsewhere = _quote(_views_root(lake))[:-1] not in sql
    if elsewhere:
        log.warning(
            "%s holds views over another folder (the lake was copied or moved): dpsim reads this lake, but "
            "other DuckDB clients of that file do not; `dpsim catalog --lake %s` rewrites it",
            path,
            lake.root,
        )


def _first_view_sql(path: Path) -> str | None:
    """The SQL of a view over Parquet files in a catalog file; None when it cannot be opened or has none."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:  # held by another session, or unreadable: nothing to say
        return None
    try:
        rows = con.execute(
            "SELECT sql FROM duckdb_views() WHERE NOT internal AND sql LIKE '%read_parquet(%' LIMIT 1"
        ).fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return str(rows[0][0]) if rows else None


def _views_root(lake: Lake) -> str:
    """How the views spell the lake's folder: glob-escaped, with a trailing slash."""
    return escape_glob(str(lake.root).rstrip("/")) + "/"


def _root_record(catalog: Path) -> Path:
    """Beside the catalog (hidden): the folder its views read, as they spell it, written by each refresh."""
    return catalog.with_name(f".{catalog.name}.root")


def _register(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Serve an object-store lake's URLs through its fsspec filesystem (no httpfs extension needed)."""
    if not lake.is_local:
        con.register_filesystem(lake.root.fs)


# Words that make a query ask about the catalog itself (SHOW TABLES, information_schema, duckdb_views(), …):
# such a query gets every view.
_ABOUT_CATALOG = re.compile(r"^(duckdb_|pg_|sqlite_|pragma_)|^(information_schema|show|tables)$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def views_named_in(query: str) -> set[str] | None:
    """The words of a query that may name a view, for `connect(only=…)`: a view is created only when its
    name appears (a word in a string or a comment costs one view too many, never one too few); None (every
    view) when the query asks about the catalog itself."""
    words = {w.lower() for w in _WORD.findall(query)}
    if any(_ABOUT_CATALOG.search(w) for w in words):
        return None
    return words


def view_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The catalog's views (not the temporary ones of a session)."""
    rows = con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary ORDER BY view_name"
    ).fetchall()
    return [r[0] for r in rows]


# ---- view definitions ---------------------------------------------------------------------------


def _create_views(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    *,
    strict: bool = False,
    only: Collection[str] | None = None,
) -> list[str]:
    """Create every view whose files exist (`only`: of these names); a view that DuckDB cannot bind is
    skipped with a warning (`strict`: a corrupt file fails, naming the command that rebuilds it).

    Paths are literals, not bound parameters: a view stores its SQL text and cannot hold parameters.
    """
    wanted = None if only is None else {n.lower() for n in only}
    if wanted is not None and "jobs" in wanted:
        wanted.add("runs")  # the jobs view reads the runs view
    names: list[str] = []
    for name, pattern, select in _definitions(lake):
        if wanted is not None and name.lower() not in wanted:
            continue
        if not lake.any_match(pattern):
            continue
        try:
            con.execute(f"CREATE OR REPLACE VIEW {_ident(name)} AS {select}")
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.FatalException) or "No space left on device" in str(exc):
                raise  # the catalog cannot be written at all, not one view that cannot be bound
            first = str(exc).splitlines()[0]
            hint = corrupt_file_hint(first)
            if strict and hint is not None:  # a reader would get a missing view: say what is wrong instead
                raise LakeError(hint) from exc
            log.warning("catalog: no view %s over %s: %s", name, pattern, hint or first)
            continue
        names.append(name)
    if "rejects" not in names and (wanted is None or "rejects" in wanted):
        # nothing was rejected (or shredded yet): an empty view, not a missing one
        cols = ", ".join(f"NULL::{duck_type} AS {_ident(name)}" for name, duck_type in REJECT_COLUMNS)
        con.execute(f"CREATE OR REPLACE VIEW rejects AS SELECT NULL::VARCHAR AS kind, {cols} WHERE false")
        names.append("rejects")
    if "runs" in names and (wanted is None or "jobs" in wanted) and _has_job_list(con):
        con.execute("CREATE OR REPLACE VIEW jobs AS SELECT run_id, unnest(jobs, recursive := true) FROM runs")
        names.append("jobs")
    return sorted(names)


def _definitions(lake: Lake) -> list[tuple[str, UPath, str]]:
    """(view name, glob whose first match proves the table exists, SELECT) for every lake table."""
    out: list[tuple[str, UPath, str]] = []
    hidden: dict[str, list[str]] = {}  # sources whose publish is under way or was interrupted
    for body in publish.half_published(lake):
        hidden.setdefault(body["kind"], []).append(body["source_id"])
    for table in (*RAW_TABLES, *RESULT_TABLES):
        keys = (
            ("scenario", "security_code", "date") if table in SCENARIO_TABLES else ("security_code", "date")
        )
        cols = ", ".join(keys)
        folders: tuple[str, ...]
        if table in RESULT_TABLES:  # compacted by date: scenario and security_code are in the files
            folders = ("date",)
            pattern = lake.by_date_glob(table)
        else:
            folders = keys
            pattern = lake.table_dir(table).joinpath(*["*"] * len(keys), "*.parquet")
        hive = ", ".join(f"'{k}': {_HIVE_TYPES[k]}" for k in folders)
        select = (
            f"SELECT {cols}, * EXCLUDE ({cols}) FROM read_parquet({_lit(pattern, lake.root)}, "
            f"hive_partitioning = true, hive_types = {{{hive}}})"
        )
        if hidden.get(table):  # leave out their files: never half a source (source ids are [A-Za-z0-9_-])
            names = "|".join(sorted(hidden[table]))
            select = (
                f"SELECT {cols}, * EXCLUDE ({cols}, filename) FROM read_parquet({_lit(pattern, lake.root)}, "
                f"hive_partitioning = true, hive_types = {{{hive}}}, filename = true) "
                f"WHERE NOT regexp_matches(filename, '/part-({names})(-[0-9]+)?[.]parquet$')"
            )
        out.append((table, pattern, select))
    for kind in REFERENCE_KINDS:
        path = lake.reference_path(kind)
        out.append((kind, path, f"SELECT * FROM read_parquet({_lit(path, lake.root)})"))
    rejects = lake.rejects_path("*", "*")
    out.append(
        (
            "rejects",
            rejects,
            "SELECT regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS kind, * EXCLUDE (filename) "
            f"FROM read_parquet({_lit(rejects, lake.root)}, filename = true)",
        )
    )
    for name, pattern in (("manifest", lake.manifest_path("*")), ("runs", lake.runs_dir / "*.json")):
        size = _max_object_size(pattern)
        out.append(
            (
                name,
                pattern,
                f"SELECT * FROM read_json({_lit(pattern, lake.root)}, union_by_name = true, "
                f"maximum_object_size = {size})",
            )
        )
    for path in sorted(lake.aggregates_dir.glob("*.parquet")) if lake.aggregates_dir.is_dir() else []:
        if path.stem.isidentifier() and path.stem not in {name for name, _, _ in out}:
            out.append((path.stem, path, f"SELECT * FROM read_parquet({_lit(path, lake.root)})"))
    return out


def _max_object_size(pattern: UPath) -> int:
    """read_json's maximum_object_size for these files: a power of two of 4x the largest, at least 16 MB."""
    largest = max((p.stat().st_size for p in pattern.parent.glob(pattern.name)), default=0)
    return max(_MIN_JSON_BYTES, 1 << (4 * largest).bit_length())


_FILE_IN_ERROR = re.compile(r"""['"]([^'"]+\.parquet)['"]""")
_PARTITION_IN_PATH = re.compile(r"security_code=(-?\d+)/date=(\d{4}-\d{2}-\d{2})/")


def corrupt_file_hint(first: str) -> str | None:
    """For a DuckDB error that names an unreadable lake file: the file, the error and the command that
    rebuilds it (None for any other error)."""
    m = _FILE_IN_ERROR.search(first)
    if m is None or not ("magic bytes" in first or "too small" in first or "Corrupt" in first):
        return None
    path = m.group(1)
    part = _PARTITION_IN_PATH.search(path)
    if "/results_by_date/" in path:
        return f"{path}: a corrupt result file by date ({first}); rebuild it with: dpsim catalog --rescan"
    if "/results/" in path and part is not None:
        code, day = part.groups()
        return (
            f"{path}: a corrupt result file ({first}); rebuild it with: "
            f"dpsim process --force --securities {code} --dates {day}"
        )
    if "/aggregates/" in path:
        return f"{path}: a corrupt aggregate file ({first}); rebuild it with: dpsim aggregate"
    return f"{path}: a corrupt lake file ({first}); shred its source again with `dpsim shred --force`"


def _has_job_list(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the run JSONs carry a `jobs` list of records to flatten (defensive: the format may evolve)."""
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE runs)").fetchall())
    jobs = types.get("jobs", "")
    return "run_id" in types and jobs.startswith("STRUCT(") and jobs.endswith("[]")


def _lit(path: UPath, root: UPath | None = None) -> str:
    """A path as a DuckDB string literal of a glob: the part of the lake root escaped (`[`, `*`, `?` are
    literal there), the part below it left as the pattern it is."""
    text = str(path)
    if root is not None:
        base = str(root).rstrip("/")
        if text.startswith(base + "/"):
            text = escape_glob(base) + text[len(base) :]
    return _quote(text)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def escape_glob(text: str) -> str:
    """`text` as a DuckDB glob that matches only itself."""
    return re.sub(r"[\[*?]", lambda m: f"[{m.group(0)}]", text)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lake_error_text(exc: duckdb.Error | OSError, what: str) -> str:
    """A failed read or write of the lake's files in one line: the command that rebuilds a corrupt file,
    else `what` and the error in words (a full disk said so)."""
    hint = corrupt_file_hint(first_line(exc)) if isinstance(exc, duckdb.Error) else None
    return hint or f"{what}: {_why(exc)}"


def _why(exc: duckdb.Error | OSError) -> str:
    """An error while writing, in words: a full disk is said so, whoever reports it."""
    if isinstance(exc, OSError):
        return os_error_text(exc)
    first = first_line(exc)
    if "No space left on device" in first:
        return f"no space left on device ({first}): free space on that disk, then rerun"
    return first


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")

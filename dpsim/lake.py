"""The only module that knows the lake's paths: partitions, listing, atomic writes, manifests.

Layout (DOMAIN §4):
    <root>/<kind>/security_code=<int>/date=<YYYY-MM-DD>/part-<source-id>[-<n>].parquet   kind = orders|trades|nbbo
    <root>/reference/<kind>.parquet                                                     small reference files
    <root>/results/<table>/[scenario=<name>/]security_code=<int>/date=<YYYY-MM-DD>/part-0.parquet
    <root>/_manifest/<source-id>.json     one record per shredded source file
    <root>/_rejects/<kind>/<source-id>.parquet
    <root>/_runs/<run-id>.json  (+ <run-id>.log)
    <root>/_exports/<target>.json         what `dpsim export` sent to each target (partition signatures)
    <root>/aggregates/<name>.parquet (+ .csv)
    <root>/dpsim.duckdb
Partition keys live in the path only. Every file is written to a hidden temp name and renamed into place,
so readers never see half a file and an interrupted writer leaves nothing visible.

The root is a local or shared path, a `file://` URL, or an object-store URL (`s3://bucket/lake`,
`gs://…`) served by fsspec. Lake paths are `UPath`s either way: local ones are plain `pathlib` paths.
An object store has no rename, but a PUT is atomic per object (readers see all of it or nothing), so
files are written straight to their key there; what needs a local file (shred staging, the DuckDB
catalog and spill folder, a run's log) goes to a local scratch folder (`local_dir`) instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from dpsim.errors import LakeError

RAW_TABLES = ("orders", "trades", "nbbo")
RESULT_TABLES = ("sweeps", "sim_fills", "sim_orders")
SCENARIO_TABLES = ("sim_fills", "sim_orders")
# URL scheme -> its fsspec package. S3 is tested (against moto); the others go through the same calls.
OBJECT_STORES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
_PART_RE = re.compile(r"^security_code=(-?\d+)$")
_DATE_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One (security_code, trading date) partition: the unit of work of `dpsim process`."""

    security_code: int
    date: date

    def __str__(self) -> str:
        return f"{self.security_code}/{self.date.isoformat()}"

    @property
    def hive(self) -> str:
        return f"security_code={self.security_code}/date={self.date.isoformat()}"


def source_id(path: str | Path) -> str:
    """Stable id of a source file from its absolute path: same source -> same part-file names."""
    p = Path(path).resolve()
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", p.name.split(".")[0])[:40]
    return f"{stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:10]}"


class Lake:
    """Paths and atomic file operations under one lake root."""

    def __init__(self, root: str | Path | UPath) -> None:
        self.root = _root(root)

    def check_reachable(self) -> None:
        """One clear line when an object store's bucket is missing or unreachable, before any work starts
        (instead of a traceback from inside the first write)."""
        if self.is_local:
            return
        bucket = self.root.path.split("/", 1)[0]
        try:
            self.root.fs.info(bucket)
        except Exception as exc:
            first = next(iter(str(exc).strip().splitlines()), "")
            raise LakeError(
                f"{self.root}: cannot reach bucket {bucket!r} ({type(exc).__name__}: {first}); check the name, "
                "the credentials and the endpoint in the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, …)"
            ) from exc

    @property
    def is_local(self) -> bool:
        """A filesystem path (renames are atomic), not an object store."""
        return not self.root.protocol

    # ---- paths ----------------------------------------------------------------------------------
    def table_dir(self, table: str, scenario: str | None = None) -> UPath:
        base = self.root / table if table in RAW_TABLES else self.root / "results" / table
        return base / f"scenario={scenario}" if scenario is not None else base

    def partition_dir(self, table: str, key: PartitionKey, scenario: str | None = None) -> UPath:
        return self.table_dir(table, scenario) / key.hive

    def partition_files(self, table: str, key: PartitionKey, scenario: str | None = None) -> list[UPath]:
        d = self.partition_dir(table, key, scenario)
        return sorted(d.glob("*.parquet")) if d.is_dir() else []

    def result_path(self, table: str, key: PartitionKey, scenario: str | None = None) -> UPath:
        return self.partition_dir(table, key, scenario) / "part-0.parquet"

    def raw_part_path(self, kind: str, key: PartitionKey, source: str, piece: int = 0) -> UPath:
        suffix = "" if piece == 0 else f"-{piece}"
        return self.partition_dir(kind, key) / f"part-{source}{suffix}.parquet"

    def reference_path(self, kind: str) -> UPath:
        return self.root / "reference" / f"{kind}.parquet"

    @property
    def manifest_dir(self) -> UPath:
        return self.root / "_manifest"

    def rejects_path(self, kind: str, source: str) -> UPath:
        return self.root / "_rejects" / kind / f"{source}.parquet"

    @property
    def runs_dir(self) -> UPath:
        return self.root / "_runs"

    @property
    def exports_dir(self) -> UPath:
        """One JSON per export target: the signatures of the partitions sent there (incremental exports)."""
        return self.root / "_exports"

    @property
    def aggregates_dir(self) -> UPath:
        return self.root / "aggregates"

    @property
    def catalog_path(self) -> Path:
        """The DuckDB catalog: in the lake, or for an object store in a local cache (it is rebuilt when missing)."""
        if self.is_local:
            return _os_path(self.root) / "dpsim.duckdb"
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dpsim" / "catalogs"
        return cache / f"{_slug(self.root)}.duckdb"

    def shared_dir(self, name: str) -> UPath:
        """A scratch folder every worker of a cluster reaches (staging of a shred split across machines):
        `<root>/_tmp/<name>`, in the lake itself."""
        return self.root / "_tmp" / name

    def local_dir(self, name: str) -> Path:
        """A local scratch folder `name` (shred staging, DuckDB spill, fault markers): `<root>/_tmp/<name>`
        for a local lake (same filesystem, so staged files are renamed into place), else under the
        system temp folder, one per lake."""
        if self.is_local:
            return _os_path(self.root) / "_tmp" / name
        return Path(tempfile.gettempdir()) / "dpsim" / _slug(self.root) / name

    # ---- listing --------------------------------------------------------------------------------
    def partitions(self, table: str = "orders", scenario: str | None = None) -> list[PartitionKey]:
        """Partitions present for a table, from the directory names (no file is opened)."""
        base = self.table_dir(table, scenario)
        if not self.is_local:
            return self._listed_partitions(base)
        out = []
        for sec_dir in _subdirs(base):
            m = _PART_RE.match(sec_dir.name)
            if not m:
                continue
            for date_dir in _subdirs(sec_dir):
                d = _DATE_RE.match(date_dir.name)
                if d and any(date_dir.glob("*.parquet")):
                    out.append(PartitionKey(int(m.group(1)), date.fromisoformat(d.group(1))))
        return sorted(out)

    def _listed_partitions(self, base: UPath) -> list[PartitionKey]:
        """The object-store listing: one recursive LIST of the table's prefix, not one call per folder."""
        keys = set()
        for name in base.fs.glob(f"{base.path}/security_code=*/date=*/*.parquet"):
            sec, day = name.split("/")[-3:-1]
            m, d = _PART_RE.match(sec), _DATE_RE.match(day)
            if m and d:
                keys.add(PartitionKey(int(m.group(1)), date.fromisoformat(d.group(1))))
        return sorted(keys)

    def result_tables(self) -> list[str]:
        """Every table under results/, from the folder names: the result set grows with the metrics, so
        exports discover it rather than relying on RESULT_TABLES."""
        return sorted(p.name for p in _subdirs(self.root / "results") if not p.name.startswith((".", "_")))

    def scenarios(self, table: str = "sim_orders") -> list[str]:
        return sorted(
            p.name.split("=", 1)[1] for p in _subdirs(self.table_dir(table)) if p.name.startswith("scenario=")
        )

    # ---- writing --------------------------------------------------------------------------------
    def write_parquet(self, table: pa.Table, path: UPath, *, row_group_rows: int = 131072) -> int:
        """Write atomically (temp + rename, or one PUT), zstd, with statistics; returns bytes written."""
        with _atomic(path) as tmp:
            fs = None if self.is_local else tmp.fs
            pq.write_table(
                table,
                tmp if fs is None else tmp.path,
                filesystem=fs,
                compression="zstd",
                write_statistics=True,
                row_group_size=row_group_rows,
            )
        return int(path.stat().st_size)

    def write_json(self, obj: Any, path: UPath) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=False, default=str).encode(), path)

    def write_bytes(self, data: bytes, path: UPath) -> None:
        with _atomic(path) as tmp:
            tmp.write_bytes(data)

    def put(self, local: Path, path: UPath) -> None:
        """Move a finished local file (from `local_dir`) to its lake path: a rename, or an upload."""
        self.put_many({path: local})

    def put_many(self, moves: Mapping[UPath, Path | UPath]) -> None:
        """`put` for many files (a shredded source's parts): renames, or concurrent uploads; a source that
        is already an object of the store (staged there by a cluster worker) is copied within the store."""
        if self.is_local:
            for path, staged in moves.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(str(staged), _os_path(path))
            return
        objects = {p: s for p, s in moves.items() if isinstance(s, UPath) and s.protocol}
        files = {p: Path(str(s)) for p, s in moves.items() if p not in objects}
        fs = self.root.fs
        if files:
            fs.put([str(f) for f in files.values()], [p.path for p in files])
            for f in files.values():
                f.unlink()
        if objects:
            fs.copy([s.path for s in objects.values()], [p.path for p in objects])
            fs.rm([s.path for s in objects.values()])

    @contextmanager
    def local_file(self, path: UPath) -> Iterator[Path]:
        """A local file to write `path` through while it grows (a run's log): the path itself in a local
        lake, else a scratch file uploaded at the end."""
        if self.is_local:
            path.parent.mkdir(parents=True, exist_ok=True)
            yield _os_path(path)
            return
        local = self.local_dir("outbox") / path.name
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield local
        finally:
            if local.exists():
                self.put(local, path)

    def read_parquet(self, path: UPath, **options: Any) -> pa.Table:
        if self.is_local:
            return pq.read_table(path, **options)
        return pq.read_table(path.path, filesystem=path.fs, **options)

    def remove_tree(self, path: UPath) -> None:
        if not path.exists():
            return
        if self.is_local:
            shutil.rmtree(_os_path(path))
        else:
            path.fs.rm(path.path, recursive=True)

    def any_match(self, pattern: UPath) -> bool:
        """Whether a glob under the root matches a file (the catalog makes views only over existing tables)."""
        if self.is_local:
            return next(self.root.glob(str(pattern.relative_to(self.root))), None) is not None
        return bool(self.root.fs.glob(pattern.path, maxdepth=None))

    def file_signatures(self, table: str, keys: Sequence[PartitionKey]) -> dict[PartitionKey, list[str]]:
        """`<file>:<size>:<modified>` of each partition's files, sorted: what tells changed inputs from
        unchanged ones. An object store answers from one listing of the table, not a request per file."""
        if self.is_local:
            out = {}
            for key in keys:
                stats = ((f.name, f.stat()) for f in self.partition_files(table, key))
                out[key] = [f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in stats]
            return out
        base = self.table_dir(table)
        listed: dict[str, list[str]] = {}
        for name, info in sorted(base.fs.find(base.path, detail=True).items()):
            folder, _, file = name.rpartition("/")
            if file.endswith(".parquet"):
                modified = info.get("LastModified", info.get("mtime", info.get("updated", "")))
                listed.setdefault(folder, []).append(f"{file}:{info['size']}:{modified}")
        return {key: listed.get(self.partition_dir(table, key).path, []) for key in keys}

    def remove_source_parts(
        self, kind: str, source: str, partitions: list[PartitionKey], keep: Collection[UPath] = ()
    ) -> int:
        """Delete a source's part files (every piece) in the given partitions, except the paths in `keep`
        (before re-shredding it: `keep` holds the files about to be replaced in place)."""
        if not self.is_local:  # one listing of the table, one batched delete
            base, kept_keys = self.table_dir(kind), {p.path for p in keep}
            folders = {self.partition_dir(kind, key).path for key in partitions}
            doomed = [
                name
                for name in base.fs.glob(f"{base.path}/security_code=*/date=*/part-{source}*.parquet")
                if name.rpartition("/")[0] in folders
                and _is_source_part(name.rpartition("/")[2], source)
                and name not in kept_keys
            ]
            if doomed:
                base.fs.rm(doomed)
            return len(doomed)
        n = 0
        kept = set(keep)
        for key in partitions:
            for f in self.partition_dir(kind, key).glob(f"part-{source}*.parquet"):
                if f not in kept and _is_source_part(f.name, source):
                    f.unlink()
                    n += 1
        return n

    def clear_partition_results(self, key: PartitionKey, scenarios: tuple[str, ...]) -> None:
        """Remove a partition's previous results for the tables and scenarios about to be rewritten,
        so a job that fails half-way leaves no stale mix of old and new files."""
        for table in RESULT_TABLES:
            dirs = (
                [self.partition_dir(table, key, s) for s in scenarios]
                if table in SCENARIO_TABLES
                else [self.partition_dir(table, key)]
            )
            for d in dirs:
                self.remove_tree(d)

    # ---- manifests --------------------------------------------------------------------------------
    def manifest_path(self, source: str) -> UPath:
        return self.manifest_dir / f"{source}.json"

    def read_manifest(self, source: str) -> dict[str, Any] | None:
        p = self.manifest_path(source)
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


@contextmanager
def _atomic(path: UPath) -> Iterator[UPath]:
    """Where to write `path` so readers never see half a file: a hidden temp name beside it, renamed onto
    it once written; on an object store the key itself (an object appears only when its PUT completes)."""
    if path.protocol:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    yield tmp
    os.replace(_os_path(tmp), _os_path(path))


def _root(root: str | Path | UPath) -> UPath:
    """A lake root: a local or shared-filesystem path, a `file://` URL, or an object-store URL."""
    text = str(root)
    if text.startswith("file://"):
        return UPath(os.path.abspath(urlparse(text).path))
    scheme = urlparse(text).scheme
    if len(scheme) <= 1:  # none, or one letter: a Windows drive, not a scheme
        return UPath(os.path.abspath(text))  # workers may start elsewhere: they get the absolute path
    if scheme not in OBJECT_STORES:
        raise LakeError(
            f"{text}: {scheme}:// lake roots are not supported; give a path, a file:// URL or one of "
            + ", ".join(f"{s}://" for s in OBJECT_STORES)
        )
    try:
        # No listings cache: workers in other processes add files that this process must see.
        path = UPath(text.rstrip("/"), use_listings_cache=False)
        path.fs  # noqa: B018 -- the filesystem's package is imported here, not at the first write
        return path
    except ImportError as exc:
        raise LakeError(
            f"{text}: a {scheme}:// lake needs the {OBJECT_STORES[scheme]} package: "
            f"pip install 'dpsim[{'s3' if OBJECT_STORES[scheme] == 's3fs' else 'cloud'}]'"
        ) from exc


def _is_source_part(name: str, source: str) -> bool:
    """part-<source>.parquet or part-<source>-<piece>.parquet (not another source whose id extends this one)."""
    return (
        name == f"part-{source}.parquet"
        or re.fullmatch(rf"part-{re.escape(source)}-\d+\.parquet", name) is not None
    )


def _os_path(path: UPath) -> Path:
    """A local lake path as what `os` and `shutil` take."""
    return Path(path.path)


def _slug(root: UPath) -> str:
    """A readable, unique local folder name for a remote root (scratch folder, catalog cache)."""
    text = str(root)
    return (
        re.sub(r"[^A-Za-z0-9]+", "_", text)[-40:].strip("_")
        + "-"
        + hashlib.sha1(text.encode()).hexdigest()[:8]
    )


def _subdirs(path: UPath) -> list[UPath]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

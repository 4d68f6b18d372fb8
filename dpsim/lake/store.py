"""Where the lake's bytes live: a local (or shared) filesystem, or an object store, behind one interface.

A filesystem has atomic renames: every file is written to a temp file in the writing process's own scratch
folder, `<root>/_tmp/<host>-<pid>/`, on the same filesystem, and renamed into place, so a killed writer
leaves its temp files only there; the next writer removes the scratch folders of processes of its host
that are gone (`clean_scratch`). An object store has no rename,
but a PUT is atomic per object (readers see all of it or nothing), so files are written straight to their
key; what needs a local file (shred staging, the DuckDB catalog and spill folder, a run's log) goes to a
local scratch folder instead, and listings are one recursive LIST of a prefix, not one call per folder.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from dpsim.errors import LakeError, os_error_text
from dpsim.lake import locks
from dpsim.lake.layout import (
    PART_GLOB,
    PartitionKey,
    is_source_part,
    locks_dir,
    scratch_root,
    slug,
    source_part_glob,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

# URL scheme -> its fsspec package. S3 is tested (against moto); the others go through the same calls.
OBJECT_STORES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


def pq() -> ModuleType:
    """pyarrow.parquet, imported on first use: a query or a status command that writes no Parquet does not
    pay for pyarrow and numpy."""
    import pyarrow.parquet

    return pyarrow.parquet


class Store(ABC):
    """The storage operations of one lake root; paths are the root's `UPath`s (see `layout`)."""

    is_local: bool

    def __init__(self, root: UPath) -> None:
        self.root = root

    @abstractmethod
    def check_reachable(self) -> None:
        """Fail with one clear line before any work when the storage cannot be reached."""

    @abstractmethod
    def lock(self, scope: str, wait_s: float) -> AbstractContextManager[None]:
        """Hold the lake's lock of `scope` (see `locks`); a second writer waits `wait_s`, then fails."""

    @abstractmethod
    def catalog_path(self) -> Path:
        """The DuckDB catalog file (a local file: DuckDB writes it in place)."""

    @abstractmethod
    def scratch_root(self) -> Path:
        """The local folder that holds the lake's scratch folders."""

    def local_dir(self, name: str) -> Path:
        """A local scratch folder `name` shared by the lake's processes (fault markers, local locks)."""
        return self.scratch_root() / name

    def own_dir(self, name: str) -> Path:
        """This process's local scratch folder `name` (temp files, staging, DuckDB spill): removed by the
        next writer once the process is gone, however it ended."""
        return self.scratch_root() / locks.owner_tag() / name

    def clean_scratch(self) -> None:
        """Remove the scratch folders of this host's processes that are gone (killed writers' temp files)."""
        root = self.scratch_root()
        for entry in _listdir(root):
            if locks.owner_gone(entry):
                shutil.rmtree(root / entry, ignore_errors=True)
        self.tidy_scratch()

    def tidy_scratch(self) -> None:
        """Remove this process's empty scratch folders, and the scratch root when nothing is left in it."""
        own = self.scratch_root() / locks.owner_tag()
        for folder, _, _ in sorted(os.walk(own), key=lambda w: -len(w[0])):
            _rmdir(Path(folder))
        _rmdir(self.scratch_root())

    @abstractmethod
    def partitions(self, base: UPath) -> list[PartitionKey]:
        """Partitions with at least one part file below a table folder."""

    @abstractmethod
    def write_parquet(self, table: pa.Table, path: UPath, **options: Any) -> None:
        """Write a Parquet file so that readers never see half of it."""

    @abstractmethod
    def write_parquet_many(self, tables: Mapping[UPath, pa.Table], **options: Any) -> None:
        """Write several Parquet files, all or none (as far as the store allows: see the back ends)."""

    @abstractmethod
    def write_bytes(self, data: bytes, path: UPath) -> None:
        """Write a small file so that readers never see half of it."""

    @abstractmethod
    def touch(self, path: UPath) -> None:
        """Create an empty file (a marker: nothing in it to see half of)."""

    @abstractmethod
    def put_many(self, moves: Mapping[UPath, Path | UPath]) -> None:
        """Move finished files (local, or objects of the store staged by a cluster worker) to their paths."""

    @abstractmethod
    def local_file(self, path: UPath) -> Any:
        """A context manager giving a local file to write `path` through while it grows."""

    @abstractmethod
    def read_parquet(self, path: UPath, columns: Sequence[str] | None = None) -> pa.Table:
        """One Parquet file (through `pq.ParquetFile`: `pq.read_table` goes through the dataset layer, which
        imports pandas when it is installed)."""

    @abstractmethod
    def remove_tree(self, path: UPath) -> None: ...

    @abstractmethod
    def remove_files(self, paths: Sequence[UPath]) -> None:
        """Delete files (those already gone are no error)."""

    @abstractmethod
    def any_match(self, pattern: UPath) -> bool:
        """Whether a glob under the root matches a file."""

    @abstractmethod
    def file_signatures(self, base: UPath, folders: Sequence[UPath]) -> list[list[str]]:
        """`<file>:<size>:<modified>` of the Parquet files of each folder below `base`, sorted."""

    @abstractmethod
    def remove_parts(
        self, base: UPath, folders: Sequence[UPath], source: str, keep: Collection[UPath]
    ) -> int:
        """Delete a source's part files in the given partition folders of a table, except those in `keep`."""

    @abstractmethod
    def list_part_files(
        self, base: UPath, days: Collection[date] | None = None
    ) -> Iterator[tuple[PartitionKey, str, str]]:
        """Every Parquet file below `base`'s partition folders (of the given trading dates only, when given),
        in a stable order: (key, its path below `base`, `<size>:<modified>`)."""


class LocalStore(Store):
    """A local or shared filesystem: temp name + rename, scratch in `<root>/_tmp`."""

    is_local = True

    def check_reachable(self) -> None:
        """A missing folder is created by the first write; a file given as the lake fails here."""
        if self.root.exists() and not self.root.is_dir():
            raise LakeError(f"{self.root}: not a lake folder (it is a file); pass --lake DIR of a folder")

    def lock(self, scope: str, wait_s: float) -> AbstractContextManager[None]:
        return locks.file_lock(self.root, str(_os_path(locks_dir(self.root))), scope, wait_s)

    def catalog_path(self) -> Path:
        return _os_path(self.root) / "dpsim.duckdb"

    def scratch_root(self) -> Path:
        """`<root>/_tmp`: the same filesystem, so staged files are renamed into place."""
        return _os_path(scratch_root(self.root))

    def partitions(self, base: UPath) -> list[PartitionKey]:
        out = []
        for sec_dir in _subdirs(base):
            for date_dir in _subdirs(sec_dir):
                key = PartitionKey.from_folders(sec_dir.name, date_dir.name)
                if key is not None and any(date_dir.glob("*.parquet")):
                    out.append(key)
        return sorted(out)

    def write_parquet(self, table: pa.Table, path: UPath, **options: Any) -> None:
        with self._atomic(path) as tmp:
            pq().write_table(table, tmp, **options)

    def write_parquet_many(self, tables: Mapping[UPath, pa.Table], **options: Any) -> None:
        """Every file to its temp file first, then the renames: a failure before them changes nothing."""
        with contextlib.ExitStack() as stack:
            temps = {path: stack.enter_context(self._atomic(path)) for path in tables}
            for path, tmp in temps.items():
                pq().write_table(tables[path], tmp, **options)

    def write_bytes(self, data: bytes, path: UPath) -> None:
        with self._atomic(path) as tmp:
            tmp.write_bytes(data)

    def touch(self, path: UPath) -> None:
        try:
            _create(_os_path(path))
        except OSError as exc:
            raise LakeError(f"{path}: {os_error_text(exc)}") from exc

    @contextmanager
    def _atomic(self, path: UPath) -> Iterator[Path]:
        """A temp file in this process's scratch folder, renamed onto `path` once written; a failure
        removes it and becomes one line naming the path."""
        tmp = self.own_dir("write") / f"{next(_serial)}-{path.name}"
        try:
            _create(tmp)
            _os_path(path.parent).mkdir(parents=True, exist_ok=True)
            yield tmp
            _rename(tmp, _os_path(path))
        except OSError as exc:
            raise LakeError(f"{path}: {os_error_text(exc)}") from exc
        finally:
            tmp.unlink(missing_ok=True)
            _rmdir(tmp.parent)  # this process's scratch stays only while it holds something
            _rmdir(tmp.parent.parent)

    def put_many(self, moves: Mapping[UPath, Path | UPath]) -> None:
        try:
            for path, staged in moves.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                _rename(Path(str(staged)), _os_path(path))
        except OSError as exc:
            raise LakeError(f"{exc.filename or self.root}: {os_error_text(exc)}") from exc

    @contextmanager
    def local_file(self, path: UPath) -> Iterator[Path]:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(f"{path.parent}: {os_error_text(exc)}") from exc
        yield _os_path(path)

    def read_parquet(self, path: UPath, columns: Sequence[str] | None = None) -> pa.Table:
        return pq().ParquetFile(_os_path(path)).read(columns=columns)

    def remove_tree(self, path: UPath) -> None:
        if path.exists():
            shutil.rmtree(_os_path(path))

    def remove_files(self, paths: Sequence[UPath]) -> None:
        for path in paths:
            _os_path(path).unlink(missing_ok=True)

    def any_match(self, pattern: UPath) -> bool:
        return next(self.root.glob(str(pattern.relative_to(self.root))), None) is not None

    def file_signatures(self, base: UPath, folders: Sequence[UPath]) -> list[list[str]]:
        out = []
        for folder in folders:
            files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
            stats = ((f.name, f.stat()) for f in files)
            out.append([f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in stats])
        return out

    def list_part_files(
        self, base: UPath, days: Collection[date] | None = None
    ) -> Iterator[tuple[PartitionKey, str, str]]:
        """One os.scandir walk, yielded as it goes (tens of thousands of partitions: no pathlib object, no list);
        with `days`, only those date folders of each security are opened."""
        wanted = None if days is None else [f"date={d.isoformat()}" for d in sorted(days)]
        for sec in _scandir(str(_os_path(base))):
            if not sec.is_dir():
                continue
            if wanted is None:
                folders = [(d.name, d.path) for d in _scandir(sec.path) if d.is_dir()]
            else:  # a missing date folder lists as empty
                folders = [(name, os.path.join(sec.path, name)) for name in wanted]
            for name, path in folders:
                key = PartitionKey.from_folders(sec.name, name)
                if key is None:
                    continue
                for f in _scandir(path):
                    if f.name.endswith(".parquet") and f.is_file():
                        st = f.stat()
                        yield key, f"{sec.name}/{name}/{f.name}", f"{st.st_size}:{st.st_mtime_ns}"

    def remove_parts(
        self, base: UPath, folders: Sequence[UPath], source: str, keep: Collection[UPath]
    ) -> int:
        n = 0
        kept = set(keep)
        for folder in folders:
            for f in folder.glob(source_part_glob(source)):
                if f not in kept and is_source_part(f.name, source):
                    f.unlink()
                    n += 1
        return n


class ObjectStore(Store):
    """An object store through fsspec: one PUT per object, listings by prefix, local scratch and catalog."""

    is_local = False

    def check_reachable(self) -> None:
        """One clear line when the bucket is missing or unreachable (instead of a traceback from inside
        the first write)."""
        bucket = self.root.path.split("/", 1)[0]
        try:
            self.root.fs.info(bucket)
        except Exception as exc:
            first = next(iter(str(exc).strip().splitlines()), "")
            raise LakeError(
                f"{self.root}: cannot reach bucket {bucket!r} ({type(exc).__name__}: {first}); check the name, "
                "the credentials and the endpoint in the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, …)"
            ) from exc

    @contextmanager
    def lock(self, scope: str, wait_s: float) -> Iterator[None]:
        """Writers on this host queue on a local lock first, then hold the store's lock object."""
        with (
            locks.file_lock(self.root, str(self.local_dir("locks")), scope, wait_s),
            locks.object_lock(self.root, locks_dir(self.root), scope, wait_s),
        ):
            yield

    def catalog_path(self) -> Path:
        """A local cache of the catalog, one per lake (it is rebuilt when missing)."""
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dpsim" / "catalogs"
        return cache / f"{slug(self.root)}.duckdb"

    def scratch_root(self) -> Path:
        """Under the system temp folder, one per lake."""
        return Path(tempfile.gettempdir()) / "dpsim" / slug(self.root)

    def partitions(self, base: UPath) -> list[PartitionKey]:
        """One recursive LIST of the table's prefix, not one call per folder."""
        keys = set()
        for name in base.fs.glob(f"{base.path}/{PART_GLOB}"):
            key = PartitionKey.from_folders(*name.split("/")[-3:-1])
            if key is not None:
                keys.add(key)
        return sorted(keys)

    def write_parquet(self, table: pa.Table, path: UPath, **options: Any) -> None:
        pq().write_table(table, path.path, filesystem=path.fs, **options)

    def write_parquet_many(self, tables: Mapping[UPath, pa.Table], **options: Any) -> None:
        """One PUT per file (each atomic; an object store has no rename to make them one)."""
        for path, table in tables.items():
            self.write_parquet(table, path, **options)

    def write_bytes(self, data: bytes, path: UPath) -> None:
        path.write_bytes(data)

    def touch(self, path: UPath) -> None:
        path.write_bytes(b"")

    def put_many(self, moves: Mapping[UPath, Path | UPath]) -> None:
        """Concurrent uploads; an object already in the store (staged by a cluster worker) is copied."""
        from upath import UPath  # imported already: this store's paths are UPaths

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
        """A scratch file, uploaded at the end."""
        local = self.own_dir("outbox") / path.name
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            yield local
        finally:
            if local.exists():
                self.put_many({path: local})

    def read_parquet(self, path: UPath, columns: Sequence[str] | None = None) -> pa.Table:
        with path.fs.open(path.path, "rb") as f:
            return pq().ParquetFile(f).read(columns=columns)

    def remove_tree(self, path: UPath) -> None:
        if path.exists():
            path.fs.rm(path.path, recursive=True)

    def remove_files(self, paths: Sequence[UPath]) -> None:
        """One batched delete."""
        existing = [p.path for p in paths if p.exists()]
        if existing:
            self.root.fs.rm(existing)

    def any_match(self, pattern: UPath) -> bool:
        return bool(self.root.fs.glob(pattern.path, maxdepth=None))

    def file_signatures(self, base: UPath, folders: Sequence[UPath]) -> list[list[str]]:
        """From one listing of the table, not a request per file."""
        listed: dict[str, list[str]] = {}
        for name, info in sorted(base.fs.find(base.path, detail=True).items()):
            folder, _, file = name.rpartition("/")
            if file.endswith(".parquet"):
                modified = info.get("LastModified", info.get("mtime", info.get("updated", "")))
                listed.setdefault(folder, []).append(f"{file}:{info['size']}:{modified}")
        return [listed.get(folder.path, []) for folder in folders]

    def list_part_files(
        self, base: UPath, days: Collection[date] | None = None
    ) -> Iterator[tuple[PartitionKey, str, str]]:
        """One recursive listing of the table's prefix (a store lists by prefix: `days` only filters it)."""
        for name, info in sorted(base.fs.find(base.path, detail=True).items()):
            parts = name.split("/")
            key = PartitionKey.from_folders(*parts[-3:-1]) if len(parts) >= 3 else None
            if key is not None and name.endswith(".parquet") and (days is None or key.date in days):
                modified = info.get("LastModified", info.get("mtime", info.get("updated", "")))
                yield key, name[len(base.path) :].lstrip("/"), f"{info['size']}:{modified}"

    def remove_parts(
        self, base: UPath, folders: Sequence[UPath], source: str, keep: Collection[UPath]
    ) -> int:
        """One listing of the table, one batched delete."""
        kept_keys, wanted = {p.path for p in keep}, {f.path for f in folders}
        doomed = [
            name
            for name in base.fs.glob(f"{base.path}/security_code=*/date=*/{source_part_glob(source)}")
            if name.rpartition("/")[0] in wanted
            and is_source_part(name.rpartition("/")[2], source)
            and name not in kept_keys
        ]
        if doomed:
            base.fs.rm(doomed)
        return len(doomed)


def local_root(text: str) -> UPath:
    """A local lake's root, absolute (workers may start elsewhere), as a `pathlib.Path`: dpsim calls only
    pathlib's API on a local lake's paths, which upath's local paths are too, so a command on a local lake
    does not import upath and fsspec (0.1-0.15 s of every command on a slow machine). Typed as the lake's
    path type, which object-store roots need."""
    return cast("UPath", Path(os.path.abspath(text)))


def open_store(root: str | Path | UPath) -> Store:
    """The store of a lake root: a local or shared-filesystem path, a `file://` URL, or an object-store URL."""
    text = str(root)
    if text.startswith("file://"):
        return LocalStore(local_root(urlparse(text).path))
    scheme = urlparse(text).scheme
    if len(scheme) <= 1:  # none, or one letter: a Windows drive, not a scheme
        return LocalStore(local_root(text))
    if scheme not in OBJECT_STORES:
        raise LakeError(
            f"{text}: {scheme}:// lake roots are not supported; give a path, a file:// URL or one of "
            + ", ".join(f"{s}://" for s in OBJECT_STORES)
        )
    from upath import UPath

    try:
        # No listings cache: workers in other processes add files that this process must see.
        path = UPath(text.rstrip("/"), use_listings_cache=False)
        path.fs  # noqa: B018 -- the filesystem's package is imported here, not at the first write
        return ObjectStore(path)
    except ImportError as exc:
        raise LakeError(
            f"{text}: a {scheme}:// lake needs the {OBJECT_STORES[scheme]} package: "
            f"pip install 'dpsim[{'s3' if OBJECT_STORES[scheme] == 's3fs' else 'cloud'}]'"
        ) from exc


def _os_path(path: UPath) -> Path:
    """A local lake path as what `os` and `shutil` take."""
    return Path(str(path))


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


_serial = itertools.count()  # temp file names of one process


def _rename(src: Path, dst: Path) -> None:
    """An atomic rename; across filesystems (a table folder mounted elsewhere), a copy beside the target
    renamed into place."""
    try:
        os.replace(src, dst)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        beside = dst.with_name(f".{dst.name}.{locks.owner_tag()}.tmp")
        try:
            shutil.copyfile(src, beside)
            os.replace(beside, dst)
        finally:
            beside.unlink(missing_ok=True)
        src.unlink()


def make_dirs(path: Path, *, exist_ok: bool = True) -> None:
    """`path` and its parents, created again when a folder on the way is removed meanwhile: another process
    removes the scratch root `_tmp` in the instant it is empty (between this process's creating `_tmp` and
    its own folder in it), another thread of this one its empty scratch folders (both remove only empty
    folders)."""
    for _ in range(10):
        try:
            path.mkdir(parents=True, exist_ok=exist_ok)
            return
        except FileNotFoundError:
            continue
    raise FileNotFoundError(errno.ENOENT, "cannot create a folder", str(path))


def _create(path: Path) -> None:
    """Create an empty file and its folders; a folder removed meanwhile is created again (`make_dirs`)."""
    for _ in range(10):
        make_dirs(path.parent)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666))
            return
        except FileNotFoundError:
            continue
    raise FileNotFoundError(errno.ENOENT, "cannot create a temp file", str(path))


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _rmdir(path: Path) -> None:
    """Remove an empty folder; a folder in use or not empty stays."""
    with contextlib.suppress(OSError):
        path.rmdir()


def _subdirs(path: UPath) -> list[UPath]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

"""The only module that knows the lake's paths: partitions, listing, atomic writes, manifests.

Layout (DOMAIN §4):
    <root>/<kind>/security_code=<int>/date=<YYYY-MM-DD>/part-<source-id>[-<n>].parquet   kind = orders|trades|nbbo
    <root>/reference/<kind>.parquet                                                     small reference files
    <root>/results/<table>/[scenario=<name>/]security_code=<int>/date=<YYYY-MM-DD>/part-0.parquet
    <root>/_manifest/<source-id>.json     one record per shredded source file
    <root>/_rejects/<kind>/<source-id>.parquet
    <root>/_runs/<run-id>.json  (+ <run-id>.log)
    <root>/aggregates/<name>.parquet (+ .csv)
    <root>/dpsim.duckdb
Partition keys live in the path only. Every file is written to a hidden temp name and renamed into place,
so readers never see half a file and an interrupted writer leaves nothing visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq

from dpsim.errors import LakeError

RAW_TABLES = ("orders", "trades", "nbbo")
RESULT_TABLES = ("sweeps", "sim_fills", "sim_orders")
SCENARIO_TABLES = ("sim_fills", "sim_orders")
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

    def __init__(self, root: str | Path) -> None:
        self.root = _local_root(root)

    # ---- paths ----------------------------------------------------------------------------------
    def table_dir(self, table: str, scenario: str | None = None) -> Path:
        base = self.root / table if table in RAW_TABLES else self.root / "results" / table
        return base / f"scenario={scenario}" if scenario is not None else base

    def partition_dir(self, table: str, key: PartitionKey, scenario: str | None = None) -> Path:
        return self.table_dir(table, scenario) / key.hive

    def partition_files(self, table: str, key: PartitionKey, scenario: str | None = None) -> list[Path]:
        d = self.partition_dir(table, key, scenario)
        return sorted(d.glob("*.parquet")) if d.is_dir() else []

    def result_path(self, table: str, key: PartitionKey, scenario: str | None = None) -> Path:
        return self.partition_dir(table, key, scenario) / "part-0.parquet"

    def raw_part_path(self, kind: str, key: PartitionKey, source: str, piece: int = 0) -> Path:
        suffix = "" if piece == 0 else f"-{piece}"
        return self.partition_dir(kind, key) / f"part-{source}{suffix}.parquet"

    def reference_path(self, kind: str) -> Path:
        return self.root / "reference" / f"{kind}.parquet"

    @property
    def manifest_dir(self) -> Path:
        return self.root / "_manifest"

    def rejects_path(self, kind: str, source: str) -> Path:
        return self.root / "_rejects" / kind / f"{source}.parquet"

    @property
    def runs_dir(self) -> Path:
        return self.root / "_runs"

    @property
    def aggregates_dir(self) -> Path:
        return self.root / "aggregates"

    @property
    def catalog_path(self) -> Path:
        return self.root / "dpsim.duckdb"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "_tmp"

    # ---- listing --------------------------------------------------------------------------------
    def partitions(self, table: str = "orders", scenario: str | None = None) -> list[PartitionKey]:
        """Partitions present for a table, from the directory names (no file is opened)."""
        base = self.table_dir(table, scenario)
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

    def scenarios(self, table: str = "sim_orders") -> list[str]:
        return sorted(
            p.name.split("=", 1)[1] for p in _subdirs(self.table_dir(table)) if p.name.startswith("scenario=")
        )

    # ---- writing --------------------------------------------------------------------------------
    def write_parquet(self, table: pa.Table, path: Path, *, row_group_rows: int = 131072) -> int:
        """Write atomically (temp + rename), zstd, with statistics; returns bytes written."""
        with _atomic(path) as tmp:
            pq.write_table(
                table, tmp, compression="zstd", write_statistics=True, row_group_size=row_group_rows
            )
        return path.stat().st_size

    def write_json(self, obj: Any, path: Path) -> None:
        with _atomic(path) as tmp:
            tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str), encoding="utf-8")

    def write_bytes(self, data: bytes, path: Path) -> None:
        with _atomic(path) as tmp:
            tmp.write_bytes(data)

    def remove_source_parts(
        self, kind: str, source: str, partitions: list[PartitionKey], keep: Collection[Path] = ()
    ) -> int:
        """Delete a source's part files (every piece) in the given partitions, except the paths in `keep`
        (before re-shredding it: `keep` holds the files about to be replaced in place)."""
        n = 0
        kept = set(keep)
        for key in partitions:
            for f in self.partition_dir(kind, key).glob(f"part-{source}*.parquet"):
                if f in kept:
                    continue
                if f.name == f"part-{source}.parquet" or re.fullmatch(
                    rf"part-{re.escape(source)}-\d+\.parquet", f.name
                ):
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
                if d.is_dir():
                    shutil.rmtree(d)

    # ---- manifests --------------------------------------------------------------------------------
    def manifest_path(self, source: str) -> Path:
        return self.manifest_dir / f"{source}.json"

    def read_manifest(self, source: str) -> dict[str, Any] | None:
        p = self.manifest_path(source)
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A hidden temp name beside `path`, renamed onto it once written: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    yield tmp
    os.replace(tmp, path)


def _local_root(root: str | Path) -> Path:
    """A lake root: a local or shared-filesystem path, or a `file://` URL.

    Object-store URLs are refused with the supported alternative: every worker writes its outputs
    with atomic renames, which object stores lack, so the store is mounted as a filesystem instead.
    """
    text = str(root)
    if text.startswith("file://"):
        return Path(urlparse(text).path)
    scheme = urlparse(text).scheme
    if len(scheme) > 1:  # one letter: a Windows drive, not a scheme
        raise LakeError(
            f"{text}: {scheme}:// lake roots are not supported; mount the bucket as a filesystem "
            "(mountpoint-s3, s3fs, gcsfuse) on every machine and give its path"
        )
    return Path(text)


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

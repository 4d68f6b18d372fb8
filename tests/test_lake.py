"""Lake paths: partition listing, atomic writes, lake roots given as paths or file:// URLs."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dpsim.errors import LakeError
from dpsim.lake import Lake, PartitionKey, source_id


def test_roots_paths_and_file_urls(tmp_path: Path) -> None:
    assert Lake(tmp_path).root == tmp_path
    assert Lake(f"file://{tmp_path}").root == tmp_path
    assert Lake(tmp_path).is_local
    with pytest.raises(LakeError, match=r"ftp://h/lake: ftp:// lake roots are not supported; give a path"):
        Lake("ftp://h/lake")


def test_object_store_roots_need_their_fsspec_package(monkeypatch: pytest.MonkeyPatch) -> None:
    remote = Lake("s3://bkt/lake/")
    assert not remote.is_local and str(remote.root) == "s3://bkt/lake"
    assert str(remote.result_path("sweeps", PartitionKey(7, date(2024, 9, 5)))) == (
        "s3://bkt/lake/results/sweeps/security_code=7/date=2024-09-05/part-0.parquet"
    )
    assert remote.catalog_path.name.endswith(".duckdb") and "bkt_lake" in str(remote.catalog_path)
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if not installed
    with pytest.raises(LakeError, match=r"gs://bkt/lake: a gs:// lake needs the gcsfs package: pip install"):
        Lake("gs://bkt/lake")


def test_partitions_listed_from_folder_names_and_atomic_write(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    key = PartitionKey(110621, date(2024, 9, 5))
    path = lake.raw_part_path("orders", key, source_id(tmp_path / "orders.csv"))
    lake.write_parquet(pa.table({"x": [1, 2]}), path)
    assert path.parent == tmp_path / "orders/security_code=110621/date=2024-09-05"
    assert lake.partitions("orders") == [key]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    (tmp_path / "orders/security_code=1/date=2024-09-06").mkdir(parents=True)  # empty: not a partition
    assert lake.partitions("orders") == [key]


def test_source_id_is_stable_per_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "orders.csv.gz", tmp_path / "b" / "orders.csv.gz"
    assert source_id(a) == source_id(a) != source_id(b)
    assert source_id(a).startswith("orders-")


def test_a_temp_file_is_created_when_another_process_removes_the_empty_scratch_root_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process removes `_tmp` in the instant it is empty (between this process's creating `_tmp` and
    its own folder in it): the folder's creation fails with ENOENT once, and is done again."""
    from dpsim.lake import store

    real_mkdir = Path.mkdir
    failed: list[Path] = []

    def racing_mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if not failed:  # the first creation loses the race
            failed.append(self)
            raise FileNotFoundError(2, "No such file or directory", str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    target = tmp_path / "_tmp" / "vm-1" / "write" / "0-x.json"
    store._create(target)
    assert failed and target.exists()

"""shred.workers > 1: one large plain file split into byte ranges, one process each; several files at once
(issue 8 req. 4). The split threshold is lowered so small generated drops are split."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import dpsim.shred as shred_module
import dpsim.shred.ranges as shred_ranges
from dpsim import synth
from dpsim.config import Config, Run, Shred
from dpsim.lake import Lake, manifests, source_id
from dpsim.shred import SourceResult, shred

NO_INPUTS: dict[str, list[str]] = {k: [] for k in shred_module.KINDS}


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("drop")
    synth.generate(out, securities=4, days=2, start=date(2024, 10, 3), seed=1, scale=("rows", 20000))
    return out


@pytest.fixture(autouse=True)
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shred_ranges, "SPLIT_MIN_BYTES", 0)


def _cfg(workers: int, executor: str = "local") -> Config:
    return replace(Config(), shred=replace(Shred(), workers=workers), run=replace(Run(), executor=executor))


def _run(
    lake: Path, files: dict[str, list[Path]], workers: int, executor: str = "local"
) -> list[SourceResult]:
    inputs = {**NO_INPUTS, **{k: [str(p) for p in v] for k, v in files.items()}}
    return shred(_cfg(workers, executor), Lake(lake), inputs=inputs)


def _rows(lake: Path, kind: str = "orders") -> dict[str, pa.Table]:
    """Every partition's rows (all of its part files), in one canonical order."""
    out = {}
    lk = Lake(lake)
    for key in lk.partitions(kind):
        table = pa.concat_tables(pq.read_table(f) for f in lk.partition_files(kind, key))
        out[str(key)] = table.sort_by([(c, "ascending") for c in table.column_names])
    return out


def _rejects(lake: Path, path: Path, kind: str = "orders") -> list[tuple[int, str, str]]:
    p = Lake(lake).rejects_path(kind, source_id(path))
    if not p.exists():
        return []
    t = pq.read_table(p)
    return sorted(zip(t["line"].to_pylist(), t["reason"].to_pylist(), t["raw"].to_pylist(), strict=True))


def _check(result: SourceResult, status: str = "shredded") -> None:
    assert result.status == status, result.error
    assert result.rows_read == result.rows_written + result.rows_rejected


def _same(one: Path, many: Path) -> None:
    a, b = _rows(one), _rows(many)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].equals(b[key]), key


def test_byte_ranges_cut_after_newlines(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_bytes(b"h\n" + b"".join(b"%d,x\n" % i for i in range(100)) + b"last")
    size = p.stat().st_size
    for n in (1, 2, 3, 7, 1000):
        spans = shred_ranges.byte_ranges(str(p), 2, size, n)
        assert spans[0][0] == 2 and spans[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        data = p.read_bytes()
        assert all(data[a - 1 : a] == b"\n" for a, _ in spans)
        assert len(spans) <= min(n, 101)


def test_parallel_matches_single(drop: Path, tmp_path: Path) -> None:
    orders = drop / "orders.csv"
    single = _run(tmp_path / "one", {"orders": [orders]}, workers=1)
    multi = _run(tmp_path / "many", {"orders": [orders]}, workers=3)
    _check(single[0])
    _check(multi[0])
    assert multi[0].rows_read == single[0].rows_read
    assert multi[0].rows_written == single[0].rows_written
    assert multi[0].fingerprint == single[0].fingerprint
    assert multi[0].partitions == single[0].partitions
    assert multi[0].files_written > single[0].files_written  # ranges write their own files
    _same(tmp_path / "one", tmp_path / "many")
    manifest = manifests.read_source(Lake(tmp_path / "many"), source_id(orders))
    assert manifest is not None and len(manifest["byte_ranges"]) == 3
    assert manifest["rows_read"] == manifest["rows_written"] + manifest["rows_rejected"]
    assert not (tmp_path / "many" / "_tmp").exists()


def garbage_orders(drop: Path, folder: Path) -> tuple[Path, list[bytes]]:
    """The drop's orders with four bad lines spread over the file and no newline after the last line."""
    lines = (drop / "orders.csv").read_bytes().split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    for i, junk in (
        (5, b"garbage"),
        (len(lines) // 3, b"1,2,3"),
        (len(lines) // 2, b""),
        (len(lines) - 2, b'x,"y'),
    ):
        lines.insert(i, junk)
    src = folder / "src" / "orders.csv"
    src.parent.mkdir()
    src.write_bytes(b"\n".join(lines))
    return src, lines


def part_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "orders").rglob("*.parquet"))}


def test_last_line_without_newline_and_garbage(drop: Path, tmp_path: Path) -> None:
    src, lines = garbage_orders(drop, tmp_path)
    single = _run(tmp_path / "one", {"orders": [src]}, workers=1)
    multi = _run(tmp_path / "many", {"orders": [src]}, workers=4)
    _check(single[0])
    _check(multi[0])
    assert single[0].rows_read == len(lines) - 1
    assert multi[0].rows_read == single[0].rows_read
    assert multi[0].rows_rejected == single[0].rows_rejected == 4
    _same(tmp_path / "one", tmp_path / "many")
    rejects = _rejects(tmp_path / "many", src)
    assert rejects == _rejects(tmp_path / "one", src)
    assert [r[0] for r in rejects] == [
        i + 1 for i, line in enumerate(lines) if line in (b"garbage", b"1,2,3", b"", b'x,"y')
    ]
    manifest = manifests.read_source(Lake(tmp_path / "many"), source_id(src))
    one = manifests.read_source(Lake(tmp_path / "one"), source_id(src))
    assert manifest is not None and one is not None
    assert manifest["rejects_by_reason"] == one["rejects_by_reason"]


def test_dask_workers_shred_the_same_files(drop: Path, tmp_path: Path) -> None:
    """`shred --executor dask-local:2`: the byte ranges run as Dask tasks and give the processes' files."""
    pytest.importorskip("distributed")
    src, _ = garbage_orders(drop, tmp_path)
    (procs,) = _run(tmp_path / "procs", {"orders": [src]}, workers=2)
    (dask,) = _run(tmp_path / "dask", {"orders": [src]}, workers=2, executor="dask-local:2")
    _check(dask)
    assert (dask.rows_read, dask.rows_rejected, dask.files_written) == (
        procs.rows_read,
        procs.rows_rejected,
        procs.files_written,
    )
    assert part_bytes(tmp_path / "dask") == part_bytes(tmp_path / "procs")
    assert _rejects(tmp_path / "dask", src) == _rejects(tmp_path / "procs", src)
    assert not (tmp_path / "dask" / "_tmp").exists()


def test_reshred_single_after_parallel_replaces_all(drop: Path, tmp_path: Path) -> None:
    orders = drop / "orders.csv"
    lake = tmp_path / "lake"
    _check(_run(lake, {"orders": [orders]}, workers=3)[0])
    assert any(f.name.endswith("-2.parquet") for f in (lake / "orders").rglob("*.parquet"))
    _check(shred(_cfg(1), Lake(lake), inputs={**NO_INPUTS, "orders": [str(orders)]}, force=True)[0])
    names = {f.name for f in (lake / "orders").rglob("*.parquet")}
    assert names == {f"part-{source_id(orders)}.parquet"}
    _same(lake, lake)
    single = tmp_path / "one"
    _run(single, {"orders": [orders]}, workers=1)
    _same(single, lake)
    # and back to parallel: the single-run files are replaced, nothing duplicated
    _check(shred(_cfg(3), Lake(lake), inputs={**NO_INPUTS, "orders": [str(orders)]}, force=True)[0])
    _same(single, lake)


def test_more_workers_than_lines(tmp_path: Path, drop: Path) -> None:
    lines = (drop / "orders.csv").read_bytes().split(b"\n")[:4]
    src = tmp_path / "orders.csv"
    src.write_bytes(b"\n".join(lines) + b"\n")
    result = _run(tmp_path / "lake", {"orders": [src]}, workers=8)[0]
    _check(result)
    assert result.rows_read == 3
    _run(tmp_path / "one", {"orders": [src]}, workers=1)
    _same(tmp_path / "one", tmp_path / "lake")
    header_only = tmp_path / "h" / "orders.csv"
    header_only.parent.mkdir()
    header_only.write_bytes(lines[0])
    result = _run(tmp_path / "lake2", {"orders": [header_only]}, workers=3)[0]
    _check(result)
    assert result.rows_read == 0


def test_failed_range_leaves_nothing(drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "orders.csv"
    shutil.copy(drop / "orders.csv", src)
    lake = tmp_path / "lake"
    _check(_run(lake, {"orders": [src]}, workers=2)[0])
    before = _rows(lake)
    src.write_bytes(b"nope,nothing\n1,2\n")  # missing required columns: fails in the parent
    result = shred(_cfg(3), Lake(lake), inputs={**NO_INPUTS, "orders": [str(src)]})[0]
    _check(result, "failed")
    assert "missing" in (result.error or "")
    assert _rows(lake) == {} and before
    assert not (lake / "_tmp").exists()


@pytest.mark.parametrize("executor", ["local", "dask-local:2"])
def test_compressed_sources_in_parallel(drop: Path, tmp_path: Path, executor: str) -> None:
    """Compressed files are not split; with workers > 1 several are shredded at once, one per process
    (or per Dask task)."""
    if executor != "local":
        pytest.importorskip("distributed")
    src = tmp_path / "src"
    src.mkdir()
    lines = (drop / "orders.csv").read_bytes().split(b"\n")
    header, body = lines[0], [x for x in lines[1:] if x]
    half = len(body) // 2
    files = []
    for i, part in enumerate((body[:half], body[half:])):
        p = src / f"orders-{i}.csv.gz"
        p.write_bytes(gzip.compress(b"\n".join([header, *part]) + b"\n"))
        files.append(p)
    files.append(src / "trades.csv")
    shutil.copy(drop / "trades.csv", files[-1])
    one = _run(tmp_path / "one", {"orders": files[:2], "trades": files[2:]}, workers=1)
    many = _run(tmp_path / "many", {"orders": files[:2], "trades": files[2:]}, workers=3, executor=executor)
    assert [r.path for r in one] == [r.path for r in many]
    for a, b in zip(one, many, strict=True):
        _check(a)
        _check(b)
        assert (a.rows_read, a.rows_written, a.fingerprint) == (b.rows_read, b.rows_written, b.fingerprint)
    _same(tmp_path / "one", tmp_path / "many")
    assert _rows(tmp_path / "one", "trades").keys() == _rows(tmp_path / "many", "trades").keys()


def test_failure_inside_a_range_fails_the_source(drop: Path, tmp_path: Path) -> None:
    orders = drop / "orders.csv"
    lake = tmp_path / "lake"
    _check(_run(lake, {"orders": [orders]}, workers=3)[0])
    broken = replace(Config(), shred=replace(Shred(), workers=3, row_group_rows=0))  # every write fails
    result = shred(broken, Lake(lake), inputs={**NO_INPUTS, "orders": [str(orders)]}, force=True)[0]
    _check(result, "failed")
    assert result.rows_written == 0 and result.partitions == []
    assert not list((lake / "orders").rglob("*.parquet"))
    assert not (lake / "_tmp").exists()
    manifest = manifests.read_source(Lake(lake), source_id(orders))
    assert manifest is not None and manifest["status"] == "failed"

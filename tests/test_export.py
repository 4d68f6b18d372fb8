"""`dpsim export`: results and aggregates into a real PostgreSQL server (started here, tests/pgserver.py) and
into portable Parquet; incremental, idempotent, safe to kill; one-line errors naming the target."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from dpsim import jobs
from dpsim.aggregate import run_aggregates
from dpsim.cli import main
from dpsim.config import Run, Scenario
from dpsim.errors import TargetError
from dpsim.export import Selection, export_portable, export_postgres
from dpsim.export.portable import ENCODINGS, portable_files
from dpsim.lake import SCENARIO_TABLES, Lake, PartitionKey
from dpsim.shred import shred
from dpsim.synth import generate
from tests import pgserver
from tests.configs import drop_config

REPO = Path(__file__).resolve().parents[1]
DRR = REPO.parent / "shared" / "data" / "drr-2024-09-05"
SCENARIOS = {"baseline": Scenario(), "half_cap": Scenario(max_fill_fraction=0.5)}
KEYS = ("scenario", "security_code", "date")
_schemas = itertools.count()


# ---- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg() -> Iterator[pgserver.Server]:
    """A PostgreSQL server of our own for the whole session (skips when the binaries are not installed)."""
    pytest.importorskip("adbc_driver_postgresql", reason="pip install 'dpsim[postgres]'")
    bins = pgserver.bin_dir()
    if bins is None:
        pytest.skip("PostgreSQL server binaries not found: apt-get install postgresql (.ci/run does)")
    with pgserver.running(bins) as server:
        yield server


def _build(root: Path, globs: list[str]) -> Lake:
    orders, trades, nbbo = globs
    cfg = drop_config(root, orders, trades, nbbo, SCENARIOS, Run(workers=2))
    lake = Lake(cfg.lake)
    assert all(r.status == "shredded" for r in shred(cfg, lake))
    run = jobs.run_jobs(cfg, lake, lake.partitions("orders"))
    assert not run.failed, [r.error for r in run.failed]
    run_aggregates(cfg, lake)
    return lake


@pytest.fixture(scope="session")
def synth_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """A generated drop, 3 securities x 2 days, processed with two scenarios: 18 table partitions."""
    drop = tmp_path_factory.mktemp("export-drop")
    generate(drop, securities=3, days=2, start=date(2024, 10, 2), seed=5, scale=("rows", 12_000))
    return _build(
        tmp_path_factory.mktemp("export-synth") / "lake",
        [str(drop / f"{k}.csv*") for k in ("orders", "trades", "nbbo")],
    )


@pytest.fixture(scope="session")
def drr_lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The real DRR day (110621, 2024-09-05) processed with two scenarios."""
    if not DRR.is_dir():
        pytest.skip("shared DRR data not present")
    return _build(
        tmp_path_factory.mktemp("export-drr") / "lake",
        [str(DRR / f"{k}.csv.gz") for k in ("orders", "trades", "nbbo")],
    )


@pytest.fixture
def copied_lake(synth_lake: Lake, tmp_path: Path) -> Lake:
    """A copy of the generated lake a test may change."""
    shutil.copytree(
        str(synth_lake.root), tmp_path / "lake", ignore=shutil.ignore_patterns("_exports", "_tmp")
    )
    return Lake(tmp_path / "lake")


def new_schema() -> str:
    return f"t{next(_schemas)}_{os.getpid()}"


# ---- the lake's and the target's figures -----------------------------------------------------------------


def _lake_relation(lake: Lake, table: str) -> str:
    if table in lake.result_tables():
        keys = {"security_code": "BIGINT", "date": "DATE"}  # a scenario table's files hold its scenario
        types = ", ".join(f"'{k}': {t}" for k, t in keys.items())
        return (
            f"read_parquet('{lake.table_dir(table)}/**/*.parquet', hive_partitioning = true, "
            f"union_by_name = true, hive_types = {{{types}}})"
        )
    return f"read_parquet('{lake.aggregates_dir / table}.parquet')"


def _measures(columns: dict[str, str]) -> list[str]:
    """count(*) and, per column, its non-null count and a sum that both DuckDB and PostgreSQL compute."""
    out = ["count(*)"]
    for name, type_ in columns.items():
        c = '"' + name + '"'
        t = type_.upper()
        out.append(f"count({c})")
        if t.startswith(("BIGINT", "INTEGER", "SMALLINT", "DOUBLE", "REAL", "FLOAT", "DECIMAL", "NUMERIC")):
            out.append(f"sum({c})")
        elif t.startswith("BOOL"):
            out.append(f"sum({c}::INTEGER)")
        elif t in ("VARCHAR", "TEXT"):
            out.append(f"sum(length({c}))")
        elif t == "DATE":
            out.append(f"sum({c} - DATE '2000-01-01')")
    return out


def lake_figures(lake: Lake, table: str) -> tuple[dict[str, str], list[Any]]:
    """The table's columns (name -> DuckDB type) and its measures, read from the lake's files."""
    con = duckdb.connect()
    rel = _lake_relation(lake, table)
    cols = {str(n): str(t) for n, t, *_ in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
    row = con.execute(f"SELECT {', '.join(_measures(cols))} FROM {rel}").fetchone()
    assert row is not None
    return cols, list(row)


def target_figures(pg: pgserver.Server, schema: str, table: str, cols: dict[str, str]) -> list[Any]:
    return list(pg.sql(f'SELECT {", ".join(_measures(cols))} FROM "{schema}"."{table}"')[0])


def partition_counts_lake(lake: Lake, table: str) -> dict[tuple[Any, ...], int]:
    keys = [k for k in KEYS if k != "scenario" or table in SCENARIO_TABLES]
    rel = duckdb.sql(f"SELECT {', '.join(keys)}, count(*) FROM {_lake_relation(lake, table)} GROUP BY ALL")
    assert rel is not None
    rows = rel.fetchall()
    return {tuple(str(v) for v in r[:-1]): int(r[-1]) for r in rows}


def partition_counts_target(
    pg: pgserver.Server, schema: str, table: str, scenario: bool
) -> dict[tuple[Any, ...], int]:
    keys = [k for k in KEYS if k != "scenario" or scenario]
    if not pg.sql(f'SELECT to_regclass(\'"{schema}"."{table}"\')')[0][0]:
        return {}
    rows = pg.sql(f'SELECT {", ".join(keys)}, count(*) FROM "{schema}"."{table}" GROUP BY {", ".join(keys)}')
    return {tuple(str(v) for v in r[:-1]): int(str(r[-1])) for r in rows}


def assert_target_equals_lake(pg: pgserver.Server, schema: str, lake: Lake) -> None:
    tables = lake.result_tables() + sorted(p.stem for p in lake.aggregates_dir.glob("*.parquet"))
    for table in tables:
        cols, expected = lake_figures(lake, table)
        got = target_figures(pg, schema, table, cols)
        assert len(got) == len(expected)
        for measure, e, g in zip(_measures(cols), expected, got, strict=True):
            if isinstance(e, float) or isinstance(g, float):
                assert g == pytest.approx(e, rel=1e-9, abs=1e-9), (table, measure)
            else:
                assert (None if g is None else int(g)) == (None if e is None else int(e)), (table, measure)
    for table in lake.result_tables():
        scenario = table in SCENARIO_TABLES
        assert partition_counts_target(pg, schema, table, scenario) == partition_counts_lake(lake, table), (
            table
        )


def row_versions(pg: pgserver.Server, schema: str, tables: list[str]) -> dict[str, Any]:
    """Per table, the rows' creating transaction ids: any rewrite changes them."""
    return {t: pg.sql(f'SELECT sum(xmin::text::bigint), count(*) FROM "{schema}"."{t}"')[0] for t in tables}


# ---- PostgreSQL -----------------------------------------------------------------------------------------------


def test_drr_day_in_postgres_equals_the_lake(pg: pgserver.Server, drr_lake: Lake) -> None:
    schema = new_schema()
    result = export_postgres(drr_lake, pg.url(), schema=schema)
    # sweeps, quality, replay_fidelity, sim_fills and sim_orders of the one partition (both scenarios each)
    assert result.sent == 5
    assert result.aggregates_sent == 10  # seven segment aggregates, headline, stats_tests, quality_summary
    assert_target_equals_lake(pg, schema, drr_lake)
    types: dict[Any, Any] = dict(
        pg.sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' AND table_name = 'sim_orders'"
        )
    )
    assert types["scenario"] == "text" and types["security_code"] == "bigint" and types["date"] == "date"
    assert types["order_id"] == "bigint" and types["sim_vwap"] == "double precision"
    assert types["sim_first_fill_time"] == "bigint"  # int64 ns since the epoch, as in the lake (README)
    (n_sweeps,) = pg.sql(f'SELECT count(*) FROM "{schema}".sweeps WHERE security_code = 110621')[0]
    assert n_sweeps == 4100  # the analysed sweeps of the DRR day (README)


def test_second_export_is_a_noop_and_each_export_has_a_manifest_row(
    pg: pgserver.Server, synth_lake: Lake
) -> None:
    schema = new_schema()
    first = export_postgres(synth_lake, pg.url(), schema=schema)
    assert (
        first.sent == 30 and first.aggregates_sent == 10 and first.unchanged == 0
    )  # 6 partitions x 5 tables
    tables = synth_lake.result_tables() + sorted(first.aggregates)
    before = row_versions(pg, schema, tables)

    second = export_postgres(synth_lake, pg.url(), schema=schema)
    assert (second.sent, second.aggregates_sent, second.rows, second.removed) == (0, 0, 0, 0)
    assert second.unchanged == 30
    assert row_versions(pg, schema, tables) == before  # not one row rewritten
    assert_target_equals_lake(pg, schema, synth_lake)
    manifest = pg.sql(
        f"SELECT export_id, status, partitions_sent, partitions_unchanged, aggregates_sent, rows_sent "
        f'FROM "{schema}".dpsim_exports ORDER BY started_at'
    )
    assert manifest == [
        (first.export_id, "ok", 30, 0, 10, first.rows),
        (second.export_id, "ok", 0, 30, 0, 0),
    ]


def test_only_changed_partitions_are_sent_and_vanished_ones_removed(
    pg: pgserver.Server, copied_lake: Lake
) -> None:
    lake, schema = copied_lake, new_schema()
    export_postgres(lake, pg.url(), schema=schema)
    changed = lake.partitions("sweeps")[0]
    path = lake.result_path("sweeps", changed)
    lake.write_parquet(lake.read_parquet(path).slice(1), path)  # one sweep fewer
    gone = lake.partitions("sim_fills")[-1]
    lake.remove_tree(lake.partition_dir("sim_fills", gone))

    again = export_postgres(lake, pg.url(), schema=schema)
    assert (again.stats("sweeps").sent, again.stats("sweeps").unchanged) == (1, 5)
    assert (again.stats("sim_fills").sent, again.stats("sim_fills").removed) == (0, 1)
    assert again.stats("sim_orders").sent == 0 and again.aggregates_sent == 0
    assert_target_equals_lake(pg, schema, lake)


def test_export_killed_between_partitions_then_rerun_gives_exactly_the_lake(
    pg: pgserver.Server, synth_lake: Lake
) -> None:
    schema, killed_after = new_schema(), 8
    code = (
        "import os, signal\n"
        "from dpsim.lake import Lake\n"
        "from dpsim.export import export_postgres\n"
        "done = []\n"
        "def on_part(part, rows):\n"
        "    done.append(part)\n"
        f"    if len(done) == {killed_after}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"export_postgres(Lake({str(synth_lake.root)!r}), {pg.url()!r}, schema={schema!r}, on_part=on_part)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr

    # What the killed export left: whole partitions only, as many as had committed.
    present = 0
    for table in synth_lake.result_tables():
        lake_counts = partition_counts_lake(synth_lake, table)
        target = partition_counts_target(pg, schema, table, table in SCENARIO_TABLES)
        assert all(n == lake_counts[k] for k, n in target.items()), table  # no half partition
        present += len({k[-2:] for k in target})
    # At least the partitions reported committed; the workers may have committed a few more before the kill.
    assert killed_after <= present < 18
    assert pg.sql(f'SELECT status FROM "{schema}".dpsim_exports') == [("running",)]

    rerun = export_postgres(synth_lake, pg.url(), schema=schema)
    assert rerun.sent >= 18 - killed_after
    assert_target_equals_lake(pg, schema, synth_lake)  # no duplicate, nothing missing
    indexes = set(pg.sql(f"SELECT tablename, indexname FROM pg_indexes WHERE schemaname = '{schema}'"))
    expected = {(t, f"{t}_partition") for t in synth_lake.result_tables()} | {
        ("dpsim_exports", "dpsim_exports_pkey")
    }
    assert indexes == expected  # a first load builds its index at the end; a killed one gets it on the rerun


def test_new_tables_columns_and_types_follow_the_lake(pg: pgserver.Server, tmp_path: Path) -> None:
    """Any table under results/ is exported (scenario-partitioned or not); a new column is added; a changed
    type asks for --rebuild, which re-creates the table."""
    lake, schema = Lake(tmp_path / "lake"), new_schema()
    day1, day2 = PartitionKey(7, date(2024, 9, 5)), PartitionKey(7, date(2024, 9, 6))
    lake.write_parquet(
        pa.table({"a": [1, 2], "b": ["x", None], "n": pa.nulls(2)}), lake.result_path("quality", day1)
    )
    lake.write_parquet(pa.table({"scenario": ["base"], "f": [0.5]}), lake.result_path("sim_fills", day1))
    export_postgres(lake, pg.url(), schema=schema)
    cols: dict[Any, Any] = dict(
        pg.sql(
            f"SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = 'quality'"
        )
    )
    assert cols == {
        "security_code": "bigint",
        "date": "date",
        "a": "bigint",
        "b": "text",
    }  # an all-null column waits
    assert pg.sql(f'SELECT scenario, security_code, date, f FROM "{schema}".sim_fills') == [
        ("base", 7, day1.date, 0.5)
    ]

    lake.write_parquet(
        pa.table({"a": [3], "b": ["y"], "n": [1.5], "c": [True]}), lake.result_path("quality", day2)
    )
    export_postgres(lake, pg.url(), schema=schema)
    rows = pg.sql(f'SELECT date, a, b, n, c FROM "{schema}".quality ORDER BY a')
    assert rows == [
        (day1.date, 1, "x", None, None),
        (day1.date, 2, None, None, None),
        (day2.date, 3, "y", 1.5, True),
    ]

    lake.write_parquet(pa.table({"a": [1.25], "b": ["z"]}), lake.result_path("quality", day1))
    with pytest.raises(TargetError) as err:
        export_postgres(lake, pg.url(), schema=schema)
    assert str(err.value) == (
        f"{pg.url(password=None)}: column {schema}.quality.a is bigint in the target but double "
        "precision in the lake; rerun with --rebuild to drop and re-create quality"
    )
    assert pg.sql(f'SELECT count(*) FROM "{schema}".quality')[0] == (
        3,
    )  # the failed partition left as it was
    export_postgres(lake, pg.url(), schema=schema, selection=Selection(tables=("quality",)), rebuild=True)
    assert pg.sql(f'SELECT a, n FROM "{schema}".quality ORDER BY a') == [(1.25, None), (3.0, 1.5)]


def test_cli_export_to_postgres_prints_what_it_sent(
    pg: pgserver.Server, synth_lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = new_schema()
    args = ["export", "--lake", str(synth_lake.root), "--to", pg.url(), "--schema", schema]
    assert main([*args, "--tables", "sweeps,global_summary", "--securities", "110621"]) == 0
    out = capsys.readouterr().out
    assert "dpsim: exported" in out and "(2 partitions, 1 aggregates; 0 unchanged)" in out
    assert pgserver.PASSWORD not in out
    assert pg.sql(
        f'SELECT count(DISTINCT date), min(security_code), max(security_code) FROM "{schema}".sweeps'
    ) == [(2, 110621, 110621)]


# ---- errors: one line naming the target, never the password ----------------------------------------------------


def _error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dpsim: error: "), err
    return err.strip().removeprefix("dpsim: error: ")


def test_connection_errors_name_the_target_and_what_to_do(
    pg: pgserver.Server, synth_lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    export = ["export", "--lake", str(synth_lake.root), "--to"]
    nobody_home = pgserver.free_port()
    msg = _error_of([*export, f"postgresql://dpsim:pw-x@127.0.0.1:{nobody_home}/db"], capsys)
    assert msg.startswith(f"postgresql://dpsim@127.0.0.1:{nobody_home}/db: cannot reach the server (")
    assert msg.endswith("); start it, or fix the host and port in the URL") and "pw-x" not in msg

    msg = _error_of([*export, pg.url(password="wrong-secret")], capsys)
    assert msg.startswith(f"{pg.url(password=None)}: authentication failed for dpsim (")
    assert "give the password in the URL, in PGPASSWORD or in ~/.pgpass" in msg and "wrong-secret" not in msg

    msg = _error_of([*export, pg.url(database="no_such_db")], capsys)
    assert msg.startswith(f"{pg.url('no_such_db', password=None)}: database no_such_db does not exist (")
    assert msg.endswith("create it (createdb no_such_db) or name another in the URL")
    assert pgserver.PASSWORD not in msg


def test_a_schema_without_rights_is_one_line(
    pg: pgserver.Server, synth_lake: Lake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.sql(
        "DROP ROLE IF EXISTS analyst",
        "CREATE ROLE analyst LOGIN PASSWORD 'analyst-pw'",
        "CREATE SCHEMA IF NOT EXISTS locked",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    )
    monkeypatch.setenv("PGPASSWORD", "analyst-pw")  # credentials from the environment, as libpq reads them
    url = pg.url(user="analyst", password=None)
    export = ["export", "--lake", str(synth_lake.root), "--to", url]
    assert _error_of([*export, "--schema", "locked"], capsys) == (
        f'{url}: user analyst may not create tables in schema locked; GRANT USAGE, CREATE ON SCHEMA "locked" '
        "TO analyst, or pass --schema of a schema it owns"
    )
    assert _error_of([*export, "--schema", "fresh"], capsys) == (
        f"{url}: schema fresh does not exist and user analyst may not create it; have the owner run "
        'CREATE SCHEMA "fresh" AUTHORIZATION analyst, or pass --schema of an existing one'
    )


def test_usage_errors(synth_lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    export = ["export", "--lake", str(synth_lake.root), "--to"]
    assert _error_of([*export, "parquet", "out"], capsys) == (
        "--to parquet DIR needs --profile portable (the only Parquet profile)"
    )
    assert _error_of([*export, "mysql://x@y/z"], capsys) == (
        "mysql://x@y/z: not a PostgreSQL URL; give postgresql://USER@HOST:PORT/DB"
    )
    msg = _error_of([*export, "parquet", "out", "--profile", "portable", "--tables", "sweeps,nope"], capsys)
    assert msg.startswith(
        f"--tables: no table nope in {synth_lake.root}; results: quality, replay_fidelity, sim_fills, "
        "sim_orders, sweeps;"
    )


# ---- portable Parquet --------------------------------------------------------------------------------------------


def _lake_rows(lake: Lake, table: str, day: str, columns: list[str]) -> pl.DataFrame:
    frame = pl.scan_parquet(f"{lake.table_dir(table)}/**/*.parquet", hive_partitioning=True)
    return frame.filter(pl.col("date") == date.fromisoformat(day)).select(columns).collect()


@pytest.mark.parametrize("which", ["drr", "synth"])
def test_portable_parquet_reads_back_equal_everywhere_with_plain_encodings(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    lake: Lake = request.getfixturevalue(f"{which}_lake")
    out = tmp_path / "portable"
    result = export_portable(lake, out)
    expected = {f"{t}/{t}-{key.date}.parquet" for t in lake.result_tables() for key in lake.partitions(t)} | {
        f"aggregates/{p.name}" for p in lake.aggregates_dir.glob("*.parquet")
    }
    assert {str(p.relative_to(out)) for p in portable_files(out)} == expected
    assert result.aggregates_sent == 10

    for path in portable_files(out):
        meta = pq.ParquetFile(path).metadata
        encodings = {
            e
            for rg in range(meta.num_row_groups)
            for c in range(meta.num_columns)
            for e in meta.row_group(rg).column(c).encodings
        }
        assert "BYTE_STREAM_SPLIT" not in encodings and encodings <= ENCODINGS, (path, encodings)
        if path.parent.name == "aggregates":
            continue
        table, day = path.parent.name, path.stem.removeprefix(f"{path.parent.name}-")
        via_arrow = pl.from_arrow(pq.read_table(path))
        assert isinstance(via_arrow, pl.DataFrame)
        keys = (
            ["scenario", "security_code", "date"] if table in SCENARIO_TABLES else ["security_code", "date"]
        )
        assert via_arrow.columns[: len(keys)] == keys
        assert via_arrow.schema["date"] == pl.Date and via_arrow.schema["security_code"] == pl.Int64
        lake_rows = _lake_rows(lake, table, day, via_arrow.columns)
        rel = duckdb.sql(f"SELECT * FROM read_parquet('{path}')")
        assert rel is not None
        via_duckdb = pl.from_arrow(rel.to_arrow_table())
        assert isinstance(via_duckdb, pl.DataFrame)
        for frame in (via_arrow, pl.read_parquet(path), via_duckdb):
            assert_frame_equal(frame, lake_rows, check_row_order=False, check_dtypes=True)

    again = export_portable(lake, out)
    assert (again.sent, again.aggregates_sent) == (0, 0)  # unchanged dates are not rewritten


def test_portable_row_groups_hold_at_least_the_threshold(synth_lake: Lake, tmp_path: Path) -> None:
    threshold = 64 * 1024  # small enough that this lake's files need several row groups
    export_portable(synth_lake, tmp_path / "out", row_group_bytes=threshold)
    several = 0
    for path in portable_files(tmp_path / "out"):
        pf = pq.ParquetFile(path)
        sizes = [pf.read_row_group(i).nbytes for i in range(pf.metadata.num_row_groups)]
        assert all(s >= threshold for s in sizes[:-1]), (path, sizes)
        several += len(sizes) > 1
    assert several >= 2
    default = tmp_path / "default"  # 16 MiB: one row group for files this small
    export_portable(synth_lake, default)
    assert all(pq.ParquetFile(p).metadata.num_row_groups == 1 for p in portable_files(default))


def test_cli_portable_export(synth_lake: Lake, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wh"
    args = ["export", "--lake", str(synth_lake.root), "--to", "parquet", str(out), "--profile", "portable"]
    assert main([*args, "--tables", "sweeps", "--dates", "2024-10-03"]) == 0
    assert "(1 files, 0 aggregates; 0 unchanged)" in capsys.readouterr().out
    assert [p.relative_to(out).as_posix() for p in portable_files(out)] == [
        "sweeps/sweeps-2024-10-03.parquet"
    ]

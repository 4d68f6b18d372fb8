"""The DuckDB catalog: views over every table, usable from any directory and after moving the lake; SQL errors."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from upath import UPath

from dpsim.catalog import connect, refresh_catalog, view_names, views_named_in
from dpsim.compaction import compact
from dpsim.config import Aggregate, Config
from dpsim.errors import DpsimError, LakeError
from dpsim.lake import Lake, PartitionKey
from dpsim.query import describe_catalog, run_sql
from dpsim.schema import ORDERS, REJECTS, SIM_FILLS, sim_orders_schema, sweeps_schema
from tests.lakes import write_scenario_results

HORIZONS = (1.0, 5.0, 60.0)
KEYS = [PartitionKey(101, date(2024, 9, 5)), PartitionKey(202, date(2024, 9, 6))]
RUN = {
    "run_id": "r1",
    "started": "2024-09-07T10:00:00",
    "config_hash": "abc",
    "jobs": [
        {
            "partition": "101/2024-09-05",
            "status": "ok",
            "seconds": 1.5,
            "rows_in": 10,
            "rows_out": 2,
            "error": None,
        },
        {
            "partition": "202/2024-09-06",
            "status": "failed",
            "seconds": 0.1,
            "rows_in": 5,
            "rows_out": 0,
            "error": "boom",
        },
    ],
}


def empty_rows(schema: pa.Schema, n: int, **cols: list[object]) -> pa.Table:
    return pa.table({f.name: pa.array(cols.get(f.name, [None] * n), f.type) for f in schema}, schema=schema)


def build_lake(root: Path) -> Lake:
    """Two partitions of orders, sweeps, sim_orders (two scenarios) and sim_fills, plus a run, a manifest, rejects."""
    lake = Lake(root)
    for i, key in enumerate(KEYS):
        orders = empty_rows(ORDERS.lake_schema, 2, order_id=[10 * i + 1, 10 * i + 2], timestamp=[1, 2])
        lake.write_parquet(orders, lake.raw_part_path("orders", key, "src-1"))
        sweeps = empty_rows(
            sweeps_schema(HORIZONS), 1, order_id=[10 * i + 1], arrival_quantity=[100 * (i + 1)]
        )
        lake.write_parquet(sweeps, lake.result_path("sweeps", key))
        scenarios = ("baseline", "half_cap")
        sim = empty_rows(sim_orders_schema(HORIZONS), 1, order_id=[10 * i + 1], sim_quantity=[50])
        write_scenario_results(lake, "sim_orders", key, dict.fromkeys(scenarios, sim))
        fills = empty_rows(SIM_FILLS, 1, sweep_order_id=[10 * i + 1], quantity=[50])
        write_scenario_results(lake, "sim_fills", key, dict.fromkeys(scenarios, fills))
    lake.write_json(RUN, lake.runs_dir / "r1.json")
    lake.write_json({"source": "src-1", "rows_read": 4}, lake.manifest_path("src-1"))
    lake.write_parquet(empty_rows(REJECTS, 1, reason=["bad price"]), lake.rejects_path("orders", "src-1"))
    compact(lake)  # the views read the results by date, as `dpsim process` leaves them
    return lake


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    built = build_lake(tmp_path / "lake")
    refresh_catalog(built)
    return built


def plain(lake_root: Path | UPath, query: str) -> list[tuple[object, ...]]:
    """Query the catalog file with plain DuckDB (no dpsim code)."""
    con = duckdb.connect(str(lake_root / "dpsim.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_views_for_every_existing_table(tmp_path: Path) -> None:
    lake = build_lake(tmp_path / "lake")
    names = refresh_catalog(lake)
    assert names == ["jobs", "manifest", "orders", "rejects", "runs", "sim_fills", "sim_orders", "sweeps"]
    # no temp file or WAL left behind; the folder the views read recorded beside the catalog
    assert sorted(p.name for p in lake.root.iterdir()) == [
        ".dpsim.duckdb.root",
        "_manifest",
        "_rejects",
        "_runs",
        "dpsim.duckdb",
        "orders",
        "results",
        "results_by_date",
    ]


def test_hive_keys_are_typed_and_come_first(lake: Lake) -> None:
    cols = {r[0]: r for r in plain(lake.root, "SELECT column_name, column_type FROM (DESCRIBE sim_orders)")}
    assert cols["scenario"][1] == "VARCHAR"
    assert cols["security_code"][1] == "BIGINT"
    assert cols["date"][1] == "DATE"
    assert [r[0] for r in plain(lake.root, "DESCRIBE sweeps")][:3] == ["security_code", "date", "order_id"]
    assert plain(lake.root, "SELECT security_code, date, order_id FROM sweeps ORDER BY 1") == [
        (101, date(2024, 9, 5), 1),
        (202, date(2024, 9, 6), 11),
    ]
    assert plain(lake.root, "SELECT scenario, count(*) FROM sim_fills GROUP BY scenario ORDER BY 1") == [
        ("baseline", 2),
        ("half_cap", 2),
    ]
    assert plain(lake.root, "SELECT count(*) FROM orders WHERE security_code = 202") == [(2,)]


def test_runs_jobs_manifest_and_rejects(lake: Lake) -> None:
    assert plain(lake.root, "SELECT run_id, config_hash FROM runs") == [("r1", "abc")]
    assert plain(lake.root, "SELECT run_id, partition, status, error FROM jobs ORDER BY partition") == [
        ("r1", "101/2024-09-05", "ok", None),
        ("r1", "202/2024-09-06", "failed", "boom"),
    ]
    assert plain(lake.root, "SELECT source, rows_read FROM manifest") == [("src-1", 4)]
    assert plain(lake.root, "SELECT kind, reason FROM rejects") == [("orders", "bad price")]


def test_runs_without_jobs_get_no_jobs_view(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.write_json({"run_id": "r0", "started": "2024-09-07T10:00:00"}, lake.runs_dir / "r0.json")
    assert refresh_catalog(lake) == ["rejects", "runs"]  # no rejects: an empty view, not a missing one


def test_the_empty_rejects_view_has_the_columns_of_a_rejects_file(tmp_path: Path) -> None:
    """The stand-in spells schema.REJECTS in DuckDB types (so a query need not import pyarrow): the two agree."""
    empty, full = Lake(tmp_path / "empty"), Lake(tmp_path / "full")
    empty.root.mkdir()
    full.write_parquet(empty_rows(REJECTS, 1, reason=["bad price"]), full.rejects_path("orders", "src-1"))
    for lk in (empty, full):
        refresh_catalog(lk)
    described = [plain(lk.root, "DESCRIBE rejects") for lk in (empty, full)]
    assert [row[:2] for row in described[0]] == [row[:2] for row in described[1]]
    assert [row[0] for row in described[0]] == ["kind", *REJECTS.names]


def test_new_partitions_show_up_without_a_refresh(lake: Lake) -> None:
    """Raw partitions as soon as they are written; result partitions once compacted by date (the end of a
    process run), without rewriting the catalog either way."""
    key = PartitionKey(303, date(2024, 9, 9))
    orders = empty_rows(ORDERS.lake_schema, 1, order_id=[99], timestamp=[1])
    lake.write_parquet(orders, lake.raw_part_path("orders", key, "src-1"))
    assert plain(lake.root, "SELECT count(*) FROM orders") == [(5,)]
    lake.publish_results(
        {lake.result_path("sweeps", key): empty_rows(sweeps_schema(HORIZONS), 1, order_id=[99])}
    )
    assert plain(lake.root, "SELECT count(*) FROM sweeps") == [(2,)]
    compact(lake)
    assert plain(lake.root, "SELECT count(*) FROM sweeps") == [(3,)]


def test_queries_from_another_working_directory(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert plain(
        lake.root.resolve(),
        "SELECT count(*) FROM sweeps JOIN sim_orders USING (security_code, date, order_id)",
    ) == [(4,)]


def test_relative_lake_path_gives_absolute_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_lake(tmp_path / "lake")
    monkeypatch.chdir(tmp_path)
    refresh_catalog(Lake("lake"))
    monkeypatch.chdir(tmp_path / "lake" / "results")
    assert plain(tmp_path / "lake", "SELECT count(*) FROM sweeps") == [(2,)]


def test_a_moved_or_copied_lake_is_read_where_it_is(
    lake: Lake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: dpsim read a copied lake through the copied catalog, i.e. the original's files."""
    copied = Lake(tmp_path / "copied")
    shutil.copytree(str(lake.root), str(copied.root))
    lake.remove_tree(lake.root / "results" / "sweeps")  # the original changes: the copy must not see it
    assert run_sql(copied, "SELECT count(*) AS n FROM sweeps").to_pylist() == [{"n": 2}]
    assert "holds views over another folder (the lake was copied or moved)" in caplog.text
    caplog.clear()
    older = Lake(tmp_path / "older")  # a catalog written before the record of its folder: read from the file
    shutil.copytree(str(copied.root), str(older.root))
    (older.root / ".dpsim.duckdb.root").unlink()
    assert run_sql(older, "SELECT count(*) AS n FROM sweeps").to_pylist() == [{"n": 2}]
    assert "holds views over another folder (the lake was copied or moved)" in caplog.text
    caplog.clear()
    refresh_catalog(older)
    run_sql(older, "SELECT count(*) AS n FROM sweeps")
    assert "holds views over another folder" not in caplog.text
    moved = Lake(tmp_path / "moved")
    shutil.move(str(copied.root), str(moved.root))
    assert run_sql(moved, "SELECT count(*) AS n FROM sweeps").to_pylist() == [{"n": 2}]
    refresh_catalog(moved)  # for other DuckDB clients of the file
    assert plain(moved.root, "SELECT count(*) FROM sweeps") == [(2,)]


def test_a_query_binds_only_the_views_it_names(lake: Lake) -> None:
    """Binding a view reads its files' footers (a year's sim_fills: 360 files), so a query's session creates
    only the views its words name; a question about the catalog itself gets every view."""
    assert views_named_in("SELECT count(*) FROM Sweeps -- sim_fills") == {
        "select",
        "count",
        "from",
        "sweeps",
        "sim_fills",
    }
    for about in ("SHOW TABLES", "SELECT * FROM duckdb_views()", "FROM information_schema.columns"):
        assert views_named_in(about) is None
    for query, views in (
        ("SELECT * FROM sweeps", ["sweeps"]),
        ("FROM jobs", ["jobs", "runs"]),
        ("SELECT 1", []),
    ):
        con = connect(lake, only=views_named_in(query))
        try:
            assert view_names(con) == views
        finally:
            con.close()
    everything = "SELECT count(*) AS n FROM duckdb_views() WHERE NOT internal"
    assert run_sql(lake, everything).to_pylist() == [{"n": 8}]


def test_connect_applies_the_memory_limit_and_temp_directory(lake: Lake, tmp_path: Path) -> None:
    cfg = Config(aggregate=Aggregate(memory_limit_mb=256, temp_directory=str(tmp_path / "spill")))
    con = connect(lake, cfg)
    try:
        settings = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
    finally:
        con.close()
    assert settings == ("244.1 MiB", str(tmp_path / "spill"))  # DuckDB shows 256 MB in MiB
    con = connect(lake)
    try:
        assert con.execute("SELECT current_setting('temp_directory')").fetchone() == (
            str(lake.own_dir("duckdb").resolve()),
        )
    finally:
        con.close()


def test_sql_needs_no_catalog_file(tmp_path: Path) -> None:
    lake = build_lake(tmp_path / "lake")
    assert run_sql(lake, "SELECT count(*) AS n FROM sim_orders").to_pylist() == [{"n": 4}]
    assert not lake.catalog_path.exists()  # dpsim's readers build the views in memory


def test_run_sql_returns_arrow(lake: Lake) -> None:
    got = run_sql(lake, "SELECT scenario, sum(sim_quantity) AS q FROM sim_orders GROUP BY ALL ORDER BY 1")
    assert got.to_pylist() == [{"scenario": "baseline", "q": 100}, {"scenario": "half_cap", "q": 100}]


def test_sql_syntax_error_is_one_line(lake: Lake) -> None:
    with pytest.raises(DpsimError) as err:
        run_sql(lake, "SELEC 1")
    assert str(err.value) == 'Parser Error: syntax error at or near "SELEC"'


def test_sql_unknown_table_lists_the_views(lake: Lake) -> None:
    with pytest.raises(DpsimError) as err:
        run_sql(lake, "SELECT * FROM sweep")
    assert str(err.value) == (
        "Catalog Error: Table with name sweep does not exist! (available views: "
        "jobs, manifest, orders, rejects, runs, sim_fills, sim_orders, sweeps)"
    )


def test_sql_unknown_column_and_writes_are_one_line(lake: Lake) -> None:
    with pytest.raises(DpsimError) as err:
        run_sql(lake, "SELECT nope FROM sweeps")
    assert str(err.value) == 'Binder Error: Referenced column "nope" not found in FROM clause!'
    with pytest.raises(DpsimError) as err:
        run_sql(lake, "CREATE TABLE x (a INT)")
    assert str(err.value) == (
        "CREATE statements do not run here: `dpsim sql` only reads the lake (queries and EXPLAIN); "
        "pass --unsafe to run it anyway"
    )


def test_sql_empty_query(lake: Lake) -> None:
    with pytest.raises(
        DpsimError, match=r'^empty SQL query: pass a statement, e.g. "SELECT \* FROM global_summary"$'
    ):
        run_sql(lake, "  ")


def test_describe_catalog(lake: Lake) -> None:
    rows = describe_catalog(lake)
    assert [r for r in rows if r[0] == "jobs"] == [
        ("jobs", "run_id", "VARCHAR"),
        ("jobs", "partition", "VARCHAR"),
        ("jobs", "status", "VARCHAR"),
        ("jobs", "seconds", "DOUBLE"),
        ("jobs", "rows_in", "BIGINT"),
        ("jobs", "rows_out", "BIGINT"),
        ("jobs", "error", "VARCHAR"),
    ]
    sweeps = [c for v, c, _ in rows if v == "sweeps"]
    assert sweeps[:2] == ["security_code", "date"]
    assert len(sweeps) == 2 + len(sweeps_schema(HORIZONS))
    assert ("sim_orders", "scenario", "VARCHAR") in rows


def test_refresh_needs_an_existing_lake(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match=r"no such lake folder \(pass --lake DIR of an existing lake"):
        refresh_catalog(Lake(tmp_path / "nowhere"))

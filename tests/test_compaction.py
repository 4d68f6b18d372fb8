"""The results compacted by trading date (dpsim.compaction): one sorted file per (table, date), every scenario in it,
the same rows as the job outputs, rewritten only where a job's outputs changed, read by the catalog's views
and the notebook."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import dpsim
from dpsim import jobs
from dpsim.compaction import Compaction, compact
from dpsim.config import Config, load_config
from dpsim.errors import LakeError
from dpsim.export.source import Selection
from dpsim.export.source import inventory as export_inventory
from dpsim.lake import RESULT_TABLES, SCENARIO_TABLES, Lake, PartitionKey
from dpsim.shred import shred_drop
from tests.lakes import run_dpsim, small_drop, write_config

SCENARIOS = ("baseline", "second")  # two scenarios (the second with the default rules too)


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 securities × 2 dates, processed with two scenarios: (config path; the lake beside it)."""
    base = tmp_path_factory.mktemp("compaction")
    drop = small_drop(base / "drop", securities=3, days=2)
    conf = write_config(base / "c.yaml", drop, base / "lake")
    conf.write_text(conf.read_text().replace("  baseline: {}\n", "  baseline: {}\n  second: {}\n"))
    cfg = load_config(conf)
    shred_drop(cfg, Lake(cfg.lake))
    request = jobs.ProcessRequest(scenarios=SCENARIOS)
    outcome = jobs.process(cfg, Lake(cfg.lake), request)
    assert outcome.run is not None and not outcome.run.failed
    return conf


def _rows(relation: duckdb.DuckDBPyRelation) -> list[str]:
    """A relation's rows as sorted text, whatever its column order."""
    return sorted(repr(sorted(row.items())) for row in relation.to_arrow_table().to_pylist())


def _job_outputs(lake: Lake, table: str, scenario: str | None) -> list[str]:
    """A result table read straight from its per-partition job outputs (one scenario's rows, without the
    date, a folder name in both layouts, and the scenario column)."""
    pattern = f"{lake.table_dir(table)}/*/*/*.parquet"
    dropped = "date, scenario" if scenario else "date"
    where = f"WHERE scenario = '{scenario}'" if scenario else ""
    return _rows(
        duckdb.connect().sql(
            f"SELECT * EXCLUDE ({dropped}) FROM read_parquet('{pattern}', hive_partitioning = true, "
            "hive_types = {'security_code': BIGINT, 'date': DATE}) " + where
        )
    )


def _by_date(lake: Lake, table: str, scenario: str | None) -> list[str]:
    """A result table read from its files by date (one scenario's rows, without the scenario column)."""
    pattern = f"{lake.by_date_dir(table)}/*/*.parquet"
    where = f"WHERE scenario = '{scenario}'" if scenario else ""
    dropped = "EXCLUDE (scenario)" if scenario else ""
    return _rows(
        duckdb.connect().sql(
            f"SELECT * {dropped} FROM read_parquet('{pattern}', hive_partitioning = false) {where}"
        )
    )


def test_one_sorted_file_per_table_and_date_with_the_job_outputs_rows(processed: Path) -> None:
    lake = Lake(load_config(processed).lake)
    dates = sorted({k.date for k in lake.partitions("orders")})
    files = sorted((lake.root / "results_by_date").rglob("*.parquet"))
    # 3 securities per date: 5 files a date instead of the job outputs' 3 × 5
    assert len(files) == len(RESULT_TABLES) * len(dates)
    for table in RESULT_TABLES:
        for scenario in SCENARIOS if table in SCENARIO_TABLES else (None,):
            assert _by_date(lake, table, scenario) == _job_outputs(lake, table, scenario), (table, scenario)
    sweeps = pq.ParquetFile(lake.by_date_path("sweeps", dates[0]))
    assert sweeps.schema_arrow.names[0] == "security_code"
    keys = sweeps.read(columns=["security_code", "order_id"]).to_pylist()
    assert len({k["security_code"] for k in keys}) == 3
    assert keys == sorted(keys, key=lambda k: (k["security_code"], k["order_id"]))
    stats = sweeps.metadata.row_group(0).column(sweeps.schema_arrow.names.index("order_id")).statistics
    assert stats is not None and stats.has_min_max
    fills = pq.ParquetFile(lake.by_date_path("sim_fills", dates[0]))
    assert fills.schema_arrow.names[:3] == ["scenario", "security_code", "sweep_order_id"]
    keys = fills.read(columns=["scenario", "security_code", "sweep_order_id"]).to_pylist()
    assert {k["scenario"] for k in keys} == set(SCENARIOS)
    assert keys == sorted(keys, key=lambda k: (k["scenario"], k["security_code"], k["sweep_order_id"]))


def test_views_and_notebook_read_the_by_date_files(processed: Path) -> None:
    cfg = load_config(processed)
    lake = Lake(cfg.lake)
    proc = run_dpsim(
        "sql", "--config", processed, "SELECT scenario, count(*) AS n FROM sim_orders GROUP BY ALL ORDER BY 1",
        "--format", "csv",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    counts = {s: len(_job_outputs(lake, "sim_orders", s)) for s in SCENARIOS}
    assert proc.stdout.splitlines()[1:] == [f"{s},{counts[s]}" for s in sorted(SCENARIOS)]
    frame = dpsim.open_lake(lake.root).sweeps().collect()
    assert frame.columns[:3] == ["security_code", "date", "order_id"]
    assert frame.height == len(_job_outputs(lake, "sweeps", None))
    orders = dpsim.open_lake(lake.root).sim_orders("baseline").collect()
    assert orders.columns[:3] == ["scenario", "security_code", "date"]
    assert set(orders["scenario"]) == {"baseline"}


def test_only_the_dates_whose_outputs_changed_are_rewritten(processed: Path, tmp_path: Path) -> None:
    cfg = load_config(processed)
    lake = Lake(cfg.lake)
    dates = sorted({k.date for k in lake.partitions("orders")})
    before = {p: p.stat().st_mtime_ns for p in (lake.root / "results_by_date").rglob("*.parquet")}
    assert compact(lake).rewritten == 0  # nothing changed since the process run

    key = next(k for k in lake.partitions("orders") if k.date == dates[1])
    one = jobs.ProcessRequest(
        securities=[key.security_code], dates=(key.date, key.date), scenarios=SCENARIOS, force=True
    )
    assert jobs.process(cfg, lake, one).run is not None
    after = {p: p.stat().st_mtime_ns for p in (lake.root / "results_by_date").rglob("*.parquet")}
    changed = {p for p in before if after[p] != before[p]}
    assert changed and all(f"date={dates[1]}" in str(p) for p in changed)
    assert all(f"date={dates[1]}" in str(p) for p in after if p not in before) and set(before) <= set(after)


def test_a_removed_partition_leaves_its_date_and_a_date_with_no_outputs_loses_its_files(
    processed: Path, tmp_path: Path
) -> None:
    cfg = load_config(processed)
    source = Lake(cfg.lake)
    copy = tmp_path / "lake"
    import shutil

    shutil.copytree(str(source.root), copy)
    lake = Lake(copy)
    dates = sorted({k.date for k in lake.partitions("orders")})
    gone = PartitionKey(lake.partitions("orders")[0].security_code, dates[0])
    assert lake.remove_results([gone]) == [gone]  # as a re-shred that lost the partition does it
    done = compact(lake)
    assert done.removed == 0 and done.rewritten == len(RESULT_TABLES)  # its date, in every table
    left = pq.read_table(lake.by_date_path("sweeps", dates[0]), columns=["security_code"])
    assert gone.security_code not in set(left["security_code"].to_pylist())
    assert _by_date(lake, "sweeps", None) == _job_outputs(lake, "sweeps", None)

    # every job output deleted by hand: the journal does not see it, a rescan does
    for table in RESULT_TABLES:
        shutil.rmtree(str(lake.table_dir(table)))
    assert compact(lake) == Compaction(dates=done.dates, rewritten=0, removed=0)
    assert compact(lake, rescan=True).removed == len(RESULT_TABLES) * 2
    assert not list((copy / "results_by_date").rglob("*.parquet"))


def test_a_torn_file_by_date_is_named_by_a_query_and_rewritten_by_a_rescan(
    processed: Path, tmp_path: Path
) -> None:
    """Its job outputs are unchanged, so only the rescan that the query's error names brings it back."""
    import shutil

    from dpsim.catalog import refresh_catalog
    from dpsim.query import run_sql

    copy = tmp_path / "lake"
    shutil.copytree(str(Lake(load_config(processed).lake).root), copy)
    lake = Lake(copy)
    day = min(k.date for k in lake.partitions("orders"))
    bad = lake.by_date_path("sim_fills", day)
    bad.write_bytes(bad.read_bytes()[:200])
    refresh_catalog(lake)
    with pytest.raises(LakeError) as err:
        run_sql(lake, "SELECT count(*) FROM sim_fills")
    assert str(err.value) == (
        f"{bad}: a corrupt result file by date (Invalid Input Error: No magic bytes found at end of file "
        f"'{bad}'); rebuild it with: dpsim catalog --rescan"
    )
    assert compact(lake).rewritten == 0  # nothing changed: the journal alone trusts the file
    assert compact(lake, rescan=True).rewritten == 1
    assert _by_date(lake, "sim_fills", None) == _job_outputs(lake, "sim_fills", None)


def test_a_lake_compacted_per_scenario_gets_one_file_per_date(processed: Path, tmp_path: Path) -> None:
    """The migration from the first layout by date (a file per scenario and date, its state kept per
    scenario): the next compaction writes the shared files and removes the old ones, with no marker."""
    import json
    import shutil

    from dpsim.lake.layout import per_scenario_by_date_path

    copy = tmp_path / "lake"
    shutil.copytree(str(Lake(load_config(processed).lake).root), copy)
    lake = Lake(copy)
    state = json.loads(lake.by_date_state_path.read_text())
    dates = sorted({k.date for k in lake.partitions("orders")})
    for table in SCENARIO_TABLES:  # the old layout: one file per scenario and date, one state entry each
        digests = state["tables"].pop(table)
        for scenario in SCENARIOS:
            state["tables"][f"{table}/scenario={scenario}"] = digests
            for day in dates:
                old = per_scenario_by_date_path(lake.root, table, day, scenario)
                old.parent.mkdir(parents=True)
                shutil.copyfile(str(lake.by_date_path(table, day)), str(old))
        shutil.rmtree(str(lake.by_date_dir(table) / f"date={dates[0]}"))
    lake.by_date_state_path.write_text(json.dumps(state))
    assert lake.result_changes() == {}

    done = compact(lake)
    assert done.rewritten == len(SCENARIO_TABLES) * len(dates)
    assert done.removed == len(SCENARIO_TABLES) * len(SCENARIOS) * len(dates)
    assert sorted(str(p) for p in (copy / "results_by_date").rglob("*.parquet")) == sorted(
        str(lake.by_date_path(t, d)) for t in RESULT_TABLES for d in dates
    )
    assert not list((copy / "results_by_date").glob("*/scenario=*"))  # their folders gone too
    for table in SCENARIO_TABLES:
        for scenario in SCENARIOS:
            assert _by_date(lake, table, scenario) == _job_outputs(lake, table, scenario)
    assert compact(lake) == Compaction(dates=done.dates, rewritten=0, removed=0)


def test_the_change_journal_spares_the_walk_and_opens_only_the_changed_dates(
    processed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publish leaves one marker per partition, removed by the compaction; with none, nothing is listed;
    with one, only its date's folders are opened; a marker whose publish never happened (a crash between
    the two) costs a listing, not a rewrite."""
    import shutil

    cfg = load_config(processed)
    copy = tmp_path / "lake"
    shutil.copytree(str(Lake(cfg.lake).root), copy)
    lake = Lake(copy)
    assert lake.result_changes() == {}  # the process run's compaction consumed its markers
    walked: list[object] = []
    real = type(lake.store).list_part_files

    def spy(store: object, base: object, days: object = None) -> object:
        walked.append(days)
        return real(store, base, days)  # type: ignore[arg-type]

    monkeypatch.setattr(type(lake.store), "list_part_files", spy)
    assert compact(lake).rewritten == 0 and walked == []

    key = sorted(lake.partitions("orders"), key=str)[-1]
    path = lake.result_path("quality", key)
    table = pq.read_table(path)
    lake.publish_results({path: table.slice(0, max(0, table.num_rows - 1))})
    assert sorted(lake.result_changes().values()) == [key.date]
    done = compact(lake)
    assert done.rewritten == 1 and lake.result_changes() == {}
    assert walked and all(days == {key.date} for days in walked)
    assert _by_date(lake, "quality", None) == _job_outputs(lake, "quality", None)

    walked.clear()
    lake.note_result_changes([key])  # a crash after the marker, before the publish
    assert compact(lake).rewritten == 0 and walked and lake.result_changes() == {}


def test_the_catalog_command_compacts_a_lake_written_before_results_by_date(
    processed: Path, tmp_path: Path
) -> None:
    """The migration: a lake whose results are only job outputs gets its by-date files from `dpsim catalog`."""
    import shutil

    copy = tmp_path / "lake"
    shutil.copytree(str(Lake(load_config(processed).lake).root), copy)
    shutil.rmtree(copy / "results_by_date")
    conf = write_config(tmp_path / "c.yaml", tmp_path, copy)
    proc = run_dpsim("catalog", "--config", conf)
    assert proc.returncode == 0, proc.stderr
    assert "sweeps" in proc.stdout
    lake = Lake(copy)
    assert _by_date(lake, "sweeps", None) == _job_outputs(lake, "sweeps", None)
    day = date.fromisoformat(str(sorted({k.date for k in lake.partitions("orders")})[0]))
    assert lake.by_date_path("quality", day).exists()


def _to_first_layout(lake: Lake) -> None:
    """Rewrite the scenario tables' job outputs as the first layout had them: a folder per scenario, one file
    per scenario and partition, without the scenario column (and no scenario markers)."""
    import shutil

    from dpsim.lake.layout import per_scenario_dir

    for table in SCENARIO_TABLES:
        for key in lake.partitions(table):
            merged = pq.read_table(lake.result_path(table, key))
            for scenario in SCENARIOS:
                rows = merged.filter(pc.equal(merged["scenario"], scenario)).drop_columns(["scenario"])
                path = per_scenario_dir(lake.root, table, scenario) / key.hive / "part-0.parquet"
                lake.write_parquet(rows, path)
        for folder in lake.table_dir(table).glob("security_code=*"):
            shutil.rmtree(str(folder))
    shutil.rmtree(str(lake.root / "results" / "_scenarios"))


def _first_layout_dirs(lake: Lake, key: PartitionKey) -> list[Path]:
    from dpsim.lake.layout import per_scenario_dir

    found = (per_scenario_dir(lake.root, t, s) / key.hive for t in SCENARIO_TABLES for s in SCENARIOS)
    return [Path(str(d)) for d in found if d.exists()]


def test_job_outputs_in_the_first_layout_are_migrated_before_a_run_plans(
    processed: Path, tmp_path: Path
) -> None:
    """A lake whose jobs wrote a file per scenario: the next process run rewrites each partition's files as
    one (same rows), removes the scenario folders, and plans every partition as unchanged (but one whose
    results were removed before: its first-layout files went with them, and it runs again)."""
    import shutil

    cfg = load_config(processed)
    copy = tmp_path / "lake"
    shutil.copytree(str(Lake(cfg.lake).root), copy)
    lake = Lake(copy)
    before = {(t, s): _job_outputs(lake, t, s) for t in SCENARIO_TABLES for s in SCENARIOS}
    keys = lake.partitions("sim_orders")
    _to_first_layout(lake)
    assert lake.partitions("sim_orders") == [] and lake.scenarios() == []
    assert sorted(lake.first_layout_scenarios("sim_fills")) == sorted(SCENARIOS)
    with pytest.raises(LakeError, match="first layout.*dpsim aggregate"):  # an export waits for it
        export_inventory(lake, Selection())
    assert dpsim.open_lake(lake.root).sim_orders("second").collect().height  # notebooks read it meanwhile

    gone = keys[0]  # removed before the migration (as a re-shred that dropped it does): it must not come back
    assert lake.remove_results([gone]) == [gone]
    assert not any(_first_layout_dirs(lake, gone))

    outcome = jobs.process(cfg, lake, jobs.ProcessRequest(scenarios=SCENARIOS, aggregate=False))
    assert outcome.run is not None
    assert {r.partition: r.status for r in outcome.run.records} == {
        str(k): "ok" if k == gone else "skipped" for k in lake.partitions("orders")
    }
    assert lake.partitions("sim_orders") == keys and lake.scenarios() == sorted(SCENARIOS)
    assert not list((copy / "results").glob("*/scenario=*"))
    for (table, scenario), rows in before.items():
        assert _job_outputs(lake, table, scenario) == rows, (table, scenario)
        assert _by_date(lake, table, scenario) == rows, (table, scenario)


def _scenario_copy(processed: Path, tmp_path: Path) -> tuple[Config, Lake, dict[tuple[str, str], list[str]]]:
    """A copy of the processed lake, and each scenario table's rows per scenario in its job outputs."""
    import shutil

    cfg = load_config(processed)
    shutil.copytree(str(Lake(cfg.lake).root), tmp_path / "lake")
    lake = Lake(tmp_path / "lake")
    return cfg, lake, {(t, s): _job_outputs(lake, t, s) for t in SCENARIO_TABLES for s in SCENARIOS}


def test_a_run_of_one_scenario_keeps_the_others_rows(processed: Path, tmp_path: Path) -> None:
    """Every scenario of a partition shares its file: reprocessing one scenario rewrites that scenario's rows
    and keeps the other's, as separate files per scenario did."""
    cfg, lake, before = _scenario_copy(processed, tmp_path)
    key = lake.partitions("sim_orders")[0]
    path = lake.result_path("sim_orders", key)
    table = pq.read_table(path)
    second = table.filter(pc.equal(table["scenario"], "second"))
    lake.write_parquet(table.filter(pc.equal(table["scenario"], "baseline")), path)  # "second" rows gone

    one = jobs.ProcessRequest(
        securities=[key.security_code], dates=(key.date, key.date), scenarios=("second",), aggregate=False
    )
    assert jobs.process(cfg, lake, one).run is not None
    rows = pq.read_table(path)
    assert sorted(set(rows["scenario"].to_pylist())) == ["baseline", "second"]
    assert rows.filter(pc.equal(rows["scenario"], "second")).equals(second)  # recomputed, the same
    for (table, scenario), expected in before.items():
        assert _job_outputs(lake, table, scenario) == expected, (table, scenario)


def test_a_corrupt_scenario_file_is_replaced_by_the_rebuild_its_error_names(
    processed: Path, tmp_path: Path
) -> None:
    """A job reads the partition's file for the scenarios it does not run: an unreadable one is replaced (the
    corrupt-file hint's `dpsim process --force --securities … --dates …` must rebuild it), not a failed job."""
    cfg, lake, before = _scenario_copy(processed, tmp_path)
    key = lake.partitions("sim_orders")[0]
    lake.result_path("sim_orders", key).write_bytes(b"not a parquet file")
    one = jobs.ProcessRequest(
        securities=[key.security_code], dates=(key.date, key.date), scenarios=SCENARIOS, force=True
    )
    outcome = jobs.process(cfg, lake, one)
    assert outcome.run is not None and not outcome.run.failed
    for (table, scenario), rows in before.items():
        assert _job_outputs(lake, table, scenario) == rows, (table, scenario)


def test_row_groups_are_full_whatever_the_batches_duckdb_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB streams batches of its own length (122,880 rows where 65,536 were asked): with groups of 4 rows,
    batches of 6, 6 and 3 rows (15) become groups of 4, 4, 4 and 3, in the stream's order."""
    import pyarrow as pa

    from dpsim import compaction

    monkeypatch.setattr(compaction, "ROW_GROUP_ROWS", 4)
    schema = pa.schema([("order_id", pa.int64()), ("set", pa.string())])
    batches = [
        pa.record_batch([pa.array(range(start, stop)), pa.array(["both"] * (stop - start))], schema=schema)
        for start, stop in ((0, 6), (6, 12), (12, 15))
    ]
    path = tmp_path / "by_date.parquet"
    compaction._write_sorted(pa.RecordBatchReader.from_batches(schema, batches), path)
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 4, 4, 3]
    assert pq.read_table(path)["order_id"].to_pylist() == list(range(15))

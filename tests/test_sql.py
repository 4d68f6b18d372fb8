"""`dpsim sql` is safe by default: only queries, only inside the lake; nested CSV, answers of any size
(DuckDB's writers, `--max-rows`), a reader that stops reading, job views, busy catalogs, glob characters in
the lake's path, corrupt result files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dpsim.catalog import refresh_catalog
from dpsim.config import Config
from dpsim.errors import DpsimError
from dpsim.lake import Lake
from dpsim.query import run_sql, sql_rows, write_csv
from tests.lakes import REPO, error_lines, run_dpsim, small_drop, start_dpsim, write_config
from tests.test_catalog import build_lake, plain


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return build_lake(tmp_path / "lake")


def refused(lake: Lake, query: str) -> str:
    with pytest.raises(DpsimError) as err:
        run_sql(lake, query)
    return str(err.value)


def test_only_queries_run_and_only_inside_the_lake(lake: Lake, tmp_path: Path) -> None:
    """Before: `dpsim sql` could COPY anywhere, overwrite lake result files and attach databases read-write."""
    target = lake.result_path("sweeps", lake.partitions("sweeps")[0])
    before = target.read_bytes()
    for query, kind in (
        (f"COPY (SELECT 42 AS order_id) TO '{target}' (FORMAT parquet)", "COPY"),
        (f"ATTACH '{tmp_path / 'other.db'}'", "ATTACH"),
        ("SET enable_external_access = true", "SET"),
        ("INSTALL httpfs", "LOAD"),  # DuckDB parses INSTALL as a LOAD statement
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("SELECT 1; COPY (SELECT 1) TO 'x.csv'", "COPY"),
    ):
        assert refused(lake, query) == (
            f"{kind} statements do not run here: `dpsim sql` only reads the lake (queries and EXPLAIN); "
            "pass --unsafe to run it anyway"
        )
    assert target.read_bytes() == before
    assert not (tmp_path / "other.db").exists()
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"x": [1]}), outside)
    for path in (outside, lake.root / ".." / "outside.parquet", Path("/etc/passwd")):
        reader = "read_csv" if path.suffix != ".parquet" else "read_parquet"
        msg = refused(lake, f"SELECT * FROM {reader}('{path}')")
        assert msg.startswith(f'Permission Error: Cannot access file "{path}"'), msg
        assert msg.endswith(
            f"(`dpsim sql` reads only inside the lake {lake.root}; pass --unsafe to read elsewhere)"
        )
    # inside the lake, by path: fine; DESCRIBE, SUMMARIZE, EXPLAIN, WITH: queries
    assert run_sql(lake, f"SELECT count(*) AS n FROM read_parquet('{target}')").to_pylist() == [{"n": 1}]
    for query in (
        "DESCRIBE sweeps",
        "SUMMARIZE sweeps",
        "EXPLAIN SELECT * FROM sweeps",
        "WITH t AS (SELECT 1) FROM t",
    ):
        run_sql(lake, query)
    # --unsafe lifts both
    run_sql(lake, f"COPY (SELECT * FROM read_parquet('{outside}')) TO '{tmp_path / 'x.csv'}'", unsafe=True)
    assert (tmp_path / "x.csv").read_text().splitlines() == ["x", "1"]


def test_the_cli_refuses_in_one_line_and_writes_nested_columns_as_json(lake: Lake, tmp_path: Path) -> None:
    """Before: `--format csv` on a list column was a traceback."""
    proc = run_dpsim("sql", "--lake", lake.root, f"COPY (SELECT 1) TO '{tmp_path / 'y.csv'}'")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert error_lines(proc.stderr) == [
        "dpsim: error: COPY statements do not run here: `dpsim sql` only reads the lake (queries and "
        "EXPLAIN); pass --unsafe to run it anyway"
    ]
    proc = run_dpsim(
        "sql", "--lake", lake.root, "--unsafe", f"COPY (SELECT 1 AS a) TO '{tmp_path / 'y.csv'}'"
    )
    assert proc.returncode == 0, proc.stderr
    query = "SELECT [1, 2] AS l, {'a': 1, 'b': [true]} AS s, map([1], ['x']) AS m, 'plain' AS t"
    proc = run_dpsim("sql", "--lake", lake.root, query, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "l,s,m,t",
        '"[1,2]","{""a"":1,""b"":[true]}","{""1"":""x""}",plain',
    ]


def test_write_csv_of_nested_columns(tmp_path: Path) -> None:
    con = duckdb.connect()
    table = pa.table({"l": pa.array([[1, 2], None]), "n": [1, 2], "t": ['say "hi", twice', None]})
    write_csv(con.from_arrow(table), tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text().splitlines() == ["l,n,t", '"[1,2]",1,"say ""hi"", twice"', ",2,"]


_NO_PYARROW = "raise ImportError('pyarrow imported')\n"


def test_answers_are_written_by_duckdb_atomically_without_pyarrow(lake: Lake, tmp_path: Path) -> None:
    """CSV, JSON and Parquet answers stream through DuckDB's writers: no Arrow table of the whole answer
    (before: a year's sweeps as CSV had to fit in memory) and no pyarrow import (0.1 s of each call). A
    stand-in pyarrow on the path fails any command that imports it."""
    site = tmp_path / "site" / "pyarrow"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text(_NO_PYARROW)
    env = {"PYTHONPATH": str(site.parent)}
    query = "SELECT order_id, date FROM sweeps ORDER BY order_id"
    expected = run_sql(lake, query).to_pylist()
    csv = run_dpsim("sql", "--lake", lake.root, query, "--format", "csv", extra_env=env)
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.splitlines()
    assert lines[0] == "order_id,date"
    assert lines[1:] == [f"{r['order_id']},{r['date']}" for r in expected]
    out = tmp_path / "answers"
    out.mkdir()
    for fmt in ("json", "parquet", "csv"):
        proc = run_dpsim(
            "sql", "--lake", lake.root, query, "--format", fmt, "--out", out / f"a.{fmt}", extra_env=env
        )
        assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "a.json").read_text()) == [
        {"order_id": r["order_id"], "date": str(r["date"])} for r in expected
    ]
    assert pq.read_table(out / "a.parquet").to_pylist() == expected
    assert (out / "a.csv").read_text().splitlines() == lines
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "a.json", "a.parquet"]  # no scratch left
    # a query that fails while it streams leaves no file, and no half of one
    bad = "SELECT CAST('x' || order_id AS BIGINT) AS n FROM sweeps"
    proc = run_dpsim(
        "sql", "--lake", lake.root, bad, "--format", "csv", "--out", out / "bad.csv", extra_env=env
    )
    assert proc.returncode == 1 and error_lines(proc.stderr)[0].startswith("dpsim: error: Conversion Error")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "a.json", "a.parquet"]


def test_runs_jobs_and_manifest_views_work_under_dpsims_memory_limit(lake: Lake) -> None:
    """Before: they always failed with "Out of Memory: failed to allocate 2.0 GiB"."""
    cfg = Config()  # the default memory limit
    assert run_sql(lake, "SELECT count(*) AS n FROM runs", cfg).to_pylist() == [{"n": 1}]
    assert run_sql(lake, "SELECT count(*) AS n FROM jobs", cfg).to_pylist() == [{"n": 2}]
    assert run_sql(lake, "SELECT count(*) AS n FROM manifest", cfg).to_pylist() == [{"n": 1}]
    refresh_catalog(lake)
    assert plain(lake.root, "SELECT count(*) FROM jobs") == [(2,)]  # so does the catalog file


_HOLD_CATALOG = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: DuckDB's file lock
con.execute("SELECT 1")
print("held", flush=True)
time.sleep(600)
"""


def test_another_session_holding_the_catalog_blocks_nothing(lake: Lake) -> None:
    """Before: a DuckDB session holding dpsim.duckdb made `dpsim sql` a lock-conflict traceback."""
    refresh_catalog(lake)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_CATALOG, str(lake.catalog_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert run_sql(lake, "SELECT count(*) AS n FROM sweeps").to_pylist() == [{"n": 2}]
        proc = run_dpsim("sql", "--lake", lake.root, "SELECT count(*) AS n FROM sweeps", "--format", "csv")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == ["n", "2"]
        assert "jobs" in refresh_catalog(lake)  # the file is replaced, not written in place
    finally:
        holder.kill()
        holder.wait()


def test_glob_characters_in_the_lake_path(tmp_path: Path) -> None:
    """Before: a lake path with `[x]` broke every catalog view."""
    lake = build_lake(tmp_path / "lake[x]")
    assert run_sql(lake, "SELECT count(*) AS n FROM sweeps").to_pylist() == [{"n": 2}]
    assert run_sql(lake, "SELECT count(*) AS n FROM orders").to_pylist() == [{"n": 4}]
    assert "sweeps" in refresh_catalog(lake)
    assert plain(lake.root, "SELECT count(*) FROM sim_orders") == [(4,)]


def test_a_corrupt_result_file_names_itself_and_the_command_that_rebuilds_it(tmp_path: Path) -> None:
    drop = small_drop(tmp_path / "drop", securities=1, days=1)
    conf = write_config(tmp_path / "c.yaml", drop, tmp_path / "lake")
    assert run_dpsim("shred", "--config", conf).returncode == 0
    assert run_dpsim("process", "--config", conf).returncode == 0
    lake = Lake(tmp_path / "lake")
    (key,) = lake.partitions("sweeps")
    bad = lake.result_path("sweeps", key)
    bad.write_bytes(b"not parquet at all")
    expected = (
        f"{bad}: a corrupt result file (Invalid Input Error: No magic bytes found at end of file '{bad}'); "
        f"rebuild it with: dpsim process --force --securities {key.security_code} --dates {key.date}"
    )
    proc = run_dpsim("catalog", "--config", conf, "--rescan")  # edited by hand: its date is compacted again
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [f"dpsim: error: {expected}"]
    proc = run_dpsim("aggregate", "--config", conf)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [f"dpsim: error: {expected}"]
    fix = run_dpsim(
        "process",
        "--config",
        conf,
        "--force",
        "--securities",
        str(key.security_code),
        "--dates",
        str(key.date),
    )
    assert fix.returncode == 0, fix.stderr
    assert run_dpsim("sql", "--config", conf, "SELECT count(*) FROM sweeps").returncode == 0


def test_a_reader_that_stops_reading_ends_the_answer_quietly(lake: Lake) -> None:
    """Before: `dpsim sql … --format csv | head` ended with "dpsim: error: Broken pipe"."""
    proc = start_dpsim("sql", "--lake", lake.root, "SELECT range AS n FROM range(2000000)", "--format", "csv")
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == "n\n"
    proc.stdout.close()  # as `head -1` does
    assert proc.wait(timeout=60) == 1
    assert proc.stderr.read() == ""


def test_a_printed_answer_stops_at_max_rows(lake: Lake) -> None:
    """Before: printing `SELECT * FROM sweeps` fetched every row into Python first (a year's: tens of GB)."""
    query = "SELECT range AS n FROM range(5) ORDER BY n DESC"
    assert sql_rows(lake, query, max_rows=3) == (["n"], [(4,), (3,), (2,)], True)
    assert sql_rows(lake, query, max_rows=5) == (["n"], [(4,), (3,), (2,), (1,), (0,)], False)
    assert sql_rows(lake, query)[1:] == ([(4,), (3,), (2,), (1,), (0,)], False)
    proc = run_dpsim("sql", "--lake", lake.root, query, "--max-rows", "2")
    assert proc.returncode == 0, proc.stderr
    assert [line.strip() for line in proc.stdout.splitlines()[2:4]] == ["4", "3"]
    assert proc.stderr.splitlines() == [
        "dpsim: the first 2 rows of a longer answer; --max-rows 0 prints every row, --format csv --out FILE "
        "writes them"
    ]
    proc = run_dpsim("sql", "--lake", lake.root, query, "--max-rows", "0")
    assert [line.strip() for line in proc.stdout.splitlines()[2:7]] == ["4", "3", "2", "1", "0"]
    assert proc.stderr == ""

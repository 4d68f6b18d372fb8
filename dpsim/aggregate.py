"""Aggregations and statistics over the results: runs the named dpsim/sql/*.sql on the catalog, writes lake/aggregates.

Every query reads the catalog views (the same ones a user gets with `duckdb lake/dpsim.duckdb`), in a
session with DuckDB's memory limit and spill folder from the config. Grain and columns of each
aggregate are documented at the top of its .sql file and collected in docs/aggregates.md.
"""

from __future__ import annotations

import io
import logging
import re
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from dpsim import stats
from dpsim.catalog import connect, refresh_catalog, view_names
from dpsim.config import Config
from dpsim.errors import DpsimError, LakeError
from dpsim.lake import Lake
from dpsim.schema import DATE_COL, PARTITION_TYPES, SCENARIO, SECURITY_CODE, sim_orders_schema, sweeps_schema

log = logging.getLogger(__name__)

# Run order; each name is dpsim/sql/<name>.sql, except stats_tests (SQL moments + scipy, see _stats_tests).
AGGREGATES: tuple[str, ...] = (
    "global_summary",
    "by_security",
    "by_date",
    "by_participant",
    "by_time_of_day",
    "by_order_size",
    "by_group",
    "stats_tests",
)
# The metrics compared by stats_tests, as named in sql/stats_segments.sql.
STATS_METRICS = ("arrival_cost_bps", "filled_quantity", "fill_ratio", "vw_exec_time_s")

F64 = pa.float64()
STATS_SCHEMA = pa.schema(
    [
        ("scenario", pa.string()),
        ("segment_type", pa.string()),
        ("segment", pa.string()),
        ("metric", pa.string()),
        ("n", pa.int64()),
        ("n_excluded", pa.int64()),
        ("mean_real", F64),
        ("mean_sim", F64),
        ("mean_diff", F64),
        ("sd_diff", F64),
        ("t", F64),
        ("p_value_t", F64),
        ("ci_low", F64),
        ("ci_high", F64),
        ("cohens_d", F64),
        ("p_value_wilcoxon", F64),
        ("q_value_t", F64),
        ("q_value_wilcoxon", F64),
        ("note", pa.string()),
    ]
)

# What `headline` returns: the columns that fit a terminal (the files hold them all).
HEADLINE_SUMMARY = (
    "scenario",
    "n_sweeps",
    "n_full",
    "n_partial",
    "n_none",
    "fill_ratio",
    "sim_fill_ratio",
    "share_filled_dark",
    "vw_arrival_cost_bps",
    "sim_vw_arrival_cost_bps",
    "n_both",
    "n_real_only",
    "n_sim_only",
    "n_neither",
)
HEADLINE_TESTS = (
    "scenario",
    "metric",
    "n",
    "mean_real",
    "mean_sim",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_value_t",
    "q_value_t",
    "p_value_wilcoxon",
    "q_value_wilcoxon",
    "note",
)

_MISSING_TABLE = re.compile(r"Table with name .+ does not exist")


def sql_text(name: str) -> str:
    """The text of dpsim/sql/<name>.sql."""
    return resources.files("dpsim").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def run_aggregates(cfg: Config, lake: Lake) -> dict[str, pa.Table]:
    """Compute every aggregate, write aggregates/<name>.parquet and .csv, then add their views to the catalog."""
    refresh_catalog(lake)  # results written since the last refresh may be the first of their table
    scenarios = _scenarios(cfg, lake)
    con = connect(lake, cfg)
    try:
        # Lets DuckDB stream and spill instead of buffering to keep row order; every output has an ORDER BY.
        con.execute("SET preserve_insertion_order = false")
        _stand_in_missing_results(con, cfg)
        _execute(con, "pairs", {"scenarios": scenarios})
        _execute(con, "segment_measures")
        tables = {name: _query(con, name) for name in AGGREGATES if name != "stats_tests"}
        tables["stats_tests"] = _stats_tests(con, scenarios)
    finally:
        con.close()
    for name, table in tables.items():
        _write(lake, name, table)
    refresh_catalog(lake)
    return tables


def run_sql(lake: Lake, query: str, cfg: Config | None = None) -> pa.Table:
    """Run ad hoc SQL against the catalog (read-only); any DuckDB error becomes a one-line DpsimError."""
    if not query.strip():
        raise DpsimError('empty SQL query: pass a statement, e.g. "SELECT * FROM global_summary"')
    con = connect(lake, cfg)
    try:
        rel = con.sql(query)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as exc:
        raise DpsimError(_sql_error(exc, con)) from exc
    finally:
        con.close()


def describe_catalog(lake: Lake) -> list[tuple[str, str, str]]:
    """(view, column, type) of every catalog view, for `dpsim sql` with no query."""
    con = connect(lake)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    return [(str(v), str(c), str(t)) for v, c, t in rows]


def headline(lake: Lake) -> tuple[pa.Table, pa.Table]:
    """(global summary, overall test per scenario and metric), narrowed to the HEADLINE_* columns for printing."""
    paths = [lake.aggregates_dir / f"{name}.parquet" for name in ("global_summary", "stats_tests")]
    for path in paths:
        if not path.exists():
            raise LakeError(f"{path}: no aggregates yet: run `dpsim aggregate --lake {lake.root}` first")
    summary = lake.read_parquet(paths[0], columns=list(HEADLINE_SUMMARY))
    tests = lake.read_parquet(
        paths[1], columns=list(HEADLINE_TESTS), filters=[("segment_type", "=", "overall")]
    )
    return summary, tests


# ---- internals ----------------------------------------------------------------------------------


def _scenarios(cfg: Config, lake: Lake) -> list[str]:
    """Configured scenarios that have results; the others are reported, and stale folders are not read."""
    present = set(lake.scenarios("sim_orders"))
    missing = [s for s in cfg.scenarios if s not in present]
    if missing:
        log.warning(
            "no results/sim_orders for scenario(s) %s: run `dpsim process` to include them",
            ", ".join(missing),
        )
    return [s for s in cfg.scenarios if s in present]


def _stand_in_missing_results(con: duckdb.DuckDBPyConnection, cfg: Config) -> None:
    """Empty typed stand-ins for result tables with no files yet, so every aggregate exists (with no rows)."""
    keys = [(SECURITY_CODE, PARTITION_TYPES[SECURITY_CODE]), (DATE_COL, PARTITION_TYPES[DATE_COL])]
    horizons = cfg.metrics.markout_horizons_s
    stand_ins = {
        "sweeps": pa.schema(keys + list(sweeps_schema(horizons))),
        "sim_orders": pa.schema([(SCENARIO, PARTITION_TYPES[SCENARIO]), *keys, *sim_orders_schema(horizons)]),
    }
    existing = set(view_names(con))
    for name, schema in stand_ins.items():
        if name not in existing:
            log.warning("the lake has no results/%s yet: its figures are empty (run `dpsim process`)", name)
            con.register(name, schema.empty_table())


def _execute(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> None:
    """Run the statement in sql/<name>.sql (creating a temp table or view) with bound parameters."""
    try:
        con.execute(sql_text(name), params)
    except duckdb.Error as exc:
        raise LakeError(f"aggregate {name}: {_first_line(exc)}") from exc


def _query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> pa.Table:
    """The result of the query in sql/<name>.sql with bound parameters; a DuckDB error names the query."""
    try:
        return con.sql(sql_text(name), params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise LakeError(f"aggregate {name}: {_first_line(exc)}") from exc


def _stats_tests(con: duckdb.DuckDBPyConnection, scenarios: list[str]) -> pa.Table:
    """Paired tests per scenario × metric × segment: moments from SQL, p-values from scipy, BH across the run."""
    rows: list[dict[str, Any]] = []
    for scenario in scenarios:
        for metric in STATS_METRICS:
            segments = _query(con, "stats_segments", {"scenario": scenario, "metric": metric})
            lists = segments["diffs"].combine_chunks()
            flat = lists.flatten().to_numpy(zero_copy_only=False)
            bounds = lists.offsets.to_numpy() - lists.offsets[0].as_py()
            for i, seg in enumerate(segments.drop_columns(["diffs"]).to_pylist()):
                test = stats.paired_t(seg["n"], seg["mean_diff"], seg["sd_diff"])
                rows.append(
                    {
                        "scenario": scenario,
                        "metric": metric,
                        **seg,
                        "t": test.t,
                        "p_value_t": test.p_value,
                        "ci_low": test.ci_low,
                        "ci_high": test.ci_high,
                        "cohens_d": test.cohens_d,
                        "p_value_wilcoxon": stats.wilcoxon_p(flat[bounds[i] : bounds[i + 1]]),
                        "note": test.note,
                    }
                )
    for p_col, q_col in (("p_value_t", "q_value_t"), ("p_value_wilcoxon", "q_value_wilcoxon")):
        for row, q in zip(rows, stats.bh_qvalues([r[p_col] for r in rows]), strict=True):
            row[q_col] = q
    return pa.Table.from_pylist(rows, schema=STATS_SCHEMA)


def _write(lake: Lake, name: str, table: pa.Table) -> None:
    """aggregates/<name>.parquet and a .csv copy, each written atomically."""
    lake.write_parquet(table, lake.aggregates_dir / f"{name}.parquet")
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    lake.write_bytes(buf.getvalue(), lake.aggregates_dir / f"{name}.csv")


def _sql_error(exc: duckdb.Error, con: duckdb.DuckDBPyConnection) -> str:
    """DuckDB's first line, plus the available views when a table is unknown."""
    first = _first_line(exc)
    if isinstance(exc, duckdb.CatalogException) and _MISSING_TABLE.search(first):
        return f"{first} (available views: {', '.join(view_names(con))})"
    if isinstance(exc, duckdb.IOException) and "No files found" in first:
        return f"{first} (was the lake moved? run `dpsim catalog --lake DIR` to rewrite the views)"
    return first


def _first_line(exc: duckdb.Error) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)

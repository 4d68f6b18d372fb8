"""Aggregations and statistics over the results: runs the named dpsim/sql/*.sql on the catalog, writes lake/aggregates.

Every query reads the catalog views (the same ones a user gets with `duckdb lake/dpsim.duckdb`), in a
session with DuckDB's memory limit and spill folder from the config. Grain and columns of each
aggregate are documented at the top of its .sql file and collected in docs/aggregates.md.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from dpsim import stats
from dpsim.catalog import connect, corrupt_file_hint, refresh_catalog, view_names
from dpsim.config import Config
from dpsim.errors import DpsimError, LakeError
from dpsim.lake import Lake, publish
from dpsim.progress import Progress, SilentProgress
from dpsim.schema import (
    DATE_COL,
    PARTITION_TYPES,
    QUALITY,
    REPLAY_FIDELITY,
    SCENARIO,
    SECURITY_CODE,
    sim_orders_schema,
    sweeps_schema,
)

log = logging.getLogger(__name__)

# Run order; each name is dpsim/sql/<name>.sql, except the two computed with Python on SQL sums:
# headline (SQL + the cluster bootstrap, see _headline) and stats_tests (SQL moments + tests, _stats_tests).
SEGMENT_AGGREGATES: tuple[str, ...] = (
    "global_summary",
    "by_security",
    "by_date",
    "by_participant",
    "by_time_of_day",
    "by_order_size",
    "by_group",
)
AGGREGATES: tuple[str, ...] = (*SEGMENT_AGGREGATES, "headline", "stats_tests", "quality_summary")
# The metrics compared by stats_tests, as named in sql/stats_segments.sql; the headline's first.
STATS_METRICS = (
    "implementation_shortfall_bps",
    "arrival_cost_bps",
    "effective_spread_bps",
    "fill_ratio",
    "vw_exec_time_s",
)
# Fewer partitions than this with a delta, and the headline's bootstrap resamples sweeps instead.
MIN_CLUSTERS = 20

F64 = pa.float64()
STATS_SCHEMA = pa.schema(
    [
        ("scenario", pa.string()),
        ("family", pa.string()),  # the Benjamini–Hochberg family: every row of one (scenario, metric)
        ("segment_type", pa.string()),
        ("segment", pa.string()),
        ("metric", pa.string()),
        ("n", pa.int64()),
        ("n_excluded", pa.int64()),
        ("n_nonzero", pa.int64()),
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

HEADLINE_SCHEMA = pa.schema(
    [
        ("scenario", pa.string()),
        ("world", pa.string()),  # plausible | bound | sensitivity (Scenario.world)
        ("n_sweeps", pa.int64()),
        ("n_with_delta", pa.int64()),
        ("notional", F64),
        ("real_is_bps", F64),
        ("sim_is_bps", F64),
        ("delta_is_bps", F64),
        ("ci_low", F64),
        ("ci_high", F64),
        ("ci_unit", pa.string()),  # partition | sweep
        ("n_clusters", pa.int64()),
        ("fill_ratio", F64),
        ("sim_fill_ratio", F64),
        ("sim_rested_fill_ratio", F64),
        ("n_partitions", pa.int64()),
        ("fidelity_min", F64),
        ("fidelity_mean", F64),
    ]
)
# What `headline` returns for printing: the columns that fit a terminal (the files hold them all).
HEADLINE_COLUMNS = (
    "scenario",
    "world",
    "n_with_delta",
    "real_is_bps",
    "sim_is_bps",
    "delta_is_bps",
    "ci_low",
    "ci_high",
    "sim_rested_fill_ratio",
    "fidelity_mean",
)
HEADLINE_TESTS = (
    "scenario",
    "metric",
    "n",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_value_t",
    "q_value_t",
    "p_value_wilcoxon",
    "q_value_wilcoxon",
)

_MISSING_TABLE = re.compile(r"Table with name .+ does not exist")


def sql_text(name: str) -> str:
    """The text of dpsim/sql/<name>.sql."""
    return resources.files("dpsim").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


def run_aggregates(cfg: Config, lake: Lake, progress: Progress | None = None) -> dict[str, pa.Table]:
    """Compute every aggregate, write aggregates/<name>.parquet and .csv, then add their views to the catalog.
    Holds the lake's "results" lock meanwhile (one writer of the results and aggregates).

    `progress` gets one task advanced after each step (catalog, the shared temp tables, each aggregate,
    the files)."""
    with lake.lock("results"):
        return _run_aggregates(cfg, lake, progress)


def _run_aggregates(cfg: Config, lake: Lake, progress: Progress | None) -> dict[str, pa.Table]:
    pruned = publish.prune_dropped_results(lake)  # results of partitions a re-shred left without orders
    if pruned:
        log.warning("removed the results of %d partition(s) that have no orders any more", len(pruned))
    steps = 2 + 3 + len(AGGREGATES) + 1
    with (progress or SilentProgress()).task("aggregate", total=steps, unit="steps") as bar:
        refresh_catalog(lake)  # results written since the last refresh may be the first of their table
        bar.advance(1, status="catalog")
        scenarios = scenarios_with_results(cfg, lake)
        con = connect(lake, cfg)
        try:
            tables = compute_aggregates(con, cfg, scenarios, lambda step: bar.advance(1, status=step))
        finally:
            con.close()
        for name, table in tables.items():
            _write(lake, name, table)
        bar.advance(1, status="files")
        refresh_catalog(lake)
        bar.advance(1, status="done")
    return tables


def compute_aggregates(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    scenarios: list[str],
    advance: Callable[[str], None] | None = None,
) -> dict[str, pa.Table]:
    """Every aggregate over the result views `con` sees, in memory (nothing written).

    `run_aggregates` calls it on the catalog; a report of a selection calls it on a session whose temp
    tables `sweeps`, `sim_orders`, … hold only the selected partitions, so the same definitions apply.
    `advance(step)` is called after each step (for progress).
    """
    done = advance or (lambda step: None)
    # Lets DuckDB stream and spill instead of buffering to keep row order; every output has an ORDER BY.
    con.execute("SET preserve_insertion_order = false")
    _stand_in_missing_results(con, cfg)
    shared: tuple[tuple[str, dict[str, object] | None], ...] = (
        ("pairs", {"scenarios": scenarios}),
        ("segment_fidelity", None),
        ("segment_measures", None),
    )
    for name, params in shared:
        _execute(con, name, params)
        done(name)
    tables: dict[str, pa.Table] = {}
    for name in SEGMENT_AGGREGATES:
        tables[name] = _query(con, name)
        done(name)
    tables["headline"] = _headline(con, cfg)
    done("headline")
    tables["stats_tests"] = _stats_tests(con, scenarios)
    done("stats_tests")
    tables["quality_summary"] = _query(con, "quality_summary")
    done("quality_summary")
    return tables


# What `dpsim sql` runs without --unsafe: queries (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE
# parse as SELECT) and EXPLAIN. COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, CALL, EXPORT and writes do not run.
_READING = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def run_sql(lake: Lake, query: str, cfg: Config | None = None, *, unsafe: bool = False) -> pa.Table:
    """Run ad hoc SQL against the lake's views; any DuckDB error becomes a one-line DpsimError.

    Safe by default: only queries run (no COPY, ATTACH, SET, writes: checked on the parsed statements), and
    nothing outside the lake can be read (`catalog.connect(safe=True)`). `unsafe` lifts both."""
    if not query.strip():
        raise DpsimError('empty SQL query: pass a statement, e.g. "SELECT * FROM global_summary"')
    con = connect(lake, cfg, safe=not unsafe)
    try:
        if not unsafe:
            _only_queries(con, query)
        rel = con.sql(query)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as exc:
        raise DpsimError(_sql_error(exc, con, lake, unsafe)) from exc
    finally:
        con.close()


def _only_queries(con: duckdb.DuckDBPyConnection, query: str) -> None:
    for statement in con.extract_statements(query):
        if statement.type not in _READING:
            kind = statement.type.name.replace("_", " ")
            raise DpsimError(
                f"{kind} statements do not run here: `dpsim sql` only reads the lake (queries and EXPLAIN); "
                "pass --unsafe to run it anyway"
            )


def csv_bytes(table: pa.Table) -> bytes:
    """A table as CSV; nested columns (lists, structs, maps) as their JSON text, which CSV cannot hold."""
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    if nested:
        con = duckdb.connect()
        try:
            con.register("result", table)
            columns = ", ".join(
                f"to_json({_ident(c)})::VARCHAR AS {_ident(c)}" if c in nested else _ident(c)
                for c in table.column_names
            )
            table = con.sql(f"SELECT {columns} FROM result").to_arrow_table()
        finally:
            con.close()
    buf = io.BytesIO()
    pacsv.write_csv(table, buf)
    return buf.getvalue()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def describe_catalog(lake: Lake) -> list[tuple[str, str, str]]:
    """(view, column, type) of every catalog view, for `dpsim sql` with no query."""
    con = connect(lake, safe=True)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = 'main' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    return [(str(v), str(c), str(t)) for v, c, t in rows]


def headline(lake: Lake) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(headline, overall IS test per scenario, quality summary), narrowed to what a terminal shows."""
    names = ("headline", "stats_tests", "quality_summary")
    paths = [lake.aggregates_dir / f"{name}.parquet" for name in names]
    for path in paths:
        if not path.exists():
            raise LakeError(f"{path}: no aggregates yet: run `dpsim aggregate --lake {lake.root}` first")
    summary = lake.read_parquet(paths[0], columns=list(HEADLINE_COLUMNS))
    tests = lake.read_parquet(
        paths[1],
        columns=list(HEADLINE_TESTS),
        filters=[("segment_type", "=", "overall"), ("metric", "=", STATS_METRICS[0])],
    )
    return summary, tests, lake.read_parquet(paths[2])


# ---- internals ----------------------------------------------------------------------------------


def scenarios_with_results(cfg: Config, lake: Lake) -> list[str]:
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
    horizons = cfg.metrics.horizons_s
    stand_ins = {
        "sweeps": pa.schema(keys + list(sweeps_schema(horizons))),
        "sim_orders": pa.schema([(SCENARIO, PARTITION_TYPES[SCENARIO]), *keys, *sim_orders_schema(horizons)]),
        "replay_fidelity": pa.schema(keys + list(REPLAY_FIDELITY)),
        "quality": pa.schema(keys + list(QUALITY)),
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
        raise LakeError(_aggregate_error(name, exc)) from exc


def _query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> pa.Table:
    """The result of the query in sql/<name>.sql with bound parameters; a DuckDB error names the query."""
    try:
        return con.sql(sql_text(name), params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise LakeError(_aggregate_error(name, exc)) from exc


def _aggregate_error(name: str, exc: duckdb.Error) -> str:
    first = _first_line(exc)
    if "No space left on device" in first:
        return f"aggregate {name}: no space left on device ({first}): free space on that disk, then rerun"
    return corrupt_file_hint(first) or f"aggregate {name}: {first}"


def _headline(con: duckdb.DuckDBPyConnection, cfg: Config) -> pa.Table:
    """headline.sql per scenario, with its world and the cluster-bootstrap 95 % CI of delta_is_bps."""
    rows = _query(con, "headline").to_pylist()
    n_partitions = max((r["n_partitions"] or 0 for r in rows), default=0)
    for row in rows:
        units = _query(con, "bootstrap_units", {"scenario": row["scenario"], "unit": "partition"})
        unit = "partition"
        if units.num_rows < MIN_CLUSTERS:
            unit = "sweep"
            units = _query(con, "bootstrap_units", {"scenario": row["scenario"], "unit": unit})
        ci = stats.cluster_bootstrap_ci(
            units["w"].to_numpy(), units["wd"].to_numpy(), cfg.stats.bootstrap_n, cfg.stats.bootstrap_seed
        )
        scenario = cfg.scenarios.get(row["scenario"])
        row.update(
            world=scenario.world if scenario is not None else None,
            ci_low=ci.low,
            ci_high=ci.high,
            ci_unit=unit,
            n_clusters=ci.n_clusters,
            n_partitions=row["n_partitions"] if row["n_partitions"] is not None else n_partitions,
        )
    return pa.Table.from_pylist(rows, schema=HEADLINE_SCHEMA)


def _stats_tests(con: duckdb.DuckDBPyConnection, scenarios: list[str]) -> pa.Table:
    """Paired tests per scenario × metric × segment: moments from SQL, p-values in numpy, BH per family.

    A family is every row of one (scenario, metric): all segment types and the overall row, both tests.
    """
    rows: list[dict[str, Any]] = []
    for scenario in scenarios:
        segments = _query(con, "stats_segments", {"scenario": scenario})
        lists = segments["diffs"].combine_chunks()
        flat = lists.flatten().to_numpy(zero_copy_only=False)
        bounds = lists.offsets.to_numpy() - lists.offsets[0].as_py()
        described = segments.drop_columns(["diffs"]).to_pylist()
        for metric in STATS_METRICS:
            family: list[dict[str, Any]] = []
            for i, seg in enumerate(described):
                if seg["metric"] != metric:
                    continue
                test = stats.paired_t(seg["n"], seg["mean_diff"], seg["sd_diff"])
                family.append(
                    {
                        "scenario": scenario,
                        "family": f"{scenario}/{metric}",
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
            p_values = [r["p_value_t"] for r in family] + [r["p_value_wilcoxon"] for r in family]
            q_values = stats.bh_qvalues(p_values)
            for r, q_t, q_w in zip(family, q_values[: len(family)], q_values[len(family) :], strict=True):
                r["q_value_t"], r["q_value_wilcoxon"] = q_t, q_w
            rows += family
    return pa.Table.from_pylist(rows, schema=STATS_SCHEMA)


def _write(lake: Lake, name: str, table: pa.Table) -> None:
    """aggregates/<name>.parquet and a .csv copy, each written atomically."""
    lake.write_parquet(table, lake.aggregates_dir / f"{name}.parquet")
    lake.write_bytes(csv_bytes(table), lake.aggregates_dir / f"{name}.csv")


def _sql_error(exc: duckdb.Error, con: duckdb.DuckDBPyConnection, lake: Lake, unsafe: bool) -> str:
    """DuckDB's first line, plus what to do: the available views when a table is unknown, how to rebuild
    a corrupt lake file, why a file outside the lake cannot be read."""
    first = _first_line(exc)
    if isinstance(exc, duckdb.CatalogException) and _MISSING_TABLE.search(first):
        return f"{first} (available views: {', '.join(view_names(con))})"
    if isinstance(exc, duckdb.PermissionException) and not unsafe:
        return (
            f"{first} (`dpsim sql` reads only inside the lake {lake.root}; pass --unsafe to read elsewhere)"
        )
    return corrupt_file_hint(first) or first


def _first_line(exc: duckdb.Error) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)

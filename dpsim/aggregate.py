"""Aggregations and statistics over the results: merges the lake's partial aggregates, writes lake/aggregates.

`dpsim.partials` keeps a partial aggregate per trading date in the lake and recomputes only the dates whose
result files changed; this module merges them with the named dpsim/sql/*.sql (sums, counts and weighted sums
add exactly; means and variances merge by Chan's formula), takes the rank statistics (Wilcoxon, medians)
from one sorted pass over the stored differences (dpsim.ranks), and adds the cluster bootstrap and the
tests. Every step runs in DuckDB under its share of the configured memory budget (the budget less the
process's size and the work outside DuckDB: catalog.duckdb_memory_limit_mb), spilling to its temp folder, so
memory does not grow with the lake. Grain and columns of each aggregate are documented at the top of its .sql file
and collected in docs/aggregates.md.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from dpsim import __version__, buffers, partials, stats
from dpsim.catalog import (
    budgeted_session,
    corrupt_file_hint,
    lake_error_text,
    refresh_catalog,
    view_names,
)
from dpsim.compaction import compact
from dpsim.config import Config
from dpsim.errors import LakeError, first_line
from dpsim.lake import Lake, publish
from dpsim.lake.migration import migrate_job_outputs
from dpsim.query import write_csv
from dpsim.ranks import LOAD_MB, RankPass, SegmentCounts, SegmentRanks, load_kernel_in_background
from dpsim.schema import empty_table

if TYPE_CHECKING:
    from dpsim.progress import Progress

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
# The merge's steps, for progress: the moments, the rank passes, segment_measures, then each aggregate.
MERGE_STEPS = 3 + len(AGGREGATES)
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
# The segment types of stats_tests and segment_measures, and each one's key column.
SEGMENT_KEYS = {
    "security": "security_code",
    "date": "date",
    "participant": "participantid",
    "time_bucket": "time_bucket",
    "size_bucket": "size_bucket",
    "group": "group",
}
# Segments with at most this many pairs get their Wilcoxon p-value from their values (exact or permutation
# methods, as scipy chooses them for n <= 50); larger ones from the normal approximation of R+.
SMALL_SEGMENT_N = 50
# Rows per batch of a rank pass (DuckDB hands over at most 122,880 at a time anyway): ~7 MB of Arrow columns
# and ~40 MB of numpy temporaries while dpsim.ranks ranks it (measured), per pass running.
STREAM_BATCH_ROWS = 1 << 17
# (scenario, metric) passes over the differences run side by side, each on its own DuckDB cursor.
RANK_WORKERS = min(2, os.cpu_count() or 1)

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


sql_text = partials.sql_text


def run_aggregates(cfg: Config, lake: Lake, progress: Progress | None = None) -> dict[str, pa.Table]:
    """Compute every aggregate, write aggregates/<name>.parquet and .csv, then add their views to the catalog.
    Holds the lake's "results" lock meanwhile (one writer of the results and aggregates).

    Incremental: only the dates whose result files changed since the last run are read again
    (aggregates/_partials holds the rest); then the results by date are brought up to date
    (dpsim.compaction) and the catalog is refreshed, once. `progress` gets one
    task, advanced after each step (the index, each date read again, each aggregate, the files, the catalog).
    """
    from dpsim.progress import SilentProgress  # rich: imported by an aggregation, not by `dpsim sql`

    with lake.lock("results"):
        migrate_job_outputs(lake)  # a lake from before one file per partition: first, so pruning sees it all
        pruned = publish.prune_dropped_results(lake)  # results of partitions a re-shred left without orders
        if pruned:
            log.warning("removed the results of %d partition(s) that have no orders any more", len(pruned))
        scenarios = scenarios_with_results(cfg, lake)
        try:
            plan = partials.plan(lake, scenarios)
        except OSError as exc:  # a result folder that cannot be listed
            raise LakeError(lake_error_text(exc, "aggregate")) from exc
        key = _merge_key(cfg, plan)
        tables = None if plan.changed else _merged_before(lake, key)
        steps = 1 + (0 if tables is not None else len(plan.dirty_days) + MERGE_STEPS + 1) + 2
        with (progress or SilentProgress()).task("aggregate", total=steps, unit="steps") as bar:
            bar.advance(1, status="index")

            def step(name: str) -> None:
                bar.advance(1, status=name)

            if tables is None:
                try:
                    tables = _aggregate(cfg, lake, plan, step)
                except LakeError as exc:
                    unreadable = _unreadable_partial(lake, exc)
                    if unreadable is None:
                        raise
                    # the partials are a cache of the results: rebuilt from them, not a reason to stop
                    log.warning(
                        "an unreadable partial aggregate (%s): every partial aggregate is recomputed from "
                        "the results",
                        unreadable,
                    )
                    lake.remove_tree(lake.partials_dir)
                    plan = partials.plan(lake, scenarios)
                    tables = _aggregate(cfg, lake, plan, step)
                lake.remove_files([lake.partials_merged_path])  # files being replaced match no key
                try:
                    _write(lake, tables)
                    lake.write_json({"key": key}, lake.partials_merged_path)
                except BaseException:
                    lake.remove_aggregates()  # a set half written would mix two aggregations; the next run rebuilds
                    raise
                step("files")
            else:
                log.info("aggregates: the results and settings they were merged from are unchanged")
            compact(lake, cfg.aggregate, listed=plan.index.listed())
            step("results by date")
            refresh_catalog(lake)
            step("catalog")
    return tables


def _unreadable_partial(lake: Lake, exc: LakeError) -> str | None:
    """DuckDB's error when the aggregation stopped at an unreadable file of aggregates/_partials (a torn
    write, a disk error): a file the next run would trust again, since its slice's results did not change."""
    cause = exc.__cause__
    if not isinstance(cause, duckdb.Error):
        return None
    text = first_line(cause)
    return text if corrupt_file_hint(text) is not None and str(lake.partials_dir) in text else None


def _merge_key(cfg: Config, plan: partials.Plan) -> str:
    """What the merge reads: every slice's fingerprint, the scenarios, the settings and dpsim's version."""
    return partials.digest(
        __version__,
        plan.scenarios,
        sorted((s, d.isoformat(), fp) for (s, d), fp in plan.scen_fp.items()),
        sorted((d.isoformat(), fp) for d, fp in plan.free_fp.items()),
        cfg.aggregation_settings(),
    )


def _merged_before(lake: Lake, key: str) -> dict[str, pa.Table] | None:
    """The aggregate files, when the last merge had this key and every file is there (nothing to merge)."""
    try:
        state = lake.read_json(lake.partials_merged_path)
    except (OSError, ValueError):
        return None
    paths = {name: lake.aggregates_dir / f"{name}.parquet" for name in AGGREGATES}
    if not isinstance(state, dict) or state.get("key") != key or not all(p.exists() for p in paths.values()):
        return None
    tables = {}
    for name, path in paths.items():
        try:
            tables[name] = lake.read_parquet(path)
        # a torn or damaged file: merged again, every file rewritten
        except (OSError, pa.ArrowInvalid) as exc:
            log.warning("%s: unreadable (%s); the aggregates are merged again", path, first_line(exc))
            return None
    return tables


def _aggregate(
    cfg: Config, lake: Lake, plan: partials.Plan, step: Callable[[str], None]
) -> dict[str, pa.Table]:
    """The partials brought up to date, then merged, in one DuckDB session under the memory limit."""
    loading_mb = 0 if "numba" in sys.modules else LOAD_MB  # a process that replayed has numba in its size
    # every output has an ORDER BY
    con = budgeted_session(lake, cfg.aggregate, keep_order=False, loading_mb=loading_mb)
    loader = load_kernel_in_background()  # the rank passes' loop loads while DuckDB computes the partials
    try:
        sources = partials.update(con, lake, cfg, plan, step)
        return _merge(con, cfg, list(plan.scenarios), sources, step)
    except duckdb.Error as exc:  # the named steps say which aggregate; the partials' steps say this
        raise LakeError(lake_error_text(exc, "aggregate partial aggregates")) from exc
    except OSError as exc:  # reading the results, writing the partials
        raise LakeError(lake_error_text(exc, "aggregate")) from exc
    finally:
        con.close()
        lake.tidy_scratch()
        loader.join()  # done by now on success; an error must not exit while numba loads


def compute_aggregates(
    con: duckdb.DuckDBPyConnection, cfg: Config, scenarios: list[str]
) -> dict[str, pa.Table]:
    """Every aggregate over the result views `con` sees, in memory (nothing written, no partials kept).

    A report of a selection calls it on a session whose temp tables `sweeps`, `sim_orders`, … hold only the
    selected partitions, so the same definitions apply.
    """
    con.execute("SET preserve_insertion_order = false")
    _stand_in_missing_results(con, cfg)
    return _merge(con, cfg, scenarios, partials.in_session(con, scenarios))


def headline(lake: Lake) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(headline, overall IS test per scenario, quality summary), narrowed to what a terminal shows."""
    names = ("headline", "stats_tests", "quality_summary")
    paths = [lake.aggregates_dir / f"{name}.parquet" for name in names]
    for path in paths:
        if not path.exists():
            raise LakeError(f"{path}: no aggregates yet: run `dpsim aggregate --lake {lake.root}` first")
    summary = lake.read_parquet(paths[0], columns=list(HEADLINE_COLUMNS))
    every = lake.read_parquet(
        paths[1], columns=list(dict.fromkeys([*HEADLINE_TESTS, "segment_type", "metric"]))
    )
    overall = [
        t == "overall" and m == STATS_METRICS[0]
        for t, m in zip(every["segment_type"].to_pylist(), every["metric"].to_pylist(), strict=True)
    ]
    tests = every.filter(buffers.from_values(overall, pa.bool_())).select(list(HEADLINE_TESTS))
    return summary, tests, lake.read_parquet(paths[2])


# ---- internals ----------------------------------------------------------------------------------


def scenarios_with_results(cfg: Config, lake: Lake) -> list[str]:
    """Configured scenarios that have results; the others are reported, and stale folders are not read."""
    present = set(lake.scenarios())
    missing = [s for s in cfg.scenarios if s not in present]
    if missing:
        log.warning(
            "no results/sim_orders for scenario(s) %s: run `dpsim process` to include them",
            ", ".join(missing),
        )
    return [s for s in cfg.scenarios if s in present]


def _stand_in_missing_results(con: duckdb.DuckDBPyConnection, cfg: Config) -> None:
    """Empty typed stand-ins for result tables with no files yet, so every aggregate exists (with no rows)."""
    existing = set(view_names(con))
    for name, arrow_schema in partials.stand_in_schemas(cfg).items():
        if name not in existing:
            log.warning("the lake has no results/%s yet: its figures are empty (run `dpsim process`)", name)
            con.register(name, empty_table(arrow_schema))


def _execute(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> None:
    """Run the statement in sql/<name>.sql (creating a temp table or view) with bound parameters."""
    try:
        con.execute(sql_text(name), params)
    except duckdb.Error as exc:
        raise LakeError(lake_error_text(exc, f"aggregate {name}")) from exc


def _query(con: duckdb.DuckDBPyConnection, name: str, params: dict[str, object] | None = None) -> pa.Table:
    """The result of the query in sql/<name>.sql with bound parameters; a DuckDB error names the query."""
    try:
        return con.sql(sql_text(name), params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise LakeError(lake_error_text(exc, f"aggregate {name}")) from exc


def _merge(
    con: duckdb.DuckDBPyConnection,
    cfg: Config,
    scenarios: list[str],
    sources: partials.Sources,
    step: Callable[[str], None] = lambda name: None,
) -> dict[str, pa.Table]:
    """Every aggregate from the partial rows the session's relations (partials.ROWS) and streams hold;
    `step(name)` after each of its MERGE_STEPS steps."""
    moments = _query(con, "stats_moments", {"scenarios": scenarios, "metrics": list(STATS_METRICS)})
    step("stats_moments")
    ranked = _rank_statistics(con, moments, scenarios, sources)
    step("ranks")
    con.register("segment_ranks", ranked)
    _execute(con, "segment_measures")
    step("segment_measures")
    tables = {}
    for name in SEGMENT_AGGREGATES:
        tables[name] = _query(con, name)
        step(name)
    tables["headline"] = _headline(con, cfg, sources)
    step("headline")
    tables["stats_tests"] = _stats_tests(ranked)
    step("stats_tests")
    tables["quality_summary"] = _query(con, "quality_summary")
    step("quality_summary")
    return tables


def _rank_statistics(
    con: duckdb.DuckDBPyConnection, moments: pa.Table, scenarios: list[str], sources: partials.Sources
) -> pa.Table:
    """`moments` plus, per row, the rank statistics of its segment from one sorted pass per scenario and
    metric: r_plus and tie_sum (the Wilcoxon test of large segments), median (of d), and the differences
    of small segments (their exact or permutation test)."""
    n_rows = moments.num_rows
    r_plus = np.full(n_rows, np.nan)
    tie_sum = np.full(n_rows, np.nan)
    median: list[float | None] = [None] * n_rows
    small: list[list[float] | None] = [None] * n_rows
    scenario_col = np.asarray(moments["scenario"].to_pylist(), dtype=object)
    metric_col = np.asarray(moments["metric"].to_pylist(), dtype=object)
    type_col = np.asarray(moments["segment_type"].to_pylist(), dtype=object)
    n = buffers.to_numpy(moments["n"])
    n_negative = buffers.to_numpy(moments["n_negative"])
    n_nonzero = buffers.to_numpy(moments["n_nonzero"])
    tasks = []
    for scenario in scenarios:
        for metric in STATS_METRICS:
            rows = {
                t: np.flatnonzero((scenario_col == scenario) & (metric_col == metric) & (type_col == t))
                for t in ("overall", *SEGMENT_KEYS)
            }
            if any(r.size for r in rows.values()):
                tasks.append((scenario, metric, rows))

    def one(task: tuple[str, str, dict[str, np.ndarray]]) -> dict[str, SegmentRanks]:
        scenario, metric, rows = task
        counts = {t: SegmentCounts(n[r], n_negative[r], n_nonzero[r]) for t, r in rows.items()}
        rank_pass = RankPass(counts, small_n=SMALL_SEGMENT_N)
        if sources.stream_files.get(scenario) or sources.stream_table:
            keys = {
                t: moments[SEGMENT_KEYS[t]].take(buffers.from_numpy(r, pa.int64()))
                for t, r in rows.items()
                if t in SEGMENT_KEYS
            }
            cur = con.cursor()
            try:
                _feed(cur, rank_pass, sources, scenario, metric, keys)
            finally:
                cur.close()
        return rank_pass.finish()

    # Passes side by side: while one waits for DuckDB's sort, another ranks a batch in numpy.
    workers = max(1, min(RANK_WORKERS, len(tasks)))
    with ThreadPoolExecutor(workers) as pool:
        for (scenario, metric, rows), results in zip(tasks, pool.map(one, tasks), strict=True):
            for t, result in results.items():
                r = rows[t]
                if not np.array_equal(result.seen, n_nonzero[r]):
                    raise LakeError(
                        f"aggregate: the stored differences of {scenario}/{metric} do not match the moments; "
                        "delete aggregates/_partials and run `dpsim aggregate` again"
                    )
                r_plus[r] = result.r_plus
                tie_sum[r] = result.tie_sum
                for j, i in enumerate(r):
                    median[i] = None if n[i] == 0 else float(result.median[j])
                    if 0 < n[i] <= SMALL_SEGMENT_N:
                        values = result.small_values.get(j, np.empty(0))
                        small[i] = [float(v) for v in values] + [0.0] * int(n[i] - n_nonzero[i])
    return (
        moments.append_column("r_plus", buffers.from_numpy(r_plus, pa.float64()))
        .append_column("tie_sum", buffers.from_numpy(tie_sum, pa.float64()))
        .append_column("median", buffers.from_values(median, pa.float64()))
        .append_column("small_diffs", buffers.from_values(small, pa.list_(pa.float64())))
    )


def _feed(
    con: duckdb.DuckDBPyConnection,
    rank_pass: RankPass,
    sources: partials.Sources,
    scenario: str,
    metric: str,
    keys: dict[str, pa.Array],
) -> None:
    """Stream the scenario's non-zero differences of `metric` in ascending |d| into the rank pass, batch by
    batch, each sweep's segment keys turned into the segment's index among the moments' rows."""
    import pyarrow.compute as pc  # not on `dpsim sql`'s path

    try:
        params: dict[str, object] = {"scenario": scenario, "metric": metric}
        if sources.stream_table:
            source = sources.stream_table
        else:
            source, params["files"] = "read_parquet($files::VARCHAR[])", sources.stream_files[scenario]
        text = sql_text("stats_stream").format(source=source)
        reader = con.sql(text, params=params).to_arrow_reader(STREAM_BATCH_ROWS)
        for batch in reader:
            ids = {"overall": np.zeros(batch.num_rows, dtype=np.int64)}
            for t, values in keys.items():
                column = batch.column(SEGMENT_KEYS[t])
                index = pc.index_in(column, value_set=values.cast(column.type), skip_nulls=False)
                if index.null_count:
                    raise LakeError(
                        f"aggregate: a {t} of {scenario}/{metric} in the stored differences has no moments"
                    )
                ids[t] = buffers.to_numpy(index)
            rank_pass.add(
                buffers.to_numpy(batch.column("a")),
                buffers.to_numpy(batch.column("negative")),
                ids,
            )
    except duckdb.Error as exc:
        raise LakeError(lake_error_text(exc, "aggregate stats_stream")) from exc


def _headline(con: duckdb.DuckDBPyConnection, cfg: Config, sources: partials.Sources) -> pa.Table:
    """headline.sql per scenario, with its world and the cluster-bootstrap 95 % CI of delta_is_bps."""
    rows = _query(con, "headline").to_pylist()
    n_partitions = max((r["n_partitions"] or 0 for r in rows), default=0)
    units = {r["scenario"]: _query(con, "bootstrap_clusters", {"scenario": r["scenario"]}) for r in rows}
    few = [s for s, u in units.items() if u.num_rows < MIN_CLUSTERS]
    units.update(_sweep_units(con, cfg, sources, few))
    cis = stats.cluster_bootstrap_cis(
        [
            (buffers.to_numpy(units[r["scenario"]]["w"]), buffers.to_numpy(units[r["scenario"]]["wd"]))
            for r in rows
        ],
        cfg.stats.bootstrap_n,
        cfg.stats.bootstrap_seed,
    )
    for row, ci in zip(rows, cis, strict=True):
        scenario = cfg.scenarios.get(row["scenario"])
        row.update(
            world=scenario.world if scenario is not None else None,
            ci_low=ci.low,
            ci_high=ci.high,
            ci_unit="sweep" if row["scenario"] in few else "partition",
            n_clusters=ci.n_clusters,
            n_partitions=row["n_partitions"] if row["n_partitions"] is not None else n_partitions,
        )
    return buffers.table(rows, HEADLINE_SCHEMA)


def _sweep_units(
    con: duckdb.DuckDBPyConnection, cfg: Config, sources: partials.Sources, scenarios: Sequence[str]
) -> dict[str, pa.Table]:
    """The bootstrap's clusters of the scenarios whose deltas lie in fewer than MIN_CLUSTERS partitions: the
    sweeps themselves, read from those few partitions' results (bootstrap_units.sql over their pairs), loaded
    once for all of them (a date where a scenario has no delta adds none of its rows)."""
    if not scenarios:
        return {}
    if sources.index is not None:  # incremental: the pairs of the clusters' dates only
        days = con.sql(
            "SELECT DISTINCT slice_date FROM cluster_rows WHERE list_contains($s, scenario) ORDER BY 1",
            params={"s": list(scenarios)},
        ).fetchall()
        sources.index.load(con, cfg, [d for (d,) in days], scenarios)
        partials.compute_pairs(con, scenarios)
    return {s: _query(con, "bootstrap_units", {"scenario": s, "unit": "sweep"}) for s in scenarios}


def _stats_tests(ranked: pa.Table) -> pa.Table:
    """Paired tests per scenario × metric × segment from the merged moments and the rank statistics, with
    Benjamini–Hochberg q-values per family (every row of one (scenario, metric): all segments, both tests)."""
    rows = ranked.to_pylist()
    tests = stats.paired_t_many(
        [r["n"] for r in rows], [r["mean_diff"] for r in rows], [r["sd_diff"] for r in rows]
    )
    out: list[dict[str, Any]] = []
    for r, test in zip(rows, tests, strict=True):
        out.append(
            {
                "scenario": r["scenario"],
                "family": f"{r['scenario']}/{r['metric']}",
                "segment_type": r["segment_type"],
                "segment": r["segment"],
                "metric": r["metric"],
                "n": r["n"],
                "n_excluded": r["n_excluded"],
                "n_nonzero": r["n_nonzero"],
                "mean_real": r["mean_real"],
                "mean_sim": r["mean_sim"],
                "mean_diff": r["mean_diff"],
                "sd_diff": r["sd_diff"],
                "t": test.t,
                "p_value_t": test.p_value,
                "ci_low": test.ci_low,
                "ci_high": test.ci_high,
                "cohens_d": test.cohens_d,
                "p_value_wilcoxon": _wilcoxon(r),
                "note": test.note,
            }
        )
    start = 0
    while start < len(out):  # rows arrive sorted by scenario and metric: each family is one run of rows
        end = start
        while end < len(out) and out[end]["family"] == out[start]["family"]:
            end += 1
        family = out[start:end]
        p_values = [r["p_value_t"] for r in family] + [r["p_value_wilcoxon"] for r in family]
        q_values = stats.bh_qvalues(p_values)
        for r, q_t, q_w in zip(family, q_values[: len(family)], q_values[len(family) :], strict=True):
            r["q_value_t"], r["q_value_wilcoxon"] = q_t, q_w
        start = end
    return buffers.table(out, STATS_SCHEMA)


def _wilcoxon(row: dict[str, Any]) -> float | None:
    """The segment's Wilcoxon signed-rank p-value, with scipy's method choice (dpsim.stats.wilcoxon_p)."""
    if row["small_diffs"] is not None:
        return stats.wilcoxon_p(row["small_diffs"])
    n, nonzero = row["n"], row["n_nonzero"]
    if n < 2 or nonzero == 0:
        return None
    if row["n_nan"]:
        return float("nan")  # scipy's nan_policy='propagate'
    return stats.wilcoxon_normal_p(nonzero, row["r_plus"], row["tie_sum"])


def _write(lake: Lake, tables: dict[str, pa.Table]) -> None:
    """aggregates/<name>.parquet and a .csv copy of each table, each written atomically; the CSV by DuckDB's
    writer, as `dpsim sql --format csv` writes it."""
    scratch = lake.own_dir("aggregates")
    scratch.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for name, table in tables.items():
            lake.write_parquet(table, lake.aggregates_dir / f"{name}.parquet")
            local = scratch / f"{name}.csv"
            write_csv(con.from_arrow(table), local)
            lake.put(local, lake.aggregates_dir / f"{name}.csv")
    finally:
        con.close()

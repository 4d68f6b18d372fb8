"""The body of one partition job: load its own files by path, run the steps, collect, write the results.

This is the edge where lazy frames are collected and written; the steps themselves stay pure.
A job opens only the files of its partition (the lake module lists them by path, no hive glob),
so its memory is bounded by the partition, not the lake.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from dpsim import schema
from dpsim.config import Config
from dpsim.lake import Lake, PartitionKey


@dataclass(frozen=True)
class JobCounts:
    rows_in: int
    rows_out: int
    sweeps: int


def load_table(lake: Lake, kind: str, key: PartitionKey) -> pl.LazyFrame:
    """The partition's rows of one raw table, typed by the canonical lake schema (empty if absent)."""
    raw = schema.PARTITIONED_KINDS[kind]
    files = lake.partition_files(kind, key)
    pschema = schema.polars_schema(raw.lake_schema)
    if not files:
        return pl.LazyFrame(schema=pschema)
    return pl.scan_parquet([str(f) for f in files], schema=pschema, hive_partitioning=False)


def process_partition(lake: Lake, key: PartitionKey, cfg: Config, scenarios: tuple[str, ...]) -> JobCounts:
    """Compute and write results/sweeps and, per scenario, results/sim_fills and results/sim_orders."""
    from dpsim.steps.compare import compare
    from dpsim.steps.pipeline import build
    from dpsim.steps.simulate import simulate

    orders, trades, nbbo = (load_table(lake, k, key) for k in ("orders", "trades", "nbbo"))
    # Row counts come from Parquet metadata; the NBBO count also decides feed vs snapshot quotes.
    n_orders, n_trades, n_nbbo = (
        c.item() for c in pl.collect_all([f.select(pl.len()) for f in (orders, trades, nbbo)])
    )
    frames = build(orders, trades, nbbo, cfg, has_feed=n_nbbo > 0)
    quotes, cp_orders, sweeps = pl.collect_all([frames.quotes, frames.cp_orders, frames.sweeps])
    rows_in = n_orders + n_trades + n_nbbo
    horizons = cfg.metrics.markout_horizons_s
    lake.clear_partition_results(key, scenarios)
    lake.write_parquet(_as_arrow(sweeps, schema.sweeps_schema(horizons)), lake.result_path("sweeps", key))
    rows_out = sweeps.height
    for name in scenarios:
        sim_fills, rested = simulate(cp_orders, sweeps, cfg.scenarios[name])
        sim_orders = compare(sweeps, sim_fills, rested, quotes, cfg).collect()
        lake.write_parquet(_as_arrow(sim_fills, schema.SIM_FILLS), lake.result_path("sim_fills", key, name))
        lake.write_parquet(
            _as_arrow(sim_orders, schema.sim_orders_schema(horizons)),
            lake.result_path("sim_orders", key, name),
        )
        rows_out += sim_fills.height + sim_orders.height
    return JobCounts(rows_in=rows_in, rows_out=rows_out, sweeps=sweeps.height)


def _as_arrow(df: pl.DataFrame, target: pa.Schema) -> pa.Table:
    """Exactly the declared result columns and types (a step adding a column never changes the files)."""
    return df.select(target.names).to_arrow().cast(target)

"""The body of one partition job: load its own files by path, run the steps, collect, write the results.

This is the edge where lazy frames are collected and written; the steps themselves stay pure.
A job opens only the files of its partition (the lake module lists them by path, no hive glob),
so its memory is bounded by the partition, not the lake. `compute_partition` is the same computation
on frames in memory, for tests and notebooks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from dpsim import buffers, schema
from dpsim.config import Config, Scenario
from dpsim.errors import InputError
from dpsim.lake import Lake, PartitionKey
from dpsim.steps import ENGINE, UNSHARED
from dpsim.steps.compare import compare
from dpsim.steps.fidelity import miss_causes, replay_fidelity
from dpsim.steps.matching import MatchParams, ReplayBook, load_kernel_in_background
from dpsim.steps.pipeline import build
from dpsim.steps.replay import replay_base, rested, run_replay, run_replays, sweep_fills
from dpsim.steps.replay import replay_books as build_books
from dpsim.steps.session import Session, check_dealsources, classified_trades, session_bounds

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobCounts:
    rows_in: int
    rows_out: int
    sweeps: int


@dataclass(frozen=True)
class PartitionResults:
    """Every result table of one partition (no hive keys), as DataFrames. The scenario tables hold every
    scenario, with a `scenario` column, each scenario's rows together (`sim_fills` and `sim_orders` split
    them): a job casts and converts each table once, not once per scenario."""

    sweeps: pl.DataFrame
    quality: pl.DataFrame
    replay_fidelity: pl.DataFrame
    scenarios: tuple[str, ...] = ()
    scenario_fills: pl.DataFrame = field(default_factory=pl.DataFrame)
    scenario_orders: pl.DataFrame = field(default_factory=pl.DataFrame)

    @cached_property
    def sim_fills(self) -> dict[str, pl.DataFrame]:
        return _split(self.scenario_fills, self.scenarios)

    @cached_property
    def sim_orders(self) -> dict[str, pl.DataFrame]:
        return _split(self.scenario_orders, self.scenarios)

    @property
    def rows(self) -> int:
        tables = [self.sweeps, self.quality, self.replay_fidelity, self.scenario_fills, self.scenario_orders]
        return sum(t.height for t in tables)


def _split(frame: pl.DataFrame, scenarios: Sequence[str]) -> dict[str, pl.DataFrame]:
    return {name: frame.filter(pl.col(schema.SCENARIO) == name).drop(schema.SCENARIO) for name in scenarios}


def load_table(lake: Lake, kind: str, key: PartitionKey, names: Sequence[str] | None = None) -> pl.LazyFrame:
    """The partition's rows of one raw table, typed by the canonical lake schema (empty if absent): from
    the files `names` (a planned job's inputs: one that is gone fails the job), else the files there now."""
    raw = schema.PARTITIONED_KINDS[kind]
    if names is None:
        files = lake.partition_files(kind, key)
    else:
        files = [lake.partition_dir(kind, key) / name for name in names]
        gone = [f for f in files if not f.exists()]
        if gone:
            raise InputError(
                f"{gone[0]}: an input of partition {key} is gone since the run was planned (removed or "
                "rewritten by a shred meanwhile?); rerun the command when the shred is done"
            )
    pschema = schema.polars_schema(raw.lake_schema)
    if not files:
        return pl.LazyFrame(schema=pschema)
    # explicit paths, not patterns: a lake path may hold glob characters
    return pl.scan_parquet([str(f) for f in files], schema=pschema, hive_partitioning=False, glob=False)


@dataclass(frozen=True)
class _Measured:
    """A partition's measurement, the input of every replay."""

    trades: pl.DataFrame
    session: Session
    quotes: pl.DataFrame
    cp_orders: pl.DataFrame
    sweeps: pl.DataFrame
    quality: pl.DataFrame
    base: pl.DataFrame


def _measure(
    orders: pl.LazyFrame,
    trades: pl.LazyFrame,
    nbbo: pl.LazyFrame,
    cfg: Config,
    trading_date: date,
    source: str,
) -> _Measured:
    trades_df = classified_trades(trades, cfg.codes).collect(engine=ENGINE)
    check_dealsources(trades_df, source)
    session = session_bounds(trades_df, trading_date, cfg.time)
    has_feed = nbbo.select(pl.len()).collect(engine=ENGINE).item() > 0
    frames = build(orders, trades_df.lazy(), nbbo, session, cfg, has_feed)
    quotes, cp, sweeps, quality = pl.collect_all(
        [frames.usable_quotes, frames.cp_orders, frames.sweeps, frames.quality], engine=ENGINE
    )
    return _Measured(trades_df, session, quotes, cp, sweeps, quality, replay_base(cp, session, cfg.codes))


def compute_partition(
    orders: pl.LazyFrame,
    trades: pl.LazyFrame,
    nbbo: pl.LazyFrame,
    cfg: Config,
    trading_date: date,
    scenarios: Sequence[str] | None = None,
    source: str = "partition",
) -> PartitionResults:
    """Every result table of one partition: measurement, the reality replay and one replay per scenario.

    `source` names the partition in input errors (an unknown dealsource)."""
    m = _measure(orders, trades, nbbo, cfg, trading_date, source)
    names = tuple(scenarios if scenarios is not None else cfg.scenarios)
    runs = [(Scenario(), False), *((cfg.scenarios[name], True) for name in names)]
    reality, *replays = run_replays(m.base, runs, m.session, cfg.replay, m.quotes)
    fidelity = replay_fidelity(
        reality, m.trades, m.cp_orders[schema.ORDER_ID], cfg.codes.centre_point_dealsource
    )
    sweeps = m.sweeps.filter(_reported(cfg))
    if not names:
        return PartitionResults(sweeps=sweeps, quality=m.quality, replay_fidelity=fidelity)
    by_name = dict(zip(names, replays, strict=True))
    fills = sweep_fills(by_name)
    sim_orders = compare(
        m.sweeps.lazy(),
        m.trades.lazy(),
        fills.lazy(),
        rested(by_name, m.base, m.session.close),
        m.quotes.lazy(),
        m.session,
        cfg.metrics.horizons_s,
        cfg.time.max_quote_age_s,
    )
    kept = sweeps[schema.ORDER_ID].implode()
    return PartitionResults(
        sweeps=sweeps,
        quality=m.quality,
        replay_fidelity=fidelity,
        scenarios=names,
        scenario_fills=fills.filter(pl.col(schema.SWEEP_ORDER_ID).is_in(kept)),
        scenario_orders=sim_orders.collect(engine=ENGINE, optimizations=UNSHARED).filter(
            pl.col(schema.ORDER_ID).is_in(kept)
        ),
    )


def explain_fidelity(
    orders: pl.LazyFrame, trades: pl.LazyFrame, nbbo: pl.LazyFrame, cfg: Config, trading_date: date
) -> pl.DataFrame:
    """The real CP pairs of one partition that the reality replay misses, each with its cause
    (`steps.fidelity.miss_causes`)."""
    m = _measure(orders, trades, nbbo, cfg, trading_date, "partition")
    reality = run_replay(m.base, Scenario(), m.session, cfg.replay, m.quotes, sweeps_rest=False)
    return miss_causes(
        reality, m.trades, m.quotes, m.cp_orders[schema.ORDER_ID], cfg.codes.centre_point_dealsource
    )


def replay_books(
    orders: pl.LazyFrame, trades: pl.LazyFrame, nbbo: pl.LazyFrame, cfg: Config, trading_date: date
) -> dict[str, tuple[ReplayBook, MatchParams]]:
    """The replay kernel's input per scenario (and `reality`), for benchmarks of the kernel alone."""
    m = _measure(orders, trades, nbbo, cfg, trading_date, "partition")
    runs = [(Scenario(), False), *((scenario, True) for scenario in cfg.scenarios.values())]
    books = build_books(m.base, runs, m.session, cfg.replay, m.quotes)
    return dict(zip(["reality", *cfg.scenarios], books, strict=True))


def lake_fidelity_misses(lake: Lake, cfg: Config, keys: Sequence[PartitionKey]) -> pl.DataFrame:
    """`explain_fidelity` for partitions of the lake, with their security_code and date in front."""
    frames = []
    for key in keys:
        orders, trades, nbbo = (load_table(lake, k, key) for k in ("orders", "trades", "nbbo"))
        misses = explain_fidelity(orders, trades, nbbo, cfg, key.date)
        frames.append(
            misses.select(
                pl.lit(key.security_code).alias(schema.SECURITY_CODE),
                pl.lit(key.date).alias(schema.DATE_COL),
                pl.all(),
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame()


def _reported(cfg: Config) -> pl.Expr:
    """The participant filter: which analysed sweeps are reported (the replay always uses them all)."""
    if not cfg.filters.participants:
        return pl.lit(True)
    return pl.col(schema.PARTICIPANT).is_in(list(cfg.filters.participants))


def process_partition(
    lake: Lake,
    key: PartitionKey,
    cfg: Config,
    scenarios: tuple[str, ...],
    inputs: Mapping[str, Sequence[str]] | None = None,
) -> JobCounts:
    """Compute every result table of one partition and publish them together (`Lake.publish_results`).

    `inputs`: the raw file names per table that the run planned (and fingerprinted); a partition with no
    orders file to read fails, rather than recording empty results."""
    if inputs is not None and not inputs.get("orders"):
        raise InputError(f"partition {key}: no orders file to read; rerun `dpsim shred`, then this command")
    loader = load_kernel_in_background()  # overlaps the reads and the measurement below
    # read once into memory: the measurement plan scans its inputs from several branches, and a scan of
    # files costs far more per branch than one of frames (the partition bounds the memory either way)
    orders, trades, nbbo = pl.collect_all(
        [
            load_table(lake, k, key, None if inputs is None else inputs.get(k, ()))
            for k in ("orders", "trades", "nbbo")
        ],
        engine=ENGINE,
    )
    rows_in = orders.height + trades.height + nbbo.height
    res = compute_partition(
        orders.lazy(), trades.lazy(), nbbo.lazy(), cfg, key.date, scenarios, source=f"partition {key}"
    )
    horizons = cfg.metrics.horizons_s
    tables = {
        lake.result_path("sweeps", key): _as_arrow(res.sweeps, schema.sweeps_schema(horizons)),
        lake.result_path("quality", key): _as_arrow(res.quality, schema.QUALITY),
        lake.result_path("replay_fidelity", key): _as_arrow(res.replay_fidelity, schema.REPLAY_FIDELITY),
    }
    if scenarios:
        for table, frame, target in (
            ("sim_fills", res.scenario_fills, schema.SIM_FILLS),
            ("sim_orders", res.scenario_orders, schema.sim_orders_schema(horizons)),
        ):
            path = lake.result_path(table, key)
            tables[path] = _with_other_scenarios(
                lake, path, _as_arrow(frame, _scenario_table(target)), scenarios
            )
        lake.note_scenarios(scenarios)
    lake.publish_results(tables)
    loader.join()  # done by now (a partition without replays waits for it): never cut off by an exit
    return JobCounts(rows_in=rows_in, rows_out=res.rows, sweeps=res.sweeps.height)


def _scenario_table(target: pa.Schema) -> pa.Schema:
    """A scenario table's file: every scenario of the partition, the `scenario` column first."""
    return pa.schema([pa.field(schema.SCENARIO, schema.PARTITION_TYPES[schema.SCENARIO]), *target])


def _with_other_scenarios(lake: Lake, path: UPath, table: pa.Table, scenarios: Sequence[str]) -> pa.Table:
    """The job's rows plus those of the scenarios it did not run that the partition's file holds (a run of
    some scenarios keeps the others' results, as when each scenario had a file of its own)."""
    if not path.exists():
        return table
    try:
        have = lake.read_parquet(path, [schema.SCENARIO]).column(0)
        others = pc.invert(pc.is_in(have, value_set=buffers.from_values(list(scenarios), pa.string())))
        if not pc.any(others).as_py():
            return table
        kept = lake.read_parquet(path).filter(others)
    except (OSError, KeyError, pa.ArrowException) as exc:  # corrupt, or without scenarios: it is replaced
        log.warning("%s: unreadable (%s); replaced by this job's scenarios only", path, exc)
        return table
    columns = [
        kept.column(f.name).cast(f.type) if f.name in kept.column_names else pa.nulls(kept.num_rows, f.type)
        for f in table.schema
    ]
    return pa.concat_tables([table, pa.Table.from_arrays(columns, schema=table.schema)])


def _as_arrow(df: pl.DataFrame, target: pa.Schema) -> pa.Table:
    """Exactly the declared result columns and types (a step adding a column never changes the files)."""
    return df.select(target.names).to_arrow().cast(target)

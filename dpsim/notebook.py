"""The notebook API: `dpsim.open_lake(path)` gives a lake's results as Polars frames, lazily.

Result tables come back as LazyFrames over the lake's Parquet files (`pl.scan_parquet` with the hive
keys): a filter on `date` prunes whole files (one per date), filters on `scenario`, `security_code` and
the sweep's order id reach the row groups of the sorted files by their statistics (raw tables: on
`security_code` and `date`, whole folders): nothing is read until `.collect()`. Aggregates, runs and SQL answers are small
and come back eager. Local and object-store lakes alike: an `s3://` lake is read at its URLs, with
credentials from the standard environment (README, "A lake in an object store").
"""

from __future__ import annotations

from typing import Any

import polars as pl

from dpsim.errors import LakeError
from dpsim.lake import RESULT_TABLES, SCENARIO_TABLES, Lake

_HIVE = {"security_code": pl.Int64, "date": pl.Date}


class OpenLake:
    """A lake's results for a notebook (`dpsim.open_lake`)."""

    def __init__(self, root: str | Any) -> None:
        self.lake = Lake(root)
        self.lake.check_reachable()
        if self.lake.is_local and not self.lake.root.is_dir():
            raise LakeError(f"{self.lake.root}: no such lake folder (run `dpsim shred` and `dpsim process`)")

    def __repr__(self) -> str:
        return f"OpenLake({str(self.lake.root)!r})"

    # ---- result tables (lazy) --------------------------------------------------------------------
    def sweeps(self) -> pl.LazyFrame:
        """results/sweeps: one row per analysed sweep (docs/results.md)."""
        return self._scan("sweeps")

    def sim_orders(self, scenario: str | None = None) -> pl.LazyFrame:
        """results/sim_orders of one scenario (None: every scenario, with a `scenario` column)."""
        return self._scan("sim_orders", scenario)

    def sim_fills(self, scenario: str | None = None) -> pl.LazyFrame:
        """results/sim_fills of one scenario (None: every scenario, with a `scenario` column)."""
        return self._scan("sim_fills", scenario)

    def quality(self) -> pl.LazyFrame:
        """results/quality: one row per partition."""
        return self._scan("quality")

    def replay_fidelity(self) -> pl.LazyFrame:
        """results/replay_fidelity: one row per partition."""
        return self._scan("replay_fidelity")

    def table(self, name: str) -> pl.LazyFrame:
        """A raw table (orders, trades, nbbo) or a result table, by name."""
        return self._scan(name)

    # ---- small answers (eager) -------------------------------------------------------------------
    def aggregate(self, name: str) -> pl.DataFrame:
        """aggregates/<name>.parquet (docs/aggregates.md): headline, global_summary, by_*, stats_tests, …"""
        path = self.lake.aggregates_dir / f"{name}.parquet"
        if not path.exists():
            from dpsim.aggregate import AGGREGATES  # only for this message: the aggregation imports numpy

            known = ", ".join(AGGREGATES)
            raise LakeError(
                f"{path}: no such aggregate (known: {known}); run `dpsim aggregate --lake {self.lake.root}`"
            )
        return pl.from_arrow(self.lake.read_parquet(path))  # type: ignore[return-value]

    def runs(self) -> pl.DataFrame:
        """One row per `dpsim process` run (lake/_runs), latest first; `jobs` holds its job records."""
        return self.sql("SELECT * FROM runs ORDER BY started DESC")

    def sql(self, query: str) -> pl.DataFrame:
        """Any SQL on the lake's DuckDB catalog (the views of `dpsim sql`)."""
        from dpsim.query import run_sql  # DuckDB imported on use: the frames above are Polars' alone

        return pl.from_arrow(run_sql(self.lake, query))  # type: ignore[return-value]

    # ---- internals -------------------------------------------------------------------------------
    def _scan(self, table: str, scenario: str | None = None) -> pl.LazyFrame:
        """A raw table from its partition folders; a result table from its by-date files (dpsim.compaction),
        with the columns in the catalog's order (scenario, security_code, date first)."""
        if table in RESULT_TABLES:  # scenario and security_code in the files, the date in the folder
            base = self.lake.by_date_dir(table)
            keys: dict[str, Any] = {"date": pl.Date}
            glob = self.lake.by_date_glob(table)
        else:
            base, keys = self.lake.table_dir(table), dict(_HIVE)
            glob = base.joinpath(*["*"] * len(keys), "*.parquet")
        if not self.lake.any_match(glob):
            raise LakeError(f"{base}: no files yet (run `dpsim process --lake {self.lake.root}`)")
        frame = pl.scan_parquet(str(glob), hive_partitioning=True, hive_schema=keys)
        if table in RESULT_TABLES:
            first = (
                ["scenario", "security_code", "date"]
                if table in SCENARIO_TABLES
                else ["security_code", "date"]
            )
            frame = frame.select(*first, pl.exclude(first))
        if scenario is not None:
            # a lake whose job outputs are not migrated yet has no markers: its scenario folders say it
            present = self.lake.scenarios() or self.lake.first_layout_scenarios(table)
            if scenario not in present:
                have = ", ".join(present) or "none"
                raise LakeError(f"{base}: no scenario {scenario!r} (the lake has: {have})")
            frame = frame.filter(pl.col("scenario") == scenario)
        return frame


def open_lake(root: str | Any) -> OpenLake:
    """Open a lake (a folder, file:// or s3:// URL) for a notebook: `dpsim.open_lake("lake-drr")`."""
    return OpenLake(root)

"""The report's DuckDB session: the lake's catalog, the selection, its aggregates, and the named queries.

A report reads the aggregates the lake already holds. A selection of securities or dates narrows the
result views to its partitions (temp tables that shadow the catalog views) and recomputes the aggregates
over them with `dpsim.aggregate.compute_aggregates`, so every figure keeps its definition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from dpsim.aggregate import compute_aggregates
from dpsim.catalog import connect, view_names
from dpsim.config import Config
from dpsim.errors import DpsimError, LakeError
from dpsim.lake import Lake
from dpsim.schema import NBBO, ORDERS, TRADES, empty_table

log = logging.getLogger(__name__)

# The result views a selection narrows (every one has security_code and date).
RESULT_VIEWS = ("sweeps", "quality", "replay_fidelity", "sim_orders", "sim_fills")
# The order in which scenarios are shown: the plausible worlds first, the bounds last.
WORLD_ORDER = ("plausible", "sensitivity", "bound")

# Empty typed stand-ins for optional tables, so every query runs on any lake.
_STAND_INS = {
    "rejects": pa.schema(
        [("kind", pa.string()), ("source", pa.string()), ("line", pa.int64()), ("reason", pa.string())]
    ),
    "participant_names": pa.schema([("participantid", pa.int64()), ("participantname", pa.string())]),
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("started", pa.timestamp("us", tz="UTC")),
            ("seconds", pa.float64()),
        ]
    ),
    "jobs": pa.schema(
        [
            ("run_id", pa.string()),
            ("partition", pa.string()),
            ("status", pa.string()),
            ("seconds", pa.float64()),
            ("rows_in", pa.int64()),
            ("sweeps", pa.int64()),
            ("worker_peak_rss_mb", pa.float64()),
            ("error", pa.string()),
        ]
    ),
    "sim_fills": pa.schema(
        [
            ("scenario", pa.string()),
            ("security_code", pa.int64()),
            ("date", pa.date32()),
            ("sweep_order_id", pa.int64()),
            ("contra_order_id", pa.int64()),
            ("role", pa.string()),
            ("contra_is_sweep", pa.bool_()),
            ("timestamp", pa.int64()),
            ("quantity", pa.int64()),
            ("price", pa.float64()),
            ("mid", pa.float64()),
        ]
    ),
}


@dataclass(frozen=True)
class Selection:
    """What a report covers: scenarios (empty = all with results), securities and dates (None = all)."""

    scenarios: tuple[str, ...] = ()
    securities: tuple[int, ...] = ()
    dates: tuple[date, date] | None = None

    @property
    def narrows_partitions(self) -> bool:
        return bool(self.securities) or self.dates is not None

    def params(self) -> dict[str, Any]:
        """The bound parameters of the queries that filter partitions themselves."""
        lo, hi = self.dates if self.dates is not None else (None, None)
        return {"securities": list(self.securities) or None, "date_lo": lo, "date_hi": hi}

    def describe(self) -> str:
        parts = []
        if self.securities:
            parts.append("securities " + ", ".join(str(s) for s in self.securities))
        if self.dates is not None:
            lo, hi = self.dates
            parts.append(f"dates {lo.isoformat()}" + (f"..{hi.isoformat()}" if hi != lo else ""))
        if self.scenarios:
            parts.append("scenarios " + ", ".join(self.scenarios))
        return "; ".join(parts) or "the whole lake"


def sql_text(name: str) -> str:
    """The text of dpsim/report/sql/<name>.sql."""
    return resources.files("dpsim.report").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


class ReportSession:
    """One read-only DuckDB connection over the lake's catalog, narrowed to a selection."""

    def __init__(self, cfg: Config, lake: Lake, selection: Selection, *, aggregates: bool = True) -> None:
        self.cfg, self.lake, self.selection = cfg, lake, selection
        # reads only inside the lake; DuckDB gets its share of the memory budget: the figures are built beside it
        self.con = connect(lake, cfg, safe=True, budgeted=True)
        try:
            self._views = set(view_names(self.con))
            if "sweeps" not in self._views or "sim_orders" not in self._views:
                raise LakeError(f"{lake.root}: the lake has no results yet: run `dpsim process` first")
            self._stand_ins()
            self.worlds: dict[str, str | None] = {}
            self.scenarios: list[str] = []
            if aggregates:
                self._open_aggregates()
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> ReportSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, name: str, **params: Any) -> pl.DataFrame:
        """The result of dpsim/report/sql/<name>.sql with bound parameters; an error names the query."""
        try:
            return pl.from_arrow(self.con.sql(sql_text(name), params=params or None).to_arrow_table())  # type: ignore[return-value]
        except duckdb.Error as exc:
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise LakeError(f"report query {name}: {first.strip()}") from exc

    def columns(self, view: str) -> list[str]:
        """Column names of a view or table as the session sees it."""
        return [d[0] for d in self.con.execute(f'SELECT * FROM "{view}" LIMIT 0').description]

    @property
    def primary(self) -> str:
        """The scenario the single-scenario sections show: the first plausible one shown."""
        return next((sc for sc in self.scenarios if self.worlds.get(sc) == "plausible"), self.scenarios[0])

    def world(self, scenario: str) -> str:
        """plausible | sensitivity | bound (headline.world; a scenario without one counts as a sensitivity)."""
        return self.worlds.get(scenario) or "sensitivity"

    @property
    def has_participant_names(self) -> bool:
        return "participants" in self._views and self._participant_columns_ok

    # ---- setup ------------------------------------------------------------------------------------
    def _raw_stand_ins(self) -> None:
        """A lake may hold results without its raw tables (archived, or never shredded here): the sweep's
        story then shows no events, trades or quotes instead of failing."""
        keys = [("security_code", pa.int64()), ("date", pa.date32())]
        for kind in (ORDERS, TRADES, NBBO):
            if kind.name not in self._views:
                self.con.register(kind.name, empty_table(pa.schema(keys + list(kind.lake_schema))))

    @property
    def has_raw(self) -> bool:
        return {"orders", "trades", "nbbo"} <= self._views

    def _stand_ins(self) -> None:
        self._raw_stand_ins()
        self._participant_columns_ok = False
        if "participants" in self._views:
            cols = {c.lower() for c in self.columns("participants")}
            self._participant_columns_ok = {"participantid", "participantname"} <= cols
        if self._participant_columns_ok:
            self.con.execute(sql_text("participant_names"))
        for name, arrow_schema in _STAND_INS.items():
            if name == "participant_names" and self._participant_columns_ok:
                continue
            if name != "participant_names" and name in self._views:
                continue
            self.con.register(name, empty_table(arrow_schema))

    def _open_aggregates(self) -> None:
        if "headline" not in self._views:
            raise LakeError(
                f"{self.lake.root}: no aggregates yet: run `dpsim aggregate --lake {self.lake.root}`"
            )
        present = {
            str(r["scenario"]): r["world"]
            for r in self.con.sql("SELECT scenario, world FROM main.headline").to_arrow_table().to_pylist()
        }
        wanted = list(self.selection.scenarios) or list(present)
        unknown = [s for s in wanted if s not in present]
        if unknown:
            raise DpsimError(
                f"no results for scenario(s) {', '.join(unknown)} in {self.lake.root}; "
                f"the lake has: {', '.join(present) or 'none'}"
            )
        configured = list(self.cfg.scenarios)

        def rank(s: str) -> tuple[int, int, str]:
            world = present[s] or "sensitivity"
            w = WORLD_ORDER.index(world) if world in WORLD_ORDER else len(WORLD_ORDER)
            return (w, configured.index(s) if s in configured else len(configured), s)

        self.scenarios = sorted(wanted, key=rank)
        self.worlds = {s: present[s] for s in self.scenarios}
        if self.selection.narrows_partitions:
            self._narrow()

    def _narrow(self) -> None:
        """Temp tables of the selected partitions shadow the result views; aggregates recomputed over them."""
        for view in RESULT_VIEWS:
            if view in self._views:
                self.con.execute(sql_text("select_partitions").format(table=view), self.selection.params())
        (n,) = self.con.execute("SELECT count(*) FROM sweeps").fetchone() or (0,)
        if not n:
            raise DpsimError(
                f"the selection ({self.selection.describe()}) holds no analysed sweeps in {self.lake.root}"
            )
        log.info("recomputing the aggregates over the selection (%s)", self.selection.describe())
        tables = compute_aggregates(self.con, self.cfg, self.scenarios)
        for name, table in tables.items():
            self.con.register(name, table)

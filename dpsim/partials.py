"""Partial aggregates of the results, one slice per trading date, kept in the lake and recomputed only when the
slice's result files change: what makes `dpsim aggregate` incremental and bounded in memory.

A slice is one (scenario, date) for the scenario-dependent partials, and one date for the scenario-free ones.
Its partial aggregates are what the merge needs from its sweeps (docs/aggregates.md, "Incremental
aggregation"; every query is in dpsim/sql/partial_*.sql):

- measures, moments, clusters (per scenario) and fidelity, quality (per date): a few rows per segment or
  partition, merged exactly by sums (means and variances by Chan's formula). One Parquet file each holds
  the rows of every slice (`slice_date` column), rewritten when slices change.
- stream (per scenario and date): the slice's non-zero differences, one file per slice, which the rank
  statistics (Wilcoxon, medians) sort once per run: ranks do not merge from sums.

A slice's fingerprint hashes the names, sizes and modification times of its result files (sweeps,
replay_fidelity and sim_orders of the scenario, or quality). Files are written before the manifest of
fingerprints, so an interrupted update leaves stale fingerprints and the next run recomputes those slices.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dpsim import buffers
from dpsim.catalog import lake_error_text
from dpsim.config import Config
from dpsim.errors import LakeError
from dpsim.lake import Lake, TableFiles
from dpsim.schema import empty_table

log = logging.getLogger(__name__)

# Bump when a partial query's output changes: every slice is then recomputed (old partials are ignored).
PARTIALS_VERSION = 1
SCENARIO_PARTIALS = ("measures", "moments", "clusters")
FREE_PARTIALS = ("fidelity", "quality")
# The session relation each partial is merged from (dpsim/sql/segment_measures.sql and friends read these).
ROWS = {
    "measures": "measures_rows",
    "moments": "moments_rows",
    "clusters": "cluster_rows",
    "fidelity": "fidelity_rows",
    "quality": "quality_rows",
}
RESULT_VIEWS = ("sweeps", "sim_orders", "replay_fidelity", "quality")
# Dates computed side by side (each on its own DuckDB cursor).
SLICE_WORKERS = min(4, os.cpu_count() or 1)


def sql_text(name: str) -> str:
    """The text of dpsim/sql/<name>.sql."""
    return resources.files("dpsim").joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")


@dataclass
class Sources:
    """Where the merge finds the partial rows: the relations of ROWS in the session, and each scenario's stream
    files (the stored differences, read by sql/stats_stream.sql)."""

    stream_files: dict[str, list[str]] = field(default_factory=dict)  # scenario -> files
    stream_table: str | None = None  # or a table of the session's database that holds every scenario's
    index: LakeIndex | None = None  # the lake's result files (None: a session's own relations)
    recomputed: int = 0  # slices recomputed by this run
    slices: int = 0


# ---- the lake's result files, by date ------------------------------------------------------------------


@dataclass(frozen=True)
class LakeIndex:
    """The result files the aggregation reads, by table and trading date."""

    sweeps: TableFiles
    replay_fidelity: TableFiles
    quality: TableFiles
    sim_orders: TableFiles  # every scenario's rows in each partition's file
    scenarios: tuple[str, ...]  # the scenarios aggregated

    @classmethod
    def of(cls, lake: Lake, scenarios: Sequence[str]) -> LakeIndex:
        return cls(
            lake.table_files("sweeps"),
            lake.table_files("replay_fidelity"),
            lake.table_files("quality"),
            lake.table_files("sim_orders"),
            tuple(scenarios),
        )

    def listed(self) -> dict[str, TableFiles]:
        """The tables walked: what the compaction by date need not walk again."""
        return {
            "sweeps": self.sweeps,
            "replay_fidelity": self.replay_fidelity,
            "quality": self.quality,
            "sim_orders": self.sim_orders,
        }

    @property
    def dates(self) -> list[date]:
        """The dates with analysed sweeps: those of the scenario slices."""
        return sorted(self.sweeps.paths)

    def fingerprints(self) -> tuple[dict[tuple[str, date], str], dict[date, str]]:
        """Per (scenario, date) and per date: a hash of the slice's input files and the partials' version."""
        base = {d: (self.sweeps.digest.get(d), self.replay_fidelity.digest.get(d)) for d in self.sweeps.paths}
        scen = {
            (s, d): digest(PARTIALS_VERSION, "scenario", s, *base[d], self.sim_orders.digest.get(d))
            for s in self.scenarios
            for d in self.dates
        }
        free = {
            d: digest(
                PARTIALS_VERSION,
                "free",
                self.sweeps.digest.get(d),
                self.replay_fidelity.digest.get(d),
                self.quality.digest.get(d),
            )
            for d in sorted(set(self.sweeps.paths) | set(self.quality.paths))
        }
        return scen, free

    def load(
        self, con: duckdb.DuckDBPyConnection, cfg: Config, days: Iterable[date], scenarios: Sequence[str]
    ) -> None:
        """Temp tables `sweeps`, `sim_orders` (of `scenarios`), `replay_fidelity`, `quality` of the files of
        `days`, with the columns the partial aggregates read (sql/slice_<table>.sql); an empty typed stand-in
        where a table has no file. Temp tables are the cursor's own, so workers can load dates side by side."""
        days = list(days)
        files = {
            "sweeps": self.sweeps.files(days),
            "replay_fidelity": self.replay_fidelity.files(days),
            "quality": self.quality.files(days),
            "sim_orders": self.sim_orders.files(days) if scenarios else [],
        }
        stand_ins = stand_in_schemas(cfg)
        for name, paths in files.items():
            if paths:
                params: dict[str, object] = {"files": paths}
                if name == "sim_orders":
                    params["scenarios"] = list(scenarios)
                _execute(con, f"slice_{name}", params, into=name)
            else:
                _drop_relation(con, "stand_in")
                con.register("stand_in", empty_table(stand_ins[name]))
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM stand_in")
                con.unregister("stand_in")


def digest(*parts: object) -> str:
    """A fingerprint of the parts' text (slices' inputs, what the aggregates were merged from)."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def stand_in_schemas(cfg: Config) -> dict[str, pa.Schema]:
    """Empty typed stand-ins for the result tables, with their hive keys (a table without files)."""
    from dpsim.schema import DATE_COL as DATE_KEY
    from dpsim.schema import (
        PARTITION_TYPES,
        QUALITY,
        REPLAY_FIDELITY,
        SCENARIO,
        SECURITY_CODE,
        sim_orders_schema,
        sweeps_schema,
    )

    keys = [(SECURITY_CODE, PARTITION_TYPES[SECURITY_CODE]), (DATE_KEY, PARTITION_TYPES[DATE_KEY])]
    horizons = cfg.metrics.horizons_s
    return {
        "sweeps": pa.schema(keys + list(sweeps_schema(horizons))),
        "sim_orders": pa.schema([(SCENARIO, PARTITION_TYPES[SCENARIO]), *keys, *sim_orders_schema(horizons)]),
        "replay_fidelity": pa.schema(keys + list(REPLAY_FIDELITY)),
        "quality": pa.schema(keys + list(QUALITY)),
    }


def _drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Forget a view or a registered Arrow table of that name (a slice redefines them)."""
    with contextlib.suppress(duckdb.Error):
        con.unregister(name)
    with contextlib.suppress(duckdb.Error):
        con.execute(f'DROP VIEW IF EXISTS "{name}"')


# ---- computing the partials of one slice ----------------------------------------------------------------


def compute_pairs(con: duckdb.DuckDBPyConnection, scenarios: Sequence[str]) -> None:
    """The temp table `pairs` (pairs.sql) of `scenarios` from the session's result relations."""
    _execute(con, "pairs", {"scenarios": list(scenarios)})


def compute_slice(con: duckdb.DuckDBPyConnection, scenarios: Sequence[str], free: bool) -> None:
    """Temp tables p_<partial> from the relations sweeps, sim_orders, replay_fidelity, quality of `con`:
    the scenario partials for `scenarios` (none when empty), the scenario-free ones when `free`."""
    if scenarios:
        compute_pairs(con, scenarios)
        for name in (*SCENARIO_PARTIALS, "stream"):
            _execute(con, f"partial_{name}", into=f"p_{name}")
    if free:
        for name in FREE_PARTIALS:
            _execute(con, f"partial_{name}", into=f"p_{name}")


def _execute(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None, into: str | None = None
) -> None:
    """Run sql/<name>.sql (into a temp table `into` when given); a DuckDB error names the query."""
    text = sql_text(name)
    if into is not None:
        text = f"CREATE OR REPLACE TEMP TABLE {into} AS\n{text}"
    try:
        con.execute(text, params)
    except duckdb.Error as exc:
        raise LakeError(lake_error_text(exc, f"aggregate {name}")) from exc


# ---- a whole selection, in the session (no partials kept) ---------------------------------------------------


def in_session(con: duckdb.DuckDBPyConnection, scenarios: Sequence[str]) -> Sources:
    """The partials of everything `con`'s result relations hold, as one slice in temp tables (nothing kept in
    the lake); the differences go to the table `session_stream` of the session's in-memory database (not a
    temp table: the stream passes read it on cursors of their own; DuckDB spills it under its limit)."""
    compute_slice(con, scenarios, free=True)
    if not scenarios:  # the scenario partials still need their columns: an empty slice gives them
        compute_pairs(con, [])
        for name in (*SCENARIO_PARTIALS, "stream"):
            _execute(con, f"partial_{name}", into=f"p_{name}")
    for name, rows in ROWS.items():
        con.execute(f"CREATE OR REPLACE TEMP VIEW {rows} AS SELECT NULL::DATE AS slice_date, * FROM p_{name}")
    con.execute("CREATE OR REPLACE TABLE session_stream AS SELECT * FROM p_stream")
    return Sources(stream_table="session_stream")


# ---- the incremental update of aggregates/_partials ---------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What an aggregation must recompute: the lake's result files, every slice's fingerprint, the slices
    whose fingerprint changed (dirty) and those whose results are gone."""

    index: LakeIndex
    scenarios: tuple[str, ...]
    scen_fp: dict[tuple[str, date], str]
    free_fp: dict[date, str]
    manifest: dict[str, Any]
    dirty_scen: set[tuple[str, date]]
    dirty_free: set[date]
    gone_scen: set[tuple[str, date]]
    gone_free: set[date]

    @property
    def dirty_days(self) -> list[date]:
        """The trading dates read again (one step each)."""
        return sorted({d for _, d in self.dirty_scen} | self.dirty_free)

    @property
    def changed(self) -> bool:
        return bool(self.dirty_scen or self.dirty_free or self.gone_scen or self.gone_free)


def plan(lake: Lake, scenarios: Sequence[str]) -> Plan:
    """Compare the lake's result files with the fingerprints the partials were computed from (one walk of
    each result table, no file opened)."""
    index = LakeIndex.of(lake, scenarios)
    scen_fp, free_fp = index.fingerprints()
    manifest = _read_manifest(lake)
    old_scen = {
        (s, date.fromisoformat(d)): fp
        for s, by_day in manifest.get("scenario", {}).items()
        for d, fp in by_day.items()
    }
    old_free = {date.fromisoformat(d): fp for d, fp in manifest.get("free", {}).items()}
    return Plan(
        index,
        tuple(scenarios),
        scen_fp,
        free_fp,
        manifest,
        dirty_scen={k for k, fp in scen_fp.items() if old_scen.get(k) != fp},
        dirty_free={d for d, fp in free_fp.items() if old_free.get(d) != fp},
        gone_scen=set(old_scen) - set(scen_fp),
        gone_free=set(old_free) - set(free_fp),
    )


def update(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    cfg: Config,
    plan: Plan,
    advance: Callable[[str], None] = lambda step: None,
) -> Sources:
    """Bring aggregates/_partials up to date with the lake's results (`advance(step)` after each date read
    again), then point ROWS at the partial files."""
    p = plan
    if p.changed:
        scratch = lake.own_dir("aggregate")
        scratch.mkdir(parents=True, exist_ok=True)
        try:
            _recompute(con, lake, cfg, p.index, p.dirty_scen, p.dirty_free, scratch, advance)
            clean_scen = [k for k in p.scen_fp if k not in p.dirty_scen]
            clean_free = [d for d in p.free_fp if d not in p.dirty_free]
            _rewrite_small(con, lake, cfg, clean_scen, clean_free, scratch, p.manifest)
            lake.remove_files([lake.partial_stream_path(s, d) for s, d in p.gone_scen])
            lake.write_json(
                {
                    "version": PARTIALS_VERSION,
                    "scenario": {
                        s: {d.isoformat(): fp for (s2, d), fp in sorted(p.scen_fp.items()) if s2 == s}
                        for s in p.scenarios
                    },
                    "free": {d.isoformat(): fp for d, fp in sorted(p.free_fp.items())},
                },
                lake.partials_manifest_path,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    recomputed, slices = len(p.dirty_scen) + len(p.dirty_free), len(p.scen_fp) + len(p.free_fp)
    log.info(
        "partial aggregates: %d of %d slices recomputed, %d removed",
        recomputed,
        slices,
        len(p.gone_scen) + len(p.gone_free),
    )
    _define_rows(con, lake, cfg, p.scen_fp, p.free_fp)
    return Sources(
        stream_files={s: [str(lake.partial_stream_path(s, d)) for d in p.index.dates] for s in p.scenarios},
        index=p.index,
        recomputed=recomputed,
        slices=slices,
    )


def _read_manifest(lake: Lake) -> dict[str, Any]:
    """The manifest of fingerprints, or an empty one when missing, of another version, or its files are gone."""
    try:
        body = lake.read_json(lake.partials_manifest_path)
    except ValueError:  # a torn or edited manifest: recompute everything rather than trust it
        body = None
    if not isinstance(body, dict) or body.get("version") != PARTIALS_VERSION:
        return {}
    names: tuple[str, ...] = SCENARIO_PARTIALS if body.get("scenario") else ()
    names += FREE_PARTIALS if body.get("free") else ()
    if not all(lake.partial_path(n).exists() for n in names):
        return {}
    return body


def _recompute(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    cfg: Config,
    index: LakeIndex,
    dirty_scen: set[tuple[str, date]],
    dirty_free: set[date],
    scratch: Path,
    advance: Callable[[str], None],
) -> None:
    """Compute the dirty slices: each date's rows of each small partial to a file of its own,
    scratch/<partial>/<date>.parquet (read by `_rewrite_small`), and each slice's stream file.

    Dates are computed side by side, one DuckDB cursor per worker: one date's small files and queries keep
    about one core busy, so the workers fill the machine (memory stays bounded: a date each). The recomputed
    rows go to files, not to tables of the session: at 54,000 partitions they are ~800 MB in memory, which
    would take most of DuckDB's limit from the merge after them (and grow with the dates)."""
    by_day: dict[date, list[str]] = defaultdict(list)
    for s, d in sorted(dirty_scen):
        by_day[d].append(s)
    days = sorted(set(by_day) | dirty_free)
    for name in (*SCENARIO_PARTIALS, *FREE_PARTIALS):
        (scratch / name).mkdir(parents=True, exist_ok=True)

    def one(d: date) -> None:
        cur = con.cursor()
        try:
            scenarios = by_day.get(d, [])
            index.load(cur, cfg, [d], scenarios)
            compute_slice(cur, scenarios, free=d in dirty_free)
            names = (SCENARIO_PARTIALS if scenarios else ()) + (FREE_PARTIALS if d in dirty_free else ())
            for name in names:
                cur.sql(f"SELECT $d::DATE AS slice_date, * FROM p_{name}", params={"d": d}).write_parquet(
                    str(scratch / name / f"{d.isoformat()}.parquet"), compression="zstd"
                )
            for i, s in enumerate(scenarios):
                local = scratch / f"stream-{d.isoformat()}-{i}.parquet"
                cur.sql("SELECT * FROM p_stream WHERE scenario = $s", params={"s": s}).write_parquet(
                    str(local), compression="zstd"
                )
                lake.put(local, lake.partial_stream_path(s, d))
        finally:
            cur.close()

    workers = max(1, min(SLICE_WORKERS, len(days)))
    with ThreadPoolExecutor(workers) as pool:
        for d, _ in zip(days, pool.map(one, days), strict=True):
            advance(f"partials {d.isoformat()}")


def _empty(con: duckdb.DuckDBPyConnection, cfg: Config, name: str) -> str:
    """A temp table `empty_<name>` with partial `name`'s columns and slice_date, and no rows."""
    empty = TableFiles.empty()
    LakeIndex(empty, empty, empty, empty, ()).load(con, cfg, [], [])
    compute_slice(con, ["_"] if name in SCENARIO_PARTIALS else [], free=name in FREE_PARTIALS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE empty_{name} AS SELECT NULL::DATE AS slice_date, * FROM p_{name} LIMIT 0"
    )
    return f"empty_{name}"


def _rewrite_small(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    cfg: Config,
    clean_scen: list[tuple[str, date]],
    clean_free: list[date],
    scratch: Path,
    manifest: dict[str, Any],
) -> None:
    """Each small partial file := its rows of clean slices + the recomputed rows (the files of each date in
    scratch/<partial>/, streamed through: nothing of them is held in the session)."""
    _drop_relation(con, "clean_scen")
    _drop_relation(con, "clean_free")
    scen_keys = {
        "scenario": buffers.from_values([s for s, _ in clean_scen], pa.string()),
        "slice_date": buffers.from_values([d for _, d in clean_scen], pa.date32()),
    }
    con.register("clean_scen", pa.table(scen_keys))
    con.register("clean_free", pa.table({"slice_date": buffers.from_values(clean_free, pa.date32())}))
    for name in (*SCENARIO_PARTIALS, *FREE_PARTIALS):
        path = lake.partial_path(name)
        clean, keys = (
            ("clean_scen", "scenario, slice_date")
            if name in SCENARIO_PARTIALS
            else ("clean_free", "slice_date")
        )
        recomputed = sorted(str(f) for f in (scratch / name).glob("*.parquet"))
        queries = [
            "SELECT * FROM read_parquet($files::VARCHAR[])"
            if recomputed
            else f"SELECT * FROM {_empty(con, cfg, name)}"
        ]
        if manifest and path.exists():
            old = con.read_parquet(str(path))
            old.create_view(f"old_{name}", replace=True)
            queries.insert(0, f"SELECT * FROM old_{name} SEMI JOIN {clean} USING ({keys})")
        local = scratch / f"{name}.parquet"
        params = {"files": recomputed} if recomputed else None
        con.sql(" UNION ALL BY NAME ".join(queries), params=params).write_parquet(
            str(local), compression="zstd"
        )
        lake.put(local, path)


def _define_rows(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    cfg: Config,
    scen_fp: dict[tuple[str, date], str],
    free_fp: dict[date, str],
) -> None:
    """ROWS views over the partial files (over empty tables when the lake has no results yet)."""
    have = {
        name: lake.partial_path(name).exists() and bool(scen_fp if name in SCENARIO_PARTIALS else free_fp)
        for name in ROWS
    }
    for name, rows in ROWS.items():
        con.execute(f"DROP VIEW IF EXISTS {rows}")
        if have[name]:
            con.read_parquet(str(lake.partial_path(name))).create_view(rows, replace=True)
        else:
            con.execute(f"CREATE TEMP VIEW {rows} AS SELECT * FROM {_empty(con, cfg, name)}")

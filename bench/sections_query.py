"""The query section (issue 20, the result layout): on lakes of 600 / 6,000 / 54,000 partitions of hard-linked
results (sim_fills too), the compaction into results_by_date (`dpsim catalog` on a lake without it), the
catalog refresh with nothing changed, and two queries through `dpsim sql` and through `dpsim.open_lake`,
each over the job outputs (one file per partition, what the views read before) and over the files by
date (what they read now), side by side:

- per participant: sweeps and mean implementation shortfall by participantid, over every sweep;
- one sweep: the simulated fills of one sweep (every scenario), by its key (date, security, order id): the
  linked lakes repeat a template partition's order ids in many dates, so an id alone would return more
  sweeps the larger the lake.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench import harness as H
from bench.sections_aggregate import _template, linked_lake
from bench.session import Session

PER_PARTICIPANT = (
    "SELECT participantid, count(*) AS sweeps, avg(implementation_shortfall_bps) AS is_bps "
    "FROM {sweeps} GROUP BY participantid ORDER BY participantid"
)
ONE_SWEEP = (
    "SELECT * FROM {sim_fills} WHERE date = DATE '{day}' AND security_code = {security} "
    "AND sweep_order_id = {order_id} ORDER BY ALL"
)


def query(ses: Session) -> None:
    template = _template(ses)
    for n in ses.cfg["query_partitions"]:
        lake, info = linked_lake(template, n, with_fills=True)
        inp = {k: info[k] for k in ("partitions", "dates", "securities", "sweeps", "scenarios", "files")}
        inp["path"] = H.rel(lake)
        case = f"{n:,} partitions"
        _catalog(ses, lake, case, inp)
        sweep = _a_sweep_with_fills(lake)
        reps = 1 if n >= 20_000 else ses.reps
        for layout in ("job outputs", "by date"):
            for what, sql in (("per participant", PER_PARTICIPANT), ("one sweep", ONE_SWEEP)):
                text = sql.format(**sweep, **_relations(lake, layout))
                cmd = [*H.DPSIM, "sql", "--lake", H.rel(lake), text, "--format", "csv"]
                m = H.measure(cmd, label=f"query-{n}-{layout}-{what}-sql", reps=reps, warmup=1)
                ses.rows.append(ses.row("query", case, f"dpsim sql, {what}, {layout}", inp, m))
                code = _notebook(lake, layout, what, sweep)
                m = H.measure([sys.executable, "-c", code], label=f"query-{n}-{layout}-{what}-nb", reps=reps)
                ses.rows.append(ses.row("query", case, f"open_lake, {what}, {layout}", inp, m))


def _catalog(ses: Session, lake: Path, case: str, inp: dict[str, Any]) -> None:
    """`dpsim catalog` on the lake without results_by_date (the compaction of every date, as a migration
    does it), then again with nothing changed (the refresh every command pays)."""
    cmd = [*H.DPSIM, "catalog", "--lake", H.rel(lake)]
    m = H.measure(cmd, label=f"query-{case}-compact", reps=1, warmup=0, before=lambda: _forget(lake))
    files = len(list((lake / "results_by_date").rglob("*.parquet")))
    row = ses.row("query", case, "dpsim catalog, compacting every date", inp, m)
    row["extra"]["by_date_files"] = files
    ses.rows.append(row)
    m = H.measure(cmd, label=f"query-{case}-refresh", reps=ses.reps, warmup=1)
    ses.rows.append(ses.row("query", case, "dpsim catalog, nothing changed", inp, m))


def _forget(lake: Path) -> None:
    H.rm(lake / "results_by_date")
    (lake / "dpsim.duckdb").unlink(missing_ok=True)


def _a_sweep_with_fills(lake: Path) -> dict[str, Any]:
    """The key (day, security, order_id) of the first sweep of the last sim_fills job output that has rows."""
    for path in sorted((lake / "results" / "sim_fills").glob("*/*/*.parquet"), reverse=True):
        ids = pq.read_table(path, columns=["sweep_order_id"])["sweep_order_id"]
        if len(ids):
            security, day = (part.split("=", 1)[1] for part in path.parts[-3:-1])
            return {"day": day, "security": int(security), "order_id": int(ids[0].as_py())}
    raise RuntimeError(f"{lake}: no simulated fills to look up")


def _relations(lake: Path, layout: str) -> dict[str, str]:
    """The two tables as `dpsim sql` reads them: the views (by date), or read_parquet over the job outputs."""
    if layout == "by date":
        return {"sweeps": "sweeps", "sim_fills": "sim_fills"}
    root = lake.resolve() / "results"
    return {
        t: f"read_parquet('{root}/{t}/{glob}', hive_partitioning = true)"
        for t, glob in (("sweeps", "*/*/*.parquet"), ("sim_fills", "*/*/*.parquet"))
    }


def _notebook(lake: Path, layout: str, what: str, sweep: dict[str, Any]) -> str:
    """A Python program that answers the query with Polars: `dpsim.open_lake` (by date), or
    `pl.scan_parquet` over the job outputs."""
    root = str(lake.resolve())
    if layout == "by date":
        frames = f"import dpsim; lk = dpsim.open_lake({root!r}); sweeps = lk.sweeps(); fills = lk.sim_fills()"
    else:
        frames = (
            f"sweeps = pl.scan_parquet({root!r} + '/results/sweeps/**/*.parquet', hive_partitioning=True); "
            f"fills = pl.scan_parquet({root!r} + '/results/sim_fills/**/*.parquet', hive_partitioning=True)"
        )
    if what == "per participant":
        answer = (
            "sweeps.group_by('participantid').agg(pl.len().alias('sweeps'), "
            "pl.col('implementation_shortfall_bps').mean()).sort('participantid').collect()"
        )
    else:
        answer = (
            f"fills.filter((pl.col('date') == dt.date.fromisoformat({sweep['day']!r})) & "
            f"(pl.col('security_code') == {sweep['security']}) & "
            f"(pl.col('sweep_order_id') == {sweep['order_id']})).collect()"
        )
    return f"import datetime as dt; import polars as pl; {frames}; print({answer}.height)"

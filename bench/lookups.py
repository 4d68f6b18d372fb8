"""The result layout's queries on the query section's lakes (600 / 6,000 / 54,000 partitions, by date), side by
side: every command once per round, round after round (round 0 a warm-up, not kept), so a load that comes
and goes weighs on every lake alike; medians per (lake, query, client).

    python -m bench.lookups [--reps 5] [--lakes bench/work/agg-lakes/q600,...]

Queries: per participant (every sweep), one sweep by its key (date, security, order id; the linked lakes
repeat an order id in many dates, so an id alone returns more sweeps the larger the lake), an id no file
holds (what a lookup by id alone costs: every date's row-group statistics read), and `SELECT 1` (the
floor of a `dpsim sql` process); through `dpsim sql` (printed, and `--format csv`, written by DuckDB)
and `dpsim.open_lake` in a fresh Python. Writes bench/results/<date>-lookups.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench import harness as H

PER_PARTICIPANT = (
    "SELECT participantid, count(*) AS sweeps, avg(implementation_shortfall_bps) AS is_bps "
    "FROM sweeps GROUP BY participantid ORDER BY participantid"
)
BY_KEY = (
    "SELECT * FROM sim_fills WHERE date = DATE '{day}' AND security_code = {security} "
    "AND sweep_order_id = {order_id} ORDER BY ALL"
)
NO_FILE = "SELECT * FROM sim_fills WHERE sweep_order_id = 1 ORDER BY ALL"
NOTEBOOK = {
    "per participant": (
        "lk.sweeps().group_by('participantid').agg(pl.len().alias('sweeps'), "
        "pl.col('implementation_shortfall_bps').mean()).sort('participantid')"
    ),
    "one sweep by key": (
        "lk.sim_fills().filter((pl.col('date') == dt.date.fromisoformat({day!r})) & "
        "(pl.col('security_code') == {security}) & (pl.col('sweep_order_id') == {order_id}))"
    ),
    "an id in no file": "lk.sim_fills().filter(pl.col('sweep_order_id') == 1)",
}


def a_sweep(lake: Path) -> dict[str, object]:
    """The key of the first baseline sweep with fills in the lake's last date file."""
    last = sorted((lake / "results_by_date" / "sim_fills").glob("date=*/*.parquet"))[-1]
    con = duckdb.connect()
    try:
        security, order_id = con.execute(
            "SELECT security_code, sweep_order_id FROM read_parquet($f) WHERE scenario = 'baseline' LIMIT 1",
            {"f": str(last)},
        ).fetchall()[0]
    finally:
        con.close()
    return {"day": last.parent.name.split("=", 1)[1], "security": security, "order_id": order_id}


def commands(lake: Path) -> dict[str, list[str]]:
    sweep = a_sweep(lake)
    sql = [*H.DPSIM, "sql", "--lake", H.rel(lake)]
    out: dict[str, list[str]] = {}
    for what, query in (
        ("per participant", PER_PARTICIPANT),
        ("one sweep by key", BY_KEY.format(**sweep)),
        ("an id in no file", NO_FILE),
    ):
        out[f"{what}, dpsim sql printed"] = [*sql, query]
        out[f"{what}, dpsim sql --format csv"] = [*sql, query, "--format", "csv"]
        frame = NOTEBOOK[what].format(**sweep)
        code = (
            "import datetime as dt; import polars as pl; import dpsim; "
            f"lk = dpsim.open_lake({str(lake.resolve())!r}); print({frame}.collect().height)"
        )
        out[f"{what}, open_lake"] = [H.PY, "-c", code]
    out["SELECT 1, dpsim sql printed"] = [*sql, "SELECT 1"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--lakes", default=",".join(f"bench/work/agg-lakes/q{n}" for n in (600, 6000, 54000)))
    a = p.parse_args()
    lakes = [Path(x) for x in a.lakes.split(",")]
    cmds = {(lake.name, what): cmd for lake in lakes for what, cmd in commands(lake).items()}
    times: dict[tuple[str, str], list[float]] = {k: [] for k in cmds}
    loads = []
    for rep in range(a.reps + 1):
        for key, cmd in cmds.items():
            start = time.perf_counter()
            subprocess.run(cmd, cwd=H.REPO, check=True, stdout=subprocess.DEVNULL)
            if rep:
                times[key].append(time.perf_counter() - start)
        loads.append(round(os.getloadavg()[0], 2))
        print(f"round {rep} done, load {loads[-1]}", flush=True)
    medians = {f"{lake} | {what}": round(statistics.median(v), 3) for (lake, what), v in times.items()}
    for name, value in medians.items():
        print(f"{name}: {value:.3f} s")
    print(f"1-minute load after each round: {loads}")
    out = H.REPO / "bench" / "results" / f"{datetime.now(UTC):%Y-%m-%d}-lookups.json"
    body = {"medians_s": medians, "runs_s": {f"{k[0]} | {k[1]}": v for k, v in times.items()}, "loads": loads}
    out.write_text(json.dumps({"commit": H._git_commit(), "machine": H.machine(), **body}, indent=1) + "\n")
    print(f"results: {H.rel(out)}")


if __name__ == "__main__":
    main()

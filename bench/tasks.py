"""Small dpsim tasks the harness runs in a process of their own (so its own memory and imports stay out of
the figures): `python -m bench.tasks NAME [ARGS]`, one JSON object (or number) on stdout.

    synth OUT SECURITIES DAYS START SEED [SCALE_BYTES]   generate a drop; its files, rows, bytes, partitions
    versions                                           the versions of dpsim and the libraries measured
    budget CONFIG                                      shred.memory_budget_mb of a config
    worker-imports                                     import what a job worker imports; print its peak RSS (KB)
    first-partition CSV                                (security_code, trading date) of the first row at 11-15 h
    sql-breakdown LAKE QUERY                           where `dpsim sql` spends its time, step by step (JSON)
    catalog-refresh LAKE                               seconds of refresh_catalog alone (the views), and of the
                                                       compaction's look at the job outputs with nothing to do
    parse-blocks ORDERS_CSV [CHUNKS]                   CPU seconds of the shred's parse of the file's first
                                                       CHUNKS (30) chunks of shred.block_size_mb by parser block
                                                       size (the lower of two rounds), and Polars'
    job-steps CONFIG LAKE [JOBS]                       ms per job of each step of the lake's first JOBS (60)
                                                       partition jobs after one warm-up, run in this process
    plan-flags CONFIG LAKE [PARTITIONS] [ROUNDS]       ms per partition of collecting the comparison's and the
                                                       measurement's plans with Polars' default optimiser and
                                                       with dpsim.steps.UNSHARED, alternated (medians)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import date, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the tasks import dpsim when they run: each measures its own imports
    from dpsim.config import Config
    from dpsim.lake import Lake, PartitionKey

LIBRARIES = ("dpsim", "polars", "duckdb", "pyarrow", "numpy", "pandas", "psutil")


def synth(out: str, securities: str, days: str, start: str, seed: str, scale_bytes: str = "") -> str:
    from dpsim import synth

    s = synth.generate(
        Path(out),
        securities=int(securities),
        days=int(days),
        start=date.fromisoformat(start),
        seed=int(seed),
        scale=("bytes", int(scale_bytes)) if scale_bytes else None,
    )
    files = {k: str(v) for k, v in s.files.items()}
    return json.dumps({"files": files, "rows": s.rows, "bytes": s.bytes, "partitions": s.partitions})


def versions() -> str:
    import importlib.metadata as m

    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = m.version(name)
        except m.PackageNotFoundError:
            out[name] = None
    return json.dumps(out)


def budget(config: str) -> str:
    from dpsim.config import load_config

    return str(load_config(config).shred.memory_budget_mb)


def worker_imports() -> str:
    """The floor under a job worker's RSS: the imports of a worker, nothing run."""
    import resource

    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import dpsim.jobs  # noqa: F401
    import dpsim.lake  # noqa: F401
    import dpsim.partition  # noqa: F401

    return str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def first_partition(path: str) -> str:
    """(security_code, trading date) of the first data row with an 11-15 h local timestamp, by dpsim's rule."""
    import polars as pl

    from dpsim.tradingtime import trading_date

    lf = pl.scan_csv(path, schema_overrides={"timestamp": pl.Int64, "security_code": pl.Int64})
    lf = lf.select("timestamp", "security_code").with_columns(
        d=trading_date(pl.col("timestamp"), "Australia/Sydney", time(19, 0)),
        h=pl.from_epoch("timestamp", time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone("Australia/Sydney")
        .dt.hour(),
    )
    r = lf.filter(pl.col("h").is_between(11, 15)).head(1).collect().row(0, named=True)
    return f"{r['security_code']} {r['d']}"


def _seconds_since_start() -> float:
    """Seconds since this process started, to a clock tick: /proc/uptime less the process's start in ticks since
    boot (psutil's create_time adds the boot time rounded to the second: up to a second off)."""
    with open("/proc/uptime", encoding="ascii") as f:
        uptime = float(f.read().split()[0])
    with open("/proc/self/stat", encoding="ascii") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def sql_breakdown(lake: str, query: str) -> str:
    """The steps of `dpsim sql LAKE QUERY --format csv`, timed inside one process (what GNU time cannot split):
    interpreter start-up, the imports, the config, opening the catalog, running the query into DuckDB's CSV."""
    from time import perf_counter

    started = _seconds_since_start()
    t = [perf_counter()]
    import dpsim.cli  # noqa: F401

    t.append(perf_counter())
    from dpsim.query import write_csv  # what `dpsim sql` imports: duckdb and the catalog

    t.append(perf_counter())
    from dpsim.config import load_config
    from dpsim.lake import Lake

    cfg = load_config("conf/default.yaml", {"lake": lake})
    t.append(perf_counter())
    import tempfile

    from dpsim.catalog import connect, views_named_in

    with tempfile.TemporaryDirectory() as scratch:
        con = connect(Lake(cfg.lake), cfg, safe=True, only=views_named_in(query), scratch=Path(scratch))
        t.append(perf_counter())
        write_csv(con.sql(query), Path(scratch) / "answer.csv")
        t.append(perf_counter())
        con.close()
    steps = ("import_cli_s", "import_query_s", "config_s", "connect_s", "query_csv_s")
    out: dict[str, object] = {"startup_s": round(started, 4)}
    out.update({k: round(b - a, 4) for k, a, b in zip(steps, t, t[1:], strict=False)})
    out["loaded"] = sorted(
        m for m in ("polars", "scipy", "rich", "duckdb", "pyarrow", "numpy") if m in sys.modules
    )
    return json.dumps(out)


def catalog_refresh(lake: str) -> str:
    """What `dpsim catalog` on an unchanged lake spends, split: the compaction's walk of the job outputs (it
    finds nothing to rewrite) and the catalog refresh proper (the views rewritten)."""
    from time import perf_counter

    from dpsim.catalog import refresh_catalog
    from dpsim.compaction import compact
    from dpsim.lake import Lake

    lk = Lake(lake)
    t0 = perf_counter()
    done = compact(lk)
    t1 = perf_counter()
    views = refresh_catalog(lk)
    t2 = perf_counter()
    return json.dumps(
        {"compaction_check_s": round(t1 - t0, 3), "rewritten": done.rewritten, "refresh_s": round(t2 - t1, 3),
         "views": len(views)}
    )  # fmt: skip


def parse_blocks(path: str, chunks: str = "30") -> str:
    """The shred's own read and parse (`dpsim.shred.read`, then `dpsim.shred.parse._read_csv`, one thread) of
    the file's first chunks of `shred.block_size_mb`, by the CSV reader's block size: how the block fits a
    core's cache decides the int64 conversion's speed. Polars' `read_csv` on the same chunks, one thread,
    for scale."""
    import resource
    from itertools import chain, islice

    os.environ["POLARS_MAX_THREADS"] = "1"  # before polars is imported
    import polars as pl

    import dpsim.shred.parse as parse
    from dpsim import schema
    from dpsim.config import Config
    from dpsim.shred.plan import make_plan
    from dpsim.shred.read import StoredFile, decoded_blocks, line_chunks, split_header

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    block = int(Config().shred.block_size_mb * (1 << 20))
    stored = StoredFile(path)
    try:
        raw = decoded_blocks(stored, path, block)
        header, rest = split_header(raw, path)
        blocks = list(islice(line_chunks(chain([rest], raw), block), int(chunks)))
    finally:
        stored.close()
    plan = make_plan(schema.ORDERS, path, header or "", Config())
    sizes = [8 << 20, 4 << 20, 2 << 20, 1 << 20, 512 << 10, 256 << 10]
    out: dict[str, float] = {}
    for size in [*sizes, *reversed(sizes)]:  # two rounds, the second backwards: the lower is kept
        parse.PARSE_BLOCK_BYTES = size
        t0 = cpu()
        for data in blocks:
            parse._read_csv(data, plan, typed=True)
        key = f"{size >> 10} KB"
        out[key] = round(min(out.get(key, float("inf")), cpu() - t0), 2)
    head = f"{header}\n".encode()
    t0 = cpu()
    for data in blocks:
        pl.read_csv(head + data)
    out["polars"] = round(cpu() - t0, 2)
    return json.dumps({"chunks": len(blocks), "cpu_s": out})


def _lake_partitions(config: str, lake: str) -> tuple[Config, Lake, list[PartitionKey]]:
    """The config (its lake set to `lake`), the lake and its partitions in the order a run plans them."""
    from dpsim.config import load_config
    from dpsim.lake import Lake
    from dpsim.planning import plan_partitions

    cfg = load_config(config, {"lake": lake})
    lk = Lake(cfg.lake)
    keys, _ = plan_partitions(lk, None, None)
    return cfg, lk, keys


def job_steps(config: str, lake: str, jobs: str = "60") -> str:
    """Where a job's wall time goes: the lake's partitions processed one after another in this process (as a
    worker does), each step of `dpsim.partition` wrapped in a timer; milliseconds per job. Steps nest:
    compute_partition holds the measurement, the replays, the fidelity, the comparison's plan and its
    collect; the comparison's collect is what compute_partition holds beyond the steps it calls."""
    from collections import defaultdict
    from time import perf_counter

    import dpsim.partition as part
    from dpsim.lake import Lake

    spent: dict[str, float] = defaultdict(float)

    def timed(owner: object, name: str) -> None:
        inner = getattr(owner, name)

        def step(*args: object, **kwargs: object) -> object:
            t = perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[name] += perf_counter() - t

        setattr(owner, name, step)

    steps = ("compute_partition", "_measure", "run_replays", "replay_fidelity", "sweep_fills", "compare",
             "rested", "load_table", "_as_arrow")  # fmt: skip
    for name in steps:
        timed(part, name)
    timed(Lake, "publish_results")
    cfg, lk, keys = _lake_partitions(config, lake)
    scenarios = tuple(cfg.scenarios)
    part.process_partition(lk, keys[0], cfg, scenarios)  # warm-up: the kernel compiled or loaded, imports
    spent.clear()
    run = keys[1 : int(jobs) + 1]
    t0 = perf_counter()
    for key in run:
        part.process_partition(lk, key, cfg, scenarios)
    wall = perf_counter() - t0
    n = max(len(run), 1)
    out = {"jobs": len(run), "job_ms": round(1000 * wall / n, 1)}
    out.update({name: round(1000 * s / n, 1) for name, s in sorted(spent.items(), key=lambda kv: -kv[1])})
    return json.dumps(out)


def plan_flags(config: str, lake: str, partitions: str = "20", rounds: str = "9") -> str:
    """Why the comparison is collected with `dpsim.steps.UNSHARED`: the plans of the lake's first PARTITIONS
    jobs (captured while they run) collected again with each optimiser setting in turn, ROUNDS rounds, in
    one process so that both settings meet the same machine; medians of the rounds, ms per partition."""
    import statistics
    from time import perf_counter

    import polars as pl

    import dpsim.partition as part
    from dpsim.steps import ENGINE, UNSHARED

    plans: dict[str, list[list[pl.LazyFrame]]] = {"comparison": [], "measurement": []}
    compare, build = part.compare, part.build

    def comparison(*args: Any, **kwargs: Any) -> pl.LazyFrame:
        frame = compare(*args, **kwargs)
        plans["comparison"].append([frame])
        return frame

    def measurement(*args: Any, **kwargs: Any) -> Any:
        frames = build(*args, **kwargs)
        plans["measurement"].append([frames.usable_quotes, frames.cp_orders, frames.sweeps, frames.quality])
        return frames

    part.compare, part.build = comparison, measurement
    cfg, lk, keys = _lake_partitions(config, lake)
    for key in keys[: int(partitions)]:
        part.process_partition(lk, key, cfg, tuple(cfg.scenarios))
    settings = {"default": pl.QueryOptFlags(), "unshared": UNSHARED}
    spent: dict[str, list[float]] = {f"{p}_{s}": [] for p in plans for s in settings}
    for _ in range(int(rounds)):
        for plan, captured in plans.items():
            for name, flags in settings.items():
                t = perf_counter()
                for frames in captured:
                    pl.collect_all(frames, engine=ENGINE, optimizations=flags)
                spent[f"{plan}_{name}"].append(perf_counter() - t)
    n = max(len(plans["comparison"]), 1)
    return json.dumps({k: round(1000 * statistics.median(v) / n, 1) for k, v in spent.items()})


TASKS: dict[str, Callable[..., str]] = {
    "synth": synth,
    "versions": versions,
    "budget": budget,
    "worker-imports": worker_imports,
    "first-partition": first_partition,
    "sql-breakdown": sql_breakdown,
    "catalog-refresh": catalog_refresh,
    "parse-blocks": parse_blocks,
    "job-steps": job_steps,
    "plan-flags": plan_flags,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(__doc__, file=sys.stderr)
        return 2
    print(TASKS[argv[0]](*argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

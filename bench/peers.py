"""Peer tools for the benchmark harness, one small process each (run under /usr/bin/time by bench/run.py).

    python -m bench.peers duckdb  SRC OUT [--threads 2] [--memory-limit 1500MB] [--temp DIR] [--compression zstd]
    python -m bench.peers polars  SRC OUT [--threads 2] [--compression zstd]
    python -m bench.peers seed    SRC --security N --date YYYY-MM-DD [--trades FILE] [--chunk-mb 1024]
    python -m bench.peers datecheck [SRC]      DuckDB's trading date == dpsim.tradingtime.trading_date (DST-crossing sample)
    python -m bench.peers pgcopy LAKE URL [--schema S] [--table sweeps]   psycopg COPY … FROM STDIN, the export peer

Every peer gives each orders row the same trading date as dpsim (docs/methodology.md §1: Australia/Sydney, DST-aware,
19:00 day roll) and writes hive partitions security_code=<int>/date=<YYYY-MM-DD>. Columns are read with
explicit int64 types (19-digit ids), `timevaliditydecoded` as text, like dpsim's pinned schema.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import time
from pathlib import Path

TZ = "Australia/Sydney"
ROLL_HOURS = 5  # 24 h - 19:00 day roll
TEXT_COLUMNS = {"timevaliditydecoded", "tradedate", "dealsourcedecoded", "sidedecoded", "exchangeinfo"}

# The trading date in DuckDB. Exact variant: floor to microseconds (never rounds an event at 18:59:59.999999999
# up past the roll), read as UTC, convert to local wall time (ICU, DST-aware), shift by the roll, take the date.
DUCKDB_DATE_EXACT = f"(timezone('{TZ}', make_timestamp(\"timestamp\" // 1000)::TIMESTAMPTZ) + INTERVAL {ROLL_HOURS} HOUR)::DATE"
# The form quoted in the issue (double seconds): same dates except within ~1 us of the roll.
DUCKDB_DATE_DOUBLE = (
    f"((to_timestamp(\"timestamp\" / 1e9) AT TIME ZONE '{TZ}') + INTERVAL {ROLL_HOURS} HOUR)::DATE"
)


def header_of(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return [h.strip() for h in fh.readline().rstrip("\n").split(",")]


def _duckdb_types(path: str) -> dict[str, str]:
    return {c: ("VARCHAR" if c.lower() in TEXT_COLUMNS else "BIGINT") for c in header_of(path)}


def cmd_duckdb(a: argparse.Namespace) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {int(a.threads)}")
    con.execute("SET preserve_insertion_order = false")
    if a.memory_limit:
        con.execute(f"SET memory_limit = '{a.memory_limit}'")
    if a.temp:
        Path(a.temp).mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{a.temp}'")
    types = _duckdb_types(a.src)
    cols = ", ".join(f"'{k}': '{v}'" for k, v in types.items())
    sql = (
        f"COPY (SELECT *, {DUCKDB_DATE_EXACT} AS date "
        f"FROM read_csv('{a.src}', header = true, delim = ',', columns = {{{cols}}})) "
        f"TO '{a.out}' (FORMAT parquet, COMPRESSION {a.compression}, PARTITION_BY (security_code, date), "
        "OVERWRITE_OR_IGNORE true)"
    )
    t0 = time.perf_counter()
    con.execute(sql)
    _done("duckdb", t0, a.out)


def cmd_polars(a: argparse.Namespace) -> None:
    os.environ.setdefault("POLARS_MAX_THREADS", str(a.threads))
    from datetime import time as dtime

    import polars as pl

    from dpsim.tradingtime import trading_date

    schema = {c: (pl.String if c.lower() in TEXT_COLUMNS else pl.Int64) for c in header_of(a.src)}
    t0 = time.perf_counter()
    (
        pl.scan_csv(a.src, schema=schema)
        .with_columns(date=trading_date(pl.col("timestamp"), TZ, dtime(19, 0)))
        .sink_parquet(
            pl.PartitionBy(a.out, key=["security_code", "date"]),
            compression=a.compression,
            mkdir=True,
        )
    )
    _done("polars", t0, a.out)


def _done(tool: str, t0: float, out: str) -> None:
    files = sum(1 for _ in Path(out).rglob("*.parquet"))
    parts = len({p.parent for p in Path(out).rglob("*.parquet")})
    print(
        json.dumps({"tool": tool, "seconds": time.perf_counter() - t0, "files": files, "partitions": parts})
    )


# ---- the seed approach: one (security, date) job re-scans the whole raw files with pandas chunks ----------
#
# A faithful minimal version of SCALING_PLAN.md phases 2 and 4: `ChunkIterator` reads `chunk_size_mb` bytes,
# cuts at the last newline, parses with pandas (numpy_nullable backend), and the job keeps the rows of its
# security on its date (fixed +10 h "AEST", as the plan does), within trading hours; then it streams the trades
# file the same way and keeps the trades of those orders. The plan's header bug (chunks after the first have
# no header line) is fixed by passing the header names, so the figure is not flattered by a crash.


class ChunkIterator:
    def __init__(self, path: str, chunk_size_mb: int) -> None:
        self.path = path
        self.chunk_size = chunk_size_mb * 1024 * 1024
        opener = gzip.open if path.endswith(".gz") else open
        self.fh = opener(path, "rb")
        self.header = self.fh.readline().decode().strip().split(",")
        self.buffer = b""

    def __iter__(self) -> ChunkIterator:
        return self

    def __next__(self):
        import pandas as pd

        data = self.fh.read(self.chunk_size)
        if not data and not self.buffer:
            self.fh.close()
            raise StopIteration
        data = self.buffer + data
        last_newline = data.rfind(b"\n")
        if last_newline != -1 and len(data) >= self.chunk_size:
            self.buffer = data[last_newline + 1 :]
            data = data[: last_newline + 1]
        else:
            self.buffer = b""
        return pd.read_csv(io.BytesIO(data), header=None, names=self.header, dtype_backend="numpy_nullable")


def cmd_seed(a: argparse.Namespace) -> None:
    from datetime import date, timedelta, timezone

    import pandas as pd

    aest = timezone(timedelta(hours=10))
    day = date.fromisoformat(a.date)
    t0 = time.perf_counter()
    kept, rows_scanned, chunks = [], 0, 0
    for chunk in ChunkIterator(a.src, a.chunk_mb):
        chunks += 1
        rows_scanned += len(chunk)
        ts = pd.to_datetime(chunk["timestamp"], unit="ns", utc=True).dt.tz_convert(aest)
        sel = chunk[
            (chunk["security_code"] == a.security)
            & (ts.dt.date == day)
            & (ts.dt.hour >= 10)
            & (ts.dt.hour <= 16)
        ]
        if len(sel):
            kept.append(
                sel[
                    [
                        "order_id",
                        "timestamp",
                        "security_code",
                        "price",
                        "side",
                        "quantity",
                        "leavesquantity",
                        "exchangeordertype",
                        "participantid",
                        "orderstatus",
                        "totalmatchedquantity",
                    ]
                ]
            )
    orders = pd.concat(kept) if kept else pd.DataFrame(columns=["order_id"])
    t_orders = time.perf_counter() - t0
    n_trades = 0
    if a.trades:
        ids = set(orders["order_id"].tolist())
        for chunk in ChunkIterator(a.trades, a.chunk_mb):
            rows_scanned += len(chunk)
            n_trades += int(chunk["orderid"].isin(ids).sum())
    print(
        json.dumps(
            {
                "tool": "seed",
                "seconds": time.perf_counter() - t0,
                "orders_scan_seconds": t_orders,
                "rows_scanned": rows_scanned,
                "chunks": chunks,
                "orders_kept": len(orders),
                "trades_kept": n_trades,
            }
        )
    )


# ---- trading-date agreement check -------------------------------------------------------------------------


def cmd_datecheck(a: argparse.Namespace) -> None:
    """Compare DuckDB's date expressions with dpsim.tradingtime.trading_date on a DST-crossing sample."""
    from datetime import UTC, datetime
    from datetime import time as dtime

    import duckdb
    import numpy as np
    import polars as pl

    from dpsim.tradingtime import trading_date

    sec = 1_000_000_000
    sample = []
    # Every 7 minutes 13 seconds across both 2024 Sydney DST changes (7 Apr ends, 6 Oct starts) and 2025's.
    for lo, hi in (("2024-04-01", "2024-04-12"), ("2024-10-01", "2024-10-12"), ("2025-04-01", "2025-04-10")):
        a_ns = int(datetime.fromisoformat(lo).replace(tzinfo=UTC).timestamp()) * sec
        b_ns = int(datetime.fromisoformat(hi).replace(tzinfo=UTC).timestamp()) * sec
        sample.append(np.arange(a_ns, b_ns, 433 * sec, dtype=np.int64))
    if a.src:
        import pyarrow.csv as pacsv

        opener = gzip.open if a.src.endswith(".gz") else open
        with opener(a.src, "rb") as fh:
            head = fh.read(64 << 20)
        head = head[: head.rfind(b"\n") + 1]
        tbl = pacsv.read_csv(
            io.BytesIO(head), convert_options=pacsv.ConvertOptions(include_columns=["timestamp"])
        )
        sample.append(tbl.column("timestamp").to_numpy().astype(np.int64))
    # The exact roll instants (19:00 local at both offsets) +- 1 ns and +- 1 us, every third day of a year.
    edges = []
    for days in range(0, 400, 3):
        base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * sec + days * 86400 * sec
        for off_h in (8, 9):  # 19:00 local = 08:00 UTC (UTC+11) or 09:00 UTC (UTC+10)
            t = base + off_h * 3600 * sec
            edges.append(np.array([t - 1000, t - 1, t, t + 1, t + 1000], dtype=np.int64))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    out: dict[str, object] = {}
    for label, arrays in (("sample", sample), ("roll_edges", edges)):
        ts = np.concatenate(arrays)
        frame = pl.DataFrame({"timestamp": ts})
        ref = frame.select(trading_date(pl.col("timestamp"), TZ, dtime(19, 0)))["timestamp"]
        t = frame.to_arrow()  # noqa: F841 (DuckDB scans the local variable `t` by name)
        out[f"{label}_rows"] = int(len(ts))
        for name, expr in (("exact", DUCKDB_DATE_EXACT), ("double", DUCKDB_DATE_DOUBLE)):
            got = pl.from_arrow(con.sql(f"SELECT {expr} AS d FROM t").to_arrow_table())["d"]  # type: ignore[index]
            bad = (got != ref).fill_null(True)
            out[f"{label}_mismatches_{name}"] = int(bad.sum())
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                out[f"{label}_first_mismatch_{name}"] = {
                    "timestamp": int(ts[i]),
                    "dpsim": str(ref[i]),
                    "duckdb": str(got[i]),
                }
        if label == "sample":
            utc_dates = pl.from_epoch(pl.Series(ts), time_unit="ns").dt.date()
            out["sample_plain_utc_date_wrong_share"] = float((utc_dates != ref).mean())  # type: ignore[arg-type]
    print(json.dumps(out))


def cmd_pgcopy(a: argparse.Namespace) -> None:
    """The export peer: psycopg 3 `COPY … FROM STDIN` fed CSV by pyarrow's C++ writer (the fast path a
    hand-written loader takes), one transaction per partition (DELETE + COPY + COMMIT) like dpsim export,
    into a table re-created first (like `dpsim export --rebuild`). Rows stream a batch at a time."""
    from datetime import date

    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    types = {"int64": "BIGINT", "double": "DOUBLE PRECISION", "bool": "BOOLEAN", "string": "TEXT"}
    files = sorted(Path(a.lake, "results", a.table).glob("security_code=*/date=*/*.parquet"))
    t0 = time.perf_counter()
    schema = pq.read_schema(files[0])
    table = f'"{a.schema}"."{a.table}"'
    names = ["security_code", "date", *schema.names]
    rows = 0
    opts = pacsv.WriteOptions(include_header=False)
    with psycopg.connect(a.url) as con:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{a.schema}"')
        con.execute(f"DROP TABLE IF EXISTS {table}")
        cols = ["security_code BIGINT NOT NULL", "date DATE NOT NULL"]
        cols += [f'"{f.name}" {types[str(f.type).replace("large_", "")]}' for f in schema]
        con.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
        con.execute(f"CREATE INDEX ON {table} (security_code, date)")
        con.commit()
        copy_sql = f"COPY {table} ({', '.join(chr(34) + n + chr(34) for n in names)}) FROM STDIN (FORMAT csv)"
        for path in files:
            sec = int(path.parent.parent.name.split("=", 1)[1])
            day = date.fromisoformat(path.parent.name.split("=", 1)[1])
            with con.cursor() as cur:
                cur.execute(f"DELETE FROM {table} WHERE security_code = %s AND date = %s", (sec, day))
                with cur.copy(copy_sql) as copy:
                    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536):
                        n = batch.num_rows
                        keyed = pa.RecordBatch.from_arrays(
                            [pa.repeat(pa.scalar(sec), n), pa.repeat(pa.scalar(day), n), *batch.columns],
                            names=names,
                        )
                        buf = io.BytesIO()
                        pacsv.write_csv(keyed, buf, opts)
                        copy.write(buf.getbuffer())
                        rows += n
            con.commit()
    print(json.dumps({"rows": rows, "partitions": len(files), "seconds": round(time.perf_counter() - t0, 3)}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("duckdb", cmd_duckdb), ("polars", cmd_polars)):
        sp = sub.add_parser(name)
        sp.add_argument("src")
        sp.add_argument("out")
        sp.add_argument("--threads", type=int, default=2)
        sp.add_argument("--compression", default="zstd")
        if name == "duckdb":
            sp.add_argument("--memory-limit", default="")
            sp.add_argument("--temp", default="")
        sp.set_defaults(func=fn)
    sp = sub.add_parser("seed")
    sp.add_argument("src")
    sp.add_argument("--security", type=int, required=True)
    sp.add_argument("--date", required=True)
    sp.add_argument("--trades", default="")
    sp.add_argument("--chunk-mb", type=int, default=1024)
    sp.set_defaults(func=cmd_seed)
    sp = sub.add_parser("pgcopy")
    sp.add_argument("lake")
    sp.add_argument("url")
    sp.add_argument("--schema", default="bench_peer")
    sp.add_argument("--table", default="sweeps")
    sp.set_defaults(func=cmd_pgcopy)
    sp = sub.add_parser("datecheck")
    sp.add_argument("src", nargs="?", default="")
    sp.set_defaults(func=cmd_datecheck)
    a = p.parse_args(argv)
    a.func(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

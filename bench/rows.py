"""The result rows of a benchmark run: one per measured command (or derived figure), as stored in the
results JSON (`bench/results/*.json`, key `rows`) and read back by `render`."""

from __future__ import annotations

from typing import Any, TypedDict


class Row(TypedDict, total=False):
    section: str  # shred_peers | scaling | gzip | many_partitions | shred_workers | process | seed | kernel | export | report | prototype | profile | aggregate | query | year
    case: str  # what was measured (an input, a size, a scenario)
    tool: str  # who did it: dpsim, a dpsim command line, or a peer (duckdb, polars, cat, gzip_dc, seed, …)
    input: dict[str, Any]  # the input's description (path, bytes, rows, partitions, …)
    command: str  # the exact command, runnable from the repository root
    env: dict[str, str]  # environment variables set for it
    warmup: int
    reps: int
    runs: list[dict[str, Any]]  # every timed run (wall time, peak RSS, load)
    wall_s: float | None  # median wall time of the runs
    peak_rss_mb: float | None  # median peak RSS (the larger of GNU time's and the sampled process tree's)
    mb_s: float  # uncompressed input MB per second
    rows_s: float  # input rows per second
    jobs_s: float  # partition jobs per second (process)
    extra: dict[str, Any]  # section-specific figures (manifests, partition files, kernel timings, …)
    ratios: dict[str, Any]  # dpsim against each peer on the same input (shred_peers)
    vs_dpsim: dict[str, Any]  # a peer's ratios, seen from the peer's row
    derived: str  # how it was computed from other rows (not measured)
    reused: bool  # measured once for another section on the same input, copied here
    error: str | None  # why the command failed (its rows have no figures)


Table = tuple[str, list[str], list[list[str]]]  # title, column heads, rows of cells

SMALL = "input < 1 GB, process start-up dominates"
SHRED_SECTIONS = ("shred_peers", "gzip", "scaling", "many_partitions", "shred_workers")
TOOL_NAMES = {
    "dpsim": "dpsim shred",
    "dpsim_w2": "dpsim shred --workers 2",
    "dpsim_1core": "taskset -c 0 dpsim shred (1 core)",
    "duckdb": "DuckDB COPY (threads=2)",
    "duckdb_mem": "DuckDB COPY (threads=2, memory_limit=budget)",
    "polars": "Polars sink_parquet(PartitionBy)",
    "cat": "cat > /dev/null (floor)",
    "gzip_dc": "gzip -dc > /dev/null (floor)",
}


def cell(x: Any, nd: int = 2) -> str:
    if x is None or x == "":
        return ""
    if isinstance(x, float):
        if x != x:
            return ""
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def failure(r: Row, width: int) -> str:
    """A failed row's error, cut to `width` and fit for a table cell."""
    return (r.get("error") or "")[:width].replace("\n", " ").replace("|", "/")


def section_rows(res: dict[str, Any], section: str) -> list[Row]:
    """The rows of one section of a results file."""
    rows: list[Row] = res.get("rows", [])
    return [r for r in rows if r.get("section") == section]

"""The lake's layout: partition keys, source ids and every path under a root, as pure functions (no I/O).

    <root>/<kind>/security_code=<int>/date=<YYYY-MM-DD>/part-<source-id>[-<n>].parquet   kind = orders|trades|nbbo
    <root>/reference/<kind>.parquet                                                     small reference files
    <root>/results/<table>/security_code=<int>/date=<YYYY-MM-DD>/part-0.parquet   job outputs (sim_orders and
                                          sim_fills: every scenario of the job in one file, a `scenario` column)
    <root>/results/_scenarios/<name>      an empty marker per scenario that jobs have written results for
    <root>/results_by_date/<table>/date=<YYYY-MM-DD>/part-0.parquet   compacted, sorted (every scenario in one file)
    <root>/results_by_date/_state.json    what each date's file was compacted from
    <root>/results_by_date/_changes/<YYYY-MM-DD>.<security_code>.<token>   a partition whose job outputs changed
    <root>/_manifest/<source-id>.json     one record per shredded source file
    <root>/_rejects/<kind>/<source-id>.parquet
    <root>/_runs/<run-id>.json  (+ <run-id>.log)   a process run, its live status rewritten as it goes
    <root>/_runs/shred/<run-id>.json      a shred session, likewise
    <root>/_exports/<target>.json         what `dpsim export` sent to each target (partition signatures)
    <root>/aggregates/<name>.parquet (+ .csv), _state.json
    <root>/aggregates/_partials/manifest.json            slices' fingerprints (incremental aggregation)
    <root>/aggregates/_partials/merged.json              what the aggregate files were merged from
    <root>/aggregates/_partials/<name>.parquet           measures, moments, clusters, fidelity, quality rows
    <root>/aggregates/_partials/stream/scenario=<name>/<YYYY-MM-DD>.parquet   one slice's differences
    <root>/dpsim.duckdb
    <root>/_tmp/<host>-<pid>/<name>       a process's scratch (temp files, staging, DuckDB spill), removed
                                          by the next writer once that process is gone
    <root>/_locks/<scope>.lock            one writer per scope (see `locks`)
Partition keys live in the path only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upath import UPath


RAW_TABLES = ("orders", "trades", "nbbo")
# Small reference files: copied to the lake as-is (types inferred), never required by the pipeline.
REFERENCE_KINDS = ("reference", "session", "participants")
RESULT_TABLES = ("sweeps", "quality", "replay_fidelity", "sim_fills", "sim_orders")
SCENARIO_TABLES = ("sim_fills", "sim_orders")
PART_GLOB = "security_code=*/date=*/*.parquet"  # every part file of a table, below its folder
_PART_RE = re.compile(r"^security_code=(-?\d+)$")
_DATE_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, order=True)
class PartitionKey:
    """One (security_code, trading date) partition: the unit of work of `dpsim process`. Both become
    folder names, so both are checked: an integer and a date, never text."""

    security_code: int
    date: date

    def __post_init__(self) -> None:
        if not (isinstance(self.security_code, int) and not isinstance(self.security_code, bool)):
            raise ValueError(f"security code {self.security_code!r}: expected an integer")
        if not isinstance(self.date, date):
            raise ValueError(f"trading date {self.date!r}: expected a date")

    def __str__(self) -> str:
        return f"{self.security_code}/{self.date.isoformat()}"

    @property
    def hive(self) -> str:
        return f"security_code={self.security_code}/date={self.date.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> PartitionKey:
        """The inverse of `str(key)`: "<security_code>/<YYYY-MM-DD>" (as manifests store it)."""
        code, day = text.split("/")
        return cls(int(code), date.fromisoformat(day))

    @classmethod
    def from_folders(cls, security_folder: str, date_folder: str) -> PartitionKey | None:
        """The key of a partition's folder names (`security_code=…`, `date=…`), or None for another folder."""
        m, d = _PART_RE.match(security_folder), _DATE_RE.match(date_folder)
        if not (m and d):
            return None
        return cls(int(m.group(1)), date.fromisoformat(d.group(1)))


def source_id(path: str | Path) -> str:
    """Stable id of a source file from its absolute path: same source -> same part-file names."""
    p = Path(path).resolve()
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", p.name.split(".")[0])[:40]
    return f"{stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:10]}"


# ---- paths under a root ---------------------------------------------------------------------------


NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # a name that becomes a folder: data, never a path


def table_dir(root: UPath, table: str) -> UPath:
    return root / table if table in RAW_TABLES else root / "results" / table


def partition_dir(root: UPath, table: str, key: PartitionKey) -> UPath:
    return table_dir(root, table) / key.hive


def scenario_folder(scenario: str) -> str:
    """`scenario=<name>`: the folder of one scenario in the first layouts (job outputs and results by date)."""
    if not NAME_RE.match(scenario):  # the config checks names; this is the lake's own guard
        raise ValueError(f"scenario name {scenario!r}: only letters, digits, _ and - make a folder name")
    return f"scenario={scenario}"


def per_scenario_dir(root: UPath, table: str, scenario: str) -> UPath:
    """Where the first layout of the job outputs kept one file per scenario and partition
    (results/<table>/scenario=<name>/…): migrated to one file per partition (`lake.migration`)."""
    return table_dir(root, table) / scenario_folder(scenario)


def scenarios_dir(root: UPath) -> UPath:
    """`results/_scenarios`: one empty marker per scenario whose results jobs have written (what
    `Lake.scenarios` lists: the scenario tables hold every scenario in one file per partition)."""
    return root / "results" / "_scenarios"


def scenario_marker(root: UPath, scenario: str) -> UPath:
    scenario_folder(scenario)  # the same guard on the name
    return scenarios_dir(root) / scenario


def by_date_dir(root: UPath, table: str) -> UPath:
    """`results_by_date/<table>`: the result table compacted, one file per trading date with every scenario
    in it (what the catalog's views and the notebook read)."""
    return root / "results_by_date" / table


def by_date_path(root: UPath, table: str, day: date) -> UPath:
    return by_date_dir(root, table) / f"date={day.isoformat()}" / "part-0.parquet"


def by_date_glob(root: UPath, table: str) -> UPath:
    """Every date's file of a compacted result table (what the catalog's views and the notebook scan)."""
    return by_date_dir(root, table) / "*" / "*.parquet"


def per_scenario_by_date_dir(root: UPath, table: str, scenario: str) -> UPath:
    """Where the first layout by date kept one file per scenario and date (a lake compacted before all
    scenarios shared a date's file): the compaction removes it once the shared files are written."""
    return by_date_dir(root, table) / scenario_folder(scenario)


def per_scenario_by_date_path(root: UPath, table: str, day: date, scenario: str) -> UPath:
    return per_scenario_by_date_dir(root, table, scenario) / f"date={day.isoformat()}" / "part-0.parquet"


def by_date_state_path(root: UPath) -> UPath:
    """`results_by_date/_state.json`: the digest of the job outputs each date's file was compacted from."""
    return root / "results_by_date" / "_state.json"


def changes_dir(root: UPath) -> UPath:
    """`results_by_date/_changes`: one empty marker per partition whose job outputs were published or removed
    since the last compaction (the compaction's inbox: it rewrites those dates without walking the lake)."""
    return root / "results_by_date" / "_changes"


def change_marker(root: UPath, key: PartitionKey, token: str) -> UPath:
    return changes_dir(root) / f"{key.date.isoformat()}.{key.security_code}.{token}"


def changed_date(marker_name: str) -> date | None:
    """The trading date a change marker names (None for anything else in the folder)."""
    day, _, rest = marker_name.partition(".")
    try:
        return date.fromisoformat(day) if rest else None
    except ValueError:
        return None


def key_of_result_path(path: UPath) -> PartitionKey | None:
    """The partition a job output file belongs to (from its two parent folders' names)."""
    return PartitionKey.from_folders(path.parent.parent.name, path.parent.name)


def result_path(root: UPath, table: str, key: PartitionKey) -> UPath:
    return partition_dir(root, table, key) / "part-0.parquet"


def raw_part_path(root: UPath, kind: str, key: PartitionKey, source: str, piece: int = 0) -> UPath:
    suffix = "" if piece == 0 else f"-{piece}"
    return partition_dir(root, kind, key) / f"part-{source}{suffix}.parquet"


def source_part_glob(source: str) -> str:
    """Names that may be a source's part files (`is_source_part` tells them from another source's)."""
    return f"part-{source}*.parquet"


def is_source_part(name: str, source: str) -> bool:
    """part-<source>.parquet or part-<source>-<piece>.parquet (not another source whose id extends this one)."""
    return (
        name == f"part-{source}.parquet"
        or re.fullmatch(rf"part-{re.escape(source)}-\d+\.parquet", name) is not None
    )


def reference_path(root: UPath, kind: str) -> UPath:
    return root / "reference" / f"{kind}.parquet"


def manifest_dir(root: UPath) -> UPath:
    return root / "_manifest"


def manifest_path(root: UPath, source: str) -> UPath:
    return manifest_dir(root) / f"{source}.json"


def rejects_path(root: UPath, kind: str, source: str) -> UPath:
    return root / "_rejects" / kind / f"{source}.parquet"


def runs_dir(root: UPath) -> UPath:
    return root / "_runs"


def run_path(root: UPath, run_id: str, suffix: str = ".json") -> UPath:
    return runs_dir(root) / f"{run_id}{suffix}"


def shred_runs_dir(root: UPath) -> UPath:
    """`_runs/shred/`: shred sessions, beside (not among) the process runs that `_runs/*.json` lists."""
    return runs_dir(root) / "shred"


def aggregates_state_path(root: UPath) -> UPath:
    """What the aggregates were computed from (results and config), to skip an unchanged aggregation."""
    return aggregates_dir(root) / "_state.json"


def aggregates_dir(root: UPath) -> UPath:
    return root / "aggregates"


def partials_dir(root: UPath) -> UPath:
    """The incremental aggregation's partial aggregates (docs/aggregates.md, "Incremental aggregation")."""
    return aggregates_dir(root) / "_partials"


def partial_path(root: UPath, name: str) -> UPath:
    """`_partials/<name>.parquet`: one small partial table, the rows of every slice."""
    return partials_dir(root) / f"{name}.parquet"


def partial_stream_path(root: UPath, scenario: str, day: date) -> UPath:
    """`_partials/stream/scenario=<name>/<YYYY-MM-DD>.parquet`: one slice's differences."""
    return partials_dir(root) / "stream" / f"scenario={scenario}" / f"{day.isoformat()}.parquet"


def partials_merged_path(root: UPath) -> UPath:
    """`_partials/merged.json`: the key (slices' fingerprints, settings, version) the aggregate files were
    merged from: an aggregation finding the same key has nothing to merge again."""
    return partials_dir(root) / "merged.json"


def partials_manifest_path(root: UPath) -> UPath:
    """`_partials/manifest.json`: the format version and every slice's fingerprint."""
    return partials_dir(root) / "manifest.json"


def exports_dir(root: UPath) -> UPath:
    """One JSON per export target: the signatures of the partitions sent there (incremental exports)."""
    return root / "_exports"


def results_dir(root: UPath) -> UPath:
    return root / "results"


def locks_dir(root: UPath) -> UPath:
    return root / "_locks"


def scratch_root(root: UPath) -> UPath:
    """`<root>/_tmp`: the lake's scratch folders (per process: `<host>-<pid>`, see `store`)."""
    return root / "_tmp"


def scratch_dir(root: UPath, name: str) -> UPath:
    """`<root>/_tmp/<name>`: a scratch folder inside the lake."""
    return scratch_root(root) / name


def relative_key(root: UPath, path: UPath) -> str:
    """A lake path as its key below the root (what a worker on another machine resolves against its root)."""
    text, prefix = str(path), str(root).rstrip("/") + "/"
    if not text.startswith(prefix):
        raise ValueError(f"{path} is not under the lake root {root}")
    return text[len(prefix) :]


def slug(root: UPath) -> str:
    """A readable, unique local folder name for a remote root (scratch folder, catalog cache)."""
    text = str(root)
    return (
        re.sub(r"[^A-Za-z0-9]+", "_", text)[-40:].strip("_")
        + "-"
        + hashlib.sha1(text.encode()).hexdigest()[:8]
    )

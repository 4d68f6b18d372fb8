"""The job outputs' first layout, migrated: one file per scenario and partition becomes one file per partition.

Jobs first wrote sim_orders and sim_fills as results/<table>/scenario=<name>/security_code=…/date=…/part-0.parquet:
with the default seven scenarios, 17 files per partition (~930,000 for a year), whose per-file costs (open,
writer set-up, footer, rename) were more than half of a job's write time (BENCHMARKS.md, "Fifth stop"). Jobs now write every scenario of a partition into one file
with a `scenario` column. A lake still holding `scenario=` folders is migrated by the next writer of its
results (`dpsim process`, `dpsim aggregate`, `dpsim catalog`): partition by partition,
the scenarios' files are read, given their `scenario` column and published as one file (atomically, and
noted for the compaction, like a job's); the old folders are removed last, so an interrupted migration is
redone whole by the next writer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dpsim.lake import layout
from dpsim.lake.lake import Lake
from dpsim.lake.layout import SCENARIO_TABLES, PartitionKey

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)


def migrate_job_outputs(lake: Lake) -> int:
    """Rewrite every scenario table still in the first layout; returns the partitions rewritten. Hold "results"."""
    rewritten = 0
    for table in SCENARIO_TABLES:
        scenarios = lake.first_layout_scenarios(table)
        if not scenarios:
            continue
        folders = {s: layout.per_scenario_dir(lake.root, table, s) for s in scenarios}
        keys = sorted({k for folder in folders.values() for k in lake.store.partitions(folder)})
        log.warning(
            "%s: migrating %d partitions from one file per scenario (%s) to one file per partition",
            lake.table_dir(table),
            len(keys),
            ", ".join(scenarios),
        )
        for key in keys:
            _merge_partition(lake, table, key, folders)
        lake.note_scenarios(scenarios)
        for folder in folders.values():
            lake.remove_tree(folder)
        rewritten += len(keys)
    return rewritten


def _merge_partition(lake: Lake, table: str, key: PartitionKey, folders: dict[str, UPath]) -> None:
    import pyarrow as pa  # on first use, as the lake's other Parquet I/O

    from dpsim.buffers import from_values  # not pa.array: pyarrow imports pandas for it when installed

    parts = []
    for scenario, folder in sorted(folders.items()):
        d = folder / key.hive
        for path in sorted(d.glob("*.parquet")) if d.is_dir() else []:
            t = lake.read_parquet(path)
            parts.append(t.add_column(0, "scenario", from_values([scenario] * t.num_rows, pa.string())))
    lake.publish_results(
        {lake.result_path(table, key): pa.concat_tables(parts, promote_options="permissive")}
    )

"""The lake: the only package that knows paths and file layout (`layout`), where bytes live (`store`),
the records of what was done (`manifests`) and how a source is published whole (`publish`)."""

from dpsim.lake.lake import Lake
from dpsim.lake.layout import (
    RAW_TABLES,
    REFERENCE_KINDS,
    RESULT_TABLES,
    SCENARIO_TABLES,
    PartitionKey,
    source_id,
)
from dpsim.lake.store import OBJECT_STORES, make_dirs
from dpsim.lake.table_files import TableFiles

__all__ = [
    "OBJECT_STORES",
    "RAW_TABLES",
    "REFERENCE_KINDS",
    "RESULT_TABLES",
    "SCENARIO_TABLES",
    "TableFiles",
    "Lake",
    "PartitionKey",
    "make_dirs",
    "source_id",
]

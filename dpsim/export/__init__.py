"""Results where the rest of the firm reads them: `dpsim export` to PostgreSQL (postgres.py, through ADBC)
or to warehouse-loadable Parquet (portable.py); source.py is the lake side both share (what exists, what
changed since the last export to a target, the rows as Arrow batches with the hive keys as columns)."""

from __future__ import annotations

from dpsim.export.pgdb import redact
from dpsim.export.portable import export_portable
from dpsim.export.postgres import export_postgres
from dpsim.export.source import ExportResult, Selection, TableStats, parse_tables

__all__ = [
    "ExportResult",
    "Selection",
    "TableStats",
    "export_portable",
    "export_postgres",
    "parse_tables",
    "redact",
]

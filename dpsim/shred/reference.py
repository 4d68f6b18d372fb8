"""Small reference files (reference, session, participants): read whole, one lake file per kind."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, replace

import pyarrow as pa
import pyarrow.csv as pacsv

from dpsim import schema
from dpsim.lake import Lake, manifests, source_id
from dpsim.shred.read import (
    CORRUPT_ERRORS,
    StoredFile,
    decoded_blocks,
)
from dpsim.shred.source import SourceResult, skipped

LOG = logging.getLogger(__name__)


# Header aliases of the small reference files (their columns are otherwise kept as found, lower-cased).
REFERENCE_ALIASES: dict[str, dict[str, str]] = {
    "reference": {
        "id": schema.SECURITY_CODE,
        "orderbookid": schema.SECURITY_CODE,
        "securitycode": schema.SECURITY_CODE,
    },
    "session": {
        "orderbookid": schema.SECURITY_CODE,
        "securitycode": schema.SECURITY_CODE,
        "id": schema.SECURITY_CODE,
    },
    "participants": {"id": schema.PARTICIPANT},
}


def shred_reference(kind: str, paths: list[str], lake: Lake, force: bool) -> list[SourceResult]:
    """Read every file of a reference kind whole (types inferred) into one lake file; skipped when unchanged.
    One writer per kind (the lake lock `reference-<kind>`)."""
    with lake.lock(f"reference-{kind}"):
        return _shred_reference(kind, paths, lake, force)


def _shred_reference(kind: str, paths: list[str], lake: Lake, force: bool) -> list[SourceResult]:
    stats = {p: os.stat(p) for p in paths}
    prevs = {p: manifests.read_source(lake, source_id(p)) for p in paths}
    unchanged = {
        p: prev for p, prev in prevs.items() if prev is not None and manifests.unchanged(prev, p, stats[p])
    }
    if not force and len(unchanged) == len(paths):
        return [skipped(unchanged[p]) for p in paths]
    results, tables = [], []
    for p in paths:
        started = time.perf_counter()
        stored = StoredFile(p)
        table, error = None, None
        try:
            data = b"".join(decoded_blocks(stored, p, 8 << 20))
            table = pacsv.read_csv(pa.py_buffer(data))
            aliases = REFERENCE_ALIASES[kind]
            table = table.rename_columns(
                [aliases.get(n.strip().lower(), n.strip().lower()) for n in table.column_names]
            )
            tables.append(table)
        except (*CORRUPT_ERRORS, pa.ArrowInvalid) as exc:
            error = f"{p}: cannot read the {kind} file ({exc}): re-export or re-copy it"
            LOG.error("%s", error)
        finally:
            stored.close()
        n = table.num_rows if table is not None else 0
        results.append(
            SourceResult(
                kind=kind,
                path=p,
                source_id=source_id(p),
                size=stats[p].st_size,
                fingerprint=stored.fingerprint(),
                rows_read=n,
                rows_written=n,
                rows_rejected=0,
                partitions=[],
                files_written=int(table is not None),
                seconds=time.perf_counter() - started,
                status="failed" if error else "shredded",
                error=error,
            )
        )
    try:
        combined = pa.concat_tables(tables, promote_options="permissive") if tables else None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        error = f"{', '.join(paths)}: the {kind} files do not share column types ({exc}): make them agree"
        results = [replace(r, rows_written=0, files_written=0, status="failed", error=error) for r in results]
        combined = None
    if combined is not None:
        lake.write_parquet(combined, lake.reference_path(kind))
    else:  # nothing readable: no stale copy of an older drop's file
        lake.reference_path(kind).unlink(missing_ok=True)
    for r in results:
        manifests.write_source(
            lake,
            r.source_id,
            {
                **asdict(r),
                "mtime_ns": stats[r.path].st_mtime_ns,
                "finished_at": manifests.now(),
                "file": str(lake.reference_path(kind)),
            },
        )
    return results

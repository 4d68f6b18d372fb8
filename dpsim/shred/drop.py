"""A data drop: the input globs of every kind resolved to files, each file shredded into the lake."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dpsim import schema
from dpsim.catalog import refresh_catalog
from dpsim.config import Config
from dpsim.errors import InputError
from dpsim.lake import RAW_TABLES, REFERENCE_KINDS, Lake
from dpsim.lake.manifests import RunManifest
from dpsim.live import Heartbeat, ShredBoard, session_fields
from dpsim.progress import Progress, SilentProgress
from dpsim.shred.ranges import shred_parallel
from dpsim.shred.reference import shred_reference
from dpsim.shred.source import SourceResult, shred_source
from dpsim.shred.stream import without_huge_pages

LOG = logging.getLogger(__name__)


KINDS = (*RAW_TABLES, *REFERENCE_KINDS)
REQUIRED_KINDS = ("orders",)


def shred_drop(
    cfg: Config,
    lake: Lake,
    *,
    inputs: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    command: str = "",
) -> list[SourceResult]:
    """The `dpsim shred` session: shred the drop (see `shred`), then refresh the lake's DuckDB catalog.

    The session is recorded in `_runs/shred/<run-id>.json` with its live status (every source's bytes
    and rows as it goes), for `dpsim status` and `dpsim monitor`."""
    files = _resolve_inputs(cfg, inputs or {})
    board = ShredBoard(files)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    header = {
        "run_id": run_id,
        "kind": "shred",
        "started": datetime.now(UTC).isoformat(),
        "command": command,
        "config_source": cfg.source,
        **session_fields(),
    }
    manifest: RunManifest[Any] = RunManifest(
        lake, run_id, header, path=lake.shred_runs_dir / f"{run_id}.json", with_jobs=False
    )
    heartbeat = Heartbeat(manifest, board.snapshot).start()
    try:
        results = _shred_files(
            cfg, lake, files, force, board.progress(progress or SilentProgress()), board.finished
        )
        board.phase = "catalog"
        refresh_catalog(lake)
    except KeyboardInterrupt:
        heartbeat.stop("interrupted")
        raise
    except BaseException as exc:
        heartbeat.stop("error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    board.phase = "done"
    heartbeat.stop("finished", finished=datetime.now(UTC).isoformat())
    return results


def shred(
    cfg: Config,
    lake: Lake,
    *,
    inputs: Mapping[str, Sequence[str]] | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> list[SourceResult]:
    """Shred every source file of a data drop into the lake; failed sources are reported, not raised.

    `inputs` maps kind -> globs and overrides `cfg.inputs` for the kinds it names. `progress` gets one
    bytes task per source file (the caller renders the summary table from the returned results).
    """
    files = _resolve_inputs(cfg, inputs or {})
    return _shred_files(cfg, lake, files, force, progress or SilentProgress(), lambda _: None)


def _shred_files(
    cfg: Config,
    lake: Lake,
    files: Mapping[str, Sequence[str]],
    force: bool,
    progress: Progress,
    on_result: Callable[[SourceResult], None],
) -> list[SourceResult]:
    """Shred the resolved files of every kind; `on_result` sees each source's result as it comes."""
    results: list[SourceResult] = []

    def add(found: Sequence[SourceResult]) -> None:
        for r in found:
            results.append(r)
            on_result(r)

    with without_huge_pages():
        if cfg.shred.workers > 1:
            sources = [
                (schema.PARTITIONED_KINDS[k], p)
                for k, ps in files.items()
                if k in schema.PARTITIONED_KINDS
                for p in ps
            ]
            add(shred_parallel(cfg, lake, sources, force, progress))
        for kind, paths in files.items():
            if kind in schema.PARTITIONED_KINDS and cfg.shred.workers > 1:
                continue
            if kind in schema.PARTITIONED_KINDS:
                for path in paths:
                    add([shred_source(schema.PARTITIONED_KINDS[kind], path, cfg, lake, force, progress)])
            elif paths:
                add(shred_reference(kind, list(paths), lake, force))
    return results


def _resolve_inputs(cfg: Config, inputs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Expand the globs of every kind (absolute paths, sorted, de-duplicated); fail early on missing orders.

    A kind named in `inputs` takes its globs from there (an empty list: none). When `inputs` names a drop
    (any of orders, trades, nbbo), the optional reference kinds it does not name are not read: the config's
    would belong to another drop.
    """
    unknown = sorted(set(inputs) - set(KINDS))
    if unknown:
        raise InputError(f"unknown input kind(s) {', '.join(unknown)}: use {', '.join(KINDS)}")
    names_drop = any(k in inputs for k in schema.PARTITIONED_KINDS)
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        if kind in inputs:
            globs: Sequence[str] = inputs[kind]
        elif names_drop and kind in REFERENCE_KINDS:
            globs = ()
        else:
            globs = getattr(cfg.inputs, kind)
        paths: dict[str, None] = {}
        for pattern in globs:
            literal = os.path.expanduser(pattern)
            # a file named as given is that file, even when its name holds glob characters ("orders[1].csv")
            matches = (
                [literal]
                if os.path.isfile(literal)
                else sorted(p for p in glob.glob(literal, recursive=True) if os.path.isfile(p))
            )
            if not matches:
                if kind in REQUIRED_KINDS:
                    raise InputError(
                        f"no {kind} file matches {pattern!r}: check inputs.{kind} in the config or --{kind}"
                    )
                LOG.warning("no %s file matches %r; carrying on without it", kind, pattern)
            for m in matches:
                paths[str(Path(m).resolve())] = None
        out[kind] = list(paths)
    return out

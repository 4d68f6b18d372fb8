"""Which partitions a `dpsim process` run takes, and why: the selection, the fingerprints of inputs and
config, and each partition's verdict (run, or skip as unchanged) with its reason. Reads the lake, writes
nothing: `dpsim plan` shows it before a run, and the run itself follows it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from dpsim import __version__
from dpsim.config import Config
from dpsim.lake import Lake, PartitionKey
from dpsim.lake.manifests import last_outcomes


@dataclass(frozen=True)
class Planned:
    """One selected partition: whether it runs and why."""

    key: PartitionKey
    fingerprint: str  # "<config hash>:<inputs hash>", recorded with its job
    run: bool
    reason: str
    # the raw file names the fingerprint covers, per table of RAW_INPUTS: what its job reads, and nothing else
    inputs: tuple[tuple[str, ...], ...] = ()


def plan_partitions(
    lake: Lake,
    securities: Sequence[int] | None = None,
    dates: tuple[date, date] | None = None,
) -> tuple[list[PartitionKey], list[str]]:
    """Partitions present in the lake's orders table intersected with the requested securities and dates.

    Returns (partitions, requested-but-absent descriptions). Absent partitions are reported, not errors.
    """
    present = lake.partitions("orders")
    chosen = [
        k
        for k in present
        if (not securities or k.security_code in securities)
        and (dates is None or dates[0] <= k.date <= dates[1])
    ]
    missing: list[str] = []
    present_secs = {k.security_code for k in present}
    for s in securities or ():
        if s not in present_secs:
            missing.append(f"security {s}: no orders in the lake")
        elif dates is not None and not any(k.security_code == s for k in chosen):
            missing.append(f"security {s}: no orders between {dates[0]} and {dates[1]}")
    if dates is not None and not securities and not chosen:
        missing.append(f"no partitions between {dates[0]} and {dates[1]}")
    return chosen, missing


def describe_lake(lake: Lake) -> str:
    """What the lake holds, for a selection that matched nothing: "3 securities (110621..110630),
    dates 2024-09-02..2024-09-06"."""
    present = lake.partitions("orders")
    if not present:
        return "no orders partitions"
    secs = sorted({k.security_code for k in present})
    days = sorted({k.date for k in present})
    return (
        f"{len(secs)} securities ({secs[0]}..{secs[-1]}), {len(days)} dates ({days[0]}..{days[-1]})"
        if len(secs) > 1
        else f"security {secs[0]}, {len(days)} dates ({days[0]}..{days[-1]})"
    )


def config_hash(cfg: Config, scenarios: Sequence[str]) -> str:
    """Hash of everything that changes a partition's results (code version included)."""
    d = cfg.to_dict()
    relevant = {k: d[k] for k in ("time", "codes", "filters", "buckets", "metrics", "replay")}
    relevant["scenarios"] = {s: d["scenarios"][s] for s in scenarios}
    relevant["version"] = __version__
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


RAW_INPUTS = ("orders", "trades", "nbbo")


def input_fingerprints(lake: Lake, keys: Sequence[PartitionKey]) -> dict[PartitionKey, str]:
    """Names, sizes and mtimes of each partition's raw files: changes when a new drop touches it."""
    return {key: fp for key, (fp, _) in planned_inputs(lake, keys).items()}


def planned_inputs(
    lake: Lake, keys: Sequence[PartitionKey]
) -> dict[PartitionKey, tuple[str, tuple[tuple[str, ...], ...]]]:
    """Per partition: the fingerprint of its raw files (names, sizes, mtimes) and their names per raw table
    (`RAW_INPUTS` order), from one listing per table: what its job reads, and nothing else."""
    signatures = {table: lake.file_signatures(table, keys) for table in RAW_INPUTS}
    out = {}
    for key in keys:
        h = hashlib.sha256()
        for table, files in signatures.items():
            for f in files[key]:
                h.update(f"{table}/{f};".encode())
        names = tuple(tuple(f.split(":", 1)[0] for f in signatures[table][key]) for table in RAW_INPUTS)
        out[key] = (h.hexdigest()[:16], names)
    return out


def plan_jobs(
    cfg: Config, lake: Lake, partitions: Sequence[PartitionKey], scenarios: Sequence[str], force: bool
) -> list[Planned]:
    """Each partition's verdict: it runs when forced, new, failed last time, its inputs or config
    changed since its last successful job, or its results are not all there; otherwise it is skipped as
    unchanged."""
    chash = config_hash(cfg, scenarios)
    before = last_outcomes(lake)
    have = lake.partitions_with_results(scenarios) if before and not force else set()
    out = []
    for key, (inputs, names) in planned_inputs(lake, partitions).items():
        fp = f"{chash}:{inputs}"
        last = before.get(str(key))
        if force:
            verdict = (True, "forced (--force or --only-failed)")
        elif last is None:
            verdict = (True, "never processed")
        elif last["status"] == "failed":
            verdict = (True, f"failed in run {last['run_id']}")
        elif last["fingerprint"] == fp and key not in have:
            verdict = (True, "results missing (removed since its last run)")
        elif last["fingerprint"] == fp:
            verdict = (False, f"unchanged since run {last['run_id']}")
        elif last["fingerprint"].split(":")[0] != chash:
            verdict = (True, "configuration or scenarios changed")
        else:
            verdict = (True, "inputs changed (files added or re-shredded)")
        out.append(Planned(key, fp, *verdict, inputs=names))
    return out

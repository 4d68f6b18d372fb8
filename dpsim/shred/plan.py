"""The header plan: how one file's header maps to the canonical columns of its kind (fixed for the file)."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from datetime import time as dtime

import pyarrow as pa

from dpsim import schema
from dpsim.config import Config, parse_hhmm
from dpsim.errors import InputError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """How one file's header maps to the canonical columns of its kind (fixed for the whole file)."""

    kind: schema.RawKind
    path: str
    names: list[str]  # names given to pyarrow, in header order (canonical, or a placeholder for dropped ones)
    present: list[str]  # canonical columns found, in schema order
    header: dict[str, str]  # canonical -> raw header text
    dropped: list[str]  # raw headers not in the schema
    missing: list[str]  # optional lake columns absent from the file: written as nulls
    timezone: str
    day_roll: dtime

    @property
    def typed(self) -> dict[str, pa.DataType]:
        return {c: self.kind.columns[c] for c in self.present}

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(list(self.typed.items()))

    @property
    def sort_keys(self) -> list[str]:
        return [c for c in (schema.TIMESTAMP, schema.SEQUENCE) if c in self.present]


def make_plan(kind: schema.RawKind, path: str, header_line: str, cfg: Config) -> Plan:
    """Match the header through the alias map; a missing required column fails before any data is read."""
    fields = next(csv.reader([header_line]))
    extra_aliases = getattr(cfg.columns.aliases, kind.name, {})
    aliases = {
        **schema.DEFAULT_ALIASES.get(kind.name, {}),
        **{k.strip().lower(): v for k, v in extra_aliases.items()},
    }
    names: list[str] = []
    header: dict[str, str] = {}
    dropped: list[str] = []
    for i, raw in enumerate(fields):
        canon = aliases.get(raw.strip().lower(), raw.strip().lower())
        if canon not in kind.columns:
            dropped.append(raw)
            names.append(f"__dropped_{i}")
            continue
        if canon in header:
            raise InputError(
                f"{path}: header columns {header[canon]!r} and {raw!r} both map to {canon!r}: "
                f"remove one from the export or change columns.aliases.{kind.name} in the config"
            )
        header[canon] = raw
        names.append(canon)
    missing_required = [c for c in kind.required if c not in header]
    if missing_required:
        what = ", ".join(repr(c) for c in missing_required)
        raise InputError(
            f"{path}: required {kind.name} column {what} missing from the header (line 1 has: "
            f"{', '.join(fields)}): rename the header or map it with columns.aliases.{kind.name} in the config"
        )
    if dropped:
        LOG.info("%s: dropping columns not in the %s schema: %s", path, kind.name, ", ".join(dropped))
    present = [c for c in kind.columns if c in header]
    missing = [c for c in kind.lake_schema.names if c not in header]
    return Plan(
        kind, path, names, present, header, dropped, missing, cfg.time.timezone, parse_hhmm(cfg.time.day_roll)
    )

"""One result table's files grouped by trading date, with a digest per date: what the incremental
aggregation and the by-date compaction compare with what they last read."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from dpsim.lake.layout import PartitionKey


@dataclass(frozen=True)
class TableFiles:
    """A result table's files (one scenario's for sim_orders and sim_fills) by trading date, compactly: each
    date's paths below the table folder, and a digest of their names, sizes and modification times (the
    date's fingerprint: any file added, removed or rewritten changes it)."""

    folder: str  # the table folder as DuckDB reads it (a path or URL)
    paths: dict[date, list[str]]
    digest: dict[date, str]

    @classmethod
    def of(cls, folder: str, files: Iterator[tuple[PartitionKey, str, str]]) -> TableFiles:
        """From (partition, path below `folder`, `<size>:<modified>`) in a stable order."""
        paths: dict[date, list[str]] = defaultdict(list)
        hashes: dict[date, Any] = {}
        for key, path, signature in files:
            paths[key.date].append(path)
            h = hashes.get(key.date) or hashes.setdefault(key.date, hashlib.sha1())
            h.update(f"{path}:{signature}\n".encode())
        return cls(folder, dict(paths), {d: h.hexdigest() for d, h in hashes.items()})

    @classmethod
    def empty(cls) -> TableFiles:
        return cls("", {}, {})

    def files(self, days: Iterable[date]) -> list[str]:
        """The paths (as DuckDB reads them) of the given dates' files."""
        return [f"{self.folder}/{p}" for d in days for p in self.paths.get(d, [])]

"""Shred: stream raw CSV exports (plain, .gz, .zst) in bounded blocks into the lake's hive partitions, with
rejects. One module per stage: `drop` (inputs -> sources), `source` (one source as a transaction), `read`
(bytes -> line-aligned chunks), `plan` (header -> columns), `parse` and `rules` (chunk -> rows, rejects,
partitions), `stream` (threads and the memory model), `write` (staged part files), `ranges` (several
processes), `reference` (small reference files)."""

from dpsim.shred.drop import KINDS, shred, shred_drop
from dpsim.shred.source import SourceResult

__all__ = ["KINDS", "SourceResult", "shred", "shred_drop"]

"""`python -m dpsim` is the same as the `dpsim` console script."""

from dpsim.cli import entry

raise SystemExit(entry())

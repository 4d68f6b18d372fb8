"""dpsim: did dark-pool sweep orders execute well, and would they have done better resting in Centre Point?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dpsim.notebook import OpenLake

__version__ = "0.1.0"


def open_lake(root: str | Any) -> OpenLake:
    """A lake's results as Polars frames for a notebook (dpsim.notebook; README, "Notebooks")."""
    from dpsim.notebook import open_lake as _open  # imported on use: `import dpsim` stays light

    return _open(root)

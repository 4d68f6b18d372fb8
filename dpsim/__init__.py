"""dpsim: did dark-pool sweep orders execute well, and would they have done better resting in Centre Point?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dpsim.notebook import OpenLake

__version__ = "0.1.0"

# The packages whose versions decide results and compatibility (`dpsim version`); read from the installed
# distributions' metadata, so nothing is imported and an optional one that is absent is null.
VERSIONED = ("polars", "duckdb", "pyarrow", "dask", "distributed")


def versions() -> dict[str, str | None]:
    """dpsim's, Python's and those of `VERSIONED` (None: not installed)."""
    import platform
    from importlib import metadata

    out: dict[str, str | None] = {"dpsim": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def open_lake(root: str | Any) -> OpenLake:
    """A lake's results as Polars frames for a notebook (dpsim.notebook; README, "Notebooks")."""
    from dpsim.notebook import open_lake as _open  # imported on use: `import dpsim` stays light

    return _open(root)

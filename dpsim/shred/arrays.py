"""Arrow columns to numpy and Python values to Arrow, through Polars, for the shred.

pyarrow imports pandas, when it is installed, the first time a process converts between Arrow and numpy or
Python values (`pa.array`, `Array.to_numpy`, …): ~0.2 s of a `dpsim shred`, for a library dpsim never uses.
Polars, which the shred has loaded anyway, makes the same conversions without it (zero-copy for numbers
without nulls); tests/test_shred.py checks that a shred never imports pandas.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as a numpy array (nulls of a number column as NaN)."""
    series = pl.from_arrow(column)
    assert isinstance(series, pl.Series)
    return series.to_numpy()


def array(values: Sequence[Any] | np.ndarray, type: pa.DataType) -> pa.Array:
    """Python values or a numpy array as an Arrow array of `type`."""
    empty = pl.from_arrow(pa.nulls(0, type))
    assert isinstance(empty, pl.Series)
    return pl.Series(values=values, dtype=empty.dtype).to_arrow().cast(type)

"""`dpsim.buffers` builds and reads Arrow arrays by their buffers exactly as pyarrow's own conversions do."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from dpsim import buffers

CASES = [
    (["baseline", None, "é ümlaut", ""], pa.string()),
    ([1, None, -(2**62), 0], pa.int64()),
    ([1.5, None, float("nan"), -0.0], pa.float64()),
    ([True, None, False, True, True, False, False, True, True], pa.bool_()),
    ([dt.date(2024, 9, 5), None, dt.date(1969, 12, 31)], pa.date32()),
    ([[1.0, 2.5], None, [], [float("nan")]], pa.list_(pa.float64())),
    ([], pa.string()),
]


def same(a: pa.Array, b: pa.Array) -> bool:
    """Equal types, nulls and values, a NaN equal to a NaN (`Array.equals` says it is not)."""
    return a.type == b.type and a.null_count == b.null_count and repr(a.to_pylist()) == repr(b.to_pylist())


@pytest.mark.parametrize(("values", "arrow_type"), CASES)
def test_from_values_is_pa_array(values: list[object], arrow_type: pa.DataType) -> None:
    built = buffers.from_values(values, arrow_type)
    built.validate(full=True)
    assert same(built, pa.array(values, arrow_type))
    assert built.null_count == sum(v is None for v in values)


def test_numbers_both_ways_with_offsets_and_chunks() -> None:
    floats = np.array([0.5, np.nan, 3.0, -1.0])
    arrow = buffers.from_numpy(floats, pa.float64())
    assert same(arrow, pa.array(floats)) and arrow.null_count == 0  # NaN stays a value, as pa.array keeps it
    assert buffers.from_numpy(np.arange(3), pa.int64()).to_pylist() == [0, 1, 2]
    chunked = pa.chunked_array([pa.array([1, 2, 3]).slice(1), pa.array([4], pa.int64())])
    assert buffers.to_numpy(chunked).tolist() == [2, 3, 4]
    flags = pa.array([True, False, True, True, False, False, False, False, True, False]).slice(3)
    assert buffers.to_numpy(flags).tolist() == [True, False, False, False, False, True, False]
    assert buffers.to_numpy(pa.array([7], pa.int32())).dtype == np.int32
    with pytest.raises(ValueError, match="nulls"):
        buffers.to_numpy(pa.array([1, None]))


def test_table_is_from_pylist() -> None:
    schema = pa.schema(
        [("s", pa.string()), ("x", pa.float64()), ("n", pa.int64()), ("l", pa.list_(pa.float64()))]
    )
    rows: list[dict[str, object]] = [{"s": "a", "x": 1.5, "n": 2, "l": [1.0]}, {"s": None, "n": 3}]
    assert buffers.table(rows, schema).equals(pa.Table.from_pylist(rows, schema=schema))

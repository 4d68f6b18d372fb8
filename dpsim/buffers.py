"""Arrow arrays to numpy and Python values to Arrow, by their buffers, for the shred and the aggregation.

pyarrow imports pandas, when it is installed, the first time a process converts numpy or Python values to
Arrow or back (`pa.array`, `Array.to_numpy`, `Table.from_pylist`, …): 0.2-0.3 s of every command, for a
library dpsim never uses. dpsim's conversions are of a few simple types, which these functions build from
(or read as) numpy buffers, as pyarrow would; tests/test_unused_libraries.py checks that shred, process and
aggregate never import pandas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

_NUMPY = {"double": np.float64, "float": np.float32, "int64": np.int64, "int32": np.int32, "uint8": np.uint8}
_EPOCH = dt.date(1970, 1, 1)


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A number or boolean column without nulls as a numpy array (its buffer itself for one chunk)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [_chunk_to_numpy(c) for c in chunks]
    if not parts:
        return np.empty(0, dtype=np.bool_ if pa.types.is_boolean(column.type) else _NUMPY[str(column.type)])
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _chunk_to_numpy(chunk: pa.Array) -> np.ndarray:
    if chunk.null_count:
        raise ValueError(f"{chunk.type} column with {chunk.null_count} nulls: not a numpy array")
    data = chunk.buffers()[1]
    if pa.types.is_boolean(chunk.type):
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        return bits[chunk.offset : chunk.offset + len(chunk)].astype(np.bool_)
    values = np.frombuffer(data, dtype=_NUMPY[str(chunk.type)])
    return values[chunk.offset : chunk.offset + len(chunk)]


def from_numpy(values: np.ndarray, type: pa.DataType) -> pa.Array:
    """A numpy array of numbers as an Arrow array of `type` (NaN stays a NaN value, as `pa.array` keeps it)."""
    data = np.ascontiguousarray(values, dtype=_NUMPY[str(type)])
    return pa.Array.from_buffers(type, len(data), [None, pa.py_buffer(data)])


def from_values(values: Sequence[Any], type: pa.DataType) -> pa.Array:
    """Python values (None: null) as an Arrow array of `type`: strings, int64, float64, booleans, dates, or
    lists of float64."""
    n = len(values)
    valid = np.fromiter((v is not None for v in values), dtype=np.bool_, count=n)
    nulls = n - int(valid.sum())
    validity = None if nulls == 0 else pa.py_buffer(np.packbits(valid, bitorder="little"))
    if pa.types.is_string(type):
        encoded = [b"" if v is None else str(v).encode() for v in values]
        offsets = np.zeros(n + 1, dtype=np.int32)
        offsets[1:] = np.cumsum([len(b) for b in encoded])
        buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
        return pa.Array.from_buffers(type, n, buffers, null_count=nulls)
    if pa.types.is_list(type):
        lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int32, count=n)
        offsets = np.zeros(n + 1, dtype=np.int32)
        offsets[1:] = np.cumsum(lengths)
        flat = from_values([x for v in values if v is not None for x in v], type.value_type)
        return pa.Array.from_buffers(
            type, n, [validity, pa.py_buffer(offsets)], null_count=nulls, children=[flat]
        )
    if pa.types.is_boolean(type):
        bits = np.fromiter((bool(v) for v in values), dtype=np.bool_, count=n)
        return pa.Array.from_buffers(
            type, n, [validity, pa.py_buffer(np.packbits(bits, bitorder="little"))], null_count=nulls
        )
    if pa.types.is_date32(type):
        days = np.fromiter((0 if v is None else (v - _EPOCH).days for v in values), dtype=np.int32, count=n)
        return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(days)], null_count=nulls)
    dtype = _NUMPY[str(type)]
    data = np.fromiter((0 if v is None else v for v in values), dtype=dtype, count=n)
    return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(data)], null_count=nulls)


def table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts by column name; a missing key is a null) as an Arrow table of `schema`, as
    `pa.Table.from_pylist(rows, schema=schema)` makes it."""
    columns = [from_values([r.get(f.name) for r in rows], f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)

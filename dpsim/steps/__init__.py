"""Per-partition pipeline steps: named pure `LazyFrame -> LazyFrame` functions with declared schemas.

A step never does I/O, never collects and sorts itself when it depends on row order; only the job
runner collects. `Step.__call__` checks the declared input columns on the step's first frame, so a
missing or mistyped column fails with the step's name instead of deep inside a query plan, and the
declared output columns on its result (schemas only: no data is read). Inside `checked_once(key)` a step
checks only the first time this process sees `key` (the pipeline's input schemas and settings).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

import polars as pl
import pyarrow as pa

from dpsim import schema
from dpsim.errors import InputError

# The engine that collects a partition's frames: they are small and already in memory, where Polars'
# default streaming engine costs more per query than the work (a quarter of a job's CPU time).
ENGINE: Final = "in-memory"
# How a plan over frames already in memory is optimised when it repeats sub-plans many times (the comparison:
# its rested sweeps feed the metrics and the output): computing a repeated sub-plan again costs less than the
# optimiser's search for common sub-plans (the comparison's collect about 20 % faster without it).
UNSHARED: Final = pl.QueryOptFlags(comm_subplan_elim=False)


@dataclass
class _Scope:
    key: Hashable
    calls: Counter[str] = field(default_factory=Counter)


_SCOPE: ContextVar[_Scope | None] = ContextVar("dpsim_step_scope", default=None)
_CHECKED: set[tuple[Hashable, str, int]] = set()  # (scope key, step, its n-th call in the scope) that passed


@contextmanager
def checked_once(key: Hashable) -> Iterator[None]:
    """Within: each step call (a step's n-th call in the scope) checks its schemas only the first time
    this process runs a scope with `key`. A step's input and output schemas follow from the pipeline's
    input schemas and settings, which `key` names, never from the data; resolving a deep plan's schema
    costs ~0.5 ms, twice per step: ~6 % of a partition's job, paid once per worker instead."""
    token = _SCOPE.set(_Scope(key))
    try:
        yield
    finally:
        _SCOPE.reset(token)


@dataclass(frozen=True)
class Step:
    name: str  # = module = golden file
    fn: Callable[..., pl.LazyFrame]
    requires: Mapping[str, pl.DataType]  # columns (and dtypes) the first frame argument must have
    adds: Mapping[str, pl.DataType]  # columns the output has (beyond those it keeps)

    def __call__(self, frame: pl.LazyFrame, *args: Any, **kwargs: Any) -> pl.LazyFrame:
        scope = _SCOPE.get()
        call = None
        if scope is not None:
            scope.calls[self.name] += 1
            call = (scope.key, self.name, scope.calls[self.name])
            if call in _CHECKED:
                return self.fn(frame, *args, **kwargs)
        # collect_schema resolves a plan's schema only; no data is read.
        wrong = _mismatches(frame.collect_schema(), self.requires)
        if wrong:
            raise InputError(f"step {self.name!r}: input columns not as declared: {', '.join(wrong)}")
        out = self.fn(frame, *args, **kwargs)
        wrong = _mismatches(out.collect_schema(), self.adds)
        if wrong:  # a step that does not deliver what it declares is a bug, not an input error
            raise AssertionError(f"step {self.name!r}: output columns not as declared: {', '.join(wrong)}")
        if call is not None:
            _CHECKED.add(call)
        return out


def _mismatches(have: Mapping[str, pl.DataType], declared: Mapping[str, pl.DataType]) -> list[str]:
    return [
        f"{c} (missing)" if c not in have else f"{c} ({have[c]}, expected {t})"
        for c, t in declared.items()
        if have.get(c) != t
    ]


def pl_types(columns: Mapping[str, pa.DataType]) -> dict[str, pl.DataType]:
    """Polars dtypes of a name -> Arrow dtype mapping from `schema.py`."""
    return dict(schema.polars_schema(pa.schema(list(columns.items()))))


def pick(columns: Mapping[str, pa.DataType], *names: str) -> dict[str, pa.DataType]:
    """A subset of a `schema.py` mapping; a name that is not declared there is a KeyError at import."""
    return {n: columns[n] for n in names}

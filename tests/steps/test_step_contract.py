"""Every step checks its declared input columns on the way in and its declared output columns on the way out."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim.errors import InputError
from dpsim.steps import Step


def test_a_step_refuses_undeclared_input_and_a_missing_declared_output() -> None:
    frame = pl.LazyFrame({"a": [1, 2]})
    adds_b = Step("adds_b", lambda f: f.with_columns(b=pl.col("a") * 2), {"a": pl.Int64()}, {"b": pl.Int64()})
    assert adds_b(frame).collect()["b"].to_list() == [2, 4]
    with pytest.raises(InputError, match=r"step 'adds_b': input columns not as declared: a \(missing\)"):
        adds_b(pl.LazyFrame({"x": [1]}))
    forgets_b = Step("forgets_b", lambda f: f, {"a": pl.Int64()}, {"b": pl.Int64()})
    with pytest.raises(
        AssertionError, match=r"step 'forgets_b': output columns not as declared: b \(missing\)"
    ):
        forgets_b(frame)
    wrong_type = Step(
        "wrong_type", lambda f: f.with_columns(b=pl.lit("x")), {"a": pl.Int64()}, {"b": pl.Int64()}
    )
    with pytest.raises(AssertionError, match=r"b \(String, expected Int64\)"):
        wrong_type(frame)

"""Every step checks its declared input columns on the way in and its declared output columns on the way out."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim.errors import InputError
from dpsim.steps import Step, checked_once


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


def test_inside_checked_once_a_step_checks_the_first_time_a_key_is_seen() -> None:
    """Schemas follow from the pipeline's input schemas and settings (the key), not from the data: a worker
    checks them for its first partition, not for each (resolving a deep plan's schema costs ~0.5 ms)."""
    adds_b = Step("adds_b", lambda f: f.with_columns(b=pl.col("a") * 2), {"a": pl.Int64()}, {"b": pl.Int64()})
    wrong = pl.LazyFrame({"x": [1]})
    with checked_once("first key"), pytest.raises(InputError):  # a failed check is not remembered
        adds_b(wrong)
    for _ in range(2):
        with checked_once("first key"):
            assert adds_b(pl.LazyFrame({"a": [1]})).collect()["b"].to_list() == [2]
    with checked_once("first key"):  # the first call of the key passed: not checked again
        adds_b(wrong)
        with pytest.raises(InputError):  # a second call in the scope is another call: checked the first time
            adds_b(wrong)
    with checked_once("another key"), pytest.raises(InputError):
        adds_b(wrong)
    with pytest.raises(InputError):  # outside a scope: always checked
        adds_b(wrong)

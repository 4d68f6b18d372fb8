"""Paired-test arithmetic against scipy on hand-made pairs; the reasons given when a test is undefined."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from dpsim.stats import NOTE_FEW, NOTE_ZERO_VARIANCE, bh_qvalues, paired_t, wilcoxon_p

REAL = [10.0, 12.5, 9.0, 14.0, 11.0, 13.5]
SIM = [9.0, 12.0, 9.5, 11.0, 10.0, 12.0]  # d = sim − real = [−1, −0.5, 0.5, −3, −1, −1.5]


def moments(real: list[float], sim: list[float]) -> tuple[int, float, float]:
    d = np.array(sim) - np.array(real)
    return d.size, float(d.mean()), float(d.std(ddof=1))


def test_paired_t_matches_scipy_ttest_rel() -> None:
    n, mean, sd = moments(REAL, SIM)
    assert (n, mean) == (6, pytest.approx(-6.5 / 6))
    res = sps.ttest_rel(SIM, REAL)
    ci = res.confidence_interval(0.95)
    got = paired_t(n, mean, sd)
    assert got.t == pytest.approx(res.statistic)
    assert got.p_value == pytest.approx(res.pvalue)
    assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high))
    assert got.cohens_d == pytest.approx(mean / sd)
    assert got.note is None


def test_paired_t_hand_worked() -> None:
    # d = [1, 3]: mean 2, sd √2, se 1, t = 2 with 1 df: p = 1 − 2·atan(2)/π; CI 2 ± 12.706·1
    got = paired_t(2, 2.0, 2**0.5)
    assert got.t == pytest.approx(2.0)
    assert got.p_value == pytest.approx(1 - 2 * np.arctan(2.0) / np.pi)
    assert (got.ci_low, got.ci_high) == pytest.approx((2 - 12.7062047, 2 + 12.7062047))
    assert got.cohens_d == pytest.approx(2 / 2**0.5)


@pytest.mark.parametrize(("n", "mean", "sd"), [(0, None, None), (1, 3.0, None)])
def test_fewer_than_two_pairs_give_a_note(n: int, mean: float | None, sd: float | None) -> None:
    got = paired_t(n, mean, sd)
    assert (got.t, got.p_value, got.ci_low, got.ci_high, got.cohens_d) == (None,) * 5
    assert got.note == NOTE_FEW == "n < 2"


@pytest.mark.parametrize(("mean", "sd"), [(0.0, 0.0), (2.5, 0.0), (0.1, 1e-17)])
def test_zero_variance_gives_a_note(mean: float, sd: float) -> None:
    got = paired_t(5, mean, sd)
    assert (got.t, got.p_value, got.ci_low, got.ci_high, got.cohens_d) == (None,) * 5
    assert got.note == NOTE_ZERO_VARIANCE == "zero variance of differences"


@pytest.mark.parametrize(
    "diffs",
    [
        [-1.0, -0.5, 0.5, -3.0, -1.0, -1.5],  # ties: normal approximation
        [0.3, -1.2, 2.5, 4.0, 1.1, 0.7, -0.2, 3.3],  # no ties, n <= 50: exact
        [0.0, 1.0, 2.0, -3.0, 4.0, 5.0],  # a zero is dropped
        list(np.random.default_rng(7).normal(0.4, 1.0, 80)),  # large sample: normal approximation
    ],
)
def test_wilcoxon_matches_scipy(diffs: list[float]) -> None:
    assert wilcoxon_p(diffs) == pytest.approx(sps.wilcoxon(diffs).pvalue)


def test_wilcoxon_hand_worked() -> None:
    # d = [1, 2, 3, 4] all positive: W− = 0, exact two-sided p = 2 · 1/2⁴
    assert wilcoxon_p([1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.125)


def _scipy_wilcoxon_p(diffs: list[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns when the approximation is used
        return float(sps.wilcoxon(diffs).pvalue)


_RNG = np.random.default_rng(11)


@pytest.mark.parametrize(
    "diffs",
    [
        pytest.param([0.3, -1.2, 2.5, 4.0, 1.1, 0.7, -0.2, 3.3, -0.9], id="exact-n9"),
        pytest.param(list(_RNG.normal(0.2, 1.0, 50)), id="exact-n50"),
        pytest.param([float(x) for x in range(1, 51)], id="exact-extreme-n50"),
        pytest.param([1.0, -1.0, 2.0, 2.0, -3.0, 4.0, 4.0], id="permutation-ties-n7"),
        pytest.param(
            [1.5, -1.5, 2.0, 3.0, -4.0, 5.0, 6.0, -7.0, 8.0, 9.0, 9.0, -10.0, 11.0], id="perm-ties-n13"
        ),
        pytest.param([0.0, 1.0, -2.0, 3.0, 4.0], id="permutation-zero-n5"),
        pytest.param(
            [0.0, 0.0, 1.0, -2.0, 3.0, 4.0, 5.0, -6.0, 7.0, 8.0, 9.0, 10.0, 11.0], id="perm-zeros-n13"
        ),
        pytest.param([0.0] + [float(x) for x in range(1, 14)], id="asymptotic-zero-n14"),
        pytest.param(list(_RNG.integers(-4, 5, 14).astype(float)), id="asymptotic-ties-n14"),
        pytest.param(list(_RNG.integers(-6, 9, 30).astype(float)), id="asymptotic-ties-n30"),
        pytest.param(list(_RNG.integers(-9, 12, 50).astype(float)), id="asymptotic-ties-n50"),
        pytest.param(
            [float(x) * (-1) ** x for x in range(1, 20)] + [19.0], id="asymptotic-ties-no-zeros-n20"
        ),
        pytest.param(list(_RNG.normal(0.3, 1.0, 51)), id="asymptotic-no-ties-n51"),
        pytest.param(list(_RNG.normal(0.1, 1.0, 400)), id="asymptotic-n400"),
        pytest.param(list(_RNG.integers(-3, 4, 300).astype(float)), id="asymptotic-ties-zeros-n300"),
        pytest.param([2.5] * 6, id="all-equal-n6"),
        pytest.param([-2.5] * 20, id="all-equal-n20"),
        pytest.param([1.0] * 60, id="all-equal-n60"),
        pytest.param([0.0, 0.0, 0.0, 0.0, 3.0], id="one-nonzero-n5"),
        pytest.param([0.0] * 19 + [-1.0], id="one-nonzero-n20"),
        pytest.param([0.0] * 59 + [4.0], id="one-nonzero-n60"),
        pytest.param([5.0, 0.0], id="n2-with-zero"),
    ],
)
def test_wilcoxon_branches_match_scipy(diffs: list[float]) -> None:
    assert wilcoxon_p(diffs) == pytest.approx(_scipy_wilcoxon_p(diffs), rel=1e-12, abs=1e-15)


_small_ints = st.integers(-4, 4).map(float)
_grid = st.integers(-20, 20).map(lambda k: k / 4)
_floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(st.one_of(*(st.lists(e, min_size=2, max_size=80) for e in (_small_ints, _grid, _floats))))
def test_wilcoxon_property_matches_scipy(diffs: list[float]) -> None:
    got = wilcoxon_p(diffs)
    if not any(x != 0 for x in diffs):
        assert got is None
    else:
        assert got == pytest.approx(_scipy_wilcoxon_p(diffs), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("diffs", [[], [2.0], [0.0, 0.0, 0.0]])
def test_wilcoxon_undefined(diffs: list[float]) -> None:
    assert wilcoxon_p(diffs) is None


def test_bh_hand_worked() -> None:
    # sorted p 0.01, 0.03, 0.04, 0.5 (m = 4): m·p/rank = 0.04, 0.06, 0.0533, 0.5 -> running min from the top
    assert bh_qvalues([0.04, 0.01, None, 0.5, 0.03]) == pytest.approx([0.16 / 3, 0.04, None, 0.5, 0.16 / 3])


def test_bh_matches_scipy_false_discovery_control() -> None:
    p = list(np.random.default_rng(3).uniform(0, 0.2, 40)) + [1.0, 0.999, 0.0]
    assert bh_qvalues(p) == pytest.approx(list(sps.false_discovery_control(p, method="bh")))


def test_bh_with_no_p_values() -> None:
    assert bh_qvalues([None, None]) == [None, None]
    assert bh_qvalues([]) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=30))
def test_bh_properties(p: list[float | None]) -> None:
    q = bh_qvalues(p)
    for pi, qi in zip(p, q, strict=True):
        assert (pi is None) == (qi is None)
        if pi is not None and qi is not None:
            assert pi <= qi + 1e-12 and qi <= 1.0
    given_p = [x for x in p if x is not None]
    if given_p:
        assert [x for x in q if x is not None] == pytest.approx(list(sps.false_discovery_control(given_p)))

"""Student's t in numpy (dpsim.distributions) against scipy and closed forms, over degrees of freedom 1 to 10⁹."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from dpsim.distributions import normal_ppf, t_ppf, t_two_sided_p

DFS = [1, 2, 3, 4, 5, 7, 10, 15, 29, 30, 31, 50, 99, 100, 101, 200, 499, 500, 999, 1000, 1001]
DFS += [2000, 5000, 10**4, 10**5, 10**6, 10**7, 3 * 10**7, 10**8, 10**9]
TS = [1e-3, 0.01, 0.1, 0.5, 1.0, 1.5, 1.7, 1.75, 1.8, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 10.0, 20.0, 50.0, 100.0]


@pytest.mark.parametrize("df", DFS)
def test_two_sided_p_matches_scipy(df: int) -> None:
    t = np.array(TS)
    want = 2 * sps.t.sf(t, df)
    got = t_two_sided_p(t, np.full(t.size, float(df)))
    ok = want > 1e-290  # below that scipy and this both underflow towards 0
    assert got[ok] == pytest.approx(want[ok], rel=1e-11)


def test_two_sided_p_closed_forms() -> None:
    # ν = 1 (Cauchy): 1 − 2·atan(t)/π ; ν = 2: 1 − t/√(2 + t²)
    t = np.array([1e-8, 1e-4, 0.3, 1.0, 3.0, 1e3])
    assert t_two_sided_p(t, np.ones(t.size)) == pytest.approx(1 - 2 * np.arctan(t) / np.pi, rel=1e-14)
    assert t_two_sided_p(t, np.full(t.size, 2.0)) == pytest.approx(1 - t / np.sqrt(2 + t * t), rel=1e-14)


def test_two_sided_p_edges() -> None:
    got = t_two_sided_p(np.array([0.0, -2.0, np.inf, np.nan, 2.0]), np.array([5.0, 5.0, 5.0, 5.0, 0.0]))
    assert got[0] == 1.0
    assert got[1] == pytest.approx(2 * sps.t.sf(2.0, 5), rel=1e-13)  # symmetric in t
    assert got[2] == 0.0
    assert math.isnan(got[3]) and math.isnan(got[4])


@settings(max_examples=200, deadline=None)
@given(st.floats(0.05, 60.0), st.integers(1, 10**8))
def test_two_sided_p_property_matches_scipy(t: float, df: int) -> None:
    want = 2 * sps.t.sf(t, df)
    if want > 1e-290:
        assert t_two_sided_p(np.array([t]), np.array([float(df)]))[0] == pytest.approx(want, rel=1e-11)


@pytest.mark.parametrize("q", [0.75, 0.9, 0.95, 0.975, 0.995, 0.999999])
def test_ppf_matches_scipy(q: float) -> None:
    df = np.array(DFS, dtype=np.float64)
    assert t_ppf(q, df) == pytest.approx(sps.t.ppf(q, df), rel=1e-12)


def test_ppf_hand_worked() -> None:
    # ν = 1: tan(π(q − ½)); ν = 2: (2q − 1)/√(2q(1 − q))
    assert t_ppf(0.975, np.array([1.0]))[0] == pytest.approx(math.tan(math.pi * 0.475), rel=1e-13)
    assert t_ppf(0.975, np.array([2.0]))[0] == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025), rel=1e-13)
    assert t_ppf(0.975, np.array([1e12]))[0] == pytest.approx(normal_ppf(0.975), rel=1e-11)


def test_ppf_inverts_p() -> None:
    df = np.array([3.0, 40.0, 2500.0, 7e6])
    t = t_ppf(0.975, df)
    assert t_two_sided_p(t, df) == pytest.approx(np.full(df.size, 0.05), rel=1e-12)


def test_ppf_rejects_a_quantile_it_does_not_serve() -> None:
    with pytest.raises(ValueError, match=r"q must be in \[0.75, 1\)"):
        t_ppf(0.5, np.array([3.0]))


@pytest.mark.parametrize("q", [0.6, 0.9, 0.975, 0.999, 1e-3])
def test_normal_ppf_matches_scipy(q: float) -> None:
    assert normal_ppf(q) == pytest.approx(sps.norm.ppf(q), rel=1e-15)


def test_the_hot_path_does_not_import_scipy() -> None:
    """scipy takes over a second to import: the aggregation and the CLI must not pull it in."""
    import subprocess
    import sys

    code = "import sys, dpsim.cli, dpsim.aggregate, dpsim.jobs; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"

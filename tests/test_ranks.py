"""The one-pass rank statistics (dpsim.ranks) against a direct computation per segment, batch boundaries anywhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpsim.ranks import RankPass, SegmentCounts


def _direct(d: np.ndarray) -> tuple[float, float, float]:
    """R+, Σ (t³ − t) over ties of |d| (zeros dropped), and the median of d (zeros kept), by sorting."""
    nz = d[d != 0]
    a = np.abs(nz)
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    starts = np.flatnonzero(np.concatenate(([True], a_sorted[1:] != a_sorted[:-1])))
    counts = np.diff(np.append(starts, a.size))
    ranks = np.repeat(starts + 1 + (counts - 1) / 2.0, counts)
    r_plus = float(ranks[nz[order] > 0].sum())
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    return r_plus, ties, float(np.median(d)) if d.size else float("nan")


def _run(d: np.ndarray, segments: dict[str, np.ndarray], sizes: dict[str, int], batch: int) -> dict:
    counts = {}
    for t, g in segments.items():
        k = sizes[t]
        counts[t] = SegmentCounts(
            np.bincount(g, minlength=k),
            np.bincount(g[d < 0], minlength=k),
            np.bincount(g[d != 0], minlength=k),
        )
    rp = RankPass(counts, small_n=3)
    nz = d != 0
    a = np.abs(d[nz])
    order = np.argsort(a, kind="stable")
    a = a[order]
    neg = (d[nz] < 0)[order]
    ids = {t: g[nz][order] for t, g in segments.items()}
    for s in range(0, a.size, batch):
        rp.add(a[s : s + batch], neg[s : s + batch], {t: v[s : s + batch] for t, v in ids.items()})
    return rp.finish()


def _check(d: np.ndarray, segments: dict[str, np.ndarray], sizes: dict[str, int], batch: int) -> None:
    res = _run(d, segments, sizes, batch)
    for t, g in segments.items():
        out = res[t]
        for s in range(sizes[t]):
            ds = d[g == s]
            r_plus, ties, median = _direct(ds)
            assert out.r_plus[s] == r_plus, (t, s)
            assert out.tie_sum[s] == pytest.approx(ties, abs=0), (t, s)
            assert out.seen[s] == np.count_nonzero(ds)
            if ds.size:
                assert out.median[s] == median, (t, s, ds)
            else:
                assert np.isnan(out.median[s])
            small = out.small_values.get(s)
            if 0 < ds.size <= 3:
                assert sorted(small if small is not None else []) == sorted(ds[ds != 0].tolist())
            else:
                assert small is None


def test_hand_worked() -> None:
    # one segment, d = [−1, 2, −2, 3, 0]: |d| ranks among non-zero: 1, 2.5, 2.5, 4 -> R+ = 2.5 + 4 = 6.5;
    # one tie of two (2³ − 2 = 6); median of [−2, −1, 0, 2, 3] = 0
    d = np.array([-1.0, 2.0, -2.0, 3.0, 0.0])
    out = _run(d, {"overall": np.zeros(5, dtype=np.int64)}, {"overall": 1}, batch=2)["overall"]
    assert (out.r_plus[0], out.tie_sum[0], out.median[0]) == (6.5, 6.0, 0.0)


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 64, 10_000])
def test_random_segments_with_ties_and_zeros(batch: int) -> None:
    rng = np.random.default_rng(batch)
    n = 600
    d = rng.integers(-6, 7, n).astype(float) / 2  # many ties and zeros
    distinct = rng.uniform(size=n) < 0.3
    d[distinct] = rng.normal(0, 3, int(distinct.sum()))  # and some distinct values
    sizes = {"overall": 1, "a": 5, "b": 300}  # b: many tiny segments, some empty
    segments = {
        "overall": np.zeros(n, dtype=np.int64),
        "a": rng.integers(0, 5, n),
        "b": rng.integers(0, 300, n),
    }
    _check(d, segments, sizes, batch)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-5, 5), min_size=1, max_size=120), st.integers(1, 40), st.integers(1, 9))
def test_property_matches_direct(values: list[int], batch: int, k: int) -> None:
    d = np.array(values, dtype=float) / 2
    rng = np.random.default_rng(len(values) * 31 + batch)
    segments = {"overall": np.zeros(d.size, dtype=np.int64), "seg": rng.integers(0, k, d.size)}
    _check(d, segments, {"overall": 1, "seg": k}, batch)


def test_all_zero_segment_has_median_zero_and_nothing_ranked() -> None:
    d = np.array([0.0, 0.0, 1.5])
    g = np.array([0, 0, 1])
    out = _run(d, {"seg": g}, {"seg": 2}, batch=1)["seg"]
    assert (out.median[0], out.r_plus[0], out.seen[0]) == (0.0, 0.0, 0)
    assert (out.median[1], out.r_plus[1]) == (1.5, 1.0)


def test_nan_sorts_last_counts_positive_and_ties_with_nan() -> None:
    # d = [1, −2, NaN, NaN]: |d| in DuckDB's order 1, 2, NaN, NaN -> ranks 1, 2, 3.5, 3.5 (the NaNs one tie
    # group); positives 1, NaN, NaN -> R+ = 1 + 3.5 + 3.5 = 8; ties 2³ − 2 = 6; d sorted −2, 1, NaN, NaN:
    # middle values 1 and NaN -> median NaN
    a = np.array([1.0, 2.0, np.nan, np.nan])
    negative = np.array([False, True, False, False])
    for batch in (1, 3, 4):
        rp = RankPass({"overall": SegmentCounts(np.array([4]), np.array([1]), np.array([4]))}, small_n=0)
        for s in range(0, 4, batch):
            rp.add(
                a[s : s + batch], negative[s : s + batch], {"overall": np.zeros(len(a[s : s + batch]), int)}
            )
        out = rp.finish()["overall"]
        assert (out.r_plus[0], out.tie_sum[0], out.seen[0]) == (8.0, 6.0, 4)
        assert np.isnan(out.median[0])

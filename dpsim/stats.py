"""Paired-test statistics from SQL moments, Wilcoxon p-values and Benjamini–Hochberg q-values (pure functions).

The moments (n, mean and sd of the paired differences) come from DuckDB so they scale with the lake;
what is left here is the arithmetic that needs the t and normal distributions, which SQL lacks.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

NOTE_FEW = "n < 2"
NOTE_ZERO_VARIANCE = "zero variance of differences"

# A variance this small against the mean is floating-point noise from merging partial aggregates:
# the differences are all equal and a t statistic would be a meaningless huge number.
_REL_ZERO_SD = 1e-12


@dataclass(frozen=True)
class PairedT:
    """Paired t test of differences d = sim − real; every figure is None when the test is undefined."""

    t: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    cohens_d: float | None
    note: str | None


def paired_t(n: int, mean_diff: float | None, sd_diff: float | None, confidence: float = 0.95) -> PairedT:
    """Two-sided paired t test from the moments of the differences (same figures as scipy.stats.ttest_rel).

    Cohen's d is d_z = mean_diff / sd_diff, the paired-design effect size.
    """
    if n < 2 or mean_diff is None or sd_diff is None:
        return PairedT(None, None, None, None, None, NOTE_FEW)
    if sd_diff == 0 or sd_diff <= _REL_ZERO_SD * abs(mean_diff):
        return PairedT(None, None, None, None, None, NOTE_ZERO_VARIANCE)
    se = sd_diff / math.sqrt(n)
    t = mean_diff / se
    df = n - 1
    p = float(min(1.0, 2.0 * sps.t.sf(abs(t), df)))
    half = float(sps.t.ppf(0.5 + confidence / 2.0, df)) * se
    return PairedT(t, p, mean_diff - half, mean_diff + half, mean_diff / sd_diff, None)


def wilcoxon_p(diffs: Sequence[float] | np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value with scipy's defaults (zeros dropped; exact for small samples
    without ties, normal approximation otherwise); None when fewer than 2 differences or all are zero."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2 or not np.any(d != 0):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns when it falls back to the approximation
        return float(sps.wilcoxon(d).pvalue)


def bh_qvalues(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini–Hochberg adjusted p-values over the non-null entries; None stays None.

    q_(i) = min over j >= i of m · p_(j) / j (p sorted ascending, m = number of p-values), capped at 1.
    """
    idx = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not idx:
        return out
    p = np.array([p_values[i] for i in idx], dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    q = np.empty(m)
    q[order] = q_sorted
    for i, v in zip(idx, q, strict=True):
        out[i] = float(v)
    return out

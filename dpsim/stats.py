"""Paired-test statistics from SQL moments, Wilcoxon p-values and Benjamini–Hochberg q-values (pure functions).

The moments (n, mean and sd of the paired differences) come from DuckDB so they scale with the lake;
what is left here is the arithmetic that needs the t and normal distributions, which SQL lacks. Student's
t distribution is computed here with numpy and the standard library (the regularized incomplete beta
function, inverted by a safeguarded Newton iteration), so the aggregation does not import scipy (over a
second of start-up); the tests check every function against scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dpsim.distributions import t_ppf, t_two_sided_p

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
    return paired_t_many([n], [mean_diff], [sd_diff], confidence)[0]


def paired_t_many(
    n: Sequence[int],
    mean_diff: Sequence[float | None],
    sd_diff: Sequence[float | None],
    confidence: float = 0.95,
) -> list[PairedT]:
    """`paired_t` for many tests at once: one vectorised pass through the t distribution."""
    out: list[PairedT | None] = [None] * len(n)
    rows, t_list, se_list = [], [], []
    for i, (k, mean, sd) in enumerate(zip(n, mean_diff, sd_diff, strict=True)):
        if k < 2 or mean is None or sd is None:
            out[i] = PairedT(None, None, None, None, None, NOTE_FEW)
        elif sd == 0 or sd <= _REL_ZERO_SD * abs(mean):
            out[i] = PairedT(None, None, None, None, None, NOTE_ZERO_VARIANCE)
        else:
            rows.append(i)
            se_list.append(sd / math.sqrt(k))
            t_list.append(mean / se_list[-1])
    if rows:
        df = np.array([n[i] - 1.0 for i in rows])
        t = np.array(t_list)
        se = np.array(se_list)
        p = np.minimum(1.0, t_two_sided_p(t, df))
        half = t_ppf(0.5 + confidence / 2.0, df) * se
        for j, i in enumerate(rows):
            mean, sd = float(mean_diff[i]), float(sd_diff[i])  # type: ignore[arg-type]
            out[i] = PairedT(
                float(t[j]), float(p[j]), mean - float(half[j]), mean + float(half[j]), mean / sd, None
            )
    return [r for r in out if r is not None]


def wilcoxon_p(diffs: Sequence[float] | np.ndarray) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value: the same as ``scipy.stats.wilcoxon(d).pvalue`` with its defaults.

    Re-implemented in numpy (same method choice: exact, permutation or normal approximation) because scipy's
    per-call overhead dominated ``dpsim aggregate``, which calls this for every segment of at most 50 pairs
    (larger ones get `wilcoxon_normal_p` from one sorted pass: dpsim.ranks).
    None when fewer than 2 differences or all are zero.
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    n_total = d.size  # scipy's method choice counts the zeros too
    if n_total < 2 or not np.any(d != 0):
        return None
    if np.isnan(d).any():
        return math.nan  # scipy's nan_policy='propagate'
    nz = d[d != 0]  # zero_method='wilcox': zeros are dropped from the statistic
    has_zeros = nz.size < n_total
    a = np.abs(nz)
    order = np.argsort(a, kind="stable")
    a_sorted = a[order]
    starts = np.flatnonzero(np.concatenate(([True], a_sorted[1:] != a_sorted[:-1])))
    counts = np.diff(np.append(starts, a.size))
    ranks = np.repeat(starts + 1 + (counts - 1) / 2.0, counts)  # average ranks, in sorted order
    positive = nz[order] > 0
    r_plus = float(ranks[positive].sum())  # half-integers: exact in any summation order
    has_ties = bool(np.any(counts > 1))

    if n_total <= 50 and not (has_ties or has_zeros):
        return _wilcoxon_exact_p(n_total, r_plus)
    if n_total <= 13:
        return _wilcoxon_permutation_p(ranks, r_plus)
    return wilcoxon_normal_p(a.size, r_plus, float(np.sum(counts.astype(np.float64) ** 3 - counts)))


def wilcoxon_normal_p(m: int, r_plus: float, tie_sum: float) -> float:
    """Two-sided p of the Wilcoxon signed-rank statistic R+ by scipy's normal approximation (no continuity
    correction): m non-zero differences, tie_sum = Σ (t³ − t) over groups of tied |d|."""
    mf = float(m)
    mn = mf * (mf + 1.0) * 0.25
    se = math.sqrt((mf * (mf + 1.0) * (2.0 * mf + 1.0) - tie_sum / 2) / 24)
    z = (r_plus - mn) / se
    # 2 · normal sf(|z|), no continuity correction; x·√½ as scipy's ndtr does (within ~1e-13 of it)
    return math.erfc(abs(z) * math.sqrt(0.5))


@functools.lru_cache(maxsize=64)
def _wilcoxon_pmf(n: int) -> np.ndarray:
    """Null pmf of R+ over 0..n(n+1)/2 (same recurrence, hence same bits, as scipy's)."""
    c = np.ones(1, dtype=np.float64)
    for k in range(1, n + 1):
        prev = c
        c = np.zeros(k * (k + 1) // 2 + 1, dtype=np.float64)
        m = len(prev)
        c[:m] = prev * 0.5
        c[-m:] += prev * 0.5
    c.flags.writeable = False
    return c


def _wilcoxon_exact_p(n: int, r_plus: float) -> float:
    """Exact two-sided p from the R+ null distribution, with scipy's cdf/sf summation choices."""
    pmf = _wilcoxon_pmf(n)
    mn = n * (n + 1) / 4
    k_sf = math.floor(r_plus)
    k_cdf = math.ceil(r_plus)
    sf = pmf[k_sf:].sum() if k_sf <= mn else 1 - pmf[:k_sf].sum()
    cdf = pmf[: k_cdf + 1].sum() if k_cdf <= mn else 1 - pmf[k_cdf + 1 :].sum()
    return float(min(max(2 * min(sf, cdf), 0.0), 1.0))


@functools.lru_cache(maxsize=16)
def _sign_patterns(m: int) -> np.ndarray:
    """All 2^m rows of 0/1 (which values are positive), as float64 for a BLAS matrix-vector product."""
    bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
    out = bits.astype(np.float64)
    out.flags.writeable = False
    return out


def _wilcoxon_permutation_p(ranks: np.ndarray, r_plus: float) -> float:
    """Exact permutation test over all sign flips, as scipy's permutation_test for n <= 13.

    Flipping a zero changes nothing, so enumerating the non-zero values only scales every count and the
    total by the same power of two; the proportions (and their rounding) are unchanged.
    """
    null = _sign_patterns(ranks.size) @ ranks  # R+ for every sign vector: exact half-integers
    gamma = abs(np.finfo(np.float64).eps * 100 * r_plus)  # scipy's tolerance for "equal" statistics
    total = float(null.size)
    less = np.count_nonzero(null <= r_plus + gamma) / total
    greater = np.count_nonzero(null >= r_plus - gamma) / total
    return min(max(min(less, greater) * 2, 0.0), 1.0)


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


_BOOTSTRAP_CELLS = 1_000_000  # draws per chunk of resamples: 8 MB of int64 indices and as many counts


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile interval of a notional-weighted mean from a cluster bootstrap (None when no cluster)."""

    low: float | None
    high: float | None
    n_clusters: int


def cluster_bootstrap_ci(
    weights: np.ndarray, weighted_values: np.ndarray, n_resamples: int, seed: int, confidence: float = 0.95
) -> BootstrapCI:
    """CI of Σ wd / Σ w when whole clusters (their sums w, wd) are resampled with replacement.

    A fresh `numpy.random.default_rng(seed)` draws each resample as `integers(0, n, size=n)` in turn, so
    the interval is reproducible from the seed; the bounds are numpy's default (linear) percentiles.
    Resampling clusters (partitions) keeps the dependence between sweeps of one security-day inside a
    draw, which a per-sweep bootstrap would ignore.
    """
    return cluster_bootstrap_cis([(weights, weighted_values)], n_resamples, seed, confidence)[0]


def cluster_bootstrap_cis(
    samples: Sequence[tuple[np.ndarray, np.ndarray]], n_resamples: int, seed: int, confidence: float = 0.95
) -> list[BootstrapCI]:
    """`cluster_bootstrap_ci` of each (weights, weighted values), the draws made once for the samples of
    one size: they depend on the seed and the number of clusters only, so every sample gets the interval it
    gets alone (the headline's scenarios share their clusters' count: one draw of indices for all, and
    their weights, when the same sweeps hold a delta: one resampled total for all)."""
    out: list[BootstrapCI] = [BootstrapCI(None, None, 0)] * len(samples)
    by_size: dict[int, list[int]] = {}
    for i, (w, _) in enumerate(samples):
        by_size.setdefault(len(w), []).append(i)
    for n, members in by_size.items():
        if n == 0:
            continue
        pairs = [
            (np.asarray(samples[i][0], dtype=np.float64), np.asarray(samples[i][1], dtype=np.float64))
            for i in members
        ]
        same_weights = [
            next(j for j in range(k + 1) if np.array_equal(pairs[j][0], w)) for k, (w, _) in enumerate(pairs)
        ]
        rng = np.random.default_rng(seed)
        means = np.empty((len(members), n_resamples), dtype=np.float64)
        chunk = max(1, min(n_resamples, _BOOTSTRAP_CELLS // n))  # resamples drawn at once, memory bounded
        for start in range(0, n_resamples, chunk):
            rows = min(chunk, n_resamples - start)
            idx = rng.integers(0, n, size=(rows, n))  # the same stream as `rows` draws of size n in turn
            # how often each draw takes each cluster: a draw's sums are then one matrix-vector product
            offsets = (np.arange(rows, dtype=np.int64) * n)[:, None]
            counts = np.bincount((idx + offsets).ravel(), minlength=rows * n).reshape(rows, n)
            counts = counts.astype(np.float64)
            totals: dict[int, np.ndarray] = {}
            for k, (w, wd) in enumerate(pairs):
                if same_weights[k] not in totals:
                    totals[same_weights[k]] = _draw_sums(counts, w)
                total = totals[same_weights[k]]
                with np.errstate(invalid="ignore", divide="ignore"):
                    means[k, start : start + rows] = np.where(
                        total > 0, _draw_sums(counts, wd) / total, np.nan
                    )
        tail = (1.0 - confidence) / 2.0 * 100.0
        for k, i in enumerate(members):
            low, high = np.nanpercentile(means[k], [tail, 100.0 - tail])
            out[i] = BootstrapCI(float(low), float(high), n)
    return out


def _draw_sums(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Σ of `values` over each draw (a row of `counts`: how often it took each cluster), as a sum over the
    draw's picks gives it: a NaN or infinite value counts only in the draws that took it (0 × inf is NaN)."""
    finite = np.isfinite(values)
    if finite.all():
        return counts @ values
    sums = counts[:, finite] @ values[finite]
    for j in np.flatnonzero(~finite):
        taken = counts[:, j] > 0
        sums[taken] += values[j]  # once is enough: NaN and ±inf absorb repeats
    return sums

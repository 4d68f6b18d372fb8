"""Student's t distribution (two-sided tail probability and quantile) in numpy and the standard library.

The paired t test needs P(|T| >= t) and the quantile of T with n − 1 degrees of freedom. scipy has both but
costs over a second to import, on every `dpsim aggregate` and `dpsim process`, for two numbers per test;
these functions give the same figures (tests/test_distributions.py checks them against scipy over a grid of
degrees of freedom from 1 to 10⁹).

- P(|T| >= t) = I_x(ν/2, 1/2), x = ν / (ν + t²), I the regularized incomplete beta function.
  For ν < 1,000, I_x(a, b) comes from its continued fraction (modified Lentz; Press et al., Numerical
  Recipes §6.4) where it converges fast, else as 1 − I_{1−x}(b, a). For ν >= 1,000 the continued fraction
  would lose about ν·ε to cancellation; there the asymptotic expansion for large a and b <= 1 is used
  (DiDonato & Morris 1992, Algorithm 708, BGRAT; with b = 1/2 its incomplete gamma ratio is erfc).
  x and 1 − x are formed separately (ν/(ν+t²), t²/(ν+t²)), never one from the other.
- The quantile inverts it by Newton's method on the t density, safeguarded by bisection within a bracket,
  from Fisher's expansion around the normal quantile (Abramowitz & Stegun 26.7.5).

Every function is vectorised over numpy arrays (one call serves every row of `stats_tests`).
"""

from __future__ import annotations

import functools
import math

import numpy as np

_EPS = np.finfo(np.float64).eps
_TINY = 1e-300
_LOG_SQRT_PI = 0.5 * math.log(math.pi)
_CF_MAX_ITER = 2_000
_BGRAT_FROM_A = 500.0  # a = ν/2 from which the tail uses the asymptotic expansion


def t_two_sided_p(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (df > 0), elementwise; NaN stays NaN."""
    t, df = np.broadcast_arrays(np.asarray(t, dtype=np.float64), np.asarray(df, dtype=np.float64))
    out = np.full(t.shape, np.nan)
    ok = np.isfinite(t) & (df > 0)
    out[np.isinf(t) & (df > 0)] = 0.0
    if not ok.any():
        return out
    a = df[ok] / 2.0
    q = t[ok] ** 2 / df[ok]  # t²/ν: x = 1/(1+q), 1 − x = q/(1+q)
    x = 1.0 / (1.0 + q)
    y = q / (1.0 + q)
    res = np.ones(a.shape)  # t = 0: p = 1
    big = (q > 0) & (a >= _BGRAT_FROM_A)
    tail = (q > 0) & ~big & (x < (a + 1.0) / (a + 2.5))  # where the continued fraction of I_x(a, ½) is fast
    body = (q > 0) & ~big & ~tail
    with np.errstate(divide="ignore"):
        log_front = -a * np.log1p(q) + 0.5 * np.log(y) - _log_beta_half(a)
    if big.any():
        res[big] = _bgrat_half(a[big], q[big])
    if tail.any():
        res[tail] = np.exp(log_front[tail]) * _beta_cf(a[tail], 0.5, x[tail], y[tail]) / a[tail]
    if body.any():
        # 1 − I_y(½, a): the p-value is large here, so the subtraction loses nothing that matters
        res[body] = 1.0 - np.exp(log_front[body]) * _beta_cf(0.5, a[body], y[body], x[body]) / 0.5
    out[ok] = np.clip(res, 0.0, 1.0)
    return out


def t_ppf(q: float, df: np.ndarray) -> np.ndarray:
    """The `q` quantile of Student's t for each of `df`, 0.75 <= q < 1 (what confidence intervals use):
    Newton's method on the density, safeguarded by bisection within a bracket, to a relative step of 4ε."""
    df = np.asarray(df, dtype=np.float64)
    if not 0.75 <= q < 1.0:
        raise ValueError(f"t_ppf: q must be in [0.75, 1), got {q}")
    out = np.full(df.shape, np.nan)
    ok = df > 0
    nu = df[ok]
    target = 2.0 * (1.0 - q)  # the two-sided tail probability at the quantile
    t = _fisher_guess(normal_ppf(q), nu)
    lo = np.zeros_like(nu)  # P(|T| >= lo) > target >= P(|T| >= hi)
    hi = t * 2.0
    while (low := t_two_sided_p(hi, nu) > target).any():
        lo = np.where(low, hi, lo)
        hi = np.where(low, hi * 4.0, hi)
    t = np.clip(t, lo, hi)
    active = np.arange(nu.size)
    for _ in range(100):
        ta, na, la, ha = t[active], nu[active], lo[active], hi[active]
        p = t_two_sided_p(ta, na)
        above = p > target  # t too small: the root lies above
        la = np.where(above, ta, la)
        ha = np.where(above, ha, ta)
        step = (p - target) / (2.0 * _t_pdf(ta, na))  # d/dt P(|T| >= t) = −2 f(t)
        # a Newton step this small is the answer, even when rounding puts it on the bracket's edge (bisecting
        # from there would walk the whole bracket down again)
        converged = np.abs(step) <= 4.0 * _EPS * ta
        new = ta + step
        inside = (new > la) & (new < ha)
        new = np.where(inside | converged, new, 0.5 * (la + ha))
        t[active], lo[active], hi[active] = new, la, ha
        done = converged | (np.abs(new - ta) <= 4.0 * _EPS * new) | (ha - la <= 4.0 * _EPS * ha)
        active = active[~done]
        if active.size == 0:
            break
    out[ok] = t
    return out


@functools.lru_cache(maxsize=16)
def normal_ppf(q: float) -> float:
    """The standard normal `q` quantile (0 < q < 1), by bisection on math.erfc to full precision."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"normal_ppf: q must be in (0, 1), got {q}")
    upper = q > 0.5
    tail = 1.0 - q if upper else q  # P(Z > z) for the positive quantile
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(mid / math.sqrt(2.0)) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= _EPS * hi:
            break
    z = 0.5 * (lo + hi)
    return z if upper else -z


# ---- internals ----------------------------------------------------------------------------------


def _log_gamma_ratio_half(a: np.ndarray) -> np.ndarray:
    """log Γ(a + ½) − log Γ(a): from lgamma for small a, else from its asymptotic series (no cancellation)."""
    out = np.empty(a.shape)
    small = a < 100.0
    out[small] = [math.lgamma(v + 0.5) - math.lgamma(v) for v in a[small]]
    x = 1.0 / a[~small]
    out[~small] = 0.5 * np.log(a[~small]) - x / 8 + x**3 / 192 - x**5 / 640 + 17 * x**7 / 14336
    return out


def _log_beta_half(a: np.ndarray) -> np.ndarray:
    """log B(a, ½) = log Γ(a) + log Γ(½) − log Γ(a + ½)."""
    return _LOG_SQRT_PI - _log_gamma_ratio_half(a)


def _t_pdf(t: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Student's t density: Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) · (1 + t²/ν)^(−(ν+1)/2)."""
    log_c = _log_gamma_ratio_half(nu / 2.0) - 0.5 * np.log(nu) - _LOG_SQRT_PI
    return np.exp(log_c - (nu + 1.0) / 2.0 * np.log1p(t * t / nu))


def _beta_cf(a: np.ndarray | float, b: np.ndarray | float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The continued fraction of I_x(a, b) (modified Lentz), y = 1 − x given separately.

    Its first term 1 − (a+b)x/(a+1) is formed as (1 − b + (a+b)y)/(a+1), which does not cancel when x ≈ 1.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones(a.shape)
    d = (1.0 - b + qab * y) / qap
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    active = np.ones(a.shape, dtype=bool)
    for m in range(1, _CF_MAX_ITER + 1):
        m2 = 2.0 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < _TINY, _TINY, c)
            delta = np.where(active, d * c, 1.0)
            h = h * delta
        active &= np.abs(delta - 1.0) > _EPS
        if not active.any():
            break
    return h


def _bgrat_coefficients(n: int = 30) -> np.ndarray:
    """The d_n of BGRAT for b = ½: they depend on b only, so they are computed once."""
    b, bm1 = 0.5, -0.5
    c = [0.0] * (n + 1)
    d = [0.0] * (n + 1)
    cn, n2 = 1.0, 0.0
    for k in range(1, n + 1):
        n2 += 2.0
        cn /= n2 * (n2 + 1.0)
        c[k] = cn
        s, coef = 0.0, b - k
        for i in range(1, k):
            s += coef * c[i] * d[k - i]
            coef += b
        d[k] = bm1 * cn + s / k
    return np.array(d)


_BGRAT_D = _bgrat_coefficients()


def _bgrat_half(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """I_x(a, ½), x = 1/(1+q), a >= 15: DiDonato & Morris' BGRAT with b = ½ (Q(½, z) = erfc(√z))."""
    b = 0.5
    nu = a - 0.25  # a + (b − 1)/2
    lnx = -np.log1p(q)
    z = -nu * lnx
    r = np.sqrt(z / math.pi) * np.exp(-z)  # e^−z z^b / Γ(b)
    u = r * np.exp(_log_gamma_ratio_half(a) - 0.5 * np.log(nu))
    erfc = np.array([math.erfc(v) for v in np.sqrt(z)])
    with np.errstate(divide="ignore", invalid="ignore"):
        j = erfc / r
    v = 0.25 / (nu * nu)
    t2 = 0.25 * lnx * lnx
    total = j.copy()
    t = np.ones_like(a)
    n2 = 0.0
    active = np.isfinite(j)
    for n in range(1, len(_BGRAT_D)):
        bp2n = b + n2
        j = (bp2n * (bp2n + 1.0) * j + (z + bp2n + 1.0) * t) * v
        n2 += 2.0
        t = t * t2
        dj = np.where(active, _BGRAT_D[n] * j, 0.0)
        total = total + dj
        active &= np.abs(dj) > _EPS * total
        if not active.any():
            break
    return np.where(u == 0.0, 0.0, u * total)


def _fisher_guess(z: float, nu: np.ndarray) -> np.ndarray:
    """Fisher's expansion of the t quantile in 1/ν around the normal quantile z (A&S 26.7.5)."""
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    inv = 1.0 / nu
    guess = z + inv * (g1 + inv * (g2 + inv * (g3 + inv * g4)))
    return np.where(np.isfinite(guess) & (guess > 0), guess, z)

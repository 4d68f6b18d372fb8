"""Per-segment rank statistics from one stream of differences sorted by |d|: Wilcoxon rank sums and medians.

The Wilcoxon signed-rank test of a segment needs R+ (the sum of the average ranks of |d| among the segment's
non-zero differences, over the positive ones) and the tie correction Σ (t³ − t) over groups of equal |d|; the
median of a segment needs its middle values of d. Neither merges from partial sums, and holding every
segment's differences in memory does not scale with the lake. Both follow from one pass over the
differences in ascending |d| (DuckDB sorts them, spilling to disk), for every segment of every segment type at
once, with a few numbers per segment as state:

- rank: a difference's average rank within its segment is L + (t + 1)/2, L the segment's members with a
  smaller |d| and t its members with the same |d| (a tie group). R+ is summed doubled, as integers, so it is
  exact. The tie group of the batch's last |d| may continue in the next batch: its per-segment counts stay
  open until a larger |d| arrives.
- median: the k-th smallest d of a segment is the (N−1−k)-th smallest |d| among its negatives when k < N,
  zero when k < N + Z, else the (k−N−Z)-th smallest |d| among its positives (N negatives, Z zeros: counts
  known beforehand from the moments). The median is the mean of the ⌊(n−1)/2⌋-th and ⌊n/2⌋-th, as DuckDB's.
- the differences of small segments (n <= `small_n`) are kept, so their exact or permutation p-value is
  computed from the values as before (a bounded amount: at most `small_n` values per segment).

Cost per batch of B rows and segment type: one compiled loop over the rows (dpsim.ranks_kernel) that
touches each row's segment once and each segment once per tie group; memory O(K) per type of K segments
plus the batch. A NaN difference sorts last and counts as positive (DuckDB orders NaN above every
number); its segment's p-value is NaN (dpsim.aggregate), as scipy's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentCounts:
    """What is known of each segment of one type before the pass (from the moments): arrays over K segments."""

    n: np.ndarray  # complete pairs (zeros included)
    n_negative: np.ndarray  # d < 0
    n_nonzero: np.ndarray  # d != 0 (NaN included)


@dataclass(frozen=True)
class SegmentRanks:
    """The result of the pass for one segment type (arrays over its K segments)."""

    r_plus: np.ndarray  # Σ average rank of the positive differences (float64 of exact half-integers)
    tie_sum: np.ndarray  # Σ (t³ − t) over ties of |d| among the non-zero differences
    seen: np.ndarray  # non-zero differences passed (equals n_nonzero when the stream matches the moments)
    median: np.ndarray  # median of d (NaN when n = 0)
    small_values: dict[int, np.ndarray]  # segment -> its non-zero differences, for 0 < n <= small_n


_loading = threading.Lock()
_loaded: list[bool] = []
# What loading the loop adds to a process that has not loaded numba yet: numba, LLVM and the compiled code
# (measured: 106 MB on top of DuckDB and pyarrow).
LOAD_MB = 110


def load_kernel() -> None:
    """Import the compiled loop and type it from numba's cache (compiled there by the first call on a machine:
    `make install` does it), once per process, whichever thread asks first (numba without scipy)."""
    with _loading:
        if _loaded:
            return
        from dpsim.compiled import without_scipy

        with without_scipy():
            state = _TypeState(SegmentCounts(np.ones(1), np.zeros(1), np.ones(1)), small_n=0)
            state.add(np.ones(1), np.zeros(1, dtype=bool), np.zeros(1, dtype=np.int64))
            state.close()
        _loaded.append(True)


def load_kernel_in_background() -> threading.Thread:
    """`load_kernel` on a thread, once per process, while the caller computes what the passes need in DuckDB
    (`RankPass` waits for it if it has not finished). Returns the thread, for a caller that must not exit
    before it ends."""
    from dpsim.compiled import load_in_background

    return load_in_background("ranks", load_kernel)


class RankPass:
    """Feed batches of the stream in ascending |d| with `add`, then `finish`. Segment ids index `counts`."""

    def __init__(self, counts: Mapping[str, SegmentCounts], small_n: int = 50) -> None:
        load_kernel()
        self._types = {name: _TypeState(c, small_n) for name, c in counts.items()}

    def add(self, a: np.ndarray, negative: np.ndarray, ids: Mapping[str, np.ndarray]) -> None:
        """One batch: |d| ascending (continuing the previous batch), d < 0, and each type's segment ids."""
        if len(a) == 0:
            return
        a = np.ascontiguousarray(a, dtype=np.float64)
        negative = np.ascontiguousarray(negative, dtype=np.bool_)
        for name, state in self._types.items():
            state.add(a, negative, np.ascontiguousarray(ids[name], dtype=np.int64))

    def finish(self) -> dict[str, SegmentRanks]:
        out = {}
        for name, state in self._types.items():
            state.close()
            out[name] = state.result()
        return out


class _TypeState:
    """The running state of one segment type over its K segments (the compiled loop's arrays)."""

    def __init__(self, counts: SegmentCounts, small_n: int) -> None:
        from dpsim.ranks_kernel import TALLY_ROWS, ZERO

        k = counts.n.size
        # the counts of dpsim.ranks_kernel, one row each (PASSED, PASSED_POS, R2, OPEN_T, OPEN_POS, TOUCHED)
        self.tally = np.zeros((TALLY_ROWS, k), dtype=np.int64)
        self.ties = np.zeros(k, dtype=np.float64)
        self.group = np.zeros(2, dtype=np.int64)  # segments touched, whether a group is open
        self.open_a = np.zeros(1, dtype=np.float64)  # the open group's |d|
        n = counts.n.astype(np.int64)
        n_neg = counts.n_negative.astype(np.int64)
        n_zero = n - counts.n_nonzero.astype(np.int64)
        lo, hi = _target(n, n_neg, n_zero, (n - 1) // 2), _target(n, n_neg, n_zero, n // 2)
        self.kind = np.stack([lo[0], hi[0]])
        self.index = np.stack([lo[1], hi[1]])
        self.values = np.where(self.kind == ZERO, 0.0, np.nan)  # the two middle values found so far
        self.small = (n <= small_n) & (n > 0)
        self.any_small = bool(self.small.any())
        self.small_parts: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, a: np.ndarray, negative: np.ndarray, g: np.ndarray) -> None:
        from dpsim.ranks_kernel import rank_rows

        if self.any_small:
            keep = self.small[g]
            if keep.any():
                self.small_parts.append((g[keep], np.where(negative[keep], -a[keep], a[keep])))
        rank_rows(
            a, negative, g, self.tally, self.ties, self.kind, self.index, self.values, self.group, self.open_a
        )

    def close(self) -> None:
        """Close the tie group left open by the last batch."""
        from dpsim.ranks_kernel import close_group

        if self.group[1]:
            close_group(
                self.open_a[0], self.group[0], self.tally, self.ties, self.kind, self.index, self.values
            )
        self.group[:] = 0

    def result(self) -> SegmentRanks:
        from dpsim.ranks_kernel import PASSED, R2

        lo, hi = self.values
        with np.errstate(invalid="ignore"):
            median = (lo + hi) / 2
        small: dict[int, np.ndarray] = {}
        if self.small_parts:
            seg = np.concatenate([s for s, _ in self.small_parts])
            val = np.concatenate([v for _, v in self.small_parts])
            order = np.argsort(seg, kind="stable")
            seg, val = seg[order], val[order]
            bounds = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1], [True])))
            for b0, b1 in zip(bounds[:-1], bounds[1:], strict=True):
                small[int(seg[b0])] = val[b0:b1]
        return SegmentRanks(self.tally[R2] / 2.0, self.ties, self.tally[PASSED].copy(), median, small)


def _target(
    n: np.ndarray, n_neg: np.ndarray, n_zero: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where the k-th smallest d (0-based) of each segment lies: (kind, index within its sign in |d| order)."""
    from dpsim.ranks_kernel import NEG, NO, POS, ZERO

    kind = np.where(n == 0, NO, np.where(k < n_neg, NEG, np.where(k < n_neg + n_zero, ZERO, POS)))
    index = np.where(kind == NEG, n_neg - 1 - k, np.where(kind == POS, k - n_neg - n_zero, -1))
    return kind.astype(np.int8), index.astype(np.int64)

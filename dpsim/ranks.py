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

Cost per batch of B rows and segment type: a stable sort of the segment ids (a radix sort: ids are 8 or 16
bits for up to 32,767 segments) and a few vector passes; memory O(K) per type of K segments plus the batch.
A NaN difference sorts last and counts as positive (DuckDB orders NaN above every number); its segment's
p-value is NaN (dpsim.aggregate), as scipy's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

_NO, _ZERO, _NEG, _POS = 0, 1, 2, 3  # where a median's middle value lies


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


class RankPass:
    """Feed batches of the stream in ascending |d| with `add`, then `finish`. Segment ids index `counts`."""

    def __init__(self, counts: Mapping[str, SegmentCounts], small_n: int = 50) -> None:
        self._types = {name: _TypeState(c, small_n) for name, c in counts.items()}
        self._open_a = np.nan  # |d| of the tie group left open by the last batch
        self._open = False

    def add(self, a: np.ndarray, negative: np.ndarray, ids: Mapping[str, np.ndarray]) -> None:
        """One batch: |d| ascending (continuing the previous batch), d < 0, and each type's segment ids."""
        n = a.size
        if n == 0:
            return
        a = np.asarray(a, dtype=np.float64)
        positive = (~np.asarray(negative, dtype=bool)).astype(np.int64)
        same = _same(a[1:], a[:-1])  # row i+1 ties with row i
        # prefix: rows continuing the open tie group; suffix: the batch's last tie group (left open)
        prefix = 0
        if self._open and _same(a[:1], np.array([self._open_a]))[0]:
            breaks = np.flatnonzero(~same)
            prefix = int(breaks[0]) + 1 if breaks.size else n
        breaks = np.flatnonzero(~same)
        suffix = int(breaks[-1]) + 1 if breaks.size else 0
        if prefix >= n:  # the whole batch continues the open group
            for name, state in self._types.items():
                state.open_rows(np.asarray(ids[name]), positive, a)
            return
        middle = slice(prefix, suffix)
        run = (
            np.concatenate(([0], np.cumsum(~same[prefix : max(suffix - 1, prefix)])))
            if suffix > prefix
            else None
        )
        has_ties = bool(suffix - prefix > 1 and same[prefix : suffix - 1].any())
        for name, state in self._types.items():
            g = np.asarray(ids[name])
            if self._open:
                state.open_rows(g[:prefix], positive[:prefix], a[:prefix])
                state.close_open(self._open_a)
            if suffix > prefix:
                assert run is not None
                state.complete_groups(g[middle], positive[middle], a[middle], run, has_ties)
            state.open_rows(g[suffix:], positive[suffix:], a[suffix:])
        self._open, self._open_a = True, float(a[-1])

    def finish(self) -> dict[str, SegmentRanks]:
        out = {}
        for name, state in self._types.items():
            if self._open:
                state.close_open(self._open_a)
            out[name] = state.result()
        self._open = False
        return out


class _TypeState:
    """The running state of one segment type over its K segments."""

    def __init__(self, counts: SegmentCounts, small_n: int) -> None:
        k = counts.n.size
        self.k = k
        self.key_dtype = np.uint8 if k <= 255 else np.uint16 if k <= 65535 else np.int64
        self.passed = np.zeros(k, dtype=np.int64)  # non-zero members in closed tie groups
        self.passed_pos = np.zeros(k, dtype=np.int64)
        self.r2 = np.zeros(k, dtype=np.int64)  # 2 · R+
        self.ties = np.zeros(k, dtype=np.float64)
        self.open_t = np.zeros(k, dtype=np.int64)  # the open tie group's members per segment
        self.open_pos = np.zeros(k, dtype=np.int64)
        n = counts.n.astype(np.int64)
        n_neg = counts.n_negative.astype(np.int64)
        n_zero = n - counts.n_nonzero.astype(np.int64)
        self.targets = [_target(n, n_neg, n_zero, (n - 1) // 2), _target(n, n_neg, n_zero, n // 2)]
        self.values = [np.where(kind == _ZERO, 0.0, np.nan) for kind, _ in self.targets]
        self.small = (n <= small_n) & (n > 0)
        self.any_small = bool(self.small.any())
        self.small_parts: list[tuple[np.ndarray, np.ndarray]] = []

    def _keep_small(self, g: np.ndarray, positive: np.ndarray, a: np.ndarray) -> None:
        if self.any_small and g.size:
            keep = self.small[g]
            if keep.any():
                self.small_parts.append((g[keep], np.where(positive[keep] == 1, a[keep], -a[keep])))

    def open_rows(self, g: np.ndarray, positive: np.ndarray, a: np.ndarray) -> None:
        """Rows of the open tie group: counted per segment, ranked when the group closes."""
        if g.size == 0:
            return
        self._keep_small(g, positive, a)
        self.open_t += np.bincount(g, minlength=self.k)
        self.open_pos += np.bincount(g, weights=positive, minlength=self.k).astype(np.int64)

    def close_open(self, a: float) -> None:
        """Rank the open tie group (every member has |d| = a) and count it as passed."""
        t, tp = self.open_t, self.open_pos
        if not t.any():
            return
        self.r2 += tp * (2 * self.passed + t + 1)
        tf = t.astype(np.float64)
        self.ties += tf * tf * tf - tf
        for (kind, index), values in zip(self.targets, self.values, strict=True):
            before_neg = self.passed - self.passed_pos
            hit_pos = (kind == _POS) & (self.passed_pos <= index) & (index < self.passed_pos + tp)
            hit_neg = (kind == _NEG) & (before_neg <= index) & (index < before_neg + (t - tp))
            values[hit_pos] = a
            values[hit_neg] = -a
        self.passed += t
        self.passed_pos += tp
        self.open_t = np.zeros(self.k, dtype=np.int64)
        self.open_pos = np.zeros(self.k, dtype=np.int64)

    def complete_groups(
        self, g: np.ndarray, positive: np.ndarray, a: np.ndarray, run: np.ndarray, has_ties: bool
    ) -> None:
        """Rows whose tie groups all end within the batch (`run`: the tie group of each row, ascending)."""
        self._keep_small(g, positive, a)
        k, n = self.k, g.size
        cnt = np.bincount(g, minlength=k)
        if k == 1:
            order = None
            pos_s = positive
        else:
            order = np.argsort(g.astype(self.key_dtype, copy=False), kind="stable")  # radix; |d| order kept
            pos_s = positive[order]
        starts = np.cumsum(cnt) - cnt
        block = np.repeat(starts, cnt)  # each sorted row's segment block start
        local = np.arange(n, dtype=np.int64) - block
        if has_ties:
            run_s = run if order is None else run[order]
            flag = np.empty(n, dtype=bool)
            flag[0] = True
            flag[1:] = (run_s[1:] != run_s[:-1]) | (local[1:] == 0)
            first = np.flatnonzero(flag)
            gid = np.cumsum(flag) - 1
            size = np.diff(np.append(first, n))
            t = size[gid]
            before = first[gid] - block
        else:
            t = np.ones(n, dtype=np.int64)
            before = local
        nonempty = np.flatnonzero(cnt)
        at = starts[nonempty]
        passed_rep = np.repeat(self.passed, cnt)
        self.r2[nonempty] += np.add.reduceat(pos_s * (2 * (before + passed_rep) + t + 1), at)
        if has_ties:
            tf = t.astype(np.float64)
            self.ties[nonempty] += np.add.reduceat(tf * tf - 1.0, at)  # Σ rows (t² − 1) = Σ groups (t³ − t)
        n_pos = np.zeros(k, dtype=np.int64)
        n_pos[nonempty] = np.add.reduceat(pos_s, at)
        self._pick_medians(cnt, n_pos, starts, pos_s, a, order)
        self.passed += cnt
        self.passed_pos += n_pos

    def _pick_medians(
        self,
        cnt: np.ndarray,
        n_pos: np.ndarray,
        starts: np.ndarray,
        pos_s: np.ndarray,
        a: np.ndarray,
        order: np.ndarray | None,
    ) -> None:
        """Median targets falling in this batch: the k-th positive (negative) of a block, by a search in the
        running count of positives (negatives) over the sorted rows."""
        n_neg = cnt - n_pos
        before_neg = self.passed - self.passed_pos
        cum_pos = cum_neg = None
        for (kind, index), values in zip(self.targets, self.values, strict=True):
            for sign, seen, here in ((_POS, self.passed_pos, n_pos), (_NEG, before_neg, n_neg)):
                local = index - seen
                hit = np.flatnonzero((kind == sign) & (local >= 0) & (local < here))
                if hit.size == 0:
                    continue
                if sign == _POS:
                    if cum_pos is None:
                        cum_pos = np.cumsum(pos_s)
                    cum = cum_pos
                else:
                    if cum_neg is None:
                        cum_neg = np.cumsum(1 - pos_s)
                    cum = cum_neg
                before_block = np.where(starts[hit] > 0, cum[np.maximum(starts[hit] - 1, 0)], 0)
                row = np.searchsorted(cum, before_block + local[hit] + 1)
                found = a[row] if order is None else a[order[row]]
                values[hit] = found if sign == _POS else -found

    def result(self) -> SegmentRanks:
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
        return SegmentRanks(self.r2 / 2.0, self.ties, self.passed.copy(), median, small)


def _same(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x == y elementwise, with NaN equal to NaN (DuckDB sorts NaNs together, as one value)."""
    with np.errstate(invalid="ignore"):
        return (x == y) | (np.isnan(x) & np.isnan(y))


def _target(
    n: np.ndarray, n_neg: np.ndarray, n_zero: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where the k-th smallest d (0-based) of each segment lies: (kind, index within its sign in |d| order)."""
    kind = np.where(n == 0, _NO, np.where(k < n_neg, _NEG, np.where(k < n_neg + n_zero, _ZERO, _POS)))
    index = np.where(kind == _NEG, n_neg - 1 - k, np.where(kind == _POS, k - n_neg - n_zero, -1))
    return kind.astype(np.int8), index.astype(np.int64)

"""The rank pass's loop over one segment type, compiled with numba (dpsim.ranks describes the statistics).

Rows arrive in ascending |d|; rows with equal |d| form a tie group, which may span batches. Each row adds
to its segment's count in the open group (and to the list of segments the group touched); when a larger
|d| arrives the group closes: each touched segment ranks its members at once (average rank L + (t + 1)/2,
L its members passed before) and checks whether a median's middle value lies among them. A loop, because
the vector form needed a stable sort of the segment ids, cumulative sums and reductions per batch and
type: half the rank passes' CPU after one date of a 6,000-partition lake changed, where the loop's
whole command takes 0.79x the time (BENCHMARKS.md, seventeenth stop on issue 20).

The arrays are the state of one segment type over its K segments (dpsim.ranks._TypeState): `tally` the
counts below, one row each; `kind`, `index` and `values` where the median's two middle values lie and
those found; `group` the open group's number of touched segments and whether a group is open, `open_a`
its |d|. Compiled once per machine into numba's cache beside this file (`dpsim.ranks.load_kernel`, run by
`make install`).
"""

from __future__ import annotations

from numba import njit

NO, ZERO, NEG, POS = 0, 1, 2, 3  # where a median's middle value lies (dpsim.ranks._target)
# The rows of `tally`: non-zero members in closed tie groups (all, positive), 2 · R+, the open tie group's
# members (all, positive), and the segments the open group touched, in order.
PASSED, PASSED_POS, R2, OPEN_T, OPEN_POS, TOUCHED = 0, 1, 2, 3, 4, 5
TALLY_ROWS = 6


@njit(cache=True, nogil=True)
def rank_rows(a, negative, g, tally, ties, kind, index, values, group, open_a):
    """Add one batch of rows (|d| ascending, continuing the previous batch) of one segment type."""
    n_touched = group[0]
    is_open = group[1]
    current = open_a[0]
    for i in range(a.size):
        ai = a[i]
        if not is_open:
            is_open = 1
            current = ai
        elif ai != current and not (ai != ai and current != current):  # NaN ties with NaN
            close_group(current, n_touched, tally, ties, kind, index, values)
            n_touched = 0
            current = ai
        s = g[i]
        if tally[OPEN_T, s] == 0:
            tally[TOUCHED, n_touched] = s
            n_touched += 1
        tally[OPEN_T, s] += 1
        if not negative[i]:
            tally[OPEN_POS, s] += 1
    group[0] = n_touched
    group[1] = is_open
    open_a[0] = current


@njit(cache=True, nogil=True)
def close_group(a, n_touched, tally, ties, kind, index, values):
    """Rank the open tie group (every member has |d| = a) in each segment it touched, and count it passed."""
    for j in range(n_touched):
        s = tally[TOUCHED, j]
        t = tally[OPEN_T, s]
        tp = tally[OPEN_POS, s]
        before = tally[PASSED, s]
        before_pos = tally[PASSED_POS, s]
        tally[R2, s] += tp * (2 * before + t + 1)
        tf = float(t)
        ties[s] += tf * tf * tf - tf
        before_neg = before - before_pos
        for m in range(2):  # the two middle values of the median
            k = kind[m, s]
            at = index[m, s]
            if k == POS and before_pos <= at < before_pos + tp:
                values[m, s] = a
            elif k == NEG and before_neg <= at < before_neg + (t - tp):
                values[m, s] = -a
        tally[PASSED, s] = before + t
        tally[PASSED_POS, s] = before_pos + tp
        tally[OPEN_T, s] = 0
        tally[OPEN_POS, s] = 0

"""The replay kernel's loop, compiled with numba (`dpsim.steps.matching.match` builds its arrays and calls
`replay`; the module docstring there describes the index). Compiled once per machine into numba's cache
beside this file (`matching.compile_kernel`, run by `make install`); a process loads it when its first job
starts (`matching.load_kernel_in_background`) or at its first replay.

The four trees (side × kind) share flat arrays: tree t = 2 * (side - 1) + kind holds nodes 1 .. 2 * size - 1
at key/tmaq/trem[off[t] + node] and its leaves' book indices, in arrival order, at members[moff[t] + pos].
"""

from __future__ import annotations

import numpy as np
from numba import njit, objmode

from dpsim.steps.matching import BUY, INF, SELL


@njit(cache=True)
def _tree_set(key, tmaq, trem, off, size, pos, kv, mv, rv):
    """Set one leaf and refresh its ancestors, stopping where a node's summary does not change."""
    v = pos + size
    key[off + v], tmaq[off + v], trem[off + v] = kv, mv, rv
    v >>= 1
    while v:
        a = off + 2 * v
        b = a + 1
        k2 = key[a] if key[a] < key[b] else key[b]
        m2 = tmaq[a] if tmaq[a] < tmaq[b] else tmaq[b]
        r2 = trem[a] if trem[a] > trem[b] else trem[b]
        c = off + v
        if k2 == key[c] and m2 == tmaq[c] and r2 == trem[c]:
            return
        key[c], tmaq[c], trem[c] = k2, m2, r2
        v >>= 1


@njit(cache=True)
def _tree_activate(key, tmaq, trem, off, size, pos, kv, mv, rv):
    """Set a leaf that was empty: each ancestor's summary can only move towards the new values, so a
    comparison with the ancestor alone suffices, and the walk stops at the first unchanged one."""
    v = pos + size
    key[off + v], tmaq[off + v], trem[off + v] = kv, mv, rv
    v >>= 1
    while v:
        c = off + v
        changed = False
        if kv < key[c]:
            key[c] = kv
            changed = True
        if mv < tmaq[c]:
            tmaq[c] = mv
            changed = True
        if rv > trem[c]:
            trem[c] = rv
            changed = True
        if not changed:
            return
        v >>= 1


@njit(cache=True)
def _tree_leftmost(key, tmaq, trem, off, size, threshold, need, min_rem, lo, scratch):
    """Position >= lo of the earliest order with key <= threshold, MAQ <= need, remainder >= min_rem; -1 if none.

    The subtrees covering [lo, size) are tried left to right; within one, the descent is greedy (left child
    first), which the summaries make exact when one condition binds; a dead end (two conditions met by
    different orders of a subtree) falls back to a full search of that subtree."""
    n_cover = 0
    if lo == 0:
        scratch[0] = 1
        n_cover = 1
    else:
        left, right = lo + size, 2 * size
        n_tail = 0
        while left < right:  # the cover's left part in order; its right part from the end of scratch
            if left & 1:
                scratch[n_cover] = left
                n_cover += 1
                left += 1
            if right & 1:
                right -= 1
                n_tail += 1
                scratch[scratch.size - n_tail] = right
            left >>= 1
            right >>= 1
        for q in range(n_tail):  # the right part, reversed: left to right
            scratch[n_cover] = scratch[scratch.size - n_tail + q]
            n_cover += 1
    for c in range(n_cover):
        top = scratch[c]
        if key[off + top] > threshold or tmaq[off + top] > need or trem[off + top] < min_rem:
            continue
        v = top
        while v < size:
            v *= 2
            if key[off + v] > threshold or tmaq[off + v] > need or trem[off + v] < min_rem:
                v += 1
                if key[off + v] > threshold or tmaq[off + v] > need or trem[off + v] < min_rem:
                    v = _tree_search(key, tmaq, trem, off, size, top, threshold, need, min_rem)
                    break
        if v >= 0:
            return v - size
    return -1


@njit(cache=True)
def _tree_search(key, tmaq, trem, off, size, top, threshold, need, min_rem):
    """Leftmost matching leaf (as a node number) under `top` by a full search; -1 when none."""
    stack = np.empty(130, np.int64)  # depth-first: at most two nodes a level wait (trees < 2^64 leaves)
    stack[0] = top
    n = 1
    while n:
        n -= 1
        v = stack[n]
        if key[off + v] > threshold or tmaq[off + v] > need or trem[off + v] < min_rem:
            continue
        if v >= size:
            return v
        stack[n] = 2 * v + 1
        stack[n + 1] = 2 * v
        n += 2
    return -1


@njit(cache=True)
def _bisect_right(a, lo, hi, x):
    """The first position in a[lo:hi] (sorted) whose value is > x, as an offset from lo."""
    start = lo
    while lo < hi:
        mid = (lo + hi) // 2
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo - start


@njit(cache=True)
def _refresh(j, trees, book, rem, had_fill, kind_of, pos):
    """Update resting order j's leaf after a fill: gone when exhausted or below its own MAQ."""
    key, tmaq, trem, toff, tsize = trees[0], trees[1], trees[2], trees[3], trees[4]
    side, maq, single = book[0], book[3], book[4]
    t = 2 * (side[j] - 1) + kind_of[j]
    mj = maq[j] if maq[j] > 0 and (single[j] or not had_fill[j]) else 0
    if rem[j] == 0 or rem[j] < mj:
        _tree_set(key, tmaq, trem, toff[t], tsize[t], pos[j], INF, INF, -1)
    else:
        kv = key[toff[t] + pos[j] + tsize[t]]
        _tree_set(key, tmaq, trem, toff[t], tsize[t], pos[j], kv, float(mj), rem[j])


@njit(cache=True)
def _incoming_pass(i, need, t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch):
    """Order i meets the open resting orders of the other side at mid m; returns what it has left."""
    key, tmaq, trem, toff, tsize, members, moff, mcount = trees
    side, bound, sweep, maq, single, wend = book
    split, up, down = prices
    sd = side[i]
    other = SELL if sd == BUY else BUY
    # the price each kind of candidate sees, and the tree threshold that accepts it
    own = up if sd == BUY else down
    contra = up if other == BUY else down
    vs_real, vs_sweep = (m * own, m) if sweep[i] else (m, m * contra)
    # the trees to search (at most two, one per kind) and their prices: scalars, no allocation per pass
    n_kinds = 0
    tree0 = tree1 = 0
    price0 = price1 = 0.0
    for kind in range(2 if split else 1):
        price = (vs_sweep if kind else vs_real) if split else m
        ok = price <= bound[i] if sd == BUY else price >= bound[i]
        tt = 2 * (other - 1) + kind
        if ok and trem[toff[tt] + 1] > 0:
            if n_kinds == 0:
                tree0, price0 = tt, price
            else:
                tree1, price1 = tt, price
            n_kinds += 1
    mi = maq[i]
    had_i = had_fill[i]
    visited = -1
    while n_kinds and need > 0:
        mi_eff = mi if mi > 0 and (single[i] or not had_i) else 0
        if need < mi_eff:
            break  # every fill would be below the incoming order's MAQ
        best = -1
        best_tree = -1
        best_price = 0.0
        for c in range(n_kinds):
            tt, price = (tree0, price0) if c == 0 else (tree1, price1)
            threshold = price if sd == BUY else -price
            # one pass in time priority: candidates before the last one visited are not revisited
            # (only the incoming MAQ could relax, after its first fill, and a skip is final)
            lo = _bisect_right(members, moff[tt], moff[tt] + mcount[tt], visited) if visited >= 0 else 0
            p = _tree_leftmost(key, tmaq, trem, toff[tt], tsize[tt], threshold, need, mi_eff, lo, scratch)
            if p >= 0 and (best < 0 or members[moff[tt] + p] < best):
                best, best_tree, best_price = members[moff[tt] + p], tt, price
        if best_tree < 0:
            break
        j = visited = best
        if wend[j] < t:  # its window ended; time only moves forward
            _tree_set(key, tmaq, trem, toff[best_tree], tsize[best_tree], pos[j], INF, INF, -1)
            continue
        r = rem[j]
        q = need if need < r else r
        o_rest, o_inc, o_ts, o_qty, o_price, o_mid, o_n = out
        n_out = o_n[0]
        # `match` sizes the outputs by a proven bound; compiled code checks no index, so this does
        if n_out == o_rest.size:
            raise RuntimeError("replay kernel: more matches than their bound (a bug: report the partition)")
        o_rest[n_out], o_inc[n_out], o_ts[n_out], o_qty[n_out] = j, i, t, q
        o_price[n_out], o_mid[n_out] = best_price, m
        o_n[0] = n_out + 1
        had_i = True
        had_fill[j] = True
        need -= q
        rem[j] = r - q
        _refresh(j, trees, book, rem, had_fill, kind_of, pos)
    had_fill[i] = had_i
    return need


@njit(cache=True)
def _earliest_resting(sd, m, t, trees, wend, kind_of, pos, scratch):
    """The earliest resting order of side sd whose bound accepts m and whose window is open; -1 if none."""
    key, tmaq, trem, toff, tsize, members, moff, _ = trees
    threshold = -m if sd == BUY else m
    while True:
        best = -1
        for kind in range(2):
            tt = 2 * (sd - 1) + kind
            p = _tree_leftmost(key, tmaq, trem, toff[tt], tsize[tt], threshold, 1 << 62, 0, 0, scratch)
            if p >= 0 and (best < 0 or members[moff[tt] + p] < best):
                best = members[moff[tt] + p]
        if best < 0 or wend[best] >= t:
            return best
        tt = 2 * (sd - 1) + kind_of[best]
        _tree_set(key, tmaq, trem, toff[tt], tsize[tt], pos[best], INF, INF, -1)


@njit(cache=True)
def _rematch(t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch):
    """A new quote: resting orders both of whose limits accept its mid match, the later one incoming.

    (Optional rule `replay.rematch_on_quote`; stops at the first pair whose MAQs block a match.)"""
    wend = book[5]
    while True:
        b = _earliest_resting(BUY, m, t, trees, wend, kind_of, pos, scratch)
        s_ = _earliest_resting(SELL, m, t, trees, wend, kind_of, pos, scratch)
        if b < 0 or s_ < 0:
            return
        later = b if b > s_ else s_
        left = _incoming_pass(
            later, rem[later], t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch
        )
        if left == rem[later]:
            return
        rem[later] = left
        _refresh(later, trees, book, rem, had_fill, kind_of, pos)


@njit(cache=True)
def _floor_share(base, num, den, exact):
    """floor(base × num / den), in int64 when it cannot overflow (`exact`), else with Python's integers."""
    if exact:
        return base * num // den
    with objmode(r="int64"):
        r = int(base) * int(num) // int(den)
    return r


@njit(cache=True, nogil=True)  # threads of one process (a Dask worker's) replay side by side
def replay(ts, qty, mids, rests, cap, reach, quotes, trees, book, prices, kind_of, pos, share, out, rested):
    """Every order in array order: matched as incoming, then it may rest (the loop of `match`)."""
    key, tmaq, trem, toff, tsize = trees[0], trees[1], trees[2], trees[3], trees[4]
    side, bound, sweep, maq, single = book[0], book[1], book[2], book[3], book[4]
    split = prices[0]
    num, den, exact = share
    qt, qm = quotes
    nq = qt.size
    n = ts.size
    rem = np.zeros(n, np.int64)
    had_fill = np.zeros(n, np.bool_)  # has had a replay fill in either role (first-fill MAQ)
    scratch = np.empty(256, np.int64)
    buy_tree, sell_tree = 0, 2  # (BUY, real) and (SELL, real): the only trees without impact
    k = 0
    for i in range(n):
        need = qty[i]
        m = mids[i]
        t = ts[i]
        while k < nq and qt[k] < t:  # quotes stamped before this arrival (a quote at its ns is its result)
            _rematch(qt[k], qm[k], trees, book, prices, rem, had_fill, kind_of, pos, out, scratch)
            k += 1
        if need > 0 and m == m:  # m == m is False only for NaN: outside the session or no quote
            if split:
                need = _incoming_pass(
                    i, need, t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch
                )
            else:  # one tree and one price: skip the pass when its root shows no candidate could take m
                buys = side[i] == BUY
                tt = sell_tree if buys else buy_tree
                if (m <= bound[i] if buys else m >= bound[i]) and key[toff[tt] + 1] <= (m if buys else -m):
                    need = _incoming_pass(
                        i, need, t, m, trees, book, prices, rem, had_fill, kind_of, pos, out, scratch
                    )
        if rests[i]:
            base = cap[i] if cap[i] < need else need  # need = budget left after its incoming pass
            r = (_floor_share(base, num, den, exact) if sweep[i] else base) if base > 0 else 0
            if r > 0:
                rested[i] = r
                rem[i] = r
                mj = maq[i] if maq[i] > 0 and (single[i] or not had_fill[i]) else 0
                if r >= mj and reach[i]:  # below its own MAQ, or unreachable, it could never fill
                    kv = -bound[i] if side[i] == BUY else bound[i]
                    tt = 2 * (side[i] - 1) + kind_of[i]
                    _tree_activate(key, tmaq, trem, toff[tt], tsize[tt], pos[i], kv, float(mj), r)
    while k < nq:
        _rematch(qt[k], qm[k], trees, book, prices, rem, had_fill, kind_of, pos, out, scratch)
        k += 1

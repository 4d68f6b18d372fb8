"""The day driver: a drop generated day by day and, within a day, slice by slice, at the planned pace.

Each trading day runs on one time axis (`clock`): evening reloads and pre-open orders first, then the
continuous session cut into time slices of bounded size. A slice generates the episodes that start in it,
merges them with the events carried over from earlier slices, and writes the events before the slice end
in (timestamp, causal order); the shared order/trade `sequence` is assigned at write time, so it is
strictly increasing in file order and across both files. The pace (rows per slice) follows the target
(rows, or bytes at the bytes per row measured so far).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np

from dpsim.schema import EXPORT_HEADERS
from dpsim.synth.clock import CLOSE, CONT_START, DAY_END, MIN, OPEN, PRE_OPEN, SEC, day_bases, to_utc
from dpsim.synth.episodes import auction, cp_resting, lit_resting, lit_trades, reloads, sweeps
from dpsim.synth.events import EXEC_KEYS, ORD_TRADE, ROW_KEYS, SURVIVOR_KEYS, Arr, Batch, Cols, concat, take
from dpsim.synth.market import Market, universe
from dpsim.synth.orders import OrderFactory
from dpsim.synth.output import MATCHGROUP_BASE, Sink, write_nbbo, write_orders, write_trades

log = logging.getLogger(__name__)

SLICE_ROWS = 200_000  # order rows generated per slice: bounds memory at any scale
BYTES_PER_ROW_GUESS = 145.0  # replaced by the measured figure once rows are written
ROWS_PER_EPISODE_GUESS = 4.9  # replaced by the measured figure once a slice is generated
EPISODES = (lit_trades, lit_resting, sweeps, cp_resting)  # the continuous session's, in draw order


class Synth:
    """Generates the drop day by day, slice by slice; holds the state that crosses slices and days."""

    def __init__(
        self, paths: dict[str, Path], securities: int, seed: int, gzip: bool, mode: str, target: int
    ) -> None:
        self.seed = seed % 2**64
        self.mode, self.target = mode, target
        self.market = Market(universe(self._rng(0), securities))
        self.universe = self.market.universe
        self.n_sec = securities
        self.orders = Sink(paths["orders"], EXPORT_HEADERS["orders"], gzip)
        self.trades = Sink(paths["trades"], EXPORT_HEADERS["trades"], gzip)
        self.nbbo = Sink(paths["nbbo"], EXPORT_HEADERS["nbbo"], gzip)
        self.gen = OrderFactory(self.universe, self._rng(1))
        self.next_mg = MATCHGROUP_BASE
        self.seq = 3_000_000
        self.nbbo_seq = 0
        self.carry_rows: Cols = concat([], ROW_KEYS)
        self.carry_execs: Cols = concat([], EXEC_KEYS)
        self.survivors: list[Cols] = []
        self.rows_generated = self.cont_rows = self.cont_episodes = 0
        self.rows_per_episode = ROWS_PER_EPISODE_GUESS
        self.session: list[tuple[str, Arr]] = []
        self.partitions: set[tuple[int, int]] = set()
        # Per-day state, set by run() and _day().
        self.day_idx: int
        self.tradedate: str
        self.bases: tuple[int, int]
        self.slice_w: Arr
        self.slice_k: int

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, *stream]))

    def close(self) -> None:
        for sink in (self.orders, self.trades, self.nbbo):
            sink.close()

    def run(self, dates: list[date], progress: Callable[[int], None] | None) -> None:
        plan = self._rng(2)
        day_w = np.exp(0.2 * plan.standard_normal(len(dates)))
        est_rows = self.target if self.mode == "rows" else self.target / BYTES_PER_ROW_GUESS
        planned_day = est_rows * day_w / day_w.sum()
        # At least two slices a day, so that a small drop's later slice uses the measured rows per episode.
        n_slices = np.maximum(2, np.ceil(planned_day / SLICE_ROWS)).astype(int)
        self.slice_w = np.repeat(day_w / n_slices, n_slices)  # weight of every continuous slice, in order
        self.slice_k = 0
        for d_idx, d in enumerate(dates):
            planned = planned_day[d_idx] * self.universe.weight
            self._open_day(d_idx, d, planned)
            self._slices(d_idx, planned, int(n_slices[d_idx]), progress)
            log.debug("synth: %s done, %d order rows so far", d, self.orders.rows)

    def _open_day(self, d_idx: int, d: date, planned: Arr) -> None:
        """The day's quotes and session times, then the evening and pre-open: reloads, the opening auction,
        orders entered before the open."""
        self.day_idx, self.tradedate = d_idx, d.isoformat()
        self.bases = day_bases(d)
        gen = self.gen
        gen.rng = rng = self._rng(3, d_idx)
        n_sec = self.n_sec
        open_t = OPEN + np.floor(rng.random(n_sec) * 9 * SEC).astype(np.int64)
        gen.quotes = self.market.day_quotes(rng, planned, open_t)
        self.nbbo_seq += write_nbbo(self.nbbo, gen.quotes, self.universe.codes, self.bases, self.nbbo_seq)
        closed_t = CLOSE + 10 * MIN + np.floor(rng.random(n_sec) * 2 * MIN).astype(np.int64)
        for name, t in (
            ("Pre Open", np.full(n_sec, PRE_OPEN)),
            ("Open", open_t),
            ("Pre CSPA", np.full(n_sec, CLOSE)),
            ("Closed", closed_t),
        ):
            self.session.append((name, to_utc(t, self.bases)))
        prev = concat(self.survivors, SURVIVOR_KEYS)
        self.survivors = []
        new_reloads = rng.poisson(0.0005 * planned) + (1 if d_idx == 0 else 0)
        reloads(gen, prev, np.repeat(np.arange(n_sec), new_reloads))
        auction(gen, np.repeat(np.arange(n_sec), rng.poisson(np.maximum(1.0, 0.004 * planned))), open_t)
        sec = np.repeat(np.arange(n_sec), rng.poisson(0.004 * planned))
        a = gen.between(np.full(len(sec), PRE_OPEN), np.full(len(sec), OPEN))
        lit = rng.random(len(sec)) < 0.5
        lit_resting(gen, a[lit], sec[lit])
        cp_resting(gen, a[~lit], sec[~lit])
        self._finish_slice(CONT_START)

    def _slices(
        self, d_idx: int, planned: Arr, n_slices: int, progress: Callable[[int], None] | None
    ) -> None:
        """The continuous session, slice by slice (U-shaped intensity), then the rest of the day."""
        cdf, cdf_t = self.market.cdf, self.market.cdf_t
        for i in range(n_slices):
            self.gen.rng = rng = self._rng(4, d_idx, i)
            k = self.slice_k
            self.slice_k += 1
            rows_target = max(0.0, self._remaining_rows()) * self.slice_w[k] / self.slice_w[k:].sum()
            lo, hi = i / n_slices, (i + 1) / n_slices
            upto = CLOSE if i == n_slices - 1 else int(np.interp(hi, cdf, cdf_t))
            sec = np.repeat(
                np.arange(self.n_sec), rng.poisson(rows_target / self.rows_per_episode * self.universe.weight)
            )
            a = np.floor(np.interp(rng.uniform(lo, hi, len(sec)), cdf, cdf_t)).astype(np.int64)
            kind = rng.choice(4, len(sec), p=[0.28, 0.27, 0.25, 0.20])
            for j, episode in enumerate(EPISODES):
                episode(self.gen, a[kind == j], sec[kind == j])
            self.cont_rows += self._finish_slice(upto)
            self.cont_episodes += len(sec)
            if self.cont_episodes >= 100:
                self.rows_per_episode = self.cont_rows / self.cont_episodes
            if progress:
                progress(self.orders.bytes)
        self._finish_slice(DAY_END)
        if progress:
            progress(self.orders.bytes)

    def _finish_slice(self, upto: int) -> int:
        """Turn the slice's episodes into rows, write what is due before `upto`; returns rows generated."""
        rows, execs, survivors = self.gen.batch.finalize()
        self.survivors.append(survivors)
        self._flush(rows, execs, upto)
        self.gen.batch = Batch()
        self.rows_generated += len(rows["time"])
        return len(rows["time"])

    def _remaining_rows(self) -> float:
        """Order rows still to generate: for a bytes target, at the bytes per row measured so far."""
        if self.mode == "rows":
            return self.target - self.rows_generated
        written = self.orders.rows
        per_row = self.orders.bytes / written if written >= 2_000 else BYTES_PER_ROW_GUESS
        return (self.target - self.orders.bytes) / per_row - (self.rows_generated - written)

    def _flush(self, rows: Cols, execs: Cols, upto: int) -> None:
        """Write every pending event before `upto` in (time, causal) order; keep the rest for later slices."""
        rows = concat([self.carry_rows, rows], ROW_KEYS)
        execs = concat([self.carry_execs, execs], EXEC_KEYS)
        now = rows["time"] < upto
        self.carry_rows = take(rows, ~now)
        rows = take(rows, now)
        now_e = execs["time"] < upto
        self.carry_execs = take(execs, ~now_e)
        execs = take(execs, now_e)
        rows = take(rows, np.lexsort((rows["rank"], rows["time"])))
        execs = take(execs, np.argsort(execs["time"], kind="stable"))
        n_o, n_e = len(rows["time"]), len(execs["time"])
        # One sequence counter for order rows and trade rows (buy row, then sell row of each execution).
        t_all = np.r_[rows["time"], np.repeat(execs["time"], 2)]
        o_all = np.r_[rows["rank"], np.full(2 * n_e, ORD_TRADE)]
        order = np.lexsort((o_all, t_all))
        seq = np.empty(n_o + 2 * n_e, np.int64)
        seq[order] = self.seq + np.cumsum(self.gen.rng.integers(1, 4, n_o + 2 * n_e))
        if len(seq):
            self.seq = int(seq.max())
        q, u = self.gen.quotes, self.universe
        write_orders(self.orders, rows, seq[:n_o], q, u, self.bases, self.gen.rng)
        write_trades(self.trades, execs, seq[n_o:], q, u.codes, self.bases, self.tradedate, self.next_mg)
        self.next_mg += n_e
        self.partitions.update((self.day_idx, int(s)) for s in np.unique(rows["security"]))

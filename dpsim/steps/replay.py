"""Replay: the counterfactual Centre Point book of one partition, per scenario (docs/methodology.md).

Every CP order arrives as an incoming order, at the mid of the prevailing quote before its arrival
(none outside the continuous session), then may rest:
- a real CP order without the sweep flag that stayed on the book after its arrival rests until its final
  event: the real queue, with its real time priority (scenario `real_queue: false` leaves it out);
- an analysed sweep that stayed on the book rests its residual (or its arrival quantity) times
  `max_fill_fraction` until its window ends; a fill-and-kill sweep never rests;
- the reality replay rests no sweep, and should reproduce the day's real CP executions (`steps.fidelity`).
Limits (with the mid-tick allowance of orders that accept it) and MAQs of both sides come from the
arrival row. Vectorised Polars builds the kernel's arrays once per partition; `matching.match` does the
sequential part per scenario.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from dpsim import schema
from dpsim.config import Codes, ReplayRules, Scenario
from dpsim.steps.classify import analysed
from dpsim.steps.matching import BUY, MatchParams, MatchResult, ReplayBook, match
from dpsim.steps.select import has_flags
from dpsim.steps.session import Session

MIDTICK_ACCEPTED = (1, 4)  # the order may trade half a tick through its limit at the mid
REAL_QUEUE_MASK = 64 | 256 | 4096  # Centre Point, CP crossing, CP block: real resting liquidity
RESTING, INCOMING = "resting", "incoming"


@dataclass(frozen=True)
class Replay:
    """One scenario's replay: the scenario, the book it ran on and what happened."""

    scenario: Scenario
    book: ReplayBook
    result: MatchResult


def replay_base(cp_orders: pl.DataFrame, session: Session, codes: Codes) -> pl.DataFrame:
    """Per CP order (lifecycle rows, in arrival order) the columns every scenario's book is made from."""
    tick = pl.lit(codes.tick_table[0].tick, dtype=pl.Int64)
    for step in codes.tick_table[1:]:
        tick = pl.when(pl.col(schema.LIMIT_PRICE) >= step.min_price).then(step.tick).otherwise(tick)
    t = pl.col(schema.ARRIVAL_TIME)
    in_session = (t >= session.open) & (t < session.close)
    return cp_orders.select(
        schema.ORDER_ID,
        schema.ARRIVAL_TIME,
        schema.SIDE,
        schema.ARRIVAL_QUANTITY,
        schema.LIMIT_PRICE,
        schema.MAQ_EFFECTIVE,
        schema.MAQ_IS_SINGLE,
        schema.RESTS,
        schema.RESIDUAL_AFTER_ARRIVAL,
        schema.FINAL_TIME,
        schema.LAST_FILL_TIME,
        pl.when(in_session)
        .then(pl.col(schema.ARRIVAL_MID))
        .otherwise(None)
        .fill_null(float("nan"))
        .alias("mid"),
        analysed(session, codes.sweep_mask).alias("analysed"),
        (
            has_flags(schema.ORDER_TYPE_FLAGS, REAL_QUEUE_MASK)
            & ~has_flags(schema.ORDER_TYPE_FLAGS, codes.sweep_mask)
        ).alias("real_order"),
        pl.col(schema.MIDTICK).is_in(MIDTICK_ACCEPTED).fill_null(False).alias("accepts_midtick"),
        (tick.cast(pl.Float64) / 2.0).alias("half_tick"),
    )


def window_end(scenario: Scenario, close: int) -> pl.Expr:
    """Inclusive end of an analysed sweep's resting window (also the end of its simulated path)."""
    if scenario.window == "last_fill":
        return pl.coalesce(pl.col(schema.LAST_FILL_TIME), pl.col(schema.FINAL_TIME))
    if scenario.window == "order_life":
        return pl.col(schema.FINAL_TIME)
    if scenario.window == "end_of_day":
        return pl.lit(close, dtype=pl.Int64)
    seconds = scenario.window_seconds
    assert seconds is not None
    return pl.col(schema.ARRIVAL_TIME) + int(round(seconds * 1e9))


def run_replay(
    base: pl.DataFrame,
    scenario: Scenario,
    session: Session,
    rules: ReplayRules,
    quotes: pl.DataFrame,
    sweeps_rest: bool = True,
) -> Replay:
    """Replay one scenario over `replay_base` rows; `sweeps_rest=False` is the reality replay.

    `quotes` (the usable quotes) matter only to the optional rule `rematch_on_quote`."""
    return run_replays(base, [(scenario, sweeps_rest)], session, rules, quotes)[0]


def run_replays(
    base: pl.DataFrame,
    runs: Sequence[tuple[Scenario, bool]],
    session: Session,
    rules: ReplayRules,
    quotes: pl.DataFrame,
) -> list[Replay]:
    """`run_replay` for each (scenario, sweeps_rest) of `runs`, their books built together."""
    books = replay_books(base, runs, session, rules, quotes)
    return [
        Replay(scenario, book, match(book, params))
        for (scenario, _), (book, params) in zip(runs, books, strict=True)
    ]


def replay_books(
    base: pl.DataFrame,
    runs: Sequence[tuple[Scenario, bool]],
    session: Session,
    rules: ReplayRules,
    quotes: pl.DataFrame,
) -> list[tuple[ReplayBook, MatchParams]]:
    """The kernel's input for each (scenario, sweeps_rest) of `runs`: the columns the scenarios share are
    converted once, and each scenario's own (bound, resting, cap, window end) come from one select."""
    close = session.close
    sweep = pl.col("analysed")
    limit = pl.col(schema.LIMIT_PRICE).cast(pl.Float64)
    buy = pl.col(schema.SIDE) == BUY
    own = []
    for i, (scenario, sweeps_rest) in enumerate(runs):
        half = pl.when(pl.col("accepts_midtick") | (sweep & scenario.sweep_midtick)).then(pl.col("half_tick"))
        no_limit = (pl.col(schema.LIMIT_PRICE) <= 0) | (sweep & scenario.ignore_sweep_limit)
        bound = (
            pl.when(no_limit)
            .then(pl.when(buy).then(np.inf).otherwise(-np.inf))
            .otherwise(pl.when(buy).then(limit + half.fill_null(0.0)).otherwise(limit - half.fill_null(0.0)))
        )
        rests = pl.col(schema.RESTS) & ((pl.col("real_order") & scenario.real_queue) | (sweep & sweeps_rest))
        cap = pl.when(sweep & (scenario.quantity == "full")).then(pl.col(schema.ARRIVAL_QUANTITY))
        own += [
            bound.alias(f"bound{i}"),
            rests.alias(f"rests{i}"),
            cap.otherwise(pl.col(schema.RESIDUAL_AFTER_ARRIVAL))
            .fill_null(0)
            .clip(lower_bound=0)
            .alias(f"cap{i}"),
            pl.when(sweep)
            .then(window_end(scenario, close))
            .otherwise(pl.col(schema.FINAL_TIME))
            .fill_null(0)
            .alias(f"wend{i}"),
        ]
    ev = base.select(
        pl.col(schema.ORDER_ID, schema.ARRIVAL_TIME, schema.SIDE, "mid", "analysed"),
        pl.col(schema.ARRIVAL_QUANTITY, schema.MAQ_EFFECTIVE).fill_null(0),
        pl.col(schema.MAQ_IS_SINGLE).fill_null(False),
        *own,
    )
    shared = {
        "order_id": ev[schema.ORDER_ID].to_numpy(),
        "timestamp": ev[schema.ARRIVAL_TIME].to_numpy(),
        "side": ev[schema.SIDE].to_numpy(),
        "quantity": ev[schema.ARRIVAL_QUANTITY].to_numpy(),
        "maq": ev[schema.MAQ_EFFECTIVE].to_numpy(),
        "maq_single": ev[schema.MAQ_IS_SINGLE].to_numpy(),
        "mid": ev["mid"].to_numpy(),
        "is_sweep": ev["analysed"].to_numpy(),
        **_session_quotes(quotes, session),
    }
    return [
        (
            ReplayBook(
                bound=ev[f"bound{i}"].to_numpy(),
                rests=ev[f"rests{i}"].to_numpy(),
                rest_cap=ev[f"cap{i}"].to_numpy(),
                window_end=ev[f"wend{i}"].to_numpy(),
                **shared,
            ),
            MatchParams(
                impact_bps=scenario.impact_bps,
                max_fill_fraction=scenario.max_fill_fraction,
                rematch_on_quote=rules.rematch_on_quote,
            ),
        )
        for i, (scenario, _) in enumerate(runs)
    ]


def _session_quotes(quotes: pl.DataFrame, session: Session) -> dict[str, np.ndarray]:
    """quote_time and quote_mid of the usable quotes within [open, close) (the replay matches only then)."""
    t = pl.col(schema.TIMESTAMP)
    inside = quotes.filter((t >= session.open) & (t < session.close))
    return {"quote_time": inside[schema.TIMESTAMP].to_numpy(), "quote_mid": inside["mid"].to_numpy()}


def sweep_fills(replays: Mapping[str, Replay]) -> pl.DataFrame:
    """`results/sim_fills` rows of every replay (schema.SIM_FILLS, then `scenario`: the mapping's key): one
    per match per analysed sweep involved; the scenarios in the mapping's order, each sorted in time."""
    columns: dict[str, list[np.ndarray]] = {}
    for run, replay in enumerate(replays.values()):
        book, res = replay.book, replay.result
        ids, is_sweep = book.order_id, book.is_sweep
        for is_resting, own, contra in (
            (True, res.resting_idx, res.incoming_idx),
            (False, res.incoming_idx, res.resting_idx),
        ):
            keep = is_sweep[own]
            part = {
                "run": np.full(int(keep.sum()), run, dtype=np.uint32),
                schema.SWEEP_ORDER_ID: ids[own][keep],
                schema.CONTRA_ORDER_ID: ids[contra][keep],
                schema.ROLE: np.full(int(keep.sum()), is_resting, dtype=np.uint32),
                "contra_is_sweep": is_sweep[contra][keep],
                schema.TIMESTAMP: res.timestamp[keep],
                schema.QUANTITY: res.quantity[keep],
                schema.PRICE: res.price[keep],
                "mid": res.mid[keep],
            }
            for name, values in part.items():
                columns.setdefault(name, []).append(values)
    target = schema.polars_schema(schema.SIM_FILLS)
    if not columns:
        return pl.DataFrame(schema={**target, schema.SCENARIO: pl.String})
    flat = {name: np.concatenate(parts) for name, parts in columns.items()}
    of_run, role = flat.pop("run"), flat.pop(schema.ROLE)
    frame = pl.DataFrame(flat).with_columns(
        pl.Series(schema.ROLE, [INCOMING, RESTING]).gather(role),
        pl.Series(schema.SCENARIO, list(replays), dtype=pl.String).gather(of_run),
        pl.Series("run", of_run),
    )
    return frame.sort(
        ["run", schema.TIMESTAMP, schema.SWEEP_ORDER_ID, schema.CONTRA_ORDER_ID, schema.ROLE]
    ).select(*(pl.col(c).cast(t) for c, t in target.items()), schema.SCENARIO)


def rested(replays: Mapping[str, Replay], base: pl.DataFrame, close: int) -> pl.LazyFrame:
    """Per analysed sweep and replay: order_id, sim_quantity (what rested, 0 if nothing), sim_window_end
    and `scenario` (the mapping's key), the scenarios in the mapping's order."""
    wide = (
        base.lazy()
        .select(
            schema.ORDER_ID,
            "analysed",
            *(
                pl.lit(pl.Series(r.result.rested_quantity)).alias(f"q{i}")
                for i, r in enumerate(replays.values())
            ),
            *(window_end(r.scenario, close).alias(f"w{i}") for i, r in enumerate(replays.values())),
        )
        .filter("analysed")
    )
    parts = [
        wide.select(
            schema.ORDER_ID,
            pl.col(f"q{i}").alias(schema.SIM_QUANTITY),
            pl.col(f"w{i}").alias(schema.SIM_WINDOW_END),
            pl.lit(name).alias(schema.SCENARIO),
        )
        for i, name in enumerate(replays)
    ]
    return pl.concat(parts, how="vertical")

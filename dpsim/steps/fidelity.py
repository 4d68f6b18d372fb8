"""Fidelity: how much of the day's real Centre Point executions the reality replay reproduces.

The reality replay runs the replay's rules with no sweep resting, so it should give back what really
happened in Centre Point. A real pair is a (buy order, sell order) pair with at least one execution of
the Centre Point dealsource (47) between two of the partition's CP orders; the replay reproduces a
pair's quantity when it matches the same two orders, in either role, capped at what they really
traded. `fidelity = reproduced / real`: the credibility of every counterfactual figure.
Executions are trade rows grouped by `matchgroupid` (`steps.session.executions`).
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.steps.matching import BUY
from dpsim.steps.replay import Replay
from dpsim.steps.session import executions

PAIR = ("buy_id", "sell_id")
PREFERENCING = 46  # ASX Centre Point Preferencing: reported apart, never in the numerator
CENTRE_POINT_BOOKING = 48  # ASX Centre Point UCP booking reports


def replay_fidelity(
    reality: Replay, trades: pl.DataFrame, cp_order_ids: pl.Series, cp_dealsource: int
) -> pl.DataFrame:
    """The `results/replay_fidelity` row of a partition (schema.REPLAY_FIDELITY)."""
    ex = executions(trades.lazy()).collect()
    both_cp = pl.col("buy_id").is_in(cp_order_ids.implode()) & pl.col("sell_id").is_in(cp_order_ids.implode())
    real = ex.filter((pl.col(schema.DEALSOURCE) == cp_dealsource) & both_cp)
    real_pairs = real.group_by(PAIR).agg(pl.col(schema.QUANTITY).sum().alias("real_q"))
    replayed = replayed_pairs(reality)
    pairs = real_pairs.join(replayed, on=list(PAIR), how="left").with_columns(
        pl.min_horizontal("real_q", pl.col("replayed_q").fill_null(0)).alias("reproduced_q")
    )
    real_q = int(real[schema.QUANTITY].sum())
    reproduced = int(pairs["reproduced_q"].sum())
    dealsource = pl.col(schema.DEALSOURCE)
    row = {
        "real_cp_quantity": real_q,
        "real_cp_executions": real.height,
        "replayed_quantity": int(reality.result.quantity.sum()),
        "replayed_matches": len(reality.result.quantity),
        "reproduced_quantity": reproduced,
        "real_pairs": pairs.height,
        "reproduced_pairs": pairs.filter(pl.col("reproduced_q") > 0).height,
        "fidelity": reproduced / real_q if real_q else None,
        "preferencing_quantity": int(ex.filter(dealsource == PREFERENCING)[schema.QUANTITY].sum()),
        "cp_booking_quantity": int(ex.filter(dealsource == CENTRE_POINT_BOOKING)[schema.QUANTITY].sum()),
    }
    return pl.DataFrame([row], schema=schema.polars_schema(schema.REPLAY_FIDELITY))


def replayed_pairs(replay: Replay) -> pl.DataFrame:
    """Replayed quantity per (buy order, sell order), whichever side rested."""
    book, res = replay.book, replay.result
    ids = book.order_id
    resting_buys = book.side[res.resting_idx] == BUY
    buy = pl.Series(ids[res.resting_idx]).zip_with(pl.Series(resting_buys), pl.Series(ids[res.incoming_idx]))
    sell = pl.Series(ids[res.incoming_idx]).zip_with(pl.Series(resting_buys), pl.Series(ids[res.resting_idx]))
    return (
        pl.DataFrame({"buy_id": buy, "sell_id": sell, "q": res.quantity})
        .group_by(PAIR)
        .agg(pl.col("q").sum().alias("replayed_q"))
    )

"""Fidelity: how much of the day's real Centre Point executions the reality replay reproduces.

The reality replay runs the replay's rules with no sweep resting, so it should give back what really
happened in Centre Point. A real pair is a (buy order, sell order) pair with at least one execution of
the Centre Point dealsource (47) between two of the partition's CP orders; the replay reproduces a
pair's quantity when it matches the same two orders, in either role, capped at what they really
traded. `fidelity = reproduced / real`: the credibility of every counterfactual figure.
Executions are trade rows grouped by `matchgroupid` (`steps.session.executions`).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

import polars as pl

from dpsim import schema
from dpsim.steps import ENGINE
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
    ex = executions(trades.lazy()).collect(engine=ENGINE)
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


# ---- why the reality replay misses a real CP execution -------------------------------------------------
BOTH_RESTING_QUOTED = "two resting orders matched on a quote move (rematch_on_quote reaches it)"
BOTH_RESTING_UNQUOTED = "two resting orders matched on a quote move the NBBO does not show before the print"
AMENDED = "executed after the incoming order's arrival (an amendment), not at it"
RESTING_SWEEP = "the resting side is a sweep (no sweep rests in the reality replay)"
NOT_ON_BOOK = "the resting side was not on the book right after its arrival"
NO_QUOTE = "no usable quote before the incoming order's arrival"
LIMIT = "a limit refuses the replay's mid (the NBBO mid differs from the print)"
MAQ = "a minimum acceptable quantity blocks the replay's fill"
PRIORITY = "time priority: the replay gave the liquidity to other orders"
MISS_CAUSES = (
    BOTH_RESTING_QUOTED,
    BOTH_RESTING_UNQUOTED,
    AMENDED,
    RESTING_SWEEP,
    NOT_ON_BOOK,
    NO_QUOTE,
    LIMIT,
    MAQ,
    PRIORITY,
)
PASSIVE, AGGRESSIVE = 0, 1


def miss_causes(
    reality: Replay, trades: pl.DataFrame, quotes: pl.DataFrame, cp_order_ids: pl.Series, cp_dealsource: int
) -> pl.DataFrame:
    """One row per real CP pair the reality replay did not reproduce in full, with the rule or missing datum
    that explains it (the first of MISS_CAUSES that applies to the pair's first execution).

    Columns: buy_id, sell_id, timestamp (first execution), price (its print), real_quantity,
    replayed_quantity, missed_quantity, replay_mid (the incoming order's arrival mid in the replay), cause.
    """
    book = reality.book
    at = {int(o): i for i, o in enumerate(book.order_id.tolist())}
    passive = pl.col("passiveaggressive")
    rows = (
        trades.filter(pl.col(schema.DEALSOURCE) == cp_dealsource)
        .group_by(schema.MATCH_GROUP)
        .agg(
            pl.col(schema.TIMESTAMP).min(),
            pl.col(schema.TRADE_PRICE).first(),
            pl.col(schema.QUANTITY).max(),
            pl.col(schema.ORDER_ID).filter(pl.col(schema.SIDE) == BUY).first().alias("buy_id"),
            pl.col(schema.ORDER_ID).filter(pl.col(schema.SIDE) != BUY).first().alias("sell_id"),
            pl.col(schema.ORDER_ID).filter(passive == PASSIVE).first().alias("passive_id"),
            pl.col(schema.ORDER_ID).filter(passive == AGGRESSIVE).first().alias("aggressive_id"),
        )
        .filter(
            pl.col("buy_id").is_in(cp_order_ids.implode()) & pl.col("sell_id").is_in(cp_order_ids.implode())
        )
        .sort(schema.TIMESTAMP, schema.MATCH_GROUP)
    )
    pairs = (
        rows.group_by(PAIR, maintain_order=True)
        .agg(pl.col(schema.QUANTITY).sum().alias("real_quantity"), pl.all().exclude(schema.QUANTITY).first())
        .join(replayed_pairs(reality), on=list(PAIR), how="left")
        .with_columns(pl.col("replayed_q").fill_null(0).alias("replayed_quantity"))
        .with_columns(
            (pl.col("real_quantity") - pl.min_horizontal("real_quantity", "replayed_quantity")).alias(
                "missed_quantity"
            )
        )
        .filter(pl.col("missed_quantity") > 0)
    )
    quote_times = quotes[schema.TIMESTAMP].to_list()
    quote_mids = quotes["mid"].to_list()
    out = []
    for r in pairs.iter_rows(named=True):
        incoming = at.get(r["aggressive_id"]) if r["aggressive_id"] is not None else None
        cause = _cause(book, at, r, incoming, quote_times, quote_mids)
        mid = float(book.mid[incoming]) if incoming is not None else None
        out.append(
            {
                **{k: r[k] for k in ("buy_id", "sell_id", schema.TIMESTAMP)},
                "price": r[schema.TRADE_PRICE],
                **{k: r[k] for k in ("real_quantity", "replayed_quantity", "missed_quantity")},
                "replay_mid": None if mid is None or mid != mid else mid,
                "cause": cause,
            }
        )
    return pl.DataFrame(out, schema=MISS_SCHEMA)


MISS_SCHEMA = {
    "buy_id": pl.Int64,
    "sell_id": pl.Int64,
    schema.TIMESTAMP: pl.Int64,
    "price": pl.Int64,
    "real_quantity": pl.Int64,
    "replayed_quantity": pl.Int64,
    "missed_quantity": pl.Int64,
    "replay_mid": pl.Float64,
    "cause": pl.String,
}


def _accepts(book: Any, i: int, price: float) -> bool:
    return bool(price <= book.bound[i]) if book.side[i] == BUY else bool(price >= book.bound[i])


def _cause(
    book: Any,
    at: dict[int, int],
    r: dict[str, Any],
    incoming: int | None,
    quote_times: list[int],
    quote_mids: list[float],
) -> str:
    """The first cause of MISS_CAUSES that explains a missed pair (see `miss_causes`)."""
    t = r[schema.TIMESTAMP]
    if incoming is None:  # both rows passive: CP matched two resting orders, not an arrival
        b, s = at[r["buy_id"]], at[r["sell_id"]]
        k = bisect_right(quote_times, t) - 1
        quoted = k >= 0 and _accepts(book, b, quote_mids[k]) and _accepts(book, s, quote_mids[k])
        return BOTH_RESTING_QUOTED if quoted else BOTH_RESTING_UNQUOTED
    resting = at[r["passive_id"]] if r["passive_id"] is not None else None
    if t != book.timestamp[incoming]:
        return AMENDED
    if resting is not None and not book.rests[resting]:
        return RESTING_SWEEP if book.is_sweep[resting] else NOT_ON_BOOK
    mid = float(book.mid[incoming])
    if mid != mid:
        return NO_QUOTE
    if not _accepts(book, incoming, mid) or (resting is not None and not _accepts(book, resting, mid)):
        return LIMIT
    parties = [incoming] + ([resting] if resting is not None else [])
    if any(book.maq[i] > r["real_quantity"] for i in parties):
        return MAQ
    return PRIORITY

"""Lifecycle: one row per Centre Point order from its event rows and its trades (DOMAIN §5.2).

Event order is (timestamp, sequence, row_num). The real export repeats one event line verbatim (same
sequence and row_num), so the picks below go through an explicit rank (`_ord`) assigned after a stable
sort instead of relying on the row order inside groups:
- arrival = first event: arrival time/sequence/quantity, limit price, side, participant, type, MAQ.
  For an order reloaded for a new day (changereason 30) that is the reload event of the evening before.
- post-arrival state = last event at the arrival timestamp (the state right after immediate matching):
  `residual_after_arrival` = its leavesquantity.
- final = last event: time, changereason, status, leaves, quantity (`final_quantity`) and
  totalmatchedquantity (`matched_quantity`). `has_new_event` = any changereason 6 row.
- trades are linked by `order_id` only (never by sequence): count, quantity, dark/lit split, VWAP,
  first/last fill time, and whether every trade was lit continuous (false when there is no trade).
- arrival NBBO: with a feed, the latest feed quote at or before arrival; without one, the arrival row's
  own national_bid/offer. Sides <= 0 become null; `arrival_mid` is null when a side is missing or the
  quote is crossed; `nbbo_source` is feed | snapshot | none (no quote at all).
Output sorted by (arrival_time, arrival_sequence, order_id), the simulation's event order.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from dpsim import schema
from dpsim.config import Codes
from dpsim.steps import Step, pick, pl_types
from dpsim.steps.quotes import NONE, SNAPSHOT, SOURCE, asof_quote, mid_expr

NEW_ORDER_REASON = 6
ROW_NUM = "row_num"
FINAL_QUANTITY = "final_quantity"

LIFECYCLE_COLUMNS: dict[str, pl.DataType] = pl_types(
    {
        **pick(
            schema.SWEEP_ATTRIBUTES,
            schema.ORDER_ID,
            schema.SIDE,
            schema.PARTICIPANT,
            schema.ORDER_TYPE_FLAGS,
            "arrival_time",
            "arrival_sequence",
            "arrival_quantity",
            "limit_price",
            "maq",
            "maq_single",
            "residual_after_arrival",
            "final_time",
            "final_changereason",
            "final_status",
            "final_leaves",
        ),
        FINAL_QUANTITY: pa.int64(),
        **pick(schema.SWEEP_ATTRIBUTES, "matched_quantity", "has_new_event"),
        **pick(schema.FILL_METRICS, "n_fills", "filled_quantity"),
        **pick(schema.SWEEP_ATTRIBUTES, "filled_dark", "filled_lit", "all_fills_lit_continuous"),
        **pick(schema.FILL_METRICS, "vwap", "first_fill_time", "last_fill_time"),
        **pick(
            schema.SWEEP_ATTRIBUTES,
            "arrival_bid",
            "arrival_offer",
            "arrival_mid",
            "arrival_spread_bps",
            "nbbo_source",
        ),
    }
)

EVENT_COLUMNS = pick(
    schema.ORDERS.columns,
    schema.ORDER_ID,
    schema.TIMESTAMP,
    schema.SEQUENCE,
    ROW_NUM,
    schema.SIDE,
    schema.PARTICIPANT,
    schema.ORDER_TYPE_FLAGS,
    schema.QUANTITY,
    schema.PRICE,
    schema.MAQ,
    schema.MAQ_SINGLE,
    schema.LEAVES,
    schema.CHANGE_REASON,
    schema.ORDER_STATUS,
    schema.MATCHED,
    schema.NATIONAL_BID,
    schema.NATIONAL_OFFER,
)


def order_lifecycle(
    cp_events: pl.LazyFrame, trades: pl.LazyFrame, quotes: pl.LazyFrame, has_feed: bool, codes: Codes
) -> pl.LazyFrame:
    """One row per order of `cp_events` with the columns of `LIFECYCLE_COLUMNS`."""
    orders = _order_states(cp_events).join(_trade_totals(trades, codes), on=schema.ORDER_ID, how="left")
    orders = orders.with_columns(
        pl.col("n_fills", "filled_quantity", "filled_dark").fill_null(0),
        pl.col("all_fills_lit_continuous").fill_null(False),
    ).with_columns((pl.col("filled_quantity") - pl.col("filled_dark")).alias("filled_lit"))
    orders = _arrival_nbbo(orders, quotes, has_feed)
    return orders.select(pl.col(c).cast(t) for c, t in LIFECYCLE_COLUMNS.items()).sort(
        "arrival_time", "arrival_sequence", schema.ORDER_ID
    )


def _order_states(cp_events: pl.LazyFrame) -> pl.LazyFrame:
    """Arrival, post-arrival and final state per order (plus the arrival row's national quote)."""
    ranked = cp_events.sort(schema.TIMESTAMP, schema.SEQUENCE, ROW_NUM, maintain_order=True).with_row_index(
        "_ord"
    )
    first = pl.col("_ord").arg_min()
    last = pl.col("_ord").arg_max()
    at_arrival = pl.col(schema.TIMESTAMP) == pl.col(schema.TIMESTAMP).min()
    maq = pl.col(schema.MAQ).get(first)
    return ranked.group_by(schema.ORDER_ID).agg(
        pl.col(schema.SIDE, schema.PARTICIPANT, schema.ORDER_TYPE_FLAGS).get(first),
        pl.col(schema.TIMESTAMP).get(first).alias("arrival_time"),
        pl.col(schema.SEQUENCE).get(first).alias("arrival_sequence"),
        pl.col(schema.QUANTITY).get(first).alias("arrival_quantity"),
        pl.col(schema.PRICE).get(first).alias("limit_price"),
        # null, Long.MIN and 0 all mean "no MAQ"
        pl.when(maq > 0).then(maq).otherwise(0).alias("maq"),
        (pl.col(schema.MAQ_SINGLE).get(first) == 1).fill_null(False).alias("maq_single"),
        pl.col(schema.NATIONAL_BID, schema.NATIONAL_OFFER).get(first),
        pl.col(schema.LEAVES)
        .filter(at_arrival)
        .get(pl.col("_ord").filter(at_arrival).arg_max())
        .alias("residual_after_arrival"),
        pl.col(schema.TIMESTAMP).get(last).alias("final_time"),
        pl.col(schema.CHANGE_REASON).get(last).alias("final_changereason"),
        pl.col(schema.ORDER_STATUS).get(last).alias("final_status"),
        pl.col(schema.LEAVES).get(last).alias("final_leaves"),
        pl.col(schema.QUANTITY).get(last).alias(FINAL_QUANTITY),
        pl.col(schema.MATCHED).get(last).alias("matched_quantity"),
        (pl.col(schema.CHANGE_REASON) == NEW_ORDER_REASON).any().alias("has_new_event"),
    )


def _trade_totals(trades: pl.LazyFrame, codes: Codes) -> pl.LazyFrame:
    """Per order id: fills, quantities (dark by dealsource), VWAP and fill times from its own trade rows."""
    q = pl.col(schema.QUANTITY)
    filled = q.sum()
    return trades.group_by(schema.ORDER_ID).agg(
        pl.len().alias("n_fills"),
        filled.alias("filled_quantity"),
        q.filter(pl.col(schema.DEALSOURCE).is_in(codes.dark_dealsources)).sum().alias("filled_dark"),
        pl.col(schema.DEALSOURCE)
        .is_in(codes.lit_continuous_dealsources)
        .all()
        .alias("all_fills_lit_continuous"),
        ((pl.col(schema.TRADE_PRICE) * q).sum().cast(pl.Float64) / filled).alias("vwap"),
        pl.col(schema.TIMESTAMP).min().alias("first_fill_time"),
        pl.col(schema.TIMESTAMP).max().alias("last_fill_time"),
    )


def _arrival_nbbo(orders: pl.LazyFrame, quotes: pl.LazyFrame, has_feed: bool) -> pl.LazyFrame:
    """arrival_bid/offer/mid/spread and nbbo_source, from the feed as-of arrival or the arrival row."""
    if has_feed:
        orders = asof_quote(orders, quotes, on="arrival_time", prefix="_q_")
        bid, offer = pl.col(f"_q_{schema.BID}"), pl.col(f"_q_{schema.OFFER}")
        source = pl.col(f"_q_{SOURCE}").fill_null(NONE)
    else:
        bid, offer = pl.col(schema.NATIONAL_BID), pl.col(schema.NATIONAL_OFFER)
        source = pl.when(bid.is_null() & offer.is_null()).then(pl.lit(NONE)).otherwise(pl.lit(SNAPSHOT))
    mid = mid_expr(bid, offer)
    return orders.with_columns(
        pl.when(bid > 0).then(bid).alias("arrival_bid"),
        pl.when(offer > 0).then(offer).alias("arrival_offer"),
        mid.alias("arrival_mid"),
        ((offer - bid).cast(pl.Float64) / mid * 1e4).alias("arrival_spread_bps"),
        source.alias("nbbo_source"),
    )


LIFECYCLE = Step(
    name="lifecycle", fn=order_lifecycle, requires=pl_types(EVENT_COLUMNS), adds=LIFECYCLE_COLUMNS
)

"""Lifecycle: one row per Centre Point order from its event rows and its trades.

Event order is (timestamp, sequence, row_num). The real export repeats one event line verbatim (same
sequence and row_num), so the picks below go through an explicit rank (`_ord`) assigned after a stable
sort instead of relying on the row order inside groups:
- arrival = first event: time, sequence, quantity, limit price, side, participant, type, midtick, MAQ and
  time validity. For an order reloaded for a new day that is the reload event of the evening before.
- post-arrival state = last event at the arrival timestamp (the state right after immediate matching):
  `residual_after_arrival` = its leavesquantity; `rests` = it is on the book (orderstatus 1).
- final = last event: time, changereason, status, leaves, quantity and totalmatchedquantity.
- order size `order_quantity` = the largest quantity of the order's events (an upward amend makes the
  arrival quantity too small a denominator), and at least what filled.
- trades are linked by `order_id` only (never by sequence). Fills are the rows of the classes lit, dark,
  auction and reported; booking reports (UCP) are counted apart in `booking_quantity`, never as fills.
- arrival NBBO: the prevailing usable quote strictly before arrival (`steps.quotes.prevailing`), its age,
  and `nbbo_source` (feed | snapshot | none when there is no arrival mid).
Output sorted by (arrival_time, arrival_sequence, order_id), the replay's event order.
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.steps import Step, pick, pl_types
from dpsim.steps.quotes import MID, NONE, QUOTE_TIME, prevailing

NEW_ORDER_REASON = 6
ON_BOOK = 1
ROW_NUM = "row_num"
FINAL_QUANTITY = "final_quantity"
ALL_TRADES_LIT = "all_trades_lit"
N_TRADE_ROWS = "n_trade_rows"
FILL_CLASSES = ("lit", "dark", "auction", "reported")
NS = 1e9

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
            "order_quantity",
            "limit_price",
            "midtick",
            "maq",
            "maq_single",
            "timevalidity",
            "residual_after_arrival",
            "rests",
            "final_time",
            "final_changereason",
            "final_status",
            "final_leaves",
        ),
        FINAL_QUANTITY: schema.I64,
        **pick(schema.SWEEP_ATTRIBUTES, "matched_quantity", "has_new_event"),
        **pick(schema.FILL_TOTALS, "n_fills", "filled_quantity"),
        **pick(
            schema.SWEEP_ATTRIBUTES,
            "filled_lit",
            "filled_dark",
            "filled_auction",
            "filled_reported",
            "booking_quantity",
            "unfilled_quantity",
        ),
        N_TRADE_ROWS: schema.I64,
        ALL_TRADES_LIT: schema.BOOL,
        **pick(schema.FILL_TOTALS, "vwap", "first_fill_time", "last_fill_time"),
        **pick(
            schema.SWEEP_ATTRIBUTES,
            "arrival_bid",
            "arrival_offer",
            "arrival_mid",
            "arrival_spread_bps",
            "arrival_quote_age_s",
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
    "midtick",
    schema.MAQ,
    schema.MAQ_SINGLE,
    "timevalidity",
    schema.LEAVES,
    schema.CHANGE_REASON,
    schema.ORDER_STATUS,
    schema.MATCHED,
)


def order_lifecycle(
    cp_events: pl.LazyFrame,
    trades: pl.LazyFrame,
    quotes: pl.LazyFrame,
    quote_source: str,
    max_quote_age_s: float | None,
) -> pl.LazyFrame:
    """One row per order of `cp_events` with the columns of `LIFECYCLE_COLUMNS`.

    `trades` carry `fill_class` (`steps.session.classified_trades`); `quotes` are the usable quotes and
    `quote_source` where they came from (feed | snapshot).
    """
    totals = _trade_totals(trades)
    orders = _order_states(cp_events).join(totals, on=schema.ORDER_ID, how="left")
    counts = ["n_fills", "filled_quantity", *(f"filled_{c}" for c in FILL_CLASSES), "booking_quantity"]
    orders = orders.with_columns(
        pl.col(*counts, N_TRADE_ROWS).fill_null(0), pl.col(ALL_TRADES_LIT).fill_null(False)
    ).with_columns(
        pl.max_horizontal("_largest_quantity", "filled_quantity").alias("order_quantity"),
    )
    orders = orders.with_columns(
        (pl.col("order_quantity") - pl.col("filled_quantity")).alias("unfilled_quantity")
    )
    orders = _arrival_nbbo(orders, quotes, quote_source, max_quote_age_s)
    return orders.select(pl.col(c).cast(t) for c, t in LIFECYCLE_COLUMNS.items()).sort(
        "arrival_time", "arrival_sequence", schema.ORDER_ID
    )


def _order_states(cp_events: pl.LazyFrame) -> pl.LazyFrame:
    """Arrival, post-arrival and final state per order."""
    ranked = cp_events.sort(schema.TIMESTAMP, schema.SEQUENCE, ROW_NUM, maintain_order=True).with_row_index(
        "_ord"
    )
    first = pl.col("_ord").arg_min()
    last = pl.col("_ord").arg_max()
    at_arrival = pl.col(schema.TIMESTAMP) == pl.col(schema.TIMESTAMP).min()
    post_arrival = pl.col("_ord").filter(at_arrival).arg_max()
    maq = pl.col(schema.MAQ).get(first)
    return ranked.group_by(schema.ORDER_ID).agg(
        pl.col(schema.SIDE, schema.PARTICIPANT, schema.ORDER_TYPE_FLAGS, "midtick", "timevalidity").get(
            first
        ),
        pl.col(schema.TIMESTAMP).get(first).alias("arrival_time"),
        pl.col(schema.SEQUENCE).get(first).alias("arrival_sequence"),
        pl.col(schema.QUANTITY).get(first).alias("arrival_quantity"),
        pl.col(schema.QUANTITY).max().alias("_largest_quantity"),
        pl.col(schema.PRICE).get(first).alias("limit_price"),
        # null, Long.MIN and 0 all mean "no MAQ"
        pl.when(maq > 0).then(maq).otherwise(0).alias("maq"),
        (pl.col(schema.MAQ_SINGLE).get(first) == 1).fill_null(False).alias("maq_single"),
        pl.col(schema.LEAVES).filter(at_arrival).get(post_arrival).alias("residual_after_arrival"),
        (pl.col(schema.ORDER_STATUS).filter(at_arrival).get(post_arrival) == ON_BOOK)
        .fill_null(False)
        .alias("rests"),
        pl.col(schema.TIMESTAMP).get(last).alias("final_time"),
        pl.col(schema.CHANGE_REASON).get(last).alias("final_changereason"),
        pl.col(schema.ORDER_STATUS).get(last).alias("final_status"),
        pl.col(schema.LEAVES).get(last).alias("final_leaves"),
        pl.col(schema.QUANTITY).get(last).alias(FINAL_QUANTITY),
        pl.col(schema.MATCHED).get(last).alias("matched_quantity"),
        (pl.col(schema.CHANGE_REASON) == NEW_ORDER_REASON).any().alias("has_new_event"),
    )


def _trade_totals(trades: pl.LazyFrame) -> pl.LazyFrame:
    """Per order id: fill counts, quantities by class, VWAP and fill times; booking quantity apart."""
    cls = pl.col(schema.FILL_CLASS)
    is_fill = cls.is_in(FILL_CLASSES)
    q = pl.col(schema.QUANTITY)
    fill_q = q.filter(is_fill)
    return trades.group_by(schema.ORDER_ID).agg(
        is_fill.sum().cast(pl.Int64).alias("n_fills"),
        fill_q.sum().alias("filled_quantity"),
        *(q.filter(cls == c).sum().alias(f"filled_{c}") for c in FILL_CLASSES),
        q.filter(cls == "booking").sum().alias("booking_quantity"),
        pl.len().cast(pl.Int64).alias(N_TRADE_ROWS),
        (cls == "lit").all().alias(ALL_TRADES_LIT),
        pl.when(fill_q.sum() > 0)  # null, not NaN, when the only trade rows are booking reports
        .then((pl.col(schema.TRADE_PRICE) * q).filter(is_fill).sum().cast(pl.Float64) / fill_q.sum())
        .alias("vwap"),
        pl.col(schema.TIMESTAMP).filter(is_fill).min().alias("first_fill_time"),
        pl.col(schema.TIMESTAMP).filter(is_fill).max().alias("last_fill_time"),
    )


def _arrival_nbbo(
    orders: pl.LazyFrame, quotes: pl.LazyFrame, quote_source: str, max_quote_age_s: float | None
) -> pl.LazyFrame:
    """arrival_bid/offer/mid/spread/quote age and nbbo_source from the prevailing quote before arrival."""
    orders = prevailing(orders, quotes, on="arrival_time", prefix="arrival_", max_age_s=max_quote_age_s)
    mid = pl.col(f"arrival_{MID}")
    return orders.with_columns(
        ((pl.col("arrival_offer") - pl.col("arrival_bid")).cast(pl.Float64) / mid * 1e4).alias(
            "arrival_spread_bps"
        ),
        ((pl.col("arrival_time") - pl.col(f"arrival_{QUOTE_TIME}")) / NS).alias("arrival_quote_age_s"),
        pl.when(mid.is_null()).then(pl.lit(NONE)).otherwise(pl.lit(quote_source)).alias("nbbo_source"),
    )


LIFECYCLE = Step(
    name="lifecycle", fn=order_lifecycle, requires=pl_types(EVENT_COLUMNS), adds=LIFECYCLE_COLUMNS
)

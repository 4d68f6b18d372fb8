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
            schema.ARRIVAL_TIME,
            schema.ARRIVAL_SEQUENCE,
            schema.ARRIVAL_QUANTITY,
            schema.ORDER_QUANTITY,
            schema.LIMIT_PRICE,
            schema.MIDTICK,
            schema.MAQ_EFFECTIVE,
            schema.MAQ_IS_SINGLE,
            schema.TIME_VALIDITY,
            schema.RESIDUAL_AFTER_ARRIVAL,
            schema.RESTS,
            schema.FINAL_TIME,
            schema.FINAL_CHANGEREASON,
            schema.FINAL_STATUS,
            schema.FINAL_LEAVES,
        ),
        FINAL_QUANTITY: schema.I64,
        **pick(schema.SWEEP_ATTRIBUTES, schema.MATCHED_QUANTITY, schema.HAS_NEW_EVENT),
        **pick(schema.FILL_TOTALS, schema.N_FILLS, schema.FILLED_QUANTITY),
        **pick(
            schema.SWEEP_ATTRIBUTES,
            "filled_lit",
            "filled_dark",
            "filled_auction",
            "filled_reported",
            schema.BOOKING_QUANTITY,
            schema.UNFILLED_QUANTITY,
        ),
        N_TRADE_ROWS: schema.I64,
        ALL_TRADES_LIT: schema.BOOL,
        **pick(schema.FILL_TOTALS, schema.VWAP, schema.FIRST_FILL_TIME, schema.LAST_FILL_TIME),
        **pick(
            schema.SWEEP_ATTRIBUTES,
            schema.ARRIVAL_BID,
            schema.ARRIVAL_OFFER,
            schema.ARRIVAL_MID,
            "arrival_spread_bps",
            schema.ARRIVAL_QUOTE_AGE,
            schema.NBBO_SOURCE,
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
    schema.MIDTICK,
    schema.MAQ,
    schema.MAQ_SINGLE,
    schema.TIME_VALIDITY,
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
    counts = [
        schema.N_FILLS,
        schema.FILLED_QUANTITY,
        *(f"filled_{c}" for c in FILL_CLASSES),
        schema.BOOKING_QUANTITY,
    ]
    orders = orders.with_columns(
        pl.col(*counts, N_TRADE_ROWS).fill_null(0), pl.col(ALL_TRADES_LIT).fill_null(False)
    ).with_columns(
        pl.max_horizontal("_largest_quantity", schema.FILLED_QUANTITY).alias(schema.ORDER_QUANTITY),
    )
    orders = orders.with_columns(
        (pl.col(schema.ORDER_QUANTITY) - pl.col(schema.FILLED_QUANTITY)).alias(schema.UNFILLED_QUANTITY)
    )
    orders = _arrival_nbbo(orders, quotes, quote_source, max_quote_age_s)
    return orders.select(pl.col(c).cast(t) for c, t in LIFECYCLE_COLUMNS.items()).sort(
        schema.ARRIVAL_TIME, schema.ARRIVAL_SEQUENCE, schema.ORDER_ID
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
        pl.col(
            schema.SIDE, schema.PARTICIPANT, schema.ORDER_TYPE_FLAGS, schema.MIDTICK, schema.TIME_VALIDITY
        ).get(first),
        pl.col(schema.TIMESTAMP).get(first).alias(schema.ARRIVAL_TIME),
        pl.col(schema.SEQUENCE).get(first).alias(schema.ARRIVAL_SEQUENCE),
        pl.col(schema.QUANTITY).get(first).alias(schema.ARRIVAL_QUANTITY),
        pl.col(schema.QUANTITY).max().alias("_largest_quantity"),
        pl.col(schema.PRICE).get(first).alias(schema.LIMIT_PRICE),
        # null, Long.MIN and 0 all mean "no MAQ"
        pl.when(maq > 0).then(maq).otherwise(0).alias(schema.MAQ_EFFECTIVE),
        (pl.col(schema.MAQ_SINGLE).get(first) == 1).fill_null(False).alias(schema.MAQ_IS_SINGLE),
        pl.col(schema.LEAVES).filter(at_arrival).get(post_arrival).alias(schema.RESIDUAL_AFTER_ARRIVAL),
        (pl.col(schema.ORDER_STATUS).filter(at_arrival).get(post_arrival) == ON_BOOK)
        .fill_null(False)
        .alias(schema.RESTS),
        pl.col(schema.TIMESTAMP).get(last).alias(schema.FINAL_TIME),
        pl.col(schema.CHANGE_REASON).get(last).alias(schema.FINAL_CHANGEREASON),
        pl.col(schema.ORDER_STATUS).get(last).alias(schema.FINAL_STATUS),
        pl.col(schema.LEAVES).get(last).alias(schema.FINAL_LEAVES),
        pl.col(schema.QUANTITY).get(last).alias(FINAL_QUANTITY),
        pl.col(schema.MATCHED).get(last).alias(schema.MATCHED_QUANTITY),
        (pl.col(schema.CHANGE_REASON) == NEW_ORDER_REASON).any().alias(schema.HAS_NEW_EVENT),
    )


def _trade_totals(trades: pl.LazyFrame) -> pl.LazyFrame:
    """Per order id: fill counts, quantities by class, VWAP and fill times; booking quantity apart."""
    cls = pl.col(schema.FILL_CLASS)
    is_fill = cls.is_in(FILL_CLASSES)
    q = pl.col(schema.QUANTITY)
    fill_q = q.filter(is_fill)
    return trades.group_by(schema.ORDER_ID).agg(
        is_fill.sum().cast(pl.Int64).alias(schema.N_FILLS),
        fill_q.sum().alias(schema.FILLED_QUANTITY),
        *(q.filter(cls == c).sum().alias(f"filled_{c}") for c in FILL_CLASSES),
        q.filter(cls == "booking").sum().alias(schema.BOOKING_QUANTITY),
        pl.len().cast(pl.Int64).alias(N_TRADE_ROWS),
        (cls == "lit").all().alias(ALL_TRADES_LIT),
        pl.when(fill_q.sum() > 0)  # null, not NaN, when the only trade rows are booking reports
        .then((pl.col(schema.TRADE_PRICE) * q).filter(is_fill).sum().cast(pl.Float64) / fill_q.sum())
        .alias(schema.VWAP),
        pl.col(schema.TIMESTAMP).filter(is_fill).min().alias(schema.FIRST_FILL_TIME),
        pl.col(schema.TIMESTAMP).filter(is_fill).max().alias(schema.LAST_FILL_TIME),
    )


def _arrival_nbbo(
    orders: pl.LazyFrame, quotes: pl.LazyFrame, quote_source: str, max_quote_age_s: float | None
) -> pl.LazyFrame:
    """arrival_bid/offer/mid/spread/quote age and nbbo_source from the prevailing quote before arrival."""
    orders = prevailing(orders, quotes, on=schema.ARRIVAL_TIME, prefix="arrival_", max_age_s=max_quote_age_s)
    mid = pl.col(f"arrival_{MID}")
    return orders.with_columns(
        ((pl.col(schema.ARRIVAL_OFFER) - pl.col(schema.ARRIVAL_BID)).cast(pl.Float64) / mid * 1e4).alias(
            "arrival_spread_bps"
        ),
        ((pl.col(schema.ARRIVAL_TIME) - pl.col(f"arrival_{QUOTE_TIME}")) / NS).alias(
            schema.ARRIVAL_QUOTE_AGE
        ),
        pl.when(mid.is_null()).then(pl.lit(NONE)).otherwise(pl.lit(quote_source)).alias(schema.NBBO_SOURCE),
    )


LIFECYCLE = Step(
    name="lifecycle", fn=order_lifecycle, requires=pl_types(EVENT_COLUMNS), adds=LIFECYCLE_COLUMNS
)

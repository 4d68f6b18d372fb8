"""Select: the Centre Point order events of a partition, by bitmask on `exchangeordertype` (docs/methodology.md §4).

The type is a bit field (4098 = block + short sell), so membership is `type & mask != 0`, never equality,
and everything stays int64 (an int8 cast once turned 2048 into 0).
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.config import Codes
from dpsim.steps import Step, pick, pl_types


def has_flags(column: str, mask: int) -> pl.Expr:
    """True where any bit of `mask` is set in the int64 `column`."""
    return (pl.col(column) & pl.lit(mask, dtype=pl.Int64)) != 0


def cp_events(orders: pl.LazyFrame, codes: Codes) -> pl.LazyFrame:
    """Order events of Centre Point orders (every column kept, row order unchanged)."""
    return orders.filter(has_flags(schema.ORDER_TYPE_FLAGS, codes.centre_point_mask))


SELECT = Step(
    name="select",
    fn=cp_events,
    requires=pl_types(pick(schema.ORDERS.columns, schema.ORDER_TYPE_FLAGS)),
    adds={},
)

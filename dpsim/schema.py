"""Canonical column names and dtypes: raw inputs (with their header aliases), lake tables, result tables.

Every other module takes column names from here. Ids, timestamps, prices and quantities are int64
end to end (19-digit order ids must never pass through float64); mids and metrics are float64.
Partition keys (`security_code`, `date`, `scenario`) live in the hive path, not inside the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # polars costs ~0.2 s to import: `dpsim sql` and the catalog need only the Arrow schemas
    import polars as pl

I64 = pa.int64()
F64 = pa.float64()
STR = pa.string()
BOOL = pa.bool_()
DATE = pa.date32()

# ---- partition keys ---------------------------------------------------------------------------
SECURITY_CODE = "security_code"
DATE_COL = "date"
SCENARIO = "scenario"
PARTITION_KEYS = (SECURITY_CODE, DATE_COL)
PARTITION_TYPES: dict[str, pa.DataType] = {SECURITY_CODE: I64, DATE_COL: DATE, SCENARIO: STR}

# ---- frequently used column names -----------------------------------------------------------------
ORDER_ID = "order_id"
TIMESTAMP = "timestamp"
SEQUENCE = "sequence"
SIDE = "side"
PRICE = "price"
QUANTITY = "quantity"
LEAVES = "leavesquantity"
MATCHED = "totalmatchedquantity"
CHANGE_REASON = "changereason"
ORDER_STATUS = "orderstatus"
ORDER_TYPE_FLAGS = "exchangeordertype"
NATIONAL_BID = "national_bid"
NATIONAL_OFFER = "national_offer"
PARTICIPANT = "participantid"
MAQ = "minimumquantity"
MAQ_SINGLE = "singlefillminimumquantity"
DEALSOURCE = "dealsource"
TRADE_PRICE = "tradeprice"
MATCH_GROUP = "matchgroupid"
BID = "bid"
OFFER = "offer"


@dataclass(frozen=True)
class RawKind:
    """One raw input kind: canonical columns with dtypes, which are required, which give the partition."""

    name: str
    columns: Mapping[str, pa.DataType]
    required: Sequence[str]
    partitioned: bool = True

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema(list(self.columns.items()))

    @property
    def lake_schema(self) -> pa.Schema:
        """Columns stored inside a lake file: the raw columns minus the hive keys."""
        return pa.schema([(n, t) for n, t in self.columns.items() if n not in PARTITION_KEYS])


ORDERS = RawKind(
    name="orders",
    columns={
        ORDER_ID: I64,
        "exchange": I64,
        TIMESTAMP: I64,
        SECURITY_CODE: I64,
        PRICE: I64,
        SIDE: I64,
        CHANGE_REASON: I64,
        ORDER_STATUS: I64,
        QUANTITY: I64,
        LEAVES: I64,
        "ordertype": I64,
        ORDER_TYPE_FLAGS: I64,
        NATIONAL_BID: I64,
        NATIONAL_OFFER: I64,
        BID: I64,
        OFFER: I64,
        PARTICIPANT: I64,
        "preferenceonly": I64,
        "midtick": I64,
        MAQ_SINGLE: I64,
        MAQ: I64,
        SEQUENCE: I64,
        "crossingkey": I64,
        MATCHED: I64,
        "shortsellquantity": I64,
        "triggercondition": I64,
        "timevaliditydecoded": STR,
        "row_num": I64,
        "timevalidity": I64,
    },
    required=(
        ORDER_ID,
        TIMESTAMP,
        SECURITY_CODE,
        PRICE,
        SIDE,
        CHANGE_REASON,
        ORDER_STATUS,
        QUANTITY,
        LEAVES,
        ORDER_TYPE_FLAGS,
        SEQUENCE,
        MATCHED,
    ),
)

TRADES = RawKind(
    name="trades",
    columns={
        "exchange": I64,
        SEQUENCE: I64,
        "tradedate": STR,
        TIMESTAMP: I64,
        SECURITY_CODE: I64,
        ORDER_ID: I64,
        DEALSOURCE: I64,
        "dealsourcedecoded": STR,
        "exchangeinfo": STR,
        MATCH_GROUP: I64,
        "nationalbidpricesnapshot": I64,
        "nationalofferpricesnapshot": I64,
        TRADE_PRICE: I64,
        QUANTITY: I64,
        SIDE: I64,
        "sidedecoded": STR,
        PARTICIPANT: I64,
        "passiveaggressive": I64,
        "row_num": I64,
    },
    required=(TIMESTAMP, SECURITY_CODE, ORDER_ID, DEALSOURCE, TRADE_PRICE, QUANTITY, SIDE),
)

NBBO = RawKind(
    name="nbbo",
    columns={
        "partition": I64,
        SEQUENCE: I64,
        "tradedate": I64,
        BID: I64,
        "creationtime": I64,
        OFFER: I64,
        SECURITY_CODE: I64,
        TIMESTAMP: I64,
        "userid": I64,
        "runid": I64,
    },
    required=(TIMESTAMP, SECURITY_CODE, BID, OFFER),
)

PARTITIONED_KINDS: dict[str, RawKind] = {k.name: k for k in (ORDERS, TRADES, NBBO)}

# Default header aliases per kind (lower-cased raw header -> canonical); extended by the config.
DEFAULT_ALIASES: dict[str, dict[str, str]] = {
    "orders": {"orderid": ORDER_ID, "securitycode": SECURITY_CODE, "orderbookid": SECURITY_CODE},
    "trades": {
        "orderid": ORDER_ID,
        "securitycode": SECURITY_CODE,
        "security_code": SECURITY_CODE,
        "tradetime": TIMESTAMP,
    },
    "nbbo": {
        "orderbookid": SECURITY_CODE,
        "securitycode": SECURITY_CODE,
        "id": SECURITY_CODE,
        "bidprice": BID,
        "offerprice": OFFER,
    },
}

# The header lines of the exchange's exports as written (the DRR day's files): what `dpsim synth` writes.
# The default aliases above map the partitioned kinds' headers to the canonical columns.
EXPORT_HEADERS: dict[str, tuple[str, ...]] = {
    "orders": tuple(ORDERS.columns),
    "trades": (
        "EXCHANGE",
        SEQUENCE,
        "tradedate",
        "tradetime",
        "securitycode",
        "orderid",
        DEALSOURCE,
        "dealsourcedecoded",
        "exchangeinfo",
        MATCH_GROUP,
        "nationalbidpricesnapshot",
        "nationalofferpricesnapshot",
        TRADE_PRICE,
        QUANTITY,
        SIDE,
        "sidedecoded",
        PARTICIPANT,
        "passiveaggressive",
        "row_num",
    ),
    "nbbo": (
        "partition",
        SEQUENCE,
        "tradedate",
        "bidprice",
        "creationtime",
        "offerprice",
        "orderbookid",
        TIMESTAMP,
        "userid",
        "runid",
    ),
    "reference": ("Id", "Name", "DecimalsInPrice", "TickSize"),
    "session": ("OrderBookId", "Name", "Timestamp"),
    "participants": ("Id", "ParticipantName", "ParticipantType"),
}

# ---- rejects ----------------------------------------------------------------------------------
REJECTS = pa.schema(
    [
        ("source", STR),
        ("line", I64),  # 1-based physical line number in the source file (header = line 1), null if unknown
        ("reason", STR),
        ("raw", STR),  # the raw line or its fields joined by commas
    ]
)

# ---- result column names used by more than one step ------------------------------------------------
ARRIVAL_TIME = "arrival_time"
ARRIVAL_SEQUENCE = "arrival_sequence"
ARRIVAL_QUANTITY = "arrival_quantity"
ORDER_QUANTITY = "order_quantity"
LIMIT_PRICE = "limit_price"
FINAL_TIME = "final_time"
ARRIVAL_MID = "arrival_mid"
ARRIVAL_BID = "arrival_bid"
ARRIVAL_OFFER = "arrival_offer"
FILLED_QUANTITY = "filled_quantity"
FIRST_FILL_TIME = "first_fill_time"
LAST_FILL_TIME = "last_fill_time"
RESIDUAL_AFTER_ARRIVAL = "residual_after_arrival"
SWEEP_ORDER_ID = "sweep_order_id"
CONTRA_ORDER_ID = "contra_order_id"
N_FILLS = "n_fills"
VWAP = "vwap"
RESTS = "rests"
MIDTICK = "midtick"
MAQ_EFFECTIVE = "maq"
MAQ_IS_SINGLE = "maq_single"
MATCHED_QUANTITY = "matched_quantity"
FINAL_STATUS = "final_status"
FINAL_LEAVES = "final_leaves"
FINAL_CHANGEREASON = "final_changereason"
HAS_NEW_EVENT = "has_new_event"
TIME_VALIDITY = "timevalidity"
SIM_QUANTITY = "sim_quantity"
SIM_WINDOW_END = "sim_window_end"
END_TIME = "end_time"
BOOKING_QUANTITY = "booking_quantity"
UNFILLED_QUANTITY = "unfilled_quantity"
NBBO_SOURCE = "nbbo_source"
ARRIVAL_QUOTE_AGE = "arrival_quote_age_s"
ROLE = "role"
END_MID = "end_mid"
SPREAD_NOTIONAL = "spread_notional"
GROUP = "group"
QUALIFYING = "qualifying"

# ---- result tables (docs/results.md) -----------------------------------------------------------
SIZE_BUCKET = "size_bucket"
TIME_BUCKET = "time_bucket"
FILL_CLASS = "fill_class"


def horizon_label(h: float) -> str:
    """`1`, `300`, `0p5`: integer horizons print without a decimal point."""
    return str(int(h)) if float(h).is_integer() else str(h).replace(".", "p")


def realized_spread_column(h: float) -> str:
    return f"realized_spread_{horizon_label(h)}s_bps"


def price_impact_column(h: float) -> str:
    return f"price_impact_{horizon_label(h)}s_bps"


def horizon_notional_column(h: float) -> str:
    """Σ q·p of the fills behind realized_spread / price_impact at horizon h (their aggregation weight)."""
    return f"spread_notional_{horizon_label(h)}s"


# Execution metrics computed by one function for real and simulated fills (sim_ prefix for simulated).
FILL_TOTALS: dict[str, pa.DataType] = {
    "filled_quantity": I64,
    "n_fills": I64,
    "vwap": F64,
    "first_fill_time": I64,
    "last_fill_time": I64,
    "end_mid": F64,
}
COST_METRICS: dict[str, pa.DataType] = {
    "fill_ratio": F64,
    "arrival_cost_bps": F64,
    "opportunity_cost_bps": F64,
    "implementation_shortfall_bps": F64,
    "effective_spread_bps": F64,
    "spread_notional": F64,  # Σ q·p of the fills behind effective_spread_bps (its aggregation weight)
}
TIME_METRICS: dict[str, pa.DataType] = {
    "price_improvement_bps": F64,
    "time_to_first_fill_s": F64,
    "execution_duration_s": F64,
    "vw_exec_time_s": F64,
}


def metric_columns(horizons_s: Sequence[float]) -> dict[str, pa.DataType]:
    """Every column `steps.metrics.execution_metrics` adds, in file order."""
    spreads = {realized_spread_column(h): F64 for h in horizons_s}
    spreads.update({price_impact_column(h): F64 for h in horizons_s})
    spreads.update({horizon_notional_column(h): F64 for h in horizons_s})
    return {**FILL_TOTALS, **COST_METRICS, **spreads, **TIME_METRICS}


SWEEP_ATTRIBUTES: dict[str, pa.DataType] = {
    ORDER_ID: I64,
    SIDE: I64,
    PARTICIPANT: I64,
    ORDER_TYPE_FLAGS: I64,
    "arrival_time": I64,
    "arrival_sequence": I64,
    "arrival_quantity": I64,
    "order_quantity": I64,
    "limit_price": I64,
    "midtick": I64,
    "maq": I64,
    "maq_single": BOOL,
    "timevalidity": I64,
    "residual_after_arrival": I64,
    "rests": BOOL,
    "final_time": I64,
    "final_changereason": I64,
    "final_status": I64,
    "final_leaves": I64,
    "matched_quantity": I64,
    "has_new_event": BOOL,
    "group": STR,
    "qualifying": BOOL,
    "filled_lit": I64,
    "filled_dark": I64,
    "filled_auction": I64,
    "filled_reported": I64,
    "booking_quantity": I64,
    "unfilled_quantity": I64,
    "arrival_bid": I64,
    "arrival_offer": I64,
    "arrival_mid": F64,
    "arrival_spread_bps": F64,
    "arrival_quote_age_s": F64,
    "nbbo_source": STR,
    SIZE_BUCKET: STR,
    TIME_BUCKET: STR,
}


def sweeps_schema(horizons_s: Sequence[float]) -> pa.Schema:
    """`results/sweeps`: one row per analysed sweep (file columns; security_code/date are in the path)."""
    return pa.schema(list({**SWEEP_ATTRIBUTES, **metric_columns(horizons_s)}.items()))


SIM_FILLS = pa.schema(
    [
        ("sweep_order_id", I64),
        ("contra_order_id", I64),
        ("role", STR),  # 'resting': the sweep rested and the contra arrived; 'incoming': the sweep arrived
        ("contra_is_sweep", BOOL),  # the contra order is an analysed sweep too (the match has two rows)
        (TIMESTAMP, I64),
        (QUANTITY, I64),
        (PRICE, F64),
        ("mid", F64),
    ]
)

# Real-vs-simulated pairs compared per sweep (delta = sim - real); the headline pair first.
COMPARED_METRICS = (
    "implementation_shortfall_bps",
    "arrival_cost_bps",
    "opportunity_cost_bps",
    "effective_spread_bps",
    "filled_quantity",
    "fill_ratio",
    "vw_exec_time_s",
    "time_to_first_fill_s",
)


def sim_orders_schema(horizons_s: Sequence[float]) -> pa.Schema:
    """`results/sim_orders`: one row per analysed sweep and scenario."""
    cols: dict[str, pa.DataType] = {
        ORDER_ID: I64,
        "sim_quantity": I64,
        "sim_window_end": I64,
        "sim_filled_resting": I64,
        "sim_filled_incoming": I64,
    }
    cols.update({f"sim_{c}": t for c, t in metric_columns(horizons_s).items()})
    cols["set"] = STR
    cols.update({f"delta_{c}": F64 for c in COMPARED_METRICS})
    return pa.schema(list(cols.items()))


REPLAY_FIDELITY = pa.schema(
    [
        ("real_cp_quantity", I64),
        ("real_cp_executions", I64),
        ("replayed_quantity", I64),
        ("replayed_matches", I64),
        ("reproduced_quantity", I64),
        ("real_pairs", I64),
        ("reproduced_pairs", I64),
        ("fidelity", F64),
        ("preferencing_quantity", I64),
        ("cp_booking_quantity", I64),
    ]
)

QUALITY = pa.schema(
    [
        ("open", I64),
        ("close", I64),
        ("open_source", STR),
        ("nbbo_source", STR),
        ("n_quotes", I64),
        ("n_usable_quotes", I64),
        ("n_stale_quotes", I64),
        ("n_empty_quotes", I64),
        ("n_crossed_quotes", I64),
        ("n_locked_quotes", I64),
        ("n_sweeps", I64),
        ("n_sweeps_analysed", I64),
        ("n_sweeps_outside_session", I64),
        ("n_sweeps_without_mid", I64),
        ("arrival_quote_age_median_s", F64),
        ("arrival_quote_age_p95_s", F64),
        ("quantity_lit", I64),
        ("quantity_dark", I64),
        ("quantity_auction", I64),
        ("quantity_reported", I64),
        ("quantity_booking", I64),
    ]
)


def text_columns(schema: pa.Schema) -> list[str]:
    """The text columns of `schema`, in its order: the ones lake files are written with dictionaries (few
    distinct values; on numeric columns dictionaries cost write time for files no smaller)."""
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table with no rows. (pyarrow's `Schema.empty_table` imports pandas, ~0.3 s of every job's start.)"""
    return pa.Table.from_batches([], schema=schema)


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The Polars equivalent of an Arrow schema (used to build empty frames and to cast); a copy of a
    cached one, since a job asks for the same few schemas again and again."""
    import polars as pl

    return pl.Schema(_polars_schema(schema))


@lru_cache(maxsize=64)
def _polars_schema(schema: pa.Schema) -> pl.Schema:
    import polars as pl

    frame = pl.from_arrow(empty_table(schema))
    assert isinstance(frame, pl.DataFrame)
    return frame.schema

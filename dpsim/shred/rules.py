"""The reject rules: (bad-row mask, reason) per rule, as vectorised Polars expressions."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl

from dpsim import schema
from dpsim.shred.plan import Plan

# A partitioning timestamp outside [TS_MIN, TS_MAX) is a reject: it is garbage, not a trading day.
TS_MIN_DATE, TS_MAX_DATE = date(2000, 1, 1), date(2100, 1, 1)
TS_MIN = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
TS_MAX = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
# Columns that must not be negative, per kind.
NON_NEGATIVE: dict[str, tuple[str, ...]] = {
    "orders": (schema.QUANTITY, schema.LEAVES, schema.MATCHED),
    "trades": (schema.QUANTITY,),
    "nbbo": (),
}
SIDED_KINDS = ("orders", "trades")


def _checks(plan: Plan) -> list[tuple[pl.Expr, pl.Expr]]:
    """(bad-row mask, reason) per validation rule, in the order reasons are reported."""
    out = [
        (pl.col(c).is_null(), pl.lit(f"missing value in required column '{c}'")) for c in plan.kind.required
    ]
    if plan.kind.name in SIDED_KINDS:
        side = pl.col(schema.SIDE)
        out.append(
            (side.is_in([1, 2]).not_().fill_null(False), pl.format("bad side (expected 1 or 2): {}", side))
        )
    for c in NON_NEGATIVE[plan.kind.name]:
        out.append(
            ((pl.col(c) < 0).fill_null(False), pl.format(f"negative value in column '{c}': {{}}", pl.col(c)))
        )
    ts = pl.col(schema.TIMESTAMP)
    out.append((((ts < TS_MIN) | (ts >= TS_MAX)).fill_null(False), _timestamp_reason(ts)))
    return out


def _timestamp_reason(ts: pl.Expr) -> pl.Expr:
    """Why a timestamp is out of range: in another unit (what an export in ms, µs or s looks like), or not
    a trading time at all."""
    as_float = ts.cast(pl.Float64)
    reason = pl.format(f"timestamp outside {TS_MIN_DATE}..{TS_MAX_DATE}: {{}}", ts)
    for factor, unit in ((1e9, "seconds"), (1e6, "milliseconds"), (1e3, "microseconds")):
        scaled = as_float * factor
        reason = (
            pl.when((scaled >= TS_MIN) & (scaled < TS_MAX))
            .then(pl.format(f"timestamps look like {unit}, expected ns since the epoch: {{}}", ts))
            .otherwise(reason)
        )
    return reason


def reject_reasons(df: pl.DataFrame, plan: Plan, unparseable: pl.Series | None) -> pl.Series | None:
    """The reject reason of every row (null = good), or None when every row is good (the usual case)."""
    checks = _checks(plan)
    if unparseable is None and not df.select(pl.any_horizontal([m for m, _ in checks]).any()).item():
        return None
    reason = df.select(pl.coalesce([pl.when(m).then(r) for m, r in checks]).alias("reason")).to_series()
    return reason if unparseable is None else unparseable.zip_with(unparseable.is_not_null(), reason)

"""Quality: one row per partition saying how trustworthy its benchmarks are.

The session open used (and whether an auction print set it), the quote rows by class (stale outside
[open, close], empty, crossed, locked, usable; first that applies), the sweeps that could not be
analysed (outside the session) or have no arrival mid, the arrival quote age (median and p95, numpy's
linear percentiles), and the trade quantity per fill class (each execution counted once, by
`matchgroupid`, so the two rows of one execution are not counted twice).
"""

from __future__ import annotations

import polars as pl

from dpsim import schema
from dpsim.config import FILL_CLASSES
from dpsim.steps.quotes import CROSSED, EMPTY, LOCKED, QUOTE_CLASS, STALE, USABLE
from dpsim.steps.select import has_flags
from dpsim.steps.session import Session, executions


def quality_row(
    classified_quotes: pl.LazyFrame,
    quote_source: str,
    cp_orders: pl.LazyFrame,
    trades: pl.LazyFrame,
    session: Session,
    sweep_mask: int,
) -> pl.LazyFrame:
    """The `results/quality` row (schema.QUALITY) of one partition."""
    cls = pl.col(QUOTE_CLASS)
    quotes = classified_quotes.select(
        pl.len().alias("n_quotes"),
        *(
            (cls == c).sum().alias(f"n_{name}_quotes")
            for c, name in (
                (USABLE, "usable"),
                (STALE, "stale"),
                (EMPTY, "empty"),
                (CROSSED, "crossed"),
                (LOCKED, "locked"),
            )
        ),
    )
    sweeps = cp_orders.filter(has_flags(schema.ORDER_TYPE_FLAGS, sweep_mask))
    t = pl.col(schema.ARRIVAL_TIME)
    in_session = (t >= session.open) & (t < session.close)
    age = pl.col(schema.ARRIVAL_QUOTE_AGE).filter(in_session)
    sweep_counts = sweeps.select(
        pl.len().alias("n_sweeps"),
        in_session.sum().alias("n_sweeps_analysed"),
        (~in_session).sum().alias("n_sweeps_outside_session"),
        (in_session & pl.col(schema.ARRIVAL_MID).is_null()).sum().alias("n_sweeps_without_mid"),
        age.quantile(0.5, interpolation="linear").alias("arrival_quote_age_median_s"),
        age.quantile(0.95, interpolation="linear").alias("arrival_quote_age_p95_s"),
    )
    per_execution = executions(trades)
    fc = pl.col(schema.FILL_CLASS)
    volumes = per_execution.select(
        pl.col(schema.QUANTITY).filter(fc == c).sum().alias(f"quantity_{c}") for c in FILL_CLASSES
    )
    session_cols = pl.LazyFrame(
        {
            "open": [session.open],
            "close": [session.close],
            "open_source": [session.open_source],
            schema.NBBO_SOURCE: [quote_source],
        }
    )
    row = pl.concat([session_cols, quotes, sweep_counts, volumes], how="horizontal")
    return row.select(pl.col(c).cast(t) for c, t in schema.polars_schema(schema.QUALITY).items())

"""Quote series (feed or snapshot fallback), mids, and the backward as-of lookup (DOMAIN §2.3, §5.2)."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim import schema
from dpsim.config import Codes
from dpsim.steps.lifecycle import order_lifecycle
from dpsim.steps.quotes import asof_quote, mid_expr, quote_series

LONG_MIN = -(2**63)


def nbbo(rows: list[tuple[int, int, int, int]]) -> pl.LazyFrame:
    """(timestamp, sequence, bid, offer) rows with the other feed columns null."""
    cols = schema.polars_schema(schema.NBBO.lake_schema)
    data = [
        {c: dict(zip(("timestamp", "sequence", "bid", "offer"), r, strict=True)).get(c) for c in cols}
        for r in rows
    ]
    return pl.DataFrame(data, schema=cols).lazy()


def test_mid_half_units_exact_and_invalid_quotes() -> None:
    df = pl.DataFrame(
        {
            "bid": [3355, 3350, LONG_MIN, 3350, 3370, 3360, None],
            "offer": [3360, 3360, 3360, 0, 3360, 3360, 3360],
        }
    )
    mids = df.select(mid_expr(pl.col("bid"), pl.col("offer")))["bid"].to_list()
    # (3355+3360)/2 = 3357.5 kept exact; 3355.0; Long.MIN bid, 0 offer, crossed 3370>3360 and a null side -> null;
    # locked 3360/3360 keeps its mid (the simulation refuses locked quotes itself).
    assert mids == [3357.5, 3355.0, None, None, None, 3360.0, None]


def test_feed_series_latest_at_or_before(make_events, make_trades) -> None:
    feed = nbbo([(100, 1, 3350, 3360), (200, 2, 3340, 3360), (200, 3, 3345, 3360), (300, 4, 3370, 3360)])
    events = make_events([{"order_id": 1, "timestamp": 150, "national_bid": 1, "national_offer": 2}])
    q = quote_series(feed, events, make_trades([]))
    # Two quotes at t=200: only the later by sequence (3345/3360) stays; the event snapshot is ignored.
    assert q.collect().rows() == [
        (100, 3350, 3360, 3355.0, "feed"),
        (200, 3345, 3360, 3352.5, "feed"),
        (300, 3370, 3360, None, "feed"),  # crossed: kept as the latest quote, with a null mid
    ]
    left = pl.LazyFrame({"t": [250, 50, 100, 199, 200, 301]})
    got = asof_quote(left, q, on="t", prefix="q_").collect()
    # sorted by t; 50 has no quote at or before it; 100 and 199 -> the t=100 quote; 200 and 250 -> t=200;
    # 301 -> the crossed t=300 quote (no mid).
    assert got["t"].to_list() == [50, 100, 199, 200, 250, 301]
    assert got["q_mid"].to_list() == [None, 3355.0, 3355.0, 3352.5, 3352.5, None]
    assert got["q_source"].to_list() == [None, "feed", "feed", "feed", "feed", "feed"]


def test_snapshot_series_without_feed(make_events, make_trades) -> None:
    events = make_events(
        [
            {"order_id": 1, "timestamp": 100, "sequence": 10, "national_bid": 3350, "national_offer": 3360},
            {"order_id": 1, "timestamp": 300, "sequence": 30, "national_bid": 3355, "national_offer": 3360},
        ]
    )
    trades = make_trades(
        [
            {
                "order_id": 9,
                "timestamp": 200,
                "sequence": 20,
                "nationalbidpricesnapshot": 3340,
                "nationalofferpricesnapshot": 3350,
            },
            {
                "order_id": 8,
                "timestamp": 300,
                "sequence": 31,
                "nationalbidpricesnapshot": 3360,
                "nationalofferpricesnapshot": 3370,
            },
        ]
    )
    q = quote_series(nbbo([]), events, trades).collect()
    # events and trades merged in (timestamp, sequence) order; at t=300 the trade (sequence 31) is the later one.
    assert q.rows() == [
        (100, 3350, 3360, 3355.0, "snapshot"),
        (200, 3340, 3350, 3345.0, "snapshot"),
        (300, 3360, 3370, 3365.0, "snapshot"),
    ]


@pytest.mark.parametrize(
    ("has_feed", "expected"),
    [
        # feed: order 1 arrives at 150 -> feed quote of t=100 (3350/3360, mid 3355, spread 10/3355*1e4);
        # order 2 arrives at 50, before any feed quote -> none; order 3 at 250 -> crossed t=200 quote.
        (
            True,
            [(1, 3350, 3360, 3355.0, "feed"), (2, None, None, None, "none"), (3, 3370, 3360, None, "feed")],
        ),
        # no feed: each order's own arrival row (3352/3358 -> 3355.0; one side Long.MIN -> null side and mid;
        # 3357/3358 -> 3357.5 half unit).
        (
            False,
            [
                (1, 3352, 3358, 3355.0, "snapshot"),
                (2, None, 3358, None, "snapshot"),
                (3, 3357, 3358, 3357.5, "snapshot"),
            ],
        ),
    ],
)
def test_arrival_nbbo(make_events, make_trades, has_feed, expected) -> None:
    events = make_events(
        [
            {"order_id": 1, "timestamp": 150, "national_bid": 3352, "national_offer": 3358},
            {"order_id": 2, "timestamp": 50, "national_bid": LONG_MIN, "national_offer": 3358},
            {"order_id": 3, "timestamp": 250, "national_bid": 3357, "national_offer": 3358},
        ]
    )
    feed = nbbo([(100, 1, 3350, 3360), (200, 2, 3370, 3360)] if has_feed else [])
    trades = make_trades([])
    quotes = quote_series(feed, events, trades)
    out = order_lifecycle(events, trades, quotes, has_feed, Codes()).collect().sort("order_id")
    got = out.select("order_id", "arrival_bid", "arrival_offer", "arrival_mid", "nbbo_source").rows()
    assert got == expected
    spread = out.filter(pl.col("order_id") == 1)["arrival_spread_bps"].item()
    assert spread == pytest.approx((3360 - 3350) / 3355 * 1e4 if has_feed else (3358 - 3352) / 3355 * 1e4)


def test_snapshot_arrival_without_any_quote_is_none(make_events, make_trades) -> None:
    events = make_events([{"order_id": 1, "timestamp": 1, "national_bid": None, "national_offer": None}])
    quotes = quote_series(nbbo([]), events, make_trades([]))
    out = order_lifecycle(events, make_trades([]), quotes, False, Codes()).collect()
    assert out.select("arrival_mid", "arrival_spread_bps", "nbbo_source").row(0) == (None, None, "none")

"""Quote rows (feed or event snapshots), their classes, usable mids and the two lookups (docs/methodology.md §3)."""

from __future__ import annotations

import polars as pl
import pytest

from dpsim import schema
from dpsim.config import Codes
from dpsim.errors import InputError
from dpsim.steps.lifecycle import order_lifecycle
from dpsim.steps.quotes import (
    FEED,
    QUOTES,
    SNAPSHOT,
    USABLE_COLUMNS,
    at_or_before,
    classify_quotes,
    prevailing,
    quote_rows,
    usable_quotes,
)
from dpsim.steps.session import Session, classified_trades

LONG_MIN = -(2**63)
# Tiny timestamps: a session from t=100 to t=1000 (ns); [open, close] both inclusive for quotes.
SESSION = Session(open=100, close=1000, open_source="config")


def nbbo(rows: list[tuple[int, int, int | None, int | None]]) -> pl.LazyFrame:
    """(timestamp, sequence, bid, offer) feed rows with the other nbbo lake columns null."""
    cols = schema.polars_schema(schema.NBBO.lake_schema)
    data = [
        {c: dict(zip(("timestamp", "sequence", "bid", "offer"), r, strict=True)).get(c) for c in cols}
        for r in rows
    ]
    return pl.DataFrame(data, schema=cols).lazy()


def usable(rows: pl.LazyFrame, session: Session = SESSION) -> pl.LazyFrame:
    return usable_quotes(classify_quotes(rows, session))


def test_quote_classes_and_half_unit_mids() -> None:
    rows = nbbo(
        [
            (200, 1, 3355, 3360),  # usable: mid (3355 + 3360) / 2 = 3357.5, kept exact
            (210, 2, 3350, 3360),  # usable: 3355.0
            (220, 3, LONG_MIN, 3360),  # empty (Long.MIN side)
            (230, 4, 3350, 0),  # empty (0 side)
            (240, 5, 3370, 3360),  # crossed
            (250, 6, 3360, 3360),  # locked: unusable in v2 (v1 kept its mid)
            (260, 7, None, 3360),  # empty (null side)
            (99, 8, 3350, 3360),  # stale: one ns before the open
            (1001, 9, 3350, 3360),  # stale: one ns after the close
            (100, 10, 3350, 3370),  # usable: the open is inclusive (mid 3360)
            (1000, 11, 3340, 3350),  # usable: the close is inclusive (mid 3345)
            (50, 12, 3370, 3360),  # crossed AND stale: stale applies first
        ]
    )
    classes = classify_quotes(rows, SESSION).collect()
    assert classes["quote_class"].to_list() == [
        *["usable", "usable", "empty", "empty", "crossed", "locked", "empty"],
        *["stale", "stale", "usable", "usable", "stale"],
    ]
    out = usable(rows).collect()
    assert dict(out.schema) == USABLE_COLUMNS
    # only the usable ones, sorted by time
    assert out.rows() == [
        (100, 3350, 3370, 3360.0),
        (200, 3355, 3360, 3357.5),
        (210, 3350, 3360, 3355.0),
        (1000, 3340, 3350, 3345.0),
    ]


def test_highest_usable_sequence_stands_for_its_nanosecond() -> None:
    # Given out of sequence order on purpose. At t=200: sequences 2 (3340/3360), 3 (3345/3360) and
    # 4 (locked): usable quotes are filtered first, then the highest sequence stands -> 3345/3360.
    rows = nbbo([(200, 3, 3345, 3360), (200, 4, 3360, 3360), (200, 2, 3340, 3360), (150, 1, 3350, 3360)])
    assert usable(rows).collect().rows() == [(150, 3350, 3360, 3355.0), (200, 3345, 3360, 3352.5)]


def test_prevailing_is_strictly_before_and_skips_unusable_quotes() -> None:
    # Usable quotes: t=100 -> mid 3355; t=200 -> 3352.5 (the later sequence); t=300 is crossed: unusable.
    q = usable(nbbo([(100, 1, 3350, 3360), (200, 2, 3340, 3360), (200, 3, 3345, 3360), (300, 4, 3370, 3360)]))
    left = pl.LazyFrame({"t": [250, 50, 100, 199, 200, 201, 301]})
    got = prevailing(left, q, on="t", prefix="q_", max_age_s=None).collect()
    # Sorted by t. 50: nothing before it; 100: the t=100 quote is at its own nanosecond, not before it ->
    # none; 199 and 200 -> the t=100 quote; 201 and 250 -> t=200; 301 -> still t=200 (the crossed t=300
    # quote does not hide it).
    assert got["t"].to_list() == [50, 100, 199, 200, 201, 250, 301]
    assert got["q_mid"].to_list() == [None, None, 3355.0, 3355.0, 3352.5, 3352.5, 3352.5]
    assert got["q_bid"].to_list() == [None, None, 3350, 3350, 3345, 3345, 3345]
    assert got["q_offer"].to_list() == [None, None, 3360, 3360, 3360, 3360, 3360]
    assert got["q_quote_time"].to_list() == [None, None, 100, 100, 200, 200, 200]

    # max age 100 ns (1e-7 s): an age of exactly 100 ns still counts, 101 ns does not.
    # 199: age 99; 200: age 100; 201: age 1; 250: age 50; 301: age 101 -> none.
    aged = prevailing(left, q, on="t", prefix="q_", max_age_s=1e-7).collect()
    assert aged["q_mid"].to_list() == [None, None, 3355.0, 3355.0, 3352.5, 3352.5, None]
    assert aged["q_quote_time"].to_list() == [None, None, 100, 100, 200, 200, None]


def test_at_or_before_includes_the_instant_and_never_looks_past_close() -> None:
    # A hand-made usable set with a quote after the close (which classify_quotes would call stale), to
    # show the lookup is clamped at min(t, close): t=1500 sees the t=200 quote, not the t=1200 one.
    q = pl.LazyFrame(
        [(100, 3350, 3360, 3355.0), (200, 3345, 3360, 3352.5), (1200, 3400, 3410, 3405.0)],
        schema=USABLE_COLUMNS,
        orient="row",
    )
    left = pl.LazyFrame({"t": [50, 100, 199, 200, 1500]})
    got = at_or_before(left, q, on="t", prefix="h_", max_age_s=None, close=1000).collect()
    # 50: none; 100: its own nanosecond counts (at or before); 199 -> t=100; 200 -> t=200; 1500 -> t=200
    assert got["t"].to_list() == [50, 100, 199, 200, 1500]
    assert got["h_mid"].to_list() == [None, 3355.0, 3355.0, 3352.5, 3352.5]
    assert "h__at" not in got.columns  # the clamped helper column is dropped
    # the age is measured from t, not from the clamped instant: max age 1e-6 s = 1000 ns; t=1500 - 200 =
    # 1300 ns -> none; t=199 - 100 = 99 ns -> kept
    aged = at_or_before(left, q, on="t", prefix="h_", max_age_s=1e-6, close=1000).collect()
    assert aged["h_mid"].to_list() == [None, 3355.0, 3355.0, 3352.5, None]


def test_quote_rows_feed_or_cp_event_snapshots(make_events, make_trades) -> None:
    events = make_events(
        [
            {"order_id": 1, "timestamp": 100, "sequence": 10, "national_bid": 3350, "national_offer": 3360},
            {"order_id": 1, "timestamp": 300, "sequence": 30, "national_bid": 3355, "national_offer": 3360},
        ]
    )
    feed = nbbo([(150, 1, 3340, 3350), (250, 2, 3345, 3350)])
    # With feed rows: the feed only (the event snapshots are ignored).
    assert quote_rows(feed, events, has_feed=True).collect().rows() == [
        (150, 1, 3340, 3350),
        (250, 2, 3345, 3350),
    ]
    # Without: the CP event rows' national bid/offer, stamped at their event with its sequence. In v2
    # nothing else is a snapshot source (v1 also merged the trades' snapshots; they are not used).
    assert quote_rows(nbbo([]), events, has_feed=False).collect().rows() == [
        (100, 10, 3350, 3360),
        (300, 30, 3355, 3360),
    ]


def lifecycle_with_quotes(events: pl.LazyFrame, trades: pl.LazyFrame, feed: pl.LazyFrame, has_feed: bool):
    q = usable(quote_rows(feed, events, has_feed))
    source = FEED if has_feed else SNAPSHOT
    return order_lifecycle(events, classified_trades(trades, Codes()), q, source, None).collect()


@pytest.mark.parametrize(
    ("has_feed", "expected"),
    [
        # feed: order 1 arrives at 150 -> the t=100 quote (3350/3360, mid 3355); order 2 arrives at 50,
        # before any quote -> none; order 3 at 250: the t=200 feed quote is crossed (unusable) and does not
        # hide the t=100 one (v1 took the crossed quote, with a null mid); order 4 at 300 -> t=100 too.
        (
            True,
            [
                (1, 3350, 3360, 3355.0, "feed"),
                (2, None, None, None, "none"),
                (3, 3350, 3360, 3355.0, "feed"),
                (4, 3350, 3360, 3355.0, "feed"),
            ],
        ),
        # no feed: the quotes are the CP event rows, and an order's own arrival row is stamped at its
        # arrival: not before it (v1 benchmarked each order on its own arrival row). Order 1 at 150: only
        # the t=50 row is before it, and its bid is Long.MIN (empty) -> none; order 2 at 50 -> none;
        # order 3 at 250 -> order 1's row at 150 (3352/3358 -> 3355.0); order 4 at 300 -> order 3's row at
        # 250 (3357/3358 -> 3357.5, a half unit).
        (
            False,
            [
                (1, None, None, None, "none"),
                (2, None, None, None, "none"),
                (3, 3352, 3358, 3355.0, "snapshot"),
                (4, 3357, 3358, 3357.5, "snapshot"),
            ],
        ),
    ],
)
def test_arrival_nbbo(make_events, make_trades, has_feed, expected) -> None:
    events = make_events(
        [
            {"order_id": 2, "timestamp": 50, "national_bid": LONG_MIN, "national_offer": 3358},
            {"order_id": 1, "timestamp": 150, "national_bid": 3352, "national_offer": 3358},
            {"order_id": 3, "timestamp": 250, "national_bid": 3357, "national_offer": 3358},
            {"order_id": 4, "timestamp": 300, "national_bid": 3340, "national_offer": 3350},
        ]
    )
    feed = nbbo([(100, 1, 3350, 3360), (200, 2, 3370, 3360)] if has_feed else [])
    # the events at 50 lie before SESSION.open (100): stale as quotes; use a session from 0 here
    session_from_0 = Session(open=0, close=1000, open_source="config")
    q = usable(quote_rows(feed, events, has_feed), session_from_0)
    source = FEED if has_feed else SNAPSHOT
    out = (
        order_lifecycle(events, classified_trades(make_trades([]), Codes()), q, source, None)
        .collect()
        .sort("order_id")
    )
    got = out.select("order_id", "arrival_bid", "arrival_offer", "arrival_mid", "nbbo_source").rows()
    assert got == expected
    by_id = {r["order_id"]: r for r in out.iter_rows(named=True)}
    if has_feed:
        # order 1: spread (3360 - 3350) / 3355 * 1e4; quote age (150 - 100) ns = 5e-8 s
        assert by_id[1]["arrival_spread_bps"] == pytest.approx(10 / 3355 * 1e4, rel=1e-12)
        assert by_id[1]["arrival_quote_age_s"] == pytest.approx(50e-9, rel=1e-12)
        assert by_id[3]["arrival_quote_age_s"] == pytest.approx(150e-9, rel=1e-12)
    else:
        # order 3: (3358 - 3352) / 3355 * 1e4; order 4: (3358 - 3357) / 3357.5 * 1e4; ages 100 and 50 ns
        assert by_id[3]["arrival_spread_bps"] == pytest.approx(6 / 3355 * 1e4, rel=1e-12)
        assert by_id[4]["arrival_spread_bps"] == pytest.approx(1 / 3357.5 * 1e4, rel=1e-12)
        assert by_id[3]["arrival_quote_age_s"] == pytest.approx(100e-9, rel=1e-12)
        assert by_id[4]["arrival_quote_age_s"] == pytest.approx(50e-9, rel=1e-12)
    # no quote -> every arrival quote column null, never a stale fallback
    assert (by_id[2]["arrival_spread_bps"], by_id[2]["arrival_quote_age_s"]) == (None, None)


def test_snapshot_arrival_without_any_quote_is_none(make_events, make_trades) -> None:
    events = make_events([{"order_id": 1, "timestamp": 200, "national_bid": None, "national_offer": None}])
    out = lifecycle_with_quotes(events, make_trades([]), nbbo([]), has_feed=False)
    assert out.select("arrival_mid", "arrival_spread_bps", "nbbo_source").row(0) == (None, None, "none")


def test_quotes_step_rejects_a_mistyped_price_column() -> None:
    rows = nbbo([(200, 1, 3350, 3360)]).with_columns(pl.col("bid").cast(pl.Float64))
    with pytest.raises(InputError, match=r"step 'quotes'.*bid \(Float64, expected Int64\)"):
        QUOTES(rows, SESSION)

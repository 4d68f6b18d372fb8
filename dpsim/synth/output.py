"""CSV output: the exports' exact headers (from `dpsim.schema`), then encoded chunks of rows."""

from __future__ import annotations

import gzip as gz
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dpsim.schema import EXPORT_HEADERS
from dpsim.synth.clock import to_utc
from dpsim.synth.events import Arr, Cols
from dpsim.synth.market import Quotes, Universe
from dpsim.synth.orders import PARTICIPANTS

TV_CODES = np.array([0, 256, 1288, 1370, 1536, 16640])  # sorted: searchsorted gives the label index
TV_LABELS = pa.array(["Bouncing", "Rest of Day", "Days", "Days", "Current Max", "Purged Rest of Day"])
DS_CODES = np.array([1, 20, 44, 45, 46, 47, 48])
DS_LABELS = pa.array(
    [
        "Continuous Lit",
        "Auction",
        "Continuous Lit UCP",
        "Auction UCP",
        "Centre Point Preferencing",
        "Centre Point",
        "Centre Point UCP",
    ]
)
SIDE_LABELS = pa.array(["", "Buy", "Sell"])
PARTICIPANT_TYPES = ("Institutional Broker", "Market Maker", "Retail Broker", "Proprietary Trader")
MATCHGROUP_BASE = 7_904_794_000_123_000_000
NBBO_USERID, NBBO_RUNID = 262826, 1751364092
_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65_536)


class Sink:
    """One output CSV: the exact header once, then encoded chunks; counts rows and uncompressed bytes."""

    def __init__(self, path: Path, header: Sequence[str], gzip: bool) -> None:
        self._raw: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._out: BinaryIO | gz.GzipFile = (
            gz.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=self._raw, mtime=0)
            if gzip
            else self._raw
        )
        self.rows = 0
        self.bytes = 0
        self._put((",".join(header) + "\n").encode())

    def _put(self, data: bytes | pa.Buffer) -> None:
        self._out.write(data)
        self.bytes += len(data)

    def write(self, columns: list[pa.Array | Arr], names: Sequence[str]) -> None:
        table = pa.Table.from_arrays(
            [pa.array(c) if isinstance(c, np.ndarray) else c for c in columns], names=list(names)
        )
        if table.num_rows == 0:
            return
        buf = pa.BufferOutputStream()
        pacsv.write_csv(table, buf, _WRITE_OPTIONS)
        self._put(buf.getvalue())
        self.rows += table.num_rows

    def close(self) -> None:
        if self._out is not self._raw:
            self._out.close()
        self._raw.close()


def write_nbbo(sink: Sink, quotes: Quotes, codes: Arr, bases: tuple[int, int], first_seq: int) -> int:
    """The day's quotes in time order, numbered from `first_seq` + 1; returns how many."""
    q = quotes
    order = np.lexsort((q.sec, q.t))
    ts = to_utc(q.t[order], bases)
    n = len(ts)
    seq = first_seq + np.arange(1, n + 1)
    cols = [
        np.ones(n, np.int64),
        seq,
        np.full(n, bases[1]),
        q.pub_bid[order],
        ts,
        q.pub_offer[order],
        codes[q.sec[order]],
        ts,
        np.full(n, NBBO_USERID),
        np.full(n, NBBO_RUNID),
    ]
    sink.write(cols, EXPORT_HEADERS["nbbo"])
    return n


def write_orders(
    sink: Sink,
    r: Cols,
    seq: Arr,
    quotes: Quotes,
    universe: Universe,
    bases: tuple[int, int],
    rng: np.random.Generator,
) -> None:
    """Order event rows with their quote snapshots (the second BBO drawn from `rng`)."""
    n = len(seq)
    i = quotes.at(r["security"], r["time"])
    nb, no = quotes.pub_bid[i], quotes.pub_offer[i]
    tick = universe.tick[r["security"]]
    # The second BBO equals the national one on ~90 % of rows, a tick worse otherwise.
    worse = rng.random(n) < 0.1
    bid = np.where(worse & (nb > tick), nb - tick, nb)
    offer = np.where(worse & (no > 0), no + tick, no)
    short = (r["order_type"] & 2) != 0
    row_num = sink.rows + np.arange(1, n + 1)
    tv_label = pc.take(TV_LABELS, pa.array(np.searchsorted(TV_CODES, r["validity"])))
    one = np.ones(n, np.int64)
    cols = [
        r["order_id"],
        3 * one,
        to_utc(r["time"], bases),
        universe.codes[r["security"]],
        r["price"],
        r["side"],
        r["change_reason"],
        r["status"],
        r["quantity"],
        r["leaves"],
        one,
        r["order_type"],
        nb,
        no,
        bid,
        offer,
        r["participant"],
        r["preference"],
        r["midtick"],
        r["single_fill_maq"],
        r["maq"],
        seq,
        r["crossing_key"],
        r["matched"],
        np.where(short, r["leaves"], 0),
        0 * one,
        tv_label,
        row_num,
        r["validity"],
    ]
    sink.write(cols, EXPORT_HEADERS["orders"])


def write_trades(
    sink: Sink,
    e: Cols,
    seq: Arr,
    quotes: Quotes,
    codes: Arr,
    bases: tuple[int, int],
    tradedate: str,
    first_match_group: int,
) -> None:
    """Two trade rows per execution (buy, then sell); match groups numbered from `first_match_group` + 1."""
    n = 2 * len(e["time"])
    rep = np.repeat(np.arange(len(e["time"])), 2)
    side = np.tile(np.array([1, 2], np.int64), len(e["time"]))
    ts = to_utc(e["time"][rep], bases)
    i = quotes.at(e["security"][rep], e["time"][rep])
    mg = first_match_group + rep + 1
    ds = e["deal_source"][rep]
    cols = [
        np.full(n, 3),
        seq,
        pa.repeat(tradedate, n),
        ts,
        codes[e["security"][rep]],
        np.where(side == 1, e["buy_order"][rep], e["sell_order"][rep]),
        ds,
        pc.take(DS_LABELS, pa.array(np.searchsorted(DS_CODES, ds))),
        pa.repeat("ON Market", n),
        mg,
        quotes.pub_bid[i],
        quotes.pub_offer[i],
        e["price"][rep],
        e["quantity"][rep],
        side,
        pc.take(SIDE_LABELS, pa.array(side)),
        np.where(side == 1, e["buy_participant"][rep], e["sell_participant"][rep]),
        (e["aggressor"][rep] == side).astype(np.int64),
        sink.rows + np.arange(1, n + 1),
    ]
    sink.write(cols, EXPORT_HEADERS["trades"])


def write_small_files(
    paths: dict[str, Path], universe: Universe, session: list[tuple[str, Arr]], gzip: bool
) -> dict[str, int]:
    """reference, session and participants: tiny, written whole at the end."""
    u, n = universe, len(universe.codes)
    small = {
        "reference": ([u.codes, pa.array(u.names), np.full(n, 3), u.tick], EXPORT_HEADERS["reference"]),
        "session": (
            [
                np.tile(u.codes, len(session)),
                pa.array([name for name, _ in session for _ in range(n)]),
                np.concatenate([t for _, t in session]),
            ],
            EXPORT_HEADERS["session"],
        ),
        "participants": (
            [
                PARTICIPANTS,
                pa.array([f"Participant {p:03d}" for p in PARTICIPANTS]),
                pa.array([PARTICIPANT_TYPES[i % len(PARTICIPANT_TYPES)] for i in range(len(PARTICIPANTS))]),
            ],
            EXPORT_HEADERS["participants"],
        ),
    }
    rows = {}
    for kind, (cols, header) in small.items():
        sink = Sink(paths[kind], header, gzip)
        sink.write(cols, header)
        sink.close()
        rows[kind] = sink.rows
    return rows

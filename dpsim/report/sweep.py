"""One sweep's story (`dpsim report --sweep ORDER_ID`): its events, the mid over its life, real vs
simulated fills per scenario, its window, and its metrics side by side. One function per section."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import polars as pl

from dpsim.errors import DpsimError
from dpsim.report.page import COLORS, Figure, Note, Section, Table, bare, bps, fixed, num, pct
from dpsim.report.session import ReportSession

# Metrics compared side by side: the real column of results/sweeps and sim_<name> of results/sim_orders.
METRICS = (
    ("filled_quantity", num),
    ("n_fills", num),
    ("fill_ratio", pct),
    ("vwap", lambda v: fixed(v, 3)),
    ("end_mid", lambda v: fixed(v, 3)),
    ("arrival_cost_bps", lambda v: bps(v)),
    ("opportunity_cost_bps", lambda v: bps(v)),
    ("implementation_shortfall_bps", lambda v: bps(v)),
    ("effective_spread_bps", lambda v: bps(v)),
    ("price_improvement_bps", lambda v: bps(v)),
    ("time_to_first_fill_s", lambda v: fixed(v, 3)),
    ("vw_exec_time_s", lambda v: fixed(v, 3)),
)
SYMBOLS = {"resting": "circle-open", "incoming": "triangle-up"}
CONTEXT_NS = 30_000_000_000  # the timeline shows 30 s before arrival and after the last window end


def story(s: ReportSession, order_id: int) -> tuple[str, str, list[Section]]:
    """(title, subtitle, sections) of one sweep's page."""
    keys = s.query("sweep_find", order_id=order_id, **s.selection.params())
    if keys.is_empty():
        raise DpsimError(
            f"no analysed sweep with order id {order_id} in {s.lake.root} ({s.selection.describe()}); "
            'find one with: dpsim sql "SELECT order_id FROM sweeps LIMIT 10"'
        )
    if keys.height > 1:
        where = ", ".join(f"{r['security_code']}/{r['date']}" for r in keys.to_dicts())
        raise DpsimError(
            f"order id {order_id} names sweeps in several partitions ({where}); "
            "pick one with --securities and --dates"
        )
    key = keys.to_dicts()[0]
    p = {"security_code": key["security_code"], "date": key["date"], "order_id": order_id}
    tz = s.cfg.time.timezone
    sweep = s.query("sweep_row", **p).to_dicts()[0]
    sims = s.query("sweep_sim_orders", **p)
    if s.selection.scenarios:
        sims = sims.filter(pl.col("scenario").is_in(list(s.selection.scenarios)))
    fills = s.query("sweep_sim_fills", **p, tz=tz).filter(
        pl.col("scenario").is_in(sims["scenario"].to_list())
    )
    classes = s.cfg.codes.fill_classes
    trades = s.query(
        "sweep_trades",
        **p,
        tz=tz,
        lit=list(classes.lit),
        dark=list(classes.dark),
        auction=list(classes.auction),
        reported=list(classes.reported),
        booking=list(classes.booking),
    )
    events = s.query("sweep_events", **p, tz=tz)
    ends = [sweep["final_time"], *[v for v in sims["sim_window_end"].to_list() if v is not None]]
    t0, t1 = sweep["arrival_time"] - CONTEXT_NS, max(ends) + CONTEXT_NS
    quotes = s.query("sweep_quotes", security_code=p["security_code"], date=p["date"], t0=t0, t1=t1, tz=tz)
    if quotes.height:  # the mid in force from the left edge to the right edge, not only between quotes
        first = quotes.filter(pl.col("timestamp") <= t0).tail(1)  # the quote in force at t0
        first = first.with_columns(local_time=pl.lit(_local(t0, tz)), timestamp=pl.lit(t0))
        last = quotes.tail(1).with_columns(local_time=pl.lit(_local(t1, tz)), timestamp=pl.lit(t1))
        quotes = pl.concat([first, quotes.filter(pl.col("timestamp") > t0), last])
    title = f"dpsim sweep {order_id}"
    subtitle = f"{s.lake.root} · security {key['security_code']} · {key['date']} · {len(sims)} scenarios"
    built = [
        summary(sweep, tz, s.has_raw),
        timeline(sweep, quotes, trades, fills, tz),
        window(sweep, sims, tz),
        fills_table(trades, fills),
        metrics(sweep, sims),
        events_table(events),
    ]
    return title, subtitle, built


def _local(ns: int | None, tz: str) -> str:
    if ns is None:
        return ""
    t = datetime.fromtimestamp(ns // 1000 / 1e6, UTC).astimezone(ZoneInfo(tz))
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def summary(sweep: dict[str, Any], tz: str, has_raw: bool = True) -> Section:
    side = {1: "buy", 2: "sell"}.get(sweep["side"], str(sweep["side"]))
    limit = sweep["limit_price"]
    rows = [
        ("order id", bare(sweep["order_id"])),
        ("side, participant", f"{side}, participant {bare(sweep['participantid'])}"),
        ("arrival (local)", _local(sweep["arrival_time"], tz)),
        ("arrival (ns UTC)", bare(sweep["arrival_time"])),
        (
            "order quantity Q / arrival quantity",
            f"{num(sweep['order_quantity'])} / {num(sweep['arrival_quantity'])}",
        ),
        ("limit", f"${limit / 1000:.3f}" if limit and limit > 0 else "none (a pure mid peg)"),
        (
            "MAQ, midtick",
            f"{num(sweep['maq'])}{' (every fill)' if sweep['maq_single'] else ''}, {bare(sweep['midtick'])}",
        ),
        (
            "arrival bid / offer / mid",
            f"{bare(sweep['arrival_bid'])} / {bare(sweep['arrival_offer'])} / {fixed(sweep['arrival_mid'], 1)}",
        ),
        (
            "group, size bucket, time bucket",
            f"{sweep['group']}, {sweep['size_bucket']}, {sweep['time_bucket']}",
        ),
        ("final event (local)", _local(sweep["final_time"], tz)),
    ]
    reading = (
        f"A {side} sweep of {num(sweep['order_quantity'])} shares: it filled {num(sweep['filled_quantity'])} "
        f"({pct(sweep['fill_ratio'])}) for a real implementation shortfall of "
        f"{bps(sweep['implementation_shortfall_bps'])} bps against the arrival mid."
    )
    blocks: list[Figure | Table | Note] = [Table(("", ""), rows, key="sweep_summary")]
    if not has_raw:
        blocks.append(
            Note("The lake has no raw orders, trades or quotes: no events, real fills or mid below.")
        )
    return Section("sweep-summary", "The sweep", reading, blocks)


def timeline(
    sweep: dict[str, Any], quotes: pl.DataFrame, trades: pl.DataFrame, fills: pl.DataFrame, tz: str
) -> Section:
    fig = go.Figure()
    if quotes.height:
        fig.add_scatter(
            x=quotes["local_time"].to_list(),
            y=(quotes["mid"] / 1000).to_list(),
            mode="lines",
            line_shape="hv",
            line_color="#888",
            name="mid (usable NBBO)",
        )
    for cls in trades["fill_class"].unique(maintain_order=True).to_list():
        t = trades.filter(pl.col("fill_class") == cls)
        fig.add_scatter(
            x=t["local_time"].to_list(),
            y=(t["price"] / 1000).to_list(),
            mode="markers",
            marker={"size": 9, "symbol": "diamond", "line": {"width": 1}},
            text=[
                f"{q:,} @ {p / 1000:.3f} vs {c or '?'}"
                for q, p, c in t.select("quantity", "price", "contra_order_id").iter_rows()
            ],
            hovertemplate="%{text}<extra>real " + str(cls) + "</extra>",
            name=f"real {cls} fill",
        )
    for (scenario, role), f in fills.group_by(["scenario", "role"], maintain_order=True):
        fig.add_scatter(
            x=f["local_time"].to_list(),
            y=(f["price"] / 1000).to_list(),
            mode="markers",
            marker={"size": 8, "symbol": SYMBOLS.get(str(role), "circle")},
            text=[
                f"{q:,} @ {p / 1000:.4f} vs {c}"
                for q, p, c in f.select("quantity", "price", "contra_order_id").iter_rows()
            ],
            hovertemplate="%{text}<extra>" + f"{scenario} {role}" + "</extra>",
            name=f"{scenario} ({role})",
        )
    fig.add_vline(x=_local(sweep["arrival_time"], tz), line_dash="dot", line_color=COLORS["sim"])
    fig.update_layout(
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
        xaxis_title=f"local time ({tz})",
        yaxis_title="price, $",
        legend={"orientation": "h", "y": -0.2},
    )
    reading = (
        f"The prevailing mid over the sweep's life, its {trades.height} real trade rows (diamonds, by fill "
        f"class) and the replay's {fills.height} simulated fills (circles: resting, triangles: incoming); "
        "the dotted line is its arrival."
    )
    blocks: list[Figure | Table | Note] = [Figure("timeline", fig, 460)]
    if not quotes.height:
        blocks.append(Note("The partition has no usable NBBO feed rows over this window: no mid line."))
    return Section("sweep-timeline", "Prices over its life", reading, blocks)


def window(sweep: dict[str, Any], sims: pl.DataFrame, tz: str) -> Section:
    fig = go.Figure()
    start = _local(sweep["arrival_time"], tz)
    rows = [("real order", start, _local(sweep["final_time"], tz), "", "", "", "")]
    for r in sims.to_dicts():
        end = _local(r["sim_window_end"], tz)
        rows.append(
            (
                r["scenario"],
                start,
                end,
                num(r["sim_quantity"]),
                num(r["sim_filled_resting"]),
                num(r["sim_filled_incoming"]),
                r["set"] or "",
            )
        )
    names = [r[0] for r in rows]
    fig.add_scatter(
        x=[v for r in rows for v in (r[1], r[2], None)],
        y=[v for r in rows for v in (r[0], r[0], None)],
        mode="lines+markers",
        line={"width": 8},
        name="window",
    )
    fig.update_yaxes(categoryorder="array", categoryarray=names[::-1])
    fig.update_layout(
        margin={"l": 110, "r": 20, "t": 20, "b": 40}, showlegend=False, xaxis_title=f"local time ({tz})"
    )
    reading = (
        "From arrival to the end of its window per scenario (methodology §7: last fill, final event, "
        "N seconds or the close), with what rested and what filled while resting or as the incoming order."
    )
    table = Table(
        ("", "from", "to", "rested", "filled resting", "filled incoming", "set"), rows, key="sweep_window"
    )
    return Section(
        "sweep-window", "Its window", reading, [Figure("window", fig, 120 + 28 * len(rows)), table]
    )


def fills_table(trades: pl.DataFrame, fills: pl.DataFrame) -> Section:
    real = Table(
        (
            "time (local)",
            "ns UTC",
            "class",
            "dealsource",
            "price",
            "quantity",
            "match group",
            "contra order",
            "contra participant",
        ),
        [
            (
                r["local_time"],
                bare(r["timestamp"]),
                r["fill_class"] or "",
                bare(r["dealsource"]),
                bare(r["price"]),
                num(r["quantity"]),
                bare(r["matchgroupid"]),
                r["contra_order_id"] or "",
                r["contra_participant"] or "",
            )
            for r in trades.to_dicts()
        ],
        caption="real trade rows (prices in thousandths of a dollar)",
        key="sweep_real_fills",
    )
    sim = Table(
        (
            "scenario",
            "time (local)",
            "ns UTC",
            "role",
            "contra order",
            "contra is a sweep",
            "quantity",
            "price",
            "mid",
        ),
        [
            (
                r["scenario"],
                r["local_time"],
                bare(r["timestamp"]),
                r["role"],
                r["contra_order_id"],
                "yes" if r["contra_is_sweep"] else "",
                num(r["quantity"]),
                fixed(r["price"], 1),
                fixed(r["mid"], 1),
            )
            for r in fills.to_dicts()
        ],
        caption="simulated fills per scenario",
        key="sweep_sim_fills",
        collapsed=fills.height > 30,
    )
    reading = "Real fills with their contra side (the other rows of the same match group) and the replay's fills per scenario (role, contra, price)."
    return Section("sweep-fills", "Real vs simulated fills", reading, [real, sim])


def metrics(sweep: dict[str, Any], sims: pl.DataFrame) -> Section:
    scen = sims.to_dicts()
    rows = [(name, fmt(sweep.get(name)), *(fmt(r.get(f"sim_{name}")) for r in scen)) for name, fmt in METRICS]
    rows.append(
        (
            "delta implementation shortfall, bps",
            "",
            *(bps(r.get("delta_implementation_shortfall_bps"), True) for r in scen),
        )
    )
    table = Table(("metric", "real", *(r["scenario"] for r in scen)), rows, key="sweep_metrics")
    reading = "The real path's metrics beside each scenario's simulated path, computed by the same code on the same denominator (order quantity × arrival mid)."
    return Section("sweep-metrics", "Its metrics side by side", reading, [table])


def events_table(events: pl.DataFrame) -> Section:
    table = Table(
        (
            "time (local)",
            "ns UTC",
            "sequence",
            "change reason",
            "status",
            "quantity",
            "leaves",
            "matched",
            "price",
            "participant",
        ),
        [
            (
                r["local_time"],
                bare(r["timestamp"]),
                bare(r["sequence"]),
                bare(r["changereason"]),
                bare(r["orderstatus"]),
                num(r["quantity"]),
                num(r["leavesquantity"]),
                num(r["totalmatchedquantity"]),
                bare(r["price"]),
                bare(r["participantid"]),
            )
            for r in events.to_dicts()
        ],
        key="sweep_events",
        collapsed=events.height > 40,
        caption=f"{events.height} order events",
    )
    return Section(
        "sweep-events",
        "Its order events",
        f"The sweep's {events.height} order events in lifecycle order (timestamp, sequence).",
        [table],
    )

"""The lake report's section 4: real vs simulated sweep by sweep, and the simulated fills over the resting
window. Moved out of sections.py (sections 1–3) to keep each room under ~500 lines; one sweep's own page
is sweep.py. One function per section, from named queries in dpsim/report/sql/ (see sections.py)."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl

from dpsim.report.page import COLORS, Figure, Note, Section, layout, num, pct
from dpsim.report.session import ReportSession

SCATTER_POINTS = 2000


# ---- 4. real vs simulated per sweep; the fill curve over the resting window ---------------------------


def scatter(s: ReportSession) -> Section:
    sc = s.primary
    df = s.query("scatter", scenario=sc, n=SCATTER_POINTS)
    total = s.query("headline", scenarios=[sc])["n_with_delta"].to_list()
    fig = go.Figure()
    hover = [
        f"order {o}<br>{c} {d}<br>{b}<br>dpsim report --sweep {o}"
        for o, c, d, b in df.select("order_id", "security_code", "date", "size_bucket").iter_rows()
    ]
    fig.add_scattergl(
        x=df["real_is_bps"].to_list(),
        y=df["sim_is_bps"].to_list(),
        mode="markers",
        marker={"size": 5, "opacity": 0.5, "color": COLORS["sim"]},
        text=hover,
        hovertemplate="real %{x:.2f} bps<br>simulated %{y:.2f} bps<br>%{text}<extra></extra>",
        name="sweep",
    )
    both = pl.concat([df["real_is_bps"], df["sim_is_bps"]]).drop_nulls()
    if both.len():
        lo, hi = float(both.quantile(0.01) or 0), float(both.quantile(0.99) or 0)
        pad = (hi - lo) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
        fig.add_scatter(
            x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "#888"}, name="sim = real"
        )
        fig.update_xaxes(range=[lo, hi])
        fig.update_yaxes(range=[lo, hi])
    layout(fig, xaxis_title="real implementation shortfall, bps", yaxis_title=f"simulated ({sc}), bps")
    reading = (
        f"One point per sweep ({num(df.height)} of {num(total[0] if total else 0)}, a fixed sample): below the "
        f"diagonal the simulated path ({sc}) was cheaper than the real one. Hover a point for its order id; "
        "`dpsim report --sweep ID` writes that sweep's story."
    )
    note = Note(
        "Axes cover the sample's 1st–99th percentile; points outside are off the chart, not dropped from any figure."
    )
    return Section(
        "scatter", "Real vs simulated, sweep by sweep", reading, [Figure("scatter", fig, 520), note]
    )


def fill_curve(s: ReportSession) -> Section:
    df = s.query("fill_curve", scenarios=s.scenarios)
    fig = go.Figure()
    finals = []
    for sc in s.scenarios:
        part = df.filter(pl.col("scenario") == sc)
        if part.is_empty():
            continue
        finals.append((sc, part["filled_share"][-1]))
        fig.add_scatter(
            x=part["seconds"].to_list(),
            y=part["filled_share"].to_list(),
            mode="lines+markers",
            line_shape="hv",
            name=sc,
            visible=True if s.world(sc) != "sensitivity" else "legendonly",
        )
    layout(
        fig,
        xaxis_title="seconds since the sweep's arrival",
        yaxis_title="share of rested quantity filled",
        xaxis_type="log",
        yaxis_tickformat=".1%",
    )
    missing = [sc for sc in s.scenarios if sc not in {f for f, _ in finals}]
    reading = (
        "Of the quantity that rested in the simulation, the share filled while resting, by time since the "
        "sweep's arrival; each curve ends at the headline's 'rested filled'"
        + (f" ({', '.join(f'{sc} {pct(v, 2)}' for sc, v in finals[:3])})" if finals else "")
        + (f". No resting fills in: {', '.join(missing)}." if missing else ".")
    )
    return Section(
        "fill-curve", "Simulated fills over the resting window", reading, [Figure("fill_curve", fig)]
    )

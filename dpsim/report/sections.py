"""The lake report's sections 1–3 (the answer, its spread, by segment and time) and the page's section
order; 4 (sweep by sweep) is in per_sweep.py, 5–8 are in detail.py. One function per section, from named
queries in dpsim/report/sql/, each built from small helpers (its reading, figure, table, note).

Every section gets the session and returns a `Section`: its title, a one-line reading in the words of
docs/methodology.md, and its figures and tables. Nothing here loads the sweeps themselves: the queries
aggregate, bin or sample in DuckDB and return a few hundred rows at most.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from dpsim.report.detail import participants, quality, spreads, statistics
from dpsim.report.page import COLORS, Figure, Note, Section, Table, bare, bps, dollars, layout, num, pct
from dpsim.report.per_sweep import fill_curve, scatter
from dpsim.report.session import ReportSession

INTRADAY_MINUTES = 15
WORLD_MEANING = {
    "plausible": "the orders as stated could have rested so",
    "sensitivity": "one rule varied, to see how much the answer moves",
    "bound": "not a world that could have happened: an upper bound or a contrast",
}


def _where(scenario: str, world: str | None) -> str:
    """'In the plausible world (baseline)', or 'In ignore_limit (a bound, not a plausible world)'."""
    if world == "plausible":
        return f"In the plausible world ({scenario})"
    return f"In {scenario} (a {world or 'sensitivity'} scenario, not a plausible world)"


# ---- 1. headline ----------------------------------------------------------------------------------


def headline(s: ReportSession) -> Section:
    """Section 1: the answer for the primary scenario, every scenario's bars and interval, the table."""
    df = s.query("headline", scenarios=s.scenarios)
    rows = df.to_dicts()
    main = next((r for r in rows if r["scenario"] == s.primary), rows[0])
    reading = _headline_reading(main)
    fig = _headline_figure(rows)
    return Section(
        "headline",
        "Would resting in Centre Point have been cheaper?",
        reading,
        [Figure("headline", fig, 440), _headline_table(rows), _headline_note()],
    )


def _verdict(d: float | None, lo: float | None, hi: float | None) -> str:
    """The answer in words, from the delta and its 95 % interval: the reading ends on it."""
    if d is None:
        return "no sweep has both a real and a simulated implementation shortfall"
    if hi is not None and hi < 0:
        return "resting would have been cheaper, and the 95 % interval excludes zero"
    if lo is not None and lo > 0:
        return "resting would have cost more, and the 95 % interval excludes zero"
    return "the 95 % interval includes zero: no clear difference"


def _headline_reading(main: dict[str, Any]) -> str:
    """The one-line answer for one scenario's row (the primary's): the sentence a reader quotes."""
    d, lo, hi = main["delta_is_bps"], main["ci_low"], main["ci_high"]
    return (
        f"{_where(main['scenario'], main['world'])}, resting the sweeps in Centre Point changes the "
        f"notional-weighted implementation shortfall by {bps(d, True)} bps "
        f"(real {bps(main['real_is_bps'])} → simulated {bps(main['sim_is_bps'])}, 95 % CI "
        f"{bps(lo, True)} to {bps(hi, True)}, {num(main['n_with_delta'])} sweeps): {_verdict(d, lo, hi)}. "
        f"The replay reproduces {pct(main['fidelity_mean'])} of the real Centre Point quantity."
    )


def _headline_figure(rows: list[dict[str, Any]]) -> go.Figure:
    """Real vs simulated cost per scenario (left) beside each delta and its interval (right)."""
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.55, 0.45],
        subplot_titles=(
            "implementation shortfall, bps (real vs simulated)",
            "delta = sim − real, bps, 95 % CI",
        ),
    )
    names = [r["scenario"] for r in rows]
    fig.add_bar(
        x=names, y=[r["real_is_bps"] for r in rows], name="real", marker_color=COLORS["real"], row=1, col=1
    )
    fig.add_bar(
        x=names, y=[r["sim_is_bps"] for r in rows], name="simulated", marker_color=COLORS["sim"], row=1, col=1
    )
    _add_delta_intervals(fig, rows)
    fig.add_vline(x=0, line_dash="dot", line_color="#888", row=1, col=2)
    fig.update_yaxes(autorange="reversed", categoryorder="array", categoryarray=names, row=1, col=2)
    layout(fig, barmode="group")
    return fig


def _add_delta_intervals(fig: go.Figure, rows: list[dict[str, Any]]) -> None:
    """One trace of deltas with their 95 % intervals per world, so the legend and colour tell the worlds apart."""
    for world in ("plausible", "sensitivity", "bound"):
        sub = [r for r in rows if (r["world"] or "sensitivity") == world]
        if not sub:
            continue
        fig.add_scatter(
            x=[r["delta_is_bps"] for r in sub],
            y=[r["scenario"] for r in sub],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(r["ci_high"] or 0) - (r["delta_is_bps"] or 0) for r in sub],
                "arrayminus": [(r["delta_is_bps"] or 0) - (r["ci_low"] or 0) for r in sub],
            },
            mode="markers",
            marker={"size": 10, "color": COLORS[world]},
            name=f"{world} world",
            row=1,
            col=2,
        )


def _headline_table(rows: list[dict[str, Any]]) -> Table:
    """Every scenario's numbers behind the figure, its row classed by world so the page can colour it."""
    return Table(
        columns=(
            "scenario",
            "world",
            "sweeps",
            "real IS",
            "simulated IS",
            "delta",
            "95 % CI",
            "CI resamples",
            "fill ratio real → sim",
            "rested filled",
            "fidelity lowest / overall",
        ),
        rows=[
            (
                r["scenario"],
                r["world"] or "",
                num(r["n_with_delta"]),
                bps(r["real_is_bps"]),
                bps(r["sim_is_bps"]),
                bps(r["delta_is_bps"], True),
                f"[{bps(r['ci_low'], True)}, {bps(r['ci_high'], True)}]",
                f"{num(r['n_clusters'])} {r['ci_unit'] or ''}s",
                f"{pct(r['fill_ratio'])} → {pct(r['sim_fill_ratio'])}",
                pct(r["sim_rested_fill_ratio"], 2),
                f"{pct(r['fidelity_min'])} / {pct(r['fidelity_mean'])}",
            )
            for r in rows
        ],
        row_classes=[r["world"] or "" for r in rows],
        key="headline",
    )


def _headline_note() -> Note:
    """The definitions a reader needs to read the headline: the measure, its sign, the worlds, fidelity."""
    worlds = "; ".join(f"{w}: {m}" for w, m in WORLD_MEANING.items())
    return Note(
        "Implementation shortfall (Perold) on the same sweeps and shares, weighted by order quantity × "
        "arrival mid; positive = cost. delta < 0: resting in Centre Point would have been cheaper. "
        f"Worlds — {worlds}. Rested filled: the share of the quantity that rested which filled while "
        "resting. Fidelity: the share of the day's real Centre Point quantity the reality replay reproduces "
        "(`dpsim fidelity` explains the misses by cause)."
    )


# ---- 2. distribution of the per-sweep delta ---------------------------------------------------------


# One scenario's line of the delta summary: its name, its counts by sign, its mean and median delta.
_DeltaRow = tuple[str, dict[str, Any], dict[str, Any]]


def _bin_label(b: int) -> str:
    """The upper edge of a signed-log delta bin (delta_bins.sql), e.g. -5.6 or +18."""
    edge = 10 ** ((abs(b) - 9) / 4)
    text = f"{edge:.2g}" if edge < 10 else f"{edge:,.0f}"
    return ("−" if b < 0 else "+") + text


def delta_distribution(s: ReportSession) -> Section:
    """Section 2: how the per-sweep delta is spread, binned per scenario, with counts by sign."""
    bins = s.query("delta_bins", scenarios=s.scenarios)
    medians = {r["scenario"]: r for r in s.query("delta_medians", scenarios=s.scenarios).to_dicts()}
    fig = _delta_figure(s, bins)
    rows = _delta_rows(s, bins, medians)
    return Section(
        "delta",
        "Per-sweep difference: how the delta is spread",
        _delta_reading(rows, s.primary),
        [Figure("delta", fig), _delta_table(rows), _delta_note()],
    )


def _bin_order(bins: pl.DataFrame) -> list[int]:
    """The x axis: every non-zero bin from the lowest to the highest with sweeps, and always ±1, so the
    scenarios share one axis and an empty middle still shows."""
    nonzero = bins.filter(pl.col("bin") != 0)["bin"]
    lo, hi = (int(nonzero.min() or -1), int(nonzero.max() or 1)) if nonzero.len() else (-1, 1)  # type: ignore[arg-type]
    return [b for b in range(min(lo, -1), max(hi, 1) + 1) if b != 0]  # the bins with sweeps, and ±1


def _delta_figure(s: ReportSession, bins: pl.DataFrame) -> go.Figure:
    """One step line of sweeps per bin for each scenario with any; sensitivity ones start hidden."""
    order = _bin_order(bins)
    fig = go.Figure()
    for sc in s.scenarios:
        counts = dict(bins.filter(pl.col("scenario") == sc).select("bin", "n_sweeps").iter_rows())
        if not any(counts.get(b) for b in order):
            continue
        fig.add_scatter(
            x=[_bin_label(b) for b in order],
            y=[counts.get(b, 0) for b in order],
            mode="lines",
            line_shape="hvh",
            name=sc,
            visible=True if s.world(sc) != "sensitivity" else "legendonly",
        )
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=[_bin_label(b) for b in order])
    layout(
        fig,
        xaxis_title="delta per sweep (sim − real), bps: each bin up to the edge shown (signed log scale)",
        yaxis_title="sweeps",
    )
    fig.update_layout(margin={"b": 120}, legend={"y": -0.42}, xaxis_tickangle=-45)
    return fig


def _delta_rows(s: ReportSession, bins: pl.DataFrame, medians: dict[str, dict[str, Any]]) -> list[_DeltaRow]:
    """Per scenario with sweeps, in the page's scenario order: the counts by sign (zeros included, which
    the figure leaves out) beside the mean and median delta, for the reading and the table."""
    summary = (
        bins.group_by("scenario")
        .agg(
            pl.col("n_sweeps").sum().alias("n"),
            pl.col("n_sweeps").filter(pl.col("bin") < 0).sum().alias("n_cheaper"),
            pl.col("n_sweeps").filter(pl.col("bin") == 0).sum().alias("n_same"),
            pl.col("n_sweeps").filter(pl.col("bin") > 0).sum().alias("n_dearer"),
        )
        .to_dicts()
    )
    by = {r["scenario"]: r for r in summary}
    return [(sc, by[sc], medians.get(sc, {})) for sc in s.scenarios if sc in by]


def _delta_reading(rows: list[_DeltaRow], primary: str) -> str:
    """The primary scenario's split into cheaper / same / dearer, in shares of its sweeps."""
    main = next((r for r in rows if r[0] == primary), rows[0] if rows else None)
    if main and main[1]["n"]:
        sc, c, m = main
        n = c["n"]
        return (
            f"Each sweep's simulated minus real implementation shortfall: in {sc}, {pct(c['n_cheaper'] / n)} "
            f"of {num(n)} sweeps would have been cheaper resting in Centre Point, {pct(c['n_same'] / n)} the "
            f"same, {pct(c['n_dearer'] / n)} dearer (median {bps(m.get('median'), True)} bps; unweighted, "
            "one sweep one count)."
        )
    return "No sweep has both a real and a simulated implementation shortfall."


def _delta_table(rows: list[_DeltaRow]) -> Table:
    """The counts by sign and the mean and median delta of every scenario, as numbers."""
    return Table(
        columns=(
            "scenario",
            "sweeps",
            "cheaper (δ < 0)",
            "same (δ = 0)",
            "dearer (δ > 0)",
            "mean δ",
            "median δ",
        ),
        rows=[
            (
                sc,
                num(c["n"]),
                num(c["n_cheaper"]),
                num(c["n_same"]),
                num(c["n_dearer"]),
                bps(m.get("mean"), True),
                bps(m.get("median"), True),
            )
            for sc, c, m in rows
        ],
        key="delta_summary",
    )


def _delta_note() -> Note:
    """How to read the binned figure: its scale, its end bins, where the zeros went, the hidden lines."""
    return Note(
        "The sweeps with a non-zero delta, by its size in quarter decades (0.01 to 10,000 bps; smaller and "
        "larger ones in the end bins), cheaper to the left, dearer to the right; the zeros are counted in the "
        "table only. Sensitivity scenarios start hidden: click the legend."
    )


# ---- 3. cost and fill by order size and time of day; the intraday profile -----------------------------


def segments(s: ReportSession) -> Section:
    """Section 3: cost and fill of the primary scenario by order size and by time of day."""
    sc = s.primary
    min_n = s.cfg.stats.min_segment_n
    df = s.query(
        "segments",
        scenario=sc,
        size_order=[b.name for b in s.cfg.buckets.size],
        time_order=[b.name for b in s.cfg.buckets.time_of_day],
    )
    fig = _segments_figure(df, sc, min_n)
    return Section(
        "segments",
        "Cost and fill by order size and time of day",
        _segments_reading(df, sc, min_n),
        [Figure("segments", fig, 620), _segments_table(df, min_n)],
    )


def _segments_figure(df: pl.DataFrame, sc: str, min_n: int) -> go.Figure:
    """A 2 × 2 grid: cost (left) and fill ratio (right), by order size (top) and time of day (bottom)."""
    fig = make_subplots(
        rows=2,
        cols=2,
        subplot_titles=(
            "implementation shortfall by order size, bps",
            "fill ratio by order size",
            "implementation shortfall by time of day, bps",
            "fill ratio by time of day",
        ),
        vertical_spacing=0.16,
    )
    for row, kind in ((1, "size"), (2, "time")):
        _add_segment_row(fig, df.filter(pl.col("segment_type") == kind), row, sc, min_n)
    fig.update_yaxes(tickformat=".0%", col=2)
    layout(fig, barmode="group")
    return fig


def _add_segment_row(fig: go.Figure, part: pl.DataFrame, row: int, sc: str, min_n: int) -> None:
    """One segment type's row of the grid: real and simulated bars for cost and for fill, the buckets
    with fewer than `min_n` sweeps faded; the legend comes from the first row only, so each entry shows once."""
    x = [str(v) for v in part["segment"].to_list()]
    opacity = [0.35 if n < min_n else 1.0 for n in part["n_sweeps"].to_list()]
    hover = [f"{n:,} sweeps" + (f" (< {min_n})" if n < min_n else "") for n in part["n_sweeps"].to_list()]
    first = row == 1
    for col, (real, sim) in ((1, ("real_is_bps", "sim_is_bps")), (2, ("fill_ratio", "sim_fill_ratio"))):
        for label, column, color in (
            ("real", real, COLORS["real"]),
            (f"simulated ({sc})", sim, COLORS["sim"]),
        ):
            fig.add_bar(
                x=x,
                y=part[column].to_list(),
                name=label,
                marker={"color": color, "opacity": opacity},
                hovertext=hover,
                legendgroup=label,
                showlegend=first and col == 1,
                row=row,
                col=col,
            )


def _segments_reading(df: pl.DataFrame, sc: str, min_n: int) -> str:
    """What the grid shows, naming the buckets too small to read so the faded bars are explained."""
    small = df.filter(pl.col("n_sweeps") < min_n)["segment"].to_list()
    return (
        f"Notional-weighted implementation shortfall and fill ratio (Σ filled / Σ order quantity), real vs "
        f"simulated ({sc}), by order size bucket and by local arrival time bucket"
        + (f"; faded bars hold fewer than {min_n} sweeps ({', '.join(map(str, small))})." if small else ".")
    )


def _segments_table(df: pl.DataFrame, min_n: int) -> Table:
    """Every bucket's numbers behind the grid, the small ones greyed out."""
    return Table(
        columns=(
            "segment",
            "bucket",
            "sweeps",
            "notional",
            "real IS",
            "simulated IS",
            "delta",
            "fill ratio",
            "sim fill ratio",
        ),
        rows=[
            (
                r["segment_type"],
                bare(r["segment"]),
                num(r["n_sweeps"]),
                dollars((r["notional"] or 0) / 1000),
                bps(r["real_is_bps"]),
                bps(r["sim_is_bps"]),
                bps(r["delta_is_bps"], True),
                pct(r["fill_ratio"]),
                pct(r["sim_fill_ratio"]),
            )
            for r in df.to_dicts()
        ],
        row_classes=["small" if r["n_sweeps"] < min_n else "" for r in df.to_dicts()],
        key="segments",
    )


def intraday(s: ReportSession) -> Section:
    sc = s.primary
    df = s.query("intraday", scenario=sc, tz=s.cfg.time.timezone, minutes=INTRADAY_MINUTES)
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.42, 0.38, 0.2],
        subplot_titles=("implementation shortfall, bps", "fill ratio", "sweeps"),
        vertical_spacing=0.07,
    )
    t = df["t"].to_list()
    fig.add_scatter(x=t, y=df["real_is_bps"].to_list(), name="real", line_color=COLORS["real"], row=1, col=1)
    fig.add_scatter(
        x=t, y=df["sim_is_bps"].to_list(), name=f"simulated ({sc})", line_color=COLORS["sim"], row=1, col=1
    )
    fig.add_scatter(
        x=t,
        y=df["fill_ratio"].to_list(),
        name="real fill",
        line_color=COLORS["real"],
        line_dash="dot",
        row=2,
        col=1,
    )
    fig.add_scatter(
        x=t,
        y=df["sim_fill_ratio"].to_list(),
        name="simulated fill",
        line_color=COLORS["sim"],
        line_dash="dot",
        row=2,
        col=1,
    )
    fig.add_bar(x=t, y=df["n_sweeps"].to_list(), name="sweeps", marker_color="#bbb", row=3, col=1)
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    layout(fig, xaxis3_title=f"local arrival time ({s.cfg.time.timezone}), {INTRADAY_MINUTES}-minute bins")
    busiest = df.sort("n_sweeps", descending=True).head(1).to_dicts()
    reading = (
        f"The day's profile by local arrival time ({INTRADAY_MINUTES}-minute bins, every date together): "
        f"notional-weighted implementation shortfall, real vs simulated ({sc}), and the fill ratio"
        + (
            f"; the busiest bin starts at {busiest[0]['t']} ({num(busiest[0]['n_sweeps'])} sweeps)."
            if busiest
            else "."
        )
    )
    return Section(
        "intraday", "Intraday profile of cost and fill rate", reading, [Figure("intraday", fig, 620)]
    )


# The page's sections, in order; 4 lives in per_sweep.py, 5–8 in detail.py.
SECTIONS: tuple[Callable[[ReportSession], Section], ...] = (
    headline,
    delta_distribution,
    segments,
    intraday,
    scatter,
    fill_curve,
    participants,
    spreads,
    statistics,
    quality,
)

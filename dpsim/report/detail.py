"""The lake report's sections 5–8: who (participants), the spreads, the statistics, and data quality and
run health. One function per section, each from named queries in dpsim/report/sql/ (see sections.py)."""

from __future__ import annotations

import re
from typing import Any

import plotly.graph_objects as go
import polars as pl

from dpsim.aggregate import STATS_METRICS
from dpsim.report.page import (
    COLORS,
    Figure,
    Note,
    Section,
    Table,
    bare,
    bps,
    dollars,
    fixed,
    layout,
    num,
    pct,
    sci,
)
from dpsim.report.session import ReportSession

TABLE_ROWS = 25
QUOTE_CLASSES = ("usable", "stale", "empty", "crossed", "locked")  # quote rows by class; usable first


# ---- 5. participants ------------------------------------------------------------------------------


def participants(s: ReportSession) -> Section:
    sc = s.primary
    min_n = s.cfg.stats.min_segment_n
    df = s.query("participants", scenario=sc, min_n=min_n)
    rows = df.to_dicts()

    def label(r: dict[str, object]) -> str:
        return f"{r['participantid']} {r['name']}" if r["name"] else str(r["participantid"])

    top = [r for r in rows if not r["small"]][:15]
    fig = go.Figure()
    fig.add_bar(
        y=[label(r) for r in top],
        x=[r["real_is_bps"] for r in top],
        orientation="h",
        name="real",
        marker_color=COLORS["real"],
    )
    fig.add_bar(
        y=[label(r) for r in top],
        x=[r["sim_is_bps"] for r in top],
        orientation="h",
        name=f"simulated ({sc})",
        marker_color=COLORS["sim"],
    )
    fig.update_yaxes(autorange="reversed")
    layout(fig, barmode="group", xaxis_title="implementation shortfall, bps (notional-weighted)")
    names = (
        "names from the participants reference"
        if s.has_participant_names
        else "no participants reference in the lake: ids only"
    )
    reading = (
        f"Participants by notional (order quantity × arrival mid) in {sc}, {names}; rows with fewer than "
        f"{min_n} sweeps (stats.min_segment_n) are greyed out — too few to read. The chart shows the "
        f"{len(top)} largest that are not."
    )
    table = Table(
        columns=(
            "participant",
            "name",
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
                bare(r["participantid"]),
                r["name"] or "",
                num(r["n_sweeps"]),
                dollars(r["notional_aud"]),
                bps(r["real_is_bps"]),
                bps(r["sim_is_bps"]),
                bps(r["delta_is_bps"], True),
                pct(r["fill_ratio"]),
                pct(r["sim_fill_ratio"]),
            )
            for r in rows
        ],
        row_classes=["small" if r["small"] else "" for r in rows],
        key="participants",
    )
    blocks: list[Figure | Table | Note] = [table]
    if top:
        blocks.insert(0, Figure("participants", fig, max(300, 40 + 34 * len(top))))
    return Section("participants", "Participant league table", reading, blocks)


# ---- 6. realized spread and price impact ------------------------------------------------------------


def spreads(s: ReportSession) -> Section:
    df = s.query("spreads")
    labels = [m.group(1) for c in s.columns("sweeps") if (m := re.fullmatch(r"realized_spread_(.+)s_bps", c))]
    horizons = [float(x.replace("p", ".")) for x in labels]
    df = df.with_columns(
        pl.Series("horizon_s", [horizons[i - 1] for i in df["i"].to_list()], dtype=pl.Float64)
    )
    fig = go.Figure()
    x = df["horizon_s"].to_list()
    fig.add_scatter(x=x, y=df["realized_spread_bps"].to_list(), mode="lines+markers", name="realized spread")
    fig.add_scatter(x=x, y=df["price_impact_bps"].to_list(), mode="lines+markers", name="price impact")
    eff = df["effective_spread_bps"].to_list()
    fig.add_scatter(x=x, y=eff, mode="lines", line={"dash": "dot", "color": "#888"}, name="effective spread")
    layout(
        fig,
        xaxis_title="horizon h, seconds after the fill",
        yaxis_title="bps (notional-weighted)",
        xaxis_type="log",
    )
    fig.update_xaxes(tickvals=x, ticktext=[f"{h:g} s" for h in x])
    last = df.tail(1).to_dicts()
    reading = (
        "The real lit and dark fills' effective spread splits into realized spread (what the liquidity "
        "provider kept) and price impact (the mid's move h seconds after the fill, against the sweep when "
        "positive)"
        + (
            f"; at {fixed(last[0]['horizon_s'], 0)} s: realized {bps(last[0]['realized_spread_bps'], True)}, "
            f"impact {bps(last[0]['price_impact_bps'], True)} of an effective {bps(eff[0], True)} bps."
            if last
            else "."
        )
    )
    table = Table(
        columns=("horizon (s)", "sweeps", "realized spread", "price impact", "effective spread"),
        rows=[
            (
                fixed(r["horizon_s"], 0 if float(r["horizon_s"]).is_integer() else 1),
                num(r["n_sweeps"]),
                bps(r["realized_spread_bps"], True),
                bps(r["price_impact_bps"], True),
                bps(r["effective_spread_bps"], True),
            )
            for r in df.to_dicts()
        ],
        key="spreads",
    )
    return Section(
        "spreads",
        "Realized spread and price impact over the horizons",
        reading,
        [Figure("spreads", fig), table],
    )


# ---- 7. statistics --------------------------------------------------------------------------------


def statistics(s: ReportSession) -> Section:
    df = s.query("stats", scenarios=s.scenarios, metrics=list(STATS_METRICS))
    sc = s.primary
    min_n = s.cfg.stats.min_segment_n
    seg = s.query("stats_segments", scenario=sc, metric=STATS_METRICS[0], min_n=min_n, limit=60)
    cols = (
        "family (scenario/metric)",
        "n",
        "mean δ",
        "95 % CI",
        "t",
        "p (t)",
        "q (t)",
        "p (Wilcoxon)",
        "q (Wilcoxon)",
        "Cohen's d",
        "note",
    )
    overall = Table(
        columns=cols,
        rows=[
            (
                r["family"],
                num(r["n"]),
                fixed(r["mean_diff"], 3),
                f"[{fixed(r['ci_low'], 3)}, {fixed(r['ci_high'], 3)}]",
                fixed(r["t"]),
                sci(r["p_value_t"]),
                sci(r["q_value_t"]),
                sci(r["p_value_wilcoxon"]),
                sci(r["q_value_wilcoxon"]),
                fixed(r["cohens_d"], 3),
                r["note"] or "",
            )
            for r in df.to_dicts()
        ],
        key="stats",
    )
    segments = Table(
        columns=(
            "segment",
            "value",
            "n",
            "mean δ",
            "95 % CI",
            "p (t)",
            "q (t)",
            "p (Wilcoxon)",
            "q (Wilcoxon)",
            "family",
        ),
        rows=[
            (
                r["segment_type"],
                bare(r["segment"]),
                num(r["n"]),
                fixed(r["mean_diff"], 3),
                f"[{fixed(r['ci_low'], 3)}, {fixed(r['ci_high'], 3)}]",
                sci(r["p_value_t"]),
                sci(r["q_value_t"]),
                sci(r["p_value_wilcoxon"]),
                sci(r["q_value_wilcoxon"]),
                r["family"],
            )
            for r in seg.to_dicts()
        ],
        row_classes=["small" if r["small"] else "" for r in seg.to_dicts()],
        caption=f"segments of {sc}/{STATS_METRICS[0]}, smallest q first (greyed: n < {min_n})",
        key="stats_segments",
        collapsed=True,
    )
    reading = (
        "Paired tests of the per-sweep difference (simulated − real; one sweep, one observation, unweighted): "
        "Student's t and Wilcoxon signed-rank, with Benjamini–Hochberg q-values within each family "
        "(scenario/metric, every segment and both tests). The headline is notional-weighted; these are not."
    )
    return Section("statistics", "Statistics", reading, [overall, segments])


# ---- 8. data quality and run health -----------------------------------------------------------------


def quality(s: ReportSession) -> Section:
    """Section 8: how far to trust the figures — quote quality, the data's facts, rejects, runs, partitions."""
    (q,) = s.query("quality").to_dicts() or [{}]
    fig = _quote_classes_figure(q)
    facts = _quality_facts(q)
    params = s.selection.params()
    rejects = s.query("rejects", limit=TABLE_ROWS)
    runs = s.query("runs", **params, limit=5)
    parts = s.query("partitions", **params, limit=10)
    blocks: list[Figure | Table | Note] = [
        Figure("quality", fig, 320),
        facts,
        _rejects_block(rejects),
        _runs_table(runs),
        _partitions_table(parts),
    ]
    return Section("quality", "Data quality and run health", _quality_reading(q, rejects, runs), blocks)


def _quote_classes_figure(q: dict[str, Any]) -> go.Figure:
    """The quote rows by class, one colour each: how many could serve as a benchmark at a glance."""
    fig = go.Figure()
    fig.add_bar(
        x=list(QUOTE_CLASSES),
        y=[q.get(f"n_{c}_quotes") or 0 for c in QUOTE_CLASSES],
        marker_color=["#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b"],
        name="quote rows",
    )
    layout(fig, yaxis_title="quote rows", showlegend=False, height=320)
    return fig


def _quality_facts(q: dict[str, Any]) -> Table:
    """The data's facts in two columns: partitions, sweeps, quotes, quote age, traded quantity, fidelity."""
    return Table(
        columns=("data quality", ""),
        rows=[
            (
                "partitions (session opened by an auction print)",
                f"{num(q.get('n_partitions'))} ({num(q.get('n_open_from_auction'))})",
            ),
            (
                "sweeps: analysed / outside the session / without an arrival mid",
                f"{num(q.get('n_sweeps_analysed'))} / {num(q.get('n_sweeps_outside_session'))} / {num(q.get('n_sweeps_without_mid'))}",
            ),
            (
                "quote rows: usable / stale / empty / crossed / locked",
                " / ".join(num(q.get(f"n_{c}_quotes")) for c in QUOTE_CLASSES),
            ),
            (
                "arrival quote age, s: median / p95",
                f"{fixed(q.get('arrival_quote_age_median_s'), 1)} / {fixed(q.get('arrival_quote_age_p95_s'), 1)}",
            ),
            (
                "traded quantity: lit / dark / auction / reported / booking",
                " / ".join(
                    num(q.get(f"quantity_{c}")) for c in ("lit", "dark", "auction", "reported", "booking")
                ),
            ),
            (
                "replay fidelity: lowest partition / overall",
                f"{pct(q.get('fidelity_min'))} / {pct(q.get('fidelity_mean'))}",
            ),
        ],
        key="quality",
    )


def _rejects_block(rejects: pl.DataFrame) -> Table | Note:
    """The rows rejected at shred by reason per source, or a one-line note that there were none."""
    if rejects.is_empty():
        return Note("Rejected rows at shred: none.")
    return Table(
        ("kind", "source", "reason", "rows", "first line"),
        [
            (r["kind"], r["source"], r["reason"], num(r["n_rows"]), bare(r["first_line"]))
            for r in rejects.to_dicts()
        ],
        caption="rows rejected at shred, by reason per source (every source file)",
        key="rejects",
    )


def _runs_table(runs: pl.DataFrame) -> Table:
    """The latest process runs over the selected partitions: when, how long, how many jobs ok or not."""
    return Table(
        ("run", "started (UTC)", "seconds", "jobs ok", "failed", "skipped"),
        [
            (
                r["run_id"],
                r["started"],
                fixed(r["seconds"], 1),
                num(r["ok"]),
                num(r["failed"]),
                num(r["skipped"]),
            )
            for r in runs.to_dicts()
        ],
        caption="latest process runs (jobs of the selected partitions)",
        key="runs",
    )


def _partitions_table(parts: pl.DataFrame) -> Table:
    """The slowest partitions' latest jobs, failed ones first and marked, with their error cut short."""
    return Table(
        ("partition", "status", "seconds", "rows in", "sweeps", "worker RSS MB", "fidelity", "error"),
        [
            (
                r["partition"],
                r["status"],
                fixed(r["seconds"], 3),
                num(r["rows_in"]),
                num(r["sweeps"]),
                fixed(r["worker_peak_rss_mb"], 0),
                pct(r["fidelity"]),
                (r["error"] or "")[:120],
            )
            for r in parts.to_dicts()
        ],
        row_classes=["failed" if r["status"] == "failed" else "" for r in parts.to_dicts()],
        caption="slowest partitions (each partition's latest job that ran; failed ones first)",
        key="partitions",
    )


def _quality_reading(q: dict[str, Any], rejects: pl.DataFrame, runs: pl.DataFrame) -> str:
    """The section's one line: the unusable quotes, the sweeps without a mid, the rejects, the failed jobs."""
    n_bad = sum(q.get(f"n_{c}_quotes") or 0 for c in QUOTE_CLASSES[1:])
    failed = int(runs["failed"][0]) if runs.height else 0
    return (
        f"How far to trust the figures: {num(n_bad)} of {num(q.get('n_quotes'))} quote rows unusable as benchmarks "
        f"(by cause below), {num(q.get('n_sweeps_without_mid'))} analysed sweeps without an arrival mid (no cost "
        f"figures), {num(rejects['n_rows'].sum() if rejects.height else 0)} rows rejected at shred, and "
        f"{failed} failed jobs in the latest run."
    )

"""The report page: sections of figures and tables rendered into one self-contained HTML file.

plotly.js is embedded once; every figure is a JSON object in one data block that a few lines of script
hand to `Plotly.newPlot`. Nothing is fetched at view time: the file works offline.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.utils import PlotlyJSONEncoder

# One look for every figure; the template travels once in the page, not once per figure.
TEMPLATE = "plotly_white"
COLORS = {
    "real": "#444444",
    "sim": "#1f77b4",
    "plausible": "#1f77b4",
    "sensitivity": "#9467bd",
    "bound": "#d62728",
    "small": "#bbbbbb",
}


@dataclass
class Figure:
    """A plotly figure placed in a section."""

    key: str
    figure: go.Figure
    height: int = 420


@dataclass
class Table:
    """Cells already formatted as text; a row class greys out a row (`small`)."""

    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    row_classes: Sequence[str] = ()
    caption: str = ""
    key: str = ""
    collapsed: bool = False  # inside a <details> block, for long tables


@dataclass
class Note:
    """A paragraph of plain text."""

    text: str


@dataclass
class Section:
    key: str
    title: str
    reading: str  # one line: what the section shows, in the methodology's words
    blocks: list[Figure | Table | Note] = field(default_factory=list)


# ---- figures ---------------------------------------------------------------------------------------


def layout(fig: go.Figure, **kw: object) -> go.Figure:
    """The report's margins and a legend under the plot, then the figure's own settings."""
    fig.update_layout(margin={"l": 60, "r": 20, "t": 40, "b": 50}, legend={"orientation": "h", "y": -0.18})
    fig.update_layout(**kw)
    return fig


# ---- number formats (ids and ns timestamps are printed bare: they are pasted into a WHERE) ----------


def num(v: Any) -> str:
    return "" if v is None else f"{int(v):,}"


def bare(v: Any) -> str:
    return "" if v is None else str(v)


def bps(v: Any, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def pct(v: Any, digits: int = 1) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}%"


def sci(v: Any) -> str:
    """p- and q-values in scientific notation: 2.9e-14, never 0.000; an exact 0 is below double precision."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return "< 1e-300" if v == 0 else f"{v:.2e}"


def fixed(v: Any, digits: int = 2) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def dollars(v: Any) -> str:
    """An amount in dollars, short: $1.23M, $456.7k, $89."""
    if v is None:
        return ""
    a = abs(v)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"${v / scale:.{2 if suffix != 'k' else 1}f}{suffix}"
    return f"${v:.0f}"


# ---- rendering ------------------------------------------------------------------------------------


def render(title: str, subtitle: str, intro: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole page: template + sections + the figures' JSON + plotly.js (once)."""
    figures: dict[str, Any] = {}
    body = []
    for section in sections:
        body.append(_section_html(section, figures))
    nav = "\n".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    template = pio.templates[TEMPLATE].to_plotly_json()
    data = json.dumps(
        {"template": template, "figures": figures}, cls=PlotlyJSONEncoder, separators=(",", ":")
    )
    page = Template(resources.files("dpsim.report").joinpath("template.html").read_text(encoding="utf-8"))
    return page.substitute(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        intro="\n".join(f"<p>{html.escape(p)}</p>" for p in intro),
        nav=nav,
        sections="\n".join(body),
        figures=data.replace("</", "<\\/"),  # a JSON string must not close its <script> block
        plotlyjs=get_plotlyjs(),
    )


def _section_html(section: Section, figures: dict[str, Any]) -> str:
    parts = [
        f'<section id="{section.key}" class="report-section">',
        f"<h2>{html.escape(section.title)}</h2>",
        f'<p class="reading">{html.escape(section.reading)}</p>',
    ]
    for block in section.blocks:
        if isinstance(block, Figure):
            fig_id = f"fig-{block.key}"
            spec = block.figure.to_plotly_json()
            spec["layout"].pop("template", None)
            spec["layout"].setdefault("height", block.height)
            figures[fig_id] = spec
            parts.append(f'<div class="plot" id="{fig_id}" style="height:{block.height}px"></div>')
        elif isinstance(block, Table):
            parts.append(_table_html(block))
        else:
            parts.append(f'<p class="note">{html.escape(block.text)}</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    rows = []
    for i, row in enumerate(t.rows):
        cls = t.row_classes[i] if i < len(t.row_classes) and t.row_classes[i] else ""
        cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        rows.append(f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>")
    key = f' data-table="{html.escape(t.key)}"' if t.key else ""
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    table = f"<table{key}>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    if t.collapsed:
        summary = html.escape(t.caption or "details")
        return f"<details><summary>{summary}</summary>{table}</details>"
    return table

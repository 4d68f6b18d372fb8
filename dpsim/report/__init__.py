"""`dpsim report`: the lake's answer as one self-contained HTML page, and one sweep's story.

The pages are built from the aggregates and results with the queries in dpsim/report/sql/, one function
per section (sections.py, per_sweep.py, detail.py, sweep.py) and one plain template (template.html);
page.py renders them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dpsim.config import Config
from dpsim.lake import Lake
from dpsim.report import page, sections, sweep
from dpsim.report.session import ReportSession, Selection

__all__ = ["Selection", "Written", "build_report", "build_sweep_report"]

WHOLE_LAKE = Selection()


@dataclass(frozen=True)
class Written:
    """What a report command wrote."""

    path: Path
    bytes: int
    sections: tuple[str, ...]
    figures: int
    seconds: float


def build_report(cfg: Config, lake: Lake, out: Path, selection: Selection = WHOLE_LAKE) -> Written:
    """The lake's report (docs: README, 'The report') written to `out`."""
    t0 = time.perf_counter()
    with ReportSession(cfg, lake, selection) as s:
        built = [fn(s) for fn in sections.SECTIONS]
        scenarios = ", ".join(s.scenarios)
    subtitle = (
        f"{lake.root} · {selection.describe()} · scenarios {scenarios} · written "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )
    intro = (
        "Would the dark-pool sweep orders have done better resting in ASX Centre Point? Each analysed "
        "sweep's real execution is compared with a replay in which its residual rested at the mid behind "
        "the real Centre Point queue. Implementation shortfall (IS) is the cost against the mid before "
        "the sweep arrived, of the filled part and of the unfilled part marked at the end (positive = "
        "cost, in bps); delta = simulated − real, so a negative delta means resting would have been cheaper.",
    )
    return _write(out, page.render("dpsim report: dark-pool sweeps", subtitle, intro, built), built, t0)


def build_sweep_report(
    cfg: Config, lake: Lake, order_id: int, out: Path, selection: Selection = WHOLE_LAKE
) -> Written:
    """One sweep's story (`dpsim report --sweep ORDER_ID`) written to `out`."""
    t0 = time.perf_counter()
    with ReportSession(cfg, lake, selection, aggregates=False) as s:
        title, subtitle, built = sweep.story(s, order_id)
    intro = (
        "One analysed sweep: its order events, the prevailing mid over its life, its real fills and the "
        "replay's simulated fills per scenario, the window it rested in, and its metrics side by side "
        "(real vs simulated path; docs/methodology.md).",
    )
    return _write(out, page.render(title, subtitle, intro, built), built, t0)


def _write(out: Path, text: str, built: list[page.Section], t0: float) -> Written:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    figures = sum(isinstance(b, page.Figure) for s in built for b in s.blocks)
    return Written(out, out.stat().st_size, tuple(s.key for s in built), figures, time.perf_counter() - t0)

"""The reports in a real browser: headless Debian Chromium (one session for the module) opens each page
from its file, with every network request refused, and checks that nothing logs an error, nothing is
fetched, every section is there, every plot has points and the screenshot is not blank.

Pages: the lake report and a sweep's story of the real DRR day, and the report of a generated multi-day
drop with a participants reference. `make screenshots` keeps the DRR pictures in docs/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import browser
from tests.conftest import run_dpsim

LAKE_SECTIONS = [
    "headline",
    "delta",
    "segments",
    "intraday",
    "scatter",
    "fill-curve",
    "participants",
    "spreads",
    "statistics",
    "quality",
]
SWEEP_SECTIONS = [
    "sweep-summary",
    "sweep-timeline",
    "sweep-window",
    "sweep-fills",
    "sweep-metrics",
    "sweep-events",
]
SWEEP = 7904794000132125755  # a midtick sweep that rested and filled while resting in the replay


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser.browser() as b:
        yield b


@pytest.fixture(scope="module")
def drop_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated drop: 3 securities x 3 days with reference files, shredded and processed by the CLI."""
    root = tmp_path_factory.mktemp("drop")
    raw, lake = root / "raw", root / "lake"
    run_dpsim("synth", "--out", str(raw), "--securities", "3", "--days", "3", "--start", "2024-10-01",
              "--seed", "7", "--scale", "30000")  # fmt: skip
    inputs = [
        a for k in ("orders", "trades", "nbbo", "participants") for a in (f"--{k}", str(raw / f"{k}.csv"))
    ]
    run_dpsim("shred", "--lake", str(lake), *inputs, "--reference", str(raw / "reference.csv"))
    run_dpsim("process", "--lake", str(lake), "--workers", "2")
    return lake


def check(v: browser.Visit, sections: list[str], n_plots: int) -> None:
    assert v.errors == []
    assert v.requests == [v.url]  # the file itself, nothing else
    assert v.sections == sections
    assert len(v.plots) == n_plots
    empty = [p["id"] for p in v.plots if not (p["traces"] and p["points"] and p["drawn"])]
    assert empty == [], f"plots without points: {empty}"
    assert not browser.blank(v.screenshot) and not browser.blank(v.full_screenshot)


def test_the_drr_report_in_a_browser(chromium: Any, drr_cli_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run_dpsim("report", "--lake", str(drr_cli_lake), "--out", str(out))
    v = browser.visit(chromium, out)
    check(v, LAKE_SECTIONS, 9)
    assert "Would resting in Centre Point have been cheaper?" in v.text
    browser.keep(v.screenshot, "report-drr.png")
    browser.keep(v.full_screenshot, "report-drr-full.png")


def test_a_drr_sweep_story_in_a_browser(chromium: Any, drr_cli_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.html"
    run_dpsim("report", "--lake", str(drr_cli_lake), "--sweep", str(SWEEP), "--out", str(out))
    v = browser.visit(chromium, out)
    check(v, SWEEP_SECTIONS, 2)
    assert f"dpsim sweep {SWEEP}" in v.text
    browser.keep(v.full_screenshot, "report-drr-sweep.png")


def test_a_generated_multi_day_report_in_a_browser(chromium: Any, drop_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    run_dpsim("report", "--lake", str(drop_lake), "--out", str(out))
    v = browser.visit(chromium, out)
    check(v, LAKE_SECTIONS, 9)
    assert "names from the participants reference" in v.text and "Participant 0" in v.text

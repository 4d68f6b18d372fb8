"""The real DRR day end to end through the CLI, and its v2 answer pinned.

The pipeline's tables equal an independent implementation of the rules on this day
(tests/steps/test_against_reference.py); this pins what the commands print and the README quotes:
the headline per scenario (real vs simulated implementation shortfall with its bootstrap interval and
the replay fidelity), the data-quality summary, and the fidelity misses by cause.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dpsim.config import load_config
from dpsim.lake import Lake
from dpsim.partition import lake_fidelity_misses
from dpsim.steps import fidelity

REPO = Path(__file__).resolve().parents[1]


def dpsim(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "dpsim", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def drr_lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    lake = tmp_path_factory.mktemp("drr") / "lake"
    dpsim("shred", "--config", "conf/drr.yaml", "--lake", str(lake))
    out = dpsim("process", "--config", "conf/drr.yaml", "--lake", str(lake), "--workers", "1").stdout
    return lake, out


def rows(lake: Path, name: str) -> list[dict[str, Any]]:
    return pq.read_table(lake / "aggregates" / f"{name}.parquet").to_pylist()


# scenario -> (world, real IS, simulated IS, delta, CI low, CI high, share of rested quantity filled)
HEADLINE = {
    "baseline": ("plausible", 2.88, 3.64, 0.77, 0.34, 1.19, 0.0002),
    "midtick": ("plausible", 2.88, 3.07, 0.19, -0.26, 0.59, 0.0579),
    "half_cap": ("sensitivity", 2.88, 3.65, 0.77, 0.34, 1.19, 0.0003),
    "impact_5bps": ("sensitivity", 2.88, 3.68, 0.80, 0.36, 1.22, 0.0002),
    "order_life": ("sensitivity", 2.88, 3.86, 0.98, 0.69, 1.31, 0.0002),
    "ignore_limit": ("bound", 2.88, 3.23, 0.35, -0.49, 1.13, 0.4103),
    "no_queue": ("bound", 2.88, 3.68, 0.80, 0.34, 1.26, 0.0002),
}


def test_the_headline_of_the_drr_day(drr_lake: tuple[Path, str]) -> None:
    lake, out = drr_lake
    got = {r["scenario"]: r for r in rows(lake, "headline")}
    assert set(got) == set(HEADLINE)
    for scenario, (world, real, sim, delta, low, high, rested) in HEADLINE.items():
        r = got[scenario]
        assert r["world"] == world
        assert (r["n_sweeps"], r["n_with_delta"], r["ci_unit"], r["n_clusters"]) == (
            4100,
            4100,
            "sweep",
            4100,
        )
        assert r["delta_is_bps"] == pytest.approx(r["sim_is_bps"] - r["real_is_bps"], abs=1e-12)
        figures = (r["real_is_bps"], r["sim_is_bps"], r["delta_is_bps"], r["ci_low"], r["ci_high"])
        assert figures == pytest.approx((real, sim, delta, low, high), abs=0.005), scenario
        assert r["sim_rested_fill_ratio"] == pytest.approx(rested, abs=0.00005), scenario
        assert r["fidelity_mean"] == pytest.approx(206_596 / 220_588)
    # the terminal shows the headline, the paired test and the data quality
    assert "Would resting in Centre Point have been cheaper?" in out
    assert "0.77 [0.34, 1.19]" in out and "93.7%" in out
    assert "e-1" in out  # p-values in scientific notation


def test_the_quality_summary_of_the_drr_day(drr_lake: tuple[Path, str]) -> None:
    lake, _ = drr_lake
    (q,) = rows(lake, "quality_summary")
    assert (q["n_partitions"], q["n_open_from_auction"], q["first_open"]) == (1, 1, 1_725_494_536_001_032_398)
    assert (
        q["n_sweeps"],
        q["n_sweeps_analysed"],
        q["n_sweeps_outside_session"],
        q["n_sweeps_without_mid"],
    ) == (
        4207,
        4100,
        107,
        0,
    )
    quotes = (
        q["n_quotes"],
        q["n_usable_quotes"],
        q["n_stale_quotes"],
        q["n_locked_quotes"],
        q["n_crossed_quotes"],
    )
    assert quotes == (380, 297, 13, 70, 0)
    assert (q["quantity_dark"], q["quantity_booking"]) == (244_375, 306_887)


def test_the_fidelity_misses_of_the_drr_day(drr_lake: tuple[Path, str]) -> None:
    """docs/methodology.md §9's table: the misses add up to real − reproduced, by cause."""
    lake, _ = drr_lake
    cfg = load_config(REPO / "conf/drr.yaml", {"lake": str(lake)})
    misses = lake_fidelity_misses(Lake(lake), cfg, Lake(lake).partitions("orders"))
    assert int(misses["missed_quantity"].sum()) == 220_588 - 206_596
    by_cause = {r["cause"]: r["missed_quantity"] for r in misses.group_by("cause").sum().to_dicts()}
    assert by_cause == {
        fidelity.BOTH_RESTING_UNQUOTED: 7083,
        fidelity.LIMIT: 2518,
        fidelity.PRIORITY: 2395,
        fidelity.BOTH_RESTING_QUOTED: 1383,
        fidelity.MAQ: 592,
        fidelity.AMENDED: 21,
    }
    out = dpsim("fidelity", "--config", "conf/drr.yaml", "--lake", str(lake)).stdout
    assert "13,992" in out and "50.6%" in out


def test_the_optional_rematch_rule_raises_fidelity(drr_lake: tuple[Path, str]) -> None:
    lake, _ = drr_lake
    cfg = load_config(REPO / "conf/drr.yaml", {"lake": str(lake), "replay.rematch_on_quote": True})
    misses = lake_fidelity_misses(Lake(lake), cfg, Lake(lake).partitions("orders"))
    # 207,615 of 220,588 reproduced: the quotes in the feed that let two resting orders meet now do
    assert int(misses["missed_quantity"].sum()) == 220_588 - 207_615

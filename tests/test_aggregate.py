"""Aggregates and stats_tests on a hand-built lake: 2 securities × 2 dates × 2 scenarios, 8 sweeps.

Every expected figure is worked out by hand from the tables below (see each test's comments).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy import stats as sps

from dpsim import stats
from dpsim.aggregate import AGGREGATES, STATS_METRICS, headline, run_aggregates
from dpsim.config import Aggregate, Config
from dpsim.lake import Lake, PartitionKey
from dpsim.schema import REPLAY_FIDELITY, sim_orders_schema, sweeps_schema
from tests.lakes import write_scenario_results

HORIZONS = (1.0, 5.0, 60.0)
D1, D2 = date(2024, 9, 5), date(2024, 9, 6)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "aggregates.md"

# Real execution, one row per sweep. Prices in thousandths of a dollar: security 101 trades near 1000,
# 202 near 2000, so notional weights (Q · mid) differ from share weights. IS = (filled·AC + unfilled·OC)/Q.
# fmt: off
SWEEPS = [
    # oid sec  date part  Q      mid     group      qual   filled dark  lit    vwap    AC    OC     IS     ES   es_notional  vwte  size      time
    (1, 101, D1, 7,  1000,  1000.0, "full",    True,  1000,  200,  800,   1001.0, 10.0, None,  10.0,  2.0, 1_001_000.0, 1.0,  "small",  "morning"),
    (2, 101, D1, 8,  500,   1000.0, "partial", False, 250,   250,  0,     1000.0, 0.0,  20.0,  10.0,  0.0, 250_000.0,   3.0,  "small",  "midday"),
    (3, 101, D2, 7,  2000,  1000.0, "full",    True,  2000,  0,    2000,  1002.0, 20.0, None,  20.0,  4.0, 2_004_000.0, 0.5,  "medium", "morning"),
    (4, 101, D2, 7,  100,   1000.0, "none",    False, 0,     0,    0,     None,   None, -10.0, -10.0, None, 0.0,        None, "tiny",   "afternoon"),
    (5, 202, D1, 8,  300,   2000.0, "full",    True,  300,   100,  200,   2001.0, 5.0,  None,  5.0,   1.0, 600_300.0,   2.0,  "small",  "midday"),
    (6, 202, D1, 10, 4000,  2000.0, "partial", False, 1000,  0,    1000,  2002.0, 10.0, 5.0,   6.25,  2.0, 2_002_000.0, 4.0,  "medium", "morning"),
    (7, 202, D2, 8,  50,    None,   "none",    False, 0,     0,    0,     None,   None, None,  None,  None, 0.0,        None, "tiny",   "midday"),
    (8, 202, D2, 9,  20000, 2000.0, "full",    True,  20000, 5000, 15000, 2003.0, 15.0, None,  15.0,  3.0, 40_060_000.0, 10.0, "large", "afternoon"),
]
# Simulation per scenario: oid -> (rested, sim filled, of it resting, of it incoming, sim vwap, sim AC,
# sim IS, sim ES, sim es_notional, sim VWTE, set). half_cap has no row for sweep 8 (a missing partition
# result: n_without_sim = 1). sim fill ratio = sim filled / Q.
SIM = {
    "baseline": {
        1: (800,   600,  500,  100,  1000.0, 0.0,   4.0,   0.0,   600_000.0,    2.0,  "both"),
        2: (250,   0,    0,    0,    None,   None,  12.0,  None,  0.0,          None, "real_only"),
        3: (2000,  1000, 1000, 0,    1000.0, 0.0,   5.0,   0.0,   1_000_000.0,  5.0,  "both"),
        4: (100,   100,  100,  0,    999.0,  -10.0, -10.0, -20.0, 99_900.0,     1.0,  "sim_only"),
        5: (200,   150,  150,  0,    2002.0, 10.0,  7.0,   2.0,   300_300.0,    1.5,  "both"),
        6: (3000,  3000, 2000, 1000, 2000.0, 0.0,   2.0,   0.0,   6_000_000.0,  6.0,  "both"),
        7: (50,    0,    0,    0,    None,   None,  None,  None,  0.0,          None, "neither"),
        8: (15000, 5000, 5000, 0,    2004.0, 20.0,  12.0,  4.0,   10_020_000.0, 20.0, "both"),
    },
    "half_cap": {
        1: (400,  400,  400,  0, 1000.0, 0.0,  6.0,   0.0,  400_000.0,   1.0,  "both"),
        2: (125,  0,    0,    0, None,   None, 11.0,  None, 0.0,         None, "real_only"),
        3: (1000, 1000, 1000, 0, 1001.0, 10.0, 15.0,  2.0,  1_001_000.0, 2.0,  "both"),
        4: (50,   0,    0,    0, None,   None, -10.0, None, 0.0,         None, "neither"),
        5: (150,  150,  150,  0, 2000.0, 0.0,  3.0,   0.0,  300_000.0,   1.0,  "both"),
        6: (1500, 1500, 1500, 0, 2000.0, 0.0,  4.0,   0.0,  3_000_000.0, 3.0,  "both"),
        7: (25,   0,    0,    0, None,   None, None,  None, 0.0,         None, "neither"),
    },
}
# Reality replay per partition: (real CP quantity, reproduced quantity); 202/D1 had no real CP execution.
FIDELITY = {(101, D1): (1000, 900), (101, D2): (500, 500), (202, D1): (0, 0), (202, D2): (2000, 1000)}
# fmt: on


def _real(s: tuple[Any, ...]) -> dict[str, Any]:
    """The real metrics of a SWEEPS row by name (what stats_tests compares)."""
    return {
        "implementation_shortfall_bps": s[14],
        "arrival_cost_bps": s[12],
        "effective_spread_bps": s[15],
        "fill_ratio": s[8] / s[4],
        "vw_exec_time_s": s[17],
    }


def _sim(s: tuple[Any, ...], sim: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "implementation_shortfall_bps": sim[6],
        "arrival_cost_bps": sim[5],
        "effective_spread_bps": sim[7],
        "fill_ratio": sim[1] / s[4],
        "vw_exec_time_s": sim[9],
    }


def _delta(real: Any, sim: Any) -> float | None:
    return None if real is None or sim is None else float(sim) - float(real)


def build_lake(root: Path) -> Lake:
    """Write SWEEPS, SIM and FIDELITY as result partitions (keys in the hive path only, as process does)."""
    lake = Lake(root)
    sweep_schema = sweeps_schema(HORIZONS)
    sim_schema = sim_orders_schema(HORIZONS)
    for sec, day in {(s[1], s[2]) for s in SWEEPS}:
        key = PartitionKey(sec, day)
        rows = [s for s in SWEEPS if (s[1], s[2]) == (sec, day)]
        cols: dict[str, list[Any]] = {
            "order_id": [r[0] for r in rows],
            "side": [1 for _ in rows],
            "participantid": [r[3] for r in rows],
            "order_quantity": [r[4] for r in rows],
            "arrival_mid": [r[5] for r in rows],
            "group": [r[6] for r in rows],
            "qualifying": [r[7] for r in rows],
            "filled_quantity": [r[8] for r in rows],
            "filled_dark": [r[9] for r in rows],
            "filled_lit": [r[10] for r in rows],
            "filled_auction": [0 for _ in rows],
            "filled_reported": [0 for _ in rows],
            "booking_quantity": [0 for _ in rows],
            "unfilled_quantity": [r[4] - r[8] for r in rows],
            "vwap": [r[11] for r in rows],
            "fill_ratio": [r[8] / r[4] for r in rows],
            "arrival_cost_bps": [r[12] for r in rows],
            "opportunity_cost_bps": [r[13] for r in rows],
            "implementation_shortfall_bps": [r[14] for r in rows],
            "effective_spread_bps": [r[15] for r in rows],
            "spread_notional": [r[16] for r in rows],
            "vw_exec_time_s": [r[17] for r in rows],
            "size_bucket": [r[18] for r in rows],
            "time_bucket": [r[19] for r in rows],
        }
        lake.write_parquet(_table(sweep_schema, cols, len(rows)), lake.result_path("sweeps", key))
        real_q, reproduced = FIDELITY[(sec, day)]
        fidelity: dict[str, list[Any]] = {
            "real_cp_quantity": [real_q],
            "reproduced_quantity": [reproduced],
            "fidelity": [reproduced / real_q if real_q else None],
        }
        lake.write_parquet(_table(REPLAY_FIDELITY, fidelity, 1), lake.result_path("replay_fidelity", key))
        sim_tables = {}
        for scenario, sims in SIM.items():
            sim_rows = [(r, sims[r[0]]) for r in rows if r[0] in sims]
            sim_cols: dict[str, list[Any]] = {
                "order_id": [r[0] for r, _ in sim_rows],
                "sim_quantity": [m[0] for _, m in sim_rows],
                "sim_filled_quantity": [m[1] for _, m in sim_rows],
                "sim_filled_resting": [m[2] for _, m in sim_rows],
                "sim_filled_incoming": [m[3] for _, m in sim_rows],
                "sim_fill_ratio": [m[1] / r[4] for r, m in sim_rows],
                "sim_vwap": [m[4] for _, m in sim_rows],
                "sim_arrival_cost_bps": [m[5] for _, m in sim_rows],
                "sim_implementation_shortfall_bps": [m[6] for _, m in sim_rows],
                "sim_effective_spread_bps": [m[7] for _, m in sim_rows],
                "sim_spread_notional": [m[8] for _, m in sim_rows],
                "sim_vw_exec_time_s": [m[9] for _, m in sim_rows],
                "set": [m[10] for _, m in sim_rows],
            }
            for metric in STATS_METRICS:
                sim_cols[f"delta_{metric}"] = [
                    _delta(_real(r)[metric], _sim(r, m)[metric]) for r, m in sim_rows
                ]
            sim_tables[scenario] = _table(sim_schema, sim_cols, len(sim_rows))
        write_scenario_results(lake, "sim_orders", key, sim_tables)
    return lake


def _table(schema: pa.Schema, cols: dict[str, list[Any]], n: int) -> pa.Table:
    """A table of `schema` with the given columns and nulls elsewhere."""
    return pa.table({f.name: pa.array(cols.get(f.name, [None] * n), f.type) for f in schema}, schema=schema)


@pytest.fixture(scope="module")
def aggregated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Lake, dict[str, pa.Table]]:
    lake = build_lake(tmp_path_factory.mktemp("agg") / "lake")
    cfg = Config(
        lake=str(lake.root),
        scenarios={"baseline": Config().scenarios["baseline"], "half_cap": Config().scenarios["half_cap"]},
    )
    return lake, run_aggregates(cfg, lake)


def rows_of(table: pa.Table, **where: Any) -> list[dict[str, Any]]:
    return [r for r in table.to_pylist() if all(r[k] == v for k, v in where.items())]


SCENARIOS = ("baseline", "half_cap")
SEGMENTS = {  # segment_type -> the segment values of the fixture
    "overall": ["all"],
    "security": ["101", "202"],
    "date": ["2024-09-05", "2024-09-06"],
    "participant": ["10", "7", "8", "9"],  # text: sorted as strings
    "time_bucket": ["afternoon", "midday", "morning"],
    "size_bucket": ["large", "medium", "small", "tiny"],
    "group": ["full", "none", "partial"],
}


def test_global_summary_by_hand(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    (base,) = rows_of(tables["global_summary"], scenario="baseline")
    # counts: full 1,3,5,8; partial 2,6; none 4,7; qualifying = the full ones here; 7 has no arrival mid
    assert (base["n_sweeps"], base["n_full"], base["n_partial"], base["n_none"], base["n_qualifying"]) == (
        8,
        4,
        2,
        2,
        4,
    )
    assert (base["n_with_mid"], base["n_with_delta"]) == (7, 7)
    # Q: 1000+500+2000+100+300+4000+50+20000 ; filled 1000+250+2000+300+1000+20000 ; dark 200+250+100+5000
    assert (base["order_quantity"], base["filled_quantity"], base["filled_dark"], base["filled_lit"]) == (
        27950,
        24550,
        5550,
        19000,
    )
    # notional Σ Q·mid without sweep 7: 1e6 + 5e5 + 2e6 + 1e5 + 6e5 + 8e6 + 4e7
    assert base["notional"] == pytest.approx(52.2e6)
    # rested 800+250+2000+100+200+3000+50+15000 ; sim filled 600+1000+100+150+3000+5000 ; resting 500+1000+100+150+2000+5000
    assert (base["sim_quantity"], base["sim_filled_quantity"], base["sim_filled_resting"]) == (
        21400,
        9850,
        8750,
    )
    assert base["sim_filled_incoming"] == 1100
    assert base["fill_ratio"] == pytest.approx(24550 / 27950)
    assert base["sim_fill_ratio"] == pytest.approx(9850 / 27950)
    # the share of what RESTED that filled while resting: incoming-role fills are not fills of what rested
    assert base["sim_rested_fill_ratio"] == pytest.approx(8750 / 21400)
    assert base["share_filled_dark"] == pytest.approx(5550 / 24550)
    # arrival cost weighted by fill notional filled·vwap: 1,001,000 ; 250,000 ; 2,004,000 ; 600,300 ;
    # 2,002,000 ; 40,060,000 (Σ 45,917,300); Σ w·AC = 10,010,000 + 0 + 40,080,000 + 3,001,500 + 20,020,000
    # + 600,900,000 = 674,011,500
    assert base["nw_arrival_cost_bps"] == pytest.approx(674_011_500 / 45_917_300)
    # opportunity cost weighted by unfilled·mid: 2: 250,000 (20) ; 4: 100,000 (−10) ; 6: 6,000,000 (5)
    assert base["nw_opportunity_cost_bps"] == pytest.approx((5e6 - 1e6 + 30e6) / 6.35e6)
    # IS weighted by Q·mid: Σ w·IS = 10e6 + 5e6 + 40e6 − 1e6 + 3e6 + 50e6 + 600e6 = 707e6 over 52.2e6
    assert base["nw_implementation_shortfall_bps"] == pytest.approx(707 / 52.2)
    # sim IS: 4e6 + 6e6 + 10e6 − 1e6 + 4.2e6 + 16e6 + 480e6 = 519.2e6 ; delta = sim − real
    assert base["nw_sim_implementation_shortfall_bps"] == pytest.approx(519.2 / 52.2)
    assert base["nw_delta_implementation_shortfall_bps"] == pytest.approx((519.2 - 707) / 52.2)
    # effective spread weighted by its fills' notional: 2,002,000 + 0 + 8,016,000 + 600,300 + 4,004,000
    # + 120,180,000 = 134,802,300 over the same 45,917,300
    assert base["nw_effective_spread_bps"] == pytest.approx(134_802_300 / 45_917_300)
    # VWTE share-weighted: 1·1000 + 3·250 + 0.5·2000 + 2·300 + 4·1000 + 10·20000 = 207350
    assert base["vw_exec_time_s"] == pytest.approx(207350 / 24550)
    # IS deltas: −6, 2, −15, 0, 2, −4.25, (7 none), −3 -> mean −24.25/7, median −3
    assert base["mean_delta_implementation_shortfall_bps"] == pytest.approx(-24.25 / 7)
    assert base["median_delta_implementation_shortfall_bps"] == pytest.approx(-3.0)
    assert (
        base["n_both"],
        base["n_real_only"],
        base["n_sim_only"],
        base["n_neither"],
        base["n_without_sim"],
    ) == (5, 1, 1, 1, 0)
    # fidelity over the 4 partitions: lowest 0.5 (202/D2); Σ reproduced / Σ real = 2400 / 3500
    assert (base["n_partitions"], base["fidelity_min"]) == (4, 0.5)
    assert base["fidelity_mean"] == pytest.approx(2400 / 3500)
    (half,) = rows_of(tables["global_summary"], scenario="half_cap")
    # real figures do not depend on the scenario; sweep 8 has no half_cap row
    assert (half["n_sweeps"], half["filled_quantity"], half["nw_arrival_cost_bps"]) == (
        8,
        24550,
        base["nw_arrival_cost_bps"],
    )
    assert (
        half["n_both"],
        half["n_real_only"],
        half["n_sim_only"],
        half["n_neither"],
        half["n_without_sim"],
    ) == (4, 1, 0, 2, 1)
    # rested 400+125+1000+50+150+1500+25 ; filled 400+1000+150+1500 ; sim_fill_ratio over sweeps with a row
    assert (half["sim_quantity"], half["sim_filled_quantity"]) == (3250, 3050)
    assert half["sim_fill_ratio"] == pytest.approx(3050 / (27950 - 20000))


def test_by_security_by_hand(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    by_sec = tables["by_security"]
    assert by_sec.column_names[:3] == ["scenario", "security_code", "n_sweeps"]
    assert [(r["scenario"], r["security_code"]) for r in by_sec.to_pylist()] == [
        ("baseline", 101),
        ("baseline", 202),
        ("half_cap", 101),
        ("half_cap", 202),
    ]
    (s101,) = rows_of(by_sec, scenario="baseline", security_code=101)  # sweeps 1-4
    assert (s101["n_sweeps"], s101["n_full"], s101["n_partial"], s101["n_none"]) == (4, 2, 1, 1)
    assert (s101["order_quantity"], s101["filled_quantity"], s101["filled_dark"]) == (3600, 3250, 450)
    assert (s101["sim_quantity"], s101["sim_filled_quantity"]) == (3150, 1700)
    # IS: (10e6 + 5e6 + 40e6 − 1e6) / 3.6e6 ; sim (4e6 + 6e6 + 10e6 − 1e6) / 3.6e6
    assert s101["nw_implementation_shortfall_bps"] == pytest.approx(54 / 3.6)
    assert s101["nw_delta_implementation_shortfall_bps"] == pytest.approx((19 - 54) / 3.6)
    # partitions 101/D1 (900 of 1000) and 101/D2 (500 of 500)
    assert (s101["n_partitions"], s101["fidelity_min"]) == (2, 0.9)
    assert s101["fidelity_mean"] == pytest.approx(1400 / 1500)
    (s202,) = rows_of(by_sec, scenario="baseline", security_code=202)  # sweeps 5-8
    assert s202["share_filled_dark"] == pytest.approx(5100 / 21300)
    # 202/D1 had no real CP execution: its fidelity is null, and Σ real = 2000
    assert (s202["fidelity_min"], s202["fidelity_mean"]) == (0.5, 0.5)
    (h202,) = rows_of(by_sec, scenario="half_cap", security_code=202)
    assert (h202["n_sweeps"], h202["n_without_sim"], h202["sim_quantity"]) == (4, 1, 150 + 1500 + 25)


def test_notional_weights_are_not_share_weights(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    """Two securities priced 1000 and 2000: a share-weighted mean would give each share the same say."""
    _, tables = aggregated
    (base,) = rows_of(tables["global_summary"], scenario="baseline")
    share_weighted = sum(s[4] * s[14] for s in SWEEPS if s[14] is not None) / sum(
        s[4] for s in SWEEPS if s[14] is not None
    )
    assert base["nw_implementation_shortfall_bps"] != pytest.approx(share_weighted)


@pytest.mark.parametrize("name", [n for n in AGGREGATES if n.startswith("by_")])
def test_segments_add_up_to_the_global_summary(
    aggregated: tuple[Lake, dict[str, pa.Table]], name: str
) -> None:
    _, tables = aggregated
    for g in tables["global_summary"].to_pylist():
        rows = rows_of(tables[name], scenario=g["scenario"])
        for col in (
            "n_sweeps",
            "n_full",
            "n_both",
            "n_without_sim",
            "order_quantity",
            "filled_quantity",
            "sim_filled_quantity",
            "sim_filled_resting",
        ):
            assert sum(r[col] or 0 for r in rows) == g[col], (name, col)
        # notional-weighted means recombine with their weights
        total = sum(r["notional"] or 0 for r in rows)
        assert total == pytest.approx(g["notional"])


def test_headline_by_hand_and_its_bootstrap(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    (base,) = rows_of(tables["headline"], scenario="baseline")
    # same sweeps (the 7 with a delta) and weights on both sides, so delta = sim − real exactly
    assert (base["world"], base["n_sweeps"], base["n_with_delta"]) == ("plausible", 8, 7)
    assert base["real_is_bps"] == pytest.approx(707 / 52.2)
    assert base["sim_is_bps"] == pytest.approx(519.2 / 52.2)
    assert base["delta_is_bps"] == pytest.approx(base["sim_is_bps"] - base["real_is_bps"])
    assert base["sim_rested_fill_ratio"] == pytest.approx(8750 / 21400)
    assert (base["fidelity_min"], base["n_partitions"]) == (0.5, 4)
    # 4 partitions < 20: the clusters are the 7 sweeps, in (security, date, order_id) order
    assert (base["ci_unit"], base["n_clusters"]) == ("sweep", 7)
    w = np.array([1e6, 5e5, 2e6, 1e5, 6e5, 8e6, 4e7])
    wd = w * np.array([-6.0, 2.0, -15.0, 0.0, 2.0, -4.25, -3.0])
    rng = np.random.default_rng(Config().stats.bootstrap_seed)
    means = []
    for _ in range(Config().stats.bootstrap_n):
        idx = rng.integers(0, 7, size=7)
        means.append(wd[idx].sum() / w[idx].sum())
    low, high = np.percentile(means, [2.5, 97.5])
    assert (base["ci_low"], base["ci_high"]) == pytest.approx((low, high), rel=1e-12)
    assert base["ci_low"] <= base["delta_is_bps"] <= base["ci_high"]
    (half,) = rows_of(tables["headline"], scenario="half_cap")
    assert (half["world"], half["n_with_delta"]) == ("sensitivity", 6)  # 7 has no mid, 8 no half_cap row


def test_bootstrap_is_reproducible_from_its_seed() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])
    wd = w * np.array([1.0, -2.0, 3.0, 0.5])
    a = stats.cluster_bootstrap_ci(w, wd, 500, seed=7)
    assert stats.cluster_bootstrap_ci(w, wd, 500, seed=7) == a
    assert stats.cluster_bootstrap_ci(w, wd, 500, seed=8) != a
    assert stats.cluster_bootstrap_ci(np.array([]), np.array([]), 500, seed=7).low is None


def test_bootstrap_equals_resampling_draw_by_draw() -> None:
    """The draws' sums come from counts of each cluster per draw (a matrix product); they must equal summing
    each draw's picks in turn, over chunks of draws (3,000 clusters: 333 draws a chunk) and with a NaN or an
    infinite cluster counting only in the draws that take it."""
    rng = np.random.default_rng(11)
    for n, bad in ((3_000, None), (40, np.nan), (40, np.inf)):
        w, wd = rng.uniform(1, 5, n), rng.normal(0, 3, n)
        if bad is not None:
            wd[5] = bad
        draws = np.random.default_rng(7)
        means = []
        for _ in range(500):
            idx = draws.integers(0, n, size=n)
            means.append(wd[idx].sum() / w[idx].sum())
        ci = stats.cluster_bootstrap_ci(w, wd, 500, seed=7)
        low, high = np.nanpercentile(means, [2.5, 97.5])
        assert (ci.low, ci.high) == pytest.approx((low, high), rel=1e-12, nan_ok=True)


def test_scenarios_with_as_many_clusters_share_the_draws_and_get_their_own_intervals() -> None:
    """The headline bootstraps every scenario at once: the draws depend on the seed and the cluster count
    only, so each scenario's interval is exactly the one it gets alone (9,000 clusters: two chunks of draws;
    the first and the last share their weights, as scenarios do when the same sweeps hold a delta)."""
    rng = np.random.default_rng(3)
    samples = [(rng.uniform(1, 5, n), rng.normal(0, 3, n)) for n in (9_000, 4, 9_000, 0, 4)]
    samples.append((samples[0][0].copy(), rng.normal(0, 3, 9_000)))
    together = stats.cluster_bootstrap_cis(samples, 500, seed=7)
    assert together == [stats.cluster_bootstrap_ci(w, wd, 500, seed=7) for w, wd in samples]
    assert together[0] != together[2] and together[3].low is None


def test_files_csv_copies_and_catalog_views(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    lake, tables = aggregated
    con = duckdb.connect(str(lake.catalog_path), read_only=True)
    try:
        for name in AGGREGATES:
            assert pq.read_table(lake.aggregates_dir / f"{name}.parquet").equals(tables[name])
            csv = pacsv.read_csv(lake.aggregates_dir / f"{name}.csv")
            assert csv.column_names == tables[name].column_names
            assert csv.num_rows == tables[name].num_rows
            assert con.execute(f"SELECT count(*) FROM {name}").fetchone() == (tables[name].num_rows,)
    finally:
        con.close()


def test_stats_tests_has_a_row_for_every_test(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    st = tables["stats_tests"]
    assert st.schema.names[:5] == ["scenario", "family", "segment_type", "segment", "metric"]
    got = {(r["scenario"], r["segment_type"], r["segment"], r["metric"]) for r in st.to_pylist()}
    want = {
        (sc, seg_type, seg, m)
        for sc in SCENARIOS
        for seg_type, segs in SEGMENTS.items()
        for seg in segs
        for m in STATS_METRICS
    }
    assert got == want and st.num_rows == len(want) == 2 * 19 * 5
    assert {r["family"] for r in st.to_pylist()} == {f"{sc}/{m}" for sc in SCENARIOS for m in STATS_METRICS}
    # sorted by scenario, metric, then segment type in the documented order
    first = rows_of(st, scenario="baseline", metric=STATS_METRICS[0])
    assert [(r["segment_type"], r["segment"]) for r in first] == [
        (t, s) for t, segs in SEGMENTS.items() for s in segs
    ]
    assert st.slice(0, len(first)).to_pylist() == first
    # participant 10 has one sweep; in half_cap, participant 9's only sweep has no simulation at all
    (p10,) = rows_of(st, scenario="baseline", segment_type="participant", segment="10", metric="fill_ratio")
    assert (p10["n"], p10["note"], p10["t"], p10["p_value_t"], p10["p_value_wilcoxon"]) == (
        1,
        "n < 2",
        None,
        None,
        None,
    )
    (p9,) = rows_of(
        st, scenario="half_cap", segment_type="participant", segment="9", metric="arrival_cost_bps"
    )
    assert (p9["n"], p9["n_excluded"], p9["mean_diff"], p9["note"]) == (0, 1, None, "n < 2")


def test_zero_variance_is_reported(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    # half_cap, group none: sweep 4 (IS −10 both ways) and 7 (no IS): one pair, then size bucket tiny
    # has the same single pair; group none in half_cap for fill_ratio: 4 and 7 filled 0 both ways
    (row,) = rows_of(
        tables["stats_tests"], scenario="half_cap", segment_type="group", segment="none", metric="fill_ratio"
    )
    assert (row["n"], row["n_nonzero"], row["mean_diff"], row["sd_diff"]) == (2, 0, 0.0, 0.0)
    assert (row["t"], row["p_value_t"], row["ci_low"], row["cohens_d"], row["p_value_wilcoxon"]) == (
        None,
    ) * 5
    assert row["note"] == "zero variance of differences"


def _pairs(scenario: str, segment_type: str, segment: str, metric: str) -> tuple[list[float], list[float]]:
    """Complete (real, sim) pairs of a test, straight from the fixture tables."""
    real, sim = [], []
    for s in SWEEPS:
        segments = {
            "overall": "all",
            "security": str(s[1]),
            "date": s[2].isoformat(),
            "participant": str(s[3]),
            "time_bucket": s[19],
            "size_bucket": s[18],
            "group": s[6],
        }
        sim_row = SIM[scenario].get(s[0])
        if segments[segment_type] != segment or sim_row is None:
            continue
        rv, sv = _real(s)[metric], _sim(s, sim_row)[metric]
        if rv is not None and sv is not None:
            real.append(float(rv))
            sim.append(float(sv))
    return real, sim


def test_stats_match_scipy(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    checked = 0
    for row in tables["stats_tests"].to_pylist():
        real, sim = _pairs(row["scenario"], row["segment_type"], row["segment"], row["metric"])
        assert row["n"] == len(real)
        if row["note"] is not None:
            continue
        res = sps.ttest_rel(sim, real)
        ci = res.confidence_interval(0.95)
        diffs = np.array(sim) - np.array(real)
        assert row["mean_real"] == pytest.approx(np.mean(real))
        assert row["mean_sim"] == pytest.approx(np.mean(sim))
        assert row["mean_diff"] == pytest.approx(diffs.mean())
        assert row["sd_diff"] == pytest.approx(diffs.std(ddof=1))
        assert row["n_nonzero"] == int(np.count_nonzero(diffs))
        assert row["t"] == pytest.approx(res.statistic)
        assert row["p_value_t"] == pytest.approx(res.pvalue)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))
        assert row["cohens_d"] == pytest.approx(diffs.mean() / diffs.std(ddof=1))
        if np.any(diffs != 0):
            assert row["p_value_wilcoxon"] == pytest.approx(sps.wilcoxon(diffs).pvalue)
        checked += 1
    assert checked > 50


def test_q_values_are_benjamini_hochberg_per_family(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    """One family per (scenario, metric): every segment row's t and Wilcoxon p-values together."""
    _, tables = aggregated
    rows = tables["stats_tests"].to_pylist()
    for family in {r["family"] for r in rows}:
        members = [r for r in rows if r["family"] == family]
        tagged = [(r, "t") for r in members if r["p_value_t"] is not None]
        tagged += [(r, "wilcoxon") for r in members if r["p_value_wilcoxon"] is not None]
        expected = sps.false_discovery_control([r[f"p_value_{k}"] for r, k in tagged], method="bh")
        assert [r[f"q_value_{k}"] for r, k in tagged] == pytest.approx(list(expected)), family
        for r in members:
            for k in ("t", "wilcoxon"):
                assert (r[f"q_value_{k}"] is None) == (r[f"p_value_{k}"] is None)


def test_headline(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    lake, _ = aggregated
    summary, tests, quality = headline(lake)
    assert summary["scenario"].to_pylist() == ["baseline", "half_cap"]
    assert summary["n_with_delta"].to_pylist() == [7, 6]
    assert [(r["scenario"], r["metric"]) for r in tests.to_pylist()] == [
        (sc, "implementation_shortfall_bps") for sc in SCENARIOS
    ]
    assert quality.num_rows == 1


def test_headline_before_aggregate_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"no aggregates yet: run `dpsim aggregate --lake .*` first"):
        headline(Lake(tmp_path))


def _docs_query(marker: str) -> str:
    """The ```sql block that follows `marker` in docs/aggregates.md."""
    text = DOCS.read_text(encoding="utf-8")
    m = re.search(re.escape(marker) + r".*?```sql\n(.*?)```", text, re.S)
    assert m, f"no sql block after {marker!r} in {DOCS}"
    return m.group(1)


def test_docs_query_reproduces_by_security_with_plain_duckdb(
    aggregated: tuple[Lake, dict[str, pa.Table]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, tables = aggregated
    monkeypatch.chdir(tmp_path)  # the catalog must not depend on the working directory
    con = duckdb.connect(str(lake.catalog_path.resolve()), read_only=True)
    try:
        got = con.sql(_docs_query("<!-- by_security from sweeps -->")).to_arrow_table()
    finally:
        con.close()
    want = tables["by_security"].select(got.column_names)
    assert got.num_rows == want.num_rows
    for g, w in zip(got.to_pylist(), want.to_pylist(), strict=True):
        assert g == pytest.approx(w)


def test_docs_describe_every_aggregate_column(aggregated: tuple[Lake, dict[str, pa.Table]]) -> None:
    _, tables = aggregated
    text = DOCS.read_text(encoding="utf-8")
    for name, table in tables.items():
        assert f"`{name}`" in text, name
        for col in table.column_names:
            base = re.sub(r"_delta_.*", "_delta_<m>", col)
            assert f"`{col}`" in text or f"`{base}`" in text, (name, col)


def test_an_empty_lake_gives_empty_aggregates(tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.root.mkdir()
    tables = run_aggregates(Config(lake=str(lake.root)), lake)
    assert set(tables) == set(AGGREGATES)
    assert all(t.num_rows == 0 for name, t in tables.items() if name != "quality_summary")
    assert tables["quality_summary"].to_pylist()[0]["n_partitions"] == 0  # one row: a count of nothing
    assert tables["by_security"].column_names[:3] == ["scenario", "security_code", "n_sweeps"]


@pytest.mark.slow
def test_thousands_of_partitions_in_bounded_memory(tmp_path: Path) -> None:
    """2,000 partitions × 2 scenarios (6,000 files) under a 200 MB DuckDB memory limit: completes and adds up."""
    rng = np.random.default_rng(5)
    lake = Lake(tmp_path / "lake")
    n = 20
    for sec in range(100):
        for day in range(20):
            key = PartitionKey(1000 + sec, date(2024, 1, 1 + day))
            qty = rng.integers(1, 20000, n)
            filled = (qty * rng.uniform(0, 1, n)).astype(np.int64)
            cols: dict[str, Any] = {
                "order_id": np.arange(n),
                "participantid": rng.integers(1, 40, n),
                "order_quantity": qty,
                "arrival_mid": rng.uniform(500, 5000, n),
                "implementation_shortfall_bps": rng.normal(2, 3, n),
                "group": rng.choice(["full", "partial", "none"], n),
                "qualifying": rng.uniform(size=n) < 0.5,
                "filled_quantity": filled,
                "filled_dark": filled // 3,
                "filled_lit": filled - filled // 3,
                "fill_ratio": filled / qty,
                "arrival_cost_bps": rng.normal(2, 3, n),
                "vw_exec_time_s": rng.exponential(2, n),
                "size_bucket": rng.choice(["tiny", "small", "medium", "large"], n),
                "time_bucket": rng.choice(["morning", "midday", "afternoon"], n),
            }
            lake.write_parquet(_table(sweeps_schema(HORIZONS), cols, n), lake.result_path("sweeps", key))
            sim_tables = {}
            for scenario in SCENARIOS:
                sim_filled = (qty * rng.uniform(0, 1, n)).astype(np.int64)
                sim_cols: dict[str, Any] = {
                    "order_id": np.arange(n),
                    "sim_quantity": qty,
                    "sim_filled_quantity": sim_filled,
                    "sim_fill_ratio": sim_filled / qty,
                    "sim_arrival_cost_bps": rng.normal(1, 3, n),
                    "delta_implementation_shortfall_bps": rng.normal(-1, 3, n),
                    "delta_arrival_cost_bps": rng.normal(-1, 3, n),
                    "sim_vw_exec_time_s": rng.exponential(3, n),
                    "set": rng.choice(["both", "real_only", "sim_only", "neither"], n),
                }
                sim_tables[scenario] = _table(sim_orders_schema(HORIZONS), sim_cols, n)
            write_scenario_results(lake, "sim_orders", key, sim_tables)
    base = Config()
    cfg = Config(
        lake=str(lake.root),
        scenarios={s: base.scenarios[s] for s in SCENARIOS},
        aggregate=Aggregate(memory_limit_mb=200),
    )
    tables = run_aggregates(cfg, lake)
    assert tables["global_summary"]["n_sweeps"].to_pylist() == [2000 * n, 2000 * n]
    assert sum(tables["by_security"]["n_sweeps"].to_pylist()) == 2 * 2000 * n
    assert tables["stats_tests"].num_rows == 2 * 5 * (1 + 100 + 20 + 39 + 3 + 4 + 3)
    assert tables["headline"]["ci_unit"].to_pylist() == ["partition", "partition"]


# ---- incremental aggregation (aggregates/_partials) ------------------------------------------------------


def _fresh(cfg: Config, lake: Lake) -> dict[str, pa.Table]:
    """A full aggregation from scratch (no partial aggregates kept from before)."""
    lake.remove_tree(lake.partials_dir)
    return run_aggregates(cfg, lake)


def _assert_same(got: dict[str, pa.Table], want: dict[str, pa.Table]) -> None:
    assert set(got) == set(want)
    for name in want:
        assert got[name].schema == want[name].schema, name
        assert got[name].num_rows == want[name].num_rows, name
        for g, w in zip(got[name].to_pylist(), want[name].to_pylist(), strict=True):
            for col, value in w.items():
                if isinstance(value, float):
                    assert g[col] == pytest.approx(value, rel=1e-12, nan_ok=True), (name, col)
                else:
                    assert g[col] == value, (name, col)


def _recomputed(caplog: pytest.LogCaptureFixture) -> str:
    return next(r.getMessage() for r in caplog.records if r.getMessage().startswith("partial aggregates:"))


@pytest.fixture
def incremental(tmp_path: Path) -> tuple[Config, Lake]:
    lake = build_lake(tmp_path / "lake")
    cfg = Config(
        lake=str(lake.root),
        scenarios={"baseline": Config().scenarios["baseline"], "half_cap": Config().scenarios["half_cap"]},
    )
    return cfg, lake


def test_a_second_run_reads_no_result_again(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, lake = incremental
    first = run_aggregates(cfg, lake)
    caplog.clear()
    with caplog.at_level("INFO"):
        again = run_aggregates(cfg, lake)
    assert "aggregates: the results and settings they were merged from are unchanged" in caplog.messages
    assert not any(m.startswith("partial aggregates:") for m in caplog.messages)  # no slice read again
    _assert_same(again, first)
    assert not (lake.root / "_tmp").exists()  # scratch folders are removed


def test_nothing_changed_merges_nothing_and_a_settings_change_merges_again(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    """The merge (rank passes, bootstrap, tests) runs only when a slice or a setting it reads changed."""
    cfg, lake = incremental
    first = run_aggregates(cfg, lake)
    files = sorted(lake.aggregates_dir.glob("*.parquet"))
    written = {p: p.stat().st_mtime_ns for p in files}
    with caplog.at_level("INFO", logger="dpsim.aggregate"):
        _assert_same(run_aggregates(cfg, lake), first)
    assert "aggregates: the results and settings they were merged from are unchanged" in caplog.messages
    assert {p: p.stat().st_mtime_ns for p in files} == written

    caplog.clear()
    reseeded = replace(cfg, stats=replace(cfg.stats, bootstrap_seed=cfg.stats.bootstrap_seed + 1))
    with caplog.at_level("INFO"):
        again = run_aggregates(reseeded, lake)
    assert _recomputed(caplog) == "partial aggregates: 0 of 6 slices recomputed, 0 removed"
    assert all(p.stat().st_mtime_ns != written[p] for p in files)
    assert again["headline"]["ci_low"].to_pylist() != first["headline"]["ci_low"].to_pylist()
    _assert_same(again, _fresh(reseeded, lake))

    lake.remove_aggregates()  # files gone: merged again though the key is the same
    _assert_same(run_aggregates(reseeded, lake), again)


def test_a_changed_partition_recomputes_its_date_only(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, lake = incremental
    run_aggregates(cfg, lake)
    # sweep 5 (202, D1): its simulated IS in baseline becomes 9 instead of 7 (delta +4 instead of +2)
    path = lake.result_path("sim_orders", PartitionKey(202, D1))
    table = pq.read_table(path)
    sweep5 = [
        oid == 5 and s == "baseline"
        for oid, s in zip(table["order_id"].to_pylist(), table["scenario"].to_pylist(), strict=True)
    ]
    sim_is = [
        9.0 if hit else v
        for hit, v in zip(sweep5, table["sim_implementation_shortfall_bps"].to_pylist(), strict=True)
    ]
    delta = [
        4.0 if hit else v
        for hit, v in zip(sweep5, table["delta_implementation_shortfall_bps"].to_pylist(), strict=True)
    ]
    table = table.set_column(
        table.schema.get_field_index("sim_implementation_shortfall_bps"),
        "sim_implementation_shortfall_bps",
        pa.array(sim_is, pa.float64()),
    )
    table = table.set_column(
        table.schema.get_field_index("delta_implementation_shortfall_bps"),
        "delta_implementation_shortfall_bps",
        pa.array(delta, pa.float64()),
    )
    lake.write_parquet(table, path)
    caplog.clear()
    with caplog.at_level("INFO", logger="dpsim.partials"):
        got = run_aggregates(cfg, lake)
    # the partition's file holds both scenarios: baseline/D1 and half_cap/D1 (whose rows are unchanged)
    assert _recomputed(caplog) == "partial aggregates: 2 of 6 slices recomputed, 0 removed"
    (base,) = rows_of(got["global_summary"], scenario="baseline")
    # Σ w·sim IS rises by 6e5 · 2 (sweep 5: Q·mid = 300 · 2000)
    assert base["nw_sim_implementation_shortfall_bps"] == pytest.approx((519.2 + 1.2) / 52.2)
    # deltas −6, 2, −15, 0, 4, −4.25, −3: median −3, mean −22.25/7
    assert base["median_delta_implementation_shortfall_bps"] == -3.0
    assert base["mean_delta_implementation_shortfall_bps"] == pytest.approx(-22.25 / 7)
    _assert_same(got, _fresh(cfg, lake))


def test_a_removed_partition_leaves_the_aggregates(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, lake = incremental
    run_aggregates(cfg, lake)
    for table in ("sweeps", "replay_fidelity", "sim_orders"):
        lake.remove_tree(lake.partition_dir(table, PartitionKey(202, D2)))
    caplog.clear()
    with caplog.at_level("INFO", logger="dpsim.partials"):
        got = run_aggregates(cfg, lake)
    # D2 still has 101's partition: its two scenario slices and its scenario-free slice are recomputed
    assert _recomputed(caplog) == "partial aggregates: 3 of 6 slices recomputed, 0 removed"
    assert got["global_summary"]["n_sweeps"].to_pylist() == [6, 6]  # sweeps 7 and 8 are gone
    _assert_same(got, _fresh(cfg, lake))


def test_a_new_scenario_is_computed_alone(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, lake = incremental
    only_base = Config(lake=cfg.lake, scenarios={"baseline": cfg.scenarios["baseline"]})
    run_aggregates(only_base, lake)
    caplog.clear()
    with caplog.at_level("INFO", logger="dpsim.partials"):
        got = run_aggregates(cfg, lake)
    assert (
        _recomputed(caplog) == "partial aggregates: 2 of 6 slices recomputed, 0 removed"
    )  # half_cap × 2 dates
    _assert_same(got, _fresh(cfg, lake))


def test_an_interrupted_update_is_recomputed(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    """Partial files are written before the manifest of fingerprints: an update that stopped in between
    leaves the old fingerprints, so the next run recomputes those slices instead of trusting them."""
    cfg, lake = incremental
    run_aggregates(cfg, lake)
    old_manifest = lake.partials_manifest_path.read_bytes()
    path = lake.result_path("sweeps", PartitionKey(101, D2))
    table = pq.read_table(path)
    lake.write_parquet(table.slice(0, 1), path)  # sweep 4 of 101/D2 is gone
    run_aggregates(cfg, lake)
    lake.partials_manifest_path.write_bytes(old_manifest)  # as if the run had stopped before the manifest
    caplog.clear()
    with caplog.at_level("INFO", logger="dpsim.partials"):
        got = run_aggregates(cfg, lake)
    assert _recomputed(caplog) == "partial aggregates: 3 of 6 slices recomputed, 0 removed"  # D2's slices
    _assert_same(got, _fresh(cfg, lake))
    lake.partials_manifest_path.write_text("{ not json")
    caplog.clear()
    with caplog.at_level("INFO", logger="dpsim.partials"):
        run_aggregates(cfg, lake)
    assert _recomputed(caplog) == "partial aggregates: 6 of 6 slices recomputed, 0 removed"


@pytest.mark.parametrize("partial", ["stream", "moments"])
def test_an_unreadable_partial_is_recomputed_from_the_results(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture, partial: str
) -> None:
    """A torn partial file (a date's differences, or a small partial table) is a cache the next run would
    trust again, its slice's results being unchanged: the aggregation warns and recomputes every partial."""
    cfg, lake = incremental
    first = run_aggregates(cfg, lake)
    path = (
        sorted(Path(str(lake.partials_dir)).glob("stream/scenario=baseline/*.parquet"))[0]
        if partial == "stream"
        else Path(str(lake.partial_path("moments")))
    )
    path.write_bytes(path.read_bytes()[:300])
    (
        Path(str(lake.aggregates_dir)) / "headline.parquet"
    ).unlink()  # so the merge, which reads every partial, runs
    caplog.clear()
    with caplog.at_level("INFO"):
        again = run_aggregates(cfg, lake)
    warned = [m for m in caplog.messages if m.startswith("an unreadable partial aggregate")]
    assert len(warned) == 1 and str(path) in warned[0]
    updates = [m for m in caplog.messages if m.startswith("partial aggregates:")]
    assert updates == [  # the first update trusted every slice; the second recomputed them all
        "partial aggregates: 0 of 6 slices recomputed, 0 removed",
        "partial aggregates: 6 of 6 slices recomputed, 0 removed",
    ]
    _assert_same(again, first)
    assert pq.read_metadata(path).num_rows > 0  # rewritten whole


def test_an_unreadable_aggregate_file_is_merged_again(
    incremental: tuple[Config, Lake], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing changed, but an aggregate file is torn: the run merges again instead of failing on it."""
    cfg, lake = incremental
    first = run_aggregates(cfg, lake)
    path = Path(str(lake.aggregates_dir)) / "by_security.parquet"
    path.write_bytes(path.read_bytes()[:300])
    caplog.clear()
    with caplog.at_level("INFO", logger="dpsim.aggregate"):
        again = run_aggregates(cfg, lake)
    assert any(m.startswith(f"{path}: unreadable") for m in caplog.messages)
    assert "aggregates: the results and settings they were merged from are unchanged" not in caplog.messages
    _assert_same(again, first)
    assert pq.read_table(path).num_rows == first["by_security"].num_rows


def test_compute_aggregates_over_a_session_matches_the_lake(
    aggregated: tuple[Lake, dict[str, pa.Table]],
) -> None:
    """The in-session path (a report's selection) gives the same tables from the catalog's views."""
    lake, tables = aggregated
    from dpsim.aggregate import compute_aggregates
    from dpsim.catalog import connect

    cfg = Config(lake=str(lake.root), scenarios={s: Config().scenarios[s] for s in SCENARIOS})
    con = connect(lake, cfg)
    try:
        got = compute_aggregates(con, cfg, list(SCENARIOS))
    finally:
        con.close()
    _assert_same(got, tables)


def test_the_aggregation_spills_into_a_scratch_folder_it_creates(tmp_path: Path) -> None:
    """The first spill used to fail (`Failed to create directory …/_tmp/duckdb`): `<lake>/_tmp` no longer
    exists after shred and process, and DuckDB creates only the last level of its temp folder."""
    from dpsim.catalog import budgeted_session

    lake = Lake(tmp_path / "lake")
    lake.root.mkdir()
    con = budgeted_session(lake, Aggregate(memory_limit_mb=128), keep_order=False)  # the aggregation's
    try:
        # 4 M rows of ~50 bytes sorted under a 64 MB limit: DuckDB must spill
        got = con.execute(
            "SELECT count(*) FROM (SELECT range AS i, repeat('x', 40) AS s FROM range(4000000) ORDER BY hash(range))"
        ).fetchone()
    finally:
        con.close()
    assert got == (4_000_000,)


# ---- the memory budget ---------------------------------------------------------------------------------------


def test_duckdb_gets_the_budget_less_the_process_and_the_work_reserve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dpsim.catalog import MIN_DUCKDB_MB, WORK_RESERVE_MB, duckdb_memory_limit_mb

    assert duckdb_memory_limit_mb(1500, process_mb=150) == 1500 - 150 - WORK_RESERVE_MB == 900
    assert duckdb_memory_limit_mb(1500, process_mb=300) == 750  # a bigger index: less for DuckDB
    assert not caplog.records
    # too small a budget: DuckDB's least (half of a very small one), and a warning that the peak may exceed it
    with caplog.at_level("WARNING", logger="dpsim.catalog"):
        assert duckdb_memory_limit_mb(800, process_mb=150) == MIN_DUCKDB_MB == 256
        assert duckdb_memory_limit_mb(200, process_mb=150) == 100
    assert len(caplog.records) == 2
    assert (
        "aggregate.memory_limit_mb = 800 MB is less than this process needs" in caplog.records[0].getMessage()
    )


def test_the_aggregation_and_compaction_sessions_get_duckdbs_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sessions of `dpsim aggregate` (`catalog.budgeted_session`: the aggregation's without insertion
    order, the compaction's with it) get the budget less what the process holds besides (the compaction
    used to get the whole budget, on top of the process's own memory)."""
    from dpsim import catalog

    monkeypatch.setattr(catalog, "process_rss_mb", lambda: 150)
    lake = Lake(tmp_path / "lake")
    lake.root.mkdir()
    settings = Aggregate(memory_limit_mb=1500)
    for keep_order in (False, True):
        con = catalog.budgeted_session(lake, settings, keep_order=keep_order)
        try:
            got = con.execute(
                "SELECT current_setting('memory_limit'), current_setting('enable_external_file_cache'), "
                "current_setting('preserve_insertion_order')"
            ).fetchone()
        finally:
            con.close()
        assert got == ("858.3 MiB", False, keep_order)  # 900 MB in MiB; no cache entry kept per file read
    # numba loading on a thread meanwhile (the rank passes' loop): 110 MB less for DuckDB, 790 MB
    con = catalog.budgeted_session(lake, settings, keep_order=False, loading_mb=110)
    try:
        assert con.execute("SELECT current_setting('memory_limit')").fetchone() == ("753.4 MiB",)
    finally:
        con.close()


def test_recomputed_partials_are_not_held_in_the_session(
    incremental: tuple[Config, Lake], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The merge gets DuckDB's memory to itself: no table of recomputed partial rows is left in the session
    (they were tables of the session's database, ~800 MB at 54,000 partitions, held through the merge)."""
    from dpsim import aggregate

    cfg, lake = incremental
    seen: list[list[tuple[str, bool]]] = []
    merge = aggregate._merge

    def spy(con: duckdb.DuckDBPyConnection, *args: Any, **kwargs: Any) -> dict[str, pa.Table]:
        seen.append(con.execute("SELECT table_name, temporary FROM duckdb_tables() ORDER BY 1").fetchall())
        return merge(con, *args, **kwargs)

    monkeypatch.setattr(aggregate, "_merge", spy)
    run_aggregates(cfg, lake)
    assert seen and not [name for name, temporary in seen[0] if not temporary]  # temp: the empty stand-ins

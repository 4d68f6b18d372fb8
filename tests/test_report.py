"""`dpsim report`, the notebook API and the terminal summary on the real DRR day, through the CLI.

The page itself is rendered in a real browser by tests/test_report_browser.py; these tests check the
file (self-contained, small), the selection and the drill-down's errors, the notebook API's frames and
pushdown, the README's notebook example as written, and the 80-column terminal summary.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import dpsim
from dpsim.errors import LakeError
from tests.conftest import REPO, run_dpsim

SWEEP = 7904794000125452769  # a DRR sweep the replay fills in every scenario (it also traded dark)


def dpsim_fails(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "dpsim", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def report(drr_cli_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    printed = run_dpsim("report", "--lake", str(drr_cli_lake), "--out", str(out)).stdout
    assert re.match(
        rf"wrote {re.escape(str(out))} \(\d+\.\d MB, 10 sections, 9 plots\) in \d+\.\d s", printed
    )
    return out


def test_the_report_is_one_self_contained_file(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert report.stat().st_size < 10_000_000
    assert text.count("* plotly.js v") == 1  # plotly.js embedded once
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing loaded from anywhere
    # the headline's reading, in the methodology's words, with the pinned DRR figures
    assert "In the plausible world (baseline)" in text
    assert "+0.77 bps (real 2.88 → simulated 3.64, 95 % CI +0.34 to +1.19, 4,100 sweeps)" in text
    assert "93.7% of the real Centre Point quantity" in text
    # p-values in scientific notation (the t-test's 1.95e-145 would be 0.000 in fixed notation), ids bare
    assert "<td>1.95e-145</td>" in text
    assert re.search(r"order 79047940\d{11}<br>", text)  # the scatter's hover text


def test_a_selection_recomputes_the_aggregates_over_its_partitions(
    drr_cli_lake: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sel.html"
    args = [
        "--securities",
        "110621",
        "--dates",
        "2024-09-05",
        "--scenario",
        "midtick",
        "--scenario",
        "baseline",
    ]
    run_dpsim("report", "--lake", str(drr_cli_lake), "--out", str(out), *args)
    text = out.read_text(encoding="utf-8")
    assert "securities 110621; dates 2024-09-05; scenarios midtick, baseline" in text
    assert "+0.77 bps (real 2.88 → simulated 3.64, 95 % CI +0.34 to +1.19" in text  # the same sweeps
    assert "order_life" not in text
    err = dpsim_fails(
        "report", "--lake", str(drr_cli_lake), "--out", str(out), "--dates", "2024-09-06"
    ).stderr
    assert err.strip() == (
        f"dpsim: error: the selection (dates 2024-09-06) holds no analysed sweeps in {drr_cli_lake}"
    )
    err = dpsim_fails("report", "--lake", str(drr_cli_lake), "--out", str(out), "--scenario", "nope").stderr
    assert err.startswith(f"dpsim: error: no results for scenario(s) nope in {drr_cli_lake}; the lake has: ")


def test_a_sweep_story(drr_cli_lake: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.html"
    printed = run_dpsim(
        "report", "--lake", str(drr_cli_lake), "--sweep", str(SWEEP), "--out", str(out)
    ).stdout
    assert "6 sections, 2 plots" in printed
    text = out.read_text(encoding="utf-8")
    assert f"dpsim sweep {SWEEP}" in text and text.count("* plotly.js v") == 1
    assert "7904794000124751842" in text  # the real contra of its dark fill, bare
    assert "1725497117875464238" in text  # its arrival, ns UTC, bare
    err = dpsim_fails("report", "--lake", str(drr_cli_lake), "--sweep", "42", "--out", str(out)).stderr
    assert err.startswith(
        f"dpsim: error: no analysed sweep with order id 42 in {drr_cli_lake} (the whole lake)"
    )


def test_a_lake_without_aggregates_says_what_to_run(tmp_path: Path) -> None:
    err = dpsim_fails("report", "--lake", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.html")).stderr
    assert "no such lake folder" in err


# ---- the notebook API -------------------------------------------------------------------------------


def test_the_notebook_api_returns_lazy_frames_with_filters_pushed_down(drr_cli_lake: Path) -> None:
    lake = dpsim.open_lake(str(drr_cli_lake))
    sweeps = lake.sweeps()
    assert isinstance(sweeps, pl.LazyFrame)
    large = sweeps.filter(pl.col("security_code") == 110621, pl.col("size_bucket") == "large")
    plan = large.select("order_id").explain()
    assert "SELECTION" in plan and "size_bucket" in plan  # the filter reaches the Parquet scan
    assert large.select(pl.len()).collect().item() == 846
    assert sweeps.filter(pl.col("date") == pl.date(2024, 9, 6)).collect().height == 0  # no such partition
    baseline = lake.sim_orders("baseline").collect()
    assert baseline.height == 4100 and set(baseline["scenario"]) == {"baseline"}
    fills = lake.sim_fills("midtick").collect()
    assert fills.height and set(fills["scenario"]) == {"midtick"}
    assert lake.sim_fills().select(pl.col("scenario").n_unique()).collect().item() == 7
    headline = lake.aggregate("headline")
    assert isinstance(headline, pl.DataFrame) and headline.height == 7
    assert lake.runs().height == 1
    assert lake.sql("SELECT count(*) AS n FROM sweeps")["n"].item() == 4100
    with pytest.raises(LakeError, match="no scenario 'nope'"):
        lake.sim_fills("nope")
    with pytest.raises(LakeError, match="no such aggregate"):
        lake.aggregate("nope")


def test_the_readme_notebook_example_runs_as_written(drr_cli_lake: Path, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- notebook example -->\n```python\n(.*?)```", readme, re.S)
    assert block, "README.md lost its notebook example"
    (tmp_path / "lake-drr").symlink_to(drr_cli_lake)  # the example opens lake-drr, as `make drr` leaves it
    proc = subprocess.run(
        [sys.executable, "-c", block.group(1)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert "baseline" in proc.stdout


# ---- the terminal summary ---------------------------------------------------------------------------


def test_the_terminal_summary_fits_80_columns(drr_cli_lake: Path) -> None:
    out = run_dpsim("aggregate", "--lake", str(drr_cli_lake), env={"COLUMNS": "80"}).stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in out
    assert any(
        line.split()[:2] == ["baseline", "plausible"] and "0.77 [0.34, 1.19]" in line for line in lines
    )
    assert "2.0e-145" in out  # p-values in scientific notation, never 0.000
    query = "SELECT order_id, arrival_time, participantid, p_value_t FROM sweeps, stats_tests LIMIT 1"
    out = run_dpsim("sql", query, "--lake", str(drr_cli_lake), env={"COLUMNS": "80"}).stdout
    row = out.splitlines()[2].split()
    assert re.fullmatch(r"\d{19}", row[0]) and re.fullmatch(r"\d{19}", row[1]) and "e-" in row[3]


# ---- the report's queries agree with the aggregates ----------------------------------------------------


def test_the_report_queries_add_up_to_the_aggregates(drr_cli_lake: Path) -> None:
    """Bins, profiles and curves are other cuts of the same sweeps: their totals are the headline's."""
    from dpsim.catalog import WORK_RESERVE_MB
    from dpsim.config import load_config
    from dpsim.lake import Lake
    from dpsim.report.session import ReportSession, Selection

    cfg = load_config(REPO / "conf/drr.yaml", {"lake": str(drr_cli_lake)})
    with ReportSession(cfg, Lake(drr_cli_lake), Selection()) as s:
        assert s.scenarios[:2] == ["baseline", "midtick"] and s.primary == "baseline"  # plausible first
        assert s.scenarios[-2:] == ["ignore_limit", "no_queue"]  # the bounds last
        head = {r["scenario"]: r for r in s.query("headline", scenarios=s.scenarios).to_dicts()}
        bins = s.query("delta_bins", scenarios=s.scenarios)
        per_scenario = dict(bins.group_by("scenario").agg(pl.col("n_sweeps").sum()).iter_rows())
        assert per_scenario == {sc: head[sc]["n_with_delta"] for sc in s.scenarios}
        curve = s.query("fill_curve", scenarios=s.scenarios)
        for sc, last in curve.group_by("scenario").agg(pl.col("filled_share").last()).iter_rows():
            assert last == pytest.approx(head[sc]["sim_rested_fill_ratio"], rel=1e-9), sc
        day = s.query("intraday", scenario="baseline", tz=cfg.time.timezone, minutes=15)
        assert day["n_sweeps"].sum() == 4100 and day["t"][0] == "10:00" and day["t"][-1] == "15:45"
        weighted = float((day["real_is_bps"] * day["notional"]).sum()) / float(day["notional"].sum())
        assert weighted == pytest.approx(head["baseline"]["real_is_bps"], rel=1e-9)  # every sweep has a delta
        (overall,) = (
            s.query("segments", scenario="baseline", size_order=[], time_order=[])
            .filter(pl.col("segment_type") == "size")
            .select(pl.col("n_sweeps").sum())
            .row(0)
        )
        assert overall == 4100
        spreads = s.query("spreads")
        ((effective,),) = s.con.sql("SELECT nw_effective_spread_bps FROM global_summary LIMIT 1").fetchall()
        assert spreads["effective_spread_bps"].to_list() == pytest.approx([effective] * 4, rel=1e-9)
        assert s.query("scatter", scenario="baseline", n=100).height == 100
        # DuckDB gets its share of the process's budget (before: the whole of it, and a year's report peaked at
        # 1.8 GB against 1,500 MB), the rest left for the figures built beside it
        ((limit,),) = s.con.sql("SELECT current_setting('memory_limit')").fetchall()
        value, unit = limit.split()
        megabytes = float(value) * {"MiB": 2**20, "GiB": 2**30}[unit] / 1e6
        assert megabytes < cfg.aggregate.memory_limit_mb - WORK_RESERVE_MB


def test_what_a_lake_lacks_is_named_with_what_to_run(drr_cli_lake: Path, tmp_path: Path) -> None:
    import shutil

    out = str(tmp_path / "r.html")
    empty = tmp_path / "empty"
    empty.mkdir()
    err = dpsim_fails("report", "--lake", str(empty), "--out", out).stderr
    assert err.strip() == f"dpsim: error: {empty}: the lake has no results yet: run `dpsim process` first"
    with pytest.raises(LakeError, match=r"results_by_date/sweeps: no files yet \(run `dpsim process --lake "):
        dpsim.open_lake(str(empty)).sweeps()
    with pytest.raises(LakeError, match="no such lake folder"):
        dpsim.open_lake(str(tmp_path / "nowhere"))
    # results without aggregates (`dpsim process --no-aggregate`)
    bare_lake = tmp_path / "bare"
    for folder in ("results", "results_by_date"):
        shutil.copytree(drr_cli_lake / folder, bare_lake / folder)
    err = dpsim_fails("report", "--lake", str(bare_lake), "--out", out).stderr
    assert (
        err.strip()
        == f"dpsim: error: {bare_lake}: no aggregates yet: run `dpsim aggregate --lake {bare_lake}`"
    )
    # one order id in two partitions: the story asks which
    day = bare_lake / "results" / "sweeps" / "security_code=110621"
    shutil.copytree(day / "date=2024-09-05", day / "date=2024-09-06")
    # copied by hand, past the change journal: --rescan compacts the new date
    assert run_dpsim("catalog", "--lake", str(bare_lake), "--rescan").returncode == 0
    err = dpsim_fails("report", "--lake", str(bare_lake), "--sweep", str(SWEEP), "--out", out).stderr
    assert err.strip() == (
        f"dpsim: error: order id {SWEEP} names sweeps in several partitions "
        "(110621/2024-09-05, 110621/2024-09-06); pick one with --securities and --dates"
    )
    picked = run_dpsim(
        "report", "--lake", str(bare_lake), "--sweep", str(SWEEP), "--out", out, "--dates", "2024-09-05"
    )
    assert "6 sections" in picked.stdout

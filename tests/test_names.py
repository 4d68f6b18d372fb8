"""Names are data, never paths; glob characters in the lake's path and in input file names work."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from upath import UPath

from dpsim.lake import Lake, PartitionKey
from dpsim.lake.layout import per_scenario_dir
from tests.lakes import error_lines, run_dpsim, small_drop, write_config


def test_a_scenario_name_that_is_a_path_is_a_one_line_config_error(tmp_path: Path) -> None:
    """Before: `baseline/../../../orders` made process delete a raw orders partition and write simulated
    results in its place, with exit 0."""
    drop = small_drop(tmp_path / "drop", securities=1, days=1)
    lake = tmp_path / "lake"
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    assert run_dpsim("shred", "--config", conf).returncode == 0
    orders = {p: p.read_bytes() for p in (lake / "orders").rglob("*.parquet")}
    text = conf.read_text().replace(
        "scenarios:\n  baseline: {}\n", "scenarios:\n  baseline/../../../orders: {}\n"
    )
    conf.write_text(text)
    line = text.splitlines().index("  baseline/../../../orders: {}") + 1
    proc = run_dpsim("process", "--config", conf)
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        f"dpsim: error: invalid configuration: {conf}:{line}: scenarios.baseline/../../../orders: "
        "a scenario name may hold only letters, digits, _ and -"
    ]
    assert {p: p.read_bytes() for p in (lake / "orders").rglob("*.parquet")} == orders


def test_the_lake_guards_its_folder_names_itself() -> None:
    root = UPath("/lake")
    with pytest.raises(ValueError, match=r"scenario name '\.\./x': only letters, digits, _ and -"):
        per_scenario_dir(root, "sim_orders", "../x")
    with pytest.raises(ValueError, match=r"security code '1/\.\.': expected an integer"):
        PartitionKey("1/..", date(2024, 9, 5))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"trading date '2024-09-05': expected a date"):
        PartitionKey(1, "2024-09-05")  # type: ignore[arg-type]


def test_glob_characters_in_the_lake_path_and_input_names_work_end_to_end(tmp_path: Path) -> None:
    """Before: `[x]` in the lake path broke every catalog view; an input named `orders[1].csv` could not
    be passed at all."""
    drop = small_drop(tmp_path / "drop", securities=1, days=1)
    odd = tmp_path / "drop[1]"
    odd.mkdir()
    for kind in ("orders", "trades", "nbbo"):
        shutil.copy(drop / f"{kind}.csv", odd / f"{kind}[1].csv")
    lake = tmp_path / "lake[x]"
    conf = write_config(tmp_path / "c.yaml", drop, lake)
    args = [f"--{k}={odd / f'{k}[1].csv'}" for k in ("orders", "trades", "nbbo")]
    proc = run_dpsim("shred", "--config", conf, *args)
    assert proc.returncode == 0, proc.stderr
    assert Lake(lake).partitions("orders")
    proc = run_dpsim("process", "--config", conf)
    assert proc.returncode == 0, proc.stderr
    assert Lake(lake).partitions("sweeps") == Lake(lake).partitions("orders")
    proc = run_dpsim("sql", "--config", conf, "SELECT count(*) AS n FROM sweeps JOIN orders USING (order_id)")
    assert proc.returncode == 0, proc.stderr
    proc = run_dpsim("sql", "--config", conf, "SELECT n_sweeps FROM headline", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.splitlines()[1]) > 0

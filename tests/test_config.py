"""Config loading: defaults, overrides, and exact error messages with file, line and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dpsim.config import DEFAULT_SCENARIOS, Config, Scenario, load_config
from dpsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_default_yaml_equals_builtin_defaults() -> None:
    # conf/default.yaml documents the defaults; it must not drift from the dataclass defaults (its relative
    # paths are resolved from the repository, the project root above conf/)
    cfg = load_config(REPO / "conf/default.yaml")
    defaults = Config()
    inputs = {k: [str(REPO / g) for g in v] for k, v in defaults.to_dict()["inputs"].items()}
    expected = defaults.to_dict() | {"source": "", "lake": str(REPO / "lake"), "inputs": inputs}
    assert cfg.to_dict() | {"source": ""} == expected


def test_default_scenarios_are_the_seven_of_the_methodology() -> None:
    cfg = load_config(REPO / "conf/default.yaml")
    assert list(cfg.scenarios) == [
        "baseline",
        "order_life",
        "half_cap",
        "impact_5bps",
        "midtick",
        "ignore_limit",
        "no_queue",
    ]
    assert cfg.scenarios == DEFAULT_SCENARIOS
    assert cfg.scenarios["half_cap"].max_fill_fraction == 0.5
    assert cfg.scenarios["impact_5bps"].impact_bps == 5.0
    assert cfg.scenarios["midtick"].sweep_midtick and cfg.scenarios["ignore_limit"].ignore_sweep_limit
    assert not cfg.scenarios["no_queue"].real_queue
    worlds = {name: s.world for name, s in cfg.scenarios.items()}
    assert worlds == {
        "baseline": "plausible",
        "midtick": "plausible",
        "ignore_limit": "bound",
        "no_queue": "bound",
        "order_life": "sensitivity",
        "half_cap": "sensitivity",
        "impact_5bps": "sensitivity",
    }


def test_all_problems_reported_at_once_with_file_line_and_key(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "lake: x\n"  # 1
        "run:\n"  # 2
        "  workers: -1\n"  # 3
        "  wokers: 3\n"  # 4
        "scenarios:\n"  # 5
        "  a: {max_fill_fraction: 2}\n"  # 6
        "  b: {quantity: half}\n"  # 7
        "  c: {max_fill_fraction: 1.2345678901234567e-05}\n"  # 8: 12345678901234567 / 10^21
        "time: {timezone: Mars/Base, day_roll: 25:00}\n",  # 9
    )
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert err.value.problems == [
        f"{p}:3: run.workers: must be >= 0 (0 = number of cores)",
        f"{p}:4: run.wokers: unknown key (known keys: workers, executor, job_timeout_s, max_retries, single_job_in_process)",
        f"{p}:6: scenarios.a.max_fill_fraction: must be in (0, 1]",
        f"{p}:7: scenarios.b.quantity: 'half' is not one of residual, full",
        f"{p}:8: scenarios.c.max_fill_fraction: at most 18 decimal places: the replay floors a sweep's share exactly",
        f"{p}:9: time.day_roll: '25:00' is not a time of day HH:MM",
        f"{p}:9: time.timezone: unknown time zone 'Mars/Base' (use an IANA name like Australia/Sydney)",
    ]


def test_wrong_types_named(tmp_path: Path) -> None:
    p = _write(tmp_path, "run:\n  workers: two\nfilters:\n  participants: [1, x]\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert err.value.problems == [
        f"{p}:2: run.workers: expected int, got 'two'",
        f"{p}:4: filters.participants.1: expected int, got 'x'",
    ]


def test_bucket_session_and_code_validation(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "buckets:\n  size: [{name: a, max: 10}, {name: b, max: 5}, {name: c}]\n"
        "time:\n  open: '16:00'\n  close: '10:00'\n  max_quote_age_s: 0\n"
        "codes:\n  fill_classes: {lit: [1, 47]}\n  tick_table: [{min_price: 5, tick: 1}]\n"
        "scenarios:\n  reality: {}\n  a/b: {}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert err.value.problems == [
        f"{p}:2: buckets.size: bucket `max` values must increase",
        f"{p}:5: time.close: must be after open (16:00)",
        f"{p}:6: time.max_quote_age_s: must be > 0 seconds, or null for no limit",
        f"{p}:8: codes.fill_classes.lit: dealsource 47 is in both lit and dark: give it one class",
        f"{p}:9: codes.tick_table: the first step must start at min_price 0",
        f"{p}:11: scenarios.reality: is reserved for the reality replay, which always runs",
        f"{p}:12: scenarios.a/b: a scenario name may hold only letters, digits, _ and -",
    ]


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "lake: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_config(tmp_path / "nope.yaml")


def test_window_seconds_and_overrides(tmp_path: Path) -> None:
    p = _write(tmp_path, "scenarios:\n  s30: {window: {seconds: 30}, quantity: full}\n")
    cfg = load_config(p, {"run.workers": 3, "lake": "elsewhere"})
    assert cfg.scenarios == {"s30": Scenario(quantity="full", window="seconds:30")}
    assert cfg.scenarios["s30"].window_seconds == 30.0
    assert cfg.run.workers == 3 and cfg.lake == "elsewhere"
    with pytest.raises(ConfigError) as err:
        load_config(p, {"run.workers": -2})
    assert err.value.problems == ["command line: run.workers: must be >= 0 (0 = number of cores)"]


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.lake = "x"  # type: ignore[misc]


def test_cli_config_prints_resolved_and_errors_exit_1(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "dpsim", "config", "--lake", "L"], cwd=REPO, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "lake: L" in ok.stdout and "baseline:" in ok.stdout
    bad = _write(tmp_path, "nope: 1\n")
    err = subprocess.run(
        [sys.executable, "-m", "dpsim", "config", "--config", str(bad)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert err.returncode == 1
    assert err.stderr.startswith(f"dpsim: error: invalid configuration: {bad}:1: nope: unknown key")

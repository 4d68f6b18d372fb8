"""Settings resolve as flag > DPSIM_* environment variable > config file > default (`dpsim config
--show-origin` says which), and relative paths in a config file resolve from its base, never from the
working directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dpsim import cli
from dpsim.config import config_base, load_config, load_config_with_origins
from dpsim.errors import ConfigError


def _project(tmp_path: Path) -> Path:
    """A project folder (pyproject.toml) with conf/x.yaml naming relative paths."""
    root = tmp_path / "proj"
    (root / "conf").mkdir(parents=True)
    (root / "pyproject.toml").write_text("")
    conf = root / "conf" / "x.yaml"
    conf.write_text(
        "lake: lake-x\ninputs:\n  orders: [data/orders.csv*]\n  trades: data/trades.csv\n"
        "run:\n  workers: 2\n  executor: local\naggregate:\n  temp_directory: scratch\n",
        encoding="utf-8",
    )
    return conf


def test_relative_paths_in_a_config_file_resolve_from_the_project_root_above_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = _project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the working directory
    cfg = load_config(conf)
    root = tmp_path / "proj"
    assert config_base(conf) == root
    assert cfg.lake == str(root / "lake-x")
    assert cfg.inputs.orders == (str(root / "data/orders.csv*"),)
    assert cfg.inputs.trades == (str(root / "data/trades.csv"),)
    assert cfg.aggregate.temp_directory == str(root / "scratch")
    assert cfg.inputs.nbbo == ("data/sample/nbbo.csv*",)  # a built-in default: not from the file


def test_a_config_file_outside_any_project_resolves_from_its_folder(tmp_path: Path) -> None:
    conf = tmp_path / "solo" / "c.yaml"
    conf.parent.mkdir()
    conf.write_text(
        "lake: ../lakes/a\ninputs:\n  orders: [s3://bucket/o.csv, /abs/o.csv]\n", encoding="utf-8"
    )
    if config_base(conf) != conf.parent:
        pytest.skip("the temporary folder is inside a project (a pyproject.toml or .git above it)")
    cfg = load_config(conf)
    assert cfg.lake == str(tmp_path / "lakes" / "a")
    assert cfg.inputs.orders == ("s3://bucket/o.csv", "/abs/o.csv")  # URLs and absolute paths unchanged


def test_cli_from_another_folder_finds_the_lake_of_its_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["config", "--config", str(conf), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["lake"] == str(tmp_path / "proj" / "lake-x")


def test_precedence_flag_over_environment_over_file_over_default(tmp_path: Path) -> None:
    conf = _project(tmp_path)
    env = {"DPSIM_WORKERS": "3", "DPSIM_EXECUTOR": "dask-local:2", "DPSIM_JOB_TIMEOUT": "60"}
    cfg, origins = load_config_with_origins(conf, {"run.executor": "local"}, env)
    assert (cfg.run.workers, cfg.run.executor, cfg.run.job_timeout_s) == (3, "local", 60.0)
    assert origins["run.workers"] == "environment DPSIM_WORKERS"
    assert origins["run.executor"] == "command line"
    assert origins["run.job_timeout_s"] == "environment DPSIM_JOB_TIMEOUT"
    assert origins["lake"] == f"{conf}:1"
    assert origins["run.max_retries"] == "default"
    # the library reads no environment unless given one
    assert load_config(conf).run.workers == 2


def test_dpsim_config_and_dpsim_lake_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DPSIM_CONFIG", str(conf))
    monkeypatch.setenv("DPSIM_LAKE", "other-lake")
    assert cli.main(["config", "--show-origin"]) == 0
    out = capsys.readouterr().out
    assert re.search(r'^environment DPSIM_LAKE +lake = "other-lake"$', out, re.M)
    assert re.search(rf"^{re.escape(str(conf))}:6 +run.workers = 2$", out, re.M)
    assert re.search(r"^default +run.max_retries = 2$", out, re.M)
    assert cli.main(["config", "--show-origin", "--json", "--lake", "flag-lake"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["lake"] == {"value": "flag-lake", "origin": "command line"}
    assert shown["run.workers"] == {"value": 2, "origin": f"{conf}:6"}


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    conf = _project(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(conf, env={"DPSIM_WORKERS": "many"})
    assert err.value.problems == ["environment DPSIM_WORKERS: run.workers: expected int, got 'many'"]
    with pytest.raises(ConfigError) as err:
        load_config(None, env={"DPSIM_CONFIG": str(tmp_path / "nope.yaml")})
    assert err.value.problems == [
        f"{tmp_path / 'nope.yaml'} (from DPSIM_CONFIG): file not found (pass an existing --config or omit it)"
    ]

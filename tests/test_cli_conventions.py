"""The CLI's conventions: --version, `version --json`, inputs on the command line, and the defects a new
user hit (each test here fails on the commit before its fix)."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from dpsim import cli
from dpsim.lake import Lake
from dpsim.synth import generate


@pytest.fixture(scope="module")
def drops(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny generated drops: `a` with its reference files, `b` without any."""
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    generate(a, securities=2, days=1, start=date(2024, 10, 2), seed=3, scale=("rows", 3000))
    generate(b, securities=2, days=1, start=date(2024, 10, 3), seed=4, scale=("rows", 3000))
    for kind in ("reference", "session", "participants"):
        (b / f"{kind}.csv").unlink()
    return a, b


def _conf(tmp_path: Path, drop: Path, lake: Path) -> Path:
    conf = tmp_path / "c.yaml"
    conf.write_text(
        f"lake: {lake}\ninputs:\n"
        + "".join(f"  {k}: [{drop}/{k}.csv]\n" for k in ("orders", "trades", "nbbo"))
        + "".join(f"  {k}: [{drop}/{k}.csv]\n" for k in ("reference", "session", "participants")),
        encoding="utf-8",
    )
    return conf


def test_version_flag_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "dpsim 0.1.0"
    assert cli.main(["version", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["dpsim"] == "0.1.0"
    assert {"python", "polars", "duckdb", "pyarrow", "dask"} <= set(found)
    assert all(isinstance(found[k], str) for k in ("polars", "duckdb", "pyarrow"))


def test_a_drop_named_on_the_command_line_reads_no_reference_files_of_the_config(
    drops: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = drops
    lake = tmp_path / "lake"
    conf = _conf(tmp_path, a, lake)  # the config names drop a, with its reference files
    args = ["shred", "--config", str(conf)]
    assert cli.main([*args, *(f"--{k}={b}/{k}.csv" for k in ("orders", "trades", "nbbo"))]) == 0
    sources = [json.loads(p.read_text()) for p in Lake(lake).manifest_dir.glob("*.json")]
    assert sorted(s["kind"] for s in sources) == ["nbbo", "orders", "trades"]
    assert all(Path(s["path"]).parent == b for s in sources)
    assert not (lake / "reference").exists()


def test_none_names_no_optional_file(
    drops: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = drops
    lake = tmp_path / "lake"
    conf = _conf(tmp_path, a, lake)
    assert cli.main(["shred", "--config", str(conf), "--reference", "none", "--session", "none"]) == 0
    kinds = sorted(json.loads(p.read_text())["kind"] for p in Lake(lake).manifest_dir.glob("*.json"))
    assert kinds == ["nbbo", "orders", "participants", "trades"]
    assert "matches" not in caplog.text  # `none` is no glob that matches nothing: no warning
    shutil.rmtree(lake)


def test_a_job_timeout_too_short_to_enforce_is_refused_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(f"lake: {tmp_path / 'lake'}\n", encoding="utf-8")
    assert cli.main(["process", "--config", str(conf), "--job-timeout", "0.2"]) == 1
    err = capsys.readouterr().err
    assert "command line: run.job_timeout_s: 0.2 s is too short to enforce: it must be >= 5 s" in err


class _RecordingGc:
    """Stands in for the gc module in dpsim.cli: records the calls instead of making them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def disable(self) -> None:
        self.calls.append("disable")

    def freeze(self) -> None:
        self.calls.append("freeze")


@pytest.mark.parametrize(
    ("argv", "via_entry", "calls"),
    [
        (["sql", "SELECT 1"], True, ["disable", "freeze"]),  # the process ends with it: no collection
        (["sql", "SELECT 1"], False, []),  # main() called in a process that goes on (a test, a notebook)
        (["version", "--json"], True, []),  # not a brief read: the collector stays on
    ],
)
def test_only_a_brief_command_ending_the_process_skips_the_cycle_collector(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    via_entry: bool,
    calls: list[str],
) -> None:
    recording = _RecordingGc()
    monkeypatch.setattr(cli, "gc", recording)
    full = [*argv[:1], "--lake", str(tmp_path / "no-lake"), *argv[1:]] if argv[0] == "sql" else argv
    monkeypatch.setattr("sys.argv", ["dpsim", *full])
    code = cli.entry() if via_entry else cli.main(full)
    assert code == (1 if argv[0] == "sql" else 0)  # no lake there: one line, exit 1, collector state as set
    assert recording.calls == calls
    capsys.readouterr()

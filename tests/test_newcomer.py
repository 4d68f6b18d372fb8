"""What a new user meets first: the Makefile's demo install and what it prints, the README's commands."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _make_n(target: str, venv: Path) -> list[str]:
    """The commands `make TARGET` would run from scratch (nothing is run)."""
    out = subprocess.run(
        ["make", "-n", "-B", target, f"VENV={venv}"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_make_demo_installs_only_what_runs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    installs = [
        line for line in _make_n("demo", venv) if line.startswith(f"{venv}/bin/python -m pip install")
    ]
    assert installs == [
        f"{venv}/bin/python -m pip install --quiet --upgrade pip",
        f"{venv}/bin/python -m pip install --quiet -e .",
    ]
    tests = [line for line in _make_n("test", venv) if "pip install" in line]
    assert tests[-1] == f"{venv}/bin/python -m pip install --quiet -e '.[test,dask]'"


def test_make_demo_ends_with_the_next_commands_and_how_to_call_them(tmp_path: Path) -> None:
    lines = _make_n("demo", tmp_path / "venv")
    last = next(i for i, line in enumerate(lines) if "process --config" in line)
    tail = "\n".join(lines[last + 1 :])
    assert "source .venv/bin/activate" in tail
    assert f"{tmp_path}/venv/bin/dpsim sql" in tail
    assert "pip install duckdb-cli" in tail


def test_readme_says_how_to_reach_dpsim_and_duckdb() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/dpsim" in readme and "source .venv/bin/activate" in readme
    assert "pip install duckdb-cli" in readme


def test_readme_documents_the_conventions_and_every_subcommand() -> None:
    from dpsim import cli

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("DPSIM_CONFIG", "DPSIM_LAKE", "DPSIM_EXECUTOR", "--show-origin", "--json", "--dry-run"):
        assert name in readme, name
    import argparse

    (sub,) = (a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices:
        assert f"`dpsim {command}" in readme, command

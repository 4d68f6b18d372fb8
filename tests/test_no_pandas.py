"""pyarrow imports pandas, when it is installed, the first time a process converts numpy or Python values to
Arrow or back: 0.2-0.3 s of each command of a small day, for a library dpsim never uses. dpsim converts by
Arrow buffers (`dpsim.buffers`); a stand-in pandas on the path records being imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.lakes import REPO, small_drop, write_config


def test_shred_process_and_aggregate_never_import_pandas(tmp_path: Path) -> None:
    stand_in = tmp_path / "site" / "pandas"
    stand_in.mkdir(parents=True)
    marker = tmp_path / "pandas-was-imported"
    (stand_in / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise ImportError('stand-in')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(stand_in.parent), "CI": "1"}
    check = "import pyarrow as pa; pa.array([1])"  # the stand-in sees pyarrow's import
    assert subprocess.run([sys.executable, "-c", check], env=env, check=True) and marker.exists()
    marker.unlink()
    drop = small_drop(tmp_path / "drop", securities=2, days=1)
    with (drop / "orders.csv").open("a", encoding="utf-8") as f:
        f.write("not,a,row\n")  # the shred's rejects path too
    conf = write_config(tmp_path / "c.yaml", drop, tmp_path / "lake")
    # a forced rerun: each job reads which scenarios its partition's files hold before replacing them
    commands = (
        ["shred"],
        ["process", "--workers", "1"],
        ["process", "--workers", "1", "--force"],
        ["aggregate"],
    )
    for command in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "dpsim", *command, "--config", str(conf)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert not marker.exists(), f"dpsim {command[0]} imported pandas"
    (manifest,) = (tmp_path / "lake" / "_manifest").glob("orders-*.json")
    assert json.loads(manifest.read_text())["rows_rejected"] == 1
    assert (tmp_path / "lake" / "aggregates" / "stats_tests.parquet").exists()

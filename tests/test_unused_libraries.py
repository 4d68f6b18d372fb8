"""Libraries dpsim never uses that its dependencies import when they are installed (the test and bench
environments have both): pyarrow imports pandas the first time a process converts numpy or Python values to
Arrow or back (0.2-0.3 s of each command of a small day; dpsim converts by Arrow buffers, `dpsim.buffers`),
and numba imports scipy.linalg for a BLAS the replay kernel does not use (~0.15 s of each process that
replays; `matching.match` loads the kernel without it). Stand-ins on the path record being imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.lakes import REPO, small_drop, write_config


def test_shred_process_and_aggregate_never_import_pandas_or_scipy(tmp_path: Path) -> None:
    site = tmp_path / "site"
    markers = {}
    for library in ("pandas", "scipy"):
        stand_in = site / library
        stand_in.mkdir(parents=True)
        markers[library] = tmp_path / f"{library}-was-imported"
        (stand_in / "__init__.py").write_text(
            f"open({str(markers[library])!r}, 'w').close()\nraise ImportError('stand-in')\n"
        )
    env = {**os.environ, "PYTHONPATH": str(site), "CI": "1"}
    # the stand-ins see these imports
    check = "import pyarrow as pa; pa.array([1]); import numba.np.arraymath"
    assert subprocess.run([sys.executable, "-c", check], env=env, check=True)
    assert all(m.exists() for m in markers.values())
    for marker in markers.values():
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
        imported = [library for library, marker in markers.items() if marker.exists()]
        assert not imported, f"dpsim {' '.join(command)} imported {imported}"
    (manifest,) = (tmp_path / "lake" / "_manifest").glob("orders-*.json")
    assert json.loads(manifest.read_text())["rows_rejected"] == 1
    assert (tmp_path / "lake" / "aggregates" / "stats_tests.parquet").exists()

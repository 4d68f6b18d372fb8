"""Rebuild the prototype dpsim replaces (zautlin/sweeporders, commit 6ccedb2) for the `prototype` section.

    python -m bench.proto SNAPSHOT_GIT_DIR

SNAPSHOT_GIT_DIR is a bare git directory of the public repository github.com/zautlin/sweeporders (any
clone or snapshot that holds commit 6ccedb27661536390a20309047306d133eb460de). Every blob of that commit
that is present is exported to bench/work/proto/src6 (the large data blobs may be absent; they are not
needed), a venv with the prototype's requirements (pandas 2.x, numpy, scipy, psutil) is made in
bench/work/proto/venv, the DRR day's orders and NBBO are decompressed into its input folders, and the
repository's two hand-edited NBBO rows are moved aside (the stage-1 glob would merge them). Nothing of the
prototype is committed: bench/work/ is ignored. Prints the folder.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

from bench import harness as H

COMMIT = "6ccedb27661536390a20309047306d133eb460de"
PROTO = H.WORK / "proto"
SRC = PROTO / "src6"
DRR = H.REPO.parent / "shared" / "data" / "drr-2024-09-05"
REQUIREMENTS = ["pandas>=2.0.0,<3", "numpy>=1.24.0", "scipy>=1.10.0", "psutil>=5.9.0"]


def export(git_dir: Path) -> int:
    """Every blob of COMMIT present in `git_dir`, written under SRC; returns how many."""
    tree = subprocess.run(
        ["git", "-C", str(git_dir), "ls-tree", "-r", COMMIT], check=True, capture_output=True, text=True
    ).stdout
    n = 0
    for line in tree.splitlines():
        meta, path = line.split("\t", 1)
        blob = meta.split()[2]
        data = subprocess.run(["git", "-C", str(git_dir), "cat-file", "blob", blob], capture_output=True)
        if data.returncode != 0:
            continue  # a blob the snapshot does not hold
        out = SRC / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data.stdout)
        n += 1
    return n


def inputs() -> None:
    """The DRR day's orders and NBBO where the prototype's stage 1 looks for them."""
    for kind in ("orders", "nbbo"):
        folder = SRC / "data" / "raw" / kind
        folder.mkdir(parents=True, exist_ok=True)
        with (
            gzip.open(DRR / f"{kind}.csv.gz", "rb") as src,
            open(folder / f"drr_20240905_{kind}.csv", "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    edited = SRC / "data" / "raw" / "nbbo" / "cba_20240505_nbbo.csv"
    if edited.exists():
        (PROTO / "aside").mkdir(parents=True, exist_ok=True)
        edited.replace(PROTO / "aside" / edited.name)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    H.rm(SRC)
    n = export(Path(argv[0]))
    subprocess.run([sys.executable, "-m", "venv", str(PROTO / "venv")], check=True)
    subprocess.run([str(PROTO / "venv" / "bin" / "pip"), "install", "-q", *REQUIREMENTS], check=True)
    inputs()
    print(f"{H.rel(SRC)}: {n} files of {COMMIT[:7]}, venv {H.rel(PROTO / 'venv')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

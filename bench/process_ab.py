"""Jobs per second of two dpsim source trees, side by side: `dpsim process --force --no-aggregate` on one lake
with 1 and 2 workers, the trees taking turns round after round, so a load that comes and goes weighs on both.

    python -m bench.process_ab BASE_TREE LAKE CONFIG [--reps 3] [--base-lake COPY]

BASE_TREE is a checkout of the baseline (e.g. `git worktree add ../base <commit>`); the other tree is this
repository. `--base-lake`: a copy of LAKE for the baseline, when the two trees lay results out differently
(each would otherwise migrate the other's before every run). Each run is its own process under `/usr/bin/time`; the table gives the medians of jobs/s (jobs
of the run manifest over the process's wall time), CPU seconds (user + system of the process tree) and the
1-minute load, and the ratios of this tree to the base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(tree: Path, lake: str, config: str, workers: int) -> dict[str, float]:
    # run from inside the tree: `python -m` puts the working folder first on sys.path, before PYTHONPATH
    cmd = [sys.executable, "-m", "dpsim", "process", "--config", config, "--lake", lake, "--force"]
    cmd += ["--no-aggregate", "--workers", str(workers), "--json"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.NamedTemporaryFile("r") as times:
        start = time.perf_counter()
        out = subprocess.run(
            ["/usr/bin/time", "-f", "%U %S", "-o", times.name, *cmd],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - start
        user, system = (float(x) for x in times.read().split()[-2:])
    body = json.loads(out.stdout)
    jobs = body["partitions"]
    return {
        "jobs_s": jobs / wall,
        "cpu_s": user + system,
        "wall_s": wall,
        # the run's jobs alone: from the first submit to the last result
        "jobs_phase_s": float(body.get("seconds") or "nan"),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base", type=Path)
    p.add_argument("lake")
    p.add_argument("config")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--base-lake", type=Path, help="the baseline's own copy of LAKE")
    a = p.parse_args()
    lake, config = str(Path(a.lake).resolve()), str(Path(a.config).resolve())
    trees = {"base": a.base.resolve(), "this": REPO}
    lakes = {"base": str((a.base_lake or Path(a.lake)).resolve()), "this": lake}
    runs: dict[tuple[str, int], list[dict[str, float]]] = {(t, w): [] for t in trees for w in (1, 2)}
    for rep in range(a.reps + 1):  # round 0 warms the page cache and is not kept
        for w in (1, 2):
            for name, tree in trees.items():
                r = run(tree, lakes[name], config, w)
                print(
                    f"round {rep} {name} workers={w}: {r['jobs_s']:.2f} jobs/s, {r['cpu_s']:.1f} CPU-s, "
                    f"load {r['load']:.1f}",
                    flush=True,
                )
                if rep:
                    runs[(name, w)].append(r)
    med = {
        k: {
            m: statistics.median(r[m] for r in v)
            for m in ("jobs_s", "cpu_s", "wall_s", "jobs_phase_s", "load")
        }
        for k, v in runs.items()
    }
    print("\nworkers | base jobs/s | this jobs/s | ratio | base CPU-s | this CPU-s | ratio | load (median)")
    for w in (1, 2):
        b, t = med[("base", w)], med[("this", w)]
        print(
            f"{w} | {b['jobs_s']:.2f} | {t['jobs_s']:.2f} | {t['jobs_s'] / b['jobs_s']:.2f} | {b['cpu_s']:.1f} | "
            f"{t['cpu_s']:.1f} | {b['cpu_s'] / t['cpu_s']:.2f} | {b['load']:.1f} / {t['load']:.1f}"
        )
    for name in trees:
        one, two = med[(name, 1)], med[(name, 2)]
        serial = [one["wall_s"] - one["jobs_phase_s"], two["wall_s"] - two["jobs_phase_s"]]
        print(
            f"{name}: 1 -> 2 workers {two['jobs_s'] / one['jobs_s']:.2f}x the whole command, "
            f"{one['jobs_phase_s'] / two['jobs_phase_s']:.2f}x its jobs alone (jobs {one['jobs_phase_s']:.1f} -> "
            f"{two['jobs_phase_s']:.1f} s; the rest, start-up, planning, compaction and catalog: "
            f"{serial[0]:.1f} / {serial[1]:.1f} s); one worker used {one['cpu_s'] / one['wall_s']:.2f} cores"
        )


if __name__ == "__main__":
    main()

"""Where a command's time goes: py-spy (native + threads, sampled) and pyinstrument (Python, main thread).

    python -m bench.profile OUT_PREFIX -- COMMAND...

Writes bench/work/profiles/<name>.pyspy.txt (raw collapsed stacks), OUT_PREFIX.pyinstrument.txt (text tree),
and prints a JSON
summary: samples per thread kind, and the top (dpsim function -> native leaf library) pairs by share of
samples, so a slow stage is named with the code that owns it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<where>[^()]*)\)$")


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for f in stack.split(";"):
        m = _FRAME.match(f.strip())
        out.append((m.group("func"), m.group("where")) if m else (f.strip(), ""))
    return out


_IDLE = (
    "acquire_lock",
    "SimpleQueue_get",
    "cond_wait",
    "cond_timedwait",
    "sem_wait",
    "sem_clockwait",
    "epoll_wait",
    "futex_wait",
    "Condition.wait",
    "lock.acquire",
)


def _idle(frames: list[tuple[str, str]]) -> bool:
    """A thread blocked on a lock, queue or condition (py-spy --native reports these as active)."""
    return any(any(k in func for k in _IDLE) for func, _ in frames[-6:])


def summarize_pyspy(raw: Path, top: int = 15) -> dict[str, object]:
    idle: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    owners: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        n = int(count_s)
        frames = _frames(stack)
        head = frames[0][0] if frames else "?"
        kind = "main" if "MainThread" in head else ("shred pool" if "shred" in head else "other threads")
        if _idle(frames):
            idle[kind] += n
            continue
        total += n
        threads[kind] += n
        owner = "(no dpsim frame)"
        for func, where in frames:
            if where.startswith("dpsim/") or "/dpsim/" in where:
                owner = f"{func} ({where.rsplit(':', 1)[0]})"
        leaf_func, leaf_where = frames[-1] if frames else ("?", "")
        lib = leaf_where.split(":")[0] if leaf_where else leaf_func
        if ".so" in lib or lib.endswith(")"):
            lib = re.sub(r"\.so.*$", ".so", lib)
        owners[owner] += n
        leaves[f"{owner} -> {lib}"] += n
    share = lambda c: [{"what": k, "share": round(v / total, 3)} for k, v in c.most_common(top)]  # noqa: E731
    return {
        "samples": total,
        "idle_samples": dict(idle),
        "threads": {k: round(v / total, 3) for k, v in threads.items()} if total else {},
        "by_dpsim_function": share(owners),
        "by_function_and_leaf": share(leaves),
    }


def main(argv: list[str]) -> int:
    if "--" not in argv or len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    prefix = Path(argv[0])
    cmd = argv[argv.index("--") + 1 :]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    out: dict[str, object] = {"command": cmd}
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    # The raw stacks are megabytes: they go to bench/work/profiles/ (not kept in git); the summary is printed.
    raw = Path(__file__).resolve().parent / "work" / "profiles" / (prefix.name + ".pyspy.txt")
    raw.parent.mkdir(parents=True, exist_ok=True)
    if Path(spy).exists():
        r = subprocess.run(
            [
                spy,
                "record",
                "--native",
                "--threads",
                "--rate",
                "100",
                "--format",
                "raw",
                "-o",
                str(raw),
                "--",
                *cmd,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if r.returncode == 0 and raw.exists():
            out["pyspy"] = summarize_pyspy(raw)
            out["pyspy_file"] = str(raw)
        else:
            out["pyspy_error"] = r.stderr[-500:]
    else:
        out["pyspy_error"] = "py-spy not installed (pip install -e '.[bench]')"
    if cmd and Path(cmd[0]).name.startswith("python"):
        text = prefix.with_suffix(".pyinstrument.txt")
        r = subprocess.run(
            [cmd[0], "-m", "pyinstrument", "-r", "text", "--no-color", "-o", str(text), *cmd[1:]],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if r.returncode == 0:
            out["pyinstrument_file"] = str(text)
        else:
            out["pyinstrument_error"] = r.stderr[-500:]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

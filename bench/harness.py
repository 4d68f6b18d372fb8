"""Benchmark plumbing: run a command as its own process under /usr/bin/time -v, repeat it, cache inputs.

Every figure is a whole process: wall time and "Maximum resident set size" from GNU time, plus the peak of
the summed RSS of the process tree sampled with psutil every 50 ms (time's figure is the largest single
process; the tree sum catches multi-process tools). `peak_rss_mb` is the larger of the two.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"
PY = (
    str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable
)
DPSIM = [PY, "-m", "dpsim"]
TIME = "/usr/bin/time"
# What a measured command printed last, kept for its own JSON report (the kernel's is ~6 KB: 3 partitions × 8 scenarios).
STDOUT_TAIL = 65_536


def rel(p: str | Path) -> str:
    """Path relative to the repository (commands are run from there), for readable recorded commands."""
    p = Path(p)
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def compile_sources(python: str, folder: Path) -> None:
    """Byte-compile a tree's modules, as installing a package does: a process measured where bytecode is not
    written (PYTHONDONTWRITEBYTECODE, an editable install never run before) would otherwise compile every
    module it imports on each run (0.2-0.3 s for `dpsim process` on the eleventh stop's machine)."""
    subprocess.run([python, "-m", "compileall", "-q", str(folder)], cwd=REPO, check=True)


def compile_kernel() -> None:
    """Compile dpsim's replay kernel and rank pass into numba's cache now (a no-op when the cache is current)."""
    code = "from dpsim.steps.matching import compile_kernel; from dpsim.ranks import load_kernel; compile_kernel(); load_kernel()"
    subprocess.run([PY, "-c", code], cwd=REPO, check=True)


def module(name: str) -> list[str]:
    """The command that runs the harness' program `bench.<name>` (from the repository root)."""
    return [PY, "-m", f"bench.{name}"]


def task(name: str, *args: str) -> str:
    """Run a `bench.tasks` task in its own process; its last line of output."""
    out = subprocess.run(
        [*module("tasks"), name, *args], cwd=REPO, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


# ---- one measured process ------------------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float  # perf_counter around the process (GNU time's figure has 10 ms resolution)
    peak_rss_mb: float
    time_wall_s: float  # GNU time's elapsed wall clock
    maxrss_mb: float  # GNU time: the largest single process
    tree_rss_mb: float  # psutil: peak of the summed RSS of the process tree
    user_s: float
    sys_s: float
    cpu_pct: float
    rc: int
    load_1m: float = 0.0  # the machine's 1-minute load average when the run started (others share it)
    stdout_tail: str = ""


_TIME_FIELDS = {
    "Elapsed (wall clock) time (h:mm:ss or m:ss)": "wall",
    "Maximum resident set size (kbytes)": "maxrss_kb",
    "User time (seconds)": "user",
    "System time (seconds)": "sys",
    "Percent of CPU this job got": "cpu",
    "Exit status": "status",
}


def _parse_time_v(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().rpartition(": ")
        if not sep or key not in _TIME_FIELDS:
            continue
        name = _TIME_FIELDS[key]
        value = value.strip()
        if name == "wall":
            secs = 0.0
            for part in value.split(":"):
                secs = secs * 60 + float(part)
            out[name] = secs
        elif name == "cpu":
            out[name] = float(value.rstrip("%") or 0)
        else:
            out[name] = float(value)
    return out


def run_once(
    cmd: Sequence[str],
    *,
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
    timeout: float = 4 * 3600,
) -> Sample:
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("r", suffix=".time", delete=False) as tf:
        time_file = tf.name
    full_env = {**os.environ, **(env or {})}
    peak_tree = 0
    load = os.getloadavg()[0]
    stop = threading.Event()
    with open(log, "ab") as lf:
        lf.write(f"\n$ {shlex.join(cmd)}\n".encode())
        lf.flush()
        proc = subprocess.Popen(
            [TIME, "-v", "-o", time_file, *cmd], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=lf
        )

        def sample() -> None:
            nonlocal peak_tree
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                total = 0
                try:
                    for child in root.children(recursive=True):  # the time process itself is excluded
                        with contextlib.suppress(psutil.Error):
                            total += child.memory_info().rss
                except psutil.Error:
                    break
                peak_tree = max(peak_tree, total)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            out, _ = proc.communicate(timeout=timeout)
            wall = time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
        lf.write(out)
    text = Path(time_file).read_text(errors="replace")
    os.unlink(time_file)
    t = _parse_time_v(text)
    rc = int(t.get("status", proc.returncode if proc.returncode is not None else -1))
    if proc.returncode and not rc:
        rc = proc.returncode
    maxrss = t.get("maxrss_kb", 0.0) / 1024
    tree = peak_tree / 2**20
    return Sample(
        wall_s=round(wall, 4),
        time_wall_s=t.get("wall", float("nan")),
        peak_rss_mb=round(max(maxrss, tree), 1),
        maxrss_mb=round(maxrss, 1),
        tree_rss_mb=round(tree, 1),
        user_s=t.get("user", 0.0),
        sys_s=t.get("sys", 0.0),
        cpu_pct=t.get("cpu", 0.0),
        rc=rc,
        load_1m=round(load, 2),
        stdout_tail=out.decode(errors="replace")[-STDOUT_TAIL:],
    )


@dataclass
class Measured:
    """A command repeated `reps` times after `warmup` runs; medians of wall time and peak RSS."""

    command: str
    env: dict[str, str]
    runs: list[Sample]
    warmup: int
    wall_s: float = float("nan")
    peak_rss_mb: float = float("nan")
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["runs"]:
            r.pop("stdout_tail", None)
        return d

    def last_json(self) -> dict[str, Any]:
        """The last JSON object a peer printed on stdout (its own report), or {}."""
        if not self.runs:
            return {}
        for line in reversed(self.runs[-1].stdout_tail.splitlines()):
            line = line.strip()
            if line.startswith("{") and line.endswith("}"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return {}


@dataclass
class Spec:
    """One command of a measurement: `before` runs before each run (not timed), `after(i)` after each and may
    return a dict (e.g. files written), of which the last run's is kept in `extra`."""

    cmd: Sequence[str]
    label: str
    env: dict[str, str] = field(default_factory=dict)
    before: Callable[[], None] | None = None
    after: Callable[[int], dict[str, Any] | None] | None = None


def measure(
    cmd: Sequence[str],
    *,
    label: str,
    reps: int,
    warmup: int = 1,
    env: dict[str, str] | None = None,
    before: Callable[[], None] | None = None,
    after: Callable[[int], dict[str, Any] | None] | None = None,
    timeout: float = 4 * 3600,
) -> Measured:
    """Run `cmd` warmup + reps times (see `Spec` for `before` and `after`)."""
    spec = Spec(cmd, label, env or {}, before, after)
    return measure_turns({label: spec}, reps=reps, warmup=warmup, timeout=timeout)[label]


def measure_turns(
    specs: dict[str, Spec], *, reps: int, warmup: int = 1, timeout: float = 4 * 3600
) -> dict[str, Measured]:
    """Run every command warmup + reps times, the commands taking turns round by round, so that a change of
    the machine's speed (it varies ~2x through a day here) weighs on all of them alike and the ratios of
    one round are side by side. A failing run stops that command's repetitions and records the error with
    the tail of its log; the others go on."""
    logs, out = {}, {}
    for key, spec in specs.items():
        logs[key] = WORK / "logs" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', spec.label)}.log"
        if logs[key].exists():
            logs[key].unlink()
        out[key] = Measured(command=shlex.join(spec.cmd), env=spec.env, runs=[], warmup=warmup)
        shown = " ".join(f"{k}={v}" for k, v in spec.env.items())
        say(f"  [{spec.label}] {shown + ' ' if shown else ''}{out[key].command}")
    for i in range(warmup + reps):
        for key, spec in specs.items():
            m = out[key]
            if m.error:
                continue
            if spec.before:
                spec.before()
            s = run_once(spec.cmd, log=logs[key], env=spec.env, timeout=timeout)
            extra = spec.after(i) if spec.after else None
            if s.rc != 0:
                tail = logs[key].read_text(errors="replace")[-1500:] if logs[key].exists() else ""
                m.error = f"exit {s.rc} (log {rel(logs[key])}): ...{tail[-600:]}"
                say(f"    [{spec.label}] FAILED: {m.error}")
                continue
            if i >= warmup:
                m.runs.append(s)
            if extra:
                m.extra = extra
            say(
                f"    [{spec.label}] {'warm-up' if i < warmup else f'run {i - warmup + 1}/{reps}'}: "
                f"{s.wall_s:.2f} s, peak RSS {s.peak_rss_mb:.0f} MB (load {s.load_1m:.1f})"
            )
    for m in out.values():
        if m.runs:
            m.wall_s = round(statistics.median(r.wall_s for r in m.runs), 3)
            m.peak_rss_mb = round(statistics.median(r.peak_rss_mb for r in m.runs), 1)
    return out


def turn_ratios(base: Sequence[Sample], other: Sequence[Sample]) -> list[float]:
    """`other`'s wall time over `base`'s, round by round, for the rounds both completed (`measure_turns`:
    a failed command runs no later rounds)."""
    return [o.wall_s / b.wall_s for b, o in zip(base, other, strict=False)]


# ---- inputs: generated drops, cached under bench/work/inputs ---------------------------------------------


def free_gb(path: Path = REPO) -> float:
    return shutil.disk_usage(path).free / 1e9


def need_disk(gb: float, what: str) -> None:
    free = free_gb(WORK if WORK.exists() else REPO)
    if free < gb:
        raise RuntimeError(f"{what} needs ~{gb:.1f} GB of free disk, {free:.1f} GB free under {WORK}")


def drop(
    name: str,
    *,
    securities: int,
    days: int,
    start: str = "2024-10-01",
    seed: int = 11,
    scale_bytes: int | None = None,
    gz: bool = False,
) -> dict[str, Any]:
    """A synthetic drop from dpsim.synth, generated once and reused (keyed by its parameters).

    With gz=True an `orders.csv.gz` (gzip -6, the tool's default level) is made next to the plain file,
    so both hold exactly the same rows.
    """
    scale = f"{scale_bytes / 1e6:g}MB" if scale_bytes else "default"
    key = f"{name}-s{securities}-d{days}-{start}-seed{seed}-{scale}"
    d = WORK / "inputs" / key
    meta_path = d / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if not meta or not Path(meta["files"]["orders"]).exists():
        need_disk(2.0 * (scale_bytes or 50e6) / 1e9 + 1, f"generating {key}")
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        say(f"  generating {key} ...")
        t0 = time.perf_counter()
        args = [str(d), str(securities), str(days), start, str(seed), str(scale_bytes or "")]
        out = task("synth", *args)
        meta = json.loads(out.strip().splitlines()[-1])
        meta.update(
            key=key,
            params=dict(securities=securities, days=days, start=start, seed=seed, scale=scale),
            gen_seconds=round(time.perf_counter() - t0, 1),
        )
        meta_path.write_text(json.dumps(meta, indent=1))
        say(f"  generated {key} in {meta['gen_seconds']} s: {meta['rows']['orders']:,} order rows")
    if gz and not Path(meta["files"]["orders"] + ".gz").exists():
        src = meta["files"]["orders"]
        need_disk(meta["bytes"]["orders"] / 3e9 + 0.5, f"gzipping {key}")
        say(f"  gzip -6 {rel(src)} ...")
        tmp = src + ".gz.tmp"
        with open(tmp, "wb") as fh:
            subprocess.run(["gzip", "-6", "-c", src], stdout=fh, check=True)
        os.replace(tmp, src + ".gz")
    if gz:
        meta["orders_gz"] = meta["files"]["orders"] + ".gz"
        meta["orders_gz_bytes"] = Path(meta["orders_gz"]).stat().st_size
    return meta


def rm(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def drop_page_cache_warm(path: str) -> None:
    """Read a file once so the measured runs start from a warm page cache."""
    with open(path, "rb") as fh:
        while fh.read(16 << 20):
            pass


def partition_files(root: Path) -> dict[str, Any]:
    """Parquet files and partitions under a hive-partitioned output: how split the partitions are."""
    per_part: dict[Path, int] = {}
    total_bytes = 0
    for p in root.rglob("*.parquet"):
        if "_tmp" in p.parts or "_rejects" in p.parts:
            continue
        per_part[p.parent] = per_part.get(p.parent, 0) + 1
        total_bytes += p.stat().st_size
    counts = list(per_part.values())
    return {
        "partitions": len(counts),
        "files": sum(counts),
        "max_files_per_partition": max(counts) if counts else 0,
        "partitions_split": sum(1 for c in counts if c > 1),
        "out_mb": round(total_bytes / 1e6, 1),
    }


# ---- machine description -------------------------------------------------------------------------------


def _git_commit() -> str:
    """HEAD's commit read from .git files (no git process)."""
    g = REPO / ".git"
    try:
        head = (g / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        p = g / ref
        if p.exists():
            return p.read_text().strip()
        packed = g / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    with contextlib.suppress(OSError, json.JSONDecodeError, subprocess.CalledProcessError):
        versions.update(json.loads(task("versions")))
    with contextlib.suppress(OSError, IndexError):
        versions["gzip"] = subprocess.run(
            ["gzip", "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0]
    du = shutil.disk_usage(REPO)
    return {
        "nproc": os.cpu_count(),
        "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "disk_free_gb": round(du.free / 1e9, 1),
        "versions": versions,
        "git_commit": _git_commit(),
    }

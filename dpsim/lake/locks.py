"""One writer per lake scope: a lock file per scope that names its holder (PID, host, command, start).

    with lake.lock("results"):          # process, aggregate: the results and aggregates they rewrite
    with lake.lock(f"source-{sid}"):    # shred: one source
    with lake.lock("catalog", wait_s=60):

**A local or shared filesystem.** `<root>/_locks/<scope>.lock` is held with `flock`, which the kernel
  releases when its holder dies however it dies (SIGKILL, out of memory, power loss of an NFS client once
  its lease ends), so a stale lock never blocks anyone: the file left behind only names its last holder,
  and the next writer takes it over (and logs that it did). A second writer waits up to `wait_s`, then
  fails with one line naming the holder. Locks are re-entrant within a process (process takes "results",
  then its aggregation takes it again).

**An object store** has no flock: the lock is an object created with a conditional PUT (`If-None-Match:
  *`, refused when it exists) and deleted on release. A holder that died leaves it behind: on the same host
  it is detected (its PID is gone) and removed; a holder on another host cannot be checked from here, so
  the error names it and how to remove the object once that run is known to be gone. Where the store does
  not support conditional PUTs, the rule is one writer per lake, as documented in the README.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dpsim.errors import LakeError, file_in_the_way

if TYPE_CHECKING:
    from upath import UPath

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often a waiting writer retries


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: written into the lock file when it is taken."""

    pid: int
    host: str
    command: str
    since: str  # UTC, to the second
    started: float = 0.0  # the holder process's start time (tells a reused PID from the holder)

    @classmethod
    def me(cls) -> Holder:
        import psutil  # on use: `dpsim sql` and `open_lake` take no lock

        try:
            started = psutil.Process().create_time()
        except psutil.Error:  # pragma: no cover - /proc unreadable
            started = 0.0
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) if sys.argv else "",
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            started=started,
        )

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            body = json.loads(data)
            return cls(
                **{k: body[k] for k in ("pid", "host", "command", "since")}, started=body.get("started", 0)
            )
        except (ValueError, TypeError, KeyError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.since} UTC: {self.command}"

    def alive(self) -> bool:
        """Whether the holder still runs (only answerable on its own host; elsewhere assume it does)."""
        if self.host != socket.gethostname():
            return True
        import psutil

        try:
            proc = psutil.Process(self.pid)
            return not self.started or abs(proc.create_time() - self.started) < 1.0
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:  # pragma: no cover - not ours to inspect: assume alive
            return True


def owner_tag() -> str:
    """This process as a folder name: `<host>-<pid>` (its scratch folder in the lake)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def owner_gone(tag: str) -> bool:
    """Whether `tag` (see `owner_tag`) names a process of this host that no longer runs."""
    import psutil

    host, _, pid = tag.rpartition("-")
    return host == socket.gethostname() and pid.isdigit() and not psutil.pid_exists(int(pid))


class LakeLocked(LakeError):
    """Another dpsim process writes this scope of the lake."""


def _busy(root: UPath, scope: str, holder: Holder | None, extra: str = "") -> LakeLocked:
    who = holder.describe() if holder is not None else "holder unknown"
    return LakeLocked(
        f"{root}: another dpsim process is writing {_what(scope)} ({who}); wait for it to finish and rerun"
        + extra
    )


def _what(scope: str) -> str:
    if scope.startswith("source-"):
        return f"source {scope.removeprefix('source-')}"
    if scope.startswith("reference-"):
        return f"the {scope.removeprefix('reference-')} reference file"
    return {"results": "the results and aggregates", "catalog": "the catalog"}.get(scope, scope)


# ---- a filesystem: flock ----------------------------------------------------------------------------------

_held: dict[str, tuple[int, int]] = {}  # lock file -> (descriptor, depth): re-entrant within a process
_held_guard = threading.Lock()


@contextlib.contextmanager
def file_lock(root: UPath, folder: str, scope: str, wait_s: float) -> Iterator[None]:
    """Hold `<folder>/<scope>.lock` exclusively (see the module docstring)."""
    path = os.path.join(folder, f"{scope}.lock")
    with _held_guard:
        if path in _held:
            fd, depth = _held[path]
            _held[path] = (fd, depth + 1)
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            _release(path)
        return
    fd = _acquire(root, folder, path, scope, time.monotonic() + wait_s)
    with _held_guard:
        _held[path] = (fd, 1)
    try:
        yield
    finally:
        _release(path)


def _acquire(root: UPath, folder: str, path: str, scope: str, deadline: float) -> int:
    """The locked descriptor of the lock file. A releasing holder unlinks the file: a lock taken on a file
    that is no longer the one at `path` is worthless, so it is dropped and taken again."""
    while True:
        fd = _open_lock_file(root, folder, path)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise _busy(root, scope, Holder.parse(_read_fd(fd))) from None
                    time.sleep(POLL_S)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            st = os.fstat(fd)
            if current is None or (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):
                os.close(fd)  # unlinked by the holder that released it: take the new one
                continue
            previous = Holder.parse(_read_fd(fd))
            if previous is not None:
                log.info(
                    "lock %s: taken over from %s, which ended without releasing it", path, previous.describe()
                )
            _write_fd(fd, json.dumps(asdict(Holder.me())).encode())
            return fd
        except BaseException:
            os.close(fd)
            raise


def _release(path: str) -> None:
    with _held_guard:
        fd, depth = _held[path]
        if depth > 1:
            _held[path] = (fd, depth - 1)
            return
        del _held[path]
    with contextlib.suppress(OSError):
        os.unlink(path)  # while still locked: a waiter that locks the unlinked file notices and retries
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(path))  # the lake keeps no trace of a lock (fails while others exist)
    os.close(fd)  # closing the descriptor releases the flock


def _open_lock_file(root: UPath, folder: str, path: str) -> int:
    """The lock file, created when missing; a lake that cannot take one fails here, before any work."""
    for _ in range(100):
        try:
            os.makedirs(folder, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # the folder was removed by a releasing holder meanwhile
            continue
        except OSError as exc:
            raise LakeError(unwritable(root, exc)) from exc
    raise LakeError(f"{root}: cannot create a lock file in {folder}; check the lake folder")


def unwritable(root: UPath, exc: OSError) -> str:
    """One line for a lake that cannot be written (read-only, not a folder, no space)."""
    where = exc.filename or root
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{root}: the lake is read-only ({where}: {exc.strerror}); use a writable --lake, or fix its permissions"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocking = file_in_the_way(exc.filename) if exc.filename else None
        if blocking == os.path.abspath(str(root)):
            return f"{root}: not a lake folder (it is a file); pass --lake DIR of a folder"
        return f"{root}: a file is where a folder should be ({blocking or where}): move it away, then rerun"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{root}: no space left on the lake's disk ({where}); free some space, then rerun"
    return (
        f"{root}: cannot write the lake ({where}: {exc.strerror or exc}); check the path and its permissions"
    )


def _read_fd(fd: int) -> bytes:
    with contextlib.suppress(OSError):
        return os.pread(fd, 4096, 0)
    return b""


def _write_fd(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


# ---- an object store: a conditionally created object ------------------------------------------------------


@contextlib.contextmanager
def object_lock(root: UPath, folder: UPath, scope: str, wait_s: float) -> Iterator[None]:
    """Hold `<folder>/<scope>.lock`, an object created only when absent (see the module docstring).

    Call it holding a local `file_lock` of the same scope: writers on this host then queue there, so the
    one that finds a lock object left by a dead process of this host removes it without racing another."""
    path = folder / f"{scope}.lock"
    key = str(path)
    with _held_guard:
        if key in _held:
            _held[key] = (-1, _held[key][1] + 1)
            reentered = True
        else:
            reentered = False
    if not reentered:
        _create_object(root, path, scope, wait_s)
        with _held_guard:
            _held[key] = (-1, 1)
    try:
        yield
    finally:
        with _held_guard:
            depth = _held[key][1]
            if depth > 1:
                _held[key] = (-1, depth - 1)
            else:
                del _held[key]
        if depth == 1:
            with contextlib.suppress(OSError):
                path.fs.rm_file(path.path)


def _create_object(root: UPath, path: UPath, scope: str, wait_s: float) -> None:
    fs: Any = path.fs
    deadline = time.monotonic() + wait_s
    body = json.dumps(asdict(Holder.me())).encode()
    while True:
        try:
            fs.pipe_file(path.path, body, mode="create")
            return
        except FileExistsError:
            pass
        except OSError as exc:
            if "PreconditionFailed" not in str(exc) and "412" not in str(exc):
                raise LakeError(unwritable(root, exc)) from exc
        try:
            holder = Holder.parse(fs.cat_file(path.path))
        except FileNotFoundError:  # released meanwhile
            continue
        if holder is not None and not holder.alive():
            log.info("lock %s: removing it, its holder %s is gone", path, holder.describe())
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(path.path)
            continue
        if time.monotonic() >= deadline:
            raise _busy(
                root,
                scope,
                holder,
                f" (if that run is known to be gone, delete the lock object {path} and rerun)",
            )
        time.sleep(POLL_S)

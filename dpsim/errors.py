"""The few exception types dpsim raises; their messages are the user-facing wording."""

from __future__ import annotations

import errno
import os


class DpsimError(Exception):
    """Base class: the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 1


class ConfigError(DpsimError):
    """The configuration file or a CLI override is invalid; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:  # one problem: one line
            super().__init__(f"invalid configuration: {problems[0]}")
        else:
            super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


class InputError(DpsimError):
    """A raw input file cannot be used (missing column, unreadable, corrupt); names the file."""


class LakeError(DpsimError):
    """The lake is missing something a command needs (run `dpsim shred` first, ...)."""


class TargetError(DpsimError):
    """An export target (a database, a folder) cannot be reached or written; names it, never its password."""


class JobsFailed(DpsimError):
    """Some partition jobs failed; the message ends with the command that reruns only them."""

    exit_code = 3


class Interrupted(DpsimError):
    """The user stopped a run (Ctrl-C); the message says what was kept and how to go on."""

    exit_code = 130


def first_line(exc: BaseException) -> str:
    """An exception's first non-blank line (DuckDB's messages run to several), or its type's name."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def os_error_text(exc: OSError) -> str:
    """What an OS error means for the lake and what to do, in words (the caller puts the path in front)."""
    where = f" ({exc.filename})" if exc.filename else ""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device{where}: free space on that disk, then rerun"
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write: {exc.strerror}{where}: make the lake writable or use another --lake"
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocking = file_in_the_way(exc.filename) if exc.filename else None
        return f"a file is where a folder should be ({blocking or exc.filename}): move it away, then rerun"
    if code == errno.ENOENT:
        return f"no such file or folder{where}: was it removed meanwhile? rerun"
    return f"{exc.strerror or exc}{where}"


def file_in_the_way(path: str | os.PathLike[str]) -> str | None:
    """The file (not a folder) at `path` or at the nearest of its parents that exists, if any."""
    p = os.path.abspath(os.fspath(path))
    while True:
        if os.path.lexists(p):
            return p if not os.path.isdir(p) else None
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent

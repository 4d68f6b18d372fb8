"""The few exception types dpsim raises; their messages are the user-facing wording."""

from __future__ import annotations


class DpsimError(Exception):
    """Base class: the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 1


class ConfigError(DpsimError):
    """The configuration file or a CLI override is invalid; lists every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
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

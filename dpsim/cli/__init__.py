"""Command line: parses arguments, calls the library, renders results. No pipeline logic lives here.

`parser` builds the argparse tree, `commands` holds one function per subcommand, `render` the terminal
tables, `common` what they share."""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Sequence

from dpsim.cli.common import FAULT_ENV
from dpsim.cli.parser import _parser
from dpsim.errors import DpsimError, Interrupted

__all__ = ["FAULT_ENV", "_parser", "entry", "main"]


def main(argv: Sequence[str] | None = None, *, exiting: bool = False) -> int:
    """Run one command; `exiting`: the process ends when it returns (see `entry`)."""
    parser = _parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # run log files get INFO; the console only what was asked
        handler.setLevel(level)
    brief = exiting and getattr(args, "brief", False)
    if brief:
        # A short read that ends the process: reference counting frees what it allocates, so the cycle
        # collector only adds passes over every imported object, and the last of them at exit.
        gc.disable()
    try:
        return int(args.func(args) or 0)
    except DpsimError as exc:
        if args.verbose:
            raise
        print(f"dpsim: {'' if isinstance(exc, Interrupted) else 'error: '}{exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the reader stopped reading (`dpsim sql … | head`): no error to report
        if exiting:  # the flush at exit writes nowhere instead of failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1  # as rich ends a printed table cut short
    except OSError as exc:  # one not worded by the library: still one line, with what to do
        if args.verbose:
            raise
        from dpsim.errors import os_error_text

        print(f"dpsim: error: {os_error_text(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dpsim: interrupted", file=sys.stderr)
        return 130
    finally:
        if brief:
            gc.freeze()  # the interpreter's collection at exit skips frozen objects: nothing left to walk


def entry() -> int:
    """The process's entry point (the `dpsim` script and `python -m dpsim`): `main`, knowing that the process
    ends with it, so that a brief command (`dpsim sql`) need not pay for collecting its garbage."""
    return main(exiting=True)

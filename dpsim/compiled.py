"""What every numba-compiled loop of dpsim shares: loading numba without scipy, and on a thread of its own.

numba looks for scipy.linalg (a BLAS for np.dot and np.linalg, which dpsim's loops do not use) as it imports
and types its first function: ~0.15 s of every process that compiles or loads one, where scipy is installed
(the test and bench environments). The replay kernel (dpsim.steps.kernel) and the rank pass
(dpsim.ranks_kernel) are imported and first called inside `without_scipy`. Loading one from numba's cache
costs a process that has not loaded numba yet ~0.5 s (numba's import, then LLVM's start), so a command
starts it on a thread (`load_in_background`) while its main thread reads in Polars or DuckDB, which
release the GIL.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_loaders: dict[str, threading.Thread] = {}  # the one loader thread of each compiled loop, once started
_starting = threading.Lock()


def load_in_background(name: str, load: Callable[[], None]) -> threading.Thread:
    """Run `load` (a compiled loop's import and first call) on a daemon thread, once per process and name.
    Returns the thread, for a caller that must not exit before it ends (an exit cuts numba off mid-load)."""
    with _starting:
        if name not in _loaders:
            _loaders[name] = threading.Thread(target=load, name=f"dpsim-{name}-load", daemon=True)
            _loaders[name].start()
        return _loaders[name]


@contextmanager
def without_scipy() -> Iterator[None]:
    """Within this block an import of scipy fails, so numba does without; a process that has scipy loaded
    already keeps it (dpsim itself never imports scipy)."""
    if "scipy" in sys.modules:
        yield
        return
    sys.modules["scipy"] = None  # type: ignore[assignment]  # Python's marker: importing it raises ImportError
    try:
        yield
    finally:
        if "scipy" in sys.modules and sys.modules["scipy"] is None:
            del sys.modules["scipy"]

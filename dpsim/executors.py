"""Where partition jobs run: the local process pool (default) or a Dask cluster via concurrent.futures."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterator
from contextlib import contextmanager

from dpsim.config import Run
from dpsim.errors import DpsimError


@contextmanager
def open_executor(run: Run) -> Iterator[cf.Executor | None]:
    """None for `local` (the job runner manages its own crash-tolerant process pool), else a Dask executor.

    Dask tasks get `retries=run.max_retries`: a task whose worker is lost is resubmitted by the
    scheduler; jobs return only small records, so a retry costs one partition.
    """
    if run.executor == "local":
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise DpsimError(
            f"executor {run.executor!r} needs Dask: pip install 'dpsim[dask]' (or use --executor local)"
        ) from exc
    if run.executor.startswith("dask://"):
        address = run.executor.removeprefix("dask://")
        try:
            client = Client(f"tcp://{address}", timeout="10s")
        except OSError as exc:
            raise DpsimError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        cluster = None
    else:
        n = int(run.executor.split(":", 1)[1]) if ":" in run.executor else run.effective_workers
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        yield client.get_executor(retries=run.max_retries, pure=False)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

"""Progress reporting: the only importer of rich; a silent implementation for tests, CI and libraries."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from rich.progress import ProgressColumn
from rich.text import Text


class Progress(Protocol):
    """What library code sees: open a task with a total, advance it, print a final table."""

    def task(self, description: str, total: float | None, unit: str = "") -> Any: ...

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...


class _SilentTask:
    def advance(self, n: float = 1, **fields: Any) -> None:
        pass


class SilentProgress:
    """No output at all (tests, libraries, workers)."""

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[_SilentTask]:
        yield _SilentTask()

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        pass


class PlainProgress(SilentProgress):
    """No bars (CI, logs), but the final tables are printed as plain text."""

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        from rich.console import Console

        _render_table(Console(file=sys.stdout, width=160, no_color=True), title, columns, rows)


class RichProgress:
    """Bars with throughput and ETA on a terminal, and rich tables."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)

    @contextmanager
    def task(self, description: str, total: float | None, unit: str = "") -> Iterator[Any]:
        from rich import progress as rp

        columns: list[Any] = [
            rp.TextColumn("[bold]{task.description}"),
            rp.BarColumn(),
            rp.TaskProgressColumn(),
        ]
        if unit == "bytes":
            columns += [
                rp.DownloadColumn(),
                rp.TransferSpeedColumn(),
                rp.TextColumn("{task.fields[rows]} rows"),
            ]
        else:
            columns += [
                rp.MofNCompleteColumn(),
                _RateColumn(unit or "jobs"),
                rp.TextColumn("{task.fields[status]}"),
            ]
        columns += [rp.TimeElapsedColumn(), rp.TimeRemainingColumn()]
        with rp.Progress(*columns, console=self.console, transient=False) as bar:
            tid = bar.add_task(description, total=total, rows="0", status="")

            class _Task:
                def advance(self, n: float = 1, **fields: Any) -> None:
                    bar.update(tid, advance=n, **{k: str(v) for k, v in fields.items()})  # type: ignore[arg-type]

            yield _Task()

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        from rich.console import Console

        _render_table(Console(), title, columns, rows)


class _RateColumn(ProgressColumn):
    """Items per second (jobs/s), which rich only offers for byte counts."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} {self.unit}/s" if speed else f"- {self.unit}/s")


def _render_table(console: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    t = Table(title=title)
    for c in columns:
        t.add_column(str(c))
    for r in rows:
        t.add_row(*[_fmt(v) for v in r])
    console.print(t)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        # order ids and ns timestamps (>= 1e12) print bare, so they can be pasted into a WHERE clause
        return str(v) if abs(v) >= 10**12 else f"{v:,}"
    return "" if v is None else str(v)


def for_terminal() -> Progress:
    """Rich bars on an interactive terminal; plain tables in CI and when output is redirected."""
    if os.environ.get("CI") or not sys.stderr.isatty():
        return PlainProgress()
    return RichProgress()

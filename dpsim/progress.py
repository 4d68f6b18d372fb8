"""Progress reporting: the only importer of rich; a silent implementation for tests, CI and libraries."""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TextIO


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
    """No bars (CI, logs), but the final tables are printed as plain text, as wide as the terminal
    (`COLUMNS`, else 80)."""

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        width = shutil.get_terminal_size((80, 24)).columns

        def console() -> Any:
            from rich.console import Console

            return Console(file=sys.stdout, width=width, no_color=True)

        _render_table(console, sys.stdout, width, title, columns, rows)


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
                _rate_column(unit or "jobs"),
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

        width = shutil.get_terminal_size((80, 24)).columns
        _render_table(Console, sys.stdout, width, title, columns, rows)


def _rate_column(unit: str) -> Any:
    """Items per second (jobs/s), which rich only offers for byte counts (rich.progress imported here: a
    command that prints only a table does not pay for it)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s")

    return RateColumn()


def _render_table(
    console: Callable[[], Any],
    out: TextIO,
    width: int,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """A table that fits `width`: text cells wrap at spaces (a rich table from `console()`); when even that
    is too wide, one block per row instead (column: value lines), as plain text on `out`: a wide answer such
    as `SELECT * FROM global_summary` prints hundreds of lines, which rich would lay out one by one. No cell
    is ever cut to `…`."""
    cells = [[_fmt(v, str(c)) for v, c in zip(r, columns, strict=False)] for r in rows]
    # the narrowest the table can be without cutting a word: each column its longest word, 2 between
    words = [
        max((len(w) for w in (str(c), *(r[i] for r in cells)) for w in w.split()), default=1)
        for i, c in enumerate(columns)
    ]
    if sum(words) + 2 * (len(words) - 1) <= width:
        from rich import box
        from rich.table import Table

        t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        for c in columns:
            t.add_column(str(c))  # wraps at spaces; its minimum width is the longest word
        for r in cells:
            t.add_row(*r)
        shown = console()
        shown.print(t)
        shown.print()
        return
    named = [str(c) or f"column {i + 1}" for i, c in enumerate(columns)]
    label = max((len(c) for c in named), default=0)
    lines = [title] if title else []
    for i, r in enumerate(cells):
        lines.append(f"[{i + 1}]")
        lines.extend(f"  {name.ljust(label)}  {value}" for name, value in zip(named, r, strict=False))
    out.write("".join(f"{part}\n" for line in lines for part in _fold(line, width)) + "\n")
    out.flush()


def _fold(line: str, width: int) -> list[str]:
    """A line in pieces of at most `width` characters, broken at spaces where it can be."""
    if len(line) <= width:
        return [line]
    return textwrap.wrap(line, width, break_on_hyphens=False, replace_whitespace=False) or [line[:width]]


# Columns whose integers are identifiers or ns timestamps: printed bare, to be pasted into a WHERE clause.
_BARE = re.compile(r"(^|_)(id|ids|code|pid|time|timestamp|sequence|open|ns)$|(id|type)$")


def _fmt(v: Any, column: str = "") -> str:
    if isinstance(v, float):
        if v != 0 and abs(v) < 1e-3:  # p-values and other small figures: 2.9e-14, never 0.000
            return f"{v:.2e}"
        return f"{v:,.3f}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        # ids and ns timestamps print bare (by column name, and any int >= 1e12)
        return str(v) if abs(v) >= 10**12 or _BARE.search(column.lower()) else f"{v:,}"
    return "" if v is None else str(v)


def for_terminal() -> Progress:
    """Rich bars on an interactive terminal; plain tables in CI and when output is redirected."""
    if os.environ.get("CI") or not sys.stderr.isatty():
        return PlainProgress()
    return RichProgress()

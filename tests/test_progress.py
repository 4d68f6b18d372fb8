"""Terminal tables: they fit the terminal (80 columns when it is not one), no cell is cut to `…`, p-values
print in scientific notation and ids and ns timestamps bare, so they can be pasted into a WHERE clause."""

from __future__ import annotations

import io

from rich.console import Console

from dpsim.progress import _fmt, _render_table


def render(columns: tuple[str, ...], rows: list[tuple[object, ...]], width: int = 80) -> list[str]:
    buf = io.StringIO()
    _render_table(lambda: Console(file=buf, width=width, no_color=True), buf, width, "a title", columns, rows)
    return buf.getvalue().splitlines()


def test_small_floats_print_in_scientific_notation_ids_and_timestamps_bare() -> None:
    assert _fmt(2.9e-14, "p_value_t") == "2.90e-14"
    assert _fmt(0.0, "p_value_t") == "0.000"
    assert _fmt(0.25) == "0.250"
    assert _fmt(1_234_567, "order_quantity") == "1,234,567"
    assert _fmt(123_456, "order_id") == "123456"  # an id below 1e12 too
    assert _fmt(110621, "security_code") == "110621"
    assert _fmt(54, "participantid") == "54"
    assert _fmt(2048, "exchangeordertype") == "2048"
    assert _fmt(1_725_494_536_146_303_235, "x") == "1725494536146303235"


def test_a_table_that_fits_is_a_table_within_80_columns() -> None:
    lines = render(("scenario", "p (t)"), [("baseline", 2.0e-145), ("midtick", 0.14)])
    assert all(len(line) <= 80 for line in lines)
    assert any("baseline" in line and "2.00e-145" in line for line in lines)


def test_text_wraps_at_spaces_and_a_table_too_wide_for_that_turns_vertical() -> None:
    cause = "two resting orders matched on a quote move the NBBO does not show before the print"
    lines = render(("cause", "pairs"), [(cause, 22)])
    assert all(len(line) <= 80 for line in lines) and "…" not in "".join(lines)
    columns = tuple(f"column_number_{i}" for i in range(12))
    lines = render(columns, [tuple(range(1_000_000, 1_000_012))])
    assert all(len(line) <= 80 for line in lines) and "…" not in "".join(lines)
    assert lines[0] == "a title" and lines[1] == "[1]"
    assert lines[2].split() == ["column_number_0", "1,000,000"]

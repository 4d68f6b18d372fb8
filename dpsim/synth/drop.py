"""A synthetic drop: its size and calendar from the request, the files written, a summary of them."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from dpsim.synth.day import Synth
from dpsim.synth.output import write_small_files

log = logging.getLogger(__name__)

KINDS = ("orders", "trades", "nbbo", "reference", "session", "participants")
MAX_SECURITIES = 10_000  # three-letter names run out at 17,576
DEFAULT_ROWS_PER_SECDAY = 3_000
DEFAULT_ROWS_MIN, DEFAULT_ROWS_MAX = 20_000, 50_000


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    bytes: dict[str, int]
    partitions: int


_SCALE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?b)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_scale(text: str | None) -> tuple[str, int] | None:
    """'400MB'|'2GB'|'1.5GB' -> ('bytes', n) (powers of 1000); '5000000' -> ('rows', n); None -> None."""
    if text is None:
        return None
    m = _SCALE.match(text.replace("_", ""))
    hint = (
        "expected a size such as 400MB, 1.5GB (B/KB/MB/GB/TB, powers of 1000) or a row count such as 5000000"
    )
    if not m or (m.group(2) is None and "." in m.group(1)):
        raise ValueError(f"invalid scale {text!r}: {hint}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()] if m.group(2) else int(m.group(1))
    if value < 1:
        raise ValueError(f"invalid scale {text!r}: must be positive; {hint}")
    return ("bytes", int(value)) if m.group(2) else ("rows", int(value))


def trading_dates(start: date, days: int) -> list[date]:
    """The first `days` weekdays from `start` (public holidays are not modelled)."""
    out: list[date] = []
    d = start
    while len(out) < days:
        if d.weekday() < 5:
            out.append(d)
        d += timedelta(days=1)
    return out


def generate(
    out_dir: Path,
    *,
    securities: int = 5,
    days: int = 2,
    start: date = date(2024, 9, 30),
    seed: int = 42,
    scale: tuple[str, int] | None = None,
    gzip: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a synthetic drop (orders, trades, nbbo, reference, session, participants) into out_dir.

    scale: ('rows', n) ~ n order rows; ('bytes', n) ~ n bytes of uncompressed orders.csv; None: a small
    drop (3,000 rows per security-day, clamped to 20,000-50,000). `progress` receives the uncompressed
    bytes of orders.csv written so far (the unit of a bytes scale).
    """
    if not (1 <= securities <= MAX_SECURITIES and days >= 1):
        raise ValueError(
            f"securities must be 1..{MAX_SECURITIES} and days >= 1 (got securities={securities}, days={days})"
        )
    if scale is not None and (scale[0] not in ("rows", "bytes") or scale[1] < 1):
        raise ValueError(f"invalid scale {scale!r}: expected ('rows', n) or ('bytes', n) with n >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    default = min(DEFAULT_ROWS_MAX, max(DEFAULT_ROWS_MIN, DEFAULT_ROWS_PER_SECDAY * securities * days))
    mode, target = scale if scale else ("rows", default)
    dates = trading_dates(start, days)
    log.info(
        "synth: %d securities x %d days from %s, %s target %d, seed %d",
        securities,
        days,
        dates[0],
        mode,
        target,
        seed,
    )
    suffix = ".csv.gz" if gzip else ".csv"
    paths = {k: out_dir / f"{k}{suffix}" for k in KINDS}
    s = Synth(paths, securities, seed, gzip, mode, target)
    try:
        s.run(dates, progress)
    finally:
        s.close()
    small = write_small_files(paths, s.universe, s.session, gzip)
    rows = {"orders": s.orders.rows, "trades": s.trades.rows, "nbbo": s.nbbo.rows} | small
    summary = SynthSummary(
        out_dir=out_dir,
        files=dict(paths),
        rows=rows,
        bytes={k: p.stat().st_size for k, p in paths.items()},
        partitions=len(s.partitions),
    )
    log.info("synth: wrote %s", ", ".join(f"{k} {rows[k]} rows" for k in KINDS))
    return summary

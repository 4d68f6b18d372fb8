"""The year section (issue 20, requirement 6): a sampled year run end to end, and the user's full workload
(150 securities × 365 days = 54,750 partitions from 400 GB of CSV) extrapolated from it.

The sample is the user's year cut down in dates, not in securities or partition size: 150 securities × a
few trading dates of generated data with the year's bytes per partition (400 GB / 54,750 ≈ 7.3 MB of CSV,
about three quarters of it orders, as in every generated drop). It runs as a user would: `dpsim shred` of
the three CSVs, `dpsim process --no-aggregate` on 2 workers (the jobs, then the results by date of the
dates they changed and the catalog), then `dpsim aggregate`. Each step's wall and CPU seconds scale to the
year by the formula shown with it: the shred by bytes, the process step by partitions (the results by date
with it: each date holds the year's 150 partitions in the sample too); the aggregation by partitions from
the 54,000-partition lake when the aggregate section ran in the same bench run (its cost per partition
grows with the lake), else from the sample. The CPU seconds are the time the step would take on one core.
"""

from __future__ import annotations

from bench import harness as H
from bench.rows import Row
from bench.session import Session

SECURITIES = 150
YEAR_PARTITIONS = SECURITIES * 365
YEAR_CSV_BYTES = 400e9
ORDERS_SHARE = 0.75  # orders.csv's share of a generated drop's CSV bytes (orders, trades, nbbo)


def year(ses: Session) -> None:
    days = ses.cfg["year_days"]
    partitions = SECURITIES * days
    orders_bytes = int(YEAR_CSV_BYTES / YEAR_PARTITIONS * partitions * ORDERS_SHARE * ses.cfg["year_scale"])
    meta = H.drop("year", securities=SECURITIES, days=days, start="2024-10-01", scale_bytes=orders_bytes)
    f = meta["files"]
    csv_bytes = sum(meta["bytes"][k] for k in ("orders", "trades", "nbbo"))
    inp = {
        "path": H.rel(H.WORK / "inputs" / meta["key"]),
        "partitions": meta["partitions"],
        "securities": SECURITIES,
        "days": days,
        "uncompressed_bytes": csv_bytes,
        "rows": meta["rows"]["orders"],
    }
    lake = H.WORK / "lake-year"
    H.rm(lake)
    base = ["--config", H.rel(ses.config), "--lake", H.rel(lake)]
    steps = [
        (
            "shred",
            [
                "shred",
                *base,
                "--force",
                "--orders",
                f["orders"],
                "--trades",
                f["trades"],
                "--nbbo",
                f["nbbo"],
            ],
        ),
        ("process", ["process", *base, "--force", "--no-aggregate", "--workers", "2"]),
        ("aggregate", ["aggregate", *base]),
    ]
    case = f"sampled year: {SECURITIES} securities × {days} dates ({meta['partitions']} partitions)"
    measured: dict[str, Row] = {}
    for step, args in steps:
        m = H.measure([*H.DPSIM, *args], label=f"year-{step}", reps=1, warmup=0)
        row = ses.row("year", case, f"dpsim {step}", inp, m)
        if m.runs:
            row["extra"]["cpu_s"] = round(m.runs[0].user_s + m.runs[0].sys_s, 1)
        ses.rows.append(row)
        measured[step] = row
    if all(not r.get("error") for r in measured.values()):
        ses.rows.extend(_extrapolated(ses, measured, meta["partitions"], csv_bytes))


def _extrapolated(ses: Session, measured: dict[str, Row], partitions: int, csv_bytes: int) -> list[Row]:
    """One row per step scaled to the year, and their sum."""
    by_bytes = YEAR_CSV_BYTES / csv_bytes
    wall_of = {step: r["wall_s"] or 0.0 for step, r in measured.items()}
    cpu_of = {step: r["extra"]["cpu_s"] for step, r in measured.items()}
    by_partitions = YEAR_PARTITIONS / partitions
    terms: list[tuple[str, float, float, str, str]] = [
        (
            "shred",
            wall_of["shred"] * by_bytes,
            cpu_of["shred"] * by_bytes,
            f"{wall_of['shred']:.1f} s for {csv_bytes / 1e9:.2f} GB × {YEAR_CSV_BYTES / 1e9:,.0f} GB "
            f"/ {csv_bytes / 1e9:.2f} GB",
            "",
        ),
        (
            "process (2 workers)",
            wall_of["process"] * by_partitions,
            cpu_of["process"] * by_partitions,
            f"{wall_of['process']:.1f} s for {partitions} partitions × {YEAR_PARTITIONS:,} / {partitions} "
            "(jobs and results by date)",
            "",
        ),
    ]
    big = _largest_aggregate(ses)
    if big is not None:
        n = big["input"]["partitions"]
        per, cpu = big["extra"]["s_per_1000_partitions"], big["extra"]["cpu_s_per_1000_partitions"]
        k = YEAR_PARTITIONS / 1000
        formula = f"{per:.2f} s per 1,000 partitions (cold aggregate of the {n:,}-partition lake) × {k:g}"
        terms.append(("aggregate, cold", per * k, cpu * k, formula, "aggregate section, this run"))
    else:
        terms.append(
            (
                "aggregate, cold",
                wall_of["aggregate"] * by_partitions,
                cpu_of["aggregate"] * by_partitions,
                f"{wall_of['aggregate']:.1f} s for {partitions} partitions × {YEAR_PARTITIONS:,} / {partitions} "
                "(linear from the sample: the aggregate section did not run)",
                "",
            )
        )
    rows = [_row(f"year: {name}", wall, cpu, formula, source) for name, wall, cpu, formula, source in terms]
    wall, cpu = sum(t[1] for t in terms), sum(t[2] for t in terms)
    rows.append(
        _row(
            "year: total on this machine",
            wall,
            cpu,
            " + ".join(t[0] for t in terms) + f" = {wall / 3600:.2f} h (one core: {cpu / 3600:.2f} h)",
            "",
        )
    )
    return rows


def _row(case: str, wall: float, cpu: float, formula: str, source: str) -> Row:
    return {
        "section": "year",
        "case": case,
        "tool": "extrapolated",
        "command": "",
        "input": {"partitions": YEAR_PARTITIONS, "csv_bytes": YEAR_CSV_BYTES},
        "wall_s": round(wall, 1),
        "peak_rss_mb": None,
        "extra": {"cpu_s": round(cpu, 1), "formula": formula, "source": source},
        "derived": "extrapolated from the rows measured above",
        "error": None,
    }


def _largest_aggregate(ses: Session) -> Row | None:
    rows = [
        r
        for r in ses.rows
        if r["section"] == "aggregate"
        and "cold" in r["tool"]
        and not r.get("error")
        and "s_per_1000_partitions" in (r.get("extra") or {})
    ]
    return max(rows, key=lambda r: r["input"]["partitions"]) if rows else None

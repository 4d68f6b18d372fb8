"""Terminal renderings of what the library returns: run summaries, the headline, status, results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import their modules when they run: `dpsim --help` stays fast
    import pyarrow as pa

    from dpsim.jobs import RunResult
    from dpsim.progress import Progress

from dpsim.cli.common import _bps, _fixed, _local, _num, _p, _pct


def _render_run(progress: Progress, result: RunResult) -> None:
    recs = result.records
    ran = [r for r in recs if r.status != "skipped"]
    by = {s: sum(1 for r in recs if r.status == s) for s in ("ok", "failed", "skipped")}
    rows: list[tuple[str, Any]] = [
        ("run", result.run_id),
        ("jobs ok / failed / skipped", f"{by['ok']} / {by['failed']} / {by['skipped']}"),
        ("wall time (s)", result.seconds),
        ("jobs/s", len(ran) / result.seconds if result.seconds else None),
        ("rows in / out", f"{sum(r.rows_in for r in ran):,} / {sum(r.rows_out for r in ran):,}"),
        ("sweeps analysed", sum(r.sweeps for r in ran)),
    ]
    timed = sorted((r for r in ran if r.status == "ok"), key=lambda r: r.seconds)
    if timed:
        rows += [
            ("per-job mean (s)", sum(r.seconds for r in timed) / len(timed)),
            ("fastest job", f"{timed[0].partition} {timed[0].seconds:.3f} s"),
            ("slowest job", f"{timed[-1].partition} {timed[-1].seconds:.3f} s"),
            ("peak worker RSS (MB)", max(r.worker_peak_rss_mb for r in timed)),
        ]
    rows += [(f"FAILED {r.partition}", r.error) for r in result.failed[:20]]
    progress.table("process", ("", ""), rows)


def _print_headline(
    progress: Progress, summary: pa.Table, tests: pa.Table, quality: pa.Table, timezone: str
) -> None:
    """The headline per scenario, the paired test of its delta, and the data quality."""
    rows = summary.to_pylist()
    counts = sorted({_num(r["n_with_delta"]) for r in rows})
    progress.table(
        "Would resting in Centre Point have been cheaper? Implementation shortfall, bps, notional-weighted, "
        f"same sweeps and shares ({' / '.join(counts)} sweeps; delta = sim - real; < 0: the dark pool "
        "was cheaper; rested filled: share of the rested quantity filled while resting)",
        ("scenario", "world", "real", "sim", "delta [95% CI]", "rested\nfilled", "fidelity"),
        [
            (
                r["scenario"],
                r["world"],
                _bps(r["real_is_bps"]),
                _bps(r["sim_is_bps"]),
                f"{_bps(r['delta_is_bps'])} [{_bps(r['ci_low'])}, {_bps(r['ci_high'])}]",
                _pct(r["sim_rested_fill_ratio"]),
                _pct(r["fidelity_mean"]),
            )
            for r in rows
        ],
    )
    progress.table(
        "Paired tests of delta implementation shortfall per sweep (all analysed sweeps; q: "
        "Benjamini-Hochberg within the scenario's family)",
        ("scenario", "n", "mean delta", "95% CI", "p (t)", "q (t)", "p (Wilcoxon)"),
        [
            (
                r["scenario"],
                _num(r["n"]),
                _bps(r["mean_diff"]),
                f"[{_bps(r['ci_low'])}, {_bps(r['ci_high'])}]",
                _p(r["p_value_t"]),
                _p(r["q_value_t"]),
                _p(r["p_value_wilcoxon"]),
            )
            for r in tests.to_pylist()
        ],
    )
    q = quality.to_pylist()[0] if quality.num_rows else {}
    rows = _quality_rows(q, timezone)
    progress.table("Data quality (results/quality; docs/methodology.md)", ("", ""), rows)


def _quality_rows(q: dict[str, Any], timezone: str) -> list[tuple[str, str]]:
    if not q or not q.get("n_partitions"):
        return [("partitions", "0")]
    return [
        ("partitions (open set by an auction print)", f"{q['n_partitions']} ({q['n_open_from_auction']})"),
        (
            "session open (local): first / last",
            f"{_local(q['first_open'], timezone)} / {_local(q['last_open'], timezone)}",
        ),
        (
            "quotes usable / stale / empty / crossed / locked",
            " / ".join(_num(q[f"n_{c}_quotes"]) for c in ("usable", "stale", "empty", "crossed", "locked")),
        ),
        (
            "sweeps analysed / outside the session / without a mid",
            f"{_num(q['n_sweeps_analysed'])} / {_num(q['n_sweeps_outside_session'])} / "
            f"{_num(q['n_sweeps_without_mid'])}",
        ),
        (
            "arrival quote age (s): median / p95",
            f"{_fixed(q['arrival_quote_age_median_s'])} / {_fixed(q['arrival_quote_age_p95_s'])}",
        ),
        (
            "traded quantity lit / dark / auction",
            " / ".join(_num(q[f"quantity_{c}"]) for c in ("lit", "dark", "auction")),
        ),
        (
            "traded quantity reported / booking",
            " / ".join(_num(q[f"quantity_{c}"]) for c in ("reported", "booking")),
        ),
        ("replay fidelity: lowest / overall", f"{_pct(q['fidelity_min'])} / {_pct(q['fidelity_mean'])}"),
    ]


def _render_status(progress: Progress, state: dict[str, Any]) -> None:
    runs = state["runs"]
    if not runs:
        print(f"{state['lake']}: no runs yet")
        return
    rows = []
    for r in runs:
        if r["kind"] == "shred":
            done = f"{(r.get('bytes_done') or 0) / 1e6:,.1f} / {(r.get('bytes_total') or 0) / 1e6:,.1f} MB"
            counts = f"rows {r.get('rows_read') or 0:,} / {r.get('rows_written') or 0:,} / {r.get('rows_rejected') or 0:,}"
            rate = f"{r['rate_mb_s']} MB/s" if r.get("rate_mb_s") else ""
        else:
            done = f"{r.get('done') or 0:,} / {r.get('to_run') or 0:,} jobs"
            counts = (
                f"ok {r.get('ok') or 0:,}  failed {r.get('failed') or 0:,}  retried {r.get('retried') or 0:,}  "
                f"running {r.get('n_running') or 0:,}  skipped {r.get('skipped') or 0:,}"
            )
            rate = f"{r['rate_jobs_s']:.2f} jobs/s" if r.get("rate_jobs_s") else ""
        eta = f"{r['eta_s']:,.0f} s" if r["state"] == "running" and r.get("eta_s") is not None else ""
        rows.append((r["run_id"], r["kind"], r["state"], done, counts, rate, eta))
    progress.table(
        f"runs of {state['lake']} (newest first)",
        ("run", "kind", "state", "done", "rows read/written/rejected | jobs", "rate", "ETA"),
        rows,
    )
    for r in runs:
        for f in r.get("failures") or []:
            print(f"{r['run_id']}: FAILED {f['partition']}: {f['error']}")
        if r.get("failures") and r.get("rerun"):
            print(f"{r['run_id']}: rerun only the failed partitions with: {r['rerun']}")


def _process_json(outcome: Any) -> dict[str, Any]:
    from dataclasses import asdict

    run = outcome.run
    body: dict[str, Any] = {"run_id": None, "nothing_to_do": True}
    if run is not None:
        by = {s: sum(1 for r in run.records if r.status == s) for s in ("ok", "failed", "skipped")}
        body = {
            "run_id": run.run_id,
            "manifest": str(run.manifest_path),
            "nothing_to_do": outcome.nothing_ran,
            "partitions": len(run.records),
            **by,
            "seconds": run.seconds,
            "failures": [{"partition": r.partition, "error": r.error} for r in run.failed],
            "jobs": [asdict(r) for r in run.records],
        }
    body["aggregates_unchanged"] = outcome.aggregates_unchanged
    if outcome.headline is not None:
        body["headline"] = outcome.headline[0].to_pylist()
    return body

"""`dpsim monitor` in headless Chromium (Debian's `chromium`, driven by Playwright; no browser download):
the page is opened before anything runs, then `dpsim shred` and `dpsim process` of a generated drop run in
other processes, one partition failing (fault injection). Without a reload the page shows each run as it
appears, the process's progress advancing, the failed partition with its error and rerun command, and the
final states; the browser logs no error. Also `dpsim status` on the same lake and the event stream."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from dpsim import cli
from dpsim.synth import generate
from tests.browser import CHROMIUM_ARGS

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SECURITIES, DAYS = 4, 2


def _dpsim(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dpsim", *args],
        cwd=REPO,
        env={**os.environ, "CI": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A generated drop, its config (one worker: the jobs take turns, so progress is seen advancing), and a
    monitor of its lake, started before anything ran."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    base = tmp_path_factory.mktemp("monitor")
    generate(
        base / "drop", securities=SECURITIES, days=DAYS, start=date(2024, 10, 2), seed=9, scale=("rows", 8000)
    )
    conf = base / "c.yaml"
    conf.write_text(
        f"lake: {base / 'lake'}\ninputs:\n"
        + "".join(f"  {k}: [{base / 'drop'}/{k}.csv]\n" for k in ("orders", "trades", "nbbo"))
        + "  reference: []\n  session: []\n  participants: []\n"
        + "scenarios:\n  baseline: {}\nrun:\n  workers: 1\nstats:\n  bootstrap_n: 200\n",
        encoding="utf-8",
    )
    (base / "lake").mkdir()
    monitor = _dpsim("monitor", "--config", str(conf), "--port", "0")
    try:
        assert monitor.stdout is not None
        line = monitor.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert found, line + (monitor.stderr.read() if monitor.poll() is not None and monitor.stderr else "")
        yield conf, found.group(0)
    finally:
        _stop(monitor)


def _texts(page: Any, selector: str) -> list[str]:
    return [str(t) for t in page.locator(selector).all_inner_texts()]


def test_the_dashboard_follows_shred_and_process_live(setup: tuple[Path, str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    conf, url = setup
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh user data dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 1400},
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto(url)
            page.wait_for_selector("#conn.live")
            assert "no runs yet" in page.inner_text("#runs")

            # a shred started after the page opened appears, with its sources' rows
            shred = _dpsim("shred", "--config", str(conf))
            assert shred.wait(timeout=120) == 0, shred.stderr.read() if shred.stderr else ""
            page.wait_for_selector("section.run.shred[data-state=finished]", timeout=20_000)
            sources = page.inner_text("section.run.shred table.sources")
            assert "orders.csv" in sources and "shredded" in sources

            # then a process: partitions take turns on one worker, one of them slow, one failing
            from dpsim.config import load_config
            from dpsim.lake import Lake

            keys = Lake(load_config(conf).lake).partitions("orders")
            assert len(keys) == SECURITIES * DAYS
            failing = keys[3]
            faults = ",".join([f"raise:{failing}", *(f"slow:{k}" for k in keys[:3] + keys[4:6])])
            process = _dpsim("process", "--config", str(conf), env={cli.FAULT_ENV: faults})
            try:
                card = "section.run.process"
                page.wait_for_selector(f"{card}[data-state=running]", timeout=60_000)
                seen: list[int] = []
                workers: set[str] = set()
                deadline = time.monotonic() + 180
                while process.poll() is None and time.monotonic() < deadline:
                    text = _texts(page, f"{card}[data-state=running] .progress-text")
                    if text:
                        done = int(re.search(r"(\d+) / ", text[0]).group(1))  # type: ignore[union-attr]
                        if not seen or done != seen[-1]:
                            seen.append(done)
                        if len(seen) == 3:
                            page.screenshot(path=str(tmp_path / "running.png"), full_page=True)
                    workers.update(_texts(page, f"{card} table.workers td.num"))
                    time.sleep(0.25)
                out, err = process.communicate(timeout=120)
            finally:
                _stop(process)
            assert process.returncode == 3, err
            assert len(seen) >= 3 and seen == sorted(seen), seen  # advancing, never backwards
            assert any(w.endswith(" MB") for w in workers), workers  # the worker's memory was shown

            page.wait_for_selector(f"{card}[data-state=finished]", timeout=20_000)
            final = page.inner_text(card)
            assert "finished, 1 failed" in final
            assert f"jobs {len(keys)} / {len(keys)}" in final
            failures = page.inner_text(f"{card} table.failures")
            assert str(failing) in failures and f"RuntimeError: injected fault for {failing}" in failures
            assert page.inner_text(f"{card} pre.rerun") == f"dpsim process --only-failed --config {conf}"
            assert page.locator(f"{card} table.slowest tr").count() == 4  # a header and 3 partitions
            page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []

    # the same state in the terminal, and as JSON
    status = subprocess.run(
        [sys.executable, "-m", "dpsim", "status", "--config", str(conf), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "CI": "1"},
    )
    state = json.loads(status.stdout)
    assert [(r["kind"], r["state"]) for r in state["runs"]] == [
        ("process", "finished"),
        ("shred", "finished"),
    ]
    proc_run = state["runs"][0]
    assert (proc_run["ok"], proc_run["failed"], proc_run["rerun"]) == (
        len(keys) - 1,
        1,
        f"dpsim process --only-failed --config {conf}",
    )
    with urllib.request.urlopen(url + "events", timeout=10) as stream:  # noqa: S310 (a local test server)
        first = stream.readline().decode()
    assert first.startswith("data: ") and json.loads(first[6:])["runs"][0]["run_id"] == proc_run["run_id"]

"""Headless Chromium for the report tests: Debian's `chromium` driven by Playwright (no browser download).

One browser per test module; each page is opened from its file:// URL with every request recorded and
every non-file request refused, so a page that reaches for the network fails its test instead of hanging.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The flags a closed network needs: no background, update or sync traffic, no QUIC.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}

# In the page: for every plot, its traces and the points Plotly computed for them (calcdata).
_PLOTS_JS = """() => Array.from(document.querySelectorAll('div.plot')).map(d => ({
    id: d.id,
    traces: (d.data || []).length,
    points: (d.calcdata || []).reduce((n, trace) => n + trace.filter(
        p => p && (Number.isFinite(p.y) || Number.isFinite(p.x) || Number.isFinite(p.s))).length, 0),
    drawn: d.querySelectorAll('svg.main-svg').length,
}))"""


def chromium() -> str:
    """Debian's Chromium; skipped where it is missing, except in CI (`.ci/run` installs it)."""
    path = os.environ.get("DPSIM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("no chromium on PATH: .ci/run installs Debian's chromium (apt-get install chromium)")
    pytest.skip("no chromium on PATH (apt-get install chromium)")


@dataclass
class Visit:
    """What a page did when opened: console errors, requests, its sections and plots, a screenshot."""

    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    plots: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    full_screenshot: bytes = b""
    text: str = ""


@contextmanager
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    path = chromium()
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def visit(b: Any, page_path: Path, timeout_ms: int = 60_000) -> Visit:
    """Open a report file, wait for every plot to be drawn, and record what happened."""
    url = page_path.resolve().as_uri()
    v = Visit(url)
    context = b.new_context(viewport=VIEWPORT)  # a fresh profile: no cache, no cookies
    page = context.new_page()
    page.on(
        "console", lambda m: v.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: v.errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: v.errors.append(f"request failed: {r.url[:120]}"))
    page.on("request", lambda r: v.requests.append(r.url))
    page.route(
        "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
    )
    try:
        page.goto(url)
        page.wait_for_selector("body[data-plotted]", state="attached", timeout=timeout_ms)
        v.sections = page.eval_on_selector_all("section.report-section", "els => els.map(e => e.id)")
        v.plots = page.evaluate(_PLOTS_JS)
        v.text = page.inner_text("body")
        v.screenshot = page.screenshot()
        v.full_screenshot = page.screenshot(full_page=True)
    finally:
        context.close()
    return v


def blank(png: bytes) -> bool:
    """Whether a screenshot is (nearly) one colour."""
    from PIL import Image, ImageStat

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 16)
    return (colours is not None and len(colours) < 20) or max(ImageStat.Stat(image).stddev) < 5


def keep(png: bytes, name: str) -> None:
    """Also write a screenshot to $DPSIM_SCREENSHOT_DIR when set (`make screenshots`: docs/)."""
    folder = os.environ.get("DPSIM_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(png)

"""Open an HTML report in headless Debian chromium and time it until every plot is drawn.

    python -m bench.page FILE

Prints one JSON line: seconds from navigation to the page's `data-plotted` mark, the number of plots,
and the requests made (the file itself only, for a self-contained report).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main(path: str) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        return {"error": "no chromium on PATH (apt-get install chromium)"}
    url = Path(path).resolve().as_uri()
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-plotted]", state="attached", timeout=120_000)
        seconds = time.perf_counter() - t0
        plots = page.evaluate("document.body.getAttribute('data-plotted')")
        browser.close()
    return {"seconds": round(seconds, 3), "plots": int(plots), "requests": len(requests)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))

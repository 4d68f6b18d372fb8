"""The live dashboard: the standard library's HTTP server on 127.0.0.1, one inline HTML page (`page.html`,
no CDN, no dependency), and server-sent events carrying the lake's state whenever it changes.

    GET /            the page; it opens an EventSource on /events and renders every state it receives
    GET /events      text/event-stream: the state (JSON) at once, then on every change, a comment every 15 s
    GET /state.json  the state once

One poller thread reads the lake's run manifests every `interval_s` seconds (so any number of open pages
costs one read), and wakes the event streams when the state changed. A run started after the page was
opened is in the next state, so it appears without a reload.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from dpsim.lake import Lake
from dpsim.monitor.state import lake_state

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0


class _Poller:
    """Reads the state every `interval_s` seconds; `version` counts the changes."""

    def __init__(self, read: Callable[[], dict[str, Any]], interval_s: float) -> None:
        self.read, self.interval_s = read, interval_s
        self.changed = threading.Condition()
        self.version = 0
        self.text = "{}"
        self._stop = threading.Event()
        self._poll()
        self._thread = threading.Thread(target=self._run, name="dpsim-monitor-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        try:
            state = self.read()
        except Exception as exc:  # an unreadable lake (a bucket gone, a permission) is shown, not fatal
            state = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0], "runs": []}
        # `read` (the time of the read) changes every time: compare the rest
        text = json.dumps({k: v for k, v in state.items() if k != "read"}, default=str, sort_keys=True)
        if text != self.text:
            with self.changed:
                self.text = text
                self.version += 1
                self.changed.notify_all()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def stop(self) -> None:
        self._stop.set()
        with self.changed:
            self.changed.notify_all()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, "text/html; charset=utf-8", self.server.page)
        elif path == "/state.json":
            self._send(200, "application/json", self.server.poller.text.encode())
        elif path == "/events":
            self._events()
        elif path == "/favicon.ico":
            self._send(204, "image/x-icon", b"")
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /\n")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "keep-alive")
        self.end_headers()
        poller, seen = self.server.poller, -1
        try:
            while not self.server.stopping.is_set():
                with poller.changed:
                    if poller.version == seen:
                        poller.changed.wait(KEEPALIVE_S)
                    version, text = poller.version, poller.text
                if version != seen:
                    self.wfile.write(f"data: {text}\n\n".encode())
                    seen = version
                else:
                    self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the page was closed
            return

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the http.server API)
        log.debug("monitor: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # open event streams do not keep the process alive
    page: bytes
    poller: _Poller
    stopping: threading.Event


def serve(
    lake: Lake,
    port: int = 8765,
    *,
    interval_s: float = 1.0,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard of `lake` on http://127.0.0.1:`port` (0: any free port) until interrupted;
    `on_ready` gets the address once it listens."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.page = resources.files("dpsim.monitor").joinpath("page.html").read_bytes()
    server.poller = _Poller(lambda: lake_state(lake), interval_s)
    server.stopping = threading.Event()
    address = f"http://127.0.0.1:{server.server_address[1]}/"
    if on_ready is not None:
        on_ready(address)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.stopping.set()
        server.poller.stop()
        server.server_close()

"""Debian's noVNC served over plain HTTP on 127.0.0.1, with the test's console page beside it.

ES modules do not load from file://, so a small HTTP server serves /usr/share/novnc; the
page (console.html) is served from the same origin so that it can import noVNC's modules.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.console.browser import Page
from tests.console.picture import Picture

NOVNC = Path("/usr/share/novnc")
CONSOLE_PAGE = Path(__file__).with_name("console.html")


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path == "/console.html":
            body = CONSOLE_PAGE.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads the browser's state, not an access log


@dataclass(frozen=True)
class ConsolePage:
    base: str  # http://127.0.0.1:<port>

    def url(self, websocket_url: str) -> str:
        return f"{self.base}/console.html?" + urllib.parse.urlencode({"url": websocket_url})


@contextlib.contextmanager
def novnc_server() -> Iterator[ConsolePage]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(NOVNC))
    )
    thread = threading.Thread(target=server.serve_forever, name="novnc-http", daemon=True)
    thread.start()
    try:
        yield ConsolePage(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def console_state(page: Page) -> dict[str, Any]:
    """What noVNC reported on the console page: status, everConnected, clean, errors."""
    state: dict[str, Any] | None = page.evaluate("window.consoleState ?? null")
    return state or {"status": "loading", "everConnected": False, "errors": []}


# The canvas noVNC draws the remote desktop on, as RGBA bytes in base64 (in slices: one
# String.fromCharCode call cannot take a million arguments).
_CANVAS_PIXELS = """(() => {
  const canvas = document.querySelector('#screen canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let binary = '';
  for (let i = 0; i < data.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return {width: canvas.width, height: canvas.height, rgba: btoa(binary)};
})()"""


def canvas_picture(page: Page) -> Picture:
    """The remote desktop as noVNC drew it in the browser."""
    found = page.evaluate(_CANVAS_PIXELS)
    return Picture.from_rgba(found["width"], found["height"], base64.b64decode(found["rgba"]))

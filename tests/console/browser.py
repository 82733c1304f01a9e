"""Headless Chromium that trusts only our CA (and its built-in roots), driven over DevTools.

Trust comes from an NSS database in the profile's home, as a person would add a CA on a
Linux desktop; certificate errors are never ignored, so a proxy certificate that does not
chain to the engine's CA or does not name the proxy's FQDN fails the console like it would
for a user. The DevTools client is a few lines over ``websockets`` (no browser-automation
library): navigate, evaluate, screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.e2e.conftest import wait_for

CHROMIUM = "chromium"
CERTUTIL = "certutil"
VIEWPORT = (800, 480)  # room for the 720x400 firmware screen under the page's status line


class DevToolsError(RuntimeError):
    pass


class Page:
    """One page target, spoken to over its own DevTools websocket."""

    def __init__(self, ws: ClientConnection, timeout: float = 60) -> None:
        self._ws = ws
        self._timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=self._timeout))
            if reply.get("id") != call_id:
                continue  # an event, or the answer to an earlier call that timed out
            if "error" in reply:
                raise DevToolsError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.evaluate("document.readyState") == "complete", f"loading {url}")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when it is a promise)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path


def trusting_home(home: Path, ca_pem: Path) -> Path:
    """A home directory whose NSS database trusts ``ca_pem`` to identify web sites."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for args in (
        ["-N", "--empty-password"],
        ["-A", "-n", "wsproxy-agent e2e CA", "-t", "C,,", "-i", str(ca_pem)],
    ):
        subprocess.run(
            [CERTUTIL, "-d", f"sql:{nssdb}", *args], check=True, capture_output=True, timeout=60
        )
    return home


def _devtools_port(profile: Path, chromium: subprocess.Popen[bytes], log: Path) -> int:
    active = profile / "DevToolsActivePort"

    def written() -> bool:
        if chromium.poll() is not None:
            raise AssertionError(f"chromium exited with {chromium.returncode}: {log.read_text()}")
        return active.exists() and len(active.read_text().splitlines()) >= 2

    wait_for(written, "chromium's DevTools port", timeout=90)
    return int(active.read_text().splitlines()[0])


def _page_target(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
        targets = json.load(answer)
    return str(next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"))


@contextlib.contextmanager
def chromium_page(workdir: Path, ca_pem: Path, host_rules: str) -> Iterator[Page]:
    """A headless Chromium with one blank page; ``host_rules`` go to --host-resolver-rules."""
    home = trusting_home(workdir / "home", ca_pem)
    profile = workdir / "profile"
    log = workdir / "chromium.log"
    with log.open("wb") as out:
        chromium = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # root in CI; the sandbox needs user namespaces it may not have
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--host-resolver-rules={host_rules}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(home)},
            start_new_session=True,  # its helper processes go with it at the end
        )
    try:
        port = _devtools_port(profile, chromium, log)
        # Screenshots and canvas pixels come back as one large message each.
        with connect(_page_target(port), max_size=None, open_timeout=60) as ws:
            page = Page(ws)
            # The window's size is not the page's in headless mode: set the page's own.
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=VIEWPORT[0],
                height=VIEWPORT[1],
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        chromium.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            chromium.wait(timeout=15)
        # Whatever is left of its own process group (renderers, zygote) goes now.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(chromium.pid, signal.SIGKILL)
        chromium.wait()
        shutil.rmtree(profile, ignore_errors=True)

"""A VM console in a real browser: noVNC -> wss://<proxy>/<ticket> -> proxy serve -> QEMU VNC.

The engine signs the ticket, the proxy serves TLS with the certificate the join delivered,
and Chromium trusts only the engine's CA: the whole path an administrator sets up. The
good ticket shows QEMU's firmware screen in noVNC's canvas, pixel for pixel what QEMU's own
screendump shows; an expired ticket and one signed by another key show noVNC's failure,
and the proxy's log says why it refused each.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from engine_agent.tickets import SALT_BYTES, load_signer
from protocol.ticket import issue_ticket
from tests.console.browser import Page
from tests.console.conftest import ServedProxy
from tests.console.novnc import ConsolePage, canvas_picture, console_state
from tests.console.picture import Picture
from tests.console.qemu import Guest
from tests.e2e.conftest import ENGINE_FQDN, wait_for
from tests.support.selfsigned import self_signed_pem
from wsproxy_agent.paths import HostPaths

# Setting up (a join, QEMU, Chromium) falls to the first test; the machine may be loaded.
pytestmark = pytest.mark.timeout(300)

FIRMWARE_SCREEN = (720, 400)  # VGA text mode, 80x25 characters of 9x16 pixels
CURSOR_ROWS = 2  # the text cursor is an underline two pixel rows high, and it blinks


def open_console(page: Page, site: ConsolePage, url: str) -> dict[str, Any]:
    """Point noVNC at ``url`` and return its state once it connected or gave up."""
    page.navigate(site.url(url))
    wait_for(
        lambda: console_state(page)["status"] in ("connected", "disconnected"),
        "noVNC to connect or fail",
        timeout=60,
    )
    return console_state(page)


def firmware_on_canvas(page: Page, guest: Guest, timeout: float = 30) -> tuple[Picture, Picture]:
    """noVNC's canvas and QEMU's screendump once they agree, or the last pair seen."""
    deadline = time.monotonic() + timeout
    while True:
        canvas, screen = canvas_picture(page), guest.screendump()
        if canvas.ink_agreement(screen) >= 0.95 or time.monotonic() > deadline:
            return canvas, screen
        time.sleep(0.5)  # the first framebuffer update may follow the 'connect' event


def save(artifacts: Path, name: str, page: Page, capsys: pytest.CaptureFixture[str]) -> Path:
    path = page.screenshot(artifacts / name)
    with capsys.disabled():
        print(f"\nconsole screenshot: {path}")
    return path


def test_good_ticket_shows_the_firmware_screen(
    served: ServedProxy,
    guest: Guest,
    page: Page,
    console_site: ConsolePage,
    artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = served.hosts
    ticket = h.cli(
        h.engine,
        "engine",
        "ticket",
        "--host",
        "127.0.0.1",
        "--port",
        str(guest.vnc_port),
        check=True,
    ).stdout.strip()

    state = open_console(page, console_site, served.url(ticket))
    assert state["status"] == "connected", state

    canvas, screen = firmware_on_canvas(page, guest)
    save(artifacts, "console-firmware.png", page, capsys)
    canvas.write_png(artifacts / "console-firmware-canvas.png")
    screen.write_png(artifacts / "console-firmware-qemu.png")

    assert (canvas.width, canvas.height) == (screen.width, screen.height) == FIRMWARE_SCREEN
    # Equal to what QEMU shows, text for text (the blinking cursor may differ).
    agreement = canvas.ink_agreement(screen)
    assert agreement >= 0.95, f"only {agreement:.1%} of the text pixels match QEMU's screen"
    rows_apart = set(canvas.ink_rows()) ^ set(screen.ink_rows())
    assert len(rows_apart) <= CURSOR_ROWS, f"rows with text in one picture only: {rows_apart}"
    # Text-like: two colours at least, a modest share of ink, in several lines (the banner,
    # two boot attempts, "No bootable device.").
    assert len(canvas.colours()) >= 2
    assert 0.005 <= canvas.ink_share() <= 0.5, canvas.ink_share()
    assert canvas.text_lines() >= 6, canvas.text_lines()
    assert served.refusals() == []


def other_engine() -> tuple[rsa.RSAPrivateKey, str]:
    """A key and self-signed certificate that claim the engine's name but are not its own."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, self_signed_pem(key, ENGINE_FQDN, days=1)


def refused_ticket(served: ServedProxy, guest: Guest, case: str) -> str:
    now = datetime.now(UTC)
    if case == "expired":
        signer = load_signer(HostPaths.under(served.hosts.engine))
        key, cert_pem, issued = signer.key, signer.cert_pem, now - timedelta(minutes=10)
    else:
        (key, cert_pem), issued = other_engine(), now
    return issue_ticket(
        key,
        cert_pem,
        "127.0.0.1",
        guest.vnc_port,
        now=issued,
        ttl_seconds=120,
        salt=os.urandom(SALT_BYTES),
    )


@pytest.mark.parametrize(
    ("case", "reason"), [("expired", "expired"), ("other_key", "bad_signature")]
)
def test_refused_ticket_fails_in_novnc_and_the_proxy_says_why(
    case: str,
    reason: str,
    served: ServedProxy,
    guest: Guest,
    page: Page,
    console_site: ConsolePage,
    artifacts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = served.refusals()
    state = open_console(page, console_site, served.url(refused_ticket(served, guest, case)))
    save(artifacts, f"console-{case}.png", page, capsys)

    assert state["status"] == "disconnected" and not state["everConnected"], state
    # The proxy closed the websocket saying why, and noVNC shows that as its failure.
    assert state["clean"] is False, state
    assert any(f"reason: ticket refused: {reason}" in error for error in state["errors"]), state
    wait_for(lambda: len(served.refusals()) > len(before), "the proxy to log the refusal")
    assert served.refusals()[len(before) :] == [reason]

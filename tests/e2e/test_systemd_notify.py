"""The real daemons speaking systemd's notify protocol to a datagram socket the test binds.

To prove READY=1 comes only after the sockets are bound, the test fills the notify
socket's queue first: the daemon's blocking send of READY=1 then holds it exactly where it
sends it, and the test looks at its sockets before reading. A READY=1 sent too early
would hold the daemon before it binds, and the sockets would never appear.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Hosts, wait_for
from tests.notify_listener import NotifyListener

WATCHDOG_USEC = "1000000"  # the daemons ping every 0.5 s, or as often as their loop wakes


@pytest.fixture
def notify(hosts: Hosts) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(hosts.top / "notify"))
    yield listener
    listener.close()


def under_systemd(listener: NotifyListener, **extra: str) -> dict[str, str]:
    return {"NOTIFY_SOCKET": listener.env_value, "WATCHDOG_USEC": WATCHDOG_USEC, **extra}


def accepts_tcp(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def accepts_ipc(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        return path.exists() and probe.connect_ex(str(path)) == 0


def pings_then_stops(notify: NotifyListener, daemon: int) -> None:
    for _ in range(3):
        assert notify.wait_for("WATCHDOG", timeout=15).pid == daemon
    os.kill(daemon, signal.SIGTERM)
    assert notify.wait_for("STOPPING", timeout=15).pid == daemon


def test_engine_ready_after_it_listens_then_watchdog_then_stopping(
    hosts: Hosts, notify: NotifyListener
) -> None:
    hosts.engine_init()
    notify.fill()
    proc = hosts.start_engine(env=under_systemd(notify), wait=False)
    control = hosts.engine / "run/wsproxy-agent/engine.sock"
    wait_for(
        lambda: accepts_tcp(hosts.port) and accepts_ipc(control),
        "the engine's port and control socket, bound before READY=1",
    )
    ready = notify.wait_for("READY")
    assert ready.pid == proc.pid  # sent by the main process (NotifyAccess=main)
    assert ready.fields["MAINPID"] == str(proc.pid)
    assert ready.fields["STATUS"] == f"listening on tcp://127.0.0.1:{hosts.port}"
    assert "running (pid" in hosts.cli(hosts.engine, "status").stdout

    pings_then_stops(notify, proc.pid)
    assert proc.wait(timeout=20) == 0


def test_proxy_ready_after_its_control_socket_then_watchdog_then_stopping(
    running: Hosts, notify: NotifyListener
) -> None:
    h = running
    joined = h.join(h.token())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    notify.fill()
    proc = h.start_proxy(env=under_systemd(notify), wait=False)
    wait_for(
        lambda: accepts_ipc(h.proxy / "run/wsproxy-agent/proxy.sock"),
        "the proxy's control socket, bound before READY=1",
    )
    ready = notify.wait_for("READY")
    assert ready.pid == proc.pid and ready.fields["MAINPID"] == str(proc.pid)
    assert "running (pid" in h.cli(h.proxy, "status").stdout

    pings_then_stops(notify, proc.pid)
    assert proc.wait(timeout=20) == 0


def test_a_watchdog_meant_for_another_process_gets_no_pings(
    hosts: Hosts, notify: NotifyListener
) -> None:
    hosts.engine_init()
    # As if inherited from a parent that systemd watches: WATCHDOG_PID is not the daemon.
    env = under_systemd(notify, WATCHDOG_PID=str(os.getpid()))
    proc = hosts.start_engine(env=env)
    notify.wait_for("READY")
    # Four ping intervals of silence; a pinging daemon sends its first ping at once.
    assert notify.next(timeout=2.0) is None
    proc.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING")
    assert notify.count("WATCHDOG") == 0

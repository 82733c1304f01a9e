"""The sd_notify client against a real AF_UNIX datagram socket standing in for systemd's."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.notify_listener import NotifyListener
from wsproxy_agent.sdnotify import Notifier, notify_address, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    path = tmp_path / "notify"
    assert len(str(path)) < 108, "AF_UNIX paths are limited to 108 bytes"
    receiver = NotifyListener(str(path))
    yield receiver
    receiver.close()


@pytest.fixture
def abstract_listener() -> Iterator[NotifyListener]:
    receiver = NotifyListener(f"@wsproxy-agent-test-{secrets.token_hex(6)}")
    yield receiver
    receiver.close()


def test_ready_carries_status_and_our_pid_to_a_path_socket(listener: NotifyListener) -> None:
    Notifier.from_environ({"NOTIFY_SOCKET": listener.env_value}).ready("listening on tcp://x:1")
    note = listener.wait_for("READY", timeout=5)
    assert note.fields == {
        "READY": "1",
        "STATUS": "listening on tcp://x:1",
        "MAINPID": str(os.getpid()),
    }
    assert note.pid == os.getpid()


def test_an_abstract_socket_is_named_with_an_at_sign(abstract_listener: NotifyListener) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": abstract_listener.env_value})
    notifier.ready("up")
    notifier.stopping()
    assert abstract_listener.wait_for("READY", timeout=5).fields["STATUS"] == "up"
    assert abstract_listener.wait_for("STOPPING", timeout=5).fields == {"STOPPING": "1"}


@pytest.mark.parametrize("value", [None, "", "@", "vsock:2:1234", "relative/path"])
def test_no_usable_notify_socket_means_no_notifications(value: str | None) -> None:
    environ = {} if value is None else {"NOTIFY_SOCKET": value}
    assert notify_address(environ) is None


def test_an_unsupported_notify_socket_is_said_once_at_start() -> None:
    with capture_logs() as logged:
        Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:1234"}).ready("up")
    assert [e["event"] for e in logged] == ["systemd_notify_unsupported"]


def test_a_vanished_socket_is_logged_once_and_never_raised(tmp_path: Path) -> None:
    listener = NotifyListener(str(tmp_path / "notify"))
    with capture_logs() as logged:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.env_value})
        notifier.ready("up")
        listener.wait_for("READY", timeout=5)
        listener.close()  # systemd went away: the path is gone
        notifier.ready("again")
        notifier.stopping()
    failures = [e for e in logged if e["event"] == "systemd_notify_failed"]
    assert len(failures) == 1, logged
    assert failures[0]["socket"] == str(tmp_path / "notify")


def test_a_socket_nobody_listens_on_is_logged_not_raised(tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    orphan = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    orphan.bind(str(stale))
    orphan.close()  # the file stays, nobody reads: ECONNREFUSED
    with capture_logs() as logged:
        Notifier(str(stale)).ready("up")
    assert [e["event"] for e in logged] == ["systemd_notify_failed"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"WATCHDOG_USEC": "60000000"}, 60.0),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "4242"}, 1.0),  # 4242 is us below
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "4243"}, None),  # a parent's setting
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "me"}, None),
        ({"WATCHDOG_PID": "4242"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(environ, pid=4242) == expected


def test_keepalive_pings_at_half_the_watchdog_interval(listener: NotifyListener) -> None:
    now = [100.0]
    notifier = Notifier(listener.address, watchdog_s=2.0, clock=lambda: now[0])
    pinged = []
    for t in (100.0, 100.4, 100.9, 101.0, 101.5, 101.99, 102.0):
        now[0] = t
        notifier.keepalive()
        if listener.next(timeout=0.2) is not None:
            pinged.append(t)
    assert pinged == [100.0, 101.0, 102.0]
    assert listener.count("WATCHDOG") == 3


def test_keepalive_is_silent_without_a_watchdog(listener: NotifyListener) -> None:
    notifier = Notifier.from_environ(
        {
            "NOTIFY_SOCKET": listener.env_value,
            "WATCHDOG_USEC": "1000000",
            "WATCHDOG_PID": str(os.getppid()),
        }
    )
    notifier.keepalive()
    notifier.ready("up")
    listener.wait_for("READY", timeout=5)
    assert listener.count("WATCHDOG") == 0

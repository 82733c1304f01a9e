"""The daemons' local control sockets: reachable by root on the same host, by no other user,
and from no network.

Both daemons are started under umask 000 here, so that the modes the other user runs into
are the ones ``control.ControlServer`` sets (0700 directory, 0600 socket), not ones a
careful umask happened to give; and every directory above the socket's own is opened to
0755, so that nothing else stands in the way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxy_agent import state
from tests.attacks import procfs
from tests.attacks.conftest import Target
from tests.e2e.conftest import wait_for
from tests.support.privileged import skip_or_fail
from wsproxy_agent.paths import HostPaths

# Runs as the user under test: a bare connect(2) to the socket file, then the control
# protocol itself (a JSON ping), each with its own outcome.
CLIENT = """
import json, socket, sys
path = sys.argv[1]
try:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
    connect = "ok"
except OSError as exc:
    connect = exc.__class__.__name__
answer = None
try:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(3)
        s.connect(path)
        s.sendall(json.dumps({"op": "ping"}).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    answer = json.loads(data)
except OSError:
    pass
print(json.dumps({"connect": connect, "answer": answer}))
"""
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def ask_as(prefix: list[str], socket_path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*prefix, sys.executable, "-c", CLIENT, str(socket_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@contextlib.contextmanager
def mode(path: Path, temporary: int) -> Iterator[None]:
    kept = stat.S_IMODE(path.stat().st_mode)
    path.chmod(temporary)
    try:
        yield
    finally:
        path.chmod(kept)


def open_the_way(socket_path: Path) -> None:
    """Every directory above the socket's own: traversable by anyone."""
    for directory in socket_path.parent.parents:
        if directory == Path("/tmp"):
            break
        directory.chmod(0o755)
    assert os.stat("/tmp").st_mode & 0o001, "/tmp itself is not traversable by others"


@pytest.fixture
def needs_nobody() -> None:
    if os.geteuid() != 0:
        skip_or_fail("running a client as another user needs root")
    if shutil.which("setpriv") is None:
        skip_or_fail("setpriv (util-linux) is not installed")
    done = subprocess.run([*AS_NOBODY, "true"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        skip_or_fail(f"cannot run a command as nobody: {done.stderr.strip()}")


def assert_only_its_owner_gets_in(socket_path: Path, pid: int) -> None:
    open_the_way(socket_path)

    as_nobody = ask_as(AS_NOBODY, socket_path)
    assert as_nobody == {"connect": "PermissionError", "answer": None}

    # Each of the two modes the daemon set keeps another user out by itself.
    directory = socket_path.parent
    with mode(directory, 0o755):
        assert ask_as(AS_NOBODY, socket_path) == as_nobody, "the socket file lets others in"
    with mode(socket_path, 0o666):
        assert ask_as(AS_NOBODY, socket_path) == as_nobody, "its directory lets others in"

    as_root = ask_as([], socket_path)
    assert as_root["connect"] == "ok" and as_root["answer"]["pid"] == pid, as_root


def test_engine_control_socket_refuses_other_users(target: Target, needs_nobody: None) -> None:
    before = target.snapshot()
    engine = HostPaths(target.engine_root)
    shutil.rmtree(engine.run_dir)  # made again by the daemon, under the umask below
    with umask(0):
        target.restart_engine()

    assert_only_its_owner_gets_in(engine.engine_control, target.hosts.daemons[0].pid)

    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_proxy_control_socket_refuses_other_users(target: Target, needs_nobody: None) -> None:
    with umask(0):
        proxy = target.hosts.start_proxy()
    # Once running, the proxy notes its renewal plan and checks its service for the first
    # heartbeat; the attack starts after both, so neither counts as the attacker's doing.
    proxy_state = HostPaths(target.hosts.proxy).proxy_state
    wait_for(lambda: "renewal" in state.load(proxy_state), "the proxy to note its renewal plan")
    wait_for(
        lambda: any(args[0] == "is-active" for _, args in target.hosts.systemctl_proxy.calls),
        "the proxy's first heartbeat to check its service",
    )
    before = target.snapshot()

    assert_only_its_owner_gets_in(HostPaths(target.hosts.proxy).proxy_control, proxy.pid)

    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_daemons_listen_on_the_configured_port_and_their_control_sockets_only(
    target: Target,
) -> None:
    proxy = target.hosts.start_proxy()
    engine = target.hosts.daemons[0]

    assert procfs.listening(engine.pid) == procfs.Listening(
        tcp=frozenset({("127.0.0.1", target.port)}),
        udp=frozenset(),
        unix=frozenset({str(HostPaths(target.engine_root).engine_control)}),
    )
    # The proxy only connects out: no port of its own.
    assert procfs.listening(proxy.pid) == procfs.Listening(
        tcp=frozenset(),
        udp=frozenset(),
        unix=frozenset({str(HostPaths(target.hosts.proxy).proxy_control)}),
    )

"""The local control channel: one JSON request per connection, one JSON answer, from the
daemon's own user only, with bounded reads on both ends."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsproxy_agent import control
from wsproxy_agent.errors import AgentError


@pytest.fixture
def server(tmp_path: Path) -> Iterator[control.ControlServer]:
    srv = control.ControlServer(tmp_path / "run" / "d.sock")
    yield srv
    srv.close()


def serve_once(srv: control.ControlServer, answer: dict[str, object]) -> threading.Thread:
    """Answer the next request as a daemon's loop would, on another thread."""

    def loop() -> None:
        for _ in range(500):
            request = srv.take()
            if request is not None:
                request.answer({**answer, "asked": request.body, "uid": request.uid})
                return
            threading.Event().wait(0.01)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_a_request_gets_its_answer_and_the_kernel_says_who_asked(
    server: control.ControlServer,
) -> None:
    thread = serve_once(server, {"ok": True})
    answer = control.ask(server.path, {"op": "ping"})
    thread.join(5)
    assert answer == {"ok": True, "asked": {"op": "ping"}, "uid": os.getuid()}


def test_only_the_owner_may_reach_the_socket(server: control.ControlServer) -> None:
    assert stat.S_IMODE(server.path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.path.stat().st_mode) == 0o600


def test_no_daemon_is_none_not_an_error(tmp_path: Path) -> None:
    assert control.ask(tmp_path / "absent.sock", {"op": "ping"}) is None
    # A socket file left behind by a killed daemon: nobody listens on it.
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))
    assert control.ask(stale, {"op": "ping"}) is None


def test_a_daemon_that_never_answers_is_none_within_the_timeout(
    server: control.ControlServer,
) -> None:
    # Accepted by the kernel's backlog, never taken: the client must not hang.
    assert control.ask(server.path, {"op": "ping"}, timeout_ms=200) is None


def raw_request(path: Path, data: bytes) -> socket.socket:
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(path))
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    return client


def read_answer(client: socket.socket) -> dict[str, object]:
    client.settimeout(5)
    data = b""
    while chunk := client.recv(4096):
        data += chunk
    client.close()
    answer = json.loads(data)
    assert isinstance(answer, dict)
    return answer


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[1, 2]", b'"op"', b"\xff\xfe", b"", b"{" * (control.MAX_REQUEST_BYTES + 1)],
    ids=["not-json", "a-list", "a-string", "not-utf8", "empty", "oversized"],
)
def test_a_bad_request_is_answered_with_a_sentence_and_not_handed_on(
    server: control.ControlServer, data: bytes
) -> None:
    client = raw_request(server.path, data)
    assert server.take() is None
    answer = read_answer(client)
    assert answer["ok"] is False and "JSON object" in str(answer["error"])


def test_a_client_that_never_finishes_its_request_costs_a_bounded_wait(
    server: control.ControlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(control, "READ_REQUEST_S", 0.2)
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(server.path))
    client.sendall(b'{"op": ')  # and never shuts its side down
    assert server.take() is None
    assert read_answer(client)["ok"] is False


def test_nothing_waiting_is_none_at_once(server: control.ControlServer) -> None:
    assert server.take() is None


def test_a_root_too_deep_for_a_unix_socket_is_a_sentence(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="shorter --root"):
        control.ControlServer(tmp_path / ("d" * 120) / "engine.sock")


def test_an_answer_to_a_client_gone_away_is_dropped_quietly(server: control.ControlServer) -> None:
    client = raw_request(server.path, b'{"op": "ping"}')
    request = server.take()
    assert request is not None
    client.close()
    request.answer({"ok": True, "padding": "x" * 1_000_000})  # must not raise

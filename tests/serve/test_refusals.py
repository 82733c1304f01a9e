"""Bad tickets and unreachable targets: a clean close with a reason, one log line, no traceback."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.frames import CloseCode

from protocol.ticket import MAX_TICKET_BYTES
from tests.e2e.conftest import wait_for
from tests.serve.conftest import Echo, Pki, ServeHost, binary, connect_to, run
from wsproxy_agent.demo import free_port


def _rewritten(ticket: str, change: Callable[[dict[str, str]], None]) -> str:
    fields = json.loads(base64.b64decode(ticket))
    change(fields)
    return base64.b64encode(json.dumps(fields).encode()).decode()


def _other_port(fields: dict[str, str]) -> None:
    fields["data"] = fields["data"].replace("port", "port%22:%229999%22,%22x", 1)


def _without_valid_to(fields: dict[str, str]) -> None:
    del fields["validTo"]


BAD_TICKETS: dict[str, tuple[str, Callable[[Pki, int], str]]] = {
    "expired": (
        "expired",
        lambda pki, port: pki.ticket("127.0.0.1", port, now=datetime.now(UTC) - timedelta(hours=1)),
    ),
    "not yet valid": (
        "not_yet_valid",
        lambda pki, port: pki.ticket("127.0.0.1", port, now=datetime.now(UTC) + timedelta(hours=1)),
    ),
    "bad signature": (
        "bad_signature",
        lambda pki, port: _rewritten(pki.ticket("127.0.0.1", port), _other_port),
    ),
    "signed by another key": (
        "bad_signature",
        lambda pki, port: pki.ticket(
            "127.0.0.1",
            port,
            key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ),
    ),
    "missing field": (
        "missing_field",
        lambda pki, port: _rewritten(pki.ticket("127.0.0.1", port), _without_valid_to),
    ),
    "not base64": ("not_base64", lambda pki, port: "this-is-not*base64!"),
    "not JSON": ("not_json", lambda pki, port: base64.b64encode(b"{not json").decode()),
    "oversized": ("oversized", lambda pki, port: "A" * (MAX_TICKET_BYTES + 4)),
}


async def _refused(host: ServeHost, ticket: str) -> tuple[str, ConnectionClosed]:
    """The client's own address and how the proxy closed its connection."""
    async with connect_to(host, ticket) as ws:
        local = "{}:{}".format(*ws.local_address[:2])
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        return local, closed.value


@pytest.fixture
def started(serve_host: ServeHost) -> ServeHost:
    serve_host.install()
    serve_host.start()
    return serve_host


@pytest.mark.parametrize("kind", list(BAD_TICKETS))
def test_a_bad_ticket_is_refused_with_1008_and_one_log_line(
    started: ServeHost, echo: Echo, kind: str
) -> None:
    reason, make = BAD_TICKETS[kind]
    client, closed = run(_refused(started, make(started.pki, echo.port)))

    assert closed.rcvd is not None
    assert closed.rcvd.code == CloseCode.POLICY_VIOLATION
    assert closed.rcvd.reason == f"ticket refused: {reason}"
    wait_for(started.refusals, "the refusal in the log")
    (refusal,) = started.refusals()
    assert refusal["who"] == client
    assert refusal["why"] == reason
    assert refusal["level"] == "warning" and refusal["detail"]
    assert echo.connections == 0  # the target never saw a byte
    assert "Traceback" not in started.log()


def test_every_refusal_is_logged_once_and_serving_goes_on(started: ServeHost, echo: Echo) -> None:
    for _, make in BAD_TICKETS.values():
        run(_refused(started, make(started.pki, echo.port)))
    wait_for(lambda: len(started.refusals()) >= len(BAD_TICKETS), "every refusal in the log")
    assert [r["why"] for r in started.refusals()] == [reason for reason, _ in BAD_TICKETS.values()]

    async def good() -> bytes:
        async with connect_to(started, started.pki.ticket("127.0.0.1", echo.port)) as ws:
            await ws.send(b"still serving")
            return await binary(ws)

    assert run(good()) == b"still serving"
    assert "Traceback" not in started.log()


def test_an_unreachable_target_closes_with_bad_gateway_and_one_line(started: ServeHost) -> None:
    nobody = free_port()  # nothing listens there
    client, closed = run(_refused(started, started.pki.ticket("127.0.0.1", nobody)))

    assert closed.rcvd is not None
    assert closed.rcvd.code == CloseCode.BAD_GATEWAY
    assert closed.rcvd.reason == "console target unreachable"
    wait_for(lambda: started.events("console_target_unreachable"), "the failure in the log")
    (line,) = started.events("console_target_unreachable")
    assert (line["who"], line["target"]) == (client, f"127.0.0.1:{nobody}")
    assert "refused" in line["why"].lower()
    assert not started.refusals()
    assert "Traceback" not in started.log()


def test_a_request_line_beyond_any_ticket_gets_414_and_one_line(started: ServeHost) -> None:
    # websockets 15 and later answer 414; older ones close the connection, which their
    # client reports in a way of its own version (InvalidMessage, EOFError, ConnectionError).
    with pytest.raises((InvalidStatus, InvalidMessage, EOFError, ConnectionError)) as refused:
        run(_refused(started, "A" * (4 * MAX_TICKET_BYTES)))
    if isinstance(refused.value, InvalidStatus):
        assert refused.value.response.status_code == 414
    wait_for(lambda: started.events("handshake_refused"), "the refusal in the log")
    (line,) = started.events("handshake_refused")
    assert line["who"].startswith("127.0.0.1:") and line["why"]
    assert "Traceback" not in started.log()

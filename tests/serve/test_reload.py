"""Certificate renewal: new connections get the new certificate, open consoles carry on,
and a broken new pair never takes the proxy down."""

from __future__ import annotations

import signal

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import wait_for
from tests.serve.conftest import Echo, ServeHost, binary, connect_to, peer_serial, run
from tests.support.selfsigned import self_signed_pem


async def _serial_of_a_new_connection(host: ServeHost, echo: Echo) -> int:
    async with connect_to(host, host.pki.ticket("127.0.0.1", echo.port)) as ws:
        await ws.send(b"hello")
        assert await ws.recv() == b"hello"
        return peer_serial(ws)


def test_a_renewed_certificate_serves_new_connections_and_open_consoles_go_on(
    serve_host: ServeHost, echo: Echo
) -> None:
    serve_host.install()
    serve_host.start()
    old = serve_host.issued
    renewed = serve_host.pki.issue()
    assert old is not None and renewed.serial != old.serial

    async def scenario() -> None:
        async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as ws:
            await ws.send(b"before")
            assert await ws.recv() == b"before"
            assert peer_serial(ws) == old.serial

            serve_host.replace_pair(renewed.cert_pem, renewed.key_pem)
            assert await _serial_of_a_new_connection(serve_host, echo) == renewed.serial

            # The console opened before the renewal still carries bytes both ways.
            await ws.send(b"after")
            assert await ws.recv() == b"after"

    run(scenario())
    (reloaded,) = serve_host.events("tls_certificate_reloaded")
    assert reloaded["serial"] == format(renewed.serial, "x")


def test_a_broken_new_pair_keeps_the_old_certificate(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()
    old = serve_host.issued
    assert old is not None
    mine, someone_elses = serve_host.pki.issue(), serve_host.pki.issue()

    serve_host.replace_pair(mine.cert_pem, someone_elses.key_pem)
    for _ in range(3):
        assert run(_serial_of_a_new_connection(serve_host, echo)) == old.serial
    # Said once for that pair, not once per connection.
    (refused,) = serve_host.events("tls_certificate_reload_refused")
    assert "key must belong to the certificate" in refused["why"]

    serve_host.replace_pair(b"not a certificate", b"not a key")
    assert run(_serial_of_a_new_connection(serve_host, echo)) == old.serial

    serve_host.replace_pair(mine.cert_pem, mine.key_pem)  # the agent's next try works
    assert run(_serial_of_a_new_connection(serve_host, echo)) == mine.serial
    assert "Traceback" not in serve_host.log()


def test_sighup_reloads_at_once(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()
    serve_host.start()
    renewed = serve_host.pki.issue()
    serve_host.replace_pair(renewed.cert_pem, renewed.key_pem)
    assert serve_host.proc is not None
    serve_host.proc.send_signal(signal.SIGHUP)  # systemctl reload, before any connection
    wait_for(lambda: serve_host.events("tls_certificate_reloaded"), "the reload in the log")
    assert serve_host.events("tls_certificate_reloaded")[0]["serial"] == format(renewed.serial, "x")
    assert serve_host.proc.poll() is None
    assert run(_serial_of_a_new_connection(serve_host, echo)) == renewed.serial


def _engine_certificate(key: rsa.RSAPrivateKey) -> bytes:
    return self_signed_pem(key, "new-engine.serve.test", days=30).encode("ascii")


def test_a_new_engine_certificate_is_trusted_for_tickets_from_then_on(
    serve_host: ServeHost, echo: Echo
) -> None:
    serve_host.install()
    serve_host.start()
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serve_host.write(serve_host.paths.proxy_engine_cert, _engine_certificate(new_key))

    async def with_ticket(ticket: str) -> bytes:
        async with connect_to(serve_host, ticket) as ws:
            await ws.send(b"x")
            return await binary(ws)

    assert run(with_ticket(serve_host.pki.ticket("127.0.0.1", echo.port, key=new_key))) == b"x"
    with pytest.raises(ConnectionClosed) as closed:
        run(with_ticket(serve_host.pki.ticket("127.0.0.1", echo.port)))  # the old engine key
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.reason == "ticket refused: bad_signature"
    assert serve_host.events("ticket_key_reloaded")

"""TLS as oVirt's proxy serves it: SSL_ONLY, plain ws on the same port, SSL_MIN_VERSION, ciphers."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import wait_for
from tests.serve.conftest import Echo, ServeHost, binary, client_tls, connect_to, run

TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


async def _echoes(host: ServeHost, echo: Echo, **kwargs: Any) -> bytes:
    async with connect_to(host, host.pki.ticket("127.0.0.1", echo.port), **kwargs) as ws:
        await ws.send(b"console bytes")
        return await binary(ws)


def test_ssl_only_refuses_plain_ws_with_403_and_one_line(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install()  # SSL_ONLY=True, as 'proxy join' writes it
    serve_host.start()
    with pytest.raises(InvalidStatus) as refused:
        run(_echoes(serve_host, echo, plain=True))
    assert refused.value.response.status_code == 403
    assert b"only wss://" in refused.value.response.body
    wait_for(serve_host.refusals, "the refusal in the log")
    (refusal,) = serve_host.refusals()
    assert refusal["why"] == "plain_ws_with_ssl_only"
    assert echo.connections == 0
    assert run(_echoes(serve_host, echo)) == b"console bytes"  # wss:// still served


def test_ssl_only_false_serves_ws_and_wss_on_one_port(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install(SSL_ONLY="False")
    serve_host.start()
    assert run(_echoes(serve_host, echo, plain=True)) == b"console bytes"
    assert run(_echoes(serve_host, echo)) == b"console bytes"
    assert not serve_host.refusals()


def test_without_a_certificate_only_plain_ws_is_served(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install(SSL_ONLY="False", SSL_CERTIFICATE="")
    serve_host.start()
    assert run(_echoes(serve_host, echo, plain=True)) == b"console bytes"
    with pytest.raises(OSError):
        run(_echoes(serve_host, echo))
    wait_for(lambda: serve_host.events("tls_refused"), "the TLS refusal in the log")
    assert "Traceback" not in serve_host.log()


@pytest.mark.parametrize("minimum", ["TLSv1.2", "TLSv1.3"])
def test_ssl_min_version_is_honoured(serve_host: ServeHost, echo: Echo, minimum: str) -> None:
    serve_host.install(SSL_MIN_VERSION=minimum)
    serve_host.start()
    only_tls12 = client_tls(serve_host.pki, maximum_version=TLS12)
    if minimum == "TLSv1.3":
        with pytest.raises(OSError):  # an alert, or a reset when it races the client's hello
            run(_echoes(serve_host, echo, ssl=only_tls12))
        wait_for(lambda: serve_host.events("tls_handshake_failed"), "the failure in the log")
        (failed,) = serve_host.events("tls_handshake_failed")
        assert failed["why"] == "UNSUPPORTED_PROTOCOL"  # OpenSSL: below the minimum version
        assert "Traceback" not in serve_host.log()
    else:
        assert run(_echoes(serve_host, echo, ssl=only_tls12)) == b"console bytes"
    only_tls13 = client_tls(serve_host.pki, minimum_version=TLS13)
    assert run(_echoes(serve_host, echo, ssl=only_tls13)) == b"console bytes"


def test_ssl_ciphers_limit_what_tls12_clients_may_use(serve_host: ServeHost, echo: Echo) -> None:
    serve_host.install(SSL_CIPHERS="ECDHE-RSA-AES128-GCM-SHA256")
    serve_host.start()
    offering = client_tls(serve_host.pki, maximum_version=TLS12)
    offering.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384")
    with pytest.raises(OSError):
        run(_echoes(serve_host, echo, ssl=offering))
    wait_for(lambda: serve_host.events("tls_handshake_failed"), "the failure in the log")
    assert "CIPHER" in serve_host.events("tls_handshake_failed")[0]["why"].upper()
    offering.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    assert run(_echoes(serve_host, echo, ssl=offering)) == b"console bytes"


def test_silent_and_garbage_connections_go_away_with_one_line_each(
    serve_host: ServeHost, echo: Echo
) -> None:
    serve_host.install()
    serve_host.start()
    # A TLS record header announcing garbage: the handshake fails, nothing else happens.
    with socket.create_connection(("127.0.0.1", serve_host.port), timeout=20) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        assert sock.recv(4096) is not None
    # Plain text that is no HTTP request: refused during the handshake.
    with socket.create_connection(("127.0.0.1", serve_host.port), timeout=20) as sock:
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        sock.recv(4096)
    wait_for(lambda: serve_host.events("tls_handshake_failed"), "the TLS failure in the log")
    wait_for(lambda: serve_host.events("handshake_refused"), "the refused request in the log")
    assert len(serve_host.events("tls_handshake_failed")) == 1
    assert len(serve_host.events("handshake_refused")) == 1
    assert "Traceback" not in serve_host.log()
    assert run(_echoes(serve_host, echo)) == b"console bytes"


def test_an_empty_ssl_key_reads_the_key_from_the_certificate_file(
    serve_host: ServeHost, echo: Echo
) -> None:
    serve_host.install(SSL_KEY="")
    assert serve_host.issued is not None
    # As websockify: the certificate file holds the key too.
    serve_host.write(
        serve_host.paths.proxy_cert, serve_host.issued.cert_pem + serve_host.issued.key_pem
    )
    serve_host.paths.proxy_tls_key.unlink()
    serve_host.start()
    assert run(_echoes(serve_host, echo)) == b"console bytes"

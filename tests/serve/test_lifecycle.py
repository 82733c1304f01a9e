"""Starting and stopping as a systemd service: READY=1 once listening, SIGTERM ends it cleanly."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from tests.notify_listener import NotifyListener
from tests.serve.conftest import Echo, ServeHost, connect_to, run


def test_sigterm_closes_open_consoles_and_exits_0_promptly(
    serve_host: ServeHost, echo: Echo
) -> None:
    serve_host.install()
    serve_host.start()
    assert serve_host.proc is not None
    proc = serve_host.proc

    async def console_during_sigterm() -> tuple[ConnectionClosed, float]:
        async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as ws:
            await ws.send(b"open")
            assert await ws.recv() == b"open"
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
            exit_code = await asyncio.to_thread(proc.wait, 20)
            assert exit_code == 0
            return closed.value, time.monotonic() - started

    closed, took = run(console_during_sigterm())
    assert closed.rcvd is not None and closed.rcvd.code == CloseCode.GOING_AWAY
    assert took < 5, f"stopping took {took:.1f} s"
    (stopping,) = serve_host.events("console_proxy_stopping")
    assert stopping["open_consoles"] == 1
    assert serve_host.events("console_proxy_stopped")
    assert echo.closed_by_client.wait(10)  # the target's connection was closed too
    with pytest.raises(OSError):  # and nothing listens any more
        socket.create_connection(("127.0.0.1", serve_host.port), timeout=5).close()


def test_ready_once_listening_and_stopping_at_the_end(
    serve_host: ServeHost, tmp_path: Path
) -> None:
    listener = NotifyListener(str(tmp_path / "notify"))
    try:
        serve_host.install()
        serve_host.start(env={"NOTIFY_SOCKET": listener.env_value}, wait=False)
        ready = listener.wait_for("READY", timeout=30)
        assert serve_host.proc is not None and ready.pid == serve_host.proc.pid
        assert ready.fields["STATUS"] == f"serving consoles on 127.0.0.1:{serve_host.port}"
        # READY=1 means the port is bound: a connection succeeds at once.
        socket.create_connection(("127.0.0.1", serve_host.port), timeout=5).close()
        assert serve_host.stop() == 0
        assert listener.wait_for("STOPPING", timeout=10).fields == {"STOPPING": "1"}
    finally:
        listener.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_is_a_sentence(serve_host: ServeHost, workers: int) -> None:
    serve_host.workers = workers
    serve_host.install()
    with socket.create_server(("127.0.0.1", serve_host.port)):
        serve_host.start(wait=False)
        assert serve_host.proc is not None
        assert serve_host.proc.wait(timeout=60) == 1
    log = serve_host.log()
    assert f"Cannot listen on 127.0.0.1:{serve_host.port}: Address already in use" in log
    assert "ovirt-websocket-proxy" in log
    assert "Traceback" not in log
    assert not serve_host.events("worker_started")  # refused before any worker is forked

"""``proxy serve --workers N``: consoles spread over worker processes on one port, which a
parent starts, tells to reload and stop, and replaces when one dies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from tests.attacks import procfs
from tests.e2e.conftest import wait_for
from tests.notify_listener import NotifyListener
from tests.serve.conftest import Echo, ServeHost, connect_to, run

CONSOLES = 20


def started(host: ServeHost, workers: int = 2, **kwargs: Any) -> ServeHost:
    host.workers = workers
    host.install()
    host.start(**kwargs)
    return host


def worker_pids(host: ServeHost) -> dict[int, int]:
    """Worker index -> pid of its latest process, as the parent logged them."""
    return {int(e["worker"]): int(e["pid"]) for e in host.events("worker_started")}


def by_worker(host: ServeHost, name: str) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for event in host.events(name):
        found.setdefault(int(event["worker"]), []).append(event)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def echoes(ws: ClientConnection, data: bytes) -> None:
    await ws.send(data)
    assert await ws.recv() == data


def test_consoles_opened_at_once_land_on_every_worker(serve_host: ServeHost, echo: Echo) -> None:
    started(serve_host)

    async def many() -> None:
        tickets = [serve_host.pki.ticket("127.0.0.1", echo.port) for _ in range(CONSOLES)]
        opened = await asyncio.gather(*(connect_to(serve_host, t) for t in tickets))
        try:
            await asyncio.gather(*(echoes(ws, b"%d" % i) for i, ws in enumerate(opened)))
        finally:
            await asyncio.gather(*(ws.close() for ws in opened))

    run(many())
    opened_on = by_worker(serve_host, "console_opened")
    assert sorted(opened_on) == [0, 1]
    assert sum(map(len, opened_on.values())) == CONSOLES
    wait_for(lambda: len(serve_host.events("console_closed")) == CONSOLES, "every console closed")
    closed = serve_host.events("console_closed")
    assert all(e["bytes_to_target"] > 0 and e["bytes_to_client"] > 0 for e in closed)
    assert "Traceback" not in serve_host.log()


def test_each_worker_accepts_on_a_socket_of_its_own(serve_host: ServeHost) -> None:
    # One socket shared by all would spread a burst of connections unevenly.
    started(serve_host)
    assert serve_host.proc is not None
    sockets = procfs.listening_on(serve_host.port)
    assert len(sockets) == 2
    assert procfs.socket_inodes(serve_host.proc.pid) >= sockets  # kept, to restart a worker on
    held = [procfs.socket_inodes(pid) & sockets for pid in worker_pids(serve_host).values()]
    assert len(held) == 2 and all(len(h) == 1 for h in held) and held[0] != held[1]


def test_sighup_to_the_main_process_reloads_every_worker(serve_host: ServeHost) -> None:
    started(serve_host)
    renewed = serve_host.pki.issue()
    serve_host.replace_pair(renewed.cert_pem, renewed.key_pem)
    assert serve_host.proc is not None
    serve_host.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: sorted(by_worker(serve_host, "tls_certificate_reloaded")) == [0, 1],
        "both workers to reload",
    )
    for (reloaded,) in by_worker(serve_host, "tls_certificate_reloaded").values():
        assert reloaded["serial"] == format(renewed.serial, "x")
    assert sorted(by_worker(serve_host, "ticket_key_reloaded")) == [0, 1]
    assert serve_host.proc.poll() is None


def test_sigterm_closes_the_consoles_of_every_worker_and_exits_0(
    serve_host: ServeHost, echo: Echo, tmp_path: Path
) -> None:
    listener = NotifyListener(str(tmp_path / "notify"))
    try:
        started(serve_host, env={"NOTIFY_SOCKET": listener.env_value})
        assert serve_host.proc is not None
        proc = serve_host.proc
        listener.wait_for("READY", timeout=30)

        async def consoles_during_sigterm() -> tuple[list[str | bytes | BaseException], float]:
            opened = []
            # Until both workers hold one: the kernel picks the socket, not the client.
            while len(by_worker(serve_host, "console_opened")) < 2:
                ws = await connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port))
                await echoes(ws, b"open")
                opened.append(ws)
                assert len(opened) < 50, "every console went to one worker"
            proc.send_signal(signal.SIGTERM)
            begun = time.monotonic()
            ended = await asyncio.gather(
                *(asyncio.wait_for(ws.recv(), 20) for ws in opened), return_exceptions=True
            )
            assert await asyncio.to_thread(proc.wait, 20) == 0
            return ended, time.monotonic() - begun

        ended, took = run(consoles_during_sigterm())
        for closed in ended:
            assert isinstance(closed, ConnectionClosed), closed
            assert closed.rcvd is not None and closed.rcvd.code == CloseCode.GOING_AWAY
        assert took < 5, f"stopping took {took:.1f} s"
        stopping = by_worker(serve_host, "console_proxy_stopping")
        assert sorted(stopping) == [0, 1]
        assert all(event["open_consoles"] >= 1 for (event,) in stopping.values())
        assert sorted(by_worker(serve_host, "console_proxy_stopped")) == [0, 1]
        assert serve_host.events("workers_stopped")
        assert listener.wait_for("STOPPING", timeout=10).pid == proc.pid
        assert not any(alive(pid) for pid in worker_pids(serve_host).values())
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", serve_host.port), timeout=5).close()
    finally:
        listener.close()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="the default is 1 worker here")
def test_ready_comes_from_the_main_process_once_every_worker_serves(
    serve_host: ServeHost, echo: Echo, tmp_path: Path
) -> None:
    listener = NotifyListener(str(tmp_path / "notify"))
    try:
        serve_host.workers = None  # the default: one per CPU this process may run on
        cores = len(os.sched_getaffinity(0))
        serve_host.install()
        serve_host.start(env={"NOTIFY_SOCKET": listener.env_value}, wait=False)
        ready = listener.wait_for("READY", timeout=30)
        assert serve_host.proc is not None and ready.pid == serve_host.proc.pid
        assert ready.fields["STATUS"] == (
            f"serving consoles on 127.0.0.1:{serve_host.port} with {cores} workers"
        )
        assert len(serve_host.events("worker_listening")) == cores
        (listening,) = serve_host.events("console_proxy_listening")
        assert listening["workers"] == cores

        async def console() -> None:
            async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as ws:
                await echoes(ws, b"served")

        run(console())
        assert serve_host.stop() == 0
    finally:
        listener.close()
    # Nothing but the main process spoke to systemd.
    assert {note.pid for note in listener.received} == {serve_host.proc.pid}


def test_a_killed_worker_is_replaced_and_the_other_one_s_consoles_go_on(
    serve_host: ServeHost, echo: Echo
) -> None:
    started(serve_host)
    assert serve_host.proc is not None

    async def scenario() -> None:
        ws = await connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port))
        await echoes(ws, b"before")
        (opened,) = serve_host.events("console_opened")
        survivor = int(opened["worker"])
        victim = 1 - survivor
        pids = worker_pids(serve_host)
        os.kill(pids[victim], signal.SIGKILL)
        await asyncio.to_thread(
            wait_for,
            lambda: (
                worker_pids(serve_host)[victim] != pids[victim]
                and len(by_worker(serve_host, "worker_listening").get(victim, [])) == 2
            ),
            "a new worker in its place",
        )
        await echoes(ws, b"after")  # the console on the other worker never noticed
        (died,) = serve_host.events("worker_died")
        assert (died["worker"], died["pid"], died["signal"]) == (victim, pids[victim], "SIGKILL")
        assert worker_pids(serve_host)[survivor] == pids[survivor]
        # New consoles are served, the new worker's among them.
        for _ in range(40):
            async with connect_to(serve_host, serve_host.pki.ticket("127.0.0.1", echo.port)) as new:
                await echoes(new, b"new")
            if victim in by_worker(serve_host, "console_opened"):
                break
        assert victim in by_worker(serve_host, "console_opened")
        await ws.close()

    run(scenario())
    assert serve_host.proc.poll() is None
    assert len(serve_host.events("worker_died")) == 1
    assert serve_host.stop() == 0


def test_workers_that_keep_dying_stop_the_service_with_exit_1(serve_host: ServeHost) -> None:
    started(serve_host)
    assert serve_host.proc is not None
    proc = serve_host.proc
    for _ in range(6):
        pid = worker_pids(serve_host)[0]
        os.kill(pid, signal.SIGKILL)

        def replaced(pid: int = pid) -> bool:
            return worker_pids(serve_host)[0] != pid or proc.poll() is not None

        wait_for(replaced, "the worker to be replaced or the service to give up")
    assert proc.wait(timeout=30) == 1
    log = serve_host.log()
    assert "6 console proxy workers died within 60 s" in log
    assert "Traceback" not in log
    assert not any(alive(pid) for pid in worker_pids(serve_host).values())


def test_workers_end_with_a_main_process_killed_outright(serve_host: ServeHost) -> None:
    started(serve_host)
    assert serve_host.proc is not None
    serve_host.proc.kill()
    serve_host.proc.wait(timeout=10)
    pids = worker_pids(serve_host).values()
    wait_for(lambda: not any(alive(pid) for pid in pids), "the workers to end")

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", serve_host.port), timeout=5).close()
        except OSError:
            return True
        return False

    wait_for(refused, "nothing to listen on the port")


@pytest.mark.parametrize("workers", ["0", "65"])
def test_a_worker_count_out_of_range_is_refused(serve_host: ServeHost, workers: str) -> None:
    serve_host.install()
    result = subprocess.run(
        serve_host.command("proxy", "serve", "--workers", workers),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"Invalid value for '--workers': {workers} is not in the range 1<=x<=64." in (
        result.stderr
    )
    assert "Traceback" not in result.stderr

"""The consoles' browser for the console bench: ``python -m bench.consoleload PLAN.json``.

A websockets client in a process of its own, so that its CPU is not counted in the proxy's.
It works through the plan's phases in order and stops between them, printing
``{"at": PHASE, ...}`` on a line and waiting for a line on stdin, so that the bench can read
the proxy's memory and CPU with nothing moving:

- ``warm``: one console opened, one echo, closed;
- ``echo_open``: ``consoles`` consoles are open at once, each to the target's echo, and as
  many TCP connections straight to it;
- ``echo_done``: each of them has sent ``echo_bytes`` every ``interval_s`` and timed the
  answer, the straight ones and the consoles in alternate slices of time; all still open;
- ``aggregate_ready``, ``aggregate_done``: those closed, as many new ones open; then each of
  them has taken ``aggregate_bytes`` pushed by the target, all at once;
- ``up_ready``, ``up_done``, ``down_ready``, ``down_done``: one console uploads
  ``bulk_bytes`` to the target's sink; another downloads as many; ``bulk_repeats`` times.
- ``end``.

Each console takes the next URL of the plan (each a ticket of its own).
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from bench.consoletarget import ACK, ECHO, PUSH, SINK, header

OPEN_TIMEOUT_S = 60.0
# A client stuck on a proxy that stopped answering ends, and the bench with it.
RUN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Plan:
    urls: list[str]
    ca_file: str
    server_name: str
    echo_port: int
    consoles: int
    echo_bytes: int
    interval_s: float
    latency_s: float  # of round trips each way, straight and through the proxy
    latency_slices: int
    aggregate_bytes: int
    bulk_bytes: int
    bulk_repeats: int
    message_bytes: int


class Consoles:
    """Opens consoles, each on the plan's next URL."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.tls = ssl.create_default_context(cafile=plan.ca_file)
        self.urls: Iterator[str] = iter(plan.urls)

    def open(self) -> connect:
        return connect(
            next(self.urls),
            ssl=self.tls,
            server_hostname=self.plan.server_name,
            open_timeout=OPEN_TIMEOUT_S,
            max_size=None,
            compression=None,
        )


def cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def stop_at(phase: str, **details: Any) -> None:
    """Say where we are and wait for the bench to have looked."""
    print(json.dumps({"at": phase, "client_cpu_s": cpu_s(), **details}), flush=True)
    if sys.stdin.readline() == "":
        raise SystemExit("the bench went away")


async def recv_exactly(ws: ClientConnection, count: int) -> None:
    while count > 0:
        count -= len(await ws.recv())


@dataclass
class Echoing:
    """One connection to the target's echo: straight over TCP, or through a console."""

    send: Callable[[bytes], Awaitable[None]]
    receive: Callable[[int], Awaitable[object]]


def direct(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Echoing:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    return Echoing(send, reader.readexactly)


def proxied(ws: ClientConnection) -> Echoing:
    async def receive(count: int) -> None:
        await recv_exactly(ws, count)

    return Echoing(ws.send, receive)


async def paced_round_trips(plan: Plan, echoing: Echoing, end: float, rtts: list[float]) -> None:
    """One connection's small messages: one every interval_s (a late answer delays the
    next), the first at a random point of the interval so that they do not all speak at once."""
    payload = random.randbytes(plan.echo_bytes)
    due = time.perf_counter() + random.uniform(0, plan.interval_s)
    while due < end:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        sent = time.perf_counter()
        await echoing.send(payload)
        await echoing.receive(plan.echo_bytes)
        rtts.append((time.perf_counter() - sent) * 1000)
        due = max(due + plan.interval_s, time.perf_counter())


async def round_trips(
    plan: Plan, direct_ones: list[Echoing], proxied_ones: list[Echoing]
) -> tuple[list[float], list[float]]:
    """Milliseconds per round trip, straight and through the proxy, in alternate slices so
    that whatever else the machine does at the time weighs on both alike."""
    rtts: tuple[list[float], list[float]] = ([], [])
    for _ in range(plan.latency_slices):
        for echoing, into in ((direct_ones, rtts[0]), (proxied_ones, rtts[1])):
            end = time.perf_counter() + plan.latency_s / plan.latency_slices
            await asyncio.gather(*(paced_round_trips(plan, e, end, into) for e in echoing))
    return rtts


async def open_echoes(opener: Consoles, count: int) -> list[ClientConnection]:
    async def one() -> ClientConnection:
        ws = await opener.open()
        await ws.send(header(ECHO))
        return ws

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def close_all(consoles: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in consoles))


async def upload(opener: Consoles, plan: Plan) -> None:
    """One console sends bulk_bytes to the target's sink; done when the sink has it all."""
    message = random.randbytes(plan.message_bytes)
    async with opener.open() as ws:
        await ws.send(header(SINK, plan.bulk_bytes))
        stop_at("up_ready")
        started = time.perf_counter()
        left = plan.bulk_bytes
        while left > 0:
            await ws.send(message[: min(left, plan.message_bytes)])
            left -= plan.message_bytes
        if await ws.recv() != ACK:
            raise AssertionError("the sink did not acknowledge the upload")
        stop_at("up_done", mb_s=plan.bulk_bytes / (time.perf_counter() - started) / 1e6)


async def download(opener: Consoles, plan: Plan) -> None:
    """One console takes bulk_bytes pushed by the target."""
    async with opener.open() as ws:
        stop_at("down_ready")
        started = time.perf_counter()
        await ws.send(header(PUSH, plan.bulk_bytes))
        await recv_exactly(ws, plan.bulk_bytes)
        stop_at("down_done", mb_s=plan.bulk_bytes / (time.perf_counter() - started) / 1e6)


async def phases(plan: Plan) -> None:
    opener = Consoles(plan)
    async with opener.open() as ws:
        await ws.send(header(ECHO) + b"warm")
        await recv_exactly(ws, 4)
        cipher = ws.transport.get_extra_info("cipher")
    stop_at("warm", cipher=f"{cipher[1]} {cipher[0]}")

    streams = [
        await asyncio.open_connection("127.0.0.1", plan.echo_port) for _ in range(plan.consoles)
    ]
    for _, writer in streams:
        writer.write(header(ECHO))
    started = time.perf_counter()
    consoles = await open_echoes(opener, plan.consoles)
    stop_at("echo_open", open_all_s=time.perf_counter() - started)
    direct_ms, proxied_ms = await round_trips(
        plan, [direct(*s) for s in streams], [proxied(ws) for ws in consoles]
    )
    stop_at("echo_done", direct_ms=direct_ms, proxied_ms=proxied_ms)
    await close_all(consoles)
    for _, writer in streams:
        writer.close()

    consoles = list(await asyncio.gather(*(opener.open() for _ in range(plan.consoles))))
    stop_at("aggregate_ready")
    started = time.perf_counter()
    await asyncio.gather(*(ws.send(header(PUSH, plan.aggregate_bytes)) for ws in consoles))
    await asyncio.gather(*(recv_exactly(ws, plan.aggregate_bytes) for ws in consoles))
    elapsed = time.perf_counter() - started
    stop_at("aggregate_done", mb_s=plan.consoles * plan.aggregate_bytes / elapsed / 1e6)
    await close_all(consoles)

    for _ in range(plan.bulk_repeats):
        await upload(opener, plan)
        await download(opener, plan)
    stop_at("end")


def main() -> None:
    with open(sys.argv[1]) as f:
        plan = Plan(**json.load(f))
    asyncio.run(asyncio.wait_for(phases(plan), RUN_TIMEOUT_S))


if __name__ == "__main__":
    main()

"""A fake engine in the path of a joining proxy, for attacks on the proxy's side.

It holds the real engine's Curve secret key, so the proxy's Curve pin is satisfied and the
channel comes up as it would with the engine itself. Each request goes on to the real
engine unchanged; what the proxy gets back is whatever the relay's ``rewrite`` makes of the
engine's genuine answers. That way a forged answer is, apart from the one thing forged,
exactly what the proxy would have accepted: take the proxy's defence away and it installs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import zmq

from tests.e2e.conftest import Hosts
from wsproxy_agent import transport
from wsproxy_agent.demo import free_port
from wsproxy_agent.paths import HostPaths

# The engine's answer (payload, signature) in; what to hand the proxy now, out.
Rewrite = Callable[[list[bytes]], list[list[bytes]]]
POLL_MS = 100


class Relay:
    def __init__(self, hosts: Hosts, rewrite: Rewrite) -> None:
        paths = HostPaths.under(hosts.engine)
        self.port = free_port()
        self.rewrite = rewrite
        self.delivered: list[list[bytes]] = []
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.front = transport.server(
            self.ctx,
            f"tcp://127.0.0.1:{self.port}",
            transport.read_curve_key(paths.curve_secret),
        )
        self.back, _ = transport.client(
            self.ctx,
            f"tcp://127.0.0.1:{hosts.port}",
            transport.read_curve_key(paths.curve_public),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.ctx.term()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        # The engine answers only what was passed on, so the proxy's route is known by then.
        proxy_route = b""
        try:
            while not self._stop.is_set():
                for sock, _ in poller.poll(POLL_MS):
                    if sock is self.front:
                        proxy_route, *request = self.front.recv_multipart()
                        self.back.send_multipart(request)
                    else:
                        for frames in self.rewrite(self.back.recv_multipart()):
                            self.front.send_multipart([proxy_route, *frames])
                            self.delivered.append(frames)
        finally:
            self.front.close(linger=0)
            self.back.close(linger=0)

"""Two hosts on one machine: a network namespace each, joined by a veth pair.

The link between them can be cut and restored (``ip link set ... down``) to show what a real
network does to the pair. Files are shared (both namespaces see the same filesystem), so each
host still keeps to its own ``--root``; only the network is separate.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.privileged import skip_or_fail


@dataclass(frozen=True)
class Link:
    engine_ns: str
    proxy_ns: str
    engine_ip: str
    proxy_ip: str
    proxy_dev: str

    def on(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]

    def down(self) -> None:
        _ip("-n", self.proxy_ns, "link", "set", self.proxy_dev, "down")

    def up(self) -> None:
        _ip("-n", self.proxy_ns, "link", "set", self.proxy_dev, "up")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def unavailable() -> str | None:
    """Why two namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's 'ip' is not installed"
    probe = f"wsprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def skip_unless_possible() -> None:
    why = unavailable()
    if why is not None:
        skip_or_fail(f"two-host tests need network namespaces: {why}")


@contextlib.contextmanager
def linked_namespaces(tag: str) -> Iterator[Link]:
    """An engine and a proxy namespace on 10.<n>.<m>.0/24, torn down afterwards."""
    n = os.getpid() % 250
    m = int(tag) % 250
    link = Link(
        engine_ns=f"wse{os.getpid()}-{tag}",
        proxy_ns=f"wsp{os.getpid()}-{tag}",
        engine_ip=f"10.{200 + n % 50}.{m}.1",
        proxy_ip=f"10.{200 + n % 50}.{m}.2",
        proxy_dev=f"vp{tag}",
    )
    engine_dev = f"ve{tag}"
    try:
        _ip("netns", "add", link.engine_ns)
        _ip("netns", "add", link.proxy_ns)
        _ip("link", "add", engine_dev, "type", "veth", "peer", "name", link.proxy_dev)
        _ip("link", "set", engine_dev, "netns", link.engine_ns)
        _ip("link", "set", link.proxy_dev, "netns", link.proxy_ns)
        for ns, dev, ip in (
            (link.engine_ns, engine_dev, link.engine_ip),
            (link.proxy_ns, link.proxy_dev, link.proxy_ip),
        ):
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield link
    finally:
        for ns in (link.engine_ns, link.proxy_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

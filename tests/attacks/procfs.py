"""What /proc tells about a running daemon: the CPU time it used, its peak memory, and the
sockets it listens on. Read from outside, so a test sees what the kernel sees."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

TCP_LISTEN = "0A"
UNIX_ACCEPTING = 0x00010000  # __SO_ACCEPTCON in /proc/net/unix's Flags: a listening socket


def cpu_seconds(pid: int) -> float:
    """User and system time of every thread of ``pid`` (libzmq's I/O threads included)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    """VmHWM in bytes: the most memory ``pid`` ever had resident, which a freed buffer
    does not lower."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


@dataclass(frozen=True)
class Listening:
    tcp: frozenset[tuple[str, int]]
    udp: frozenset[tuple[str, int]]
    unix: frozenset[str]


def listening(pid: int) -> Listening:
    """The sockets ``pid`` holds that accept connections or datagrams, by address."""
    inodes = socket_inodes(pid)
    net = Path(f"/proc/{pid}/net")
    tcp = {
        _address(local)
        for name in ("tcp", "tcp6")
        for local, state, inode in inet_rows(net / name)
        if state == TCP_LISTEN and inode in inodes
    }
    # Any bound UDP socket receives from the network; none is expected, so all are listed.
    udp = {
        _address(local)
        for name in ("udp", "udp6")
        for local, _, inode in inet_rows(net / name)
        if inode in inodes
    }
    unix = set()
    for line in (net / "unix").read_text().splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 8 and int(cols[3], 16) & UNIX_ACCEPTING and int(cols[6]) in inodes:
            unix.add(cols[7])
    return Listening(frozenset(tcp), frozenset(udp), frozenset(unix))


def listening_on(port: int) -> set[int]:
    """The inodes of every TCP socket on this host listening on ``port``, whoever holds it."""
    return {
        inode
        for name in ("tcp", "tcp6")
        for local, state, inode in inet_rows(Path("/proc/net") / name)
        if state == TCP_LISTEN and _address(local)[1] == port
    }


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def inet_rows(path: Path) -> list[tuple[str, str, int]]:
    """(local address, state, inode) of each row of /proc/net/{tcp,tcp6,udp,udp6}."""
    if not path.exists():
        return []  # no IPv6 in this kernel
    rows = []
    for line in path.read_text().splitlines()[1:]:
        cols = line.split()
        rows.append((cols[1], cols[3], int(cols[9])))
    return rows


def _address(hex_address: str) -> tuple[str, int]:
    """'0100007F:1F90' (IPv4, or 32 hex digits for IPv6) to ('127.0.0.1', 8080); an
    IPv4-mapped IPv6 address to its IPv4 form."""
    host, port = hex_address.split(":")
    # The kernel prints the address as 32-bit words in host (little-endian) order.
    raw = b"".join(bytes.fromhex(host[i : i + 8])[::-1] for i in range(0, len(host), 8))
    ip = ipaddress.ip_address(raw)
    # libzmq binds IPv4 endpoints on an IPv6 socket (ZMQ_IPV6), as ::ffff:a.b.c.d.
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return str(mapped or ip), int(port, 16)

"""Faults on the proxy host while it installs a renewed certificate.

The hosts are the e2e fixture's (two roots, real daemons, recording stand-ins); this file adds
what the fault tests share: snapshots of the installed files, the pause seam, a proxy root on
a small tmpfs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proxy_agent import install
from tests.e2e.conftest import PROXY_FQDN, Hosts, Standin, hosts, running, wait_for  # noqa: F401
from tests.support.privileged import tmpfs
from wsproxy_agent.paths import HostPaths
from wsproxy_agent.testseam import PAUSE_AFTER

KEY_NAME = "websocket-proxy.key.nopass"
CERT_NAME = "websocket-proxy.cer"

Snapshot = dict[str, bytes | None]


def installed_paths(h: Hosts) -> dict[str, Path]:
    return {t.name: t.path for t in install.targets(HostPaths.under(h.proxy))}


def snapshot(h: Hosts) -> Snapshot:
    """Every installed file's bytes (None when missing), by the installer's own names."""
    return {n: p.read_bytes() if p.exists() else None for n, p in installed_paths(h).items()}


def backups(h: Hosts) -> Snapshot:
    return {
        n: b.read_bytes() if (b := p.with_name(p.name + ".bak")).exists() else None
        for n, p in installed_paths(h).items()
    }


def key_matches_cert(files: Snapshot) -> bool:
    key, cert = files["tls_key"], files["cert"]
    assert key is not None and cert is not None
    public = serialization.load_pem_private_key(key, password=None).public_key()
    certified = x509.load_pem_x509_certificate(cert).public_key()
    raw = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    return public.public_bytes(*raw) == certified.public_bytes(*raw)


def serial_of(files: Snapshot) -> str:
    cert = files["cert"]
    assert cert is not None
    return format(x509.load_pem_x509_certificate(cert).serial_number, "x")


def stray_temps(h: Hosts) -> list[Path]:
    """Temp files a write left behind anywhere under the proxy's root."""
    return [p for p in h.proxy.rglob("*") if ".tmp-" in p.name]


def proxy_state(h: Hosts) -> dict[str, Any]:
    state = json.loads((h.proxy / "var/lib/wsproxy-agent/proxy-state.json").read_text())
    assert isinstance(state, dict)
    return state


def pending_request(h: Hosts) -> list[Path]:
    return sorted((h.proxy / "var/lib/wsproxy-agent").glob("pending-*"))


def renewals_signed(h: Hosts) -> int:
    return len([a for a in h.audit() if a["action"] == "renew"])


def restarts(h: Hosts) -> int:
    """Calls to restart the proxy service (the stand-in also answers heartbeats' is-active)."""
    return len([args for _, args in h.systemctl_proxy.calls if args[0] == "restart"])


def engine_config_calls(h: Hosts) -> int:
    return len(h.engine_config.calls)


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def processes_running(executable: Path) -> list[int]:
    """Processes whose command line names ``executable`` (a hung stand-in, say)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(executable).encode() in cmdline.split(b"\0"):
            found.append(int(proc.name))
    return found


def kill_orphaned(standin: Standin) -> None:
    """A command left hung by a killed daemon: its process group (the stand-in's sleep too)."""
    for pid in processes_running(standin.path):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # the runner gave each command its own group


def push_renewal(h: Hosts) -> None:
    """Ask the connected proxy daemon to renew now, as 'engine renew' does."""
    wait_for(lambda: h.registry()[0]["health"] is not None, "a heartbeat from the proxy", 30)
    h.cli(h.engine, "engine", "renew", PROXY_FQDN, check=True)


def pause_daemons_after(monkeypatch: pytest.MonkeyPatch, h: Hosts, file_name: str) -> Path:
    """Daemons started from now on hold once right after writing ``file_name``; see testseam."""
    hold = h.top / "hold" / file_name
    hold.parent.mkdir(exist_ok=True)
    monkeypatch.setenv(PAUSE_AFTER, str(hold))
    return hold


def release(hold: Path) -> None:
    hold.write_text("go\n")


def stop_daemons(h: Hosts) -> None:
    for proc in h.daemons:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in h.daemons:
        proc.wait(timeout=20)


@pytest.fixture
def proxy_on_tmpfs(running: Hosts) -> Iterator[Hosts]:  # noqa: F811 (the e2e fixture)
    """The proxy host's root is a 4 MiB tmpfs: room for a join, and easy to fill up."""
    toml = running.proxy / "etc/wsproxy-agent/proxy.toml"
    config = toml.read_text()
    with tmpfs(running.proxy, "4m"):
        toml.parent.mkdir(parents=True)
        toml.write_text(config)
        try:
            yield running
        finally:
            stop_daemons(running)  # nothing may hold the mount when it goes

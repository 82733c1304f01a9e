"""Two hosts in two roots, real daemons in real processes, stand-in commands that record.

The engine daemon listens on loopback TCP with CurveZMQ on; every command goes through
``python -m wsproxy_agent`` exactly as an administrator would type it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wsproxy_agent import config
from wsproxy_agent.demo import free_port

STANDINS = Path(__file__).resolve().parents[1] / "standins"
ENGINE_FQDN = "engine.e2e.test"
PROXY_FQDN = "proxy.e2e.test"


@dataclass
class Standin:
    path: Path

    @property
    def calls(self) -> list[tuple[float, list[str]]]:
        log = self.path.with_name(self.path.name + ".calls")
        if not log.exists():
            return []
        out = []
        for line in log.read_text().splitlines():
            ts, *args = line.split("\t")
            out.append((float(ts), args))
        return out

    def fail(self, message: str = "stand-in told to fail") -> None:
        self.path.with_name(self.path.name + ".fail").write_text(message + "\n")

    def hang(self) -> None:
        self.path.with_name(self.path.name + ".hang").write_text("")

    def heal(self) -> None:
        for suffix in (".fail", ".hang"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)


@dataclass
class Hosts:
    top: Path
    engine: Path
    proxy: Path
    port: int
    engine_config: Standin
    systemctl_engine: Standin
    systemctl_proxy: Standin
    daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Where the engine listens, and per host root a command prefix that runs a command "on"
    # that host (``ip netns exec NS`` in the two-namespace tests, nothing on loopback).
    engine_ip: str = "127.0.0.1"
    on_host: dict[Path, list[str]] = field(default_factory=dict)

    def command(self, root: Path, *args: str) -> list[str]:
        return [
            *self.on_host.get(root, []),
            sys.executable,
            "-m",
            "wsproxy_agent",
            "--root",
            str(root),
            *args,
        ]

    def configure(self, root: Path, **values: object) -> None:
        """Set keys in that host's agent config, keeping the rest (as an administrator would)."""
        role = "engine" if root == self.engine else "proxy"
        defaults = config.ENGINE_DEFAULTS if role == "engine" else config.PROXY_DEFAULTS
        config.merge_and_write(root / f"etc/wsproxy-agent/{role}.toml", defaults, values)

    def cli(
        self, root: Path, *args: str, timeout: float = 90, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.command(root, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def cli_background(self, root: Path, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(root, *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def engine_init(self) -> None:
        self.cli(
            self.engine,
            "engine",
            "init",
            "--create-ca",
            "--ca-subject",
            "/C=US/O=E2E",
            "--fqdn",
            ENGINE_FQDN,
            "--listen",
            f"tcp://{self.engine_ip}:{self.port}",
            "--advertise",
            f"{self.engine_ip}:{self.port}",
            check=True,
        )

    def _daemon(
        self, root: Path, role: str, env: dict[str, str] | None, wait: bool
    ) -> subprocess.Popen[bytes]:
        log = (self.top / f"{role}.log").open("ab")
        proc = subprocess.Popen(
            self.command(root, "--log-format", "json", role, "run"),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self.daemons.append(proc)
        if wait:
            # Running means answering on the control socket, which status asks.
            wait_for(
                lambda: "running (pid" in self.cli(root, "status").stdout, f"the {role} daemon"
            )
        return proc

    def start_engine(
        self, *, env: dict[str, str] | None = None, wait: bool = True
    ) -> subprocess.Popen[bytes]:
        """``env`` adds to the daemon's environment; ``wait=False`` returns before it answers."""
        return self._daemon(self.engine, "engine", env, wait)

    def start_proxy(
        self, *, env: dict[str, str] | None = None, wait: bool = True
    ) -> subprocess.Popen[bytes]:
        return self._daemon(self.proxy, "proxy", env, wait)

    def proxy_log(self) -> str:
        path = self.top / "proxy.log"
        return path.read_text() if path.exists() else ""

    def kill_engine(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def token(self, *extra: str, proxy: str = PROXY_FQDN) -> str:
        out = self.cli(self.engine, "token", "create", "--proxy", proxy, *extra, check=True).stdout
        return out.strip().splitlines()[-1]

    def join(
        self, join_string: str, *extra: str, root: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.cli(
            root or self.proxy,
            "proxy",
            "join",
            join_string,
            "--fqdn",
            PROXY_FQDN,
            "--timeout",
            "30",
            *extra,
        )

    def engine_key(self) -> str:
        """The engine key 'engine init' prints, for joins without a token."""
        out = self.cli(self.engine, "engine", "init", check=True).stdout
        return next(line.split()[-1] for line in out.splitlines() if line.startswith("engine key"))

    def pending_join_args(self, timeout: str = "60") -> list[str]:
        return [
            "proxy",
            "join",
            "--engine",
            f"{self.engine_ip}:{self.port}",
            "--engine-key",
            self.engine_key(),
            "--fqdn",
            PROXY_FQDN,
            "--timeout",
            timeout,
        ]

    def start_pending_join(self, timeout: str = "60") -> subprocess.Popen[str]:
        return self.cli_background(self.proxy, *self.pending_join_args(timeout))

    def _engine_rows(self, query: str) -> list[dict[str, object]]:
        db = sqlite3.connect(self.engine / "var/lib/wsproxy-agent/registry.sqlite")
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(query)]
        finally:
            db.close()

    def registry(self) -> list[dict[str, object]]:
        return self._engine_rows("SELECT * FROM proxies ORDER BY fqdn")

    def audit(self) -> list[dict[str, object]]:
        return self._engine_rows("SELECT * FROM audit ORDER BY seq")

    def key_list(self) -> list[dict[str, object]]:
        keys: list[dict[str, object]] = json.loads(
            self.cli(self.engine, "keys", "list", "--json", check=True).stdout
        )
        return keys

    def engine_log(self) -> str:
        path = self.top / "engine.log"
        return path.read_text() if path.exists() else ""

    def proxy_file(self, rel: str) -> Path:
        return self.proxy / rel


def joined(h: Hosts, *token_args: str) -> Hosts:
    """``h`` after a successful token join of the proxy (``token_args`` go to token create)."""
    result = h.join(h.token(*token_args))
    assert result.returncode == 0, result.stdout + result.stderr
    return h


def log_events(log: str, name: str) -> list[dict[str, object]]:
    """The daemon's JSON log records of one event, skipping any line that is not JSON."""
    found = []
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            found.append(event)
    return found


def log_number(value: object) -> float:
    """A log record's field that must be a JSON number (int() or float() would also take the
    string "12", and the test would not see the log change)."""
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return value


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _standin(bin_dir: Path, source: str, name: str) -> Standin:
    target = bin_dir / name
    shutil.copy(STANDINS / source, target)
    return Standin(target)


@contextlib.contextmanager
def host_pair(top: Path) -> Iterator[Hosts]:
    """Two host roots under ``top`` with stand-ins; stops their daemons and removes ``top``."""
    engine, proxy, bin_dir = top / "e", top / "p", top / "bin"
    for d in (engine / "etc/wsproxy-agent", proxy / "etc/wsproxy-agent", bin_dir):
        d.mkdir(parents=True)
    h = Hosts(
        top=top,
        engine=engine,
        proxy=proxy,
        port=free_port(),
        engine_config=_standin(bin_dir, "engine-config", "engine-config"),
        systemctl_engine=_standin(bin_dir, "recorder", "systemctl-engine"),
        systemctl_proxy=_standin(bin_dir, "recorder", "systemctl-proxy"),
    )
    (engine / "etc/wsproxy-agent/engine.toml").write_text(
        f'engine_config_command = ["{h.engine_config.path}"]\n'
        f'engine_restart_command = ["{h.systemctl_engine.path}", "restart", "ovirt-engine.service"]\n'
        "command_timeout = 5\n"
    )
    (proxy / "etc/wsproxy-agent/proxy.toml").write_text(
        f'service_restart_command = ["{h.systemctl_proxy.path}", "restart", "ovirt-websocket-proxy.service"]\n'
        f'service_check_command = ["{h.systemctl_proxy.path}", "is-active", "ovirt-websocket-proxy.service"]\n'
        "command_timeout = 5\n"
    )
    try:
        yield h
    finally:
        for proc in h.daemons:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in h.daemons:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        # A hung stand-in lives in its own process group; do not leave it behind.
        if shutil.which("pkill"):
            subprocess.run(["pkill", "-f", str(bin_dir)], check=False)
        if os.environ.get("WSPROXY_KEEP_E2E"):
            print(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def short_tempdir() -> Path:
    # Short paths: ipc:// socket paths must stay under the kernel's 108-byte limit.
    return Path(tempfile.mkdtemp(prefix="wse2e-", dir="/tmp"))


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with host_pair(short_tempdir()) as h:
        yield h


@pytest.fixture
def running(hosts: Hosts) -> Hosts:
    hosts.engine_init()
    hosts.start_engine()
    return hosts

"""``make demo``: two hosts in two roots, a real enrollment, and a check of the result.

No oVirt and no systemd: ``engine-config`` and ``systemctl`` are stand-in scripts that
record what they were asked, so the demo shows exactly what would have run. The engine
and proxy daemons run as real processes talking ZeroMQ with CurveZMQ on loopback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STANDINS = Path(__file__).resolve().parents[1] / "tests" / "standins"
ENGINE_FQDN = "engine.demo.test"
PROXY_FQDN = "proxy.demo.test"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--keep", action="store_true", help="keep the two roots for a look afterwards"
    )
    args = parser.parse_args(argv)
    top = Path(tempfile.mkdtemp(prefix="wsproxy-demo-"))
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        return run_demo(top, daemons)
    finally:
        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in daemons:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.keep:
            print(f"\nkept: {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def run_demo(top: Path, daemons: list[subprocess.Popen[bytes]]) -> int:
    engine, proxy, bin_dir = top / "engine-host", top / "proxy-host", top / "bin"
    bin_dir.mkdir()
    shutil.copy(STANDINS / "engine-config", bin_dir / "engine-config")
    shutil.copy(STANDINS / "recorder", bin_dir / "systemctl")
    port = free_port()
    write(
        engine / "etc/wsproxy-agent/engine.toml",
        f'engine_config_command = ["{bin_dir}/engine-config"]\n'
        f'engine_restart_command = ["{bin_dir}/systemctl", "restart", "ovirt-engine.service"]\n',
    )
    write(
        proxy / "etc/wsproxy-agent/proxy.toml",
        f'service_restart_command = ["{bin_dir}/systemctl", "restart", "ovirt-websocket-proxy.service"]\n'
        f'service_check_command = ["{bin_dir}/systemctl", "is-active", "ovirt-websocket-proxy.service"]\n',
    )
    step(f"two hosts in {top}: {engine.name}/ and {proxy.name}/ (each a --root)")

    step("engine host: wsproxy-agent engine init --create-ca")
    cli(
        engine,
        "engine",
        "init",
        "--create-ca",
        "--ca-subject",
        "/C=US/O=Demo",
        "--fqdn",
        ENGINE_FQDN,
        "--listen",
        f"tcp://127.0.0.1:{port}",
        "--advertise",
        f"127.0.0.1:{port}",
    )

    step("engine host: wsproxy-agent engine run   (the daemon, in the background)")
    daemons.append(daemon(engine, top / "engine.log", "engine", "run"))
    wait_for(engine / "run/wsproxy-agent/engine.sock", "the engine daemon")

    step(f"engine host: wsproxy-agent token create --proxy {PROXY_FQDN}")
    join_string = cli(engine, "token", "create", "--proxy", PROXY_FQDN).strip().splitlines()[-1]

    step("proxy host: wsproxy-agent proxy join '<join string>'")
    cli(proxy, "proxy", "join", join_string, "--fqdn", PROXY_FQDN, "--timeout", "60")

    step("proxy host: wsproxy-agent proxy run   (the daemon, in the background)")
    daemons.append(daemon(proxy, top / "proxy.log", "proxy", "run"))
    wait_for(proxy / "run/wsproxy-agent/proxy.sock", "the proxy daemon")

    step("what the stand-ins were asked to run (the real commands on real hosts):")
    for name in ("engine-config", "systemctl"):
        for line in (bin_dir / f"{name}.calls").read_text().splitlines():
            print(f"    {name} {line.split(chr(9), 1)[1].replace(chr(9), ' ')}")

    step("engine host: wsproxy-agent status")
    engine_ok = cli(engine, "status", check=False, show=True)
    step("proxy host: wsproxy-agent status")
    proxy_ok = cli(proxy, "status", check=False, show=True)

    step("openssl verify of the delivered certificate against the engine's CA")
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(engine / "etc/pki/ovirt-engine/ca.pem"),
            str(proxy / "etc/pki/ovirt-engine/certs/websocket-proxy.cer"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    print("    " + (verify.stdout or verify.stderr).strip())
    ok = verify.returncode == 0 and engine_ok == "" and proxy_ok == ""
    step(
        "demo "
        + (
            "succeeded: the proxy is enrolled, verified, and the engine points at it"
            if ok
            else "FAILED"
        )
    )
    return 0 if ok else 1


def cli(root: Path, *args: str, check: bool = True, show: bool = True) -> str:
    """Run the real command line; with check=False return '' on exit 0, else the code."""
    proc = subprocess.run(
        [sys.executable, "-m", "wsproxy_agent", "--root", str(root), *args],
        capture_output=True,
        text=True,
        check=False,
        env=env(),
    )
    if show:
        for line in (proc.stdout + proc.stderr).rstrip().splitlines():
            print(f"    {line}")
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: '{' '.join(args)}' failed with exit code {proc.returncode}")
    return proc.stdout if check else ("" if proc.returncode == 0 else str(proc.returncode))


def daemon(root: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wsproxy_agent",
                "--root",
                str(root),
                "--log-format",
                "json",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env(),
        )


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def wait_for(path: Path, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not start within {timeout:g} s")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

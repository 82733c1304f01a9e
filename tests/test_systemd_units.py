"""The systemd units in contrib/systemd: notify type, watchdog, sandbox, and room to write.

Every path a daemon writes must be writable under ``ProtectSystem=strict``, or the first
signing or renewal on a real host fails with EROFS; and nothing else should be.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path, PurePosixPath

import pytest

from proxy_agent import install
from wsproxy_agent import config
from wsproxy_agent.paths import PROXY_SERVICE, SERVICE_USER, HostPaths

UNITS = Path(__file__).resolve().parents[1] / "contrib" / "systemd"
ENGINE = "wsproxy-agent-engine.service"
PROXY = "wsproxy-agent-proxy.service"
SERVE = "wsproxy-agent-serve.service"
HOST = HostPaths.under("/")
FQDN = "proxy.example.com"

Unit = dict[str, dict[str, list[str]]]


def parse(path: Path) -> Unit:
    """Sections of key -> every value, in order (systemd keys such as ReadWritePaths repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        assert section is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: {line!r} is not key=value"
        section[key.strip()].append(value.strip())
    return unit


def daemon_writes(name: str) -> list[Path]:
    """What each daemon itself writes, on a real host."""
    if name == ENGINE:
        return [
            HOST.registry,
            HOST.engine_control,
            HOST.ovirt_request(FQDN),  # then pki-enroll-request.sh writes:
            HOST.ovirt_issued_cert(FQDN),
            HOST.pki_dir / "database.txt",
            HOST.pki_dir / "serial.txt",
        ]
    return [
        *(target.path for target in install.targets(HOST)),
        HOST.proxy_state,
        HOST.proxy_control,
    ]


# What the commands a daemon runs write, outside the daemon's own paths.
COMMAND_WRITES = {
    ENGINE: [
        Path("/tmp/ovirt-engine-pki.v2.lock"),  # some pki-enroll-request.sh versions
        Path("/var/log/ovirt-engine/engine-config.log"),
    ],
    PROXY: [],
}


def writable_roots(service: dict[str, list[str]]) -> list[PurePosixPath]:
    roots = [
        PurePosixPath(entry.lstrip("-"))
        for line in service.get("ReadWritePaths", [])
        for entry in line.split()
    ]
    roots += [PurePosixPath("/var/lib", d) for d in service.get("StateDirectory", [])]
    roots += [PurePosixPath("/run", d) for d in service.get("RuntimeDirectory", [])]
    return roots


def covered(path: Path, roots: list[PurePosixPath]) -> bool:
    return any(PurePosixPath(path).is_relative_to(root) for root in roots)


@pytest.fixture(params=[ENGINE, PROXY])
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def service(name: str) -> dict[str, list[str]]:
    return parse(UNITS / name)["Service"]


def test_the_units_are_there_and_nothing_is_left_in_the_old_place() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == [ENGINE, PROXY, SERVE]
    assert not (UNITS.parents[1] / "packaging" / "systemd").exists()


def test_notify_type_watchdog_and_restart(name: str) -> None:
    s = service(name)
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]  # only the daemon, not engine-config or systemctl
    assert len(s["WatchdogSec"]) == 1
    assert s["Restart"] == ["on-failure"]
    assert parse(UNITS / name)["Install"]["WantedBy"] == ["multi-user.target"]


def test_exec_start_runs_the_daemon(name: str) -> None:
    (line,) = service(name)["ExecStart"]
    argv = shlex.split(line)
    assert Path(argv[0]).name == "wsproxy-agent"
    assert argv[-2:] == [{ENGINE: "engine", PROXY: "proxy"}[name], "run"]


def test_hardening(name: str) -> None:
    s = service(name)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "RuntimeDirectory": "wsproxy-agent",
        "StateDirectory": "wsproxy-agent",
        "UMask": "0077",
    }.items():
        assert s[key] == [value], key
    # Both units share /run/wsproxy-agent: stopping one must not delete the other's socket.
    assert s["RuntimeDirectoryPreserve"] == ["yes"]
    # engine-config is a JVM (a JIT needs writable+executable memory).
    assert "MemoryDenyWriteExecute" not in s


def test_private_tmp_except_where_the_ovirt_ca_lock_lives() -> None:
    assert service(PROXY)["PrivateTmp"] == ["yes"]
    # The engine's /tmp must be the host's: pki-enroll-request.sh's lock is shared there.
    engine = service(ENGINE)
    assert engine.get("PrivateTmp", ["no"]) == ["no"]
    assert covered(Path("/tmp/ovirt-engine-pki.v2.lock"), writable_roots(engine))


def test_every_path_a_daemon_writes_is_writable(name: str) -> None:
    roots = writable_roots(service(name))
    missing = [p for p in daemon_writes(name) + COMMAND_WRITES[name] if not covered(p, roots)]
    assert not missing, f"{name} cannot write {missing} under ProtectSystem=strict"


def test_nothing_else_is_writable(name: str) -> None:
    # Each writable tree is a directory something is written in, not one of its parents.
    directories = {PurePosixPath(p).parent for p in daemon_writes(name) + COMMAND_WRITES[name]}
    for root in writable_roots(service(name)):
        assert root in directories, f"{name}: {root} is writable but nothing is written there"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    # verify checks that ExecStart exists; the package is not installed in /usr/bin here.
    stand_in = tmp_path / "wsproxy-agent"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    for unit in (ENGINE, PROXY, SERVE):
        text = (UNITS / unit).read_text().replace("/usr/bin/wsproxy-agent", str(stand_in))
        (tmp_path / unit).write_text(text)
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            *(str(tmp_path / u) for u in (ENGINE, PROXY, SERVE)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown or misspelt keys are only warnings (exit 0): any output is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_serve_unit_runs_proxy_serve_as_ovirt_and_reloads_with_sighup() -> None:
    unit = parse(UNITS / SERVE)
    s = unit["Service"]
    assert shlex.split(s["ExecStart"][0])[-2:] == ["proxy", "serve"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # what proxy serve reloads on
    assert (s["Type"], s["NotifyAccess"], s["Restart"]) == (["notify"], ["main"], ["on-failure"])
    # The main process stops its workers itself (console_proxy/workers.py).
    assert s["KillMode"] == ["mixed"]
    assert s["User"] == [SERVICE_USER]  # the owner of the files 'proxy join' installs
    assert unit["Unit"]["Conflicts"] == [PROXY_SERVICE]  # both listen on PROXY_PORT
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # The agent restarts (reloads) this unit after a renewal when joined with --service.
    restart = config.PROXY_SERVICES[SERVE.removesuffix(".service")]["service_restart_command"]
    assert restart[-1] == SERVE


def test_serve_unit_is_sandboxed_and_writes_nothing() -> None:
    s = service(SERVE)
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
    }.items():
        assert s[key] == [value], key
    assert not writable_roots(s)

"""Installing what the engine delivered (DESIGN §5 step 3, §6).

Call ``verify.check_delivery`` first: this module writes what it is given.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wsproxy_agent.files import NewFile, ensure_dir, sha256_file, write_all_atomic
from wsproxy_agent.paths import SERVICE_USER, HostPaths

SECRET_MODE = 0o600
PUBLIC_MODE = 0o644
STATE_DIR_MODE = 0o700


@dataclass(frozen=True)
class Target:
    name: str
    path: Path
    mode: int
    service_owned: bool  # owned by the proxy service's user, which must read it


def ca_copy(paths: HostPaths) -> Path:
    """The agent's copy of the engine CA, for later checks (renewal, status)."""
    return paths.state_dir / "ca.pem"


def targets(paths: HostPaths) -> list[Target]:
    """The installed files in the order they are written: 10-setup.conf last, so after a
    crash it never points at a key or certificate that is not there yet."""
    return [
        Target("tls_key", paths.proxy_tls_key, SECRET_MODE, True),
        Target("cert", paths.proxy_cert, SECRET_MODE, True),
        Target("engine_cert", paths.proxy_engine_cert, SECRET_MODE, True),
        Target("ca_cert", ca_copy(paths), PUBLIC_MODE, False),
        Target("setup_conf", paths.setup_conf, SECRET_MODE, True),
    ]


def install_delivery(
    paths: HostPaths,
    *,
    tls_key_pem: bytes,
    delivery_cert_pem: bytes,
    engine_cert_pem: bytes,
    ca_cert_pem: bytes,
    setup_conf_text: str,
    owner: str = SERVICE_USER,
) -> list[Path]:
    """Write every file, all or none (old ones kept as ``.bak``); return the paths written."""
    content = {
        "tls_key": tls_key_pem,
        "cert": delivery_cert_pem,
        "engine_cert": engine_cert_pem,
        "ca_cert": ca_cert_pem,
        "setup_conf": setup_conf_text.encode("utf-8"),
    }
    if not paths.state_dir.exists():
        ensure_dir(paths.state_dir, STATE_DIR_MODE)
    chosen = targets(paths)
    # Together: a key never lands beside a certificate it does not match, not even when the
    # disk fills up halfway through.
    write_all_atomic(
        [
            NewFile(t.path, content[t.name], t.mode, owner=owner if t.service_owned else None)
            for t in chosen
        ]
    )
    return [t.path for t in chosen]


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def installed_files_report(paths: HostPaths) -> list[dict[str, Any]]:
    """For ``status``: each installed file, whether it is there, its mode, owner and hash."""
    report = []
    for target in targets(paths):
        entry: dict[str, Any] = {
            "name": target.name,
            "path": str(target.path),
            "present": False,
            "mode": None,
            "mode_ok": False,
            "expected_mode": f"{target.mode:04o}",
            "owner": None,
            "sha256": None,
        }
        try:
            st = os.stat(target.path)
        except FileNotFoundError:
            report.append(entry)
            continue
        mode = stat.S_IMODE(st.st_mode)
        entry.update(
            present=True,
            mode=f"{mode:04o}",
            mode_ok=mode == target.mode,
            owner=_owner_name(st.st_uid),
            sha256=sha256_file(target.path),
        )
        report.append(entry)
    return report

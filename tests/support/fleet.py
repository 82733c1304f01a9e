"""Many proxies entered in the engine's registry as enrolled, without joining each one.

For tests and benchmarks whose subject is what enrolled proxies do, not how they enrol: a
token join per member would sign a certificate and restart a stand-in service each time.
The engine must be stopped, since it reads trust from the registry as messages come.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine_agent.registry import Registry
from protocol import identity
from protocol.codec import Value
from protocol.states import EngineEvent
from proxy_agent.health import NO_FILE_SHA256
from wsproxy_agent import __version__
from wsproxy_agent.paths import HostPaths

# What proxy_agent.health.snapshot says of a healthy proxy: the body of a heartbeat, and
# most of a status reply's.
HEALTHY: dict[str, Value] = {
    "service_active": True,
    "cert_days_left": 300,
    "setup_conf_sha256": NO_FILE_SHA256,
    "agent_version": __version__,
}


def enter_as_enrolled(
    engine_root: Path,
    members: Iterable[tuple[str, Ed25519PrivateKey]],
    actor: str,
    **row: Any,
) -> None:
    """Each (fqdn, identity key) as an enrolled proxy that does not activate; ``row`` adds
    columns to each (a certificate, say)."""
    registry = Registry(HostPaths.under(engine_root).registry)
    try:
        with registry.transaction() as db:
            for fqdn, key in members:
                registry.transition_within(
                    db,
                    fqdn,
                    EngineEvent.REQUEST_WITH_TOKEN,
                    actor=actor,
                    why="simulated fleet",
                    fingerprint=identity.fingerprint(key),
                    identity_key=identity.public_raw(key),
                    port=6100,
                    activate=0,
                    **row,
                )
                for event in (EngineEvent.REPORT_OK, EngineEvent.SKIP_ACTIVATION):
                    registry.transition_within(db, fqdn, event, actor=actor, why="fleet")
    finally:
        registry.close()

"""The engine agent's settings: engine.toml read once, typed, with the host's paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wsproxy_agent import config
from wsproxy_agent.keyfiles import load_identity
from wsproxy_agent.paths import HostPaths


@dataclass(frozen=True)
class EngineSettings:
    paths: HostPaths
    fqdn: str
    listen: str
    advertise: str
    signer: str
    cert_lifetime_days: int
    token_ttl: int
    engine_config_command: list[str]
    engine_restart_command: list[str]
    restart_engine: bool
    command_timeout: int
    freshness_window: int
    max_pending: int
    max_pending_per_address: int
    pending_ttl: int
    token_max_failures: int
    failures_per_address: int  # refused pre-enrollment requests per minute, then throttled
    heartbeat_interval: int
    stale_after_missed: int
    curve: bool = True

    @classmethod
    def load(cls, root: str | Path) -> EngineSettings:
        paths = HostPaths.under(root)
        values = config.load_required(
            paths.engine_toml, config.ENGINE_DEFAULTS, "wsproxy-agent engine init"
        )
        values["token_ttl"] = config.parse_duration(values["token_ttl"])
        values["pending_ttl"] = config.parse_duration(values["pending_ttl"])
        return cls(paths=paths, **values)

    def identity(self) -> Ed25519PrivateKey:
        return load_identity(self.paths.identity_key)

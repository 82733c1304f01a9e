"""The proxy agent's settings: proxy.toml read once, typed, with the host's paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol.joinstring import unb64
from wsproxy_agent import config
from wsproxy_agent.paths import HostPaths


@dataclass(frozen=True)
class ProxySettings:
    paths: HostPaths
    fqdn: str
    port: int
    engine: str
    engine_curve_key: str
    engine_fingerprint: str
    engine_identity_key: str
    key_type: str
    service_restart_command: list[str]
    service_check_command: list[str]
    command_timeout: int
    freshness_window: int
    service_owner: str
    heartbeat_interval: int

    @property
    def engine_curve_raw(self) -> bytes:
        return unb64(self.engine_curve_key, f"engine_curve_key in {self.paths.proxy_toml}")

    @property
    def engine_identity_raw(self) -> bytes:
        return unb64(self.engine_identity_key, f"engine_identity_key in {self.paths.proxy_toml}")

    @classmethod
    def load(cls, root: str | Path) -> ProxySettings:
        paths = HostPaths.under(root)
        values = config.load_required(
            paths.proxy_toml, config.PROXY_DEFAULTS, "wsproxy-agent proxy join"
        )
        return cls(paths=paths, **values)

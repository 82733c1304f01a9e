"""Every host path the agents read or write, under one ``--root`` (like ``rpm --root``).

This module is the one owner of oVirt's paths and file names (DESIGN §6) and of the
agents' own. Names that come from the network never reach here unchecked: the only one
that becomes part of a file name, the proxy FQDN, is validated by ``protocol.names``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocol.names import check_fqdn

OVIRT_PKI = "etc/pki/ovirt-engine"
PROXY_CONF_DIR = "etc/ovirt-engine/ovirt-websocket-proxy.conf.d"
PROXY_MAIN_CONF = "etc/ovirt-engine/ovirt-websocket-proxy.conf"
AGENT_CONF = "etc/wsproxy-agent"
AGENT_STATE = "var/lib/wsproxy-agent"
AGENT_RUN = "run/wsproxy-agent"
PKI_ENROLL_SCRIPT = "usr/share/ovirt-engine/bin/pki-enroll-request.sh"

PROXY_SERVICE = "ovirt-websocket-proxy.service"
# ``wsproxy-agent proxy serve``, our drop-in for oVirt's service (contrib/systemd).
SERVE_SERVICE = "wsproxy-agent-serve.service"
ENGINE_SERVICE = "ovirt-engine.service"
SERVICE_USER = "ovirt"
DEFAULT_PROXY_PORT = 6100
DEFAULT_AGENT_PORT = 6101


@dataclass(frozen=True)
class HostPaths:
    root: Path

    @classmethod
    def under(cls, root: str | Path) -> HostPaths:
        return cls(Path(root))

    def _at(self, rel: str) -> Path:
        return self.root / rel

    # oVirt engine PKI
    @property
    def pki_dir(self) -> Path:
        return self._at(OVIRT_PKI)

    @property
    def ca_cert(self) -> Path:
        return self.pki_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.pki_dir / "private" / "ca.pem"

    @property
    def engine_cert(self) -> Path:
        return self.pki_dir / "certs" / "engine.cer"

    @property
    def engine_p12(self) -> Path:
        return self.pki_dir / "keys" / "engine.p12"

    @property
    def engine_key(self) -> Path:
        """The engine's TLS key as PEM (written by ``--create-ca``; oVirt keeps it in p12)."""
        return self.pki_dir / "keys" / "engine_id_rsa"

    @property
    def requests_dir(self) -> Path:
        return self.pki_dir / "requests"

    @property
    def pki_enroll_script(self) -> Path:
        return self._at(PKI_ENROLL_SCRIPT)

    def ovirt_request(self, fqdn: str) -> Path:
        return self.requests_dir / f"websocket-proxy-{check_fqdn(fqdn)}.req"

    def ovirt_issued_cert(self, fqdn: str) -> Path:
        return self.pki_dir / "certs" / f"websocket-proxy-{check_fqdn(fqdn)}.cer"

    # The proxy host's oVirt files
    @property
    def proxy_tls_key(self) -> Path:
        return self.pki_dir / "keys" / "websocket-proxy.key.nopass"

    @property
    def proxy_cert(self) -> Path:
        return self.pki_dir / "certs" / "websocket-proxy.cer"

    @property
    def proxy_engine_cert(self) -> Path:
        return self.engine_cert

    @property
    def proxy_conf_dir(self) -> Path:
        return self._at(PROXY_CONF_DIR)

    @property
    def proxy_main_conf(self) -> Path:
        return self._at(PROXY_MAIN_CONF)

    @property
    def setup_conf(self) -> Path:
        return self.proxy_conf_dir / "10-setup.conf"

    # The agents' own files
    @property
    def conf_dir(self) -> Path:
        return self._at(AGENT_CONF)

    @property
    def engine_toml(self) -> Path:
        return self.conf_dir / "engine.toml"

    @property
    def proxy_toml(self) -> Path:
        return self.conf_dir / "proxy.toml"

    @property
    def state_dir(self) -> Path:
        return self._at(AGENT_STATE)

    @property
    def identity_key(self) -> Path:
        return self.state_dir / "identity.key"

    @property
    def curve_secret(self) -> Path:
        return self.state_dir / "curve.key_secret"

    @property
    def curve_public(self) -> Path:
        return self.state_dir / "curve.key"

    @property
    def registry(self) -> Path:
        return self.state_dir / "registry.sqlite"

    @property
    def seen_ids(self) -> Path:
        return self.state_dir / "seen-ids.sqlite"

    @property
    def proxy_state(self) -> Path:
        return self.state_dir / "proxy-state.json"

    @property
    def enrollment_lock(self) -> Path:
        return self.state_dir / "enrollment.lock"

    @property
    def run_dir(self) -> Path:
        return self._at(AGENT_RUN)

    @property
    def engine_control(self) -> Path:
        return self.run_dir / "engine.sock"

    @property
    def proxy_control(self) -> Path:
        return self.run_dir / "proxy.sock"

"""``proxy serve``'s settings: oVirt's websocket proxy config, read and typed once at start.

The files and their order are oVirt's (``wsproxy_agent.ovirt_conf``); the defaults are
those of oVirt's packaged ``ovirt-websocket-proxy.conf``. File names in values are host
paths, read under ``--root``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from wsproxy_agent import ovirt_conf
from wsproxy_agent.errors import AgentError
from wsproxy_agent.paths import HostPaths

# oVirt's packaged defaults (ovirt-websocket-proxy.conf.in).
DEFAULTS = {
    "PROXY_HOST": "*",
    "PROXY_PORT": "6100",
    "SOURCE_IS_IPV6": "False",
    "SSL_CERTIFICATE": "",
    "SSL_KEY": "",
    "SSL_MIN_VERSION": "TLSv1.2",
    "CERT_FOR_DATA_VERIFICATION": "",
    "SSL_ONLY": "False",
    "TRACE_ENABLE": "False",
    "TRACE_FILE": "",
    "SSL_CIPHERS": "HIGH:!aNULL",
}
SSL_MIN_VERSIONS = ("TLSv1.2", "TLSv1.3")
# oVirt's ConfigFile.getboolean reads these as true and anything else as false. We refuse
# what is in neither list, so a typo never turns SSL_ONLY off without a word.
_TRUE = ("t", "true", "y", "yes", "1")
_FALSE = ("f", "false", "n", "no", "0", "")


class ServeConfigError(AgentError):
    """A setting of the websocket proxy config cannot be used; the sentence names file and key."""


@dataclass(frozen=True)
class ServeSettings:
    paths: HostPaths
    proxy_host: str  # '*' is every address of the family SOURCE_IS_IPV6 chooses
    proxy_port: int
    source_is_ipv6: bool
    ssl_certificate: Path | None
    ssl_key: Path | None
    ssl_only: bool
    ssl_min_version: str
    ssl_ciphers: str | None  # None: OpenSSL's defaults, as oVirt does for an empty value
    cert_for_data_verification: Path | None
    trace_enable: bool

    @property
    def tls_configured(self) -> bool:
        return self.ssl_certificate is not None

    @classmethod
    def load(cls, root: str | Path) -> ServeSettings:
        paths = HostPaths.under(root)
        try:
            found = ovirt_conf.settings_with_sources(paths, DEFAULTS)
        except ValueError as exc:
            raise ServeConfigError(str(exc)) from None
        read = _Reader(found, paths)
        settings = cls(
            paths=paths,
            proxy_host=read.text("PROXY_HOST") or "*",
            proxy_port=read.port("PROXY_PORT"),
            source_is_ipv6=read.boolean("SOURCE_IS_IPV6"),
            ssl_certificate=read.path("SSL_CERTIFICATE"),
            ssl_key=read.path("SSL_KEY"),
            ssl_only=read.boolean("SSL_ONLY"),
            ssl_min_version=read.choice("SSL_MIN_VERSION", SSL_MIN_VERSIONS),
            ssl_ciphers=read.text("SSL_CIPHERS") or None,
            cert_for_data_verification=read.path("CERT_FOR_DATA_VERIFICATION"),
            trace_enable=read.boolean("TRACE_ENABLE"),
        )
        settings._check(read)
        return settings

    def _check(self, read: _Reader) -> None:
        if self.ssl_only and self.ssl_certificate is None:
            raise read.error(
                "SSL_ONLY",
                "is True but SSL_CERTIFICATE is not set; set SSL_CERTIFICATE and SSL_KEY, or "
                "SSL_ONLY=False to serve plain ws://",
            )
        if self.cert_for_data_verification is None:
            raise read.error(
                "CERT_FOR_DATA_VERIFICATION",
                "is not set; it must name the engine certificate that signs console tickets "
                "(wsproxy-agent proxy join writes it)",
            )


class _Reader:
    def __init__(self, found: dict[str, ovirt_conf.Setting], paths: HostPaths) -> None:
        self.found = found
        self.paths = paths

    def error(self, key: str, problem: str) -> ServeConfigError:
        return ServeConfigError(f"{key} in {self.found[key].source} {problem}.")

    def text(self, key: str) -> str:
        return self.found[key].value.strip()

    def boolean(self, key: str) -> bool:
        value = self.text(key)
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.error(key, f"is {value!r}, which is neither True nor False")

    def port(self, key: str) -> int:
        value = self.text(key)
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 65535):
            raise self.error(key, f"is {value!r}, not a TCP port (1-65535)")
        return int(value)

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.text(key)
        if value not in allowed:
            raise self.error(key, f"is {value!r}; use {' or '.join(allowed)}")
        return value

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        if not value:
            return None
        if not value.startswith("/"):
            raise self.error(key, f"is {value!r}, not an absolute path")
        return self.paths.root / PurePosixPath(value).relative_to("/")

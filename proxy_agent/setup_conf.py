"""The websocket proxy service's ``10-setup.conf`` (DESIGN §6).

``render`` writes values that mean the same to the service's parser (oVirt's
``ConfigFile``, followed by ``wsproxy_agent.ovirt_conf``) and to a POSIX shell;
``effective_config`` shows what the service will see.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from wsproxy_agent.ovirt_conf import effective_config as effective_config
from wsproxy_agent.ovirt_conf import parse
from wsproxy_agent.paths import HostPaths

EXTRA_KEYS = (
    "PROXY_HOST",
    "SSL_MIN_VERSION",
    "SSL_CIPHERS",
    "SOURCE_IS_IPV6",
    "TRACE_ENABLE",
    "TRACE_FILE",
)
SSL_MIN_VERSIONS = ("TLSv1.2", "TLSv1.3")

HEADER = (
    "# Written by wsproxy-agent on enrollment and renewal; edits here are overwritten.\n"
    "# Put local settings in a later file of this directory (e.g. 20-local.conf).\n"
)

# Quotes, and what stays special inside double quotes to the service's parser or a shell.
_REFUSED = re.compile(r"[\"'$`\\]")
# Values made only of these need no quotes in either (no space, '#', ';', '~', ...).
_BARE = re.compile(r"[\w@%+=:,./!*-]*", re.ASCII)


def host_path(path: Path, paths: HostPaths) -> str:
    """``path`` as the service sees it on the real host, whatever ``--root`` is."""
    return str(PurePosixPath("/") / path.relative_to(paths.root))


def _quote(key: str, value: str) -> str:
    if _REFUSED.search(value) or not value.isprintable():
        raise ValueError(
            f"The value for {key} contains a quote, '$', backquote, backslash or a "
            "non-printing character; the proxy's config cannot hold it safely."
        )
    return value if _BARE.fullmatch(value) else f'"{value}"'


def render(port: int, paths: HostPaths, extra: Mapping[str, str] | None = None) -> str:
    """The text of 10-setup.conf for ``port``; ``extra`` may set the service's other keys."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"The proxy port {port!r} is not a TCP port (1-65535).")
    extra = dict(extra or {})
    unknown = sorted(set(extra) - set(EXTRA_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown proxy setting {', '.join(unknown)}; known ones: {', '.join(EXTRA_KEYS)}."
        )
    level = extra.get("SSL_MIN_VERSION")
    if level is not None and level not in SSL_MIN_VERSIONS:
        raise ValueError(
            f"SSL_MIN_VERSION {level!r} is not supported by the proxy; use "
            f"{' or '.join(SSL_MIN_VERSIONS)}."
        )
    values = {
        "PROXY_PORT": str(port),
        "SSL_CERTIFICATE": host_path(paths.proxy_cert, paths),
        "SSL_KEY": host_path(paths.proxy_tls_key, paths),
        "CERT_FOR_DATA_VERIFICATION": host_path(paths.proxy_engine_cert, paths),
        "SSL_ONLY": "True",
    }
    values.update((key, extra[key]) for key in EXTRA_KEYS if key in extra)
    return HEADER + "".join(f"{key}={_quote(key, value)}\n" for key, value in values.items())


def matches(paths: HostPaths, port: int, extra: Mapping[str, str] | None = None) -> bool:
    """Whether 10-setup.conf on disk sets exactly what ``render`` would (comments aside)."""
    try:
        on_disk = parse(paths.setup_conf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return on_disk == parse(render(port, paths, extra))

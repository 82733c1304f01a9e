"""The websocket proxy service's ``10-setup.conf`` (DESIGN §6).

The service reads its config with oVirt's ``ovirt_engine.configfile.ConfigFile``: lines
``KEY=value``; in a value ``\\`` escapes the next character, ``"`` toggles quoting, an
unquoted space or ``#`` ends the value, ``${NAME}`` expands an earlier key and a ``$``
not followed by ``{`` is an error. Single quotes are ordinary characters there. ``parse``
follows those rules so ``effective_config`` shows what the service will see, and ``render``
writes values that mean the same to that parser and to a POSIX shell.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

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

_EMPTY = re.compile(r"^\s*(#.*|)$")
_KEY_VALUE = re.compile(r"^\s*(?P<key>\w+)=(?P<value>.*)$")
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


def _expand(value: str, known: Mapping[str, str]) -> str:
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(value):
        c = value[i]
        i += 1
        if c == "\\":
            out.append(value[i : i + 1])
            i += 1
        elif c == "$":
            end = value.find("}", i)
            if value[i : i + 1] != "{" or end == -1:
                raise ValueError("a '$' that is not a complete ${NAME}")
            out.append(known.get(value[i + 1 : end], ""))
            i = end + 1
        elif c == '"':
            quoted = not quoted
        elif c in " #" and not quoted:
            break
        else:
            out.append(c)
    return "".join(out)


def _load(text: str, values: dict[str, str]) -> dict[str, str]:
    # Lines as the service's ``for line in open(...)`` sees them (universal newlines).
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines, 1):
        if _EMPTY.match(line):
            continue
        match = _KEY_VALUE.match(line)
        if match is None:
            raise ValueError(f"line {number} is not KEY=value")
        try:
            values[match["key"]] = _expand(match["value"], values)
        except ValueError as exc:
            raise ValueError(f"line {number} has {exc}") from exc
    return values


def parse(text: str) -> dict[str, str]:
    """The ``KEY=value`` settings in ``text``, read as the proxy service reads them."""
    return _load(text, {})


def effective_config(paths: HostPaths) -> dict[str, str]:
    """The settings from the main config and then each ``conf.d/*.conf``; later files win.

    (The service first reads its packaged defaults under /usr/share, which are not here.)
    """
    pattern = os.path.join(glob.escape(str(paths.proxy_conf_dir)), "*.conf")
    values: dict[str, str] = {}
    for name in [str(paths.proxy_main_conf), *sorted(glob.glob(pattern))]:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        try:
            _load(text, values)
        except ValueError as exc:
            raise ValueError(f"Cannot read the proxy config {name}: {exc}.") from exc
    return values


def matches(paths: HostPaths, port: int, extra: Mapping[str, str] | None = None) -> bool:
    """Whether 10-setup.conf on disk sets exactly what ``render`` would (comments aside)."""
    try:
        on_disk = parse(paths.setup_conf.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return on_disk == parse(render(port, paths, extra))

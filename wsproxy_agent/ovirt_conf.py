"""Reading the websocket proxy service's config as oVirt reads it (DESIGN §6).

The service reads its config with oVirt's ``ovirt_engine.configfile.ConfigFile``: lines
``KEY=value``; in a value ``\\`` escapes the next character, ``"`` toggles quoting, an
unquoted space or ``#`` ends the value, ``${NAME}`` expands an earlier key and a ``$``
not followed by ``{`` is an error. Single quotes are ordinary characters there. The main
file comes first, then each ``conf.d/*.conf`` in name order; a later value wins.

The proxy agent uses this to check the ``10-setup.conf`` it writes, and ``proxy serve``
to read its settings.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wsproxy_agent.paths import HostPaths

_EMPTY = re.compile(r"^\s*(#.*|)$")
_KEY_VALUE = re.compile(r"^\s*(?P<key>\w+)=(?P<value>.*)$")


@dataclass(frozen=True)
class Setting:
    value: str
    source: str  # the file that set it last


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


def _load(text: str, values: dict[str, str], sources: dict[str, str], source: str) -> None:
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
        sources[match["key"]] = source


def parse(text: str) -> dict[str, str]:
    """The ``KEY=value`` settings in ``text``, read as the proxy service reads them."""
    values: dict[str, str] = {}
    _load(text, values, {}, "")
    return values


def config_files(paths: HostPaths) -> list[str]:
    """The files the service reads, in order: the main config, then ``conf.d/*.conf``."""
    pattern = os.path.join(glob.escape(str(paths.proxy_conf_dir)), "*.conf")
    return [str(paths.proxy_main_conf), *sorted(glob.glob(pattern))]


def settings_with_sources(
    paths: HostPaths, defaults: Mapping[str, str] | None = None
) -> dict[str, Setting]:
    """Each key's final value and the file that set it; ``defaults`` stand in for the
    packaged defaults file oVirt reads first (``${NAME}`` may refer to them)."""
    values = dict(defaults or {})
    sources = dict.fromkeys(values, "the built-in defaults")
    for name in config_files(paths):
        try:
            text = Path(name).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"Cannot read the proxy config {name}: {exc}.") from exc
        try:
            _load(text, values, sources, name)
        except ValueError as exc:
            raise ValueError(f"Cannot read the proxy config {name}: {exc}.") from exc
    return {key: Setting(value, sources[key]) for key, value in values.items()}


def effective_config(paths: HostPaths) -> dict[str, str]:
    """The settings from the main config and then each ``conf.d/*.conf``; later files win.

    (The service first reads its packaged defaults under /usr/share, which are not here.)
    """
    return {key: setting.value for key, setting in settings_with_sources(paths).items()}

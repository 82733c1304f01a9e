"""The agents' TOML config files: defaults, loading with clear errors, and merging.

``engine init`` and ``proxy join`` keep an existing file and fill in only what is missing,
so a site (or a test) can set the external commands before the first run. Values given
on the command line for this run (``--fqdn``, the join string's engine) do replace.
Every key is documented in the README; the defaults below are the single source.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wsproxy_agent.errors import AgentError
from wsproxy_agent.paths import (
    DEFAULT_AGENT_PORT,
    DEFAULT_PROXY_PORT,
    ENGINE_SERVICE,
    PROXY_SERVICE,
    SERVE_SERVICE,
)


class ConfigError(AgentError):
    """A config file is missing, unreadable or holds a wrong key or type."""


ENGINE_DEFAULTS: dict[str, Any] = {
    "fqdn": "",
    "listen": f"tcp://*:{DEFAULT_AGENT_PORT}",
    "advertise": "",
    "signer": "native",
    "cert_lifetime_days": 398,
    "token_ttl": "1h",
    "engine_config_command": ["engine-config"],
    "engine_restart_command": ["systemctl", "restart", ENGINE_SERVICE],
    "restart_engine": True,
    "command_timeout": 120,
    "freshness_window": 300,
    "max_pending": 100,
    "max_pending_per_address": 5,
    "pending_ttl": "24h",
    "token_max_failures": 5,
    "failures_per_address": 20,
    "heartbeat_interval": 30,
    "stale_after_missed": 3,
    "curve": True,
}

PROXY_DEFAULTS: dict[str, Any] = {
    "fqdn": "",
    "port": DEFAULT_PROXY_PORT,
    "engine": "",
    "engine_curve_key": "",
    "engine_fingerprint": "",
    "engine_identity_key": "",
    "key_type": "rsa",
    "service_restart_command": ["systemctl", "restart", PROXY_SERVICE],
    "service_check_command": ["systemctl", "is-active", "--quiet", PROXY_SERVICE],
    "command_timeout": 120,
    "freshness_window": 300,
    "service_owner": "ovirt",
    "heartbeat_interval": 30,
}


# The websocket proxy services 'proxy join --service' chooses between, by unit name: the
# commands that restart and check each. Ours reloads, so a renewal drops no open console.
PROXY_SERVICES: dict[str, dict[str, list[str]]] = {
    PROXY_SERVICE.removesuffix(".service"): {
        "service_restart_command": PROXY_DEFAULTS["service_restart_command"],
        "service_check_command": PROXY_DEFAULTS["service_check_command"],
    },
    SERVE_SERVICE.removesuffix(".service"): {
        "service_restart_command": ["systemctl", "reload-or-restart", SERVE_SERVICE],
        "service_check_command": ["systemctl", "is-active", "--quiet", SERVE_SERVICE],
    },
}


# Counts where 0 means "none at all"; every other whole number must be at least 1.
ZERO_ALLOWED = frozenset({"max_pending", "max_pending_per_address"})


def _check_types(path: Path, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if key not in defaults:
            raise ConfigError(f"{path}: '{key}' is not a setting; see the README for the keys.")
        expected = type(defaults[key])
        if expected is list:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif expected is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise ConfigError(f"{path}: '{key}' must be a {_type_word(expected)}.")
        least = 0 if key in ZERO_ALLOWED else 1
        if expected is int and value < least:
            raise ConfigError(f"{path}: '{key}' must be at least {least}; it is {value}.")


def _type_word(kind: type) -> str:
    return {list: "list of strings", int: "whole number", bool: "true or false"}.get(kind, "string")


def load(path: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The file's values over the defaults; a missing file is an error for the caller to word."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    _check_types(path, raw, defaults)
    return {**defaults, **raw}


def load_required(path: Path, defaults: Mapping[str, Any], first_step: str) -> dict[str, Any]:
    """Like load, for a file that ``first_step`` (a command) must have written."""
    try:
        return load(path, defaults)
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing; run '{first_step}' first.") from None


def load_existing(path: Path, defaults: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return load(path, defaults)
    except FileNotFoundError:
        return dict(defaults)


def keys_set_in(path: Path) -> set[str]:
    """The keys a site wrote into the file itself (not filled from defaults)."""
    try:
        return set(tomllib.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read as TOML: {exc}") from exc


def merge_and_write(
    path: Path, defaults: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Keep what the file has, apply this run's explicit values, fill the rest from defaults."""
    try:
        existing = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        existing = {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read as TOML: {exc}") from exc
    _check_types(path, existing, defaults)
    merged = {**defaults, **existing, **overrides}
    _check_types(path, merged, defaults)
    # Imported here: every status reads a config, only init and join write one, and the
    # writer's imports (hashlib, secrets) are a fair share of a status's start-up.
    from wsproxy_agent.files import write_atomic

    write_atomic(path, dumps(merged).encode("utf-8"), mode=0o644, keep_backup=False)
    return merged


def dumps(values: Mapping[str, Any]) -> str:
    lines = ["# Written by wsproxy-agent; every key is described in its README.\n"]
    for key, value in values.items():
        lines.append(f"{key} = {_toml_value(value)}\n")
    return "".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # A JSON string with only \" \\ \n-style escapes is a valid TOML basic string.
    return json.dumps(str(value), ensure_ascii=False)


def parse_duration(text: str) -> int:
    """'90s', '15m', '1h', '2d' or plain seconds, to seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    if not number.isdigit() or int(number) <= 0:
        raise ConfigError(f"'{text}' is not a duration; write e.g. 90s, 15m, 1h or 2d.")
    return int(number) * units[unit]

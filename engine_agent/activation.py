"""Switching the engine to a proxy: ``engine-config`` and the engine restart.

Both are external commands run through ``wsproxy_agent.commands``; their argument lists
come from engine.toml so a site can wrap them, and tests point them at recorders.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wsproxy_agent import commands
from wsproxy_agent.errors import AgentError

KEY = "WebSocketProxy"
OFF = "Off"
_VALUE = re.compile(rf"^{KEY}:\s*(?P<value>\S*)(?:\s+version:\s*\S+)?\s*$", re.MULTILINE)


class ActivationFailed(AgentError):
    """Switching the engine over failed: engine-config or the restart."""


@dataclass(frozen=True)
class EngineSwitch:
    config_command: Sequence[str]
    restart_command: Sequence[str]
    restart: bool
    timeout: float

    def current(self) -> str:
        """Read ``WebSocketProxy`` the way engine-config prints it: 'KEY: VALUE version: general'."""
        result = self._run([*self.config_command, "-g", KEY])
        match = _VALUE.search(result.stdout)
        if match is None:
            raise ActivationFailed(
                f"'{' '.join(self.config_command)} -g {KEY}' printed nothing we can read "
                f"as '{KEY}: VALUE'; check engine_config_command in engine.toml."
            )
        return match.group("value")

    def set(self, value: str) -> None:
        self._run([*self.config_command, "-s", f"{KEY}={value}"])
        if self.restart:
            self._run(list(self.restart_command))

    @classmethod
    def from_settings(cls, settings: Any) -> EngineSwitch:
        return cls(
            settings.engine_config_command,
            settings.engine_restart_command,
            settings.restart_engine,
            settings.command_timeout,
        )

    def switch_back(self, ours: str, previous: str | None) -> bool:
        """Put back the value ``ours`` replaced, if the engine still points at us.

        Returns whether anything was changed: a value an administrator set since is left
        alone rather than clobbered.
        """
        if self.current() != ours:
            return False
        self.set(previous or OFF)
        return True

    def _run(self, argv: list[str]) -> commands.Completed:
        try:
            return commands.run(argv, timeout=self.timeout)
        except commands.CommandFailed as exc:
            raise ActivationFailed(exc.sentence) from exc

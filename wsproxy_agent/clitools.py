"""What every subcommand shares: turning our typed errors into a sentence and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from wsproxy_agent.errors import AgentError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_ATTENTION = 1  # status: something needs attention; commands: the request was refused
EXIT_USAGE = 2  # click's own code for bad options
EXIT_REJECTED = 3  # an operator rejected this proxy
EXIT_TIMEOUT = 4  # no decision or no answer within --timeout
EXIT_INTERNAL = 70


class Abort(AgentError):
    """Stop a command with a sentence and an exit code."""

    def __init__(self, sentence: str, code: int = EXIT_ATTENTION) -> None:
        super().__init__(sentence)
        self.code = code


def friendly_errors(func: F) -> F:
    """Our errors carry ``.sentence``: print it and exit; never show a traceback by default."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("WSPROXY_DEBUG"):
                raise
            # Our two error bases carry a sentence; protocol is imported only if it was.
            protocol_errors = sys.modules.get("protocol.errors")
            known: tuple[type[Exception], ...] = (AgentError,)
            if protocol_errors is not None:
                known += (protocol_errors.ProtocolError,)
            if not isinstance(exc, known):
                click.echo(
                    f"wsproxy-agent: unexpected error: {type(exc).__name__}: {exc}", err=True
                )
                click.echo("Set WSPROXY_DEBUG=1 to see where it happened.", err=True)
                sys.exit(EXIT_INTERNAL)
            click.echo(f"error: {exc.sentence}", err=True)  # type: ignore[attr-defined]
            sys.exit(exc.code if isinstance(exc, Abort) else EXIT_ATTENTION)

    return wrapper  # type: ignore[return-value]


def root_of(ctx: click.Context) -> str:
    return str(ctx.find_root().obj["root"])


def setup_logging(ctx: click.Context) -> None:
    from wsproxy_agent import logs

    logs.configure(ctx.find_root().obj.get("log_format"))

"""The ``wsproxy-agent`` command line.

Only click is imported at start-up. The engine's and the proxy's commands live with
their agents and are loaded by name when invoked, so ``status`` and ``--help`` stay fast
and this package imports neither agent (arrows point down, DESIGN §3).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

from wsproxy_agent import __version__
from wsproxy_agent.clitools import friendly_errors, root_of

SUBCOMMANDS = {
    "engine": ("engine_agent.cli", "engine", "Set up and run the engine agent (engine host)."),
    "token": ("engine_agent.cli", "token", "Create, list and revoke join tokens (engine host)."),
    "keys": (
        "engine_agent.cli",
        "keys",
        "List, accept, reject and delete proxy keys (engine host).",
    ),
    "proxy": ("proxy_agent.cli", "proxy", "Join an engine and run the proxy agent (proxy host)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*SUBCOMMANDS, *super().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            module, attr, _ = SUBCOMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in SUBCOMMANDS.items()]
        for name in super().list_commands(ctx):
            cmd = super().get_command(ctx, name)
            if cmd is not None:
                rows.append((name, cmd.get_short_help_str(60)))
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wsproxy-agent")
@click.option(
    "--root",
    envvar="WSPROXY_ROOT",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Treat DIR as the host's / for every path read or written, like rpm --root.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Log lines as JSON (the default off a terminal, for systemd) or readable text.",
)
@click.pass_context
def main(ctx: click.Context, root: str, log_format: str | None) -> None:
    """Enroll an oVirt websocket proxy host with the engine, without root SSH.

    On the engine host: 'engine init', run the daemon, 'token create'. On the proxy host:
    'proxy join JOIN_STRING'. On either: 'status'. Each command has its own --help.
    """
    ctx.obj = {"root": root, "log_format": log_format}


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--live", is_flag=True, help="Engine: ask every connected proxy now and show who answers."
)
@click.option(
    "--timeout",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.1, 30),
    help="Seconds --live waits for answers.",
)
@click.option(
    "--proxy",
    "live_fqdn",
    metavar="FQDN",
    default=None,
    help="Engine: ask only this proxy now (implies --live).",
)
@click.pass_context
@friendly_errors
def status(
    ctx: click.Context, as_json: bool, live: bool, timeout: float, live_fqdn: str | None
) -> None:
    """Show this host's agent: enrolled proxies on the engine, or the proxy's certificate.

    Exit code 0 when all is healthy, 1 when something needs attention (said why).
    """
    import json

    from wsproxy_agent import status_report
    from wsproxy_agent.paths import HostPaths

    paths = HostPaths.under(root_of(ctx))

    def built_here(module: str) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
        return lambda ping: importlib.import_module(module).report(paths, ping)

    reports: list[dict[str, Any]] = []
    if paths.engine_toml.exists():
        engine = status_report.gather(paths.engine_control, built_here("engine_agent.status"))
        if live or live_fqdn is not None:
            importlib.import_module("engine_agent.status").add_live(
                engine, paths, timeout, live_fqdn
            )
        reports.append(engine)
    if paths.proxy_toml.exists():
        reports.append(status_report.gather(paths.proxy_control, built_here("proxy_agent.status")))
    if not reports:
        reports.append(status_report.not_set_up(paths))
    if as_json:
        click.echo(
            json.dumps(reports if len(reports) > 1 else reports[0], indent=2, sort_keys=True)
        )
    else:
        for report in reports:
            click.echo(status_report.render(report))
    problems = [p for r in reports for p in r["problems"]]
    ctx.exit(1 if problems else 0)

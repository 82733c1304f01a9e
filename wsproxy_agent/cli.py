"""The ``wsproxy-agent`` command line.

Only click is imported at start-up; each subcommand imports what it needs when it runs,
so ``status`` and ``--help`` stay fast.
"""

from __future__ import annotations

import click

from wsproxy_agent import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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

    Run the engine agent on the engine host and the proxy agent on the proxy host; they
    exchange signed messages over ZeroMQ to sign the proxy's certificate, install it and
    switch the engine over.
    """
    ctx.obj = {"root": root, "log_format": log_format}

"""``wsproxy-agent proxy ...``: the proxy host's commands."""

from __future__ import annotations

import os
import socket

import click

from wsproxy_agent.clitools import Abort, friendly_errors, root_of, setup_logging


@click.group("proxy")
def proxy() -> None:
    """Join this host to an engine and run the proxy agent (on the websocket proxy host)."""


@proxy.command("join")
@click.argument("join_string", required=False)
@click.option(
    "--engine",
    "engine_address",
    help="HOST[:PORT] of the engine agent, for a join without a token.",
)
@click.option(
    "--engine-key",
    help="The engine key printed by 'engine init' / 'status', for a join without a token.",
)
@click.option(
    "--fqdn", help="This proxy's DNS name, as browsers reach it.  [default: this host's FQDN]"
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The websocket proxy's port.  [default: the token's, or 6100]",
)
@click.option(
    "--key-type",
    type=click.Choice(["rsa", "ec"]),
    help="TLS key: RSA-2048 or ECDSA P-256.  [default: rsa]",
)
@click.option(
    "--service",
    type=click.Choice(["ovirt-websocket-proxy", "wsproxy-agent-serve"]),
    help="The websocket proxy service this host runs, which the agent restarts after "
    "installing a certificate: oVirt's, or 'wsproxy-agent proxy serve' (reloaded, so open "
    "consoles stay).  [default: what proxy.toml says, else ovirt-websocket-proxy]",
)
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(1, 7 * 86400),
    help="Seconds to wait in all, including for an operator's decision.",
)
@click.pass_context
@friendly_errors
def proxy_join(
    ctx: click.Context,
    join_string: str | None,
    engine_address: str | None,
    engine_key: str | None,
    fqdn: str | None,
    port: int | None,
    key_type: str | None,
    service: str | None,
    timeout: float,
) -> None:
    """Enroll this host: get a certificate from the engine, install it, switch the engine over.

    With the JOIN_STRING from 'wsproxy-agent token create' the engine approves at once.
    Without one, give --engine and --engine-key: the request waits until an operator runs
    'wsproxy-agent keys accept FQDN' on the engine (or rejects it, or --timeout passes).

    Exit codes: 0 enrolled, 1 refused or failed, 3 rejected by an operator, 4 timed out.
    """
    from protocol import identity, joinstring
    from protocol.names import normalise_fqdn
    from proxy_agent.join import Join, JoinOptions
    from proxy_agent.settings import ProxySettings
    from wsproxy_agent import config
    from wsproxy_agent.paths import DEFAULT_AGENT_PORT, HostPaths

    paths = HostPaths.under(root_of(ctx))
    if join_string:
        if engine_address or engine_key:
            raise click.UsageError("Give a join string, or --engine with --engine-key, not both.")
        join = joinstring.parse(join_string)
        address, curve_key, identity_key, token = join.address, join.curve_key, join.pin, join.token
        port = port or join.proxy_port
    elif engine_address and engine_key:
        curve_key, identity_key = joinstring.parse_engine_key(engine_key)
        address = (
            engine_address
            if ":" in engine_address.rstrip("]")
            else f"{engine_address}:{DEFAULT_AGENT_PORT}"
        )
        token = None
    else:
        raise click.UsageError(
            "Give the join string from 'token create', or --engine and --engine-key."
        )
    existing = config.load_existing(paths.proxy_toml, config.PROXY_DEFAULTS)
    overrides: dict[str, object] = {
        "fqdn": normalise_fqdn(fqdn if fqdn is not None else existing["fqdn"] or socket.getfqdn()),
        "engine": address,
        "engine_curve_key": joinstring.b64(curve_key),
        "engine_identity_key": joinstring.b64(identity_key),
        "engine_fingerprint": identity.fingerprint(identity_key),
    }
    if port:
        overrides["port"] = port
    if key_type:
        overrides["key_type"] = key_type
    if service:
        overrides.update(config.PROXY_SERVICES[service])
    config.merge_and_write(paths.proxy_toml, config.PROXY_DEFAULTS, overrides)
    settings = ProxySettings.load(paths.root)
    code = Join(settings, JoinOptions(token=token, timeout_s=timeout), say=_step).run()
    ctx.exit(code)


def _step(line: str) -> None:
    click.echo(f"* {line}")


@proxy.command("renew")
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1, 86400),
    help="Seconds to wait for the engine in all.",
)
@click.pass_context
@friendly_errors
def proxy_renew(ctx: click.Context, timeout: float) -> None:
    """Renew the certificate now: a new TLS key, signed by the engine, checked, installed.

    The daemon does this by itself at about two thirds of the certificate's lifetime. It
    works even after the certificate expired, while the engine still accepts this host.
    """
    from proxy_agent.join import Join, JoinOptions
    from proxy_agent.settings import ProxySettings

    settings = ProxySettings.load(root_of(ctx))
    ctx.exit(Join(settings, JoinOptions(token=None, timeout_s=timeout), say=_step).renew())


@proxy.command("run")
@click.pass_context
@friendly_errors
def proxy_run(ctx: click.Context) -> None:
    """Run the proxy daemon in the foreground: stays connected, answers the engine."""
    setup_logging(ctx)
    from proxy_agent import state
    from proxy_agent.daemon import ProxyDaemon
    from proxy_agent.settings import ProxySettings

    settings = ProxySettings.load(root_of(ctx))
    if not state.joined(settings.paths.proxy_state):
        raise Abort("This host has not joined an engine yet; run 'wsproxy-agent proxy join' first.")
    ProxyDaemon(settings).run()


# More workers than any proxy host has cores is more likely a typo than a wish.
MAX_WORKERS = 64


def _cores() -> int:
    return min(len(os.sched_getaffinity(0)), MAX_WORKERS)


@proxy.command("serve")
@click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=_cores,
    show_default=f"the CPUs this process may run on, at most {MAX_WORKERS}",
    help="Processes serving consoles, each on its own socket on PROXY_PORT (SO_REUSEPORT), "
    "the kernel spreading new connections evenly over them; one process uses one core. "
    "Above 1, this process only starts them, passes signals on and restarts one that dies. "
    "1: a single process.",
)
@click.pass_context
@friendly_errors
def proxy_serve(ctx: click.Context, workers: int) -> None:
    """Serve VM consoles: a drop-in for oVirt's ovirt-websocket-proxy service.

    Browsers open wss://<this host>:<PROXY_PORT>/<ticket>; the ticket, signed by the engine,
    names the VM's VNC server, and its bytes are carried both ways. Reads the same config
    as oVirt's service, later files winning ('proxy join' writes 10-setup.conf):

    \b
      /etc/ovirt-engine/ovirt-websocket-proxy.conf
      /etc/ovirt-engine/ovirt-websocket-proxy.conf.d/*.conf, in name order

    Keys: PROXY_HOST, PROXY_PORT, SOURCE_IS_IPV6, SSL_CERTIFICATE, SSL_KEY, SSL_ONLY,
    SSL_MIN_VERSION, SSL_CIPHERS, CERT_FOR_DATA_VERIFICATION.

    A renewed certificate is used for new connections as soon as it is installed (or at
    SIGHUP, 'systemctl reload'); open consoles carry on. SIGTERM closes them and exits.
    Stop ovirt-websocket-proxy first: both listen on the same port.
    """
    setup_logging(ctx)
    try:
        from console_proxy import server
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("websockets"):
            raise
        raise Abort(
            "proxy serve needs the websockets package: install wsproxy-agent[serve] "
            "(pip install 'wsproxy-agent[serve]')."
        ) from None
    from console_proxy import workers as worker_processes
    from console_proxy.settings import ServeSettings

    settings = ServeSettings.load(root_of(ctx))
    server.keep_freed_blocks()
    ctx.exit(server.run(settings) if workers == 1 else worker_processes.run(settings, workers))

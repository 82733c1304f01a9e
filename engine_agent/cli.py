"""``wsproxy-agent engine|token|keys ...``: the engine host's commands.

These work on the registry directly, so they work whether the daemon runs or not; the
daemon reads every decision from the registry when the proxy next asks.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from wsproxy_agent.clitools import Abort, friendly_errors, root_of, setup_logging

DEFAULT_CA_SUBJECT = "/C=US/O=wsproxy-agent"

if TYPE_CHECKING:
    from engine_agent.registry import Proxy, Registry
    from engine_agent.settings import EngineSettings


@contextmanager
def _registry(ctx: click.Context) -> Iterator[tuple[EngineSettings, Registry]]:
    """engine.toml and the registry, closed however the command ends."""
    from engine_agent.registry import Registry
    from engine_agent.settings import EngineSettings

    settings = EngineSettings.load(root_of(ctx))
    registry = Registry(settings.paths.registry)
    try:
        yield settings, registry
    finally:
        registry.close()


def _known_proxy(registry: Registry, fqdn: str) -> Proxy:
    from protocol.names import normalise_fqdn

    name = normalise_fqdn(fqdn)
    proxy = registry.proxy(name)
    if proxy is None:
        raise Abort(f"No proxy named {name}; see 'wsproxy-agent keys list'.")
    return proxy


@click.group("engine")
def engine() -> None:
    """Set up and run the engine agent (on the oVirt engine host)."""


@engine.command("init")
@click.option(
    "--create-ca",
    is_flag=True,
    help="Make a standalone CA and engine certificate (no oVirt PKI here).",
)
@click.option(
    "--ca-subject",
    default=DEFAULT_CA_SUBJECT,
    show_default=True,
    help="Subject of the new CA, OpenSSL style.",
)
@click.option("--fqdn", help="The engine host's DNS name.  [default: this host's FQDN]")
@click.option("--listen", help="ZeroMQ endpoint the agent binds.  [default: tcp://*:6101]")
@click.option(
    "--advertise",
    help="HOST:PORT proxies connect to, put in join strings.  [default: FQDN:listen port]",
)
@click.pass_context
@friendly_errors
def engine_init(
    ctx: click.Context,
    create_ca: bool,
    ca_subject: str,
    fqdn: str | None,
    listen: str | None,
    advertise: str | None,
) -> None:
    """Create the engine agent's keys, config and registry; adopt or create the CA.

    Without --create-ca the oVirt PKI under /etc/pki/ovirt-engine is adopted as it is.
    Running init again keeps existing keys and settings and fills in what is missing.
    """
    from engine_agent import pki, signer
    from engine_agent.registry import Registry
    from protocol import identity, joinstring
    from protocol.names import normalise_fqdn
    from wsproxy_agent import config, transport
    from wsproxy_agent.keyfiles import load_or_create_identity
    from wsproxy_agent.paths import HostPaths

    paths = HostPaths.under(root_of(ctx))
    existing = config.load_existing(paths.engine_toml, config.ENGINE_DEFAULTS)
    engine_fqdn = normalise_fqdn(fqdn if fqdn is not None else existing["fqdn"] or socket.getfqdn())
    if create_ca:
        if paths.ca_cert.exists():
            raise Abort(f"{paths.ca_cert} exists; drop --create-ca to adopt that CA.")
        pki.create_ca(paths, ca_subject=ca_subject, engine_fqdn=engine_fqdn, now=datetime.now(UTC))
        click.echo(f"created a CA ({ca_subject}) and an engine certificate for {engine_fqdn}")
    ca = pki.load_ca(paths)
    pki.load_engine_cert(paths)
    key = load_or_create_identity(paths.identity_key)
    if not paths.curve_secret.exists():
        transport.generate_curve_keys(paths.curve_public, paths.curve_secret)
    overrides: dict[str, object] = {"fqdn": engine_fqdn}
    if listen:
        overrides["listen"] = listen
    if advertise:
        overrides["advertise"] = advertise
    elif not existing["advertise"]:
        port = (listen or existing["listen"]).rsplit(":", 1)[-1]
        overrides["advertise"] = f"{engine_fqdn}:{port}"
    if "signer" not in config.keys_set_in(paths.engine_toml):
        overrides["signer"] = signer.default_signer_kind(paths)
    settings = config.merge_and_write(paths.engine_toml, config.ENGINE_DEFAULTS, overrides)
    registry = Registry(paths.registry)
    paths.registry.chmod(0o600)
    registry.set_meta("ca_subject", pki.format_subject(ca.cert.subject))
    registry.set_meta("ca_not_after", str(int(ca.cert.not_valid_after_utc.timestamp())))
    registry.set_meta("fingerprint", identity.fingerprint(key))
    registry.close()
    curve_raw = transport.curve_to_raw(transport.read_curve_key(paths.curve_public))
    click.echo(f"engine identity  {identity.fingerprint(key)}")
    click.echo(
        f"engine key       {joinstring.format_engine_key(curve_raw, identity.public_raw(key))}"
    )
    click.echo("                 (for 'proxy join --engine HOST --engine-key KEY' without a token)")
    click.echo(f"listens on       {settings['listen']} (advertised as {settings['advertise']})")
    click.echo(f"signer           {settings['signer']}")
    click.echo(f"config           {paths.engine_toml}")
    click.echo(
        "next: start the daemon (systemctl enable --now wsproxy-agent-engine) and run "
        "'wsproxy-agent token create --proxy FQDN'"
    )


@engine.command("run")
@click.pass_context
@friendly_errors
def engine_run(ctx: click.Context) -> None:
    """Run the engine daemon in the foreground (systemd starts it this way)."""
    setup_logging(ctx)
    from engine_agent.daemon import EngineDaemon
    from engine_agent.settings import EngineSettings

    EngineDaemon(EngineSettings.load(root_of(ctx))).run()


@engine.command("activate")
@click.argument("fqdn")
@click.pass_context
@friendly_errors
def engine_activate(ctx: click.Context, fqdn: str) -> None:
    """Retry switching the engine to FQDN after a failed engine-config or restart."""
    from protocol.states import EngineEvent
    from wsproxy_agent import control

    with _registry(ctx) as (settings, registry):
        name = _known_proxy(registry, fqdn).fqdn
        registry.transition(
            name, EngineEvent.RETRY_ACTIVATION, actor="operator", why="engine activate"
        )
    answer = control.ask(settings.paths.engine_control, {"op": "activate", "fqdn": name})
    if answer is None:
        click.echo(
            f"{name}: queued; the engine daemon is not running and will activate it when it starts."
        )
    elif not answer.get("ok"):
        raise Abort(str(answer.get("error")))
    else:
        click.echo(f"{name}: activation started; see 'wsproxy-agent status'.")


@engine.command("ticket")
@click.option("--host", required=True, help="Where the proxy connects: the VM's console host.")
@click.option(
    "--port",
    required=True,
    type=click.IntRange(1, 65535),
    help="The console port on that host (QEMU's VNC display 0 is 5900).",
)
@click.option(
    "--ttl",
    default=120,
    show_default=True,
    type=click.IntRange(1, 86400),
    help="Seconds the ticket stays valid (oVirt's WebSocketProxyTicketValiditySeconds).",
)
@click.option("--ssl-target", is_flag=True, help="The proxy reaches the console over TLS.")
@click.option("--path", help="The ticket's optional 'path' value, passed to the proxy as is.")
@click.option("--token", help="The ticket's optional 'token' value, passed to the proxy as is.")
@click.pass_context
@friendly_errors
def engine_ticket(
    ctx: click.Context,
    host: str,
    port: int,
    ttl: int,
    ssl_target: bool,
    path: str | None,
    token: str | None,
) -> None:
    """Print a console ticket for HOST:PORT, signed with the engine key as oVirt signs them.

    For checking a websocket proxy without a running engine or web UI: open
    wss://<proxy>:<port>/<ticket> (noVNC, or any websocket client) and the proxy bridges to
    HOST:PORT if it trusts this engine's certificate (CERT_FOR_DATA_VERIFICATION). Anyone
    holding the ticket can open that console until it expires. Only the ticket goes to
    stdout.
    """
    setup_logging(ctx)
    from engine_agent.tickets import load_signer
    from wsproxy_agent import logs
    from wsproxy_agent.paths import HostPaths

    signer = load_signer(HostPaths.under(root_of(ctx)))
    ticket = signer.issue(
        host, port, ttl_seconds=ttl, ssl_target=ssl_target, path=path, token=token
    )
    logs.decision(
        logs.get("tickets"),
        "issue",
        who="operator",
        why="operator ran engine ticket",
        target=f"{host}:{port}",
        ttl_seconds=ttl,
    )
    click.echo(ticket)


@click.group("token")
def token() -> None:
    """Create, list and revoke one-time join tokens (engine host)."""


@token.command("create")
@click.option(
    "--proxy",
    "proxy_fqdn",
    required=True,
    help="The proxy host's DNS name; the token works for it alone.",
)
@click.option(
    "--port",
    default=6100,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The websocket proxy's port.",
)
@click.option(
    "--ttl",
    default=None,
    help="How long the token lives: 90s, 15m, 1h, 2d.  [default: token_ttl, 1h]",
)
@click.option(
    "--no-activate",
    is_flag=True,
    help="Enroll the proxy but leave the engine's WebSocketProxy as it is.",
)
@click.pass_context
@friendly_errors
def token_create(
    ctx: click.Context, proxy_fqdn: str, port: int, ttl: str | None, no_activate: bool
) -> None:
    """Print a one-time join string for 'wsproxy-agent proxy join' (last line of output)."""
    from engine_agent.registry import TokenRow, now_s
    from protocol import identity, joinstring, tokens
    from protocol.names import normalise_fqdn
    from wsproxy_agent import config, transport

    fqdn = normalise_fqdn(proxy_fqdn)
    new = tokens.generate()
    with _registry(ctx) as (settings, registry):
        if fqdn == settings.fqdn:
            # The engine refuses any request for its own name; a token for it would only
            # fail later, on the proxy host, where the mistake is harder to see.
            raise Abort(
                f"{fqdn} is the engine's own name; a proxy cannot take it. Give the proxy "
                "host's own DNS name."
            )
        lifetime = config.parse_duration(ttl) if ttl else settings.token_ttl
        created = now_s()
        registry.add_token(
            TokenRow(
                id=new.id,
                proof_key=new.proof_key,
                proxy_fqdn=fqdn,
                port=port,
                activate=not no_activate,
                created_at=created,
                expires_at=created + lifetime,
                used_at=None,
                used_by=None,
                used_csr_sha256=None,
                failures=0,
                revoked=False,
            )
        )
    host, _, agent_port = settings.advertise.rpartition(":")
    key = settings.identity()
    join = joinstring.JoinString(
        host=host.strip("[]"),
        port=int(agent_port),
        curve_key=transport.curve_to_raw(transport.read_curve_key(settings.paths.curve_public)),
        pin=identity.public_raw(key),
        token=new,
        proxy_port=port,
    )
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created + lifetime))
    click.echo(
        f"token {new.id} for {fqdn}:{port}, single use, expires {expires}"
        + (", engine stays as it is (--no-activate)" if no_activate else "")
    )
    click.echo("On the proxy host run: wsproxy-agent proxy join '<the line below>'")
    click.echo(str(join))


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List join tokens (their secrets are not stored and cannot be shown)."""
    from engine_agent.registry import now_s

    with _registry(ctx) as (_, registry):
        tokens = registry.tokens()
    now = now_s()
    rows = []
    for row in tokens:
        state = (
            "revoked"
            if row.revoked
            else "used"
            if row.used_at
            else "expired"
            if row.expires_at < now
            else "valid"
        )
        rows.append(
            {
                "id": row.id,
                "proxy": row.proxy_fqdn,
                "port": row.port,
                "state": state,
                "expires_at": row.expires_at,
                "failures": row.failures,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(
            f"{r['id']}  {r['state']:8} {r['proxy']}:{r['port']}  expires "
            f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(int(str(r['expires_at']))))}"
        )
    if not rows:
        click.echo("no tokens")


@token.command("revoke")
@click.argument("token_id")
@click.pass_context
@friendly_errors
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke an unused join token."""
    with _registry(ctx) as (_, registry):
        done = registry.revoke_token(token_id, actor="operator")
    if not done:
        raise Abort(f"No unrevoked token {token_id}; see 'wsproxy-agent token list'.")
    click.echo(f"token {token_id} revoked")


@click.group("keys")
def keys() -> None:
    """See and decide proxy keys (engine host), Salt style."""


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """List proxies by state (pending, accepted, rejected, revoked) with key fingerprints."""
    with _registry(ctx) as (_, registry):
        proxies = registry.proxies()
    rows = [
        {
            "fqdn": p.fqdn,
            "port": p.port,
            "state": p.state.value,
            "decision": decision_of(p.state.value),
            "fingerprint": p.fingerprint,
            "active": p.active,
            "serial": p.serial,
            "not_after": p.not_after,
            "last_seen": p.last_seen,
            "activation_error": p.activation_error,
            "address": p.address,
        }
        for p in proxies
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for group in ("pending", "accepted", "rejected", "revoked"):
        members = [r for r in rows if r["decision"] == group]
        click.echo(f"{group.capitalize()}:")
        for r in members:
            extra = (
                " (active)" if r["active"] else f" ({r['state']})" if group == "accepted" else ""
            )
            if group == "pending" and r["address"]:
                extra += f"  from {r['address']}"  # helps an operator judge an unknown key
            click.echo(f"  {r['fqdn']}:{r['port']}  {r['fingerprint']}{extra}")


def decision_of(state: str) -> str:
    if state in ("pending", "rejected", "revoked"):
        return state
    return "accepted"


def _decide(ctx: click.Context, fqdn: str, verb: str) -> None:
    from protocol.states import EngineEvent
    from wsproxy_agent import logs

    setup_logging(ctx)
    event = {"accept": EngineEvent.ACCEPT, "reject": EngineEvent.REJECT}[verb]
    with _registry(ctx) as (_, registry):
        proxy = _known_proxy(registry, fqdn)
        name = proxy.fqdn
        registry.transition(name, event, actor="operator", why=f"keys {verb}")
    logs.decision(
        logs.get("keys"), verb, who=proxy.fingerprint, why=f"operator ran keys {verb}", fqdn=name
    )
    click.echo(f"{name} ({proxy.fingerprint}): {verb}ed")


def _withdraw(ctx: click.Context, fqdn: str, *, revoke: bool) -> None:
    """Shared by 'keys delete' and 'engine deactivate'."""
    from engine_agent.activation import EngineSwitch
    from engine_agent.withdrawal import withdraw
    from protocol.states import EngineState
    from wsproxy_agent import control, logs

    setup_logging(ctx)
    with _registry(ctx) as (settings, registry):
        proxy = _known_proxy(registry, fqdn)
        name = proxy.fqdn
        if not revoke and not proxy.active:
            raise Abort(f"{name} is not the proxy the engine uses; nothing to switch back.")
        if revoke and proxy.state is EngineState.REVOKED and not proxy.active:
            raise Abort(f"{name} is already revoked.")
        if revoke and proxy.state is not EngineState.REVOKED:
            logs.decision(
                logs.get("keys"),
                "revoke",
                who=proxy.fingerprint,
                why="operator ran keys delete",
                fqdn=name,
            )
            click.echo(
                f"{name} ({proxy.fingerprint}): revoked; its messages are refused from now on"
            )
        failure = withdraw(
            registry,
            EngineSwitch.from_settings(settings),
            proxy,
            revoke=revoke and proxy.state is not EngineState.REVOKED,
            actor="operator",
        )
    if revoke:
        control.ask(settings.paths.engine_control, {"op": "revoked", "fqdn": name})
    if failure is not None:
        raise Abort(
            f"switching the engine back failed: {failure}. Fix it, then run "
            f"'wsproxy-agent engine deactivate {name}'."
        )
    if proxy.active:
        click.echo(
            f"engine switched back: WebSocketProxy={proxy.replaced_value or 'Off'} (if it still pointed at {name})"
        )


@keys.command("accept")
@click.argument("fqdn")
@click.pass_context
@friendly_errors
def keys_accept(ctx: click.Context, fqdn: str) -> None:
    """Accept a pending proxy; it receives its certificate when it next asks (seconds)."""
    _decide(ctx, fqdn, "accept")


@keys.command("reject")
@click.argument("fqdn")
@click.pass_context
@friendly_errors
def keys_reject(ctx: click.Context, fqdn: str) -> None:
    """Reject a pending proxy; its waiting join stops with 'rejected'."""
    _decide(ctx, fqdn, "reject")


@keys.command("delete")
@click.argument("fqdn")
@click.pass_context
@friendly_errors
def keys_delete(ctx: click.Context, fqdn: str) -> None:
    """Revoke a proxy's key; if the engine uses it, switch the engine back.

    Its messages are refused from then on, and a connected proxy is told. A rebuilt proxy
    joins again with a fresh token.
    """
    _withdraw(ctx, fqdn, revoke=True)


keys.add_command(keys_delete, "revoke")


@engine.command("renew")
@click.argument("fqdn")
@click.pass_context
@friendly_errors
def engine_renew(ctx: click.Context, fqdn: str) -> None:
    """Tell a connected proxy to renew its certificate now (the daemon must run)."""
    from engine_agent.settings import EngineSettings
    from protocol.names import normalise_fqdn
    from wsproxy_agent import control

    settings = EngineSettings.load(root_of(ctx))
    name = normalise_fqdn(fqdn)
    answer = control.ask(settings.paths.engine_control, {"op": "renew", "fqdn": name})
    if answer is None:
        raise Abort("The engine daemon is not running; it can only ask a connected proxy.")
    if not answer.get("notified"):
        raise Abort(
            f"{name} is not connected (or unknown); on the proxy run 'wsproxy-agent proxy renew'."
        )
    click.echo(f"{name}: asked to renew now; see 'wsproxy-agent status' on either host.")


@engine.command("deactivate")
@click.argument("fqdn")
@click.pass_context
@friendly_errors
def engine_deactivate(ctx: click.Context, fqdn: str) -> None:
    """Switch the engine back from FQDN to the WebSocketProxy value it replaced.

    The proxy stays enrolled; 'wsproxy-agent engine activate FQDN' switches over again.
    """
    _withdraw(ctx, fqdn, revoke=False)


@engine.command("rotate-keys")
@click.option(
    "--force",
    is_flag=True,
    help="Rotate even when enrolled proxies are not connected; each of those needs a fresh "
    "token afterwards ('proxy join' again).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1, 600),
    default=30,
    show_default=True,
    help="Seconds to wait for the connected proxies to confirm the new keys.",
)
@click.pass_context
@friendly_errors
def engine_rotate_keys(ctx: click.Context, force: bool, timeout: float) -> None:
    """Replace the engine agent's identity and Curve keys; enrolled proxies follow.

    The running daemon announces the new keys to every connected proxy, signed with the
    old key, waits for them to confirm, then switches. Join strings made before no longer
    work: make new tokens. Without a running daemon only --force can rotate (nobody hears).
    """
    from engine_agent import rotation
    from engine_agent.enrollment import TRUSTED_STATES
    from engine_agent.settings import EngineSettings
    from protocol import identity, joinstring
    from wsproxy_agent import control

    settings = EngineSettings.load(root_of(ctx))
    paths = settings.paths
    if control.ask(paths.engine_control, {"op": "ping"}) is not None:
        answer = control.ask(
            paths.engine_control,
            {"op": "rotate", "timeout": timeout, "force": force},
            timeout_ms=int(timeout * 1000) + 10_000,
        )
        if answer is None:
            raise Abort("The engine daemon did not answer; see its log and 'wsproxy-agent status'.")
        if not answer.get("ok"):
            raise Abort(str(answer.get("error")))
        fingerprint, followed, missed = answer["fingerprint"], answer["followed"], answer["missed"]
    else:
        with _registry(ctx) as (_, registry):
            enrolled = sorted(p.fqdn for p in registry.proxies() if p.state in TRUSTED_STATES)
            if enrolled and not force:
                raise Abort(
                    "The engine daemon is not running, so no proxy can be told of new keys: "
                    f"{', '.join(enrolled)} would need fresh tokens. Start the daemon "
                    "(systemctl start wsproxy-agent-engine) and try again, or use --force."
                )
            keys = rotation.prepare(paths)
            rotation.commit(paths)
            fingerprint, followed, missed = keys.fingerprint, [], enrolled
            registry.set_meta("fingerprint", fingerprint)
            registry.audit("operator", "rotate-keys", None, fingerprint, "daemon not running")
    key = identity.public_raw(identity.private_from_pem(paths.identity_key.read_bytes()))
    click.echo(f"engine identity  {fingerprint}")
    click.echo(
        f"engine key       {joinstring.format_engine_key(rotation.curve_public_raw(paths), key)}"
    )
    if followed:
        click.echo(f"followed         {', '.join(followed)}")
    click.echo("join strings and tokens made before this no longer work; make new ones")
    if missed:
        raise Abort(
            f"Did not confirm the new keys: {', '.join(missed)}. On each, run "
            "'wsproxy-agent proxy join' with a fresh token from 'wsproxy-agent token create'."
        )

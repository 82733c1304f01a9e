"""``proxy join`` and renewal: get a certificate from the engine, check it, install it.

Renewal runs the same steps as a join, signed with the identity key instead of a token.

The sequence is the proxy column of ``protocol.states.PROXY_TABLE``; each step fires its
event, so the code cannot skip one. Side effects sit behind the narrow pieces it calls:
the link (network), ``install`` (files), ``commands`` (the service restart).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import catalogue as cat
from protocol import identity, tokens
from protocol.codec import Value
from protocol.envelope import Message
from protocol.errors import ProtocolError, error_for_code
from protocol.states import ProxyEvent, ProxyState, proxy_machine
from proxy_agent import install, setup_conf, state, tlskeys, verify
from proxy_agent.exclusive import one_at_a_time
from proxy_agent.link import EngineLink, LinkError
from proxy_agent.settings import ProxySettings
from wsproxy_agent import commands
from wsproxy_agent.clitools import EXIT_REJECTED, EXIT_TIMEOUT, Abort
from wsproxy_agent.errors import AgentError
from wsproxy_agent.files import write_atomic
from wsproxy_agent.keyfiles import load_identity, load_or_create_identity

ATTEMPT_S = 5.0
REPORT_ATTEMPT_S = 15.0
HANDSHAKE_S = 10.0
POLL_ROUND_TRIP_S = 1.0


@dataclass
class JoinOptions:
    token: tokens.Token | None
    timeout_s: float
    curve: bool = True
    # How long to wait for another join or renewal on this host; None: the whole timeout.
    wait_for_others_s: float | None = None


class Join:
    def __init__(
        self, settings: ProxySettings, options: JoinOptions, say: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.options = options
        self.say = say
        self.machine = proxy_machine()
        self.deadline = time.monotonic() + options.timeout_s
        self.renewing = False
        self.enrolled_as: str | None = None  # what a renewal started from

    def run(self) -> int:
        with self._alone():
            return self._run()

    def renew(self, link: EngineLink | None = None) -> int:
        """Renew: a new TLS key and CSR, the same checks, install, restart and report."""
        with self._alone():
            return self._renew(link)

    def _alone(self) -> AbstractContextManager[None]:
        wait = self.options.wait_for_others_s
        return one_at_a_time(
            self.paths.enrollment_lock, self.options.timeout_s if wait is None else wait
        )

    def _run(self) -> int:
        key = self._identity()
        tls_key, tls_key_pem, csr_pem = self._tls_key_and_csr()
        self.say(
            f"proxy {self.settings.fqdn}:{self.settings.port}, identity {identity.fingerprint(key)}"
        )
        link = self._connect(key)
        try:
            with self._step("join"):
                approved = self._enroll(link, key, tls_key_pem, csr_pem)
            with self._step("install"):
                delivery = self._check(approved, tls_key)
                self._install(approved, tls_key_pem, delivery)
            failure = self._restart_service()
            return self._report(link, delivery, failure)
        finally:
            link.close()

    def _renew(self, link: EngineLink | None) -> int:
        saved = state.load(self.paths.proxy_state)
        if saved.get("enrollment") not in (ProxyState.ACTIVE.value, ProxyState.ENROLLED.value):
            raise Abort(
                "This proxy has not completed a join; run 'wsproxy-agent proxy join' first."
            )
        self.machine = proxy_machine(ProxyState(saved["enrollment"]))
        self.machine.fire(ProxyEvent.SEND_RENEWAL)  # refused unless enrolled
        self.renewing = True
        self.enrolled_as = saved["enrollment"]
        key = load_identity(self.paths.identity_key)
        tls_key, tls_key_pem, csr_pem = self._tls_key_and_csr()
        own_link = link is None
        link = self._connect(key) if link is None else link
        try:
            with self._step("renew"):
                reply = self._request(link, cat.RENEW_REQUEST, {"csr": csr_pem.decode()}, ATTEMPT_S)
                if reply.type == cat.ERROR:
                    raise error_for_code(reply.text("code"), reply.text("message"))
            self.machine.fire(ProxyEvent.GOT_APPROVED)
            self.say(f"renewal approved: certificate serial {reply.text('serial')}")
            with self._step("install"):
                delivery = self._check(reply, tls_key)
                self._install(reply, tls_key_pem, delivery)
            failure = self._restart_service()
            return self._report(link, delivery, failure)
        finally:
            if own_link:
                link.close()

    # steps
    def _connect(self, key: Ed25519PrivateKey) -> EngineLink:
        s = self.settings
        link = EngineLink(
            address=s.engine,
            curve_key=s.engine_curve_raw if self.options.curve else None,
            engine_key=s.engine_identity_raw,
            key=key,
            window_ms=s.freshness_window * 1000,
        )
        self.say(f"connecting to the engine agent at {s.engine}")
        with self._step("link"):
            if self.options.curve:
                if not link.wait_handshake(min(HANDSHAKE_S, self.options.timeout_s)):
                    link.close()
                    raise LinkError(link.silence_reason())
                self.say("connected: the engine's Curve key matches the pin (encrypted channel up)")
        return link

    def _enroll(
        self, link: EngineLink, key: Ed25519PrivateKey, tls_key_pem: bytes, csr_pem: bytes
    ) -> Message:
        token = self.options.token
        public = identity.public_raw(key)

        def body(msg_id: bytes) -> dict[str, Value]:
            fields: dict[str, Value] = {
                "identity_key": public,
                "csr": csr_pem.decode(),
                "fqdn": self.settings.fqdn,
                "port": self.settings.port,
            }
            if token is not None:
                fields["token_id"] = token.id
                fields["token_proof"] = tokens.proof(token.proof_key, public, csr_pem, msg_id)
            return fields

        told_pending = False
        while True:
            self.machine.fire(ProxyEvent.SEND_REQUEST)
            reply = self._request(link, cat.ENROLL_REQUEST, body, ATTEMPT_S)
            if not told_pending:
                self.say(
                    f"request sent and answered, signed by the pinned engine key {link.engine_fingerprint}"
                )
            if reply.type == cat.ENROLL_APPROVED:
                self.machine.fire(ProxyEvent.GOT_APPROVED)
                self.say(f"approved: certificate serial {reply.text('serial')}")
                return reply
            if reply.type == cat.ENROLL_REJECTED:
                self.machine.fire(ProxyEvent.GOT_REJECTED)
                raise Abort(f"rejected by the engine: {reply.text('reason')}", EXIT_REJECTED)
            if reply.type == cat.ERROR:
                raise error_for_code(reply.text("code"), reply.text("message"))
            self.machine.fire(ProxyEvent.GOT_PENDING)
            if not told_pending:
                self.say(
                    f"pending: an operator must accept this proxy. On the engine host run "
                    f"'wsproxy-agent keys accept {self.settings.fqdn}' after checking that "
                    f"'wsproxy-agent keys list' shows {reply.text('fingerprint')}"
                )
                told_pending = True
            pause = reply.number("retry_after") + random.uniform(0, 1)
            # Leave time for the next round trip too, or the deadline would strike inside it
            # and read as "no answer" instead of "no decision".
            if time.monotonic() + pause + POLL_ROUND_TRIP_S >= self.deadline:
                raise Abort(
                    "No decision before --timeout; run the same join again to keep waiting.",
                    EXIT_TIMEOUT,
                )
            time.sleep(pause)

    def _check(self, approved: Message, tls_key: tlskeys.TLSKey) -> verify.Delivery:
        delivery = verify.check_delivery(
            approved.text("cert"),
            approved.text("ca_cert"),
            approved.text("engine_cert"),
            tls_key,
            self.settings.fqdn,
            datetime.now(UTC),
        )
        self.say(
            f"certificate checked: chains to the engine CA, holds our key, SAN DNS:{self.settings.fqdn}, "
            f"valid until {delivery.not_after:%Y-%m-%d}"
        )
        return delivery

    def _install(self, approved: Message, tls_key_pem: bytes, delivery: verify.Delivery) -> None:
        written = install.install_delivery(
            self.paths,
            tls_key_pem=tls_key_pem,
            delivery_cert_pem=approved.text("cert").encode(),
            engine_cert_pem=approved.text("engine_cert").encode(),
            ca_cert_pem=approved.text("ca_cert").encode(),
            setup_conf_text=setup_conf.render(self.settings.port, self.paths),
            owner=self.settings.service_owner,
        )
        state.save(
            self.paths.proxy_state,
            fqdn=self.settings.fqdn,
            port=self.settings.port,
            engine=self.settings.engine,
            engine_fingerprint=identity.fingerprint(self.settings.engine_identity_raw),
            serial=delivery.serial,
            not_before=int(delivery.cert.not_valid_before_utc.timestamp()),
            not_after=int(delivery.not_after.timestamp()),
            subject=delivery.subject,
            san=delivery.san,
            installed_at=int(time.time()),
            enrollment=self._enrollment(ProxyState.INSTALLED),
        )
        self.say("files installed: " + ", ".join(str(p) for p in written))

    def _restart_service(self) -> str | None:
        """The restart completes the install; its failure is the install's failure."""
        try:
            with self._step("restart"):
                commands.run(
                    self.settings.service_restart_command, timeout=self.settings.command_timeout
                )
        except commands.CommandFailed as exc:
            self.machine.fire(ProxyEvent.INSTALL_FAILED)
            self.say(f"websocket proxy restart FAILED: {exc.sentence}")
            return exc.sentence
        self.machine.fire(ProxyEvent.INSTALLED)
        self.say(
            "websocket proxy service restarted: " + " ".join(self.settings.service_restart_command)
        )
        return None

    def _report(self, link: EngineLink, delivery: verify.Delivery, failure: str | None) -> int:
        """Tell the engine how the install went; it switches over only on success."""
        body: dict[str, Value] = {
            "ok": failure is None,
            "serial": delivery.serial,
            "service_active": failure is None,
        }
        if failure:
            body["reason"] = failure[:1000]
        self.machine.fire(ProxyEvent.REPORT_SENT)
        self.say(
            "reported to the engine" + ("" if self.renewing else "; waiting for it to switch over")
        )
        with self._step("report"):
            reply = self._request(link, cat.INSTALL_REPORT, body, REPORT_ATTEMPT_S)
            if reply.type == cat.ERROR:
                raise error_for_code(reply.text("code"), reply.text("message"))
        if failure is not None:
            state.save(
                self.paths.proxy_state,
                enrollment=self._enrollment(self.machine.state),
                last_contact=int(time.time()),
            )
            raise Abort(f"The websocket proxy service did not restart: {failure}")
        activated = reply.flag("activated")
        # Only now is the request finished: until here a re-run must ask with the same CSR.
        for path in (self._pending_key, self._pending_csr):
            path.unlink(missing_ok=True)
        self.machine.fire(ProxyEvent.GOT_ACTIVATED if activated else ProxyEvent.GOT_NOT_ACTIVATED)
        state.save(
            self.paths.proxy_state,
            enrollment=self.machine.state.value,
            renewed_at=int(time.time()) if self.renewing else None,
            activated=activated,
            activation_reason=reply.body.get("reason"),
            last_contact=int(time.time()),
        )
        self._note_activation(activated, reply.optional_text("reason") or "")
        if self.renewing:
            self.say(
                f"renewed: the new certificate is in use, valid until {delivery.not_after:%Y-%m-%d}"
            )
            return 0
        if activated:
            self.say(f"engine switched over: WebSocketProxy={reply.text('websocket_proxy')}")
            self.say(
                "done. Keep the agent running to renew the certificate: systemctl enable --now wsproxy-agent-proxy"
            )
            return 0
        reason = reply.optional_text("reason") or ""
        self.say(f"enrolled; the engine was not switched over: {reason}")
        return 0 if "no-activate" in reason else 1

    def _note_activation(self, activated: bool, reason: str) -> None:
        # Enrolled without switching over is what a --no-activate token asks for.
        if activated or "no-activate" in reason:
            state.clear_error(self.paths.proxy_state, "activation")
        else:
            state.record_error(self.paths.proxy_state, "activation", reason)

    @contextmanager
    def _step(self, step: state.Step) -> Iterator[None]:
        """Keep the step's last error in proxy-state.json for 'status'; success clears it."""
        try:
            yield
        except (AgentError, ProtocolError) as exc:
            state.record_error(self.paths.proxy_state, step, exc.sentence)
            raise
        state.clear_error(self.paths.proxy_state, step)

    def _enrollment(self, reached: ProxyState) -> str:
        # A renewal cut short leaves the proxy enrolled, as the engine still holds it, so the
        # daemon or 'proxy renew' can try again.
        return self.enrolled_as or reached.value

    def _request(self, link: EngineLink, msg_type: str, body: object, attempt_s: float) -> Message:
        return link.request(msg_type, body, attempt_s=attempt_s, deadline=self.deadline)  # type: ignore[arg-type]

    @property
    def _pending_key(self) -> Path:
        return pending_request(self.settings)[0]

    @property
    def _pending_csr(self) -> Path:
        return pending_request(self.settings)[1]

    def _identity(self) -> Ed25519PrivateKey:
        created = not self.paths.identity_key.exists()
        started = time.perf_counter()
        key = load_or_create_identity(self.paths.identity_key)
        if created:
            self._say_made("identity key (Ed25519)", started)
        return key

    def _tls_key_and_csr(self) -> tuple[tlskeys.TLSKey, bytes, bytes]:
        """The request's TLS key, its PEM and the CSR. The key object is kept to check the
        delivery against: reading the PEM back would check an RSA key's primes again, 50 to
        100 ms of CPU for RSA-2048."""
        if self._pending_key.exists() and self._pending_csr.exists():
            key_pem = self._pending_key.read_bytes()
            return tlskeys.load_key_pem(key_pem), key_pem, self._pending_csr.read_bytes()
        started = time.perf_counter()
        key = tlskeys.generate_tls_key(self.settings.key_type)
        csr_pem = tlskeys.build_csr(key, self.settings.fqdn)
        self._say_made(
            f"TLS key ({self.settings.key_type.upper()}) and certificate request", started
        )
        key_pem = tlskeys.key_to_pem(key)
        write_atomic(self._pending_key, key_pem, mode=0o600, keep_backup=False)
        write_atomic(self._pending_csr, csr_pem, mode=0o600, keep_backup=False)
        return key, key_pem, csr_pem

    def _say_made(self, what: str, started: float) -> None:
        # How long key generation took, apart: an RSA key costs from tens to hundreds of ms
        # of CPU (the search for primes is luck), which explains a slow join on its own.
        self.say(f"{what} made in {(time.perf_counter() - started) * 1000:.1f} ms")


# The TLS key and CSR survive an interrupted join or renewal, so a retry asks for the same
# thing and the engine answers it with the certificate it already issued.
# The names carry the FQDN (validated) and key type, so a join for another name or
# key type never reuses them.
def pending_request(settings: ProxySettings) -> tuple[Path, Path]:
    """The TLS key and CSR of the request under way; both gone once it has finished."""
    stem = settings.paths.state_dir / f"pending-{settings.fqdn}-{settings.key_type}"
    return stem.with_name(stem.name + ".key"), stem.with_name(stem.name + ".csr")


def unfinished_since(settings: ProxySettings) -> int | None:
    """When the request that has not finished yet was made, or None when there is none."""
    try:
        return int(pending_request(settings)[1].stat().st_mtime)
    except FileNotFoundError:
        return None

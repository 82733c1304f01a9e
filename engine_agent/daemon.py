"""``wsproxy-agent engine run``: the engine daemon's loop.

One thread owns the sockets and the registry. External commands that may take minutes
(engine-config, the engine restart) run on a worker thread and hand their outcome back
to the loop, so a slow restart never stops the engine answering other proxies.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import zmq

from engine_agent import rotation, status
from engine_agent.activation import ActivationFailed, EngineSwitch
from engine_agent.admission import Admission, Blocked, peer_of
from engine_agent.enrollment import TRUSTED_STATES, Bundle, Enrollment, Reply
from engine_agent.registry import KeyHolder, Proxy, Registry, now_s
from engine_agent.seen_store import SeenStore
from engine_agent.settings import EngineSettings
from engine_agent.signer import SignerError, make_signer
from protocol import catalogue as cat
from protocol import identity
from protocol.codec import Value
from protocol.envelope import Message, seal
from protocol.errors import ClockSkew, InternalError, ProtocolError, RateLimited, WrongRecipient
from protocol.receive import Receiver
from protocol.states import EngineEvent, EngineState
from wsproxy_agent import logs, memtrim, sdnotify, status_report, transport
from wsproxy_agent.control import ControlServer, Request

POLL_MS = 200
HOUSEKEEPING_S = 30
# Heartbeat facts reach the registry (and 'status') at most this late.
FLUSH_HEARD_S = 1.0
# Messages taken from the socket per poll: their ids go to disk in one transaction. Bounded,
# so that a flood leaves the control socket and the loop's other duties their turn.
DRAIN_MAX = 64
# After a wake for proxies' messages that drained its socket, the loop looks again only this
# much later. A fleet's heartbeats arrive spread out, a few milliseconds apart; waking for
# each costs more than the message (a poll, a transaction, caches gone cold while other
# processes ran), and taken together they cost less. Not while messages wait (a full batch)
# or an operator does (a control request, a live query, a rotation), nor after an idle
# spell: then it costs no latency. An operator's request arriving meanwhile cuts it short.
COALESCE_S = 0.05
REBIND_S = 5.0


@dataclass
class Waiting:
    """A proxy waiting for the outcome of its activation: where and what to answer."""

    routing_id: bytes
    request_id: bytes
    fingerprint: str


@dataclass
class LiveQuery:
    """A status query pushed to every connected proxy (like ``salt '*' test.ping``), or to one.

    Each answer carries ``rtt_ms``: from just before the query was signed and pushed to its
    verified reply, on the monotonic clock, so it is the round trip the engine lives with.
    """

    deadline: float
    asked: dict[bytes, tuple[str, float]] = field(default_factory=dict)  # id: fqdn, pushed at
    answers: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def expect(self, fqdn: str, query_id: bytes | None, pushed_at: float) -> None:
        self.answers[fqdn] = None
        if query_id is not None:
            self.asked[query_id] = (fqdn, pushed_at)

    def answer(self, msg: Message, now: float) -> None:
        asked = self.asked.pop(msg.re, None) if msg.re is not None else None
        if asked is not None:
            fqdn, pushed_at = asked
            self.answers[fqdn] = {**msg.body, "rtt_ms": round((now - pushed_at) * 1000, 3)}

    def finished(self) -> bool:
        return not self.asked or time.monotonic() >= self.deadline

    def result(self) -> dict[str, Any]:
        return {"ok": True, "answers": self.answers}


@dataclass
class Rotation:
    """New engine keys announced to the connected proxies; waiting for them to follow."""

    keys: rotation.NewKeys
    deadline: float
    not_connected: list[str]
    asked: dict[bytes, str] = field(default_factory=dict)
    followed: list[str] = field(default_factory=list)

    def answer(self, msg: Message) -> None:
        fqdn = self.asked.pop(msg.re, None) if msg.re is not None else None
        if fqdn is not None and msg.text("pinned") == self.keys.fingerprint:
            self.followed.append(fqdn)

    def finished(self) -> bool:
        return not self.asked or time.monotonic() >= self.deadline

    def missed(self) -> list[str]:
        return sorted([*self.not_connected, *self.asked.values()])


class Arrived(NamedTuple):
    """A message as taken from the socket: the route back, where it came from, its frames."""

    routing_id: bytes
    peer: str
    body: list[bytes]


class Accepted(NamedTuple):
    """A message the receive pipeline accepted, with where and when it came from."""

    routing_id: bytes
    msg: Message
    peer: str
    now: float  # monotonic, when it was taken


@dataclass(frozen=True)
class ActivationOutcome:
    fqdn: str
    value: str
    replaced: str | None
    error: str | None


class EngineDaemon:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.log = logs.get("engine")
        # A rotation cut short after its announcement is finished: see engine_agent/rotation.
        rotation_interrupted = rotation.pending(self.paths)
        if rotation_interrupted:
            rotation.commit(self.paths)
        self.key = settings.identity()
        self.fingerprint = identity.fingerprint(self.key)
        self.registry = Registry(self.paths.registry)
        if rotation_interrupted:
            self._record_rotation("engine", "finished at start after an interruption", [], [])
        self.enrollment = Enrollment(
            self.registry,
            make_signer(settings.signer, self.paths, settings.cert_lifetime_days),
            Bundle(
                ca_cert=self.paths.ca_cert.read_text(),
                engine_cert=self.paths.engine_cert.read_text(),
                lifetime_days=settings.cert_lifetime_days,
            ),
            engine_fqdn=settings.fqdn,
            max_pending=settings.max_pending,
            max_pending_per_address=settings.max_pending_per_address,
            token_max_failures=settings.token_max_failures,
            log=self.log,
        )
        self.admission = Admission(settings.failures_per_address)
        self.seen_store = SeenStore(self.paths.seen_ids)
        self.receiver = self._receiver()
        self.switch = EngineSwitch.from_settings(settings)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="activation")
        self.outcomes: queue.Queue[ActivationOutcome] = queue.Queue()
        self.activating: set[str] = set()
        self.waiting: dict[str, Waiting] = {}
        # Where each proxy last spoke from: the engine can push only to a known route.
        self.routes: dict[str, bytes] = {}
        self.live: LiveQuery | None = None
        self.rotation: Rotation | None = None
        self.deferred: Request | None = None  # the control request they will answer
        self.started_at = now_s()
        self.after_burst = memtrim.AfterBurst()
        self._stop = threading.Event()

    def _receiver(self) -> Receiver:
        receiver = Receiver(
            cat.Role.ENGINE,
            self.fingerprint,
            self._key_for,
            window_ms=self.settings.freshness_window * 1000,
        )
        # What was accepted before a restart stays a replay after it.
        now = _now_ms()
        for msg_id, ts in self.seen_store.since(now - receiver.window_ms):
            receiver.seen.record(msg_id, ts, now)
        return receiver

    def _key_for(self, fingerprint: str) -> Any:
        raw = self.enrollment.trusted_key(fingerprint)
        return _public_key(raw) if raw is not None else None

    # lifecycle
    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        transport.allow_open_files()  # silent connections must not starve the listener
        ctx = zmq.Context()
        self.sock = self._bind(ctx)
        control = ControlServer(self.paths.engine_control)
        self.log.info(
            "engine_started",
            listen=self.settings.listen,
            fingerprint=self.fingerprint,
            curve=self.settings.curve,
            pid=os.getpid(),
        )
        self._resume_activations()
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(control, zmq.POLLIN)
        control_only = zmq.Poller()  # what cuts the settling short
        control_only.register(control, zmq.POLLIN)
        systemd = sdnotify.Notifier.from_environ()
        systemd.ready(f"listening on {self.settings.listen}")
        next_housekeeping = 0.0
        next_flush = 0.0
        settle_until = 0.0
        try:
            while not self._stop.is_set():
                systemd.keepalive()
                self._settle(control_only, settle_until)
                ready = poller.poll(POLL_MS)
                woke = time.monotonic()
                settle_until = woke + self._turn(ready, poller, control, ctx)
                if time.monotonic() >= next_flush:
                    self.registry.flush_heard()
                    next_flush = time.monotonic() + FLUSH_HEARD_S
                if time.monotonic() >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = time.monotonic() + self._housekeeping_interval()
        finally:
            self.log.info("engine_stopping")
            systemd.stopping()
            self.worker.shutdown(wait=False, cancel_futures=True)
            self.sock.close()
            control.close()
            ctx.term()
            self.registry.close()
            self.seen_store.close()

    def _settle(self, control_only: zmq.Poller, until: float) -> None:
        """Wait until ``until`` for proxies' messages to gather, but no longer than an
        operator's request takes to arrive: under a fleet's heartbeats the loop is nearly
        always settling, and ``status`` would wait out the rest of it (17 ms at the median
        with 200 heartbeats a second, against 0.6 ms on a quiet engine)."""
        left_ms = (until - time.monotonic()) * 1000
        if left_ms > 0 and not self._stop.is_set():
            control_only.poll(max(1, round(left_ms)))

    def _turn(
        self,
        ready: list[tuple[Any, int]],
        poller: zmq.Poller,
        control: ControlServer,
        ctx: zmq.Context[Any],
    ) -> float:
        """Handle what woke the loop; how long it waits before looking again (COALESCE_S)."""
        backlog = False
        if not ready and self.after_burst.due_when_quiet():
            self._give_memory_back()
        for sock, _ in ready:
            if sock is self.sock:
                batch = self._drain()
                backlog = len(batch) == DRAIN_MAX
                self.after_burst.handled(len(batch))
                self._on_batch(batch)
            elif (request := control.take()) is not None:
                answer = self._on_control(request.body)
                if answer is None:
                    # Answered once the live query or rotation ends; until then other
                    # requests wait in the socket's backlog.
                    self.deferred = request
                    poller.unregister(control)
                else:
                    request.answer(answer)
        # An operator may ask again at once (status --live rounds, say): no settling after
        # the control socket's turn, nor while an answer is awaited, nor in the turn that
        # gives it (taken before the answer, which ends the wait).
        operator = len(ready) != 1 or ready[0][0] is not self.sock
        operator = operator or self.live is not None or self.rotation is not None
        if self.live is not None and self.live.finished():
            self._answer_deferred(poller, control, self.live.result())
            self.live = None
        if self.rotation is not None and self.rotation.finished():
            result = self._finish_rotation(ctx, poller, self.rotation)
            self._answer_deferred(poller, control, result)
            self.rotation = None
        self._drain_outcomes()
        return COALESCE_S if not (backlog or operator) else 0.0

    def _bind(self, ctx: zmq.Context[Any]) -> Any:
        secret = transport.read_curve_key(self.paths.curve_secret) if self.settings.curve else None
        deadline = time.monotonic() + REBIND_S
        while True:
            try:
                return transport.server(ctx, self.settings.listen, secret)
            except zmq.ZMQError as exc:
                # Rebinding after a key rotation: the old socket's close is asynchronous.
                if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # messages from proxies
    def _drain(self) -> list[Arrived]:
        """The messages waiting on the socket, up to DRAIN_MAX."""
        batch: list[Arrived] = []
        while len(batch) < DRAIN_MAX:
            try:
                # Only the route's frame as a zmq.Frame, for the peer's address; the rest
                # (ZeroMQ delivers a message whole) as bytes, so that libzmq's buffers go
                # back to its thread as they are read, not when the batch is done.
                route = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            body = self.sock.recv_multipart(zmq.NOBLOCK) if route.more else []
            batch.append(Arrived(route.bytes, _peer(route), body))
        return batch

    def _on_batch(self, batch: list[Arrived]) -> None:
        """Check each message, put the ids of those accepted on disk in one transaction, and
        only then act on them: an id is on disk before its message takes effect."""
        with self.registry.other_commits_looked_for_once():
            accepted = [a for a in map(self._accept, batch) if a is not None]
        if not accepted:
            return
        self.seen_store.add_all([(a.msg.id, a.msg.ts) for a in accepted])
        for a in accepted:
            self._act(a)

    def _accept(self, arrived: Arrived) -> Accepted | None:
        """The message if the receive pipeline accepts it; a refusal is handled here."""
        routing_id, peer, body = arrived
        if not body:
            return None
        now = time.monotonic()
        try:
            msg = self.receiver.receive(
                body, _now_ms(), admit=lambda t: self.admission.check(peer, t, now)
            )
        except RateLimited:
            return None  # a spent address: refused before any work, logged once when spent
        except ProtocolError as exc:
            self._refused(routing_id, peer, exc, now)
            return None
        except Exception:
            # A bug in the pipeline must cost one message, not the daemon.
            self.log.exception("receive_failed", peer=peer)
            self._count_failure(peer, now)
            return None
        return Accepted(routing_id, msg, peer, now)

    def _act(self, accepted: Accepted) -> None:
        routing_id, msg, peer, now = accepted
        self.routes[msg.sender] = routing_id
        try:
            reply = self._dispatch(routing_id, msg, peer)
        except ProtocolError as exc:
            if msg.type == cat.ENROLL_REQUEST:
                self._count_failure(peer, now)
            reply = _error_reply(exc)
        except SignerError as exc:
            self.log.error("signing_failed", who=msg.sender, why=exc.sentence)
            reply = _error_reply(InternalError(exc.sentence))
        except Exception:
            self.log.exception("handler_failed", type=msg.type, who=msg.sender)
            reply = _error_reply(
                InternalError("The engine agent failed on this request; see its log.")
            )
        if reply is not None:
            self._send(routing_id, msg.sender, msg.id, reply)

    def _refused(self, routing_id: bytes, peer: str, exc: ProtocolError, now: float) -> None:
        """A message the pipeline refused: log it, count it, answer it where that helps."""
        # A signed message with a bad body from an enrolled proxy is a bug, not an attack.
        known = exc.authenticated and self.enrollment.trusted_key(exc.sender or "") is not None
        if not known:
            if self.admission.failures.blocked(peer, now):
                return  # quiet: logged once when the address was throttled
            self._count_failure(peer, now)
        # A clock skew refuses every message of that proxy until someone fixes a clock.
        log = self.log.warning if isinstance(exc, ClockSkew) else self.log.info
        log("message_refused", code=exc.code.value, why=exc.sentence, who=exc.sender, peer=peer)
        # Answer only where the answer helps an honest sender and costs one signature:
        # a signed request with a bad body, one addressed to a key we do not hold, or one
        # stamped outside our window (without an answer the sender only sees silence).
        # Senders we do not know get a few such answers a minute per address.
        answerable = exc.authenticated or isinstance(exc, (WrongRecipient, ClockSkew))
        if not (answerable and exc.sender and exc.msg_id):
            return
        if known or self.admission.may_answer(peer, now):
            self._send(routing_id, exc.sender, exc.msg_id, _error_reply(exc))

    def _count_failure(self, peer: str, now: float) -> None:
        blocked = self.admission.failed(peer, now)
        if blocked is not None:
            self._throttled(blocked)

    def _throttled(self, blocked: Blocked) -> None:
        self.registry.audit("engine", "throttle", None, None, f"{blocked.peer}: {blocked.why}")
        logs.decision(self.log, "throttle", who=blocked.peer, why=blocked.why)

    def _send(self, routing_id: bytes, to: str, re: bytes | None, reply: Reply) -> bytes | None:
        """Send without ever blocking the loop: the message's id, or None when the peer is
        gone or saturated."""
        try:
            sealed = seal(self.key, reply.type, reply.body, recipient=to, now_ms=_now_ms(), re=re)
        except ProtocolError as exc:  # a reply that breaks its own schema: a bug, not a crash
            self.log.error("reply_not_sent", to=to, type=reply.type, why=exc.sentence)
            return None
        try:
            self.sock.send_multipart([routing_id, *sealed.frames], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # EHOSTUNREACH (ROUTER_MANDATORY) or EAGAIN (its queue is full)
            self.log.info("send_dropped", to=to, type=reply.type, why=exc.strerror)
            self.routes = {fp: r for fp, r in self.routes.items() if r != routing_id}
            return None
        return sealed.id

    def _push_to(self, proxy: Proxy | KeyHolder, reply: Reply) -> bytes | None:
        """Send to a proxy where it last spoke from: the id, or None when it is not there."""
        route = self.routes.get(proxy.fingerprint)
        return None if route is None else self._send(route, proxy.fingerprint, None, reply)

    def _dispatch(self, routing_id: bytes, msg: Message, peer: str) -> Reply | None:
        if msg.type == cat.ENROLL_REQUEST:
            return self.enrollment.on_enroll_request(msg, peer)
        if msg.type == cat.RENEW_REQUEST:
            return self.enrollment.on_renew_request(msg)
        if msg.type == cat.INSTALL_REPORT:
            return self._on_install_report(routing_id, msg)
        if msg.type == cat.STATUS_REPLY and self.live is not None:
            self.live.answer(msg, time.monotonic())
        if msg.type == cat.ROTATION_ACK:
            if self.rotation is not None:
                self.rotation.answer(msg)
            return None
        if msg.type in (cat.HEARTBEAT, cat.STATUS_REPLY):
            self.registry.heard(msg.sender, msg.body)
            return None
        if msg.type == cat.ERROR:
            self.log.warning("proxy_reported_error", who=msg.sender, **msg.body)
            return None
        raise InternalError(f"The engine agent does not handle {msg.type} yet.")

    def _on_install_report(self, routing_id: bytes, msg: Message) -> Reply | None:
        proxy = self.enrollment.report_target(msg)
        self.registry.update(proxy.fqdn, last_seen=now_s())
        if not msg.body["ok"]:
            reason = str(msg.body.get("reason") or "no reason given")
            self.registry.note_error(proxy.fqdn, f"install failed: {reason}")
            if proxy.state is EngineState.APPROVED:
                self.registry.transition(
                    proxy.fqdn, EngineEvent.REPORT_FAILED, actor=msg.sender, why=reason
                )
            self.log.warning("proxy_install_failed", fqdn=proxy.fqdn, why=reason)
            return _activation_reply(proxy, activated=False, reason=f"install failed: {reason}")
        self.registry.note_error(proxy.fqdn, None)
        if proxy.state is EngineState.APPROVED:
            proxy = self._transition(proxy, EngineEvent.REPORT_OK, msg.sender, "proxy service runs")
            if not proxy.activate:
                proxy = self._transition(
                    proxy, EngineEvent.SKIP_ACTIVATION, "engine", "token said --no-activate"
                )
        if proxy.state is EngineState.INSTALLED:
            self.waiting[proxy.fqdn] = Waiting(routing_id, msg.id, msg.sender)
            self._start_activation(proxy)
            return None
        return _activation_reply(proxy)

    def _transition(self, proxy: Proxy, event: EngineEvent, actor: str, why: str) -> Proxy:
        self.registry.transition(proxy.fqdn, event, actor=actor, why=why)
        updated = self.registry.proxy(proxy.fqdn)
        assert updated is not None
        return updated

    # activation, on the worker thread
    def _start_activation(self, proxy: Proxy) -> None:
        if proxy.fqdn in self.activating:
            return
        self.activating.add(proxy.fqdn)
        value = f"{proxy.fqdn}:{proxy.port}"
        self.worker.submit(self._activate, proxy.fqdn, value, proxy.replaced_value)

    def _activate(self, fqdn: str, value: str, replaced: str | None) -> None:
        try:
            current = self.switch.current()
            if replaced is None and current != value:
                replaced = current
            self.switch.set(value)
            self.outcomes.put(ActivationOutcome(fqdn, value, replaced, None))
        except ActivationFailed as exc:
            self.outcomes.put(ActivationOutcome(fqdn, value, replaced, exc.sentence))

    def _drain_outcomes(self) -> None:
        while True:
            try:
                outcome = self.outcomes.get_nowait()
            except queue.Empty:
                return
            self.activating.discard(outcome.fqdn)
            self._record_activation(outcome)

    def _record_activation(self, outcome: ActivationOutcome) -> None:
        proxy = self.registry.proxy(outcome.fqdn)
        if proxy is None or proxy.state is not EngineState.INSTALLED:
            return  # revoked or deleted while the commands ran
        if outcome.error is None:
            with self.registry.transaction() as db:
                db.execute("UPDATE proxies SET active = 0 WHERE fqdn != ?", (outcome.fqdn,))
                self.registry.transition_within(
                    db,
                    outcome.fqdn,
                    EngineEvent.ACTIVATED,
                    actor="engine",
                    why=f"WebSocketProxy={outcome.value}, was {outcome.replaced}",
                    active=1,
                    replaced_value=outcome.replaced,
                    activation_error=None,
                )
            self.log.info(
                "engine_activated",
                fqdn=outcome.fqdn,
                value=outcome.value,
                replaced=outcome.replaced,
            )
        else:
            self.registry.transition(
                outcome.fqdn,
                EngineEvent.ACTIVATION_FAILED,
                actor="engine",
                why=outcome.error,
                activation_error=outcome.error,
                replaced_value=outcome.replaced,
            )
            self.log.error("engine_activation_failed", fqdn=outcome.fqdn, why=outcome.error)
        waiting = self.waiting.pop(outcome.fqdn, None)
        updated = self.registry.proxy(outcome.fqdn)
        if waiting is not None and updated is not None:
            self._send(
                waiting.routing_id,
                waiting.fingerprint,
                waiting.request_id,
                _activation_reply(updated),
            )

    def _resume_activations(self) -> None:
        """An activation cut short by a crash is finished, not forgotten."""
        for proxy in self.registry.proxies():
            if proxy.state is EngineState.INSTALLED and proxy.activate:
                self.log.info("activation_resumed", fqdn=proxy.fqdn)
                self._start_activation(proxy)

    def _give_memory_back(self) -> None:
        started = time.monotonic()
        released = memtrim.release()
        if released is not None:  # once per burst at most: worth a line
            self.log.info(
                "memory_released",
                **released._asdict(),
                took_ms=round((time.monotonic() - started) * 1000, 1),
            )

    # housekeeping and the local control socket
    def _housekeeping_interval(self) -> float:
        # A short pending_ttl (a test, a strict site) is honoured to within a third of itself.
        return min(HOUSEKEEPING_S, max(1.0, self.settings.pending_ttl / 3))

    def _housekeeping(self) -> None:
        cutoff = now_s() - self.settings.pending_ttl
        for fqdn in self.registry.delete_expired_pending(cutoff):
            logs.decision(self.log, "expire", who=fqdn, why="pending request not decided in time")
        self.seen_store.forget_before(_now_ms() - self.receiver.window_ms)

    def _answer_deferred(
        self, poller: zmq.Poller, control: ControlServer, answer: dict[str, Any]
    ) -> None:
        if self.deferred is not None:
            self.deferred.answer(answer)
            self.deferred = None
        poller.register(control, zmq.POLLIN)

    def _on_control(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request.get("op")
        if op == "ping":
            return self._ping_answer()
        if op == "status":
            # Built here, where its modules are loaded already, so that the command line
            # starts with none of them (a status is mostly its process start-up).
            return status_report.answer_for_control(
                lambda: status.report(self.paths, self._ping_answer()), self.log
            )
        if op == "activate":
            fqdn = str(request.get("fqdn", ""))
            proxy = self.registry.proxy(fqdn)
            if proxy is None or proxy.state is not EngineState.INSTALLED:
                return {"ok": False, "error": f"{fqdn} is not waiting for activation"}
            self._start_activation(proxy)
            return {"ok": True}
        if op == "live":
            return self._start_live(request)
        if op == "renew":
            return {
                "ok": True,
                "notified": self._push(
                    str(request.get("fqdn", "")),
                    cat.RENEW_NOW,
                    "An operator asked for renewal now.",
                ),
            }
        if op == "rotate":
            return self._start_rotation(request)
        if op == "revoked":
            return {"ok": True, "notified": self._push_revoke(str(request.get("fqdn", "")))}
        return {"ok": False, "error": f"unknown operation {op!r}"}

    def _ping_answer(self) -> dict[str, Any]:
        return {
            "ok": True,
            "pid": os.getpid(),
            "listen": self.settings.listen,
            "fingerprint": self.fingerprint,
            "started_at": self.started_at,
            "activating": sorted(self.activating),
        }

    def _start_live(self, request: dict[str, Any]) -> dict[str, Any] | None:
        timeout = min(max(float(request.get("timeout", 3)), 0.1), 30.0)
        if "fqdn" in request:
            one = self.registry.proxy(str(request["fqdn"]))
            if one is None or one.state not in TRUSTED_STATES:
                return {"ok": False, "error": f"{request['fqdn']} is not an enrolled proxy"}
            asking: list[Proxy | KeyHolder] = [one]
        else:
            asking = [p for p in self.registry.key_holders() if p.state in TRUSTED_STATES]
        self.live = LiveQuery(time.monotonic() + timeout)
        for proxy in asking:
            pushed_at = time.monotonic()
            # Not there (None) counts as no answer.
            self.live.expect(
                proxy.fqdn, self._push_to(proxy, Reply(cat.STATUS_QUERY, {})), pushed_at
            )
        return None  # answered from the loop when every proxy answered or time is up

    # rotation of the engine's own keys
    def _start_rotation(self, request: dict[str, Any]) -> dict[str, Any] | None:
        trusted = [p for p in self.registry.proxies() if p.state in TRUSTED_STATES]
        not_connected = sorted(p.fqdn for p in trusted if not self._reachable(p))
        if not_connected and not request.get("force"):
            return {
                "ok": False,
                "error": (
                    f"Not connected now: {', '.join(not_connected)}. They could not follow the "
                    "new keys and would need a fresh token; start their agents and try again, "
                    "or use --force."
                ),
            }
        timeout = min(max(float(request.get("timeout", 30)), 1.0), 600.0)
        keys = rotation.prepare(self.paths)
        self.rotation = Rotation(keys, time.monotonic() + timeout, not_connected)
        body: dict[str, Value] = {
            "identity_key": identity.public_raw(keys.identity),
            "curve_key": transport.curve_to_raw(keys.curve_public),
        }
        for proxy in trusted:
            if proxy.fqdn in not_connected:
                continue
            sent = self._push_to(proxy, Reply(cat.ENGINE_KEY_ROTATION, body))
            if sent is None:
                self.rotation.not_connected.append(proxy.fqdn)
            else:
                self.rotation.asked[sent] = proxy.fqdn
        self.log.info("rotation_announced", to=sorted(self.rotation.asked.values()))
        return None  # answered from the loop once every proxy followed or time is up

    def _reachable(self, proxy: Proxy) -> bool:
        """Whether a push reaches it now: a route learnt earlier may belong to a gone peer
        (a finished 'proxy join'), which only a send can tell (ROUTER_MANDATORY)."""
        return self._push_to(proxy, Reply(cat.STATUS_QUERY, {})) is not None

    def _finish_rotation(
        self, ctx: zmq.Context[Any], poller: zmq.Poller, done: Rotation
    ) -> dict[str, Any]:
        rotation.commit(self.paths)
        self.key = done.keys.identity
        self.fingerprint = done.keys.fingerprint
        self.receiver = self._receiver()
        self._record_rotation("operator", "engine rotate-keys", done.followed, done.missed())
        poller.unregister(self.sock)
        self.sock.close()
        self.sock = self._bind(ctx)
        poller.register(self.sock, zmq.POLLIN)
        self.routes.clear()  # every proxy reconnects to the new socket and is learnt again
        return {
            "ok": True,
            "fingerprint": self.fingerprint,
            "followed": sorted(done.followed),
            "missed": done.missed(),
        }

    def _record_rotation(
        self, actor: str, why: str, followed: list[str], missed: list[str]
    ) -> None:
        self.registry.set_meta("fingerprint", self.fingerprint)
        self.registry.audit(actor, "rotate-keys", None, self.fingerprint, why)
        logs.decision(
            self.log,
            "rotate",
            who=self.fingerprint,
            why=why,
            followed=followed,
            missed=missed,
        )

    def _push_revoke(self, fqdn: str) -> bool:
        proxy = self.registry.proxy(fqdn)
        if proxy is None or proxy.state is not EngineState.REVOKED:
            return False
        pushed = self._push(fqdn, cat.REVOKE_NOTICE, "An operator revoked this proxy's key.")
        self.routes.pop(proxy.fingerprint, None)
        if pushed:
            logs.decision(
                self.log, "revoke", who=proxy.fingerprint, why="revoke notice pushed", fqdn=fqdn
            )
        return pushed

    def _push(self, fqdn: str, msg_type: str, reason: str) -> bool:
        """Send to a proxy where it last spoke from; False when it has no known route."""
        proxy = self.registry.proxy(fqdn)
        if proxy is None:
            return False
        return self._push_to(proxy, Reply(msg_type, {"reason": reason})) is not None


def _activation_reply(
    proxy: Proxy, activated: bool | None = None, reason: str | None = None
) -> Reply:
    is_active = proxy.state is EngineState.ACTIVE if activated is None else activated
    if reason is None and not is_active:
        reason = proxy.activation_error or (
            "the token said --no-activate" if not proxy.activate else f"engine state {proxy.state}"
        )
    body: dict[str, Any] = {"activated": is_active, "websocket_proxy": f"{proxy.fqdn}:{proxy.port}"}
    if reason:
        body["reason"] = reason
    return Reply(cat.ACTIVATION_DONE, body)


def _error_reply(exc: ProtocolError) -> Reply:
    # Sentences may quote what the sender sent; the answer stays within the schema's bound.
    message = exc.sentence
    if len(message) > cat.REASON.max_len:
        message = message[: cat.REASON.max_len - 1] + "…"
    return Reply(cat.ERROR, {"code": exc.code.value, "message": message})


def _peer(frame: zmq.Frame) -> str:
    """The address a message came from (libzmq's per-connection metadata)."""
    try:
        address = frame.get("Peer-Address")
    except zmq.ZMQError:
        address = None
    return _peer_of(address if isinstance(address, str) else None)


# Parsing an address costs more than a message's other bookkeeping, and a fleet sends from
# the same few thousand addresses again and again. Pure functions of their argument, cached
# in bounded memory; the key cache holds only keys the registry trusted when first asked, and
# trust itself is asked of the registry for every message.
_peer_of = functools.lru_cache(maxsize=4096)(peer_of)
_public_key = functools.lru_cache(maxsize=4096)(identity.public_from_raw)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

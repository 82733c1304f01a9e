"""``wsproxy-agent proxy run``: stays connected to the engine and answers it.

It heartbeats (so the engine knows it is alive and can push to it) and answers pushed
status queries. Renewal joins this loop in the lifecycle work; the loop is built to host
more timed jobs beside the heartbeat.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import zmq

from protocol import catalogue as cat
from protocol import identity
from protocol.errors import ProtocolError
from proxy_agent import health, schedule, state
from proxy_agent.join import Join, JoinOptions
from proxy_agent.link import EngineLink
from proxy_agent.settings import ProxySettings
from wsproxy_agent import logs, transport
from wsproxy_agent.errors import AgentError
from wsproxy_agent.keyfiles import load_identity

POLL_S = 0.5
RENEW_TIMEOUT_S = 300.0


class ProxyDaemon:
    def __init__(self, settings: ProxySettings) -> None:
        self.settings = settings
        self.paths = settings.paths
        self.log = logs.get("proxy")
        self.key = load_identity(self.paths.identity_key)
        self._stop = threading.Event()
        self.jitter = schedule.draw_jitter()
        self.renew_failures = 0
        self.next_renewal_try = 0.0
        self.force_renewal = False

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        s = self.settings
        link = EngineLink(
            address=s.engine,
            curve_key=s.engine_curve_raw,
            engine_key=s.engine_identity_raw,
            key=self.key,
            window_ms=s.freshness_window * 1000,
        )
        ctx: zmq.Context[Any] = zmq.Context.instance()
        control = ctx.socket(zmq.REP)
        control.setsockopt(zmq.LINGER, 0)
        transport.bind_private_ipc(control, self.paths.proxy_control)
        self.log.info(
            "proxy_started",
            engine=s.engine,
            fingerprint=identity.fingerprint(self.key),
            pid=os.getpid(),
        )
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_beat:
                    link.send(cat.HEARTBEAT, health.snapshot(s))
                    next_beat = time.monotonic() + s.heartbeat_interval
                self._renew_when_due(link)
                msg = link.receive(POLL_S)
                if msg is not None:
                    self._on_message(link, msg)
                while control.poll(0):
                    control.send_json(self._on_control(control.recv()))
        finally:
            self.log.info("proxy_stopping")
            control.close()
            link.close()
            self.paths.proxy_control.unlink(missing_ok=True)

    def _renew_when_due(self, link: EngineLink) -> None:
        saved = state.load(self.paths.proxy_state)
        if saved.get("enrollment") not in ("active", "enrolled"):
            return
        not_before, not_after = saved.get("not_before"), saved.get("not_after")
        if not isinstance(not_before, int) or not isinstance(not_after, int):
            return
        now = time.time()
        due = schedule.renew_due(not_before, not_after, self.jitter)
        if not self.force_renewal and (now < due or now < self.next_renewal_try):
            return
        self.force_renewal = False  # one push, one attempt; failures then follow the backoff
        self.log.info("renewal_started", not_after=not_after)
        try:
            Join(
                self.settings, JoinOptions(token=None, timeout_s=RENEW_TIMEOUT_S), say=self._say
            ).renew(link)
        except (AgentError, ProtocolError) as exc:
            self.renew_failures += 1
            delay = schedule.retry_delay(self.renew_failures)
            self.next_renewal_try = now + delay
            self.log.error("renewal_failed", why=exc.sentence, retry_in_s=delay)
            return
        self.renew_failures = 0
        self.jitter = schedule.draw_jitter()
        self.log.info("renewal_done", serial=state.load(self.paths.proxy_state).get("serial"))

    def _say(self, line: str) -> None:
        self.log.info("renewal_step", step=line)

    def _on_message(self, link: EngineLink, msg: Any) -> None:
        state.save(self.paths.proxy_state, last_contact=int(time.time()))
        if msg.type == cat.STATUS_QUERY:
            body = {"enrolled": True, "fqdn": self.settings.fqdn, **health.snapshot(self.settings)}
            link.send(cat.STATUS_REPLY, body, re=msg.id)
        elif msg.type == cat.RENEW_NOW:
            self.log.info("renewal_requested", who=msg.sender, why=msg.text("reason"))
            self.force_renewal = True
        elif msg.type == cat.REVOKE_NOTICE:
            reason = msg.text("reason")
            logs.decision(self.log, "revoked", who=msg.sender, why=reason)
            state.save(self.paths.proxy_state, enrollment="revoked", revoked_reason=reason)
        elif msg.type == cat.ERROR:
            self.log.warning("engine_reported_error", **msg.body)
        else:
            self.log.info("message_ignored", type=msg.type)

    def _on_control(self, raw: bytes) -> dict[str, Any]:
        try:
            request = json.loads(raw)
        except ValueError:
            return {"ok": False, "error": "not JSON"}
        if isinstance(request, dict) and request.get("op") == "ping":
            return {
                "ok": True,
                "pid": os.getpid(),
                "engine": self.settings.engine,
                "jitter": self.jitter,
            }
        return {"ok": False, "error": "unknown operation"}

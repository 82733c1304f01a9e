"""``wsproxy-agent proxy run``: stays connected to the engine and answers it.

It heartbeats (so the engine knows it is alive and can push to it) and answers pushed
status queries. Renewal joins this loop in the lifecycle work; the loop is built to host
more timed jobs beside the heartbeat.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from protocol import catalogue as cat
from protocol import identity
from protocol.errors import ProtocolError
from protocol.joinstring import b64
from proxy_agent import health, schedule, state, status
from proxy_agent.clock import ClockWatch
from proxy_agent.exclusive import Busy
from proxy_agent.join import Join, JoinOptions, unfinished_since
from proxy_agent.link import EngineLink
from proxy_agent.settings import ProxySettings
from wsproxy_agent import config, logs, sdnotify, status_report
from wsproxy_agent.control import ControlServer
from wsproxy_agent.errors import AgentError
from wsproxy_agent.files import InstallError
from wsproxy_agent.keyfiles import load_identity

POLL_S = 0.5
RELINK_LINGER_MS = 2000
BUSY_RETRY_S = 5.0
RENEW_TIMEOUT_S = 300.0
# Renewals fall due days apart: a look a second is plenty, where the loop, turning once per
# message under a burst of status queries, would otherwise read proxy-state.json each turn.
RENEWAL_LOOK_S = 1.0


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
        self.next_renewal_look = 0.0  # monotonic
        self.failed_at = 0.0
        self.plan: dict[str, int | None] = {}
        self.force_renewal = False
        self.link_up = False
        self.clock = ClockWatch(self.paths, settings.engine, self.log)
        self.health = health.Health()
        self.last_contact = 0  # the second last saved as last_contact

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        s = self.settings
        link = self._open_link()
        control = ControlServer(self.paths.proxy_control)
        self.log.info(
            "proxy_started",
            engine=s.engine,
            fingerprint=identity.fingerprint(self.key),
            pid=os.getpid(),
        )
        systemd = sdnotify.Notifier.from_environ()
        systemd.ready(f"talking to the engine agent at {s.engine}")
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                systemd.keepalive()
                # The first beat after a start goes at once; after a reconnect it is spread.
                if self._follow_link(link) and link.lost_at is not None:
                    next_beat = time.monotonic() + schedule.beat_after_reconnect(
                        s.heartbeat_interval
                    )
                beat_due = link.connected and time.monotonic() >= next_beat
                if beat_due and link.send(cat.HEARTBEAT, self.health.snapshot(s)) is not None:
                    next_beat = time.monotonic() + s.heartbeat_interval
                    self.clock.beat_sent()
                self._renew_when_due(link)
                for pushed in link.take_pushed():  # came while the renewal waited
                    self._on_message(link, pushed)
                msg = link.receive(POLL_S, wake=control)  # a status waits for no poll
                for refused in link.refusals:
                    logs.decision(
                        self.log, "refuse", who=refused.sender or "unknown", why=refused.sentence
                    )
                link.refusals.clear()
                skew = link.take_skew()
                if skew is not None:
                    self.clock.refused(link.skew_sentence(skew), skew.skew_ms)
                if msg is not None:
                    self._on_message(link, msg)
                if self.relink:
                    link.close(linger_ms=RELINK_LINGER_MS)  # let the acknowledgement go out
                    link = self._open_link()
                    next_beat = 0.0  # tell the engine's new socket where we are at once
                while (request := control.take()) is not None:
                    request.answer(self._on_control(request.body))
        finally:
            self.log.info("proxy_stopping")
            systemd.stopping()
            control.close()
            link.close()

    def _open_link(self) -> EngineLink:
        s = self.settings
        self.relink = False
        self.link_up = False
        self.handshakes_seen = 0
        return EngineLink(
            address=s.engine,
            curve_key=s.engine_curve_raw,
            engine_key=s.engine_identity_raw,
            key=self.key,
            window_ms=s.freshness_window * 1000,
        )

    def _follow_link(self, link: EngineLink) -> bool:
        """Log and save the link's changes; True when it has just come (back) up."""
        for delay in link.retry_delays_ms:
            self.log.info("engine_reconnect_scheduled", engine=self.settings.engine, in_ms=delay)
        link.retry_delays_ms.clear()
        # A loss and return between two looks (a restart quicker than a poll) leave
        # ``connected`` as it was; the handshake count still shows the return, which needs
        # its beat: the engine pushes only to where a proxy last spoke from.
        returned = link.handshakes != self.handshakes_seen
        self.handshakes_seen = link.handshakes
        if link.connected == self.link_up and not returned:
            return False
        self.link_up = link.connected
        if not link.connected:
            self.log.warning("engine_link_lost", engine=self.settings.engine)
            self._remember(link_down_since=int(link.lost_at or time.time()))
            return False
        if link.lost_at is None:
            self.log.info("engine_link_up", engine=self.settings.engine)
            self._remember(link_down_since=None)
            return True
        ended = link.restored_at or time.time()
        gap = round(ended - link.lost_at)
        self.log.warning("engine_link_restored", engine=self.settings.engine, gap_s=gap)
        self._remember(
            link_down_since=None,
            last_outage={"from": int(link.lost_at), "to": int(ended), "seconds": gap},
        )
        return True

    def _renew_when_due(self, link: EngineLink) -> None:
        if not self.force_renewal and time.monotonic() < self.next_renewal_look:
            return
        self.next_renewal_look = time.monotonic() + RENEWAL_LOOK_S
        saved = state.load(self.paths.proxy_state)
        if saved.get("enrollment") not in ("active", "enrolled"):
            return
        not_before, not_after = saved.get("not_before"), saved.get("not_after")
        if not isinstance(not_before, int) or not isinstance(not_after, int):
            return
        now = time.time()
        if self.renew_failures and (saved.get("renewed_at") or 0) >= int(self.failed_at):
            self.renew_failures, self.next_renewal_try = 0, 0.0  # 'proxy renew' did it since
        due = schedule.renew_due(not_before, not_after, self.jitter)
        started = unfinished_since(self.settings)
        if started is not None:  # a renewal killed or failed halfway: finish it, do not wait
            due = min(due, started)
        self._save_plan(not_after, due)
        if not self.force_renewal and (now < due or now < self.next_renewal_try):
            return
        self.force_renewal = False  # one push, one attempt; failures then follow the backoff
        self.log.info("renewal_started", not_after=not_after)
        try:
            options = JoinOptions(token=None, timeout_s=RENEW_TIMEOUT_S, wait_for_others_s=0)
            Join(self.settings, options, say=self._say).renew(link)
        except Busy as exc:
            # 'proxy renew' or 'proxy join' is at it; look again on the next turn of the loop.
            self.log.info("renewal_deferred", why=exc.sentence)
            self.next_renewal_try = now + BUSY_RETRY_S
            return
        except (AgentError, ProtocolError) as exc:
            self.renew_failures += 1
            self.failed_at = time.time()
            delay = schedule.retry_delay(self.renew_failures)
            self.next_renewal_try = now + delay
            self.log.error("renewal_failed", why=exc.sentence, retry_in_s=delay)
            return
        self.renew_failures = 0
        self.jitter = schedule.draw_jitter()
        self.log.info("renewal_done", serial=state.load(self.paths.proxy_state).get("serial"))

    def _save_plan(self, not_after: int, due: int) -> None:
        """Keep when the next renewal happens in proxy-state.json, for 'status' to show."""
        plan = {
            "not_after": not_after,
            "due": due,
            "failures": self.renew_failures,
            # A retry waits for both the backoff and the due date of what is installed.
            "next_try": int(max(due, self.next_renewal_try)) if self.renew_failures else None,
        }
        if plan != self.plan:
            self._remember(renewal=plan)
            self.plan = plan

    def _remember(self, **changes: Any) -> None:
        """Save facts for 'status'. A full disk must not stop the daemon: it keeps heartbeating
        and retrying, and the failure goes to the log."""
        try:
            state.save(self.paths.proxy_state, **changes)
        except InstallError as exc:
            self.log.error("state_not_saved", why=exc.sentence, fields=sorted(changes))

    def _say(self, line: str) -> None:
        self.log.info("renewal_step", step=line)

    def _on_message(self, link: EngineLink, msg: Any) -> None:
        now = int(time.time())
        if now != self.last_contact:  # one state write a second, however many messages come
            self._remember(last_contact=now)
            self.last_contact = now
        if msg.type == cat.STATUS_QUERY:
            body = {
                "enrolled": True,
                "fqdn": self.settings.fqdn,
                **self.health.snapshot(self.settings),
            }
            link.send(cat.STATUS_REPLY, body, re=msg.id)
        elif msg.type == cat.RENEW_NOW:
            self.log.info("renewal_requested", who=msg.sender, why=msg.text("reason"))
            self.force_renewal = True
        elif msg.type == cat.REVOKE_NOTICE:
            reason = msg.text("reason")
            logs.decision(self.log, "revoked", who=msg.sender, why=reason)
            self._remember(enrollment="revoked", revoked_reason=reason)
        elif msg.type == cat.ENGINE_KEY_ROTATION:
            self._follow_rotation(link, msg)
        elif msg.type == cat.ERROR:
            self.log.warning("engine_reported_error", **msg.body)
        else:
            self.log.info("message_ignored", type=msg.type)

    def _follow_rotation(self, link: EngineLink, msg: Any) -> None:
        """Pin the engine's new keys: the key we pin signed them, so no token is needed."""
        new_identity, new_curve = msg.blob("identity_key"), msg.blob("curve_key")
        try:
            new_fingerprint = identity.fingerprint(identity.public_from_raw(new_identity))
        except ProtocolError as exc:
            logs.decision(self.log, "refuse", who=msg.sender, why=f"rotation: {exc.sentence}")
            return
        try:
            config.merge_and_write(
                self.paths.proxy_toml,
                config.PROXY_DEFAULTS,
                {
                    "engine_identity_key": b64(new_identity),
                    "engine_curve_key": b64(new_curve),
                    "engine_fingerprint": new_fingerprint,
                },
            )
        except AgentError as exc:
            # Unconfirmed, the engine lists this proxy as one that needs a fresh token.
            self.log.error("rotation_not_followed", why=exc.sentence)
            return
        logs.decision(
            self.log,
            "accept",
            who=msg.sender,
            why="engine key rotation signed by the pinned engine key",
            new_fingerprint=new_fingerprint,
        )
        link.send(cat.ROTATION_ACK, {"pinned": new_fingerprint}, re=msg.id)
        self.settings = ProxySettings.load(self.paths.root)
        self.relink = True

    def _on_control(self, request: dict[str, Any]) -> dict[str, Any]:
        ping = {
            "ok": True,
            "pid": os.getpid(),
            "engine": self.settings.engine,
            "jitter": self.jitter,
        }
        if request.get("op") == "ping":
            return ping
        if request.get("op") == "status":
            # Built here, where its modules are loaded already, so that the command line
            # starts with none of them (a status is mostly its process start-up).
            return status_report.answer_for_control(
                lambda: status.report(self.paths, ping), self.log
            )
        return {"ok": False, "error": "unknown operation"}

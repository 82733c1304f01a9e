"""``proxy serve --workers N``: N processes serving consoles, and a parent that only watches them.

One asyncio process uses one core. The parent does every start-up check, so a bad
certificate or a port in use is still one sentence, then binds N sockets to the proxy's
address with SO_REUSEPORT and forks a worker for each, before any event loop or thread
exists. The kernel spreads new connections evenly over the N sockets; one socket shared by
all would not, since asyncio accepts a whole burst in whichever worker wakes first.

The parent tells systemd READY=1 once every worker listens, passes SIGHUP, SIGTERM and
SIGINT on to the workers, and forks a worker that died again on the same socket, so that the
consoles on the others go on. Workers that keep dying stop the service with exit 1, for
systemd's Restart=on-failure to take over rather than a tight fork loop here.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, NoReturn

import structlog

from console_proxy.server import Consoles, listen_socket, serve_consoles, serving_status
from console_proxy.settings import ServeSettings
from wsproxy_agent import logs, sdnotify
from wsproxy_agent.errors import AgentError

# More deaths than this within RESTART_WINDOW_S stop the service.
RESTARTS_ALLOWED = 5
RESTART_WINDOW_S = 60.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
HANDLED = (*STOP_SIGNALS, signal.SIGHUP, signal.SIGCHLD)
_PR_SET_PDEATHSIG = 1


class WorkersFailing(AgentError):
    """Workers die as fast as they are restarted."""


@dataclass
class Worker:
    index: int
    sock: socket.socket
    pid: int = 0  # 0 once reaped
    ready_fd: int | None = None  # the read end of its pipe, until it says it listens
    listening: bool = False


def run(settings: ServeSettings, count: int) -> int:
    log = logs.get("console_proxy")
    consoles = Consoles.load(settings, log)
    # Without SO_REUSEPORT, so that a port another process holds is refused with the
    # sentence naming ovirt-websocket-proxy, and not quietly shared with it.
    listen_socket(settings).close()
    socks = [listen_socket(settings, reuse_port=True) for _ in range(count)]
    return Supervisor(consoles, socks, log).run()


class Supervisor:
    def __init__(self, consoles: Consoles, socks: list[socket.socket], log: Any) -> None:
        self.consoles = consoles
        self.log = log
        self.workers = [Worker(index, sock) for index, sock in enumerate(socks)]
        self.systemd = sdnotify.Notifier.from_environ()
        self.selector = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.deaths: collections.deque[float] = collections.deque()
        self.stopping = False
        self.ready_sent = False
        self.failure: str | None = None
        self.wake_r, self.wake_w = os.pipe()
        self.pid = os.getpid()

    def run(self) -> int:
        os.set_blocking(self.wake_w, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        signal.set_wakeup_fd(self.wake_w)
        for signum in HANDLED:
            signal.signal(signum, self._received)
        for worker in self.workers:
            self._fork(worker)
        while not self.stopping or any(w.pid for w in self.workers):
            for key, _ in self.selector.select():
                if key.fileobj == self.wake_r:
                    os.read(self.wake_r, 512)
                else:
                    self._heard_from(key.data)
            self._handle_signals()
            self._reap()
        for worker in self.workers:
            worker.sock.close()
        if self.failure is not None:
            raise WorkersFailing(self.failure)
        self.log.info("workers_stopped", workers=len(self.workers))
        return 0

    def _received(self, signum: int, frame: object) -> None:
        # Only noted here: the loop acts on it, never in the middle of its own work.
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGCHLD:
                continue  # _reap looks every time round
            if signum in STOP_SIGNALS and not self.stopping:
                self.log.info("workers_stopping", why=signal.Signals(signum).name)
                self.stopping = True
                self.systemd.stopping()
            self._send_all(signum)

    def _send_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.pid:
                os.kill(worker.pid, signum)

    def _heard_from(self, worker: Worker) -> None:
        assert worker.ready_fd is not None
        said = os.read(worker.ready_fd, 1)
        self._forget_pipe(worker)
        if not said:
            return  # it ended before listening; _reap says how
        worker.listening = True
        if not self.ready_sent and all(w.listening for w in self.workers):
            self.ready_sent = True
            sock = self.workers[0].sock
            self.log.info(
                "console_proxy_listening",
                workers=len(self.workers),
                **self.consoles.listening(sock),
            )
            self.systemd.ready(f"{serving_status(sock)} with {len(self.workers)} workers")

    def _forget_pipe(self, worker: Worker) -> None:
        if worker.ready_fd is not None:
            self.selector.unregister(worker.ready_fd)
            os.close(worker.ready_fd)
            worker.ready_fd = None

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = next((w for w in self.workers if w.pid == pid), None)
            if worker is None:
                continue
            worker.pid, worker.listening = 0, False
            self._forget_pipe(worker)
            how = _how_it_ended(status)
            if self.stopping:
                if how != {"exit_code": 0}:
                    self.log.warning("worker_stop_unclean", worker=worker.index, pid=pid, **how)
                continue
            self.log.warning("worker_died", worker=worker.index, pid=pid, **how)
            self._restart(worker, how)

    def _restart(self, worker: Worker, how: dict[str, Any]) -> None:
        now = time.monotonic()
        self.deaths.append(now)
        while self.deaths[0] < now - RESTART_WINDOW_S:
            self.deaths.popleft()
        if len(self.deaths) <= RESTARTS_ALLOWED:
            self._fork(worker)
            return
        ended = ", ".join(f"{key} {value}" for key, value in how.items())
        # Said once the others have stopped (run raises it), as the last line of the log.
        self.failure = (
            f"{len(self.deaths)} console proxy workers died within {RESTART_WINDOW_S:.0f} s "
            f"(the last: worker {worker.index}, {ended}); stopped the others. The "
            "worker_died and worker_failed lines before this one say more."
        )
        self.stopping = True
        self._send_all(signal.SIGTERM)

    def _fork(self, worker: Worker) -> None:
        ready_r, ready_w = os.pipe()
        # Blocked across fork, so that a signal meant for the worker never runs the
        # parent's handler in it; the worker sets its own before it unblocks them.
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                self._work(worker, ready_w)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)
        os.close(ready_w)
        worker.pid, worker.ready_fd = pid, ready_r
        self.selector.register(ready_r, selectors.EVENT_READ, worker)
        self.log.info("worker_started", worker=worker.index, pid=pid)

    def _work(self, worker: Worker, ready_w: int) -> NoReturn:
        """The worker process: never returns into the parent's code, whatever happens."""
        code = 1
        try:
            self._leave_the_parent(worker)
            structlog.contextvars.bind_contextvars(worker=worker.index)

            def listening() -> None:
                self.log.info("worker_listening", pid=os.getpid())
                os.write(ready_w, b"!")
                os.close(ready_w)

            asyncio.run(serve_consoles(self.consoles, worker.sock, self.log, listening))
            code = 0
        except BaseException:
            self.log.exception("worker_failed")
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _leave_the_parent(self, worker: Worker) -> None:
        # A parent killed outright (SIGKILL) must not leave workers holding the port.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self.pid:
            os._exit(0)  # it was gone before the line above
        signal.set_wakeup_fd(-1)
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for other in self.workers:
            if other is not worker:
                other.sock.close()
            if other.ready_fd is not None:
                os.close(other.ready_fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        # Until its event loop takes SIGHUP over; a reload missed meanwhile is made up at
        # the next connection, which looks at the files' stamps.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def _how_it_ended(status: int) -> dict[str, Any]:
    code = os.waitstatus_to_exitcode(status)
    return {"signal": signal.Signals(-code).name} if code < 0 else {"exit_code": code}

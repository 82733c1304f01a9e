from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from wsproxy_agent import control
from wsproxy_agent.paths import HostPaths
from wsproxy_agent.status_report import answer_for_control, gather, not_set_up, problem, render


def test_each_problem_is_shown_with_the_command_that_fixes_it() -> None:
    report = {
        "role": "proxy",
        "facts": {"renewal": "due 2030-01-01 00:00:00 UTC"},
        "sections": {"last errors": []},
        "problems": [problem("The proxy daemon is not running.", "systemctl start x")],
    }
    text = render(report)
    assert "  renewal  due 2030-01-01 00:00:00 UTC" in text
    assert "last errors:\n  (none)" in text
    assert (
        "needs attention:\n  - The proxy daemon is not running.\n    fix: systemctl start x" in text
    )
    assert render({**report, "problems": []}).endswith("healthy")


def test_a_host_with_no_agent_says_so_in_words(tmp_path: Path) -> None:
    text = render(not_set_up(HostPaths.under(tmp_path)))
    assert text.startswith("no agent set up\n")
    assert "fix: wsproxy-agent engine init" in text


class Log:
    def __init__(self) -> None:
        self.errors: list[tuple[str, dict[str, object]]] = []

    def error(self, event: str, **fields: object) -> None:
        self.errors.append((event, fields))


def daemon(path: Path, answers: dict[str, dict[str, Any]]) -> threading.Thread:
    """A daemon's loop on a real control socket: answers each op it knows, then stops."""
    srv = control.ControlServer(path)

    def loop() -> None:
        left = set(answers)
        try:
            for _ in range(500):
                if not left:
                    return
                request = srv.take()
                if request is None:
                    threading.Event().wait(0.01)
                    continue
                op = request.body["op"]
                request.answer(answers.get(op, {"ok": False, "error": "unknown operation"}))
                left.discard(op)
        finally:
            srv.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def refuse_to_build(ping: dict[str, Any] | None) -> dict[str, Any]:
    raise AssertionError(f"built here although the daemon sent its report (ping {ping})")


def test_the_daemons_report_is_printed_as_it_sent_it(tmp_path: Path) -> None:
    sent = {"role": "engine", "facts": {"daemon": "running (pid 7)"}, "problems": []}
    thread = daemon(tmp_path / "run" / "d.sock", {"status": {"ok": True, "report": sent}})
    assert gather(tmp_path / "run" / "d.sock", refuse_to_build) == sent
    thread.join(5)


def test_a_daemon_that_cannot_build_it_still_counts_as_running(tmp_path: Path) -> None:
    ping = {"ok": True, "pid": 7}
    thread = daemon(tmp_path / "run" / "d.sock", {"status": {"ok": False}, "ping": ping})
    assert gather(tmp_path / "run" / "d.sock", lambda p: {"built here with": p}) == {
        "built here with": ping
    }
    thread.join(5)


def test_an_older_daemon_without_the_operation_still_counts_as_running(tmp_path: Path) -> None:
    ping = {"ok": True, "pid": 7}
    thread = daemon(tmp_path / "run" / "d.sock", {"ping": ping})  # status: unknown operation
    assert gather(tmp_path / "run" / "d.sock", lambda p: {"built here with": p}) == {
        "built here with": ping
    }
    thread.join(5)


def test_no_daemon_means_built_here_with_no_ping(tmp_path: Path) -> None:
    assert gather(tmp_path / "absent.sock", lambda p: {"built here with": p}) == {
        "built here with": None
    }


def test_a_report_that_fails_to_build_is_one_refused_answer_and_one_log_line() -> None:
    log = Log()

    def broken() -> dict[str, Any]:
        raise ValueError("engine.toml is not valid TOML")

    assert answer_for_control(broken, log) == {
        "ok": False,
        "error": "the daemon could not build the report",
    }
    assert log.errors == [
        ("status_report_failed", {"why": "ValueError: engine.toml is not valid TOML"})
    ]
    assert answer_for_control(lambda: {"role": "proxy"}, log) == {
        "ok": True,
        "report": {"role": "proxy"},
    }

"""proxy-state.json: the last error of each step, and telling a join that installed from one
that only failed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from proxy_agent import state


def test_an_error_is_kept_with_its_time_beside_the_other_facts(tmp_path: Path) -> None:
    path = tmp_path / "proxy-state.json"
    state.save(path, serial="ab")
    state.record_error(path, "restart", "the service did not start")
    state.record_error(path, "report", "no answer")
    saved = json.loads(path.read_text())
    assert saved["serial"] == "ab"
    assert saved["errors"]["restart"]["message"] == "the service did not start"
    assert abs(saved["errors"]["restart"]["at"] - time.time()) < 5
    state.clear_error(path, "restart")
    assert set(state.load(path)["errors"]) == {"report"}


def test_clearing_what_is_not_there_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "proxy-state.json"
    state.clear_error(path, "link")
    assert not path.exists()  # a first join that works leaves no file behind before install
    state.save(path, serial="ab")
    before = path.stat().st_mtime_ns
    state.clear_error(path, "link")
    assert path.stat().st_mtime_ns == before


def test_only_an_install_makes_a_host_joined(tmp_path: Path) -> None:
    path = tmp_path / "proxy-state.json"
    assert not state.joined(path)
    state.record_error(path, "link", "no handshake")
    assert not state.joined(path)  # a first join that failed leaves only its error
    state.save(path, enrollment="installed")
    assert state.joined(path)
    path.write_text("{not json")
    assert state.joined(path)  # unreadable: the daemon runs and status says so

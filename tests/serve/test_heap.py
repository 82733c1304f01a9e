"""proxy serve keeps freed heap blocks for reuse before it serves (wsproxy_agent/memtrim.py).

Whether the setting does what it says is tests/test_memtrim.py's; this is that the command
makes it, once, before the one process or the workers it forks start serving.
"""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from console_proxy import server
from console_proxy import workers as worker_processes
from tests.serve.conftest import ServeHost
from wsproxy_agent.cli import main


@pytest.mark.parametrize("workers", ["1", "2"])
def test_proxy_serve_keeps_freed_blocks_before_it_serves(
    serve_host: ServeHost, workers: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_host.install()
    calls: list[str] = []

    def serving(*_: Any) -> int:
        calls.append("serve")
        return 0

    monkeypatch.setattr(server, "keep_freed_blocks", lambda: calls.append("keep"))
    monkeypatch.setattr(server, "run", serving)
    monkeypatch.setattr(worker_processes, "run", serving)
    result = CliRunner().invoke(
        main, ["--root", str(serve_host.root), "proxy", "serve", "--workers", workers]
    )
    assert result.exit_code == 0, result.output
    assert calls == ["keep", "serve"]

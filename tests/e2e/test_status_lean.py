"""``status`` stays on its lean path. With its daemon running it prints the report the daemon
built and loads none of the agents' code; with the daemon down it builds the report from the
registry or the state file itself, and still loads none of the cryptography, logging, message
or daemon code, nor the other commands.

An administrator types it often and monitoring runs it every minute; each of those imports
would add tens of milliseconds to every call (bench/scenarios/status.py measures the whole).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import Hosts, joined

# Run status exactly as the console script does, then list what it loaded.
LOADED_BY_STATUS = """
import json, sys
from wsproxy_agent.cli import main
try:
    main(["--root", sys.argv[1], "status"])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "modules": sorted(sys.modules)}))
"""

NOT_FOR_STATUS = {
    # what signing, sealing and logging need; a status query does none of them
    "cryptography",
    "structlog",
    "msgpack",
    "asyncio",
    "protocol.envelope",
    "wsproxy_agent.logs",
    "wsproxy_agent.transport",
    # the daemons and the other commands
    "engine_agent.daemon",
    "proxy_agent.daemon",
    "engine_agent.cli",
    "proxy_agent.cli",
}
# The engine's status writes nothing: the atomic file writer (hashlib, secrets) stays unloaded.
NOT_FOR_ENGINE_STATUS = NOT_FOR_STATUS | {"wsproxy_agent.files"}
# What the report is built from, which the daemon has loaded already.
# (protocol.names is needed here too: the paths module checks a proxy's name with it.)
BUILT_BY_THE_DAEMON = {
    "engine_agent",
    "proxy_agent",
    "protocol.renewal",
    "protocol.states",
    "sqlite3",
    "tomllib",
}


def loaded_by_status(root: Path) -> tuple[int, str, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", LOADED_BY_STATUS, str(root)], capture_output=True, text=True
    )
    *report, last = proc.stdout.splitlines()
    loaded = json.loads(last)
    return loaded["exit"], "\n".join(report), set(loaded["modules"])


def unwanted(loaded: set[str], packages: set[str]) -> list[str]:
    """Loaded modules that are, or live inside, one of ``packages``."""
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in packages))


def test_with_its_daemon_running_status_loads_none_of_the_agents_code(running: Hosts) -> None:
    h = joined(running)
    h.start_proxy()
    for root, role, fact in ((h.engine, "engine", "fingerprint"), (h.proxy, "proxy", "serial")):
        code, report, loaded = loaded_by_status(root)
        # The real path, not an early error: a full report from a host whose daemon answers.
        assert code == 0 and report.startswith(f"{role} agent"), report
        assert "running (pid" in report and f"  {fact}  " in report, report
        assert unwanted(loaded, NOT_FOR_STATUS | BUILT_BY_THE_DAEMON) == [], f"{role} host"


def test_with_its_daemon_down_status_builds_the_report_and_loads_only_that(
    running: Hosts,
) -> None:
    h = joined(running)  # the proxy daemon is not started; the engine's is stopped below
    for proc in h.daemons:
        proc.terminate()
        proc.wait(timeout=10)
    for root, role, not_needed in (
        (h.engine, "engine", NOT_FOR_ENGINE_STATUS),
        (h.proxy, "proxy", NOT_FOR_STATUS),
    ):
        code, report, loaded = loaded_by_status(root)
        assert code == 1 and report.startswith(f"{role} agent"), report
        assert f"The {role} daemon is not running." in report, report
        assert f"{role}_agent.status" in loaded
        assert unwanted(loaded, not_needed) == [], f"status on the {role} host"

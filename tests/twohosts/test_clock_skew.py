"""The engine host's clock 10 minutes ahead: both sides name the clock skew, nothing is spent.

The engine daemon runs under libfaketime, which shifts only its wall clock (the monotonic
clock stays true, as on a real host whose clock is set wrong). libfaketime is preloaded
directly rather than through faketime(1): that wrapper runs the program as its child and
does not pass signals on, so SIGTERM would stop the wrapper and leave the daemon running.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from tests.e2e.conftest import Hosts, log_events, wait_for
from tests.support.privileged import skip_or_fail
from tests.twohosts.netns import Link

SKEW = "+10m"
# Where Debian's faketime(1) itself loads the library from; ld.so expands $LIB.
LIBFAKETIME = "/usr/$LIB/faketime/libfaketimeMT.so.1"
# Ten minutes, give or take the time a message takes to arrive.
TEN_MINUTES = r"(59[89]|60[0-2]) s"
CERT = "etc/pki/ovirt-engine/certs/websocket-proxy.cer"
KEY = "etc/pki/ovirt-engine/keys/websocket-proxy.key.nopass"


def skewed(offset: str) -> list[str]:
    """A command prefix that runs a program with its wall clock ``offset`` off."""
    return [
        "env",
        f"LD_PRELOAD={LIBFAKETIME}",
        f"FAKETIME={offset}",
        "FAKETIME_DONT_FAKE_MONOTONIC=1",
    ]


def require_faketime() -> None:
    probe = subprocess.run(
        [*skewed(SKEW), sys.executable, "-c", "import time; print(time.time())"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    shifted = probe.returncode == 0 and abs(float(probe.stdout) - time.time() - 600) < 60
    if not shifted:
        skip_or_fail(
            "libfaketime is needed to set the engine's clock wrong "
            f"(Debian package 'faketime'): {probe.stderr.strip() or 'the clock did not move'}"
        )


def skew_refusals(h: Hosts, who: str) -> list[dict[str, object]]:
    return [
        e
        for e in log_events(h.engine_log(), "message_refused")
        if e["who"] == who and e["code"] == "expired"
    ]


def restart_engine(
    h: Hosts, engine: subprocess.Popen[bytes], prefix: list[str]
) -> subprocess.Popen[bytes]:
    """Stop the engine daemon and start it again with ``prefix`` before its commands."""
    engine.terminate()
    engine.wait(timeout=20)
    h.on_host[h.engine] = prefix
    return h.start_engine()


def test_a_join_is_refused_for_clock_skew_and_spends_nothing(
    two_hosts: tuple[Hosts, Link],
) -> None:
    h, _ = two_hosts
    require_faketime()
    h.engine_init()  # the CA is made with the right time; only the daemon's clock is wrong
    true_clock = h.on_host[h.engine]
    h.on_host[h.engine] = [*true_clock, *skewed(SKEW)]
    engine = h.start_engine()
    join_string = h.token()

    started = time.monotonic()
    refused = h.join(join_string)
    took = time.monotonic() - started
    assert refused.returncode == 1, refused.stdout + refused.stderr  # README: refused
    error = refused.stderr
    assert error.startswith("error: Clock skew:") and "Traceback" not in error, error
    assert re.search(TEN_MINUTES + " ahead of this host's clock", error), error
    assert took < 20  # said at once, not after waiting out --timeout (30 s)

    # The engine says the same, with who.
    proxy_key = re.search(r"identity (SHA256:\S+)", refused.stdout)
    assert proxy_key is not None, refused.stdout
    [*_, logged] = skew_refusals(h, proxy_key.group(1))
    assert logged["level"] == "warning"
    assert re.search(TEN_MINUTES + " behind our clock", str(logged["why"])), logged
    assert "clock skew" in str(logged["why"])

    # Nothing spent, signed or installed; the proxy's status says why.
    [token] = json.loads(h.cli(h.engine, "token", "list", "--json", check=True).stdout)
    assert token["state"] == "valid"
    assert h.registry() == []
    assert [a["action"] for a in h.audit() if a["action"] != "token_create"] == []
    assert not h.proxy_file(CERT).exists() and not h.proxy_file(KEY).exists()
    status = h.cli(h.proxy, "status")
    assert status.returncode == 1 and "Clock skew" in status.stdout, status.stdout

    # The clock set right, the same join string works: the token was never used.
    restart_engine(h, engine, true_clock)
    joined = h.join(join_string)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    [row] = h.registry()
    assert row["state"] == "active"


def test_the_engine_clock_jumps_under_a_running_proxy(two_hosts: tuple[Hosts, Link]) -> None:
    h, _ = two_hosts
    require_faketime()
    h.engine_init()
    h.configure(h.engine, heartbeat_interval=2, stale_after_missed=3)
    h.configure(h.proxy, heartbeat_interval=2)
    engine = h.start_engine()
    joined = h.join(h.token())
    assert joined.returncode == 0, joined.stdout + joined.stderr
    h.start_proxy()
    wait_for(lambda: h.registry()[0]["health"] is not None, "a first heartbeat")
    wait_for(lambda: h.cli(h.proxy, "status").returncode == 0, "the proxy to report healthy")
    proxy_key = str(h.registry()[0]["fingerprint"])

    true_clock = h.on_host[h.engine]
    engine = restart_engine(h, engine, [*true_clock, *skewed(SKEW)])

    # Every heartbeat is refused, and the engine's log says why and whose.
    wait_for(lambda: len(skew_refusals(h, proxy_key)) >= 2, "the engine to refuse heartbeats", 40)
    why = str(skew_refusals(h, proxy_key)[-1]["why"])
    assert re.search(TEN_MINUTES + " behind our clock", why) and "clock skew" in why, why
    assert "STALE" in h.cli(h.engine, "status").stdout

    # The proxy learns it from the engine's answers and does not pretend all is well.
    wait_for(
        lambda: log_events(h.proxy_log(), "engine_clock_skew"), "the proxy to see the skew", 40
    )
    [noticed] = log_events(h.proxy_log(), "engine_clock_skew")
    assert re.search(TEN_MINUTES + " ahead of this host's clock", str(noticed["why"])), noticed
    status = h.cli(h.proxy, "status")
    assert status.returncode == 1, status.stdout
    assert "Agreeing on the time with the engine failed" in status.stdout, status.stdout
    assert "set the clock right" in status.stdout

    # The clock set right again: the proxy notices by itself, and the engine hears it.
    restart_engine(h, engine, true_clock)
    wait_for(lambda: log_events(h.proxy_log(), "engine_clock_agrees"), "the proxy to clear it", 40)
    wait_for(lambda: h.cli(h.proxy, "status").returncode == 0, "the proxy to report healthy")
    wait_for(lambda: "STALE" not in h.cli(h.engine, "status").stdout, "the engine to hear it")
    assert len(log_events(h.proxy_log(), "engine_clock_skew")) == 1  # logged once, not per beat

"""Each accept decision in the engine's log says how long the signer took (``signing_ms``).

The signer is oVirt's pki-enroll-request.sh stand-in, held back for a known time through its
``.hang`` hook, so the logged duration can be checked against what the signer really took.
The benchmark of many joins at once reads the signer's share of the engine's time from it.
"""

from __future__ import annotations

import shutil
import time

from tests.e2e.conftest import PROXY_FQDN, STANDINS, Hosts, log_events, log_number, wait_for

HELD_S = 1.5  # well inside the join's 5 s before it sends its request again


def accepts(h: Hosts) -> list[dict[str, object]]:
    decisions = log_events(h.engine_log(), "security_decision")
    return [d for d in decisions if d["decision"] == "accept"]


def test_the_accept_decisions_say_how_long_the_signer_took(hosts: Hosts) -> None:
    h = hosts
    script = h.engine / "usr/share/ovirt-engine/bin/pki-enroll-request.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(STANDINS / "pki-enroll-request.sh", script)
    h.engine_init()
    h.start_engine()
    hang = script.with_name(script.name + ".hang")
    hang.write_text("")
    started = time.monotonic()
    join = h.cli_background(
        h.proxy, "proxy", "join", h.token(), "--fqdn", PROXY_FQDN, "--timeout", "30"
    )
    wait_for(script.with_name(script.name + ".calls").exists, "the engine to call its signer")
    time.sleep(HELD_S)  # the signer's time, which the log must report
    hang.unlink()
    out, err = join.communicate(timeout=60)
    took_ms = (time.monotonic() - started) * 1000
    assert join.returncode == 0, out + err
    [joined] = accepts(h)
    assert HELD_S * 1000 <= log_number(joined["signing_ms"]) < took_ms

    renewed = h.cli(h.proxy, "proxy", "renew")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    [_, renewal] = accepts(h)
    assert renewal["why"] == "renewal"
    assert 0 < log_number(renewal["signing_ms"]) < HELD_S * 1000

"""The proxy daemon SIGKILLed in the middle of installing a renewed certificate.

Each installed file must be whole (the old version or the new one) at the moment of the kill,
the key must match the certificate beside it, and the daemon, started again, must finish the
renewal by itself: with the same request, so the engine signs once.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Hosts, joined, wait_for
from tests.faults.conftest import (
    KEY_NAME,
    Snapshot,
    backups,
    key_matches_cert,
    kill_orphaned,
    pause_daemons_after,
    pending_request,
    proxy_state,
    push_renewal,
    renewals_signed,
    restarts,
    serial_of,
    sigkill,
    snapshot,
    stray_temps,
)


def finish_after_restart(h: Hosts, old: Snapshot, at_kill: Snapshot) -> None:
    """Start the daemon again and check it completes the interrupted renewal, once."""
    restarted_before = restarts(h)
    h.start_proxy()
    wait_for(lambda: '"renewal_done"' in h.proxy_log(), "the daemon to finish the renewal", 60)
    new = snapshot(h)
    assert new["cert"] != old["cert"] and new["tls_key"] != old["tls_key"]
    assert key_matches_cert(new)
    for name, content in at_kill.items():  # whole files only: never a mix of the two
        assert content in (old[name], new[name]), f"{name} was neither old nor new at the kill"
    assert restarts(h) == restarted_before + 1
    [row] = h.registry()
    assert row["serial"] == serial_of(new) == proxy_state(h)["serial"]
    assert row["state"] == "active"
    assert renewals_signed(h) == 1  # the retry asked with the same CSR: no second signing
    assert backups(h)["cert"] == old["cert"]  # the backup is the certificate before the renewal
    assert not pending_request(h)
    assert not stray_temps(h)


def test_killed_between_two_file_writes(running: Hosts, monkeypatch: pytest.MonkeyPatch) -> None:
    h = joined(running)
    old = snapshot(h)
    hold = pause_daemons_after(monkeypatch, h, KEY_NAME)  # the key is written, the cert not yet
    daemon = h.start_proxy()
    push_renewal(h)
    wait_for(hold.exists, "the daemon to write the new TLS key", 60)
    sigkill(daemon)

    at_kill = snapshot(h)
    assert key_matches_cert(at_kill)
    assert at_kill == old  # nothing replaced until every new file is safely on disk
    assert renewals_signed(h) == 1
    monkeypatch.delenv("WSPROXY_AGENT_TEST_PAUSE_AFTER")
    finish_after_restart(h, old, at_kill)


def test_killed_while_the_service_restarts(running: Hosts) -> None:
    h = joined(running)
    old = snapshot(h)
    daemon = h.start_proxy()
    h.systemctl_proxy.hang()  # files installed, restart under way when the kill lands
    restarted = restarts(h)
    push_renewal(h)
    wait_for(lambda: restarts(h) > restarted, "the daemon to restart the proxy service", 60)
    sigkill(daemon)

    at_kill = snapshot(h)
    assert key_matches_cert(at_kill)
    assert at_kill["cert"] != old["cert"]  # the new files are in place
    kill_orphaned(h.systemctl_proxy)
    h.systemctl_proxy.heal()
    finish_after_restart(h, old, at_kill)

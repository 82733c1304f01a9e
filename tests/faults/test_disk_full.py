"""The proxy host's disk full during a renewal: a tmpfs as its root, filled to the last byte.

The renewal must stop with a sentence about space (never a traceback), leave every installed
file byte for byte as it was and no temp file behind, report nothing to the engine as
installed, and succeed when it is retried after space was freed.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Hosts, joined, wait_for
from tests.faults.conftest import (
    KEY_NAME,
    backups,
    key_matches_cert,
    pause_daemons_after,
    pending_request,
    proxy_state,
    push_renewal,
    release,
    renewals_signed,
    restarts,
    serial_of,
    snapshot,
    stray_temps,
)
from tests.support.privileged import fill


def renewal_failures(h: Hosts) -> list[dict[str, object]]:
    return [json.loads(x) for x in h.proxy_log().splitlines() if '"renewal_failed"' in x]


def test_disk_full_before_proxy_renew(proxy_on_tmpfs: Hosts) -> None:
    h = joined(proxy_on_tmpfs)
    old, old_backups, restarted = snapshot(h), backups(h), restarts(h)
    filler = fill(h.proxy)

    result = h.cli(h.proxy, "proxy", "renew")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: No space left on " in result.stderr and "Free space" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(h) == old and backups(h) == old_backups
    assert not stray_temps(h)
    assert restarts(h) == restarted
    assert renewals_signed(h) == 0  # it stopped before asking the engine
    assert h.registry()[0]["serial"] == serial_of(old)

    filler.unlink()
    again = h.cli(h.proxy, "proxy", "renew")
    assert again.returncode == 0, again.stdout + again.stderr
    new = snapshot(h)
    assert new["cert"] != old["cert"] and key_matches_cert(new)
    assert backups(h)["cert"] == old["cert"]
    assert h.registry()[0]["serial"] == serial_of(new)


def test_disk_fills_up_while_the_daemon_installs(
    proxy_on_tmpfs: Hosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = joined(proxy_on_tmpfs)
    old, old_backups, restarted = snapshot(h), backups(h), restarts(h)
    hold = pause_daemons_after(monkeypatch, h, KEY_NAME)
    h.start_proxy()
    push_renewal(h)
    wait_for(hold.exists, "the daemon to write the new TLS key", 60)
    filler = fill(h.proxy)  # the rest of the install finds the disk full
    release(hold)

    wait_for(lambda: renewal_failures(h), "the renewal to fail", 60)
    [failure] = renewal_failures(h)
    assert str(failure["why"]).startswith("No space left on ")
    assert snapshot(h) == old and backups(h) == old_backups
    assert not stray_temps(h)
    assert restarts(h) == restarted
    assert "reported to the engine" not in h.proxy_log()  # no install report was sent
    assert "proxy_install_failed" not in h.engine_log()
    signed = h.registry()[0]["serial"]
    assert renewals_signed(h) == 1 and signed != serial_of(old)
    assert proxy_state(h)["serial"] == serial_of(old)
    assert pending_request(h)

    # Full to the last byte again (the failed attempt freed its temp files): the daemon must
    # take the next push, fail the same way, and stay up.
    more = fill(h.proxy / "var")
    push_renewal(h)
    wait_for(lambda: len(renewal_failures(h)) == 2, "the second attempt to fail", 60)
    assert str(renewal_failures(h)[1]["why"]).startswith("No space left on ")
    assert snapshot(h) == old and not stray_temps(h)

    more.unlink()
    filler.unlink()
    push_renewal(h)
    wait_for(lambda: '"renewal_done"' in h.proxy_log(), "the renewal after space was freed", 60)
    new = snapshot(h)
    assert key_matches_cert(new) and serial_of(new) == signed
    assert renewals_signed(h) == 1  # the same request all along: signed once
    assert backups(h)["cert"] == old["cert"]
    assert restarts(h) == restarted + 1
    assert not pending_request(h) and not stray_temps(h)

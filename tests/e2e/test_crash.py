"""A join killed mid-way finishes when run again, with the certificate already issued.

The engine daemon killed mid-enrollment, -renewal and -activation: tests/twohosts/
test_engine_crash.py (the engine and the proxy on two hosts).
"""

from __future__ import annotations

from tests.e2e.conftest import PROXY_FQDN, Hosts, wait_for


def test_join_killed_after_install_can_simply_run_again(running: Hosts) -> None:
    h = running
    join_string = h.token()
    h.systemctl_proxy.hang()  # the join will be restarting the proxy service when killed
    join = h.cli_background(
        h.proxy, "proxy", "join", join_string, "--fqdn", PROXY_FQDN, "--timeout", "60"
    )
    wait_for(lambda: len(h.systemctl_proxy.calls) >= 1, "the join to restart the proxy service")
    join.kill()
    join.wait(timeout=10)
    [first] = h.registry()
    h.systemctl_proxy.heal()

    again = h.join(join_string)  # the same, now used, token: the same request, answered again
    assert again.returncode == 0, again.stdout + again.stderr
    [after] = h.registry()
    assert after["serial"] == first["serial"] and after["state"] == "active"
    delivered = (h.proxy / "etc/pki/ovirt-engine/certs/websocket-proxy.cer").read_text()
    assert delivered == after["cert_pem"]
    assert not list((h.proxy / "var/lib/wsproxy-agent").glob("pending-*"))

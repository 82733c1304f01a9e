"""The engine daemon killed (SIGKILL) mid-enrollment: the join still finishes, once."""

from __future__ import annotations

from tests.e2e.conftest import PROXY_FQDN, Hosts, wait_for


def test_engine_killed_during_activation_and_restarted(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    engine = h.start_engine()
    h.engine_config.hang()  # the engine will be stuck in engine-config when we kill it
    join = h.cli_background(
        h.proxy, "proxy", "join", h.token(), "--fqdn", PROXY_FQDN, "--timeout", "90"
    )
    wait_for(lambda: len(h.engine_config.calls) >= 1, "the engine to start switching over")
    [before] = h.registry()
    assert before["state"] == "installed"
    h.kill_engine(engine)
    h.engine_config.heal()
    h.start_engine()

    out, err = join.communicate(timeout=90)
    assert join.returncode == 0, out + err
    assert "engine switched over" in out
    [after] = h.registry()
    assert after["state"] == "active" and after["active"] == 1
    assert after["serial"] == before["serial"]  # one certificate for the one request
    issued = [a for a in h.audit() if a["action"] in ("request_with_token", "sign")]
    assert len(issued) == 1
    sets = [args for _, args in h.engine_config.calls if args[0] == "-s"]
    assert sets == [["-s", f"WebSocketProxy={PROXY_FQDN}:6100"]]
    assert after["replaced_value"] == "Engine:6100"


def test_engine_killed_while_a_request_is_pending(hosts: Hosts) -> None:
    h = hosts
    h.engine_init()
    engine = h.start_engine()
    join = h.start_pending_join(timeout="90")
    wait_for(lambda: any(r["state"] == "pending" for r in h.registry()), "a pending request")
    h.kill_engine(engine)
    h.start_engine()
    h.cli(h.engine, "keys", "accept", PROXY_FQDN, check=True)
    out, err = join.communicate(timeout=90)
    assert join.returncode == 0, out + err
    [row] = h.registry()
    assert row["state"] == "active"
    assert len([a for a in h.audit() if a["action"] == "sign"]) == 1


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

"""Identity claims: a proxy (enrolled or not) asking for a name that is not its own.

The victim is the target's enrolled proxy, proxy.e2e.test. The attacker of the first tests
is itself an accepted proxy, rogue.e2e.test, enrolled with its own token from its own key:
the strongest position short of stealing a key. Each test runs against both signers, so
"nothing issued" also covers oVirt's CA database (database.txt, serial.txt and the issued
certificate files the script writes), which the snapshot hashes with every other file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol import catalogue as cat
from tests.attacks.conftest import Snapshot, Target
from tests.attacks.enrol import (
    answer,
    assert_refused,
    fresh_token,
    planted_token,
    send_enroll,
    shared_target,
    source,
    token_states,
)
from tests.e2e.conftest import ENGINE_FQDN, PROXY_FQDN
from tests.e2e.rawclient import RawProxy, csr, tls_key

ROGUE_FQDN = "rogue.e2e.test"
# The columns a refused renewal writes on the renewing proxy's own row, for its operator.
NOTE_COLUMNS = ("last_error", "last_error_at")


@pytest.fixture(scope="module", params=["native", "ovirt"])
def world(request: pytest.FixtureRequest) -> Iterator[Target]:
    with shared_target(request.param) as t:
        yield t


@pytest.fixture(scope="module")
def rogue_key(world: Target) -> object:
    """rogue.e2e.test, enrolled with its own token: an accepted proxy turned attacker."""
    client = world.attacker(source=source(10))
    sent = send_enroll(
        client, csr(tls_key("ec"), ROGUE_FQDN), ROGUE_FQDN, fresh_token(world, ROGUE_FQDN)
    )
    reply = answer(client, sent)
    assert reply.type == cat.ENROLL_APPROVED, reply
    return client.key


def rogue(world: Target, rogue_key: object, n: int) -> RawProxy:
    return world.attacker(rogue_key, source=source(n))


def assert_nothing_issued(world: Target, before: Snapshot) -> None:
    world.assert_serves_legit()
    world.assert_unchanged(before)


def test_enrolled_proxy_cannot_claim_another_name_without_a_token(
    world: Target, rogue_key: object
) -> None:
    before = world.snapshot()
    client = rogue(world, rogue_key, 11)
    sent = send_enroll(client, csr(tls_key("ec"), PROXY_FQDN), PROXY_FQDN)
    assert_refused(answer(client, sent), "unauthorized", "registered to another key")
    assert_nothing_issued(world, before)


def test_token_for_its_own_name_does_not_open_another_name(
    world: Target, rogue_key: object
) -> None:
    token = fresh_token(world, ROGUE_FQDN)
    before = world.snapshot()
    client = rogue(world, rogue_key, 12)
    sent = send_enroll(client, csr(tls_key("ec"), PROXY_FQDN), PROXY_FQDN, token)
    assert_refused(answer(client, sent), "unauthorized", f"was made for {ROGUE_FQDN}")
    assert token_states(world)[token.id] == ("valid", 0)
    assert_nothing_issued(world, before)


def test_token_for_its_own_name_with_a_csr_for_another_name(
    world: Target, rogue_key: object
) -> None:
    """The message names the token's fqdn, the CSR the victim's: a request made for another
    name is refused, not quietly signed under the token's name."""
    token = fresh_token(world, ROGUE_FQDN)
    before = world.snapshot()
    client = rogue(world, rogue_key, 13)
    sent = send_enroll(client, csr(tls_key("ec"), PROXY_FQDN), ROGUE_FQDN, token)
    assert_refused(
        answer(client, sent), "bad_request", f"names CN={PROXY_FQDN}", f"not {ROGUE_FQDN}"
    )
    assert token_states(world)[token.id] == ("valid", 0)
    assert_nothing_issued(world, before)


@pytest.mark.parametrize(
    ("cn", "sans", "named", "n"),
    [
        (PROXY_FQDN, [PROXY_FQDN], f"CN={PROXY_FQDN}", 14),
        (ROGUE_FQDN, [PROXY_FQDN], f"DNS:{PROXY_FQDN}", 15),
        (PROXY_FQDN, [ROGUE_FQDN], f"CN={PROXY_FQDN}", 16),
    ],
    ids=["cn-and-san", "san", "cn"],
)
def test_renewal_cannot_name_another_proxy(
    world: Target, rogue_key: object, cn: str, sans: list[str], named: str, n: int
) -> None:
    before = world.snapshot()
    client = rogue(world, rogue_key, n)
    sent = client.send(cat.RENEW_REQUEST, {"csr": csr(tls_key("ec"), cn, sans=sans)})
    assert_refused(answer(client, sent), "bad_request", named, f"not {ROGUE_FQDN}")
    world.assert_serves_legit()
    # The refusal is noted on the renewing proxy's own row for its operator; nothing else.
    after = world.snapshot()
    [note] = [r for r in after.rows["proxies"] if r["fqdn"] == ROGUE_FQDN]
    assert "renewal refused" in str(note["last_error"]), note
    assert _without_notes(after) == _without_notes(before), "the registry changed"
    assert after.files == before.files, "files changed on a host"
    assert after.calls == before.calls, "a command ran"


def _without_notes(snapshot: Snapshot) -> list[dict[str, object]]:
    return (
        [
            {k: v for k, v in row.items() if k not in NOTE_COLUMNS}
            for row in snapshot.rows["proxies"]
        ]
        + snapshot.rows["tokens"]
        + snapshot.rows["meta"]
    )


# The engine's own name.


def test_engine_fqdn_cannot_be_taken_without_a_token(world: Target) -> None:
    before = world.snapshot()
    client = world.attacker(source=source(20))
    sent = send_enroll(client, csr(tls_key("ec"), ENGINE_FQDN), ENGINE_FQDN)
    assert_refused(answer(client, sent), "unauthorized", "the engine's own")
    assert_nothing_issued(world, before)


@pytest.mark.parametrize("typed", [ENGINE_FQDN, "Engine.E2E.test."])
def test_token_create_refuses_the_engine_fqdn(world: Target, typed: str) -> None:
    before = world.snapshot()
    result = world.hosts.cli(world.engine_root, "token", "create", "--proxy", typed)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{ENGINE_FQDN} is the engine's own name" in result.stderr, result.stderr
    assert "wsproxy://" not in result.stdout
    world.assert_unchanged(before)


def test_engine_fqdn_cannot_be_taken_with_a_token_made_for_it(world: Target) -> None:
    """A token for the engine's name that got into the registry anyway (see
    :func:`planted_token`) still opens nothing: the engine refuses its own name first."""
    token = planted_token(world, ENGINE_FQDN)
    before = world.snapshot()
    client = world.attacker(source=source(21))
    sent = send_enroll(client, csr(tls_key("ec"), ENGINE_FQDN), ENGINE_FQDN, token)
    assert_refused(answer(client, sent), "unauthorized", "the engine's own")
    assert token_states(world)[token.id] == ("valid", 0)
    assert_nothing_issued(world, before)

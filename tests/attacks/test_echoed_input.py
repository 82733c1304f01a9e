"""Refusals whose sentence echoes what the sender sent: the answer must still fit the error
message's own schema (``message`` is at most 1000 characters), or the engine cannot seal it.

Before the sentences were bounded, each of these stopped the engine daemon with one
message from an unknown key ("error: Field 'message' is longer than 1000 characters").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from protocol import catalogue as cat
from tests.attacks.conftest import Target
from tests.attacks.enrol import answer, assert_refused, send_enroll, shared_target, source
from tests.attacks.forge import envelope, signed
from tests.e2e.rawclient import csr, enroll_body, tls_key

MESSAGE_LIMIT = 1000
# The longest name DNS allows: every label fine, 253 characters in all.
LONGEST_NAME = ".".join(["a" * 63] * 3 + ["a" * 61])


@pytest.fixture(scope="module")
def world() -> Iterator[Target]:
    with shared_target() as t:
        yield t


def test_a_long_unknown_field_name_is_refused_in_a_short_sentence(world: Target) -> None:
    before = world.snapshot()
    client = world.attacker(source=source(10))
    fqdn = "long-field.e2e.test"
    body = {**enroll_body(client, csr(tls_key("ec"), fqdn), fqdn), "k" * 1100: 1}
    env = envelope(client, cat.ENROLL_REQUEST, body)
    client.send_frames(signed(client.key, env))

    reply = answer(client, bytes(env["id"]))
    assert_refused(reply, "bad_request", "is not part of this message type")
    assert len(str(reply.body["message"])) <= MESSAGE_LIMIT
    world.assert_serves_legit()
    world.assert_unchanged(before)


def test_a_csr_for_other_long_names_is_refused_in_a_short_sentence(world: Target) -> None:
    """The longest fqdn, with a CSR naming other long names: the sentence names both."""
    assert len(LONGEST_NAME) == 253
    others = [f"{c * 60}.{c * 60}.{c * 60}.{c * 60}.example" for c in "bcdef"]
    request = csr(tls_key("ec"), "b.example", sans=others)
    before = world.snapshot()
    client = world.attacker(source=source(11))

    reply = answer(client, send_enroll(client, request, LONGEST_NAME))
    assert_refused(reply, "bad_request", "names CN=b.example, DNS:bbbb", f"not {LONGEST_NAME}")
    assert len(str(reply.body["message"])) <= MESSAGE_LIMIT
    world.assert_serves_legit()
    world.assert_unchanged(before)

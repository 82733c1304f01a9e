"""The engine's allow-list: which types and versions it reads at all, and from whom.

Every refusal here comes before the signature would make the sender known, so the engine
answers none of them (tests/attacks/forge.assert_silent); its log says which check refused
each message, and that is what tells one refusal from another.
"""

from __future__ import annotations

from protocol import catalogue as cat
from protocol.codec import Value
from protocol.envelope import seal
from tests.attacks.conftest import Target
from tests.attacks.forge import Refusals, assert_silent, envelope, now_ms, signed
from tests.e2e.rawclient import csr, tls_key
from tests.support.fleet import HEALTHY

NO_SIGNATURE = bytes(64)


def type_refusals(found: list[tuple[str, str]]) -> list[str]:
    """Which types the refusals name, for refusals by the type allow-list; else the refusal."""
    return [
        why.split("does not accept messages of type ")[-1].strip("'.")
        if code == "bad_request" and "does not accept messages of type" in why
        else f"{code}: {why}"
        for code, why in found
    ]


def test_unknown_type_is_refused_before_its_signature_is_looked_at(target: Target) -> None:
    before = target.snapshot()
    legit = target.legit()
    attacker = target.attacker()
    refusals = Refusals(target, legit.fp)
    # In the enrolled proxy's name, whose key the engine holds, with a signature that cannot
    # verify: were the signature looked at first, this would be refused as a bad signature.
    forged = envelope(attacker, "give_me_root", {"please": True}, **{"from": legit.fp})
    attacker.send_frames([signed(attacker.key, forged)[0], NO_SIGNATURE])

    assert_silent(attacker)
    assert type_refusals(refusals.wait(1)) == ["give_me_root"]
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_types_the_engine_never_accepts_are_refused_even_when_signed(target: Target) -> None:
    before = target.snapshot()
    legit = target.legit()  # the trusted proxy itself, signing with its own key
    refusals = Refusals(target, legit.fp)
    engine_bound_never: dict[str, dict[str, Value]] = {
        cat.ENGINE_KEY_ROTATION: {"identity_key": bytes(32), "curve_key": bytes(32)},
        cat.STATUS_QUERY: {},
        cat.REVOKE_NOTICE: {"reason": "forged"},
        cat.RENEW_NOW: {"reason": "forged"},
    }
    for msg_type, body in engine_bound_never.items():
        legit.send(msg_type, body)

    assert_silent(legit)
    assert type_refusals(refusals.wait(len(engine_bound_never))) == list(engine_bound_never)
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_enrolled_only_types_from_an_unenrolled_key_are_refused(target: Target) -> None:
    before = target.snapshot()
    stranger = target.attacker()  # a key the engine never enrolled, signing correctly
    refusals = Refusals(target, stranger.fp)
    enrolled_only = {
        cat.HEARTBEAT: HEALTHY,
        cat.INSTALL_REPORT: {"ok": True, "serial": target.enrolled()["serial"]},
        cat.RENEW_REQUEST: {"csr": csr(tls_key("ec"), "stranger.e2e.test")},
    }
    for msg_type, body in enrolled_only.items():
        stranger.send(msg_type, body)

    assert_silent(stranger)
    assert refusals.wait(len(enrolled_only)) == [
        ("unauthorized", f"No key is held for {stranger.fp}; a {t} needs an enrolled sender.")
        for t in enrolled_only
    ]
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_versions_outside_ours_are_refused_before_the_signature(target: Target) -> None:
    before = target.snapshot()
    legit = target.legit()
    refusals = Refusals(target, legit.fp)
    newer = cat.PROTOCOL_VERSION + 1
    for version in (0, newer):
        sealed = seal(
            legit.key,
            cat.HEARTBEAT,
            HEALTHY,
            recipient=legit.engine_fp,
            now_ms=now_ms(),
            version=version,
        )
        legit.send_frames(list(sealed.frames))
    # The same with a signature that cannot verify: still the version refusal.
    unsigned = envelope(legit, cat.HEARTBEAT, HEALTHY, v=newer)
    legit.send_frames([signed(legit.key, unsigned)[0], NO_SIGNATURE])

    assert_silent(legit)
    below = "Protocol v0 is below this receiver's minimum v1; upgrade the sending agent."
    above = f"Protocol v{newer} is newer than this receiver's v1; upgrade this agent."
    assert refusals.wait(3) == [("version", below), ("version", above), ("version", above)]
    target.assert_serves_legit()
    target.assert_unchanged(before)

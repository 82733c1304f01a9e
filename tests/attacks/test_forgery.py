"""Forged messages: a genuine message altered after signing, a trusted key speaking for
another proxy, and, on the proxy's side, engine answers that are genuine but not bound to the
request or bound to it but signed by a key other than the pinned one."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from protocol import catalogue as cat
from protocol import codec, identity
from tests.attacks.conftest import Target
from tests.attacks.forge import (
    Refusals,
    assert_silent,
    enroll_another,
    envelope,
    flip_bit,
    opened,
    sealed_renewal,
    signed,
)
from tests.attacks.relay import Relay, Rewrite
from tests.e2e.conftest import Hosts, host_pair, short_tempdir
from tests.e2e.rawclient import csr, tls_key
from wsproxy_agent.paths import HostPaths

SIGNATURE_FAILS = "The signature does not verify with the sender's key."


def with_type_changed(frames: list[bytes]) -> list[bytes]:
    return [codec.encode({**opened(frames), "type": cat.HEARTBEAT}), frames[1]]


def with_stamp_moved(frames: list[bytes]) -> list[bytes]:
    # One millisecond, well inside the window: only the signature can tell.
    env = opened(frames)
    return [codec.encode({**env, "ts": env["ts"] + 1}), frames[1]]


def flip_in_body(frames: list[bytes]) -> list[bytes]:
    # A bit inside the CSR's base64: still an ASCII string, still a well-formed envelope.
    payload, signature = frames
    return [flip_bit(payload, payload.index(b"-----BEGIN") + 100), signature]


def flip_in_signature(frames: list[bytes]) -> list[bytes]:
    payload, signature = frames
    return [payload, flip_bit(signature, 10)]


TAMPERS = {
    "body": flip_in_body,
    "type": with_type_changed,
    "ts": with_stamp_moved,
    "signature": flip_in_signature,
}


@pytest.mark.parametrize("part", TAMPERS)
def test_message_altered_after_signing_is_refused(target: Target, part: str) -> None:
    before = target.snapshot()
    legit = target.legit()
    sealed = sealed_renewal(target, legit)
    refusals = Refusals(target, legit.fp)

    attacker = target.attacker()
    attacker.send_frames(TAMPERS[part](list(sealed.frames)))

    assert_silent(attacker)  # not signed by the key it names: nobody to answer
    assert refusals.wait(1) == [("unauthorized", SIGNATURE_FAILS)]
    # The forged copy did not burn the genuine message's id.
    legit.send_frames(list(sealed.frames))
    answer = legit.reply(10.0)
    assert answer is not None, "the genuine message was refused once a forged copy came first"
    assert answer.type == cat.ENROLL_APPROVED and answer.re == sealed.id, answer
    target.assert_serves_legit()
    target.assert_unchanged(before)


def test_an_enrolled_proxy_cannot_speak_for_another(target: Target) -> None:
    insider = enroll_another(target, "insider.e2e.test", source="127.0.0.3")
    victim = target.enrolled()
    before = target.snapshot()
    refusals = Refusals(target, victim["fingerprint"])

    # Signed with the insider's own trusted key, in the victim's name: a new certificate
    # for the victim's name, and a report about the victim's certificate.
    as_victim = {"from": victim["fingerprint"]}
    renewal = {"csr": csr(tls_key("ec"), victim["fqdn"])}
    report = {"ok": False, "serial": victim["serial"], "reason": "forged"}
    insider.send_frames(
        signed(insider.key, envelope(insider, cat.RENEW_REQUEST, renewal, **as_victim))
    )
    insider.send_frames(
        signed(insider.key, envelope(insider, cat.INSTALL_REPORT, report, **as_victim))
    )

    assert_silent(insider)
    assert refusals.wait(2) == [("unauthorized", SIGNATURE_FAILS)] * 2
    # In its own name the insider is heard, but the victim's certificate is not its to report.
    sent = insider.send(cat.INSTALL_REPORT, report)
    answer = insider.reply(10.0)
    assert answer is not None and answer.type == cat.ERROR and answer.re == sent, answer
    assert answer.body["code"] == "bad_request", answer.body
    assert "did not issue to you" in str(answer.body["message"])
    target.assert_serves_legit()
    target.assert_unchanged(before)


# The proxy's side: a fake engine between 'proxy join' and the real engine (tests/attacks/relay).


@pytest.fixture
def engine() -> Iterator[Hosts]:
    """A running engine and a proxy host that has not joined."""
    with host_pair(short_tempdir()) as h:
        h.engine_init()
        h.start_engine()
        yield h


def join_through(
    h: Hosts, rewrite: Rewrite, timeout_s: int
) -> tuple[subprocess.CompletedProcess[str], Relay]:
    relay = Relay(h, rewrite)
    try:
        real = h.token()
        via_relay = real.replace(f"@127.0.0.1:{h.port}/", f"@127.0.0.1:{relay.port}/")
        assert via_relay != real
        return h.join(via_relay, "--timeout", str(timeout_s)), relay
    finally:
        relay.close()


def assert_refused_and_nothing_installed(
    h: Hosts, result: subprocess.CompletedProcess[str], sentence: str
) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "error: " in result.stderr and sentence in result.stderr, result.stderr
    paths = HostPaths.under(h.proxy)
    for path in (paths.proxy_cert, paths.proxy_tls_key, paths.setup_conf, paths.proxy_main_conf):
        assert not path.exists(), f"{path} was installed"
    saved = json.loads(paths.proxy_state.read_text()) if paths.proxy_state.exists() else {}
    assert "serial" not in saved and "enrollment" not in saved, saved
    assert h.systemctl_proxy.calls == []


class OneBehind:
    """Answers each request with the engine's answer to the request before it: genuine,
    fresh, signed by the pinned key and addressed to this proxy, but bound to another id."""

    def __init__(self) -> None:
        self.held: list[bytes] | None = None

    def __call__(self, answer: list[bytes]) -> list[list[bytes]]:
        out = [] if self.held is None else [self.held]
        self.held = answer
        return out


def test_proxy_refuses_an_answer_bound_to_another_request(engine: Hosts) -> None:
    result, relay = join_through(engine, OneBehind(), timeout_s=16)
    delivered = [opened(frames) for frames in relay.delivered]
    assert any(d["type"] == cat.ENROLL_APPROVED for d in delivered), "no approval was replayed"
    assert_refused_and_nothing_installed(
        engine, result, "came that answers another request, not this one"
    )


class Resigned:
    """Passes the engine's answers on, bound to the request, but signed by an impostor's
    key: in the engine's name, or with ``claim_own_name`` in the impostor's own."""

    def __init__(self, *, claim_own_name: bool) -> None:
        self.key = identity.generate()
        self.fingerprint = identity.fingerprint(self.key)
        self.claim_own_name = claim_own_name

    def __call__(self, answer: list[bytes]) -> list[list[bytes]]:
        env = opened(answer)
        if self.claim_own_name:
            env["from"] = self.fingerprint
        return [signed(self.key, env)]


@pytest.mark.parametrize("claim_own_name", [False, True], ids=["pinned-name", "own-name"])
def test_proxy_refuses_an_answer_signed_by_another_key(engine: Hosts, claim_own_name: bool) -> None:
    impostor = Resigned(claim_own_name=claim_own_name)
    result, relay = join_through(engine, impostor, timeout_s=10)
    assert [opened(f)["type"] for f in relay.delivered][:1] == [cat.ENROLL_APPROVED]
    if claim_own_name:
        sentence = f"answered with key {impostor.fingerprint}, but the join string pins"
    else:
        sentence = f"The engine's answers were refused: {SIGNATURE_FAILS}"
    assert_refused_and_nothing_installed(engine, result, sentence)

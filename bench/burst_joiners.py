"""The joining proxies of the enrollment burst: many to a process, each with its own keys.

A worker process owns a share of the simulated proxies. It makes their keys once, as
``proxy join`` does (an Ed25519 identity, an RSA-2048 TLS key, a CSR for the proxy's own
name), and keeps them for every burst it is sent. For a burst, each proxy parses its own
join string, opens its own ``EngineLink`` (its own DEALER and Curve keypair, from its own
127.x source address, as if each were its own host), and waits, connected, for the go.
Then each runs the join's exchange on a thread of its own with the join's own timings
(``proxy_agent.join``): the enroll request with the token proof, resent as a new message
every ``ATTEMPT_S`` without an answer; the delivery checked by ``verify.check_delivery``
and against the engine's CA; the install report; the activation answer.

Only the proxy host's side effects are left out: no files written, no service restarted.
A delivery that fails a check is a *wrong* answer, which fails the benchmark; a refusal
or silence is a join that did not finish.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

import zmq
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import catalogue as cat
from protocol import identity, joinstring, tokens
from protocol.codec import Value
from protocol.envelope import Message
from proxy_agent import tlskeys, verify
from proxy_agent.join import ATTEMPT_S, HANDSHAKE_S, REPORT_ATTEMPT_S
from proxy_agent.link import EngineLink, LinkError
from wsproxy_agent import transport

PROXY_PORT = 6100
DOMAIN = "burst.test"


def fqdn_of(index: int) -> str:
    return f"p{index + 1:04d}.{DOMAIN}"


def source_of(index: int) -> str:
    """Each proxy's own loopback address (all of 127/8 is local): one host per proxy, as in
    a real burst, so no per-address budget of the engine sees more than one proxy."""
    return f"127.77.{index // 250}.{index % 250 + 1}"


@dataclass
class Joiner:
    index: int
    fqdn: str
    key: Ed25519PrivateKey
    tls_key: tlskeys.TLSKey
    csr_pem: bytes

    @classmethod
    def make(cls, index: int) -> Joiner:
        fqdn = fqdn_of(index)
        tls_key = tlskeys.generate_tls_key("rsa")
        return cls(index, fqdn, identity.generate(), tls_key, tlskeys.build_csr(tls_key, fqdn))


@dataclass
class Outcome:
    """One proxy's join in one burst; times are CLOCK_MONOTONIC, shared by all processes."""

    fqdn: str
    approved_at: float | None = None
    done_at: float | None = None
    enroll_sends: int = 0  # the join's enroll request, first send and resends
    report_sends: int = 0
    serial: str | None = None
    wrong: str | None = None  # a wrong answer: fails the benchmark
    unfinished: str | None = None  # a refusal or no answer in time


class WrongAnswer(Exception):
    pass


def join_once(
    joiner: Joiner,
    link: EngineLink,
    join: joinstring.JoinString,
    engine_ca: x509.Certificate,
    deadline: float,
    out: Outcome,
) -> None:
    token = join.token
    assert token is not None
    public = identity.public_raw(joiner.key)
    csr_text = joiner.csr_pem.decode()

    def enroll_body(msg_id: bytes) -> dict[str, Value]:
        out.enroll_sends += 1
        return {
            "identity_key": public,
            "csr": csr_text,
            "fqdn": joiner.fqdn,
            "port": PROXY_PORT,
            "token_id": token.id,
            "token_proof": tokens.proof(token.proof_key, public, joiner.csr_pem, msg_id),
        }

    approved = link.request(cat.ENROLL_REQUEST, enroll_body, attempt_s=ATTEMPT_S, deadline=deadline)
    if approved.type != cat.ENROLL_APPROVED:
        out.unfinished = _refusal(approved)
        return
    out.approved_at = time.monotonic()
    try:
        delivery = verify.check_delivery(
            approved.text("cert"),
            approved.text("ca_cert"),
            approved.text("engine_cert"),
            joiner.tls_key,
            joiner.fqdn,
            datetime.now(UTC),
        )
    except verify.DeliveryRefused as exc:
        raise WrongAnswer(exc.sentence) from None
    if delivery.ca != engine_ca:
        raise WrongAnswer(f"the delivered CA is {delivery.ca.subject}, not the engine's CA")
    out.serial = delivery.serial

    def report_body(_msg_id: bytes) -> dict[str, Value]:
        out.report_sends += 1
        return {"ok": True, "serial": delivery.serial, "service_active": True}

    answer = link.request(
        cat.INSTALL_REPORT, report_body, attempt_s=REPORT_ATTEMPT_S, deadline=deadline
    )
    if answer.type != cat.ACTIVATION_DONE:
        out.unfinished = _refusal(answer)
        return
    # The tokens say --no-activate: an engine that switched over answered wrongly.
    if answer.flag("activated") or "no-activate" not in (answer.optional_text("reason") or ""):
        raise WrongAnswer(f"activation answer {dict(answer.body)} for a --no-activate token")
    out.done_at = time.monotonic()


def _refusal(reply: Message) -> str:
    if reply.type == cat.ERROR:
        return f"{reply.text('code')}: {reply.text('message')}"
    return f"answered {reply.type}"


def _run_one(
    joiner: Joiner,
    link: EngineLink,
    join: joinstring.JoinString,
    engine_ca: x509.Certificate,
    deadline: float,
    go: threading.Event,
    out: Outcome,
) -> None:
    go.wait()
    try:
        join_once(joiner, link, join, engine_ca, deadline, out)
    except WrongAnswer as exc:
        out.wrong = str(exc)
    except LinkError as exc:
        out.unfinished = exc.sentence
    except Exception as exc:  # reported, not lost in a thread: it fails the benchmark
        out.wrong = f"{type(exc).__name__}: {exc}"


def burst(
    joiners: list[Joiner], job: dict[str, Any], go_all: Event, conn: Connection
) -> dict[str, Any]:
    """Connect every joiner, say so, wait for the go, join, and return what happened."""
    engine_ca = x509.load_pem_x509_certificate(job["ca_pem"])
    ctx: transport.Context = zmq.Context()
    # Three sockets per link (its DEALER and the two ends of its monitor), and some spare.
    ctx.setsockopt(zmq.MAX_SOCKETS, 3 * len(joiners) + 64)
    links = []
    try:
        started = time.monotonic()
        joins = {}
        for j in joiners:
            join = joinstring.parse(job["join_strings"][j.fqdn])
            joins[j.fqdn] = join
            links.append(
                EngineLink(
                    address=f"tcp://{source_of(j.index)}:0;{join.address}",
                    curve_key=join.curve_key,
                    engine_key=join.pin,
                    key=j.key,
                    context=ctx,
                )
            )
        if not all(link.wait_handshake(HANDSHAKE_S) for link in links):
            raise RuntimeError("a joiner's Curve handshake with the engine did not complete")
        connected_s = time.monotonic() - started
        go = threading.Event()
        outcomes = [Outcome(j.fqdn) for j in joiners]
        deadline = time.monotonic() + job["timeout_s"]
        threads = [
            threading.Thread(
                target=_run_one,
                args=(j, link, joins[j.fqdn], engine_ca, deadline, go, out),
                daemon=True,
            )
            for j, link, out in zip(joiners, links, outcomes, strict=True)
        ]
        for t in threads:
            t.start()
        conn.send({"event": "connected", "connected_s": connected_s})
        go_all.wait()
        cpu_before = time.process_time()
        go.set()
        for t in threads:
            t.join()
        return {
            "event": "done",
            "outcomes": [asdict(o) for o in outcomes],
            "cpu_s": time.process_time() - cpu_before,
        }
    finally:
        for link in links:
            link.close()
        ctx.term()


def worker_main(indexes: list[int], conn: Connection, go_all: Event) -> None:
    """A worker's life: make its joiners' keys, then one burst per job until told to stop."""
    transport.allow_open_files()  # a descriptor per connection and per socket's mailbox
    started, cpu = time.monotonic(), time.process_time()
    joiners = [Joiner.make(i) for i in indexes]
    conn.send(
        {
            "event": "keys",
            "wall_s": time.monotonic() - started,
            "cpu_s": time.process_time() - cpu,
        }
    )
    while (job := conn.recv()) is not None:
        try:
            conn.send(burst(joiners, job, go_all, conn))
        except Exception as exc:  # told to the benchmark, which stops with it
            conn.send({"event": "failed", "why": f"{type(exc).__name__}: {exc}"})

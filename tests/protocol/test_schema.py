"""Body schemas: closed maps of typed, bounded fields (protocol.schema, protocol.catalogue)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from protocol import catalogue, identity
from protocol.catalogue import CATALOGUE, Role
from protocol.codec import Value
from protocol.envelope import seal
from protocol.errors import BadRequest, ErrorCode
from protocol.schema import Bin, Bool, FieldType, Int, Str

if TYPE_CHECKING:
    from tests.protocol.conftest import World

# One schema per type name (error is listed once per role with the same schema).
TYPES = {name: mt for (_, name), mt in sorted(CATALOGUE.items(), key=lambda kv: kv[0][1])}
FIELDS = [
    (name, field, kind, required)
    for name, mt in TYPES.items()
    for required, fields in ((True, mt.schema.required), (False, mt.schema.optional))
    for field, kind in fields.items()
]
REQUIRED = [(n, f) for n, f, _, required in FIELDS if required]


def field_id(value: object) -> str:
    return f"{value[0]}.{value[1]}" if isinstance(value, tuple) else str(value)


def wrong_values(kind: FieldType, required: bool) -> list[object]:
    if isinstance(kind, Str):
        wrong = [b"text", 7, True, ["x"], {"a": "b"}]
    elif isinstance(kind, Bin):
        wrong = ["x" * kind.max_len, 7, False, [b"x"]]
    elif isinstance(kind, Int):
        wrong = [True, False, str(kind.low), kind.low.to_bytes(8, "big", signed=True), 1.0]
    else:
        assert isinstance(kind, Bool)
        wrong = [1, 0, "true", b"\x01"]
    return [*wrong, None] if required else wrong


WRONG = [
    (name, field, value)
    for name, field, kind, required in FIELDS
    for value in wrong_values(kind, required)
]


@pytest.mark.parametrize(("name", "field", "value"), WRONG, ids=repr)
def test_wrong_type_is_refused(world: World, name: str, field: str, value: object) -> None:
    body = {**world.bodies[name], field: value}
    with pytest.raises(BadRequest, match=repr(field)):
        TYPES[name].schema.check(body)


@pytest.mark.parametrize(("name", "field"), REQUIRED, ids=field_id)
def test_missing_required_field_is_refused(world: World, name: str, field: str) -> None:
    body = dict(world.bodies[name])
    del body[field]
    with pytest.raises(BadRequest, match=f"'{field}' is required"):
        TYPES[name].schema.check(body)


@pytest.mark.parametrize("name", sorted(TYPES))
def test_unknown_field_is_refused(world: World, name: str) -> None:
    body = {**world.bodies[name], "admin": True}
    with pytest.raises(BadRequest, match="'admin' is not part of this message type"):
        TYPES[name].schema.check(body)


def test_a_long_unknown_field_name_is_shown_cut_short(world: World) -> None:
    """The sentence goes back in an error reply, whose message is at most 1000 characters."""
    body = {**world.bodies["heartbeat"], "k" * 5000: True}
    with pytest.raises(BadRequest, match="is not part of this message type") as exc:
        TYPES["heartbeat"].schema.check(body)
    assert "'" + "k" * 64 + "...'" in exc.value.sentence
    catalogue.CATALOGUE[(Role.PROXY, "error")].schema.check(
        {"code": exc.value.code.value, "message": exc.value.sentence}
    )


@pytest.mark.parametrize("name", sorted(TYPES))
def test_body_must_be_a_map(name: str) -> None:
    body: Value
    for body in ([], None, "x"):
        with pytest.raises(BadRequest, match="must be a map"):
            TYPES[name].schema.check(body)


def test_optional_fields_may_be_absent_or_nil(world: World) -> None:
    for name, mt in TYPES.items():
        bare = {k: v for k, v in world.bodies[name].items() if k in mt.schema.required}
        assert mt.schema.check(bare) == bare
        nil = {**bare, **dict.fromkeys(mt.schema.optional)}
        assert mt.schema.check(nil) == nil


LONG = [(n, f, k) for n, f, k, _ in FIELDS if isinstance(k, Str | Bin)]


@pytest.mark.parametrize(("name", "field", "kind"), LONG, ids=repr)
def test_over_length_is_refused(world: World, name: str, field: str, kind: Str | Bin) -> None:
    too_long = "a" * (kind.max_len + 1) if isinstance(kind, Str) else b"a" * (kind.max_len + 1)
    body = {**world.bodies[name], field: too_long}
    expected = "exactly" if isinstance(kind, Bin) and kind.exact else "longer than"
    with pytest.raises(BadRequest, match=expected):
        TYPES[name].schema.check(body)


SHORT_BIN = [(n, f, k) for n, f, k, _ in FIELDS if isinstance(k, Bin) and k.exact]


@pytest.mark.parametrize(("name", "field", "kind"), SHORT_BIN, ids=repr)
def test_exact_binary_too_short_is_refused(world: World, name: str, field: str, kind: Bin) -> None:
    body = {**world.bodies[name], field: b"a" * (kind.max_len - 1)}
    with pytest.raises(BadRequest, match="exactly"):
        TYPES[name].schema.check(body)


INTS = [(n, f, k) for n, f, k, _ in FIELDS if isinstance(k, Int)]


@pytest.mark.parametrize(("name", "field", "kind"), INTS, ids=repr)
def test_integer_range(world: World, name: str, field: str, kind: Int) -> None:
    schema = TYPES[name].schema
    for edge in (kind.low, kind.high):
        schema.check({**world.bodies[name], field: edge})
    for outside in (kind.low - 1, kind.high + 1):
        with pytest.raises(BadRequest, match="between"):
            schema.check({**world.bodies[name], field: outside})


BAD_FQDNS = [
    "../../etc",
    "",
    "a" * 300,
    "a\x00b",
    "UPPER.example",
    "trailing.dot.",
    "a..b",
    ".leading",
    "-a.example",
    "a-.example",
    "a_b.example",
    "a b.example",
    "a/b",
    "/etc/passwd",
    "é.example",
    "x" * 64 + ".example",
    "proxy.example.com\n",
]
GOOD_FQDNS = [
    "proxy.example.com",
    "a",
    "0",
    "xn--bcher-kva.example",
    "a-b.c",
    "x" * 63 + ".example",
    ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]),
]
FQDN_FIELDS = [(n, f) for n, f, k, _ in FIELDS if k is catalogue.FQDN]


def test_fqdn_fields_exist() -> None:
    assert ("enroll_request", "fqdn") in FQDN_FIELDS


@pytest.mark.parametrize("fqdn", BAD_FQDNS, ids=repr)
@pytest.mark.parametrize(("name", "field"), FQDN_FIELDS, ids=field_id)
def test_bad_fqdn_is_refused(world: World, name: str, field: str, fqdn: str) -> None:
    with pytest.raises(BadRequest, match=repr(field)):
        TYPES[name].schema.check({**world.bodies[name], field: fqdn})


@pytest.mark.parametrize("fqdn", GOOD_FQDNS, ids=lambda f: f[:20])
@pytest.mark.parametrize(("name", "field"), FQDN_FIELDS, ids=field_id)
def test_good_fqdn_is_accepted(world: World, name: str, field: str, fqdn: str) -> None:
    assert len(fqdn) <= 253
    TYPES[name].schema.check({**world.bodies[name], field: fqdn})


def test_bad_fqdn_cannot_be_sealed(world: World) -> None:
    body = {**world.bodies["enroll_request"], "fqdn": "../../etc"}
    with pytest.raises(BadRequest, match="'fqdn'"):
        seal(world.proxy, "enroll_request", body, recipient="x", now_ms=0)


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (
            catalogue.FINGERPRINT,
            ["SHA256:" + "A" * 43, "SHA256:abc+/" + "0" * 38],
            ["SHA256:" + "A" * 42, "SHA256:" + "A" * 44, "MD5:" + "A" * 43, "SHA256:" + "=" * 43],
        ),
        (catalogue.HEX_SERIAL, ["0", "f" * 64, "1f2e"], ["", "G", "AB", "f" * 65, "0x1"]),
        (catalogue.SHA256_HEX, ["0" * 64], ["0" * 63, "0" * 65, "A" * 64]),
        (catalogue.TOKEN_ID, ["abc123"], ["ABC123", "abc12", "abc1234", "abc-12"]),
        (
            catalogue.PEM,
            [
                "-----BEGIN X 509-----\nabc\n-----END X 509-----\n",
                "-----BEGIN A-----\r\n-----END A-----",
            ],
            [
                "-----BEGIN cert-----\nabc\n-----END cert-----\n",
                "-----BEGIN A-----\nabc\n",
                "-----BEGIN A-----\n-----END A-----\ntrailing",
                "junk-----BEGIN A-----\n-----END A-----",
                "-----BEGIN A----- -----END A-----",
            ],
        ),
    ],
    ids=["fingerprint", "serial", "sha256", "token_id", "pem"],
)
def test_field_patterns(kind: Str, good: list[str], bad: list[str]) -> None:
    for value in good:
        kind.check("f", value)
    for value in bad:
        with pytest.raises(BadRequest):
            kind.check("f", value)


def test_real_fingerprint_matches_the_pattern(world: World) -> None:
    catalogue.FINGERPRINT.check("fingerprint", identity.fingerprint(world.proxy))


def test_error_code_field_takes_exactly_the_error_codes() -> None:
    schema = catalogue.CATALOGUE[(Role.PROXY, "error")].schema
    for code in ErrorCode:
        schema.check({"code": code.value, "message": "m"})
    for not_a_code in ("nope", "BAD_REQUEST", ""):
        with pytest.raises(BadRequest, match="one of"):
            schema.check({"code": not_a_code, "message": "m"})

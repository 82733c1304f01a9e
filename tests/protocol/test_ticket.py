"""Console tickets: oVirt's format, our signature rules, and nothing but TicketError on bad input."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.ticket import (
    MAX_TICKET_BYTES,
    ConsoleTarget,
    TicketError,
    TicketReason,
    issue_ticket,
    verify_ticket,
)
from tests.support.selfsigned import self_signed_pem

NOW = datetime(2026, 11, 22, 9, 58, tzinfo=UTC)
SALT = bytes(range(8))
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_cert(key: rsa.RSAPrivateKey, name: str) -> str:
    return self_signed_pem(key, name, days=365, now=NOW)


ENGINE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ENGINE_CERT = make_cert(ENGINE_KEY, "engine.example.com")
TRUSTED = ENGINE_KEY.public_key()


def ticket(**kwargs: Any) -> str:
    args: dict[str, Any] = {"host": "vm-host.example.com", "port": 5900, "salt": SALT, "now": NOW}
    args.update(kwargs)
    return issue_ticket(ENGINE_KEY, ENGINE_CERT, **args)


def fields_of(text: str) -> dict[str, Any]:
    fields = json.loads(base64.b64decode(text))
    assert isinstance(fields, dict)
    return fields


def encode(fields: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(fields).encode()).decode()


def data(**target: Any) -> str:
    values = {"host": "vm-host.example.com", "port": "5900", "ssl_target": False}
    values.update(target)
    return quote(json.dumps(values))


def signed(
    names: list[str],
    key: rsa.RSAPrivateKey = ENGINE_KEY,
    /,
    **values: Any,
) -> dict[str, Any]:
    """Ticket fields with ``values`` over the defaults, ``names`` signed by ``key``."""
    fields: dict[str, Any] = {
        "salt": "AAECAwQFBgc=",
        "validFrom": "20261122095800",
        "validTo": "20261122100000",
        "data": data(),
        "certificate": ENGINE_CERT,
    }
    fields.update(values)
    message = "".join(fields[name] for name in names).encode()
    fields["signedFields"] = ",".join(names)
    fields["v2_signature"] = base64.b64encode(key.sign(message, PSS, hashes.SHA256())).decode()
    return fields


ALL = ["salt", "validFrom", "validTo", "data"]


def refused(text: str, *, now: datetime = NOW) -> TicketError:
    with pytest.raises(TicketError) as caught:
        verify_ticket(text, TRUSTED, now=now)
    assert caught.value.sentence
    return caught.value


# ---- the format -------------------------------------------------------------------------


def test_a_ticket_round_trips_to_its_target() -> None:
    text = ticket(ssl_target=True, path="/vnc/1", token="tok en")
    assert verify_ticket(text, TRUSTED, now=NOW) == ConsoleTarget(
        "vm-host.example.com", 5900, True, "/vnc/1", "tok en"
    )


def test_a_ticket_has_ovirts_fields_and_encodings() -> None:
    fields = fields_of(ticket(ttl_seconds=120))
    assert fields["validFrom"] == "20261122095800"
    assert fields["validTo"] == "20261122100000"
    assert base64.b64decode(fields["salt"]) == SALT
    assert fields["signedFields"].split(",") == ALL
    assert fields["certificate"] == ENGINE_CERT
    assert json.loads(unquote(fields["data"])) == {
        "host": "vm-host.example.com",
        "port": "5900",  # a string, as the web UI sends it and oVirt's proxy expects
        "ssl_target": False,
        "path": None,
        "token": None,
    }


def test_the_validity_starts_now_in_utc_whatever_the_callers_zone() -> None:
    kolkata = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    fields = fields_of(ticket(now=kolkata, ttl_seconds=7200))
    assert (fields["validFrom"], fields["validTo"]) == ("20261122095800", "20261122115800")


def test_an_engine_made_ticket_verifies() -> None:
    # As oVirt's TicketEncoder signs: Java HashMap order, 'digest' signed too, a SHA-1
    # 'signature' beside v2 (ignored by us), the port a string, path/token null.
    fields = signed(
        ["salt", "data", "digest", "validFrom", "validTo"],
        digest="sha1",
        data=quote(
            '{"host":"10.1.2.3","port":"5901","ssl_target":true,"path":null,"token":null}',
            safe="!*'();,/?:@&=+$#",
        ),
    )
    fields["signature"] = base64.b64encode(b"\x00" * 256).decode()
    assert verify_ticket(encode(fields), TRUSTED, now=NOW) == ConsoleTarget(
        "10.1.2.3", 5901, True, None, None
    )


def test_a_percent_encoded_ticket_is_read() -> None:
    # Every character escaped: base64 of ASCII JSON seldom has the '+', '/' and '=' that a
    # browser would escape, so quote() alone might leave the ticket as it was.
    escaped = "".join(f"%{ord(char):02X}" for char in ticket())
    assert verify_ticket(escaped, TRUSTED, now=NOW).port == 5900


def test_data_without_path_and_token_reads_as_none() -> None:
    target = verify_ticket(encode(signed(ALL)), TRUSTED, now=NOW)
    assert (target.path, target.token) == (None, None)


# ---- time -------------------------------------------------------------------------------


def test_a_ticket_is_valid_from_its_first_to_its_last_second() -> None:
    text = ticket(ttl_seconds=120)
    assert verify_ticket(text, TRUSTED, now=NOW).host
    assert verify_ticket(text, TRUSTED, now=NOW + timedelta(seconds=120)).host


def test_an_expired_ticket_is_refused_with_when() -> None:
    error = refused(ticket(ttl_seconds=120), now=NOW + timedelta(seconds=121))
    assert error.reason == TicketReason.EXPIRED
    assert "expired at 2026-11-22 10:00:00 UTC" in error.sentence
    assert "open the console again" in error.sentence


def test_a_ticket_from_the_future_is_refused_without_tolerance() -> None:
    error = refused(ticket(), now=NOW - timedelta(seconds=1))
    assert error.reason == TicketReason.NOT_YET_VALID
    assert "2026-11-22 09:58:00 UTC" in error.sentence and "clock" in error.sentence


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_ticket(ticket(), TRUSTED, now=NOW.replace(tzinfo=None))


# ---- signatures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("salt", "AAECAwQFBgg="),
        ("validFrom", "20261122090000"),
        ("validTo", "20261231235959"),
        ("data", data(host="other-vm.example.com")),
        ("data", data(port="22")),
        ("data", data(ssl_target=True)),
    ],
)
def test_changing_any_signed_field_breaks_the_signature(name: str, value: str) -> None:
    fields = fields_of(ticket())
    assert fields[name] != value
    fields[name] = value
    assert refused(encode(fields)).reason == TicketReason.BAD_SIGNATURE


def test_another_keys_ticket_is_refused_even_with_its_own_certificate_inside() -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = issue_ticket(
        stranger, make_cert(stranger, "engine.example.com"), "vm", 5900, now=NOW, salt=SALT
    )
    error = refused(forged)
    assert error.reason == TicketReason.BAD_SIGNATURE
    assert "CERT_FOR_DATA_VERIFICATION" in error.sentence


def test_a_v1_only_ticket_is_refused() -> None:
    fields = fields_of(ticket())
    fields["signature"] = fields.pop("v2_signature")
    error = refused(encode(fields))
    assert error.reason == TicketReason.MISSING_FIELD
    assert "v2_signature" in error.sentence


def test_a_damaged_signature_is_refused() -> None:
    fields = fields_of(ticket())
    fields["v2_signature"] = "not base64!"
    assert refused(encode(fields)).reason == TicketReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("names", "unsigned"),
    [
        (["salt", "data"], "validFrom, validTo"),  # oVirt's own decoder takes this one
        (["salt", "validFrom", "validTo"], "data"),
        (["data", "validFrom"], "validTo"),
    ],
)
def test_a_signature_that_leaves_out_a_field_we_use_is_refused(
    names: list[str], unsigned: str
) -> None:
    # Correctly signed, but what is unsigned could be anything: a life of years, another VM.
    fields = signed(names, validTo="20991231235959")
    error = refused(encode(fields))
    assert error.reason == TicketReason.UNSIGNED_FIELDS
    assert unsigned in error.sentence


def test_a_signed_field_no_engine_signs_is_refused() -> None:
    # Signed values are concatenated without separators, and the JSON around them is not
    # signed: an invented name would let a forger regroup signed bytes at will.
    fields = signed(["salt", "x", "validFrom", "validTo", "data"], x="anything")
    error = refused(encode(fields))
    assert error.reason == TicketReason.BAD_FIELD
    assert "'x'" in error.sentence


def test_moving_a_byte_between_signed_fields_keeps_the_signature_but_is_refused() -> None:
    fields = signed(ALL)
    fields["validTo"], fields["data"] = fields["validTo"][:-1], "0" + fields["data"]
    error = refused(encode(fields))
    assert error.reason == TicketReason.BAD_FIELD
    assert "validTo" in error.sentence


def test_swapping_the_validity_dates_is_refused() -> None:
    # Swapping both values and their order in signedFields keeps the signature valid.
    fields = signed(ALL, validFrom="20260101000000", validTo="20991231235959")
    fields["validFrom"], fields["validTo"] = fields["validTo"], fields["validFrom"]
    fields["signedFields"] = "salt,validTo,validFrom,data"
    error = refused(encode(fields))
    assert error.reason == TicketReason.BAD_FIELD
    assert "ends before it starts" in error.sentence


def test_a_field_named_twice_is_refused() -> None:
    text = ticket()
    raw = base64.b64decode(text).decode()
    doubled = raw[:-1] + ',"data":"' + data(host="evil") + '"}'
    error = refused(base64.b64encode(doubled.encode()).decode())
    assert error.reason == TicketReason.NOT_JSON
    assert "'data' twice" in error.sentence


# ---- shape and size ---------------------------------------------------------------------


def test_an_oversized_ticket_is_refused_before_decoding() -> None:
    error = refused("A" * (MAX_TICKET_BYTES + 1))
    assert error.reason == TicketReason.OVERSIZED
    assert refused("A" * MAX_TICKET_BYTES).reason != TicketReason.OVERSIZED


def test_a_real_ticket_is_far_below_the_cap() -> None:
    assert len(quote(ticket(path="/" + "p" * 200, token="t" * 200), safe="")) < MAX_TICKET_BYTES / 2


def test_an_empty_ticket_says_the_url_has_none() -> None:
    error = refused("")
    assert error.reason == TicketReason.MISSING_FIELD
    assert "no ticket" in error.sentence


@pytest.mark.parametrize("text", ["not base64!", "é" * 8, "%ZZ", "%C3%28AAA", "QUJD\n"])
def test_text_that_is_not_base64_is_refused(text: str) -> None:
    assert refused(text).reason == TicketReason.NOT_BASE64


# The last is nested deeper than the parser can recurse: not JSON, not a RecursionError.
@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"a string"', b"\xff\xfe", b"[" * 12_000])
def test_base64_of_anything_but_a_json_object_is_refused(raw: bytes) -> None:
    assert refused(base64.b64encode(raw).decode()).reason == TicketReason.NOT_JSON


@pytest.mark.parametrize("name", ["salt", "validFrom", "validTo", "data", "signedFields"])
def test_a_missing_field_is_named(name: str) -> None:
    fields = fields_of(ticket())
    del fields[name]
    error = refused(encode(fields))
    assert error.reason == TicketReason.MISSING_FIELD
    assert f"'{name}'" in error.sentence


@pytest.mark.parametrize("name", ["host", "port", "ssl_target"])
def test_data_without_a_target_field_is_refused(name: str) -> None:
    values = {"host": "h", "port": "5900", "ssl_target": False}
    del values[name]
    error = refused(encode(signed(ALL, data=quote(json.dumps(values)))))
    assert error.reason == TicketReason.MISSING_FIELD
    assert name in error.sentence


@pytest.mark.parametrize(
    "target",
    [
        {"port": "0"},
        {"port": "65536"},
        {"port": "59a0"},
        {"port": "+5900"},
        {"port": "\u0665\u0669\u0660\u0660"},  # Arabic-Indic digits that int() would read
        {"port": 5900},
        {"host": ""},
        {"host": "vm\r\nX-Injected: 1"},
        {"host": "vm host"},
        {"host": "vm\u2028host"},
        {"host": "\ud800"},  # a lone surrogate, which JSON's \u escapes can make
        {"host": "h\u00e9.example.com"},  # oVirt sends ASCII; an IDN comes as punycode
        {"host": 7},
        {"host": "h" * 256},
        {"ssl_target": "false"},
        {"path": "/a\x00b"},
        {"path": "/a\u2028b"},
        {"token": "\udc80"},
        {"token": ["t"]},
    ],
)
def test_a_bad_target_in_signed_data_is_refused(target: dict[str, Any]) -> None:
    error = refused(encode(signed(ALL, data=data(**target))))
    assert error.reason == TicketReason.BAD_FIELD


@pytest.mark.parametrize(
    "values",
    [
        {"validFrom": "2026112209580"},  # 13 digits: strptime would take it
        {"validFrom": "2026111"},
        {"validTo": "20261322100000"},  # month 13
        {"validTo": "".join(chr(0xFF10 + int(d)) for d in "20261122100000")},  # fullwidth
        {"data": "[1]"},
        {"data": "%7Bnot json"},
    ],
)
def test_badly_formed_signed_values_are_refused(values: dict[str, str]) -> None:
    error = refused(encode(signed(ALL, **values)))
    assert error.reason in {TicketReason.BAD_FIELD, TicketReason.NOT_JSON}


def test_a_signed_field_that_is_not_a_string_is_refused() -> None:
    fields = signed(ALL)
    fields["salt"] = 12
    assert refused(encode(fields)).reason == TicketReason.BAD_FIELD


# ---- issuing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 0},
        {"port": 65536},
        {"host": ""},
        {"host": "a\nb"},
        {"ttl_seconds": 0},
        {"ttl_seconds": 10**20},
    ],
)
def test_issuing_refuses_what_verifying_would(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TicketError) as caught:
        ticket(**kwargs)
    assert caught.value.reason == TicketReason.BAD_FIELD


# ---- nothing but TicketError ------------------------------------------------------------


def only_ticket_errors(text: str) -> None:
    try:
        verify_ticket(text, TRUSTED, now=NOW)
    except TicketError as error:
        assert error.sentence and error.reason in set(TicketReason)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_gives_a_target_or_a_ticket_error(text: str) -> None:
    only_ticket_errors(text)


@SETTINGS
@given(st.binary(max_size=600))
def test_base64_of_any_bytes_gives_a_ticket_error(raw: bytes) -> None:
    only_ticket_errors(base64.b64encode(raw).decode())


# Lone surrogates included: JSON's \u escapes make them, and they do not encode as UTF-8.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), any_text),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
plausible_signed = st.sampled_from(
    ["salt,validFrom,validTo,data", "salt,data,digest,validFrom,validTo", "data,validTo,validFrom"]
)
ticket_shapes = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(["salt", "validFrom", "validTo", "data", "digest", "x"], json_values),
        "signedFields": st.one_of(plausible_signed, json_values),
        "v2_signature": st.one_of(
            st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()), json_values
        ),
    },
)


@SETTINGS
@given(ticket_shapes)
def test_any_json_object_gives_a_ticket_error(fields: dict[str, Any]) -> None:
    only_ticket_errors(encode(fields))


def test_a_lone_surrogate_in_a_signed_field_is_a_bad_signature() -> None:
    fields = fields_of(ticket())
    raw = json.dumps({**fields, "salt": "\ud800"})  # json.dumps writes it as the \u escape
    error = refused(base64.b64encode(raw.encode()).decode())
    assert error.reason == TicketReason.BAD_SIGNATURE


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(["host", "port", "ssl_target", "path", "token", "other"]),
        st.one_of(json_values, st.sampled_from(["5900", "0", "70000", "h"])),
        max_size=6,
    )
)
def test_any_signed_data_gives_a_target_or_a_ticket_error(target: dict[str, Any]) -> None:
    # Signed with the trusted key, so the input reaches the data parsing behind the signature.
    only_ticket_errors(encode(signed(ALL, data=quote(json.dumps(target)))))


@SETTINGS
@given(st.integers(0, 2000), st.sampled_from('A+/=%{}"!é\x00'))
def test_a_damaged_real_ticket_gives_a_ticket_error(at: int, char: str) -> None:
    text = ticket()
    at %= len(text)
    only_ticket_errors(text[:at] + char + text[at + 1 :])


# ---- interoperability with openssl (what the Java engine's RSASSA-PSS is) ----------------

OPENSSL_PSS = [
    "-sha256",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:max",
    "-sigopt",
    "rsa_mgf1_md:sha256",
]


def write_keys(tmp_path: Path) -> None:
    (tmp_path / "pub.pem").write_bytes(
        TRUSTED.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "key.pem").write_bytes(
        ENGINE_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "dgst", *OPENSSL_PSS, *args], cwd=cwd, capture_output=True, text=True
    )


def test_openssl_verifies_our_signature(tmp_path: Path) -> None:
    write_keys(tmp_path)
    fields = fields_of(ticket(ssl_target=True))
    message = "".join(fields[name] for name in fields["signedFields"].split(","))
    (tmp_path / "data.txt").write_text(message)
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(fields["v2_signature"]))
    verify = ("-verify", "pub.pem", "-signature", "sig.bin", "data.txt")
    result = openssl(*verify, cwd=tmp_path)
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr
    # The same check on other bytes fails, so the pass above means something.
    (tmp_path / "data.txt").write_text(message.replace("vm-host", "vm-hosT"))
    assert openssl(*verify, cwd=tmp_path).returncode == 1


def test_a_ticket_signed_by_openssl_verifies(tmp_path: Path) -> None:
    write_keys(tmp_path)
    fields = signed(ALL, data=data(host="10.9.8.7", port="5902"))
    message = "".join(fields[name] for name in ALL)
    (tmp_path / "data.txt").write_text(message)
    result = openssl("-sign", "key.pem", "-out", "sig.bin", "data.txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    openssl_signature = (tmp_path / "sig.bin").read_bytes()
    assert base64.b64decode(fields["v2_signature"]) != openssl_signature  # PSS is randomised
    fields["v2_signature"] = base64.b64encode(openssl_signature).decode()
    target = verify_ticket(encode(fields), TRUSTED, now=NOW)
    assert (target.host, target.port) == ("10.9.8.7", 5902)

"""docs/protocol.md cannot drift from the code: its tables are compared with the code's.

Each checked table in the doc follows a ``<!-- table:NAME -->`` marker. The catalogue rows
are compared cell by cell with what describe_row() derives from protocol.catalogue, so a
changed limit, field, flag or type shows up here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from protocol import catalogue, envelope, identity, receive, replay, tokens
from protocol.catalogue import CATALOGUE
from protocol.codec import DEFAULT_LIMITS
from protocol.errors import ErrorCode
from protocol.names import FQDN_PATTERN
from protocol.schema import Bin, Bool, FieldType, Int, Str
from protocol.states import ENGINE_TABLE, PROXY_TABLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

PATTERN_NAMES = {
    FQDN_PATTERN: "fqdn",
    catalogue.FINGERPRINT.pattern: "fingerprint",
    catalogue.HEX_SERIAL.pattern: "hex-serial",
    catalogue.SHA256_HEX.pattern: "sha256-hex",
    catalogue.PEM.pattern: "pem",
    catalogue.TOKEN_ID.pattern: "token-id",
}


def describe(kind: FieldType) -> str:
    if isinstance(kind, Bool):
        return "bool"
    if isinstance(kind, Int):
        return f"int {kind.low}..{kind.high}"
    if isinstance(kind, Bin):
        return f"bin, {'exactly' if kind.exact else 'at most'} {kind.max_len} bytes"
    assert isinstance(kind, Str)
    text = f"str, at most {kind.max_len} chars"
    if kind.pattern is not None:
        text += f", form {PATTERN_NAMES[kind.pattern]}"
    if kind.choices is not None:
        text += ", one of " + " ".join(sorted(kind.choices))
    return text


def describe_fields(schema_fields: Mapping[str, FieldType]) -> str:
    if not schema_fields:
        return "none"
    return "<br>".join(f"`{name}`: {describe(kind)}" for name, kind in schema_fields.items())


def describe_row(mt: catalogue.MessageType) -> tuple[str, ...]:
    return (
        f"`{mt.name}`",
        mt.receiver.value,
        "yes" if mt.reply else "no",
        "yes" if mt.self_certified else "no",
        describe_fields(mt.schema.required),
        describe_fields(mt.schema.optional),
    )


def table(name: str) -> list[tuple[str, ...]]:
    """The body rows of the markdown table after ``<!-- table:name -->``."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"<!-- table:{name} -->") + 1
    while not lines[start].startswith("|"):
        start += 1
    rows = []
    for line in lines[start + 2 :]:  # skip the header and the --- line
        if not line.startswith("|"):
            break
        rows.append(tuple(cell.strip() for cell in line.strip().strip("|").split("|")))
    assert rows, f"table {name} is empty"
    return rows


def unquote(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell[1:-1]


def test_catalogue_table_matches_the_code() -> None:
    rows = table("catalogue")
    assert len(rows) == len(set(rows))
    assert {(unquote(r[0]), r[1]) for r in rows} == {(name, role.value) for role, name in CATALOGUE}
    assert {unquote(r[0]) for r in rows} == set(catalogue.TYPE_NAMES)
    assert set(rows) == {describe_row(mt) for mt in CATALOGUE.values()}


def test_field_forms_are_the_codes_patterns() -> None:
    forms = {unquote(r[0]): unquote(r[1]) for r in table("forms")}
    assert forms == {name: pattern for pattern, name in PATTERN_NAMES.items()}


@pytest.mark.parametrize(("name", "machine"), [("proxy", PROXY_TABLE), ("engine", ENGINE_TABLE)])
def test_state_tables_match_the_code(
    name: str, machine: Mapping[Any, Mapping[Any, StrEnum]]
) -> None:
    rows = {tuple(unquote(c) for c in row) for row in table(f"{name}-states")}
    expected = {
        (state.value, event.value, target.value)
        for state, moves in machine.items()
        for event, target in moves.items()
    }
    assert rows == expected
    assert len(table(f"{name}-states")) == len(expected)


def test_error_codes_match_the_code() -> None:
    assert [unquote(r[0]) for r in table("errors")] == [c.value for c in ErrorCode]


def test_decode_limits_match_the_code() -> None:
    rows = {unquote(r[0]): int(r[1]) for r in table("limits")}
    assert rows == {f.name: getattr(DEFAULT_LIMITS, f.name) for f in fields(DEFAULT_LIMITS)}


def test_constants_match_the_code() -> None:
    rows = {unquote(r[0]): unquote(r[1]) for r in table("constants")}
    assert rows == {
        "PROTOCOL_VERSION": str(catalogue.PROTOCOL_VERSION),
        "MIN_PROTOCOL_VERSION": str(catalogue.MIN_PROTOCOL_VERSION),
        "SIGNING_CONTEXT": repr(envelope.SIGNING_CONTEXT),
        "ID_SIZE": str(envelope.ID_SIZE),
        "SIGNATURE_SIZE": str(identity.SIGNATURE_SIZE),
        "PUBLIC_KEY_SIZE": str(identity.PUBLIC_KEY_SIZE),
        "DEFAULT_WINDOW_MS": str(receive.DEFAULT_WINDOW_MS),
        "SEEN_CAPACITY": str(replay.SeenIds(1).capacity),
        "TOKEN_ID_LENGTH": str(tokens.ID_LENGTH),
        "TOKEN_SECRET_LENGTH": str(tokens.SECRET_LENGTH),
        "TOKEN_KEY_CONTEXT": repr(tokens._KEY_CONTEXT),
    }
    notes = {unquote(r[0]): r[2] for r in table("constants")}
    assert f"{len(envelope.SIGNING_CONTEXT)} bytes" in notes["SIGNING_CONTEXT"]
    assert f"{len(tokens._KEY_CONTEXT)} bytes" in notes["TOKEN_KEY_CONTEXT"]


def test_envelope_fields_are_listed_in_order() -> None:
    rows = [unquote(r[0]) for r in table("envelope")]
    assert rows == sorted(envelope.HEADER_FIELDS)
    assert set(rows) == set(envelope.HEADER_FIELDS)


if __name__ == "__main__":  # prints the generated tables, to paste into the doc
    for mt in CATALOGUE.values():
        print("| " + " | ".join(describe_row(mt)) + " |")

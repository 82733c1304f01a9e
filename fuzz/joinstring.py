"""Harness: the join string and the ``--engine-key`` value an operator pastes.

Allowed outcomes: a JoinString (which prints as a join string that parses back to the same
value) or a ProtocolError; the same for the engine key.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["protocol"]):
    from protocol import joinstring
    from protocol.errors import ProtocolError


def check_join_string(text: str) -> None:
    try:
        parsed = joinstring.parse(text)
    except ProtocolError as exc:
        assert exc.sentence, repr(exc)
        return
    assert joinstring.parse(str(parsed)) == parsed, (text, str(parsed))


def check_engine_key(text: str) -> None:
    try:
        curve, ident = joinstring.parse_engine_key(text)
    except ProtocolError as exc:
        assert exc.sentence, repr(exc)
        return
    assert joinstring.parse_engine_key(joinstring.format_engine_key(curve, ident)) == (
        curve,
        ident,
    )


def TestOneInput(data: bytes) -> None:
    text = data[1:].decode("utf-8", "surrogateescape")
    if data[:1] and data[0] & 1:
        check_engine_key(text)
    else:
        check_join_string(text)


if __name__ == "__main__":
    atheris.enabled_hooks.add("RegEx")
    atheris.enabled_hooks.add("str")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

"""Harness: ``protocol.tokens.parse``, the ``<id>.<secret>`` part of a join string.

Allowed outcomes: a Token that prints back as the same text, or a ProtocolError.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["protocol"]):
    from protocol import tokens
    from protocol.errors import ProtocolError


def TestOneInput(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    try:
        token = tokens.parse(text)
    except ProtocolError as exc:
        assert exc.sentence, repr(exc)
        return
    assert str(token) == text, (token, text)
    assert len(token.proof_key) == 32


if __name__ == "__main__":
    atheris.enabled_hooks.add("RegEx")
    atheris.enabled_hooks.add("str")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

"""Harness: ``protocol.names``, the host names that end up in certificates and file names.

Allowed outcomes: a name or a ProtocolError. An accepted name is returned unchanged, is
plain ASCII that cannot read as a path, and normalising is idempotent.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["protocol"]):
    from protocol import names
    from protocol.errors import ProtocolError


def check_safe(name: str) -> None:
    assert name.isascii() and name == name.lower(), name
    assert 0 < len(name) <= names.MAX_NAME, name
    assert "/" not in name and "\\" not in name and ".." not in name, name
    assert not name.startswith((".", "-")) and not name.endswith("."), name
    assert all(c.isalnum() or c in ".-" for c in name), name


def TestOneInput(data: bytes) -> None:
    text = data[1:].decode("utf-8", "surrogateescape")
    normalise = bool(data[:1] and data[0] & 1)
    try:
        name = names.normalise_fqdn(text) if normalise else names.check_fqdn(text)
    except ProtocolError as exc:
        assert exc.sentence, repr(exc)
        return
    check_safe(name)
    if normalise:
        assert names.normalise_fqdn(name) == name, (text, name)
    else:
        assert name == text


if __name__ == "__main__":
    atheris.enabled_hooks.add("RegEx")
    atheris.enabled_hooks.add("str")
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

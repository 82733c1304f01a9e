"""Harness: ``protocol.codec.decode``, the first thing any payload meets.

The first byte picks the default limits or tiny ones, so the limit checks are reached with
short inputs. Allowed outcomes: a value, or a ProtocolError. What decodes must respect the
limits, and encoding it must round trip: ``decode(encode(v)) == v`` with a canonical
encoding that is stable (``encode(decode(encode(v))) == encode(v)``).
"""

from __future__ import annotations

import sys
from typing import Any

import atheris

with atheris.instrument_imports(include=["protocol"]):
    from protocol import codec
    from protocol.errors import ProtocolError

TINY = codec.DecodeLimits(
    max_message=512, max_str=8, max_bin=8, max_array=4, max_map=4, max_depth=2
)


def check_within(value: Any, limits: codec.DecodeLimits, depth: int = 0) -> None:
    assert depth <= limits.max_depth, f"nested {depth} deep, limit {limits.max_depth}"
    if isinstance(value, str):
        assert len(value.encode()) <= limits.max_str, len(value)
    elif isinstance(value, bytes):
        assert len(value) <= limits.max_bin, len(value)
    elif isinstance(value, list):
        assert len(value) <= limits.max_array, len(value)
        for item in value:
            check_within(item, limits, depth + 1)
    elif isinstance(value, dict):
        assert len(value) <= limits.max_map, len(value)
        for key, item in value.items():
            assert isinstance(key, str), key
            check_within(item, limits, depth + 1)
    else:
        assert value is None or isinstance(value, bool | int), type(value)


def TestOneInput(data: bytes) -> None:
    limits = TINY if data[:1] and data[0] & 1 else codec.DEFAULT_LIMITS
    payload = data[1:]
    try:
        value = codec.decode(payload, limits)
    except ProtocolError as exc:
        assert exc.sentence, repr(exc)
        return
    check_within(value, limits)
    encoded = codec.encode(value)
    again = codec.decode(encoded, limits)
    assert again == value, (again, value)
    assert codec.encode(again) == encoded


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

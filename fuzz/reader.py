"""Structure from fuzz bytes, read front to back so that seeds can be written by hand.

libFuzzer mutates bytes; the harnesses read choices and values out of them with this, and
once the input runs out every read answers zero or empty, so any prefix is still an input.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import msgpack


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        chunk = self.take(1)
        return chunk[0] if chunk else 0

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data))

    def pick(self, options: list[Any] | tuple[Any, ...]) -> Any:
        return options[self.byte() % len(options)]

    def value(self) -> Any:
        """Any msgpack value (floats, extension types, odd keys included) or, failing that, bytes.

        A length byte, then that many bytes decoded as msgpack: mutations of the chunk reach
        every type msgpack has, not only the ones the protocol allows.
        """
        chunk = self.take(self.byte())
        try:
            return msgpack.unpackb(chunk, raw=False, strict_map_key=False, use_list=True)
        except Exception:  # whatever msgpack makes of the chunk, the raw bytes are a value too
            return chunk

    def key(self) -> Any:
        """A value that can be a map key: one msgpack could not use as a key becomes text."""
        value = self.value()
        return value if isinstance(value, Hashable) else repr(value)


def value_bytes(value: Any) -> bytes:
    """The encoding ``Reader.value`` reads back as ``value``: for writing seeds."""
    packed = msgpack.packb(value, use_bin_type=True)
    assert len(packed) < 256, "a seed value must fit behind a one-byte length"
    return bytes([len(packed)]) + packed

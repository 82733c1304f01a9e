"""Deterministic msgpack encoding and decoding with hard limits.

Encoding sorts every map's keys so one value has one byte string. Decoding refuses
anything above the size cap before the decoder sees it, bounds every string, binary,
array and map, refuses extension types (msgpack's timestamp included), non-string map
keys and nesting deeper than the envelope can need.

Decoding reads one value at a time and checks each limit as it goes, so the work stops
where a limit is crossed: a megabyte of tiny maps costs what ``max_values`` of them cost,
not a million objects built and then walked. Data too short to hold more than
``max_values`` values (heartbeats, status replies, most messages) is first decoded at once by msgpack's C
decoder and checked after; whatever that does not accept goes the slow way, which refuses
it with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import msgpack

from protocol.errors import BadRequest

Value = None | bool | int | str | bytes | list["Value"] | dict[str, "Value"]


@dataclass(frozen=True)
class DecodeLimits:
    max_message: int = 1024 * 1024
    max_str: int = 64 * 1024
    max_bin: int = 64 * 1024
    max_array: int = 256
    max_map: int = 64
    max_depth: int = 6
    max_values: int = 1024


DEFAULT_LIMITS = DecodeLimits()


def _canonical(value: Value) -> Value:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def encode(value: Value) -> bytes:
    return cast(bytes, msgpack.packb(_canonical(value), use_bin_type=True))


# Leading bytes of the msgpack map and array headers (fix, 16 and 32 bit forms).
_MAP_HEADS = frozenset([*range(0x80, 0x90), 0xDE, 0xDF])
_ARRAY_HEADS = frozenset([*range(0x90, 0xA0), 0xDC, 0xDD])
_CONTAINER_HEADS = _MAP_HEADS | _ARRAY_HEADS


def decode(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Value:
    if len(data) > limits.max_message:
        raise BadRequest(
            f"The message is {len(data)} bytes; the limit is {limits.max_message}. "
            "Nothing above the limit is decoded."
        )
    if len(data) <= limits.max_values:
        plain, value = _decode_short(data, limits)
        if plain:
            return value
    return _decode_by_value(data, limits)


_PLAIN_SCALARS = frozenset({type(None), bool, int, str, bytes})


def _decode_short(data: bytes, limits: DecodeLimits) -> tuple[bool, Value]:
    """Most messages, at the speed of msgpack's C decoder: (True, the value) when it is one
    ``_decode_by_value`` accepts as it is, (False, None) for anything else, which that then
    decodes and refuses with its reason.

    Only for data of at most ``max_values`` bytes: every value takes at least a byte, so such
    data cannot hold more values than the limit, and decoding it all at once costs no more
    than the limit allows. msgpack checks the same per-item limits as the reader; what it does
    not check (depth, key types, the value types of the protocol) is checked on the result.
    """
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            max_str_len=limits.max_str,
            max_bin_len=limits.max_bin,
            max_array_len=limits.max_array,
            max_map_len=limits.max_map,
            max_ext_len=0,
        )
    except Exception:  # whatever it is, the reader says it properly
        return False, None
    return _plain(value, 0, limits.max_depth), value


def _plain(value: object, depth: int, max_depth: int) -> bool:
    """Whether every value down from here is a protocol value with string keys, no deeper
    than ``max_depth``."""
    if depth > max_depth:
        return False
    kind = type(value)
    if kind is not dict and kind is not list:
        return kind in _PLAIN_SCALARS
    # Loops, and scalars checked in place: a heartbeat's body is a map of a dozen scalars,
    # and a call and a generator step for each was most of the Python its decoding cost.
    scalars_fit = depth < max_depth
    if kind is dict:
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str:
                return False
            if not (scalars_fit and type(item) in _PLAIN_SCALARS) and not _plain(
                item, depth + 1, max_depth
            ):
                return False
        return True
    for item in value:  # type: ignore[attr-defined]
        if not (scalars_fit and type(item) in _PLAIN_SCALARS) and not _plain(
            item, depth + 1, max_depth
        ):
            return False
    return True


def _decode_by_value(data: bytes, limits: DecodeLimits) -> Value:
    reader = _Reader(data, limits)
    try:
        value = reader.value(0)
        extra = len(data) - reader.unpacker.tell()
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise _not_msgpack(str(exc) or type(exc).__name__) from exc
    if extra:
        raise _not_msgpack(f"{extra} bytes after the value")
    return value


def _not_msgpack(reason: str) -> BadRequest:
    return BadRequest(f"The message is not msgpack within the protocol's limits ({reason}).")


class _Reader:
    """Decodes ``data`` value by value; containers through their headers, so a declared
    length is checked before anything it announces is read."""

    def __init__(self, data: bytes, limits: DecodeLimits) -> None:
        self.data = data
        self.limits = limits
        self.values_left = limits.max_values
        self.unpacker = msgpack.Unpacker(
            raw=False,
            max_buffer_size=max(len(data), 1),
            max_str_len=limits.max_str,
            max_bin_len=limits.max_bin,
            max_ext_len=0,
        )
        self.unpacker.feed(data)

    def value(self, depth: int) -> Value:
        if depth > self.limits.max_depth:
            raise BadRequest("The message nests deeper than the protocol allows.")
        head = self._next_head()
        if head in _MAP_HEADS:
            entries = self._length(self.unpacker.read_map_header(), self.limits.max_map, "map")
            out: dict[str, Value] = {}
            for _ in range(entries):
                key = self._key()
                out[key] = self.value(depth + 1)
            return out
        if head in _ARRAY_HEADS:
            items = self._length(self.unpacker.read_array_header(), self.limits.max_array, "array")
            return [self.value(depth + 1) for _ in range(items)]
        scalar = self.unpacker.unpack()
        if scalar is None or isinstance(scalar, bool | int | str | bytes):
            return cast(Value, scalar)
        raise BadRequest(f"Values of type {type(scalar).__name__} are not part of the protocol.")

    def _key(self) -> str:
        if self._next_head() in _CONTAINER_HEADS:
            raise BadRequest("Map keys must be strings.")
        key = self.unpacker.unpack()
        if not isinstance(key, str):
            raise BadRequest("Map keys must be strings.")
        return key

    def _next_head(self) -> int:
        """The first byte of the next value, counted against ``max_values``."""
        self.values_left -= 1
        if self.values_left < 0:
            raise BadRequest(
                f"The message holds more than {self.limits.max_values} values; "
                "nothing past the limit is decoded."
            )
        at: int = self.unpacker.tell()
        if at >= len(self.data):
            raise _not_msgpack("it ends inside a value")
        return self.data[at]

    @staticmethod
    def _length(declared: int, limit: int, kind: str) -> int:
        if declared > limit:
            raise _not_msgpack(f"{declared} exceeds max_{kind}({limit})")
        return declared

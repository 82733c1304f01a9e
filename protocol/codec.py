"""Deterministic msgpack encoding and decoding with hard limits.

Encoding sorts every map's keys so one value has one byte string. Decoding refuses
anything above the size cap before the decoder sees it, bounds every string, binary,
array and map, refuses extension types (msgpack's timestamp included), non-string map
keys and nesting deeper than the envelope can need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

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


DEFAULT_LIMITS = DecodeLimits()


def _canonical(value: Value) -> Value:
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def encode(value: Value) -> bytes:
    return cast(bytes, msgpack.packb(_canonical(value), use_bin_type=True))


def decode(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Value:
    if len(data) > limits.max_message:
        raise BadRequest(
            f"The message is {len(data)} bytes; the limit is {limits.max_message}. "
            "Nothing above the limit is decoded."
        )
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=limits.max_str,
            max_bin_len=limits.max_bin,
            max_array_len=limits.max_array,
            max_map_len=limits.max_map,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        reason = str(exc) or type(exc).__name__
        raise BadRequest(
            f"The message is not msgpack within the protocol's limits ({reason})."
        ) from exc
    _check_shape(value, limits.max_depth)
    return cast(Value, value)


def _check_shape(value: Any, depth_left: int) -> None:
    if depth_left < 0:
        raise BadRequest("The message nests deeper than the protocol allows.")
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, list):
        for item in value:
            _check_shape(item, depth_left - 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadRequest("Map keys must be strings.")
            _check_shape(item, depth_left - 1)
        return
    raise BadRequest(f"Values of type {type(value).__name__} are not part of the protocol.")

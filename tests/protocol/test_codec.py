"""Canonical msgpack encoding and decoding with hard limits (protocol.codec)."""

from __future__ import annotations

import datetime
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.catalogue import Role
from protocol.codec import DEFAULT_LIMITS, DecodeLimits, Value
from protocol.errors import BadRequest

if TYPE_CHECKING:
    from tests.protocol.conftest import World

LIMITS = DEFAULT_LIMITS

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.text(max_size=30),
        st.binary(max_size=30),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=15,
)


def levels(value: Value) -> int:
    """How far below the top the deepest value sits (the top value is at level 0)."""
    if isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return 0
    if children:
        return 1 + max(levels(child) for child in children)
    return 0


def nest(depth: int, inner: Value = None) -> Value:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip(value: Value) -> None:
    """Every protocol value round trips, except exactly those nested deeper than max_depth."""
    if levels(value) > LIMITS.max_depth:
        with pytest.raises(BadRequest, match="nests deeper"):
            codec.decode(codec.encode(value))
        return
    decoded = codec.decode(codec.encode(value))
    assert decoded == value
    assert type(decoded) is type(value)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, min_size=2, max_size=6), st.randoms())
def test_encoding_ignores_insertion_order(mapping: dict[str, Value], rnd: random.Random) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    assert codec.encode(dict(items)) == codec.encode(mapping)


def test_map_keys_are_sorted_and_bytes_are_bin() -> None:
    data = codec.encode({"b": b"\x01", "a": "x", "c": {"z": 1, "y": 2}})
    assert data == (
        b"\x83"  # map of 3
        b"\xa1a\xa1x"  # "a": str "x"
        b"\xa1b\xc4\x01\x01"  # "b": bin 8 of 1 byte
        b"\xa1c\x82\xa1y\x02\xa1z\x01"  # "c": {"y": 2, "z": 1}
    )


def test_oversize_is_refused_without_decoding(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    calls: list[int] = []

    # msgpack has no type hints, so its Unpacker is Any to mypy; the spy must subclass it.
    class Spy(msgpack.Unpacker):  # type: ignore[misc]
        def feed(self, data: bytes) -> None:
            calls.append(len(data))
            super().feed(data)

    unpackb = msgpack.unpackb

    def spy_unpackb(data: bytes, **limits: object) -> object:
        calls.append(len(data))
        return unpackb(data, **limits)

    # protocol.codec's msgpack is this module: patch it where codec looks it up.
    monkeypatch.setattr(msgpack, "Unpacker", Spy)
    monkeypatch.setattr(msgpack, "unpackb", spy_unpackb)
    oversize = b"\x90" + bytes(LIMITS.max_message)
    assert len(oversize) == LIMITS.max_message + 1
    with pytest.raises(BadRequest, match="limit"):
        codec.decode(oversize)
    receiver, _ = world.receiver(Role.ENGINE)
    with pytest.raises(BadRequest, match="limit"):
        receiver.receive((oversize, bytes(64)), world.now_ms)
    small = DecodeLimits(max_message=10)
    with pytest.raises(BadRequest, match="limit is 10"):
        codec.decode(codec.encode("x" * 10), small)
    assert calls == []
    # The spy is live: a message within the limit does reach the decoder.
    assert codec.decode(codec.encode("x" * 7), small) == "x" * 7
    assert calls == [8]


@pytest.mark.parametrize(
    "data",
    [
        b"\xdd\xff\xff\xff\xff",  # array 32 of 2**32-1 items
        b"\xdb\xff\xff\xff\xff",  # str 32 of 2**32-1 bytes
        b"\xc6\xff\xff\xff\xff",  # bin 32
        b"\xdf\xff\xff\xff\xff",  # map 32
        b"\xc9\xff\xff\xff\xff\x01",  # ext 32
        b"\x91" * 100_000 + b"\xc0",  # 100000 nested arrays
        b"\x81\xa1k" * 100_000 + b"\xc0",  # 100000 nested maps
        b"\x91" * 100_000,  # and truncated
    ],
    ids=lambda d: d[:6].hex() + f"-{len(d)}",
)
def test_hostile_lengths_and_nesting_are_refused_cheaply(data: bytes) -> None:
    start = time.perf_counter()
    with pytest.raises(BadRequest):
        codec.decode(data)
    assert time.perf_counter() - start < 0.5


def test_depth_limit() -> None:
    assert codec.decode(codec.encode(nest(LIMITS.max_depth))) == nest(LIMITS.max_depth)
    with pytest.raises(BadRequest, match="nests deeper"):
        codec.decode(codec.encode(nest(LIMITS.max_depth + 1)))
    shallow = DecodeLimits(max_depth=2)
    assert codec.decode(codec.encode({"a": [1]}), shallow) == {"a": [1]}
    with pytest.raises(BadRequest, match="nests deeper"):
        codec.decode(codec.encode({"a": [[1]]}), shallow)


@pytest.mark.parametrize(
    ("name", "make", "size_of"),
    [
        ("max_array", lambda n: [None] * n, len),
        ("max_map", lambda n: {f"k{i}": None for i in range(n)}, len),
        ("max_str", lambda n: "s" * n, len),
        ("max_bin", lambda n: b"b" * n, len),
    ],
)
def test_container_limits(
    name: str, make: Callable[[int], Value], size_of: Callable[[Value], int]
) -> None:
    limit = getattr(LIMITS, name)
    at_limit = make(limit)
    assert size_of(at_limit) == limit
    assert codec.decode(codec.encode(at_limit)) == at_limit
    with pytest.raises(BadRequest, match="exceeds"):
        codec.decode(codec.encode(make(limit + 1)))


def test_values_are_counted_as_they_are_decoded() -> None:
    # The top array, three full arrays of 256 values, and one more array: max_values in all.
    def payload(last_items: int) -> list[Any]:
        return [[None] * 255] * 3 + [[None] * last_items]

    assert LIMITS.max_values == 1 + 3 * 256 + 1 + 254
    assert codec.decode(codec.encode(payload(254))) == payload(254)
    with pytest.raises(BadRequest, match=f"more than {LIMITS.max_values} values"):
        codec.decode(codec.encode(payload(255)))
    # A megabyte of empty maps, shallow enough for max_depth: refused at the count, not after
    # building a million maps (which takes the decoder seconds).
    leaf = b"\xdc\x01\x00" + b"\x80" * 256
    middle = b"\xdc\x01\x00" + leaf * 256
    bomb = b"\x9f" + middle * 15
    assert len(bomb) <= LIMITS.max_message
    start = time.perf_counter()
    with pytest.raises(BadRequest, match="values"):
        codec.decode(bomb)
    assert time.perf_counter() - start < 0.1


def test_limits_are_the_documented_defaults() -> None:
    # docs/protocol.md states these numbers; test_docs_match checks the doc against them.
    assert DecodeLimits() == DEFAULT_LIMITS
    assert LIMITS.max_message >= LIMITS.max_str


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb(msgpack.ExtType(1, b"abc")),
        msgpack.packb(msgpack.ExtType(5, b"")),
        msgpack.packb(msgpack.Timestamp(1_700_000_000, 0)),
        msgpack.packb(msgpack.Timestamp(2**40, 5)),  # the 12-byte timestamp form
        msgpack.packb(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), datetime=True),
        msgpack.packb({"body": msgpack.Timestamp(1, 0)}),
        b"\xd4\x01\x00",  # fixext 1
        b"\xc7\x00\x01",  # ext 8 with no data
    ],
    ids=lambda d: d[:3].hex(),
)
def test_extension_types_are_refused(data: bytes) -> None:
    with pytest.raises(BadRequest):
        codec.decode(data)


@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {b"k": 1}, {None: 1}, {True: 1}, {"ok": {2: 1}}, [{b"x": 1}]],
    ids=repr,
)
def test_non_string_map_keys_are_refused(value: object) -> None:
    data = msgpack.packb(value, use_bin_type=True, strict_types=False)
    with pytest.raises(BadRequest, match="key"):
        codec.decode(data)


@pytest.mark.parametrize("value", [1.5, float("nan"), [0.0], {"a": 1e300}], ids=repr)
def test_floats_are_refused(value: object) -> None:
    with pytest.raises(BadRequest, match="float"):
        codec.decode(msgpack.packb(value, use_bin_type=True))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x92\x01", b"\xa3ab", b"\x01\x02", b"\xa2\xff\xfe"],
    ids=lambda d: d.hex() or "empty",
)
def test_malformed_msgpack_is_refused(data: bytes) -> None:
    with pytest.raises(BadRequest, match="not msgpack"):
        codec.decode(data)


# Anything msgpack can carry, protocol value or not: floats, extension types, non-string keys,
# nesting past max_depth, containers past their limits.
anything = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=40),
        st.binary(max_size=40),
        st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=3)),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=8),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.binary(max_size=3)), children, max_size=8
        ),
    ),
    max_leaves=40,
)


def decoded_or_refused(
    decode: Callable[[bytes, DecodeLimits], Value], data: bytes
) -> tuple[str, str] | tuple[str, Value, str]:
    try:
        value = decode(data, LIMITS)
    except BadRequest as exc:
        return "refused", exc.sentence
    return "decoded", value, repr(value)


def assert_same_as_the_reader(data: bytes) -> None:
    """Short data goes through msgpack's C decoder first: it must decode exactly what the
    value-by-value reader decodes, and leave every refusal (and its reason) to the reader."""
    assert len(data) <= LIMITS.max_values
    assert decoded_or_refused(codec.decode, data) == decoded_or_refused(
        codec._decode_by_value, data
    )


@settings(max_examples=600, deadline=None)
@given(anything)
def test_short_messages_decode_as_the_reader_decodes_them(value: object) -> None:
    data = msgpack.packb(value, use_bin_type=True, strict_types=False)
    if len(data) <= LIMITS.max_values:
        assert_same_as_the_reader(data)


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=LIMITS.max_values))
def test_short_garbage_is_refused_as_the_reader_refuses_it(data: bytes) -> None:
    assert_same_as_the_reader(data)


@pytest.mark.parametrize(
    "value",
    [
        nest(LIMITS.max_depth),
        nest(LIMITS.max_depth + 1),
        {"a": nest(LIMITS.max_depth - 1, {"k": 1})},
        [None] * LIMITS.max_array,
        [None] * (LIMITS.max_array + 1),
        {f"k{i}": None for i in range(LIMITS.max_map + 1)},
        {"k": b"\x01" * 300, b"k": 1},
        ["ok", 1.5],
        msgpack.Timestamp(1, 0),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_the_edges_decode_as_the_reader_decodes_them(value: object) -> None:
    data = msgpack.packb(value, use_bin_type=True, strict_types=False, datetime=False)
    assert_same_as_the_reader(data)
    assert_same_as_the_reader(data + b"\xc0")  # a value too many
    assert_same_as_the_reader(data[:-1])  # cut short


def test_short_messages_take_the_fast_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast way is taken (the speed is the point): a heartbeat-sized envelope never
    reaches the value-by-value reader, and one byte over max_values always does."""
    readers: list[int] = []

    class Spy(codec._Reader):
        def __init__(self, data: bytes, limits: DecodeLimits) -> None:
            readers.append(len(data))
            super().__init__(data, limits)

    monkeypatch.setattr(codec, "_Reader", Spy)
    short = codec.encode({"body": {"k": "v" * 200}, "id": b"i" * 16, "v": 1})
    decoded = codec.decode(short)
    assert isinstance(decoded, dict)
    assert decoded["v"] == 1 and readers == []
    long = codec.encode("v" * (LIMITS.max_values - 2))
    assert len(long) == LIMITS.max_values + 1
    assert codec.decode(long) == "v" * (LIMITS.max_values - 2) and readers == [len(long)]

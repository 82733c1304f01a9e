"""Join string parsing: what a pasted line may and may not carry."""

from __future__ import annotations

import pytest

from protocol import joinstring
from protocol.errors import BadRequest

CURVE, PIN = bytes(range(32)), bytes(range(32, 64))


def with_proxy_port(port: str) -> str:
    keys = f"curve={joinstring.b64(CURVE)}&pin={joinstring.b64(PIN)}"
    return f"wsproxy://engine.example.com:6101/?{keys}&port={port}"


def test_an_ascii_proxy_port_is_read() -> None:
    assert joinstring.parse(with_proxy_port("6100")).proxy_port == 6100


# Found by `make fuzz`: str.isdigit() is true for these, and int() then raised ValueError
# ('²') or silently read another port ('٣' is 3).
@pytest.mark.parametrize("port", ["\u00b2", "%C2%B2", "\u0663", "\uff16\uff11\uff10\uff10"])
def test_a_proxy_port_of_non_ascii_digits_is_refused(port: str) -> None:
    with pytest.raises(BadRequest, match="proxy port is damaged"):
        joinstring.parse(with_proxy_port(port))


@pytest.mark.parametrize(("authority", "port"), [("engine.example.com", 6101), ("e.example:7", 7)])
def test_the_engine_port_defaults_only_when_absent(authority: str, port: int) -> None:
    keys = f"curve={joinstring.b64(CURVE)}&pin={joinstring.b64(PIN)}"
    assert joinstring.parse(f"wsproxy://{authority}/?{keys}").port == port


def test_an_engine_port_of_zero_is_refused_not_replaced() -> None:
    keys = f"curve={joinstring.b64(CURVE)}&pin={joinstring.b64(PIN)}"
    with pytest.raises(BadRequest, match="engine port is 0"):
        joinstring.parse(f"wsproxy://engine.example.com:0/?{keys}")

"""The message-rate ceiling: the floor it is computed from, and what the report says of it."""

from __future__ import annotations

from bench import exchange_floor
from bench.scenarios.message_rate import TARGET, ceiling_verdict


def test_the_floor_counts_the_protocol_the_socket_and_curve_each_apart() -> None:
    floor = exchange_floor.measure(50)
    # A seal and a checked receive hold a signature and a verification: tens of µs at least.
    assert floor.protocol_us > 20
    assert floor.zmq_us > 0 and floor.curve_us >= 0


def test_the_verdict_says_which_part_keeps_the_ceiling_below_the_target() -> None:
    out_of_reach = ceiling_verdict(0.5, 0.6, 80)
    assert "out of reach on this machine with CurveZMQ on" in out_of_reach
    checks = ceiling_verdict(0.55, 0.83, 80)
    assert "no daemon built on this receive pipeline" in checks and "(80 µs)" in checks
    assert "0.83" in checks
    assert "the daemon's own work" in ceiling_verdict(TARGET + 0.1, 0.9, 30)

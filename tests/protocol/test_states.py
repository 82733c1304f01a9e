"""The enrollment state machines: every allowed move, and every refusal (protocol.states)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import pytest

from protocol.errors import BadRequest, TransitionError
from protocol.states import (
    ENGINE_TABLE,
    PROXY_TABLE,
    EngineEvent,
    EngineState,
    Machine,
    ProxyEvent,
    ProxyState,
    engine_machine,
    proxy_machine,
)

# The two tables have different enums for keys; Mapping's key type is invariant, so only Any
# holds both.
Table = Mapping[Any, Mapping[Any, StrEnum]]
MACHINES: dict[str, tuple[Table, type[StrEnum], type[StrEnum]]] = {
    "proxy": (PROXY_TABLE, ProxyState, ProxyEvent),
    "engine": (ENGINE_TABLE, EngineState, EngineEvent),
}
ALLOWED = [
    (side, state, event, target)
    for side, (table, _, _) in MACHINES.items()
    for state, moves in table.items()
    for event, target in moves.items()
]
REFUSED = [
    (side, state, event)
    for side, (table, states, events) in MACHINES.items()
    for state, event in itertools.product(states, events)
    if event not in table[state]
]


def row_id(value: object) -> str:
    return "-".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def test_tables_cover_every_state_and_only_their_own_enums() -> None:
    for table, states, events in MACHINES.values():
        assert set(table) == set(states)
        for moves in table.values():
            assert all(isinstance(e, events) for e in moves)
            assert all(isinstance(s, states) for s in moves.values())
    total = sum(len(s) * len(e) for _, s, e in MACHINES.values())
    assert len(ALLOWED) + len(REFUSED) == total


@pytest.mark.parametrize(("side", "state", "event", "target"), ALLOWED, ids=row_id)
def test_every_allowed_transition(
    side: str, state: StrEnum, event: StrEnum, target: StrEnum
) -> None:
    table = MACHINES[side][0]
    machine = Machine(table, state)
    assert event in machine.allowed()
    assert machine.next_state(event) is target
    assert machine.state is state  # next_state does not move
    assert machine.fire(event) is target
    assert machine.state is target


@pytest.mark.parametrize(("side", "state", "event"), REFUSED, ids=row_id)
def test_every_other_pair_is_refused_by_name(side: str, state: StrEnum, event: StrEnum) -> None:
    table = MACHINES[side][0]
    machine = Machine(table, state)
    assert event not in machine.allowed()
    with pytest.raises(TransitionError) as refused:
        machine.fire(event)
    message = str(refused.value)
    assert f"'{event.value}'" in message
    assert f"'{state.value}'" in message
    for allowed in table[state]:
        assert allowed.value in message
    if not table[state]:
        assert "final state" in message
    assert machine.state is state  # a refused event changes nothing
    assert isinstance(refused.value, BadRequest)


def test_factories_start_where_an_enrollment_starts() -> None:
    assert proxy_machine().state is ProxyState.IDLE
    assert engine_machine().state is EngineState.NEW
    assert engine_machine(EngineState.REVOKED).state is EngineState.REVOKED


def test_proxy_happy_path() -> None:
    machine = proxy_machine()
    for event in ("send_request", "got_pending", "got_approved", "installed", "report_sent"):
        machine.fire(ProxyEvent(event))
    assert machine.fire(ProxyEvent.GOT_ACTIVATED) is ProxyState.ACTIVE
    assert machine.allowed() == {ProxyEvent.SEND_RENEWAL}  # an active proxy can only renew


def test_proxy_renewal_runs_the_install_steps_again() -> None:
    machine = proxy_machine(ProxyState.ACTIVE)
    for event in ("send_renewal", "got_approved", "installed", "report_sent", "got_activated"):
        machine.fire(ProxyEvent(event))
    assert machine.state is ProxyState.ACTIVE


def test_engine_revoked_row_can_rejoin_only_with_a_token() -> None:
    machine = engine_machine(EngineState.REVOKED)
    assert machine.allowed() == {EngineEvent.REQUEST_WITH_TOKEN}
    with pytest.raises(TransitionError):
        machine.fire(EngineEvent.REQUEST_WITHOUT_TOKEN)
    assert machine.fire(EngineEvent.REQUEST_WITH_TOKEN) is EngineState.APPROVED

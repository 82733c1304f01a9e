"""Enrollment state machines for both roles, as tables (h11's ``_state.py`` is the model).

Each table maps a state to the events allowed in it and the state each event leads to.
Anything not in the table is refused with a TransitionError that names what *is*
allowed, so a daemon can never drift into a state the protocol does not know.

Proxy side (one enrollment, as ``proxy join`` lives it):

    IDLE --send_request--> REQUESTED --got_pending--> PENDING --got_approved--> APPROVED
    APPROVED --installed--> INSTALLED --report_sent--> REPORTED --got_activated--> ACTIVE
    REPORTED --got_not_activated--> ENROLLED      (token said --no-activate, or it failed)
    ACTIVE/ENROLLED --send_renewal--> REQUESTED    (renewal: the same steps, no token)
    REQUESTED/PENDING --got_rejected--> REJECTED;  APPROVED --install_failed--> FAILED

Engine side (one row of the registry, per proxy FQDN):

    NEW --request_without_token--> PENDING --accept--> APPROVED --report_ok--> INSTALLED
    NEW/any --request_with_token--> APPROVED       (a fresh token also replaces a lost key)
    INSTALLED --activated--> ACTIVE | --activation_failed--> ACTIVATION_FAILED
    INSTALLED --skip_activation--> ENROLLED;  ACTIVE --deactivate--> ENROLLED
    PENDING --reject--> REJECTED;  any but REVOKED --revoke--> REVOKED
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from protocol.errors import TransitionError


class ProxyState(StrEnum):
    IDLE = "idle"
    REQUESTED = "requested"
    PENDING = "pending"
    APPROVED = "approved"
    INSTALLED = "installed"
    REPORTED = "reported"
    ACTIVE = "active"
    ENROLLED = "enrolled"
    REJECTED = "rejected"
    FAILED = "failed"


class ProxyEvent(StrEnum):
    SEND_REQUEST = "send_request"
    GOT_PENDING = "got_pending"
    GOT_APPROVED = "got_approved"
    GOT_REJECTED = "got_rejected"
    INSTALLED = "installed"
    INSTALL_FAILED = "install_failed"
    REPORT_SENT = "report_sent"
    GOT_ACTIVATED = "got_activated"
    GOT_NOT_ACTIVATED = "got_not_activated"
    SEND_RENEWAL = "send_renewal"


class EngineState(StrEnum):
    NEW = "new"
    PENDING = "pending"
    APPROVED = "approved"
    INSTALLED = "installed"
    ACTIVE = "active"
    ACTIVATION_FAILED = "activation_failed"
    ENROLLED = "enrolled"
    REJECTED = "rejected"
    REVOKED = "revoked"


class EngineEvent(StrEnum):
    REQUEST_WITH_TOKEN = "request_with_token"
    REQUEST_WITHOUT_TOKEN = "request_without_token"
    ACCEPT = "accept"
    REJECT = "reject"
    REPORT_OK = "report_ok"
    REPORT_FAILED = "report_failed"
    ACTIVATED = "activated"
    ACTIVATION_FAILED = "activation_failed"
    SKIP_ACTIVATION = "skip_activation"
    RETRY_ACTIVATION = "retry_activation"
    DEACTIVATE = "deactivate"
    REVOKE = "revoke"


P, PE = ProxyState, ProxyEvent

PROXY_TABLE: Mapping[ProxyState, Mapping[ProxyEvent, ProxyState]] = {
    P.IDLE: {PE.SEND_REQUEST: P.REQUESTED},
    P.REQUESTED: {
        PE.SEND_REQUEST: P.REQUESTED,  # retry after a timeout: same key, same CSR
        PE.GOT_PENDING: P.PENDING,
        PE.GOT_APPROVED: P.APPROVED,
        PE.GOT_REJECTED: P.REJECTED,
    },
    P.PENDING: {
        PE.SEND_REQUEST: P.PENDING,  # polling while an operator decides
        PE.GOT_PENDING: P.PENDING,
        PE.GOT_APPROVED: P.APPROVED,
        PE.GOT_REJECTED: P.REJECTED,
    },
    P.APPROVED: {PE.INSTALLED: P.INSTALLED, PE.INSTALL_FAILED: P.FAILED},
    P.INSTALLED: {PE.REPORT_SENT: P.REPORTED},
    P.REPORTED: {
        PE.REPORT_SENT: P.REPORTED,  # retry after a timeout
        PE.GOT_ACTIVATED: P.ACTIVE,
        PE.GOT_NOT_ACTIVATED: P.ENROLLED,
    },
    # Renewal runs the same steps again, signed with the identity key instead of a token.
    P.ACTIVE: {PE.SEND_RENEWAL: P.REQUESTED},
    P.ENROLLED: {PE.SEND_RENEWAL: P.REQUESTED},
    P.REJECTED: {},
    P.FAILED: {PE.REPORT_SENT: P.FAILED},  # the engine hears of the failure
}

E, EE = EngineState, EngineEvent
_REVOCABLE = {EE.REVOKE: E.REVOKED, EE.REQUEST_WITH_TOKEN: E.APPROVED}

ENGINE_TABLE: Mapping[EngineState, Mapping[EngineEvent, EngineState]] = {
    E.NEW: {**_REVOCABLE, EE.REQUEST_WITHOUT_TOKEN: E.PENDING},
    E.PENDING: {
        **_REVOCABLE,
        EE.REQUEST_WITHOUT_TOKEN: E.PENDING,
        EE.ACCEPT: E.APPROVED,
        EE.REJECT: E.REJECTED,
    },
    E.APPROVED: {
        **_REVOCABLE,
        EE.REQUEST_WITHOUT_TOKEN: E.APPROVED,  # repeated request: same certificate again
        EE.REPORT_OK: E.INSTALLED,
        EE.REPORT_FAILED: E.APPROVED,
    },
    E.INSTALLED: {
        **_REVOCABLE,
        EE.REPORT_OK: E.INSTALLED,
        EE.ACTIVATED: E.ACTIVE,
        EE.ACTIVATION_FAILED: E.ACTIVATION_FAILED,
        EE.SKIP_ACTIVATION: E.ENROLLED,
    },
    E.ACTIVATION_FAILED: {
        **_REVOCABLE,
        EE.REPORT_OK: E.ACTIVATION_FAILED,
        EE.RETRY_ACTIVATION: E.INSTALLED,
    },
    E.ACTIVE: {**_REVOCABLE, EE.REPORT_OK: E.ACTIVE, EE.DEACTIVATE: E.ENROLLED},
    E.ENROLLED: {**_REVOCABLE, EE.REPORT_OK: E.ENROLLED, EE.RETRY_ACTIVATION: E.INSTALLED},
    E.REJECTED: {**_REVOCABLE, EE.REQUEST_WITHOUT_TOKEN: E.REJECTED},
    E.REVOKED: {EE.REQUEST_WITH_TOKEN: E.APPROVED},
}

S = TypeVar("S", bound=StrEnum)
V = TypeVar("V", bound=StrEnum)


class Machine(Generic[S, V]):
    def __init__(self, table: Mapping[S, Mapping[V, S]], state: S) -> None:
        self._table: Mapping[S, Mapping[V, S]] = table
        self.state: S = state

    def allowed(self) -> frozenset[V]:
        return frozenset(self._table[self.state])

    def next_state(self, event: V) -> S:
        """The state ``event`` would lead to, without moving; refuses a disallowed event."""
        try:
            return self._table[self.state][event]
        except KeyError:
            allowed = ", ".join(sorted(self._table[self.state])) or "nothing (final state)"
            raise TransitionError(
                f"'{event}' is not allowed while the enrollment is '{self.state}'; "
                f"allowed now: {allowed}."
            ) from None

    def fire(self, event: V) -> S:
        self.state = self.next_state(event)
        return self.state


def proxy_machine(state: ProxyState = ProxyState.IDLE) -> Machine[ProxyState, ProxyEvent]:
    return Machine(PROXY_TABLE, state)


def engine_machine(state: EngineState = EngineState.NEW) -> Machine[EngineState, EngineEvent]:
    return Machine(ENGINE_TABLE, state)

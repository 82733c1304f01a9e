"""Typed refusals and their wire codes (protocol.errors)."""

from __future__ import annotations

import pytest

from protocol import errors
from protocol.errors import ErrorCode, InternalError, ProtocolError, error_for_code


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_for_code_round_trip(code: ErrorCode) -> None:
    err = error_for_code(code.value, "Why it was refused.")
    assert isinstance(err, ProtocolError)
    assert err.code is code
    assert err.sentence == "Why it was refused."
    assert str(err) == f"{code.value}: Why it was refused."
    again = error_for_code(err.code.value, err.sentence)
    assert type(again) is type(err)


def test_each_code_has_its_own_class() -> None:
    classes = {type(error_for_code(code.value, "x")) for code in ErrorCode}
    assert len(classes) == len(ErrorCode)
    assert all(issubclass(cls, ProtocolError) for cls in classes)


@pytest.mark.parametrize("code", ["", "nope", "BAD_REQUEST", "internal "])
def test_unknown_code_becomes_internal(code: str) -> None:
    err = error_for_code(code, "Something odd.")
    assert type(err) is InternalError
    assert err.code is ErrorCode.INTERNAL
    assert err.sentence == "Something odd."


def test_transition_error_is_a_bad_request() -> None:
    assert issubclass(errors.TransitionError, errors.BadRequest)
    assert errors.TransitionError("x").code is ErrorCode.BAD_REQUEST

"""A small schema language for message bodies: field types, lengths and ranges.

Bodies are closed: a field the schema does not name is refused, so a peer cannot smuggle
data past validation, and a missing required field is refused before any handler runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol.codec import Value
from protocol.errors import BadRequest

# An unknown field's name comes from the sender and goes back in the error's sentence,
# which the error message's own schema caps: show only the start of a long one.
MAX_NAME_SHOWN = 64


@dataclass(frozen=True)
class Str:
    max_len: int
    pattern: str | None = None
    choices: frozenset[str] | None = None
    # Compiled once: re's own cache lookup was half the cost of checking a short field.
    _matcher: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        matcher = re.compile(self.pattern) if self.pattern is not None else None
        object.__setattr__(self, "_matcher", matcher)

    def check(self, name: str, value: Value) -> None:
        if not isinstance(value, str):
            raise BadRequest(f"Field {name!r} must be a string.")
        if len(value) > self.max_len:
            raise BadRequest(f"Field {name!r} is longer than {self.max_len} characters.")
        if self.choices is not None and value not in self.choices:
            raise BadRequest(f"Field {name!r} must be one of {sorted(self.choices)}.")
        if self._matcher is not None and self._matcher.fullmatch(value) is None:
            raise BadRequest(f"Field {name!r} is not in the expected form.")


@dataclass(frozen=True)
class Bin:
    max_len: int
    exact: bool = False

    def check(self, name: str, value: Value) -> None:
        if not isinstance(value, bytes):
            raise BadRequest(f"Field {name!r} must be binary.")
        if self.exact and len(value) != self.max_len:
            raise BadRequest(f"Field {name!r} must be exactly {self.max_len} bytes.")
        if len(value) > self.max_len:
            raise BadRequest(f"Field {name!r} is longer than {self.max_len} bytes.")


@dataclass(frozen=True)
class Int:
    low: int
    high: int

    def check(self, name: str, value: Value) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"Field {name!r} must be an integer.")
        if not self.low <= value <= self.high:
            raise BadRequest(f"Field {name!r} must lie between {self.low} and {self.high}.")


@dataclass(frozen=True)
class Bool:
    def check(self, name: str, value: Value) -> None:
        if not isinstance(value, bool):
            raise BadRequest(f"Field {name!r} must be true or false.")


FieldType = Str | Bin | Int | Bool


@dataclass(frozen=True)
class Schema:
    required: Mapping[str, FieldType] = field(default_factory=dict)
    optional: Mapping[str, FieldType] = field(default_factory=dict)

    def check(self, body: Value) -> dict[str, Value]:
        if not isinstance(body, dict):
            raise BadRequest("The message body must be a map.")
        for name in body:
            if name not in self.required and name not in self.optional:
                shown = name if len(name) <= MAX_NAME_SHOWN else name[:MAX_NAME_SHOWN] + "..."
                raise BadRequest(f"Field {shown!r} is not part of this message type.")
        for name, kind in self.required.items():
            if name not in body:
                raise BadRequest(f"Field {name!r} is required.")
            kind.check(name, body[name])
        for name, kind in self.optional.items():
            if name in body and body[name] is not None:
                kind.check(name, body[name])
        return body

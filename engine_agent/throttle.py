"""Leaky-bucket budgets kept per key (an address, a token id), in bounded memory.

Each charge raises its key's level by one; the level drains at ``refill_per_s``. A key is
blocked while one more charge would take its level above ``burst``. Callers refuse a blocked key
*without* charging it, so someone who keeps trying is held to exactly the refill rate.

No clock inside: the caller passes ``now`` (monotonic seconds), as the protocol modules do.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True)
class Budget:
    burst: int
    refill_per_s: float

    @classmethod
    def per_minute(cls, count: int) -> Budget:
        """``count`` at once, then ``count`` more over each minute."""
        return cls(count, count / 60.0)


@dataclass
class _Level:
    value: float
    at: float


class Throttle:
    def __init__(self, budget: Budget, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.budget = budget
        self.max_keys = max_keys
        self._levels: OrderedDict[str, _Level] = OrderedDict()

    def __len__(self) -> int:
        return len(self._levels)

    def blocked(self, key: str, now: float) -> bool:
        return self._level(key, now) + 1 > self.budget.burst

    def charge(self, key: str, now: float) -> bool:
        """Count one against ``key``; True when this charge is the one that blocks it."""
        was_blocked = self.blocked(key, now)
        level = self._level(key, now) + 1
        self._levels[key] = _Level(level, now)
        self._levels.move_to_end(key)
        # Bounded memory: the key charged longest ago goes first. Someone with more addresses
        # than this can make the engine forget a blocked one; the global budget bounds them.
        while len(self._levels) > self.max_keys:
            self._levels.popitem(last=False)
        return not was_blocked and self.blocked(key, now)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        excess = self._level(key, now) + 1 - self.budget.burst
        return max(0.0, excess / self.budget.refill_per_s)

    def _level(self, key: str, now: float) -> float:
        held = self._levels.get(key)
        if held is None:
            return 0.0
        return max(0.0, held.value - (now - held.at) * self.budget.refill_per_s)

"""When to renew: at about two thirds of the certificate's lifetime, with jitter.

The jitter (a fraction of the lifetime, drawn once per daemon start) keeps a fleet that
was enrolled together from renewing together. A failed renewal is retried after a delay
that grows, capped, so a down engine is not hammered.
"""

from __future__ import annotations

import random

# The two-thirds rule itself is shared with the engine, which reports when renewal is due.
from protocol.renewal import JITTER as JITTER
from protocol.renewal import renew_due as renew_due

RETRY_FIRST_S = 60
RETRY_MAX_S = 3600
# After a (re)connect the first heartbeat, which tells the engine where to push, comes after
# a random delay up to this: soon, but a fleet cut off together does not beat in one instant.
RECONNECT_SPREAD_S = 5.0


def draw_jitter(rng: random.Random | None = None) -> float:
    return (rng or random.Random()).uniform(-JITTER, JITTER)


def retry_delay(failures: int) -> int:
    return int(min(RETRY_FIRST_S * 2 ** max(failures - 1, 0), RETRY_MAX_S))


def beat_after_reconnect(interval: float, rng: random.Random | None = None) -> float:
    return (rng or random.Random()).uniform(0, min(interval, RECONNECT_SPREAD_S))

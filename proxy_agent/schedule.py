"""When to renew: at about two thirds of the certificate's lifetime, with jitter.

The jitter (a fraction of the lifetime, drawn once per daemon start) keeps a fleet that
was enrolled together from renewing together. A failed renewal is retried after a delay
that grows, capped, so a down engine is not hammered.
"""

from __future__ import annotations

import random

RENEW_AT = 2 / 3
JITTER = 0.05  # of the lifetime, either way
RETRY_FIRST_S = 60
RETRY_MAX_S = 3600


def draw_jitter(rng: random.Random | None = None) -> float:
    return (rng or random.Random()).uniform(-JITTER, JITTER)


def renew_due(not_before: int, not_after: int, jitter: float) -> int:
    lifetime = max(not_after - not_before, 0)
    return int(not_before + lifetime * (RENEW_AT + jitter))


def retry_delay(failures: int) -> int:
    return int(min(RETRY_FIRST_S * 2 ** max(failures - 1, 0), RETRY_MAX_S))

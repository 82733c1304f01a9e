"""When a certificate is due for renewal: at about two thirds of its lifetime.

Both agents need the rule: the proxy to renew on time (adding its own jitter), the engine
to say when it expects a proxy to renew and to notice when one did not.
"""

from __future__ import annotations

RENEW_AT = 2 / 3
JITTER = 0.05  # of the lifetime, either way


def renew_due(not_before: int, not_after: int, jitter: float = 0.0) -> int:
    lifetime = max(not_after - not_before, 0)
    return int(not_before + lifetime * (RENEW_AT + jitter))


def overdue_after(not_before: int, not_after: int) -> int:
    """The latest moment a proxy renews by itself: after it, the renewal did not happen."""
    return renew_due(not_before, not_after, JITTER)

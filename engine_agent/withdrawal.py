"""Taking a proxy out of service: revoking its key and switching the engine back.

Used by ``keys delete`` (revoke, then switch back) and ``engine deactivate`` (switch back
only). The revocation is recorded first, so the proxy's messages are refused at once,
even if switching the engine back then takes minutes or fails.
"""

from __future__ import annotations

from engine_agent.activation import ActivationFailed, EngineSwitch
from engine_agent.registry import Proxy, Registry
from protocol.states import EngineEvent, EngineState


def withdraw(
    registry: Registry, switch: EngineSwitch, proxy: Proxy, *, revoke: bool, actor: str
) -> str | None:
    """Revoke and/or switch back; return why switching back failed, or None."""
    if revoke:
        registry.transition(proxy.fqdn, EngineEvent.REVOKE, actor=actor, why="keys delete")
    if not proxy.active:
        return None
    ours = f"{proxy.fqdn}:{proxy.port}"
    try:
        changed = switch.switch_back(ours, proxy.replaced_value)
    except ActivationFailed as exc:
        registry.update(
            proxy.fqdn, activation_error=f"switching the engine back failed: {exc.sentence}"
        )
        registry.audit(actor, "switch_back_failed", proxy.fqdn, proxy.fingerprint, exc.sentence)
        return exc.sentence
    why = (
        f"WebSocketProxy back to {proxy.replaced_value or 'Off'}"
        if changed
        else "the engine no longer pointed here; its value was left as it was"
    )
    if not revoke and proxy.state is EngineState.ACTIVE:
        registry.transition(
            proxy.fqdn,
            EngineEvent.DEACTIVATE,
            actor=actor,
            why=why,
            active=0,
            activation_error=None,
        )
    else:
        registry.update(proxy.fqdn, active=0, activation_error=None)
        registry.audit(actor, "switch_back", proxy.fqdn, proxy.fingerprint, why)
    return None

"""DNS names that are safe to put in certificates, registry rows and file names.

A name becomes part of a file name on the engine (oVirt's ``websocket-proxy-<fqdn>``), so
only the canonical form is accepted: lowercase LDH labels, no trailing dot, nothing that
could read as a path (CVE-2017-14695, CVE-2020-11652 in Salt).
"""

from __future__ import annotations

import re

from protocol.errors import BadRequest

MAX_NAME = 253
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
FQDN_PATTERN = rf"{_LABEL}(?:\.{_LABEL})*"
_FQDN = re.compile(FQDN_PATTERN)


def check_fqdn(name: str) -> str:
    """Return ``name`` when it is a canonical DNS name, else refuse it with the reason."""
    if not name:
        raise BadRequest("The host name is empty; give the proxy's fully qualified DNS name.")
    if len(name) > MAX_NAME:
        raise BadRequest(f"The host name is {len(name)} characters; DNS allows {MAX_NAME}.")
    if name != name.lower():
        raise BadRequest(f"The host name {name!r} has upper-case letters; write it in lower case.")
    if name.endswith("."):
        raise BadRequest(f"The host name {name!r} ends in a dot; leave the dot off.")
    if _FQDN.fullmatch(name) is None:
        raise BadRequest(
            f"The host name {name!r} is not a DNS name: use letters, digits and hyphens "
            "in dot-separated labels of at most 63 characters."
        )
    return name


def normalise_fqdn(name: str) -> str:
    """What an operator typed, in the canonical form (lower case, no trailing dot), checked."""
    stripped = name.strip()
    if stripped.endswith(".") and not stripped.endswith(".."):
        stripped = stripped[:-1]
    return check_fqdn(stripped.lower())

"""Identity key files: create once with mode 0600, load with a clear error."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import identity
from protocol.errors import BadRequest
from wsproxy_agent.errors import AgentError
from wsproxy_agent.files import write_atomic


class KeyFileError(AgentError):
    """An identity key file is missing, unreadable or not an Ed25519 key."""


def load_identity(path: Path) -> Ed25519PrivateKey:
    try:
        return identity.private_from_pem(path.read_bytes())
    except FileNotFoundError:
        raise KeyFileError(f"{path} is missing; run init (or join) on this host first.") from None
    except PermissionError:
        raise KeyFileError(f"{path} is not readable by this user; run as root.") from None
    except BadRequest as exc:
        raise KeyFileError(f"{path}: {exc.sentence}") from exc


def load_or_create_identity(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        return load_identity(path)
    key = identity.generate()
    write_atomic(path, identity.private_to_pem(key), mode=0o600, keep_backup=False)
    return key

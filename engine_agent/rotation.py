"""Rotating the engine agent's own keys: new identity and Curve keys, announced first.

The order guards against a crash leaving a proxy pinned to keys the engine has lost:

1. the new keys are written beside the old ones (``*.next``) before anyone hears of them;
2. each connected, trusted proxy is sent ``engine_key_rotation`` signed by the *old* key
   and answers ``rotation_ack`` naming the key it now pins;
3. the new keys replace the old ones (the old are kept as ``*.old``) and the daemon rebinds.

A daemon that starts and finds ``*.next`` files finishes step 3: the announcement may
have gone out, and a proxy that followed it can only reach the new keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol import identity
from wsproxy_agent import transport
from wsproxy_agent.files import write_atomic
from wsproxy_agent.paths import HostPaths


@dataclass(frozen=True)
class NewKeys:
    identity: Ed25519PrivateKey
    curve_public: bytes  # Z85, as the key files hold it

    @property
    def fingerprint(self) -> str:
        return identity.fingerprint(self.identity)


def _next(path: Path) -> Path:
    return path.with_name(path.name + ".next")


def _old(path: Path) -> Path:
    return path.with_name(path.name + ".old")


def _key_files(paths: HostPaths) -> tuple[Path, Path, Path]:
    # The public Curve key goes last: it is what 'token create' reads to build join strings.
    return paths.identity_key, paths.curve_secret, paths.curve_public


def prepare(paths: HostPaths) -> NewKeys:
    """Write a new key set beside the current one (step 1); nothing uses it yet."""
    key = identity.generate()
    write_atomic(
        _next(paths.identity_key), identity.private_to_pem(key), mode=0o600, keep_backup=False
    )
    curve_public, curve_secret = zmq.curve_keypair()
    write_atomic(_next(paths.curve_secret), curve_secret + b"\n", mode=0o600, keep_backup=False)
    write_atomic(_next(paths.curve_public), curve_public + b"\n", mode=0o644, keep_backup=False)
    return NewKeys(key, curve_public)


def pending(paths: HostPaths) -> bool:
    return any(_next(p).exists() for p in _key_files(paths))


def commit(paths: HostPaths) -> None:
    """Put the prepared keys in place (step 3). Safe to repeat after a crash part way."""
    for current in _key_files(paths):
        upcoming = _next(current)
        if not upcoming.exists():
            continue  # moved in by an earlier, interrupted commit
        if current.exists():
            os.replace(current, _old(current))
        os.replace(upcoming, current)
    directory = os.open(paths.identity_key.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def discard(paths: HostPaths) -> None:
    for current in _key_files(paths):
        _next(current).unlink(missing_ok=True)


def curve_public_raw(paths: HostPaths) -> bytes:
    return transport.curve_to_raw(transport.read_curve_key(paths.curve_public))

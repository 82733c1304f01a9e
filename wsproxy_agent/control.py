"""The local control socket: the command line asks a running daemon for live facts.

It is an ``ipc://`` socket in a 0700 directory with a 0600 file, so only the daemon's
user can reach it, and nothing on the network can. Every decision still goes through
the registry on disk; this channel only asks and nudges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ASK_TIMEOUT_MS = 1500


def ask(
    path: Path, request: dict[str, Any], timeout_ms: int = ASK_TIMEOUT_MS
) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon answers (not running, or hung)."""
    if not path.exists():
        return None
    import zmq

    ctx: zmq.Context[Any] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    try:
        sock.connect(f"ipc://{path}")
        sock.send(json.dumps(request).encode())
        answer = json.loads(sock.recv())
    except (zmq.ZMQError, ValueError):
        return None
    finally:
        sock.close()
    return answer if isinstance(answer, dict) else None

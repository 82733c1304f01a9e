"""What the proxy agent remembers between runs: proxy-state.json in its state directory.

Written atomically after each step of an enrollment, so ``status`` can tell what the last
run achieved, and a join cut short resumes with the same keys and CSR. It also keeps the
last error of each step (``errors``: step -> message and time), so ``status`` can say what
failed and how to fix it while the daemon is down.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from wsproxy_agent.files import write_atomic

Step = Literal["link", "clock", "join", "renew", "install", "restart", "report", "activation"]


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"corrupt": True}
    return data if isinstance(data, dict) else {"corrupt": True}


def save(path: Path, **changes: Any) -> dict[str, Any]:
    data = load(path)
    data.pop("corrupt", None)
    data.update(changes)
    write_atomic(
        path, json.dumps(data, indent=2, sort_keys=True).encode(), mode=0o600, keep_backup=False
    )
    return data


def record_error(path: Path, step: Step, sentence: str) -> None:
    errors = dict(load(path).get("errors") or {})
    errors[step] = {"message": sentence, "at": int(time.time())}
    save(path, errors=errors)


def clear_error(path: Path, step: Step) -> None:
    errors = dict(load(path).get("errors") or {})
    if errors.pop(step, None) is not None:  # a step that keeps working writes nothing
        save(path, errors=errors)


def joined(path: Path) -> bool:
    """True once a join got as far as installing; before that the file holds only errors."""
    return bool(set(load(path)) - {"errors"})

"""What the proxy agent remembers between runs: proxy-state.json in its state directory.

Written atomically after each step of an enrollment, so ``status`` can tell what the last
run achieved, and a join cut short resumes with the same keys and CSR.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wsproxy_agent.files import write_atomic


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

"""Logging setup: JSON lines for daemons under systemd, readable lines on a terminal.

Every security decision is logged once, through ``decision()``, with who and why, so the
audit trail and the log say the same thing.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

FORMATS = ("json", "console")


def default_format() -> str:
    """JSON for the journal or any other non-terminal, readable lines on a terminal."""
    if _stderr_is_journal() or not sys.stderr.isatty():
        return "json"
    return "console"


def _stderr_is_journal() -> bool:
    """systemd sets JOURNAL_STREAM to the journal stream's "device:inode" (systemd.exec(5)).

    It is compared with stderr rather than trusted when merely set, because a program
    started from a service inherits the variable with a terminal on its stderr.
    """
    expected = os.environ.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


def configure(fmt: str | None = None, level: int = logging.INFO) -> None:
    fmt = fmt or default_format()
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=True)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # WriteLogger hands each record and its newline to stderr in one write; print()
        # makes two, and processes sharing the stream (serve's workers under systemd, with
        # PYTHONUNBUFFERED=1) would put their records between them.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get(name: str) -> Any:
    return structlog.get_logger(name)


def decision(log: Any, verdict: str, *, who: str, why: str, **fields: Any) -> None:
    """Log one security decision (accept, reject, refuse, revoke) with who and why."""
    log.warning("security_decision", decision=verdict, who=who, why=why, **fields)

"""A value loaded from files and loaded again when they change, kept when the new ones are bad.

The proxy agent installs a renewed certificate by renaming new files into place
(``write_atomic``), so a file's stamp (device, inode, size, mtime, ctime) tells a new file
from the old cheaply enough to ask on every connection. The key and certificate are
renamed one after the other: a connection that arrives in between sees a pair that does
not match, is served with the old one, and the next stamp change loads the new pair.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from wsproxy_agent.errors import AgentError

T = TypeVar("T")
Stamp = tuple[int, ...]


def stamp(*paths: Path) -> Stamp:
    out: list[int] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(-1)  # the loader says what is wrong with it
            continue
        out += [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return tuple(out)


class Reloading(Generic[T]):
    """``load()`` raises an AgentError for files it cannot use; at start that error stops
    the server, later it is logged once per new stamp and the last good value stays."""

    def __init__(
        self,
        what: str,
        paths: tuple[Path, ...],
        load: Callable[[], T],
        describe: Callable[[T], dict[str, Any]],
        log: Any,
    ) -> None:
        self.what = what
        self.paths = paths
        self._load = load
        self._describe = describe
        self.log = log
        # Looked at before reading, so a change while reading is read again next time.
        self._stamp = stamp(*paths)
        self._value = load()
        self._refused: Stamp | None = None
        log.info(f"{what}_loaded", files=[str(p) for p in paths], **describe(self._value))

    def get(self) -> T:
        now = stamp(*self.paths)
        if now != self._stamp and now != self._refused:
            self._reload(now)
        return self._value

    def reload(self) -> None:
        """Read the files again whatever their stamp says (SIGHUP)."""
        self._reload(stamp(*self.paths))

    def _reload(self, now: Stamp) -> None:
        try:
            value = self._load()
        except AgentError as exc:
            self._refused = now
            self.log.warning(
                f"{self.what}_reload_refused",
                why=exc.sentence,
                kept="the one loaded before; open and new connections go on with it",
            )
            return
        self._stamp, self._value, self._refused = now, value, None
        self.log.info(f"{self.what}_reloaded", **self._describe(value))

"""Where a process's resident memory lives, from /proc/PID/smaps, in three parts.

- ``c heap``: glibc's main arena (the ``[heap]`` mapping): what C code allocates from the
  main thread, SQLite's page caches among it, and Python objects above 512 bytes.
- ``thread arenas``: glibc's arenas for other threads, each in a region aligned to 64 MiB
  (HEAP_MAX_SIZE): in the daemons, libzmq's I/O thread, which holds messages in flight.
- ``other anonymous``: everything else not backed by a file: Python's object arenas (pymalloc,
  where the small objects live, the seen-id cache's ints among them) and thread stacks.

File-backed mappings (the interpreter, libraries, SQLite's -shm) are left out: they do not
grow with the work done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THREAD_ARENA_SIZE = 64 * 1024 * 1024  # glibc's HEAP_MAX_SIZE on 64-bit
PARTS = ("c heap", "thread arenas", "other anonymous")
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")


@dataclass
class Mapping:
    start: int
    end: int
    perms: str
    name: str
    rss: int = 0


def breakdown(pid: int) -> dict[str, int]:
    """Resident bytes of each part."""
    mappings = _read(pid)
    parts = dict.fromkeys(PARTS, 0)
    for i, m in enumerate(mappings):
        part = _part(m, mappings[i + 1] if i + 1 < len(mappings) else None)
        if part is not None:
            parts[part] += m.rss
    return parts


def _read(pid: int) -> list[Mapping]:
    mappings: list[Mapping] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            found = _MAPPING.match(line)
            if found:
                start, end, perms, name = found.groups()
                mappings.append(Mapping(int(start, 16), int(end, 16), perms, name.strip()))
            elif line.startswith("Rss:") and mappings:
                mappings[-1].rss = int(line.split()[1]) * 1024
    return mappings


def _part(m: Mapping, following: Mapping | None) -> str | None:
    if m.name == "[heap]":
        return "c heap"
    if m.name:
        return None  # a file, the stack, vdso: not what work makes grow
    # A thread arena: a region of HEAP_MAX_SIZE, aligned to it, used from its start and
    # reserved (no access) for the rest.
    if m.start % THREAD_ARENA_SIZE == 0 and (
        m.end - m.start == THREAD_ARENA_SIZE
        or (
            following is not None
            and following.start == m.end
            and following.perms.startswith("---")
            and following.end - m.start == THREAD_ARENA_SIZE
        )
    ):
        return "thread arenas"
    return "other anonymous"

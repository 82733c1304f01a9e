"""When a process's freed heap goes back to the system: after a burst, and not on every free.

glibc keeps what a process frees in its arenas for reuse and returns on its own only the
free top of each, so the pages between blocks still in use stay resident. A burst (a fleet
reconnecting, 500 enrollments at once) grows libzmq's I/O thread's arena with the messages
queued at once and the main heap with their decoding; without ``release`` the daemon would
hold that high-water mark until it exits. ``malloc_trim(0)`` returns every whole free page
of every arena (glibc 2.8 and later).

The other way round, ``keep_freed_for_reuse`` is for a process that allocates and frees
large blocks at a high rate (a console carrying a screen's worth of bytes): glibc's default
thresholds can hand their pages back on each free and fault them in again on the next
allocation. Where the C library has neither call (musl), nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from typing import NamedTuple, cast

# Messages handled since the last trim before a quiet moment is worth one. A trim costs a
# millisecond or two of walking the heap, the pages it returns are faulted back in on reuse,
# and each is logged: a fleet of 100 proxies heartbeating every 10 s reaches this every
# quarter of an hour or so, a burst of them at once.
AFTER_MESSAGES = 10_000


# mallopt's parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


class AfterBurst:
    """When to give memory back: at the first quiet moment after ``after_messages``."""

    def __init__(self, after_messages: int = AFTER_MESSAGES) -> None:
        self.after_messages = after_messages
        self._since_trim = 0

    def handled(self, messages: int) -> None:
        self._since_trim += messages

    def due_when_quiet(self) -> bool:
        """Called when nothing arrived for a while; True once per burst."""
        if self._since_trim < self.after_messages:
            return False
        self._since_trim = 0
        return True


class Released(NamedTuple):
    released_bytes: int
    resident_bytes: int  # after


def release() -> Released | None:
    """Give free heap pages back to the system: how much went, and what is left (None where
    the C library cannot)."""
    trim = _malloc_trim()
    if trim is None:
        return None
    before = resident_bytes()
    trim(0)
    after = resident_bytes()
    return Released(max(0, before - after), after)


def keep_freed_for_reuse(largest_block: int, kept_free: int) -> bool:
    """Keep freed blocks of up to ``largest_block`` bytes in the heap, and up to ``kept_free``
    bytes of free heap top, for the next allocations: True where set (glibc).

    By default glibc takes blocks above its mmap threshold (128 KiB at first, raised to the
    largest block freed since) straight from the system, and gives back the free top of the
    heap once it is over twice that. Blocks of a few hundred KiB allocated and freed in turn
    then land, in some heap layouts, where every free hands their pages back and the next
    allocation faults them in again, zeroed: through ``proxy serve``, 37,000 page faults per
    96 MiB carried and 80 % more CPU per GB in about half of the downloads measured. Setting
    the thresholds turns that adjustment off, and freed blocks stay for reuse.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    # mallopt returns 1 on success, 0 for a value it refuses.
    return bool(mallopt(_M_MMAP_THRESHOLD, largest_block) and mallopt(_M_TRIM_THRESHOLD, kept_free))


def resident_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _malloc_trim() -> Callable[[int], int] | None:
    return _libc("malloc_trim", ctypes.c_size_t)


def _mallopt() -> Callable[[int, int], int] | None:
    return _libc("mallopt", ctypes.c_int, ctypes.c_int)


@functools.cache
def _libc(name: str, *argtypes: type) -> Callable[..., int] | None:
    """The C library's function ``name``, taking ``argtypes`` and returning an int; None
    where it has no such function."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except AttributeError:
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return cast(Callable[..., int], function)

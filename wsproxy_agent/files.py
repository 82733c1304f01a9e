"""Atomic file writing for both agents (DESIGN §5 step 3).

A file is written to a temporary name in its own directory, synced, given its mode and
owner, and renamed over the target, so a reader (or a crash) sees the old file or the new
one, never half of either. The temporary file is created with its final mode, so a secret
is never readable by others, not even for a moment.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import pwd
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wsproxy_agent import testseam
from wsproxy_agent.errors import AgentError

_BACKUP_MODE = 0o600
_DIR_MODE = 0o755


class InstallError(AgentError):
    """A file could not be written; ``sentence`` says why and what to do."""


def _sentence(exc: OSError, path: Path, kept: str = "the old file is unchanged") -> str:
    where = path.parent
    if exc.errno == errno.ENOSPC:
        return f"No space left on {where} while writing {path}; {kept}. Free space and retry."
    if exc.errno == errno.EDQUOT:
        return (
            f"The disk quota on {where} is used up while writing {path}; {kept}. "
            "Free space or raise the quota and retry."
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"Permission denied writing {path}; {kept}. Run the agent as "
            f"root or let it write to {where}."
        )
    if exc.errno == errno.EROFS:
        return f"{where} is on a read-only file system; {path} was not written. Remount it read-write and retry."
    return f"Could not write {path}: {exc.strerror or exc}; {kept}."


def _owner_ids(owner: str | None) -> tuple[int, int] | None:
    if owner is None:
        return None
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        return None  # a host without that user (e.g. a test box) keeps root's ownership
    return entry.pw_uid, entry.pw_gid


def _write_temp(directory: Path, name: str, data: bytes, mode: int, owner: str | None) -> Path:
    """Write ``data`` to a new, synced temp file in ``directory``; remove it on any failure."""
    tmp = directory / f".{name}.tmp-{secrets.token_hex(6)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        ids = _owner_ids(owner)
        if ids is not None:
            try:
                os.fchown(fd, *ids)
            except PermissionError:
                if os.geteuid() == 0:
                    raise
        # umask may have narrowed the mode at creation; set it exactly.
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    return tmp


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int = 0o600,
    owner: str | None = None,
    keep_backup: bool = True,
    exclusive: bool = False,
) -> None:
    """Replace ``path`` with ``data`` atomically; on failure the old file stays as it was.

    With ``keep_backup`` the old content is kept as ``<name>.bak`` (mode 0600: the old file
    may have been a key). With ``exclusive`` an existing file is never replaced, not even
    one that appears while we write (the final step is a link, which fails if it exists).
    """
    path = Path(path)
    directory = path.parent
    temps: list[Path] = []
    try:
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        temps.append(_write_temp(directory, path.name, data, mode, owner))
        if keep_backup and not exclusive and path.is_file():
            # A copy, not a hard link: the backup must not share the live file's mode.
            backup = path.with_name(path.name + ".bak")
            old = _write_temp(directory, backup.name, path.read_bytes(), _BACKUP_MODE, None)
            temps.append(old)
            os.replace(old, backup)
            temps.remove(old)
        if exclusive:
            os.link(temps[0], path)
            os.unlink(temps.pop())
        else:
            os.replace(temps[0], path)
        temps.clear()
    except FileExistsError as exc:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise InstallError(f"{path} already exists and was left alone.") from exc
    except OSError as exc:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise InstallError(_sentence(exc, path)) from exc
    try:
        _fsync_dir(directory)
    except OSError as exc:
        raise InstallError(
            f"{path} was replaced but {directory} could not be synced ({exc.strerror}); "
            "a power cut now could lose the change. Check the disk."
        ) from exc


@dataclass(frozen=True)
class NewFile:
    """One file of a set that ``write_all_atomic`` replaces together."""

    path: Path
    data: bytes
    mode: int = 0o600
    owner: str | None = None


def write_all_atomic(files: Sequence[NewFile]) -> None:
    """Replace several files so that a failure to write any of them changes none of them.

    Everything is written first, to synced temp files beside the targets: each new content
    and a ``.bak`` copy of each file whose content changes (a file rewritten with the same
    bytes keeps its older backup). Only then is each renamed into place; renames need no
    space, so a full disk or a write error leaves every file as it was. A crash during the
    renames at the very end can leave some files new and some old, each whole: the caller
    must then write the whole set again, which also removes the temp files a killed earlier
    attempt left behind.
    """
    renames: list[tuple[Path, Path]] = []  # (temp, target), in the order given
    for new in files:
        try:
            new.path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            _remove_leftover_temps(new.path)
            old = new.path.read_bytes() if new.path.is_file() else None
            if old is not None and old != new.data:
                backup = new.path.with_name(new.path.name + ".bak")
                temp = _write_temp(new.path.parent, backup.name, old, _BACKUP_MODE, None)
                renames.append((temp, backup))
            temp = _write_temp(new.path.parent, new.path.name, new.data, new.mode, new.owner)
            renames.append((temp, new.path))
        except OSError as exc:
            _remove_quietly(temp for temp, _ in renames)
            raise InstallError(_sentence(exc, new.path, "none of the files was changed")) from exc
        testseam.pause_after_writing(new.path)
    for done, (temp, target) in enumerate(renames):
        try:
            os.replace(temp, target)
        except OSError as exc:
            _remove_quietly(temp for temp, _ in renames[done:])
            raise InstallError(
                f"Could not move the new {target} into place: {exc.strerror or exc}; some "
                "files are new and some old. Fix the cause and run the same command again."
            ) from exc
    for directory in dict.fromkeys(new.path.parent for new in files):
        try:
            _fsync_dir(directory)
        except OSError as exc:
            raise InstallError(
                f"The files in {directory} were replaced but it could not be synced "
                f"({exc.strerror}); a power cut now could lose the change. Check the disk."
            ) from exc


def _remove_leftover_temps(path: Path) -> None:
    """Temp files of ``path`` (and of its backup) that a killed earlier write left behind."""
    name = glob.escape(path.name)
    for pattern in (f".{name}.tmp-*", f".{name}.bak.tmp-*"):
        for leftover in path.parent.glob(pattern):
            leftover.unlink(missing_ok=True)


def _remove_quietly(paths: Iterable[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def ensure_dir(path: Path, mode: int) -> None:
    """``mkdir -p`` and then set the leaf's mode (mkdir's mode is narrowed by umask)."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    except OSError as exc:
        raise InstallError(
            f"Could not create the directory {path}: {exc.strerror or exc}. "
            "Run the agent as root or create it by hand."
        ) from exc


def sha256_file(path: Path) -> str | None:
    """The file's SHA-256 in hex, or None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()

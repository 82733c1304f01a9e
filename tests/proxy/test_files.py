from __future__ import annotations

import errno
import os
import stat
import subprocess
from pathlib import Path

import pytest

from wsproxy_agent.files import InstallError, ensure_dir, sha256_file, write_atomic


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_content_with_mode_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "key.pem"
    write_atomic(target, b"secret\n")
    assert target.read_bytes() == b"secret\n"
    assert mode_of(target) == 0o600
    assert mode_of(target.parent) == 0o755 & ~_umask()
    write_atomic(target, b"public\n", mode=0o644)
    assert mode_of(target) == 0o644


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_temp_file_is_never_wider_than_the_final_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []
    at_fsync: list[int] = []
    real_open, real_fsync = os.open, os.fsync

    def recording_open(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(path, flags, mode, **kw)  # type: ignore[arg-type]

    def checking_fsync(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            at_fsync.append(stat.S_IMODE(st.st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "open", recording_open)
    monkeypatch.setattr(os, "fsync", checking_fsync)
    old_umask = os.umask(0)  # with no umask to narrow it, the creation mode alone must do
    try:
        write_atomic(tmp_path / "key", b"one")
        write_atomic(tmp_path / "key", b"two")  # also writes the .bak
    finally:
        os.umask(old_umask)
    assert created == [0o600, 0o600, 0o600]
    assert at_fsync == [0o600, 0o600, 0o600]


def test_old_content_is_kept_as_bak(tmp_path: Path) -> None:
    target = tmp_path / "websocket-proxy.cer"
    write_atomic(target, b"old", mode=0o644)
    assert not (tmp_path / "websocket-proxy.cer.bak").exists()
    write_atomic(target, b"new", mode=0o644)
    backup = tmp_path / "websocket-proxy.cer.bak"
    assert target.read_bytes() == b"new"
    assert backup.read_bytes() == b"old"
    assert mode_of(backup) == 0o600
    write_atomic(target, b"newer", keep_backup=False)
    assert backup.read_bytes() == b"old"


@pytest.mark.parametrize("fail_at", ["write", "fsync-new", "fsync-backup"])
def test_injected_disk_full_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    target = tmp_path / "10-setup.conf"
    target.write_bytes(b"PROXY_PORT=6100\n")
    calls = {"fsync": 0}
    real_fsync = os.fsync

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fsync(fd: int) -> None:
        calls["fsync"] += 1
        if calls["fsync"] == (1 if fail_at == "fsync-new" else 2):
            full()
        real_fsync(fd)

    if fail_at == "write":
        monkeypatch.setattr(os, "write", full)
    else:
        monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(InstallError) as info:
        write_atomic(target, b"PROXY_PORT=6200\n")
    assert info.value.sentence == (
        f"No space left on {tmp_path} while writing {target}; the old file is unchanged. "
        "Free space and retry."
    )
    assert target.read_bytes() == b"PROXY_PORT=6100\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["10-setup.conf"]


@pytest.mark.parametrize(
    ("code", "words"),
    [(errno.EDQUOT, "quota"), (errno.EACCES, "Permission denied"), (errno.EROFS, "read-only")],
)
def test_each_failure_has_its_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(InstallError) as info:
        write_atomic(tmp_path / "f", b"x")
    assert words in info.value.sentence
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> object:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 64 KiB tmpfs to fill up needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {done.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True, timeout=30)


def test_real_disk_full_fails_cleanly(tiny_tmpfs: Path) -> None:
    target = tiny_tmpfs / "websocket-proxy.cer"
    write_atomic(target, b"old certificate\n", mode=0o644)
    with open(tiny_tmpfs / "filler", "wb", buffering=0) as filler, pytest.raises(OSError) as full:
        while True:
            filler.write(b"\0" * 4096)
    assert full.value.errno == errno.ENOSPC
    with pytest.raises(InstallError) as info:
        write_atomic(target, b"x" * 32 * 1024, mode=0o644)
    assert "No space left" in info.value.sentence
    assert target.read_bytes() == b"old certificate\n"
    assert sorted(p.name for p in tiny_tmpfs.iterdir()) == ["filler", "websocket-proxy.cer"]


def test_unwritable_directory_as_non_root(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write to a read-only directory; run as non-root to test this")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "f").write_bytes(b"old")
    locked.chmod(0o500)
    try:
        with pytest.raises(InstallError) as info:
            write_atomic(locked / "f", b"new")
        assert "Permission denied" in info.value.sentence
        assert (locked / "f").read_bytes() == b"old"
    finally:
        locked.chmod(0o700)


def test_owner_that_does_not_exist_is_skipped(tmp_path: Path) -> None:
    write_atomic(tmp_path / "f", b"x", owner="no-such-user-wsproxy")
    assert os.stat(tmp_path / "f").st_uid == os.geteuid()


def test_ensure_dir_and_sha256(tmp_path: Path) -> None:
    private = tmp_path / "x" / "state"
    ensure_dir(private, 0o700)
    assert mode_of(private) == 0o700
    assert sha256_file(private / "missing") is None
    (private / "f").write_bytes(b"abc")
    assert sha256_file(private / "f") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_owner_that_exists_gets_the_file(tmp_path: Path) -> None:
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this host has no user 'nobody' to hand a file to")
    if os.geteuid() != 0:
        pytest.skip("only root can give a file away")
    write_atomic(tmp_path / "f", b"x", owner="nobody")
    st = os.stat(tmp_path / "f")
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_exclusive_never_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "ca.pem"
    write_atomic(target, b"first", mode=0o644, keep_backup=False, exclusive=True)
    with pytest.raises(InstallError, match="already exists"):
        write_atomic(target, b"second", mode=0o644, keep_backup=False, exclusive=True)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem"]  # no temp left behind

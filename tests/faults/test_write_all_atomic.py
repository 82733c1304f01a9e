"""The installer's file set written all or none: a full disk halfway, a killed write's leftovers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.privileged import fill, tmpfs
from wsproxy_agent.files import InstallError, NewFile, write_all_atomic


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    with tmpfs(mnt, "64k"):
        yield mnt


def test_a_set_stays_old_when_the_disk_fills_halfway(tmp_path: Path, tiny_tmpfs: Path) -> None:
    # Two file systems, so the first file fits and the second does not.
    key, cert = tmp_path / "keys" / "proxy.key", tiny_tmpfs / "certs" / "proxy.cer"
    write_all_atomic([NewFile(key, b"old key\n"), NewFile(cert, b"old cert\n")])
    fill(tiny_tmpfs)
    with pytest.raises(InstallError) as info:
        write_all_atomic([NewFile(key, b"new key\n"), NewFile(cert, b"new cert\n")])
    assert info.value.sentence.startswith(f"No space left on {cert.parent} while writing {cert}")
    assert "none of the files was changed" in info.value.sentence
    assert key.read_bytes() == b"old key\n"  # written first, and still old: all or none
    assert cert.read_bytes() == b"old cert\n"
    assert sorted(p.name for p in key.parent.iterdir()) == ["proxy.key"]
    assert sorted(p.name for p in cert.parent.iterdir()) == ["proxy.cer"]


def test_a_set_write_removes_what_a_killed_one_left(tmp_path: Path) -> None:
    target = tmp_path / "proxy.key"
    left = [tmp_path / ".proxy.key.tmp-0a1b2c", tmp_path / ".proxy.key.bak.tmp-3d4e5f"]
    unrelated = tmp_path / ".other.key.tmp-0a1b2c"
    for path in [*left, unrelated]:
        path.write_bytes(b"half a key")
    write_all_atomic([NewFile(target, b"key\n")])
    assert sorted(p.name for p in tmp_path.iterdir()) == [unrelated.name, "proxy.key"]
    assert target.read_bytes() == b"key\n"

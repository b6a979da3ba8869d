"""The file helpers: sha256 of a file and durable atomic writes, on real files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from clinsight import files
from clinsight.errors import DataError, DataNotFoundError
from clinsight.files import (
    atomic_writer,
    read_mapping_file,
    sha256_file,
    sync_folder,
    write_bytes_atomic,
    write_text_atomic,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _write_then_fail(target: Path, data: bytes, error: Exception) -> None:
    with atomic_writer(target) as handle:
        handle.write(data)
        raise error


def test_public_names_are_exactly_the_helpers() -> None:
    assert sorted(files.__all__) == [
        "atomic_writer",
        "read_mapping_file",
        "sha256_file",
        "sync_folder",
        "write_bytes_atomic",
        "write_text_atomic",
    ]


def test_sha256_file_matches_hashlib_on_an_empty_and_a_multi_block_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    large = tmp_path / "large.bin"
    content = bytes(range(256)) * 9000 + b"tail"  # 2.3 MB: several read blocks
    large.write_bytes(content)
    assert sha256_file(empty) == hashlib.sha256(b"").hexdigest()
    assert sha256_file(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert sha256_file(large) == hashlib.sha256(content).hexdigest()


def test_sha256_file_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "absent.bin")


def test_write_bytes_atomic_creates_and_replaces_with_a_new_inode(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    write_bytes_atomic(target, b"first")
    first_inode = target.stat().st_ino
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert target.stat().st_ino != first_inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]


def test_write_text_atomic_encodes_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    write_text_atomic(target, "Größe: 5 mm\n")
    assert target.read_bytes() == "Größe: 5 mm\n".encode()
    write_text_atomic(target, "Größe\n", encoding="latin-1")
    assert target.read_bytes() == b"Gr\xf6\xdfe\n"
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o640])
def test_the_written_file_has_exactly_the_mode_asked_for(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "key"
    previous = os.umask(0o077)  # a strict umask must not narrow 0644, nor widen 0600
    try:
        write_bytes_atomic(target, b"secret", mode=mode)
    finally:
        os.umask(previous)
    assert _mode(target) == mode


def test_default_mode_is_0644_and_replacing_resets_a_changed_mode(tmp_path: Path) -> None:
    target = tmp_path / "stages.json"
    target.write_text("{}")
    target.chmod(0o600)
    write_text_atomic(target, "{}\n")
    assert _mode(target) == 0o644


def test_a_failed_write_keeps_the_old_content_and_removes_its_temporary_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk gone"):
        _write_then_fail(target, b"half of the new", RuntimeError("disk gone"))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_a_failed_first_write_leaves_no_file_at_all(tmp_path: Path) -> None:
    target = tmp_path / "new.bin"
    with pytest.raises(ValueError, match="bad"):
        _write_then_fail(target, b"x", ValueError("bad"))
    assert list(tmp_path.iterdir()) == []


def test_the_temporary_file_is_a_hidden_sibling_until_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    with atomic_writer(target, mode=0o600) as handle:
        handle.write(b"{}")
        (pending,) = list(tmp_path.iterdir())
        assert pending.name.startswith(".manifest.json.")
        assert pending.name.endswith(".tmp")
        assert _mode(pending) == 0o600
        assert not target.exists()
    assert target.read_bytes() == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_writing_into_a_missing_folder_raises_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "absent" / "data.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_sync_folder_accepts_a_folder_and_refuses_a_missing_one(tmp_path: Path) -> None:
    sync_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        sync_folder(tmp_path / "absent")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("spec.json", '{"name": "x", "n": 2}'),
        ("spec.yaml", "name: x\nn: 2\n"),
        ("spec.yml", "{name: x, n: 2}"),
    ],
)
def test_a_mapping_is_read_from_json_or_yaml(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert dict(read_mapping_file(path, "task spec")) == {"name": "x", "n": 2}


def test_a_mapping_file_that_is_missing_malformed_or_not_a_mapping_is_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataNotFoundError, match=r"^feature spec .*nope.json does not exist\.$"):
        read_mapping_file(tmp_path / "nope.json", "feature spec")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match=r"^feature spec .*broken.json cannot be parsed: "):
        read_mapping_file(broken, "feature spec")
    listed = tmp_path / "listed.yaml"
    listed.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"listed.yaml must hold a mapping at the top level\.$"):
        read_mapping_file(listed, "feature spec")

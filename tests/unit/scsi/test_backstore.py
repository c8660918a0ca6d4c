"""File backstores: created sparse, extended, never shrunk, errors naming the LUN; a size
re-read after the administrator grows the file."""

import os
from pathlib import Path

import pytest

from isns_server.scsi import BackstoreError, FileBackstore, MemoryBackstore, WouldBlock

WHERE = "targets[0].luns[0]"


def test_a_missing_file_is_created_at_the_configured_size(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    store = FileBackstore(path, 1 << 20, False, WHERE)
    assert store.size == path.stat().st_size == 1 << 20
    assert path.stat().st_blocks * 512 < 1 << 20  # sparse
    store.close()


def test_a_smaller_file_is_extended_and_size_zero_keeps_the_files(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    path.write_bytes(b"data" * 256)
    FileBackstore(path, 8192, False, WHERE).close()
    assert path.read_bytes()[:8] == b"datadata" and path.stat().st_size == 8192
    store = FileBackstore(path, 0, True, WHERE)
    assert store.size == 8192 and store.read_only
    store.close()


@pytest.mark.parametrize(
    ("content", "size", "read_only", "message"),
    [
        (None, 0, False, "does not exist; set targets[0].luns[0].size"),
        (b"x" * 1024, 512, False, "more than the configured size 512; set targets[0].luns[0]"),
        (b"x" * 512, 1024, True, "less than the configured size 1024, and the LUN is read-only"),
        (b"x" * 700, 0, False, "is 700 bytes; a LUN needs a positive multiple of 512"),
        (b"", 0, False, "is 0 bytes"),
        (None, 1000, False, "size: 1000 bytes is not a multiple of the 512-byte block"),
    ],
)
def test_unusable_files_are_refused_with_the_key_to_change(
    tmp_path: Path, content: bytes | None, size: int, read_only: bool, message: str
) -> None:
    path = tmp_path / "disk.img"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BackstoreError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FileBackstore(path, size, read_only, WHERE)


def test_an_unopenable_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackstoreError, match="cannot open"):
        FileBackstore(tmp_path, 4096, False, WHERE)  # a directory


def test_a_bad_size_creates_no_file(tmp_path: Path) -> None:
    with pytest.raises(BackstoreError):
        FileBackstore(tmp_path / "disk.img", 1000, False, WHERE)
    assert not (tmp_path / "disk.img").exists()


def test_refresh_size_takes_a_grown_file(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    store = FileBackstore(path, 8192, False, WHERE)
    assert store.refresh_size() == 8192
    os.truncate(path, 16384)
    assert store.refresh_size() == store.size == 16384
    store.close()


def test_refresh_size_keeps_the_old_size_for_a_partial_block(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "disk.img"
    store = FileBackstore(path, 8192, False, WHERE)
    os.truncate(path, 8192 + 100)
    assert store.refresh_size() == store.size == 8192
    assert f"{path} is now 8292 bytes, not a positive multiple of 512" in caplog.text
    store.close()


def test_a_memory_backstore_keeps_its_size() -> None:
    assert MemoryBackstore(4096).refresh_size() == 4096


def test_a_nowait_read_comes_from_the_page_cache_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    path.write_bytes(b"cached!!" * 128)
    store = FileBackstore(path, 0, False, WHERE)
    buffer = memoryview(bytearray(1024))
    store.read_into(0, buffer, nowait=True)  # just written: in the page cache
    assert bytes(buffer) == b"cached!!" * 128
    store._nowait_reads = False  # as on a file system without RWF_NOWAIT
    with pytest.raises(WouldBlock):
        store.read_into(0, buffer, nowait=True)
    store.close()

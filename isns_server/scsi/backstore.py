"""Where a logical unit's blocks live: a (sparse) file, a block device, or memory.

Reads and writes go straight between the file and the caller's buffers (preadv/pwrite),
so a Data-In or Data-Out buffer is never copied on the way.
"""

import ctypes
import errno
import logging
import os
import stat
from pathlib import Path
from typing import Protocol

from ..libc import LIBC
from .constants import BLOCK_SIZE

log = logging.getLogger(__name__)


class BackstoreError(Exception):
    """A LUN's storage cannot be used; the message says which file and what to change."""


class WouldBlock(Exception):
    """A call made with `nowait` would have waited for the disk; it did nothing."""


class Backstore(Protocol):
    @property
    def size(self) -> int:
        """Bytes; a whole number of blocks."""
        ...

    @property
    def read_only(self) -> bool: ...

    @property
    def thin(self) -> bool:
        """Unmapped blocks read as zeros and take no space (SBC-3 4.7.3)."""
        ...

    def read_into(self, offset: int, buffer: memoryview, nowait: bool = False) -> None:
        """Fill `buffer` from `offset`; with `nowait`, only from memory (the page cache),
        else raise WouldBlock."""
        ...

    def write(self, offset: int, data: bytes | memoryview) -> None: ...

    def flush(self) -> None:
        """Make every completed write durable."""
        ...

    def unmap(self, offset: int, length: int) -> None:
        """Deallocate; the range reads as zeros afterwards."""
        ...

    def mapped(self, offset: int) -> tuple[bool, int]:
        """Whether `offset` is mapped, and the length of the run it starts."""
        ...

    def refresh_size(self) -> int:
        """Re-read the size after an administrator grew the file or device; the new size.
        A size that is not a whole number of blocks is logged and the old one kept."""
        ...

    def close(self) -> None: ...


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


def _punch_hole(fd: int, offset: int, length: int) -> bool:
    mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
    result = LIBC.fallocate(fd, mode, ctypes.c_int64(offset), ctypes.c_int64(length))
    return bool(result == 0)


class MemoryBackstore:
    """Blocks in memory: for tests and scratch LUNs; lost at exit."""

    def __init__(self, size: int, read_only: bool = False) -> None:
        self._data = bytearray(size)
        self._read_only = read_only

    @property
    def size(self) -> int:
        return len(self._data)

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def thin(self) -> bool:
        return False

    def read_into(self, offset: int, buffer: memoryview, nowait: bool = False) -> None:
        buffer[:] = self._data[offset : offset + len(buffer)]

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self._data[offset : offset + len(data)] = data

    def flush(self) -> None:
        pass

    def unmap(self, offset: int, length: int) -> None:
        self._data[offset : offset + length] = bytes(length)

    def mapped(self, offset: int) -> tuple[bool, int]:
        return True, self.size - offset

    def refresh_size(self) -> int:
        return self.size  # nothing outside can resize it

    def close(self) -> None:
        pass


class FileBackstore:
    """A regular file. A missing file is created sparse at the configured size; a smaller
    one is extended (sparse); a larger one is refused, since exporting it smaller would
    hide data and shrinking it would destroy data."""

    def __init__(self, path: Path, size: int, read_only: bool, where: str) -> None:
        """`size` 0 keeps the file's own size; `where` names the LUN in the configuration."""
        self.path = path
        self._read_only = read_only
        self._nowait_reads = hasattr(os, "RWF_NOWAIT")
        if size % BLOCK_SIZE:
            raise BackstoreError(
                f"{where}.size: {size} bytes is not a multiple of the {BLOCK_SIZE}-byte block"
            )
        flags = (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC
        if size and not read_only:
            flags |= os.O_CREAT
        try:
            self._fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            raise BackstoreError(
                f"{where}: {path} does not exist; set {where}.size to have it created"
            ) from None
        except OSError as exc:
            raise BackstoreError(f"{where}: cannot open {path}: {exc.strerror}") from None
        try:
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
            self._size = self._fit(size, where) if self._regular else self._device_size(size, where)
        except BaseException:
            os.close(self._fd)
            raise

    def _device_size(self, size: int, where: str) -> int:
        """A block device has the size it has: the configured size must match or be 0."""
        actual = os.lseek(self._fd, 0, os.SEEK_END)
        if size not in (0, actual):
            raise BackstoreError(
                f"{where}: {self.path} is a {actual}-byte device; set {where}.size to {actual} or 0"
            )
        return actual

    def _fit(self, size: int, where: str) -> int:
        actual = os.fstat(self._fd).st_size
        if size == 0:
            size = actual
            if size == 0 or size % BLOCK_SIZE:
                raise BackstoreError(
                    f"{where}: {self.path} is {size} bytes; a LUN needs a positive multiple of"
                    f" {BLOCK_SIZE} bytes: set {where}.size (e.g. 1GiB)"
                )
        if actual > size:
            raise BackstoreError(
                f"{where}: {self.path} is {actual} bytes, more than the configured size {size};"
                f" set {where}.size to {actual} (or 0 to use the file's size)"
            )
        if actual < size:
            if self._read_only:
                raise BackstoreError(
                    f"{where}: {self.path} is {actual} bytes, less than the configured size"
                    f" {size}, and the LUN is read-only; set {where}.size to {actual}"
                )
            try:
                os.ftruncate(self._fd, size)
            except OSError as exc:
                raise BackstoreError(
                    f"{where}: cannot extend {self.path} to {size} bytes: {exc.strerror}"
                ) from None
        return size

    @property
    def size(self) -> int:
        return self._size

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def thin(self) -> bool:
        return self._regular

    def read_into(self, offset: int, buffer: memoryview, nowait: bool = False) -> None:
        if nowait:
            self._read_cached(offset, buffer)
            return
        done = os.preadv(self._fd, [buffer], offset)
        if done < len(buffer):  # only past the end of a file changed behind our back
            buffer[done:] = bytes(len(buffer) - done)

    def _read_cached(self, offset: int, buffer: memoryview) -> None:
        """RWF_NOWAIT (Linux 4.14): the page cache or nothing. A short read (part cached,
        or the end of a file changed behind our back) is left to the blocking path."""
        if not self._nowait_reads:
            raise WouldBlock
        try:
            done = os.preadv(self._fd, [buffer], offset, os.RWF_NOWAIT)
        except BlockingIOError:
            raise WouldBlock from None
        except OSError as error:
            if error.errno != errno.EOPNOTSUPP:
                raise
            self._nowait_reads = False  # this file system cannot: always the worker
            raise WouldBlock from None
        if done < len(buffer):
            raise WouldBlock

    def write(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def unmap(self, offset: int, length: int) -> None:
        if not (self._regular and _punch_hole(self._fd, offset, length)):
            self.write(offset, bytes(length))  # a device or a file system without holes

    def mapped(self, offset: int) -> tuple[bool, int]:
        if not self._regular:
            return True, self._size - offset
        try:
            data = os.lseek(self._fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole from here to the end
            return False, self._size - offset
        if data > offset:
            return False, data - offset
        hole = os.lseek(self._fd, offset, os.SEEK_HOLE)
        return True, min(hole, self._size) - offset

    def refresh_size(self) -> int:
        actual = os.lseek(self._fd, 0, os.SEEK_END)  # a file's size or a device's
        if actual and actual % BLOCK_SIZE == 0:
            self._size = actual
        else:
            log.warning(
                "%s is now %d bytes, not a positive multiple of %d: still exported as %d"
                " bytes; resize it to a whole number of blocks and send SIGHUP again",
                self.path,
                actual,
                BLOCK_SIZE,
                self._size,
            )
        return self._size

    def close(self) -> None:
        os.close(self._fd)

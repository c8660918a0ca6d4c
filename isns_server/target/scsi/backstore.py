"""Where a logical unit's blocks live. The file backstore is sized from the configuration."""

import os
from pathlib import Path
from typing import Protocol

from .constants import BLOCK_SIZE


class BackstoreError(Exception):
    """A LUN's storage cannot be used; the message says which file and what to change."""


class Backstore(Protocol):
    @property
    def size(self) -> int:
        """Bytes; a whole number of blocks."""
        ...

    @property
    def read_only(self) -> bool: ...

    def close(self) -> None: ...


class FileBackstore:
    """A regular file. A missing file is created sparse at the configured size; a smaller
    one is extended (sparse); a larger one is refused, since exporting it smaller would
    hide data and shrinking it would destroy data."""

    def __init__(self, path: Path, size: int, read_only: bool, where: str) -> None:
        """`size` 0 keeps the file's own size; `where` names the LUN in the configuration."""
        self.path = path
        self._read_only = read_only
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
            self._size = self._fit(size, where)
        except BaseException:
            os.close(self._fd)
            raise

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

    def close(self) -> None:
        os.close(self._fd)

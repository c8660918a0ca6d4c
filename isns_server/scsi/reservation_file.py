"""A logical unit's persistent reservations in a small JSON file, for APTPL (SPC-4 5.14.5).

The file exists while APTPL is active. Each save replaces it atomically (a temporary
file written and fsynced, renamed over it, the directory fsynced), so a crash leaves the
old state or the new one, never a mix.
"""

import json
import os
from pathlib import Path

from .backstore import BackstoreError
from .reservations import PersistentReservations


class ReservationFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> PersistentReservations:
        """Raises BackstoreError naming the file when it cannot be used."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return PersistentReservations()
        except OSError as exc:
            raise self._refused(exc.strerror or str(exc)) from None
        try:
            return PersistentReservations.from_record(json.loads(text))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ones
            raise self._refused(str(exc)) from None

    def save(self, state: PersistentReservations) -> None:
        self._make_directory()
        temporary = self.path.with_name(self.path.name + ".tmp")
        data = json.dumps(state.record(), indent=1).encode() + b"\n"
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)
        _fsync_directory(self.path.parent)

    def clear(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        _fsync_directory(self.path.parent)

    def _make_directory(self) -> None:
        """Create the missing directories, each one's entry made durable in its parent."""
        missing = [d for d in (self.path.parent, *self.path.parent.parents) if not d.exists()]
        for directory in reversed(missing):
            directory.mkdir(mode=0o700, exist_ok=True)
            _fsync_directory(directory.parent)

    def _refused(self, reason: str) -> BackstoreError:
        return BackstoreError(
            f"{self.path}: cannot read the saved persistent reservations ({reason}); delete"
            " the file to start without them (initiators then register again)"
        )


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

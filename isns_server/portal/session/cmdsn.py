"""Command numbering of a session, target side (RFC 3720 3.2.2.1), sans-IO.

Non-immediate commands are delivered in CmdSN order: one that arrives early (its
predecessor was lost to a digest error) waits until the hole is filled. Commands outside
[ExpCmdSN, MaxCmdSN] and duplicates are silently ignored, as the RFC requires.
"""

from typing import Generic, Protocol, TypeVar

SERIAL_MASK = 0xFFFFFFFF
_HALF = 1 << 31


def serial_distance(a: int, b: int) -> int:
    """a - b in 32-bit serial number arithmetic (RFC 1982): negative when a precedes b."""
    return ((a - b + _HALF) & SERIAL_MASK) - _HALF


class NumberedCommand(Protocol):
    @property
    def immediate(self) -> bool: ...

    @property
    def cmdsn(self) -> int: ...


C = TypeVar("C", bound=NumberedCommand)


class CommandWindow(Generic[C]):
    """ExpCmdSN and MaxCmdSN: the target accepts `depth` commands past the last delivered."""

    def __init__(self, expcmdsn: int, depth: int) -> None:
        self.expcmdsn = expcmdsn & SERIAL_MASK
        self.depth = depth
        self._early: dict[int, C] = {}  # arrived before their predecessors

    @property
    def maxcmdsn(self) -> int:
        return (self.expcmdsn + self.depth - 1) & SERIAL_MASK

    def admit(self, command: C) -> list[C]:
        """The commands deliverable now, in order: an immediate one at once; otherwise
        this one and any it unblocks, or nothing while a hole precedes it."""
        if command.immediate:
            return [command]
        ahead = serial_distance(command.cmdsn, self.expcmdsn)
        if ahead < 0 or ahead >= self.depth or command.cmdsn in self._early:
            return []
        if ahead:
            self._early[command.cmdsn] = command
            return []
        ready = [command]
        self.expcmdsn = (self.expcmdsn + 1) & SERIAL_MASK
        while (waiting := self._early.pop(self.expcmdsn, None)) is not None:
            ready.append(waiting)
            self.expcmdsn = (self.expcmdsn + 1) & SERIAL_MASK
        return ready

"""Index numbers handed out in blocks, for one server of several sharing a store (etcd).

A single server advances the shared counters record for every number it hands out, so
every registration writes that record. Servers sharing a store would then all compare
and swap that one record and lose to each other. Instead each reserves a block of
BLOCK_SIZE numbers per counter by advancing the counters record once, and hands the
numbers out from it without writing the record again: an ordinary registration writes
only its own entity's record.

A reservation is only good once the store committed the counters record that made it.
Numbers may be handed out from a block before that (the requests are queued behind
the reservation, so they fail with it): the store calls `committed` with what
`reserving` said was in its transaction, or `lost` when that transaction failed, which
forgets every block not yet committed. Numbers of a block a server never used (it
stopped, or lost a reservation) are never handed out: indexes are not reused (RFC 4171
6.2.7 ff.), and 2^32 of them outlast many blocks.
"""

BLOCK_SIZE = 1000


class IndexBlocks:
    def __init__(self, size: int = BLOCK_SIZE) -> None:
        self.size = size
        self._blocks: dict[str, list[int]] = {}  # counter -> [next, end)
        self._unconfirmed: dict[str, int] = {}  # counter -> start of a block not committed

    def peek(self, counter: str, counters: dict[str, int]) -> int:
        """The number `take` gives next, without taking it."""
        block = self._blocks.get(counter)
        return block[0] if block is not None and block[0] < block[1] else counters[counter]

    def take(self, counter: str, counters: dict[str, int]) -> tuple[int, bool]:
        """The next number of `counter`, and whether a block was reserved for it: then
        `counters` (the shared record) was advanced past it and must be written."""
        block = self._blocks.get(counter)
        reserved = block is None or block[0] >= block[1]
        if block is None or reserved:
            start = counters[counter]
            counters[counter] = start + self.size
            block = self._blocks[counter] = [start, start + self.size]
            self._unconfirmed[counter] = start
        value = block[0]
        block[0] += 1
        return value, reserved

    def reserving(self) -> dict[str, int]:
        """The reservations not yet committed: what a transaction writing the counters
        record now carries."""
        return dict(self._unconfirmed)

    def committed(self, reservations: dict[str, int]) -> None:
        """The transaction that carried `reservations` (from `reserving`) committed."""
        for counter, start in reservations.items():
            if self._unconfirmed.get(counter) == start:
                del self._unconfirmed[counter]

    def lost(self) -> None:
        """A transaction failed, and with it everything queued behind: every reservation
        not committed is forgotten, and its numbers are not handed out again."""
        for counter in self._unconfirmed:
            del self._blocks[counter]
        self._unconfirmed.clear()

"""Callbacks run on the event loop soon, each once however often it was asked for.

The portal's one coalescing mechanism. Worker threads ask for the delivery of their
results; a connection that got results or an event from outside its own calls asks
for its adapter to start tasks and write. Everything asked for before the loop gets to
it runs in one pass, and what is asked for during that pass (a connection's write after
the results it gets) runs in the same pass: one wake-up of the loop and one write per
connection for a batch of results. A pass is bounded to those two rounds: while workers
keep finishing, the loop still reads its sockets between passes.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Soon:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Made on the loop's thread."""
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._pending: dict[Callable[[], None], None] = {}  # ordered, no repeats
        self._scheduled = False

    def call(self, callback: Callable[[], None]) -> None:
        """From any thread: `callback` runs on the loop, once, soon."""
        with self._lock:
            self._pending[callback] = None
            if self._scheduled:
                return
            self._scheduled = True
        if threading.get_ident() == self._loop_thread:
            self._loop.call_soon(self._run)
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        """Two rounds: what was asked for, then what that asked for (the writes after a
        delivery). What comes later, a worker's next result say, waits for the next pass,
        so that the loop reads its sockets in between."""
        for _ in range(2):
            with self._lock:
                pending, self._pending = self._pending, {}
            for callback in pending:
                try:
                    callback()
                except Exception:
                    log.exception("internal error in %r; the others still run", callback)
        with self._lock:
            if not self._pending:
                self._scheduled = False
                return
        self._loop.call_soon(self._run)

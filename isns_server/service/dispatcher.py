"""From a decoded request to a durable reply: registry, then store, then the answer.

The registry applies a request at once, in arrival order; the reply waits until the
store says the change is durable. A request that changes nothing still waits for the
writes queued before it, so no client reads state that a crash could take back.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from ..isnsp.constants import FunctionId, Status
from ..isnsp.messages import Message, response
from ..registry import Registry
from ..store import Store

log = logging.getLogger(__name__)

Reply = Callable[[Message], None]


class Dispatcher:
    def __init__(
        self, registry: Registry, store: Store, clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock

    def dispatch(self, message: Message, reply: Reply, peer: str) -> None:
        """Handle one message; `reply` is called (maybe later) with the answer, if any."""
        if message.is_response or message.function == FunctionId.HEARTBEAT:
            # Nothing to answer: responses (to ESI/SCN) and Heartbeats are not requests.
            log.debug("ignored %s from %s", _function_name(message.function), peer)
            return
        try:
            outcome = self.registry.handle(message, self.clock())
        except Exception:
            log.exception(
                "internal error handling %s from %s; answered Internal Error",
                _function_name(message.function),
                peer,
            )
            reply(response(message, Status.INTERNAL_ERROR))
            return
        answer = outcome.response
        if outcome.dirty:
            pending = self.store.submit(
                {ref: self.registry.export_record(ref) for ref in outcome.dirty}
            )
        else:
            pending = self.store.barrier()
        if pending is None:
            reply(answer)
            return

        def durable(done: "asyncio.Future[None]") -> None:
            if done.cancelled() or done.exception() is not None:
                reply(response(message, Status.INTERNAL_ERROR))
            else:
                reply(answer)

        pending.add_done_callback(durable)


def _function_name(function: int) -> str:
    try:
        return FunctionId(function).name
    except ValueError:
        return f"function 0x{function:04x}"

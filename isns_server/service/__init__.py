"""iSNSP over asyncio: listeners, transports, and the dispatcher that answers durably."""

from .dispatcher import Dispatcher
from .server import IsnsService, ListenError

__all__ = ["Dispatcher", "IsnsService", "ListenError"]

"""When retry and refresh loops try again: pure functions of the attempt number, and the
`Sleep` they wait with, passed in so their tests drive them without a wall clock."""

from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]  # asyncio.sleep, or a test's recorder

_DOUBLINGS = 64  # beyond this any pause has long reached its limit (and 2**n stays finite)


def doubling(attempt: int, first: float, limit: float | None = None) -> float:
    """The pause before retry `attempt` (0 for the first retry): `first`, doubled with
    each retry after it, at most `limit`."""
    pause = first * 2.0 ** min(attempt, _DOUBLINGS)
    return pause if limit is None else min(pause, limit)

"""Waiting in tests for something another process or task does: poll a probe until its
value passes a check, for a bounded time, and fail naming what was awaited and the last
value seen. `eventually` is for async tests (the probe may be sync or async),
`eventually_sync` for sync ones; never a fixed sleep before an assertion.

`Pacer` is the other side: the sleep a retry or refresh loop is given in a unit test, so
the test sees each pause the loop asks for and decides when it ends, with no wall clock.
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

_T = TypeVar("_T")

WITHIN = 10.0  # seconds before giving up
EVERY = 0.05  # seconds between probes
_SHOWN = 2000  # characters of the last value in a failure


class _Deadline:
    """The bookkeeping both forms share: the time limit and the last value seen."""

    def __init__(self, what: str, within: float) -> None:
        self.what = what
        self.within = within
        self.at = time.monotonic() + within
        self.last: object = "nothing yet"

    def give_up_if_late(self) -> None:
        if time.monotonic() >= self.at:
            last = repr(self.last)
            if len(last) > _SHOWN:  # a log, say: its end is what tells
                last = f"...{last[-_SHOWN:]}"
            raise AssertionError(f"waited {self.within:g} s for {self.what}; last seen: {last}")


@overload
async def eventually(
    probe: Callable[[], Awaitable[_T]],
    ok: Callable[[_T], object] = ...,
    *,
    what: str,
    within: float = ...,
    every: float = ...,
    ignoring: tuple[type[Exception], ...] = ...,
) -> _T: ...


@overload
async def eventually(
    probe: Callable[[], _T],
    ok: Callable[[_T], object] = ...,
    *,
    what: str,
    within: float = ...,
    every: float = ...,
    ignoring: tuple[type[Exception], ...] = ...,
) -> _T: ...


async def eventually(
    probe: Callable[[], Any],
    ok: Callable[[Any], object] = bool,
    *,
    what: str,
    within: float = WITHIN,
    every: float = EVERY,
    ignoring: tuple[type[Exception], ...] = (),
) -> Any:
    """The first value of `probe()` (awaited if it is a coroutine) for which `ok` is true.
    Exceptions of the `ignoring` types count as a value not there yet."""
    deadline = _Deadline(what, within)
    while True:
        try:
            value: Any = probe()
            if inspect.isawaitable(value):
                value = await value
        except ignoring as exc:
            deadline.last = exc
        else:
            if ok(value):
                return value
            deadline.last = value
        deadline.give_up_if_late()
        await asyncio.sleep(every)


def eventually_sync(
    probe: Callable[[], _T],
    ok: Callable[[_T], object] = bool,
    *,
    what: str,
    within: float = WITHIN,
    every: float = EVERY,
    ignoring: tuple[type[Exception], ...] = (),
) -> _T:
    """`eventually` for a test without an event loop: the probe blocks its thread."""
    deadline = _Deadline(what, within)
    while True:
        try:
            value = probe()
        except ignoring as exc:
            deadline.last = exc
        else:
            if ok(value):
                return value
            deadline.last = value
        deadline.give_up_if_late()
        time.sleep(every)


class Pacer:
    """An injected `sleep`: records each pause asked for. Holding, the loop stays in that
    pause until `resume()`; the test awaits `asked()` to see it get there."""

    def __init__(self, hold: bool = False) -> None:
        self.pauses: list[float] = []
        self.hold = hold
        self._asked: asyncio.Queue[float] = asyncio.Queue()
        self._resumed: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if self.hold:
            self._asked.put_nowait(seconds)
            await self._resumed.get()

    async def asked(self, within: float = 5.0) -> float:
        """The next pause the loop asks for (it is then held there)."""
        try:
            async with asyncio.timeout(within):
                return await self._asked.get()
        except TimeoutError:
            raise AssertionError(
                f"waited {within:g} s for the loop's next pause; pauses so far: {self.pauses}"
            ) from None

    def resume(self) -> None:
        """End the pause the loop is held in."""
        self._resumed.put_nowait(None)

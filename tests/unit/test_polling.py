"""The tests' polling helper: returns the first value that passes, and a failure names
what was awaited and the last value seen (`within=0`: no waiting in these tests)."""

import pytest

from ..polling import eventually, eventually_sync


def test_the_first_passing_value_is_returned() -> None:
    values = iter([1, 2, 3])
    assert eventually_sync(lambda: next(values), lambda v: v >= 2, what="two", every=0) == 2


def test_giving_up_names_what_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"waited 0 s for the count to reach 5; last seen: 3"):
        eventually_sync(lambda: 3, lambda v: v >= 5, what="the count to reach 5", within=0)


def test_ignored_exceptions_are_shown_as_the_last_value() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("not listening yet")

    with pytest.raises(AssertionError, match=r"last seen: ConnectionRefusedError\('not listening"):
        eventually_sync(refused, what="a listener", within=0, ignoring=(OSError,))
    with pytest.raises(ConnectionRefusedError):  # not ignored: raised at once
        eventually_sync(refused, what="a listener", within=0)


async def test_an_async_probe_is_awaited() -> None:
    async def count() -> int:
        return 7

    assert await eventually(count, lambda v: v == 7, what="seven", within=0) == 7
    assert await eventually(lambda: "sync", what="a sync probe too", within=0) == "sync"


def test_a_long_last_value_is_shown_by_its_end() -> None:
    log = "start " + "x" * 5000 + " the line that tells"
    with pytest.raises(AssertionError) as failure:
        eventually_sync(lambda: log, lambda text: "ready" in text, what="ready", within=0)
    assert "the line that tells" in str(failure.value) and "start" not in str(failure.value)

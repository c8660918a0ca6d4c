"""The portal's one coalescing mechanism: callbacks run once per pass however often asked
for, from the loop or a worker thread, and those asked for during a pass join it."""

import asyncio
import threading

import pytest

from isns_server.portal.runtime.soon import Soon


@pytest.mark.asyncio
async def test_a_callback_asked_for_twice_runs_once() -> None:
    soon = Soon(asyncio.get_running_loop())
    runs: list[str] = []

    def flush() -> None:
        runs.append("flush")

    soon.call(flush)
    soon.call(flush)
    await asyncio.sleep(0)
    assert runs == ["flush"]
    soon.call(flush)  # a new pass once the last is over
    await asyncio.sleep(0)
    assert runs == ["flush", "flush"]


@pytest.mark.asyncio
async def test_what_a_callback_asks_for_runs_in_the_same_pass() -> None:
    loop = asyncio.get_running_loop()
    soon = Soon(loop)
    runs: list[str] = []

    def flush() -> None:
        runs.append("flush")

    def deliver() -> None:
        runs.append("deliver")
        soon.call(flush)
        soon.call(flush)

    soon.call(deliver)
    loop.call_soon(runs.append, "other")  # queued after the pass: runs after it
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert runs == ["deliver", "flush", "other"]


@pytest.mark.asyncio
async def test_a_pass_ends_after_two_rounds_so_the_loop_polls_in_between() -> None:
    loop = asyncio.get_running_loop()
    soon = Soon(loop)
    runs: list[str] = []

    def again() -> None:  # a worker that keeps finishing
        runs.append("again")
        if runs.count("again") < 4:
            soon.call(again)

    soon.call(again)
    loop.call_soon(runs.append, "poll")  # the loop's other work, queued behind the pass
    for _ in range(4):
        await asyncio.sleep(0)
    assert runs[:3] == ["again", "again", "poll"]
    assert runs.count("again") == 4


@pytest.mark.asyncio
async def test_worker_threads_ask_for_one_pass() -> None:
    loop = asyncio.get_running_loop()
    soon = Soon(loop)
    runs: list[str] = []
    done = asyncio.Event()

    def deliver() -> None:
        runs.append("deliver")
        done.set()

    workers = [threading.Thread(target=soon.call, args=(deliver,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0)
    assert runs == ["deliver"]


@pytest.mark.asyncio
async def test_a_failing_callback_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    soon = Soon(asyncio.get_running_loop())
    runs: list[str] = []

    def broken() -> None:
        raise ValueError("bug")

    soon.call(broken)
    soon.call(lambda: runs.append("next"))
    await asyncio.sleep(0)
    assert runs == ["next"]
    assert "internal error" in caplog.text

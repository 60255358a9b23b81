"""The store thread: calls run one at a time, in order, on one thread that is not the loop's."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from wifisync.daemon.storethread import StoreThread


async def test_calls_run_in_order_on_one_thread_and_answer_their_caller() -> None:
    thread = StoreThread()
    ran: list[tuple[int, int]] = []

    def work(n: int) -> int:
        ran.append((n, threading.get_ident()))
        return n * n

    try:
        results = await asyncio.gather(*(thread.run(work, n) for n in range(50)))
    finally:
        thread.shutdown()
    assert results == [n * n for n in range(50)]
    assert [n for n, _ in ran] == list(range(50))
    assert len({ident for _, ident in ran}) == 1
    assert ran[0][1] != threading.get_ident()


async def test_an_error_reaches_the_caller_and_the_thread_goes_on() -> None:
    thread = StoreThread()

    def fail() -> None:
        raise ValueError("the store said no")

    try:
        with pytest.raises(ValueError, match="the store said no"):
            await thread.run(fail)
        assert await thread.run(lambda: "still here") == "still here"
    finally:
        thread.shutdown()


async def test_a_caller_that_stops_waiting_leaves_its_call_to_run() -> None:
    thread = StoreThread()
    done: list[str] = []

    def slow(name: str) -> None:
        time.sleep(0.05)
        done.append(name)

    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(thread.run(slow, "abandoned"), 0.001)
        await thread.run(slow, "next")
    finally:
        thread.shutdown()
    assert done == ["abandoned", "next"]  # an event handed over is never dropped


async def test_shutdown_finishes_what_was_handed_over_then_refuses_more() -> None:
    thread = StoreThread()
    done: list[int] = []
    pending = [asyncio.ensure_future(thread.run(lambda n=n: done.append(n))) for n in range(5)]
    await asyncio.sleep(0)  # every call handed over
    await asyncio.get_running_loop().run_in_executor(None, thread.shutdown)
    await asyncio.gather(*pending)
    assert done == list(range(5))
    with pytest.raises(RuntimeError):
        await thread.run(lambda: None)


async def test_idle_only_once_every_call_handed_over_has_finished() -> None:
    thread = StoreThread()
    gate, second = threading.Event(), threading.Event()
    try:
        assert thread.idle()
        blocked = asyncio.ensure_future(thread.run(gate.wait))
        queued = asyncio.ensure_future(thread.run(second.wait))
        await asyncio.sleep(0)  # both handed over; the first holds the thread
        assert not thread.idle()
        gate.set()
        await blocked
        assert not thread.idle()  # the second is queued or running
        second.set()
        await queued
        assert thread.idle()
    finally:
        gate.set()
        second.set()
        thread.shutdown()
    assert not thread.idle()  # shut down: the loop must not take the store either


async def test_not_idle_while_a_finished_calls_result_waits_for_its_caller() -> None:
    """A call the thread finished whose caller has not resumed yet still counts: what it
    asked for (frames to send) goes out before anything the loop would run itself."""
    thread = StoreThread()
    finished = threading.Event()
    try:
        call = asyncio.ensure_future(thread.run(finished.set))
        await asyncio.sleep(0)  # handed over
        assert finished.wait(10)
        time.sleep(0.05)  # the thread is done; the loop has not run the caller again
        assert not thread.idle()
        await call
        assert thread.idle()
    finally:
        thread.shutdown()


async def test_a_caller_that_stops_waiting_leaves_the_thread_busy_until_the_call_ends() -> None:
    thread = StoreThread()
    gate = threading.Event()
    try:
        call = asyncio.ensure_future(thread.run(gate.wait))
        await asyncio.sleep(0)
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        assert not thread.idle()  # the call still runs on the thread
        gate.set()
        await asyncio.to_thread(lambda: None)  # let the thread finish
        for _ in range(100):
            if thread.idle():
                break
            await asyncio.sleep(0.01)
        assert thread.idle()
    finally:
        gate.set()
        thread.shutdown()

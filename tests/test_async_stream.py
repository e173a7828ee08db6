"""The ring kernels' ``async_stream`` (what ``async for pkt in AsyncCapture`` runs on), C and pure Python.

No ring and no root: a state object with ``rest`` stands in for the walk, and ``slow`` is a coroutine
function the test scripts. Both kernels must hand out the same items in the same order, call ``slow`` at
the same moments, pass a cancellation down into the awaited ``slow``, and refuse a second concurrent
``anext``. The C one is also run under a trace function, where the interpreter steps it through
``send()``/``__next__`` instead of its ``am_send`` slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from afpacket.ring import _kernels, _kernels_py

KERNELS = {"c": _kernels, "python": _kernels_py}


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: these tests take both kernel modules directly."""
    return "any"


@pytest.fixture(params=list(KERNELS), ids=list(KERNELS))
def k(request: pytest.FixtureRequest) -> ModuleType:
    return KERNELS[request.param]


class State:
    __slots__ = ("rest",)

    def __init__(self, rest: Iterator[Any] | None = None) -> None:
        self.rest = rest


class Slow:
    """A scripted slow path: each call returns the next scripted item (or raises it, if an exception);
    ``refill`` (an iterable) becomes state.rest when a call is made, as the walk's next batch would."""

    def __init__(self, state: State, script: list[Any], refill: list[list[Any]] | None = None) -> None:
        self.state, self.script, self.refill = state, list(script), list(refill or [])
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        await asyncio.sleep(0)
        if self.refill:
            batch = iter(self.refill.pop(0))
            self.state.rest = batch
            return next(batch)
        if not self.script:
            raise StopAsyncIteration
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


async def collect(stream: Any, limit: int = 10_000) -> list[Any]:
    out = []
    async for item in stream:
        out.append(item)
        if len(out) >= limit:
            break
    return out


def test_batch_in_hand_then_slow_path_then_end(k: ModuleType) -> None:
    st = State(iter([1, 2, 3]))
    slow = Slow(st, ["s1"], refill=[[10, 11, 12]])
    got = asyncio.run(collect(k.async_stream(st, slow, 1000)))
    # 1-3 from the batch in hand; the slow path takes 10 and leaves 11, 12 in hand; then "s1"; then the end
    assert got == [1, 2, 3, 10, 11, 12, "s1"]
    assert slow.calls == 3


@pytest.mark.parametrize("check", [1, 2, 5, 256])
def test_slow_path_at_least_every_check_items_same_in_both_kernels(check: int) -> None:
    n = max(40, 3 * check)

    def run(k: ModuleType) -> tuple[list[Any], list[int]]:
        st = State(itertools.count())
        marks: list[int] = []
        got: list[Any] = []

        async def slow() -> Any:
            marks.append(len(got))
            assert st.rest is not None
            return ("slow", next(st.rest))

        async def main() -> None:
            async for item in k.async_stream(st, slow, check):
                got.append(item)
                if len(got) == n:
                    break

        asyncio.run(main())
        return got, marks

    c, py = run(_kernels), run(_kernels_py)
    assert c == py
    got, marks = c
    assert [x[1] if isinstance(x, tuple) else x for x in got] == list(range(n))  # one stream, nothing skipped
    gaps = [b - a for a, b in itertools.pairwise([0, *marks])]
    assert marks and max(gaps) <= check, marks


def test_a_batch_cut_short_gives_nothing_more(k: ModuleType) -> None:
    """What the capture's cut_current() does when a batch ends early (close(), a fork): the batch's
    iterator is exhausted and st.rest dropped; the stream takes no more from it and asks the slow path."""
    batch = ["a", "b", "c"]
    st = State(iter(batch))
    slow = Slow(st, ["after"])

    async def main() -> list[Any]:
        out = []
        async for item in k.async_stream(st, slow, 1000):
            out.append(item)
            if item == "a":
                batch.clear()
                st.rest = None
        return out

    assert asyncio.run(main()) == ["a", "after"]
    assert slow.calls == 2


def test_the_walk_moving_on_is_followed(k: ModuleType) -> None:
    """anext() (the slow path) between two async-for steps moves the walk to a new batch: the stream
    goes on with the new batch in hand."""
    st = State(iter(["a"]))
    slow = Slow(st, [], refill=[["x", "y", "z"]])

    async def main() -> list[Any]:
        stream = k.async_stream(st, slow, 1000)
        out = [await anext_of(stream)]
        out.append(await slow())  # someone else took "x" through the walk; "y", "z" are in hand
        out += [item async for item in stream]
        return out

    assert asyncio.run(main()) == ["a", "x", "y", "z"]


def test_waiting_in_the_slow_path_lets_other_tasks_run(k: ModuleType) -> None:
    async def main() -> tuple[list[int], int]:
        st = State()
        ticks = 0
        queue: asyncio.Queue[int | None] = asyncio.Queue()

        async def slow() -> int:
            item = await queue.get()
            if item is None:
                raise StopAsyncIteration
            return item

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.001)
                ticks += 1

        async def producer() -> None:
            for i in range(5):
                await asyncio.sleep(0.01)
                queue.put_nowait(i)
            queue.put_nowait(None)

        t, p = asyncio.create_task(ticker()), asyncio.create_task(producer())
        got = await collect(k.async_stream(st, slow, 1000))
        t.cancel()
        await p
        return got, ticks

    got, ticks = asyncio.run(main())
    assert got == [0, 1, 2, 3, 4]
    assert ticks >= 10  # the loop ran the ticker while the stream waited


def test_cancellation_reaches_the_awaited_slow_path_and_loses_nothing(k: ModuleType) -> None:
    async def main() -> tuple[list[Any], list[str]]:
        st = State()
        seen: list[str] = []
        ready = asyncio.Event()
        pending = ["p0"]

        async def slow() -> str:
            try:
                await ready.wait()
            except asyncio.CancelledError:
                seen.append("cancelled inside slow")
                raise
            return pending.pop(0)

        stream = k.async_stream(st, slow, 1000)
        task = asyncio.create_task(anext_of(stream))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        ready.set()
        # a new stream (as a new `async for` after a cancelled one) goes on: the cancelled wait took nothing
        got = [await anext_of(k.async_stream(st, slow, 1000))]
        return got, seen

    got, seen = asyncio.run(main())
    assert got == ["p0"]
    assert seen == ["cancelled inside slow"]


async def anext_of(stream: Any) -> Any:
    return await stream.__anext__()


def test_second_concurrent_anext_is_refused(k: ModuleType) -> None:
    async def main() -> None:
        st = State()
        ready = asyncio.Event()

        async def slow() -> str:
            await ready.wait()
            return "x"

        stream = k.async_stream(st, slow, 1000)
        first = asyncio.create_task(anext_of(stream))
        await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="already"):
            await anext_of(stream)
        ready.set()
        assert await first == "x"

    asyncio.run(main())


def test_an_error_in_the_slow_path_propagates_and_the_stream_goes_on(k: ModuleType) -> None:
    async def main() -> list[Any]:
        st = State()
        slow = Slow(st, [ValueError("link gone"), "next"])
        stream = k.async_stream(st, slow, 1000)
        with pytest.raises(ValueError, match="link gone"):
            await anext_of(stream)
        return [await anext_of(stream)]

    # the C stream goes on after an error; an async generator ends, so only C is asked to continue
    if k is _kernels:
        assert asyncio.run(main()) == ["next"]
    else:
        async def py() -> None:
            st = State()
            stream = k.async_stream(st, Slow(st, [ValueError("link gone")]), 1000)
            with pytest.raises(ValueError, match="link gone"):
                await anext_of(stream)

        asyncio.run(py())


def test_under_a_trace_function(k: ModuleType) -> None:
    """A tracer (coverage, a debugger) makes the interpreter use send()/__next__ instead of am_send."""
    st = State(iter([1, 2]))
    slow = Slow(st, ["s"], refill=[[3, 4]])

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        got = asyncio.run(collect(k.async_stream(st, slow, 1000)))
    finally:
        sys.settrace(old)
    assert got == [1, 2, 3, 4, "s"]


def test_bad_arguments(k: ModuleType) -> None:
    with pytest.raises(TypeError, match="slow must be callable"):
        k.async_stream(State(), 3, 10)
    with pytest.raises(ValueError, match="check must be at least 1"):
        k.async_stream(State(), Slow(State(), []), 0)


def test_no_reference_is_leaked(k: ModuleType) -> None:
    """A thousand streams run to the end, cancelled, or dropped mid-wait leave the state, the slow path and
    the items with the references they had (a leaked reference in the C object would show here)."""
    item = object()
    st = State()

    async def slow() -> object:
        await asyncio.sleep(0)
        for x in st.rest or ():  # the walk's next item, as the capture's slow path takes it
            return x
        raise StopAsyncIteration

    async def main() -> None:
        for i in range(1000):
            st.rest = iter([item] * 5)
            stream = k.async_stream(st, slow, 3)
            if i % 3 == 0:
                assert [x async for x in stream] == [item] * 5
            elif i % 3 == 1:
                task = asyncio.create_task(anext_of(stream))
                await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await task
            else:
                await anext_of(stream)
            del stream

    before = (sys.getrefcount(item), sys.getrefcount(st), sys.getrefcount(slow))
    asyncio.run(main())
    st.rest = None
    gc.collect()
    assert (sys.getrefcount(item), sys.getrefcount(st), sys.getrefcount(slow)) == before

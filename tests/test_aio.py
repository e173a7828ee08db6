"""asyncio capture and transmit (afpacket.aio) over veth pairs, on the default loop and on uvloop.

Every test runs its coroutine on a fresh loop of the kind named by ``loop_kind``; the ring walk is the
blocking capture's own, driven by add_reader/add_writer on the loop's thread, so what these prove is
that nothing is lost or starved and that cancellation leaves the ring and the counters exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import subprocess
import time
from collections.abc import Coroutine
from typing import Any

import pytest
import uvloop
from conftest import trafgen, udp_frame

import afpacket
from afpacket.errors import (
    AfPacketError,
    ArgumentError,
    CaptureClosedError,
    FrameTooLargeError,
    InterfaceNotFoundError,
    LinkDownError,
)
from afpacket.testnet import VethPair

LOOPS = ["asyncio", "uvloop"]
PORT = 5555


def run(kind: str, coro: Coroutine[Any, Any, Any]) -> Any:
    factory = uvloop.new_event_loop if kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, uvloop.Loop) == (kind == "uvloop")
        return runner.run(coro)


def inbound(net: VethPair, size: int = 60) -> bytes:
    """A UDP frame from the inner end to the outer one (where the captures listen)."""
    return udp_frame(net.outer_mac, net.inner_mac, b"a" * size, dport=PORT)


async def ticker(ticks: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def rx_packets(net: VethPair) -> int:
    return int(net.exec("cat", f"/sys/class/net/{net.inner}/statistics/rx_packets").stdout)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_burst_of_100k_arrives_whole_while_another_task_ticks(net: VethPair, loop_kind: str) -> None:
    n = 100_000
    frame = inbound(net)

    async def main() -> tuple[int, float, list[float], afpacket.SocketStats]:
        ticks: list[float] = []
        stop = asyncio.Event()
        got = 0
        async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", buffer_size=32 << 20) as cap:
            tick_task = asyncio.create_task(ticker(ticks, stop))
            start = time.monotonic()

            async def read() -> None:
                nonlocal got
                async for pkt in cap:
                    assert pkt.wire_len == len(frame)
                    got += 1
                    if got == n:
                        break

            reader = asyncio.create_task(read())
            await asyncio.to_thread(trafgen, net, frame, n)  # trafgen is a subprocess; the loop runs meanwhile
            try:
                await asyncio.wait_for(reader, 10)
            except TimeoutError:
                pytest.fail(f"{got} of {n} frames read; {cap.stats()}")
            elapsed = time.monotonic() - start
            stop.set()
            await tick_task
            st = cap.stats()
        return got, elapsed, [t - start for t in ticks if t - start <= elapsed], st

    got, elapsed, ticks, st = run(loop_kind, main())
    assert got == n
    assert (st.received, st.drops, st.packets) == (n, 0, n)
    # The reader gave the loop back all along: the 10 ms ticker kept (nearly) its pace through the burst.
    assert elapsed > 0.05
    assert len(ticks) >= 0.7 * elapsed / 0.01, (len(ticks), elapsed)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_cancelled_readers_lose_nothing_and_a_new_capture_gets_the_rest(net: VethPair, loop_kind: str) -> None:
    n1, n2 = 20_000, 5_000
    frame = inbound(net)

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        cap = afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", buffer_size=16 << 20)
        async with cap:
            await asyncio.to_thread(trafgen, net, frame, n1)
            counts = {"batches": 0, "packets": 0}
            holding = asyncio.Event()

            async def by_batches() -> None:  # cancelled while it holds a batch
                async for batch in cap.batches():
                    counts["batches"] += batch.count
                    if counts["batches"] >= 3000:
                        holding.set()
                        await asyncio.sleep(3600)

            async def by_packets() -> None:  # cancelled mid-batch, holding a packet
                async for pkt in cap:
                    assert len(bytes(pkt)) == len(frame)
                    counts["packets"] += 1
                    if counts["packets"] == 7777:
                        holding.set()
                        await asyncio.sleep(3600)

            for body in (by_batches, by_packets):
                holding.clear()
                task = asyncio.create_task(body())
                await asyncio.wait_for(holding.wait(), 10)
                await cancel(task)
            out["held_batch"] = cap.capture._ring_walker.batch is not None  # the packet walk's, kept for the rest
            rest = 0
            while await cap.next_packet(timeout=0.3) is not None:
                rest += 1
            # A task cancelled while it awaits an empty ring leaves nothing behind either.
            waiting = asyncio.create_task(cap.next_packet())
            await asyncio.sleep(0.05)
            await cancel(waiting)
            out["first"] = (counts["batches"], counts["packets"], rest)
            out["st1"] = cap.stats()
        out["closed_reader"] = cap._watching
        async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", buffer_size=16 << 20) as cap2:
            await asyncio.to_thread(trafgen, net, frame, n2)
            second = 0
            async for _ in cap2.frames():
                second += 1
                if second == n2:
                    break
            out["second"] = second
            out["st2"] = cap2.stats()
        return out

    out = run(loop_kind, main())
    b, p, rest = out["first"]
    assert b >= 3000 and p == 7777 and rest > 0
    assert out["held_batch"]
    assert b + p + rest == n1  # every packet once: nothing lost at a cancellation, nothing handed out twice
    st1, st2 = out["st1"], out["st2"]
    assert (st1.received, st1.drops, st1.packets) == (n1, 0, n1)
    assert out["closed_reader"] is False
    assert out["second"] == n2 and (st2.received, st2.drops) == (n2, 0)
    assert b + p + rest + out["second"] == n1 + n2


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_send_with_back_pressure_sends_exactly_what_was_asked(net: VethPair, loop_kind: str) -> None:
    n = 5_000
    frame = udp_frame(net.inner_mac, net.outer_mac, b"t" * 1000, dport=PORT, src=net.outer_ip, dst=net.inner_ip)
    # A token bucket holds frames in the qdisc: their slots stay the kernel's, the 16-slot ring fills,
    # and send() has to wait for slots (the limit is far above 16 frames, so nothing is tail-dropped).
    subprocess.run(
        ["tc", "qdisc", "add", "dev", net.outer, "root", "tbf", "rate", "200mbit", "burst", "16kb", "limit", "1mb"],
        check=True,
    )
    before = rx_packets(net)

    async def main() -> dict[str, Any]:
        ticks: list[float] = []
        stop = asyncio.Event()
        seen = 0
        async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", buffer_size=16 << 20) as cap:

            async def count() -> None:
                nonlocal seen
                async for _ in cap:
                    seen += 1
                    if seen == n:
                        return

            counter = asyncio.create_task(count())
            tick_task = asyncio.create_task(ticker(ticks, stop))
            start = time.monotonic()
            async with afpacket.AsyncTransmitter(net.outer, frame_count=16, batch=4) as tx:
                for _ in range(n):
                    await tx.send(frame)
                await tx.flush()
                st = tx.stats()
                waits = tx.waits
            elapsed = time.monotonic() - start
            stop.set()
            await tick_task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(counter, 3)
        return {"st": st, "seen": seen, "ticks": len(ticks), "elapsed": elapsed, "waits": waits}

    out = run(loop_kind, main())
    st = out["st"]
    assert (st.sent, st.failed, st.pending, st.unsent) == (n, 0, 0, 0)
    assert st.bytes == n * len(frame)
    assert out["waits"] > 0  # the ring was full and send() awaited a slot
    assert out["seen"] == n
    assert rx_packets(net) - before == n  # the other end received every frame
    assert out["ticks"] >= 0.5 * out["elapsed"] / 0.01, out


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_enobufs_push_back_is_retried_without_blocking_the_loop(net: VethPair, loop_kind: str) -> None:
    """A token bucket with a small byte limit tail-drops: the kernel puts the frame back and answers ENOBUFS.
    The blocking transmitter sleeps and kicks again; the async one must wait on the loop instead, so a
    10 ms ticker keeps ticking (at least 70% of its ticks, no gap of 100 ms; the blocking way gave a 140 ms gap
    and two ticks in 160 ms) while every frame still arrives once."""
    n = 10_000
    frame = udp_frame(net.inner_mac, net.outer_mac, b"e" * 18, dport=PORT, src=net.outer_ip, dst=net.inner_ip)
    subprocess.run(["tc", "qdisc", "add", "dev", net.outer, "root", "tbf", "rate", "10mbit", "burst", "3kb",
                    "limit", "3000"], check=True)
    before = rx_packets(net)

    async def main() -> tuple[afpacket.TransmitStats, list[float], float]:
        ticks: list[float] = []
        stop = asyncio.Event()
        async with afpacket.AsyncTransmitter(net.outer, frame_count=256, batch=64) as tx:
            tick_task = asyncio.create_task(ticker(ticks, stop))
            await asyncio.sleep(0)
            start = time.monotonic()  # the ring is set up (that blocks, once): the sending is what is timed
            for _ in range(n):
                await tx.send(frame)
            await tx.flush()
            st = tx.stats()
            elapsed = time.monotonic() - start
            # The ticker stops before the socket closes: the kernel's teardown of a ring socket waits for an
            # RCU grace period (synchronize_net), which blocks the closing thread for tens of ms, whatever
            # sends; that is close(), not the retries measured here.
            stop.set()
            await tick_task
        return st, [start, *ticks], elapsed

    # The garbage collector's full passes take tens of ms late in a long test session; they would show up as
    # loop gaps that are not the transmitter's. It is off while the sending is timed.
    gc.disable()
    try:
        st, ticks, elapsed = run(loop_kind, main())
    finally:
        gc.enable()
    assert (st.sent, st.failed, st.pending, st.unsent) == (n, 0, 0, 0)
    assert st.enobufs > 0 and st.retries >= st.enobufs  # the qdisc pushed back, and each was retried
    assert rx_packets(net) - before == n
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert elapsed > 0.3 and len(gaps) >= 0.7 * elapsed / 0.01 and max(gaps) < 0.1, (elapsed, len(gaps), max(gaps))


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_stop_and_close_end_a_waiting_iteration(net: VethPair, loop_kind: str) -> None:
    async def main() -> tuple[list[Any], bool]:
        results: list[Any] = []
        cap = afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}")

        async def iterate() -> None:
            async for pkt in cap:
                results.append(pkt)
            results.append("ended")

        task = asyncio.create_task(iterate())
        await asyncio.sleep(0.05)
        cap.stop()
        await asyncio.wait_for(task, 2)
        cap2 = afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}")
        waiting = asyncio.create_task(cap2.next_packet())
        await asyncio.sleep(0.05)
        cap2.close()
        results.append(await asyncio.wait_for(waiting, 2))
        cap.close()
        return results, cap2._watching

    results, watching = run(loop_kind, main())
    assert results == ["ended", None]
    assert watching is False


@pytest.mark.parametrize("loop_kind", ["asyncio"])
def test_bad_input(net: VethPair, loop_kind: str) -> None:
    with pytest.raises(InterfaceNotFoundError):
        afpacket.AsyncCapture("nosuchif0")
    with pytest.raises(AfPacketError):
        afpacket.AsyncCapture(net.outer, version=7)
    with pytest.raises(TypeError):
        afpacket.AsyncCapture(net.outer, no_such_option=1)
    with pytest.raises(AfPacketError):
        afpacket.AsyncTransmitter("any")
    with pytest.raises(InterfaceNotFoundError):
        afpacket.AsyncTransmitter("nosuchif0")
    frame = inbound(net)

    async def main() -> None:
        async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", version=2) as cap:
            with pytest.raises(ArgumentError):
                await cap.next_packet(timeout=-1)
            with pytest.raises(TypeError):
                await cap.next_packet(timeout="1")  # type: ignore[arg-type]
            assert await cap.next_packet(timeout=0) is None
            await asyncio.to_thread(net.send, [frame] * 3)
            assert await cap.next_packet(timeout=2) is not None
            with pytest.raises(AfPacketError, match="holds a batch"):
                cap.batches()
        with pytest.raises(CaptureClosedError):
            await cap.next_packet(timeout=0)
        with pytest.raises(CaptureClosedError):
            cap.__aiter__()
        with pytest.raises(CaptureClosedError):
            cap.stats()
        tx = afpacket.AsyncTransmitter(net.outer)
        with pytest.raises(FrameTooLargeError):
            await tx.send(b"\0" * 4000)
        with pytest.raises(TypeError):
            await tx.send(12345)  # type: ignore[arg-type]
        await tx.aclose()
        with pytest.raises(CaptureClosedError):
            await tx.send(frame)
        with pytest.raises(CaptureClosedError):
            await tx.flush()
        assert tx.stats().sent == 0

    run(loop_kind, main())


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_two_reading_tasks_share_the_stream(net: VethPair, loop_kind: str) -> None:
    n = 3000
    frame = inbound(net)

    async def main() -> tuple[list[int], afpacket.SocketStats]:
        counts = [0, 0]
        async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", version=2) as cap:

            async def read(i: int) -> None:
                while await cap.next_packet(timeout=0.3) is not None:
                    counts[i] += 1
                    await asyncio.sleep(0)  # let the other reader in

            readers = [asyncio.create_task(read(i)) for i in range(2)]
            await asyncio.to_thread(trafgen, net, frame, n)
            await asyncio.wait_for(asyncio.gather(*readers), 20)
            return counts, cap.stats()

    counts, st = run(loop_kind, main())
    assert sum(counts) == n == st.packets and st.drops == 0
    assert min(counts) > 0


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_interface_removed_ends_iteration_after_the_ring_is_read(loop_kind: str) -> None:
    with VethPair("afpa") as net:
        frame = inbound(net)

        async def main() -> tuple[int, BaseException | None]:
            got = 0
            async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}") as cap:
                await asyncio.to_thread(net.send, [frame] * 50)
                await asyncio.sleep(0.05)
                await asyncio.to_thread(net.delete)
                try:
                    async for _ in cap:
                        got += 1
                except LinkDownError as e:
                    return got, e
            return got, None

        got, err = run(loop_kind, main())
    assert got == 50
    assert isinstance(err, LinkDownError) and "50 read from the ring" in str(err)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_async_for_and_anext_share_one_ordered_stream(net: VethPair, loop_kind: str) -> None:
    # async for runs on a per-iterator async generator (the fast path); anext(cap) on a coroutine per
    # packet. Both step the capture's one walk: mixed and restarted, every frame comes once, in order.
    n = 400
    frames = [udp_frame(net.outer_mac, net.inner_mac, i.to_bytes(4, "big") + b"s" * 40, dport=PORT) for i in range(n)]

    async def main() -> tuple[list[int], bool]:
        seen: list[int] = []

        def seq(pkt: afpacket.Packet) -> int:
            return int.from_bytes(bytes(pkt)[42:46], "big")

        async with afpacket.AsyncCapture(net.outer, filter=f"udp dst port {PORT}", version=2) as cap:
            await asyncio.to_thread(net.send, frames)
            for _ in range(5):
                seen.append(seq(await anext(cap)))
            async for pkt in cap:  # a first iterator, left after 100 packets
                seen.append(seq(pkt))
                if len(seen) == 105:
                    break
            seen.append(seq(await anext(cap)))
            async for pkt in cap:  # a second one goes on where the others stopped
                seen.append(seq(pkt))
                if len(seen) == n:
                    break

            async def stopper() -> None:
                await asyncio.sleep(0.2)
                cap.stop()

            stopping = asyncio.create_task(stopper())
            ended = False
            async for _pkt in cap:  # the ring is empty: this waits until stop() ends it
                seen.append(-1)
            ended = True
            await stopping
        return seen, ended

    seen, ended = run(loop_kind, main())
    assert seen == list(range(n))
    assert ended

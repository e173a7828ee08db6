"""asyncio capture and transmit on the event loop's own thread: no helper thread, no unbounded queue.

:class:`AsyncCapture` drives the same non-blocking ring walk as the blocking :class:`~afpacket.Capture`
(``_batches``/``_walk`` over :class:`~afpacket.rx.walker.RingWalker`), with the walk told never to wait
(poll timeout 0, idle steps yielded as None). When a step finds the slot under the cursor still the
kernel's, the reader awaits the socket through ``loop.add_reader``: the kernel reports POLLIN while the
block (V3) or frame (V1/V2) before its own head is the user's, so the fd is readable exactly while
something is ready, and the consumer, once woken, steps over every ready batch before it waits again.
The reader is watched only while a consumer waits (a wake-up with nobody waiting unregisters it), so a
slow consumer leaves the packets in the ring, which is the only buffer: back-pressure is the ring
filling, counted by the kernel as drops. On V3 the block timeout bounds how long a packet on a quiet
link waits before its block is handed over and the fd turns readable.

The walk's state lives on the AsyncCapture, not in the task that iterates, so a task cancelled while
it waits, or while it holds a packet or a batch, loses nothing: the next read goes on from the next
packet, and close() hands the batch in hand back. A consumer that always finds a packet ready would
never give the loop back, so the iteration suspends (``asyncio.sleep(0)``) once every
:data:`FAIR_SLICE` seconds, before taking the next packet (so a cancellation there loses none).
``async for`` runs on the ring kernels' ``async_stream`` (``AsyncCapture.__aiter__``), not a coroutine per
packet: with the C core, handing out a packet ready in the batch in hand is one ``am_send`` call that
returns it, with no coroutine or exception object (see benchmarks/README.md, ``bench_async.py``).

:class:`AsyncTransmitter` wraps a :class:`~afpacket.Transmitter`: ``await send(frame)`` copies the frame
into the next free slot at once, and when the ring is full kicks the kernel and awaits a free slot.
What the kernel reports as POLLOUT on a TX ring socket (``packet_poll`` in ``net/packet/af_packet.c``)
is *either* room in the socket's send buffer (``datagram_poll``: in-flight frames below half of
SO_SNDBUF) *or* the kernel's head slot being AVAILABLE; checked on Linux 6.x over veth, a socket
whose every slot is SEND_REQUEST still polls writable. So POLLOUT (``loop.add_writer``) wakes the
sender when in-flight frames free send-buffer room, and a wake-up that finds our own slot still busy
backs off on the loop's timers (50 µs doubling to 1 ms) rather than spinning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from types import GeneratorType, TracebackType
from typing import Any, Generic, TypeVar, cast

from . import _check
from .errors import AfPacketError, CaptureClosedError, TransmitError
from .rx.capture import DRAIN_POLL_MS, Batch, Capture, _batches, _walk
from .rx.columns import Columns, columns_of
from .rx.packet import Packet
from .sock import SocketStats
from .tx import _NOT_FREE, Frame, TransmitStats, Transmitter, kernel_may_send, kernel_owns, kernel_rejected

__all__ = ["AsyncCapture", "AsyncTransmitter"]

_T = TypeVar("_T")

#: the longest a reader keeps the loop while packets keep coming, before it lets other tasks run (s)
FAIR_SLICE = 0.002
#: packets taken between two looks at the clock for FAIR_SLICE
FAIR_CHECK = 256
#: TX back-off after a POLLOUT wake-up that found our slot still busy: first and longest pause (s)
TX_BACKOFF_FIRST = 50e-6
TX_BACKOFF_LAST = 1e-3


class AsyncCapture:
    """Capture packets inside an asyncio event loop (the default loop or uvloop), with no thread.

    Example::

        async with afpacket.AsyncCapture("eth0", filter="udp port 53") as cap:
            async for pkt in cap:                    # Packet objects, as Capture yields them
                print(pkt.wire_len)
            async for batch in cap.batches():        # or whole batches, for the ring kernels
                ...

    ``interface`` and ``options`` (every keyword option) are those of :class:`~afpacket.Capture`
    (``version``, ``buffer_size``, ``block_timeout_ms``, ``filter``, ``fanout``, ...); ``poll_timeout`` is the
    default timeout of :meth:`next_packet`. The capture is opened (and its errors raised) by the
    constructor, which does not need a running loop.

    Reading: ``async for pkt in cap`` yields every packet until :meth:`close` or :meth:`stop`;
    :meth:`next_packet` awaits one; :meth:`batches`, :meth:`columns` and :meth:`frames` give the
    same stream as batches, arrays of metadata or bytes. Lifetimes are those of the blocking capture: a
    packet's ``data`` is valid until the reader moves past its batch (a packet kept stays valid with a
    copy of its frame), and a batch goes back to the kernel when the next one is asked for, or at
    :meth:`release` or :meth:`close`.

    Several tasks may read, but they share one stream (each gets some of the packets); the usual shape
    is one reading task. Call :meth:`close` (or use ``async with``): while a read waits, the loop holds
    a reference to the capture. The stream's position belongs to the capture, not to the task: a task cancelled
    mid-stream loses nothing, and the next read continues with the next packet; :meth:`stats` stays
    exact. Mixing packet iteration and batches: batches() refuses (AfPacketError) while a packet
    iteration is in the middle of a batch, as the blocking capture does.

    Raises what :class:`~afpacket.Capture` raises; iteration raises LinkDownError once the interface went
    away and the ring was read to the end, and CaptureClosedError in a forked child.
    """

    def __init__(self, interface: str, **options: Any) -> None:
        self._closed = True  # until the Capture exists: close() and __del__ have nothing to do
        #: the blocking capture underneath, for its attributes and set_filter(); reading packets from it
        #: while this object reads is not supported (they share one walk)
        self.capture = Capture(interface, **options)
        self._closed = False
        self.interface = interface
        self._st = self.capture._st
        self._arm()  # the walk never waits in poll(): a step with nothing ready yields None at once
        self._fd = self.capture.fileno()
        self._pw: GeneratorType[Packet | None, None, None] | None = None  # the packet walk (_walk)
        self._bw: GeneratorType[Batch | None, None, None] | None = None  # the batch walk (_batches)
        self._frames: Iterator[bytes] | None = None  # frames() position inside the current batch
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the reader is registered with
        self._watching = False
        self._waiter: asyncio.Future[None] | None = None
        self._budget = FAIR_CHECK
        self._slice_start = time.monotonic()

    # -- waiting ----------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)
            self._waiter = None
            return
        # Nobody waits: stop watching, so a slow consumer leaves the packets in the ring (back-pressure).
        self._unwatch()

    def _unwatch(self) -> None:
        if self._watching and self._loop is not None:
            self._watching = False
            try:
                self._loop.remove_reader(self._fd)
            except (RuntimeError, ValueError, OSError):  # the loop is closed, or the fd already gone
                pass

    async def _readable(self) -> None:
        """Wait until the socket is readable (a batch is ready, or an error to read), or stop/close."""
        if self._st.gone is not None:
            # The interface went away: the walk drains what the kernel still hands over, on a timer.
            await asyncio.sleep(DRAIN_POLL_MS / 1000)
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (asyncio.run() again): forget the old one's reader and future
            self._unwatch()
            self._loop = loop
            self._waiter = None
        fut = self._waiter
        if fut is None or fut.done():
            fut = self._waiter = loop.create_future()
        if not self._watching:
            loop.add_reader(self._fd, self._on_readable)
            self._watching = True
        # Shielded: readers in several tasks share one wake-up, and cancelling one leaves it to the others.
        await asyncio.shield(fut)
        self._budget = FAIR_CHECK
        self._slice_start = time.monotonic()

    async def _fair(self) -> None:
        """Let other tasks run if this reader has kept the loop for FAIR_SLICE (called before a step)."""
        self._budget = FAIR_CHECK
        await self._yield_if_slice_over()

    async def _yield_if_slice_over(self) -> None:
        if time.monotonic() - self._slice_start >= FAIR_SLICE:
            await asyncio.sleep(0)
            self._slice_start = time.monotonic()

    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    def _arm(self) -> None:
        """Tell the walk never to wait (poll timeout 0, idle steps yielded as None): set at every entry
        point, since a blocking read on :attr:`capture` changes these settings."""
        st = self._st
        st.poll_ms = 0
        st.yield_idle = True
        st.deadline = None

    # -- the walks --------------------------------------------------------------------------------
    def _packet_walk(self) -> GeneratorType[Packet | None, None, None]:
        w = self._pw
        if w is None or w.gi_frame is None:
            self._end_batch_walk()
            w = self._pw = cast("GeneratorType[Packet | None, None, None]", _walk(self._st))
        return w

    def _batch_walk(self) -> GeneratorType[Batch | None, None, None]:
        w = self._bw
        if w is None or w.gi_frame is None:
            walker = self.capture._ring_walker
            if self._pw is not None and walker.batch is not None:
                raise AfPacketError("a packet iteration holds a batch; finish it before reading batches")
            pw, self._pw = self._pw, None  # ended between batches: nothing held
            if pw is not None:
                # Finish it now (a suspended ``async for`` iterator may still reference it), so its
                # cleanup cannot run later, in the middle of the batch walk.
                pw.close()
            w = self._bw = cast("GeneratorType[Batch | None, None, None]", _batches(self._st))
        return w

    def _end_batch_walk(self) -> None:
        """Hand the batch of a batch walk back (its consumer has it; the packets are not read again)."""
        self._frames = None
        w, self._bw = self._bw, None
        if w is not None:
            w.close()

    def release(self) -> None:
        """Hand the batch that :meth:`batches`/:meth:`columns`/:meth:`frames` gave last back to the
        kernel now, instead of at the next read (a consumer that leaves the loop early calls this, or
        :meth:`close`). A packet iteration mid-batch is not touched."""
        self._end_batch_walk()

    async def _next_batch(self) -> Batch:
        """The next user-owned batch, awaiting readiness as long as none is; StopAsyncIteration at the end."""
        if self._closed:
            raise StopAsyncIteration
        await self._fair()
        return await self._step(self._batch_walk())

    # -- public reading API -----------------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Packet]:
        """An async iterator over every packet until :meth:`close` or :meth:`stop`: what ``async for``
        uses. Each call gives a new one over the capture's one stream (the position is the capture's); a
        task cancelled inside ``async for`` starts a new ``async for`` to go on with the next packet.

        The iterator is the ring kernels' ``async_stream``: it hands out the packets of the batch in hand
        (``st.rest``, the iterator the walk yields from, one shared position, so ``next_packet()``/``anext()``
        in between go on from the same packet) without a coroutine per packet (the C kernel's has an
        ``am_send`` slot), and runs :meth:`_slow_next` for the rest: the first packet of every batch, the
        waits, and the fairness pause every :data:`FAIR_CHECK` packets. Nothing is held between steps: a
        packet leaves the walk only when handed out, and the walk, the batch in hand and the fairness
        clock are the capture's, so a cancellation (at the wait, at the pause, or in the consumer's body)
        loses nothing. The walk clears ``st.rest`` when a batch ends early (close(), a fork): its packets
        are expired then, and no more is taken from it.
        """
        self._check()
        self._arm()
        stream: AsyncIterator[Packet] = self.capture.kernels.async_stream(self._st, self._slow_next, FAIR_CHECK)
        return stream

    async def _slow_next(self) -> Packet:
        """The next packet when the batch in hand has none left (or every FAIR_CHECK packets): first let
        other tasks run if this reader has kept the loop for FAIR_SLICE (no packet is taken before that,
        so a cancellation there loses none), then step the walk, awaiting the socket while nothing is ready."""
        if self._closed:
            raise StopAsyncIteration
        await self._yield_if_slice_over()
        return await self._step(self._packet_walk())

    async def _step(self, walk: GeneratorType[_T | None, None, None]) -> _T:
        """Step ``walk`` (the packet or the batch walk) to its next item, awaiting readiness while none is
        ready; StopAsyncIteration when the walk ends or the capture is closed."""
        while True:
            try:
                item = next(walk)
            except StopIteration:
                raise StopAsyncIteration from None
            if item is not None:
                return item
            await self._readable()
            if self._closed:
                raise StopAsyncIteration

    async def __anext__(self) -> Packet:
        """The next packet, awaiting the ring when none is ready (``await anext(cap)``; ``async for``
        uses the faster iterator from :meth:`__aiter__`). Several tasks may await it at once."""
        if self._closed:
            raise StopAsyncIteration
        self._budget -= 1
        if self._budget <= 0:
            await self._fair()  # before taking a packet: a cancellation here loses none
        return await self._step(self._packet_walk())

    async def next_packet(self, timeout: float | None = None) -> Packet | None:
        """The next packet, or None if none arrived within ``timeout`` seconds.

        ``timeout`` defaults to the capture's ``poll_timeout``; None (both unset) waits until a packet
        comes, :meth:`stop` or :meth:`close`; 0 only looks at the ring. On V3 a packet becomes visible
        when its block is handed over (``block_timeout_ms``). Raises CaptureClosedError after close(),
        ArgumentError/TypeError for a negative, NaN or non-numeric ``timeout``.
        """
        self._check()
        timeout = _check.seconds("next_packet()", "timeout", timeout)
        t = self.capture.poll_timeout if timeout is None else timeout
        self._arm()
        loop = asyncio.get_running_loop()
        deadline = None if t is None else loop.time() + t
        walk = self._packet_walk()
        while True:
            try:
                pkt = next(walk)
            except StopIteration:
                return None
            if pkt is not None:
                return pkt
            if self._closed:
                return None
            if deadline is None:
                await self._readable()
                continue
            left = deadline - loop.time()
            if left <= 0:
                return None
            try:
                async with asyncio.timeout(left):
                    await self._readable()
            except TimeoutError:
                deadline = loop.time()  # one more look at the ring, then None

    def batches(self) -> _BatchReader[Batch]:
        """Advanced: each user-owned batch (a V3 block or a run of V1/V2 frames; ``batch.count``
        packets, headers at ``batch.hdrs``) for the ring kernels (``cap.capture.kernels``), as
        :meth:`Capture.batches <afpacket.Capture.batches>` gives them. A batch goes back to the kernel when the
        next one is asked for, at :meth:`release` or at :meth:`close`. Raises AfPacketError while a
        packet iteration is mid-batch, CaptureClosedError after close().

        Example::

            async for batch in cap.batches():
                n += batch.count
        """
        self._check_no_packet_batch()
        return _BatchReader(self, lambda b: b)

    def columns(self) -> _BatchReader[Columns]:
        """Each batch's packet metadata as :class:`~afpacket.Columns` (arrays that stay valid), as
        :meth:`Capture.columns <afpacket.Capture.columns>` gives them. Raises as :meth:`batches`."""
        self._check_no_packet_batch()
        kernels = self.capture.kernels
        return _BatchReader(self, lambda b: columns_of(kernels, b))

    def frames(self) -> _FrameReader:
        """Just the bytes of each packet, copied out of the ring, batch by batch. Packet iteration started
        while a batch is half read this way skips the rest of that batch. Raises as :meth:`batches`."""
        self._check_no_packet_batch()
        return _FrameReader(self)

    def stop(self) -> None:
        """End a running iteration (it raises StopAsyncIteration at its next step); the capture stays
        open for :meth:`stats` and :meth:`close`, and later reads end at once."""
        self._st.stop()
        self._wake()

    def stats(self) -> SocketStats:
        """The kernel's cumulative counters, as :meth:`Capture.stats <afpacket.Capture.stats>`: ``received``,
        ``drops``, ``packets`` (into the ring), ``freeze_count``. CaptureClosedError after close()."""
        self._check()
        return self.capture.stats()

    def fileno(self) -> int:
        """The socket's fd (readable while the ring holds a ready batch)."""
        self._check()
        return self._fd

    def _check_no_packet_batch(self) -> None:
        self._check()
        self._arm()
        if self._pw is not None and self._pw.gi_frame is not None and self.capture._ring_walker.batch is not None:
            raise AfPacketError("a packet iteration holds a batch; finish it before reading batches")

    def _check(self) -> None:
        if self._closed:
            raise CaptureClosedError("capture is closed; open a new AsyncCapture")
        self.capture._check()

    # -- teardown ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop watching the socket, hand the batch in hand back, release the ring and socket. A task
        awaiting a packet wakes up and its iteration ends (StopAsyncIteration; next_packet() returns
        None). Idempotent; packets kept from the current batch keep a copy of their frame."""
        if self._closed:
            return
        self._closed = True
        self._unwatch()
        self._wake()
        self._end_batch_walk()
        w, self._pw = self._pw, None
        if w is not None:
            w.close()  # releases the batch a packet iteration held
        self.capture.close()

    async def __aenter__(self) -> AsyncCapture:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<AsyncCapture {self.interface!r} TPACKET_V{self.capture.version} {state}>"


class _BatchReader(Generic[_T]):
    """The async iterator behind batches() and columns(); its position is the capture's walk."""

    def __init__(self, cap: AsyncCapture, convert: Any) -> None:
        self._cap = cap
        self._convert = convert

    def __aiter__(self) -> _BatchReader[_T]:
        return self

    async def __anext__(self) -> _T:
        cap = self._cap
        cap._frames = None
        batch = await cap._next_batch()
        return cast(_T, self._convert(batch))


class _FrameReader:
    """The async iterator behind frames(): the bytes of each packet of each batch."""

    def __init__(self, cap: AsyncCapture) -> None:
        self._cap = cap
        self._frame_bytes = cap.capture.kernels.frame_bytes

    def __aiter__(self) -> _FrameReader:
        return self

    async def __anext__(self) -> bytes:
        cap = self._cap
        while True:
            it = cap._frames
            if it is not None:
                for frame in it:
                    return frame
            batch = await cap._next_batch()
            cap._frames = iter(self._frame_bytes(batch))


class AsyncTransmitter:
    """Send frames from an asyncio event loop (the default loop or uvloop) through a TX ring, with
    back-pressure and no thread.

    Example::

        async with afpacket.AsyncTransmitter("veth0", frame_count=256) as tx:
            for frame in frames:
                await tx.send(frame)        # returns at once while the ring has a free slot
            await tx.flush()                # until the kernel has sent every frame
            print(tx.stats())

    ``interface`` and ``options`` (every keyword option) are those of :class:`~afpacket.Transmitter` (``version``,
    ``frame_size``, ``frame_count``, ``batch``, ``timeout``, ...). Frames are checked and counted as the
    blocking transmitter does; ``timeout`` is how long :meth:`send` and :meth:`flush` wait while no slot
    comes free before raising TransmitError. One sending task at a time.

    Raises what :class:`~afpacket.Transmitter` raises.
    """

    def __init__(self, interface: str, **options: Any) -> None:
        #: the blocking transmitter underneath (its ring, checks and counters)
        self.transmitter = Transmitter(interface, **options)
        self.transmitter._patient = False  # a pushed-back kick must not sleep on the loop's thread
        self.interface = interface
        self._fd = self.transmitter.fileno()
        #: how many times send() found the ring full and awaited a free slot
        self.waits = 0

    def _slot_free(self) -> bool:
        tx = self.transmitter
        return not tx._map[tx._offs[tx._head] + tx._st] & _NOT_FREE

    async def _writable(self) -> None:
        """One POLLOUT wake-up (send-buffer room or the kernel's head slot free), through add_writer."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_writer(self._fd, ready)
        try:
            await fut
        finally:
            loop.remove_writer(self._fd)

    async def _wait_slot(self) -> None:
        """Our head slot is not free: kick what is queued, then await POLLOUT and back off until it is."""
        tx = self.transmitter
        deadline = time.monotonic() + tx.timeout
        delay = 0.0
        while True:
            status = tx._map[tx._offs[tx._head] + tx._st]
            if kernel_rejected(status) or tx._total != tx._kicked_at:
                tx._kick(False)  # a rejected frame is collected there; queued ones are handed over
            if self._slot_free():
                return
            if time.monotonic() > deadline:
                raise TransmitError(
                    f"TX slot {tx._head} still belongs to the kernel after {tx.timeout} s; "
                    "the interface is not sending (link down, or the queue is stuck)"
                )
            await self._writable()
            if self._slot_free():
                return
            delay = min(max(delay * 2, TX_BACKOFF_FIRST), TX_BACKOFF_LAST)
            await asyncio.sleep(delay)

    async def send(self, frame: Frame) -> None:
        """Copy ``frame`` (any type :meth:`Transmitter.send <afpacket.Transmitter.send>` takes) into the next free
        slot, awaiting one while the ring is full. Returns once the frame is queued: it leaves at the
        next kick (every ``batch`` frames, when the ring is full, or at :meth:`flush`). Cancelled while
        awaiting a slot, the frame was not queued. Raises as ``Transmitter.send``, TransmitError when
        no slot comes free within ``timeout``, CaptureClosedError after close."""
        tx = self.transmitter
        if tx.closed:
            raise CaptureClosedError(tx._closed_reason())
        if not self._slot_free():
            self.waits += 1
            await self._wait_slot()
        tx.send(frame)

    async def send_many(self, frames: Iterable[Frame]) -> int:
        """:meth:`send` each frame of ``frames`` in turn; return how many were queued."""
        n = 0
        for frame in frames:
            await self.send(frame)
            n += 1
        return n

    async def flush(self) -> None:
        """Kick the kernel and await until it has sent every queued frame (no slot SEND_REQUEST or
        SENDING). Frames the kernel rejects are reported and dropped as the blocking transmitter does.
        Raises TransmitError when frames are still queued after ``timeout`` seconds without progress,
        CaptureClosedError after close."""
        tx = self.transmitter
        if tx.closed:
            raise CaptureClosedError(tx._closed_reason())
        tx._kick(False)
        deadline = time.monotonic() + tx.timeout
        busy = -1
        delay = 0.0
        while True:
            status = tx._low_status()
            owned = sum(1 for b in status if kernel_owns(b))
            if not owned:
                return
            if any(kernel_rejected(b) for b in status):
                tx._collect_rejected()
                tx._kick(False)
                continue
            now = time.monotonic()
            if owned != busy:  # progress: the clock restarts
                busy, deadline = owned, now + tx.timeout
            elif now > deadline:
                raise TransmitError(
                    f"{owned} frame(s) still queued on {self.interface} after {tx.timeout} s without progress"
                )
            if any(kernel_may_send(b) for b in status):
                tx._kick(False)
            await self._writable()
            delay = min(max(delay * 2, TX_BACKOFF_FIRST), TX_BACKOFF_LAST)
            await asyncio.sleep(delay)

    def stats(self) -> TransmitStats:
        """The transmitter's exact counts (:meth:`Transmitter.stats <afpacket.Transmitter.stats>`)."""
        return self.transmitter.stats()

    async def aclose(self) -> None:
        """Await :meth:`flush`, then close (the ring and socket are released even if the flush fails)."""
        if self.transmitter.closed:
            return
        try:
            await self.flush()
        finally:
            self.transmitter.close()

    def close(self) -> None:
        """Close at once, as :meth:`Transmitter.close <afpacket.Transmitter.close>` does (it blocks while
        it flushes; prefer ``await aclose()`` inside a loop)."""
        self.transmitter.close()

    async def __aenter__(self) -> AsyncTransmitter:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncTransmitter {self.interface!r}>"

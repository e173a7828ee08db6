"""Capture through a PACKET_MMAP RX ring: ``afpacket.Capture``, a thin façade over the walk.

Setup (socket options in kernel order, the ring, the mapping, bind last) happens here; reading is
:class:`~afpacket.rx.walker.RingWalker` (non-blocking steps over user-owned batches, through the ring
kernels) driven by :class:`~afpacket.rx.waiter.Waiter` (poll + wake-up pipe). Three ways to read
come out of one batch generator: packet objects, ``frames()`` (bytes) and ``batches()``/``columns()``.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from itertools import islice
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .. import abi, ring
from ..errors import AfPacketError, CaptureClosedError
from ..filter import BpfProgram, attach, compile_filter
from ..geometry import DEFAULT_BLOCK_TIMEOUT_MS, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, RingGeometry
from ..interfaces import ANY, lookup, max_mtu
from ..ring.memory import RingMemory
from ..sock import PacketSocket, SocketStats
from .columns import Columns, columns_of
from .packet import Packet
from .waiter import Waiter
from .walker import RingWalker

if TYPE_CHECKING:
    from ..tx import Transmitter

_T = TypeVar("_T")
#: V1/V2 coalescing under load (see _batches): batches smaller than this, found back to back, make the
#: reader pause this long (seconds) so the next batch is larger
COALESCE_BELOW = 32
COALESCE_SLEEP = 50e-6
#: what batches() yields: a kernel Batch (header offsets ``hdrs``, ``count``, ``ring``)
Batch = Any


class Capture:
    """Capture packets on one interface (or ``"any"``) through a memory-mapped RX ring.

    Iterating yields :class:`~afpacket.packet.Packet` objects. A packet's ``data`` view is valid until
    the capture reads past the batch it came in (a V3 block, or the run of V1/V2 frames that were
    ready together); afterwards it raises ``PacketExpiredError``. Portable code uses each packet before
    taking the next, and keeps ``bytes(pkt)`` or ``pkt.copy()`` for later.

    Not thread-safe: one thread reads. :meth:`close` or :meth:`stop` may be called from another
    thread; the reader wakes up and its iteration ends.
    """

    def __init__(
        self,
        interface: str,
        *,
        version: int = 3,
        snaplen: int = DEFAULT_SNAPLEN,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        block_timeout_ms: int = DEFAULT_BLOCK_TIMEOUT_MS,
        timeout: float | None = None,
        promisc: bool = False,
        sock_type: str | None = None,
        protocol: int = abi.ETH_P_ALL,
        rxhash: bool = False,
        reinsert_vlan: bool = False,
        copy_thresh: bool = False,
        ignore_outgoing: bool = False,
        filter: str | BpfProgram | None = None,
        block_size: int | None = None,
        geometry: RingGeometry | None = None,
        tx_geometry: RingGeometry | None = None,
    ) -> None:
        if sock_type is None:
            sock_type = "dgram" if interface == ANY else "raw"
        if timeout is not None and timeout < 0:
            raise AfPacketError(f"timeout must be >= 0 seconds or None, got {timeout}")
        self.interface = interface
        self.version = version
        self.snaplen = snaplen
        self.timeout = timeout
        self.sock_type = sock_type
        self.promisc = promisc
        self.copy_thresh = copy_thresh
        self._closed = False
        self._walker: Iterator[Packet | None] | None = None
        self._batch_reader: Generator[Batch | None, None, None] | None = None
        self._yield_idle = False
        self._poll_ms = -1
        self._deadline: float | None = None
        self._stop = False
        #: the ring kernels this capture walks with (C or pure Python; see afpacket.ring)
        self.kernels = ring.current()

        reserve = abi.VLAN_HLEN if reinsert_vlan and sock_type == "raw" else 0
        if geometry is None:
            # V1/V2 frames bound what is captured: size them from the MTU unless the user chose a
            # snaplen (then honour it, so GRO/GSO aggregates up to snaplen fit).
            mtu = None
            if snaplen == DEFAULT_SNAPLEN and version != 3:
                mtu = max_mtu() if interface == ANY else lookup(interface).mtu
            geometry = RingGeometry.for_capture(
                version,
                buffer_size,
                snaplen,
                mtu=mtu,
                block_timeout_ms=block_timeout_ms,
                rxhash=rxhash,
                reserve=reserve,
                block_size=block_size,
            )
        else:
            geometry.validate()
            if geometry.version != version or geometry.tx:
                raise AfPacketError("explicit geometry must be an RX geometry of the same version")
            reserve = geometry.reserve

        program = compile_filter(filter, dgram=sock_type == "dgram") if isinstance(filter, str) else filter
        if promisc and interface == ANY:
            raise AfPacketError("promiscuous mode needs a named interface, not 'any' (as in tcpdump)")
        # Set by _setup(); None only before setup finishes and after close().
        self._ring: RingMemory = None  # type: ignore[assignment]
        self._ring_walker: RingWalker = None  # type: ignore[assignment]
        self._waiter: Waiter | None = None
        self._sock = PacketSocket(interface, sock_type=sock_type, protocol=protocol)
        try:
            self._setup(geometry, reserve, promisc, copy_thresh, ignore_outgoing, tx_geometry, program)
        except BaseException:
            self.close()
            raise
        self.geometry: RingGeometry = self._sock.rx  # type: ignore[assignment]
        self.hatype = self._sock.iface.hatype if self._sock.iface else abi.ARPHRD_ETHER

    def _setup(
        self,
        geometry: RingGeometry,
        reserve: int,
        promisc: bool,
        copy_thresh: bool,
        ignore_outgoing: bool,
        tx_geometry: RingGeometry | None,
        program: BpfProgram | None,
    ) -> None:
        """Every setup step, in the order the kernel needs; bind comes last (see sock.py)."""
        ps = self._sock
        ps.set_version(self.version)
        if reserve:
            ps.setopt("PACKET_RESERVE", abi.PACKET_RESERVE, reserve)
        if copy_thresh:
            ps.setopt("PACKET_COPY_THRESH", abi.PACKET_COPY_THRESH, 1)
        if ignore_outgoing:
            ps.setopt("PACKET_IGNORE_OUTGOING", abi.PACKET_IGNORE_OUTGOING, 1, "needs Linux 4.20 or later")
        if program is not None:
            attach(ps.sock, program)  # before the ring and bind: nothing unfiltered gets in
        ps.set_ring(geometry)
        if tx_geometry is not None:
            if tx_geometry.version != self.version:
                raise AfPacketError("a TX ring on a capture socket must use the capture's TPACKET version")
            ps.set_ring(tx_geometry)
        ring_map = ps.map_rings()
        rx = ps.rx
        assert rx is not None
        self._ring = RingMemory(
            ring_map, rx.size, self.version, self.snaplen, raw=self.sock_type == "raw", reinsert=bool(reserve),
            frame_size=rx.frame_size,
        )
        self._ring_walker = RingWalker(
            self._ring, rx, self.kernels, copy_thresh=self.copy_thresh, sock=ps.sock
        )
        self._waiter = Waiter(ps, self.interface)
        ps.bind()
        if promisc:
            ps.set_promisc(True)

    # -- plumbing -------------------------------------------------------------------------------
    def fileno(self) -> int:
        """The socket's fd, for select/poll/asyncio: readable when the ring has data."""
        self._check()
        return self._sock.fileno()

    @property
    def socket(self) -> PacketSocket:
        return self._sock

    def _check(self) -> None:
        if self._closed:
            raise CaptureClosedError("capture is closed; open a new Capture")
        self._sock.check_open()

    def _wait(self, timeout_ms: int) -> bool:
        assert self._waiter is not None
        return self._waiter.wait(timeout_ms)

    # statistics of the walk (V3): blocks read, blocks flagged LOSING, gaps in the block sequence
    @property
    def blocks_seen(self) -> int:
        return self._ring_walker.blocks_seen if self._ring_walker else 0

    @property
    def losing_seen(self) -> int:
        return self._ring_walker.losing_seen if self._ring_walker else 0

    @property
    def seq_gaps(self) -> int:
        return self._ring_walker.seq_gaps if self._ring_walker else 0

    def _idle_timeout_ms(self) -> int:
        if self._poll_ms >= 0:
            return self._poll_ms
        return 1000  # wake up now and then to notice stop(), a deadline, or a closed socket

    # -- the walk -------------------------------------------------------------------------------
    def _walk(self) -> Iterator[Packet | None]:
        """One generator serves iteration and next_packet(); yields None when idle and asked to."""
        packets = self._ring_walker.packets
        for batch in self._batches():
            if batch is None:
                yield None
            else:
                yield from packets(batch)

    def _batches(self) -> Generator[Batch | None, None, None]:
        """Each user-owned batch in ring order, handed back to the kernel when the consumer asks for
        the next one (or stops). Yields None when idle and asked to (next_packet, deadlines)."""
        walker = self._ring_walker
        step, release = walker.step, walker.release
        coalesce = not walker.v3
        racing = False
        try:
            while not self._stop:
                batch = step()
                if batch is None:
                    racing = False
                    if self._wait(self._idle_timeout_ms()) or not self._yield_idle:
                        continue
                    yield None
                    continue
                yield batch
                release()
                if coalesce and batch.count < COALESCE_BELOW:
                    if racing:
                        # V1/V2 under load: the kernel hands over frames one at a time, and a reader that
                        # keeps up takes them one per batch, paying the per-batch cost per packet. Two
                        # small batches in a row without a wait means frames are arriving back to back:
                        # let a few accumulate (interrupt coalescing; adds at most this to latency).
                        time.sleep(COALESCE_SLEEP)
                    racing = True
                else:
                    racing = False
                if self._deadline is not None and self._yield_idle and time.monotonic() >= self._deadline:
                    yield None
        finally:
            self._walker = None
            if not self._closed:
                walker.release()

    # -- public reading API ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Packet]:
        """Every packet, for as long as the capture is open (until close() or stop())."""
        self._check()
        self._yield_idle = False
        self._deadline = None
        self._poll_ms = -1 if self.timeout is None else int(self.timeout * 1000)
        if self._walker is None:
            self._walker = self._walk()
        return self._walker  # type: ignore[return-value]

    def next_packet(self, timeout: float | None = None) -> Packet | None:
        """The next packet, or None if none arrived within ``timeout`` seconds (default: the
        capture's ``timeout``; None waits forever). Releases the previous batch only when
        moving past it, like iteration."""
        self._check()
        t = self.timeout if timeout is None else timeout
        self._poll_ms = -1 if t is None else int(t * 1000)
        self._yield_idle = t is not None
        self._deadline = None
        if self._walker is None:
            self._walker = self._walk()
        try:
            return next(self._walker)
        except StopIteration:
            return None
        finally:
            self._yield_idle = False

    def packets(self, count: int | None = None, duration: float | None = None) -> Iterator[Packet]:
        """At most ``count`` packets, for at most ``duration`` seconds (either may be None)."""
        self._check()
        if count is not None and count <= 0:
            return iter(())
        if self._walker is None:
            self._walker = self._walk()
        deadline = time.monotonic() + duration if duration is not None else None
        bounded = self._bounded(self._walker, deadline)
        return bounded if count is None else islice(bounded, count)

    def frames(self, count: int | None = None, duration: float | None = None) -> Iterator[bytes]:
        """Just the bytes of each packet, copied out of the ring (no lifetime rules, no metadata).

        The fastest way to see every packet from Python: no packet object is made, and each frame is
        one slice of the mapping. Stops after ``duration`` seconds or at stop()/close(), always
        between batches. Leaving the loop early (``break``) hands the rest of the current batch back
        to the kernel; with ``count`` it stops exactly after that many frames and keeps the rest for
        the next read (through the packet walker, a little slower). VLAN tags as the ring holds them
        (put back in place with ``reinsert_vlan=True``)."""
        self._check()
        if count is not None or self.copy_thresh:
            # copy_thresh: full copies of truncated frames live beside the ring, in packet objects
            return (bytes(p) for p in self.packets(count=count, duration=duration))
        return self._frame_bytes(duration)

    def _frame_bytes(self, duration: float | None) -> Iterator[bytes]:
        frame_bytes = self.kernels.frame_bytes
        for batch in self.batches(duration):
            yield from frame_bytes(batch)

    def columns(self, duration: float | None = None) -> Iterator[Columns]:
        """Each batch's packet metadata as arrays (timestamp ns, caplen, wire_len, VLAN TCI, rxhash,
        pkttype, ifindex), with no Python object per packet; ``.to_numpy()`` / ``.to_arrow()`` convert.
        Same lifetime rules as :meth:`batches` (the arrays are copies and stay valid)."""
        kernels = self.kernels
        for batch in self.batches(duration):
            yield columns_of(kernels, batch)

    def batches(self, duration: float | None = None) -> Iterator[Batch]:
        """Advanced, for fast paths that handle a whole batch at once (afpacket.tofile does): each
        user-owned batch (a V3 block or a run of V1/V2 frames: ``batch.count`` packets whose headers are
        at ``batch.hdrs``, in ``batch.ring``), to hand to the ring kernels (``capture.kernels``:
        ``frame_bytes``, ``pcap_records``, ``fill_columns``, ...). A batch goes back to the kernel when the
        next one is requested or the iteration ends. Do not mix with a packet iteration that is mid-batch."""
        self._check()
        if self._walker is not None and self._ring_walker.batch is not None:
            raise AfPacketError("a packet iteration holds a batch; finish it before reading batches")
        self._walker = None
        deadline = time.monotonic() + duration if duration is not None else None
        gen = self._batches()
        self._batch_reader = gen  # so close() can end it
        try:
            yield from self._bounded(gen, deadline)
        finally:
            gen.close()
            self._batch_reader = None

    def _bounded(self, source: Iterator[_T | None], deadline: float | None) -> Iterator[_T]:
        """The items of a walker until it ends or the deadline passes (walkers yield None when idle)."""
        try:
            while True:
                self._arm(deadline)
                try:
                    item = next(source)
                except StopIteration:
                    return
                if item is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    continue
                yield item
        finally:
            self._deadline = None
            self._yield_idle = False
            self._poll_ms = -1

    def _arm(self, deadline: float | None) -> None:
        """Before each step of a bounded read: wake up in time for the deadline, and yield None then."""
        self._deadline = deadline
        self._yield_idle = deadline is not None
        if deadline is not None:
            self._poll_ms = max(1, min(1000, int((deadline - time.monotonic()) * 1000) + 1))

    def stop(self) -> None:
        """Make a running iteration end soon (safe from another thread or a signal handler)."""
        self._stop = True
        if self._waiter is not None:
            self._waiter.wake()

    def stats(self) -> SocketStats:
        """Cumulative kernel counters: ``received`` (by the filter), ``drops``, ``packets`` (into the
        ring = received - drops), ``freeze_count`` (V3)."""
        self._check()
        return self._sock.stats()

    def transmitter(self) -> Transmitter:
        """A Transmitter over this socket's TX ring (``tx_geometry=`` at open): receive and reply on
        one socket, both rings in one mapping."""
        self._check()
        if self._sock.tx is None:
            raise AfPacketError("this capture has no TX ring; open it with tx_geometry=RingGeometry.for_transmit(...)")
        from ..tx import Transmitter

        return Transmitter.over_socket(self._sock, self.geometry.size)

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Hand everything back and release the ring and socket. Safe to call twice."""
        if self._closed:
            return
        self._stop = True
        self._closed = True
        for walker in (self._walker, self._batch_reader):
            if walker is not None and hasattr(walker, "close"):
                try:
                    walker.close()
                except ValueError:  # generator running in another thread: it stops at its next step
                    pass
        self._walker = self._batch_reader = None
        if self._ring_walker is not None:
            self._ring_walker.abandon()
        ring, self._ring = self._ring, None  # type: ignore[assignment]
        if ring is not None and not self._sock.forked:
            ring.release()
        if self._waiter is not None:
            self._waiter.close()
        self._sock.close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Capture {self.interface!r} TPACKET_V{self.version} {self.sock_type} {state}>"


"""Capture through a PACKET_MMAP RX ring: ``afpacket.Capture``.

The walk is split at one seam per ring layout, so a compiled fast path could replace it without
touching anything else:

* :func:`ready_frames` (V1/V2) — the offsets of the consecutive frames, from the cursor on, that the
  kernel has handed to user space, then :func:`frame_packets` turns them into packets;
* :func:`block_packets` (V3) — the packets of one user-owned block, following ``tp_next_offset``.

The generator in :meth:`Capture._walk` yields from them and hands each batch back to the kernel
(status = TP_STATUS_KERNEL) before it looks at the next one. Ownership of a slot
is always one of the named predicates below.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Generator, Iterator
from itertools import islice
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from . import abi
from .errors import AfPacketError, CaptureClosedError, LinkDownError, os_error
from .filter import BpfProgram, attach, compile_filter
from .geometry import DEFAULT_BLOCK_TIMEOUT_MS, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, RingGeometry
from .interfaces import ANY, lookup, max_mtu
from .packet import Batch, Packet, RingMemory, packet_class
from .sock import PacketSocket, SocketStats

if TYPE_CHECKING:
    from .tx import Transmitter

_T = TypeVar("_T")
_new_packet = object.__new__
_USER = abi.TP_STATUS_USER
#: how many ready V1/V2 frames one batch may take before handing them back
MAX_FRAME_BATCH = 256


# -- ownership predicates --------------------------------------------------------------------------
def block_is_user(u32: memoryview, block: int) -> bool:
    """V3: the kernel retired this block and handed it over (block_status)."""
    return bool(u32[(block + abi.BLOCK_OFF_STATUS) >> 2] & _USER)


def give_frame_back(u32: memoryview, hdr: int) -> None:
    # Data reads happen before this store; x86-64 keeps stores in order, so the kernel cannot see
    # the frame as free before we are done with it. (Weakly ordered CPUs: see docs/architecture.md.)
    u32[hdr >> 2] = abi.TP_STATUS_KERNEL


def give_block_back(u32: memoryview, block: int) -> None:
    u32[(block + abi.BLOCK_OFF_STATUS) >> 2] = abi.TP_STATUS_KERNEL


# -- the seam: walking one batch -------------------------------------------------------------------
def ready_frames(u32: memoryview, offsets: list[int], start: int, limit: int) -> list[int]:
    """Header offsets of the user-owned frames from index ``start`` on, at most ``limit``."""
    n = len(offsets)
    out: list[int] = []
    i = start
    if limit > n:
        limit = n  # never take a frame twice in one batch
    while len(out) < limit:
        off = offsets[i]
        if not u32[off >> 2] & _USER:  # the frame is the kernel's (low word of tp_status)
            break
        out.append(off)
        i += 1
        if i == n:
            i = 0
    return out


def _free_refcount() -> int:
    # What sys.getrefcount reports, inside the walkers below, for a pooled packet nobody else holds:
    # measured with the same code shape rather than assumed, so it follows the interpreter.
    pool = [_new_packet(Packet)]
    p = pool[0]
    return sys.getrefcount(p)


#: A pooled packet with this reference count (the pool, the walker's local, getrefcount's argument)
#: is held by nobody else and can be re-pointed at the next frame instead of allocating a new one.
_FREE = _free_refcount()


def new_pool(cls: type[Packet]) -> list[Packet]:
    """Two packet objects of ``cls`` the walkers use in turn (the consumer still holds the previous one)."""
    return [_new_packet(cls), _new_packet(cls)]


def frame_packets(batch: Batch, hdrs: list[int], cls: type[Packet], pool: list[Packet]) -> Iterator[Packet]:
    """One packet per frame header offset, all leased by ``batch``.

    Allocation is most of the cost of a packet, so an object from ``pool`` is reused when its
    reference count shows that no one kept it (the trick CPython's zip() plays with its tuples);
    a packet the caller kept is never touched again: the pool gets a fresh object instead.
    """
    new = _new_packet
    rc = sys.getrefcount
    free = _FREE
    k = 0
    for h in hdrs:
        k ^= 1
        p = pool[k]
        if rc(p) != free:
            p = pool[k] = new(cls)
        p._batch = batch
        p._hdr = h
        yield p


def block_packets(
    u32: memoryview, batch: Batch, first: int, count: int, cls: type[Packet], pool: list[Packet]
) -> Iterator[Packet]:
    """The ``count`` packets of a V3 block, from the first header on, following tp_next_offset."""
    new = _new_packet
    rc = sys.getrefcount
    free = _FREE
    k = 0
    off = first
    for _ in range(count):
        k ^= 1
        p = pool[k]
        if rc(p) != free:
            p = pool[k] = new(cls)
        p._batch = batch
        p._hdr = off
        yield p
        off += u32[off >> 2]


def block_offsets(u32: memoryview, first: int, count: int) -> list[int]:
    """Header offsets of the packets of a V3 block (for the per-batch fix-ups)."""
    out = []
    off = first
    for _ in range(count):
        out.append(off)
        off += u32[off >> 2]
    return out


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
        self._batch: Batch | None = None
        self._cursor = 0
        self._yield_idle = False
        self._poll_ms = -1
        self._deadline: float | None = None
        self._stop = False
        self.blocks_seen = 0
        self.losing_seen = 0
        self._last_seq = 0
        self.seq_gaps = 0

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
        self._wake_r = self._wake_w = -1
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
            ring_map, rx.size, self.version, self.snaplen, raw=self.sock_type == "raw", reinsert=bool(reserve)
        )
        self._packet_class = packet_class(self._ring, copies=self.copy_thresh)
        self._frame_offsets = [
            b * rx.block_size + f * rx.frame_size for b in range(rx.block_nr) for f in range(rx.frames_per_block)
        ]
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(ps.sock.fileno(), select.POLLIN | select.POLLERR)
        self._poller.register(self._wake_r, select.POLLIN)
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
        """Poll the socket; True when it reports data. Raises on link errors, False on timeout/stop."""
        try:
            events = self._poller.poll(timeout_ms)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            return False
        ready = False
        for fd, ev in events:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
                continue
            if ev & select.POLLERR:
                err = self._sock.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    raise LinkDownError(
                        f"capture on {self.interface!r}: the interface went down or was removed"
                    )
                if err:
                    raise os_error("polling the capture socket", OSError(err, os.strerror(err)), self.interface)
            if ev & (select.POLLHUP | select.POLLNVAL):
                raise LinkDownError(f"capture on {self.interface!r}: the socket was hung up")
            if ev & select.POLLIN:
                ready = True
        return ready

    def _release_batch(self) -> None:
        b = self._batch
        if b is None:
            return
        self._batch = None
        b.expire()
        u32 = self._ring.u32
        if self.version == 3:
            give_block_back(u32, b.block)
            self._cursor = (self._cursor + 1) % self.geometry.block_nr
        else:
            for h in b.hdrs:
                give_frame_back(u32, h)
            self._cursor = (self._cursor + len(b.hdrs)) % len(self._frame_offsets)

    def _idle_timeout_ms(self) -> int:
        if self._poll_ms >= 0:
            return self._poll_ms
        return 1000  # wake up now and then to notice stop(), a deadline, or a closed socket

    # -- the walk -------------------------------------------------------------------------------
    def _walk(self) -> Iterator[Packet | None]:
        """One generator serves iteration and next_packet(); yields None when idle and asked to."""
        cls = self._packet_class
        pool = new_pool(cls)
        u32 = self._ring.u32
        v3 = self.version == 3
        for batch in self._batches():
            if batch is None:
                yield None
            elif v3:
                yield from block_packets(u32, batch, batch.first, batch.count, cls, pool)
            else:
                yield from frame_packets(batch, batch.hdrs, cls, pool)

    def _batches(self) -> Generator[Batch | None, None, None]:
        """Each user-owned batch in ring order, handed back to the kernel when the consumer asks for
        the next one (or stops). Yields None when idle and asked to (next_packet, deadlines)."""
        try:
            if self.version == 3:
                yield from self._block_batches()
            else:
                yield from self._frame_batches()
        finally:
            self._walker = None
            if not self._closed:
                self._release_batch()

    def _frame_batches(self) -> Iterator[Batch | None]:
        ring = self._ring
        u32 = ring.u32
        offsets = self._frame_offsets
        fixup = self.copy_thresh or ring.reinsert
        while not self._stop:
            hdrs = ready_frames(u32, offsets, self._cursor, MAX_FRAME_BATCH)
            if not hdrs:
                if self._wait(self._idle_timeout_ms()) or not self._yield_idle:
                    continue
                yield None
                continue
            batch = Batch(ring)
            batch.hdrs = hdrs
            batch.count = len(hdrs)
            self._batch = batch
            if fixup:
                self._fixup(batch, hdrs)
            yield batch
            self._release_batch()
            if self._deadline is not None and self._yield_idle and time.monotonic() >= self._deadline:
                yield None

    def _block_batches(self) -> Iterator[Batch | None]:
        ring = self._ring
        u32 = ring.u32
        block_size = self.geometry.block_size
        fixup = ring.reinsert
        while not self._stop:
            boff = self._cursor * block_size
            if not block_is_user(u32, boff):
                if self._wait(self._idle_timeout_ms()) or not self._yield_idle:
                    continue
                yield None
                continue
            batch = Batch(ring)
            _ver, _priv, status, count, first, _blen, seq = abi.TPACKET_BLOCK_DESC.unpack_from(ring.mv, boff)[:7]
            batch.block = boff
            batch.first = boff + first
            batch.count = count
            self._batch = batch
            self.blocks_seen += 1
            if status & abi.TP_STATUS_LOSING:
                self.losing_seen += 1
            if self._last_seq and seq != self._last_seq + 1:
                self.seq_gaps += 1
            self._last_seq = seq
            if fixup:
                self._fixup(batch, block_offsets(u32, batch.first, count))
            yield batch
            self._release_batch()
            if self._deadline is not None and self._yield_idle and time.monotonic() >= self._deadline:
                yield None

    def _fixup(self, batch: Batch, hdrs: list[int]) -> None:
        """Per-batch work that only some captures ask for: COPY_THRESH copies and VLAN reinsertion."""
        ring = self._ring
        for h in hdrs:
            status, wire, snap, mac, _ts, tci, tpid, _rx = ring.decode(ring.mv, h)
            if status & abi.TP_STATUS_COPY and self.copy_thresh:
                # The kernel queued a full copy on the socket, in ring order: drain it now, or the
                # socket's receive buffer fills and later copies are lost.
                try:
                    full = self._sock.sock.recv(wire + 64, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
                except BlockingIOError:
                    full = None
                if full is not None:
                    if batch.copies is None:
                        batch.copies = {}
                    batch.copies[h] = full[: self.snaplen]
            if ring.reinsert and ring.version != 1 and (status & abi.TP_STATUS_VLAN_VALID or tci):
                self._reinsert(h, mac, snap, wire, tci, tpid if status & abi.TP_STATUS_VLAN_TPID_VALID else 0)

    def _reinsert(self, h: int, mac: int, snap: int, wire: int, tci: int, tpid: int) -> None:
        """Put the stripped tag back in place: move the MAC addresses down 4 bytes into the
        PACKET_RESERVE room and write TPID/TCI after them; the header then describes the tagged frame."""
        ring = self._ring
        mv = ring.mv
        start = h + mac
        if mac < 4 or snap < 12:
            return
        mv[start - 4 : start + 8] = bytes(mv[start : start + 12])
        struct.pack_into("!HH", mv, start + 8, tpid or abi.ETH_P_8021Q, tci)
        u32, u16 = ring.u32, ring.u16
        u16[(h + ring.off_mac) >> 1] = mac - 4
        u32[(h + ring.off_snap) >> 2] = snap + 4
        u32[(h + ring.off_len) >> 2] = wire + 4

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
        ring = self._ring
        mapping, u16, u32, snaplen = ring.map, ring.u16, ring.u32, ring.snaplen
        off_mac, off_snap = ring.off_mac, ring.off_snap
        if self.version != 3:
            for batch in self.batches(duration):
                for h in batch.hdrs:
                    start = h + u16[(h + off_mac) >> 1]
                    cap = u32[(h + off_snap) >> 2]
                    yield mapping[start : start + (cap if cap < snaplen else snaplen)]
            return
        for batch in self.batches(duration):
            h = batch.first
            for _ in range(batch.count):
                start = h + u16[(h + off_mac) >> 1]
                cap = u32[(h + off_snap) >> 2]
                yield mapping[start : start + (cap if cap < snaplen else snaplen)]
                h += u32[h >> 2]

    def batches(self, duration: float | None = None) -> Iterator[Batch]:
        """Advanced, for fast paths that handle a whole batch at once (afpacket.tofile does): each
        user-owned batch (``batch.first``/``batch.count`` for a V3 block, ``batch.hdrs`` for V1/V2
        frames, ``batch.ring`` for the memory). A batch goes back to the kernel when the next one is
        requested or the iteration ends. Do not mix with a packet iteration that is mid-batch."""
        self._check()
        if self._walker is not None and self._batch is not None:
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
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

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
        from .tx import Transmitter

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
        b, self._batch = self._batch, None
        if b is not None:
            b.expire()
        ring, self._ring = self._ring, None  # type: ignore[assignment]
        if ring is not None and not self._sock.forked:
            ring.release()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
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


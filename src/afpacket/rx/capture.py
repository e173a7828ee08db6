"""Capture through a PACKET_MMAP RX ring: ``afpacket.Capture``, a thin façade over the walk.

Setup (socket options in kernel order, the ring, the mapping, bind last) happens here; reading is
:class:`~afpacket.rx.walker.RingWalker` (non-blocking steps over user-owned batches, through the ring
kernels) driven by :class:`~afpacket.rx.waiter.Waiter` (poll + wake-up pipe). Three ways to read
come out of one batch generator: packet objects, ``frames()`` (bytes) and ``batches()``/``columns()``.

Lifetimes: the generators that walk the ring reference a :class:`_Walk` (the walk's state), never the
Capture, so a Capture dropped mid-walk is released at once by reference counting. close() from another
thread asks the reader to leave and tears down only once nobody is inside the walk (see :class:`_Walk`).
A forked child disowns the parent's walk (:func:`_after_fork_in_child`). An interface that goes away
ends the walk only once the ring is read to the end (:func:`_batches`).
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import warnings
import weakref
from collections.abc import Generator, Iterator
from itertools import islice
from types import GeneratorType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .. import _check, abi, ring
from ..errors import AfPacketError, CaptureClosedError, LinkDownError
from ..filter import BpfProgram, attach, compile_filter, parse_filter
from ..geometry import DEFAULT_BLOCK_TIMEOUT_MS, DEFAULT_BUFFER_SIZE, DEFAULT_SNAPLEN, RingGeometry
from ..interfaces import ANY, lookup, max_mtu
from ..ring.memory import RingMemory
from ..sock import PacketSocket, SocketStats
from .columns import Columns, columns_of
from .packet import Packet
from .waiter import Waiter
from .walker import RingWalker

if TYPE_CHECKING:
    from ..fanout import Fanout, RolloverStats
    from ..handoff import SocketDescription
    from ..tx import Transmitter

_T = TypeVar("_T")
#: V1/V2 coalescing under load (see _batches): batches smaller than this, found back to back, make the
#: reader pause this long (seconds) so the next batch is larger
COALESCE_BELOW = 32
COALESCE_SLEEP = 50e-6
#: what batches() yields: a kernel Batch (header offsets ``hdrs``, ``count``, ``ring``)
Batch = Any
#: how long close() from another thread waits for a reader inside the walk to leave it (seconds); the
#: reader is woken at once, so this bounds only a step that is already under way
CLOSE_WAIT = 2.0
#: after the interface went away: how long the walk keeps looking for packets the kernel counted as
#: delivered but that are not in a handed-over slot yet (a V3 block waits for its timer), in seconds
DRAIN_LIMIT = 2.0
#: poll step (ms) while draining a ring whose interface went away
DRAIN_POLL_MS = 20

FORKED = (
    "this capture belongs to the parent process: fork() does not share its ring; open a new Capture in "
    "the child, or share traffic between processes with a fanout group"
)


def _thread_alive(ident: int) -> bool:
    return any(t.ident == ident for t in threading.enumerate())


class _Walk:
    """The state of one capture's walk, shared by the Capture and the generators that read its ring.

    Why apart from the Capture: a generator suspended mid-walk keeps its frame alive, and a frame that
    referenced the Capture would keep it in a reference cycle (Capture -> generator -> Capture), with
    its ring and descriptors, until the cyclic garbage collector ran. The generators reference only
    this object, so dropping the last reference to a Capture closes it at once.

    Threads. One thread reads; close() and stop() may come from any thread or a signal handler.
    ``busy`` says the reader is inside a step (touching the ring, or in poll() on the socket); ``halt``
    says the walk must end. The reader sets ``busy`` and then reads ``halt``; close() sets ``halt`` and
    then reads ``busy``; the GIL orders these loads and stores, so at least one side sees the other:
    either the reader stops before touching anything, or close() leaves the teardown to it. Teardown
    (revoke the views, unmap, close the socket and the wake-up pipe) runs once, under ``lock``, by
    whoever finds no reader inside: close() itself when nobody iterates; otherwise the reader, as it
    leaves the walk. A reader suspended in another thread's loop body while holding a batch defers it
    too (that body may be using the batch's packets): its next step ends the iteration and tears down.
    So the socket is never polled after it was closed, and the ring is never unmapped under a reader.
    """

    __slots__ = (
        "__weakref__", "busy", "closing", "current", "deadline", "done", "drain_until", "forked", "gone",
        "halt", "interface", "lock", "owner", "poll_ms", "rest", "ring", "sock", "torn", "waiter", "walker",
        "yield_idle",
    )

    def __init__(self, sock: PacketSocket, interface: str) -> None:
        self.sock = sock
        self.interface = interface
        # Set by Capture._setup(); None until then (a setup that fails tears down what exists).
        self.ring: RingMemory | None = None
        self.walker: RingWalker | None = None
        self.waiter: Waiter | None = None
        self.lock = threading.Lock()
        self.done = threading.Event()  # set when torn down
        self.halt = False  # stop(), close() or fork(): the walk ends at its next step
        self.closing = False  # close() was called: tear down once no reader is inside
        self.torn = False
        self.busy = False
        self.forked = False
        self.owner = 0  # thread ident of the reader that last stepped
        #: the packet iterator of the current batch (cut short in a forked child)
        self.current: Any = None
        #: the iterator _walk yields the current batch's packets from (AsyncCapture takes from it too)
        self.rest: Iterator[Packet] | None = None
        #: the interface went away: the ring is drained, then LinkDownError
        self.gone: LinkDownError | None = None
        self.drain_until = 0.0
        # How the walk waits, set by the reading methods: poll timeout (ms, -1: the idle default),
        # whether to yield None when idle, and the deadline of a bounded read.
        self.poll_ms = -1
        self.yield_idle = False
        self.deadline: float | None = None
        _walks.add(self)

    def idle_timeout_ms(self) -> int:
        deadline = self.deadline
        if deadline is not None and self.yield_idle:
            # a bounded read: wake up in time for its deadline (computed now, so it is never stale)
            return max(1, min(1000, int((deadline - time.monotonic()) * 1000) + 1))
        if self.poll_ms >= 0:
            return self.poll_ms
        return 1000  # wake up now and then to notice stop(), a deadline, or a closed socket

    # -- ending ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self.halt = True
        if self.waiter is not None:
            self.waiter.wake()

    def request_close(self) -> None:
        """close(): tear down now if no reader is inside the walk, else wake the reader and let it."""
        self.closing = True
        self.halt = True
        if self.busy:
            if self.waiter is not None:
                self.waiter.wake()
            if self.owner != threading.get_ident():
                self.done.wait(CLOSE_WAIT)  # it leaves within one step; not from a signal handler in it
            return
        self.finish_close()

    def finish_close(self) -> None:
        """Tear down after close() unless a reader is inside the walk, or suspended in another live
        thread's loop body with packets of a batch (that reader tears down when it moves on)."""
        if self.torn or self.busy:
            return
        with self.lock:
            walker = self.walker
            if (walker is not None and walker.batch is not None and self.owner != threading.get_ident()
                    and _thread_alive(self.owner)):
                return
            self._teardown()

    def leave(self) -> None:
        """The reader leaves the walk after close(): it is the one to tear down."""
        with self.lock:
            self._teardown()

    def _teardown(self) -> None:
        """Once, under ``lock``: revoke the views (kept packets get a copy of their frame), release our
        views of the mapping, unmap, close the wake-up pipe and the socket."""
        if self.torn:
            return
        self.torn = True
        try:
            if self.walker is not None:
                if self.forked:
                    self.walker.disown()
                else:
                    self.walker.abandon()
            self.cut_current()  # a packet iteration suspended mid-batch ends there
            if self.ring is not None and not self.sock.forked:
                self.ring.release()
        finally:
            if self.waiter is not None:
                self.waiter.close()
            self.sock.close()
            self.done.set()

    def after_fork_in_child(self) -> None:
        """In a forked child (the ring is not mapped here): end the walk without reading the ring,
        revoke the views of the current batch, make its kept packets raise CaptureClosedError, cut the
        packet iterator of a batch being iterated short, close the child's copy of the pipe. The lock
        and event are new: a thread of the parent may have held them, and it does not exist here."""
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.forked = True
        self.halt = True
        self.busy = False
        if self.walker is not None:
            self.walker.disown()
        self.cut_current()
        if self.waiter is not None:
            self.waiter.after_fork_in_child()

    def cut_current(self) -> None:
        """End the packet iterator of the current batch (after its batch expired: its packets were
        revoked or detached, and the C kernels' unkept ones went back to the pool, unattached)."""
        cur, self.current = self.current, None
        self.rest = None
        if isinstance(cur, list):
            cur.clear()  # the C kernels' packets of this batch: nothing more to yield
        elif cur is not None:
            try:
                cur.close()  # the pure kernels' generator
            except ValueError:  # running in a thread of the parent, in a forked child
                pass

    # -- a link that went away ------------------------------------------------------------------
    def drained(self) -> bool:
        """After the interface went away: True once every packet the kernel delivered into the ring
        has been stepped over (or DRAIN_LIMIT passed)."""
        assert self.walker is not None
        return self.sock.stats().packets <= self.walker.taken or time.monotonic() >= self.drain_until

    def link_gone_error(self) -> LinkDownError:
        """The final error: the cause, and the statistics (also on its ``stats`` attribute)."""
        assert self.walker is not None and self.gone is not None
        st = self.sock.stats()
        read = self.walker.taken
        msg = (
            f"{self.gone}; the kernel received {st.received} packets on it: {read} read from the ring, "
            f"{st.drops} dropped"
        )
        if read < st.packets:
            msg += f", {st.packets - read} never handed over"
        err = LinkDownError(msg)
        err.stats = st
        return err


#: every walk of this process, for the fork hook
_walks: weakref.WeakSet[_Walk] = weakref.WeakSet()


def _fanout_config(fanout: Fanout | str | None) -> Fanout | None:
    """``fanout=`` as a Fanout: a mode name means that mode in a group whose id the kernel picks."""
    if fanout is None:
        return None
    from ..fanout import Fanout

    if isinstance(fanout, str):
        return Fanout(mode=fanout)
    if not isinstance(fanout, Fanout):
        raise TypeError(f"Capture(): fanout must be a Fanout or a mode name, not {type(fanout).__name__}")
    return fanout


def _after_fork_in_child() -> None:
    for st in list(_walks):
        try:
            st.after_fork_in_child()
        except Exception:  # a hook must not fail the fork; the walk is marked halted first
            st.halt = st.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def _walk(st: _Walk) -> Generator[Packet | None, None, None]:
    """One generator serves iteration and next_packet(): each batch's packets; None when idle and asked to."""
    assert st.walker is not None
    packets = st.walker.packets
    try:
        for batch in _batches(st):
            if batch is None:
                yield None
            else:
                # Kept on the state only while it is being yielded from (a forked child cuts it short); no
                # local reference, so the C kernels' list of this batch's packets is gone by the time the
                # batch expires and its unkept packets go back to the pool.
                st.current = packets(batch)
                st.rest = rest = iter(st.current)
                yield from rest
                st.current = st.rest = None
    finally:
        # Ended mid-batch (closed, an error): end the batch's iterator too, so a reader that took it from
        # st.rest (AsyncCapture's async_stream) gets nothing more from a batch about to expire.
        st.cut_current()


def _batches(st: _Walk) -> Generator[Batch | None, None, None]:
    """Each user-owned batch in ring order, handed back to the kernel when the consumer asks for the
    next one (or stops). Yields None when idle and asked to (next_packet, deadlines).

    Ends (StopIteration) at stop() or close(); raises CaptureClosedError in a forked child, and
    LinkDownError once the interface went away and the ring has been read to the end: every packet the
    kernel delivered is yielded first, so captured + dropped == received (libpcap stops at once).
    """
    walker, waiter = st.walker, st.waiter
    assert walker is not None and waiter is not None
    step, release, wait = walker.step, walker.release, waiter.wait
    ident = threading.get_ident
    coalesce = not walker.v3
    racing = False
    batch = None
    try:
        while True:
            st.owner = ident()  # before busy: close() from a signal handler in this thread must not wait
            st.busy = True  # then read halt (see _Walk)
            if st.halt:
                break
            if batch is not None:
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
                batch = None
                if st.deadline is not None and st.yield_idle and time.monotonic() >= st.deadline:
                    st.busy = False
                    yield None
                    continue
            batch = step()
            if batch is None:
                racing = False
                if st.gone is not None:
                    if st.drained():
                        raise st.link_gone_error()
                    # what is left arrives on no schedule: look again every DRAIN_POLL_MS, or sooner when the
                    # reader asked for less (poll_ms 0: an event loop's walk, which waits on its own timer)
                    ready = wait(min(DRAIN_POLL_MS, st.idle_timeout_ms()))
                else:
                    try:
                        ready = wait(st.idle_timeout_ms())
                    except LinkDownError as e:  # gone: read what is left in the ring first
                        st.gone = e
                        st.drain_until = time.monotonic() + DRAIN_LIMIT
                        continue
                if ready or not st.yield_idle:
                    continue
                st.busy = False
                yield None
                continue
            st.busy = False
            yield batch
        if st.forked:
            raise CaptureClosedError(FORKED)
    finally:
        st.owner = ident()
        st.busy = True  # then read closing (see _Walk)
        if batch is not None and walker.batch is batch and not st.closing and not st.forked:
            release()
        st.busy = False
        if st.closing:
            st.leave()


class Capture:
    """Capture packets on one interface (or ``"any"``) through a memory-mapped RX ring.

    Example::

        with afpacket.Capture("eth0", filter="udp port 53") as cap:
            for pkt in cap.packets(count=10, timeout=5):   # 10 packets, or 5 s without one
                print(pkt.timestamp_ns, pkt.wire_len, bytes(pkt)[:14].hex())
            print(cap.stats())                             # received, drops, freeze_count

    Iterating yields :class:`~afpacket.Packet` objects until :meth:`close` or :meth:`stop`;
    :meth:`packets` bounds the loop by a count, a total ``duration`` or an idle ``timeout``;
    :meth:`frames` yields bytes, :meth:`columns` arrays of metadata, :meth:`next_packet` one packet.
    A packet's ``data`` view is valid until the capture reads past the batch it came in (a V3 block,
    or the run of V1/V2 frames that were ready together); afterwards it raises ``PacketExpiredError``.
    Portable code uses each packet before taking the next, and keeps ``bytes(pkt)`` or ``pkt.copy()``
    for later (a packet object you keep stays valid: it gets a copy of its frame).

    Parameters (all but ``interface`` are keyword-only):

    - ``interface``: the interface name, or ``"any"`` for every interface at once (cooked SOCK_DGRAM,
      as tcpdump does).
    - ``version``: TPACKET version 1, 2 or 3 (default 3, block-based and the fastest; V1 has µs
      timestamps and no VLAN fields).
    - ``snaplen``: bytes kept of each packet (default 262144: whole packets). V1/V2 frames are sized
      from it, or from the MTU while it is left at the default.
    - ``buffer_size``: bytes of ring memory (default 4 MiB); a larger ring rides out longer bursts.
    - ``block_timeout_ms``: V3 only: how long the kernel keeps a partly filled block before handing
      it over (default 8 ms): the delay before a packet on a quiet link becomes visible.
    - ``poll_timeout``: seconds one wait for packets may block, and the default timeout of
      :meth:`next_packet` (default None: waits wake up once a second to notice :meth:`stop`). It does
      not end a loop: for that use ``packets(duration=...)`` (total time) or ``packets(timeout=...)``
      (time without a packet).
    - ``timeout``: deprecated name of ``poll_timeout`` (it warns with a DeprecationWarning and will be
      removed in the next release): it never bounded a capture's length.
    - ``promisc``: promiscuous mode while the capture is open (default False; needs a named interface).
    - ``sock_type``: ``"raw"`` (data from the link header on) or ``"dgram"`` (from the network header;
      the default, and the only choice, for ``"any"``).
    - ``protocol``: the EtherType to receive (default ``ETH_P_ALL``, every protocol).
    - ``rxhash``: V3: have the kernel fill each packet's ``rxhash`` with its flow hash.
    - ``reinsert_vlan``: put VLAN tags the kernel stripped back into ``data``, in the ring
      (PACKET_RESERVE), so ``data`` is the frame as it was on the wire.
    - ``copy_thresh``: PACKET_COPY_THRESH: a V1/V2 packet too large for its frame is also queued whole
      on the socket, and the packet object gives the whole copy.
    - ``ignore_outgoing``: PACKET_IGNORE_OUTGOING: skip packets this host sends (Linux 4.20 or later).
    - ``filter``: a tcpdump filter expression (compiled for this interface, as ``tcpdump -i IFACE``
      compiles it, so ``vlan`` tests the kernel's VLAN metadata), a :class:`~afpacket.BpfProgram` from
      :func:`~afpacket.compile_filter` or :func:`~afpacket.parse_program`, or a list of (code, jt, jf, k)
      tuples; the kernel runs it before a packet reaches the ring. :meth:`set_filter` replaces it later.
    - ``lock_filter``: SO_LOCK_FILTER once the filter is attached: nobody (not even this process) can
      replace or remove it until the socket closes.
    - ``fanout``: join a PACKET_FANOUT group after bind: a :class:`~afpacket.Fanout` (mode, group id,
      flags, steering program) or a mode name (``"hash"``, ``"lb"``, ...) with a group id the kernel
      picks; every socket in the group shares the interface's traffic (:attr:`fanout_id` is the group).
    - ``timestamp_source``: which clock stamps packets (PACKET_TIMESTAMP): ``"software"`` (the
      default: the kernel's receive time) or ``"hardware"`` (the NIC's raw clock, after SIOCSHWTSTAMP;
      TimestampError naming the device where it has none, as on veth). ``Packet.timestamp_source``
      says which source stamped each packet.
    - ``block_size``: the ring's block size in bytes, instead of the one derived from ``buffer_size``.
    - ``geometry``: a complete :class:`~afpacket.RingGeometry` used as is (advanced; replaces
      ``buffer_size``, ``block_size`` and the derived frame size).
    - ``tx_geometry``: also map a TX ring (``RingGeometry.for_transmit(...)``) on this socket, for
      :meth:`transmitter`.
    - ``allow_large_ring``: accept rings that take more than half of MemAvailable (refused by default
      with RingAllocationError naming a size that fits; the CLI's ``--allow-large-ring``).

    Raises InterfaceNotFoundError (no such interface), PermissionDeniedError (needs CAP_NET_RAW),
    RingGeometryError (a layout the kernel would refuse; the message names a value that works),
    RingAllocationError (no memory for the ring), FilterError (a bad filter), SocketOptionError (an
    option the kernel refused), ArgumentError or TypeError (a bad argument).

    Not thread-safe: one thread reads. :meth:`close` or :meth:`stop` may be called from another
    thread (or a signal handler); the reader wakes up and its iteration ends (StopIteration), and
    close() releases the ring and socket once the reader has left the walk. In a child made by
    ``fork()`` the parent's capture and its packets raise CaptureClosedError. If the interface is
    removed or moved to another network namespace, the iteration yields what is still in the ring and
    then raises LinkDownError (:meth:`stats` still works until close()); a link set down and up again is
    captured on, as tcpdump does.
    """

    def __init__(
        self,
        interface: str,
        *,
        version: int = 3,
        snaplen: int = DEFAULT_SNAPLEN,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        block_timeout_ms: int = DEFAULT_BLOCK_TIMEOUT_MS,
        poll_timeout: float | None = None,
        timeout: float | None = None,
        promisc: bool = False,
        sock_type: str | None = None,
        protocol: int = abi.ETH_P_ALL,
        rxhash: bool = False,
        reinsert_vlan: bool = False,
        copy_thresh: bool = False,
        ignore_outgoing: bool = False,
        filter: str | BpfProgram | list[tuple[int, int, int, int]] | None = None,
        block_size: int | None = None,
        geometry: RingGeometry | None = None,
        tx_geometry: RingGeometry | None = None,
        allow_large_ring: bool = False,
        lock_filter: bool = False,
        fanout: Fanout | str | None = None,
        timestamp_source: str | None = None,
    ) -> None:
        if timeout is not None:
            warnings.warn(
                "Capture(timeout=) is deprecated: it is the poll timeout (how long one wait for packets "
                "blocks, and next_packet()'s default), not a capture duration, so it never ended a loop; "
                "pass poll_timeout= instead. To end a loop, use cap.packets(duration=SECONDS) (total time) "
                "or cap.packets(timeout=SECONDS) (seconds without a packet).",
                DeprecationWarning,
                stacklevel=2,
            )
            if poll_timeout is not None:
                raise AfPacketError("Capture(): pass poll_timeout= only (timeout= is its deprecated name), not both")
            poll_timeout = timeout
        if not isinstance(interface, str):
            raise TypeError(f"Capture(): interface must be a str (a name, or 'any'), not {type(interface).__name__}")
        if sock_type is None:
            sock_type = "dgram" if interface == ANY else "raw"
        self.interface = interface
        self.version = version
        self.snaplen = snaplen
        #: seconds one wait for packets blocks, and next_packet()'s default timeout (None: no limit)
        self.poll_timeout = _check.seconds("Capture()", "poll_timeout", poll_timeout)
        self.sock_type = sock_type
        self.promisc = promisc
        self.copy_thresh = copy_thresh
        self._closed = False
        #: the packet walk (iteration and next_packet() share it); see _walk()
        self._walker: GeneratorType[Packet | None, None, None] | None = None
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

        allow_large = _check.flag("Capture()", "allow_large_ring", allow_large_ring)
        if interface != ANY:
            lookup(interface)  # a missing interface is InterfaceNotFoundError, before the filter is compiled for it
        program = self._compile(filter, interface, sock_type, snaplen)
        lock = _check.flag("Capture()", "lock_filter", lock_filter)
        fanout_cfg = _fanout_config(fanout)
        if timestamp_source is not None:
            from ..timestamps import check_source

            check_source(timestamp_source)
        #: the PACKET_FANOUT group this socket joined (None: none)
        self.fanout_id: int | None = None
        if promisc and interface == ANY:
            raise AfPacketError("promiscuous mode needs a named interface, not 'any' (as in tcpdump)")
        # Set by _setup(); None only before setup finishes.
        self._ring: RingMemory = None  # type: ignore[assignment]
        self._ring_walker: RingWalker = None  # type: ignore[assignment]
        self._sock = PacketSocket(interface, sock_type=sock_type, protocol=protocol)
        self._st = _Walk(self._sock, interface)
        #: the filter attached now (None: none), as set_filter() last left it
        self.filter: BpfProgram | None = program
        try:
            self._setup(geometry, reserve, promisc, copy_thresh, ignore_outgoing, tx_geometry, program, allow_large,
                        lock, fanout_cfg, timestamp_source)
        except BaseException:
            self.close()
            raise
        self.geometry: RingGeometry = self._sock.rx  # type: ignore[assignment]
        self.hatype = self._sock.iface.hatype if self._sock.iface else abi.ARPHRD_ETHER

    @classmethod
    def from_fd(cls, fd: int, desc: SocketDescription) -> Capture:
        """A Capture over a capture socket that another process opened and handed over (see
        :func:`afpacket.receive_capture`): ``fd`` is taken over (close() closes it), ``desc`` gives the
        ring's geometry and the options that shape how frames are read. Nothing is set up again (no
        privilege is needed): the ring is mapped and read like any capture's."""
        self = cls.__new__(cls)
        self._closed = True  # until the socket is ours: __del__ has nothing to release
        self.interface = desc.interface
        self.version = desc.version
        self.snaplen = desc.snaplen
        self.poll_timeout = None
        self.sock_type = desc.sock_type
        self.promisc = False
        self.copy_thresh = desc.copy_thresh
        self._walker = None
        self.kernels = ring.current()
        self._ring = None  # type: ignore[assignment]
        self._ring_walker = None  # type: ignore[assignment]
        self.fanout_id = None  # whatever the sender set up stays set up; it is not described to us
        self.filter = None
        try:
            self._sock = PacketSocket.adopt(
                fd, desc.interface, ifindex=desc.ifindex, sock_type=desc.sock_type, protocol=desc.protocol,
                version=desc.version, rx=desc.rx, tx=desc.tx,
            )
        except BaseException:
            os.close(fd)
            raise
        self._st = _Walk(self._sock, desc.interface)
        self._closed = False
        try:
            self._attach_ring(self._sock.map_rings(), desc.reinsert)
        except BaseException:
            self.close()
            raise
        self.geometry = desc.rx
        self.hatype = desc.hatype
        return self

    def _setup(
        self,
        geometry: RingGeometry,
        reserve: int,
        promisc: bool,
        copy_thresh: bool,
        ignore_outgoing: bool,
        tx_geometry: RingGeometry | None,
        program: BpfProgram | None,
        allow_large: bool = False,
        lock_filter: bool = False,
        fanout: Fanout | None = None,
        timestamp_source: str | None = None,
    ) -> None:
        """Every setup step, in the order the kernel needs; bind, then the fanout group, come last (see
        sock.py)."""
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
        if timestamp_source is not None:
            from ..timestamps import enable

            enable(ps, timestamp_source)
        ps.set_ring(geometry, allow_large=allow_large)
        if tx_geometry is not None:
            if tx_geometry.version != self.version:
                raise AfPacketError("a TX ring on a capture socket must use the capture's TPACKET version")
            ps.set_ring(tx_geometry, allow_large=allow_large)
        self._attach_ring(ps.map_rings(), bool(reserve))
        ps.bind()
        if promisc:
            ps.set_promisc(True)
        if fanout is not None:
            from ..fanout import join

            self.fanout_id = join(ps, fanout)  # the kernel takes a socket into a group only once it is bound
        if lock_filter:
            from ..filter import lock

            lock(ps.sock)  # last: a locked socket could not set the fanout group's steering program

    def _attach_ring(self, ring_map: mmap.mmap, reinsert: bool) -> None:
        """The reading side over the socket's mapped RX ring: the ring's memory, its walker, the waiter,
        all held by the walk state (``self._st``) that close() tears down."""
        ps = self._sock
        rx = ps.rx
        assert rx is not None
        self._ring = RingMemory(
            ring_map, rx.size, self.version, self.snaplen, raw=self.sock_type == "raw", reinsert=reinsert,
            frame_size=rx.frame_size, cooked=2,  # SOCK_DGRAM packets as tcpdump records `any`: cooked v2
        )
        st = self._st
        st.ring = self._ring  # from here on, a failure's close() releases it
        self._ring_walker = st.walker = RingWalker(
            self._ring, rx, self.kernels, copy_thresh=self.copy_thresh, sock=ps.sock
        )
        st.waiter = Waiter(ps, self.interface)

    # -- plumbing -------------------------------------------------------------------------------
    def fileno(self) -> int:
        """The socket's fd, for select/poll/asyncio: readable when the ring has data."""
        self._check()
        return self._sock.fileno()

    @property
    def socket(self) -> PacketSocket:
        """The underlying :class:`~afpacket.sock.PacketSocket` (advanced: its options and statistics)."""
        return self._sock

    @property
    def timeout(self) -> float | None:
        """Deprecated alias of :attr:`poll_timeout` (warns); it never bounded a capture's length."""
        warnings.warn(
            "Capture.timeout is deprecated: it is the poll timeout, read Capture.poll_timeout instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.poll_timeout

    def _check(self) -> None:
        if self._closed:
            self._st.finish_close()  # a close() from another thread may have left the teardown to us
            raise CaptureClosedError("capture is closed; open a new Capture")
        if self._sock.forked:
            raise CaptureClosedError(FORKED)
        self._sock.check_open()

    def _packet_walk(self) -> GeneratorType[Packet | None, None, None]:
        """The packet walk, started anew if the last one ended (stop(), an interface that went away)."""
        w = self._walker
        if w is None or w.gi_frame is None:
            w = self._walker = cast("GeneratorType[Packet | None, None, None]", _walk(self._st))
        return w

    # statistics of the walk (V3): blocks read, blocks flagged LOSING, gaps in the block sequence
    @property
    def blocks_seen(self) -> int:
        """V3: blocks read so far (0 on V1/V2)."""
        return self._ring_walker.blocks_seen if self._ring_walker else 0

    @property
    def losing_seen(self) -> int:
        """V3: blocks the kernel flagged TP_STATUS_LOSING (it dropped packets while they were filled)."""
        return self._ring_walker.losing_seen if self._ring_walker else 0

    @property
    def seq_gaps(self) -> int:
        """V3: gaps in the blocks' sequence numbers seen by the walk (0 when no block was skipped)."""
        return self._ring_walker.seq_gaps if self._ring_walker else 0

    # -- public reading API ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Packet]:
        """Every packet, for as long as the capture is open (until close() or stop())."""
        self._check()
        st = self._st
        st.yield_idle = False
        st.deadline = None
        st.poll_ms = -1 if self.poll_timeout is None else int(self.poll_timeout * 1000)
        return self._packet_walk()  # type: ignore[return-value]

    def next_packet(self, timeout: float | None = None) -> Packet | None:
        """The next packet, or None if none arrived within ``timeout`` seconds.

        ``timeout`` defaults to the capture's ``poll_timeout``; None (both unset) waits until a packet
        comes, :meth:`stop` or :meth:`close`; 0 only looks. Releases the previous batch only when moving
        past it, like iteration. Raises CaptureClosedError after close(), ArgumentError/TypeError for
        a negative, NaN or non-numeric ``timeout``.

        Example::

            while (pkt := cap.next_packet(timeout=0)) is not None:   # drain what is ready
                handle(pkt)
        """
        self._check()
        timeout = _check.seconds("next_packet()", "timeout", timeout)
        t = self.poll_timeout if timeout is None else timeout
        st = self._st
        st.poll_ms = -1 if t is None else int(t * 1000)
        st.yield_idle = t is not None
        st.deadline = None
        try:
            return next(self._packet_walk())
        except StopIteration:
            return None
        finally:
            st.yield_idle = False

    def packets(
        self, count: int | None = None, duration: float | None = None, timeout: float | None = None
    ) -> Iterator[Packet]:
        """The packets that arrive, until the first of three limits (each None by default: no limit).

        - ``count``: stop after this many packets (0 yields none).
        - ``duration``: stop this many seconds after the call: a total time, however busy the link.
        - ``timeout``: stop once the loop has waited this many seconds with no packet: an idle
          timeout, restarted with every packet (time spent in the loop body does not count, so a slow
          body never ends it while packets wait). On an idle link it ends the loop as scapy's
          ``sniff(timeout=)`` would; on a busy one it never does, where scapy's (a total time, like
          ``duration`` here) would.

        With no limit the loop runs until :meth:`stop` or :meth:`close`. Ending on a limit loses
        nothing: packets that arrive later (or the rest of a batch when ``count`` stops mid-batch)
        stay in the ring for the next read, and :meth:`stats` counts every packet exactly. On V3 a
        packet becomes visible when its block is handed over (``block_timeout_ms``), so choose an
        idle ``timeout`` longer than that. Raises ArgumentError for a negative, NaN or infinite limit
        and TypeError for one that is not a number (checked at the call, not at the first packet),
        CaptureClosedError after close().

        Example::

            for pkt in cap.packets(count=100, duration=10, timeout=2):
                print(pkt.wire_len)
        """
        self._check()
        count = _check.count("packets()", "count", count)
        duration = _check.seconds("packets()", "duration", duration)
        timeout = _check.seconds("packets()", "timeout", timeout)
        if count == 0:
            return iter(())
        deadline = time.monotonic() + duration if duration is not None else None
        bounded = self._bounded(self._packet_walk(), deadline, timeout)
        return bounded if count is None else islice(bounded, count)

    def frames(
        self, count: int | None = None, duration: float | None = None, timeout: float | None = None
    ) -> Iterator[bytes]:
        """Just the bytes of each packet, copied out of the ring (no lifetime rules, no metadata).

        The fastest way to see every packet from Python: no packet object is made, and each frame is
        one slice of the mapping. ``count``, ``duration`` (total seconds) and ``timeout`` (seconds
        without a packet) bound the loop as in :meth:`packets`; without them it runs until
        stop()/close(). Leaving the loop early (``break``) hands the rest of the current batch back
        to the kernel; with ``count`` it stops exactly after that many frames and keeps the rest for
        the next read (through the packet walker, a little slower). VLAN tags as the ring holds them
        (put back in place with ``reinsert_vlan=True``). Raises as :meth:`packets` does.

        Example::

            frames = list(cap.frames(count=1000, timeout=1))
        """
        self._check()
        count = _check.count("frames()", "count", count)
        duration = _check.seconds("frames()", "duration", duration)
        timeout = _check.seconds("frames()", "timeout", timeout)
        if count is not None or self.copy_thresh:
            # copy_thresh: full copies of truncated frames live beside the ring, in packet objects
            return (bytes(p) for p in self.packets(count=count, duration=duration, timeout=timeout))
        return self._frame_bytes(self._batch_walk(duration, timeout))

    def _frame_bytes(self, batches: Iterator[Batch]) -> Iterator[bytes]:
        frame_bytes = self.kernels.frame_bytes
        for batch in batches:
            yield from frame_bytes(batch)

    def columns(self, duration: float | None = None, timeout: float | None = None) -> Iterator[Columns]:
        """Each batch's packet metadata as :class:`~afpacket.Columns` of arrays (timestamp ns, caplen,
        wire_len, VLAN TCI, rxhash, pkttype, ifindex), with no Python object per packet;
        ``.to_numpy()`` / ``.to_arrow()`` convert. ``duration`` (total seconds) and ``timeout``
        (seconds without a packet) bound the loop as in :meth:`packets`. Same lifetime rules as
        :meth:`batches` (the arrays are copies and stay valid). Raises as :meth:`packets` does.

        Example::

            for cols in cap.columns(duration=5):
                total += sum(cols.wire_len)
        """
        self._check()
        duration = _check.seconds("columns()", "duration", duration)
        timeout = _check.seconds("columns()", "timeout", timeout)
        return self._columns(self._batch_walk(duration, timeout))

    def _columns(self, batches: Iterator[Batch]) -> Iterator[Columns]:
        kernels = self.kernels
        for batch in batches:
            yield columns_of(kernels, batch)

    def batches(self, duration: float | None = None, timeout: float | None = None) -> Iterator[Batch]:
        """Advanced, for fast paths that handle a whole batch at once (afpacket.tofile does): each
        user-owned batch (a V3 block or a run of V1/V2 frames: ``batch.count`` packets whose headers are
        at ``batch.hdrs``, in ``batch.ring``), to hand to the ring kernels (``capture.kernels``:
        ``frame_bytes``, ``pcap_records``, ``fill_columns``, ...). A batch goes back to the kernel when the
        next one is requested or the iteration ends. ``duration`` (total seconds) and ``timeout`` (seconds
        without a packet) bound the loop as in :meth:`packets`. Do not mix with a packet iteration that
        is mid-batch (AfPacketError); other errors as :meth:`packets`."""
        self._check()
        duration = _check.seconds("batches()", "duration", duration)
        timeout = _check.seconds("batches()", "timeout", timeout)
        return self._batch_walk(duration, timeout)

    def _batch_walk(self, duration: float | None, idle: float | None) -> Iterator[Batch]:
        """The batch walk behind batches(), frames() and columns(); refuses at the call (and again at
        the first step) while a packet iteration holds a batch."""
        self._check_no_batch_held()
        return self._batch_gen(duration, idle)

    def _check_no_batch_held(self) -> None:
        if self._walker is not None and self._ring_walker.batch is not None:
            raise AfPacketError("a packet iteration holds a batch; finish it before reading batches")

    def _batch_gen(self, duration: float | None, idle: float | None) -> Iterator[Batch]:
        if self._closed:
            return  # closed (from another thread) since batches() was called: the iteration just ends
        self._check()
        self._check_no_batch_held()
        self._walker = None
        deadline = time.monotonic() + duration if duration is not None else None
        gen = _batches(self._st)
        try:
            yield from self._bounded(gen, deadline, idle)
        finally:
            gen.close()

    def _bounded(
        self, source: Iterator[_T | None], deadline: float | None, idle: float | None = None
    ) -> Iterator[_T]:
        """The items of a walker until it ends, the deadline passes, or the walker has waited ``idle``
        seconds without an item (walkers yield None when idle, and only between batches).

        The idle clock restarts whenever the consumer asks for the next item, so a slow consumer never
        ends the loop while packets wait in the ring. Ending here leaves nothing taken and not handed
        on: a walker yields None only with no batch held, so what is not yielded stays in the ring.
        """
        try:
            waiting_since = time.monotonic()

            def end() -> float | None:
                """When the read ends: the deadline, or earlier once ``idle`` seconds passed with no item."""
                if idle is None:
                    return deadline
                quiet = waiting_since + idle
                return quiet if deadline is None or quiet < deadline else deadline

            # Armed at the start, and again whenever the walker comes back idle: between those, the end the
            # walker holds can only be earlier than the real one (the idle clock moved on), so at worst it
            # comes back idle early and is armed again; re-arming for every packet cost 0.4 us per packet.
            self._arm(end())
            while True:
                try:
                    item = next(source)
                except StopIteration:
                    return
                if item is None:
                    until = end()
                    if until is not None and time.monotonic() >= until:
                        return
                    self._arm(until)
                    continue
                yield item
                if idle is not None:
                    waiting_since = time.monotonic()
        finally:
            st = self._st
            st.deadline = None
            st.yield_idle = False
            st.poll_ms = -1

    def _arm(self, deadline: float | None) -> None:
        """Before each step of a bounded read: wake up in time for the deadline, and yield None then."""
        st = self._st
        st.deadline = deadline
        st.yield_idle = deadline is not None

    def stop(self) -> None:
        """Make a running iteration end soon (safe from another thread or a signal handler); the capture
        stays open (stats(), close()), and later reads end at once."""
        self._st.stop()

    def stats(self) -> SocketStats:
        """Cumulative kernel counters: ``received`` (by the filter), ``drops``, ``packets`` (into the
        ring = received - drops), ``freeze_count`` (V3). Still readable after the interface went away
        (LinkDownError), until close(); CaptureClosedError after close()."""
        self._check()
        return self._sock.stats()

    # -- filter and fanout on a running capture ------------------------------------------------------
    def _compile(
        self, filter: str | BpfProgram | list[tuple[int, int, int, int]] | None, interface: str, sock_type: str,
        snaplen: int,
    ) -> BpfProgram | None:
        if filter is None or isinstance(filter, BpfProgram):
            return filter
        if isinstance(filter, str):
            live = interface if interface != ANY and sock_type == "raw" else None
            return compile_filter(filter, dgram=sock_type == "dgram", snaplen=snaplen, interface=live)
        return parse_filter(filter)

    def set_filter(self, filter: str | BpfProgram | list[tuple[int, int, int, int]] | None) -> None:
        """Replace the kernel filter of the running capture (None removes it), as ``filter=`` takes it.

        A drop-all program is attached first, so no packet passes unfiltered while the new one goes in
        (libpcap does the same); packets already in the ring passed the old filter. FilterError for a
        bad expression, or when the filter is locked (``lock_filter``)."""
        self._check()
        from ..filter import swap

        program = self._compile(filter, self.interface, self.sock_type, self.snaplen)
        swap(self._sock.sock, program)
        self.filter = program

    def lock_filter(self) -> None:
        """SO_LOCK_FILTER: the attached filter (or its absence) stays until the socket closes; later
        :meth:`set_filter` calls raise FilterError."""
        self._check()
        from ..filter import lock

        lock(self._sock.sock)

    def metrics(self) -> dict[str, float]:
        """The snapshot a Prometheus scrape serves (see :mod:`afpacket.metrics`): metric name → value, with
        ``afpacket_packets_total`` (packets taken from the ring), ``afpacket_received_total``,
        ``afpacket_drops_total`` and ``afpacket_freeze_total`` (as :meth:`stats`), and the ring's occupancy
        (``afpacket_ring_blocks``, ``afpacket_ring_blocks_in_use``, ``afpacket_ring_occupancy_ratio``).
        Safe from another thread while this one reads packets."""
        from ..metrics import capture_snapshot

        return capture_snapshot(self)

    def rollover_stats(self) -> RolloverStats:
        """PACKET_ROLLOVER_STATS of a fanout member: packets it passed on to another socket, how many of
        them because it was short of room (``huge``) and how many found no room anywhere (``failed``)."""
        self._check()
        from ..fanout import rollover_stats

        return rollover_stats(self._sock)

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
        """Hand everything back and release the ring and socket. Safe to call twice, and from any thread.

        From the thread that reads (or when nobody does), everything is released before close()
        returns; packets kept from the current batch get a copy of their frame. From another thread
        while a reader is inside the walk (waiting for packets, say), it wakes the reader, whose
        iteration ends (StopIteration; ``next_packet()`` returns None) and which releases the ring and
        socket as it leaves; close() waits for that (up to a few seconds). If the reader is in its loop
        body with a packet, the release waits until it asks for the next one. Every method but close()
        raises CaptureClosedError from the moment close() is called.
        """
        if self._closed:
            return
        self._closed = True
        st = getattr(self, "_st", None)
        if st is None:  # PacketSocket() itself failed
            return
        st.request_close()

    def __enter__(self) -> Capture:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Nothing but the user's references holds a Capture (the walk's generators hold its _Walk), so
        # this runs as soon as the last one goes, and the ring and socket go with it.
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Capture {self.interface!r} TPACKET_V{self.version} {self.sock_type} {state}>"


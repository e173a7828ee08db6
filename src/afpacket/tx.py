"""Transmit through a PACKET_MMAP TX ring (TPACKET V1, V2 and V3).

The user fills ring slots and marks them ``TP_STATUS_SEND_REQUEST``; one ``send(fd, "", 0)`` (a *kick*)
makes the kernel walk the ring from its own head and transmit every consecutive requested slot
(``tpacket_snd`` in ``net/packet/af_packet.c``). A slot goes back to the user when its skb is freed,
with ``TP_STATUS_AVAILABLE`` possibly OR'ed with ``TP_STATUS_TS_*`` bits.

Kernel rules this module is built around (checked on 6.x over veth pairs by ``tests/test_tx.py``):

- The kernel's head and ours must stay in step: it stops at the first slot that is not
  ``SEND_REQUEST``. A frame it rejects is left ``TP_STATUS_WRONG_FORMAT`` *and its head stays there*,
  so merely resetting that slot would stall every later frame. :meth:`Transmitter._drop_rejected`
  moves the frames queued behind it down by one slot instead (rare path, copies at most one ring).
- ``PACKET_LOSS`` (``loss=True``) makes the kernel skip malformed frames silently instead; they are
  then not counted as failed, because nothing reports them.
- For ``SOCK_DGRAM`` the kernel builds the link header from the sockaddr_ll passed to the kick
  (``sendto``), one address per kick, not per frame: frames to a different destination or protocol
  are flushed first (:meth:`Transmitter.send_to`).
- A blocking kick (no ``MSG_DONTWAIT``) also waits until the frames it sent have completed, bounded
  by ``SO_SNDTIMEO``, which is set to the transmitter's timeout so that nothing blocks forever.
- ``poll(POLLOUT)`` reports the *kernel's head* slot being exactly ``AVAILABLE``; with timestamps on,
  completed slots carry TS bits and never compare equal, so waits here re-check our own slot.
- Push-back keeps the frame: when a qdisc or the driver refuses it (NET_XMIT_DROP, NETDEV_TX_BUSY), the
  slot goes back to SEND_REQUEST, the kernel's head stays on it and the kick answers ENOBUFS; a full
  socket send buffer answers EAGAIN to a non-blocking kick that could take nothing. Both are retried
  with a back-off and counted (:meth:`Transmitter._kick_refused`), so nothing is lost. A head-drop or AQM
  qdisc (fq_codel, red) that discards a frame it had accepted tells no sender.
- A link going down answers ENETDOWN and takes nothing; one deleted or moved to another namespace
  answers ENXIO (the socket's cached device is gone). Either takes the interface down first, so a kick
  already under way at that moment gets its remaining frames taken and dropped by the device (counted in
  its tx_dropped): the kernel counts them as sent, and so do we.

Memory ordering: data and length are written first, the status word last. On x86-64 stores are not
reordered with each other, so that is enough; weakly ordered CPUs (arm64) are not guaranteed yet.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
import warnings
import weakref
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice
from types import TracebackType
from typing import SupportsBytes

from . import _check, abi
from .craft import mac_bytes
from .errors import (
    AfPacketError,
    CaptureClosedError,
    FrameTooLargeError,
    LinkDownError,
    RingGeometryError,
    TransmitError,
    os_error,
)
from .geometry import LINK_OVERHEAD, RingGeometry, frame_size_for
from .ring import current as current_kernels
from .ring.layout import layout
from .sock import PacketSocket

#: SOL_SOCKET option (asm-generic/socket.h); the socket module does not export it
_SO_TIMESTAMPNS = 35
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_SEC_FRAC = struct.Struct("=II")
#: Status bits that mean the kernel still owns a TX slot (all live in the low byte of tp_status, so the
#: hot path reads one byte; the TS_* bits that completed frames may carry live in the high byte).
_KERNEL_OWNED = abi.TP_STATUS_SEND_REQUEST | abi.TP_STATUS_SENDING
_NOT_FREE = _KERNEL_OWNED | abi.TP_STATUS_WRONG_FORMAT
_TS_BITS = abi.TP_STATUS_TS_SOFTWARE | abi.TP_STATUS_TS_SYS_HARDWARE | abi.TP_STATUS_TS_RAW_HARDWARE

#: errno values of a kick that mean the kernel pushed back and kept the frame queued (tpacket_snd puts
#: it back to SEND_REQUEST and leaves its head on it): ENOBUFS, a qdisc or the driver's queue was full
#: (NET_XMIT_DROP, NETDEV_TX_BUSY); EAGAIN, the socket's send buffer was full (MSG_DONTWAIT). The same
#: frame goes out at a later kick.
_RETRY_LATER = (errno.ENOBUFS, errno.EAGAIN)
#: errno values of a kick on an interface that left this network namespace (deleted or moved): the
#: socket's cached device is gone (ENXIO), or the name no longer resolves for a sendto() (ENODEV)
_LINK_GONE = (errno.ENXIO, errno.ENODEV)
#: Back-off between the retries of a pushed-back kick, doubling from the first value to the last: short
#: enough not to let a fast device's queue run dry, long enough not to spin on a slow one.
_BACKOFF_FIRST = 20e-6
_BACKOFF_LAST = 1e-3
#: errno values tpacket_snd returns when it left a frame TP_STATUS_WRONG_FORMAT
_REJECTED = (errno.EINVAL, errno.EMSGSIZE, errno.EFAULT, errno.ENOMEM)

#: What the send methods take: anything bytes-like, or anything with ``__bytes__`` (a scapy packet, a
#: captured Packet, a savefile Record).
Frame = bytes | bytearray | memoryview | SupportsBytes
#: Frame types the ring kernels take as they are (their len() is their length in bytes); the check is
#: one set operation per list of frames, so the bytes fast path stays fast.
_PLAIN = frozenset({bytes, bytearray})


def as_frame(frame: object) -> bytes | bytearray | memoryview:
    """``frame`` as bytes the TX ring can copy: bytes and bytearray as they are, any other buffer
    (memoryview, array, numpy array) as a byte view (or a copy when it is not contiguous), anything
    with ``__bytes__`` (a scapy packet, a captured Packet, a Record) as ``bytes(frame)``.

    Raises TypeError naming the type for anything else (a str, an int, a list...).
    """
    if isinstance(frame, bytes | bytearray):
        return frame
    try:
        view = memoryview(frame)  # type: ignore[arg-type]
    except TypeError:
        if getattr(type(frame), "__bytes__", None) is None:
            raise TypeError(
                f"a frame must be bytes-like (bytes, bytearray, memoryview, ...) or have __bytes__ (a scapy "
                f"packet, a captured Packet), not {type(frame).__name__}"
            ) from None
        return bytes(frame)  # type: ignore[call-overload,no-any-return]
    if not view.c_contiguous:
        return view.tobytes()
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _plain(frames: Sequence[object]) -> Sequence[bytes | bytearray | memoryview]:
    """``frames`` as the ring kernels take them (a list or tuple of bytes-likes): itself when every
    frame is bytes or bytearray, otherwise a list of :func:`as_frame` conversions."""
    if _PLAIN.issuperset(map(type, frames)):
        return frames  # type: ignore[return-value]
    return [as_frame(f) for f in frames]


# --- slot ownership, one predicate each (status is tp_status, or its low byte) ----------------------
def user_may_write(status: int) -> bool:
    """The slot whose tp_status is ``status`` is ours to fill: sent and completed, or never used (TS
    bits may be set)."""
    return not status & _NOT_FREE


def kernel_may_send(status: int) -> bool:
    """The slot whose tp_status is ``status`` waits for a kick (``TP_STATUS_SEND_REQUEST``)."""
    return bool(status & abi.TP_STATUS_SEND_REQUEST)


def kernel_owns(status: int) -> bool:
    """The kernel has yet to send, or to complete, the slot whose tp_status is ``status``."""
    return bool(status & _KERNEL_OWNED)


def kernel_rejected(status: int) -> bool:
    """The kernel refused the frame of the slot whose tp_status is ``status``
    (``TP_STATUS_WRONG_FORMAT``) and stopped there."""
    return bool(status & abi.TP_STATUS_WRONG_FORMAT)


@dataclass(frozen=True)
class TransmitStats:
    """Running totals of one transmitter (:meth:`Transmitter.stats`): ``sent`` (frames the kernel has
    taken, sent or in flight, excluding failed ones), ``bytes`` (their link-layer bytes as written to
    the ring, no FCS), ``failed`` (frames the kernel rejected with TP_STATUS_WRONG_FORMAT; never
    counted with ``loss=True``), ``pending`` (frames queued but not yet taken by the kernel),
    ``unsent`` (after close: frames that were still queued and were never taken, because the link went
    down or away or the queue did not drain in time), and how often the kernel pushed back: ``retries``
    (kicks repeated), ``enobufs`` and ``eagain`` (the answers that made them). Every frame queued is in
    exactly one of ``sent``, ``failed``, ``pending`` and ``unsent``."""

    #: frames the kernel has taken (sent or in flight), excluding failed ones
    sent: int
    #: bytes of those frames (link-layer bytes as written to the ring, no FCS)
    bytes: int
    #: frames the kernel rejected with TP_STATUS_WRONG_FORMAT (never counted with ``loss=True``)
    failed: int
    #: frames queued but not yet taken by the kernel
    pending: int = 0
    #: after close(): frames that were queued but never taken by the kernel (not in ``sent``)
    unsent: int = 0
    #: kicks repeated because the kernel pushed back; the frames stayed queued and left later
    retries: int = 0
    #: ENOBUFS answers to a kick: a qdisc or the driver's queue was full (tcpreplay's "Retried packets (ENOBUFS)")
    enobufs: int = 0
    #: EAGAIN answers to a kick: the socket's send buffer was full (tcpreplay's "Retried packets (EAGAIN)")
    eagain: int = 0


@dataclass(frozen=True)
class RejectedFrame:
    """A frame the kernel refused (:attr:`Transmitter.rejected`): the ring ``slot`` it sat in, its
    ``length`` (tp_len) and the ``reason`` (the kick's error)."""

    slot: int
    length: int
    reason: str

    def __str__(self) -> str:
        return f"slot {self.slot}: {self.length}-byte frame rejected ({self.reason})"


class TransmitWarning(UserWarning):
    """A frame was rejected by the kernel and dropped; the transmitter carried on."""


class TxSlot:
    """A free ring slot lent for zero-copy filling: write into ``data``, then ``commit(n)``.

    ``with tx.slot() as s: n = fill(s.data); s.commit(n)``. Leaving the block without commit
    returns the slot unsent. ``data`` is released by commit/exit: the memory belongs to the kernel
    from then on.
    """

    __slots__ = ("_tx", "data")

    def __init__(self, tx: Transmitter, data: memoryview) -> None:
        self._tx = tx
        self.data = data

    def commit(self, length: int, *, check: bool = True) -> None:
        """Send the first ``length`` bytes written into :attr:`data` (see :meth:`Transmitter.commit`;
        ``check=False`` skips the MTU and link-header checks)."""
        self._tx.commit(length, check=check)

    def __enter__(self) -> TxSlot:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._tx.abort()


def _check_slot_size(frame_size: int, version: int, mtu: int, interface: str) -> None:
    """Refuse slots far larger than any frame the link can carry: the kernel refuses such frames
    (EMSGSIZE) anyway, so a huge ``frame_size`` only turns into kernel memory nobody can use."""
    largest = mtu + LINK_OVERHEAD
    fits = frame_size_for(version, largest)
    limit = max(1 << (fits - 1).bit_length(), 1 << 16)
    if frame_size > limit:
        use = max(2048, 1 << (fits - 1).bit_length())
        raise RingGeometryError(
            f"Transmitter(): frame_size {frame_size} is far beyond the largest frame {interface} can send "
            f"(MTU {mtu}: {largest} bytes with its link header, {fits} bytes in a TPACKET_V{version} slot); "
            f"use frame_size={use}, or raise the interface's MTU first"
        )


class Transmitter:
    """Send link-layer frames on one interface through a PACKET_MMAP TX ring.

    Example::

        with afpacket.Transmitter("veth0") as tx:
            for frame in frames:            # bytes, or a scapy packet: Ether()/IP(dst=...)/UDP()
                tx.send(frame)
            tx.flush()                      # kick and wait until the kernel has sent them
            print(tx.stats())               # TransmitStats(sent=..., bytes=..., failed=0, pending=0)

    ``interface`` is the interface to send on (a name; ``"any"`` is refused). ``version`` 2 is the
    default and the best supported TX ring (V3 TX needs Linux 4.11). The ring has ``frame_count``
    slots (default 1024) of ``frame_size`` bytes (default 2048, a multiple of 16, header included:
    ``slot_capacity`` bytes of frame fit). Frames are
    copied into the next free slot by :meth:`send` and handed to the kernel in batches: one kick per
    ``batch`` frames, when the ring is full, or on :meth:`flush`. :meth:`reserve`/:meth:`commit` (or
    :meth:`slot`) fill a slot in place; :meth:`send_repeated` replays a few templates at line rate.

    Frames are checked before they reach the kernel: larger than the slot or than MTU + 14 (+4 when
    802.1Q/802.1ad tagged) raises :class:`FrameTooLargeError`; shorter than the 14-byte Ethernet
    header (SOCK_RAW) raises :class:`TransmitError`. Short frames are *not* padded to 60 bytes: they
    are delivered byte-identical (NICs pad on the wire); pad them yourself if a peer needs it.

    Options:

    - ``qdisc_bypass`` (PACKET_QDISC_BYPASS, off by default): frames go straight to the driver. Faster,
      but tc/qdisc configuration is ignored, more loss is possible when the driver queue is full, and
      the frames are not visible to other packet sockets, so tcpdump on this host will not see them.
    - ``loss`` (PACKET_LOSS): the kernel silently skips malformed frames instead of stopping.
    - ``tx_has_off`` (PACKET_TX_HAS_OFF): the data offset of each frame is taken from its header
      (``tp_mac`` for raw, ``tp_net`` for dgram); set :attr:`data_offset` to place data further in.
    - ``timestamps``: PACKET_TIMESTAMP with SOF_TIMESTAMPING_SOFTWARE|TX_SOFTWARE; completed frames
      carry the skb's software time stamp, read with :meth:`tx_timestamps`. The kernel copies
      ``skb->tstamp`` into the slot when the skb is freed, and that stamp exists only while some
      socket on the host has timestamping enabled, so this socket sets SO_TIMESTAMPNS (a host-wide
      switch, small cost on every received packet while it is open). Over veth the stamp is taken
      when the peer receives the frame; drivers that never stamp the skb leave it None.
    - ``sock_type="dgram"``: frames start at the network header; the kernel builds the Ethernet header
      from ``dst_mac`` and ``protocol`` (or the per-frame values given to :meth:`send_to`).
      ``sock_type="raw"`` (the default): frames carry their own link header.
    - ``protocol`` (default ETH_P_IP) and ``dst_mac`` (default broadcast): the EtherType and
      destination of SOCK_DGRAM frames.
    - ``batch``: frames per kick (default a quarter of the ring); 1 kicks every frame.
    - ``timeout``: seconds to wait for the kernel to free a slot, for :meth:`flush` and :meth:`close`
      (default 5); also the socket's send timeout, so that nothing blocks forever.

    Raises InterfaceNotFoundError, PermissionDeniedError (needs CAP_NET_RAW), RingGeometryError (a
    slot size or count the kernel would refuse, with a value that works), RingAllocationError,
    SocketOptionError (an option the kernel refused, e.g. V3 TX before Linux 4.11), AfPacketError for
    ``"any"``. The ring is bounded: a ``frame_size`` far larger than any frame the link can carry
    (more than 64 KiB, or the power of two above MTU + link header) is refused (RingGeometryError
    naming the size that fits), and rings above half of MemAvailable are refused (RingAllocationError)
    unless ``allow_large_ring=True``.

    The socket is bound with protocol 0, so it receives nothing and our frames do not come back.
    :meth:`close` flushes and waits for every queued frame (up to ``timeout`` seconds) and raises
    :class:`TransmitError` naming how many frames could not be sent; rejected frames are reported as
    they happen (:attr:`rejected`, the last 100, and ``rejected_by_reason``, a Counter of every reason;
    a :class:`TransmitWarning` each) and counted in ``stats().failed``.

    Faults: when the kernel pushes back (ENOBUFS: a full qdisc or driver queue; EAGAIN: a full socket
    send buffer) the frame stays queued and the kick is repeated after a short back-off, for as long as
    frames keep leaving (``timeout`` seconds without progress raise TransmitError); ``stats()`` counts
    the retries. If the interface goes down, is deleted or moves to another network namespace, the next
    kick raises :class:`LinkDownError` naming it and saying how many frames were sent and how many are
    still queued; those stay queued (a flush after the link is back sends them) and are counted as
    ``unsent`` when the transmitter closes. Frames a tail-drop qdisc (pfifo, bfifo, tbf, noqueue) refuses
    are pushed back this way; frames a head-drop or AQM qdisc (fq_codel, pfifo_head_drop, red) discards
    after accepting them are invisible to any sender (its ``tc -s qdisc`` drop counter shows them).
    """

    def __init__(
        self,
        interface: str,
        *,
        version: int = 2,
        frame_size: int = 2048,
        frame_count: int = 1024,
        qdisc_bypass: bool = False,
        sock_type: str = "raw",
        protocol: int = abi.ETH_P_IP,
        dst_mac: str | bytes | None = None,
        loss: bool = False,
        tx_has_off: bool = False,
        timestamps: bool = False,
        batch: int | None = None,
        timeout: float = 5.0,
        allow_large_ring: bool = False,
    ) -> None:
        if interface == "any":
            raise AfPacketError("transmitting needs a named interface, not 'any'")
        # Numbers checked here, before any socket: a 0 or a float would otherwise fail deep in the
        # geometry arithmetic (ZeroDivisionError) or be carried into the kernel request.
        where = "Transmitter()"
        _check.count(where, "version", version, optional=False)
        _check.count(where, "frame_size", frame_size, allow_zero=False, optional=False)
        _check.count(where, "frame_count", frame_count, allow_zero=False, optional=False)
        for name, value in (("qdisc_bypass", qdisc_bypass), ("loss", loss), ("tx_has_off", tx_has_off),
                            ("timestamps", timestamps)):
            _check.flag(where, name, value)
        geometry = RingGeometry.for_transmit(version, frame_size, frame_count)
        psock = PacketSocket(interface, sock_type=sock_type, protocol=0)
        try:
            if psock.iface is not None:
                _check_slot_size(frame_size, version, psock.iface.mtu, interface)
            psock.set_version(version)
            if loss:
                psock.setopt("PACKET_LOSS", abi.PACKET_LOSS, 1)
            if tx_has_off:
                # Must precede the ring: the kernel silently ignores it afterwards.
                psock.setopt("PACKET_TX_HAS_OFF", abi.PACKET_TX_HAS_OFF, 1)
            if qdisc_bypass:
                psock.setopt("PACKET_QDISC_BYPASS", abi.PACKET_QDISC_BYPASS, 1)
            if timestamps:
                # The ring reports skb->tstamp, which the stack fills only while some socket has asked for
                # timestamps (net_enable_timestamp); SO_TIMESTAMPNS on this receive-nothing socket asks.
                psock.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                psock.setopt(
                    "PACKET_TIMESTAMP",
                    abi.PACKET_TIMESTAMP,
                    abi.SOF_TIMESTAMPING_SOFTWARE | abi.SOF_TIMESTAMPING_TX_SOFTWARE,
                )
            psock.set_ring(geometry, allow_large=_check.flag(where, "allow_large_ring", allow_large_ring))
            psock.map_rings()
            # Protocol 0: a TX-only socket receives nothing, so our own frames never come back.
            psock.bind(0)
        except BaseException:
            psock.close()
            raise
        self._setup(psock, 0, owns_socket=True, protocol=protocol, dst_mac=dst_mac, batch=batch, timeout=timeout)
        self.tx_has_off = tx_has_off
        self.timestamps = timestamps
        self.qdisc_bypass = qdisc_bypass
        self.loss = loss

    @classmethod
    def over_socket(
        cls,
        psock: PacketSocket,
        offset: int,
        *,
        protocol: int = abi.ETH_P_IP,
        dst_mac: str | bytes | None = None,
        batch: int | None = None,
        timeout: float = 5.0,
    ) -> Transmitter:
        """A transmitter over the TX ring of an already set-up socket (``psock.tx`` and ``psock.map``);
        :meth:`Capture.transmitter() <afpacket.Capture.transmitter>` is the usual way to get one.

        ``offset`` is where the TX ring starts in the mapping: ``psock.rx.size`` when an RX ring
        precedes it. ``protocol``, ``dst_mac``, ``batch`` and ``timeout`` mean what they mean for the
        constructor. The transmitter does not own the socket: its close() drains the ring but leaves
        the socket and the mapping open. Raises AfPacketError when the socket has no mapped TX ring.
        """
        if psock.tx is None or psock.map is None:
            raise AfPacketError("the socket has no mapped TX ring: set_ring(RingGeometry.for_transmit(...)) first")
        self = cls.__new__(cls)
        self._setup(psock, offset, owns_socket=False, protocol=protocol, dst_mac=dst_mac, batch=batch, timeout=timeout)
        self.tx_has_off = False
        self.timestamps = False
        self.qdisc_bypass = False
        self.loss = False
        return self

    def _setup(
        self,
        psock: PacketSocket,
        offset: int,
        *,
        owns_socket: bool,
        protocol: int,
        dst_mac: str | bytes | None,
        batch: int | None,
        timeout: float,
    ) -> None:
        assert psock.tx is not None and psock.map is not None
        timeout = _check.seconds("Transmitter", "timeout", timeout, allow_zero=False, optional=False)  # type: ignore[assignment]
        _check.count("Transmitter", "batch", batch, allow_zero=False)
        geom = psock.tx
        self._psock = psock
        self._owns_socket = owns_socket
        self.geometry = geom
        self.interface = psock.interface_name
        self.version = geom.version
        self.timeout = timeout
        self.closed = False
        self._forked = False
        _live.add(self)
        self.dgram = psock.sock_type == "dgram"
        self._layout = lay = layout(geom.version)
        st = lay.off_status
        self._st, self._len, self._snap = st, lay.off_len, lay.off_snaplen
        self._sec, self._frac, self._frac_ns = lay.off_sec, lay.off_frac, lay.frac_ns
        self._v3 = geom.version == 3
        #: the ring kernels that fill slots (C or pure Python), and the layout numbers they need
        self._k = current_kernels()
        self._fill = self._k.tx_fill
        self._params = (geom.version, st, lay.off_len, lay.off_snaplen, lay.off_mac, lay.off_net)
        fpb = geom.frames_per_block
        self._offs: list[int] = [
            offset + (i // fpb) * geom.block_size + (i % fpb) * geom.frame_size for i in range(geom.frame_nr)
        ]
        self.n = geom.frame_nr
        #: Where frame data starts in a slot: tp_hdrlen - sizeof(sockaddr_ll), or the user's with TX_HAS_OFF.
        self._doff = lay.sll_offset
        self._min_doff = self._doff
        mtu = psock.iface.mtu if psock.iface else 1500
        link = 0 if self.dgram else abi.ETH_HLEN
        self.mtu = mtu
        self._min_len = 1 if self.dgram else abi.ETH_HLEN
        self._mtu_len = mtu + link
        self._recompute_limits()
        self._map = psock.map
        self._mv = memoryview(psock.map)
        # Evenly strided slots allow one C-level strided read/write of all status words.
        self._strided = geom.block_nr == 1 or geom.block_size % geom.frame_size == 0
        self._st_base = offset + st
        self._status_bytes = self._mv[self._st_base :: geom.frame_size] if self._strided else None
        self._mv32 = self._mv.cast("I") if self._strided and (self._st_base % 4 == 0) else None
        if self._v3:
            for off in self._offs:  # tp_next_offset must be 0 on TX (variable-sized slots are unsupported)
                _U32.pack_into(psock.map, off, 0)
        self._head = 0
        self._kicked_at = 0  # _total at the last kick: frames queued since = _total - _kicked_at
        self._total = 0  # frames queued ever
        self._total_bytes = 0
        self._failed = 0
        self._failed_bytes = 0
        self._unsent = 0  # set by close(): frames still queued that the kernel never took, and their bytes
        self._unsent_bytes = 0
        self._retries = 0
        self._enobufs = 0
        #: a pushed-back kick (ENOBUFS, EAGAIN) waits and kicks again here; False (AsyncTransmitter) returns at
        #: once with the frames still queued, and the event loop waits on its own timers before kicking again
        self._patient = True
        self._eagain = 0
        #: what happened to the link ("veth0 went down"), once a kick found out
        self._fault: str | None = None
        self.batch = max(1, min(batch if batch else max(1, self.n // 4), self.n))
        self.rejected: list[RejectedFrame] = []
        #: frames the kernel rejected over the transmitter's life, by reason (``rejected`` keeps the last 100)
        self.rejected_by_reason: Counter[str] = Counter()
        self._lent: memoryview | None = None
        self.protocol = protocol
        self._addr: tuple[str, int, int, int, bytes] | None = None
        if self.dgram:
            self._addr = (self.interface, protocol, 0, 0, mac_bytes(dst_mac or b"\xff" * 6))
        try:
            tv = struct.pack("=qq", int(timeout), int(timeout % 1 * 1e6))
            psock.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        except OSError:  # pragma: no cover - best effort; waits below are bounded anyway
            pass

    def _recompute_limits(self) -> None:
        cap = self.geometry.frame_size - self._doff
        self.slot_capacity = cap
        self.max_frame = min(cap, self._mtu_len)

    # -- properties ---------------------------------------------------------------------------------
    @property
    def data_offset(self) -> int:
        """Where frame data starts in a slot (only changeable with ``tx_has_off=True``)."""
        return self._doff

    @data_offset.setter
    def data_offset(self, value: int) -> None:
        if not self.tx_has_off:
            raise AfPacketError("the data offset can only be changed with tx_has_off=True (PACKET_TX_HAS_OFF)")
        if not self._min_doff <= value < self.geometry.frame_size - self._min_len:
            raise AfPacketError(
                f"data offset {value} must lie between the header end ({self._min_doff}) and the slot end "
                f"({self.geometry.frame_size}) minus a frame"
            )
        self.flush()
        self._doff = value
        self._recompute_limits()

    @property
    def fault(self) -> str | None:
        """What happened to the link, once a kick found out (``"veth0 went down"``, ``"veth0 was deleted
        or moved to another network namespace"``); None while the link is fine. The LinkDownError raised
        then says the same with the counts."""
        return self._fault

    def fileno(self) -> int:
        """The socket's fd, for select/poll (writable when the kernel's head slot is free)."""
        return self._psock.fileno()

    # -- the hot path -------------------------------------------------------------------------------
    # One pack_into per frame writes tp_len, tp_snaplen, tp_status, tp_mac and tp_net together. Order
    # inside user space does not matter for TX: the kernel reads SEND_REQUEST slots only inside our
    # own kick (tpacket_snd runs in the send() call), never concurrently.
    def send(self, frame: Frame) -> None:
        """Copy one frame into the next free slot and request its transmission.

        ``frame`` is the whole link-layer frame (from the Ethernet header on; from the network header
        with ``sock_type="dgram"``): bytes, bytearray, memoryview or any other buffer, or anything with
        ``__bytes__``, such as a scapy packet (``tx.send(Ether(dst=...)/IP(dst=...)/UDP()/b"hi")``)
        or a captured packet. The frame goes out at the next kick: after ``batch`` frames, when the
        ring is full, or on :meth:`flush`.

        Raises TypeError for anything else (naming its type), FrameTooLargeError for a frame larger
        than the slot or the MTU plus link header, TransmitError for one shorter than the Ethernet
        header or a ring that does not drain, CaptureClosedError after close().
        """
        if self.closed:
            raise CaptureClosedError(self._closed_reason())
        if type(frame) is not bytes:
            frame = as_frame(frame)
        done, nbytes = self._fill(
            self._map, self._offs, self._head, (frame,), 0, 1, self._doff, self._min_len, self.max_frame, self._params
        )
        if not done:  # a length to check, or a slot to reclaim first
            self._queue((frame,))
            return
        i = self._head + 1
        self._head = 0 if i == self.n else i
        t = self._total + 1
        self._total = t
        self._total_bytes += nbytes
        if t - self._kicked_at >= self.batch:
            self.flush(wait=False)

    def _finish(self, i: int, off: int, n: int) -> None:
        """Hand slot ``i`` (at ``off``, holding ``n`` bytes already written) to the kernel and advance."""
        lay = self._layout
        words = lay.tx_header(abi.TP_STATUS_SEND_REQUEST, n, self._doff)
        lay.tx_words.pack_into(self._map, off + lay.tx_words_at, *words)
        i += 1
        self._head = 0 if i == self.n else i
        self._total += 1
        self._total_bytes += n
        if self._total - self._kicked_at >= self.batch:
            self.flush(wait=False)

    def send_many(self, frames: Iterable[Frame]) -> int:
        """Send every frame of ``frames`` (any iterable; each frame as :meth:`send` takes it, with the
        same checks and errors); return how many were queued. A list or tuple of bytes goes to the
        ring kernels as it is, other iterables 4096 frames at a time.

        Example::

            tx.send_many(rec.data for rec in afpacket.open_reader("replay.pcap"))
        """
        if self.closed:
            raise CaptureClosedError(self._closed_reason())
        first = self._total
        if isinstance(frames, list | tuple):
            self._queue(_plain(frames))
        else:
            it = iter(frames)
            while chunk := list(islice(it, 4096)):
                self._queue(_plain(chunk))
        return self._total - first

    def _queue(self, frames: Sequence[bytes | bytearray | memoryview]) -> None:
        """Queue every frame of ``frames`` through the ``tx_fill`` kernel, kicking every ``batch``
        frames; the rare cases (a length to check, a slot the kernel still holds) are handled here."""
        fill, m, offs, params = self._fill, self._map, self._offs, self._params
        doff, minl, maxl = self._doff, self._min_len, self.max_frame
        i, end = 0, len(frames)
        while i < end:
            room = self.batch - (self._total - self._kicked_at)
            if room <= 0:
                self.flush(wait=False)
                continue
            limit = maxl
            done, nbytes = fill(m, offs, self._head, frames, i, room, doff, minl, limit, params)
            if not done:
                f = frames[i]
                n = len(f)
                if n > maxl or n < minl:
                    self._check_length(f, n)  # raises, except for a tagged frame 4 bytes over the MTU
                    limit = n
                if not user_may_write(m[offs[self._head] + self._st]):
                    self._reclaim(self._head)
                done, nbytes = fill(m, offs, self._head, frames, i, 1, doff, minl, limit, params)
                if not done:  # pragma: no cover - the slot was reclaimed and the length checked
                    raise TransmitError(f"TX slot {self._head} could not be filled")
            h = self._head + done
            self._head = h - self.n if h >= self.n else h
            self._total += done
            self._total_bytes += nbytes
            i += done
        if self._total - self._kicked_at >= self.batch:
            self.flush(wait=False)

    def send_repeated(self, frames: Sequence[Frame], count: int) -> int:
        """Send ``count`` frames cycling through the templates ``frames``, writing each template into the
        ring once; returns ``count``.

        When the ring's slot count is a multiple of ``len(frames)``, every slot always holds the same
        template, so each lap only flips status words (one strided write per half ring): the cost per
        frame is the kernel's. Otherwise this falls back to :meth:`send_many`. Templates are taken as
        :meth:`send` takes a frame (TypeError otherwise); ``count`` must be an integer >= 0
        (ArgumentError otherwise). Length errors as :meth:`send`.

        Example::

            tx.send_repeated([frame_a, frame_b], 1_000_000)
        """
        if self.closed:
            raise CaptureClosedError(self._closed_reason())
        count = _check.count("send_repeated()", "count", count, optional=False)  # type: ignore[assignment]
        templates = [as_frame(f) for f in frames]
        k = len(templates)
        if count <= 0 or k == 0:
            return 0
        for f in templates:
            if len(f) > self.max_frame or len(f) < self._min_len:
                self._check_length(f, len(f))
        mv32 = self._mv32
        if mv32 is None or self.n % k or self.tx_has_off or self._status_bytes is None:
            return self.send_many(templates[i % k] for i in range(count))
        self.flush(wait=True)
        if any(self._status_bytes):
            raise TransmitError("the TX ring did not drain before sending templates; the link may be stalled")
        h0 = self._head
        m = self._map
        for j in range(self.n):
            f = templates[(j - h0) % k]
            off = self._offs[j]
            d = off + self._doff
            m[d : d + len(f)] = f
            _U32.pack_into(m, off + self._len, len(f))
            _U32.pack_into(m, off + self._snap, len(f))
            if self.version == 3:
                _U32.pack_into(m, off, 0)
        # Bytes in slots [0, j) for every j: a chunk's bytes in one subtraction, so that the totals are
        # exact after every chunk, also when a kick raises halfway through (a link that went away).
        upto = list(accumulate((len(templates[(j - h0) % k]) for j in range(self.n)), initial=0))
        step = self.geometry.frame_size // 4
        base = self._st_base // 4
        chunk = max(1, self.n // 2)
        req = memoryview(array("I", [abi.TP_STATUS_SEND_REQUEST]) * chunk)
        status = self._status_bytes
        remaining = count
        h = h0
        kick = self._kick
        while remaining:
            c = min(chunk, remaining, self.n - h)
            if any(status[h : h + c]):
                self._head = h
                self._kick(wait=True)
                if any(status[h : h + c]):
                    self._collect_rejected()
                    raise TransmitError(
                        f"TX slots {h}..{h + c - 1} still belong to the kernel after {self.timeout} s"
                    )
            s = base + h * step
            mv32[s : s + c * step : step] = req[:c]
            self._total += c
            self._total_bytes += upto[h + c] - upto[h]
            h += c
            if h == self.n:
                h = 0
            remaining -= c
            self._head = h
            kick(wait=False)
        req.release()
        return count

    # -- zero copy ----------------------------------------------------------------------------------
    def reserve(self) -> memoryview:
        """A writable view of the next free slot's data area; follow with :meth:`commit` or :meth:`abort`."""
        if self.closed:
            raise CaptureClosedError(self._closed_reason())
        if self._lent is not None:
            raise TransmitError("a slot is already reserved; commit() or abort() it first")
        i = self._head
        off = self._offs[i]
        if self._map[off + self._st] & _NOT_FREE:
            self._reclaim(i)
            off = self._offs[self._head]
        d = off + self._doff
        self._lent = self._mv[d : d + self.slot_capacity]
        return self._lent

    def commit(self, length: int, *, check: bool = True) -> None:
        """Send the first ``length`` bytes of the reserved slot; the view is released.

        ``check=False`` skips the MTU and link-header checks (only the slot size is enforced), so the
        kernel's own validation can be exercised.
        """
        view = self._lent
        if view is None:
            raise TransmitError("commit() without reserve()")
        if not 0 <= length <= self.slot_capacity:
            raise FrameTooLargeError(
                f"committed length {length} exceeds the slot's data area of {self.slot_capacity} bytes"
            )
        if check and (length > self.max_frame or length < self._min_len):
            self._check_length(view[:length], length)
        view.release()
        self._lent = None
        self._finish(self._head, self._offs[self._head], length)

    def abort(self) -> None:
        """Give a reserved slot back unsent (no-op when nothing is reserved)."""
        if self._lent is not None:
            self._lent.release()
            self._lent = None

    def slot(self) -> TxSlot:
        """A context-managed :meth:`reserve`: ``with tx.slot() as s: ...; s.commit(n)``."""
        return TxSlot(self, self.reserve())

    # -- DGRAM ----------------------------------------------------------------------------------------
    def send_to(self, frame: Frame, dst_mac: str | bytes, protocol: int | None = None) -> None:
        """SOCK_DGRAM: send ``frame`` (from the network header on; any type :meth:`send` takes) to
        ``dst_mac`` (``"aa:bb:cc:dd:ee:ff"`` or 6 bytes) as EtherType ``protocol`` (default: the
        transmitter's ``protocol``).

        The kernel takes the destination of ring frames from the kick's address, one per kick, so
        queued frames for another destination are kicked first. Raises AfPacketError on a SOCK_RAW
        transmitter or for a malformed MAC address, else as :meth:`send`.
        """
        if not self.dgram:
            raise AfPacketError("send_to() needs sock_type='dgram'; with 'raw' the frame carries its own header")
        addr = (self.interface, self.protocol if protocol is None else protocol, 0, 0, mac_bytes(dst_mac))
        if addr != self._addr:
            if self._total != self._kicked_at or self._pending_slots():
                self.flush(wait=False)
            self._addr = addr
        self.send(frame)

    # -- kicking and waiting ----------------------------------------------------------------------
    def flush(self, wait: bool = True) -> None:
        """Kick the kernel to send every queued frame; with ``wait``, also wait for their completion.

        Retries on ENOBUFS/EAGAIN (driver or qdisc busy) until ``timeout``; frames the kernel rejects
        are reported and dropped (see :attr:`rejected`) without stopping the others.
        """
        if self.closed:
            raise CaptureClosedError(self._closed_reason())
        self._kick(wait)
        if wait:
            self._wait_idle()

    def _kick(self, wait: bool) -> None:
        sock = self._psock.sock
        flags = 0 if wait else socket.MSG_DONTWAIT
        try:
            if self._addr is None:
                sock.send(b"", flags)
            else:
                sock.sendto(b"", flags, self._addr)
        except OSError as e:
            self._kick_refused(e, flags, wait)
        self._kicked_at = self._total

    def _kick_refused(self, err: OSError, flags: int, wait: bool) -> None:
        """The rare path of a kick the kernel answered with ``err``: returns once a kick goes through
        (or, for a blocking kick, once the queue stops draining: the caller reports what is left), else
        raises.

        Pushed back (ENOBUFS, EAGAIN, a blocking kick's ETIMEDOUT): the frame is still queued in its
        slot, so wait (POLLOUT for a full send buffer, which reports it; otherwise a back-off from 20 µs
        doubling to 1 ms, since POLLOUT only looks at the kernel's head slot) and kick again, counting
        every answer. The timeout runs only while no queued frame leaves, so a slow link is waited for
        as long as it keeps taking frames. Rejected (WRONG_FORMAT): the frame is dropped and counted,
        the rest kicked again. The interface down or gone: LinkDownError.
        """
        sock = self._psock.sock
        left = -1
        deadline = delay = 0.0
        while True:
            code = err.errno
            if code in _RETRY_LATER or code == errno.ETIMEDOUT:
                if code == errno.ENOBUFS:
                    self._enobufs += 1
                elif code == errno.EAGAIN:
                    self._eagain += 1
                queued = self._pending_slots()
                if not queued:
                    return  # every frame was taken; a blocking kick timed out waiting for completions
                if not self._patient and not wait:
                    self._retries += 1  # still queued: the event loop kicks again after its own wait
                    return
                now = time.monotonic()
                if queued != left:  # first answer, or frames left since the last one: the clock restarts
                    left, deadline, delay = queued, now + self.timeout, _BACKOFF_FIRST
                elif now > deadline:
                    if wait:
                        return  # _wait_idle and close() report what is left
                    raise TransmitError(
                        f"the kernel kept answering {errno.errorcode.get(code or 0)} for {self.timeout} s with no "
                        f"frame leaving; the queue of {self.interface} is not draining (link down or congested?)"
                    ) from None
                self._retries += 1
                if code == errno.EAGAIN:
                    _poll_out(sock, 1)
                else:
                    time.sleep(delay)
                    delay = min(delay * 2, _BACKOFF_LAST)
            elif code in _REJECTED and self._collect_rejected(err):
                pass  # the frames behind the rejected one still wait for a kick
            elif code in _LINK_GONE or code == errno.ENETDOWN:
                raise self._link_fault(code) from None
            else:
                raise os_error("sending from the TX ring", err, self.interface) from None
            try:
                if self._addr is None:
                    sock.send(b"", flags)
                else:
                    sock.sendto(b"", flags, self._addr)
                return
            except OSError as e:
                # Without its traceback: that refers to this frame, which holds ``err`` (and ``self``), and the
                # cycle would keep the transmitter alive after the last reference to it goes.
                err = e.with_traceback(None)

    def _link_fault(self, code: int) -> LinkDownError:
        """The error for a kick refused because the interface went down (ENETDOWN) or left this network
        namespace (ENXIO, ENODEV: deleted, or moved to another namespace, which look the same from here),
        saying what was sent and what is still queued. The queued frames stay in the ring."""
        gone = code != errno.ENETDOWN or not self._interface_stays()
        what = "was deleted or moved to another network namespace" if gone else "went down"
        self._fault = f"{self.interface} {what}"
        st = self.stats()
        return LinkDownError(
            f"{self.interface} {what} while sending ({errno.errorcode.get(code, code)}): {st.sent} frame(s) "
            f"were sent, {st.pending} still queued in the TX ring were not"
        )

    def _interface_stays(self) -> bool:
        """Whether the interface is still in this network namespace 0.1 s after an ENETDOWN: deleting an
        interface, or moving it to another namespace, first takes it down, so a kick in between sees
        ENETDOWN too; what follows tells the two apart (rare path)."""
        if not self._psock.ifindex:
            return True  # a socket bound to every interface ("any") has no one interface to lose
        for _ in range(5):
            try:
                socket.if_indextoname(self._psock.ifindex)
            except OSError:
                return False
            time.sleep(0.02)
        return True

    def _wait_idle(self) -> None:
        """Wait until no slot is SEND_REQUEST/SENDING, or ``timeout`` passes."""
        deadline = time.monotonic() + self.timeout
        while True:
            status = self._low_status()
            if not any(kernel_owns(b) for b in status):
                return
            if any(kernel_rejected(b) for b in status):
                self._collect_rejected()
                self._kick(False)
                continue
            if time.monotonic() > deadline:
                return
            if any(kernel_may_send(b) for b in status):
                self._kick(False)
            _poll_out(self._psock.sock, 1)

    def _reclaim(self, i: int) -> None:
        """Slot ``i`` (our head) is not free: kick, wait for it, and recover from a rejected frame."""
        deadline = time.monotonic() + self.timeout
        m = self._map
        while True:
            status = m[self._offs[self._head] + self._st]
            if user_may_write(status):
                return
            if kernel_rejected(status) or self._total != self._kicked_at:
                self._kick(False)
            else:
                self._kick(True)
            status = m[self._offs[self._head] + self._st]
            if user_may_write(status):
                return
            if time.monotonic() > deadline:
                raise TransmitError(
                    f"TX slot {self._head} still belongs to the kernel after {self.timeout} s; "
                    "the interface is not sending (link down, or the queue is stuck)"
                )
            _poll_out(self._psock.sock, 1)

    def _low_status(self) -> bytes:
        """The low byte of every slot's tp_status (it holds every ownership bit), in ring order."""
        if self._status_bytes is not None:
            return bytes(self._status_bytes)  # one strided copy
        return bytes(self._map[off + self._st] for off in self._offs)

    def _pending_slots(self) -> int:
        return sum(1 for b in self._low_status() if kernel_may_send(b))

    def _queued(self) -> tuple[int, int]:
        """Frames waiting for a kick (SEND_REQUEST), and their bytes (tp_len)."""
        m, ln = self._map, self._len
        n = nbytes = 0
        for off, b in zip(self._offs, self._low_status(), strict=True):
            if kernel_may_send(b):
                n += 1
                nbytes += _U32.unpack_from(m, off + ln)[0]
        return n, nbytes

    def _busy_slots(self) -> int:
        return sum(1 for b in self._low_status() if kernel_owns(b))

    def _collect_rejected(self, err: OSError | None = None) -> int:
        """Drop the frame the kernel left TP_STATUS_WRONG_FORMAT; return how many were dropped.

        The kernel's head stays on the rejected slot and it sends nothing past a slot that is not
        SEND_REQUEST, so the frames queued behind it move down one slot and our head follows.
        """
        m = self._map
        reason = errno.errorcode.get(err.errno or 0, "") if err else "TP_STATUS_WRONG_FORMAT"
        if err is not None:
            reason = f"{reason}: {err.strerror}"
        dropped = 0
        for bad in range(self.n):
            if not kernel_rejected(m[self._offs[bad] + self._st]):
                continue
            off = self._offs[bad]
            (length,) = _U32.unpack_from(m, off + self._len)
            rec = RejectedFrame(bad, length, reason)
            self.rejected.append(rec)
            del self.rejected[:-100]
            self.rejected_by_reason[reason] += 1
            self._failed += 1
            self._failed_bytes += length
            dropped += 1
            warnings.warn(f"afpacket: {self.interface}: {rec}", TransmitWarning, stacklevel=4)
            self._shift_down(bad)
        return dropped

    def _shift_down(self, bad: int) -> None:
        m = self._map
        fs = self.geometry.frame_size
        cur = bad
        nxt = (cur + 1) % self.n
        while nxt != self._head and kernel_may_send(m[self._offs[nxt] + self._st]):
            src, dst = self._offs[nxt], self._offs[cur]
            m[dst : dst + fs] = m[src : src + fs]
            _U32.pack_into(m, dst + self._st, abi.TP_STATUS_SEND_REQUEST)
            cur, nxt = nxt, (nxt + 1) % self.n
        _U32.pack_into(m, self._offs[cur] + self._st, abi.TP_STATUS_AVAILABLE)
        self._head = cur

    # -- results ------------------------------------------------------------------------------------
    def stats(self) -> TransmitStats:
        """Frames and bytes taken by the kernel so far, frames it rejected, frames still queued (after
        close: never sent), and how often the kernel pushed back. ``sent`` counts a frame once the kernel
        has taken it from the ring (sent, or in a queue on its way)."""
        if self.closed:
            pending, unsent, left_bytes = 0, self._unsent, self._unsent_bytes
        else:
            (pending, left_bytes), unsent = self._queued(), 0
        sent = self._total - self._failed - pending - unsent
        return TransmitStats(
            sent=sent, bytes=self._total_bytes - self._failed_bytes - left_bytes, failed=self._failed,
            pending=pending, unsent=unsent, retries=self._retries, enobufs=self._enobufs,
            eagain=self._eagain,
        )

    def tx_timestamps(self, count: int = 1) -> list[int | None]:
        """Software TX times (ns since the epoch) of the last ``count`` frames sent, oldest first.

        Needs ``timestamps=True``; None for a frame that has not completed or carries no stamp.
        """
        if self.closed:
            raise CaptureClosedError(self._closed_reason())
        out: list[int | None] = []
        m = self._map
        for back in range(min(count, self.n), 0, -1):
            off = self._offs[(self._head - back) % self.n]
            (status,) = _U32.unpack_from(m, off + self._st)
            if kernel_owns(status) or not status & _TS_BITS:
                out.append(None)
                continue
            sec, frac = _SEC_FRAC.unpack_from(m, off + self._sec)
            out.append(sec * 1_000_000_000 + frac * self._frac_ns)
        return out

    # -- checks -------------------------------------------------------------------------------------
    def _check_length(self, frame: bytes | bytearray | memoryview, n: int) -> None:
        if n < self._min_len:
            raise TransmitError(
                f"a {n}-byte frame is shorter than the {self._min_len}-byte Ethernet header; "
                "the kernel would reject it (pad it to 60 bytes)"
            )
        if n <= self.max_frame:
            return
        tagged = (
            not self.dgram
            and n >= abi.ETH_HLEN + abi.VLAN_HLEN
            and (frame[12] << 8 | frame[13]) in (abi.ETH_P_8021Q, abi.ETH_P_8021AD)
        )
        if tagged and n <= min(self.slot_capacity, self._mtu_len + abi.VLAN_HLEN):
            return
        if n > self.slot_capacity:
            need = abi.tpacket_align(n + self._doff)
            raise FrameTooLargeError(
                f"a {n}-byte frame does not fit the {self.geometry.frame_size}-byte TX slot "
                f"({self.slot_capacity} bytes after the {self._doff}-byte header); use frame_size={need} or more"
            )
        link = "" if self.dgram else f" + {abi.ETH_HLEN}-byte Ethernet header{' + 4-byte VLAN tag' if tagged else ''}"
        limit = self._mtu_len + (abi.VLAN_HLEN if tagged else 0)
        raise FrameTooLargeError(
            f"a {n}-byte frame exceeds what {self.interface} can send: MTU {self.mtu}{link} = {limit} bytes; "
            f"raise the MTU (ip link set {self.interface} mtu {n - (limit - self.mtu)}) or send smaller frames"
        )

    # -- teardown -----------------------------------------------------------------------------------
    def _closed_reason(self) -> str:
        if self._forked:
            return (
                "this transmitter belongs to the parent process (fork() does not share its TX ring); "
                "open a new Transmitter in the child"
            )
        return "the transmitter is closed; open a new Transmitter"

    def close(self) -> None:
        """Send what is queued, wait for it (up to ``timeout``), then unmap and close. Idempotent.

        Raises TransmitError if frames were still queued (they count as ``unsent`` in :meth:`stats`,
        not as sent) or still in the kernel's hands when the timeout expired, or the link went away.
        """
        if self.closed:
            return
        problem: str | None = None
        try:
            self.abort()
            self._kick(True)
            self._wait_idle()
        except AfPacketError as e:
            problem = str(e)  # the text only: the exception's traceback refers to this frame (a cycle)
        try:
            self._collect_rejected()  # memory only: a frame rejected last is failed, not unsent
            self._unsent, self._unsent_bytes = self._queued()
            in_flight = self._busy_slots() - self._unsent
        finally:
            self._release()
        if self._unsent or in_flight:
            said = []
            if self._unsent:
                said.append(f"{self._unsent} frame(s) queued on {self.interface} were not sent")
            if in_flight:
                said.append(f"{in_flight} frame(s) taken by the kernel had not left {self.interface}")
            if self._fault is not None:
                why = self._fault
            elif problem is not None:
                why = problem
            else:
                why = f"still there after {self.timeout} s; the link may be down or congested"
            raise TransmitError(f"{' and '.join(said)}: {why}")

    def _release(self) -> None:
        self.closed = True
        for name in ("_status_bytes", "_mv32", "_mv"):
            v = getattr(self, name, None)
            if v is not None:
                v.release()
            setattr(self, name, None)
        if self._owns_socket:
            self._psock.close()

    def __enter__(self) -> Transmitter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.close()
            except AfPacketError:
                pass  # the exception in flight says more

    def __del__(self) -> None:
        if getattr(self, "closed", True):
            return
        # Dropped without close() (garbage collection, interpreter exit): send what is queued, as close()
        # would, and say so. Discarding queued frames silently would lose data without a trace.
        try:
            pending = self._busy_slots()
        except Exception:
            pending = 0
        try:
            self.close()
            outcome = "sent"
        except Exception as e:  # the link went away, or the frames did not leave within the timeout
            outcome = f"possibly not sent ({e})"
            try:
                self._release()
            except Exception:
                pass
        if pending:
            try:
                warnings.warn(
                    f"Transmitter on {self.interface} was dropped without close(): its {pending} queued frame(s) "
                    f"were {outcome} as it was released; use `with Transmitter(...)` or call close()",
                    TransmitWarning,
                    stacklevel=2,
                )
            except Exception:  # interpreter shutdown: the warnings machinery may be gone
                pass


def _poll_out(sock: socket.socket, ms: int) -> None:
    p = select.poll()
    p.register(sock, select.POLLOUT | select.POLLERR)
    try:
        p.poll(ms)
    except InterruptedError:  # pragma: no cover
        pass


# Every open transmitter, so that a forked child can mark the parent's as closed: the TX ring is not
# mapped in the child (MADV_DONTFORK), and a kick from the child would send the parent's frames.
_live: weakref.WeakSet[Transmitter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tx in list(_live):
        tx._forked = True
        tx.closed = True  # close() and __del__ in the child release nothing of the parent's


os.register_at_fork(after_in_child=_after_fork_in_child)

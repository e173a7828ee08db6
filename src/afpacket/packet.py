"""Received packets: a zero-copy view into the ring with a scoped lifetime, and its decoded metadata.

A :class:`Packet` is two references: the *batch* it came in (a V3 block, or a run of V1/V2 frames
that were ready together) and the offset of its frame header in the ring. Metadata is decoded from
the header only when asked, so a packet nobody inspects costs one small object. When the capture
hands the batch back to the kernel, the batch is marked released and every ``memoryview`` given out
for it is released too: reading a packet after that raises :class:`PacketExpiredError` instead of
reading memory the kernel is rewriting. ``bytes(pkt)`` or :meth:`Packet.copy` keep data for later.
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from . import abi
from .errors import PacketExpiredError

#: (status, wire_len, caplen, mac offset, timestamp ns, vlan tci, vlan tpid, rxhash)
Header = tuple[int, int, int, int, int, int, int, int]

_EXPIRED = (
    "packet expired: its frame or block went back to the kernel when the capture read past it; "
    "use it before taking the next one, or keep bytes(pkt) / pkt.copy()"
)


def _decode_v1(buf: memoryview, off: int) -> Header:
    status, length, snap, mac, _net, sec, usec = abi.TPACKET_HDR.unpack_from(buf, off)
    return status, length, snap, mac, sec * 1_000_000_000 + usec * 1000, 0, 0, 0


def _decode_v2(buf: memoryview, off: int) -> Header:
    status, length, snap, mac, _net, sec, nsec, tci, tpid = abi.TPACKET2_HDR.unpack_from(buf, off)
    return status, length, snap, mac, sec * 1_000_000_000 + nsec, tci, tpid, 0


def _decode_v3(buf: memoryview, off: int) -> Header:
    _nxt, sec, nsec, snap, length, status, mac, _net, rxhash, tci, tpid = abi.TPACKET3_HDR.unpack_from(buf, off)
    return status, length, snap, mac, sec * 1_000_000_000 + nsec, tci & 0xFFFF, tpid, rxhash


DECODERS: dict[int, Callable[[memoryview, int], Header]] = {1: _decode_v1, 2: _decode_v2, 3: _decode_v3}


class RingMemory:
    """What a packet needs to find itself in the ring: the mapping, typed views, the version's offsets."""

    __slots__ = (
        "decode", "map", "mv", "off_len", "off_mac", "off_snap", "raw", "reinsert", "sll_off", "snaplen",
        "u16", "u32", "version",
    )

    def __init__(
        self, ring_map: mmap.mmap, size: int, version: int, snaplen: int, *, raw: bool, reinsert: bool
    ) -> None:
        self.map = ring_map
        self.mv = memoryview(ring_map)[:size]
        self.u32 = self.mv.cast("I")
        self.u16 = self.mv.cast("H")
        self.version = version
        self.decode = DECODERS[version]
        self.snaplen = snaplen
        self.off_len = abi.OFF_LEN[version]
        self.off_snap = abi.OFF_SNAPLEN[version]
        self.off_mac = abi.OFF_MAC[version]
        self.sll_off = abi.SLL_OFFSET[version]
        self.raw = raw
        self.reinsert = reinsert

    def release(self) -> None:
        self.u16.release()
        self.u32.release()
        self.mv.release()


class Batch:
    """The lease on a run of frames (V1/V2) or one block (V3). ``views`` is None once handed back."""

    __slots__ = ("block", "copies", "count", "first", "hdrs", "ring", "views")

    def __init__(self, ring: RingMemory) -> None:
        self.ring = ring
        self.views: list[memoryview] | None = []
        #: PACKET_COPY_THRESH: full copies of truncated frames, by frame header offset
        self.copies: dict[int, bytes] | None = None
        #: V1/V2: the frame header offsets in the batch
        self.hdrs: list[int] = []
        #: V3: the block's offset, its first packet header, and (all versions) how many packets
        self.block = 0
        self.first = 0
        self.count = 0

    def expire(self) -> None:
        views, self.views = self.views, None
        if views:
            for v in views:
                try:
                    v.release()
                except BufferError:
                    # Something holds a buffer exported from this view (struct.unpack_from is done
                    # by now; a numpy array from np.frombuffer is not): it cannot be revoked from
                    # Python. Documented: copy with bytes(pkt) to keep data beyond the batch.
                    pass


class Packet:
    """One received frame, valid while its batch is held by the capture.

    ``data`` is a read-only-in-spirit ``memoryview`` of the frame in the ring (zero copy); ``bytes(pkt)``
    copies it. Metadata attributes decode the frame header on access.
    """

    __slots__ = ("_batch", "_hdr")
    _batch: Batch
    _hdr: int

    def _ring(self) -> RingMemory:
        if self._batch.views is None:
            raise PacketExpiredError(_EXPIRED)
        return self._batch.ring

    def _bounds(self, r: RingMemory) -> tuple[int, int]:
        h = self._hdr
        start = h + r.u16[(h + r.off_mac) >> 1]
        cap = r.u32[(h + r.off_snap) >> 2]
        if cap > r.snaplen:
            cap = r.snaplen
        return start, start + cap

    @property
    def data(self) -> memoryview:
        """The captured bytes, a zero-copy view into the ring (raises once the batch is released)."""
        b = self._batch
        views = b.views
        if views is None:
            raise PacketExpiredError(_EXPIRED)
        if b.copies is not None and self._hdr in b.copies:
            v = memoryview(b.copies[self._hdr])
        else:
            r = b.ring
            h = self._hdr
            start = h + r.u16[(h + r.off_mac) >> 1]
            cap = r.u32[(h + r.off_snap) >> 2]
            v = r.mv[start : start + (cap if cap < r.snaplen else r.snaplen)]
        views.append(v)
        return v

    def __bytes__(self) -> bytes:
        b = self._batch
        if b.views is None:
            raise PacketExpiredError(_EXPIRED)
        if b.copies is not None and self._hdr in b.copies:
            return b.copies[self._hdr]
        start, end = self._bounds(b.ring)
        return b.ring.map[start:end]

    def __len__(self) -> int:
        return self.caplen

    # -- metadata -------------------------------------------------------------------------------
    def _header(self) -> Header:
        r = self._ring()
        return r.decode(r.mv, self._hdr)

    @property
    def timestamp_ns(self) -> int:
        """Receive time in ns since the epoch (V1 has µs resolution, scaled)."""
        return self._header()[4]

    @property
    def timestamp(self) -> float:
        """Receive time in seconds since the epoch, as a float (loses ns precision)."""
        return self._header()[4] / 1e9

    @property
    def caplen(self) -> int:
        """Bytes captured: the wire length, less what the ring or snaplen cut off."""
        b = self._batch
        if b.copies is not None and self._hdr in b.copies:
            return len(b.copies[self._hdr])
        start, end = self._bounds(self._ring())
        return end - start

    @property
    def wire_len(self) -> int:
        """Length of the packet on the wire (tp_len)."""
        r = self._ring()
        return r.u32[(self._hdr + r.off_len) >> 2]

    @property
    def status(self) -> int:
        """The raw tp_status bits of the frame (see :func:`status_names`)."""
        return self._header()[0]

    @property
    def status_flags(self) -> list[str]:
        """tp_status decoded to names: COPY, LOSING, CSUMNOTREADY, CSUM_VALID, VLAN_VALID, ..."""
        return status_names(self._header()[0], self._ring().version)

    @property
    def truncated(self) -> bool:
        return self.caplen < self.wire_len

    @property
    def vlan_present(self) -> bool:
        """An outer VLAN tag was stripped into metadata (VLAN_VALID, or a non-zero TCI, as libpcap)."""
        h = self._header()
        return bool(h[0] & abi.TP_STATUS_VLAN_VALID or h[5])

    @property
    def tag_in_data(self) -> bool:
        """The capture already put the stripped tag back into ``data`` (``reinsert_vlan=True``)."""
        r = self._ring()
        return r.reinsert and r.raw and r.version != 1 and self.vlan_present

    @property
    def vlan_tci(self) -> int:
        """The stripped tag's TCI (priority, DEI, VLAN id); 0 on V1, which has no VLAN fields."""
        return self._header()[5]

    @property
    def vlan_id(self) -> int:
        return self._header()[5] & 0x0FFF

    @property
    def vlan_tpid(self) -> int:
        """The stripped tag's TPID: tp_vlan_tpid when the kernel says it is valid, else 0x8100 if tagged."""
        h = self._header()
        if h[0] & abi.TP_STATUS_VLAN_TPID_VALID and h[6]:
            return h[6]
        return abi.ETH_P_8021Q if (h[0] & abi.TP_STATUS_VLAN_VALID or h[5]) else 0

    @property
    def rxhash(self) -> int:
        """V3 with ``rxhash=True``: the kernel's flow hash of the packet; otherwise 0."""
        return self._header()[7]

    def _sll(self) -> tuple[int, int, int, int, int, int, bytes]:
        r = self._ring()
        return abi.SOCKADDR_LL.unpack_from(r.mv, self._hdr + r.sll_off)

    @property
    def ifindex(self) -> int:
        return self._sll()[2]

    @property
    def protocol(self) -> int:
        """The EtherType the kernel saw (after the stripped tag, if any)."""
        return socket.ntohs(self._sll()[1])

    @property
    def hatype(self) -> int:
        return self._sll()[3]

    @property
    def pkttype(self) -> int:
        """PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST or PACKET_OUTGOING."""
        return self._sll()[4]

    @property
    def pkttype_name(self) -> str:
        return abi.PKTTYPE_NAMES.get(self.pkttype, str(self.pkttype))

    @property
    def src_addr(self) -> bytes:
        """Source hardware address (sll_addr, sll_halen bytes)."""
        sll = self._sll()
        return sll[6][: sll[5]]

    @property
    def outgoing(self) -> bool:
        return self._sll()[4] == abi.PACKET_OUTGOING

    # -- copies ---------------------------------------------------------------------------------
    def tagged(self) -> bytes:
        """The frame as it was on the wire: the stripped VLAN tag put back after the MAC addresses.

        Same as ``bytes(pkt)`` when there was no tag, on SOCK_DGRAM captures (no link header), and
        when the capture already reinserts tags in the ring (``reinsert_vlan=True``).
        """
        r = self._ring()
        data = bytes(self)
        if r.reinsert or not r.raw or r.version == 1 or not self.vlan_present:
            return data
        return insert_tag(data, self.vlan_tpid, self.vlan_tci)

    def copy(self) -> CopiedPacket:
        """Everything about the packet, copied out of the ring: valid forever."""
        st, wire, _snap, _mac, ts, tci, _tpid, rxh = self._header()
        sll = self._sll()
        data = bytes(self)
        r = self._batch.ring
        present = bool(st & abi.TP_STATUS_VLAN_VALID or tci)
        return CopiedPacket(
            data=data,
            timestamp_ns=ts,
            caplen=len(data),
            wire_len=wire,
            status=st,
            vlan_tci=tci,
            vlan_tpid=self.vlan_tpid,
            vlan_present=present,
            rxhash=rxh,
            ifindex=sll[2],
            protocol=self.protocol,
            hatype=sll[3],
            pkttype=sll[4],
            src_addr=sll[6][: sll[5]],
            tag_in_data=present and r.reinsert and r.raw and r.version != 1,
        )

    def __repr__(self) -> str:
        if self._batch.views is None:
            return "<Packet (expired)>"
        return (
            f"<Packet {self.caplen}/{self.wire_len} bytes ts={self.timestamp_ns} {self.pkttype_name} "
            f"if={self.ifindex}>"
        )


def packet_class(ring: RingMemory, *, copies: bool = False) -> type[Packet]:
    """A Packet subclass for one ring, its hot accessors bound to that ring's memory and layout.

    ``data`` and ``bytes()`` are what every consumer calls for every packet; reading the ring's views
    and offsets from closure cells instead of through ``self._batch.ring`` saves most of their cost.
    With PACKET_COPY_THRESH the generic accessors stay (they look for full copies first).
    """
    if copies:
        return Packet
    mv, u16, u32, mapping = ring.mv, ring.u16, ring.u32, ring.map
    snaplen, off_mac, off_snap = ring.snaplen, ring.off_mac, ring.off_snap

    class RingPacket(Packet):
        __slots__ = ()

        @property
        def data(self) -> memoryview:
            views = self._batch.views
            if views is None:
                raise PacketExpiredError(_EXPIRED)
            h = self._hdr
            start = h + u16[(h + off_mac) >> 1]
            cap = u32[(h + off_snap) >> 2]
            v = mv[start : start + (cap if cap < snaplen else snaplen)]
            views.append(v)
            return v

        def __bytes__(self) -> bytes:
            if self._batch.views is None:
                raise PacketExpiredError(_EXPIRED)
            h = self._hdr
            start = h + u16[(h + off_mac) >> 1]
            cap = u32[(h + off_snap) >> 2]
            return mapping[start : start + (cap if cap < snaplen else snaplen)]

    RingPacket.__name__ = RingPacket.__qualname__ = "Packet"
    return RingPacket


@dataclass(frozen=True)
class CopiedPacket:
    """A packet copied out of the ring (:meth:`Packet.copy`): plain data, no lifetime rules."""

    data: bytes
    timestamp_ns: int
    caplen: int
    wire_len: int
    status: int
    vlan_tci: int
    vlan_tpid: int
    vlan_present: bool
    rxhash: int
    ifindex: int
    protocol: int
    hatype: int
    pkttype: int
    src_addr: bytes
    #: the capture already put the VLAN tag back into ``data`` (``reinsert_vlan=True``)
    tag_in_data: bool = False

    def __bytes__(self) -> bytes:
        return self.data

    def tagged(self) -> bytes:
        if not self.vlan_present or self.tag_in_data:
            return self.data
        return insert_tag(self.data, self.vlan_tpid, self.vlan_tci)


def insert_tag(frame: bytes, tpid: int, tci: int) -> bytes:
    """``frame`` with an 802.1Q/802.1ad tag after its MAC addresses (unchanged if it has none)."""
    if len(frame) < 12:
        return frame
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


_STATUS_BITS = [
    (abi.TP_STATUS_USER, "USER"),
    (abi.TP_STATUS_COPY, "COPY"),
    (abi.TP_STATUS_LOSING, "LOSING"),
    (abi.TP_STATUS_CSUMNOTREADY, "CSUMNOTREADY"),
    (abi.TP_STATUS_VLAN_VALID, "VLAN_VALID"),
    (abi.TP_STATUS_BLK_TMO, "BLK_TMO"),
    (abi.TP_STATUS_VLAN_TPID_VALID, "VLAN_TPID_VALID"),
    (abi.TP_STATUS_CSUM_VALID, "CSUM_VALID"),
    (abi.TP_STATUS_GSO_TCP, "GSO_TCP"),
    (abi.TP_STATUS_TS_SOFTWARE, "TS_SOFTWARE"),
    (abi.TP_STATUS_TS_SYS_HARDWARE, "TS_SYS_HARDWARE"),
    (abi.TP_STATUS_TS_RAW_HARDWARE, "TS_RAW_HARDWARE"),
]


def status_names(status: int, version: int = 2) -> list[str]:
    """Names of the RX tp_status bits set in ``status`` (USER only means something on V1/V2)."""
    return [name for bit, name in _STATUS_BITS if status & bit and not (bit == abi.TP_STATUS_USER and version == 3)]

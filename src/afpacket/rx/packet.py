"""Received packets: a zero-copy view into the ring with a scoped lifetime, and its decoded metadata.

A :class:`Packet` is two references: the *batch* it came in (a V3 block, or a run of V1/V2 frames that
were ready together) and the offset of its frame header in the ring. Its bytes (``data``, ``bytes()``)
come from the ring kernels' ``PacketBase`` (C or Python); metadata is decoded from the header only
when asked. When the capture hands the batch back to the kernel, every ``memoryview`` given out for it
is released, and a packet object still referenced elsewhere gets a private copy of its frame, so it
keeps working (``list(cap.packets(count=100))`` is safe); only a view taken earlier expires.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import abi, bridges
from ..errors import CaptureClosedError, PacketExpiredError
from ..ring import _kernels_py
from ..ring.layout import Header
from ..savefile.linktype import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, cooked_header, insert_tag, linktype_for
from ..timestamps import SOURCE_BY_TS_BITS

if TYPE_CHECKING:
    from ..ring.memory import RingMemory


class Packet:
    """One received frame, as a :class:`~afpacket.Capture` yields it (not made by users).

    ``data`` is a ``memoryview`` of the frame in the ring (zero copy), valid until the capture reads
    past the packet's batch (then it raises PacketExpiredError); ``bytes(pkt)`` copies it, ``len(pkt)``
    is its captured length. Metadata attributes decode the frame header on access. A packet object you
    keep stays valid after its batch went back (its frame is copied out at that moment); :meth:`copy`
    gives a plain, frozen :class:`CopiedPacket`. :meth:`to_scapy` and :meth:`to_dpkt` hand it to
    those libraries.

    Example::

        for pkt in cap.packets(count=5):
            print(pkt.timestamp_ns, pkt.caplen, pkt.wire_len, pkt.pkttype_name, bytes(pkt)[:14].hex())
            print(pkt.to_scapy().summary())          # Ether / IP / UDP 10.0.0.1:53 > ...
    """

    __slots__ = ()
    _batch: Any
    _hdr: int
    if TYPE_CHECKING:

        @property
        def data(self) -> memoryview: ...

        def __bytes__(self) -> bytes: ...

        def _caplen(self) -> int: ...

    def _ring(self) -> RingMemory:
        b = self._batch
        if b.views is None:
            raise PacketExpiredError(_kernels_py.EXPIRED)
        ring: RingMemory = b.ring
        return ring

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
        return self._caplen()

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
    def timestamp_source(self) -> str | None:
        """The clock that stamped :attr:`timestamp_ns`, from the TS bits of tp_status (each version keeps
        them in the packet's own status word; a V3 block's status has none): "software" (the kernel's
        receive-path clock), "hardware" (the NIC's raw clock), "sys_hardware" (the legacy synced hardware
        stamp, pre-3.17 kernels), or None: no bit, the time the packet was copied into the ring, while no
        socket asked for receive stamps (``Capture(timestamp_source="software")`` asks)."""
        r = self._ring()
        return SOURCE_BY_TS_BITS[(r.u32[(self._hdr + r.layout.off_status) >> 2] >> 29) & 7]

    @property
    def truncated(self) -> bool:
        """Fewer bytes were captured than were on the wire (snaplen, or a V1/V2 frame too small)."""
        return self.caplen < self.wire_len

    @property
    def vlan_present(self) -> bool:
        """An outer VLAN tag was stripped into metadata (VLAN_VALID, or a non-zero TCI, as libpcap)."""
        h = self._header()
        return self._ring().version != 1 and bool(h[0] & abi.TP_STATUS_VLAN_VALID or h[5])

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
        """The VLAN id (low 12 bits of :attr:`vlan_tci`); 0 when untagged."""
        return self._header()[5] & 0x0FFF

    @property
    def vlan_tpid(self) -> int:
        """The stripped tag's TPID: tp_vlan_tpid when the kernel says it is valid, else 0x8100 if tagged."""
        h = self._header()
        if h[0] & abi.TP_STATUS_VLAN_TPID_VALID and h[6]:
            return h[6]
        return abi.ETH_P_8021Q if self.vlan_present else 0

    @property
    def rxhash(self) -> int:
        """V3 with ``rxhash=True``: the kernel's flow hash of the packet; otherwise 0."""
        return self._header()[7]

    def _sll(self) -> tuple[int, int, int, int, int, int, bytes]:
        r = self._ring()
        return abi.SOCKADDR_LL.unpack_from(r.mv, self._hdr + r.sll_off)

    @property
    def ifindex(self) -> int:
        """Index of the interface the packet was seen on (``socket.if_indextoname`` names it)."""
        return self._sll()[2]

    @property
    def protocol(self) -> int:
        """The EtherType the kernel saw (after the stripped tag, if any)."""
        return socket.ntohs(self._sll()[1])

    @property
    def hatype(self) -> int:
        """The interface's ARPHRD_* hardware type (1 = Ethernet, 772 = loopback, 65534 = none)."""
        return self._sll()[3]

    @property
    def pkttype(self) -> int:
        """PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST or PACKET_OUTGOING."""
        return self._sll()[4]

    @property
    def pkttype_name(self) -> str:
        """:attr:`pkttype` as a name: "host", "broadcast", "multicast", "otherhost", "outgoing"."""
        return abi.PKTTYPE_NAMES.get(self.pkttype, str(self.pkttype))

    @property
    def src_addr(self) -> bytes:
        """Source hardware address (sll_addr, sll_halen bytes)."""
        sll = self._sll()
        return sll[6][: sll[5]]

    @property
    def outgoing(self) -> bool:
        """This host sent the packet (PACKET_OUTGOING)."""
        return self._sll()[4] == abi.PACKET_OUTGOING

    # -- copies ---------------------------------------------------------------------------------
    def tagged(self) -> bytes:
        """The frame as it was on the wire: the stripped VLAN tag put back after the MAC addresses.

        Same as ``bytes(pkt)`` when there was no tag, on SOCK_DGRAM captures (no link header), and
        when the capture already reinserts tags in the ring (``reinsert_vlan=True``).
        """
        r = self._ring()
        data = bytes(self)
        if r.reinsert or not r.raw or not self.vlan_present:
            return data
        return insert_tag(data, self.vlan_tpid, self.vlan_tci)

    def file_record(self) -> tuple[bytes | memoryview, int]:
        """(bytes, wire length) as a capture file stores this packet, the rule of the ring kernels'
        ``pcap_records``: SOCK_RAW frames with a stripped tag get it back (both lengths + 4);
        SOCK_DGRAM packets get a Linux cooked header (SLL, or SLL2 when the ring says ``cooked == 2``;
        both lengths grow by its 16 or 20 bytes)."""
        r = self._ring()
        wire = self.wire_len
        if not r.raw:
            sll = self._sll()
            head = cooked_header(sll[4], sll[3], sll[6][: sll[5]], socket.ntohs(sll[1]), sll[2], r.cooked)
            return head + bytes(self), wire + len(head)
        if self.vlan_present and not r.reinsert and self.caplen >= 12:
            return self.tagged(), wire + 4
        return self.data, wire

    @property
    def linktype(self) -> int:
        """The savefile link type of :meth:`file_record`'s bytes: the device's (Ethernet for SOCK_RAW on
        Ethernet and loopback), or Linux cooked SLL / SLL2 for SOCK_DGRAM captures."""
        r = self._ring()
        if r.raw:
            return linktype_for(self.hatype)
        return LINKTYPE_LINUX_SLL2 if r.cooked == 2 else LINKTYPE_LINUX_SLL

    def to_scapy(self) -> Any:
        """The packet as a scapy packet, the one ``rdpcap`` gives for it in a capture file.

        The bytes are :meth:`file_record`'s (VLAN tag put back; a Linux cooked header first for
        SOCK_DGRAM / ``any`` captures), dissected from the link layer: ``Ether`` for Ethernet and
        loopback, ``CookedLinux``/``CookedLinuxV2`` (then IP, IPv6, ARP... by protocol) for cooked
        packets. ``.time`` is the receive time, exact to the ns (an EDecimal of seconds), ``.wirelen``
        the wire length, ``.sniffed_on`` the interface name, ``.direction`` 1 (in) or 2 (out).
        scapy is imported on first use; AfPacketError when it is not installed.

        Example::

            s = pkt.to_scapy()
            if s.haslayer("UDP"):
                print(s["IP"].src, s["UDP"].dport, float(s.time))
        """
        data, wire = self.file_record()
        try:
            ifname: str | None = socket.if_indextoname(self.ifindex)
        except OSError:
            ifname = None
        return bridges.to_scapy(
            data, self.linktype, self.timestamp_ns, wire, direction=2 if self.outgoing else 1, ifname=ifname
        )

    def to_dpkt(self) -> tuple[float, Any]:
        """``(timestamp, frame)``: the packet parsed by dpkt, with its receive time, the pair
        ``dpkt.pcap.Reader`` yields (dpkt objects have no timestamp field).

        ``frame`` is ``dpkt.ethernet.Ethernet`` (or ``dpkt.sll.SLL``/``dpkt.sll2.SLL2`` for SOCK_DGRAM /
        ``any`` captures) over :meth:`file_record`'s bytes; ``timestamp`` is float seconds, the same
        value as :attr:`timestamp` (:attr:`timestamp_ns` keeps the exact one). dpkt is imported on first
        use; AfPacketError when it is not installed.

        Example::

            ts, eth = pkt.to_dpkt()
            if isinstance(eth.data, dpkt.ip.IP):
                print(ts, socket.inet_ntoa(eth.data.src))
        """
        data, _wire = self.file_record()
        return bridges.to_dpkt(data, self.linktype, self.timestamp_ns)

    def copy(self) -> CopiedPacket:
        """Everything about the packet, copied out of the ring: valid forever."""
        st, wire, _snap, _mac, ts, tci, _tpid, rxh = self._header()
        sll = self._sll()
        data = bytes(self)
        present = self.vlan_present
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
            protocol=socket.ntohs(sll[1]),
            hatype=sll[3],
            pkttype=sll[4],
            src_addr=sll[6][: sll[5]],
            tag_in_data=self.tag_in_data,
            version=self._ring().version,
            raw=self._ring().raw,
            cooked=self._ring().cooked,
        )

    def __repr__(self) -> str:
        if self._batch.views is None:
            return "<Packet (expired)>"
        return (
            f"<Packet {self.caplen}/{self.wire_len} bytes ts={self.timestamp_ns} {self.pkttype_name} "
            f"if={self.ifindex}>"
        )


_CLASSES: dict[str, type[Packet]] = {}


def generic_class(kernels: ModuleType) -> type[Packet]:
    """The packet class of one kernel implementation: :class:`Packet`'s metadata over the kernels'
    ``PacketBase`` (its bytes accessors). One per implementation; ``isinstance(p, Packet)`` holds."""
    cls = _CLASSES.get(kernels.IMPLEMENTATION)
    if cls is None:
        cls = type("Packet", (Packet, kernels.PacketBase), {"__slots__": (), "__module__": __name__})
        _CLASSES[kernels.IMPLEMENTATION] = cls
    return cls


#: what a packet of the parent's capture says in a forked child
FORKED = (
    "this packet belongs to the parent process's capture: fork() does not share the ring, so its frame "
    "is not in this process; copy bytes(pkt) or pkt.copy() before forking, or open a Capture in the child"
)
_FORKED: dict[type[Packet], type[Packet]] = {}


def _refuse_forked(*_args: object) -> Any:
    raise CaptureClosedError(FORKED)


def forked_class(generic: type[Packet]) -> type[Packet]:
    """The class a forked child gives the parent's packets that were still in the ring (see
    ``RingWalker.disown``): every access to the frame or its metadata raises CaptureClosedError, as the
    parent's Capture does in the child, instead of reading memory the child does not have. Same layout
    as ``generic`` (no slots of its own), so ``__class__`` can be assigned."""
    cls = _FORKED.get(generic)
    if cls is None:
        cls = type(
            "Packet",
            (generic,),
            {
                "__slots__": (),
                "__module__": __name__,
                "data": property(_refuse_forked, doc="Raises CaptureClosedError: the frame is the parent's."),
                "__bytes__": _refuse_forked,
                "_caplen": _refuse_forked,
                "_ring": _refuse_forked,
                "__repr__": lambda self: "<Packet (of the parent process's capture)>",
            },
        )
        _FORKED[generic] = cls
    return cls


def packet_class(kernels: ModuleType, ring: RingMemory, *, copies: bool = False) -> type[Packet]:
    """The packet class a capture hands out.

    The C kernels' accessors are already fast: their generic class serves. For pure Python, a subclass
    per ring whose ``data`` and ``bytes()`` read the ring's views and offsets from closure cells instead
    of through ``self._batch.ring`` (most of their cost). With PACKET_COPY_THRESH the generic
    accessors stay (they look for full copies first).
    """
    generic = generic_class(kernels)
    if copies or kernels.IMPLEMENTATION != "python":
        return generic
    mv, u16, u32 = ring.mv, ring.u16, ring.u32
    snaplen, off_mac, off_snap, fsz = ring.snaplen, ring.off_mac, ring.off_snap, ring.frame_size
    expired = _kernels_py.EXPIRED

    class RingPacket(generic):  # type: ignore[valid-type,misc]
        __slots__ = ()

        @property
        def data(self) -> memoryview:
            b = self._batch
            views = b.views
            if views is None:
                raise PacketExpiredError(expired)
            h = self._hdr
            start = h + u16[(h + off_mac) >> 1]
            cap = u32[(h + off_snap) >> 2]
            stop = start + (cap if cap < snaplen else snaplen)
            end = b.end or h + fsz
            if stop > end:
                stop = end if end > start else start
            v = mv[start:stop]
            views.append(v)
            return v

        def __bytes__(self) -> bytes:
            b = self._batch
            if b.views is None:
                raise PacketExpiredError(expired)
            h = self._hdr
            start = h + u16[(h + off_mac) >> 1]
            cap = u32[(h + off_snap) >> 2]
            stop = start + (cap if cap < snaplen else snaplen)
            end = b.end or h + fsz
            if stop > end:
                stop = end if end > start else start
            return mv[start:stop].tobytes()

    RingPacket.__name__ = RingPacket.__qualname__ = "Packet"
    return RingPacket


@dataclass(frozen=True)
class CopiedPacket:
    """A packet copied out of the ring (:meth:`Packet.copy`): every attribute a live packet has, as
    plain data with no lifetime rules. ``bytes(cp)`` is ``data``; :meth:`to_scapy`/:meth:`to_dpkt`
    work as on :class:`Packet`.

    Fields (the :class:`Packet` attributes of the same names): ``data`` (the captured bytes),
    ``timestamp_ns``, ``caplen``, ``wire_len``, ``status`` (tp_status bits), ``vlan_tci``, ``vlan_tpid``,
    ``vlan_present``, ``rxhash``, ``ifindex``, ``protocol`` (EtherType), ``hatype`` (ARPHRD_*),
    ``pkttype`` (PACKET_*), ``src_addr``; ``tag_in_data`` (the capture already put the VLAN tag back
    into ``data``), ``version`` (the TPACKET version of the ring it came from), ``raw`` (from a
    SOCK_RAW capture; False for SOCK_DGRAM / ``any``), ``cooked`` (the cooked header its file record
    gets when not ``raw``: 1 for SLL, 2 for SLL2).

    Example::

        kept = [pkt.copy() for pkt in cap.packets(count=10)]
    """

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
    #: the TPACKET version of the ring it came from
    version: int = 3
    #: from a SOCK_RAW capture (data starts at the link header); False for SOCK_DGRAM / ``any``
    raw: bool = True
    #: the cooked header its file record gets when not ``raw``: 1 (SLL) or 2 (SLL2)
    cooked: int = 1

    def __bytes__(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return self.caplen

    @property
    def timestamp(self) -> float:
        """Receive time in seconds since the epoch, as a float (loses ns precision)."""
        return self.timestamp_ns / 1e9

    @property
    def pkttype_name(self) -> str:
        """:attr:`pkttype` as a name: "host", "broadcast", "multicast", "otherhost", "outgoing"."""
        return abi.PKTTYPE_NAMES.get(self.pkttype, str(self.pkttype))

    @property
    def vlan_id(self) -> int:
        """The VLAN id (low 12 bits of ``vlan_tci``); 0 when untagged."""
        return self.vlan_tci & 0x0FFF

    @property
    def outgoing(self) -> bool:
        """This host sent the packet (PACKET_OUTGOING)."""
        return self.pkttype == abi.PACKET_OUTGOING

    @property
    def truncated(self) -> bool:
        """Fewer bytes were captured than were on the wire."""
        return self.caplen < self.wire_len

    @property
    def status_flags(self) -> list[str]:
        """``status`` decoded to names (see :func:`status_names`)."""
        return status_names(self.status, self.version)

    @property
    def timestamp_source(self) -> str | None:
        """As :attr:`Packet.timestamp_source`: "software", "hardware", "sys_hardware" or None."""
        return SOURCE_BY_TS_BITS[(self.status >> 29) & 7]

    def tagged(self) -> bytes:
        """The frame as it was on the wire: a stripped VLAN tag put back (as :meth:`Packet.tagged`)."""
        if not self.vlan_present or self.tag_in_data:
            return self.data
        return insert_tag(self.data, self.vlan_tpid, self.vlan_tci)

    def file_record(self) -> tuple[bytes, int]:
        """As :meth:`Packet.file_record`."""
        if not self.raw:
            head = cooked_header(self.pkttype, self.hatype, self.src_addr, self.protocol, self.ifindex, self.cooked)
            return head + self.data, self.wire_len + len(head)
        if self.vlan_present and not self.tag_in_data and self.caplen >= 12:
            return self.tagged(), self.wire_len + 4
        return self.data, self.wire_len

    @property
    def linktype(self) -> int:
        """As :meth:`Packet.linktype`: the link type of :meth:`file_record`'s bytes."""
        if self.raw:
            return linktype_for(self.hatype)
        return LINKTYPE_LINUX_SLL2 if self.cooked == 2 else LINKTYPE_LINUX_SLL

    def to_scapy(self) -> Any:
        """As :meth:`Packet.to_scapy`: a scapy packet with ``.time`` exact to the ns."""
        data, wire = self.file_record()
        try:
            ifname: str | None = socket.if_indextoname(self.ifindex)
        except OSError:
            ifname = None
        return bridges.to_scapy(
            data, self.linktype, self.timestamp_ns, wire, direction=2 if self.outgoing else 1, ifname=ifname
        )

    def to_dpkt(self) -> tuple[float, Any]:
        """As :meth:`Packet.to_dpkt`: ``(timestamp, frame)``, timestamp in float seconds."""
        data, _wire = self.file_record()
        return bridges.to_dpkt(data, self.linktype, self.timestamp_ns)

    def copy(self) -> CopiedPacket:
        """The packet itself: it is already a copy."""
        return self


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
    """Names of the RX tp_status bits set in ``status`` for a ring of TPACKET ``version`` (USER only
    means something on V1/V2): ``status_names(0x11) == ["USER", "VLAN_VALID"]``."""
    return [name for bit, name in _STATUS_BITS if status & bit and not (bit == abi.TP_STATUS_USER and version == 3)]

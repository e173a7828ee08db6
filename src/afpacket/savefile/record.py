"""What readers yield: one captured packet with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .. import abi

# pcapng epb_flags: bits 0-1 direction, bits 2-4 reception type (pcapng spec, section 4.3.1).
EPB_INBOUND: Final = 0b01
EPB_OUTBOUND: Final = 0b10
_RECEPTION_UNICAST: Final = 1 << 2
_RECEPTION_MULTICAST: Final = 2 << 2
_RECEPTION_BROADCAST: Final = 3 << 2
_RECEPTION_PROMISCUOUS: Final = 4 << 2

#: Linux sll_pkttype -> epb_flags. Note pcapng numbers multicast 2 and broadcast 3, Linux the reverse.
PKTTYPE_TO_EPB_FLAGS: Final = {
    abi.PACKET_HOST: EPB_INBOUND | _RECEPTION_UNICAST,
    abi.PACKET_BROADCAST: EPB_INBOUND | _RECEPTION_BROADCAST,
    abi.PACKET_MULTICAST: EPB_INBOUND | _RECEPTION_MULTICAST,
    abi.PACKET_OTHERHOST: EPB_INBOUND | _RECEPTION_PROMISCUOUS,
    abi.PACKET_OUTGOING: EPB_OUTBOUND,
}
_EPB_FLAGS_TO_PKTTYPE: Final = {flags: pkttype for pkttype, flags in PKTTYPE_TO_EPB_FLAGS.items()}


def epb_flags_for(pkttype: int | None) -> int:
    """The epb_flags word for a Linux packet type ``pkttype`` (PACKET_HOST, ...); 0 (nothing known) for
    None, loopback, user, kernel."""
    return 0 if pkttype is None else PKTTYPE_TO_EPB_FLAGS.get(pkttype, 0)


@dataclass(slots=True)
class Record:
    """One packet read from a savefile (what :func:`~afpacket.open_reader` readers yield).

    Fields: ``timestamp_ns`` (ns since the epoch, whatever the file's resolution), ``data`` (the
    captured bytes, from the link-layer header on), ``wire_len`` (the packet's length on the wire),
    ``interface_id`` (pcapng: the interface within its section; 0 for pcap), ``linktype`` (the
    LINKTYPE_* of ``data``), ``flags`` (the pcapng epb_flags word when the file carried one, else None;
    :attr:`direction` and :attr:`pkttype` decode it). ``bytes(rec)`` is ``data``; :meth:`to_scapy`
    and :meth:`to_dpkt` hand the record to those libraries.

    Example::

        for rec in afpacket.open_reader("out.pcapng"):
            print(rec.timestamp_ns, rec.wire_len, rec.direction, rec.data[:14].hex())
    """

    timestamp_ns: int
    data: bytes
    wire_len: int
    interface_id: int = 0
    linktype: int = 1
    flags: int | None = None

    @property
    def caplen(self) -> int:
        """Bytes captured: ``len(data)``."""
        return len(self.data)

    @property
    def timestamp(self) -> float:
        """The time stamp in seconds since the epoch, as a float (loses ns precision)."""
        return self.timestamp_ns / 1e9

    @property
    def direction(self) -> str | None:
        """``"in"``, ``"out"``, or None when the file does not say."""
        if self.flags is None:
            return None
        return {EPB_INBOUND: "in", EPB_OUTBOUND: "out"}.get(self.flags & 0b11)

    @property
    def pkttype(self) -> int | None:
        """The Linux PACKET_* type the epb_flags correspond to, or None when they do not say."""
        if self.flags is None:
            return None
        return _EPB_FLAGS_TO_PKTTYPE.get(self.flags & 0b11111)

    def to_scapy(self) -> Any:
        """The record as the scapy packet ``rdpcap`` makes of it: dissected by scapy's class for
        :attr:`linktype` (``Ether``, ``CookedLinux``, ``CookedLinuxV2``, raw IP, ...; ``Raw`` for one
        scapy does not know), ``.time`` exact to the ns (an EDecimal of seconds), ``.wirelen``, and
        ``.direction`` from the epb_flags (1 in, 2 out) when the file has them. scapy is imported on
        first use; AfPacketError when it is not installed.

        Example::

            pkts = [rec.to_scapy() for rec in afpacket.open_reader("out.pcap")]
        """
        from .. import bridges

        direction = None if self.flags is None else self.flags & 0b11
        return bridges.to_scapy(self.data, self.linktype, self.timestamp_ns, self.wire_len, direction=direction)

    def to_dpkt(self) -> tuple[float, Any]:
        """``(timestamp, frame)``, as ``dpkt.pcap.Reader`` yields them: ``frame`` parsed by dpkt's class
        for :attr:`linktype` (``dpkt.ethernet.Ethernet``, ``dpkt.sll.SLL``, ``dpkt.sll2.SLL2``,
        ``dpkt.loopback.Loopback``, ``dpkt.ip.IP``/``dpkt.ip6.IP6``), ``timestamp`` float seconds (the
        same value as :attr:`timestamp`; :attr:`timestamp_ns` keeps the exact one). dpkt is imported on
        first use; AfPacketError when it is not installed or has no class for the link type.

        Example::

            for ts, eth in (rec.to_dpkt() for rec in afpacket.open_reader("out.pcap")):
                print(ts, eth.type)
        """
        from .. import bridges

        return bridges.to_dpkt(self.data, self.linktype, self.timestamp_ns)

    def __bytes__(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface of a pcapng section (a pcap file has exactly one, implicitly).

    Fields: ``linktype`` (LINKTYPE_* of its packets), ``snaplen`` (the longest packet it keeps),
    ``name`` (if_name, when the file gives one), ``tsresol`` (if_tsresol as stored: 10**-n seconds per
    tick, or 2**-(n & 0x7f) when the top bit is set), ``tsoffset`` (if_tsoffset: seconds added to
    every timestamp).
    """

    linktype: int
    snaplen: int
    name: str | None = None
    #: if_tsresol as stored: 10**-n seconds per tick, or 2**-(n & 0x7f) when the top bit is set
    tsresol: int = 6
    #: if_tsoffset, seconds added to every timestamp
    tsoffset: int = 0

    @property
    def nanosecond(self) -> bool:
        """True when the timestamps are finer than microseconds."""
        if self.tsresol & 0x80:
            return (self.tsresol & 0x7F) > 19  # 2**-20 s is just under a microsecond
        return self.tsresol > 6

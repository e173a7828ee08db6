"""What readers yield: one captured packet with its metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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
    """The epb_flags word for a Linux packet type; 0 (nothing known) for None, loopback, user, kernel."""
    return 0 if pkttype is None else PKTTYPE_TO_EPB_FLAGS.get(pkttype, 0)


@dataclass(slots=True)
class Record:
    """One packet read from a savefile.

    ``flags`` is the pcapng epb_flags word when the file carried one, else None; ``direction`` and
    ``pkttype`` decode it.
    """

    timestamp_ns: int
    data: bytes
    wire_len: int
    interface_id: int = 0
    linktype: int = 1
    flags: int | None = None

    @property
    def caplen(self) -> int:
        return len(self.data)

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

    def __bytes__(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface of a pcapng section (a pcap file has exactly one, implicitly)."""

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

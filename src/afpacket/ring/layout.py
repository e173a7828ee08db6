"""Where every field sits in a ring frame, per TPACKET version: one object per version.

Every other module asks a :class:`FrameLayout` instead of branching on the version number: the RX
walkers for offsets and the decoder, the TX path for the header words it writes per frame, the C
kernels for the same offsets (they receive them from here, so the two cores cannot disagree).
``tests/test_abi.py`` checks every offset below against ``offsetof()`` in ``linux/if_packet.h``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Final

from .. import abi

#: (status, wire_len, caplen, mac offset, timestamp ns, vlan tci, vlan tpid, rxhash)
Header = tuple[int, int, int, int, int, int, int, int]


def _decode_v1(buf: memoryview | bytes | bytearray, off: int) -> Header:
    status, length, snap, mac, _net, sec, usec = abi.TPACKET_HDR.unpack_from(buf, off)
    return status, length, snap, mac, sec * 1_000_000_000 + usec * 1000, 0, 0, 0


def _decode_v2(buf: memoryview | bytes | bytearray, off: int) -> Header:
    status, length, snap, mac, _net, sec, nsec, tci, tpid = abi.TPACKET2_HDR.unpack_from(buf, off)
    return status, length, snap, mac, sec * 1_000_000_000 + nsec, tci, tpid, 0


def _decode_v3(buf: memoryview | bytes | bytearray, off: int) -> Header:
    _nxt, sec, nsec, snap, length, status, mac, _net, rxhash, tci, tpid = abi.TPACKET3_HDR.unpack_from(buf, off)
    return status, length, snap, mac, sec * 1_000_000_000 + nsec, tci & 0xFFFF, tpid, rxhash


@dataclass(frozen=True)
class FrameLayout:
    """One TPACKET version's frame header: field offsets, the decoder, and the TX header writer.

    Offsets are from the start of the frame header. A field the version lacks has offset -1
    (V1 has no VLAN fields, only V3 has rxhash and tp_next_offset).
    """

    version: int
    #: the value of enum tpacket_versions for PACKET_VERSION
    kernel_enum: int
    header: struct.Struct
    off_status: int
    off_len: int
    off_snaplen: int
    off_mac: int
    off_net: int
    off_sec: int
    #: tp_usec (V1) or tp_nsec (V2, V3), and how many ns one unit is
    off_frac: int
    frac_ns: int
    off_vlan_tci: int
    off_vlan_tpid: int
    off_rxhash: int
    off_next: int
    decode: Callable[[memoryview | bytes | bytearray, int], Header]
    #: picks (status, tp_len, tp_snaplen, tp_mac, tp_sec, frac, vlan tci, vlan tpid) out of
    #: ``header.unpack_from``'s tuple, for hot loops (V1 has no VLAN fields: those two are junk there)
    fields: Callable[[tuple[int, ...]], tuple[int, ...]]
    #: TX: the run of header words one pack_into writes per frame, and where the run starts.
    #: V1/V2: status len snaplen mac net at 0; V3: snaplen len status mac net at tp_snaplen.
    tx_words: struct.Struct
    tx_words_at: int

    @property
    def sll_offset(self) -> int:
        """Where sockaddr_ll sits, and where TX frame data starts: TPACKET_ALIGN(sizeof header)."""
        return abi.tpacket_align(self.header.size)

    @property
    def hdrlen(self) -> int:
        """TPACKET_HDRLEN / TPACKET2_HDRLEN / TPACKET3_HDRLEN: header, then sockaddr_ll."""
        return self.sll_offset + abi.SOCKADDR_LL.size

    def tx_header(self, status: int, length: int, data_offset: int) -> tuple[int, ...]:
        """The values for :attr:`tx_words`, in its order, for one TX frame."""
        if self.version == 3:
            return (length, length, status, data_offset, data_offset)
        return (status, length, length, data_offset, data_offset)


V1: Final = FrameLayout(
    version=1, kernel_enum=abi.TPACKET_V1, header=abi.TPACKET_HDR,
    off_status=0, off_len=8, off_snaplen=12, off_mac=16, off_net=18, off_sec=20, off_frac=24, frac_ns=1000,
    off_vlan_tci=-1, off_vlan_tpid=-1, off_rxhash=-1, off_next=-1, decode=_decode_v1,
    fields=itemgetter(0, 1, 2, 3, 5, 6, 0, 0),
    tx_words=struct.Struct("=QIIHH"), tx_words_at=0,
)
V2: Final = FrameLayout(
    version=2, kernel_enum=abi.TPACKET_V2, header=abi.TPACKET2_HDR,
    off_status=0, off_len=4, off_snaplen=8, off_mac=12, off_net=14, off_sec=16, off_frac=20, frac_ns=1,
    off_vlan_tci=24, off_vlan_tpid=26, off_rxhash=-1, off_next=-1, decode=_decode_v2,
    fields=itemgetter(0, 1, 2, 3, 5, 6, 7, 8),
    tx_words=struct.Struct("=IIIHH"), tx_words_at=0,
)
V3: Final = FrameLayout(
    version=3, kernel_enum=abi.TPACKET_V3, header=abi.TPACKET3_HDR,
    off_status=20, off_len=16, off_snaplen=12, off_mac=24, off_net=26, off_sec=4, off_frac=8, frac_ns=1,
    off_vlan_tci=32, off_vlan_tpid=36, off_rxhash=28, off_next=0, decode=_decode_v3,
    fields=itemgetter(5, 4, 3, 6, 1, 2, 9, 10),
    tx_words=struct.Struct("=IIIHH"), tx_words_at=12,
)

#: by ring version (1, 2, 3)
LAYOUTS: Final = {1: V1, 2: V2, 3: V3}


@dataclass(frozen=True)
class BlockLayout:
    """struct tpacket_block_desc (V3): where the block's status, packet count and first packet sit."""

    size: int = abi.TPACKET_BLOCK_DESC.size
    off_status: int = 8
    off_num_pkts: int = 12
    off_first_pkt: int = 16
    off_blk_len: int = 20
    off_seq_num: int = 24


BLOCK: Final = BlockLayout()


def layout(version: int) -> FrameLayout:
    """The layout of TPACKET_V``version``, or a clear error for anything else."""
    try:
        return LAYOUTS[version]
    except KeyError:
        raise ValueError(f"TPACKET version must be 1, 2 or 3, got {version!r}") from None

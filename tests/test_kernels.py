"""The ring kernels, C (``_kernels``) and pure Python (``_kernels_py``), over synthetic rings.

No socket, no root: V1/V2 frame rings and V3 block rings are laid out in a bytearray with the struct
layouts of :mod:`afpacket.abi`, and every kernel runs over them. Each test checks a core against the
rules in ``_kernels_py``'s docstring, and the two cores against each other byte for byte; a
hypothesis test feeds both random (mostly corrupt) rings and wants identical answers or identical
exception types. Every ring sits in front of canary bytes that the ring's memoryview does not
include, so a read past the end of the mapping shows up as a difference from pure Python.
"""

from __future__ import annotations

import random
import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afpacket import abi
from afpacket.errors import PacketExpiredError
from afpacket.ring import _kernels, _kernels_py
from afpacket.ring.layout import BLOCK, LAYOUTS
from afpacket.ring.memory import RingMemory
from afpacket.rx.columns import COLUMNS, columns_of
from afpacket.rx.packet import generic_class
from afpacket.savefile import PcapngReader, PcapngWriter, PcapReader, PcapWriter

C: ModuleType = _kernels
PY: ModuleType = _kernels_py
CORES = {"c": C, "python": PY}

USER = abi.TP_STATUS_USER
VLAN_VALID = abi.TP_STATUS_VLAN_VALID
TPID_VALID = abi.TP_STATUS_VLAN_TPID_VALID
AF_PACKET = 17
CANARY = b"\xee" * 64
BLOCK_DESC = abi.TPACKET_BLOCK_DESC.size
#: epb_flags by Linux pkttype: inbound|unicast, inbound|broadcast, inbound|multicast, inbound|promiscuous, outbound
EPB_FLAGS = {0: 0b00101, 1: 0b01101, 2: 0b01001, 3: 0b10001, 4: 0b00010}


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's autouse per-core fixture: these tests take both kernel modules directly."""
    return "both"


@pytest.fixture(params=list(CORES), ids=list(CORES))
def k(request: pytest.FixtureRequest) -> ModuleType:
    return CORES[request.param]


# -- synthetic rings ---------------------------------------------------------------------------------
@dataclass
class F:
    """One frame (V1/V2) or packet (V3) to lay out: header fields, sockaddr_ll, and its bytes."""

    data: bytes = b""
    status: int = USER
    wire: int | None = None  # default len(data)
    snap: int | None = None  # tp_snaplen, default len(data)
    mac: int | None = None  # default TPACKET_ALIGN(hdrlen)
    sec: int = 1_700_000_000
    frac: int = 123_456  # tp_usec (V1) or tp_nsec (V2, V3)
    tci: int = 0
    tpid: int = 0
    rxhash: int = 0
    ifindex: int = 2
    pkttype: int = abi.PACKET_HOST
    hatype: int = abi.ARPHRD_ETHER
    protocol: int = abi.ETH_P_IP
    addr: bytes = bytes.fromhex("020000000001")
    halen: int | None = None  # default len(addr)
    next: int | None = None  # V3 tp_next_offset: None = to the next packet, 0 for the last

    def ts_ns(self, version: int) -> int:
        return self.sec * 1_000_000_000 + self.frac * (1000 if version == 1 else 1)


@dataclass
class B:
    """One V3 block: its descriptor and packets."""

    packets: list[F] = field(default_factory=list)
    status: int = USER
    num_pkts: int | None = None  # default len(packets)
    first: int = BLOCK_DESC
    seq: int = 1


def default_mac(version: int) -> int:
    return abi.tpacket_align(LAYOUTS[version].hdrlen)


def ne16(value: int) -> int:
    """A value as stored in network order, read back as a native u16 (sll_protocol)."""
    return int(struct.unpack("=H", struct.pack("!H", value))[0])


def write_frame(buf: bytearray, version: int, h: int, f: F, limit: int, nxt: int = 0) -> None:
    """Lay out ``f`` at header offset ``h``; its bytes go from ``h + mac``, cut at ``limit``."""
    lay = LAYOUTS[version]
    mac = default_mac(version) if f.mac is None else f.mac
    snap = len(f.data) if f.snap is None else f.snap
    wire = len(f.data) if f.wire is None else f.wire
    if version == 1:
        abi.TPACKET_HDR.pack_into(buf, h, f.status, wire, snap, mac, mac, f.sec, f.frac)
    elif version == 2:
        abi.TPACKET2_HDR.pack_into(buf, h, f.status, wire, snap, mac, mac, f.sec, f.frac, f.tci, f.tpid)
    else:
        abi.TPACKET3_HDR.pack_into(buf, h, nxt, f.sec, f.frac, snap, wire, f.status, mac, mac, f.rxhash, f.tci, f.tpid)
    halen = len(f.addr) if f.halen is None else f.halen
    abi.SOCKADDR_LL.pack_into(
        buf, h + lay.sll_offset, AF_PACKET, ne16(f.protocol), f.ifindex, f.hatype, f.pkttype, halen, f.addr
    )
    start = h + mac
    n = max(0, min(len(f.data), limit - start))
    buf[start : start + n] = f.data[:n]


@dataclass
class Synth:
    """A synthetic ring: the bytearray (ring then canary), the RingMemory over its first ``size``
    bytes, and the V1/V2 frame offsets or V3 block offsets."""

    buf: bytearray
    ring: RingMemory
    size: int
    offsets: list[int]
    stride: int

    def ring_bytes(self) -> bytes:
        return bytes(self.buf[: self.size])

    def canary_intact(self) -> bool:
        return bytes(self.buf[self.size :]) == CANARY


def frame_ring(
    version: int, frames: list[F | None], *, frame_size: int = 256, nframes: int | None = None,
    snaplen: int = 65535, raw: bool = True, reinsert: bool = False,
) -> Synth:
    """A V1/V2 ring of ``nframes`` frames (default: one per entry); None and missing entries are
    kernel-owned frames (status 0)."""
    n = len(frames) if nframes is None else nframes
    size = n * frame_size
    buf = bytearray(size) + CANARY
    offsets = [i * frame_size for i in range(n)]
    for h, f in zip(offsets, frames, strict=False):
        if f is not None:
            write_frame(buf, version, h, f, h + frame_size)
    ring = RingMemory(buf, size, version, snaplen, raw=raw, reinsert=reinsert, frame_size=frame_size)
    return Synth(buf, ring, size, offsets, frame_size)


def block_ring(
    blocks: list[B], *, block_size: int = 1024, snaplen: int = 65535, raw: bool = True, reinsert: bool = False,
) -> Synth:
    """A V3 ring: block descriptors, then each block's packets chained by tp_next_offset (a packet
    placed outside its block is not written)."""
    size = len(blocks) * block_size
    buf = bytearray(size) + CANARY
    offsets = [i * block_size for i in range(len(blocks))]
    hsize = LAYOUTS[3].hdrlen
    for boff, b in zip(offsets, blocks, strict=True):
        num = len(b.packets) if b.num_pkts is None else b.num_pkts
        end = boff + block_size
        abi.TPACKET_BLOCK_DESC.pack_into(buf, boff, 1, 0, b.status, num, b.first, block_size, b.seq, 0, 0, 0, 0)
        pos = b.first
        for i, f in enumerate(b.packets):
            last = i == len(b.packets) - 1
            mac = default_mac(3) if f.mac is None else f.mac
            nxt = (0 if last else abi.tpacket_align(mac + len(f.data))) if f.next is None else f.next
            h = boff + pos
            if h < boff or h + hsize > end:
                break
            write_frame(buf, 3, h, f, end, nxt)
            if nxt == 0:
                break
            pos += nxt
    ring = RingMemory(buf, size, 3, snaplen, raw=raw, reinsert=reinsert)
    return Synth(buf, ring, size, offsets, block_size)


def v3_batch(k: ModuleType, s: Synth, index: int = 0) -> Any:
    """The batch of block ``index`` as a capture takes it: block_info, then block_headers."""
    boff = s.offsets[index]
    _st, count, first, _seq = k.block_info(s.ring, boff)
    end = boff + s.stride
    return k.Batch(s.ring, k.block_headers(s.ring, boff + first, count, end), end, boff)


def ring_for(version: int, frames: list[F], **kw: Any) -> Synth:
    """Frames as a V1/V2 frame ring, or as one V3 block."""
    if version == 3:
        if "frame_size" in kw:
            kw["block_size"] = kw.pop("frame_size")
        return block_ring([B(frames)], **kw)
    return frame_ring(version, list(frames), **kw)


def batch_for(k: ModuleType, s: Synth) -> Any:
    if s.ring.version == 3:
        return v3_batch(k, s)
    return k.Batch(s.ring, k.ready_frames(s.ring, s.offsets, 0, len(s.offsets)), 0, -1)


def payload(n: int, seed: int = 0) -> bytes:
    return bytes((seed + i * 7 + 1) & 0xFF for i in range(n))


def eth(n: int = 60, seed: int = 0) -> bytes:
    """An n-byte Ethernet frame: MACs, EtherType IPv4, then filler."""
    return bytes.fromhex("ffffffffffff020000000001") + b"\x08\x00" + payload(n - 14, seed)


# -- file records, encoded and parsed independently of the cores ---------------------------------------
def pcap_record(ts_ns: int, data: bytes, wire: int, nanosecond: bool) -> bytes:
    sec, frac = divmod(ts_ns, 1_000_000_000)
    return struct.pack("<IIII", sec, frac if nanosecond else frac // 1000, len(data), wire) + data


def epb(iid: int, ts_ns: int, data: bytes, wire: int, flags: int, nanosecond: bool) -> bytes:
    ticks = ts_ns if nanosecond else ts_ns // 1000
    pad = -len(data) & 3
    total = 28 + len(data) + pad + 16
    head = struct.pack("<IIIIIII", 6, total, iid, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire)
    return head + data + bytes(pad) + struct.pack("<HHIII", 2, 4, flags, 0, total)


def parse_pcap(buf: bytes | bytearray) -> list[tuple[int, int, int, bytes]]:
    """(sec, fraction, wire length, data) per record; the records must fill ``buf`` exactly."""
    out, pos = [], 0
    while pos < len(buf):
        sec, frac, cap, wire = struct.unpack_from("<IIII", buf, pos)
        out.append((sec, frac, wire, bytes(buf[pos + 16 : pos + 16 + cap])))
        pos += 16 + cap
    assert pos == len(buf)
    return out


def parse_pcapng(buf: bytes | bytearray) -> list[tuple[int, int, int, bytes, int]]:
    """(interface id, ticks, wire length, data, epb_flags) per EPB; checks each block's framing."""
    out, pos = [], 0
    while pos < len(buf):
        btype, total, iid, hi, lo, cap, wire = struct.unpack_from("<IIIIIII", buf, pos)
        assert btype == 6
        pad = -cap & 3
        assert total == 28 + cap + pad + 16
        data = bytes(buf[pos + 28 : pos + 28 + cap])
        assert bytes(buf[pos + 28 + cap : pos + 28 + cap + pad]) == bytes(pad)
        code, length, flags, end_opt, total2 = struct.unpack_from("<HHIII", buf, pos + 28 + cap + pad)
        assert (code, length, end_opt, total2) == (2, 4, 0, total)
        out.append((iid, hi << 32 | lo, wire, data, flags))
        pos += total
    assert pos == len(buf)
    return out


def pcap_of(k: ModuleType, s: Synth, nanosecond: bool, start: int = 0, stop: int = 1 << 30,
            budget: int = -1) -> tuple[int, bytes]:
    b = batch_for(k, s)
    out = bytearray()
    n = k.pcap_records(b, start, stop, out, nanosecond, budget)
    return n, bytes(out)


def pcapng_of(k: ModuleType, s: Synth, ids: dict[int, int], nanosecond: bool, start: int = 0,
              stop: int = 1 << 30, budget: int = -1) -> tuple[int, bytes]:
    b = batch_for(k, s)
    out = bytearray()
    n = k.pcapng_records(b, start, stop, out, ids, nanosecond, budget)
    return n, bytes(out)


# -- ownership ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_ready_frames_wraps_and_stops(k: ModuleType, version: int) -> None:
    # frames 5, 6, 7, 0, 1 are the user's; 2 is the kernel's (COPY|LOSING without USER); 3, 4 are user's again
    frames: list[F | None] = [F(eth()) for _ in range(8)]
    frames[2] = F(eth(), status=abi.TP_STATUS_COPY | abi.TP_STATUS_LOSING)
    s = frame_ring(version, frames)
    o = s.offsets
    assert k.ready_frames(s.ring, o, 5, 100) == [o[5], o[6], o[7], o[0], o[1]]
    assert k.ready_frames(s.ring, o, 5, 3) == [o[5], o[6], o[7]]
    assert k.ready_frames(s.ring, o, 5, 0) == []
    assert k.ready_frames(s.ring, o, 2, 100) == []
    assert k.ready_frames(s.ring, o, 3, 100) == [o[3], o[4], o[5], o[6], o[7], o[0], o[1]]
    # a whole ring ready: never more than one ring's worth, whatever the limit
    s = frame_ring(version, [F(eth()) for _ in range(4)])
    assert k.ready_frames(s.ring, s.offsets, 2, 100) == [s.offsets[i] for i in (2, 3, 0, 1)]


def test_ready_frames_v1_reads_the_low_status_word(k: ModuleType) -> None:
    # V1's tp_status is 64 bits: USER is bit 0 of its low word; high bits alone do not make it ready
    s = frame_ring(1, [F(eth(), status=1 << 40), F(eth(), status=(1 << 40) | USER)])
    assert k.ready_frames(s.ring, s.offsets, 0, 10) == []
    assert k.ready_frames(s.ring, s.offsets, 1, 10) == [s.offsets[1]]


def test_block_ready_and_info(k: ModuleType) -> None:
    seq = (7 << 32) | 5
    s = block_ring(
        [B([F(eth())], status=USER | abi.TP_STATUS_BLK_TMO, seq=seq), B([F(eth()), F(eth())], status=0, seq=seq + 1)],
        block_size=512,
    )
    assert k.block_ready(s.ring, 0) is True
    assert k.block_ready(s.ring, 512) is False
    assert k.block_info(s.ring, 0) == (USER | abi.TP_STATUS_BLK_TMO, 1, BLOCK_DESC, seq)
    assert k.block_info(s.ring, 512) == (0, 2, BLOCK_DESC, seq + 1)
    assert s.canary_intact()


@pytest.mark.parametrize("version", [1, 2])
def test_release_frames_writes_kernel_status(version: int) -> None:
    status = 0xDEADBEEF_00000001 if version == 1 else 0xDEAD0001
    after = {}
    for name, k in CORES.items():
        s = frame_ring(version, [F(eth(), status=status, wire=999) for _ in range(4)])
        before = s.ring_bytes()
        k.release_frames(s.ring, [s.offsets[1], s.offsets[3]])
        got = s.ring_bytes()
        width = 8 if version == 1 else 4  # V1 clears the whole unsigned long
        for i, h in enumerate(s.offsets):
            if i in (1, 3):
                assert got[h : h + width] == bytes(width), name
                assert got[h + width : h + s.stride] == before[h + width : h + s.stride], name
            else:
                assert got[h : h + s.stride] == before[h : h + s.stride], name
        assert s.canary_intact()
        after[name] = got
    assert after["c"] == after["python"]


def test_release_block_writes_kernel_status() -> None:
    after = {}
    for name, k in CORES.items():
        s = block_ring([B([F(eth())], status=USER | 0xFF00), B([F(eth())])], block_size=256)
        before = s.ring_bytes()
        k.release_block(s.ring, 256)
        got = s.ring_bytes()
        st = 256 + BLOCK.off_status
        assert got[st : st + 4] == bytes(4), name
        assert got[:st] + got[st + 4 :] == before[:st] + before[st + 4 :], name
        assert k.block_ready(s.ring, 256) is False
        assert k.block_ready(s.ring, 0) is True
        after[name] = got
    assert after["c"] == after["python"]


# -- V3 chains ---------------------------------------------------------------------------------------
def chain(k: ModuleType, b: B, *, block_size: int = 512, count: int | None = None) -> list[int]:
    s = block_ring([b], block_size=block_size)
    _st, num, first, _seq = k.block_info(s.ring, 0)
    return list(k.block_headers(s.ring, first, num if count is None else count, block_size))


def test_block_headers_follows_next_offset(k: ModuleType) -> None:
    # three packets of 60 bytes: each takes TPACKET_ALIGN(80 + 60) = 144
    assert chain(k, B([F(eth()), F(eth()), F(eth())])) == [48, 48 + 144, 48 + 288]
    assert chain(k, B([F(eth()), F(eth()), F(eth())]), count=2) == [48, 48 + 144]
    assert chain(k, B([F(eth()), F(eth()), F(eth())]), count=0) == []


def test_block_headers_one_packet(k: ModuleType) -> None:
    assert chain(k, B([F(eth())])) == [48]


def test_block_headers_chain_leaving_the_block_stops(k: ModuleType) -> None:
    # the second packet's tp_next_offset points past the block's end
    assert chain(k, B([F(eth()), F(eth(), next=400), F(eth())])) == [48, 192]
    # a header that starts inside the block but does not end inside it
    assert chain(k, B([F(eth(), next=512 - 48 - 20), F(eth())], num_pkts=2)) == [48]
    # the first packet itself outside the block
    assert chain(k, B([F(eth())], first=512)) == []
    assert chain(k, B([F(eth())], first=512 - 40)) == []


def test_block_headers_zero_next_before_num_pkts_stops(k: ModuleType) -> None:
    assert chain(k, B([F(eth()), F(eth(), next=0)], num_pkts=3)) == [48, 192]
    assert chain(k, B([F(eth(), next=0), F(eth())])) == [48]


def test_block_headers_unaligned_offsets_stop(k: ModuleType) -> None:
    assert chain(k, B([F(eth()), F(eth(), next=146), F(eth())])) == [48, 192]
    assert chain(k, B([F(eth())], first=50)) == []
    assert chain(k, B([F(eth()), F(eth())], first=49)) == []


def test_block_headers_end_clamped_to_the_ring(k: ModuleType) -> None:
    s = block_ring([B([F(eth()), F(eth()), F(eth())])], block_size=512)
    # an end past the mapping is the mapping's end; count larger than the chain
    assert k.block_headers(s.ring, 48, 100, 1 << 40) == [48, 192, 336]
    assert k.block_headers(s.ring, 48, 100, 300) == [48, 192]
    assert k.block_headers(s.ring, -16, 100, 512) == []


# -- packet bytes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_frame_bytes(k: ModuleType, version: int) -> None:
    frames = [F(eth(60, 1)), F(eth(14, 2)), F(b""), F(eth(100, 3))]
    s = ring_for(version, frames)
    assert k.frame_bytes(batch_for(k, s)) == [f.data for f in frames]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_wire_bytes_sums_tp_len_not_the_snapshot(k: ModuleType, version: int) -> None:
    """The walker's byte count (``afpacket_bytes_total``): the wire lengths, even where the snapshot is cut."""
    frames = [F(eth(60, 1)), F(eth(100, 2), snap=40, wire=100), F(b"", wire=0), F(eth(14, 3), wire=0xFFFFFFFF)]
    s = ring_for(version, frames)
    assert k.wire_bytes(batch_for(k, s)) == 60 + 100 + 0 + 0xFFFFFFFF


@pytest.mark.parametrize("version", [1, 2, 3])
def test_snaplen_and_frame_end_cut_caplen(k: ModuleType, version: int) -> None:
    mac = default_mac(version)
    big = eth(400, 5)
    # the ring's snaplen (150) and tp_snaplen (60) cut
    cut = [F(eth(200, 1)), F(eth(100, 2), snap=60, wire=100)]
    # tp_snaplen 400, but the frame (V1/V2) or the block (V3) ends 120 bytes after tp_mac
    room = 120
    end = [F(eth(100, 3)), F(big)]
    if version == 3:
        rings = [block_ring([B(cut)], block_size=2048, snaplen=150),
                 block_ring([B(end)], block_size=48 + abi.tpacket_align(mac + 100) + mac + room)]
    else:
        rings = [frame_ring(version, list(cut), frame_size=512, snaplen=150),
                 frame_ring(version, list(end), frame_size=mac + room)]
    expected = [[(200, eth(200, 1)[:150]), (100, eth(100, 2)[:60])], [(100, eth(100, 3)), (400, big[:room])]]
    for s, want in zip(rings, expected, strict=True):
        b = batch_for(k, s)
        data = [d for _w, d in want]
        assert k.frame_bytes(b) == data
        cols = columns_of(k, b)
        assert list(cols.caplen) == [len(d) for d in data]
        assert list(cols.wire_len) == [w for w, _d in want]
        pkts = list(k.packets(b, generic_class(k), k.new_pool(generic_class(k))))
        assert [p._caplen() for p in pkts] == [len(d) for d in data]
        assert [bytes(p) for p in pkts] == data
        assert [bytes(p.data) for p in pkts] == data
        _n, out = pcap_of(k, s, True)
        assert [r[2:] for r in parse_pcap(out)] == want
        assert s.canary_intact()


def test_mac_past_the_frame_end_gives_empty_bytes(k: ModuleType) -> None:
    s = frame_ring(2, [F(eth(), mac=300), F(eth(), mac=0xFFFF, snap=0xFFFFFFFF)], frame_size=256)
    b = batch_for(k, s)
    assert k.frame_bytes(b) == [b"", b""]
    assert list(columns_of(k, b).caplen) == [0, 0]
    assert s.canary_intact()


# -- live packet to file record ------------------------------------------------------------------------
DATA = eth(60, 9)
TAG_8100 = DATA[:12] + bytes.fromhex("81002064") + DATA[12:]


@dataclass
class Case:
    """One packet in one kind of ring, and the file record it must become."""

    version: int
    f: F
    data: bytes
    wire: int
    raw: bool = True
    reinsert: bool = False
    snaplen: int = 65535
    cooked: int = 1


def cooked2(protocol: int, ifindex: int, hatype: int, pkttype: int, halen: int, addr: bytes) -> bytes:
    """The 20-byte Linux cooked v2 (SLL2) header, field by field as tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2."""
    return struct.pack("!HHIHBB", protocol, 0, ifindex, hatype, pkttype, halen) + addr[:8].ljust(8, b"\0")


def cooked(pkttype: int, hatype: int, halen: int, addr: bytes, protocol: int) -> bytes:
    return struct.pack("!HHH", pkttype, hatype, halen) + addr[:8].ljust(8, b"\0") + struct.pack("!H", protocol)


RECORD_CASES = {
    "v2-plain": Case(2, F(DATA), DATA, 60),
    "v2-vlan": Case(2, F(DATA, status=USER | VLAN_VALID, tci=0x2064), TAG_8100, 64),
    "v2-vlan-qinq-tpid": Case(
        2, F(DATA, status=USER | VLAN_VALID | TPID_VALID, tci=0x2064, tpid=0x88A8),
        DATA[:12] + bytes.fromhex("88a82064") + DATA[12:], 64,
    ),
    "v2-vlan-tpid-not-valid": Case(2, F(DATA, status=USER | VLAN_VALID, tci=0x2064, tpid=0x88A8), TAG_8100, 64),
    "v2-vlan-tpid-valid-but-zero": Case(
        2, F(DATA, status=USER | VLAN_VALID | TPID_VALID, tci=0x2064, tpid=0), TAG_8100, 64
    ),
    "v2-vlan-tci-zero": Case(
        2, F(DATA, status=USER | VLAN_VALID), DATA[:12] + bytes.fromhex("81000000") + DATA[12:], 64
    ),
    "v2-priority-tag-no-valid-bit": Case(
        2, F(DATA, tci=0x6000), DATA[:12] + bytes.fromhex("81006000") + DATA[12:], 64
    ),
    "v2-vlan-wire-longer": Case(
        2, F(DATA, status=USER | VLAN_VALID, tci=0x2064, wire=1500), TAG_8100, 1504
    ),
    "v2-vlan-snaplen-cut": Case(
        2, F(DATA, status=USER | VLAN_VALID, tci=0x2064), TAG_8100[:16] + DATA[12:20], 64, snaplen=20
    ),
    "v2-vlan-under-12-bytes": Case(2, F(DATA, status=USER | VLAN_VALID, tci=0x2064), DATA[:11], 60, snaplen=11),
    "v2-vlan-exactly-12-bytes": Case(
        2, F(DATA, status=USER | VLAN_VALID, tci=0x2064), DATA[:12] + bytes.fromhex("81002064"), 64, snaplen=12
    ),
    "v2-vlan-reinsert": Case(2, F(DATA, status=USER | VLAN_VALID, tci=0x2064), DATA, 60, reinsert=True),
    "v2-copy-losing-bits": Case(
        2, F(DATA, status=USER | abi.TP_STATUS_COPY | abi.TP_STATUS_LOSING | abi.TP_STATUS_CSUMNOTREADY), DATA, 60
    ),
    "v2-vlan-copy-losing-bits": Case(
        2, F(DATA, status=USER | VLAN_VALID | abi.TP_STATUS_COPY | abi.TP_STATUS_LOSING, tci=0x2064), TAG_8100, 64
    ),
    "v1-plain": Case(1, F(DATA), DATA, 60),
    # V1 has no VLAN fields: a VLAN_VALID bit (and whatever lies where V2 keeps the TCI) adds no tag
    "v1-vlan-bit-never-tags": Case(1, F(DATA, status=USER | VLAN_VALID | TPID_VALID, frac=0x2064), DATA, 60),
    "v1-copy-losing-bits": Case(1, F(DATA, status=USER | abi.TP_STATUS_COPY | abi.TP_STATUS_LOSING), DATA, 60),
    "v3-plain": Case(3, F(DATA), DATA, 60),
    "v3-vlan": Case(3, F(DATA, status=USER | VLAN_VALID, tci=0x2064), TAG_8100, 64),
    "v3-vlan-qinq-tpid": Case(
        3, F(DATA, status=USER | VLAN_VALID | TPID_VALID, tci=0x2064, tpid=0x88A8),
        DATA[:12] + bytes.fromhex("88a82064") + DATA[12:], 64,
    ),
    "v3-priority-tag-no-valid-bit": Case(
        3, F(DATA, tci=0x6000), DATA[:12] + bytes.fromhex("81006000") + DATA[12:], 64
    ),
    "v3-vlan-reinsert": Case(3, F(DATA, status=USER | VLAN_VALID, tci=0x2064), DATA, 60, reinsert=True),
    "v3-copy-losing-bits": Case(3, F(DATA, status=USER | abi.TP_STATUS_COPY | abi.TP_STATUS_LOSING), DATA, 60),
    "v2-dgram": Case(
        2, F(DATA[14:], wire=46, pkttype=abi.PACKET_OTHERHOST), cooked(3, 1, 6, bytes.fromhex("020000000001"), 0x0800)
        + DATA[14:], 62, raw=False,
    ),
    "v2-dgram-vlan-no-tag": Case(
        2, F(DATA[14:], status=USER | VLAN_VALID, tci=0x2064, protocol=abi.ETH_P_IPV6),
        cooked(0, 1, 6, bytes.fromhex("020000000001"), 0x86DD) + DATA[14:], 62, raw=False,
    ),
    "v2-dgram-halen-8": Case(
        2, F(b"xyz", hatype=abi.ARPHRD_NONE, addr=b"ABCDEFGH", pkttype=abi.PACKET_OUTGOING, protocol=0x1234),
        cooked(4, 0xFFFE, 8, b"ABCDEFGH", 0x1234) + b"xyz", 19, raw=False,
    ),
    "v2-dgram-halen-over-8-clamped": Case(
        2, F(b"xyz", addr=b"ABCDEFGH", halen=10), cooked(0, 1, 8, b"ABCDEFGH", 0x0800) + b"xyz", 19, raw=False,
    ),
    "v2-dgram-halen-0": Case(
        2, F(b"xyz", hatype=abi.ARPHRD_LOOPBACK, addr=b"ABCDEFGH", halen=0),
        cooked(0, 772, 0, b"", 0x0800) + b"xyz", 19, raw=False,
    ),
    "v2-dgram-halen-short-zero-pads": Case(
        2, F(b"xyz", addr=b"ABCDEFGH", halen=2), cooked(0, 1, 2, b"AB", 0x0800) + b"xyz", 19, raw=False,
    ),
    "v2-dgram-snaplen-cut": Case(
        2, F(DATA[14:]), cooked(0, 1, 6, bytes.fromhex("020000000001"), 0x0800) + DATA[14:24], 62, raw=False,
        snaplen=10,
    ),
    "v1-dgram": Case(
        1, F(DATA[14:], pkttype=abi.PACKET_BROADCAST),
        cooked(1, 1, 6, bytes.fromhex("020000000001"), 0x0800) + DATA[14:], 62, raw=False,
    ),
    "v3-dgram": Case(
        3, F(DATA[14:], pkttype=abi.PACKET_MULTICAST, status=USER | VLAN_VALID, tci=5),
        cooked(2, 1, 6, bytes.fromhex("020000000001"), 0x0800) + DATA[14:], 62, raw=False,
    ),
    # cooked v2 (SLL2, what tcpdump records for `any`): protocol first, and the interface index
    "v2-dgram-sll2": Case(
        2, F(DATA[14:], wire=46, pkttype=abi.PACKET_OTHERHOST, ifindex=7),
        cooked2(0x0800, 7, 1, 3, 6, bytes.fromhex("020000000001")) + DATA[14:], 66, raw=False, cooked=2,
    ),
    "v1-dgram-sll2-outgoing-big-ifindex": Case(
        1, F(DATA[14:], pkttype=abi.PACKET_OUTGOING, ifindex=0x7FFFFFF0, protocol=abi.ETH_P_IPV6),
        cooked2(0x86DD, 0x7FFFFFF0, 1, 4, 6, bytes.fromhex("020000000001")) + DATA[14:], 66, raw=False, cooked=2,
    ),
    "v3-dgram-sll2-halen-over-8-clamped": Case(
        3, F(b"xyz", addr=b"ABCDEFGH", halen=10, ifindex=1),
        cooked2(0x0800, 1, 1, 0, 8, b"ABCDEFGH") + b"xyz", 23, raw=False, cooked=2,
    ),
    "v3-dgram-sll2-snaplen-cut": Case(
        3, F(DATA[14:], ifindex=3), cooked2(0x0800, 3, 1, 0, 6, bytes.fromhex("020000000001")) + DATA[14:24], 66,
        raw=False, snaplen=10, cooked=2,
    ),
}


def case_frames(c: Case, count: int = 3) -> list[F]:
    return [F(**{**c.f.__dict__, "sec": c.f.sec + i, "frac": c.f.frac + i}) for i in range(count)]


def case_ring(c: Case, count: int = 3) -> Synth:
    s = ring_for(c.version, case_frames(c, count), snaplen=c.snaplen, raw=c.raw, reinsert=c.reinsert)
    s.ring.set_cooked(c.cooked)
    return s


@pytest.mark.parametrize("nanosecond", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("name", list(RECORD_CASES))
def test_pcap_records(name: str, nanosecond: bool, tmp_path: Path) -> None:
    c = RECORD_CASES[name]
    ts = [f.ts_ns(c.version) for f in case_frames(c)]
    expected = b"".join(pcap_record(t, c.data, c.wire, nanosecond) for t in ts)
    outs = {}
    for core_name, k in CORES.items():
        n, out = pcap_of(k, case_ring(c), nanosecond)
        assert n == 3, core_name
        assert out == expected, core_name
        outs[core_name] = out
    assert outs["c"] == outs["python"]
    # afpacket's own reader takes the records behind a file header
    path = tmp_path / "out.pcap"
    with PcapWriter(path, nanosecond=nanosecond) as w:
        w.write_raw(outs["c"])
    with PcapReader(path) as r:
        recs = list(r)
    unit = 1 if nanosecond else 1000
    assert [(x.timestamp_ns, x.data, x.wire_len) for x in recs] == [(t // unit * unit, c.data, c.wire) for t in ts]


@pytest.mark.parametrize("nanosecond", [False, True], ids=["us", "ns"])
@pytest.mark.parametrize("name", list(RECORD_CASES))
def test_pcapng_records(name: str, nanosecond: bool, tmp_path: Path) -> None:
    c = RECORD_CASES[name]
    ts = [f.ts_ns(c.version) for f in case_frames(c)]
    flags = EPB_FLAGS.get(c.f.pkttype, 0)
    expected = b"".join(epb(4, t, c.data, c.wire, flags, nanosecond) for t in ts)
    outs = {}
    for core_name, k in CORES.items():
        n, out = pcapng_of(k, case_ring(c), {c.f.ifindex: 4}, nanosecond)
        assert n == 3, core_name
        assert out == expected, core_name
        outs[core_name] = out
    assert outs["c"] == outs["python"]
    path = tmp_path / "out.pcapng"
    with PcapngWriter(path) as w:
        for i in range(5):
            w.add_interface(f"if{i}", tsresol=9 if nanosecond else 6)
        w.write_raw(outs["c"])
    with PcapngReader(path) as r:
        recs = list(r)
    unit = 1 if nanosecond else 1000
    assert [(x.timestamp_ns, x.data, x.wire_len, x.interface_id, x.flags) for x in recs] == [
        (t // unit * unit, c.data, c.wire, 4, flags) for t in ts
    ]


@pytest.mark.parametrize("pkttype", range(8))
def test_pcapng_direction_flags(k: ModuleType, pkttype: int) -> None:
    s = frame_ring(2, [F(DATA, pkttype=pkttype)])
    _n, out = pcapng_of(k, s, {2: 0}, True)
    assert parse_pcapng(out)[0][4] == EPB_FLAGS.get(pkttype, 0)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_pcap_budget_and_start_stop(k: ModuleType, version: int) -> None:
    frames = [F(eth(100, i), sec=10 + i) for i in range(5)]
    s = ring_for(version, frames, frame_size=2048)
    rec = 16 + 100

    def run(start: int, stop: int, budget: int, prefix: bytes = b"") -> tuple[int, list[bytes]]:
        out = bytearray(prefix)
        n = k.pcap_records(batch_for(k, s), start, stop, out, False, budget)
        assert out[: len(prefix)] == prefix
        return n, [r[3] for r in parse_pcap(out[len(prefix) :])]

    data = [f.data for f in frames]
    assert run(0, 5, -1) == (5, data)
    assert run(0, 99, -1) == (5, data)  # stop past the batch: its end
    assert run(2, 4, -1) == (4, data[2:4])
    assert run(5, 5, -1) == (5, [])
    # stop before a packet once more than budget bytes were appended (so at least one is written)
    assert run(0, 5, 0) == (1, data[:1])
    assert run(0, 5, rec - 1) == (1, data[:1])
    assert run(0, 5, rec) == (2, data[:2])
    assert run(0, 5, 2 * rec + 1) == (3, data[:3])
    assert run(1, 5, rec) == (3, data[1:3])
    # the budget counts what this call appends, not what the buffer held before
    assert run(0, 5, rec, prefix=b"x" * 10_000) == (2, data[:2])


@pytest.mark.parametrize("version", [1, 2, 3])
def test_pcapng_budget_start_stop_and_unknown_ifindex(k: ModuleType, version: int) -> None:
    ifs = [2, 2, 3, 2, -1]
    frames = [F(eth(99, i), ifindex=ifs[i], sec=20 + i) for i in range(5)]
    s = ring_for(version, frames, frame_size=2048)
    rec = 28 + 100 + 16

    def run(start: int, stop: int, ids: dict[int, int], budget: int = -1) -> tuple[int, list[tuple[int, bytes]]]:
        out = bytearray(b"prefix")
        n = k.pcapng_records(batch_for(k, s), start, stop, out, ids, True, budget)
        assert out[:6] == b"prefix"
        return n, [(r[0], r[3]) for r in parse_pcapng(out[6:])]

    d = [f.data for f in frames]
    # stops before the first packet of an interface not described yet
    assert run(0, 5, {2: 0}) == (2, [(0, d[0]), (0, d[1])])
    assert run(0, 5, {3: 1}) == (0, [])
    assert run(2, 5, {2: 0, 3: 1}) == (4, [(1, d[2]), (0, d[3])])
    assert run(0, 5, {2: 0, 3: 1, -1: 7}) == (5, [(0, d[0]), (0, d[1]), (1, d[2]), (0, d[3]), (7, d[4])])
    assert run(1, 3, {2: 0, 3: 1}) == (3, [(0, d[1]), (1, d[2])])
    assert run(0, 99, {2: 0, 3: 1, -1: 7})[0] == 5
    assert run(0, 5, {2: 0, 3: 1, -1: 7}, budget=0) == (1, [(0, d[0])])
    assert run(0, 5, {2: 0, 3: 1, -1: 7}, budget=rec) == (2, [(0, d[0]), (0, d[1])])
    assert run(0, 5, {2: 0, 3: 1, -1: 7}, budget=2 * rec) == (3, [(0, d[0]), (0, d[1]), (1, d[2])])


# -- columns -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_fill_columns(k: ModuleType, version: int) -> None:
    frames = [
        F(eth(60), sec=1, frac=999_999, tci=0x2064, rxhash=0xDEADBEEF, pkttype=abi.PACKET_OUTGOING, ifindex=7,
          wire=1514, status=USER | VLAN_VALID),
        F(eth(14), sec=0xFFFFFFFF, frac=0, tci=0, rxhash=1, pkttype=abi.PACKET_BROADCAST, ifindex=-5),
        F(b"", sec=0, frac=0xFFFFFFFF, tci=0xFFFF, pkttype=0xFF, ifindex=0x7FFFFFFF),
    ]
    s = ring_for(version, frames)
    b = batch_for(k, s)
    cols = columns_of(k, b)
    frac_ns = 1000 if version == 1 else 1
    assert list(cols.timestamp_ns) == [f.sec * 1_000_000_000 + f.frac * frac_ns for f in frames]
    assert list(cols.caplen) == [60, 14, 0]
    assert list(cols.wire_len) == [1514, 14, 0]
    assert list(cols.vlan_tci) == ([0, 0, 0] if version == 1 else [0x2064, 0, 0xFFFF])
    assert list(cols.rxhash) == ([0xDEADBEEF, 1, 0] if version == 3 else [0, 0, 0])
    assert list(cols.pkttype) == [4, 1, 0xFF]
    assert list(cols.ifindex) == [7, -5, 0x7FFFFFFF]
    # the same arrays from the other core, and fill_columns leaves entries past count alone
    other = PY if k is C else C
    arrays = [array(code, [99] * 5) for code in COLUMNS.values()]
    other.fill_columns(batch_for(other, s), *arrays)
    assert [list(a[:3]) for a in arrays] == [list(v) for v in cols.to_dict().values()]
    assert all(list(a[3:]) == [99, 99] for a in arrays)


def test_fill_columns_v3_tci_is_the_low_16_bits(k: ModuleType) -> None:
    s = block_ring([B([F(DATA, tci=0xABCD0064, status=USER | VLAN_VALID)])])
    b = v3_batch(k, s)
    assert list(columns_of(k, b).vlan_tci) == [0x0064]
    _n, out = pcap_of(k, s, True)
    assert parse_pcap(out)[0][3] == DATA[:12] + bytes.fromhex("81000064") + DATA[12:]


# -- Batch ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_batch_rejects_headers_outside_frames(k: ModuleType, version: int) -> None:
    s = frame_ring(version, [F(eth()) for _ in range(4)])
    size = s.size
    for hdrs in ([size], [-256], [2], [0, 258], [size - 16], [0, 1 << 40]):
        with pytest.raises(ValueError):
            k.Batch(s.ring, hdrs, 0, -1)
    assert k.Batch(s.ring, [0, 256, 768], 0, -1).count == 3
    assert k.Batch(s.ring, [], 0, -1).count == 0
    # a frame too small for its header
    small = frame_ring(version, [None] * 4, frame_size=16)
    with pytest.raises(ValueError):
        k.Batch(small.ring, [0], 0, -1)
    # a header whose sockaddr_ll would leave the ring
    tight = frame_ring(version, [None], frame_size=48)
    with pytest.raises(ValueError):
        k.Batch(tight.ring, [0], 0, -1)


def test_batch_rejects_headers_outside_the_block(k: ModuleType) -> None:
    s = block_ring([B([F(eth())]), B([F(eth())])], block_size=256)
    assert k.Batch(s.ring, [48], 256, 0).count == 1
    assert k.Batch(s.ring, [256 - 48], 256, 0).count == 1  # header ends at the block end; sll in the next
    for hdrs, end in (([256 - 44], 256), ([512 - 48], 512), ([50], 256), ([-4], 256), ([48, 600], 512)):
        with pytest.raises(ValueError):
            k.Batch(s.ring, hdrs, end, 0)
    # end past the mapping is the mapping's end
    assert k.Batch(s.ring, [300], 1 << 20, 256).end == 512


def test_batch_attributes(k: ModuleType) -> None:
    s = block_ring([B([F(eth()), F(eth())])], block_size=512)
    b = v3_batch(k, s)
    assert (b.count, b.end, b.block, list(b.hdrs)) == (2, 512, 0, [48, 192])
    assert b.ring is s.ring
    assert b.views == []
    assert b.copies is None
    assert b.expire() == []
    assert b.views is None


# -- packets and expiry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_packets_expire_returns_only_packets_kept(k: ModuleType, version: int) -> None:
    frames = [F(eth(60, i)) for i in range(5)]
    s = ring_for(version, frames)
    cls = generic_class(k)
    pool = k.new_pool(cls)
    b = batch_for(k, s)
    kept = []
    seen = []
    for i, p in enumerate(k.packets(b, cls, pool)):
        assert isinstance(p, k.PacketBase)
        seen.append(bytes(p))
        if i in (1, 3):
            kept.append(p)
    del p
    assert seen == [f.data for f in frames]
    held = b.expire(pool)
    assert sorted(id(x) for x in held) == sorted(id(x) for x in kept)
    assert [x._hdr for x in kept] == [b.hdrs[1], b.hdrs[3]]
    for x in kept:
        with pytest.raises(PacketExpiredError):
            bytes(x)


def test_packets_expire_nothing_kept(k: ModuleType) -> None:
    s = frame_ring(2, [F(eth(60, i)) for i in range(4)])
    cls = generic_class(k)
    pool = k.new_pool(cls)
    b = batch_for(k, s)
    total = sum(len(p.data) for p in k.packets(b, cls, pool))
    assert total == 240
    assert b.expire(pool) == []


@pytest.mark.parametrize("version", [1, 2, 3])
def test_packet_data_expires_and_views_are_released(k: ModuleType, version: int) -> None:
    s = ring_for(version, [F(eth(60, 1)), F(eth(30, 2))])
    cls = generic_class(k)
    b = batch_for(k, s)
    pkts = list(k.packets(b, cls, k.new_pool(cls)))
    views = [p.data for p in pkts]
    assert [bytes(v) for v in views] == [eth(60, 1), eth(30, 2)]
    assert [p._caplen() for p in pkts] == [60, 30]
    # a view is zero copy: it sees the ring
    mac = default_mac(version)
    s.buf[b.hdrs[0] + mac] ^= 0xFF
    assert views[0][0] == eth(60, 1)[0] ^ 0xFF
    b.expire()
    for p in pkts:
        with pytest.raises(PacketExpiredError):
            p.data  # noqa: B018
        with pytest.raises(PacketExpiredError):
            bytes(p)
        with pytest.raises(PacketExpiredError):
            p._caplen()
    for v in views:
        with pytest.raises(ValueError, match="released"):
            bytes(v)
    with pytest.raises(PacketExpiredError):
        pkts[0].timestamp_ns  # noqa: B018


def test_packet_copies_serve_data(k: ModuleType) -> None:
    s = frame_ring(2, [F(eth(60, 1)), F(eth(60, 2))])
    b = batch_for(k, s)
    b.copies = {256: b"full copy"}
    pkts = list(k.packets(b, generic_class(k), k.new_pool(generic_class(k))))
    assert [bytes(p) for p in pkts] == [eth(60, 1), b"full copy"]
    assert [bytes(p.data) for p in pkts] == [eth(60, 1), b"full copy"]
    assert [p._caplen() for p in pkts] == [60, 9]


# -- transmit ------------------------------------------------------------------------------------------
def tx_ring(version: int, statuses: list[int], frame_size: int = 256) -> tuple[bytearray, list[int]]:
    lay = LAYOUTS[version]
    buf = bytearray(b"\x5a" * (len(statuses) * frame_size))
    offsets = [i * frame_size for i in range(len(statuses))]
    for h, stt in zip(offsets, statuses, strict=True):
        struct.pack_into("=I", buf, h + lay.off_status, stt)
        if version == 1:
            struct.pack_into("=I", buf, h + 4, 0)
    return buf, offsets


def tx_params(version: int) -> tuple[int, ...]:
    lay = LAYOUTS[version]
    return (version, lay.off_status, lay.off_len, lay.off_snaplen, lay.off_mac, lay.off_net)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_tx_fill(version: int) -> None:
    lay = LAYOUTS[version]
    doff = lay.sll_offset
    frames: list[Any] = [eth(60, 1), bytearray(eth(100, 2)), memoryview(eth(14, 3)), eth(200, 4), eth(30, 5)]
    busy = abi.TP_STATUS_SEND_REQUEST
    outs = {}
    for name, k in CORES.items():
        # 6 slots, slot 1 is still being sent; fill from slot 3 on: 3, 4, 5, 0 then slot 1 is busy
        buf, offs = tx_ring(version, [0, abi.TP_STATUS_SENDING, 0, 0, 0, 0])
        before = bytes(buf)
        done, nbytes = k.tx_fill(buf, offs, 3, frames, 0, 10, doff, 14, 1500, tx_params(version))
        assert (done, nbytes) == (4, 60 + 100 + 14 + 200), name
        for slot, f in zip([3, 4, 5, 0], frames, strict=False):
            h = offs[slot]
            ln = len(f)
            assert struct.unpack_from("=I", buf, h + lay.off_status)[0] == busy, name
            assert struct.unpack_from("=I", buf, h + lay.off_len)[0] == ln
            assert struct.unpack_from("=I", buf, h + lay.off_snaplen)[0] == ln
            assert struct.unpack_from("=H", buf, h + lay.off_mac)[0] == doff
            assert struct.unpack_from("=H", buf, h + lay.off_net)[0] == doff
            assert bytes(buf[h + doff : h + doff + ln]) == bytes(f)
            assert buf[h + doff + ln : h + 256] == before[h + doff + ln : h + 256]
        for slot in (1, 2):
            assert buf[offs[slot] : offs[slot] + 256] == before[offs[slot] : offs[slot] + 256], name
        outs[name] = bytes(buf)
    assert outs["c"] == outs["python"]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_tx_fill_stops(version: int) -> None:
    doff = LAYOUTS[version].sll_offset
    frames = [eth(60, 1), eth(60, 2), eth(10, 3)[:10], eth(60, 4)]
    results = {}
    for name, k in CORES.items():
        res = []
        for stt in (abi.TP_STATUS_SEND_REQUEST, abi.TP_STATUS_SENDING, abi.TP_STATUS_WRONG_FORMAT):
            buf, offs = tx_ring(version, [0, stt, 0, 0])
            res.append((k.tx_fill(buf, offs, 0, frames, 0, 4, doff, 14, 1500, tx_params(version)), bytes(buf)))
            assert res[-1][0] == (1, 60), name
        # too short a frame stops the fill before it, wherever the slots are free
        buf, offs = tx_ring(version, [0, 0, 0, 0])
        res.append((k.tx_fill(buf, offs, 2, frames, 0, 4, doff, 14, 1500, tx_params(version)), bytes(buf)))
        assert res[-1][0] == (2, 120), name
        # too long, from the middle of the frame list
        buf, offs = tx_ring(version, [0, 0, 0, 0])
        res.append((k.tx_fill(buf, offs, 0, frames, 3, 4, doff, 14, 59, tx_params(version)), bytes(buf)))
        assert res[-1][0] == (0, 0), name
        # room bounds the run; first picks up where the caller left off
        buf, offs = tx_ring(version, [0, 0, 0, 0])
        res.append((k.tx_fill(buf, offs, 1, frames, 1, 1, doff, 14, 1500, tx_params(version)), bytes(buf)))
        assert res[-1][0] == (1, 60), name
        res.append((k.tx_fill(buf, offs, 0, frames, 3, 5, doff, 1, 1500, tx_params(version)), bytes(buf)))
        assert res[-1][0] == (1, 60), name
        # a done slot (status back to AVAILABLE) or one with other bits is free again
        buf, offs = tx_ring(version, [1 << 29, 0, 0, 0])
        res.append((k.tx_fill(buf, offs, 0, frames, 0, 2, doff, 14, 1500, tx_params(version)), bytes(buf)))
        assert res[-1][0] == (2, 120), name
        results[name] = res
    assert results["c"] == results["python"]


# -- edges: whatever the answer, both cores must give the same one ----------------------------------------
def agree(fn: Callable[[ModuleType], Any]) -> None:
    """``fn`` run over each core (each on its own ring) must return equal values or raise the same type."""
    got = {name: outcome(lambda k=k: fn(k)) for name, k in CORES.items()}
    assert got["c"] == got["python"], f"c={got['c']!r} python={got['python']!r}"


def records_at(start: int, stop: int, fmt: str) -> Callable[[ModuleType], Any]:
    def run(k: ModuleType) -> Any:
        s = frame_ring(2, [F(eth(60, i)) for i in range(3)])
        return pcap_of(k, s, False, start, stop) if fmt == "pcap" else pcapng_of(k, s, {2: 0}, False, start, stop)

    return run


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize(("start", "stop"), [(0, 3), (3, 3), (3, 10), (2, 1), (5, 10), (-1, 2)])
def test_records_start_stop_out_of_range_agree(fmt: str, start: int, stop: int) -> None:
    agree(records_at(start, stop, fmt))


def one_record(f: F, fmt: str, *, raw: bool = True, ids: dict[int, int] | None = None) -> Callable[[ModuleType], Any]:
    def run(k: ModuleType) -> Any:
        s = frame_ring(2, [f], raw=raw)
        return pcap_of(k, s, True) if fmt == "pcap" else pcapng_of(k, s, ids or {2: 0}, True)

    return run


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize(
    "case", ["dgram-wire+16", "vlan-wire+4", "sec+nsec-carry", "iface-id-2**32", "plain-max-wire", "max-sec-no-carry"]
)
def test_records_values_past_32_bits_agree(case: str, fmt: str) -> None:
    """Corrupt headers whose record fields do not fit 32 bits (the kernel never writes these)."""
    top = 0xFFFFFFFF
    run = {
        "dgram-wire+16": one_record(F(b"abc", wire=top - 5), fmt, raw=False),
        "vlan-wire+4": one_record(F(DATA, wire=top - 1, status=USER | VLAN_VALID, tci=5), fmt),
        "sec+nsec-carry": one_record(F(b"abc", sec=top, frac=top), fmt),
        "iface-id-2**32": one_record(F(b"abc"), fmt, ids={2: 1 << 32}),
        "plain-max-wire": one_record(F(b"abc", wire=top), fmt),
        "max-sec-no-carry": one_record(F(b"abc", sec=top, frac=999_999_999), fmt),
    }[case]
    agree(run)


def expired_batch(op: str) -> Callable[[ModuleType], Any]:
    def run(k: ModuleType) -> Any:
        s = frame_ring(2, [F(eth(60, i)) for i in range(2)])
        b = batch_for(k, s)
        b.expire()
        if op == "frame_bytes":
            return k.frame_bytes(b)
        if op == "wire_bytes":
            return k.wire_bytes(b)
        if op == "pcap_records":
            return k.pcap_records(b, 0, 2, bytearray(), True)
        if op == "pcapng_records":
            return k.pcapng_records(b, 0, 2, bytearray(), {2: 0}, True)
        if op == "fill_columns":
            return k.fill_columns(b, *[array(code, bytes(array(code).itemsize * 2)) for code in COLUMNS.values()])
        return len(list(k.packets(b, generic_class(k), k.new_pool(generic_class(k)))))

    return run


@pytest.mark.parametrize("op", ["frame_bytes", "wire_bytes", "pcap_records", "pcapng_records", "fill_columns",
                                "packets"])
def test_reading_an_expired_batch_agrees(op: str) -> None:
    """A batch that went back to the kernel: its frames may be rewritten under the reader."""
    agree(expired_batch(op))


def fresh_frames() -> Synth:
    return frame_ring(2, [F(eth()) for _ in range(4)], frame_size=260)


def fresh_blocks() -> Synth:
    return block_ring([B([F(eth())]), B([F(eth())])], block_size=256)


def fill_short(k: ModuleType) -> Any:
    s = fresh_frames()
    return k.fill_columns(k.Batch(s.ring, [0, 260], 0, -1), *[array(code, [0]) for code in COLUMNS.values()])


def tx(k: ModuleType, offsets: Any = None, head: int = 0, first: int = 0) -> Any:
    buf, offs = tx_ring(2, [0, 0])
    offs = offs if offsets is None else offsets
    return k.tx_fill(buf, offs, head, [eth(60)] * 2, first, 2, 32, 14, 1500, tx_params(2)), bytes(buf)


INVALID: dict[str, Callable[[ModuleType], Any]] = {
    "release_frames-4-aligned-not-8": lambda k: (k.release_frames((s := fresh_frames()).ring, [260]), s.ring_bytes()),
    "release_frames-unaligned": lambda k: (k.release_frames((s := fresh_frames()).ring, [2]), s.ring_bytes()),
    "release_frames-negative": lambda k: (k.release_frames((s := fresh_frames()).ring, [-8]), s.ring_bytes()),
    "release_frames-past-the-ring": lambda k: k.release_frames(fresh_frames().ring, [1040]),
    "ready_frames-negative-start": lambda k: k.ready_frames((s := fresh_frames()).ring, s.offsets, -1, 2),
    "ready_frames-start-past-the-end": lambda k: k.ready_frames((s := fresh_frames()).ring, s.offsets, 4, 2),
    "ready_frames-offset-past-the-ring": lambda k: k.ready_frames(fresh_frames().ring, [4096], 0, 2),
    "ready_frames-offsets-tuple": lambda k: k.ready_frames((s := fresh_frames()).ring, tuple(s.offsets), 0, 2),
    "block_ready-unaligned-block": lambda k: k.block_ready(fresh_blocks().ring, 4),
    "block_ready-past-the-ring": lambda k: k.block_ready(fresh_blocks().ring, 512),
    "block_info-desc-past-the-ring": lambda k: k.block_info(fresh_blocks().ring, 480),
    "release_block-negative": lambda k: (k.release_block((s := fresh_blocks()).ring, -8), s.ring_bytes()),
    "fill_columns-short-arrays": fill_short,
    "tx_fill-negative-first": lambda k: tx(k, first=-1),
    "tx_fill-head-past-the-end": lambda k: tx(k, head=2),
    "tx_fill-offsets-tuple": lambda k: tx(k, offsets=(0, 256)),
    "tx_fill-slot-past-the-map": lambda k: tx(k, offsets=[0, 1 << 20]),
    "pcap_records-out-bytes": lambda k: k.pcap_records(batch_for(k, fresh_frames()), 0, 4, b"", True),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_arguments_agree(case: str) -> None:
    """Arguments no caller in afpacket passes: the cores should still fail (or not) alike."""
    agree(INVALID[case])


# -- fuzz: random rings, both cores ------------------------------------------------------------------------
def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", value) or ("raise", exception type name) of ``fn(*args)``: what two cores must agree on."""
    try:
        return "ok", fn(*args)
    except Exception as e:
        return "raise", type(e).__name__


U32 = st.one_of(
    st.integers(0, 300), st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]), st.integers(0, 2**32 - 1)
)
U16 = st.one_of(st.integers(0, 300), st.sampled_from([0, 0xFFFF, 0x8000]), st.integers(0, 0xFFFF))
STATUS = st.one_of(
    st.sets(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 29, 31])).map(lambda bits: sum(1 << b for b in bits)),
    st.integers(0, 2**32 - 1),
)
FRAC = st.one_of(st.integers(0, 999_999_999), U32)


@st.composite
def fuzz_frame(draw: st.DrawFn, version: int, room: int) -> F:
    plausible = default_mac(version)
    mac = draw(st.one_of(st.sampled_from([plausible, plausible + 2]), st.integers(0, room + 8), U16))
    n = draw(st.integers(0, max(0, room - 40)))
    status = draw(STATUS)
    if version == 1:
        status |= draw(st.sampled_from([0, 1 << 32, 0xFFFFFFFF << 32]))
    return F(
        data=b"",  # the fuzz ring's bytes are random already
        status=status,
        wire=draw(st.one_of(st.just(n), U32)),
        snap=draw(st.one_of(st.just(n), U32)),
        mac=mac,
        sec=draw(U32),
        frac=draw(FRAC),
        tci=draw(st.one_of(U16, st.integers(0, 2**32 - 1))) if version == 3 else draw(U16),
        tpid=draw(st.one_of(st.sampled_from([0, 0x8100, 0x88A8]), U16)),
        rxhash=draw(U32),
        ifindex=draw(st.one_of(st.sampled_from([1, 2, 3, -1]), st.integers(-(2**31), 2**31 - 1))),
        pkttype=draw(st.one_of(st.integers(0, 7), st.integers(0, 255))),
        hatype=draw(U16),
        protocol=draw(U16),
        addr=draw(st.binary(min_size=0, max_size=8)),
        halen=draw(st.one_of(st.integers(0, 10), st.integers(0, 255))),
        next=draw(st.one_of(st.sampled_from([0, 16, 64, 144, 160]), st.integers(0, 600), U32)),
    )


@st.composite
def fuzz_ring(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([1, 2, 3]))
    spec: dict[str, Any] = {
        "version": version,
        "raw": draw(st.booleans()),
        "reinsert": draw(st.booleans()),
        "snaplen": draw(st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1))),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "nanosecond": draw(st.booleans()),
        "budget": draw(st.one_of(st.just(-1), st.integers(0, 600))),
        "ids": draw(st.dictionaries(st.sampled_from([1, 2, 3, -1]), st.integers(0, 2**32 - 1), max_size=4)),
    }
    if version == 3:
        stride = draw(st.sampled_from([128, 256, 512]))
        nblocks = draw(st.integers(1, 2))
        spec["blocks"] = [
            {
                "status": draw(STATUS),
                "num": draw(st.one_of(st.integers(0, 6), U32)),
                "first": draw(st.one_of(st.just(BLOCK_DESC), st.integers(0, stride + 16), U32)),
                "seq": draw(st.integers(0, 2**64 - 1)),
                "packets": draw(st.lists(fuzz_frame(3, stride), max_size=5)),
            }
            for _ in range(nblocks)
        ]
        spec["size"] = stride * nblocks
    else:
        stride = draw(st.sampled_from([32, 48, 64, 96, 128, 256]))
        nframes = draw(st.integers(1, 5))
        spec["frames"] = [draw(fuzz_frame(version, stride)) for _ in range(nframes)]
        spec["size"] = stride * nframes
        offsets = [i * stride for i in range(nframes)]
        spec["ready"] = (draw(st.integers(0, nframes - 1)), draw(st.integers(0, nframes + 2)))
        anywhere = st.integers(-8, spec["size"] + 8)
        spec["hdrs"] = draw(st.lists(st.one_of(st.sampled_from(offsets), anywhere), max_size=6))
        spec["release"] = draw(st.lists(st.sampled_from(offsets), max_size=3))
    spec["stride"] = stride
    spec["start"] = draw(st.integers(0, 6))
    spec["stop"] = draw(st.integers(0, 8))
    return spec


def build_fuzz(spec: dict[str, Any]) -> Synth:
    """The ring a spec describes: random bytes, with headers written over them."""
    size, stride, version = spec["size"], spec["stride"], spec["version"]
    buf = bytearray(random.Random(spec["seed"]).randbytes(size)) + CANARY
    hsize = LAYOUTS[version].hdrlen
    if version == 3:
        for i, blk in enumerate(spec["blocks"]):
            boff = i * stride
            desc = (1, 0, blk["status"], blk["num"], blk["first"], stride, blk["seq"], 0, 0, 0, 0)
            abi.TPACKET_BLOCK_DESC.pack_into(buf, boff, *desc)
            pos = boff + blk["first"]
            for f in blk["packets"]:
                if pos + hsize > size:
                    break
                write_frame(buf, 3, pos, f, boff + stride, f.next or 0)
                pos += f.next or 0
                if not f.next:
                    break
        ring = RingMemory(buf, size, 3, spec["snaplen"], raw=spec["raw"], reinsert=spec["reinsert"])
        return Synth(buf, ring, size, [i * stride for i in range(len(spec["blocks"]))], stride)
    for i, f in enumerate(spec["frames"]):
        h = i * stride
        if h + hsize <= size:
            write_frame(buf, version, h, f, h + stride)
    ring = RingMemory(
        buf, size, version, spec["snaplen"], raw=spec["raw"], reinsert=spec["reinsert"], frame_size=stride
    )
    return Synth(buf, ring, size, [i * stride for i in range(len(spec["frames"]))], stride)


def run_fuzz(k: ModuleType, spec: dict[str, Any]) -> list[Any]:
    """Every kernel over one random ring: the transcript both cores must produce."""
    s = build_fuzz(spec)
    ring, out = s.ring, []
    batches = []
    if spec["version"] == 3:
        for boff in s.offsets:
            out.append(outcome(k.block_ready, ring, boff))
            info = outcome(k.block_info, ring, boff)
            out.append(info)
            if info[0] != "ok":
                continue
            _st, num, first, _seq = info[1]
            end = boff + s.stride
            hdrs = outcome(k.block_headers, ring, boff + first, num, end)
            out.append(hdrs)
            if hdrs[0] == "ok":
                batches.append((hdrs[1], end, boff))
    else:
        ready_start, limit = spec["ready"]
        out.append(outcome(k.ready_frames, ring, s.offsets, ready_start, limit))
        batches.append((spec["hdrs"], 0, -1))
        batches.append((list(s.offsets), 0, -1))
    cls = generic_class(k)
    every_if = {1: 0, 2: 1, 3: 2, -1: 3}
    for hdrs, end, block in batches:
        made = outcome(k.Batch, ring, list(hdrs), end, block)
        out.append(made if made[0] == "raise" else ("ok", "batch"))
        if made[0] != "ok":
            continue
        b = made[1]
        out.append(outcome(k.frame_bytes, b))
        # start within the batch and not after stop (test_records_start_stop_out_of_range_agree has the rest)
        start = min(spec["start"], b.count)
        stop = max(start, spec["stop"])
        for nano in (spec["nanosecond"], not spec["nanosecond"]):
            for args in ((start, stop), (0, b.count)):
                buf = bytearray(b"head")
                budget = spec["budget"] if args[0] == start else -1
                out += [outcome(k.pcap_records, b, *args, buf, nano, budget), bytes(buf)]
                buf = bytearray()
                ids = spec["ids"] if args[0] == start else every_if
                out += [outcome(k.pcapng_records, b, *args, buf, ids, nano, budget), bytes(buf)]
        arrays = [array(code, bytes(array(code).itemsize * b.count)) for code in COLUMNS.values()]
        out.append(outcome(k.fill_columns, b, *arrays))
        out.append([a.tobytes() for a in arrays])
        pool = k.new_pool(cls)
        pkts = outcome(lambda b=b, pool=pool: list(k.packets(b, cls, pool)))
        if pkts[0] == "ok":
            out.append([(bytes(p), bytes(p.data), p._caplen()) for p in pkts[1]])
        else:
            out.append(pkts)
        # every packet is still referenced (by pkts): expire hands them all back
        out.append(outcome(lambda b=b, pool=pool: len(b.expire(pool))))
    if spec["version"] == 3:
        for boff in s.offsets:
            out.append(outcome(k.release_block, ring, boff))
    else:
        out.append(outcome(k.release_frames, ring, spec["release"]))
    out.append(s.ring_bytes())
    assert s.canary_intact()
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fuzz_ring())
def test_fuzz_cores_agree(spec: dict[str, Any]) -> None:
    c_out = run_fuzz(C, spec)
    py_out = run_fuzz(PY, spec)
    assert len(c_out) == len(py_out)
    for i, (a, b) in enumerate(zip(c_out, py_out, strict=True)):
        assert a == b, f"step {i}: c={a!r} python={b!r}"

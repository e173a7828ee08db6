"""The flow table in C (``afpacket.ring._kernels.FlowTable``) against its specification in pure Python.

No root, no network. Every test feeds the same packets to both tables and wants the same finished flows
(``take()``: every field, its type, and the order they ended in) and the same counters (``stats()``):
crafted conversations over every link type, VLAN and QinQ tags, IPv6 extension headers, fragments, every
prefix of a packet (a snapshot cut anywhere), the timeouts and TCP ends, eviction; ``add_pcap`` over files
written by :class:`PcapWriter` and by hand (big-endian), cut mid-record; and hypothesis-made streams of
random conversations, random truncation and random bytes with small timeouts, so every way a flow ends is
taken. ``scripts/asan.sh`` runs this module under AddressSanitizer, where any read past a packet aborts.
"""

from __future__ import annotations

import ctypes
import gc
import mmap
import random
import socket
import struct
from array import array
from pathlib import Path
from typing import Any

import pytest
from conftest import ether
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_flows import A, B, eth4, icmp, ip4, ip6, tcp, udp

from afpacket.flows import _table_py
from afpacket.ring import _kernels
from afpacket.savefile import PcapWriter
from afpacket.savefile.linktype import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
LINKTYPES = (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4,
             LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2, 147)
Packet = tuple[int, bytes, int, int, int]  # ts_ns, data, linktype, vlan_tci, ifindex


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: both tables are used directly."""
    return "any"


class Guarded:
    """Bytes placed so that their last byte is the last one before a page that cannot be read: the C table
    reads packets from here, so a read past a packet's end crashes the run (with or without ASan, which
    cannot see past the end of a small bytes object inside CPython's own allocator)."""

    def __init__(self, size: int = 1 << 17) -> None:
        page = mmap.PAGESIZE
        self.span = -(-size // page) * page
        self.m = mmap.mmap(-1, self.span + page)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(self.m))
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mprotect(ctypes.c_void_p(addr + self.span), ctypes.c_size_t(page), 0) != 0:  # PROT_NONE
            raise OSError(ctypes.get_errno(), "mprotect")
        self.mv = memoryview(self.m)

    def __call__(self, data: bytes | memoryview) -> memoryview:
        start = self.span - len(data)
        self.mv[start:self.span] = data
        return self.mv[start:self.span]


GUARD = Guarded()


class Pair:
    """The C table and the Python one, fed alike; :meth:`check` compares what they hand out."""

    def __init__(self, idle: int = 120 * NS, active: int = 1800 * NS, grace: int = 2 * NS,
                 max_flows: int = 1_000_000) -> None:
        self.c: Any = _kernels.FlowTable(idle, active, grace, max_flows)
        self.py = _table_py.FlowTable(idle, active, grace, max_flows)
        self.ended: list[tuple[Any, ...]] = []

    def add(self, ts: int, data: bytes, linktype: int = LINKTYPE_ETHERNET, tci: int = 0, ifindex: int = 0) -> None:
        self.c.add(ts, GUARD(data), linktype, tci, ifindex)
        self.py.add(ts, data, linktype, tci, ifindex)

    def feed(self, packets: list[Packet]) -> None:
        for p in packets:
            self.add(*p)

    def expire(self, now: int) -> None:
        self.c.expire(now)
        self.py.expire(now)

    def check(self) -> list[tuple[Any, ...]]:
        """The flows both finished since the last check (equal, field types included) and equal stats."""
        got_c, got_py = self.c.take(), self.py.take()
        assert got_c == got_py
        assert [tuple(map(type, r)) for r in got_c] == [tuple(map(type, r)) for r in got_py]
        assert type(got_c) is list and all(type(r) is tuple and len(r) == 17 for r in got_c)
        assert self.c.stats() == self.py.stats()
        assert type(self.c.stats()) is tuple
        self.ended += got_c
        return list(got_c)

    def finish(self) -> list[tuple[Any, ...]]:
        self.c.finish()
        self.py.finish()
        return self.check()


def a6(n: int) -> str:
    return f"2001:db8::{n:x}"


# -- link types and header shapes ---------------------------------------------------------------------------
def sll(et: int, ip: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, b"\2" * 8, et) + ip


def sll2(et: int, ip: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", et, 0, 2, 1, 0, 6, b"\2" * 8) + ip


def framings(ip: bytes, et: int) -> list[tuple[bytes, int]]:
    """One IP packet under every link type (and a few shapes that are not IP for that link type)."""
    v4 = et == 0x0800
    return [
        (ether(B, A, et, ip), LINKTYPE_ETHERNET),
        (ether(B, A, 0x8100, struct.pack("!HH", 0x2000 | 42, et) + ip), LINKTYPE_ETHERNET),
        (ether(B, A, 0x88A8, struct.pack("!HHHH", 100, 0x8100, 200, et) + ip), LINKTYPE_ETHERNET),
        (ether(B, A, 0x8100, struct.pack("!HH", 7, 0x88A8) + struct.pack("!HH", 4095, et) + ip), LINKTYPE_ETHERNET),
        (ether(B, A, 0x0806, ip), LINKTYPE_ETHERNET),
        (sll(et, ip), LINKTYPE_LINUX_SLL), (sll2(et, ip), LINKTYPE_LINUX_SLL2), (sll(0x0806, ip), LINKTYPE_LINUX_SLL),
        (ip, LINKTYPE_RAW), (ip, LINKTYPE_IPV4), (ip, LINKTYPE_IPV6),
        (struct.pack("<I", 2 if v4 else 30) + ip, LINKTYPE_NULL),
        (struct.pack(">I", 2 if v4 else 24) + ip, LINKTYPE_NULL),
        (struct.pack(">I", 2 if v4 else 28) + ip, LINKTYPE_LOOP),
        (struct.pack("<I", 2 if v4 else 28) + ip, LINKTYPE_LOOP),  # LOOP is network order: not IP
        (struct.pack(">I", 7) + ip, LINKTYPE_NULL),
        (ip, 147), (ip, -1), (ip, 1 << 70),
    ]


def ip_packets() -> list[tuple[bytes, int]]:
    """(IP packet, EtherType): every protocol and header shape the parser reads."""
    out = []
    for proto, l4 in ((17, udp(5353, 53, b"q" * 30)), (6, tcp(40000, 80, "SA", b"x" * 7)), (1, icmp(8, 0)),
                      (132, struct.pack("!HHII", 2905, 2905, 1, 0) + b"s" * 20), (47, b"\0" * 12)):
        out.append((ip4("10.0.0.1", "10.0.0.2", proto, l4), 0x0800))
        out.append((ip4("10.0.0.1", "10.0.0.2", proto, l4, frag=185), 0x0800))  # a later fragment
        out.append((ip4("10.0.0.1", "10.0.0.2", proto, l4, frag=0x2000), 0x0800))  # first fragment (MF)
        six = 58 if proto == 1 else proto
        out.append((ip6(a6(1), a6(2), six, l4), 0x86DD))
        out.append((ip6(a6(1), a6(2), six, l4, ext=b"\0" * 8), 0x86DD))  # hop-by-hop
    # options in the IPv4 header; an IHL below 5; a total length below the IHL
    opt = ip4("10.0.0.3", "10.0.0.4", 17, udp(1, 2, b"o"))
    out.append((bytes([0x46]) + opt[1:20] + b"\1\1\1\0" + opt[20:], 0x0800))
    out.append((bytes([0x41]) + opt[1:], 0x0800))
    out.append((opt[:2] + b"\0\4" + opt[4:], 0x0800))
    # IPv6 chains: routing, destination options, AH, fragments (first and later), an unknown header
    l4 = udp(7, 9, b"p" * 11)
    routing = bytes([60, 0]) + b"\0" * 6
    dest = bytes([51, 0]) + b"\0" * 6
    ah = bytes([44, 2]) + b"\0" * 14  # (2 + 2) * 4 = 16 bytes
    frag0 = bytes([17, 0, 0, 1]) + b"\0\0\0\1"
    v6 = socket.inet_pton(socket.AF_INET6, a6(1)) + socket.inet_pton(socket.AF_INET6, a6(3))
    for first, chain in ((43, routing + dest + ah + frag0 + l4), (44, bytes([17, 0, 0x05, 0x39]) + b"\0\0\0\2" + l4),
                         (44, frag0 + l4), (51, ah[:1] + bytes([3]) + ah[2:] + b"\0" * 4 + l4),
                         (60, bytes([59, 0]) + b"\0" * 6), (0, bytes([44, 0]) + b"\0" * 6 + bytes([6, 0, 0, 8]))):
        out.append((struct.pack("!IHBB", 6 << 28, len(chain), first, 64) + v6 + chain, 0x86DD))
    return out


def test_every_link_type_protocol_and_header_shape() -> None:
    pair = Pair()
    ts = T0
    for ip, et in ip_packets():
        for data, linktype in framings(ip, et):
            for tci in (0, 0x2000 | 5, -1):
                ts += 1000
                pair.add(ts, data, linktype, tci, ifindex=3)
    pair.finish()
    assert pair.c.stats()[1] > 0 and pair.c.stats()[2] > 20  # not-IP packets and many flows were both seen
    protos = {r[1] for r in pair.ended}
    assert {1, 6, 17, 47, 58, 132} <= protos


def test_every_prefix_of_a_packet_reads_only_its_own_bytes() -> None:
    """A snapshot cut at any byte: the parser must stop at the packet's end (ASan checks the reads)."""
    pair = Pair()
    ts = T0
    for ip, et in ip_packets():
        for data, linktype in framings(ip, et)[:14]:
            for cut in range(len(data) + 1):
                ts += 1
                pair.add(ts, data[:cut], linktype)
            pair.check()
    pair.finish()


# -- conversations -------------------------------------------------------------------------------------------
def conversation(c: str, s: str, sp: int, dp: int, steps: list[tuple[str, str, bytes]], t: int,
                 dt: int = NS // 100) -> list[Packet]:
    out: list[Packet] = []
    for i, (way, flags, data) in enumerate(steps):
        src, dst, a, b = (c, s, sp, dp) if way == ">" else (s, c, dp, sp)
        out.append((t + i * dt, eth4(src, dst, 6, tcp(a, b, flags, data)), LINKTYPE_ETHERNET, 0, 1))
    return out


def test_tcp_ends_fin_rst_and_syn_after_close() -> None:
    pair = Pair(grace=NS)
    clean = [(">", "S", b""), ("<", "SA", b""), (">", "A", b""), (">", "PA", b"GET /"), ("<", "PA", b"200 OK"),
             (">", "FA", b""), ("<", "FA", b""), (">", "A", b"")]
    pair.feed(conversation("10.9.0.1", "10.9.0.2", 40000, 80, clean, T0))
    # a reset, then a SYN inside the grace starts a new flow at once
    reset = [(">", "S", b""), ("<", "RA", b""), (">", "S", b""), ("<", "SA", b"")]
    pair.feed(conversation("10.9.0.3", "10.9.0.2", 40001, 22, reset, T0 + NS))
    # both FINs, then a data packet after the grace: the flow ended at the next packet
    late = [(">", "S", b""), (">", "F", b""), ("<", "F", b""), ("<", "PA", b"late")]
    pair.feed(conversation("10.9.0.4", "10.9.0.2", 40002, 443, late, T0 + 2 * NS, dt=NS // 2))
    # one side's FIN only, an RST from the other, a SYN|ACK (not a new start) inside the grace
    half = [(">", "S", b""), ("<", "FA", b"bye"), (">", "R", b""), ("<", "SA", b""), (">", "SR", b"x")]
    pair.feed(conversation("10.9.0.5", "10.9.0.2", 40003, 25, half, T0 + 3 * NS))
    got = pair.check()
    pair.expire(T0 + 60 * NS)
    got += pair.check()
    got += pair.finish()
    reasons = sorted(r[16] for r in got)
    assert {"fin", "rst"} <= set(reasons)
    histories = {r[14] for r in got}
    assert "ShADdFf" in histories  # no bare ACK from the server: no "a"


def test_idle_active_and_grace_timeouts_and_the_sweep() -> None:
    pair = Pair(idle=3 * NS, active=10 * NS, grace=2 * NS)
    steady = eth4("10.8.0.1", "10.8.0.2", 17, udp(7, 7, b"x"))
    quiet = eth4("10.8.0.3", "10.8.0.4", 17, udp(8, 8, b"y"))
    pair.add(T0, quiet)
    for i in range(0, 40):  # a packet every half second for 20 s: active ends, and the sweep ends `quiet`
        pair.add(T0 + i * NS // 2, steady, ifindex=i % 3)
        if i % 7 == 0:
            pair.check()
    pair.feed(conversation("10.8.0.5", "10.8.0.6", 1, 2, [(">", "S", b""), ("<", "R", b"")], T0 + 30 * NS))
    pair.add(T0 + 31 * NS, steady)  # the sweep: the reset flow is still in its grace
    pair.check()
    pair.add(T0 + 33 * NS, steady)  # and now past it
    pair.expire(T0 + 33 * NS + 1)
    pair.add(T0 + 20 * NS, steady)  # time going back: no timeout is negative
    pair.add(-5, quiet)  # before the epoch: no sweep
    got = pair.ended + pair.finish()
    assert {"idle", "active", "rst", "end"} <= {r[16] for r in got}


def test_eviction_ends_the_oldest_created_first() -> None:
    pair = Pair(max_flows=3)
    for i in range(12):
        pair.add(T0 + i, eth4("10.7.0.1", "10.7.0.2", 17, udp(1000 + i % 5, 53, b"e")))
        pair.add(T0 + i, eth4("10.7.0.2", "10.7.0.1", 17, udp(53, 1000 + (i * 3) % 7, b"r")))
        assert pair.c.stats()[5] <= 3
        pair.check()
    assert pair.c.stats()[4] > 0
    pair.finish()
    for limit in (1, 2):
        small = Pair(max_flows=limit)
        for i in range(6):
            small.add(T0 + i, eth4("10.7.1.1", "10.7.1.2", 6, tcp(2000 + i % 3, 80, "S")))
        small.finish()


def test_vlan_tci_ifindex_and_endpoint_ordering() -> None:
    pair = Pair()
    same = eth4("10.6.0.1", "10.6.0.1", 17, udp(9, 9, b"self"))  # both endpoints equal: every packet is orig
    pair.add(T0, same, tci=0x1000 | 10, ifindex=7)
    pair.add(T0 + 1, same, tci=0x1000 | 10, ifindex=8)
    pair.add(T0 + 2, same, tci=11)
    for v in (None, 10, 4095):
        pair.add(T0 + 3, eth4("10.6.0.2", "10.6.0.1", 1, icmp(8, 0), vlan=v), ifindex=2)
        pair.add(T0 + 4, eth4("10.6.0.1", "10.6.0.2", 1, icmp(0, 0), vlan=v), ifindex=5)
    pair.add(T0 + 5, ether(B, A, 0x86DD, ip6(a6(9), a6(1), 58, icmp(128, 0))))
    pair.add(T0 + 6, ether(B, A, 0x86DD, ip6(a6(1), a6(9), 58, icmp(129, 0))))
    got = pair.finish()
    assert any(r[0] == 4095 and r[1] == 1 for r in got)
    assert any(len(r[2]) == 18 for r in got) and any(len(r[2]) == 6 for r in got)


# -- batches and files ---------------------------------------------------------------------------------------
def test_add_frames_lists_and_arrays_like_add() -> None:
    frames = [eth4("10.5.0.1", "10.5.0.2", 17, udp(1000 + i % 4, 53, b"e" * i)) for i in range(20)]
    frames[3] = frames[3][:20]
    ts = [T0 + i * NS // 3 for i in range(20)]
    tci = [0x2000 | (i % 2) for i in range(20)]
    ifx = [i % 3 for i in range(20)]
    pair = Pair(idle=2 * NS)
    for i in range(20):
        pair.add(ts[i], frames[i], LINKTYPE_ETHERNET, tci[i], ifx[i])
    want = pair.finish()
    for cols in ((ts, tci, ifx), (array("q", ts), array("H", tci), array("i", ifx)),
                 (tuple(ts), array("l", tci), memoryview(array("q", ifx))), (ts, array("I", tci), array("Q", ifx)),
                 (array("L", ts), tci, array("b", ifx))):
        c = _kernels.FlowTable(2 * NS, 1800 * NS, 2 * NS, 1_000_000)
        c.add_frames([bytearray(f) if k % 2 else f for k, f in enumerate(frames)], *cols, LINKTYPE_ETHERNET)
        c.finish()
        assert c.take() == want
    # columns of different lengths: the common part is counted (zip(strict=True)), then ValueError
    pair = Pair()
    for t in (pair.c, pair.py):
        with pytest.raises(ValueError):
            t.add_frames(frames, ts[:5], tci, ifx, LINKTYPE_ETHERNET)
    pair.finish()
    # C keeps integers only (Python would keep any object as an ifindex)
    with pytest.raises(TypeError):
        pair.c.add_frames(frames, ts, tci, ["x"] * 20, LINKTYPE_ETHERNET)


def write_pcap(path: Path, packets: list[tuple[int, bytes]], *, nanosecond: bool, big: bool) -> bytes:
    """A pcap file: PcapWriter's (little-endian), or the same records byte-swapped by hand (big-endian)."""
    with PcapWriter(path, nanosecond=nanosecond) as w:
        for ts, data in packets:
            w.write(ts, data)
    raw = path.read_bytes()
    if not big:
        return raw
    head = struct.unpack_from("<IHHiIII", raw)
    out = bytearray(struct.pack(">IHHiIII", *head))
    off = 24
    while off < len(raw):
        rec = struct.unpack_from("<IIII", raw, off)
        out += struct.pack(">IIII", *rec) + raw[off + 16:off + 16 + rec[2]]
        off += 16 + rec[2]
    assert out[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
    return bytes(out)


def records(raw: bytes, big: bool) -> list[tuple[int, int, bytes]]:
    """(offset after, ts_ns, data) of every record, read independently of the tables."""
    frac = 1 if raw[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1000
    fmt = ">IIII" if big else "<IIII"
    out, off = [], 24
    while off < len(raw):
        sec, sub, cap, _ = struct.unpack_from(fmt, raw, off)
        out.append((off + 16 + cap, sec * NS + sub * frac, raw[off + 16:off + 16 + cap]))
        off += 16 + cap
    return out


@pytest.mark.parametrize("nanosecond", [False, True], ids=["micro", "nano"])
@pytest.mark.parametrize("big", [False, True], ids=["le", "be"])
def test_add_pcap_equals_add_per_record(tmp_path: Path, nanosecond: bool, big: bool) -> None:
    pkts = []
    for i in range(300):
        ts = T0 + i * (NS // 7) + (i * 12345) % 1000
        c, s = f"10.4.{i % 5}.1", "10.4.9.9"
        data = eth4(c, s, 6, tcp(3000 + i % 11, 80, "SFRPA"[i % 5], b"d" * (i % 13)))
        if i % 17 == 0:
            data = data[: 10 + i % 40]
        pkts.append((ts, data))
    raw = write_pcap(tmp_path / "f.pcap", pkts, nanosecond=nanosecond, big=big)
    frac = 1 if nanosecond else 1000
    recs = records(raw, big)
    # per record add() on the Python table is the reference
    ref = _table_py.FlowTable(3 * NS, 20 * NS, NS, 16)
    for _, ts, data in recs:
        ref.add(ts, data, LINKTYPE_ETHERNET)
    ref.finish()
    want, want_stats = ref.take(), ref.stats()
    for source in ("bytes", "mmap"):
        pair = Pair(3 * NS, 20 * NS, NS, 16)
        if source == "mmap":
            (tmp_path / "g.pcap").write_bytes(raw)
            with open(tmp_path / "g.pcap", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                for t in (pair.c, pair.py):
                    assert t.add_pcap(m, 24, LINKTYPE_ETHERNET, frac, big) == (len(raw), 300)
        else:
            off = 24
            while True:  # in chunks of 64 records, as the meter reads
                got = [t.add_pcap(raw, off, LINKTYPE_ETHERNET, frac, big, 64) for t in (pair.c, pair.py)]
                assert got[0] == got[1]
                off, n = got[0]
                pair.check()
                if n < 64:
                    break
            assert off == len(raw)
        ended = pair.finish()
        assert pair.ended == want and pair.c.stats() == want_stats
        assert ended or pair.ended
    # a buffer cut inside a record: the offset of that record's start, the records before it counted
    for cut in (24, 30, 40, recs[0][0], recs[0][0] + 5, recs[99][0] - 1, recs[99][0], len(raw) - 1):
        pair = Pair()
        got = [t.add_pcap(buf, 24, LINKTYPE_ETHERNET, frac, big)
               for t, buf in ((pair.c, GUARD(raw[:cut])), (pair.py, memoryview(raw)[:cut]))]
        whole = [r for r in recs if r[0] <= cut]
        assert got[0] == got[1] == (whole[-1][0] if whole else 24, len(whole))
        pair.finish()
    # limit 0, a start past the end
    pair = Pair()
    assert pair.c.add_pcap(raw, 24, 1, frac, big, 0) == pair.py.add_pcap(raw, 24, 1, frac, big, 0) == (24, 0)
    assert pair.c.add_pcap(raw, len(raw) + 5, 1, frac, big) == (len(raw) + 5, 0)
    pair.check()


# -- random streams ------------------------------------------------------------------------------------------
ENDPOINTS = [("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1"), ("10.0.0.1", "10.0.0.1"), (a6(1), a6(2)),
             (a6(2), a6(1)), ("10.0.0.3", "10.0.0.2")]


@st.composite
def packets(draw: st.DrawFn) -> tuple[int, bytes, int, int, int, str]:
    """(time step, data, linktype, vlan_tci, ifindex, action) of one random event."""
    kind = draw(st.sampled_from(["flow", "flow", "flow", "flow", "random", "expire", "take"]))
    step = draw(st.sampled_from([0, 1, 5, 100, NS // 4, NS // 4, NS // 2, NS, 3 * NS, 7 * NS]))
    if kind == "random":
        data = draw(st.binary(max_size=80))
        return step, data, draw(st.sampled_from(LINKTYPES)), draw(st.integers(-2, 0x3FFF)), 0, "add"
    if kind in ("expire", "take"):
        return step, b"", 0, 0, 0, kind
    src, dst = draw(st.sampled_from(ENDPOINTS[:1] * 4 + ENDPOINTS))
    if draw(st.booleans()):
        src, dst = dst, src
    proto = draw(st.sampled_from([6, 6, 6, 17, 1, 132]))
    sp, dp = draw(st.sampled_from([(1000, 80), (1000, 80), (80, 1000), (1001, 80), (5, 5)]))
    payload = b"p" * draw(st.sampled_from([0, 0, 1, 30]))
    if proto == 6:
        bits = draw(st.sampled_from(["S", "SA", "A", "PA", "FA", "F", "FA", "R", "RA"])
                    | st.sets(st.sampled_from("FSRPA")).map(lambda s: "".join(sorted(s))))
        l4 = tcp(sp, dp, bits, payload)
    elif proto == 1:
        l4 = icmp(draw(st.sampled_from([0, 8, 3])), 0, payload)
    else:
        l4 = udp(sp, dp, payload)
    if ":" in src:
        ip = ip6(src, dst, 58 if proto == 1 else proto, l4, ext=b"\0" * 8 if draw(st.booleans()) else b"")
        et = 0x86DD
    else:
        ip = ip4(src, dst, proto, l4, frag=draw(st.sampled_from([0, 0, 0, 3])))
        et = 0x0800
    vlan = draw(st.sampled_from([None, None, 5]))
    data = ether(B, A, 0x8100, struct.pack("!HH", vlan, et) + ip) if vlan is not None else ether(B, A, et, ip)
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return step, data, LINKTYPE_ETHERNET, draw(st.sampled_from([0, 0, 6])), draw(st.integers(0, 2)), "add"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(packets(), max_size=60), max_flows=st.integers(1, 5),
       timeouts=st.tuples(st.sampled_from([1, NS, 2 * NS, 5 * NS]), st.sampled_from([3 * NS, 10 * NS]),
                          st.sampled_from([0, NS, 2 * NS])))
def test_random_streams_end_alike(events: list[tuple[int, bytes, int, int, int, str]], max_flows: int,
                                  timeouts: tuple[int, int, int]) -> None:
    idle, active, grace = timeouts
    pair = Pair(idle, active, grace, max_flows)
    t = T0
    for step, data, linktype, tci, ifindex, action in events:
        t += step
        if action == "add":
            pair.add(t, data, linktype, tci, ifindex)
        elif action == "expire":
            pair.expire(t)
        else:
            pair.check()
        assert pair.c.stats()[5] <= max_flows
    pair.check()
    pair.finish()


def test_seeded_long_streams_take_every_way_to_end() -> None:
    """Longer streams over few flows (random.Random, fixed seeds): every end reason must occur."""
    rng = random.Random(12)
    reasons: set[str] = set()
    for _ in range(60):
        idle, active, grace = rng.choice([NS, 4 * NS]), rng.choice([2 * NS, 6 * NS]), rng.choice([0, NS])
        pair = Pair(idle, active, grace, rng.randint(1, 4))
        t = T0
        for _ in range(300):
            t += rng.choice([0, 1, NS // 10, NS // 3, NS, 2 * NS])
            r = rng.random()
            if r < 0.03:
                pair.expire(t)
                continue
            if r < 0.08:
                data, lt = rng.randbytes(rng.randint(0, 70)), rng.choice(LINKTYPES)
                pair.add(t, data, lt, rng.randint(0, 0x1FFF))
                continue
            flow = rng.randint(0, 3)
            c, s = f"10.1.0.{flow}", "10.1.9.9"
            fwd = rng.random() < 0.55
            src, dst, sp, dp = (c, s, 1000 + flow, 80) if fwd else (s, c, 80, 1000 + flow)
            flags = rng.choice(["S", "SA", "A", "A", "PA", "PA", "FA", "FA", "R", "RA", "F"])
            data = eth4(src, dst, 6, tcp(sp, dp, flags, b"d" * rng.choice([0, 0, 9])))
            if flow == 3:
                data = eth4(src, dst, 17, udp(sp, dp, b"u"))
            if rng.random() < 0.05:
                data = data[: rng.randint(0, len(data))]
            pair.add(t, data, LINKTYPE_ETHERNET, 0, flow)
        reasons |= {r[16] for r in pair.check()}
        reasons |= {r[16] for r in pair.finish()}
    assert reasons == {"idle", "active", "fin", "rst", "evicted", "end"}


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=400), start=st.integers(0, 60), big=st.booleans(), limit=st.integers(-1, 5))
def test_add_pcap_over_random_bytes(blob: bytes, start: int, big: bool, limit: int) -> None:
    """Random bytes as a pcap body: same offsets, counts and flows; no read past the buffer."""
    pair = Pair(NS, 3 * NS, 0, 3)
    for linktype in (LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_NULL):
        got = [pair.c.add_pcap(GUARD(blob), start, linktype, 1000, big, limit),
               pair.py.add_pcap(blob, start, linktype, 1000, big, limit)]
        assert got[0] == got[1]
    pair.check()
    pair.finish()


# -- the object ----------------------------------------------------------------------------------------------
def test_arguments_and_the_object() -> None:
    for args in ((0, 1, 0, 1), (1, 0, 0, 1), (1, 1, -1, 1), (1, 1, 0, 0), (-(1 << 80), 1, 0, 1)):
        for cls in (_kernels.FlowTable, _table_py.FlowTable):
            with pytest.raises(ValueError, match="positive"):
                cls(*args)
    big = _kernels.FlowTable(1 << 80, 1 << 70, 0, 1 << 90)  # beyond 64 bits: taken as "never"
    big.add(T0, eth4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"")), 1)
    assert big.stats()[5] == 1
    t = _kernels.FlowTable(NS, NS, 0, 1)
    assert t.IMPLEMENTATION == _kernels.FlowTable.IMPLEMENTATION == "c"
    assert (t.idle_ns, t.active_ns, t.grace_ns, t.max_flows) == (NS, NS, 0, 1)
    t.add(ts_ns=T0, data=memoryview(eth4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b""))), linktype=1, ifindex=4)
    with pytest.raises(TypeError):
        t.add(T0, "text", 1)
    with pytest.raises(TypeError):
        t.add(T0, b"", 1, nope=1)
    with pytest.raises(TypeError):
        t.add(T0)
    with pytest.raises(ValueError):
        t.add_pcap(b"", -1, 1, 1000, False)
    assert t.take() == [] and t.stats() == (1, 0, 1, 0, 0, 1)
    # many tables with open and finished flows, dropped: dealloc frees them (ASan and the refcounts check)
    for _ in range(50):
        x = _kernels.FlowTable(NS, NS, 0, 100)
        for i in range(200):
            x.add(T0 + i, eth4("10.0.0.1", "10.0.0.2", 17, udp(i, 2, b"")), 1)
        del x
    gc.collect()

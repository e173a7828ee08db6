"""pcap and pcapng files: what we write, tcpdump, tshark, capinfos and dpkt read exactly; what they write,
we read exactly; a full disk or a cut-off file never leaves or yields half a record.

Live traffic here crosses only the private veth pair of the ``net`` fixture.
"""

from __future__ import annotations

import io
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest
from conftest import ping

from afpacket import abi
from afpacket.errors import SavefileError
from afpacket.savefile import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    PcapngReader,
    PcapngWriter,
    PcapReader,
    PcapWriter,
    Record,
    linktype_for,
    open_reader,
)
from afpacket.testnet import VethPair

T0 = 1_700_000_000_123_456_789  # a timestamp with all nine digits significant


def frame(i: int, size: int = 60) -> bytes:
    """A distinct Ethernet/IPv4/UDP frame of ``size`` bytes."""
    payload = bytes((i + k) & 0xFF for k in range(size - 42))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size - 14, i & 0xFFFF, 0, 64, 17, 0,
                     socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.0.1"))
    udp = struct.pack("!HHHH", 40000, 9, size - 34, 0)
    return b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x08\x00" + ip + udp + payload


SAMPLES = [(T0 + i * 1_000_003, frame(i, 60 + i * 7)) for i in range(20)]


def run(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{cmd}: {r.stderr}"
    return r.stdout


def tcpdump_records(path: Path) -> list[tuple[int, bytes]]:
    """(timestamp ns, frame bytes) of every packet, as tcpdump --nano -tt -xx prints them."""
    out = run("tcpdump", "-n", "-r", str(path), "--nano", "-tt", "-xx")
    records: list[tuple[int, bytes]] = []
    for line in out.splitlines():
        if line.startswith("\t"):
            hexpart = line.split(":", 1)[1][:41]
            records[-1] = (records[-1][0], records[-1][1] + bytes.fromhex(hexpart.replace(" ", "")))
        else:
            sec, frac = line.split(" ", 1)[0].split(".")
            records.append((int(sec) * 1_000_000_000 + int(frac), b""))
    return records


def tshark_times(path: Path) -> list[tuple[int, int, int]]:
    """(timestamp ns, frame.len, frame.cap_len) of every packet as tshark reads them."""
    out = run("tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.len",
              "-e", "frame.cap_len")
    rows = []
    for line in out.splitlines():
        epoch, wire, cap = line.split("\t")
        if not epoch:  # tshark lists custom blocks as records without a time
            continue
        sec, frac = epoch.split(".")
        rows.append((int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")), int(wire), int(cap)))
    return rows


def read_all(path: Path | str) -> list[Record]:
    with open_reader(path) as r:
        return list(r)


# --- what we write, peers read ----------------------------------------------------------------------


@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_written_reads_exactly_in_tcpdump_tshark_capinfos_dpkt(tmp_path: Path, nanosecond: bool) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(path, nanosecond=nanosecond) as w:
        for ts, data in SAMPLES:
            w.write(ts, data)
    unit = 1 if nanosecond else 1000
    expected = [(ts // unit * unit, data) for ts, data in SAMPLES]

    assert tcpdump_records(path) == expected
    assert tshark_times(path) == [(ts, len(d), len(d)) for ts, d in expected]
    info = run("capinfos", str(path))
    assert re.search(r"Number of packets:\s+20\b", info)
    precision = "nanoseconds (9)" if nanosecond else "microseconds (6)"
    assert re.search(rf"File timestamp precision:\s+{re.escape(precision)}", info)
    with open(path, "rb") as f:
        # dpkt gives a Decimal for nanosecond files (exact) and a float for microsecond ones (~16 digits).
        got = [(int(Decimal(ts) * 10**9), bytes(buf)) for ts, buf in dpkt.pcap.Reader(f)]
    tolerance = 0 if nanosecond else 1000
    assert all(abs(a - e) <= tolerance and d == ed for (a, d), (e, ed) in zip(got, expected, strict=True))
    assert [(r.timestamp_ns, r.data) for r in read_all(path)] == expected


def test_pcap_snaplen_cuts_records_and_keeps_wire_length(tmp_path: Path) -> None:
    path = tmp_path / "snap.pcap"
    with PcapWriter(path, snaplen=64, nanosecond=True) as w:
        w.write(T0, frame(1, 200))
        w.write(T0 + 1, frame(2, 60), wire_len=1500)
    assert tshark_times(path) == [(T0, 200, 64), (T0 + 1, 1500, 60)]
    recs = read_all(path)
    assert [(r.caplen, r.wire_len) for r in recs] == [(64, 200), (60, 1500)]
    assert recs[0].data == frame(1, 200)[:64]
    assert "snapshot length 64" in subprocess.run(["tcpdump", "-r", str(path)], capture_output=True, text=True).stderr


def test_pcapng_written_reads_exactly_in_tcpdump_tshark_capinfos_dpkt(tmp_path: Path) -> None:
    path = tmp_path / "out.pcapng"
    with PcapngWriter(path) as w:
        assert w.add_interface("veth-a", LINKTYPE_ETHERNET, 65535) == 0
        for ts, data in SAMPLES:
            w.write(ts, data)
    assert tcpdump_records(path) == SAMPLES
    assert tshark_times(path) == [(ts, len(d), len(d)) for ts, d in SAMPLES]
    info = run("capinfos", str(path))
    assert re.search(r"Number of packets:\s+20\b", info)
    assert "Name = veth-a" in info
    assert "Time precision = nanoseconds (9)" in info
    with open(path, "rb") as f:
        got = [bytes(buf) for _, buf in dpkt.pcapng.Reader(f)]
    assert got == [d for _, d in SAMPLES]
    with PcapngReader(path) as r:
        assert r.interfaces[0].name == "veth-a" and r.nanosecond and r.snaplen == 65535
        assert [(rec.timestamp_ns, rec.data) for rec in r] == SAMPLES


def test_pcapng_direction_flags_from_linux_packet_types(tmp_path: Path) -> None:
    """epb_flags carry direction and reception type, as tshark decodes them."""
    path = tmp_path / "dir.pcapng"
    types = [abi.PACKET_HOST, abi.PACKET_BROADCAST, abi.PACKET_MULTICAST, abi.PACKET_OTHERHOST,
             abi.PACKET_OUTGOING, None]
    with PcapngWriter(path) as w:
        w.add_interface("x")
        for i, t in enumerate(types):
            w.write(T0 + i, frame(i), pkttype=t)
    out = run("tshark", "-r", str(path), "-T", "fields", "-e", "frame.packet_flags_direction",
              "-e", "frame.packet_flags_reception_type")
    decoded = [tuple(int(x, 0) if x else None for x in line.split("\t")) for line in out.splitlines()]
    assert decoded == [(1, 1), (1, 3), (1, 2), (1, 4), (2, 0), (None, None)]
    assert [(r.direction, r.pkttype) for r in read_all(path)] == [
        ("in", abi.PACKET_HOST), ("in", abi.PACKET_BROADCAST), ("in", abi.PACKET_MULTICAST),
        ("in", abi.PACKET_OTHERHOST), ("out", abi.PACKET_OUTGOING), (None, None),
    ]


def test_pcapng_several_interfaces_and_statistics(tmp_path: Path) -> None:
    path = tmp_path / "multi.pcapng"
    with PcapngWriter(path) as w:
        eth = w.add_interface("eth-like", LINKTYPE_ETHERNET, 262144)
        raw = w.add_interface("tun-like", LINKTYPE_RAW, 1500, tsresol=6)
        w.write(T0, frame(1), interface_id=eth)
        w.write(T0 + 5000, frame(2)[14:], interface_id=raw)
        w.set_interface_stats(eth, 1000, 7)
        w.set_interface_stats(raw, 10, 0)
    info = run("capinfos", str(path))
    assert "Number of interfaces in file: 2" in info
    assert info.count("Number of stat entries = 1") == 2
    assert tshark_times(path) == [(T0, 60, 60), ((T0 + 5000) // 1000 * 1000, 46, 46)]
    with PcapngReader(path) as r:
        recs = list(r)
        assert [(x.interface_id, x.linktype) for x in recs] == [(0, LINKTYPE_ETHERNET), (1, LINKTYPE_RAW)]
        assert r.interface_stats == {0: (1000, 7), 1: (10, 0)}
        assert [i.name for i in r.interfaces] == ["eth-like", "tun-like"]


def test_writer_to_stdout_is_read_by_tcpdump_from_a_pipe() -> None:
    code = (
        "from afpacket.savefile import PcapWriter\n"
        f"with PcapWriter('-', nanosecond=True) as w:\n"
        f"    w.write({T0}, bytes.fromhex('{frame(3).hex()}'))\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    r = subprocess.run(["tcpdump", "-n", "-r", "-", "--nano", "-tt"], stdin=writer.stdout, capture_output=True,
                       text=True, timeout=30)
    assert writer.wait(timeout=30) == 0
    assert r.stdout.startswith(f"{T0 // 10**9}.{T0 % 10**9:09d} IP 198.18.0.2.40000 > 198.18.0.1.9: UDP")


def test_writer_on_a_file_object_and_close_is_idempotent() -> None:
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    w.add_interface("x")
    w.write(T0, frame(1))
    w.close()
    w.close()
    with pytest.raises(SavefileError, match="after close"):
        w.write(T0, frame(1))
    assert [r.data for r in PcapngReader(io.BytesIO(buf.getvalue()))] == [frame(1)]


def test_unbuffered_writer_puts_each_record_on_disk_before_write_returns(tmp_path: Path) -> None:
    path = tmp_path / "u.pcap"
    with PcapWriter(path, unbuffered=True) as w:
        for i in range(3):
            w.write(T0 + i * 1000, frame(i))
            assert len(tcpdump_records(path)) == i + 1
    with PcapWriter(tmp_path / "b.pcap") as w:
        w.write(T0, frame(0))
        assert os.path.getsize(tmp_path / "b.pcap") == 24  # buffered: only the header so far
        w.flush()
        assert os.path.getsize(tmp_path / "b.pcap") == 24 + 16 + 60


# --- live packets -------------------------------------------------------------------------------------


@dataclass
class StandIn:
    """What afpacket.rx's packet offers a writer (the lead's live test covers the real one)."""

    timestamp_ns: int
    frame: bytes
    wire_len: int
    pkttype: int = abi.PACKET_HOST
    ifindex: int = 1
    vlan_tci: int = 0
    vlan_tpid: int = 0x8100
    vlan_present: bool = False

    @property
    def data(self) -> memoryview:
        return memoryview(self.frame)

    def tagged(self) -> bytes:
        if not self.vlan_present:
            return self.frame
        return self.frame[:12] + struct.pack("!HH", self.vlan_tpid, self.vlan_tci) + self.frame[12:]

    def file_record(self) -> tuple[bytes, int]:
        if self.vlan_present:
            return self.tagged(), self.wire_len + 4
        return self.frame, self.wire_len


def test_write_packet_reinserts_vlan_and_records_direction(tmp_path: Path) -> None:
    pkts = [
        StandIn(T0, frame(1), 60),
        StandIn(T0 + 1, frame(2), 60, abi.PACKET_OUTGOING, ifindex=7, vlan_tci=(3 << 13) | 100, vlan_present=True),
    ]
    ng = tmp_path / "live.pcapng"
    with PcapngWriter(ng) as w:
        w.add_interface("a", ifindex=1)
        w.add_interface("b", ifindex=7)
        for p in pkts:
            w.write_packet(p)
    recs = read_all(ng)
    assert [(r.interface_id, r.direction, r.wire_len, r.data) for r in recs] == [
        (0, "in", 60, frame(1)),
        (1, "out", 64, pkts[1].tagged()),
    ]
    out = run("tshark", "-r", str(ng), "-T", "fields", "-e", "vlan.id", "-e", "vlan.priority")
    assert out.splitlines() == ["\t", "100\t3"]

    plain = tmp_path / "live.pcap"
    with PcapWriter(plain, reinsert_vlan=False) as w:
        for p in pkts:
            w.write_packet(p)
    assert [(r.wire_len, r.data) for r in read_all(plain)] == [(60, frame(1)), (60, frame(2))]


def test_linktype_for_socket_kinds() -> None:
    assert linktype_for(abi.ARPHRD_ETHER) == LINKTYPE_ETHERNET
    assert linktype_for(abi.ARPHRD_LOOPBACK) == LINKTYPE_ETHERNET
    assert linktype_for(abi.ARPHRD_NONE) == LINKTYPE_RAW
    assert linktype_for(abi.ARPHRD_ETHER, socket.SOCK_DGRAM) == LINKTYPE_LINUX_SLL
    assert linktype_for(abi.ARPHRD_ETHER, socket.SOCK_DGRAM, cooked_v2=True) == LINKTYPE_LINUX_SLL2


# --- what peers write, we read --------------------------------------------------------------------------


def _capture(net: VethPair, cmd: list[str], path: Path, ready: str) -> None:
    """Run a capture program on the outer end while pings cross the pair, until it has its 10 packets."""
    proc = subprocess.Popen([*cmd, "-i", net.outer, "-w", str(path), "-c", "10"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        seen = ""
        while ready not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert ready in seen, seen
        # dumpcap says "Capturing on" a moment before its socket is open: ping until the 10 packets are in,
        # so packets sent in that moment cannot leave the program waiting forever
        ping(net)
        while proc.poll() is None and time.monotonic() < deadline + 20:
            ping(net, 1)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def captures() -> Iterator[dict[str, Path]]:
    """Real ping traffic over a private veth pair, written by tcpdump (µs, ns) and dumpcap (pcapng)."""
    with tempfile.TemporaryDirectory() as d, VethPair("afsv") as net:
        files = {
            "tcpdump-micro": Path(d) / "micro.pcap",
            "tcpdump-nano": Path(d) / "nano.pcap",
            "dumpcap": Path(d) / "dumpcap.pcapng",
        }
        _capture(net, ["tcpdump", "-n", "-U", "--time-stamp-precision", "micro"], files["tcpdump-micro"],
                 "listening on")
        _capture(net, ["tcpdump", "-n", "-U", "--time-stamp-precision", "nano"], files["tcpdump-nano"],
                 "listening on")
        _capture(net, ["dumpcap", "-q"], files["dumpcap"], "Capturing on")
        yield files


@pytest.mark.parametrize("kind", ["tcpdump-micro", "tcpdump-nano", "dumpcap"])
def test_reads_files_that_tcpdump_and_dumpcap_wrote(captures: dict[str, Path], kind: str) -> None:
    path = captures[kind]
    with open_reader(path) as r:
        recs = list(r)
        assert r.linktype == LINKTYPE_ETHERNET
        assert r.nanosecond == (kind != "tcpdump-micro")
    assert len(recs) == 10
    assert [(r.timestamp_ns, r.data) for r in recs] == tcpdump_records(path)
    assert [(r.timestamp_ns, r.wire_len, r.caplen) for r in recs] == tshark_times(path)
    icmp_types = [r.data[34] for r in recs]
    assert sorted(icmp_types) == [0] * 5 + [8] * 5


@pytest.mark.parametrize(
    ("fmt", "nano"),
    [("pcap", False), ("nsecpcap", True), ("pcapng", True), ("modpcap", False)],
)
def test_reads_editcap_conversions(captures: dict[str, Path], tmp_path: Path, fmt: str, nano: bool) -> None:
    src = captures["dumpcap"]
    out = tmp_path / f"conv.{fmt}"
    run("editcap", "-F", fmt, str(src), str(out))
    if fmt == "modpcap":  # Kuznetsov's modified pcap: not supported, and said so clearly
        with pytest.raises(SavefileError, match=r"conv\.modpcap.*not a pcap or pcapng file"):
            open_reader(out)
        return
    recs = read_all(out)
    assert [(r.timestamp_ns, r.data) for r in recs] == tcpdump_records(out)
    unit = 1 if nano else 1000
    assert [(r.timestamp_ns, r.data) for r in recs] == [(r.timestamp_ns // unit * unit, r.data)
                                                       for r in read_all(src)]


def test_reads_editcap_cooked_encapsulation_and_snaplen(captures: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cut.pcapng"
    run("editcap", "-s", "40", "-T", "linux-sll", str(captures["dumpcap"]), str(out))
    with open_reader(out) as r:
        recs = list(r)
        assert r.linktype == LINKTYPE_LINUX_SLL
    assert all(x.caplen == 40 and x.wire_len == 98 for x in recs)
    assert [(x.timestamp_ns, x.data) for x in recs] == tcpdump_records(out)


def test_reads_mergecap_multi_interface_and_concatenated_sections(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    with PcapngWriter(a) as w:
        w.add_interface("first")
        w.write(T0, frame(1))
    with PcapngWriter(b) as w:
        w.add_interface("second", LINKTYPE_RAW, 1500, tsresol=6)
        w.write(T0 + 10_000, frame(2)[14:])
    merged = tmp_path / "m.pcapng"
    run("mergecap", "-w", str(merged), str(a), str(b))
    with PcapngReader(merged) as r:
        recs = list(r)
        assert len(r.interfaces) == 2
    assert [(x.interface_id, x.linktype, x.data) for x in recs] == [
        (0, LINKTYPE_ETHERNET, frame(1)), (1, LINKTYPE_RAW, frame(2)[14:])]

    # Two files back to back are one file of two sections; interface ids restart in each.
    both = tmp_path / "sections.pcapng"
    both.write_bytes(a.read_bytes() + b.read_bytes())
    in_us = (T0 + 10_000) // 1000 * 1000
    assert tshark_times(both) == [(T0, 60, 60), (in_us, 46, 46)]
    with PcapngReader(both) as r:
        recs = list(r)
        assert [i.name for i in r.interfaces] == ["second"]
    assert [(x.interface_id, x.linktype, x.timestamp_ns) for x in recs] == [
        (0, LINKTYPE_ETHERNET, T0), (0, LINKTYPE_RAW, in_us)]


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    return struct.pack(order + "II", btype, len(body) + 12) + body + struct.pack(order + "I", len(body) + 12)


def _pcapng(order: str, tsresol: int, ticks: list[int], extra_block: bytes = b"") -> bytes:
    shb = _block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb_opts = struct.pack(order + "HHB3x", 9, 1, tsresol) + struct.pack(order + "HH", 0, 0)
    idb = _block(order, 1, struct.pack(order + "HHI", 1, 0, 0) + idb_opts)
    epbs = b"".join(
        _block(order, 6, struct.pack(order + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, 60, 60) + frame(i))
        for i, t in enumerate(ticks)
    )
    return shb + extra_block + idb + epbs


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize(
    ("tsresol", "ticks", "expected_ns"),
    [
        (9, [T0], [T0]),
        (6, [T0 // 1000], [T0 // 1000 * 1000]),
        (3, [1_700_000_000_123], [1_700_000_000_123_000_000]),
        (0x80 | 20, [(1_700_000_000 << 20) + (1 << 19)], [1_700_000_000_500_000_000]),  # 2**-20 s ticks
        (0x80 | 30, [(1_700_000_000 << 30) + (1 << 28)], [1_700_000_000_250_000_000]),
    ],
)
def test_reads_either_byte_order_and_any_tsresol_as_tshark_does(
    tmp_path: Path, order: str, tsresol: int, ticks: list[int], expected_ns: list[int]
) -> None:
    path = tmp_path / "crafted.pcapng"
    # A custom block (0x00000BAD) and a name resolution block come first: both must be skipped.
    nrb = _block(order, 4, struct.pack(order + "HH", 0, 0))
    path.write_bytes(_pcapng(order, tsresol, ticks, _block(order, 0xBAD, b"opaque stuff") + nrb))
    assert [t for t, _, _ in tshark_times(path)] == expected_ns
    assert [(r.timestamp_ns, r.data) for r in read_all(path)] == list(zip(expected_ns, [frame(0)], strict=True))


@pytest.mark.parametrize("nano", [False, True])
def test_reads_big_endian_pcap(tmp_path: Path, nano: bool) -> None:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    frac = T0 % 10**9 if nano else T0 % 10**9 // 1000
    data = struct.pack(">IHHiIII", magic, 2, 4, 0, 0, 65535, 1) + struct.pack(">IIII", T0 // 10**9, frac, 60, 70)
    path = tmp_path / "be.pcap"
    path.write_bytes(data + frame(5))
    expected = T0 if nano else T0 // 1000 * 1000
    assert tshark_times(path) == [(expected, 70, 60)]
    with PcapReader(path) as r:
        assert (r.snaplen, r.linktype, r.nanosecond) == (65535, 1, nano)
        assert [(x.timestamp_ns, x.wire_len, x.data) for x in r] == [(expected, 70, frame(5))]


# --- corrupt and cut-off files ------------------------------------------------------------------------


def _written(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"good.{kind}"
    w: PcapWriter | PcapngWriter
    if kind == "pcap":
        w = PcapWriter(path, nanosecond=True)
    else:
        w = PcapngWriter(path)
        w.add_interface("x")
    with w:
        for ts, data in SAMPLES[:5]:
            w.write(ts, data)
    return path


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_truncated_file_yields_every_whole_record_then_names_file_and_offset(tmp_path: Path, kind: str) -> None:
    good = _written(tmp_path, kind)
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(good.read_bytes()[:-10])
    reader = open_reader(cut)
    got: list[bytes] = []
    with pytest.raises(SavefileError) as info:
        for r in reader:
            got.append(r.data)
    assert got == [d for _, d in SAMPLES[:4]]
    msg = str(info.value)
    assert str(cut) in msg and "truncated" in msg
    last_start = len(good.read_bytes()) - (16 + len(SAMPLES[4][1]) if kind == "pcap" else 32 + 88)
    assert f"byte offset {last_start}" in msg


def test_corrupt_lengths_are_named(tmp_path: Path) -> None:
    good = _written(tmp_path, "pcapng").read_bytes()
    shb_len = struct.unpack_from("<I", good, 4)[0]
    idb_len = struct.unpack_from("<I", good, shb_len + 4)[0]
    first_epb = shb_len + idb_len
    bad = bytearray(good)
    bad[first_epb + 4 : first_epb + 8] = struct.pack("<I", 13)
    path = tmp_path / "bad.pcapng"
    path.write_bytes(bad)
    with pytest.raises(SavefileError, match=rf"bad\.pcapng: invalid block length 13 .* at byte offset {first_epb}"):
        read_all(path)
    bad = bytearray(good)
    struct.pack_into("<I", bad, first_epb + 20, 5000)  # caplen larger than the block
    path.write_bytes(bad)
    with pytest.raises(SavefileError, match=f"captured length 5000 overruns its block at byte offset {first_epb}"):
        read_all(path)
    with pytest.raises(SavefileError, match="not a pcap or pcapng file"):
        open_reader(io.BytesIO(b"GIF89a....."))


# --- a full disk (conftest's tiny_fs) ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_full_disk_raises_and_leaves_a_clean_file(tiny_fs: Path, kind: str) -> None:
    path = tiny_fs / f"full.{kind}"
    w: PcapWriter | PcapngWriter
    if kind == "pcap":
        w = PcapWriter(path, nanosecond=True, unbuffered=False)
    else:
        w = PcapngWriter(path)
        w.add_interface("x")
    written = 0
    with pytest.raises(SavefileError, match=r"No space left on device.*cut back to its last complete record"):
        for i in range(100_000):
            w.write(T0 + i, frame(i, 333))
            written += 1
    w.close()
    w.close()
    size = path.stat().st_size
    assert size > 32 * 1024
    recs = read_all(path)
    assert 0 < len(recs) <= written
    assert all(r.data == frame(i, 333) and r.timestamp_ns == T0 + i for i, r in enumerate(recs))
    r = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and "truncated" not in r.stderr, r.stderr
    assert len(r.stdout.splitlines()) == len(recs)
    with pytest.raises(SavefileError):
        w.write(T0, frame(0))

"""Bridges to scapy and dpkt: packets captured over a veth pair, and records read back from files, turned
into scapy and dpkt objects whose fields are the ones sent and whose timestamps are the packet's.

scapy's own ``rdpcap`` and dpkt's own readers, run on the same files, are the witnesses for records.
"""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest
from conftest import udp_frame
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.utils import rdpcap

from afpacket import AfPacketError, Capture, CopiedPacket, Packet, Record, dump, open_reader
from afpacket.bridges import FrameDecodeError
from afpacket.savefile import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, PcapWriter
from afpacket.testnet import VethPair

#: Frames go to a MAC the outer end does not own: the kernel drops them at once (PACKET_OTHERHOST),
#: never routes or answers them, and every AF_PACKET socket on the outer end still sees them.
OTHER_MAC = "02:00:00:00:00:99"
SRC_IP, DST_IP = "198.18.0.10", "198.18.0.20"


@pytest.fixture
def quiet_net() -> Iterator[VethPair]:
    with VethPair("afpb", addresses=False) as pair:
        yield pair


def frames_for(net: VethPair, n: int, dport: int) -> list[bytes]:
    return [
        udp_frame(OTHER_MAC, net.inner_mac, b"bridge %d" % i, sport=40000 + i, dport=dport, src=SRC_IP, dst=DST_IP)
        for i in range(n)
    ]


def seconds(ts_ns: int) -> Decimal:
    return Decimal(ts_ns) / Decimal(10**9)


def check_scapy_udp(s: object, i: int, dport: int, ts_ns: int) -> None:
    """The scapy packet of the i-th frame of frames_for(): the fields sent, the packet's timestamp."""
    assert s[IP].src == SRC_IP and s[IP].dst == DST_IP  # type: ignore[index]
    assert s[UDP].sport == 40000 + i and s[UDP].dport == dport  # type: ignore[index]
    assert bytes(s[UDP].payload) == b"bridge %d" % i  # type: ignore[index]
    assert s.time == seconds(ts_ns)  # type: ignore[attr-defined]
    assert int(s.time * 10**9) == ts_ns  # type: ignore[attr-defined]  # exact to the ns, no float rounding


def check_dpkt_ip(ip: dpkt.ip.IP, i: int, dport: int) -> None:
    assert socket.inet_ntoa(ip.src) == SRC_IP and socket.inet_ntoa(ip.dst) == DST_IP
    assert isinstance(ip.data, dpkt.udp.UDP)
    assert ip.data.sport == 40000 + i and ip.data.dport == dport and ip.data.data == b"bridge %d" % i


@pytest.mark.parametrize("version", [1, 2, 3])
def test_live_ethernet_packets_to_scapy_and_dpkt(quiet_net: VethPair, version: int) -> None:
    net = quiet_net
    frames = frames_for(net, 5, 9)
    with Capture(net.outer, version=version, block_timeout_ms=2, filter="udp") as cap:
        net.send(frames)
        got = []
        for pkt in cap.packets(count=len(frames), timeout=3):
            # from the live packet, while its data is still a view into the ring
            got.append((pkt.to_scapy(), pkt.to_dpkt(), pkt.timestamp_ns, pkt.timestamp, pkt.copy()))
    assert len(got) == len(frames)
    for i, (s, (ts, eth), ts_ns, ts_float, copied) in enumerate(got):
        assert isinstance(s, Ether) and bytes(s) == frames[i]
        assert s.src == net.inner_mac and s.dst == OTHER_MAC
        check_scapy_udp(s, i, 9, ts_ns)
        assert s.wirelen == len(frames[i]) and s.sniffed_on == net.outer and s.direction == 1
        assert isinstance(eth, dpkt.ethernet.Ethernet) and bytes(eth) == frames[i]
        assert eth.src == bytes.fromhex(net.inner_mac.replace(":", "")) and eth.type == 0x0800
        check_dpkt_ip(eth.data, i, 9)
        assert ts == ts_float == ts_ns / 1e9
        # a copy converts to the same objects
        assert isinstance(copied, CopiedPacket)
        cs = copied.to_scapy()
        assert bytes(cs) == bytes(s) and cs.time == s.time and cs.sniffed_on == net.outer
        cts, ceth = copied.to_dpkt()
        assert cts == ts and bytes(ceth) == bytes(eth)


@pytest.mark.parametrize("version", [2, 3])
def test_a_stripped_vlan_tag_is_back_in_the_scapy_and_dpkt_frames(quiet_net: VethPair, version: int) -> None:
    net = quiet_net
    inner = frames_for(net, 1, 9)[0]
    tagged = inner[:12] + struct.pack("!HH", 0x8100, 0x2064) + inner[12:]  # priority 1, VLAN 100
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        net.send([tagged])
        pkt = next(cap.packets(count=1, timeout=3))
        assert bytes(pkt) == inner  # the kernel moved the tag into metadata
        s, (_ts, eth) = pkt.to_scapy(), pkt.to_dpkt()
    assert bytes(s) == tagged and s[Dot1Q].vlan == 100 and s[Dot1Q].prio == 1
    check_scapy_udp(s, 0, 9, pkt.timestamp_ns)
    assert bytes(eth) == tagged and eth.vlan_tags[0].id == 100
    check_dpkt_ip(eth.data, 0, 9)


def test_any_packets_are_cooked_linux_in_scapy_and_dpkt(quiet_net: VethPair) -> None:
    net = quiet_net
    dport = random.randrange(20000, 30000)  # other tests' traffic on other interfaces stays out
    frames = frames_for(net, 3, dport)
    with Capture("any", version=3, block_timeout_ms=2, filter=f"udp dst port {dport}") as cap:
        net.send(frames)
        got = [(p.to_scapy(), p.to_dpkt(), p.timestamp_ns, p.ifindex) for p in cap.packets(count=3, timeout=3)]
    assert len(got) == 3
    for i, (s, (ts, sll), ts_ns, ifindex) in enumerate(got):
        assert isinstance(s, CookedLinuxV2)  # SLL2: an "any" capture's packets as a file stores them
        assert s.pkttype == 3 and s.proto == 0x0800  # PACKET_OTHERHOST, IPv4
        assert s.ifindex == socket.if_nametoindex(net.outer)
        assert s.src[: s.lladdrlen] == bytes.fromhex(net.inner_mac.replace(":", ""))
        assert s.sniffed_on == net.outer and ifindex == socket.if_nametoindex(net.outer)
        check_scapy_udp(s, i, dport, ts_ns)
        assert isinstance(sll, dpkt.sll2.SLL2) and sll.type == 3 and sll.ethtype == 0x0800
        check_dpkt_ip(sll.data, i, dport)
        assert ts == ts_ns / 1e9


def records_and_witnesses(path: Path) -> tuple[list[Record], list[object], list[tuple[float, bytes]]]:
    with open_reader(path) as r:
        records = list(r)
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        theirs = [(ts, bytes(buf)) for ts, buf in reader]
    return records, list(rdpcap(str(path))), theirs


@pytest.mark.parametrize(("name", "nano"), [("f.pcap", False), ("f.pcap", True), ("f.pcapng", False),
                                            ("f.pcapng", True)])
def test_records_convert_like_scapy_and_dpkt_read_the_file(
    quiet_net: VethPair, tmp_path: Path, name: str, nano: bool
) -> None:
    net = quiet_net
    frames = frames_for(net, 4, 9)
    path = tmp_path / name
    with Capture(net.outer, version=3, block_timeout_ms=2) as cap:
        net.send(frames)
        assert dump(cap, path, count=len(frames), timeout=3, nanosecond=nano) == len(frames)
    records, scapy_pkts, dpkt_pairs = records_and_witnesses(path)
    assert [r.data for r in records] == frames
    for i, (rec, theirs, (dts, dbuf)) in enumerate(zip(records, scapy_pkts, dpkt_pairs, strict=True)):
        assert rec.linktype == LINKTYPE_ETHERNET
        s = rec.to_scapy()
        assert type(s) is type(theirs) is Ether
        assert bytes(s) == bytes(theirs) == frames[i]
        assert s.time == theirs.time == seconds(rec.timestamp_ns)  # rdpcap's EDecimal, to the ns
        assert s.wirelen == theirs.wirelen == len(frames[i])
        if name.endswith("pcapng"):
            assert s.direction == theirs.direction == 1  # epb_flags: inbound
        check_scapy_udp(s, i, 9, rec.timestamp_ns)
        ts, eth = rec.to_dpkt()
        # dpkt's readers give float seconds (a Decimal for nanosecond pcap); ours is always the float
        # pkt.timestamp is, equal to within the float's precision
        assert ts == rec.timestamp and isinstance(ts, float) and abs(ts - float(dts)) < 1e-6
        assert bytes(eth) == dbuf == frames[i] and isinstance(eth, dpkt.ethernet.Ethernet)
        check_dpkt_ip(eth.data, i, 9)


@pytest.mark.parametrize(("cooked", "linktype", "scapy_cls", "dpkt_cls"), [
    (1, LINKTYPE_LINUX_SLL, CookedLinux, dpkt.sll.SLL),
    (2, LINKTYPE_LINUX_SLL2, CookedLinuxV2, dpkt.sll2.SLL2),
])
def test_cooked_records_convert_like_scapy_reads_them(
    quiet_net: VethPair, tmp_path: Path, cooked: int, linktype: int, scapy_cls: type, dpkt_cls: type
) -> None:
    net = quiet_net
    dport = random.randrange(30000, 40000)
    frames = frames_for(net, 3, dport)
    path = tmp_path / "any.pcapng"
    with Capture("any", version=3, block_timeout_ms=2, filter=f"udp dst port {dport}") as cap:
        net.send(frames)
        assert dump(cap, path, count=3, timeout=3, cooked=cooked) == 3
        # the live packets follow the file's cooked header from then on
        net.send(frames[:1])
        live = next(cap.packets(count=1, timeout=3))
        assert isinstance(live.to_scapy(), scapy_cls) and isinstance(live.to_dpkt()[1], dpkt_cls)
    records, scapy_pkts, _ = records_and_witnesses(path)
    assert len(records) == 3
    for i, (rec, theirs) in enumerate(zip(records, scapy_pkts, strict=True)):
        assert rec.linktype == linktype
        s = rec.to_scapy()
        assert type(s) is type(theirs) is scapy_cls and bytes(s) == bytes(theirs)
        assert s.time == theirs.time
        check_scapy_udp(s, i, dport, rec.timestamp_ns)
        ts, obj = rec.to_dpkt()
        assert isinstance(obj, dpkt_cls) and ts == rec.timestamp
        check_dpkt_ip(obj.data, i, dport)


def test_raw_ip_and_unknown_link_types() -> None:
    ip = bytes(IP(src=SRC_IP, dst=DST_IP) / UDP(sport=40000, dport=9) / b"bridge 0")
    rec = Record(1_700_000_000_123_456_789, ip, len(ip), linktype=101)  # LINKTYPE_RAW
    check_scapy_udp(rec.to_scapy(), 0, 9, rec.timestamp_ns)
    ts, obj = rec.to_dpkt()
    assert isinstance(obj, dpkt.ip.IP) and ts == 1_700_000_000.123456789
    check_dpkt_ip(obj, 0, 9)
    odd = Record(0, b"\x01\x02\x03", 3, linktype=147)  # LINKTYPE_USER0: scapy keeps it Raw, as rdpcap does
    assert bytes(odd.to_scapy()) == b"\x01\x02\x03"
    with pytest.raises(AfPacketError, match="dpkt has no class for link type 147"):
        odd.to_dpkt()


#: Frames too short for their link header, per link type, and how much dpkt's class needs (its NeedData says so)
SHORT_FRAMES = [
    (LINKTYPE_LINUX_SLL, b"", "LINUX_SLL", "dpkt.sll.SLL", 16),  # an empty SLL record (the fuzzing's repro)
    (LINKTYPE_LINUX_SLL, bytes(15), "LINUX_SLL", "dpkt.sll.SLL", 16),
    (LINKTYPE_LINUX_SLL2, bytes(7), "LINUX_SLL2", "dpkt.sll2.SLL2", 20),
    (LINKTYPE_ETHERNET, b"", "EN10MB", "dpkt.ethernet.Ethernet", 14),
    (LINKTYPE_ETHERNET, b"\x01\x02\x03", "EN10MB", "dpkt.ethernet.Ethernet", 14),
    (0, b"\x02", "NULL", "dpkt.loopback.Loopback", 4),  # BSD loopback: scapy's class raises struct.error
    (101, b"\x45", "RAW", "dpkt.ip.IP", 20),  # raw IP: so does scapy's IPv46
    (229, bytes(39), "IPV6", "dpkt.ip6.IP6", 40),
]


@pytest.mark.parametrize(("linktype", "frame", "lt_name", "cls_name", "needed"), SHORT_FRAMES,
                         ids=[f"{t[2]}-{len(t[1])}" for t in SHORT_FRAMES])
def test_short_frames_convert_like_the_libraries_read_them(
    tmp_path: Path, linktype: int, frame: bytes, lt_name: str, cls_name: str, needed: int
) -> None:
    """A frame shorter than its link header, in a real file: to_scapy() gives what rdpcap makes of it (the
    class's dissection, or Raw where the class raises); to_dpkt() raises FrameDecodeError, an AfPacketError
    (and ValueError) naming the frame's length and link type, where dpkt's own class raises its NeedData."""
    path = tmp_path / "short.pcap"
    with PcapWriter(str(path), linktype=linktype) as w:
        w.write(1_700_000_000_000_000_000, frame)
    (rec,) = list(open_reader(path))
    (theirs,) = list(rdpcap(str(path)))
    ours = rec.to_scapy()
    assert type(ours) is type(theirs) and bytes(ours) == bytes(theirs)
    assert ours.time == theirs.time and ours.wirelen == theirs.wirelen == len(frame)
    with open(path, "rb") as f:
        ((_, buf),) = list(dpkt.pcap.Reader(f))
    module, name = cls_name.rsplit(".", 1)
    with pytest.raises(dpkt.NeedData):  # the witness: dpkt's reader hands over bytes its class refuses
        getattr(sys.modules[module], name)(buf)
    with pytest.raises(FrameDecodeError) as info:
        rec.to_dpkt()
    assert isinstance(info.value, AfPacketError) and isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"to_dpkt(): a {len(frame)}-byte frame of link type {lt_name} (")
    assert f"is too short for {cls_name}: got {len(frame)}, {needed} needed at least" in str(info.value)


def test_live_packets_cut_short_by_snaplen(quiet_net: VethPair, tmp_path: Path) -> None:
    """A capture with a snaplen below the Ethernet header (tcpdump -s 10): its packets, live and read back
    from the file, give what rdpcap makes of tcpdump's file (Raw: scapy's Ether raises on 10 bytes), and
    to_dpkt() a FrameDecodeError naming the 10 bytes, not scapy's struct.error or dpkt's NeedData."""
    net = quiet_net
    (frame,) = frames_for(net, 1, 9)
    path = tmp_path / "s10.pcap"
    with Capture(net.outer, version=3, block_timeout_ms=2, snaplen=10) as live_cap, \
            Capture(net.outer, version=3, block_timeout_ms=2, snaplen=10) as file_cap:
        net.send([frame])
        seen = 0
        for live in live_cap.packets(count=1, timeout=3):  # zero-copy: converted while its block is held
            s = live.to_scapy()
            assert bytes(s) == frame[:10] and type(s).__name__ == "Raw"
            with pytest.raises(FrameDecodeError, match="a 10-byte frame of link type EN10MB"):
                live.to_dpkt()
            seen += 1
        assert seen == 1
        assert dump(file_cap, path, count=1, timeout=3) == 1
    (rec,) = list(open_reader(path))
    (theirs,) = list(rdpcap(str(path)))
    assert rec.wire_len == len(frame) and rec.data == frame[:10]
    assert type(rec.to_scapy()) is type(theirs) and bytes(rec.to_scapy()) == bytes(theirs) == frame[:10]
    with pytest.raises(FrameDecodeError, match=r"is too short for dpkt\.ethernet\.Ethernet: got 10, 14 needed"):
        rec.to_dpkt()


def test_missing_libraries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Record(0, bytes(60), 60)
    monkeypatch.setitem(sys.modules, "scapy.layers.all", None)  # import fails as if not installed
    with pytest.raises(AfPacketError, match=r"pip install scapy"):
        rec.to_scapy()
    monkeypatch.setitem(sys.modules, "dpkt", None)
    monkeypatch.setitem(sys.modules, "dpkt.ethernet", None)
    with pytest.raises(AfPacketError, match=r"pip install dpkt"):
        rec.to_dpkt()


def test_importing_afpacket_imports_neither_library() -> None:
    code = "import sys, afpacket; print(sorted(m for m in ('scapy', 'dpkt') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_packet_classes_expose_the_bridges() -> None:
    for cls in (Packet, CopiedPacket, Record):
        assert callable(cls.to_scapy) and callable(cls.to_dpkt)

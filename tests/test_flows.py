"""Flow metering (afpacket.flows) over crafted packets: no root, no network.

Each test builds the packets of a known conversation byte by byte (Ethernet, VLAN tags, IPv4/IPv6, TCP, UDP,
ICMP; cooked and raw link types) and checks the records field by field: both directions merged with the
first sender as originator, packet and byte counts (IP header included, and payload), Zeek's history letters,
the timeouts and TCP ends, VLAN keys, the bounded table, and Community IDs equal to the `communityid`
package's.
"""

from __future__ import annotations

import socket
import struct

import communityid
import pytest
from conftest import checksum, ether

from afpacket.errors import ArgumentError
from afpacket.flows import FlowMeter, FlowRecord, meter_records
from afpacket.flows.packet import flow_fields
from afpacket.savefile.linktype import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
NS = 1_000_000_000
T0 = 1_700_000_000 * NS


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: no ring here."""
    return "any"


def ip4(src: str, dst: str, proto: int, l4: bytes, *, frag: int = 0) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst))
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + l4


def ip6(src: str, dst: str, nxt: int, l4: bytes, ext: bytes = b"") -> bytes:
    first = nxt if not ext else 0  # a hop-by-hop header in front when ext is given
    head = struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(l4), first, 64,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))
    if ext:
        ext = bytes((nxt, len(ext) // 8 - 1)) + ext[2:]
    return head + ext + l4


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, flags: str, payload: bytes = b"", seq: int = 1) -> bytes:
    bits = sum({"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}[c] for c in flags)
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, bits, 65535, 0, 0) + payload


def icmp(kind: int, code: int, payload: bytes = b"x" * 8) -> bytes:
    return struct.pack("!BBHHH", kind, code, 0, 7, 1) + payload


def eth4(src: str, dst: str, proto: int, l4: bytes, vlan: int | None = None) -> bytes:
    pkt = ip4(src, dst, proto, l4)
    if vlan is None:
        return ether(B, A, 0x0800, pkt)
    return ether(B, A, 0x8100, struct.pack("!HH", vlan, 0x0800) + pkt)


def cid(proto: int, src: str, dst: str, sport: int, dport: int) -> str:
    """The `communityid` package's ID (these tests use only TCP, UDP and ICMP, whose ports it hashes)."""
    tup = communityid.FlowTuple(proto, src, dst, sport, dport)
    return str(communityid.CommunityID().calc(tup))


def one(records: list[FlowRecord]) -> FlowRecord:
    assert len(records) == 1, records
    return records[0]


# -- the fields of one packet -------------------------------------------------------------------------------
def test_flow_fields_of_each_link_type_and_header_shape() -> None:
    l4 = udp(1000, 53, b"q" * 30)
    ip = ip4("10.0.0.1", "10.0.0.2", 17, l4)
    want = (0, 17, socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"), 1000, 53, 58, 30, 0)
    assert flow_fields(ether(B, A, 0x0800, ip)) == want
    assert flow_fields(ip, LINKTYPE_RAW) == want
    sll = struct.pack("!HHH8sH", 0, 1, 6, b"\2" * 8, 0x0800)
    assert flow_fields(sll + ip, LINKTYPE_LINUX_SLL) == want
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\2" * 8)
    assert flow_fields(sll2 + ip, LINKTYPE_LINUX_SLL2) == want
    # QinQ: the inner tag is the flow's VLAN; a stripped tag (metadata) is used when the frame has none
    qinq = ether(B, A, 0x88A8, struct.pack("!HHHH", 100, 0x8100, 200, 0x0800) + ip)
    assert flow_fields(qinq)[:2] == (200, 17)  # type: ignore[index]
    assert flow_fields(ether(B, A, 0x0800, ip), vlan_tci=0x2000 | 42)[0] == 42  # type: ignore[index]
    # a snapshot cut inside the payload still counts the IP header's length
    assert flow_fields(ether(B, A, 0x0800, ip)[:50])[6:8] == (58, 30)  # type: ignore[index]
    # IPv6 behind a hop-by-hop header; a later IPv4 fragment has no ports
    f6 = flow_fields(ether(B, A, 0x86DD, ip6("fd00::1", "fd00::2", 6, tcp(5, 80, "S"), ext=b"\0" * 8)))
    assert f6 is not None and f6[1] == 6 and f6[4:7] == (5, 80, 40 + 8 + 20) and f6[8] == 2
    frag = flow_fields(ether(B, A, 0x0800, ip4("10.0.0.1", "10.0.0.2", 17, b"z" * 40, frag=185)))
    assert frag is not None and frag[4:8] == (0, 0, 60, 40)
    # not IP, or too short for the IP header
    assert flow_fields(ether(B, A, 0x0806, b"\0" * 28)) is None
    assert flow_fields(ether(B, A, 0x0800, ip)[:25]) is None


# -- records ------------------------------------------------------------------------------------------------
def test_both_directions_are_one_record_with_the_first_sender_as_originator() -> None:
    pkts = []
    for i in range(3):
        pkts.append((T0 + i * NS // 10, eth4("10.0.0.9", "10.0.0.1", 17, udp(5353, 53, b"q" * 20)), 1))
    for i in range(2):
        pkts.append((T0 + (3 + i) * NS // 10, eth4("10.0.0.1", "10.0.0.9", 17, udp(53, 5353, b"r" * 100)), 1))
    r = one(meter_records(pkts, sensor="s1"))
    # the originator has the larger address: order in the key must not decide who is who
    assert (r.orig_h, r.orig_p, r.resp_h, r.resp_p, r.proto) == ("10.0.0.9", 5353, "10.0.0.1", 53, "udp")
    assert (r.orig_pkts, r.resp_pkts) == (3, 2)
    assert (r.orig_ip_bytes, r.resp_ip_bytes) == (3 * 48, 2 * 128)
    assert (r.orig_bytes, r.resp_bytes) == (60, 200)
    assert (r.ts, r.last_ts, r.duration) == (T0, T0 + 4 * NS // 10, 0.4)
    assert (r.history, r.vlan, r.ifindex, r.end_reason, r.sensor) == ("", 0, 0, "end", "s1")
    assert r.community_id == cid(17, "10.0.0.9", "10.0.0.1", 5353, 53)


def test_tcp_history_and_fin_end_counting_the_last_ack() -> None:
    c, s = "192.168.1.5", "192.168.1.1"
    conv = [(c, s, "S", b""), (s, c, "SA", b""), (c, s, "A", b""), (c, s, "PA", b"GET /"), (s, c, "A", b""),
            (s, c, "PA", b"200 OK" * 10), (c, s, "FA", b""), (s, c, "FA", b""), (c, s, "A", b"")]
    pkts = []
    for i, (src, dst, flags, data) in enumerate(conv):
        sp, dp = (40000, 80) if src == c else (80, 40000)
        pkts.append((T0 + i * NS // 100, eth4(src, dst, 6, tcp(sp, dp, flags, data)), 1))
    r = one(meter_records(pkts))
    assert r.history == "ShADadFf"  # Zeek's history of a clean connection
    assert (r.orig_pkts, r.resp_pkts, r.orig_bytes, r.resp_bytes) == (5, 4, 5, 60)
    assert r.end_reason == "fin" and r.proto == "tcp"
    assert r.community_id == cid(6, c, s, 40000, 80)


def test_a_reset_ends_the_flow_and_a_new_syn_starts_another() -> None:
    c, s = "10.1.0.1", "10.1.0.2"
    pkts = [(T0, eth4(c, s, 6, tcp(1234, 22, "S")), 1), (T0 + 1000, eth4(s, c, 6, tcp(22, 1234, "RA")), 1),
            (T0 + 2000, eth4(c, s, 6, tcp(1234, 22, "S")), 1)]
    recs = meter_records(pkts)
    assert [(r.history, r.end_reason, r.orig_pkts + r.resp_pkts) for r in recs] == [("Sr", "rst", 2), ("S", "end", 1)]


def test_idle_and_active_timeouts_split_flows() -> None:
    f = eth4("10.2.0.1", "10.2.0.2", 17, udp(7, 7, b"x"))
    idle = [(T0, f, 1), (T0 + NS, f, 1), (T0 + 12 * NS, f, 1)]  # 11 s gap, idle timeout 10 s
    recs = meter_records(idle, idle_timeout=10)
    assert [(r.orig_pkts, r.end_reason) for r in recs] == [(2, "idle"), (1, "end")]
    steady = [(T0 + i * NS, f, 1) for i in range(25)]  # a packet a second for 25 s, active timeout 10 s
    recs = meter_records(steady, idle_timeout=5, active_timeout=10)
    assert [(r.orig_pkts, r.end_reason) for r in recs] == [(10, "active"), (10, "active"), (5, "end")]
    assert sum(r.orig_pkts for r in recs) == 25


def test_idle_flows_are_swept_by_time_even_without_their_own_packets() -> None:
    got: list[FlowRecord] = []
    meter = FlowMeter(idle_timeout=5, on_records=got.extend)
    meter.add(T0, eth4("10.3.0.1", "10.3.0.2", 17, udp(1, 2, b"a")))
    for i in range(1, 10):  # another flow keeps the clock moving
        meter.add(T0 + i * NS, eth4("10.3.0.3", "10.3.0.4", 17, udp(1, 2, b"b")))
    assert [(r.orig_h, r.end_reason) for r in got] == [("10.3.0.1", "idle")]
    meter.expire(T0 + 100 * NS)  # a live capture's quiet link: time passes without packets
    assert [(r.orig_h, r.end_reason) for r in got][1:] == [("10.3.0.3", "idle")]
    assert meter.stats().active == 0


def test_vlans_and_icmp_request_reply() -> None:
    l4 = udp(9, 9, b"v")
    pkts = [(T0, eth4("10.4.0.1", "10.4.0.2", 17, l4, vlan=10), 1), (T0 + 1, eth4("10.4.0.1", "10.4.0.2", 17, l4,
                                                                                   vlan=20), 1),
            (T0 + 2, eth4("10.4.0.1", "10.4.0.2", 1, icmp(8, 0)), 1), (T0 + 3, eth4("10.4.0.2", "10.4.0.1", 1,
                                                                                    icmp(0, 0)), 1)]
    recs = {(r.vlan, r.proto): r for r in meter_records(pkts)}
    assert set(recs) == {(10, "udp"), (20, "udp"), (0, "icmp")}
    ping = recs[(0, "icmp")]
    assert (ping.orig_h, ping.orig_p, ping.resp_p, ping.orig_pkts, ping.resp_pkts) == ("10.4.0.1", 8, 0, 1, 1)
    assert ping.community_id == cid(1, "10.4.0.1", "10.4.0.2", 8, 0)


def test_ipv6_and_non_ip_packets() -> None:
    meter = FlowMeter()
    meter.add(T0, ether(B, A, 0x86DD, ip6("2001:db8::1", "2001:db8::2", 17, udp(1000, 2000, b"6" * 10))))
    meter.add(T0 + 1, ether(B, A, 0x0806, b"\0" * 28))
    meter.finish()
    r = one(meter.take())
    assert (r.orig_h, r.resp_h, r.orig_ip_bytes, r.orig_bytes) == ("2001:db8::1", "2001:db8::2", 58, 10)
    assert r.community_id == cid(17, "2001:db8::1", "2001:db8::2", 1000, 2000)
    st = meter.stats()
    assert (st.packets, st.not_ip, st.flows, st.records) == (2, 1, 1, 1)


def test_the_table_is_bounded_and_the_oldest_flow_is_evicted_and_counted() -> None:
    meter = FlowMeter(max_flows=10)
    for i in range(25):
        meter.add(T0 + i, eth4("10.5.0.1", "10.5.0.2", 17, udp(1000 + i, 53, b"e")))
        assert meter.stats().active <= 10
    st = meter.stats()
    assert (st.evicted, st.active) == (15, 10)
    meter.finish()
    recs = meter.take()
    assert [r.orig_p for r in recs if r.end_reason == "evicted"] == list(range(1000, 1015))  # oldest first
    assert len(recs) == 25


def test_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="idle_timeout"):
        FlowMeter(idle_timeout=0)
    with pytest.raises(ArgumentError, match="active_timeout"):
        FlowMeter(active_timeout=float("nan"))
    with pytest.raises(ArgumentError, match="max_flows"):
        FlowMeter(max_flows=0)
    with pytest.raises(TypeError, match="sensor"):
        FlowMeter(sensor=3)  # type: ignore[arg-type]


def test_add_file_reads_pcap_in_place_pcapng_by_record_and_filters(tmp_path: pytest.TempPathFactory) -> None:
    from afpacket.errors import SavefileError
    from afpacket.savefile import PcapngWriter, PcapWriter

    pkts = [(T0 + i * 1000, eth4("10.8.0.1", "10.8.0.2", 17 if i % 2 else 6,
                                 udp(1, 2, b"x" * i) if i % 2 else tcp(3, 4, "A"))) for i in range(50)]
    pcap, pcapng = tmp_path / "a.pcap", tmp_path / "a.pcapng"  # type: ignore[operator]
    with PcapWriter(pcap, nanosecond=True) as w:
        for ts, d in pkts:
            w.write(ts, d)
    with PcapngWriter(pcapng) as w2:
        w2.add_interface("eth0")
        for ts, d in pkts:
            w2.write(ts, d)
    want = meter_records([(ts, d, 1) for ts, d in pkts])
    for path, expr in ((pcap, None), (pcapng, None)):
        m = FlowMeter()
        assert m.add_file(path, expr) == 50
        m.finish()
        assert m.take() == want
    m = FlowMeter()
    assert m.add_file(pcap, "udp") == 25
    m.finish()
    assert [r.proto for r in m.take()] == ["udp"]
    # cut inside the last record: what came before is metered, then the error says where and how many
    cut = tmp_path / "cut.pcap"  # type: ignore[operator]
    cut.write_bytes(pcap.read_bytes()[:-10])
    m = FlowMeter()
    with pytest.raises(SavefileError, match=r"truncated record at byte \d+ \(the 49 records before it"):
        m.add_file(cut)
    assert m.stats().packets == 49

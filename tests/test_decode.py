"""afpacket.decode: the layers ``decode()`` builds, checked against known values and against what dpkt
and scapy read from the same bytes; the flow 5-tuple; garbage and cut-short input never raising; and the
LinePrinter's options, errors and state. (Its lines are checked against tcpdump in test_decode_corpus.py.)
"""

from __future__ import annotations

import random
import struct
from typing import Any

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import (
    ARP,
    GRE,
    ICMP,
    IP,
    TCP,
    UDP,
    VXLAN,
    Dot1Q,
    Ether,
    ICMPv6EchoRequest,
    IPOption_RR,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Raw,
)
from scapy.utils import checksum as scapy_checksum

from afpacket.dissect import (
    ARP as ArpLayer,
)
from afpacket.dissect import (
    GRE as GreLayer,
)
from afpacket.dissect import (
    ICMP as IcmpLayer,
)
from afpacket.dissect import (
    TCP as TcpLayer,
)
from afpacket.dissect import (
    UDP as UdpLayer,
)
from afpacket.dissect import (
    VXLAN as VxlanLayer,
)
from afpacket.dissect import (
    Decoded,
    Ethernet,
    Flow,
    ICMPv6,
    IPv6Extension,
    IPv6Fragment,
    LinePrinter,
    LinuxSLL,
    LinuxSLL2,
    Loopback,
    Vlan,
    checksum_of,
    decode,
)
from afpacket.dissect import IPv6 as Ip6Layer
from afpacket.dissect.hexdump import ascii_text, hex_ascii_lines, hex_lines
from afpacket.errors import ArgumentError
from afpacket.savefile.linktype import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    cooked_header,
)


@pytest.fixture
def core() -> str:
    """Overrides conftest's per-core fixture: decoding does not touch the ring kernels."""
    return "both"


MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
A, B = "198.18.0.2", "198.18.0.1"
A6, B6 = "fd00::2", "fd00::1"


def eth() -> Any:
    return Ether(src=MAC_A, dst=MAC_B)


TCP_SYN = eth() / IP(src=A, dst=B, id=77, ttl=61, flags="DF") / TCP(
    sport=40000, dport=80, seq=1000, flags="S", window=64240,
    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)])
FRAMES: dict[str, bytes] = {
    "tcp_syn": bytes(TCP_SYN),
    "tcp_data": bytes(eth() / IP(src=A, dst=B) / TCP(sport=40000, dport=80, seq=1001, ack=5001, flags="PA",
                                                       options=[("NOP", None), ("NOP", None), ("Timestamp", (9, 8))])
                      / b"GET / HTTP/1.1\r\n\r\n"),
    "tcp_sack": bytes(eth() / IP(src=A, dst=B)
                      / TCP(sport=1, dport=2, flags="A", options=[("SAck", (10, 20, 30, 40))])),
    "udp": bytes(eth() / IP(src=A, dst=B) / UDP(sport=5353, dport=53) / b"payload bytes"),
    "icmp": bytes(eth() / IP(src=A, dst=B) / ICMP(type=8, id=0x4242, seq=7) / (b"p" * 56)),
    "ip_options": bytes(eth() / IP(src=A, dst=B, options=[IPOption_RR(routers=["1.2.3.4"])]) / UDP(sport=1, dport=2)),
    "ip_fragment": bytes(eth() / IP(src=A, dst=B, frag=185, proto=17, flags="MF") / (b"f" * 40)),
    "vlan": bytes(eth() / Dot1Q(vlan=100, prio=5, dei=1) / IP(src=A, dst=B) / UDP(sport=9, dport=10) / b"v"),
    "qinq": bytes(Ether(src=MAC_A, dst=MAC_B, type=0x88A8) / Dot1Q(vlan=10, type=0x8100) / Dot1Q(vlan=20)
                  / IP(src=A, dst=B) / UDP(sport=9, dport=10)),
    "arp": bytes(eth() / ARP(op=1, psrc=A, pdst=B, hwsrc=MAC_A)),
    "ipv6_udp": bytes(eth() / IPv6(src=A6, dst=B6, fl=0x12345, tc=0xB8, hlim=9) / UDP(sport=546, dport=547) / b"d6"),
    "ipv6_ext": bytes(eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
                      / IPv6ExtHdrRouting(addresses=["fd00::9"]) / IPv6ExtHdrFragment(m=1, id=0xABCD)
                      / TCP(sport=7, dport=8, flags="S")),
    "ipv6_later_fragment": bytes(eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(offset=10, id=1) / (b"z" * 24)),
    "icmpv6": bytes(eth() / IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(id=3, seq=4)),
    "gre": bytes(eth() / IP(src=A, dst=B) / GRE(key_present=1, key=42, seqnum_present=1, sequence_number=5)
                 / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=11, dport=12) / b"in"),
    "vxlan": bytes(eth() / IP(src=A, dst=B) / UDP(sport=50000, dport=4789) / VXLAN(vni=42)
                   / Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
                   / TCP(sport=1, dport=2, flags="S")),
    "unknown_ethertype": bytes(Ether(src=MAC_A, dst=MAC_B, type=0x88B5) / Raw(b"hello")),
}


# -- known values -----------------------------------------------------------------------------------------
def test_tcp_syn_fields_and_flow() -> None:
    d = decode(FRAMES["tcp_syn"])
    assert isinstance(d, Decoded)
    assert [type(layer).__name__ for layer in d.layers] == ["Ethernet", "IPv4", "TCP"]
    assert d.eth == Ethernet(MAC_B, MAC_A, 0x0800)
    ip = d.ip4
    assert ip is not None and d.ip is ip and d.ip6 is None
    assert (ip.version, ip.ihl, ip.ttl, ip.id, ip.proto, ip.src, ip.dst) == (4, 20, 61, 77, 6, A, B)
    assert ip.df and not ip.mf and not ip.is_fragment and ip.flags == 2 and ip.frag_offset == 0
    tcp = d.tcp
    assert tcp is not None
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags, tcp.window, tcp.header_length) == (
        40000, 80, 1000, 0, 0x02, 64240, 40)
    assert tcp.options == ((2, 1460), (4, None), (8, (1, 0)), (1, None), (3, 7))
    assert d.flow == Flow(A, B, 6, 40000, 80)
    assert d.payload == b"" and d.truncated is None


def test_payload_is_the_application_data_without_padding() -> None:
    d = decode(FRAMES["tcp_data"])
    assert d.payload == b"GET / HTTP/1.1\r\n\r\n"
    assert d.tcp is not None and d.tcp.options == ((1, None), (1, None), (8, (9, 8)))
    short = decode(bytes(eth() / IP(src=A, dst=B) / UDP(sport=1, dport=2) / b"x") + bytes(20))  # Ethernet padding
    assert short.payload == b"x"
    assert short.udp == UdpLayer(1, 2, 9, short.udp.checksum if short.udp else 0)


def test_sack_blocks_vlan_tags_and_qinq() -> None:
    tcp = decode(FRAMES["tcp_sack"]).tcp
    assert tcp is not None and tcp.options == ((5, ((10, 20), (30, 40))), (0, None))  # EOL pads to 4 bytes
    d = decode(FRAMES["vlan"])
    assert d.vlans == (Vlan(0x8100, 5, 1, 100, 0x0800),)
    assert d.flow == Flow(A, B, 17, 9, 10)
    q = decode(FRAMES["qinq"])
    assert q.vlans == (Vlan(0x88A8, 0, 0, 10, 0x8100), Vlan(0x8100, 0, 0, 20, 0x0800))
    assert q.eth is not None and q.eth.ethertype == 0x88A8
    assert q.udp is not None and q.udp.dport == 10


def test_ipv4_options_fragments_arp_icmp() -> None:
    ip = decode(FRAMES["ip_options"]).ip4
    assert ip is not None and ip.ihl == 28 and ip.option_list == ((7, bytes([4, 1, 2, 3, 4])), (0, b""))
    frag = decode(FRAMES["ip_fragment"])
    assert frag.ip4 is not None and frag.ip4.frag_offset == 185 * 8 and frag.ip4.mf and frag.ip4.is_fragment
    assert frag.transport is None and frag.payload == b"f" * 40
    assert frag.flow == Flow(A, B, 17, None, None)
    arp = decode(FRAMES["arp"])
    assert arp.arp == ArpLayer(1, 0x0800, 6, 4, 1, MAC_A, A, "00:00:00:00:00:00", B)
    assert arp.flow is None and arp.ip is None
    icmp = decode(FRAMES["icmp"]).icmp
    assert isinstance(icmp, IcmpLayer) and (icmp.type, icmp.code, icmp.id, icmp.seq) == (8, 0, 0x4242, 7)


def test_ipv6_extension_chain_and_fragments() -> None:
    d = decode(FRAMES["ipv6_udp"])
    ip6 = d.ip6
    assert ip6 is not None
    assert (ip6.traffic_class, ip6.flow_label, ip6.hop_limit, ip6.next_header, ip6.proto) == (0xB8, 0x12345, 9, 17, 17)
    assert d.flow == Flow(A6, B6, 17, 546, 547)
    ext = decode(FRAMES["ipv6_ext"])
    assert ext.ip6 is not None
    kinds = [e.kind for e in ext.ip6.extensions]
    assert kinds == [0, 60, 43, 44]
    assert isinstance(ext.ip6.extensions[0], IPv6Extension) and ext.ip6.extensions[0].next_header == 60
    frag = ext.ip6.fragment
    assert frag == IPv6Fragment(6, 0, True, 0xABCD)
    assert ext.ip6.proto == 6 and ext.tcp is not None and ext.tcp.dport == 8
    later = decode(FRAMES["ipv6_later_fragment"])
    assert later.ip6 is not None and later.ip6.fragment is not None and later.ip6.fragment.offset == 80
    assert later.transport is None and later.payload == b"z" * 24
    icmp6 = decode(FRAMES["icmpv6"]).icmp
    assert isinstance(icmp6, ICMPv6) and (icmp6.type, icmp6.id, icmp6.seq) == (128, 3, 4)


def test_tunnels_decode_the_inner_packet() -> None:
    g = decode(FRAMES["gre"])
    assert g.tunnel == GreLayer(0x3000, 0, 0x0800, None, None, 42, 5, None) and g.transport is g.tunnel
    assert g.inner is not None and g.inner.ip4 is not None and g.inner.ip4.dst == "10.0.0.2"
    assert g.inner.flow == Flow("10.0.0.1", "10.0.0.2", 17, 11, 12)
    assert g.flow == Flow(A, B, 47, None, None)
    v = decode(FRAMES["vxlan"])
    assert v.tunnel == VxlanLayer(0x0C, 42)  # scapy sets the I and G bits
    assert v.flow == Flow(A, B, 17, 50000, 4789)
    assert v.inner is not None and v.inner.eth == Ethernet("02:00:00:00:00:02", "02:00:00:00:00:01", 0x0800)
    assert v.inner.tcp is not None and v.inner.tcp.flags == 0x02


def test_cooked_loopback_and_raw_link_types() -> None:
    ip_packet = FRAMES["tcp_syn"][14:]
    sll = decode(cooked_header(4, 1, bytes.fromhex("020000000001"), 0x0800) + ip_packet, LINKTYPE_LINUX_SLL)
    assert sll.link == LinuxSLL(4, 1, 6, "02:00:00:00:00:01", 0x0800)
    assert sll.flow == Flow(A, B, 6, 40000, 80)
    sll2_header = struct.pack("!HHIHBB8s", 0x86DD, 0, 7, 1, 0, 6, bytes.fromhex("020000000002") + bytes(2))
    sll2 = decode(sll2_header + FRAMES["ipv6_udp"][14:], LINKTYPE_LINUX_SLL2)
    assert sll2.link == LinuxSLL2(0x86DD, 7, 1, 0, 6, "02:00:00:00:00:02")
    assert sll2.udp is not None and sll2.udp.sport == 546
    for linktype, header in ((LINKTYPE_NULL, struct.pack("<I", 2)), (LINKTYPE_LOOP, struct.pack(">I", 2))):
        lo = decode(header + ip_packet, linktype)
        assert lo.link == Loopback(2) and lo.tcp is not None
    raw = decode(ip_packet, LINKTYPE_RAW)
    assert raw.link is None and raw.flow == Flow(A, B, 6, 40000, 80)
    assert decode(FRAMES["ipv6_udp"][14:], LINKTYPE_RAW).ip6 is not None


# -- against dpkt and scapy --------------------------------------------------------------------------------
def _dpkt_ip_layer(frame: bytes) -> Any:
    e = dpkt.ethernet.Ethernet(frame)
    return e, e.data


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_fields_equal_dpkts(name: str) -> None:
    frame = FRAMES[name]
    d = decode(frame)
    e, net = _dpkt_ip_layer(frame)
    assert d.eth is not None
    assert d.eth.dst == e.dst.hex(":") and d.eth.src == e.src.hex(":")
    tags = getattr(e, "vlan_tags", [])
    assert [(v.vid, v.pcp) for v in d.vlans] == [(t.id, t.pri) for t in tags]
    if isinstance(net, dpkt.ip.IP):
        ip = d.ip4
        assert ip is not None
        assert (ip.version, ip.ihl, ip.tos, ip.total_length, ip.id, ip.ttl, ip.proto, ip.checksum) == (
            net.v, net.hl * 4, net.tos, net.len, net.id, net.ttl, net.p, net.sum)
        assert (ip.df, ip.mf, ip.frag_offset) == (bool(net.df), bool(net.mf), net.offset * 8)
        assert (ip.src, ip.dst, ip.options) == (dpkt.utils.inet_to_str(net.src), dpkt.utils.inet_to_str(net.dst),
                                                net.opts)
    elif isinstance(net, dpkt.ip6.IP6):
        ip6 = d.ip6
        assert ip6 is not None
        assert (ip6.traffic_class, ip6.flow_label, ip6.payload_length, ip6.next_header, ip6.hop_limit) == (
            net.fc, net.flow, net.plen, net.nxt, net.hlim)
        assert (ip6.src, ip6.dst) == (dpkt.utils.inet_to_str(net.src), dpkt.utils.inet_to_str(net.dst))
        assert [x.kind for x in ip6.extensions] == list(net.extension_hdrs)
    elif isinstance(net, dpkt.arp.ARP):
        arp = d.arp
        assert arp is not None
        assert (arp.htype, arp.ptype, arp.hlen, arp.plen, arp.op) == (net.hrd, net.pro, net.hln, net.pln, net.op)
        assert (arp.sha, arp.spa, arp.tha, arp.tpa) == (net.sha.hex(":"), dpkt.utils.inet_to_str(net.spa),
                                                        net.tha.hex(":"), dpkt.utils.inet_to_str(net.tpa))
        return
    else:
        assert d.net is None
        return
    t = net.data
    if isinstance(t, dpkt.tcp.TCP) and isinstance(d.transport, TcpLayer):
        tcp = d.transport
        assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.header_length, tcp.flags, tcp.window, tcp.checksum,
                tcp.urgent) == (t.sport, t.dport, t.seq, t.ack, t.off * 4, t.flags, t.win, t.sum, t.urp)
        assert tcp.raw_options == t.opts
        theirs = [k for k, _ in dpkt.tcp.parse_opts(t.opts)]
        if 0 in theirs:  # dpkt reads on past the end-of-list option; tcpdump and afpacket stop there
            theirs = theirs[: theirs.index(0) + 1]
        assert [k for k, _ in tcp.options] == theirs
        if name != "ipv6_ext":
            assert d.payload == bytes(t.data)
    elif isinstance(t, dpkt.udp.UDP) and isinstance(d.transport, UdpLayer):
        udp = d.transport
        assert (udp.sport, udp.dport, udp.length, udp.checksum) == (t.sport, t.dport, t.ulen, t.sum)
    elif isinstance(t, dpkt.icmp.ICMP):
        icmp = d.icmp
        assert icmp is not None and (icmp.type, icmp.code, icmp.checksum) == (t.type, t.code, t.sum)
    elif isinstance(t, dpkt.gre.GRE):
        assert isinstance(d.tunnel, GreLayer) and d.tunnel.protocol == t.p


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_flow_equals_scapys(name: str) -> None:
    pkt = Ether(FRAMES[name])
    d = decode(FRAMES[name])
    if IP in pkt:
        net = pkt[IP]
    elif IPv6 in pkt:
        net = pkt[IPv6]
    else:
        assert d.flow is None
        return
    assert d.flow is not None
    assert (d.flow.src, d.flow.dst) == (net.src, net.dst)
    transport = pkt[TCP] if TCP in net else pkt[UDP] if UDP in net else None
    if transport is not None and GRE not in pkt and VXLAN not in pkt:
        assert (d.flow.sport, d.flow.dport) == (transport.sport, transport.dport)
    else:
        assert (d.flow.sport, d.flow.dport) == (None, None) or VXLAN in pkt


# -- garbage and cut-short input -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_every_cut_decodes_and_names_the_cut_layer(name: str) -> None:
    frame = FRAMES[name]
    full = decode(frame)
    printers = [LinePrinter(), LinePrinter(link=True, verbose=2, dump="X"), LinePrinter(quiet=True)]
    for cut in range(len(frame)):
        d = decode(frame[:cut], LINKTYPE_ETHERNET, len(frame))
        assert len(d.layers) <= len(full.layers) or full.inner is not None
        assert len(d.layers) == len(d.offsets)
        assert all(0 <= offset < cut for offset in d.offsets)
        if cut < 14:
            assert d.truncated == "ether" and d.layers == []
        for p in printers:
            text = p.line(frame[:cut], len(frame), LINKTYPE_ETHERNET)
            assert isinstance(text, str) and "[|packet]" not in text


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
                                                  LINKTYPE_RAW, LINKTYPE_NULL, LINKTYPE_LOOP, 147]))
def test_garbage_never_raises(data: bytes, linktype: int) -> None:
    d = decode(data, linktype)
    assert isinstance(d.layers, list) and (d.flow is None or isinstance(d.flow, Flow))
    repr(d)
    for p in (LinePrinter(), LinePrinter(link=True, verbose=3, dump="XX", ifname=lambda i: "if")):
        text = p.line(data, max(len(data), 1), linktype)
        assert isinstance(text, str) and "[|packet]" not in text


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FRAMES)), st.integers(0, 2000), st.integers(0, 255))
def test_one_flipped_byte_never_raises(name: str, where: int, value: int) -> None:
    frame = bytearray(FRAMES[name])
    frame[where % len(frame)] = value
    decode(bytes(frame))
    for p in (LinePrinter(), LinePrinter(verbose=2, link=True)):
        assert "[|packet]" not in p.line(frame, len(frame), LINKTYPE_ETHERNET)


# -- the printer's options, state and errors -----------------------------------------------------------------
def test_relative_sequence_numbers_follow_a_connection_and_S_turns_them_off() -> None:
    frames = [bytes(eth() / IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="S", seq=1000)),
              bytes(eth() / IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="SA", seq=7000, ack=1001)),
              bytes(eth() / IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="A", seq=1001, ack=7001)),
              bytes(eth() / IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="PA", seq=1001, ack=7001) / b"abc")]
    rel = LinePrinter()
    lines = [rel.line(f, len(f), LINKTYPE_ETHERNET) for f in frames]
    assert "seq 1000, win" in lines[0] and "seq 7000, ack 1001" in lines[1]
    assert "Flags [.], ack 1, win" in lines[2] and "seq 1:4, ack 1" in lines[3]
    absolute = LinePrinter(absolute_seq=True)
    last = [absolute.line(f, len(f), LINKTYPE_ETHERNET) for f in frames][-1]
    assert "seq 1001:1004, ack 7001" in last


def test_cooked_v2_lines_name_the_interface_and_direction() -> None:
    names: list[int] = []

    def ifname(index: int) -> str:
        names.append(index)
        return "veth7"

    p = LinePrinter(ifname=ifname)
    frame = struct.pack("!HHIHBB8s", 0x0800, 0, 9, 1, 4, 6, bytes(8)) + FRAMES["udp"][14:]
    assert p.line(frame, len(frame), LINKTYPE_LINUX_SLL2).startswith(f"veth7 Out IP {A}.5353 > {B}.53: ")
    incoming = frame[:10] + b"\x00" + frame[11:]
    assert p.line(incoming, len(frame), LINKTYPE_LINUX_SLL2).startswith("veth7 In  IP ")
    assert names == [9]  # asked once, then cached
    unknown = LinePrinter(ifname=lambda i: "?")
    assert unknown.line(frame, len(frame), LINKTYPE_LINUX_SLL2).startswith("?     Out IP ")


def test_bytes_like_input_and_invalid_headers() -> None:
    p = LinePrinter()
    frame = FRAMES["udp"]
    text = p.line(frame, len(frame), LINKTYPE_ETHERNET)
    assert p.line(memoryview(frame), len(frame), LINKTYPE_ETHERNET) == text
    assert p.line(bytearray(frame), len(frame), LINKTYPE_ETHERNET) == text
    assert p.line(b"", 0, LINKTYPE_ETHERNET) == "[Invalid header: caplen==0, len==0]"
    assert p.line(frame, 10, LINKTYPE_ETHERNET) == f"[Invalid header: len(10) < caplen({len(frame)})]"
    assert p.line(frame, len(frame), 147).startswith("UNSUPPORTED\n\t0x0000:")


@pytest.mark.parametrize(("kwargs", "word"), [({"dump": "y"}, "dump"), ({"verbose": -1}, "verbose"),
                                               ({"verbose": True}, "verbose")])
def test_bad_options_are_clear_errors(kwargs: dict[str, Any], word: str) -> None:
    with pytest.raises(ArgumentError, match=word):
        LinePrinter(**kwargs)


def test_unknown_ethertype_gets_tcpdumps_hex_dump_unless_quiet() -> None:
    frame = FRAMES["unknown_ethertype"]
    text = LinePrinter().line(frame, len(frame), LINKTYPE_ETHERNET)
    assert text == (f"{MAC_A} > {MAC_B}, ethertype Unknown (0x88b5), length 19: "
                    "\n\t0x0000:  6865 6c6c 6f                             hello")
    assert LinePrinter(quiet=True).line(frame, len(frame), LINKTYPE_ETHERNET) == (
        f"{MAC_A} > {MAC_B}, Unknown Ethertype (0x88b5), length 19: ")


# -- helpers shared with the printer ---------------------------------------------------------------------
def test_dump_layouts() -> None:
    data = b"Hello, World!\n"
    assert hex_lines(data) == "\n\t0x0000:  4865 6c6c 6f2c 2057 6f72 6c64 210a"
    assert hex_ascii_lines(data) == "\n\t0x0000:  4865 6c6c 6f2c 2057 6f72 6c64 210a       Hello,.World!."
    assert ascii_text(b"a\r\nb\rc\x01 \t") == "\na\nb.c. \t"
    assert ascii_text(b"end\r") == "\nend"
    assert hex_lines(bytes(range(17))).count("\n\t0x0010:") == 1


def test_checksum_equals_scapys() -> None:
    rng = random.Random(8)
    for size in (0, 1, 2, 19, 20, 1500, 1501):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert checksum_of(data) == (scapy_checksum(data) if data else 0xFFFF)
    header = bytes(IP(src=A, dst=B))[:20]
    assert checksum_of(header) == 0  # a correct header sums to zero
    assert checksum_of(header[:10], header[10:]) == 0


def test_layers_are_cheap_tuples() -> None:
    d = decode(FRAMES["tcp_syn"])
    for layer in d.layers:
        assert isinstance(layer, tuple)
        assert not hasattr(layer, "__dict__")
    assert isinstance(decode(FRAMES["ipv6_udp"]).ip, Ip6Layer)


# -- the shortcut for everyday frames ---------------------------------------------------------------------------
def _everyday_frames() -> list[bytes]:
    """The shapes LinePrinter prints without decoding layers first, in a connection's order."""
    from scapy.all import DNS, DNSQR, DNSRR, ICMPv6MLReport2, ICMPv6ND_NA, ICMPv6ND_NS, PadN, RouterAlert

    def tcp(src: str, dst: str, sport: int, dport: int, **kw: Any) -> Any:
        net = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
        return eth() / net / TCP(sport=sport, dport=dport, **kw)

    ts = [("NOP", None), ("NOP", None), ("Timestamp", (7, 9))]
    frames = [
        tcp(A, B, 40000, 80, flags="S", seq=1000, options=TCP_SYN[TCP].options),
        tcp(B, A, 80, 40000, flags="SA", seq=7000, ack=1001, options=TCP_SYN[TCP].options),
        tcp(A, B, 40000, 80, flags="A", seq=1001, ack=7001, options=ts),
        tcp(A, B, 40000, 80, flags="PA", seq=1001, ack=7001, options=ts) / b"GET /x HTTP/1.1\r\nHost: y\r\n\r\n",
        tcp(B, A, 80, 40000, flags="PA", seq=7001, ack=1029, options=ts) / b"HTTP/1.1 200 OK\r\n\r\nbody",
        tcp(B, A, 80, 40000, flags="UA", seq=7024, ack=1029, urgptr=3) / b"urgent",
        tcp(A, B, 40000, 80, flags="A", seq=1029, ack=7030, options=[("SAck", (7000, 7010))]),
        tcp(A, B, 40000, 80, flags="FA", seq=1029, ack=7030),
        tcp(A6, B6, 40001, 8080, flags="S", seq=5), tcp(A6, B6, 40001, 8080, flags="A", seq=6, ack=1),
        tcp(A, A, 3000, 3000, flags="A", seq=1, ack=2),  # equal ports: the addresses name the direction
        eth() / IP(src=A, dst=B) / UDP(sport=40002, dport=53) / DNS(id=1, qd=DNSQR(qname="example.com")),
        eth() / IP(src=B, dst=A) / UDP(sport=53, dport=40002)
        / DNS(id=1, qr=1, qd=DNSQR(qname="example.com"), an=DNSRR(rrname="example.com", rdata="192.0.2.1")),
        eth() / IP(src=A, dst=B) / UDP(sport=40003, dport=9999) / b"datagram",
        eth() / IP(src=A, dst=B, flags="MF") / UDP(sport=40003, dport=9999, len=300) / b"first fragment",
        eth() / IP(src=A, dst=B) / ICMP(type=0, id=1, seq=2) / b"pong",
        eth() / IP(src=A, dst=B) / ICMP(type=3, code=3) / bytes(IP(src=B, dst=A) / UDP(sport=1, dport=2)),
        eth() / IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(id=3, seq=4),
        eth() / IPv6(src="::", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fe80::1"),
        eth() / IPv6(src=A6, dst=B6) / ICMPv6ND_NA(tgt="fe80::1", R=0, S=1),
        eth() / IPv6(src="::", dst="ff02::16") / IPv6ExtHdrHopByHop(options=[RouterAlert(), PadN(optdata=b"")])
        / ICMPv6MLReport2(),
        eth() / ARP(op=1, psrc=A, pdst=B, hwsrc=MAC_A),
        eth() / ARP(op=1, psrc=A, pdst=B, hwsrc=MAC_A, hwdst=MAC_B),
        eth() / ARP(op=2, psrc=B, pdst=A, hwsrc=MAC_B, hwdst=MAC_A),
    ]
    return [bytes(f) for f in frames]


def test_the_shortcut_prints_what_the_general_path_prints() -> None:
    """Everyday frames skip building layer records; a printer with that shortcut turned off must print the
    same lines (and dumps) for them, for seeded corruptions of them and for any capture or wire length."""
    frames = _everyday_frames()
    shortcut = LinePrinter()
    assert all(shortcut._fast_line(f, len(f), len(f)) is not None for f in frames)  # they all take it
    rng = random.Random(8)
    printers = []
    modes: list[dict[str, Any]] = [{}, {"dump": "x"}, {"absolute_seq": True}]
    for options in modes:
        general = LinePrinter(**options)
        general._plain = False  # the general path alone
        printers.append((LinePrinter(**options), general))
    checked = 0
    for round_ in range(3000):
        frame = bytearray(frames[round_ % len(frames)])
        if round_ >= len(frames):
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(12, len(frame))] = rng.choice((0, 1, 2, 6, 17, 58, 0x45, 0x60, 0xFF,
                                                                   rng.randrange(256)))
            if rng.random() < 0.3:
                frame = frame[: rng.randrange(34, len(frame) + 1)]
        data = bytes(frame)
        wire_len = len(data) + rng.choice((0, 0, 0, 1, 40))
        for fast, general in printers:
            assert fast.line(data, wire_len, LINKTYPE_ETHERNET) == general.line(data, wire_len, LINKTYPE_ETHERNET), (
                data.hex(), wire_len)
            checked += 1
    assert checked == 9000

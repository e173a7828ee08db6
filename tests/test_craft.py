"""Crafted UDP/IPv4 frames: exact sizes, valid IP and UDP checksums (checked by dpkt), flows that differ.

And :func:`~afpacket.craft.ethernet_from`, which rebuilds records of other link types (Linux cooked
v1/v2, bare IP, BSD loopback) as Ethernet frames: every branch is checked field by field against the
layouts of tcpdump.org/linktypes.html, and scapy's dissection of the input and of the output must agree.
Pure byte work: no socket, no root.
"""

from __future__ import annotations

import struct

import dpkt
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv46
from scapy.layers.l2 import ARP, LLC, CookedLinux, CookedLinuxV2, Dot3, Ether, Loopback, LoopbackOpenBSD
from scapy.packet import Raw

from afpacket.craft import REBUILDABLE_LINKTYPES, FlowSpec, checksum, ethernet_from, udp_frame
from afpacket.errors import AfPacketError

BASE = dict(src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02", src_ip="198.18.0.10", dst_ip="198.18.0.20")


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: building bytes does not touch a ring."""
    return "none"


def _checksums_valid(frame: bytes) -> bool:
    eth = dpkt.ethernet.Ethernet(frame)
    ip = eth.data
    assert isinstance(ip, dpkt.ip.IP)
    raw_ip = frame[len(frame) - ip.len :]  # the raw bytes, not dpkt's re-serialisation
    hdr = raw_ip[: ip.hl * 4]
    if checksum(hdr) != 0:
        return False
    udp = raw_ip[ip.hl * 4 : ip.len]
    pseudo = raw_ip[12:20] + bytes([0, 17]) + len(udp).to_bytes(2, "big")
    return checksum(pseudo + udp) == 0


@pytest.mark.parametrize("size", [42, 60, 64, 100, 1514])
def test_udp_frame_has_the_requested_size_and_valid_checksums(size: int) -> None:
    frame = udp_frame(**BASE, sport=4000, dport=5000, size=size)
    assert len(frame) == size
    eth = dpkt.ethernet.Ethernet(frame)
    assert eth.type == dpkt.ethernet.ETH_TYPE_IP
    assert eth.data.p == dpkt.ip.IP_PROTO_UDP
    assert (eth.data.data.sport, eth.data.data.dport) == (4000, 5000)
    assert _checksums_valid(frame)


def test_dpkt_agrees_with_the_checksums() -> None:
    frame = udp_frame(**BASE, size=128)
    ip = dpkt.ethernet.Ethernet(frame).data
    stored_ip, stored_udp = ip.sum, ip.data.sum
    ip.sum = 0
    ip.data.sum = 0
    rebuilt = dpkt.ip.IP(bytes(ip))  # serialising with sum 0 makes dpkt compute both
    assert (rebuilt.sum, rebuilt.data.sum) == (stored_ip, stored_udp)


def test_vlan_tagged_frame() -> None:
    frame = udp_frame(**BASE, size=64, vlan=42)
    assert len(frame) == 64
    eth = dpkt.ethernet.Ethernet(frame)
    assert eth.vlan_tags[0].id == 42
    assert frame[12:14] == b"\x81\x00" and frame[16:18] == b"\x08\x00"


def test_flows_vary_the_five_tuple() -> None:
    frames = FlowSpec(**BASE, sport=1000, size=60).frames(8)
    tuples = set()
    for f in frames:
        ip = dpkt.ethernet.Ethernet(f).data
        tuples.add((ip.src, ip.dst, ip.p, ip.data.sport, ip.data.dport))
        assert _checksums_valid(f)
    assert len(tuples) == 8


def test_dgram_payload_has_no_link_header() -> None:
    (pkt,) = FlowSpec(**BASE, size=60).frames(1, link_header=False)
    assert len(pkt) == 60 and pkt[0] == 0x45  # size counts what is handed to the kernel


@pytest.mark.parametrize(
    "kwargs",
    [dict(size=20), dict(src_mac="nope"), dict(dst_ip="1.2.3"), dict(sport=70000), dict(vlan=5000)],
)
def test_bad_input_is_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {**BASE, **kwargs}
    with pytest.raises(AfPacketError):
        udp_frame(**args)  # type: ignore[arg-type]


# -- ethernet_from: other link types rebuilt as Ethernet ---------------------------------------------

DST = bytes.fromhex("ffffffffffff")  # the caller's destination: a cooked record does not say where it went
FALLBACK = bytes.fromhex("020000000063")  # the caller's source, used when the record has none
SENDER = bytes.fromhex("02000000000a")  # the sender's address a cooked header recorded
IPV4 = udp_frame(src_mac=SENDER, dst_mac=DST, src_ip="198.18.0.10", dst_ip="198.18.0.20", link_header=False)
IPV6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=4000, dport=5000) / Raw(b"afpacket"))
ARP_REQUEST = bytes(ARP(op=1, hwsrc="02:00:00:00:00:0a", psrc="198.18.0.10", pdst="198.18.0.20"))
#: An 802.2 LLC header (spanning tree's SAPs, UI frame) and a few bytes of BPDU.
LLC_PAYLOAD = bytes([0x42, 0x42, 0x03]) + bytes(35)
#: Novell "raw 802.3": IPX right after the length, recognisable by its 0xffff checksum.
NOVELL_PAYLOAD = bytes.fromhex("ffff001e") + bytes(26)


def sll(protocol: int, payload: bytes, *, halen: int = 6, addr: bytes = SENDER, pkttype: int = 0) -> bytes:
    """A LINKTYPE_LINUX_SLL record: packet type, ARPHRD type, address length, 8-byte address, protocol."""
    return struct.pack("!HHH8sH", pkttype, 1, halen, addr, protocol) + payload


def sll2(protocol: int, payload: bytes, *, halen: int = 6, addr: bytes = SENDER, pkttype: int = 0) -> bytes:
    """A LINKTYPE_LINUX_SLL2 record: protocol, reserved, ifindex, ARPHRD type, packet type, length, address."""
    return struct.pack("!HHIHBB8s", protocol, 0, 7, 1, pkttype, halen, addr) + payload


COOKED = {113: (sll, 16), 276: (sll2, 20)}


def rebuild(linktype: int, data: bytes, *, keep_src: bool = True) -> bytes:
    return ethernet_from(linktype, data, src_mac=FALLBACK, dst_mac=DST, keep_src=keep_src)


def split(frame: bytes) -> tuple[bytes, bytes, int, bytes]:
    """An Ethernet frame's destination, source, type-or-length field and the rest."""
    dst, src, type_or_len = struct.unpack_from("!6s6sH", frame)
    return dst, src, type_or_len, frame[14:]


def mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def test_ethernet_records_are_returned_unchanged() -> None:
    frame = udp_frame(src_mac=SENDER, dst_mac=DST, src_ip="198.18.0.10", dst_ip="198.18.0.20")
    assert rebuild(1, frame) == frame


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
def test_cooked_ipv4_gets_the_senders_address_and_its_protocol(linktype: int) -> None:
    make, hdr_len = COOKED[linktype]
    record = make(0x0800, IPV4)
    frame = rebuild(linktype, record)
    assert len(frame) == len(record) - hdr_len + 14
    assert split(frame) == (DST, SENDER, 0x0800, IPV4)
    # scapy reads the cooked header and the rebuilt frame alike: same sender, protocol and IP packet.
    cooked = (CookedLinux if linktype == 113 else CookedLinuxV2)(record)
    eth = Ether(frame)
    assert eth.dst == mac(DST)
    assert eth.src == mac(bytes(cooked.src)[:6]) == mac(SENDER)
    assert eth.type == cooked.proto == 0x0800
    assert bytes(eth[IP]) == bytes(cooked[IP]) == IPV4
    assert (eth[UDP].sport, eth[UDP].dport) == (1024, 9)


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
@pytest.mark.parametrize(
    ("protocol", "payload", "layer"), [(0x86DD, IPV6, IPv6), (0x0806, ARP_REQUEST, ARP)], ids=["ipv6", "arp"]
)
def test_cooked_protocols_pass_through_as_the_ethertype(
    linktype: int, protocol: int, payload: bytes, layer: type
) -> None:
    make, _ = COOKED[linktype]
    frame = rebuild(linktype, make(protocol, payload, pkttype=4))  # outgoing: the address is still ours
    assert split(frame) == (DST, SENDER, protocol, payload)
    assert bytes(Ether(frame)[layer]) == payload


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
def test_protocol_0x0600_is_the_first_ethertype(linktype: int) -> None:
    # 0x0600 (XNS IDP) is the smallest value that is a type; 0x05ff and below are lengths or Linux codes.
    make, _ = COOKED[linktype]
    assert split(rebuild(linktype, make(0x0600, b"xns")))[2:] == (0x0600, b"xns")


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
@pytest.mark.parametrize(
    ("halen", "addr", "keep_src"),
    [
        (6, SENDER + bytes(2), False),  # the caller asked for its own source
        (0, bytes(8), True),  # no address recorded (e.g. a tun device)
        (4, bytes([198, 18, 0, 10, 0, 0, 0, 0]), True),  # a 4-byte link address (e.g. ipip): not a MAC
        (6, bytes(8), True),  # six zero bytes: the "lo" device's address, not a sender's
        (8, SENDER + b"\xaa\xbb", True),  # an 8-byte address (e.g. FireWire): not a MAC either
    ],
    ids=["keep_src-false", "no-address", "4-byte-address", "zero-address", "8-byte-address"],
)
def test_cooked_source_falls_back_to_src_mac(linktype: int, halen: int, addr: bytes, keep_src: bool) -> None:
    make, _ = COOKED[linktype]
    frame = rebuild(linktype, make(0x0800, IPV4, halen=halen, addr=addr), keep_src=keep_src)
    assert split(frame) == (DST, FALLBACK, 0x0800, IPV4)


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
def test_cooked_8022_llc_becomes_an_8023_frame_with_a_length(linktype: int) -> None:
    make, _ = COOKED[linktype]
    frame = rebuild(linktype, make(0x0004, LLC_PAYLOAD))  # ETH_P_802_2: an LLC header follows
    assert split(frame) == (DST, SENDER, len(LLC_PAYLOAD), LLC_PAYLOAD)
    eth = Ether(frame)  # a field <= 1500 is a length: scapy dissects 802.3 + LLC
    assert isinstance(eth, Dot3)
    assert (eth.dst, eth.src, eth.len) == (mac(DST), mac(SENDER), len(LLC_PAYLOAD))
    assert (eth[LLC].dsap, eth[LLC].ssap, eth[LLC].ctrl) == (0x42, 0x42, 0x03)


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
def test_cooked_novell_raw_8023_becomes_an_8023_frame_with_a_length(linktype: int) -> None:
    make, _ = COOKED[linktype]
    frame = rebuild(linktype, make(0x0001, NOVELL_PAYLOAD))  # ETH_P_802_3
    assert split(frame) == (DST, SENDER, len(NOVELL_PAYLOAD), NOVELL_PAYLOAD)
    eth = Ether(frame)
    assert isinstance(eth, Dot3) and eth.len == len(NOVELL_PAYLOAD)
    assert bytes(eth.payload) == NOVELL_PAYLOAD


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
def test_an_8023_payload_must_fit_the_length_field(linktype: int) -> None:
    make, _ = COOKED[linktype]
    full = LLC_PAYLOAD[:3] + bytes(1497)
    assert split(rebuild(linktype, make(0x0004, full)))[2] == 1500
    with pytest.raises(AfPacketError, match=r"802\.3 payload of 1501 bytes does not fit a length field"):
        rebuild(linktype, make(0x0004, full + b"\0"))


@pytest.mark.parametrize("linktype", [113, 276], ids=["sll", "sll2"])
@pytest.mark.parametrize("protocol", [0x0002, 0x000C, 0x05FF])  # ETH_P_AX25, ETH_P_CAN, the last length
def test_other_cooked_codes_below_0x0600_are_refused(linktype: int, protocol: int) -> None:
    make, _ = COOKED[linktype]
    with pytest.raises(AfPacketError, match=f"cooked protocol 0x{protocol:04x} has no Ethernet equivalent"):
        rebuild(linktype, make(protocol, b"\0" * 16))


@pytest.mark.parametrize(("linktype", "hdr_len"), [(113, 16), (276, 20)], ids=["sll", "sll2"])
def test_a_truncated_cooked_header_is_refused(linktype: int, hdr_len: int) -> None:
    make, _ = COOKED[linktype]
    with pytest.raises(AfPacketError, match=f"{hdr_len - 1}-byte record is shorter than its {hdr_len}-byte cooked"):
        rebuild(linktype, make(0x0800, b"")[:-1])
    assert rebuild(linktype, make(0x0800, b"")) == DST + SENDER + b"\x08\x00"  # header only: an empty packet


@pytest.mark.parametrize(
    ("linktype", "packet", "ethertype"),
    [(101, IPV4, 0x0800), (101, IPV6, 0x86DD), (228, IPV4, 0x0800), (229, IPV6, 0x86DD)],
    ids=["raw-v4", "raw-v6", "ipv4", "ipv6"],
)
def test_bare_ip_gets_an_ethertype_from_its_version(linktype: int, packet: bytes, ethertype: int) -> None:
    frame = rebuild(linktype, packet)
    assert split(frame) == (DST, FALLBACK, ethertype, packet)  # no address in the record: always src_mac
    layer = IP if ethertype == 0x0800 else IPv6
    assert bytes(Ether(frame)[layer]) == bytes(IPv46(packet)) == packet
    assert Ether(frame)[UDP].dport == (9 if layer is IP else 5000)


def test_the_ipv4_and_ipv6_link_types_name_the_version_themselves() -> None:
    # LINKTYPE_IPV4/IPV6 promise the version, so the first nibble is not consulted (RAW has only the nibble).
    assert split(rebuild(228, b"\x00" * 20))[2] == 0x0800
    assert split(rebuild(229, b"\x00" * 40))[2] == 0x86DD


@pytest.mark.parametrize(("data", "version"), [(b"\x50" + bytes(19), 5), (b"", 0)], ids=["version-5", "empty"])
def test_raw_ip_of_another_version_is_refused(data: bytes, version: int) -> None:
    with pytest.raises(AfPacketError, match=f"raw-IP record with IP version {version} "):
        rebuild(101, data)


@pytest.mark.parametrize(
    ("linktype", "header", "ethertype", "packet"),
    [
        (0, (2).to_bytes(4, "little"), 0x0800, IPV4),  # written on a little-endian host
        (0, (2).to_bytes(4, "big"), 0x0800, IPV4),  # written on a big-endian host
        (0, (10).to_bytes(4, "little"), 0x86DD, IPV6),  # AF_INET6 on Linux
        (0, (24).to_bytes(4, "little"), 0x86DD, IPV6),  # NetBSD, OpenBSD
        (0, (28).to_bytes(4, "big"), 0x86DD, IPV6),  # FreeBSD
        (0, (30).to_bytes(4, "little"), 0x86DD, IPV6),  # macOS
        (108, (2).to_bytes(4, "big"), 0x0800, IPV4),  # LOOP: always network order
        (108, (24).to_bytes(4, "big"), 0x86DD, IPV6),
    ],
    ids=[
        "null-le-v4",
        "null-be-v4",
        "null-linux-v6",
        "null-bsd-v6",
        "null-be-freebsd-v6",
        "null-macos-v6",
        "loop-v4",
        "loop-v6",
    ],
)
def test_loopback_family_becomes_the_ethertype(linktype: int, header: bytes, ethertype: int, packet: bytes) -> None:
    frame = rebuild(linktype, header + packet)
    assert split(frame) == (DST, FALLBACK, ethertype, packet)  # the 4-byte family header is dropped
    layer = IP if ethertype == 0x0800 else IPv6
    assert bytes(Ether(frame)[layer]) == packet


def test_scapy_reads_the_loopback_records_as_the_same_packets() -> None:
    null_record = (2).to_bytes(4, "little") + IPV4
    null = Loopback(null_record)
    assert bytes(null[IP]) == bytes(Ether(rebuild(0, null_record))[IP]) == IPV4
    loop_record = (24).to_bytes(4, "big") + IPV6
    loop = LoopbackOpenBSD(loop_record)  # scapy names family 24 IPv6 but leaves the payload raw
    assert loop.get_field("type").i2repr(loop, loop.type) == "IPv6"
    assert bytes(loop.payload) == bytes(Ether(rebuild(108, loop_record))[IPv6]) == IPV6


@pytest.mark.parametrize(
    ("linktype", "data", "reason"),
    [
        (0, b"\x02\x00\x00", "3-byte record is shorter than its 4-byte loopback header"),
        (108, b"", "0-byte record is shorter than its 4-byte loopback header"),
        (0, (7).to_bytes(4, "little") + IPV4, "loopback address family 7 is neither IPv4 nor IPv6"),
        # LOOP is big-endian whatever the writer: a little-endian 2 reads as 0x02000000
        (108, (2).to_bytes(4, "little") + IPV4, f"loopback address family {2 << 24} is neither"),
    ],
    ids=["null-short", "loop-empty", "null-unknown-family", "loop-little-endian"],
)
def test_bad_loopback_records_are_refused(linktype: int, data: bytes, reason: str) -> None:
    with pytest.raises(AfPacketError, match=reason):
        rebuild(linktype, data)


def test_every_other_link_type_is_refused_by_number() -> None:
    for linktype in [*range(300), 0xFFFF]:
        if linktype in REBUILDABLE_LINKTYPES:
            continue
        with pytest.raises(AfPacketError, match=f"^link type {linktype} cannot be rebuilt as Ethernet$"):
            rebuild(linktype, IPV4)
    assert {0, 1, 101, 108, 113, 228, 229, 276} == REBUILDABLE_LINKTYPES

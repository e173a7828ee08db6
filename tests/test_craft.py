"""Crafted UDP/IPv4 frames: exact sizes, valid IP and UDP checksums (checked by dpkt), flows that differ."""

from __future__ import annotations

import dpkt
import pytest

from afpacket.craft import FlowSpec, checksum, udp_frame
from afpacket.errors import AfPacketError

BASE = dict(src_mac="02:00:00:00:00:01", dst_mac="02:00:00:00:00:02", src_ip="198.18.0.10", dst_ip="198.18.0.20")


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

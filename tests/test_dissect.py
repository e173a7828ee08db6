"""One-line summaries: the same text tcpdump -n (-e) prints for the same packets, and no exception on garbage."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afpacket.dissect import format_time, packet_line, summarize
from afpacket.savefile import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_NULL, LINKTYPE_RAW, PcapWriter

A, B = socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.0.1")
A6, B6 = socket.inet_pton(socket.AF_INET6, "fd00::2"), socket.inet_pton(socket.AF_INET6, "fd00::1")
MAC_A, MAC_B = bytes.fromhex("020000000002"), bytes.fromhex("020000000001")


def ipv4(proto: int, payload: bytes, src: bytes = A, dst: bytes = B) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0, src, dst) + payload


def ipv6(nxt: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, A6, B6) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(flags: int, payload: bytes = b"", seq: int = 1000, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", 40001, 40002, seq, ack, 5 << 4, flags, 512, 0, 0) + payload


def icmp_echo(kind: int, ident: int, seq: int) -> bytes:
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + bytes(56)


def eth(ethertype: int, payload: bytes) -> bytes:
    return MAC_B + MAC_A + struct.pack("!H", ethertype) + payload


def arp(op: int, target_mac: bytes = bytes(6)) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, MAC_A, A, target_mac, B)


ETHERNET_FRAMES = [
    eth(0x0800, ipv4(17, udp(40000, 9, b"x" * 18))),
    eth(0x0800, ipv4(1, icmp_echo(8, 1, 1))),
    eth(0x0800, ipv4(1, icmp_echo(0, 0x4242, 7), src=B, dst=A)),
    eth(0x0800, ipv4(6, tcp(0x02))),
    eth(0x0800, ipv4(6, tcp(0x12, seq=77, ack=1001))),
    eth(0x0800, ipv4(6, tcp(0x18, b"hello", seq=1001, ack=78))),
    eth(0x0800, ipv4(6, tcp(0x11, seq=1006, ack=78))),
    eth(0x0800, ipv4(253, bytes(8))),  # an experimental protocol: named by number
    eth(0x86DD, ipv6(17, udp(40000, 40001, b"y" * 10))),
    eth(0x86DD, ipv6(58, icmp_echo(128, 9, 3))),
    eth(0x86DD, ipv6(6, tcp(0x02))),
    eth(0x0806, arp(1)),
    eth(0x0806, arp(1, MAC_B)),
    eth(0x0806, arp(2, MAC_B) + bytes(18)),  # padded to the 60-byte minimum
    eth(0x8100, struct.pack("!HH", 100, 0x0800) + ipv4(17, udp(40000, 9, b"z" * 4))),
    eth(0x8100, struct.pack("!HH", (5 << 13) | 7, 0x86DD) + ipv6(17, udp(40000, 40001, b""))),
    eth(0x88A8, struct.pack("!HHHH", 100, 0x8100, 200, 0x0806) + arp(1)),
    eth(0x0800, ipv4(17, udp(40000, 9, b"x" * 18)))[:24],  # cut inside the IP header
]


def tcpdump_lines(tmp_path: Path, frames: list[bytes], linktype: int, *flags: str) -> list[str]:
    path = tmp_path / "d.pcap"
    with PcapWriter(path, linktype=linktype) as w:
        for i, f in enumerate(frames):
            w.write(1_700_000_000_000_000_000 + i * 1000, f)
    out = subprocess.run(["tcpdump", "-n", "-S", "-r", str(path), *flags], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(" ", 1)[1] for line in out.splitlines()]


@pytest.mark.parametrize("link", [False, True], ids=["plain", "-e"])
def test_ethernet_summaries_match_tcpdump(tmp_path: Path, link: bool) -> None:
    expected = tcpdump_lines(tmp_path, ETHERNET_FRAMES, LINKTYPE_ETHERNET, *(["-e"] if link else []))
    assert [summarize(f, LINKTYPE_ETHERNET, link=link) for f in ETHERNET_FRAMES] == expected


def test_cooked_and_loopback_summaries_match_tcpdump(tmp_path: Path) -> None:
    packet = ipv4(17, udp(40000, 9, b"x" * 3))
    sll = [struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A + b"\0\0", 0x0800) + packet for pkttype in (0, 1, 4)]
    null = [struct.pack("<I", 2) + packet, struct.pack("<I", 30) + ipv6(17, udp(1, 2, b""))]
    for frames, linktype in ((sll, LINKTYPE_LINUX_SLL), (null, LINKTYPE_NULL), ([packet], LINKTYPE_RAW)):
        for link in (False, True):
            if linktype == LINKTYPE_RAW and link:
                continue  # tcpdump -e prints "ip: " for raw IP; we print nothing extra
            expected = tcpdump_lines(tmp_path, frames, linktype, *(["-e"] if link else []))
            assert [summarize(f, linktype, link=link) for f in frames] == expected, (linktype, link)


def test_a_header_cut_short_is_marked_like_tcpdump() -> None:
    frame = eth(0x0800, ipv4(17, udp(40000, 9, b"x" * 18)))
    assert summarize(frame[:38], LINKTYPE_ETHERNET) == "IP 198.18.0.2 > 198.18.0.1: [|udp]"
    assert summarize(frame[:10], LINKTYPE_ETHERNET) == "[|ether]"
    assert summarize(frame[:20], LINKTYPE_ETHERNET) == "IP  [|ip]"


def test_link_mode_uses_the_wire_length() -> None:
    frame = ETHERNET_FRAMES[0]
    assert ", length 1514: " in summarize(frame, LINKTYPE_ETHERNET, link=True, wire_len=1514)


def test_sll2_names_the_interface_index_and_direction() -> None:
    packet = ipv4(17, udp(40000, 9, b""))
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 3, 1, 4, 6, MAC_A + b"\0\0") + packet
    assert summarize(sll2, 276) == "ifindex 3 Out IP 198.18.0.2.40000 > 198.18.0.1.9: UDP, length 0"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=120), linktype=st.sampled_from([0, 1, 101, 108, 113, 228, 229, 276, 9999]),
       link=st.booleans())
def test_garbage_never_raises(data: bytes, linktype: int, link: bool) -> None:
    assert isinstance(summarize(data, linktype, link=link), str)


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=120), index=st.integers(min_value=0, max_value=len(ETHERNET_FRAMES) - 1))
def test_truncated_frames_never_raise(cut: int, index: int) -> None:
    text = summarize(memoryview(ETHERNET_FRAMES[index])[:cut], LINKTYPE_ETHERNET)
    assert isinstance(text, str)


def test_time_is_local_clock_time_like_tcpdump() -> None:
    ts = 1_700_000_000_123_456_789
    clock = time.strftime("%H:%M:%S", time.localtime(1_700_000_000))
    assert format_time(ts) == f"{clock}.123456"
    assert format_time(ts, "nano") == f"{clock}.123456789"
    line = packet_line(ts, ETHERNET_FRAMES[1], 98, LINKTYPE_ETHERNET)
    assert line == f"{clock}.123456 IP 198.18.0.2 > 198.18.0.1: ICMP echo request, id 1, seq 1, length 64"


def test_time_follows_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert format_time(0) == "05:30:00.000000"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert os.environ.get("TZ") is None

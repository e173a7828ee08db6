"""Capture filters: libpcap's compiler through ctypes, attached before the ring, checked on real traffic."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ether, udp_frame

from afpacket import Capture, FilterError, compile_filter
from afpacket.testnet import VethPair


@pytest.mark.parametrize("expr", ["udp port 53", "tcp[tcpflags] & tcp-syn != 0", "ip host 198.18.0.2 and not arp",
                                  "ether proto 0x88b5"])
def test_program_equals_tcpdumps(expr: str) -> None:
    ref = subprocess.run(["tcpdump", "-dd", "-i", "lo", expr], capture_output=True, text=True, check=True).stdout
    assert compile_filter(expr).dump().strip() == ref.strip()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_only_matching_packets_reach_the_ring(net: VethPair, version: int) -> None:
    wanted = [udp_frame(net.outer_mac, net.inner_mac, b"dns", dport=53, sport=1000 + i) for i in range(20)]
    other = [udp_frame(net.outer_mac, net.inner_mac, b"other", dport=54) for _ in range(20)]
    raw = [ether(net.outer_mac, net.inner_mac, 0x88B5, b"x" * 46) for _ in range(20)]
    mixed = [f for trio in zip(wanted, other, raw, strict=True) for f in trio]
    with Capture(net.outer, version=version, filter="udp dst port 53") as cap:
        net.send(mixed)
        got = [bytes(p) for p in cap.packets(count=20, duration=3)]
        assert sum(1 for _ in cap.packets(duration=0.3)) == 0
        st = cap.stats()
    assert got == wanted
    assert st.received == 20  # the kernel counts only what passed the filter


def test_dgram_filters_see_the_network_header(net: VethPair) -> None:
    frames = [udp_frame(net.outer_mac, net.inner_mac, b"a", dport=53), ether(net.outer_mac, net.inner_mac, 0x88B5,
                                                                           b"y" * 46)]
    with Capture(net.outer, sock_type="dgram", filter="udp port 53") as cap:
        net.send(frames)
        got = [bytes(p) for p in cap.packets(count=1, duration=3)]
    assert got == [frames[0][14:]]


def test_bad_expressions_are_clear() -> None:
    with pytest.raises(FilterError, match=r"bad filter expression 'udp prot 53'.*syntax error"):
        compile_filter("udp prot 53")
    with pytest.raises(FilterError, match="no link header"):
        compile_filter("ether host 02:00:00:00:00:01", dgram=True)
    with pytest.raises(FilterError, match="at most 4096"):
        compile_filter(" or ".join(f"host 10.0.{i // 250}.{i % 250}" for i in range(700)), optimize=False)


def test_cli_filter_expression(net: VethPair) -> None:
    r = subprocess.Popen([sys.executable, "-m", "afpacket", "capture", "-i", net.outer, "-c", "2", "udp", "port", "53"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert r.stderr is not None
    while "listening on" not in (line := r.stderr.readline()):  # after tcpdump's "verbose output suppressed"
        assert line, "the capture ended before it was listening"
    net.send([ether(net.outer_mac, net.inner_mac, 0x88B5, b"z" * 46),
              udp_frame(net.outer_mac, net.inner_mac, b"q", dport=53),
              udp_frame(net.outer_mac, net.inner_mac, b"q", dport=53)])
    out, err = r.communicate(timeout=20)
    assert r.returncode == 0, err
    # a one-byte payload to port 53 is too short for a DNS header, and tcpdump says so
    assert len(out.splitlines()) == 2 and all(".53: domain [length 1 < 12] (invalid)" in line
                                              for line in out.splitlines()), out
    bad = subprocess.run([sys.executable, "-m", "afpacket", "capture", "-i", net.outer, "udp", "prot"],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode == 1 and "bad filter expression" in bad.stderr and "Traceback" not in bad.stderr

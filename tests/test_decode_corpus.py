"""LinePrinter prints what ``tcpdump -n -t`` prints, packet for packet, on captures of real traffic.

The traffic is made in two network namespaces joined by a veth pair that the fixture creates (and
removes): ping and ping6 (with fragments), ICMP port unreachable, IPv6 neighbour discovery, MLD and
router solicitations (the kernel sends them once IPv6 is on), IGMP joins, ARP, a TCP connection with
data and a close over IPv4 and IPv6, UDP, DNS queries to a closed port, and a ping across a real VXLAN
device. What no program here makes (VLAN and QinQ tags: the kernel has no 8021q; GRE: no GRE module;
IP options, IPv6 extension headers, odd TCP options, malformed headers) is crafted with scapy and sent
through a packet socket, so the receiving kernel answers it for real. tcpdump captures everything
(``-w``) inside the receiving namespace, on the veth and on ``any`` (Linux cooked v1 and v2), and tcpdump
itself reads the files back: it is the witness for every line, in every output mode. The same frames
are also rewritten as raw IP, BSD loopback (NULL/LOOP) and raw IPv4/IPv6 files, and every frame cut
short at every length up to 96 bytes (tcpdump's ``[|proto]`` marks, ``-x`` starting points).
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from afpacket import PcapWriter, open_reader
from afpacket.dissect import LinePrinter
from afpacket.dissect.hexdump import ascii_text, hex_ascii_lines, hex_lines
from afpacket.savefile.linktype import (
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)
from afpacket.testnet import VethPair


@pytest.fixture
def core() -> str:
    """Overrides conftest's per-core fixture: decoding does not touch the ring kernels."""
    return "both"


#: tcpdump flags -> LinePrinter options: every output mode the issue names, and two combinations.
MODES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "plain": ((), {}),
    "e": (("-e",), {"link": True}),
    "v": (("-v",), {"verbose": 1}),
    "vv": (("-vv",), {"verbose": 2}),
    "vvv": (("-vvv",), {"verbose": 3}),
    "q": (("-q",), {"quiet": True}),
    "S": (("-S",), {"absolute_seq": True}),
    "x": (("-x",), {"dump": "x"}),
    "xx": (("-xx",), {"dump": "xx"}),
    "X": (("-X",), {"dump": "X"}),
    "XX": (("-XX",), {"dump": "XX"}),
    "A": (("-A",), {"dump": "A"}),
    "ev": (("-e", "-v"), {"link": True, "verbose": 1}),
    "eq": (("-e", "-q"), {"link": True, "quiet": True}),
}


# -- the two-namespace lab -----------------------------------------------------------------------------
def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=60)


class Lab:
    """Namespace A (a VethPair's inner end) and namespace B (its outer end, moved there), so no traffic
    and no address touches the test's own namespace. tcpdump and the servers run in B."""

    def __init__(self) -> None:
        self.pair = VethPair("afdc")

    def __enter__(self) -> Lab:
        p = self.pair
        p.create()
        self.ns_a, self.ns_b = p.netns, p.netns + "b"
        self.a, self.b = p.inner, p.outer
        self.ip_a, self.ip_b = p.inner_ip, p.outer_ip
        self.mac_a, self.mac_b = p.inner_mac, p.outer_mac
        self.ip6_a = f"fd00:afd:{os.getpid() % 0xFFFF:x}:1::2"
        self.ip6_b = f"fd00:afd:{os.getpid() % 0xFFFF:x}:1::1"
        try:
            _ip("netns", "add", self.ns_b)
            _ip("link", "set", self.b, "netns", self.ns_b)
            self.run_b("ip", "link", "set", "lo", "up")
            self.run_b("ip", "link", "set", self.b, "up")
            self.run_b("ip", "addr", "add", f"{self.ip_b}/30", "dev", self.b)
            self.run_b("ip", "neigh", "replace", self.ip_a, "lladdr", self.mac_a, "dev", self.b, "nud", "permanent")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _ip("netns", "del", self.ns_b, check=False)
        self.pair.delete()

    def run_a(self, *cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns_a, *cmd], check=check, capture_output=True, text=True,
                              timeout=60, **kw)

    def run_b(self, *cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns_b, *cmd], check=check, capture_output=True, text=True,
                              timeout=60, **kw)

    def py_a(self, code: str, *args: str) -> None:
        self.run_a(sys.executable, "-c", code, *args)

    def server_b(self, code: str, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns_b, sys.executable, "-c", code, *args],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        return proc

    def tcpdump_b(self, path: Path, *args: str) -> subprocess.Popen[str]:
        """tcpdump -w in namespace B, returned once it is listening."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns_b, "tcpdump", "--immediate-mode", "-U", "-w", str(path),
                                 *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            if "listening on" in line:
                time.sleep(0.5)  # the socket is bound just after the message
                return proc
        proc.kill()
        pytest.fail(f"tcpdump did not start: {proc.stderr.read()}")

    def enable_ipv6(self) -> None:
        for run, dev, addr in ((self.run_a, self.a, self.ip6_a), (self.run_b, self.b, self.ip6_b)):
            run("sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6")
            run("ip", "-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")

    def send_frames(self, frames: list[bytes]) -> None:
        """Raw frames out of A's veth end through a packet socket, in order."""
        payload = b"".join(struct.pack("!I", len(f)) + f for f in frames)
        subprocess.run(["ip", "netns", "exec", self.ns_a, sys.executable, "-c", SENDER, self.a], input=payload,
                       check=True, capture_output=True, timeout=120)


def stop(*procs: subprocess.Popen[str]) -> None:
    time.sleep(0.5)
    for proc in procs:
        proc.send_signal(signal.SIGINT)
    for proc in procs:
        proc.wait(timeout=20)


PING4 = r"""
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1)
for seq in range(1, count + 1):
    body = struct.pack("!HH", 0x4242, seq) + bytes(i & 255 for i in range(size))
    s.sendto(struct.pack("!BBH", 8, 0, csum(b"\x08\x00\x00\x00" + body)) + body, (dst, 0))
    try: s.recv(65535)
    except OSError: pass
    time.sleep(0.05)
"""

PING6 = r"""
import socket, struct, sys, time
dst, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(1)
for seq in range(1, count + 1):
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4343, seq) + bytes(i & 255 for i in range(size)), (dst, 0))
    try: s.recv(65535)
    except OSError: pass
    time.sleep(0.05)
"""

TCP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.recv(1000)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
c.recv(1000)
c.close()
"""

TCP_CLIENT = r"""
import socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
c.recv(1000)
time.sleep(0.05)
c.sendall(b"bye")
time.sleep(0.05)
c.close()
time.sleep(0.2)
"""

UDP_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
"""

DNS_QUERY = r"""
import socket, struct, sys
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(q, (sys.argv[1], 53))
"""

IGMP_JOIN = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
mreq = socket.inet_aton(sys.argv[1]) + socket.inet_aton(sys.argv[2])
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
time.sleep(0.3)
s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, mreq)
time.sleep(0.2)
"""

SENDER = r"""
import socket, struct, sys, time
data = sys.stdin.buffer.read()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((sys.argv[1], 0))
off = 0
while off < len(data):
    (n,) = struct.unpack_from("!I", data, off)
    s.send(data[off + 4 : off + 4 + n])
    off += 4 + n
    time.sleep(0.002)
"""


def real_traffic(lab: Lab) -> None:
    """What programs send, in the order a person would try them."""
    lab.py_a(PING4, lab.ip_b, "3", "56")
    lab.py_a(UDP_SEND, lab.ip_b, "9999", "hello udp")  # a closed port: ICMP port unreachable
    lab.py_a(PING4, lab.ip_b, "1", "3000")  # fragments, both ways
    server = lab.server_b(TCP_SERVER, lab.ip_b, "8080")
    lab.py_a(TCP_CLIENT, lab.ip_b, "8080")
    server.wait(timeout=20)
    lab.py_a(IGMP_JOIN, "239.1.2.3", lab.ip_a)
    lab.run_a("ip", "neigh", "del", lab.ip_b, "dev", lab.a, check=False)  # the next ping asks ARP first
    lab.py_a(PING4, lab.ip_b, "1", "8")
    lab.py_a(DNS_QUERY, lab.ip_b)  # nobody listens: the ICMP error quotes a DNS query
    lab.enable_ipv6()  # MLD reports, DAD and router solicitations follow by themselves
    time.sleep(0.5)
    lab.py_a(PING6, lab.ip6_b, "2", "56")  # neighbour solicitation/advertisement first
    lab.py_a(PING6, lab.ip6_b, "1", "3000")  # IPv6 fragment headers
    lab.py_a(UDP_SEND, lab.ip6_b, "9998", "hello6")
    server = lab.server_b(TCP_SERVER, lab.ip6_b, "8081")
    lab.py_a(TCP_CLIENT, lab.ip6_b, "8081")
    server.wait(timeout=20)
    time.sleep(1.5)  # the router solicitations come a second after IPv6 goes up


def vxlan_traffic(lab: Lab) -> None:
    """A ping and a datagram across real VXLAN devices (VNI 42), one in each namespace."""
    lab.py_a(PING4, "192.168.42.1", "2", "56")
    lab.py_a(UDP_SEND, "192.168.42.1", "7777", "inner udp")


def make_vxlan(lab: Lab) -> None:
    for run, dev, local, remote, addr in ((lab.run_a, lab.a, lab.ip_a, lab.ip_b, "192.168.42.2/24"),
                                          (lab.run_b, lab.b, lab.ip_b, lab.ip_a, "192.168.42.1/24")):
        run("ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "remote", remote, "local", local, "dstport",
            "4789", "dev", dev)
        run("ip", "addr", "add", addr, "dev", "vx0")
        run("ip", "link", "set", "vx0", "up")


def crafted_frames(lab: Lab) -> list[bytes]:
    """Frames no program here makes, built with scapy: tags, tunnels, options, malformed headers."""
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
        IPOption,
        IPOption_LSRR,
        IPOption_Router_Alert,
        IPOption_RR,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrRouting,
        IPv6ExtHdrSegmentRouting,
        PadN,
        Raw,
        RouterAlert,
    )

    a, b, a6, b6 = lab.ip_a, lab.ip_b, lab.ip6_a, lab.ip6_b

    def eth(etype: int | None = None) -> Any:
        if etype is None:
            return Ether(src=lab.mac_a, dst=lab.mac_b)
        return Ether(src=lab.mac_a, dst=lab.mac_b, type=etype)

    def ip(**k: Any) -> Any:
        return IP(src=a, dst=b, **k)

    def ip6(**k: Any) -> Any:
        return IPv6(src=a6, dst=b6, **k)

    def tcp_raw(sport: int, dport: int, offset: int, flags: int, options: bytes = b"") -> bytes:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 2, offset << 4, flags, 100, 0, 0) + options

    teb = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / IP(src="10.2.0.1", dst="10.2.0.2")
    frames = [
        # 802.1Q, QinQ (802.1ad outer tag), the old 0x9100 TPID, a tagged ARP and a tagged unknown type
        eth() / Dot1Q(vlan=100, prio=3) / ip() / ICMP(id=7, seq=1) / (b"v" * 20),
        eth() / Dot1Q(vlan=200, dei=1) / ip6() / UDP(sport=40000, dport=40001) / b"vlan6",
        eth(0x88A8) / Dot1Q(vlan=10, type=0x8100) / Dot1Q(vlan=20) / ip() / UDP(sport=40002, dport=40003) / b"qinq",
        eth(0x9100) / Dot1Q(vlan=30) / ip() / UDP(sport=40004, dport=40005) / b"9100",
        eth() / Dot1Q(vlan=5) / ARP(psrc=a, pdst=b, hwsrc=lab.mac_a),
        eth() / Dot1Q(vlan=6) / Raw(struct.pack("!H", 0x88B5) + b"inner unknown"),
        # GRE: key and sequence, checksum, IPv6 inside, Ethernet inside (TEB), unknown inside, PPTP's v1
        eth() / ip() / GRE(key_present=1, key=0x2A, seqnum_present=1, sequence_number=7)
        / IP(src="10.1.0.1", dst="10.1.0.2") / ICMP(id=9, seq=2) / b"gre",
        eth() / ip() / GRE(chksum_present=1) / IPv6(src="fd00::a", dst="fd00::b") / UDP(sport=5000, dport=5001) / b"g6",
        eth() / ip() / GRE(proto=0x6558) / teb / UDP(sport=6000, dport=6001) / b"teb",
        eth() / ip() / GRE(proto=0x1234) / b"opaque",
        eth() / ip() / GRE(version=1, proto=0x880B, key_present=1, key=0x00100005, seqnum_present=1,
                           sequence_number=3) / (b"\xff\x03\x00\x21" + bytes(ip() / UDP(sport=1, dport=2))),
        eth() / ip6() / GRE() / IP(src="10.3.0.1", dst="10.3.0.2") / UDP(sport=1, dport=2) / b"gre over 6",
        # unknown ethertypes: tcpdump adds its hex dump
        eth(0x88B5) / Raw(b"hello unknown ethertype 0123456789abcdef"),
        eth(0x1234) / Raw(bytes(range(50))),
        # IPv4 options, TOS/ECN, the reserved flag, bad checksums
        eth() / ip(options=[IPOption_RR(routers=["1.2.3.4", "5.6.7.8"])]) / ICMP(id=3, seq=3),
        eth() / ip(options=[IPOption(b"\x44\x0c\x0d\x00" + struct.pack("!II", 1, 2))]) / UDP(sport=1000, dport=1001),
        eth() / ip(options=[IPOption_LSRR(routers=["9.9.9.9", b])]) / TCP(sport=1234, dport=80, flags="S"),
        eth() / ip(options=[IPOption_Router_Alert()]) / UDP(sport=1002, dport=1003),
        eth() / ip(tos=0x03) / UDP(sport=1004, dport=1005) / b"ce",
        eth() / ip(tos=0xB9, flags="evil+DF") / UDP(sport=1006, dport=1007),
        eth() / ip(chksum=0x1234) / UDP(sport=1008, dport=1009) / b"badsum",
        eth() / ip() / UDP(sport=1010, dport=1011, chksum=0x4321) / b"bad udp sum",
        eth() / ip() / UDP(sport=1012, dport=1013, chksum=0) / b"no udp sum",
        eth() / ip6() / UDP(sport=1014, dport=1015, chksum=0x1111) / b"bad6",
        # TCP: a handshake of our own for relative numbers, SACK blocks, every option tcpdump names
        eth() / ip() / TCP(sport=3000, dport=3001, flags="S", seq=1000, options=[
            ("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]),
        eth() / ip() / TCP(sport=3001, dport=3000, flags="SA", seq=5000, ack=1001),
        eth() / ip() / TCP(sport=3000, dport=3001, flags="A", seq=1001, ack=5001,
                           options=[("NOP", None), ("NOP", None), ("SAck", (5001, 5101, 5201, 5301))]),
        eth() / ip() / TCP(sport=3001, dport=3000, flags="A", seq=5001, ack=1001, options=[("SAck", (1001, 1101))]),
        eth() / ip() / TCP(sport=3000, dport=3001, flags="PA", seq=1001, ack=5001,
                           options=[(99, b"\x01\x02"), ("EOL", None)]) / b"data",
        eth() / ip() / TCP(sport=3000, dport=3001, flags="UA", seq=1001, ack=5001, urgptr=5) / b"urgent",
        eth() / ip() / TCP(sport=3000, dport=3001, flags="RA", seq=1007, ack=5001)
        / b"reset because\x01\xff of reasons, and more text",
        eth() / ip() / TCP(sport=3002, dport=3003, flags="SEC"),
        eth() / ip() / TCP(sport=3002, dport=3003, flags="FSRPAUEC"),
        eth() / ip() / TCP(sport=3002, dport=3003, flags=0),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(19, bytes(range(16)))]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(28, b"\x81\x2c"), (28, b"\x00\x3c")]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(34, b"")]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(34, bytes(range(1, 9)))]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(254, b"\xf9\x89\xaa\xbb\xcc\xdd")]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(254, b"\x12\x34")]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S",
                           options=[(6, b"\x00\x00\x00\x05"), (11, b"\x00\x00\x00\x06"), (20, b"\x01\x02")]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(29, b"\x01\x02\xde\xad\xbe\xef")]),
        eth() / ip() / TCP(sport=3004, dport=3005, flags="S", options=[(5, b"\x00\x00\x00\x01\x00\x00")]),
        eth() / ip() / Raw(tcp_raw(3006, 3007, 6, 0x02, b"\x02\x09\x05\xb4")),  # option longer than the header
        eth() / ip() / Raw(tcp_raw(3006, 3007, 6, 0x02, b"\x03\x02\x05\x01")),  # [len 2]
        eth() / ip() / Raw(tcp_raw(3008, 3009, 4, 0x10)),  # header length 16: too short
        eth() / ip() / Raw(tcp_raw(3008, 3009, 15, 0x10)),  # header longer than the segment
        # tunnels of IP in IP, IPv6 extension headers and fragments, protocols nobody decodes
        eth() / ip() / IP(src="10.4.0.1", dst="10.4.0.2") / UDP(sport=7, dport=8) / b"ipip",
        eth() / ip() / IPv6(src="fd00::c", dst="fd00::d") / ICMPv6EchoRequest(id=1, seq=1),
        eth() / ip6() / IP(src="10.5.0.1", dst="10.5.0.2") / UDP(sport=9, dport=10),
        eth() / ip6() / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
        / UDP(sport=1100, dport=1101),
        eth() / ip6() / IPv6ExtHdrRouting(addresses=["fd00::1:1", "fd00::1:2"], segleft=2)
        / UDP(sport=1102, dport=1103),
        eth() / ip6() / IPv6ExtHdrSegmentRouting(addresses=["fd00::2:1", "fd00::2:2"])
        / UDP(sport=1104, dport=1105),
        eth() / ip6() / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrDestOpt()
        / TCP(sport=1106, dport=1107, flags="S"),
        eth() / ip6(nh=59) / (b"\x00" * 8),
        eth() / ip6() / IPv6ExtHdrFragment(offset=0, m=1, id=0x1234) / UDP(sport=1108, dport=1109, len=100)
        / (b"x" * 16),
        eth() / ip6() / IPv6ExtHdrFragment(offset=100, m=0, id=0x1234) / (b"y" * 16),
        eth() / ip6(fl=0x12345, tc=0xB8) / UDP(sport=1110, dport=1111) / b"flow",
        eth() / ip6() / TCP(sport=1112, dport=1113, flags="S", options=[
            ("MSS", 1440), ("SAckOK", b""), ("Timestamp", (5, 0)), ("NOP", None), ("WScale", 9)]),
        eth() / ip(proto=253) / Raw(b"experimental"),
        eth() / ip(frag=10, proto=17) / Raw(b"later fragment"),
        eth() / ip(flags="MF", proto=17) / UDP(sport=1114, dport=1115, len=500) / b"first fragment",
        eth() / ip(proto=1, flags="MF") / ICMP(id=4, seq=4) / b"first icmp fragment",
        # ARP: every operation tcpdump names, an unknown one, another hardware type, RARP
        *(eth() / ARP(op=op, psrc=a, pdst=b, hwsrc=lab.mac_a, hwdst=lab.mac_b) for op in (1, 2, 3, 4, 8, 9)),
        eth() / ARP(op=77, psrc=a, pdst=b),
        eth() / ARP(hwtype=6, ptype=0x86DD, plen=16, op=1, psrc=a6, pdst=b6),
        eth(0x8035) / ARP(op=3, psrc=a, pdst=b, hwsrc=lab.mac_a),
        # VXLAN made by hand: an ARP inside, an unknown ethertype inside with the I flag clear, too short
        eth() / ip() / UDP(sport=12345, dport=4789) / VXLAN(flags=0x08, vni=77)
        / Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d") / ARP(psrc="10.6.0.1", pdst="10.6.0.2"),
        eth() / ip() / UDP(sport=12345, dport=4789) / VXLAN(flags=0x00, vni=78)
        / Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d", type=0x88B5) / b"inner unknown ethertype",
        eth() / ip() / UDP(sport=12346, dport=4789) / b"shrt",
        # lengths that disagree, versions that lie
        eth() / ip() / UDP(sport=1116, dport=1117, len=200) / b"udp says 200",
        eth() / ip() / UDP(sport=1118, dport=1119, len=4) / b"ulen 4",
        eth() / IP(src=a, dst=b, len=200) / UDP(sport=1120, dport=1121) / b"ip says 200",
        eth() / IP(src=a, dst=b, ihl=4) / (b"\x00" * 20),
        eth() / IP(src=a, dst=b, len=10) / (b"\x00" * 20),
        eth() / IP(version=5, src=a, dst=b) / (b"\x00" * 20),
        eth(0x0800) / IPv6(src=a6, dst=b6) / UDP(),
        eth(0x86DD) / IP(src=a, dst=b) / UDP(),
        eth() / ip(proto=6) / b"\x0b\xb8",
        eth() / ip(proto=17) / b"\x0b\xb8\x0b",
        eth() / ip(proto=47) / b"\x00",
        eth() / ip(proto=59) / b"",
        eth() / ip(proto=77) / b"nd!",
        eth() / ip6(nh=1) / (b"\x08" + b"\x00" * 7),
        eth() / ip6(nh=143) / Ether(src="02:00:00:00:00:0e", dst="02:00:00:00:00:0f")
        / IP(src="10.7.0.1", dst="10.7.0.2") / UDP(sport=11, dport=12),
    ]
    return [bytes(f) for f in frames]


def rewrite(src: Path, dst: Path, linktype: int, make: Any) -> None:
    """The IP packets of an Ethernet file as another link type (``make(ethertype, packet)``)."""
    with PcapWriter(dst, linktype=linktype) as out:
        for rec in open_reader(src):
            if len(rec.data) < 14:
                continue
            etype = struct.unpack_from("!H", rec.data, 12)[0]
            frame = make(etype, rec.data[14:]) if etype in (0x0800, 0x86DD) else None
            if frame is not None:
                out.write(rec.timestamp_ns, frame, rec.wire_len - len(rec.data) + len(frame))


def cut_short(sources: list[Path], dst: Path) -> None:
    """Every frame of ``sources`` cut at every length up to 96 bytes (and just short of its end)."""
    with PcapWriter(dst) as out:
        for src in sources:
            for rec in open_reader(src):
                n = len(rec.data)
                for cut in sorted({*range(1, min(n, 96)), n - 1, n - 2, n - 7}):
                    if 0 < cut < n:
                        out.write(rec.timestamp_ns, rec.data[:cut], rec.wire_len)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dict[str, Path]]]:
    """Capture files of the traffic above; the lab stays up while the module runs (cooked v2 lines name
    its interfaces, so those files are read inside its namespace)."""
    if os.geteuid() != 0:
        pytest.fail("these tests make network namespaces: run them as root")
    d = tmp_path_factory.mktemp("decode")
    files = {name: d / f"{name}.pcap"
             for name in ("eth", "any2", "any1", "vxlan", "crafted", "crafted_any2", "crafted_any1")}
    with Lab() as lab:
        # the same real traffic on the veth (Ethernet) and on "any" (cooked v2 and v1)
        captures = [lab.tcpdump_b(files["eth"], "-i", lab.b),
                    lab.tcpdump_b(files["any2"], "-i", "any", "-y", "LINUX_SLL2"),
                    lab.tcpdump_b(files["any1"], "-i", "any", "-y", "LINUX_SLL")]
        try:
            real_traffic(lab)
        finally:
            stop(*captures)
        captures = [lab.tcpdump_b(files["crafted"], "-i", lab.b),
                    lab.tcpdump_b(files["crafted_any2"], "-i", "any", "-y", "LINUX_SLL2"),
                    lab.tcpdump_b(files["crafted_any1"], "-i", "any", "-y", "LINUX_SLL")]
        try:
            lab.send_frames(crafted_frames(lab))
        finally:
            stop(*captures)
        make_vxlan(lab)
        captures = [lab.tcpdump_b(files["vxlan"], "-i", lab.b)]
        try:
            vxlan_traffic(lab)
        finally:
            stop(*captures)
        rewrite(files["eth"], d / "raw.pcap", LINKTYPE_RAW, lambda t, p: p)
        rewrite(files["eth"], d / "ipv4.pcap", LINKTYPE_IPV4, lambda t, p: p if t == 0x0800 else None)
        rewrite(files["eth"], d / "ipv6.pcap", LINKTYPE_IPV6, lambda t, p: p if t == 0x86DD else None)
        rewrite(files["eth"], d / "null.pcap", LINKTYPE_NULL,
                lambda t, p: struct.pack("<I", 2 if t == 0x0800 else 24) + p)
        rewrite(files["crafted"], d / "loop.pcap", LINKTYPE_LOOP,
                lambda t, p: struct.pack(">I", 2 if t == 0x0800 else 30) + p)
        cut_short([files["eth"], files["crafted"], files["vxlan"]], d / "short.pcap")
        for name in ("raw", "ipv4", "ipv6", "null", "loop", "short"):
            files[name] = d / f"{name}.pcap"
        yield lab, files


# -- comparing -------------------------------------------------------------------------------------------
def tcpdump_packets(path: Path, flags: tuple[str, ...], netns: str | None = None) -> list[str]:
    """tcpdump -n -t's text per packet: -# numbers the packets, which is where one ends."""
    cmd = ["tcpdump", "-n", "-t", "-#", *flags, "-r", str(path)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=300).stdout
    packets: list[list[str]] = []
    for line in out.split("\n"):
        prefix = f"{len(packets) + 1:5d}  "
        if line.startswith(prefix):
            packets.append([line[len(prefix):]])
        elif packets:
            packets[-1].append(line)
    texts = ["\n".join(p) for p in packets]
    if texts:
        # Each packet's text ends at the newline before the next number; the last one at the file's end.
        texts[-1] = texts[-1].removesuffix("\n")
    return texts


OURS_IN_NETNS = r"""
import json, sys
from afpacket import open_reader
from afpacket.dissect import LinePrinter
p = LinePrinter(**json.loads(sys.argv[2]))
json.dump([p.line(r.data, r.wire_len, r.linktype) for r in open_reader(sys.argv[1])], sys.stdout)
"""


def our_packets(path: Path, options: dict[str, Any], netns: str | None = None) -> list[str]:
    if netns:
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", OURS_IN_NETNS, str(path),
                              json.dumps(options)], capture_output=True, text=True, check=True, timeout=300).stdout
        lines: list[str] = json.loads(out)
        return lines
    printer = LinePrinter(**options)
    return [printer.line(r.data, r.wire_len, r.linktype) for r in open_reader(path)]


def differences(theirs: list[str], ours: list[str]) -> list[str]:
    assert len(theirs) == len(ours)
    return [f"packet {i + 1}:\n  tcpdump: {t!r}\n  ours:    {o!r}"
            for i, (t, o) in enumerate(zip(theirs, ours, strict=True)) if t != o]


WHOLE_FILES = ("eth", "any2", "any1", "vxlan", "crafted", "crafted_any2", "crafted_any1", "raw", "ipv4", "ipv6",
               "null", "loop")


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", WHOLE_FILES)
def test_every_line_equals_tcpdumps(corpus: tuple[Lab, dict[str, Path]], name: str, mode: str) -> None:
    lab, files = corpus
    flags, options = MODES[mode]
    netns = lab.ns_b if name.endswith("any2") else None  # interface names resolve where they exist
    theirs = tcpdump_packets(files[name], flags, netns)
    ours = our_packets(files[name], options, netns)
    assert len(theirs) > 5
    diff = differences(theirs, ours)
    assert not diff, f"{len(diff)} of {len(theirs)} packets differ:\n" + "\n".join(diff[:10])


def test_the_corpus_has_what_it_claims(corpus: tuple[Lab, dict[str, Path]]) -> None:
    """The files hold the protocols the issue names, as tcpdump itself reads them."""
    _, files = corpus
    text = {name: "\n".join(tcpdump_packets(files[name], ())) for name in ("eth", "crafted", "vxlan")}
    wanted = {
        "eth": ["ICMP echo request", "ICMP echo reply", "udp port 9999 unreachable", "ip-proto-1", "Flags [S]",
                "Flags [S.]", "Flags [F.]", "HTTP: GET / HTTP/1.1", "igmp v3 report", "ARP, Request who-has",
                "ARP, Reply", "neighbor solicitation", "neighbor advertisement", "multicast listener report v2",
                "router solicitation", "ICMP6, echo request", "frag (0|", "UDP, length", "A? example.com."],
        "crafted": ["GREv0, key=0x2a, seq 7", "GREv1, call 5", "sack 2 {", "TS val", "wscale 7", "RT6 (len=4",
                    "DSTOPT", "HBH", "ethertype Unknown (0x88b5)", "VXLAN, flags [I] (0x08), vni 77",
                    "Reverse Request", "bad length", "ip-proto-253", "no next header"],
        "vxlan": ["VXLAN, flags [I] (0x08), vni 42\nIP 192.168.42.2 > 192.168.42.1: ICMP echo request"],
    }
    for name, needles in wanted.items():
        for needle in needles:
            assert needle in text[name], f"{name}: no {needle!r}"
    tagged = tcpdump_packets(files["crafted"], ("-e",))
    assert any("802.1Q-QinQ (0x88a8), length" in t and "vlan 10, p 0, ethertype 802.1Q (0x8100), vlan 20" in t
               for t in tagged)


def _dump(kind: str, data: bytes) -> str:
    return {"x": hex_lines, "X": hex_ascii_lines, "A": ascii_text}[kind](data)


@pytest.mark.parametrize("mode", list(MODES))
def test_frames_cut_short_equal_tcpdumps(corpus: tuple[Lab, dict[str, Path]], mode: str) -> None:
    """Every frame cut at every length: tcpdump's [|proto] marks and bad-length messages, line for line,
    and the -x/-X/-A dump after them, which starts at the frame's first byte only where tcpdump jumped out
    of its printers (a read past the capture) rather than stopping at one of its own length checks."""
    _, files = corpus
    flags, options = MODES[mode]
    path = files["short"]
    theirs = tcpdump_packets(path, flags)
    ours = our_packets(path, options)
    records = list(open_reader(path))
    assert len(theirs) == len(ours) == len(records) > 10000
    wrong = [f"packet {i + 1} ({len(rec.data)} of {rec.wire_len} bytes):\n  tcpdump: {t!r}\n  ours:    {o!r}"
             for i, (t, o, rec) in enumerate(zip(theirs, ours, records, strict=True)) if t != o]
    assert not wrong, f"{len(wrong)} of {len(theirs)} differ:\n" + "\n".join(wrong[:10])
    if options.get("dump") in ("x", "X", "A"):
        # Both kinds of stop are in the file, so both starting points were checked above.
        starts = {ours[i][len(text):] == _dump(options["dump"], rec.data)
                  for i, (text, rec) in enumerate(zip(our_packets(path, {}), records, strict=True))
                  if re.search(r" \[\|(icmp6?|domain)\]$", text)}
        assert starts == {True, False}


def test_no_frame_cut_short_raises(corpus: tuple[Lab, dict[str, Path]]) -> None:
    """Truncated copies of every packet, every link type, every mode: a string, never an exception (and
    never the last-resort mark that would hide one)."""
    _, files = corpus
    frames = [(r.data, r.wire_len, r.linktype) for name in ("eth", "any1", "any2", "crafted", "null", "raw")
              for r in open_reader(files[name])]
    printers = [LinePrinter(**options, ifname=lambda i: "x") for _, options in MODES.values()]
    count = 0
    for data, wire_len, linktype in frames:
        for cut in range(len(data) + 1):
            for p in printers:
                text = p.line(data[:cut], wire_len, linktype)
                assert isinstance(text, str)
                assert "[|packet]" not in text, (data[:cut].hex(), linktype, text)
                count += 1
    assert count > 100000

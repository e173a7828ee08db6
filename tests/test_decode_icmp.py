"""ICMP, ICMPv6 (neighbour discovery, MLD) and IGMP text against tcpdump 4.99's own reading of the same files.

Each test writes frames to a pcap file, has ``tcpdump -n -tt [-v...]`` read it, takes the text after
``"SRC > DST: "`` from each of tcpdump's records and compares it with what afpacket.dissect.icmp returns for
the same bytes (the IP header is parsed minimally here to call it). The frames are made by real programs
in namespaces the test builds (the kernel's echo replies, port unreachables, "need to frag", time
exceeded, packet too big, neighbour discovery, MLD and IGMP reports of group joins) and, for what no
program here sends, crafted with scapy. Every frame is also cut at every length to check tcpdump's
truncation marks.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from afpacket.dissect.icmp import icmp4_text, icmp6_text, igmp_text
from afpacket.savefile.pcap import PcapReader, PcapWriter
from afpacket.testnet import VethPair


@pytest.fixture
def core() -> str:
    """Overrides conftest's per-core fixture: decoding touches no ring, so these tests run once."""
    return "none"


if shutil.which("tcpdump") is None:  # pragma: no cover - the suite's setup installs it
    pytest.fail("tcpdump is the witness of these tests: apt-get install tcpdump", pytrace=False)

_STAMP = re.compile(r"^\d+\.\d{6} ")


def tcpdump_records(path: Path, *flags: str) -> list[str]:
    """tcpdump's text for each packet of ``path`` (its continuation lines included), timestamps removed."""
    out = subprocess.run(["tcpdump", "-n", "-tt", *flags, "-r", str(path)], capture_output=True, text=True,
                         check=True).stdout
    recs: list[str] = []
    for line in out.split("\n"):
        m = _STAMP.match(line)
        if m:
            recs.append(line[m.end():])
        elif recs:
            recs[-1] += "\n" + line
    if recs and recs[-1].endswith("\n"):
        recs[-1] = recs[-1][:-1]
    return recs


def _cksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return int(~s & 0xFFFF)


# ---------------------------------------------------------------------------------------------------------
# The test's side: find the IP header and call the functions under test

_INNER_UNKNOWN = "\x00inner"


def quoted_line(verbose: int) -> Callable[[bytes], str]:
    """A stand-in for the core printer's line for a quoted IPv4 packet, for the few shapes these tests make
    (UDP or ICMP, not cut short); anything else gives a marker, and the comparison then checks only the text
    before it. The core printer's own tests cover its lines."""

    def render(b: bytes) -> str:
        if len(b) < 20 or b[0] != 0x45:
            return _INNER_UNKNOWN
        tos, total, ident, off, ttl, proto = struct.unpack_from("!xBHHHBB", b)
        src, dst = socket.inet_ntoa(b[12:16]), socket.inet_ntoa(b[16:20])
        if len(b) < total:
            return _INNER_UNKNOWN
        flags = ", ".join(n for bit, n in ((0x4000, "DF"), (0x2000, "+"), (0x8000, "rsvd")) if off & bit) or "none"
        names = {1: "ICMP", 17: "UDP"}
        if proto not in names or off & 0x3FFF:
            return _INNER_UNKNOWN
        head = (f"IP (tos 0x{tos:x}, ttl {ttl}, id {ident}, offset 0, flags [{flags}], proto {names[proto]} "
                f"({proto}), length {total})\n    ") if verbose else "IP "
        pay = b[20:total]
        if proto == 1:
            return f"{head}{src} > {dst}: " + icmp4_text(pay, total - 20, verbose, render)
        sport, dport, ulen = struct.unpack_from("!HHH", pay)
        sum_note = ""
        if verbose > 1:
            pseudo = b[12:20] + struct.pack("!BBH", 0, 17, ulen)
            if pay[6:8] == b"\0\0":
                sum_note = "[no cksum] "
            elif _cksum(pseudo + pay[:ulen]) == 0:
                sum_note = "[udp sum ok] "
            else:
                return _INNER_UNKNOWN
        if dport in (53, 67, 68, 123, 546, 547, 161, 162, 514, 520, 4789):
            return _INNER_UNKNOWN
        return f"{head}{src}.{sport} > {dst}.{dport}: {sum_note}UDP, length {ulen - 8}"

    return render


def call_decoder(frame: bytes, verbose: int) -> tuple[str, str, str] | None:
    """(src, dst, text) from afpacket.dissect.icmp for an Ethernet frame carrying ICMP, ICMPv6 or IGMP."""
    if len(frame) < 14:
        return None
    etype = struct.unpack_from("!H", frame, 12)[0]
    p = frame[14:]
    if etype == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 15) * 4
        total, off = struct.unpack_from("!H2xH", p, 2)
        if len(p) < ihl or off & 0x1FFF:
            return None
        src, dst = socket.inet_ntoa(p[12:16]), socket.inet_ntoa(p[16:20])
        seg, length, fragmented = p[ihl:total], total - ihl, bool(off & 0x2000)
        if p[9] == 1:
            return src, dst, icmp4_text(seg, length, verbose, quoted_line(verbose), fragmented=fragmented)
        if p[9] == 2:
            return src, dst, igmp_text(seg, length, verbose)
    if etype == 0x86DD and len(p) >= 40:
        plen = struct.unpack_from("!H", p, 4)[0]
        nh, off = p[6], 40
        while nh in (0, 60, 43):
            if off + 2 > len(p):
                return None
            nh, off = p[off], off + (p[off + 1] + 1) * 8
        if nh != 58 or off > len(p):
            return None
        src = socket.inet_ntop(socket.AF_INET6, p[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, p[24:40])
        return src, dst, icmp6_text(p[off : 40 + plen], plen - (off - 40), src, dst, verbose, quoted_line(verbose))
    return None


def tcpdump_text(record: str, src: str, dst: str) -> str:
    """What tcpdump printed after ``"SRC > DST: "`` (and after the IPv6 hop-by-hop header MLD carries)."""
    key = f"{src} > {dst}: "
    rest = record[record.index(key) + len(key):]
    if rest.startswith("HBH "):
        starts = [i for i in (rest.find("[icmp6"), rest.find("[bad icmp6"), rest.find("ICMP6"),
                              rest.find(" [|icmp6]")) if i >= 0]
        rest = rest[min(starts):]
    return rest


def compare_file(path: Path, frames: list[tuple[bytes, int]], verbose: int) -> tuple[int, list[str]]:
    """Compares every decodable frame; returns (number compared in full, mismatch reports)."""
    flags = ["-" + "v" * verbose] if verbose else []
    records = tcpdump_records(path, *flags)
    assert len(records) == len(frames), "tcpdump printed a different number of packets"
    full = 0
    bad = []
    for (frame, _), record in zip(frames, records, strict=True):
        mine = call_decoder(frame, verbose)
        if mine is None:
            continue
        src, dst, text = mine
        theirs = tcpdump_text(record, src, dst)
        if _INNER_UNKNOWN in text:
            head = text.split(_INNER_UNKNOWN)[0]
            if theirs.startswith(head) and theirs[len(head):].startswith(("IP ", "\tIP ")):
                continue
        elif text == theirs:
            full += 1
            continue
        bad.append(f"-v{verbose} {frame.hex()}\n  tcpdump: {theirs!r}\n  afpacket: {text!r}")
    return full, bad


def write_pcap(path: Path, frames: list[tuple[bytes, int]]) -> None:
    with PcapWriter(str(path)) as w:
        for i, (data, wire) in enumerate(frames):
            w.write(1_000_000_000 + i * 1000, data, wire)


def every_cut(frames: list[bytes]) -> list[tuple[bytes, int]]:
    """Each frame cut at every length from the start of its ICMP/IGMP header on (wire length kept)."""
    out: list[tuple[bytes, int]] = []
    for f in frames:
        mine = call_decoder(f, 0)
        assert mine is not None
        etype = struct.unpack_from("!H", f, 12)[0]
        if etype == 0x0800:
            start = 14 + (f[14] & 15) * 4
        else:
            nh, start = f[14 + 6], 14 + 40
            while nh in (0, 60, 43):
                nh, start = f[start], start + (f[start + 1] + 1) * 8
        out.extend((f[:cut], len(f)) for cut in range(start, len(f)))
    return out


# ---------------------------------------------------------------------------------------------------------
# Crafted frames: every message kind tcpdump names, including those no program here sends

def _eth(ethertype: int, payload: bytes, dst: str = "02:00:00:00:00:02") -> bytes:
    return bytes.fromhex(dst.replace(":", "")) + bytes.fromhex("020000000001") + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, options: bytes = b"", ttl: int = 64,
         flags: int = 0) -> bytes:
    ihl = 5 + len(options) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), 1, flags, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst)) + options
    h = h[:10] + struct.pack("!H", _cksum(h)) + h[12:]
    return _eth(0x0800, h + payload)


def icmp(icmp_type: int, code: int, rest: bytes, *, checksum: int | None = None) -> bytes:
    b = bytes([icmp_type, code, 0, 0]) + rest
    return b[:2] + struct.pack("!H", _cksum(b) if checksum is None else checksum) + b[4:]


def igmp(body: bytes, *, good_checksum: bool = True) -> bytes:
    return body[:2] + struct.pack("!H", _cksum(body[:2] + b"\0\0" + body[4:]) if good_checksum else 0) + body[4:]


def _udp4(src: str, dst: str, sport: int, dport: int, data: bytes) -> bytes:
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data)[14:]


def icmp4_corpus() -> list[bytes]:
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    a, b = "10.0.0.1", "10.0.0.2"
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    quoted = _udp4(b, a, 4000, 9999, b"hello")
    rnd = random.Random(8)
    frames = [
        bytes(e / IP(src=a, dst=b) / ICMP(type=8, id=1, seq=2) / (b"x" * 56)),
        bytes(e / IP(src=a, dst=b) / ICMP(type=0, id=1, seq=2) / (b"x" * 56)),
        bytes(e / IP(src=a, dst=b) / ICMP(type=8, id=1, seq=2, chksum=0x1234) / (b"x" * 56)),
    ]
    frames += [ipv4(a, b, 1, icmp(3, code, struct.pack("!HH", 0, 1400 if code == 4 else 0) + quoted))
               for code in range(17)]
    frames.append(ipv4(a, b, 1, icmp(3, 4, bytes(4) + quoted)))
    frames.append(ipv4(a, b, 1, icmp(3, 3, bytes(4) + ipv4(b, a, 6, struct.pack("!HH", 4000, 80) + bytes(16))[14:])))
    frames.append(ipv4(a, b, 1, icmp(3, 3, bytes(4) + ipv4(b, a, 132, struct.pack("!HH", 4000, 80) + bytes(8))[14:])))
    frames += [ipv4(a, b, 1, icmp(5, code, socket.inet_aton("10.0.0.254") + quoted)) for code in range(5)]
    frames.append(ipv4(a, b, 1, icmp(4, 0, bytes(4) + quoted)))
    echo_ttl1 = ipv4(b, "10.0.0.9", 1, icmp(8, 0, struct.pack("!HH", 7, 3) + b"abcdefgh"), ttl=1)[14:]
    frames += [ipv4(a, b, 1, icmp(11, code, bytes(4) + echo_ttl1)) for code in range(3)]
    frames.append(ipv4(a, b, 1, icmp(12, 0, b"\x05\0\0\0" + quoted)))
    frames.append(ipv4(a, b, 1, icmp(12, 1, bytes(4) + quoted)))
    frames.append(ipv4(a, b, 1, icmp(13, 0, struct.pack("!HHIII", 5, 6, 1000, 0, 0))))
    frames.append(ipv4(a, b, 1, icmp(14, 0, struct.pack("!HHIII", 5, 6, 3723004, 86399999, 5))))
    frames += [ipv4(a, b, 1, icmp(t, 0, struct.pack("!HH", 5, 6))) for t in (15, 16, 10)]
    frames.append(ipv4(a, b, 1, icmp(17, 0, struct.pack("!HH", 5, 6) + bytes(4))))
    frames.append(ipv4(a, b, 1, icmp(18, 0, struct.pack("!HH", 5, 6) + socket.inet_aton("255.255.255.0"))))
    entries = socket.inet_aton("10.0.0.1") + struct.pack("!I", 5) + socket.inet_aton("10.0.0.2") + b"\xff" * 4
    frames.append(ipv4(a, b, 1, icmp(9, 0, struct.pack("!BBH", 2, 2, 1800) + entries)))
    frames.append(ipv4(a, b, 1, icmp(9, 0, struct.pack("!BBH", 1, 2, 7261) + entries[:8])))
    frames.append(ipv4(a, b, 1, icmp(9, 0, struct.pack("!BBH", 1, 3, 30) + entries[:8])))
    frames.append(ipv4(a, b, 1, icmp(9, 0, struct.pack("!BBH", 3, 2, 30) + entries[:8])))
    frames.append(ipv4(a, b, 1, icmp(42, 1, b"abcd")))
    # Errors long enough for RFC 4884 extensions: one with an MPLS label stack object, two without.
    big = _udp4(b, a, 4000, 9999, bytes(rnd.getrandbits(8) for _ in range(300)))
    frames.append(ipv4(a, b, 1, icmp(3, 3, bytes(4) + big)))
    frames.append(ipv4(a, b, 1, icmp(3, 3, bytes(4) + _udp4(b, a, 4000, 9999, bytes(300)))))
    orig = _udp4(b, a, 4000, 33434, bytes(100))[:128]
    obj = struct.pack("!HBB", 12, 1, 1) + struct.pack("!II", (16 << 12) | (3 << 9) | 0x100 | 1, (17 << 12) | 64)
    ext = b"\x20\x00\x00\x00" + obj
    ext = ext[:2] + struct.pack("!H", _cksum(ext)) + ext[4:]
    frames.append(ipv4(a, b, 1, icmp(11, 0, b"\x00\x20\x00\x00" + orig + ext)))
    return frames


def icmp6_corpus() -> list[bytes]:
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import (
        ICMPv6DestUnreach,
        ICMPv6EchoReply,
        ICMPv6EchoRequest,
        ICMPv6HAADReply,
        ICMPv6HAADRequest,
        ICMPv6MLDMultAddrRec,
        ICMPv6MLDone,
        ICMPv6MLQuery,
        ICMPv6MLQuery2,
        ICMPv6MLReport,
        ICMPv6MLReport2,
        ICMPv6MPAdv,
        ICMPv6MPSol,
        ICMPv6ND_NA,
        ICMPv6ND_NS,
        ICMPv6ND_RA,
        ICMPv6ND_Redirect,
        ICMPv6ND_RS,
        ICMPv6NDOptAdvInterval,
        ICMPv6NDOptDNSSL,
        ICMPv6NDOptDstLLAddr,
        ICMPv6NDOptHAInfo,
        ICMPv6NDOptMTU,
        ICMPv6NDOptPrefixInfo,
        ICMPv6NDOptRDNSS,
        ICMPv6NDOptRedirectedHdr,
        ICMPv6NDOptRouteInfo,
        ICMPv6NDOptSrcLLAddr,
        ICMPv6NDOptUnknown,
        ICMPv6NIQueryIPv4,
        ICMPv6NIQueryIPv6,
        ICMPv6NIQueryName,
        ICMPv6NIQueryNOOP,
        ICMPv6NIReplyIPv6,
        ICMPv6NIReplyName,
        ICMPv6NIReplyRefuse,
        ICMPv6NIReplyUnknown,
        ICMPv6PacketTooBig,
        ICMPv6ParamProblem,
        ICMPv6TimeExceeded,
        ICMPv6Unknown,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrHopByHop,
        RouterAlert,
    )
    from scapy.layers.l2 import Ether

    e = Ether(src="02:00:00:00:00:01", dst="33:33:00:00:00:01")
    ll, g1, g2 = "fe80::1", "2001:db8::1", "2001:db8::2"
    q = IPv6(src=g2, dst=g1) / UDP(sport=4000, dport=9999) / b"hello"
    hbh = IPv6ExtHdrHopByHop(options=[RouterAlert()])
    pkts = [
        IPv6(src=g1, dst=g2) / ICMPv6EchoRequest(id=1, seq=2, data=b"x" * 56),
        IPv6(src=g1, dst=g2) / ICMPv6EchoReply(id=1, seq=2, data=b"x" * 56),
        IPv6(src=g1, dst=g2) / ICMPv6EchoRequest(id=1, seq=2, cksum=0x1234),
    ]
    pkts += [IPv6(src=g1, dst=g2) / ICMPv6DestUnreach(code=code) / q for code in range(8)]
    pkts += [
        IPv6(src=g1, dst=g2) / ICMPv6DestUnreach(code=4) / IPv6(src=g2, dst=g1) / IPv6ExtHdrDestOpt()
        / TCP(sport=1, dport=22),
        IPv6(src=g1, dst=g2) / ICMPv6DestUnreach(code=4) / IPv6(src=g2, dst=g1, nh=47) / b"abcdefgh",
        IPv6(src=g1, dst=g2) / ICMPv6PacketTooBig(mtu=1280) / q,
    ]
    pkts += [IPv6(src=g1, dst=g2) / ICMPv6TimeExceeded(code=code) / q for code in range(3)]
    pkts += [IPv6(src=g1, dst=g2) / ICMPv6ParamProblem(code=code, ptr=40) / q for code in range(5)]
    pkts += [
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_NS(tgt="fe80::2") / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"),
        IPv6(src="::", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="fe80::2"),
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_NA(tgt="fe80::2", R=0, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02"),
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_NA(tgt="fe80::2", R=1, S=0, O=0),
        IPv6(src=ll, dst="ff02::2") / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"),
        IPv6(src=ll, dst="ff02::2") / ICMPv6ND_RS(),
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_RA(M=1, O=1, prf=1, routerlifetime=1800, reachabletime=30000,
                                                 retranstimer=1000)
        / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01") / ICMPv6NDOptMTU(mtu=1500)
        / ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64, validlifetime=0xFFFFFFFF, preferredlifetime=600)
        / ICMPv6NDOptRDNSS(dns=["2001:db8::53", "2001:db8::54"], lifetime=300)
        / ICMPv6NDOptRouteInfo(prefix="2001:db8:1::", plen=48, prf=3, rtlifetime=100)
        / ICMPv6NDOptAdvInterval(advint=600000) / ICMPv6NDOptHAInfo(pref=5, lifetime=10),
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_RA(prf=3) / ICMPv6NDOptDNSSL(searchlist=["example.com.", "foo.org."],
                                                                          lifetime=60),
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_RA() / ICMPv6NDOptUnknown(type=99, len=1, data=b"abcdef")
        / ICMPv6NDOptMTU(mtu=1400),
        IPv6(src=ll, dst="ff02::1") / ICMPv6ND_Redirect(tgt="fe80::3", dst=g2)
        / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:03") / ICMPv6NDOptRedirectedHdr(pkt=bytes(q)[:40]),
        IPv6(src=ll, dst="ff02::16", hlim=1) / hbh / ICMPv6MLReport2(records=[
            ICMPv6MLDMultAddrRec(rtype=4, dst="ff02::1:ff00:1"),
            ICMPv6MLDMultAddrRec(rtype=1, dst="ff05::1", sources=["2001:db8::9", "2001:db8::a"])]),
        IPv6(src=ll, dst="ff02::16", hlim=1) / hbh / ICMPv6MLReport2(),
        IPv6(src=ll, dst="ff02::fb", hlim=1) / hbh / ICMPv6MLReport(mladdr="ff02::fb", mrd=0),
        IPv6(src=ll, dst="ff02::2", hlim=1) / hbh / ICMPv6MLDone(mladdr="ff02::fb"),
        IPv6(src=ll, dst="ff02::1", hlim=1) / hbh / ICMPv6MLQuery(mladdr="::", mrd=10000),
        IPv6(src=ll, dst="ff02::1", hlim=1) / hbh / ICMPv6MLQuery2(mladdr="::", mrd=10000, S=1, QRV=2, QQIC=125),
        IPv6(src=ll, dst="ff02::1", hlim=1) / hbh / ICMPv6MLQuery2(mladdr="ff05::1", mrd=40000, QRV=2, QQIC=200,
                                                                    sources=["2001:db8::9"]),
        IPv6(src=g1, dst=g2) / ICMPv6HAADRequest(id=0x1234),
        IPv6(src=g1, dst=g2) / ICMPv6HAADReply(id=0x1234, addresses=["2001:db8::7", "2001:db8::8"]),
        IPv6(src=g1, dst=g2) / ICMPv6MPSol(id=7),
        IPv6(src=g1, dst=g2) / ICMPv6MPAdv(id=7, flags=3) / ICMPv6NDOptPrefixInfo(prefix="2001:db8::", prefixlen=64),
        IPv6(src=g1, dst=g2) / ICMPv6NIQueryNOOP(),
        IPv6(src=g1, dst=g2) / ICMPv6NIQueryName(data="2001:db8::1"),
        IPv6(src=g1, dst=g2) / ICMPv6NIQueryIPv6(data="2001:db8::1"),
        IPv6(src=g1, dst=g2) / ICMPv6NIQueryIPv4(data="2001:db8::1"),
        IPv6(src=g1, dst=g2) / ICMPv6NIReplyName(data="host.example.com"),
        IPv6(src=g1, dst=g2) / ICMPv6NIReplyIPv6(data=[(60, "2001:db8::1")]),
        IPv6(src=g1, dst=g2) / ICMPv6NIReplyRefuse(),
        IPv6(src=g1, dst=g2) / ICMPv6NIReplyUnknown(),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=250, code=1, msgbody=b"hello world"),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=141, code=0, msgbody=b"hello world"),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=155, code=1, msgbody=bytes(range(40))),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=155, code=2, msgbody=b"\x01\x40\x00\x05" + bytes(range(16))
                                             + b"\x00\x01\x02\x05\x02ab"),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=155, code=3, msgbody=b"\x01\x00\x05\x00"),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=155, code=0x81, msgbody=b"\x01\x00\x05\x00"),
        IPv6(src=g1, dst=g2) / ICMPv6Unknown(type=138, code=0, msgbody=(
            b"\x00\x00\x00\x05\x01\xc0\x00\x10\x00\x00\x00\x00" + b"\x01\x07\x01\x40\x30\x80\x00\x00" + bytes(16)
            + b"\x40\x40\xff\xc0\xff\xff\xff\xff\x00\x00\x0e\x10\x80\x00\x00\x00" + bytes(16))),
    ]
    return [bytes(e / p) for p in pkts]


def igmp_corpus() -> list[bytes]:
    a = "10.0.0.1"
    ra = b"\x94\x04\x00\x00"
    bodies = [
        ("224.0.0.1", igmp(b"\x11\x64\x00\x00\x00\x00\x00\x00")),
        ("224.0.0.1", igmp(b"\x11\x00\x00\x00\x00\x00\x00\x00")),
        ("224.0.0.1", igmp(b"\x11\x0a\x00\x00\xef\x01\x01\x01")),
        ("239.1.1.1", igmp(b"\x12\x00\x00\x00\xef\x01\x01\x01")),
        ("239.1.1.1", igmp(b"\x16\x00\x00\x00\xef\x01\x01\x01")),
        ("224.0.0.2", igmp(b"\x17\x00\x00\x00\xef\x01\x01\x01")),
        ("224.0.0.2", igmp(b"\x17\x00\x00\x00\xef\x01\x01\x01", good_checksum=False)),
        ("224.0.0.1", igmp(b"\x11\x64\x00\x00\x00\x00\x00\x00\x02\x7d\x00\x00")),
        ("224.0.0.1", igmp(b"\x11\x0a\x00\x00\xef\x01\x01\x01\x0a\x7d\x00\x02\x0a\x00\x00\x05\x0a\x00\x00\x06")),
        ("224.0.0.1", igmp(b"\x11\xff\x00\x00\xef\x01\x01\x01\x0a\x7d\x00\x00")),
        ("224.0.0.1", igmp(b"\x11\x90\x00\x00\xef\x01\x01\x01\x0a\x7d\x00\x00")),
        ("224.0.0.22", igmp(b"\x22\x00\x00\x00\x00\x00\x00\x02\x04\x00\x00\x00\xef\x01\x01\x01"
                            b"\x01\x00\x00\x02\xef\x02\x02\x02\x0a\x00\x00\x05\x0a\x00\x00\x06")),
        ("224.0.0.22", igmp(b"\x22\x00\x00\x00\x00\x00\x00\x01\x09\x00\x00\x00\xef\x01\x01\x01")),
        ("224.0.0.22", igmp(b"\x22\x00\x00\x00\x00\x00\x00\x03\x04\x00\x00\x00\xef\x01\x01\x01")),
        ("224.0.0.4", igmp(b"\x13\x07\x00\x00\x00\x00\x03\xff\x0a\x00\x00\x01\xef\x01\x01\x01\x00\x00\x0e\x10")),
        ("224.0.0.4", igmp(b"\x13\x08\x00\x00\x00\x00\x03\xff\x0a\x00\x00\x01\xef\x01\x01\x01")),
        ("224.0.0.4", igmp(b"\x1f\x00\x00\x00\xef\x01\x01\x01\x0a\x00\x00\x01\x0a\x00\x00\x02\xe0\x00\x00\x05"
                           b"\x40\x00\x01\x02")),
        ("224.0.0.4", igmp(b"\x1e\x00\x00\x00\xef\x01\x01\x01\x0a\x00\x00\x01\x0a\x00\x00\x02\x0a\x00\x00\x05"
                           b"\x40\x00\x01\x02")),
        ("224.0.0.4", igmp(b"\x33\x00\x00\x00\xef\x01\x01\x01")),
        ("224.0.0.4", b"\x16\x00\x00"),
        ("224.0.0.4", b"\x22\x00\x00\x00\x00\x00\x00\x02\x04\x00"),
    ]
    return [ipv4(a, dst, 2, body, options=ra, ttl=1) for dst, body in bodies]


CORPORA: dict[str, Callable[[], list[bytes]]] = {"icmp": icmp4_corpus, "icmp6": icmp6_corpus, "igmp": igmp_corpus}


@pytest.mark.parametrize("kind", sorted(CORPORA))
@pytest.mark.parametrize("verbose", [0, 1, 2, 3])
def test_crafted_messages_match_tcpdump(tmp_path: Path, kind: str, verbose: int) -> None:
    frames = [(f, len(f)) for f in CORPORA[kind]()]
    path = tmp_path / f"{kind}.pcap"
    write_pcap(path, frames)
    full, bad = compare_file(path, frames, verbose)
    assert not bad, "\n".join(bad[:10])
    assert full >= len(frames) - 8  # only quoted packets the stand-in cannot render are compared in part


@pytest.mark.parametrize("kind", sorted(CORPORA))
def test_truncated_messages_match_tcpdump(tmp_path: Path, kind: str) -> None:
    """Every message cut at every length: tcpdump's " [|icmp]" style marks, and never an exception."""
    frames = every_cut(CORPORA[kind]())
    path = tmp_path / f"{kind}-cut.pcap"
    write_pcap(path, frames)
    for verbose in (0, 1):
        full, bad = compare_file(path, frames, verbose)
        assert not bad, "\n".join(bad[:10])
        assert full > len(frames) // 2


@pytest.mark.parametrize("kind", sorted(CORPORA))
def test_dump_after_a_cut_starts_where_tcpdumps_does(tmp_path: Path, kind: str) -> None:
    """tcpdump stops a cut-short message in two ways: a read past the capture jumps out of every printer
    (and its -x dump then starts at the frame's first byte), an explicit length check prints the mark and
    returns (the dump starts after the Ethernet header). The whole line printer, -x with and without -v,
    on every cut of every message, quoted packets included, against tcpdump -x."""
    from afpacket.dissect import LinePrinter
    from afpacket.dissect.hexdump import hex_lines

    frames = every_cut(CORPORA[kind]())
    path = tmp_path / f"{kind}-cut.pcap"
    write_pcap(path, frames)
    starts: set[int] = set()
    for flags, options in (((), {}), (("-v",), {"verbose": 1})):
        theirs = tcpdump_records(path, "-x", *flags)
        printer = LinePrinter(dump="x", **options)
        ours = [printer.line(data, wire, 1) for data, wire in frames]
        assert len(theirs) == len(ours)
        wrong = [f"{data.hex()}\n  tcpdump: {t!r}\n  ours:    {o!r}"
                 for (data, _), t, o in zip(frames, theirs, ours, strict=True) if t != o]
        assert not wrong, f"{len(wrong)} of {len(ours)} differ:\n" + "\n".join(wrong[:5])
        starts |= {start for (data, _), o in zip(frames, ours, strict=True) if re.search(r" \[\|[\w-]+\]\n", o)
                   for start in (0, 14) if o.endswith(hex_lines(data[start:]))}
    # Both kinds of stop were met (print-igmp.c has no length checks of its own: it only jumps).
    assert starts == ({0} if kind == "igmp" else {0, 14})


def test_garbage_never_raises() -> None:
    rnd = random.Random(4)
    for _ in range(20000):
        seg = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 80)))
        length = rnd.choice((len(seg), rnd.randrange(0, 200)))
        verbose = rnd.randrange(0, 4)
        for text in (
            icmp4_text(seg, length, verbose, quoted_line(verbose)),
            icmp6_text(seg, length, "fe80::1", "ff02::1", verbose, quoted_line(verbose)),
            igmp_text(seg, length, verbose),
        ):
            assert isinstance(text, str)


def test_quiet_igmp_and_fragment_checksum() -> None:
    body = igmp(b"\x16\x00\x00\x00\xef\x01\x01\x01")
    assert igmp_text(body, 8, 0, quiet=True) == "igmp"
    # The first fragment of a datagram holds only part of the message: tcpdump checks no checksum then.
    first = icmp(8, 0, struct.pack("!HH", 1, 1) + b"x" * 1992)[:1480]
    assert "wrong icmp cksum" in icmp4_text(first, 1480, 1, quoted_line(1))
    assert icmp4_text(first, 1480, 1, quoted_line(1), fragmented=True) == "ICMP echo request, id 1, seq 1, length 1480"


def test_speed_of_common_messages() -> None:
    """Per-packet cost stays small: an echo and a neighbour solicitation in well under 10 µs each."""
    echo = icmp(8, 0, struct.pack("!HH", 1, 1) + b"x" * 56)
    ns = ICMP6_NS
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        icmp4_text(echo, 64, 0, str)
        icmp6_text(ns, 24, "fe80::1", "ff02::1:ff00:2", 0, str)
    per = (time.perf_counter() - t0) / (2 * n)
    assert per < 10e-6, f"{per * 1e6:.2f} µs per message"


ICMP6_NS = bytes([135, 0, 0, 0]) + bytes(4) + socket.inet_pton(socket.AF_INET6, "fe80::2")


# ---------------------------------------------------------------------------------------------------------
# Real traffic: a client namespace, a router namespace and a server namespace behind a smaller-MTU link

_TRAFFIC = r"""
import socket, struct, sys, time
phase, dst4, dst6, ifname = sys.argv[1:5]
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xFFFF) + (s >> 16)
    return ~(s + (s >> 16)) & 0xFFFF
def udp(dst, port, data, opts=()):
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    for level, name, value in opts:
        s.setsockopt(level, name, value)
    try:
        s.sendto(data, (dst, port))
    except OSError:
        pass
    time.sleep(0.2)
    s.close()
if phase == "unicast":
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for seq in (1, 2):
        body = struct.pack("!HH", 0x4242, seq) + bytes(range(56))
        r.sendto(struct.pack("!BBH", 8, 0, csum(b"\x08\x00\x00\x00" + body)) + body, (dst4, 0))
        time.sleep(0.1)
    r.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
    body = struct.pack("!HH", 0x4242, 3) + bytes(range(56))
    r.sendto(struct.pack("!BBH", 8, 0, csum(b"\x08\x00\x00\x00" + body)) + body, (dst4, 0))
    udp(dst4, 9999, b"hello")
    udp(dst4, 9998, b"x" * 1400, [(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)])
    udp(dst4, 9997, b"ttl one", [(socket.IPPROTO_IP, socket.IP_TTL, 1)])
    r6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    for seq in (1, 2):
        r6.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4343, seq) + bytes(range(56)), (dst6, 0))
        time.sleep(0.1)
    udp(dst6, 9999, b"hello")
    udp(dst6, 9998, b"x" * 1400)
    udp(dst6, 9997, b"hop one", [(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 1)])
else:
    group4, group6 = "239.1.2.%d" % int(phase), "ff15::12%02d" % int(phase)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group4) + socket.inet_aton("0.0.0.0"))
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
                  socket.inet_pton(socket.AF_INET6, group6) + struct.pack("@I", socket.if_nametoindex(ifname)))
    time.sleep(0.3)
    s.close()
    s6.close()
    time.sleep(0.3)
"""


class Lab:
    """client --(veth, 1500)-- router --(veth, 1280)-- server, each in its own namespace, plus the VethPair
    whose namespace is the router's. Made and removed by the test."""

    def __init__(self, net: VethPair) -> None:
        self.net = net
        self.router = net.netns
        tag = net.netns[-6:]
        self.client = f"{self.router}c"
        self.server = f"{self.router}s"
        self.cif, self.sif = f"a2c{tag}"[:15], f"a2s{tag}"[:15]
        serial = os.getpid() % 250
        self.c4, self.r4c = f"198.19.{serial}.2", f"198.19.{serial}.1"
        self.s4, self.r4s = f"198.19.{serial}.6", f"198.19.{serial}.5"
        self.c6, self.s6 = "2001:db8:a2c::2", "2001:db8:a2d::2"

    def sh(self, ns: str, *cmd: str) -> None:
        r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=60)
        if r.returncode:
            pytest.fail(f"{' '.join(cmd[:3])}... in {ns} failed: {r.stderr.strip()[-800:]}")

    def sysctl(self, ns: str, key: str, value: str) -> None:
        self.sh(ns, "sysctl", "-q", "-w", f"{key}={value}")

    def __enter__(self) -> Lab:
        for ns in (self.client, self.server):
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        try:
            for peer, ifname, mtu in ((self.client, self.cif, "1500"), (self.server, self.sif, "1280")):
                self.sh(self.router, "ip", "link", "add", ifname + "r", "mtu", mtu, "type", "veth", "peer", "name",
                        ifname, "netns", peer)
                self.sh(peer, "ip", "link", "set", ifname, "mtu", mtu)
            self.sysctl(self.router, "net.ipv4.ip_forward", "1")
            self.sysctl(self.router, "net.ipv6.conf.all.forwarding", "1")
            self.sh(self.router, "ip", "addr", "add", f"{self.r4c}/30", "dev", self.cif + "r")
            self.sh(self.router, "ip", "addr", "add", f"{self.r4s}/30", "dev", self.sif + "r")
            self.sh(self.router, "ip", "-6", "addr", "add", "2001:db8:a2c::1/64", "dev", self.cif + "r", "nodad")
            self.sh(self.router, "ip", "-6", "addr", "add", "2001:db8:a2d::1/64", "dev", self.sif + "r", "nodad")
            self.sh(self.router, "ip", "link", "set", self.cif + "r", "up")
            self.sh(self.router, "ip", "link", "set", self.sif + "r", "up")
            self.sh(self.server, "ip", "addr", "add", f"{self.s4}/30", "dev", self.sif)
            self.sh(self.server, "ip", "-6", "addr", "add", f"{self.s6}/64", "dev", self.sif, "nodad")
            self.sh(self.server, "ip", "link", "set", self.sif, "up")
            self.sh(self.server, "ip", "route", "add", "default", "via", self.r4s)
            self.sh(self.server, "ip", "-6", "route", "add", "default", "via", "2001:db8:a2d::1")
            self.sh(self.client, "ip", "link", "set", "lo", "up")
            # The client's link is up for tcpdump, but with IPv6 off: switching it on during the capture makes
            # the kernel send what an interface coming up sends (DAD, MLD reports, router solicitations).
            self.sysctl(self.client, f"net.ipv6.conf.{self.cif}.disable_ipv6", "1")
            self.sh(self.client, "ip", "link", "set", self.cif, "up")
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: object) -> None:
        for ns in (self.client, self.server):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)

    def capture(self, path: Path) -> subprocess.Popen[bytes]:
        """tcpdump on the client's link, started and listening before this returns."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.client, "tcpdump", "-i", self.cif, "-U", "-w",
                                 str(path)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert "listening" in line, line
        return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


@pytest.fixture
def lab(net: VethPair) -> Iterator[Lab]:
    if shutil.which("sysctl") is None:
        pytest.fail("sysctl is missing: apt-get install procps")
    with Lab(net) as lab:
        yield lab


def _records_of(path: Path) -> list[tuple[bytes, int]]:
    return [(bytes(r.data), r.wire_len) for r in PcapReader(str(path))]


def _kinds(path: Path) -> str:
    return "\n".join(tcpdump_records(path, "-v"))


def test_real_traffic_matches_tcpdump(lab: Lab, tmp_path: Path) -> None:
    """Echo, port unreachable, need to frag, time exceeded (v4 and v6), packet too big, neighbour discovery,
    DAD, router solicitation and MLD of an interface coming up, and IGMP v3/v2/v1 and MLD v2/v1 reports and
    leaves of real group joins, all made by the kernels of the lab's namespaces."""
    path = tmp_path / "real.pcap"
    proc = lab.capture(path)
    try:
        lab.sysctl(lab.client, f"net.ipv6.conf.{lab.cif}.disable_ipv6", "0")
        lab.sh(lab.client, "ip", "addr", "add", f"{lab.c4}/30", "dev", lab.cif)
        lab.sh(lab.client, "ip", "-6", "addr", "add", f"{lab.c6}/64", "dev", lab.cif)
        lab.sh(lab.client, "ip", "route", "add", "default", "via", lab.r4c)
        time.sleep(2.5)  # DAD of both addresses
        lab.sh(lab.client, "ip", "-6", "route", "add", "default", "via", "2001:db8:a2c::1")
        script = [sys.executable, "-c", _TRAFFIC]
        lab.sh(lab.client, *script, "unicast", lab.s4, lab.s6, lab.cif)
        for phase, igmp_version, mld_version in (("1", "0", "0"), ("2", "2", "1"), ("3", "1", "0")):
            lab.sysctl(lab.client, f"net.ipv4.conf.{lab.cif}.force_igmp_version", igmp_version)
            lab.sysctl(lab.client, f"net.ipv6.conf.{lab.cif}.force_mld_version", mld_version)
            lab.sh(lab.client, *script, phase, lab.s4, lab.s6, lab.cif)
    finally:
        _stop(proc)
    frames = _records_of(path)
    text = _kinds(path)
    for kind in ("ICMP echo request", "ICMP echo reply", "udp port 9999 unreachable", "need to frag (mtu 1280)",
                 "ICMP time exceeded in-transit", "ICMP6, echo request", "ICMP6, echo reply",
                 "unreachable port", "packet too big, mtu 1280", "time exceeded in-transit for",
                 "neighbor solicitation, length 32, who has", "neighbor advertisement", "router solicitation",
                 "multicast listener report v2", "multicast listener report", "multicast listener done",
                 "igmp v3 report", "igmp v2 report", "igmp leave", "igmp v1 report"):
        assert kind in text, f"the lab produced no {kind!r}:\n{text}"
    compared = 0
    for verbose in (0, 1, 2):
        full, bad = compare_file(path, frames, verbose)
        assert not bad, "\n".join(bad[:10])
        compared += full
    assert compared >= 3 * 40

"""802.2 LLC/SNAP, STP, CDP, DTP, UDLD, IPX and LLDP lines against tcpdump 4.99's own reading of the same files.

Each frame is written to a pcap file and read back by ``tcpdump -n -tt [-e] [-v...]``; for an 802.3 frame
tcpdump's whole record (what it prints after the timestamp) must equal ``llc_line``, for an LLDP frame the
text after the ethertype must equal ``lldp_text``. Real programs make the frames where one exists here:
the Linux bridge's spanning tree (802.1D configuration BPDUs) and lldpd (LLDP, CDPv1/v2, and the SNAP
frames of Foundry's FDP, Extreme's EDP and Nortel's SONMP, which tcpdump dumps as unknown). The rest is
crafted with scapy, and every frame is also cut at every length for tcpdump's truncation marks.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from afpacket.dissect.icmp import icmp4_text
from afpacket.dissect.l2ctl import llc_line, lldp_text
from afpacket.savefile.pcap import PcapReader, PcapWriter
from afpacket.testnet import VethPair


@pytest.fixture
def core() -> str:
    """Overrides conftest's per-core fixture: decoding touches no ring, so these tests run once."""
    return "none"


_STAMP = re.compile(r"^\d+\.\d{6} ")
FLAGSETS = ((), ("-v",), ("-vv",), ("-e",), ("-e", "-v"))


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


def _mac(b: bytes) -> str:
    return ":".join(f"{c:02x}" for c in b)


def ip_after_snap(link: bool) -> object:
    """The test's stand-in for the Ethernet printer's IPv4 line after a SNAP header (ICMP only; -v needs the
    core printer's IP header fields, which its own tests cover)."""

    def printer(ethertype: int, payload: bytes, length: int) -> str | None:
        if ethertype != 0x0800 or len(payload) < 20 or payload[9] != 1:
            return None
        ihl = (payload[0] & 15) * 4
        total = struct.unpack_from("!H", payload, 2)[0]
        src, dst = socket.inet_ntoa(payload[12:16]), socket.inet_ntoa(payload[16:20])
        return ("" if link else "IP ") + f"{src} > {dst}: " + icmp4_text(payload[ihl:total], total - ihl, 0, str)

    return printer


def carries_ip(frame: bytes) -> bool:
    return frame[14:17] == b"\x06\x06\x03" or (frame[14:17] == b"\xaa\xaa\x03" and frame[20:22] == b"\x08\x00")


def render(frame: bytes, wire: int, flags: tuple[str, ...]) -> str | None:
    """afpacket's text for the whole record, or None for frames this test leaves to the core printer's."""
    verbose = sum(f.count("v") for f in flags)
    link = "-e" in flags
    etype = struct.unpack_from("!H", frame, 12)[0]
    if etype <= 1500:
        if carries_ip(frame) and (verbose or len(frame) < wire):
            return None
        return llc_line(frame, wire, link, verbose, ethertype=ip_after_snap(link))  # type: ignore[arg-type]
    if etype == 0x88CC:
        text = lldp_text(frame[14:], wire - 14, verbose)
        if link:
            return f"{_mac(frame[6:12])} > {_mac(frame[0:6])}, ethertype LLDP (0x88cc), length {wire}: {text}"
        return text
    return None


def compare(path: Path, frames: list[tuple[bytes, int]], flagsets: tuple[tuple[str, ...], ...] = FLAGSETS) -> int:
    """Writes ``frames``, compares every record under each flag set; returns how many were compared."""
    with PcapWriter(str(path)) as w:
        for i, (data, wire) in enumerate(frames):
            w.write(1_000_000_000 + i * 1000, data, wire)
    compared = 0
    bad = []
    for flags in flagsets:
        records = tcpdump_records(path, *flags)
        assert len(records) == len(frames)
        for (frame, wire), record in zip(frames, records, strict=True):
            mine = render(frame, wire, flags)
            if mine is None:
                continue
            compared += 1
            if mine != record:
                bad.append(f"{' '.join(flags)} {frame.hex()}\n  tcpdump:  {record!r}\n  afpacket: {mine!r}")
    assert not bad, "\n".join(bad[:10])
    return compared


def every_cut(frames: list[bytes]) -> list[tuple[bytes, int]]:
    return [(f[:cut], len(f)) for f in frames for cut in range(14, len(f))]


# ---------------------------------------------------------------------------------------------------------
# Crafted frames

def llc_corpus() -> list[bytes]:
    from scapy.contrib.cdp import (
        CDPAddrRecordIPv4,
        CDPAddrRecordIPv6,
        CDPMsgAddr,
        CDPMsgCapabilities,
        CDPMsgDeviceID,
        CDPMsgDuplex,
        CDPMsgGeneric,
        CDPMsgMgmtAddr,
        CDPMsgMTU,
        CDPMsgNativeVLAN,
        CDPMsgPlatform,
        CDPMsgPortID,
        CDPMsgPower,
        CDPMsgSoftwareVersion,
        CDPMsgTrustBitmap,
        CDPMsgUntrustedPortCoS,
        CDPMsgVTPMgmtDomain,
        CDPv2_HDR,
    )
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import LLC, SNAP, STP, Dot3
    from scapy.packet import Raw

    s, bpdu, peer = "02:00:00:00:00:01", "01:80:c2:00:00:00", "02:00:00:00:00:02"
    mst = bytes(STP(version=3, bpdutype=2, bpduflags=0x7C, bridgeid=32768, bridgemac=s, portid=0x8001,
                    rootid=32768, rootmac="02:00:00:00:00:09"))
    mst += b"\x00" + struct.pack("!H", 64 + 32) + b"\x00" + b"region1".ljust(32, b"\0") + struct.pack("!H", 7)
    mst += bytes(range(16)) + struct.pack("!I", 2000) + bytes.fromhex("800002000000000a") + b"\x14"
    mst += b"\x7c" + bytes.fromhex("8001020000000009") + struct.pack("!I", 10) + b"\x80\x80\x14"
    mst += b"\x2c" + bytes.fromhex("9002020000000009") + struct.pack("!I", 20) + b"\x90\x70\x13"
    cdp = CDPv2_HDR(vers=2, ttl=180, msg=[
        CDPMsgDeviceID(val=b"switch1"), CDPMsgSoftwareVersion(val=b"Cisco IOS\nVersion 15\nline3"),
        CDPMsgPlatform(val=b"cisco WS-C2960"), CDPMsgAddr(addr=[CDPAddrRecordIPv4(addr="10.0.0.5")]),
        CDPMsgPortID(iface=b"GigabitEthernet0/1"), CDPMsgCapabilities(cap=0x28), CDPMsgNativeVLAN(vlan=10),
        CDPMsgDuplex(duplex=1), CDPMsgMgmtAddr(addr=[CDPAddrRecordIPv4(addr="10.0.0.6"),
                                                     CDPAddrRecordIPv6(addr="2001:db8::6")]),
        CDPMsgVTPMgmtDomain(val=b"dom"), CDPMsgPower(power=15400), CDPMsgMTU(mtu=1500),
        CDPMsgTrustBitmap(trust_bitmap=0), CDPMsgUntrustedPortCoS(untrusted_port_cos=0),
        CDPMsgGeneric(type=0x42, val=b"xyz")])
    dtp = b"\x01" + struct.pack("!HH", 1, 9) + b"dom\0\0" + struct.pack("!HH", 2, 5) + b"\x81"
    dtp += struct.pack("!HH", 3, 5) + b"\xa5" + struct.pack("!HH", 4, 10) + bytes.fromhex("020000000001")
    udld = b"\x21\x01" + b"\x00\x00" + struct.pack("!HH", 1, 12) + b"FOX0123X" + struct.pack("!HH", 2, 9) + b"Gi0/1"
    udld += struct.pack("!HH", 4, 5) + b"\x07" + struct.pack("!HH", 5, 5) + b"\x05"
    udld += struct.pack("!HH", 7, 8) + struct.pack("!I", 3) + struct.pack("!HH", 3, 8) + b"\0\0\0\0"
    ipx_rip = bytes.fromhex("ffff0030000400000001020000000002045300000002020000000001 0453 0002 00000003 0001 0002")
    ipx_sap = bytes.fromhex("ffff002200040000000102000000000204520000000202000000000104520001 0004")
    ipx_ncp = bytes.fromhex("ffff002200040000000102000000000204510000000202000000000140000001 0004")
    pkts = [
        Dot3(src=s, dst=bpdu) / LLC() / STP(bridgeid=32768, bridgemac=s, portid=0x8001, rootid=32768,
                                            rootmac="02:00:00:00:00:09", pathcost=4, age=1, maxage=20,
                                            hellotime=2, fwddelay=15),
        Dot3(src=s, dst=bpdu) / LLC() / STP(bpdutype=0x80),
        Dot3(src=s, dst=bpdu) / LLC() / STP(version=2, bpdutype=2, bpduflags=0x7E, bridgeid=4096, bridgemac=s,
                                            portid=0x8002, age=0.5, maxage=20.25) / b"\x00",
        Dot3(src=s, dst=bpdu) / LLC() / STP(version=2, bpdutype=2, bpduflags=0x3D),
        Dot3(src=s, dst=bpdu) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(mst),
        Dot3(src=s, dst=bpdu) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\x00\x00\x05\x00"),
        Dot3(src=s, dst=bpdu) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\x00\x01\x05\x00"),
        Dot3(src=s, dst=bpdu) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / Raw(b"\x00\x00\x00\x05"),
        Dot3(src=s, dst="01:00:0c:cc:cc:cc") / LLC() / SNAP() / cdp,
        Dot3(src=s, dst="01:00:0c:cc:cc:cc") / LLC() / SNAP(OUI=0xC, code=0x2004) / Raw(dtp),
        Dot3(src=s, dst="01:00:0c:cc:cc:cc") / LLC() / SNAP(OUI=0xC, code=0x0111) / Raw(udld),
        Dot3(src=s, dst=peer) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x123456, code=0x4321) / b"payload!",
        Dot3(src=s, dst=peer) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x1234) / b"payload!",
        Dot3(src=s, dst=peer) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=0x0800)
        / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(),
        Dot3(src=s, dst=peer) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0xC, code=0x10B) / STP(),
        Dot3(src=s, dst=peer) / LLC(dsap=0x06, ssap=0x06, ctrl=3) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(),
        Dot3(src=s, dst=peer) / Raw(ipx_rip),
        Dot3(src=s, dst=peer) / LLC(dsap=0xE0, ssap=0xE0, ctrl=3) / Raw(ipx_sap),
        Dot3(src=s, dst=peer) / LLC(dsap=0xE0, ssap=0xE0, ctrl=3) / Raw(ipx_ncp),
        Dot3(src=s, dst=peer) / LLC(dsap=0x10, ssap=0x10, ctrl=0xAF) / Raw(b"\x81\x01\x00"),
        Dot3(src=s, dst=peer) / LLC(dsap=0x10, ssap=0x10, ctrl=0xAF),
        Dot3(src=s, dst=peer) / LLC(dsap=0xF0, ssap=0xF1, ctrl=0x0A) / Raw(b"\x08abcdefgh"),
    ]
    pkts += [Dot3(src=s, dst=peer) / LLC(dsap=0x04, ssap=0x05, ctrl=ctrl) / Raw(b"\x81\x01\x00" + bytes(range(40)))
             for ctrl in (0x03, 0x13, 0xE3, 0xAF, 0xBF, 0x63, 0x43, 0x0F, 0x6F, 0x87, 0x2B)]
    pkts += [Dot3(src=s, dst=peer) / LLC(dsap=0x04, ssap=0x05, ctrl=ctrl) / Raw(bytes([nr]) + b"abcdefgh")
             for ctrl, nr in ((0x01, 9), (0x05, 8), (0x09, 9), (0x0D, 9))]
    return [bytes(p) for p in pkts]


def _tlv(t: int, v: bytes) -> bytes:
    return struct.pack("!H", t << 9 | len(v)) + v


def lldp_corpus() -> list[bytes]:
    head = bytes.fromhex("0180c200000e020000000001") + b"\x88\xcc"
    base = _tlv(1, b"\x04" + bytes.fromhex("020000000001")) + _tlv(2, b"\x05eth0") + _tlv(3, b"\x00\x78")
    org = [
        b"\x00\x80\xc2\x01\x00\x0a", b"\x00\x80\xc2\x03\x00\x0a\x05vlan1", b"\x00\x80\xc2\x02\x06\x00\x14",
        b"\x00\x80\xc2\x07\x03\x00\x00\x00\x05", b"\x00\x80\xc2\x04\x03abc", b"\x00\x12\x0f\x01\x03\x6c\x03\x00\x10",
        b"\x00\x12\x0f\x04\x05\xdc", b"\x00\x12\x0f\x02\x07\x01\x03", b"\x00\x12\x0f\x03\x01\x00\x00\x00\x02",
        b"\x00\x12\xbb\x01\x00\x33\x03", b"\x00\x12\xbb\x02\x01\x40\x14\xb8", b"\x00\x12\xbb\x05rev1",
        b"\x00\x12\xbb\x04\x51\x00\x64", b"\x00\x12\xbb\x03\x02\x0b\x02US\x03\x04city\x06\x03abc",
        b"\x00\x12\xbb\x03\x01" + bytes(range(16)), b"\x00\x12\xbb\x03\x03elin1", b"\x00\x00\x5e\x01http://x/mud",
        b"\x12\x34\x56\x01abc",
        b"\x00\x80\xc2\x09\x80" + bytes(range(20)), b"\x00\x80\xc2\x0b\x80\x05", b"\x00\x80\xc2\x0c\x00\x20\x00\x50",
        b"\x00\x80\xc2\x08\x05\x06", b"\x00\x80\xc2\x0d\x05\x06\x07\x08\x09",
        b"\x00\x80\xc2\x0e\x80\x00\x00\x05\x00\x10\x01",
        b"\x00\x80\xc2\x63abc",
    ]
    full = (base + _tlv(4, b"port descr") + _tlv(5, b"host1") + _tlv(6, b"Linux 6.1 x86_64")
            + _tlv(7, b"\x00\x14\x00\x10")
            + _tlv(8, b"\x05\x01\x0a\x00\x00\x01\x02\x00\x00\x00\x03\x00")
            + _tlv(8, b"\x11\x02" + bytes(15) + b"\x01\x02\x00\x00\x00\x03\x00")
            + b"".join(_tlv(127, v) for v in org) + _tlv(99, b"weird") + _tlv(0, b""))
    dcbx = (b"\x00\x1b\x21\x02" + _tlv(1, b"\x00\x00" + struct.pack("!II", 5, 6)) + _tlv(2, bytes(17))
            + _tlv(3, b"\x00\x00\x80\x00\x05\x08") + _tlv(4, b"\x00\x00\x80\x00\x89\x06\x00\x1b\x21\x08")
            + _tlv(9, b"zz"))
    bodies = [
        full,
        _tlv(1, b"\x07localname") + _tlv(2, b"\x03" + bytes.fromhex("020000000002")) + _tlv(3, b"\x00\x00")
        + _tlv(1, b"\x05\x01\x0a\x00\x00\x01") + _tlv(2, b"\x04\x02" + bytes(16)) + _tlv(1, b"\x09xx") + _tlv(0, b""),
        base + _tlv(5, b"host\x01\xffname") + _tlv(0, b"") + bytes(20),
        base + _tlv(127, dcbx) + _tlv(0, b""),
        base,
        base + _tlv(5, b"x"),
    ]
    return [head + b for b in bodies]


@pytest.mark.parametrize("corpus", [llc_corpus, lldp_corpus], ids=["llc", "lldp"])
def test_crafted_frames_match_tcpdump(tmp_path: Path, corpus: object) -> None:
    frames = [(f, len(f)) for f in corpus()]  # type: ignore[operator]
    assert compare(tmp_path / "crafted.pcap", frames) >= len(frames) * len(FLAGSETS) - 10


@pytest.mark.parametrize("corpus", [llc_corpus, lldp_corpus], ids=["llc", "lldp"])
def test_truncated_frames_match_tcpdump(tmp_path: Path, corpus: object) -> None:
    """Every frame cut at every length: tcpdump's " [|stp]" style marks and dumps, and never an exception."""
    frames = every_cut(corpus())  # type: ignore[operator]
    assert compare(tmp_path / "cut.pcap", frames, ((), ("-v",), ("-e", "-vv"))) > len(frames)


def test_llc_options_beyond_tcpdump_flags() -> None:
    stp = bytes.fromhex("0180c2000000020000000001") + struct.pack("!H", 38) + bytes.fromhex("424203") + bytes(35)
    plain = llc_line(stp, 60, False, 0)
    assert plain.startswith("STP 802.1d, Config, Flags [none]")
    # Behind VLAN tags the caller prints the link header up to them; tcpdump then writes "802.3" directly.
    tagged = stp[:12] + b"\x81\x00\x00\x0a" + stp[12:]
    assert llc_line(tagged, 64, True, 0, hdrlen=18) == "802.3LLC, dsap STP (0x42) Individual, ssap STP (0x42) " \
        "Command, ctrl 0x03: " + plain
    unknown = bytes.fromhex("020000000002020000000001") + struct.pack("!H", 8) + bytes.fromhex("0405") + b"\x03abcde"
    assert "\n\t0x0000:" in llc_line(unknown, 60, False, 0)
    assert "\n\t" not in llc_line(unknown, 60, False, 0, dump=False)


# ---------------------------------------------------------------------------------------------------------
# Real programs: the Linux bridge's spanning tree and lldpd


def _capture(iface: str, path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["tcpdump", "-i", iface, "-U", "-w", str(path)], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    assert "listening" in line, line
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def _frames(path: Path) -> list[tuple[bytes, int]]:
    return [(bytes(r.data), r.wire_len) for r in PcapReader(str(path))]


@pytest.fixture
def quiet_pair() -> Iterator[VethPair]:
    with VethPair("a2l", addresses=False) as pair:
        yield pair


def test_linux_bridge_bpdus_match_tcpdump(quiet_pair: VethPair, tmp_path: Path) -> None:
    """A bridge with STP on, in the pair's namespace, sends configuration BPDUs out of its port (the inner end);
    tcpdump and afpacket read them the same way."""
    net = quiet_pair
    br = f"{net.inner[:-1]}b"
    path = tmp_path / "stp.pcap"
    proc = _capture(net.outer, path)
    try:
        net.exec("ip", "link", "add", br, "type", "bridge", "stp_state", "1", "hello_time", "100",
                 "forward_delay", "400", "priority", "4096")
        net.exec("ip", "link", "set", net.inner, "master", br)
        net.exec("ip", "link", "set", br, "up")
        time.sleep(3.5)
    finally:
        _stop(proc)
    frames = _frames(path)
    stp = [f for f in frames if f[0][:6] == bytes.fromhex("0180c2000000")]
    assert len(stp) >= 2, "the bridge sent no BPDU"
    assert "STP 802.1d, Config" in tcpdump_records(path)[frames.index(stp[0])]
    assert compare(tmp_path / "stp-again.pcap", stp) == len(stp) * len(FLAGSETS)


def test_lldpd_frames_match_tcpdump(tmp_path: Path) -> None:
    """lldpd announces itself with LLDP, CDPv1, CDPv2, FDP, EDP and SONMP on the inner end of a pair."""
    if shutil.which("lldpd") is None:
        pytest.fail("lldpd makes the LLDP and CDP frames of this test: apt-get install lldpd", pytrace=False)
    path = tmp_path / "lldpd.pcap"
    with VethPair("a2d") as net:
        proc = _capture(net.outer, path)
        try:
            # CDPv1, FDP, EDP and SONMP sent without waiting for a peer; then CDPv2 only.
            for n, (flags, seconds) in enumerate(((("-l", "-cc", "-ff", "-ee", "-ss"), 5.5), (("-l", "-ccccc"), 2.5))):
                # The control socket lives outside pytest's private (0700) directories: lldpd creates it
                # before it drops its privileges.
                sock = Path(f"/tmp/afpacket-a2-lldpd-{os.getpid()}-{n}.socket")
                daemon = net.popen("lldpd", "-d", *flags, "-u", str(sock), "-I", net.inner,
                                   "-S", "afpacket test system\nsecond line",
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    time.sleep(seconds)  # lldpd's first LLDP frame leaves about 3 s after its start
                finally:
                    daemon.send_signal(signal.SIGTERM)  # lldpd ends with an LLDP frame of TTL 0
                    daemon.wait(timeout=30)
                    sock.unlink(missing_ok=True)
            time.sleep(0.5)
        finally:
            _stop(proc)
    frames = [(f, w) for f, w in _frames(path) if struct.unpack_from("!H", f, 12)[0] in range(0, 1501) or
              f[12:14] == b"\x88\xcc"]
    text = "\n".join(tcpdump_records(path, "-v"))
    text += "\n".join(tcpdump_records(path, "-e"))
    for kind in ("LLDP, length", "CDPv1", "CDPv2", "System Name TLV", "Management Address TLV",
                 "oui Unknown (0x00e02b)", "Nortel Networks SONMP"):
        assert kind in text, f"lldpd sent no {kind!r}:\n{text}"
    assert compare(tmp_path / "lldpd-again.pcap", frames) == len(frames) * len(FLAGSETS)
    cut = [(f[:n], len(f)) for f, _ in frames[:6] for n in range(14, len(f), 3)]
    assert compare(tmp_path / "lldpd-cut.pcap", cut, ((), ("-v",))) == 2 * len(cut)

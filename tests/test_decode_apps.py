"""Application protocols on UDP and TCP lines print exactly what tcpdump 4.99 -n prints (with -v, -vv, -vvv too).

Real programs make the traffic, inside two network namespaces joined by a veth pair that the tests create and
remove: dnsmasq answers dig (DNS over UDP and TCP, A/AAAA/MX/TXT/SRV/CNAME/PTR/NXDOMAIN/CHAOS) and ISC dhclient
(DHCP and DHCPv6), ntpdig asks a small NTP responder, curl fetches from Python's http.server and from
openssl s_server (TLS), and the OpenSSH client meets a banner listener. tcpdump writes the capture; tcpdump
reading it back is the witness. Each packet's tcpdump record is cut after ``SRC.SPORT > DST.DPORT: `` (UDP, past
the ``[udp sum ok]`` mark of -vv) or after ``length N`` (TCP), and what remains must equal what
``udp_app``/``tcp_app`` return for the same ports and payload. A crafted corpus (scapy, with seeded random
mutations) covers malformed and rare forms the same way, and random bytes never make the printers raise.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from afpacket.dissect.apps import tcp_app, udp_app
from afpacket.savefile import open_reader
from afpacket.testnet import VethPair

TOOLS = {
    "tcpdump": "tcpdump",
    "dnsmasq": "dnsmasq-base",
    "dig": "bind9-dnsutils",
    "dhclient": "isc-dhcp-client",
    "ntpdig": "ntpsec-ntpdig",
    "curl": "curl",
    "openssl": "openssl",
    "ssh": "openssh-client",
    "ss": "iproute2",
}


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-ring-core fixture: these tests decode files and never touch a ring."""
    return "none"


# -- the witness: tcpdump's records, cut where the application text starts ----------------------------------

_ADDRESSES = re.compile(r"(\S+)\.(\d+) > (\S+)\.(\d+): ")
_UDP_CHECKSUM = re.compile(r"\[udp sum ok\] |\[bad udp cksum 0x[0-9a-f]+ -> 0x[0-9a-f]+!\] |\[no cksum\] ")
_TCP_LENGTH = re.compile(r", length \d+")
NFS = 2049


def tcpdump_records(pcap: Path, verbose: int, *flags: str) -> list[str]:
    """tcpdump -n -t's text for each packet of ``pcap``, continuation lines (-v, -x) joined back with newlines."""
    args = ["tcpdump", "-n", "-t", *flags, "-r", str(pcap)] + (["-" + "v" * verbose] if verbose else [])
    out = subprocess.run(args, capture_output=True, timeout=120).stdout.decode("latin-1")
    records: list[str] = []
    for line in out.split("\n")[:-1]:
        if line[:1] in (" ", "\t") and records:
            records[-1] += "\n" + line
        else:
            records.append(line)
    return records


def transport(frame: bytes) -> tuple[str, int, int, bytes, int] | None:
    """("udp"|"tcp", sport, dport, payload, wire length of the payload) of an Ethernet frame carrying
    IPv4/IPv6 UDP or TCP; payloads end where the IP (and UDP) length says, as tcpdump's do, or where the
    capture stops."""
    off, ethertype = 14, int.from_bytes(frame[12:14], "big")
    while ethertype in (0x8100, 0x88A8):
        ethertype, off = int.from_bytes(frame[off + 2 : off + 4], "big"), off + 4
    if ethertype == 0x0800:
        wire_end = off + int.from_bytes(frame[off + 2 : off + 4], "big")
        proto, off = frame[off + 9], off + (frame[off] & 15) * 4
    elif ethertype == 0x86DD:
        wire_end = off + 40 + int.from_bytes(frame[off + 4 : off + 6], "big")
        proto, off = frame[off + 6], off + 40
    else:
        return None
    end = min(len(frame), wire_end)
    if proto == 17:
        sport, dport, ulen = struct.unpack_from("!HHH", frame, off)
        return "udp", sport, dport, frame[off + 8 : min(end, off + ulen)], min(ulen, wire_end - off) - 8
    if proto == 6:
        sport, dport = struct.unpack_from("!HH", frame, off)
        header = (frame[off + 12] >> 4) * 4
        return "tcp", sport, dport, frame[off + header : end], wire_end - off - header
    return None


def application_text(record: str, kind: str) -> str:
    """The part of a tcpdump record that the application printer wrote."""
    found = _ADDRESSES.search(record)
    assert found, record
    rest = record[found.end() :]
    if kind == "udp":
        mark = _UDP_CHECKSUM.match(rest)
        return rest[mark.end() :] if mark else rest
    length = _TCP_LENGTH.search(rest)
    assert length, record
    return rest[length.end() :]


@dataclass
class Comparison:
    """Ours against tcpdump's for every UDP/TCP packet of a capture, at one verbosity."""

    verbose: int
    ours: list[str] = field(default_factory=list)  # what udp_app/tcp_app made, one per compared packet
    differences: list[tuple[int, str, str]] = field(default_factory=list)  # (packet index, tcpdump, ours)

    @property
    def text(self) -> str:
        return "\n".join(self.ours)


def compare(pcap: Path, verbose: int) -> Comparison:
    records = tcpdump_records(pcap, verbose)
    with open_reader(pcap) as reader:
        frames = [bytes(rec.data) for rec in reader]
    assert len(records) == len(frames), f"tcpdump printed {len(records)} records for {len(frames)} packets"
    result = Comparison(verbose)
    for index, (record, frame) in enumerate(zip(records, frames, strict=True)):
        parsed = transport(frame)
        if parsed is None:
            continue
        kind, sport, dport, payload, length = parsed
        if kind == "udp":
            ours = udp_app(sport, dport, payload, verbose, length=length)
            if ours is None:
                if NFS in (sport, dport):
                    continue  # left to tcpdump's NFS printer, which has no counterpart here
                ours = f"UDP, length {length}"  # the caller's line when no application printer claims it
        elif length > 0:
            ours = tcp_app(sport, dport, payload, verbose, length=length) or ""
        else:
            continue
        result.ours.append(ours)
        theirs = application_text(record, kind)
        if ours != theirs:
            result.differences.append((index, theirs, ours))
    return result


def assert_same_as_tcpdump(pcap: Path, minimum: int) -> list[Comparison]:
    """Every UDP/TCP packet of ``pcap`` equal at -n, -v, -vv and -vvv; at least ``minimum`` packets compared."""
    results = [compare(pcap, verbose) for verbose in range(4)]
    for result in results:
        shown = "\n".join(
            f"  #{i} -{'v' * result.verbose}\n    tcpdump {t!r}\n    ours    {o!r}"
            for i, t, o in result.differences[:10]
        )
        assert not result.differences, f"{len(result.differences)} packets differ from tcpdump:\n{shown}"
        assert len(result.ours) >= minimum, f"only {len(result.ours)} packets compared"
    return results


# -- two namespaces: the server side (tcpdump runs there) and the client side -------------------------------


@dataclass
class Lan:
    server_ns: str
    server_if: str
    server_ip: str
    client_ns: str
    client_if: str
    client_ip: str


def _in(ns: str, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"`{' '.join(cmd)}` in {ns} failed ({r.returncode}): {r.stderr.strip()}")
    return r


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    """A veth pair between two namespaces made here: the VethPair's inner end is the server, its outer end
    is moved into a second namespace for the clients (so DHCP clients and servers never touch this host's
    own interfaces). IPv6 is on (link-local and 2001:db8:1::1/64) for DHCPv6; 192.0.2.1/24 is the DHCP pool's
    subnet. Deleting both namespaces removes everything."""
    if os.geteuid() != 0:
        pytest.fail("these tests make network namespaces: run them as root")
    missing = [f"{tool} (apt-get install {package})" for tool, package in TOOLS.items() if not shutil.which(tool)]
    if missing:
        pytest.fail("missing programs: " + ", ".join(missing))
    with VethPair("afpa") as net:
        client_ns = net.netns + "c"
        subprocess.run(["ip", "netns", "add", client_ns], check=True)
        try:
            subprocess.run(["ip", "link", "set", net.outer, "netns", client_ns], check=True, capture_output=True)
            _in(client_ns, "ip", "addr", "add", f"{net.outer_ip}/30", "dev", net.outer)
            for ns, dev in ((client_ns, net.outer), (net.netns, net.inner)):
                conf = f"/proc/sys/net/ipv6/conf/{dev}"
                _in(ns, "sh", "-c", f"echo 0 > {conf}/accept_dad; echo 0 > {conf}/disable_ipv6")
                _in(ns, "ip", "link", "set", dev, "up")
                _in(ns, "ip", "link", "set", "lo", "up")
            _in(net.netns, "ip", "addr", "add", "192.0.2.1/24", "dev", net.inner)
            _in(net.netns, "ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", net.inner, "nodad")
            yield Lan(net.netns, net.inner, net.inner_ip, client_ns, net.outer, net.outer_ip)
        finally:
            subprocess.run(["ip", "netns", "del", client_ns], capture_output=True)


@contextmanager
def running(ns: str, *cmd: str, ready: str | None = None) -> Iterator[subprocess.Popen[str]]:
    """A program running in namespace ``ns`` for the block's duration, killed (and reaped) after it.
    ``ready``: a line its standard output prints once it serves."""
    proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        if ready is not None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert ready in line, f"{cmd[0]} did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield proc
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def wait_listening(ns: str, proto: str, port: int, timeout: float = 10) -> None:
    """Until something in ``ns`` listens on ``port`` (``proto`` "t" or "u", as for ss)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(rf":{port}\s", _in(ns, "ss", f"-ln{proto}H").stdout):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {proto} port {port} in {ns}")


@contextmanager
def captured(lan: Lan, path: Path) -> Iterator[Path]:
    """tcpdump writing ``path`` on the server's interface for the block; stopped with SIGINT after it, so
    the file is complete."""
    tcpdump = ("tcpdump", "-i", lan.server_if, "-U", "--immediate-mode", "-w", str(path))
    proc = subprocess.Popen(["ip", "netns", "exec", lan.server_ns, *tcpdump], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on" in line, line
        yield path
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def dnsmasq(tmp_path: Path, *args: str) -> tuple[str, ...]:
    """dnsmasq in the foreground with nothing but ``args`` configured, its files under ``tmp_path``."""
    return ("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--user=root", "--bind-interfaces",
            f"--pid-file={tmp_path / 'dnsmasq.pid'}", *args)


# -- DNS -----------------------------------------------------------------------------------------------------

DNSMASQ_RECORDS = (
    "--local=/example.test/",  # unknown names there are NXDOMAIN
    "--host-record=www.example.test,198.18.99.2,2001:db8::2",
    "--mx-host=example.test,mail.example.test,10",
    "--txt-record=example.test,v=spf1 -all,hello world",
    "--srv-host=_sip._tcp.example.test,sip.example.test,5060,1,2",
    "--cname=alias.example.test,www.example.test",
    "--ptr-record=2.99.18.198.in-addr.arpa,www.example.test",
)


def test_dns_from_dig_and_dnsmasq_over_udp_and_tcp(lan: Lan, tmp_path: Path) -> None:
    queries = (
        ("www.example.test", "A"),
        ("www.example.test", "AAAA"),
        ("example.test", "MX"),
        ("example.test", "TXT"),
        ("_sip._tcp.example.test", "SRV"),
        ("alias.example.test", "A"),
        ("-x", "198.18.99.2"),
        ("nope.example.test", "A"),
        ("www.example.test", "A", "+tcp"),
        ("example.test", "MX", "+tcp"),
        ("www.example.test", "A", "+noedns"),
        ("version.bind", "CHAOS", "TXT"),
        ("example.test", "ANY", "+cd"),
    )
    server = dnsmasq(tmp_path, "--no-resolv", "--no-hosts", f"--listen-address={lan.server_ip}", *DNSMASQ_RECORDS)
    with running(lan.server_ns, *server), captured(lan, tmp_path / "dns.pcap") as pcap:
        wait_listening(lan.server_ns, "u", 53)
        for query in queries:
            _in(lan.client_ns, "dig", f"@{lan.server_ip}", "+tries=3", "+time=2", *query)

    plain, _, very, most = assert_same_as_tcpdump(pcap, minimum=2 * len(queries))
    for expected in (
        "+ [1au] A? www.example.test. (57)",
        " 1/0/1 A 198.18.99.2 (61)",
        "AAAA 2001:db8::2",
        "MX mail.example.test. 10",
        'TXT "v=spf1 -all" "hello world"',
        "SRV sip.example.test.:5060 1 2",
        "2/0/1 CNAME www.example.test., A 198.18.99.2",
        "PTR www.example.test.",
        " NXDomain 0/0/1 (46)",
        "+ A? www.example.test. (34)",
        "TXT CHAOS? version.bind.",
        "+% [1au] ANY? example.test.",
    ):
        assert expected in plain.text, expected
    assert re.search(r"^ \d+\+ \[1au\] A\? www\.example\.test\. \(57\)$", plain.text, re.M), "DNS over TCP"
    assert " q: A? www.example.test. 1/0/1 www.example.test. A 198.18.99.2 ar: . OPT UDPsize=" in very.text
    assert re.search(r"www\.example\.test\. \[\d+[wdhms]\S*\] A 198\.18\.99\.2", most.text), "TTLs with -vvv"


# -- DHCP and DHCPv6 -----------------------------------------------------------------------------------------


def _lease(lan: Lan, tmp_path: Path, family: str) -> None:
    """ISC dhclient in the client namespace until it holds a lease (its script does nothing)."""
    conf = tmp_path / "dhclient.conf"
    conf.write_text(
        'send host-name "afptest";\nsend dhcp-client-identifier = hardware;\n'
        "request subnet-mask, broadcast-address, routers, domain-name-servers, domain-name, ntp-servers;\n"
    )
    leases = tmp_path / f"dhclient{family}.leases"
    cmd = (
        "dhclient",
        f"-{family}",
        "-d",
        "-1",
        "-sf",
        "/bin/true",
        "-cf",
        str(conf),
        "-lf",
        str(leases),
        "-pf",
        str(tmp_path / f"dhclient{family}.pid"),
        lan.client_if,
    )
    with running(lan.client_ns, *cmd) as client:
        deadline = time.monotonic() + 30
        while not (leases.exists() and "lease" in leases.read_text()):
            assert client.poll() is None, f"dhclient -{family} gave up: {client.communicate()[1][-500:]}"
            assert time.monotonic() < deadline, f"dhclient -{family} got no lease"
            time.sleep(0.1)


def test_dhcp_and_dhcpv6_from_dhclient_and_dnsmasq(lan: Lan, tmp_path: Path) -> None:
    server = dnsmasq(
        tmp_path,
        "--port=0",  # no DNS
        f"--interface={lan.server_if}",
        f"--dhcp-leasefile={tmp_path / 'dnsmasq.leases'}",
        "--dhcp-authoritative",
        "--dhcp-range=192.0.2.50,192.0.2.60,255.255.255.0,1h",
        "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,1h",
        "--dhcp-option=option:router,192.0.2.1",
        "--dhcp-option=option:dns-server,192.0.2.1,192.0.2.2",
        "--dhcp-option=option:domain-name,example.test",
        "--dhcp-option=option6:dns-server,[2001:db8:1::1]",
        "--dhcp-option=option6:domain-search,example.test",
    )
    with running(lan.server_ns, *server), captured(lan, tmp_path / "dhcp.pcap") as pcap:
        wait_listening(lan.server_ns, "u", 67)
        _lease(lan, tmp_path, "4")
        _lease(lan, tmp_path, "6")

    plain, verbose, very, _ = assert_same_as_tcpdump(pcap, minimum=8)
    mac = socket_mac(lan)
    for expected in (
        f"BOOTP/DHCP, Request from {mac}, length 300",
        "BOOTP/DHCP, Reply, length ",
        "dhcp6 solicit",
        "dhcp6 advertise",
        "dhcp6 request",
        "dhcp6 reply",
    ):
        assert expected in plain.text, expected
    for expected in (
        f"Client-Ethernet-Address {mac}",
        "DHCP-Message (53), length 1: Discover",
        "DHCP-Message (53), length 1: Offer",
        "DHCP-Message (53), length 1: Request",
        "DHCP-Message (53), length 1: ACK",
        "Requested-IP (50), length 4: 192.0.2.",
        "Server-ID (54), length 4: 192.0.2.1",
        "Lease-Time (51), length 4: 3600",
        "Subnet-Mask (1), length 4: 255.255.255.0",
        "Default-Gateway (3), length 4: 192.0.2.1",
        "Domain-Name-Server (6), length 8: 192.0.2.1,192.0.2.2",
        'Hostname (12), length 7: "afptest"',
        "Parameter-Request (55)",
        f"Client-ID (61), length 7: ether {mac}",
        "\n\t  Your-IP 192.0.2.",
        "(client-ID hwaddr",
        "(IA_NA IAID:",
        "(IA_ADDR 2001:db8:1::",
        "(DNS-server 2001:db8:1::1)",
        "(DNS-search-list example.test.)",
        "(status-code Success)",
    ):
        assert expected in verbose.text, expected
    assert "Flags [none] (0x0000)" in very.text


def socket_mac(lan: Lan) -> str:
    return _in(lan.client_ns, "cat", f"/sys/class/net/{lan.client_if}/address").stdout.strip()


# -- NTP -----------------------------------------------------------------------------------------------------

NTP_RESPONDER = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 123))
print("ready", flush=True)
while True:
    query, peer = s.recvfrom(512)
    if len(query) < 48:
        continue
    now = time.time() + 2208988800
    sec, frac = int(now), int(now % 1 * 2**32)
    reply = struct.pack("!BBbbHHHH4s", 0x24, 2, query[2], -20, 0, 0x0123, 0, 0x2000, bytes([192, 0, 2, 123]))
    reply += struct.pack("!II", sec - 64, 0) + query[40:48] + struct.pack("!IIII", sec, frac, sec, frac + 4096)
    s.sendto(reply, peer)
"""


def test_ntp_from_ntpdig(lan: Lan, tmp_path: Path) -> None:
    """ntpdig (a real NTP client) against a small stratum-2 responder."""
    with (
        running(lan.server_ns, sys.executable, "-c", NTP_RESPONDER, lan.server_ip, ready="ready"),
        captured(lan, tmp_path / "ntp.pcap") as pcap,
    ):
        for _ in range(2):
            _in(lan.client_ns, "ntpdig", "-t", "3", lan.server_ip)

    plain, verbose, _, _ = assert_same_as_tcpdump(pcap, minimum=4)
    assert plain.ours.count("NTPv4, Client, length 48") == 2
    assert plain.ours.count("NTPv4, Server, length 48") == 2
    for expected in (
        "Leap indicator:  (0), Stratum 2 (secondary reference), poll ",
        "Reference-ID: 0xc000027b",
        "Root Delay: 0.004440, Root dispersion: 0.125000",
        "Transmit Timestamp:   ",
        "Originator - Transmit Timestamp: ",
    ):
        assert expected in verbose.text, expected


# -- HTTP, SSH, TLS ------------------------------------------------------------------------------------------

SSH_BANNER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 22))
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.sendall(b"SSH-2.0-afpacket_banner\r\n")
c.recv(4096)
c.close()
"""


def test_http_ssh_and_tls_from_real_clients(lan: Lan, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "small.txt").write_text("hello\n")
    (www / "big.html").write_text("<html>\n" + "a line of text\n" * 1000 + "</html>\n")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=afp.test",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    ip = lan.server_ip
    curl = ("curl", "-s", "-o", "/dev/null", "--max-time", "10")
    with (
        running(lan.server_ns, sys.executable, "-m", "http.server", "80", "--bind", ip, "--directory", str(www)),
        running(lan.server_ns, sys.executable, "-m", "http.server", "8080", "--bind", ip, "--directory", str(www)),
        running(lan.server_ns, sys.executable, "-c", SSH_BANNER, ip, ready="ready"),
        running(
            lan.server_ns,
            "openssl",
            "s_server",
            "-quiet",
            "-accept",
            f"{ip}:443",
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-www",
        ),
        captured(lan, tmp_path / "tcp.pcap") as pcap,
    ):
        for port in (80, 8080, 443):
            wait_listening(lan.server_ns, "t", port)
        for path in ("/small.txt", "/big.html", "/missing"):
            _in(lan.client_ns, *curl, f"http://{ip}{path}")
        _in(lan.client_ns, *curl, "-I", f"http://{ip}/small.txt")
        _in(lan.client_ns, *curl, "-d", "a=1&b=2", f"http://{ip}:8080/small.txt")
        _in(
            lan.client_ns,
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            f"test@{ip}",
            "true",
            check=False,
        )
        _in(lan.client_ns, *curl, "-k", f"https://{ip}/")

    plain, verbose, _, _ = assert_same_as_tcpdump(pcap, minimum=12)
    for expected in (
        ": HTTP: GET /small.txt HTTP/1.1",
        ": HTTP: HTTP/1.0 200 OK",
        ": HTTP: HTTP/1.0 404 File not found",
        ": HTTP: HEAD /small.txt HTTP/1.1",
        ": HTTP: POST /small.txt HTTP/1.1",
        ": SSH: SSH-2.0-afpacket_banner",
        ": SSH: SSH-2.0-OpenSSH_",
    ):
        assert expected in plain.text, expected
    assert ": HTTP" in plain.ours, "body segments name the protocol only"
    assert "" in plain.ours, "TLS and SSH binary segments print nothing after the length"
    assert (
        ": HTTP, length: " in verbose.text
        and "\n\tHost: " in verbose.text
        and "\n\tServer: SimpleHTTP/" in verbose.text
    )


# -- crafted and mutated messages ----------------------------------------------------------------------------


def crafted_corpus(seed: int, mutations: int) -> list[bytes]:
    """Ethernet frames: well-formed messages of every protocol and form handled here, the port pairs whose
    printer tcpdump's order decides, and ``mutations`` seeded random corruptions of them."""
    from scapy.all import DNS, DNSQR, DNSRR, DNSRRMX, DNSRROPT, DNSRRSOA, DNSRRSRV, IP, TCP, UDP, Ether, IPv6, Raw
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.dhcp6 import (
        DUID_EN,
        DUID_LL,
        DUID_LLT,
        DHCP6_Advertise,
        DHCP6_InfoRequest,
        DHCP6_RelayForward,
        DHCP6_Reply,
        DHCP6_Request,
        DHCP6_Solicit,
        DHCP6OptAuth,
        DHCP6OptClientId,
        DHCP6OptDNSDomains,
        DHCP6OptDNSServers,
        DHCP6OptElapsedTime,
        DHCP6OptIA_NA,
        DHCP6OptIA_PD,
        DHCP6OptIA_TA,
        DHCP6OptIAAddress,
        DHCP6OptIAPrefix,
        DHCP6OptIfaceId,
        DHCP6OptInfoRefreshTime,
        DHCP6OptNewPOSIXTimeZone,
        DHCP6OptOptReq,
        DHCP6OptPref,
        DHCP6OptRapidCommit,
        DHCP6OptReconfAccept,
        DHCP6OptReconfMsg,
        DHCP6OptRelayMsg,
        DHCP6OptRemoteID,
        DHCP6OptServerId,
        DHCP6OptServerUnicast,
        DHCP6OptSNTPServers,
        DHCP6OptStatusCode,
        DHCP6OptSubscriberID,
        DHCP6OptUnknown,
    )
    from scapy.layers.ntp import NTPControl, NTPHeader

    dns = [
        DNS(id=4660, rd=1, qd=DNSQR(qname="example.com")),
        DNS(id=1, cd=1, qd=DNSQR(qname="example.com", qtype="AAAA", qclass="CH")),
        DNS(id=2, rd=1, opcode=4, qd=DNSQR(qname="example.com", qtype="SOA"), ar=DNSRROPT(rclass=1232, z=0x8000)),
        DNS(
            qr=1, id=3, ra=1, qd=DNSQR(qname="example.com"), an=DNSRR(rrname="example.com", rdata="1.2.3.4", ttl=90061)
        ),
        DNS(
            qr=1,
            id=5,
            aa=1,
            rcode=3,
            qd=DNSQR(qname="nx.example.com"),
            ns=DNSRRSOA(rrname="example.com", mname="ns1.example.com", rname="host.example.com", serial=2024),
        ),
        DNS(
            qr=1,
            id=6,
            tc=1,
            ad=1,
            qd=DNSQR(qname="example.com", qtype="AAAA"),
            an=DNSRR(rrname="example.com", type="AAAA", rdata="::ffff:1.2.3.4"),
        ),
        DNS(
            qr=1,
            id=9,
            ra=1,
            qd=DNSQR(qname="example.com", qtype="TXT"),
            an=DNSRR(rrname="example.com", type="TXT", rdata=["hello world", "\x01\xff"])
            / DNSRRMX(rrname="example.com", preference=10, exchange="mail.example.com")
            / DNSRRSRV(rrname="_sip._tcp.example.com", priority=1, weight=2, port=5060, target="sip.example.com")
            / DNSRR(rrname="example.com", type="PTR", rdata="p.example.com"),
            ar=DNSRROPT(rclass=512, extrcode=1, rdata=[]),
        ),
        DNS(qr=1, id=10, qd=DNSQR(qname="example.com"), ar=DNSRROPT(rclass=4096, rdata=[])),
    ]

    def tlv(code: int, value: bytes) -> bytes:
        return code.to_bytes(2, "big") + len(value).to_bytes(2, "big") + value

    options = (
        tlv(10, b"12345678abcdefgh")
        + tlv(8, bytes.fromhex("000118000a0000"))
        + tlv(11, b"\x00\x64")
        + tlv(12, bytes(4))
        + tlv(5, bytes([8, 13, 15]))
        + tlv(14, bytes.fromhex("abcd0102"))
        + tlv(3, b"\xff\xee")
    )
    dns.append(
        Raw(
            bytes(DNS(id=11, rd=1, qd=DNSQR(qname="x.example"), arcount=1)) + b"\x00\x00\x29\x04\xd0\x00\x00"
            b"\x80\x00" + len(options).to_bytes(2, "big") + options
        )
    )
    long_name = b"".join(bytes([63]) + bytes([97 + k]) * 63 for k in range(5)) + b"\x00"  # 320 characters
    bit_label = b"\x41\x0c\xab\xc0\x07example\x00"  # an RFC 2673 bit-string label, 12 bits
    for name in (long_name, bit_label):
        dns.append(Raw(bytes.fromhex("000901000001000000000000") + name + b"\x00\x01\x00\x01"))
    chaddr = bytes.fromhex("aabbccddeeff")
    bootp = [
        BOOTP(op=1, chaddr=chaddr, xid=0x1234, flags=0x8000)
        / DHCP(
            options=[
                ("message-type", "discover"),
                ("client_id", b"\x01" + chaddr),
                ("requested_addr", "10.0.0.5"),
                ("hostname", "myhost"),
                ("param_req_list", [1, 3, 6, 15, 28, 42, 119, 121, 249, 252, 200]),
                "end",
                "pad",
                "pad",
            ]
        ),
        BOOTP(
            op=2,
            chaddr=chaddr,
            xid=0x1234,
            yiaddr="10.0.0.5",
            siaddr="10.0.0.1",
            giaddr="10.0.0.254",
            ciaddr="10.0.0.9",
            secs=3,
            hops=1,
            sname=b"server",
            file=b"pxelinux.0",
        )
        / DHCP(
            options=[
                ("message-type", "offer"),
                ("server_id", "10.0.0.1"),
                ("lease_time", 3600),
                ("renewal_time", 1800),
                ("subnet_mask", "255.255.255.0"),
                ("router", "10.0.0.1"),
                ("name_server", "10.0.0.1", "8.8.8.8"),
                ("domain", "example.com"),
                (121, b"\x18\x0a\x01\x02\x0a\x00\x00\x01\x00\x0a\x00\x00\x01"),
                (81, b"\x01\x00\x00host.example.com"),
                (82, b"\x01\x04eth0\x02\x03abc\x09\x05hello"),
                (77, b"\x03abc\x02de"),
                (46, b"\x08"),
                (52, b"\x03"),
                (200, b"\x01\x02\x03\x04\x05\x06"),
                (2, b"\xff\xff\xf1\xf0"),
                (19, b"\x01"),
                (26, b"\x05\xdc"),
                (33, bytes(8)),
                "end",
            ]
        ),
        BOOTP(op=1, htype=6, hlen=6, chaddr=chaddr)
        / DHCP(options=[("message-type", "request"), (61, b"\x00id"), "end"]),
        BOOTP(
            op=2, chaddr=chaddr, options=b"CMU\x00\x00\x00\x00\x01" + bytes([255, 255, 255, 0, 10, 0, 0, 1]) + bytes(48)
        ),
    ]
    duid = DUID_LLT(lladdr="aa:bb:cc:dd:ee:ff", timeval=12345)
    dhcp6 = [
        DHCP6_Solicit(trid=0xABCDEF)
        / DHCP6OptClientId(duid=duid)
        / DHCP6OptElapsedTime()
        / DHCP6OptOptReq(reqopts=[23, 24, 56, 31])
        / DHCP6OptIA_NA(iaid=1)
        / DHCP6OptRapidCommit(),
        DHCP6_Advertise(trid=0x123456)
        / DHCP6OptClientId(duid=duid)
        / DHCP6OptServerId(duid=DUID_LL(lladdr="aa:bb:cc:dd:ee:ff"))
        / DHCP6OptIA_NA(iaid=1, T1=3600, T2=5400, ianaopts=[DHCP6OptIAAddress(addr="2001:db8::100", preflft=7200)])
        / DHCP6OptDNSServers(dnsservers=["2001:db8::1"])
        / DHCP6OptDNSDomains(dnsdomains=["example.com", "lab.example"])
        / DHCP6OptPref(prefval=255)
        / DHCP6OptStatusCode(statuscode=2, statusmsg="none"),
        DHCP6_Request(trid=1)
        / DHCP6OptClientId(duid=DUID_EN(enterprisenum=9, id=b"abcdefgh"))
        / DHCP6OptIA_PD(iaid=7, iapdopt=[DHCP6OptIAPrefix(prefix="2001:db8:1::", plen=48)])
        / DHCP6OptIA_TA(iaid=3)
        / DHCP6OptServerUnicast(srvaddr="2001:db8::9"),
        DHCP6_Reply(trid=2)
        / DHCP6OptSNTPServers(sntpservers=["2001:db8::7"])
        / DHCP6OptInfoRefreshTime(reftime=600)
        / DHCP6OptRemoteID(enterprisenum=4491, remoteid=b"0123456789abcdef")
        / DHCP6OptSubscriberID(subscriberid=b"sub-1")
        / DHCP6OptReconfMsg(msgtype=5)
        / DHCP6OptReconfAccept()
        / DHCP6OptAuth(proto=3, alg=1, rdm=0, replay=bytes(8), authinfo=b"\x01" + b"k" * 16),
        DHCP6_RelayForward(hopcount=1, linkaddr="2001:db8::1", peeraddr="fe80::2")
        / DHCP6OptIfaceId(ifaceid=b"eth0")
        / DHCP6OptRelayMsg(message=DHCP6_Solicit(trid=5) / DHCP6OptClientId(duid=duid)),
        DHCP6_InfoRequest(trid=9)
        / DHCP6OptNewPOSIXTimeZone(optdata=b"EST5EDT4,M3.2.0/02:00,M11.1.0/02:00")
        / DHCP6OptUnknown(optcode=64, data=b"\x04aftr\x07example\x03com\x00")
        / DHCP6OptUnknown(optcode=56, data=b"\x00\x01\x00\x10" + bytes(15) + b"\x01\x00\x03\x00\x05\x03ntp\x00"),
    ]
    ntp = [
        NTPHeader(version=4, mode=3, stratum=0, poll=3, precision=-6, sent=3900000000.25),
        NTPHeader(
            version=4,
            mode=4,
            stratum=2,
            poll=6,
            precision=-23,
            delay=0.015,
            dispersion=0.03,
            id="192.168.1.1",
            ref=3900000000.5,
            orig=3900000000.25,
            recv=3900000001.125,
            sent=3900000001.126,
        ),
        Raw(
            bytes(
                NTPHeader(
                    version=3,
                    mode=4,
                    stratum=1,
                    ref_id=b"GPS\x00",
                    leap=3,
                    orig=3900000002.25,
                    recv=3900000001.125,
                    sent=3900000001.126,
                )
            )
            + b"\x00\x00\x00\x07"
        ),
        Raw(bytes(NTPHeader(version=4, mode=1, stratum=16, ref=1.5)) + b"\x00\x00\x00\x07" + bytes(range(16))),
        Raw(bytes(NTPHeader(version=4, mode=5, stratum=62)) + bytes(20)),
        NTPControl(op_code=2, sequence=7, count=4) / Raw(b"abcd"),
        Raw(b"\xe6\x00\x00\x00"),
    ]
    text = [
        b"GET / HTTP/1.1\r\nHost: 10.0.0.2\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\nContent-type: text/html\r\n\r\n<html>\n<body>hi</body>\n",
        b"<html>continued body\r\n",
        b"\x16\x03\x01\x00\x05hello",
        b"get /lower HTTP/1.0\n\n",
        b"PLAY rtsp://x/y RTSP/1.0\r\nCSeq: 3\r\n\r\n",
        b"220 ftp.example ready\r\n",
        b"HTTP/1.1 404 Not Found\r",
    ]
    ssh = [
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u6\r\n",
        b"SSH-2.0-Test\n",
        b"SSH-2.0-Test",
        b"SS",
        b"\x00\x00\x01\x0c",
    ]

    frames: list[tuple[str, int, int, bytes, bool]] = []  # (kind, sport, dport, payload, ipv6)
    frames += [("udp", 40000, 53, bytes(m), False) for m in dns] + [("udp", 53, 40000, bytes(m), False) for m in dns]
    frames += [("udp", 5353, 5353, bytes(m), False) for m in dns] + [
        ("tcp", 40000, 53, len(bytes(m)).to_bytes(2, "big") + bytes(m), False) for m in dns
    ]
    frames += [("udp", 68, 67, bytes(m), False) for m in bootp] + [("udp", 546, 547, bytes(m), True) for m in dhcp6]
    frames += [("udp", 123, 123, bytes(m), False) for m in ntp]
    frames += [("tcp", port, 40000, m, False) for m in text for port in (80, 8080, 443, 554, 21, 25, 43)]
    frames += [("tcp", 40000, 22, m, False) for m in ssh]
    # Port pairs where tcpdump's printer order decides: DNS before NTP before DHCPv6; LLMNR and NetBIOS
    # have no printer (UDP, length N); NFS calls on 2049 are not DNS.
    frames += [
        ("udp", 53, 123, bytes(dns[3]), False),
        ("udp", 123, 547, bytes(ntp[0]), False),
        ("udp", 67, 123, bytes(bootp[0]), False),
        ("udp", 5355, 40000, bytes(dns[0]), False),
        ("udp", 137, 40000, bytes(50), False),
        ("udp", 53, 2049, bytes(8) + bytes(dns[0]), False),
    ]
    rnd = random.Random(seed)
    seeds = list(frames)
    for _ in range(mutations):
        kind, sport, dport, payload, six = rnd.choice(seeds)
        data = bytearray(payload)
        for _ in range(rnd.randint(1, 4)):
            action = rnd.random()
            if action < 0.5 and data:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            elif action < 0.65 and data:
                del data[rnd.randrange(len(data)) :]
            elif action < 0.85:
                at = rnd.randrange(len(data) + 1)
                data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
            elif len(data) > 14:
                at = rnd.randrange(12, len(data) - 1)
                data[at : at + 2] = bytes([0xC0 | rnd.randrange(64), rnd.randrange(256)])
        frames.append((kind, sport, dport, bytes(data), six))
    out = []
    for kind, sport, dport, payload, six in frames:
        net = IPv6(src="fe80::1", dst="ff02::1:2") if six else IP(src="10.0.0.1", dst="10.0.0.2")
        layer = UDP(sport=sport, dport=dport) if kind == "udp" else TCP(sport=sport, dport=dport, flags="PA")
        out.append(bytes(Ether() / net / layer / Raw(payload)))
    return out


def test_crafted_and_mutated_messages_print_as_tcpdump_prints_them(tmp_path: Path) -> None:
    from scapy.all import wrpcap

    pcap = tmp_path / "crafted.pcap"
    frames = crafted_corpus(seed=8, mutations=2500)
    wrpcap(str(pcap), frames, linktype=1)
    results = assert_same_as_tcpdump(pcap, minimum=len(frames) * 9 // 10)
    everything = "\n".join(result.text for result in results)
    for expected in (
        "<BAD PTR>",
        "[|domain]",
        "[|bootp]",
        "[|dhcp6]",
        "(invalid)",
        " [|ssh]",
        ": RTSP: PLAY rtsp://x/y",
        ": FTP: 220 ftp.example ready",
        "UDP, length 50",
        "KEEPALIVE 10.0 sec",
        "ECS 10.0.0.0/24/0",
        "<DOMAIN NAME TOO LONG>",
        "\\[xabc/12].example.",
    ):
        assert expected in everything, expected


def test_captures_cut_short_by_the_snaplen_print_as_tcpdump_prints_them(tmp_path: Path) -> None:
    """The same corpus with every frame cut at a random point past its UDP/TCP header (the wire length kept,
    as a small snaplen leaves it): given the payload's wire length, the printers stop where tcpdump stops
    and print the lengths tcpdump prints."""
    from afpacket.savefile import PcapWriter

    rnd = random.Random(3)
    pcap = tmp_path / "cut.pcap"
    frames = crafted_corpus(seed=9, mutations=1500)
    with PcapWriter(pcap) as writer:
        for frame in frames:
            writer.write(0, frame[: rnd.randint(min(70, len(frame)), len(frame))], len(frame))
    results = assert_same_as_tcpdump(pcap, minimum=len(frames) * 9 // 10)
    everything = "\n".join(result.text for result in results)
    for expected in (" [|domain]", " [|bootp]", " [|dhcp6]", " [|ntp]", " [|http]", " [|ssh]"):
        assert expected in everything, expected


# -- robustness ----------------------------------------------------------------------------------------------

PORTS = (53, 5353, 67, 68, 123, 546, 547, 80, 8080, 22, 21, 25, 43, 554, 443, 2049, 9)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(PORTS), st.sampled_from(PORTS), st.binary(max_size=700), st.integers(0, 3),
    st.none() | st.integers(0, 1000),
)
def test_random_bytes_never_raise(sport: int, dport: int, payload: bytes, verbose: int, length: int | None) -> None:
    """Whatever the bytes and whatever wire length the caller claims, the printers return text or None."""
    for result in (
        udp_app(sport, dport, payload, verbose, length=length),
        tcp_app(sport, dport, payload or b"x", verbose, length=length),
    ):
        assert result is None or isinstance(result, str)


def test_the_dump_after_a_cut_line_starts_where_tcpdumps_does(tmp_path: Path) -> None:
    """Each printer stops a cut-short message as tcpdump's does: where tcpdump reads a field with its GET_
    macros and jumps out, the -x dump that follows starts at the frame's first byte; where it checks a length
    and prints its mark at a ``trunc:`` label, after the Ethernet header. The whole line printer, -x with and
    without -vv, on every cut of the crafted corpus past its UDP/TCP header (NFS, decoded by tcpdump but not
    here, left out)."""
    from afpacket.dissect import LinePrinter
    from afpacket.dissect.hexdump import hex_lines
    from afpacket.savefile import PcapWriter

    frames = []
    for frame in crafted_corpus(seed=8, mutations=300):
        found = transport(frame)
        if found is None or NFS in found[1:3]:
            continue
        start = len(frame) - len(found[3])
        frames.extend((frame[:cut], len(frame)) for cut in range(start, len(frame)))
    pcap = tmp_path / "cuts.pcap"
    with PcapWriter(pcap) as writer:
        for data, wire in frames:
            writer.write(0, data, wire)
    starts: dict[int, set[str]] = {0: set(), 14: set()}
    for verbose in (0, 2):
        theirs = tcpdump_records(pcap, verbose, "-x")
        printer = LinePrinter(dump="x", verbose=verbose)
        ours = [printer.line(data, wire, 1) for data, wire in frames]
        assert len(theirs) == len(ours) > 10000
        wrong = [f"{data.hex()}\n  tcpdump: {t!r}\n  ours:    {o!r}"
                 for (data, _), t, o in zip(frames, theirs, ours, strict=True) if t != o]
        assert not wrong, f"{len(wrong)} of {len(ours)} differ:\n" + "\n".join(wrong[:5])
        for (data, _), o in zip(frames, ours, strict=True):
            mark = re.search(r" \[\|([\w-]+)\]\n\t0x0000", o)
            if mark:
                starts[0 if o.endswith(hex_lines(data)) else 14].add(mark.group(1))
    # Both ways of stopping were met, for the printers that have both.
    assert {"domain", "bootp", "ntp", "dhcp6"} <= starts[14]
    assert {"domain", "bootp", "ntp", "dhcp6", "http", "ssh"} <= starts[0]



def test_every_prefix_of_a_message_prints_and_names_the_cut() -> None:
    """A payload cut at any byte (the wire length given) prints; a record whose fixed part is missing is
    skipped silently, as tcpdump does, otherwise the line ends with tcpdump's cut mark."""
    from scapy.all import DNS, DNSQR, DNSRR

    message = bytes(
        DNS(qr=1, id=7, qd=DNSQR(qname="www.example.com"), an=DNSRR(rrname="www.example.com", rdata="1.2.3.4"))
    )
    for cut in range(len(message) + 1):
        for verbose in range(4):
            text = udp_app(53, 40000, message[:cut], verbose, length=len(message))
            assert text is not None
            if cut == len(message):
                assert text.endswith(f"A 1.2.3.4 ({len(message)})")
            else:
                assert text.endswith((" [|domain]", f" ({len(message)})")) and (cut < 12 or text.startswith("7-"))


def test_other_ports_are_left_to_the_caller() -> None:
    assert udp_app(40000, 9999, b"\x00" * 40, 0) is None
    assert udp_app(5355, 40000, b"\x00" * 40, 0) is None  # LLMNR: tcpdump 4.99 prints "UDP, length 40"
    assert tcp_app(40000, 443, b"\x16\x03\x01\x00\x05hello", 0) is None  # TLS: nothing after "length N"
    assert tcp_app(40000, 22, b"\x00\x00\x01\x0c", 0) is None


def test_addresses_print_in_tcpdumps_ipv6_form() -> None:
    """AAAA records use the same compressed form as tcpdump (IPv4-mapped tails in dotted quads)."""
    from scapy.all import DNS, DNSQR, DNSRR

    for address, printed in (
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("::1", "::1"),
        ("fe80:0:0:0:1:0:0:1", "fe80::1:0:0:1"),
        ("2001:db8:0:0:1::", "2001:db8:0:0:1::"),
    ):
        message = bytes(DNS(qr=1, id=1, ra=1, qd=DNSQR(qname="a."), an=DNSRR(rrname="a.", type="AAAA", rdata=address)))
        assert udp_app(53, 1, message, 0) == f"1 1/0/0 AAAA {printed} ({len(message)})"

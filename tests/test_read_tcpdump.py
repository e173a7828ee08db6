"""`afpacket read FILE [EXPRESSION]` with tcpdump's options prints what `tcpdump -n -r` prints, on a file of
real traffic made over a private veth pair (tcpdump is the witness: the same lines, byte for byte)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ping

from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]


@pytest.fixture
def core() -> str:
    """Overrides conftest's per-core fixture: reading a file never touches a ring, so once is enough."""
    return "none"


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, *args], capture_output=True, text=True, timeout=timeout, encoding="latin-1")


def tcpdump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tcpdump", *args], capture_output=True, text=True, timeout=60, encoding="latin-1")


def start_tcpdump(*args: str) -> subprocess.Popen[str]:
    td = subprocess.Popen(["tcpdump", "--immediate-mode", "-l", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    assert td.stderr is not None
    while "listening on" not in td.stderr.readline():
        pass
    return td


HTTP_PORT = 8080  # tcpdump decodes HTTP on 80 and 8080

PING6 = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
for seq in range(1, int(sys.argv[2]) + 1):
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4242, seq) + bytes(range(24)), (sys.argv[1], 0))
    time.sleep(0.1)
"""


def _tunnel_and_tag_frames(net: VethPair) -> list[bytes]:
    """VLAN, QinQ and GRE frames (the kernel here has no 8021q or GRE module: sent through a packet socket)."""
    from scapy.layers.inet import GRE, ICMP, IP, UDP
    from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

    eth = Ether(src=net.inner_mac, dst=net.outer_mac)
    frames = [
        eth / Dot1Q(vlan=100, prio=3) / IP(src=net.inner_ip, dst=net.outer_ip) / UDP(sport=5353, dport=7) / b"tag",
        eth / Dot1AD(vlan=20) / Dot1Q(vlan=200) / IP(src=net.inner_ip, dst=net.outer_ip) / ICMP(id=7, seq=1),
        eth / IP(src=net.inner_ip, dst=net.outer_ip) / GRE(key_present=1, key=42)
        / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(id=9, seq=2),
    ]
    return [bytes(f) for f in frames]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A file of real traffic over a private veth pair written by tcpdump: pings and their replies, UDP to
    a closed port (and the ICMP errors), a TCP connection with data, HTTP (python's http.server and curl),
    DNS (dnsmasq answering dig), IPv6 with neighbour discovery, ARP, and VLAN/QinQ/GRE frames."""
    path = tmp_path_factory.mktemp("mixed") / "mixed.pcap"
    with VethPair("aftd") as net:
        ip6_out, ip6_in = "fd00:af8::1", "fd00:af8::2"
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{net.outer}.disable_ipv6=0"], check=True)
        subprocess.run(["ip", "-6", "addr", "add", f"{ip6_out}/64", "dev", net.outer, "nodad"], check=True)
        net.exec("sysctl", "-qw", f"net.ipv6.conf.{net.inner}.disable_ipv6=0")
        net.exec("ip", "-6", "addr", "add", f"{ip6_in}/64", "dev", net.inner, "nodad")
        dns = subprocess.Popen(["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                                f"--listen-address={net.outer_ip}", "--port=53", "--address=/example.com/192.0.2.10",
                                "--mx-host=example.com,mail.example.com,10"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        web = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", net.outer_ip, str(HTTP_PORT)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            td = start_tcpdump("-i", net.outer, "-w", str(path))
            ping(net, 3)
            net.exec(sys.executable, "-c", PING6, ip6_out, "2")
            server = socket.socket()
            server.bind((net.outer_ip, 0))
            server.listen()
            port = server.getsockname()[1]
            net.exec(sys.executable, "-c", f"""
import socket, time
s = socket.create_connection(({net.outer_ip!r}, {port}))
s.sendall(b"hello, tcpdump\\n" * 3)
time.sleep(0.2)
s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in (1, 30, 300):
    u.sendto(b"u" * n, ({net.outer_ip!r}, 9))
    time.sleep(0.05)
""")
            conn, _ = server.accept()
            conn.settimeout(2)
            while conn.recv(4096):
                pass
            conn.close()
            server.close()
            net.exec("curl", "-s", "-o", "/dev/null", f"http://{net.outer_ip}:{HTTP_PORT}/")
            for name, kind in (("example.com", "A"), ("example.com", "MX"), ("nothing.example.org", "A")):
                net.exec("dig", "+tries=1", "+time=1", f"@{net.outer_ip}", name, kind, check=False)
            net.send(_tunnel_and_tag_frames(net))
            time.sleep(0.5)
            td.send_signal(signal.SIGINT)
            td.communicate(timeout=20)
        finally:
            for proc in (dns, web):
                proc.terminate()
                proc.wait(timeout=10)
    text = tcpdump("-n", "-r", str(path)).stdout
    for seen in ("HTTP: GET / HTTP/1.1", "A? example.com.", "MX? example.com.", "A? nothing.example.org.",
                 "neighbor solicitation", "ICMP6, echo request", "GREv0", "udp port 9 unreachable", "Flags [S]"):
        assert seen in text, f"the corpus lacks {seen!r}"
    yield path


READ_OPTIONS = [
    [], ["-e"], ["-t"], ["-tt"], ["-ttt"], ["-tttt"], ["-ttttt"], ["-#"], ["-c", "4"], ["-q"], ["-v"], ["-vv"],
    ["-vvv"], ["-S"], ["-x"], ["-xx"], ["-X"], ["-XX"], ["-A"], ["-tt", "--time-stamp-precision", "nano"],
    ["-nn", "-e", "-tt"], ["-e", "-v", "-X"], ["-v", "-K"], ["-vv", "-K"],
]


@pytest.mark.parametrize("options", READ_OPTIONS, ids=lambda o: " ".join(o) or "plain")
def test_read_prints_what_tcpdump_prints(mixed: Path, options: list[str]) -> None:
    ours = run("read", str(mixed), *options)
    theirs = tcpdump("-n", "-r", str(mixed), *options)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()
    assert len(ours.stdout.splitlines()) >= (4 if "-c" in options else 30)


FILTERS = [["icmp"], ["tcp", "and", "port", "not", "22"], ["udp", "or", "arp"], ["port", "53"], ["vlan"],
           ["proto", "gre"], ["ip6"], ["tcp[tcpflags]", "&", "tcp-syn", "!=", "0"]]


@pytest.mark.parametrize("options", [[], ["-v"], ["-e"]], ids=lambda o: " ".join(o) or "plain")
@pytest.mark.parametrize("expression", FILTERS, ids=" ".join)
def test_read_filters_select_what_tcpdump_selects(mixed: Path, options: list[str], expression: list[str]) -> None:
    ours = run("read", str(mixed), *options, *expression)
    theirs = tcpdump("-n", "-r", str(mixed), *options, *expression)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines() == theirs.stdout.splitlines()
    assert ours.stdout  # every expression matches something in this file


def test_read_count_and_dash_r(mixed: Path) -> None:
    for expression in (["icmp"], ["udp"], []):
        ours = run("read", "--count", "-r", str(mixed), *expression)
        theirs = tcpdump("-n", "--count", "-r", str(mixed), *expression)
        assert ours.stdout == theirs.stdout and ours.stdout.endswith("packets\n")


def test_read_filter_errors_clearly(mixed: Path) -> None:
    r = run("read", str(mixed), "port", "notaport")
    assert r.returncode == 1 and "bad filter expression" in r.stderr and "Traceback" not in r.stderr
    r = run("read", str(mixed), "-tttttt")
    assert r.returncode == 2 and "-ttttt" in r.stderr


def test_read_filter_file(mixed: Path, tmp_path: Path) -> None:
    f = tmp_path / "filter"
    f.write_text("# only the echo traffic\nicmp  # and nothing else\n")
    ours = run("read", str(mixed), "-F", str(f))
    theirs = tcpdump("-n", "-r", str(mixed), "-F", str(f))
    assert ours.stdout == theirs.stdout and ours.stdout



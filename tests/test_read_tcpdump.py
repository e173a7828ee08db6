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

from afpacket.savefile import open_reader
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


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A file of real traffic over a private veth pair written by tcpdump: pings and their replies, UDP to
    a closed port (and the ICMP errors), a TCP connection with data, ARP."""
    path = tmp_path_factory.mktemp("mixed") / "mixed.pcap"
    with VethPair("aftd") as net:
        td = start_tcpdump("-i", net.outer, "-w", str(path))
        ping(net, 3)
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
        time.sleep(0.5)
        td.send_signal(signal.SIGINT)
        td.communicate(timeout=20)
    assert sum(1 for _ in open_reader(str(path))) >= 15
    yield path


READ_OPTIONS = [
    [], ["-e"], ["-t"], ["-tt"], ["-ttt"], ["-tttt"], ["-ttttt"], ["-#"], ["-c", "4"], ["-q"], ["-v"], ["-S"],
    ["-x"], ["-xx"], ["-X"], ["-XX"], ["-A"], ["-tt", "--time-stamp-precision", "nano"], ["-nn", "-e", "-tt"],
]


@pytest.mark.parametrize("options", READ_OPTIONS, ids=lambda o: " ".join(o) or "plain")
@pytest.mark.parametrize("expression", [[], ["icmp"], ["tcp", "and", "port", "not", "22"], ["udp", "or", "arp"]],
                         ids=lambda e: " ".join(e) or "all")
def test_read_prints_what_tcpdump_prints(mixed: Path, options: list[str], expression: list[str]) -> None:
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



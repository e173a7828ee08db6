"""`afpacket capture`, `afpacket list` and `afpacket demo`, run as a user would, beside tcpdump."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from conftest import udp_frame

from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]


def start(*args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([*AFPACKET, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    while True:  # "listening on ..." once the ring is set up and bound
        line = p.stderr.readline()
        assert line, "afpacket capture ended before it was listening"
        if "listening on" in line:
            return p


def test_capture_lines_match_tcpdump_and_summary_counts() -> None:
    with VethPair("afpc", addresses=False) as net:  # no addresses: the kernel sends no ICMP replies
        _compare_with_tcpdump(net)


def _compare_with_tcpdump(net: VethPair) -> None:
    frames = [udp_frame(net.outer_mac, net.inner_mac, b"x" * n, sport=5000 + n) for n in (1, 10, 100)]
    td = subprocess.Popen(["tcpdump", "-n", "-l", "--immediate-mode", "-i", net.outer, "-c", "3", "udp"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert td.stderr is not None
    while "listening on" not in td.stderr.readline():
        pass
    p = start("capture", "-i", net.outer, "-c", "3", "--tpacket-version", "2")
    net.send(frames)
    out, err = p.communicate(timeout=20)
    td_out, _ = td.communicate(timeout=20)
    assert p.returncode == 0, err
    ours = [line.split(" ", 1)[1] for line in out.splitlines()]
    theirs = [line.split(" ", 1)[1] for line in td_out.splitlines()]
    assert ours == theirs and len(ours) == 3
    assert "3 packets captured" in err
    assert "3 packets received by filter" in err
    assert "0 packets dropped by kernel" in err


def test_ctrl_c_prints_summary(net: VethPair) -> None:
    p = start("capture", "-i", net.outer, "-q")
    net.send([udp_frame(net.outer_mac, net.inner_mac, b"y")] * 5)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert len(out.splitlines()) >= 5  # -q: tcpdump's short lines, one per packet
    captured = int(err.split(" packets captured")[0].split()[-1])
    assert captured >= 5  # plus the kernel's ICMP replies, if any
    assert "Traceback" not in err


def test_duration_stops_an_idle_capture(net: VethPair) -> None:
    t = time.monotonic()
    r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "--duration", "0.5"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0
    assert time.monotonic() - t < 10
    assert "0 packets captured" in r.stderr


def test_missing_interface_is_one_clear_line() -> None:
    r = subprocess.run([*AFPACKET, "capture", "-i", "nosuch0"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "no interface named 'nosuch0'" in r.stderr
    assert "Traceback" not in r.stderr


def test_list_shows_interfaces_like_tcpdump_d(net: VethPair) -> None:
    r = subprocess.run([*AFPACKET, "list"], capture_output=True, text=True, timeout=20, check=True)
    names = [line.split(".", 1)[1].split(" ")[0] for line in r.stdout.splitlines()]
    # libpcap's order: up and running interfaces, then any, then loopback and what is down
    assert net.outer in names and "lo" in names and names.index(net.outer) < names.index("any") < names.index("lo")
    r2 = subprocess.run([*AFPACKET, "capture", "-D"], capture_output=True, text=True, timeout=20, check=True)
    assert r2.stdout == r.stdout


def test_demo_runs_and_cleans_up(core: str) -> None:
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    r = subprocess.run([*AFPACKET, "demo", "-n", "20000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"ring kernels: {core} " in r.stdout  # the command ran the core this test is for
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith("V")]
    assert [row[0] for row in rows] == ["V1", "V2", "V3"]
    for row in rows:
        assert int(row[1]) + int(row[3]) == 20000  # captured + dropped
        assert int(row[2]) == int(row[1])  # every captured frame intact
    after = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert after == before

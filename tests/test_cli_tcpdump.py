"""tcpdump's options on `afpacket capture` and `afpacket read`, each checked against tcpdump itself on the same
file or the same traffic (tcpdump is the witness: same lines, same files)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import udp_frame

from afpacket.savefile import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, open_reader
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, *args], capture_output=True, text=True, timeout=timeout, encoding="latin-1")


def tcpdump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tcpdump", *args], capture_output=True, text=True, timeout=60, encoding="latin-1")


def start(*args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([*AFPACKET, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    header = ""
    while True:
        line = p.stderr.readline()
        assert line, p.stderr.read()
        header += line
        if "listening on" in line or "capturing on" in line:
            p.header = header  # type: ignore[attr-defined]
            return p


def after_time(text: str) -> list[str]:
    """The lines without their timestamps (tcpdump adds an empty line when SIGINT ends a live capture)."""
    return [line.split(" ", 1)[1] for line in text.splitlines() if line]


def start_tcpdump(*args: str) -> subprocess.Popen[str]:
    td = subprocess.Popen(["tcpdump", "--immediate-mode", "-l", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    assert td.stderr is not None
    while "listening on" not in td.stderr.readline():
        pass
    return td


def test_list_is_truthful_like_tcpdump() -> None:
    with VethPair("afls", addresses=False) as net:
        ours = net.exec(*AFPACKET, "list").stdout.splitlines()
        theirs = net.exec("tcpdump", "-D").stdout.splitlines()
    ours_named = [line.split(".", 1)[1] for line in ours]
    theirs_named = [line.split(".", 1)[1] for line in theirs]
    # tcpdump also lists devices a packet socket cannot open (nflog, dbus, ...); ours in the same order
    assert [t for t in theirs_named if t.split(" ")[0] in {o.split(" ")[0] for o in ours_named}] == ours_named
    assert f"{net.inner} [Up, Running, Connected]" in ours_named


def test_list_data_link_types_like_tcpdump() -> None:
    for iface in ("lo", "any"):
        ours, theirs = run("capture", "-i", iface, "-L"), tcpdump("-i", iface, "-L")
        assert (ours.stdout, ours.stderr) == (theirs.stdout, theirs.stderr) and "types for" in ours.stderr


def test_default_interface_is_tcpdumps() -> None:
    with VethPair("afdf", addresses=False) as net:
        r = net.exec(*AFPACKET, "capture", "--duration", "0.3", "-q")
        theirs = net.exec("timeout", "-s", "INT", "0.5", "tcpdump", "-q", check=False)
    assert f"listening on {net.inner}," in r.stderr
    assert f"listening on {net.inner}," in theirs.stderr


def _loopback_udp(port: int, count: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        s.sendto(b"L" * (i + 1), ("127.0.0.1", port))
        time.sleep(0.02)
    s.close()


@pytest.mark.parametrize("iface", ["lo", "any"])
def test_loopback_packets_print_once_like_tcpdump(iface: str) -> None:
    port = 40000 + os.getpid() % 20000
    expr = ["udp", "dst", "port", str(port)]
    td = start_tcpdump("-n", "-i", iface, *expr)
    p = start("capture", "-i", iface, *expr)
    _loopback_udp(port, 4)
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    td.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    td_out, _ = td.communicate(timeout=20)
    ours = after_time(out)
    theirs = after_time(td_out)
    assert len(ours) == 4 and ours == theirs
    if iface == "any":
        assert all(line.startswith("lo    In  IP 127.0.0.1.") for line in ours)
    assert "4 packets captured" in err


def _send_out_of(iface: str, frames: list[bytes]) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for f in frames:
        s.send(f)
    s.close()


@pytest.mark.parametrize("direction", ["in", "out", "inout"])
def test_direction_like_tcpdump(direction: str) -> None:
    with VethPair("afdq", addresses=False) as net:
        incoming = [udp_frame(net.outer_mac, net.inner_mac, b"i" * 10, sport=1111)] * 3
        outgoing = [udp_frame(net.inner_mac, net.outer_mac, b"o" * 10, sport=2222)] * 2
        td = start_tcpdump("-n", "-i", net.outer, "-Q", direction, "udp")
        p = start("capture", "-i", net.outer, "-Q", direction, "udp")
        net.send(incoming)
        _send_out_of(net.outer, outgoing)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        td.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
        td_out, _ = td.communicate(timeout=20)
    ours = after_time(out)
    theirs = after_time(td_out)
    want = {"in": 3, "out": 2, "inout": 5}[direction]
    assert len(ours) == want and sorted(ours) == sorted(theirs)


def test_any_lines_and_file_carry_interface_and_direction(tmp_path: Path) -> None:
    with VethPair("afay", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, b"a" * n, sport=3000 + n) for n in (5, 6, 7)]
        td = start_tcpdump("-n", "-i", "any", "udp", "and", "src", "port", "3005", "or", "src", "port", "3006",
                           "or", "src", "port", "3007")
        path = tmp_path / "any.pcap"
        p = start("capture", "-i", "any", "-c", "3", "--print", "-w", str(path), "udp", "and", "src", "port", "3005",
                  "or", "src", "port", "3006", "or", "src", "port", "3007")
        net.send(frames)
        out, _ = p.communicate(timeout=20)
        time.sleep(0.3)
        td.send_signal(signal.SIGINT)
        td_out, _ = td.communicate(timeout=20)
        ours = after_time(out)
        theirs = after_time(td_out)
        assert len(ours) == 3 and ours == theirs, (out, td_out)
        assert all(line.startswith(f"{net.outer} In  IP ") for line in ours)
        assert open_reader(str(path)).linktype == LINKTYPE_LINUX_SLL2
        # the file reads the same in tcpdump and in afpacket read, names included (the interface still exists)
        assert [line.split(" ", 1)[1] for line in tcpdump("-n", "-r", str(path)).stdout.splitlines()] == ours
        assert [line.split(" ", 1)[1] for line in run("read", str(path)).stdout.splitlines()] == ours


def test_y_selects_cooked_v1(tmp_path: Path) -> None:
    with VethPair("afy1", addresses=False) as net:
        path = tmp_path / "v1.pcap"
        p = start("capture", "-i", "any", "-y", "LINUX_SLL", "-c", "2", "-w", str(path), "udp", "port", "9")
        net.send([udp_frame(net.outer_mac, net.inner_mac, b"y")] * 2)
        p.communicate(timeout=20)
    assert open_reader(str(path)).linktype == LINKTYPE_LINUX_SLL
    assert len(tcpdump("-n", "-r", str(path)).stdout.splitlines()) == 2
    r = run("capture", "-i", "lo", "-y", "LINUX_SLL2")
    assert r.returncode == 1 and "-L" in r.stderr


def test_sigusr1_prints_interim_stats_and_the_file_stays_whole(tmp_path: Path) -> None:
    with VethPair("afus", addresses=False) as net:
        path = tmp_path / "usr1.pcap"
        p = start("capture", "-i", net.outer, "-w", str(path), "udp")
        net.send([udp_frame(net.outer_mac, net.inner_mac, b"1" * 20)] * 5)
        time.sleep(0.5)
        p.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        assert p.poll() is None  # still capturing
        net.send([udp_frame(net.outer_mac, net.inner_mac, b"2" * 20)] * 5)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "afpacket: 5 packets captured, 5 packets received by filter, 0 packets dropped by kernel" in err
    assert "10 packets captured" in err
    assert len(tcpdump("-n", "-r", str(path)).stdout.splitlines()) == 10


def test_sighup_ends_cleanly_with_the_summary(tmp_path: Path) -> None:
    with VethPair("afhu", addresses=False) as net:
        path = tmp_path / "hup.pcap"
        p = start("capture", "-i", net.outer, "-w", str(path), "udp")
        net.send([udp_frame(net.outer_mac, net.inner_mac, b"h")] * 4)
        time.sleep(0.5)
        p.send_signal(signal.SIGHUP)
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0 and "4 packets captured" in err
    assert sum(1 for _ in open_reader(str(path))) == 4


def test_stats_json_and_snaplen_zero_and_packet_buffered_printing(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    with VethPair("afsj", addresses=False) as net:
        p = start("capture", "-i", net.outer, "-s", "0", "-U", "-c", "3", "--stats-json", str(stats), "udp")
        net.send([udp_frame(net.outer_mac, net.inner_mac, b"s" * 30)] * 3)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0 and len(out.splitlines()) == 3
    assert "snapshot length 262144 bytes" in p.header  # type: ignore[attr-defined]
    assert "3 packets captured" in err
    summary = json.loads(stats.read_text())
    assert summary["captured"] == 3 and summary["received_by_filter"] == 3 and summary["dropped_by_kernel"] == 0
    assert summary["interface"] == net.outer and summary["command"] == "capture"


def _run_on_a_terminal(args: list[str], feed: callable) -> str:  # type: ignore[valid-type]
    """Run afpacket with stderr on a pseudo-terminal; returns what the terminal showed."""
    master, slave = pty.openpty()
    p = subprocess.Popen([*AFPACKET, *args], stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    shown = b""
    fed = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        if not fed and b"capturing on" in shown:
            feed()
            fed = True
        if p.poll() is not None and not ready:
            break
    p.wait(timeout=20)
    os.close(master)
    return shown.decode("latin-1")


def test_live_progress_on_a_terminal_only(tmp_path: Path) -> None:
    with VethPair("afpg", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, b"p" * 10)] * 20

        def feed() -> None:
            for _ in range(4):
                net.send(frames)
                time.sleep(0.3)

        shown = _run_on_a_terminal(["capture", "-i", net.outer, "-c", "80", "-w", str(tmp_path / "a.pcap"), "udp"],
                                   feed)
        assert "Got " in shown and "80 packets captured" in shown
        quiet = _run_on_a_terminal(["capture", "-i", net.outer, "-q", "-c", "80", "-w", str(tmp_path / "b.pcap"),
                                    "udp"], feed)
        assert "Got " not in quiet and "80 packets captured" in quiet
        p = start("capture", "-i", net.outer, "-c", "20", "-w", str(tmp_path / "c.pcap"), "udp")
        net.send(frames)
        _, err = p.communicate(timeout=20)
        assert "Got " not in err and "\r" not in err  # never on a pipe


def test_unknown_option_values_are_usage_errors() -> None:
    for args in (["-Q", "sideways"], ["-s", "-1"], ["-y", "NOPE", "-i", "lo"]):
        r = run("capture", *args)
        assert r.returncode in (1, 2) and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("options", [["-e"], ["-v"], ["-q"], ["-x"], ["-XX"], ["-A"], ["-#"], ["-vv", "-e", "-X"]],
                         ids=" ".join)
def test_live_printing_options_like_tcpdump(options: list[str]) -> None:
    """The same traffic seen by tcpdump and by afpacket capture, with -t so the lines compare whole."""
    with VethPair("aflp", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, bytes(range(n)), sport=6000 + n) for n in (3, 40, 200)]
        td = start_tcpdump("-n", "-t", *options, "-i", net.outer, "udp")
        p = start("capture", "-t", *options, "-i", net.outer, "udp")
        net.send(frames)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        td.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
        td_out, _ = td.communicate(timeout=20)
    ours = [line for line in out.splitlines() if line]
    theirs = [line for line in td_out.splitlines() if line]
    assert ours == theirs and len(ours) >= 3

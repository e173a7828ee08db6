"""`afpacket send` side by side with tcpreplay 4.4 on the same files, over a private veth pair.

tcpdump on the peer end counts what arrives; both tools' own summaries (the same "Actual: ... / Rated:
... / Successful packets: ..." shape, parsed by one function) are compared with each other and with the
wall clock. Failed frames (oversized, too short) are mixed into the files, as in real captures.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

from afpacket.craft import FlowSpec
from afpacket.savefile import PcapngWriter, PcapWriter, open_reader
from afpacket.savefile.linktype import cooked_header
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-c", "from afpacket.cli import main; main()"]
# Off-link addresses: the peer's stack drops these frames without answering (no ICMP mixes in).
SRC_IP, DST_IP = "198.18.0.10", "198.18.0.20"
#: Wall-clock slack for timing checks: process start-up, and two CPUs shared with other work.
SLACK = 0.15


@pytest.fixture(scope="module")
def net() -> Iterator[VethPair]:
    if os.geteuid() != 0:
        pytest.fail("this test opens AF_PACKET sockets and makes network namespaces: run it as root")
    if shutil.which("tcpreplay") is None:
        pytest.fail("tcpreplay is missing: apt-get install tcpreplay")
    with VethPair("str") as pair:
        yield pair


# --- helpers ------------------------------------------------------------------------------------------
def afpacket(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, *args], capture_output=True, text=True, timeout=timeout)


def tcpreplay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tcpreplay", *args], capture_output=True, text=True, timeout=60)


@dataclass
class Summary:
    packets: int
    bytes: int
    seconds: float
    bps: float
    mbps: float
    pps: float
    successful: int
    failed: int
    truncated: int


def summary(text: str) -> Summary:
    """The closing summary of tcpreplay (its stdout) or afpacket send (its stderr): the last one printed."""
    actual = re.findall(r"Actual: (\d+) packets \((\d+) bytes\) sent in ([\d.]+) seconds", text)
    rated = re.findall(r"Rated: ([\d.]+) Bps, ([\d.]+) Mbps, ([\d.]+) pps", text)
    counts = {k: int(v) for k, v in re.findall(r"\t(Successful|Failed|Truncated) packets: +(\d+)", text)}
    assert actual and rated and counts, text
    (p, b, s), (bps, mbps, pps) = actual[-1], rated[-1]
    return Summary(int(p), int(b), float(s), float(bps), float(mbps), float(pps), counts["Successful"],
                   counts["Failed"], counts["Truncated"])


@dataclass
class Peer:
    frames: list[bytes]


@contextmanager
def peer(net: VethPair, tmp_path: Path, bpf: str = "udp") -> Iterator[Peer]:
    """tcpdump on the inner end (immediate mode: every frame is in the file when it stops)."""
    path = tmp_path / f"peer{time.monotonic_ns()}.pcap"
    proc = net.popen("tcpdump", "-i", net.inner, "-w", str(path), "-U", "-n", "--immediate-mode", "-B", "16384",
                     "-s", "4096", bpf, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"listening on" in line, line
    seen = Peer([])
    try:
        yield seen
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    with open(path, "rb") as f:
        seen.frames = [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]


def frames(net: VethPair, n: int, size: int = 100) -> list[bytes]:
    spec = FlowSpec(src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP, size=size)
    return spec.frames(n)


def write_pcap(path: Path, records: list[bytes], gap: float = 0.001, linktype: int = 1) -> Path:
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=65535, linktype=linktype)
        for i, f in enumerate(records):
            w.writepkt(f, 1_700_000_000 + i * gap)
    return path


def mixed(net: VethPair, tmp_path: Path, name: str = "mixed.pcap", gap: float = 0.001) -> tuple[Path, list[bytes]]:
    """10 good frames over 5 flows with an oversized (2100-byte) and a 5-byte frame among them."""
    good = [frames(net, 5)[i % 5] for i in range(10)]
    records = [*good[:3], good[0] + b"\0" * 2000, *good[3:5], good[0][:5], *good[5:]]
    return write_pcap(tmp_path / name, records, gap), good


# --- the same file through both tools -------------------------------------------------------------------
def test_failed_frames_are_counted_and_the_replay_goes_on_like_tcpreplay(net: VethPair, tmp_path: Path) -> None:
    path, good = mixed(net, tmp_path)
    with peer(net, tmp_path) as theirs:
        t = tcpreplay("-t", "-i", net.outer, str(path))
    with peer(net, tmp_path) as ours:
        a = afpacket("send", "-t", "-i", net.outer, str(path))
    assert t.returncode == 0 and a.returncode == 0, (t.stderr, a.stderr)
    ts, s = summary(t.stdout), summary(a.stderr)
    assert theirs.frames == ours.frames == good
    assert (s.packets, s.bytes, s.successful, s.failed) == (ts.packets, ts.bytes, ts.successful, ts.failed) == (
        10, 1000, 10, 2)
    assert "1      larger than MTU 1500 + 14-byte Ethernet header = 1514 bytes (2100 bytes)" in a.stderr
    assert "1      shorter than the 14-byte Ethernet header (5 bytes)" in a.stderr
    assert "Flows: 5 flows" in a.stderr and "Flows: 5 flows" in t.stdout
    assert "Traceback" not in a.stderr


def test_an_empty_record_fails_alone_where_tcpreplay_gives_up(net: VethPair, tmp_path: Path) -> None:
    good = frames(net, 4)
    path = write_pcap(tmp_path / "empty.pcap", [good[0], good[1], b"", good[2], good[3]])
    with peer(net, tmp_path) as ours:
        a = afpacket("send", "-t", "-i", net.outer, str(path))
    t = tcpreplay("-t", "-i", net.outer, str(path))
    assert t.returncode != 0 and "Invalid packet length" in t.stderr  # tcpreplay stops at the empty record
    assert a.returncode == 0, a.stderr
    assert ours.frames == good
    s = summary(a.stderr)
    assert (s.successful, s.failed) == (4, 1)
    assert "shorter than the 14-byte Ethernet header (0 bytes)" in a.stderr


def test_several_files_and_dash_r_replay_in_order(net: VethPair, tmp_path: Path) -> None:
    a_path = write_pcap(tmp_path / "a.pcap", frames(net, 3, 100))
    b_path = write_pcap(tmp_path / "b.pcap", frames(net, 4, 200))
    with peer(net, tmp_path) as theirs:
        t = tcpreplay("-t", "-i", net.outer, str(a_path), str(b_path), str(a_path))
    with peer(net, tmp_path) as ours:
        r = afpacket("send", "-t", "-i", net.outer, "-r", str(a_path), str(b_path), str(a_path))
    assert t.returncode == 0 and r.returncode == 0, r.stderr
    assert ours.frames == theirs.frames == frames(net, 3, 100) + frames(net, 4, 200) + frames(net, 3, 100)
    assert summary(r.stderr).packets == summary(t.stdout).packets == 10


def test_preload_sends_the_same_frames(net: VethPair, tmp_path: Path) -> None:
    path, good = mixed(net, tmp_path)
    with peer(net, tmp_path) as ours:
        r = afpacket("send", "-K", "-t", "-l", "2", "-i", net.outer, str(path))
    with peer(net, tmp_path) as theirs:
        t = tcpreplay("-K", "-t", "-l", "2", "-i", net.outer, str(path))
    assert r.returncode == 0, r.stderr
    assert ours.frames == theirs.frames == good * 2
    assert (summary(r.stderr).successful, summary(r.stderr).failed) == (20, 4) == (
        summary(t.stdout).successful, summary(t.stdout).failed)


def test_pcapng_with_records_cut_by_a_snaplen(net: VethPair, tmp_path: Path) -> None:
    good = frames(net, 3, 200)
    path = tmp_path / "cut.pcapng"
    with PcapngWriter(str(path)) as w:
        w.add_interface(linktype=1, snaplen=64)
        for i, f in enumerate(good * 2):
            w.write(1_700_000_000_000_000_000 + i * 1000, f[:64], len(f))
    with peer(net, tmp_path) as ours:
        r = afpacket("send", "-t", "-i", net.outer, str(path))
    with peer(net, tmp_path) as theirs:
        t = tcpreplay("-t", "-i", net.outer, str(path))
    assert r.returncode == 0, r.stderr
    assert ours.frames == theirs.frames == [f[:64] for f in good * 2]  # both send what was captured
    s, ts = summary(r.stderr), summary(t.stdout)
    assert (s.packets, s.bytes) == (ts.packets, ts.bytes) == (6, 384)
    # Ours counts the frames that are shorter than they were on the wire; tcpreplay counts short writes.
    assert (s.truncated, ts.truncated) == (6, 0)


# --- timing ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], 1.0),  # original timing: 21 frames 50 ms apart
        (["-x", "2"], 0.5),
        (["--multiplier", "4"], 0.25),
        (["-p", "40"], 0.5),  # 20 intervals of 25 ms
        (["-M", "0.8"], 0.2),  # 21 frames of 1000 bytes at 0.8 Mbit/s: 10 ms each
    ],
)
def test_timing_against_the_wall_clock_and_tcpreplay(
    net: VethPair, tmp_path: Path, args: list[str], expected: float
) -> None:
    path = write_pcap(tmp_path / "timed.pcap", [frames(net, 3, 1000)[i % 3] for i in range(21)], gap=0.05)
    t0 = time.monotonic()
    r = afpacket("send", *args, "-i", net.outer, str(path))
    wall = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    ours = summary(r.stderr)
    assert ours.successful == 21
    assert expected - 0.02 <= ours.seconds <= expected + SLACK, ours
    assert expected <= wall <= expected + 2.0  # includes the interpreter's start-up
    theirs = summary(tcpreplay(*args, "-i", net.outer, str(path)).stdout)
    # tcpreplay's -M also waits out the last frame's own transmission time (one frame, 10 ms, more).
    assert abs(ours.seconds - theirs.seconds) <= 0.02 + SLACK / 2, (ours, theirs)
    if args[:1] in (["-p"], ["-M"]):
        rate = float(args[1])
        measured = ours.pps * 20 / 21 if args[0] == "-p" else ours.mbps * 20 / 21
        assert rate * 0.9 <= measured <= rate * 1.1, ours


def test_limit_counts_sent_packets_as_tcpreplay_does(net: VethPair, tmp_path: Path) -> None:
    path, good = mixed(net, tmp_path)
    with peer(net, tmp_path) as ours:
        r = afpacket("send", "-t", "-l", "3", "-L", "17", "-i", net.outer, str(path))
    with peer(net, tmp_path) as theirs:
        t = tcpreplay("-t", "-l", "3", "-L", "17", "-i", net.outer, str(path))
    assert r.returncode == 0, r.stderr
    assert ours.frames == theirs.frames == (good * 2)[:17]
    assert summary(r.stderr).successful == summary(t.stdout).successful == 17


def test_duration_ends_an_endless_loop(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    with peer(net, tmp_path) as ours:
        t0 = time.monotonic()
        r = afpacket("send", "-l", "0", "-p", "100", "--duration", "1", "-i", net.outer, str(path))
        wall = time.monotonic() - t0
    theirs = summary(tcpreplay("-l", "0", "-p", "100", "--duration", "1", "-i", net.outer, str(path)).stdout)
    assert r.returncode == 0, r.stderr
    s = summary(r.stderr)
    assert 1.0 <= wall <= 3.0
    assert 1.0 - 0.02 <= s.seconds <= 1.0 + SLACK
    assert len(ours.frames) == s.successful
    assert abs(s.successful - theirs.successful) <= 3, (s, theirs)  # 101 each: one at 0 s, then 100 per second
    assert abs(s.failed - theirs.failed) <= 3


def test_loops_with_a_delay_between_them(net: VethPair, tmp_path: Path) -> None:
    path, good = mixed(net, tmp_path)
    with peer(net, tmp_path) as ours:
        r = afpacket("send", "-t", "-l", "3", "--loopdelay-ms", "300", "-i", net.outer, str(path))
    theirs = summary(tcpreplay("-t", "-l", "3", "--loopdelay-ms", "300", "-i", net.outer, str(path)).stdout)
    assert r.returncode == 0, r.stderr
    s = summary(r.stderr)
    assert ours.frames == good * 3
    assert (s.successful, s.failed) == (theirs.successful, theirs.failed) == (30, 6)
    assert 0.6 <= s.seconds <= 0.6 + SLACK and abs(s.seconds - theirs.seconds) <= SLACK


def test_loops_with_original_timing_follow_each_other(net: VethPair, tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "timed.pcap", frames(net, 5), gap=0.05)  # 0.2 s per pass
    r = afpacket("send", "-l", "3", "-i", net.outer, str(path))
    theirs = summary(tcpreplay("-l", "3", "-i", net.outer, str(path)).stdout)
    s = summary(r.stderr)
    assert s.successful == 15
    assert 0.6 - 0.02 <= s.seconds <= 0.6 + SLACK and abs(s.seconds - theirs.seconds) <= SLACK


# --- cooked and raw-IP captures become Ethernet frames -----------------------------------------------
def test_cooked_captures_are_rebuilt_as_ethernet(net: VethPair, tmp_path: Path) -> None:
    good = frames(net, 4)
    sll = [cooked_header(0, 1, f[6:12], 0x0800) + f[14:] for f in good]
    sll2 = [f[12:14] + b"\0\0" + (7).to_bytes(4, "big") + b"\x00\x01\x00\x06" + f[6:12] + b"\0\0" + f[14:]
            for f in good]
    raw = [f[14:] for f in good]
    null = [(2).to_bytes(4, "little") + f[14:] for f in good]  # BSD loopback, AF_INET in the writer's order
    files = [
        write_pcap(tmp_path / "sll.pcap", sll, linktype=113),
        write_pcap(tmp_path / "sll2.pcap", sll2, linktype=276),
        write_pcap(tmp_path / "raw.pcap", raw, linktype=101),
        write_pcap(tmp_path / "null.pcap", null, linktype=0),
    ]
    with peer(net, tmp_path) as seen:
        r = afpacket("send", "-t", "-i", net.outer, "--dst-mac", net.inner_mac, *map(str, files))
    assert r.returncode == 0, r.stderr
    s = summary(r.stderr)
    assert (s.successful, s.failed) == (16, 0)
    assert "Rebuilt packets:           16" in r.stderr
    # SLL and SLL2 carry the sender's address: it stays the source; raw IP and loopback get the interface's.
    assert seen.frames == good * 4


def test_rebuilt_frames_take_the_given_addresses(net: VethPair, tmp_path: Path) -> None:
    good = frames(net, 2)
    sll = [cooked_header(4, 1, bytes.fromhex("020000000001"), 0x0800) + f[14:] for f in good]
    path = write_pcap(tmp_path / "sll.pcap", sll, linktype=113)
    with peer(net, tmp_path, "udp") as seen:
        r = afpacket("send", "-t", "-i", net.outer, "--src-mac", "02:00:00:00:00:99", str(path))
    assert r.returncode == 0, r.stderr
    assert [f[:12].hex() for f in seen.frames] == ["ffffffffffff" + "020000000099"] * 2  # default: broadcast
    assert [f[12:] for f in seen.frames] == [f[12:] for f in good]


def test_a_link_type_that_cannot_become_ethernet_is_refused(net: VethPair, tmp_path: Path) -> None:
    good = frames(net, 2)
    ok = write_pcap(tmp_path / "ok.pcap", good)
    wifi = write_pcap(tmp_path / "wifi.pcap", [b"\x08\x00" + bytes(30)], linktype=105)
    with peer(net, tmp_path) as seen:
        r = afpacket("send", "-t", "-i", net.outer, str(ok), str(wifi))
    assert r.returncode == 1
    assert "wifi.pcap: link type 105 cannot be replayed as Ethernet frames" in r.stderr
    assert "Traceback" not in r.stderr
    assert seen.frames == []  # checked before anything was sent


def test_a_cooked_frame_with_no_ethernet_form_fails_but_not_silently(net: VethPair, tmp_path: Path) -> None:
    can = [cooked_header(0, 280, b"", 0x000C) + bytes(16)] * 3  # SocketCAN frames in a cooked capture
    path = write_pcap(tmp_path / "can.pcap", can, linktype=113)
    r = afpacket("send", "-t", "-i", net.outer, str(path))
    assert r.returncode == 1
    assert "3      not rebuilt as Ethernet: cooked protocol 0x000c has no Ethernet equivalent" in r.stderr
    assert "nothing was sent: all 3 packets failed" in r.stderr


# --- what the user sees -----------------------------------------------------------------------------------
def test_stats_json_holds_the_summary(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    out = tmp_path / "stats.json"
    r = afpacket("send", "-t", "-l", "2", "-i", net.outer, "--stats-json", str(out), str(path))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    s = summary(r.stderr)
    assert (data["packets"], data["bytes"], data["successful"], data["failed"], data["truncated"]) == (
        s.packets, s.bytes, s.successful, s.failed, s.truncated) == (20, 2000, 20, 4, 0)
    assert data["seconds"] == s.seconds
    assert data["bytes_per_second"] == pytest.approx(s.bps, abs=0.06)
    assert data["mbps"] == pytest.approx(s.mbps, abs=0.006)
    assert data["pps"] == pytest.approx(s.pps, abs=0.006)
    assert data["flows"] == 5 and data["loops"] == 2 and data["stopped_by"] is None
    assert data["failed_reasons"] == {
        "larger than MTU 1500 + 14-byte Ethernet header = 1514 bytes": {"count": 2, "sizes": [2100, 2100]},
        "shorter than the 14-byte Ethernet header": {"count": 2, "sizes": [5, 5]},
    }
    r = afpacket("send", "-t", "-q", "-i", net.outer, "--stats-json", "-", str(path))
    assert json.loads(r.stdout)["packets"] == 10
    assert "warning" not in r.stderr  # -q: only the summary


def test_stats_json_to_an_unwritable_path_is_a_clear_error(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    r = afpacket("send", "-t", "-i", net.outer, "--stats-json", "/nonexistent/dir/s.json", str(path))
    assert r.returncode == 1
    assert "cannot write the statistics to /nonexistent/dir/s.json" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_replay_still_prints_the_summary(net: VethPair, tmp_path: Path, sig: signal.Signals) -> None:
    path, _ = mixed(net, tmp_path)
    out = tmp_path / "s.json"
    with peer(net, tmp_path) as seen:
        proc = subprocess.Popen([*AFPACKET, "send", "-l", "0", "-p", "200", "-i", net.outer, "--stats-json", str(out),
                                 str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        first = proc.stderr.readline()  # the first failed frame's warning: the replay (and its handlers) runs
        time.sleep(1.0)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        err = first + err
    assert proc.returncode == 0, err
    s = summary(err)
    assert f"Interrupted by {sig.name}." in err
    assert s.successful == len(seen.frames) > 100
    assert json.loads(out.read_text())["stopped_by"] == sig.name


def test_sigusr1_prints_interim_statistics_and_the_replay_goes_on(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    proc = subprocess.Popen([*AFPACKET, "send", "-l", "0", "-p", "100", "--duration", "1.5", "-i", net.outer,
                             str(path)], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first failed frame's warning: the replay (and its handlers) runs
    assert "warning" in first, first
    time.sleep(0.5)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    counts = [int(n) for n in re.findall(r"Actual: (\d+) packets", err)]
    assert len(counts) == 2 and 20 <= counts[0] < counts[1], err
    assert 145 <= summary(err).successful <= 156 and "Interrupted" not in err


def test_interim_statistics_every_n_seconds(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    args = ["-l", "0", "-p", "100", "--duration", "2", "--stats", "1", "-i", net.outer, str(path)]
    r = afpacket("send", *args)
    t = tcpreplay(*args)
    assert r.returncode == 0, r.stderr
    for text in (r.stderr, t.stdout):
        assert "Test start: " in text and "Test complete: " in text, text
        counts = [int(n) for n in re.findall(r"Actual: (\d+) packets", text)]
        # After 1 s, then the summary at 2 s (tcpreplay sometimes adds one more at 2 s, before it).
        assert len(counts) == (2 if text is r.stderr else len(counts)) and len(counts) in (2, 3), text
        assert 95 <= counts[0] <= 106 and 195 <= counts[-1] <= 206, counts


def test_stats_zero_reports_every_loop(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    r = afpacket("send", "-t", "-l", "3", "--stats", "0", "-i", net.outer, str(path))
    t = tcpreplay("-t", "-l", "3", "--stats", "0", "-i", net.outer, str(path))
    for text in (r.stderr, t.stdout):
        assert [int(n) for n in re.findall(r"Actual: (\d+) packets", text)] == [10, 20, 30], text
        assert re.findall(r"Loop \d of 3", text) == ["Loop 1 of 3", "Loop 2 of 3", "Loop 3 of 3"]


def test_verbose_prints_every_packet_sent(net: VethPair, tmp_path: Path) -> None:
    path, good = mixed(net, tmp_path)
    r = afpacket("send", "-t", "-v", "-i", net.outer, str(path))
    assert r.returncode == 0, r.stderr
    with open_reader(path) as reader:
        sent = [rec for rec in reader if 14 <= len(rec.data) <= 1514]
    assert [rec.data for rec in sent] == good
    # each line is what tcpdump -n prints for that frame (tcpdump reads the frames sent, as a file)
    sent_file = tmp_path / "sent.pcap"
    with PcapWriter(str(sent_file), linktype=1) as w:
        for rec in sent:
            w.write(rec.timestamp_ns, rec.data, rec.wire_len)
    theirs = subprocess.run(["tcpdump", "-n", "-r", str(sent_file)], capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == theirs.stdout.splitlines() and len(sent) > 0


def _on_a_terminal(args: list[str]) -> bytes:
    """Run afpacket with stderr (and stdout) on a pseudo-terminal; everything it wrote there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*AFPACKET, *args], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(master)
    return out


def test_live_progress_only_on_a_terminal_and_not_with_q(net: VethPair, tmp_path: Path) -> None:
    path, _ = mixed(net, tmp_path)
    args = ["send", "-l", "0", "-p", "200", "--duration", "1.3", "-i", net.outer, str(path)]
    shown = _on_a_terminal(args)
    updates = re.findall(rb"\r(\d+) packets \([^)]*\) in [\d.]+ s, \d+ pps, [\d.]+ Mbps, \d+ failed, loop \d+\x1b\[K",
                         shown)
    assert 3 <= len(updates) <= 7, shown  # about four a second
    counts = [int(n) for n in updates]
    assert counts == sorted(counts) and counts[-1] > 100
    assert b"\r\x1b[KActual: " in shown  # the line is erased before the summary
    quiet = _on_a_terminal([*args[:1], "-q", *args[1:]])
    assert b"\x1b[K" not in quiet and b"Actual: " in quiet
    piped = afpacket(*args)
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr and "Actual: " in piped.stderr


# --- bad input: clear errors, no traceback -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["-x", "nan"], 2, "'nan' must be a finite number > 0"),
        (["-p", "inf"], 2, "'inf' must be a finite number > 0"),
        (["-M", "-5"], 2, "'-5' must be a finite number > 0"),
        (["-p", "0"], 2, "'0' must be a finite number > 0"),
        (["--duration", "nan"], 2, "'nan' must be a finite number > 0"),
        (["--stats", "-1"], 2, "'-1' must be a finite number >= 0"),
        (["-x", "fast"], 2, "'fast' is not a number"),
        (["-l", "-1"], 2, "-1 is not in the range x>=0"),
        (["-L", "0"], 2, "0 is not in the range x>=1"),
        (["-t", "-p", "100"], 2, "give at most one of -t/--topspeed, -x/--multiplier, -p/--pps, -M/--mbps"),
        (["--dst-mac", "zz"], 2, "'zz' is not a MAC address"),
        (["{missing}"], 1, "{missing}: No such file or directory"),
        (["{notpcap}"], 1, "not a pcap or pcapng file"),
    ],
)
def test_bad_values_are_one_clear_line(
    net: VethPair, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    good = write_pcap(tmp_path / "good.pcap", frames(net, 3))
    notpcap = tmp_path / "x.txt"
    notpcap.write_text("hello, this is not a capture file")
    names = {"missing": str(tmp_path / "missing.pcap"), "notpcap": str(notpcap)}
    args = [a.format(**names) for a in args]
    with peer(net, tmp_path) as seen:
        r = afpacket("send", "-i", net.outer, str(good), *args)
    assert r.returncode == status, r.stderr
    assert message.format(**names) in r.stderr
    assert "Traceback" not in r.stderr
    assert seen.frames == []  # every file and value is checked before the first frame leaves


def test_no_file_is_a_usage_error(net: VethPair) -> None:
    r = afpacket("send", "-i", net.outer)
    assert r.returncode == 2 and "no file to replay" in r.stderr

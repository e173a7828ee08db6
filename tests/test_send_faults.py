"""Faults while sending, through `afpacket send`/`gen` and the Transmitter: long and absurd gaps in a
replayed file, signals in the middle of a wait, frames that cannot be sent, and an interface that goes
down, is deleted or moves to another network namespace while frames leave.

Traffic crosses only the veth pair each test makes (conftest's ``net``). What arrives is counted by an
afpacket Capture in the peer namespace (a child process there): its kernel count (PACKET_STATISTICS,
every frame the peer's socket was handed) must equal what the sender's summary calls sent.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from afpacket import ArgumentError, LinkDownError, TransmitError, Transmitter
from afpacket.craft import FlowSpec
from afpacket.pacing import Pacer
from afpacket.savefile import PcapngWriter, PcapWriter
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
# Off-link addresses: the peer's stack drops these frames without answering.
SRC_IP, DST_IP = "198.18.0.10", "198.18.0.20"
#: Only our frames: the kernel's own (ARP, ...) carry the same source MAC but never this destination.
OURS = f"udp and dst host {DST_IP}"

#: An afpacket Capture on the peer end: prints "ready", counts until SIGTERM (or until its interface goes
#: away), then prints the kernel's count of frames handed to the socket and of those it dropped.
COUNTER = r"""
import signal, sys, afpacket
cap = afpacket.Capture(sys.argv[1], filter=sys.argv[2], block_timeout_ms=2)
signal.signal(signal.SIGTERM, lambda *a: cap.stop())
print("ready", flush=True)
try:
    for _ in cap:
        pass
except afpacket.AfPacketError:
    pass  # the interface was deleted under the capture: the kernel's count is still there
st = cap.stats()
print(st.received, st.drops, flush=True)
"""


@dataclass
class Received:
    frames: int = -1
    drops: int = -1


@contextmanager
def peer_count(net: VethPair, expr: str = OURS) -> Iterator[Received]:
    """Count the frames that reach the inner end (filled in after the block)."""
    proc = cast("subprocess.Popen[str]", net.popen(sys.executable, "-c", COUNTER, net.inner, expr,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.communicate(timeout=10)
    got = Received()
    try:
        yield got
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    got.frames, got.drops = map(int, out.split())
    assert got.drops == 0


def frames(net: VethPair, n: int, size: int = 100) -> list[bytes]:
    spec = FlowSpec(src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP, size=size)
    return spec.frames(n)


def summary_counts(text: str) -> dict[str, int]:
    """Successful/Failed/Truncated/Retried counts of the closing summary."""
    rows = re.findall(r"\t(Successful|Failed|Truncated|Retried) packets(?: \((\w+)\))?: +(\d+)", text)
    return {f"{name} {sub}".strip(): int(v) for name, sub, v in rows}


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*AFPACKET, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def tx_counter(net: VethPair, name: str, netns: str | None = None) -> int:
    path = f"/sys/class/net/{net.outer}/statistics/{name}"
    if netns is None:
        with open(path) as f:
            return int(f.read())
    return int(net.exec("cat", path).stdout)


def wait_sending(net: VethPair, at_least: int = 50) -> None:
    """Until the outer end has sent ``at_least`` frames: the sender runs, its signal handlers are set."""
    deadline = time.monotonic() + 15
    while tx_counter(net, "tx_packets") < at_least:
        assert time.monotonic() < deadline, "the sender never started"
        time.sleep(0.02)


# --- gaps in the file, and signals during them ---------------------------------------------------------
def gap_file(net: VethPair, path: Path, gap_s: int = 2**40) -> Path:
    """Three frames 20 ms apart, then a gap of ``gap_s`` seconds (a time stamp 35,000 years ahead by
    default), then two more. pcapng with second ticks (if_tsresol 0) holds such a time stamp."""
    f = frames(net, 5)
    t0 = 1_700_000_000
    with PcapngWriter(str(path)) as w:
        w.add_interface("eth0", tsresol=9)
        for i in range(3):
            w.write(t0 * 10**9 + i * 20_000_000, f[i])
        w.add_interface("eth0", tsresol=0)
        w.write((t0 + gap_s) * 10**9, f[3], interface_id=1)
        w.write((t0 + gap_s + 1) * 10**9, f[4], interface_id=1)
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_ends_a_far_future_gap_at_once_with_the_summary(
    net: VethPair, tmp_path: Path, sig: signal.Signals
) -> None:
    path = gap_file(net, tmp_path / "gap.pcapng")
    out = tmp_path / "s.json"
    with peer_count(net) as got:
        proc = start("send", "-i", net.outer, "--stats-json", str(out), str(path))
        assert proc.stderr is not None
        warning = proc.stderr.readline()  # the capped gap is said once, before the wait begins
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        stopped_in = time.monotonic() - t0
    assert warning == (
        f"afpacket: warning: {path} packet 4 is due 1.09951e+12 s after the one before it; waiting 3600 s "
        "instead, as for every longer gap (--maxsleep MS sets the longest wait, -t ignores the time stamps)\n"
    )
    assert proc.returncode == 0, err  # as tcpdump (and tcpreplay for SIGINT): a signal is a normal end
    assert stopped_in < 1.0
    assert "Traceback" not in err
    assert summary_counts(err)["Successful"] == 3 == got.frames
    assert f"Interrupted by {sig.name}." in err
    data = json.loads(out.read_text())
    assert (data["successful"], data["stopped_by"], data["attempted"]) == (3, sig.name, 3)


def test_maxsleep_caps_every_gap_without_a_word(net: VethPair, tmp_path: Path) -> None:
    path = gap_file(net, tmp_path / "gap.pcapng")
    with peer_count(net) as got:
        t0 = time.monotonic()
        r = subprocess.run([*AFPACKET, "send", "-i", net.outer, "--maxsleep", "300", str(path)],
                           capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr  # asked for: obeyed silently, as tcpreplay does
    assert summary_counts(r.stderr)["Successful"] == 5 == got.frames
    # 2 x 20 ms, the far-future gap cut to 0.3 s, and the 1 s gap after it cut to 0.3 s as well
    m = re.search(r"sent in ([\d.]+) seconds", r.stderr)
    assert m and 0.64 <= float(m.group(1)) < 2.0, r.stderr
    assert elapsed < 5


def test_a_slow_gen_rate_waits_at_most_an_hour_and_stops_on_sighup(net: VethPair) -> None:
    with peer_count(net) as got:
        proc = start("gen", "-i", net.outer, "-c", "5", "-p", "0.00001", "--dst-mac", net.inner_mac,
                     "--src-ip", SRC_IP, "--dst-ip", DST_IP)
        assert proc.stderr is not None
        warning = proc.stderr.readline()
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=10)
    assert warning == ("afpacket: warning: at 1e-05 packets/s a packet would wait 100000 s for the one before; "
                       "each waits 3600 s instead (the longest wait)\n")
    assert proc.returncode == 0, err
    assert summary_counts(err)["Successful"] == 1 == got.frames
    assert "Interrupted by SIGHUP." in err


@pytest.mark.parametrize("core", ["any"])  # schedule arithmetic only: once, not once per core
def test_the_pacer_cuts_every_long_gap_and_keeps_the_spacing_after_it(core: str) -> None:
    capped: list[tuple[float, float]] = []
    t = Pacer(multiplier=2.0, max_gap=10.0, on_cap=lambda gap, longest: capped.append((gap, longest)))
    t.begin(100.0)
    s = 1_000_000_000
    stamps = [0, s, 2**40 * s, 2**40 * s + 4 * s, 2**70 * s]
    assert [t.deadline(60, 5 * s + ts) for ts in stamps] == pytest.approx([100.0, 100.5, 110.5, 112.5, 122.5])
    assert capped == [(pytest.approx(2**40 / 2 - 0.5), 10.0), (pytest.approx(2**70 / 2 - 2), 10.0)]
    assert t.capped == 2
    # A rate so low that every gap is too long: each is cut, none overflows.
    p = Pacer(pps=1e-300, max_gap=3.0)
    p.begin(0.5)
    assert [p.deadline() for _ in range(4)] == pytest.approx([0.5, 3.5, 6.5, 9.5])
    b = Pacer(bps=1e-300, max_gap=1.0)
    b.begin(0.0)
    assert [b.deadline(100) for _ in range(3)] == pytest.approx([0.0, 1.0, 2.0])
    with pytest.raises(ArgumentError, match=r"Pacer\(\): max_gap must be a finite number of seconds > 0, got inf"):
        Pacer(max_gap=math.inf)


REFUSED = [
    (["send", "-x", "1e-300"], "Invalid value for '-x' / '--multiplier': '1e-300' is below the minimum 1e-06 "
     "(a millionth of the captured speed)"),
    (["send", "-p", "1e-9"], "Invalid value for '-p' / '--pps': '1e-9' is below the minimum 1e-06 "
     "(one packet in 11.6 days)"),
    (["send", "-M", "1e-7"], "Invalid value for '-M' / '--mbps': '1e-7' is below the minimum 1e-06 (1 bit/s)"),
    (["send", "--maxsleep", "0"], "Invalid value for '--maxsleep': 0 is not in the range 1<=x<=1000000000000"),
    (["send", "--maxsleep", "1e3"], "Invalid value for '--maxsleep': '1e3' is not a valid integer"),
    (["send", "--loopdelay-ms", "10000000000000"],
     "Invalid value for '--loopdelay-ms': 10000000000000 is not in the range 0<=x<=1000000000000"),
    (["send", "--duration", "1e308"], "Invalid value for '--duration': '1e308' is above the maximum 1e+09"),
    (["send", "--stats", "1e308"], "Invalid value for '--stats': '1e308' is above the maximum 1e+09"),
    (["gen", "-c", "1", "-p", "1e-300"], "Invalid value for '-p' / '--pps': '1e-300' is below the minimum 1e-06"),
]


@pytest.mark.parametrize("core", ["any"])  # refused before any ring: once, not once per core
@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_rates_and_waits_that_never_end_are_refused_up_front(
    tmp_path: Path, core: str, args: list[str], message: str
) -> None:
    pcap = tmp_path / "one.pcap"
    with PcapWriter(str(pcap)) as w:
        w.write(1_000_000_000, bytes(60))
    files = [str(pcap)] if args[0] == "send" else []
    r = subprocess.run([*AFPACKET, args[0], "-i", "lo", "-q", *args[1:], *files], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


# --- frames that cannot be sent ----------------------------------------------------------------------------
def test_frames_that_cannot_be_sent_are_counted_and_the_replay_goes_on(net: VethPair, tmp_path: Path) -> None:
    good = frames(net, 4)
    records = [good[0], b"", good[1], good[0][:5], good[2], good[0] + bytes(1500), good[3], good[0] + bytes(9000)]
    path = tmp_path / "bad.pcap"
    with PcapWriter(str(path), snaplen=65535) as w:
        for i, rec in enumerate(records):
            w.write(1_700_000_000 * 10**9 + i * 1_000_000, rec)
    out = tmp_path / "s.json"
    with peer_count(net) as got:
        r = subprocess.run([*AFPACKET, "send", "-i", net.outer, "--stats-json", str(out), str(path)],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert got.frames == 4
    counts = summary_counts(r.stderr)
    assert (counts["Successful"], counts["Failed"]) == (4, 4)
    assert "\t2      shorter than the 14-byte Ethernet header (0-5 bytes)\n" in r.stderr
    assert "\t2      larger than MTU 1500 + 14-byte Ethernet header = 1514 bytes (1600-9100 bytes)\n" in r.stderr
    # the first of each reason is named as it happens, with the record
    assert f"afpacket: warning: {path} packet 2: 0-byte frame shorter than" in r.stderr
    assert f"afpacket: warning: {path} packet 6: 1600-byte frame larger than" in r.stderr
    data = json.loads(out.read_text())
    assert (data["attempted"], data["successful"], data["failed"], data["not_sent"]) == (8, 4, 4, 0)


def test_frames_the_kernel_refuses_mid_replay_are_counted_and_the_replay_goes_on(
    net: VethPair, tmp_path: Path
) -> None:
    """The MTU shrinks under a running replay: the checks made at start pass the 1000-byte frames, the
    kernel rejects them (TP_STATUS_WRONG_FORMAT); each is counted failed with the kernel's reason."""
    path = tmp_path / "big.pcap"
    with PcapWriter(str(path)) as w:
        for i, f in enumerate(frames(net, 10, 1000)):
            w.write(1_700_000_000 * 10**9 + i * 1_000_000, f)
    with peer_count(net) as got:
        proc = start("send", "-i", net.outer, "-p", "400", "-l", "0", str(path))
        wait_sending(net, 100)
        subprocess.run(["ip", "link", "set", net.outer, "mtu", "500"], check=True)
        time.sleep(0.5)
        subprocess.run(["ip", "link", "set", net.outer, "mtu", "1500"], check=True)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    counts = summary_counts(err)
    assert counts["Successful"] == got.frames >= 150  # about 300: before and after the MTU was 500
    m = re.search(r"\t(\d+) +rejected by the kernel \(EMSGSIZE: Message too long\)\n", err)
    assert m and int(m.group(1)) == counts["Failed"] >= 50, err  # about 200 in the half second at 500 B


# --- the interface goes down, is deleted, or moves away while frames leave ---------------------------
def sending_interface(net: VethPair, fault: str) -> str:
    """The interface to send on and then break. For a deletion, a macvlan interface on the outer end:
    deleting a veth end deletes its peer too, and with it the frames the peer had received but not yet
    processed, so what reached the peer could not be counted exactly; the macvlan goes alone."""
    if fault != "deleted":
        return net.outer
    name = f"{net.outer}v"
    subprocess.run(["ip", "link", "add", "link", net.outer, "name", name, "type", "macvlan", "mode", "bridge"],
                   check=True)
    with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
        f.write("1")  # no router solicitations of its own mixed into the counts
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    return name


def break_link(net: VethPair, fault: str, interface: str | None = None) -> None:
    name = interface or net.outer
    if fault == "down":
        subprocess.run(["ip", "link", "set", name, "down"], check=True)
    elif fault == "deleted":
        subprocess.run(["ip", "link", "del", name], check=True)
    else:  # moved into the peer's namespace, where the pair goes on living
        subprocess.run(["ip", "link", "set", name, "netns", net.netns], check=True)


WHAT = {"down": "went down", "deleted": "was deleted or moved to another network namespace",
        "moved": "was deleted or moved to another network namespace"}


@pytest.mark.parametrize("fault", ["down", "deleted", "moved"])
@pytest.mark.parametrize("command", ["send", "gen"])
def test_a_link_fault_mid_send_ends_with_the_exact_summary_and_one_line(
    net: VethPair, tmp_path: Path, command: str, fault: str
) -> None:
    out = tmp_path / "s.json"
    iface = sending_interface(net, fault)
    if command == "send":
        path = tmp_path / "f.pcap"
        with PcapWriter(str(path)) as w:
            for i, f in enumerate(frames(net, 20)):
                w.write(1_700_000_000 * 10**9 + i * 1_000_000, f)
        args = ["send", "-i", iface, "-p", "2000", "-l", "0", str(path)]
    else:
        args = ["gen", "-i", iface, "-c", "1000000", "-p", "2000", "--dst-mac", net.inner_mac,
                "--src-ip", SRC_IP, "--dst-ip", DST_IP]
    with peer_count(net) as got:
        proc = start(*args, "--stats-json", str(out))
        wait_sending(net, 500)
        break_link(net, fault, iface)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    data = json.loads(out.read_text())
    sent, not_sent = data["successful"], data["not_sent"]
    assert err.splitlines()[-1] == (
        f"afpacket: {iface} {WHAT[fault]} while sending; stopped after {sent} packets sent, {not_sent} queued "
        "not sent"
    )
    assert data["failed"] == not_sent
    if not_sent:
        assert data["failed_reasons"] == {f"not sent: {iface} {WHAT[fault]}": {"count": not_sent, "sizes": None}}
    if command == "send":
        assert data["attempted"] == sent + not_sent
    # "Sent" is what the kernel took. A kick already under way when the link goes down lets the kernel
    # take the frames after that moment and drop them (the interface counts them as tx_dropped): rare
    # at 2000 frames/s, where a kick carries one or a few frames.
    if fault == "deleted":  # the interface, and its counters, are gone: at most one kick's worth short
        assert got.frames <= sent <= got.frames + 256 and got.frames > 500
    else:  # the interface's own counters account for every frame taken, delivered or dropped
        netns = None if fault == "down" else net.netns
        assert sent == tx_counter(net, "tx_packets", netns) + tx_counter(net, "tx_dropped", netns)
        assert got.frames == tx_counter(net, "tx_packets", netns) > 500


def test_gen_at_top_speed_counts_what_the_kernel_took_when_the_link_goes_down(net: VethPair, tmp_path: Path) -> None:
    """At top speed a kick can be halfway through the ring when the link goes down: the kernel takes
    the rest of that kick and drops it (the interface's tx_dropped); the ones after are not sent."""
    out = tmp_path / "s.json"
    proc = start("gen", "-i", net.outer, "-c", "100000000", "--dst-mac", net.inner_mac, "-q",
                 "--stats-json", str(out))
    wait_sending(net, 10_000)
    time.sleep(0.3)
    break_link(net, "down")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    data = json.loads(out.read_text())
    assert data["successful"] == tx_counter(net, "tx_packets") + tx_counter(net, "tx_dropped") > 10_000
    assert data["not_sent"] > 0 and data["failed"] == data["not_sent"]
    assert err.splitlines()[-1].startswith(f"afpacket: {net.outer} went down while sending; stopped after ")


@pytest.mark.parametrize("fault", ["down", "deleted", "moved"])
def test_transmitter_names_the_link_fault_and_keeps_the_rest_queued(net: VethPair, fault: str) -> None:
    fl = frames(net, 8)
    with peer_count(net) as got:
        tx = Transmitter(net.outer)
        for i in range(50):
            tx.send(fl[i % 8])
        tx.flush()
        break_link(net, fault)
        for i in range(10):
            tx.send(fl[i % 8])
        with pytest.raises(LinkDownError) as e:
            tx.flush()
        assert str(e.value) == (
            f"{net.outer} {WHAT[fault]} while sending ({'ENETDOWN' if fault == 'down' else 'ENXIO'}): 50 frame(s) "
            "were sent, 10 still queued in the TX ring were not"
        )
        assert tx.fault == f"{net.outer} {WHAT[fault]}"
        st = tx.stats()
        assert (st.sent, st.pending, st.unsent, st.bytes) == (50, 10, 0, 50 * 100)
        if fault == "down":
            # Back up: the frames still queued go out with the next flush.
            subprocess.run(["ip", "link", "set", net.outer, "up"], check=True)
            tx.flush()
            tx.close()
            assert (tx.stats().sent, tx.stats().unsent) == (60, 0)
        else:
            with pytest.raises(TransmitError, match=re.escape(
                    f"10 frame(s) queued on {net.outer} were not sent: {net.outer} {WHAT[fault]}")):
                tx.close()
            st = tx.stats()
            assert (st.sent, st.pending, st.unsent, st.bytes) == (50, 0, 10, 50 * 100)
            tx.close()  # closed: nothing more to say
    assert got.frames == tx.stats().sent

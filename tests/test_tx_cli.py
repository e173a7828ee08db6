"""`afpacket gen` and `afpacket send` over a private veth pair, checked by tcpdump and tshark on the peer."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from test_tx import DST_IP, SRC_IP, rx_packets, witness

from afpacket.craft import FlowSpec
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-c", "from afpacket.cli import main; main()"]


@pytest.fixture(scope="module")
def net() -> Iterator[VethPair]:
    with VethPair("txc") as pair:
        yield pair


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, *args], capture_output=True, text=True, timeout=60)


def addressing(net: VethPair) -> list[str]:
    return ["--dst-mac", net.inner_mac, "--src-ip", SRC_IP, "--dst-ip", DST_IP]


def test_gen_sends_valid_checksums_over_n_flows(net: VethPair, tmp_path: Path) -> None:
    with witness(net, tmp_path) as peer:
        r = run("gen", "-i", net.outer, "-c", "200", "--flows", "4", "--size", "128", *addressing(net))
    assert r.returncode == 0, r.stderr
    assert "Actual: 200 packets (25600 bytes) sent in" in r.stderr
    assert "\tSuccessful packets:        200\n\tFailed packets:            0\n" in r.stderr
    assert "Flows: 4 flows" in r.stderr
    assert len(peer.frames) == 200
    tuples = set()
    for f in peer.frames:
        ip = dpkt.ethernet.Ethernet(f).data
        tuples.add((ip.src, ip.dst, ip.data.sport, ip.data.dport))
    assert len(tuples) == 4
    if shutil.which("tshark"):
        pcap = tmp_path / "gen.pcap"
        with open(pcap, "wb") as fh:
            w = dpkt.pcap.Writer(fh)
            for f in peer.frames:
                w.writepkt(f, 0)
        out = subprocess.run(
            ["tshark", "-r", str(pcap), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
             "-T", "fields", "-e", "ip.checksum.status", "-e", "udp.checksum.status"],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        assert out == ["1"] * 400  # 1 = "Good" (0 = bad, 2 = unverified) for both checksums of every frame


@pytest.mark.parametrize("version", ["1", "3"])
def test_gen_other_versions_with_qdisc_bypass_and_vlan(net: VethPair, version: str) -> None:
    before = rx_packets(net)
    r = run("gen", "-i", net.outer, "-c", "5000", "--vlan", "5", "--flows", "3", "--tpacket-version", version,
            "--qdisc-bypass", *addressing(net))
    assert r.returncode == 0, r.stderr
    assert rx_packets(net) - before == 5000


def test_gen_paced(net: VethPair) -> None:
    t0 = time.monotonic()
    r = run("gen", "-i", net.outer, "-c", "2000", "--pps", "4000", *addressing(net))
    assert r.returncode == 0, r.stderr
    m = re.search(r"Actual: 2000 packets \(120000 bytes\) sent in ([\d.]+) seconds", r.stderr)
    assert m and 0.49 <= float(m.group(1)) <= 0.6, r.stderr  # 1999 intervals of 250 µs
    assert 0.45 <= time.monotonic() - t0 < 2.0


def _write_pcap(path: Path, frames: list[bytes], gap: float) -> None:
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, f in enumerate(frames):
            w.writepkt(f, 1_700_000_000 + i * gap)


def test_send_replays_a_tcpdump_file_identically(net: VethPair, tmp_path: Path) -> None:
    # First let tcpdump write a file of crafted traffic ...
    with witness(net, tmp_path) as first:
        r = run("gen", "-i", net.outer, "-c", "300", "--flows", "5", "--size", "200", *addressing(net))
        assert r.returncode == 0, r.stderr
    recorded = tmp_path / "recorded.pcap"
    with open(recorded, "wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, f in enumerate(first.frames):
            w.writepkt(f, 1_700_000_000 + i * 1e-4)
    # ... then replay that file and compare what arrives.
    with witness(net, tmp_path) as second:
        r = run("send", "-i", net.outer, "-r", str(recorded), "--topspeed", "--loop", "2")
    assert r.returncode == 0, r.stderr
    assert "Actual: 600 packets (120000 bytes) sent" in r.stderr
    assert second.frames == first.frames * 2


def test_send_keeps_original_timing(net: VethPair, tmp_path: Path) -> None:
    frames = FlowSpec(src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP).frames(6)
    path = tmp_path / "timed.pcap"
    _write_pcap(path, frames, 0.1)  # 0.5 s from first to last
    t0 = time.monotonic()
    r = run("send", "-i", net.outer, "-r", str(path))
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "Actual: 6 packets (360 bytes) sent" in r.stderr
    assert 0.5 <= elapsed < 2.5
    t0 = time.monotonic()
    assert run("send", "-i", net.outer, "-r", str(path), "--multiplier", "10").returncode == 0
    assert time.monotonic() - t0 < elapsed - 0.3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gen", "-i", "nosuch0", "-c", "1"], "no interface named 'nosuch0'"),
        (["gen", "-i", "{outer}", "-c", "1", "--size", "1600"], "exceeds what"),
        (["send", "-i", "{outer}", "-r", "/nonexistent.pcap"], "/nonexistent.pcap"),
        (["send", "-i", "{outer}", "-r", "{notpcap}"], "not a pcap"),
    ],
)
def test_errors_are_one_line_without_traceback(net: VethPair, tmp_path: Path, args: list[str], message: str) -> None:
    notpcap = tmp_path / "x.txt"
    notpcap.write_text("hello, this is not a capture file")
    r = run(*[a.format(outer=net.outer, notpcap=notpcap) for a in args])
    assert r.returncode == 1
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_send_takes_the_file_as_an_argument_with_tcpreplay_short_options(net: VethPair, tmp_path: Path) -> None:
    frames = FlowSpec(src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP).frames(4)
    path = tmp_path / "f.pcap"
    _write_pcap(path, frames, 0.01)
    with witness(net, tmp_path) as peer:
        r = run("send", "-i", net.outer, "-t", "-l", "2", "-L", "7", "-q", str(path))
    assert r.returncode == 0, r.stderr
    assert peer.frames == (frames * 2)[:7]
    assert r.stderr.startswith("Actual: 7 packets (420 bytes) sent in ")


def test_gen_stats_json_quiet_and_the_same_summary(net: VethPair, tmp_path: Path) -> None:
    out = tmp_path / "gen.json"
    with witness(net, tmp_path) as peer:
        r = run("gen", "-i", net.outer, "-c", "500", "--flows", "3", "--size", "100", "-q", "--stats-json", str(out),
                *addressing(net))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert len(peer.frames) == 500
    assert (data["command"], data["packets"], data["bytes"], data["successful"], data["failed"], data["flows"]) == (
        "gen", 500, 50000, 500, 0, 3)
    assert f"Actual: 500 packets (50000 bytes) sent in {data['seconds']:.6f} seconds" in r.stderr
    assert f"Rated: {data['bytes_per_second']:.1f} Bps" in r.stderr and f"{data['pps']:.2f} pps" in r.stderr
    assert data["stopped_by"] is None


def test_gen_sigterm_prints_the_summary_of_what_left(net: VethPair, tmp_path: Path) -> None:
    with witness(net, tmp_path) as peer:
        proc = subprocess.Popen([*AFPACKET, "gen", "-i", net.outer, "-c", "1000000", "-p", "500", *addressing(net)],
                                stderr=subprocess.PIPE, text=True)
        before = rx_packets(net)
        deadline = time.monotonic() + 10
        while rx_packets(net) == before and time.monotonic() < deadline:  # sending: the handlers are in place
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    sent = int(re.search(r"Successful packets: +(\d+)", err).group(1))  # type: ignore[union-attr]
    assert sent == len(peer.frames) > 200
    assert "Interrupted by SIGTERM." in err


def test_gen_progress_on_a_terminal(net: VethPair) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen([*AFPACKET, "gen", "-i", net.outer, "-c", "400", "-p", "400", *addressing(net)],
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=30)
    os.close(master)
    assert re.search(rb"\r\d+ packets \([^)]*\) in [\d.]+ s, \d+ pps, [\d.]+ Mbps\x1b\[K", shown), shown
    assert b"\r\x1b[KActual: 400 packets" in shown


@pytest.mark.parametrize("args", [["-p", "nan"], ["-p", "-3"], ["--pps", "inf"], ["-c", "0"]])
def test_gen_bad_values_are_usage_errors(net: VethPair, args: list[str]) -> None:
    r = run("gen", "-i", net.outer, "-c", "10", *args)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Error: Invalid value" in r.stderr

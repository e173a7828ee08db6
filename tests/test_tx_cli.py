"""`afpacket gen` and `afpacket send` over a private veth pair, checked by tcpdump and tshark on the peer."""

from __future__ import annotations

import shutil
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
    assert "200 packets sent, 25600 bytes" in r.stderr and "0 failed" in r.stderr
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
    assert "2000 packets sent" in r.stderr
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
    assert "600 packets sent" in r.stderr
    assert second.frames == first.frames * 2


def test_send_keeps_original_timing(net: VethPair, tmp_path: Path) -> None:
    frames = FlowSpec(src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP).frames(6)
    path = tmp_path / "timed.pcap"
    _write_pcap(path, frames, 0.1)  # 0.5 s from first to last
    t0 = time.monotonic()
    r = run("send", "-i", net.outer, "-r", str(path))
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "6 packets sent" in r.stderr
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

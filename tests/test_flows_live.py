"""Flow records from real traffic: the kernel's own TCP, UDP and ICMP over a veth pair in a private namespace.

A server in the namespace answers TCP connections (each sends a known number of bytes and closes), UDP
requests and pings from this side. The traffic is captured with afpacket into a pcap, and:

- the records of that pcap equal NFStream's on the same file (each flow's packets and IP bytes, per
  direction: NFStream with ``accounting_mode=1``, IP bytes, and our ``orig_ip_bytes``/``resp_ip_bytes``);
- TCP connections end with Zeek's history ``ShADadFf`` and the payload bytes each side sent;
- ``afpacket flows -i`` metering live writes the same flows (JSON lines), and ``-r`` on the file too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nfstream
import pytest
from conftest import ping, private_pair

import afpacket
from afpacket.flows import FlowMeter, FlowRecord
from afpacket.savefile import PcapWriter
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
TCP_PORT, UDP_PORT = 7070, 7071
#: bytes each TCP connection's client sends, and the server answers with twice as many
SIZES = [10, 1000, 5000, 20000]

SERVER = r"""
import socket, sys, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", int(sys.argv[1]))); tcp.listen(16)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", int(sys.argv[2])))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(65535)
        udp.sendto(data * 2, peer)
threading.Thread(target=serve_udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, _ = tcp.accept()
    want = int.from_bytes(c.recv(4), "big"); got = 0
    while got < want:
        got += len(c.recv(65536))
    c.sendall(b"s" * (2 * want)); c.shutdown(socket.SHUT_WR)
    while c.recv(65536):
        pass
    c.close()
"""


@pytest.fixture(scope="module")
def pair() -> Iterator[VethPair]:
    with private_pair("afflw") as p:
        yield p


def converse(net: VethPair) -> None:
    """The known traffic: a TCP connection per SIZES entry, 5 UDP requests of 100 bytes, 3 pings from the
    namespace."""
    import socket

    for n in SIZES:
        with socket.create_connection((net.inner_ip, TCP_PORT), timeout=10) as s:
            s.sendall(n.to_bytes(4, "big") + b"c" * n)
            s.shutdown(socket.SHUT_WR)
            got = 0
            while chunk := s.recv(65536):
                got += len(chunk)
            assert got == 2 * n
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        for _ in range(5):
            u.sendto(b"u" * 100, (net.inner_ip, UDP_PORT))
            assert len(u.recv(1000)) == 200
    ping(net, 3)  # from the namespace: the inner end is the ICMP flow's originator


@pytest.fixture(scope="module")
def server(pair: VethPair) -> Iterator[None]:
    proc = pair.popen(sys.executable, "-c", SERVER, str(TCP_PORT), str(UDP_PORT), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def capture_file(pair: VethPair, server: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known traffic, captured by afpacket on the outer end into a pcap (nanosecond stamps)."""
    path = tmp_path_factory.mktemp("flows") / "real.pcap"
    with afpacket.Capture(pair.outer, filter=f"host {pair.inner_ip}") as cap, PcapWriter(path) as w:
        converse(pair)
        for pkt in cap.packets(timeout=1.0):
            w.write(pkt.timestamp_ns, bytes(pkt), pkt.wire_len)
    return path


def ours(path: Path) -> list[FlowRecord]:
    meter = FlowMeter()
    meter.add_file(path)
    meter.finish()
    return meter.take()


def key(proto: str, a: str, ap: int, b: str, bp: int) -> tuple[str, str, int, str, int]:
    return proto, a, ap, b, bp


@pytest.mark.parametrize("core", ["c", "python"], indirect=True)
def test_records_equal_nfstreams_on_the_same_file(capture_file: Path, core: str) -> None:
    mine = {key(r.proto, r.orig_h, r.orig_p if r.proto != "icmp" else 0, r.resp_h, r.resp_p if r.proto != "icmp"
                else 0): (r.orig_pkts, r.resp_pkts, r.orig_ip_bytes, r.resp_ip_bytes) for r in ours(capture_file)}
    names = {6: "tcp", 17: "udp", 1: "icmp"}
    theirs = {}
    for f in nfstream.NFStreamer(source=str(capture_file), accounting_mode=1, statistical_analysis=False,
                                 n_dissections=0, idle_timeout=120, active_timeout=1800):
        theirs[key(names.get(f.protocol, str(f.protocol)), f.src_ip, f.src_port, f.dst_ip, f.dst_port)] = (
            f.src2dst_packets, f.dst2src_packets, f.src2dst_bytes, f.dst2src_bytes)
    assert len(mine) == len(SIZES) + 1 + 1 + len([k for k in mine if k[0] not in ("tcp", "udp", "icmp")])
    assert mine == theirs


@pytest.mark.parametrize("core", ["c", "python"], indirect=True)
def test_tcp_history_and_payload_bytes_of_real_connections(pair: VethPair, capture_file: Path, core: str) -> None:
    recs = [r for r in ours(capture_file) if r.proto == "tcp"]
    assert sorted(r.orig_bytes - 4 for r in recs) == SIZES  # the client's 4-byte length, then its bytes
    for r in recs:
        assert r.resp_bytes == 2 * (r.orig_bytes - 4)
        assert (r.orig_h, r.resp_h, r.resp_p) == (pair.outer_ip, pair.inner_ip, TCP_PORT)
        assert r.history.startswith("ShAD") and set(r.history) >= set("ShADadFf"), r.history
        assert r.end_reason == "fin"
    udp = [r for r in ours(capture_file) if r.proto == "udp"]
    assert [(r.orig_pkts, r.resp_pkts, r.orig_bytes, r.resp_bytes) for r in udp] == [(5, 5, 500, 1000)]
    icmp = [r for r in ours(capture_file) if r.proto == "icmp"]
    assert [(r.orig_p, r.resp_p, r.orig_pkts, r.resp_pkts) for r in icmp] == [(8, 0, 3, 3)]


def run_flows(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, "flows", *args], capture_output=True, text=True, timeout=timeout)


def test_offline_command_writes_the_same_records_as_json_lines(capture_file: Path, core: str) -> None:
    r = run_flows("-r", str(capture_file), "--sensor", "lab")
    assert r.returncode == 0, r.stderr
    got = [json.loads(line) for line in r.stdout.splitlines()]
    want = [rec.as_dict() for rec in ours(capture_file)]
    assert sorted(got, key=lambda d: d["ts"]) == sorted(({**w, "sensor": "lab"} for w in want), key=lambda d: d["ts"])
    assert f"{len(want)} flow records written" in r.stderr


def test_live_command_meters_the_traffic(pair: VethPair, server: None, core: str) -> None:
    p = subprocess.Popen([*AFPACKET, "flows", "-i", pair.outer, "--duration", "6", "--idle-timeout", "30",
                          f"host {pair.inner_ip}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    line = p.stderr.readline()
    assert "metering flows on" in line, line
    time.sleep(0.3)
    converse(pair)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    recs = [json.loads(x) for x in out.splitlines()]
    tcp = sorted(r["orig_bytes"] - 4 for r in recs if r["proto"] == "tcp")
    assert tcp == SIZES
    assert [(r["orig_pkts"], r["resp_pkts"]) for r in recs if r["proto"] == "udp"] == [(5, 5)]
    assert all(r["ifindex"] > 0 and r["end_reason"] in ("fin", "end") for r in recs), recs
    assert "0 dropped by kernel" in err


def test_crafted_frames_over_the_veth_vlans_timeouts_and_resets(pair: VethPair, core: str) -> None:
    """Known frames sent over the veth and metered live in this process (the core's table): both directions
    merged, the tag the kernel strips read from the ring's metadata, an idle gap splitting a flow, a reset
    ending one, and the interface index of the capture."""
    import socket
    import struct

    from conftest import ether, udp_frame
    from test_flows import eth4, tcp

    a, b = pair.outer_mac, pair.inner_mac

    def tagged(vid: int, frame: bytes) -> bytes:
        return ether(frame[:6], frame[6:12], 0x8100, struct.pack("!H", vid) + frame[12:])

    fwd = udp_frame(a, b, b"q" * 30, sport=4000, dport=53, src="10.9.9.1", dst="10.9.9.2")
    back = udp_frame(a, b, b"r" * 60, sport=53, dport=4000, src="10.9.9.2", dst="10.9.9.1")
    syn = bytes.fromhex(a.replace(":", "")) + bytes.fromhex(b.replace(":", "")) + eth4("10.9.9.3", "10.9.9.4", 6,
                                                                                  tcp(5000, 22, "S"))[12:]
    rst = bytes.fromhex(a.replace(":", "")) + bytes.fromhex(b.replace(":", "")) + eth4("10.9.9.4", "10.9.9.3", 6,
                                                                                  tcp(22, 5000, "RA"))[12:]
    meter = FlowMeter(idle_timeout=1.0)
    with afpacket.Capture(pair.outer, filter="udp or tcp or (vlan and udp)", block_timeout_ms=5) as cap:
        pair.send([fwd, back, fwd, tagged(42, fwd), tagged(42, back), syn, rst])
        time.sleep(1.5)  # longer than the idle timeout: the next packet of the first flow starts a new one
        pair.send([fwd])
        for batch in cap.batches(timeout=0.5):
            cols = afpacket.rx.columns.columns_of(cap.kernels, batch)
            meter.add_frames(cap.kernels.frame_bytes(batch), cols.timestamp_ns, cols.vlan_tci, cols.ifindex)
    meter.finish()
    recs = sorted(meter.take(), key=lambda r: (r.ts, r.vlan))
    got = [(r.proto, r.vlan, r.orig_h, r.orig_pkts, r.resp_pkts, r.orig_bytes, r.resp_bytes, r.end_reason)
           for r in recs]
    assert got == [
        ("udp", 0, "10.9.9.1", 2, 1, 60, 60, "idle"),
        ("udp", 42, "10.9.9.1", 1, 1, 30, 60, "idle"),
        ("tcp", 0, "10.9.9.3", 1, 1, 0, 0, "rst"),
        ("udp", 0, "10.9.9.1", 1, 0, 30, 0, "end"),
    ]
    assert all(r.ifindex == socket.if_nametoindex(pair.outer) for r in recs)
    assert recs[2].history == "Sr"

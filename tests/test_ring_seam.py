"""The ring seam on real traffic: core selection, the block record writers against per-packet records,
columns, and kept packets — each run once per core by the ``core`` fixture in conftest."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ether

import afpacket
from afpacket import Capture, PcapngWriter, PcapWriter, open_reader, ring
from afpacket.testnet import VethPair
from afpacket.tofile import open_for

VERSIONS = [1, 2, 3]


def frames_for(net: VethPair, n: int) -> list[bytes]:
    return [
        ether(net.outer_mac, net.inner_mac, 0x88B5, struct.pack("!I", i) + bytes([i & 0xFF]) * (46 + i % 300))
        for i in range(n)
    ]


def test_the_core_in_use_is_the_fixtures(core: str) -> None:
    assert afpacket.IMPLEMENTATION == ring.IMPLEMENTATION == core
    assert core == ring.current().IMPLEMENTATION


def test_environment_forces_pure_python_and_version_names_the_core() -> None:
    env = {**os.environ, "AFPACKET_NO_EXTENSIONS": "1"}
    out = subprocess.run([sys.executable, "-m", "afpacket", "--version"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "ring kernels: python" in out.stdout, out
    if "c" in ring.available():
        env.pop("AFPACKET_NO_EXTENSIONS")
        out = subprocess.run([sys.executable, "-m", "afpacket", "--version"], env=env, capture_output=True, text=True)
        assert "ring kernels: c" in out.stdout, out


def test_a_broken_extension_falls_back_with_a_warning(tmp_path: Path) -> None:
    # A package copy whose _kernels module raises ImportError: pure Python, and a warning saying why.
    src = Path(afpacket.__file__).parent
    dst = tmp_path / "afpacket"
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    for so in (dst / "ring").glob("_kernels*.so"):
        so.unlink()
    (dst / "ring" / "_kernels.py").write_text("raise ImportError('simulated: no compiler here')\n")
    code = "import warnings; warnings.simplefilter('always'); import afpacket; print(afpacket.IMPLEMENTATION)"
    env = {k: v for k, v in os.environ.items() if k != "AFPACKET_NO_EXTENSIONS"}
    env["PYTHONPATH"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "python", out
    assert "compiled ring kernels did not load" in out.stderr and "simulated: no compiler here" in out.stderr


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_block_records_equal_per_packet_records(net: VethPair, tmp_path: Path, version: int, fmt: str) -> None:
    """The batch writers (ring kernels) and the per-packet writer (Packet.file_record) agree byte for byte,
    VLAN-tagged frames included."""
    frames = frames_for(net, 200)
    tagged = [f[:12] + struct.pack("!HH", 0x8100, (5 << 13) | 42) + f[12:] for f in frames[:50]]
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        out = open_for(cap, str(tmp_path / f"block.{fmt}"), fmt, nanosecond=True)  # type: ignore[arg-type]
        net.send(tagged + frames)
        n = out.consume(cap, count=len(tagged) + len(frames), duration=10)
        out.close()
    assert n == 250
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        path = tmp_path / f"packet.{fmt}"
        w: PcapWriter | PcapngWriter
        if fmt == "pcap":
            w = PcapWriter(path, nanosecond=True, snaplen=cap.snaplen)
        else:
            w = PcapngWriter(path)
            w.add_interface(net.outer, 1, cap.snaplen, 9, ifindex=cap.socket.ifindex)
        net.send(tagged + frames)
        for pkt in cap.packets(count=250, duration=10):
            w.write_packet(pkt)
        w.close()
    a = [(r.data, r.wire_len, r.flags) for r in open_reader(str(tmp_path / f"block.{fmt}"))]
    b = [(r.data, r.wire_len, r.flags) for r in open_reader(str(path))]
    assert len(a) == len(b) == 250
    assert a == b
    expect_tagged = tagged if version != 1 else [f for f in frames[:50]]  # V1 cannot report stripped tags
    assert [d for d, _, _ in a[:50]] == expect_tagged
    assert [d for d, _, _ in a[50:]] == frames


@pytest.mark.parametrize("version", VERSIONS)
def test_columns_describe_every_packet(net: VethPair, version: int) -> None:
    frames = frames_for(net, 300)
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        t0 = time.time_ns()
        net.send(frames)
        cols = []
        deadline = time.monotonic() + 10
        for c in cap.columns(duration=10):
            cols.append(c)
            if sum(len(x) for x in cols) >= 300 or time.monotonic() > deadline:
                break
    caplen = [v for c in cols for v in c.caplen]
    assert caplen == [len(f) for f in frames]
    assert [v for c in cols for v in c.wire_len] == [len(f) for f in frames]
    ts = [v for c in cols for v in c.timestamp_ns]
    assert ts == sorted(ts) and t0 - 10**9 < ts[0] <= ts[-1] < time.time_ns()
    assert {v for c in cols for v in c.pkttype} == {0}  # PACKET_HOST
    assert {v for c in cols for v in c.ifindex} == {net_ifindex(net)}
    import numpy as np
    arrays = cols[0].to_numpy()
    assert arrays["caplen"].dtype == np.uint32 and list(arrays["caplen"]) == list(cols[0].caplen)
    table = cols[0].to_arrow()
    assert table.num_rows == len(cols[0]) and table.column("wire_len").to_pylist() == list(cols[0].wire_len)


def net_ifindex(net: VethPair) -> int:
    return int(Path(f"/sys/class/net/{net.outer}/ifindex").read_text())


def test_copied_packet_has_every_attribute_of_a_live_one(net: VethPair) -> None:
    frames = frames_for(net, 1)
    with Capture(net.outer, block_timeout_ms=2) as cap:
        net.send(frames)
        pkt = cap.next_packet(timeout=5)
        assert pkt is not None
        copy = pkt.copy()
        names = [n for n in dir(pkt) if not n.startswith("_") and n not in ("copy", "data")]
        for name in names:
            live = getattr(pkt, name)
            kept = getattr(copy, name)
            if callable(live):
                live, kept = live(), kept()
            if name == "to_dpkt":  # dpkt objects compare by identity: compare (timestamp, frame bytes)
                live, kept = (live[0], bytes(live[1])), (kept[0], bytes(kept[1]))
            assert live == kept, name
        assert bytes(copy.data) == bytes(pkt.data) == frames[0]

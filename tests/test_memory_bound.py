"""Ring memory is bounded: a ring larger than half of MemAvailable is refused before any allocation (with
the size that would work) unless forced, the OOM killer is never woken, and V1/V2 frames sized by the
snaplen must fit the buffer. Traffic only crosses veth pairs made here."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import udp_frame

import afpacket
from afpacket import geometry
from afpacket.errors import RingAllocationError, RingGeometryError
from afpacket.geometry import RingGeometry
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]


def _oom_kills() -> int:
    for line in Path("/proc/vmstat").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    raise AssertionError("/proc/vmstat has no oom_kill counter")


@pytest.fixture
def small_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Make this process believe 64 MiB are available, so the bound is 32 MiB (the real rings made
    below stay small)."""
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       1048576 kB\nMemFree:          65536 kB\nMemAvailable:     65536 kB\n")
    monkeypatch.setattr(geometry, "MEMINFO", str(fake))
    return 32 << 20


def test_limit_is_half_of_memavailable(small_memory: int) -> None:
    assert geometry.available_memory() == 64 << 20
    assert geometry.ring_memory_limit() == small_memory
    geometry.check_ring_memory(small_memory, "x")  # at the limit: fine
    with pytest.raises(RingAllocationError, match="ask for at most 32 MiB"):
        geometry.check_ring_memory(small_memory + 1, "x")
    geometry.check_ring_memory(small_memory * 100, "x", allow_large=True)


def test_unreadable_meminfo_means_no_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(geometry, "MEMINFO", str(tmp_path / "absent"))
    assert geometry.ring_memory_limit() is None
    geometry.check_ring_memory(1 << 50, "x")


def test_a_64_gib_capture_ring_is_refused_at_once_without_the_oom_killer() -> None:
    before = _oom_kills()
    with VethPair("afmb", addresses=False) as net:
        t0 = time.monotonic()
        with pytest.raises(RingAllocationError) as e:
            afpacket.Capture(net.outer, buffer_size=64 << 30)
        assert time.monotonic() - t0 < 2
    msg = str(e.value)
    assert "65536 MiB of ring memory is more than half of the memory available now" in msg
    assert "ask for at most" in msg and "--allow-large-ring" in msg
    assert _oom_kills() == before


@pytest.mark.parametrize("version", ["2", "3"])
def test_cli_refuses_dash_b_beyond_memory_in_one_line(version: str) -> None:
    before = _oom_kills()
    with VethPair("afmc", addresses=False) as net:
        t0 = time.monotonic()
        r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "-B", "67108864", "--tpacket-version", version,
                            "-c", "1"], capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "more than half of the memory available" in r.stderr and "--allow-large-ring" in r.stderr
    assert took < 20
    assert _oom_kills() == before


def test_forcing_a_large_ring_allocates_it(small_memory: int) -> None:
    with VethPair("afmf", addresses=False) as net:
        with pytest.raises(RingAllocationError):
            afpacket.Capture(net.outer, buffer_size=48 << 20)
        with afpacket.Capture(net.outer, buffer_size=48 << 20, allow_large_ring=True) as cap:
            assert cap.geometry.size == 48 << 20
            frame = udp_frame(net.outer_mac, net.inner_mac, b"forced")
            net.send([frame])
            assert [bytes(p) for p in cap.packets(count=1, timeout=5)] == [frame]


def test_rx_and_tx_rings_of_one_socket_count_together(small_memory: int) -> None:
    tx = RingGeometry.for_transmit(3, 2048, 12 * 1024)  # 24 MiB
    with VethPair("afmt", addresses=False) as net:
        afpacket.Capture(net.outer, buffer_size=4 << 20, tx_geometry=tx).close()  # 28 MiB: fits
        with pytest.raises(RingAllocationError, match="PACKET_TX_RING: 40 MiB"):
            afpacket.Capture(net.outer, buffer_size=16 << 20, tx_geometry=tx)


def test_transmitter_beyond_memory_is_refused(small_memory: int) -> None:
    with VethPair("afmx", addresses=False) as net:
        with pytest.raises(RingAllocationError, match="PACKET_TX_RING"):
            afpacket.Transmitter(net.outer, frame_size=2048, frame_count=32 * 1024)  # 64 MiB
        with afpacket.Transmitter(net.outer, frame_size=2048, frame_count=32 * 1024, allow_large_ring=True) as tx:
            assert tx.geometry.size >= 64 << 20


def test_transmitter_frames_larger_than_the_link_can_send_are_refused() -> None:
    # 8192 frames of 1 MiB: 8 GiB of kernel memory for frames no 1500-byte link can carry.
    with VethPair("afml", addresses=False) as net:
        t0 = time.monotonic()
        with pytest.raises(RingGeometryError, match="largest frame") as e:
            afpacket.Transmitter(net.outer, frame_size=1 << 20, frame_count=8192)
        assert time.monotonic() - t0 < 2
    assert "MTU 1500" in str(e.value)


@pytest.mark.parametrize("version", [1, 2])
def test_v1_v2_frames_must_fit_the_buffer(version: int) -> None:
    with pytest.raises(RingGeometryError, match=r"raise the buffer \(-B\) to at least 513 KiB"):
        RingGeometry.for_capture(version, 256 << 10, 262144)
    g = RingGeometry.for_capture(version, 1 << 20, 262144)
    assert g.size <= 1 << 20 and g.frame_nr >= 2
    # V3 frames are not sized by snaplen: the same request is fine
    assert RingGeometry.for_capture(3, 256 << 10, 262144).size <= 256 << 10


def test_cli_v2_snaplen_beyond_the_buffer_is_one_line() -> None:
    with VethPair("afms", addresses=False) as net:
        r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "-B", "256", "-s", "200000",
                            "--tpacket-version", "2", "-c", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "raise the buffer (-B) to at least 391 KiB" in r.stderr

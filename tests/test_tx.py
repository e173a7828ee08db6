"""Transmit through TX rings over a private veth pair; tcpdump on the peer end is the witness."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dpkt
import pytest

from afpacket import abi
from afpacket.craft import FlowSpec, udp_frame
from afpacket.errors import (
    CaptureClosedError,
    FrameTooLargeError,
    InterfaceNotFoundError,
    RingGeometryError,
    TransmitError,
)
from afpacket.geometry import RingGeometry
from afpacket.pacing import Pacer, paced_send
from afpacket.sock import PacketSocket
from afpacket.testnet import VethPair
from afpacket.tx import Transmitter, TransmitWarning

# Off-link addresses: the peer's stack drops these frames without answering (no ICMP mixes in).
SRC_IP, DST_IP = "198.18.0.10", "198.18.0.20"


@pytest.fixture(scope="module")
def net() -> Iterator[VethPair]:
    with VethPair("tx") as pair:
        yield pair


def flows(net: VethPair, n: int = 7, size: int = 100, vlan: int | None = None) -> list[bytes]:
    spec = FlowSpec(
        src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP, size=size, vlan=vlan
    )
    return spec.frames(n)


class Peer:
    frames: list[bytes]


@contextmanager
def witness(net: VethPair, tmp_path: Path, expr: str = "udp") -> Iterator[Peer]:
    """tcpdump on the inner end; after the block, ``peer.frames`` holds what it saw, in order.

    Immediate mode (a V2 ring) with small slots: with tcpdump's default V3 ring, this kernel reported
    packets "received by filter" that were never handed to tcpdump.
    """
    path = tmp_path / f"peer{time.monotonic_ns()}.pcap"
    proc = net.popen(
        "tcpdump", "-i", net.inner, "-w", str(path), "-U", "-n", "--immediate-mode", "-B", "16384",
        "-s", "4096", f"ether src {net.outer_mac} and ({expr})", stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert b"listening on" in line, line
    peer = Peer()
    try:
        yield peer
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    with open(path, "rb") as f:
        peer.frames = [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]


def rx_packets(net: VethPair) -> int:
    return int(net.exec("cat", f"/sys/class/net/{net.inner}/statistics/rx_packets").stdout)


# --- every ring version delivers byte-identical frames in order -------------------------------------
@pytest.mark.parametrize("version", [1, 2, 3])
def test_each_ring_version_sends_identical_frames_in_order(net: VethPair, tmp_path: Path, version: int) -> None:
    sizes = [60, 61, 100, 333, 1000, 1514]
    frames = [f for s in sizes for f in flows(net, 3, s)] * 30  # 540 frames, more than the ring
    with witness(net, tmp_path) as peer, Transmitter(net.outer, version=version, frame_count=128) as tx:
        for f in frames:
            tx.send(f)
        tx.flush()
        st = tx.stats()
    assert (st.sent, st.bytes, st.failed) == (len(frames), sum(map(len, frames)), 0)
    assert peer.frames == frames


@pytest.mark.parametrize("version", [1, 2, 3])
def test_send_many_and_repeated_templates(net: VethPair, tmp_path: Path, version: int) -> None:
    fl = flows(net, 4, 64)
    with witness(net, tmp_path) as peer, Transmitter(net.outer, version=version, frame_count=64) as tx:
        assert tx.send_many(fl * 50) == 200
        assert tx.send_repeated(fl, 1000) == 1000  # 64 slots, a multiple of 4 templates: the strided path
        assert tx.send_repeated(flows(net, 3, 64), 10) == 10  # not a multiple: falls back to copying
    assert peer.frames == fl * 50 + [fl[i % 4] for i in range(1000)] + flows(net, 3, 64) * 3 + flows(net, 1, 64)


def test_slots_not_evenly_strided(net: VethPair, tmp_path: Path) -> None:
    # 3072-byte slots leave a gap at the end of every block: the ring is walked slot by slot.
    fl = flows(net, 3, 1500)
    with witness(net, tmp_path) as peer, Transmitter(net.outer, frame_size=3072, frame_count=50) as tx:
        assert tx.geometry.block_size % 3072
        tx.send_many(fl * 40)
        tx.send_repeated(fl, 30)
        assert tx.stats().sent == 150
    assert peer.frames == fl * 50


def test_zero_copy_slot_is_released_after_commit(net: VethPair, tmp_path: Path) -> None:
    frame = flows(net, 1, 200)[0]
    with witness(net, tmp_path) as peer, Transmitter(net.outer) as tx:
        with tx.slot() as s:
            s.data[: len(frame)] = frame
            s.commit(len(frame))
        with pytest.raises(ValueError):
            s.data[0]  # the view died with the commit: the memory is the kernel's now
        view = tx.reserve()
        view[: len(frame)] = frame
        tx.abort()  # returned unsent
        with pytest.raises(ValueError):
            view[0]
        with tx.slot() as s:
            s.data[: len(frame)] = frame
            s.data[-1:]
            s.commit(len(frame))
    assert peer.frames == [frame, frame]


def test_dgram_takes_destination_and_protocol_from_the_kick(net: VethPair, tmp_path: Path) -> None:
    ips = FlowSpec(src_ip=SRC_IP, dst_ip=DST_IP, size=80).frames(3, link_header=False)
    other = "02:00:00:00:00:99"
    with witness(net, tmp_path, "ip") as peer, Transmitter(net.outer, sock_type="dgram", dst_mac=net.inner_mac) as tx:
        tx.send(ips[0])
        tx.send_to(ips[1], other)
        tx.send_to(ips[2], net.inner_mac, abi.ETH_P_IP)
    assert [f[14:] for f in peer.frames] == ips
    dsts = [dpkt.ethernet.Ethernet(f).dst.hex(":") for f in peer.frames]
    assert dsts == [net.inner_mac, other, net.inner_mac]
    src = bytes.fromhex(net.outer_mac.replace(":", ""))
    assert all(f[6:12] == src and f[12:14] == b"\x08\x00" for f in peer.frames)


def test_vlan_tagged_frame_may_use_four_more_bytes(net: VethPair, tmp_path: Path) -> None:
    tagged = flows(net, 1, 1518, vlan=7)[0]
    with witness(net, tmp_path, "vlan") as peer, Transmitter(net.outer) as tx:
        tx.send(tagged)
        with pytest.raises(FrameTooLargeError, match="MTU 1500"):
            tx.send(flows(net, 1, 1515)[0])
    assert peer.frames == [tagged]


# --- pacing --------------------------------------------------------------------------------------
def test_paced_100k_at_50k_pps_takes_two_seconds(net: VethPair) -> None:
    fl = flows(net, 8, 64)
    before = rx_packets(net)
    with Transmitter(net.outer, qdisc_bypass=True) as tx:
        t0 = time.monotonic()
        n = paced_send(tx, ((fl[i & 7], None) for i in range(100_000)), Pacer(pps=50_000, burst=2))
        elapsed = time.monotonic() - t0
    assert n == 100_000
    assert rx_packets(net) - before == 100_000
    assert abs(elapsed - 2.0) <= 0.1, elapsed


def test_pacer_schedules_are_absolute() -> None:
    p = Pacer(pps=1000, burst=4)
    p.begin(100.0)
    assert [p.deadline() - 100.0 for _ in range(9)] == pytest.approx([0, 0, 0, 0, 0.004] * 1 + [0.004] * 3 + [0.008])
    b = Pacer(bps=8000)
    b.begin(0.5)
    assert [b.deadline(100) for _ in range(3)] == pytest.approx([0.5, 0.6, 0.7])
    t = Pacer(multiplier=2.0)
    t.begin(10.0)
    assert [t.deadline(0, ts) for ts in (5_000_000_000, 6_000_000_000, 9_000_000_000)] == pytest.approx(
        [10.0, 10.5, 12.0]
    )


# --- malformed frames are reported, not hung on -------------------------------------------------------
@pytest.mark.parametrize("version", [2, 3])
def test_kernel_rejected_frame_is_reported_and_the_rest_still_go(net: VethPair, tmp_path: Path, version: int) -> None:
    good = flows(net, 5, 100)
    with witness(net, tmp_path) as peer, Transmitter(net.outer, version=version, frame_size=4096, frame_count=16) as tx:
        tx.send(good[0])
        view = tx.reserve()
        view[:3000] = b"\xee" * 3000
        tx.commit(3000, check=False)  # tp_len > MTU + 18: the kernel marks it WRONG_FORMAT
        with pytest.warns(TransmitWarning, match="slot 1: 3000-byte frame rejected"):
            for f in good[1:]:
                tx.send(f)
            tx.flush()
        assert tx.stats().failed == 1
        assert [(r.slot, r.length) for r in tx.rejected] == [(1, 3000)]
        for _ in range(3):  # laps over the slot that was rejected
            tx.send_many(good * 4)
        tx.flush()
        st = tx.stats()
    assert (st.sent, st.failed, st.pending) == (5 + 60, 1, 0)
    assert peer.frames == good + good * 12


def test_loss_option_makes_the_kernel_skip_malformed_frames(net: VethPair, tmp_path: Path) -> None:
    good = flows(net, 3, 100)
    with witness(net, tmp_path) as peer, Transmitter(net.outer, frame_size=4096, frame_count=16, loss=True) as tx:
        tx.send(good[0])
        v = tx.reserve()
        v[:3000] = bytes(3000)
        tx.commit(3000, check=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for f in good[1:]:
                tx.send(f)
            tx.flush()
    assert peer.frames == good


# --- teardown --------------------------------------------------------------------------------------
def test_close_sends_every_pending_frame(net: VethPair) -> None:
    fl = flows(net, 4, 64)
    before = rx_packets(net)
    tx = Transmitter(net.outer, frame_count=1024, batch=1024)  # never kicks on its own
    for i in range(1000):
        tx.send(fl[i & 3])
    assert tx.stats().pending == 1000
    tx.close()
    tx.close()  # idempotent
    assert rx_packets(net) - before == 1000
    with pytest.raises(CaptureClosedError):
        tx.send(fl[0])
    with pytest.raises(CaptureClosedError):
        tx.flush()


def test_timestamps_fall_inside_the_send_window(net: VethPair) -> None:
    fl = flows(net, 2, 64)
    with Transmitter(net.outer, timestamps=True) as tx:
        t0 = time.time_ns()
        tx.send(fl[0])
        tx.send(fl[1])
        tx.flush()
        t1 = time.time_ns()
        stamps = tx.tx_timestamps(2)
    assert all(s is not None and t0 <= s <= t1 for s in stamps), (t0, stamps, t1)


def test_tx_has_off_places_data_further_in(net: VethPair, tmp_path: Path) -> None:
    fl = flows(net, 2, 300)
    with witness(net, tmp_path) as peer, Transmitter(net.outer, tx_has_off=True, frame_size=2048) as tx:
        tx.data_offset = 512
        assert tx.slot_capacity == 2048 - 512
        tx.send_many(fl * 3)
    assert peer.frames == fl * 3


def test_qdisc_bypass_sends(net: VethPair) -> None:
    fl = flows(net, 2, 64)
    before = rx_packets(net)
    with Transmitter(net.outer, qdisc_bypass=True, version=3) as tx:
        tx.send_repeated(fl, 10_000)
    assert rx_packets(net) - before == 10_000


def test_over_socket_uses_a_ring_it_does_not_own(net: VethPair, tmp_path: Path) -> None:
    ps = PacketSocket(net.outer, protocol=0)
    ps.set_version(2)
    ps.set_ring(RingGeometry.for_transmit(2, 2048, 64))
    ps.map_rings()
    ps.bind(0)
    fl = flows(net, 2, 90)
    try:
        with witness(net, tmp_path) as peer, Transmitter.over_socket(ps, 0) as tx:
            tx.send_many(fl * 40)
        assert not ps.closed
    finally:
        ps.close()
    assert peer.frames == fl * 40


# --- bad input ---------------------------------------------------------------------------------------
def test_missing_interface() -> None:
    with pytest.raises(InterfaceNotFoundError, match="no interface named 'nosuch0'"):
        Transmitter("nosuch0")


def test_bad_geometry() -> None:
    with pytest.raises(RingGeometryError, match="TPACKET_ALIGNMENT"):
        Transmitter("lo", frame_size=1000)
    with pytest.raises(RingGeometryError, match="version"):
        Transmitter("lo", version=4)


def test_frames_too_large_or_too_short_never_reach_the_kernel(net: VethPair) -> None:
    with Transmitter(net.outer, frame_size=1024) as tx:
        with pytest.raises(FrameTooLargeError, match=r"1200-byte frame does not fit the 1024-byte TX slot.*1232"):
            tx.send(bytes(1200))
        with pytest.raises(TransmitError, match="shorter than the 14-byte Ethernet header"):
            tx.send(bytes(10))
        assert tx.stats().sent == 0
    big = udp_frame(src_mac=net.outer_mac, dst_mac=net.inner_mac, src_ip=SRC_IP, dst_ip=DST_IP, size=1600)
    with (
        Transmitter(net.outer, frame_size=4096) as tx,
        pytest.raises(FrameTooLargeError, match=r"MTU 1500 \+ 14-byte Ethernet header = 1514 bytes"),
    ):
        tx.send(big)


# --- one socket for RX and TX ------------------------------------------------------------------------
@pytest.mark.parametrize("version", [2, 3])
def test_reflector_receives_and_replies_on_one_socket(net: VethPair, tmp_path: Path, version: int) -> None:
    from afpacket.rx import Capture

    probe = udp_frame(src_mac=net.inner_mac, dst_mac=net.outer_mac, src_ip=DST_IP, dst_ip=SRC_IP, size=120)
    inject = (
        "import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); "
        f"s.bind(({net.inner!r}, 0)); s.send(bytes.fromhex({probe.hex()!r}))"
    )
    tx_ring = RingGeometry.for_transmit(version, 2048, 64)
    with Capture(net.outer, version=version, ignore_outgoing=True, tx_geometry=tx_ring) as cap:
        tx = cap.transmitter()
        assert isinstance(tx, Transmitter)
        with witness(net, tmp_path) as peer:
            net.exec(sys.executable, "-c", inject)
            got = None
            for pkt in cap.packets(duration=5):
                if bytes(pkt.data) == probe:
                    got = bytes(pkt.data)
                    break
            assert got is not None, "the capture never saw the probe"
            reply = got[6:12] + got[0:6] + got[12:]  # swap the MAC addresses
            tx.send(reply)
            tx.close()  # drains the TX ring; the capture keeps the socket
        assert cap.next_packet(timeout=0.2) is None  # our own reply did not come back (ignore_outgoing)
    assert peer.frames == [reply]

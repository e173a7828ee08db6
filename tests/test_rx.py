"""RX ring capture over real veth pairs, for every ring version."""

from __future__ import annotations

import gc
import os
import socket
import struct
import time

import pytest
from conftest import ether, mac, trafgen, udp_frame

from afpacket import (
    Capture,
    CaptureClosedError,
    InterfaceNotFoundError,
    PacketExpiredError,
    RingGeometry,
    RingGeometryError,
    abi,
)
from afpacket.testnet import VethPair

VERSIONS = [1, 2, 3]


def drain(cap: Capture, want: int, seconds: float = 3.0) -> list[bytes]:
    out = []
    for p in cap.packets(count=want, duration=seconds):
        out.append(bytes(p))
    return out


def incoming(cap: Capture, want: int, seconds: float = 3.0) -> list:
    """Copies of the first ``want`` packets that arrived (not the kernel's own replies, e.g. ICMP)."""
    out = []
    for p in cap.packets(duration=seconds):
        if not p.outgoing:
            out.append(p.copy())
            if len(out) == want:
                break
    return out


def crafted(net: VethPair, n: int = 100) -> list[bytes]:
    sizes = [60 + (i * 97) % 1455 for i in range(n)]
    return [
        ether(net.outer_mac, net.inner_mac, 0x88B5, struct.pack("!I", i) + bytes([i & 0xFF]) * (s - 18))
        for i, s in enumerate(sizes)
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_exact_frames_in_order(net: VethPair, version: int) -> None:
    frames = crafted(net)
    with Capture(net.outer, version=version) as cap:
        net.send(frames)
        got = drain(cap, len(frames))
        st = cap.stats()
    assert got == frames
    assert st.received == len(frames) and st.drops == 0 and st.packets == len(frames)


@pytest.mark.parametrize("version", VERSIONS)
def test_metadata_matches_what_was_sent(net: VethPair, version: int) -> None:
    idx = socket.if_nametoindex(net.outer)
    frames = [
        udp_frame(net.outer_mac, net.inner_mac, b"unicast"),
        ether("ff:ff:ff:ff:ff:ff", net.inner_mac, 0x88B5, b"broadcast".ljust(46, b".")),
        ether("01:00:5e:00:00:fb", net.inner_mac, 0x88B5, b"multicast".ljust(46, b".")),
        ether("02:00:00:00:00:99", net.inner_mac, 0x88B5, b"otherhost".ljust(46, b".")),
    ]
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        t0 = time.time_ns()
        net.send(frames)
        t1 = time.time_ns()
        got = incoming(cap, 4)
    assert [p.data for p in got] == frames
    assert [p.pkttype for p in got] == [abi.PACKET_HOST, abi.PACKET_BROADCAST, abi.PACKET_MULTICAST,
                                        abi.PACKET_OTHERHOST]
    for p, f in zip(got, frames, strict=True):
        assert t0 - 1000 <= p.timestamp_ns <= t1 + 1000  # V1 has µs resolution
        assert p.caplen == p.wire_len == len(f)
        assert p.ifindex == idx
        assert p.hatype == abi.ARPHRD_ETHER
        assert p.src_addr == mac(net.inner_mac)
        assert not p.vlan_present
    assert got[0].protocol == 0x0800 and got[1].protocol == 0x88B5
    if version == 1:
        # µs resolution: ns part is a whole number of µs
        assert all(p.timestamp_ns % 1000 == 0 for p in got)


@pytest.mark.parametrize("version", VERSIONS)
def test_outgoing_packets_are_marked(net: VethPair, version: int) -> None:
    frame = ether(net.inner_mac, net.outer_mac, 0x88B5, b"out".ljust(46, b"o"))
    with Capture(net.outer, version=version) as cap:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        s.bind((net.outer, 0))
        s.send(frame)
        s.close()
        got = [(bytes(p), p.pkttype, p.outgoing) for p in cap.packets(count=1, duration=3)]
    assert got == [(frame, abi.PACKET_OUTGOING, True)]


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(("tpid", "tci"), [(0x8100, 0x2064), (0x88A8, 0xE00A), (0x8100, 0x0000)])
def test_vlan_tag_metadata_and_reinsertion(net: VethPair, version: int, tpid: int, tci: int) -> None:
    inner = udp_frame(net.outer_mac, net.inner_mac, b"tagged payload")
    tagged = inner[:12] + struct.pack("!HH", tpid, tci) + inner[12:]
    with Capture(net.outer, version=version) as cap:
        net.send([tagged])
        pkts = incoming(cap, 1)
    assert len(pkts) == 1
    p = pkts[0]
    # the receive path moved the tag into metadata
    assert p.data == inner
    assert p.vlan_present and p.vlan_tci == tci and p.vlan_tpid == tpid
    assert p.tagged() == tagged
    # in-ring reinsertion: the data view itself shows the frame as it was on the wire
    with Capture(net.outer, version=version, reinsert_vlan=True) as cap:
        net.send([tagged])
        got = [(p.data, p.wire_len, p.caplen, p.tagged()) for p in incoming(cap, 1)]
    assert got == [(tagged, len(tagged), len(tagged), tagged)]


def test_v1_has_no_vlan_fields_but_frame_arrives(net: VethPair) -> None:
    inner = udp_frame(net.outer_mac, net.inner_mac, b"x")
    tagged = inner[:12] + struct.pack("!HH", 0x8100, 5) + inner[12:]
    with Capture(net.outer, version=1) as cap:
        net.send([tagged])
        got = [(p.data, p.vlan_tci, p.vlan_present) for p in incoming(cap, 1)]
    assert got == [(inner, 0, False)]


def test_v3_rxhash_when_requested(net: VethPair) -> None:
    frames = [udp_frame(net.outer_mac, net.inner_mac, b"h", sport=1000 + i) for i in range(8)]
    with Capture(net.outer, version=3, rxhash=True) as cap:
        net.send(frames)
        hashes = [p.rxhash for p in incoming(cap, 8)]
    assert len(hashes) == 8
    assert all(h != 0 for h in hashes)
    assert len(set(hashes)) > 1  # different flows, different hashes
    with Capture(net.outer, version=3) as cap:
        net.send(frames[:1])
        assert [p.rxhash for p in incoming(cap, 1)] == [0]


@pytest.mark.parametrize("version", VERSIONS)
def test_views_expire_when_the_batch_goes_back_but_kept_packets_stay_valid(net: VethPair, version: int) -> None:
    frames = crafted(net, 3)
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        net.send(frames[:1])
        first = cap.next_packet(timeout=3)
        assert first is not None
        ts = first.timestamp_ns
        view = first.data
        assert bytes(view) == frames[0]
        time.sleep(0.05)
        net.send(frames[1:])
        # reading on leaves the first batch and hands it back to the kernel
        second = cap.next_packet(timeout=3)
        assert second is not None and bytes(second) == frames[1]
        # the view taken earlier is revoked: the kernel owns that memory now
        with pytest.raises(ValueError, match="released"):
            view[0]
        # the packet object itself was copied out when its batch went back
        assert bytes(first) == frames[0] and bytes(first.data) == frames[0]
        assert first.timestamp_ns == ts and first.caplen == len(frames[0]) and first.wire_len == len(frames[0])
        assert first.ifindex == cap.socket.ifindex and first.copy().data == frames[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_list_of_packets_keeps_every_packet(net: VethPair, version: int) -> None:
    frames = crafted(net, 300)
    with Capture(net.outer, version=version, block_timeout_ms=2, buffer_size=1 << 20) as cap:
        net.send(frames)
        pkts = list(cap.packets(count=300, duration=5))
        more = cap.next_packet(timeout=0.2)  # reading on hands every batch back
    assert more is None
    assert [bytes(p) for p in pkts] == frames
    assert [p.caplen for p in pkts] == [len(f) for f in frames]
    assert all(p.timestamp_ns > 0 and p.pkttype_name == "host" for p in pkts)
    with pytest.raises(CaptureClosedError):
        cap.next_packet(timeout=0)


def test_v3_idle_read_returns_within_poll_timeout(net: VethPair) -> None:
    # A long block timeout: an idle link retires nothing, only the poll timeout can end the read.
    with Capture(net.outer, version=3, block_timeout_ms=10000) as cap:
        t = time.monotonic()
        assert cap.next_packet(timeout=0.3) is None
        elapsed = time.monotonic() - t
    assert 0.25 <= elapsed < 1.5


@pytest.mark.parametrize("version", VERSIONS)
def test_stall_produces_drops_that_stats_report_exactly(net: VethPair, version: int) -> None:
    # not IP: nothing in the kernel answers these, so the counts are exactly ours
    frame = ether(net.outer_mac, net.inner_mac, 0x88B5, b"s" * 200)
    sent = 5000
    with Capture(net.outer, version=version, buffer_size=256 << 10) as cap:
        capacity = cap.geometry.frame_nr
        trafgen(net, frame, sent)  # the ring is not read while this runs
        got = sum(1 for _ in cap.packets(duration=1.0))
        st = cap.stats()
    assert st.drops > 0
    assert got == st.packets
    assert got + st.drops == sent == st.received
    if version != 3:
        assert got <= capacity


def test_million_frames_from_trafgen_all_accounted(net: VethPair) -> None:
    frame = ether(net.outer_mac, net.inner_mac, 0x88B5, b"m" * 50)
    sent = 1_000_000
    with Capture(net.outer, version=3, buffer_size=64 << 20) as cap:
        import threading

        seen = 0

        def reader() -> None:
            nonlocal seen
            for _ in cap.packets(duration=60):
                seen += 1
                if seen == sent:
                    break

        th = threading.Thread(target=reader)
        th.start()
        trafgen(net, frame, sent)
        time.sleep(0.5)
        cap.stop()
        th.join(30)
        assert not th.is_alive()
        st = cap.stats()
    assert st.received == sent
    assert seen + st.drops == sent


def test_any_interface_uses_cooked_datagrams(net: VethPair) -> None:
    frame = udp_frame(net.outer_mac, net.inner_mac, b"any-payload")
    idx = socket.if_nametoindex(net.outer)
    with Capture("any", version=3, block_timeout_ms=2) as cap:
        assert cap.sock_type == "dgram"
        net.send([frame])
        got = [(bytes(p), p.protocol) for p in cap.packets(duration=1.0) if p.ifindex == idx and not p.outgoing]
    assert got == [(frame[14:], 0x0800)]


@pytest.mark.parametrize("version", VERSIONS)
def test_dgram_capture_on_named_interface(net: VethPair, version: int) -> None:
    frame = udp_frame(net.outer_mac, net.inner_mac, b"dgram")
    with Capture(net.outer, version=version, sock_type="dgram") as cap:
        net.send([frame])
        got = [(p.data, p.src_addr) for p in incoming(cap, 1)]
    assert got == [(frame[14:], mac(net.inner_mac))]


def test_promiscuous_mode_is_set_and_dropped(net: VethPair) -> None:
    def promisc() -> bool:
        with open(f"/sys/class/net/{net.outer}/flags") as f:
            return bool(int(f.read(), 16) & 0x100)

    assert not promisc()
    with Capture(net.outer, promisc=True):
        assert promisc()
    assert not promisc()
    with pytest.raises(Exception, match="promiscuous mode needs a named interface"):
        Capture("any", promisc=True)


def test_copy_thresh_reads_truncated_frames_whole(net: VethPair) -> None:
    small = RingGeometry(version=2, block_size=4096, block_nr=8, frame_size=256, frame_nr=128)
    big = udp_frame(net.outer_mac, net.inner_mac, b"B" * 1000)
    with Capture(net.outer, version=2, geometry=small) as cap:
        net.send([big])
        got = [(p.caplen, p.wire_len, p.status & abi.TP_STATUS_COPY) for p in incoming(cap, 1)]
    assert got[0][0] < len(big) and got[0][1] == len(big) and not got[0][2]
    with Capture(net.outer, version=2, geometry=small, copy_thresh=True) as cap:
        net.send([big, big])
        got2 = [(p.data, p.caplen, bool(p.status & abi.TP_STATUS_COPY)) for p in incoming(cap, 2)]
    assert got2 == [(big, len(big), True)] * 2


def test_close_is_idempotent_and_use_after_close_is_clear(net: VethPair) -> None:
    cap = Capture(net.outer)
    cap.close()
    cap.close()
    with pytest.raises(CaptureClosedError, match="closed"):
        cap.stats()
    with pytest.raises(CaptureClosedError):
        iter(cap)
    with pytest.raises(CaptureClosedError):
        cap.fileno()


def test_close_from_another_thread_ends_iteration(net: VethPair) -> None:
    import threading

    with Capture(net.outer) as cap:
        threading.Timer(0.3, cap.stop).start()
        t = time.monotonic()
        assert list(cap) == []
        assert time.monotonic() - t < 3


def _fds_and_maps() -> tuple[int, int]:
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    return len(os.listdir("/proc/self/fd")), maps


def test_open_close_three_hundred_times_leaks_nothing(net: VethPair) -> None:
    # (test_lifetimes.py runs 10,000 cycles at 64 threads; this one mixes versions and packet views in)
    for v in VERSIONS:  # warm up imports and allocator
        Capture(net.outer, version=v, buffer_size=128 << 10).close()
    gc.collect()
    before = _fds_and_maps()
    for i in range(300):
        with Capture(net.outer, version=VERSIONS[i % 3], buffer_size=128 << 10) as cap:
            if i % 30 == 0:
                net.send([udp_frame(net.outer_mac, net.inner_mac, b"leak")])
                for p in cap.packets(count=1, duration=2):
                    _ = p.data  # a view handed out must not pin the mapping
    gc.collect()
    after = _fds_and_maps()
    assert after[0] == before[0]
    assert after[1] <= before[1] + 2  # the allocator may map an arena, never a ring per open


def test_forked_child_cannot_walk_the_parents_ring(net: VethPair) -> None:
    with Capture(net.outer) as cap:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                cap.stats()
                os.write(w, b"used")
            except CaptureClosedError:
                os.write(w, b"refused")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(r, 16) == b"refused"
        os.close(r)
        os.close(w)
        cap.stats()  # the parent's capture still works


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(InterfaceNotFoundError, match="no interface named 'nosuch0'"):
        Capture("nosuch0")
    with pytest.raises(RingGeometryError, match="version must be 1, 2 or 3"):
        Capture("lo", version=5)
    with pytest.raises(RingGeometryError, match="page size"):
        Capture("lo", version=2, geometry=RingGeometry(version=2, block_size=1000, block_nr=2, frame_size=496,
                                                        frame_nr=4))


def test_non_root_gets_permission_error_with_fix(net: VethPair) -> None:
    import subprocess
    import sys

    code = (
        "import os, afpacket\n"
        "os.setgid(65534); os.setuid(65534)\n"
        f"try:\n    afpacket.Capture({net.outer!r})\n"
        "except afpacket.PermissionDeniedError as e:\n    print('DENIED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "DENIED" in out.stdout and "CAP_NET_RAW" in out.stdout, out.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_fileno_drives_a_select_loop(net: VethPair, version: int) -> None:
    import select

    frames = crafted(net, 5)
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        r, _, _ = select.select([cap.fileno()], [], [], 0.2)
        assert r == []  # idle link: not readable
        net.send(frames)
        got: list[bytes] = []
        deadline = time.monotonic() + 3
        while len(got) < len(frames) and time.monotonic() < deadline:
            r, _, _ = select.select([cap.fileno()], [], [], 0.5)
            while (p := cap.next_packet(timeout=0)) is not None:  # drain without blocking
                got.append(bytes(p))
    assert got == frames


@pytest.mark.parametrize("version", VERSIONS)
def test_packets_kept_by_the_caller_are_never_reused(net: VethPair, version: int) -> None:
    # The walkers recycle packet objects nobody holds; one the caller keeps must stay itself.
    frames = crafted(net, 50)
    with Capture(net.outer, version=version, block_timeout_ms=50) as cap:
        net.send(frames)
        kept = []
        seen = []
        for i, p in enumerate(cap.packets(count=50, duration=3)):
            seen.append(bytes(p))
            if i % 3 == 0:
                kept.append((p, bytes(p)))
            for k, b in kept:  # every kept packet still shows its own frame, or has expired
                try:
                    assert bytes(k) == b
                except PacketExpiredError:
                    pass
        assert len({id(k) for k, _ in kept}) == len(kept)
    assert seen == frames


def test_v3_ring_holds_a_burst_it_has_room_for(net: VethPair) -> None:
    # The kernel retires a partly filled block at every block timeout; with too few, too large blocks
    # a reader that falls behind loses most of the ring. The default layout must hold what fits.
    frame = ether(net.outer_mac, net.inner_mac, 0x88B5, b"h" * 50)
    sent = 200_000
    with Capture(net.outer, version=3, buffer_size=64 << 20) as cap:
        trafgen(net, frame, sent)  # not read while it runs
        got = sum(1 for _ in cap.packets(duration=2.0))
        st = cap.stats()
    assert (got, st.drops) == (sent, 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_frames_gives_the_bytes_of_every_packet(net: VethPair, version: int) -> None:
    frames = crafted(net, 300)
    with Capture(net.outer, version=version, block_timeout_ms=2) as cap:
        net.send(frames)
        got = list(cap.frames(duration=2))
        assert list(cap.frames(duration=0.2)) == []  # nothing more arrived
        net.send(frames[:3])
        assert list(cap.frames(count=2, duration=3)) == frames[:2]
        assert list(cap.frames(count=1, duration=3)) == frames[2:3]  # count keeps the rest of a batch
    assert got == frames


def test_frames_reads_copy_thresh_frames_whole(net: VethPair) -> None:
    small = RingGeometry(version=2, block_size=4096, block_nr=8, frame_size=256, frame_nr=128)
    big = udp_frame(net.outer_mac, net.inner_mac, b"F" * 1000)
    with Capture(net.outer, version=2, geometry=small, copy_thresh=True, ignore_outgoing=True) as cap:
        net.send([big])
        assert list(cap.frames(count=1, duration=3)) == [big]


def test_buffers_derived_from_views_do_not_break_the_walk_or_close(net: VethPair) -> None:
    # Views the capture hands out are revoked with their batch; buffers made *from* them (another
    # memoryview, an exported buffer) cannot be revoked from Python. They must not break anything.
    frames = crafted(net, 6)
    cap = Capture(net.outer, version=3, block_timeout_ms=2)
    net.send(frames[:2])
    p = cap.next_packet(timeout=3)
    assert p is not None
    derived = memoryview(p.data)
    exported = p.data
    import pickle

    pinned = pickle.PickleBuffer(exported)  # holds an export of the view itself (as numpy arrays do)
    pinned2 = exported.cast("B")
    time.sleep(0.05)
    net.send(frames[2:])
    got = [bytes(q) for q in cap.packets(count=5, duration=3)]
    assert got == frames[1:]
    with pytest.warns(ResourceWarning, match="derived from a packet's data view"):
        cap.close()
    with pytest.raises(CaptureClosedError):
        cap.stats()
    del derived, pinned, pinned2, exported

"""The Python API as a scapy or tcpdump user meets it, on real traffic over a veth pair: loops that end
on an idle link, bad arguments refused at the call with the parameter named, frames of any bytes-like
type (scapy packets included) sent, and savefile formats chosen by the file name.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import udp_frame
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from afpacket import AfPacketError, Capture, CaptureFile, Record, Transmitter, dump, open_reader
from afpacket.errors import ArgumentError
from afpacket.testnet import VethPair
from afpacket.tofile import format_for, open_for, tee

OTHER_MAC = "02:00:00:00:00:99"  # not the outer end's: the kernel drops these frames, sockets still see them
SRC_IP, DST_IP = "198.18.0.10", "198.18.0.20"
VERSIONS = [1, 2, 3]


@pytest.fixture
def quiet_net() -> Iterator[VethPair]:
    with VethPair("afpa", addresses=False) as pair:
        yield pair


def frames_for(net: VethPair, n: int, tag: int = 0) -> list[bytes]:
    return [
        udp_frame(OTHER_MAC, net.inner_mac, b"api %d %d" % (tag, i), sport=40000 + i, dport=9, src=SRC_IP, dst=DST_IP)
        for i in range(n)
    ]


def send_later(net: VethPair, frames: list[bytes], gap: float, delay: float = 0.0) -> threading.Thread:
    """Send ``frames`` from the inner end in a thread, ``gap`` seconds apart, after ``delay``."""

    def run() -> None:
        time.sleep(delay)
        net.send(frames, gap=gap)

    th = threading.Thread(target=run)
    th.start()
    return th


# --- the poll timeout is not a capture duration --------------------------------------------------
def test_timeout_on_capture_is_a_deprecated_alias_of_poll_timeout(quiet_net: VethPair) -> None:
    with pytest.warns(DeprecationWarning) as caught:
        cap = Capture(quiet_net.outer, timeout=0.25)
    text = str(caught[0].message)
    assert "poll_timeout" in text and "packets(duration=" in text and "packets(timeout=" in text
    assert caught[0].filename == __file__  # points at the caller's line
    with cap:
        assert cap.poll_timeout == 0.25
        with pytest.warns(DeprecationWarning, match="poll_timeout"):
            assert cap.timeout == 0.25
        t = time.monotonic()
        assert cap.next_packet() is None  # the poll timeout is next_packet()'s default
        assert 0.2 <= time.monotonic() - t < 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Capture(quiet_net.outer, poll_timeout=0.1).close()  # the new name warns nothing
    with pytest.warns(DeprecationWarning), pytest.raises(AfPacketError, match="not both"):
        Capture(quiet_net.outer, poll_timeout=1, timeout=1)


@pytest.mark.parametrize("version", VERSIONS)
def test_idle_timeout_ends_the_loop_and_loses_nothing(quiet_net: VethPair, version: int) -> None:
    net = quiet_net
    burst1, burst2, after = frames_for(net, 40, 1), frames_for(net, 40, 2), frames_for(net, 7, 3)
    with Capture(net.outer, version=version, block_timeout_ms=2, filter="udp") as cap:
        # two bursts 0.4 s apart: a 1 s idle timeout spans the gap and ends 1 s after the last packet
        th = send_later(net, burst1, 0.0)
        th.join()
        th = send_later(net, burst2, 0.0, delay=0.4)
        got, last_at = [], 0.0
        for pkt in cap.packets(timeout=1.0, duration=15):  # duration: a safety net only
            got.append(bytes(pkt))
            last_at = time.monotonic()
        ended = time.monotonic()
        th.join()
        assert got == burst1 + burst2
        assert 0.9 <= ended - last_at < 2.5
        # nothing was lost: the kernel's counters match, and later packets are all there
        st = cap.stats()
        assert (st.received, st.drops, st.packets) == (80, 0, 80)
        net.send(after)
        assert [bytes(p) for p in cap.packets(count=7, timeout=3)] == after
        st = cap.stats()
        assert (st.received, st.drops) == (87, 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_idle_timeout_is_restarted_by_every_packet(quiet_net: VethPair, version: int) -> None:
    net = quiet_net
    frames = frames_for(net, 12)
    with Capture(net.outer, version=version, block_timeout_ms=2, filter="udp") as cap:
        th = send_later(net, frames, gap=0.15)  # 1.8 s of traffic, never 0.6 s without a packet
        start = time.monotonic()
        got = [bytes(p) for p in cap.packets(timeout=0.6, duration=20)]
        elapsed = time.monotonic() - start
        th.join()
    assert got == frames
    assert elapsed >= 1.6 + 0.6  # the whole stream, then the idle time


@pytest.mark.parametrize("version", VERSIONS)
def test_a_slow_consumer_does_not_end_an_idle_loop(quiet_net: VethPair, version: int) -> None:
    net = quiet_net
    frames = frames_for(net, 30)
    with Capture(net.outer, version=version, block_timeout_ms=2, filter="udp") as cap:
        net.send(frames)
        time.sleep(0.05)
        got = []
        for pkt in cap.packets(timeout=0.3, duration=15):
            got.append(bytes(pkt))
            if len(got) in (1, 15):
                time.sleep(0.5)  # longer than the idle timeout; the rest waits in the ring
    assert got == frames


@pytest.mark.parametrize("version", VERSIONS)
def test_frames_and_columns_end_on_an_idle_link_too(quiet_net: VethPair, version: int) -> None:
    net = quiet_net
    frames = frames_for(net, 20)
    with Capture(net.outer, version=version, block_timeout_ms=2, filter="udp") as cap:
        net.send(frames)
        t = time.monotonic()
        assert list(cap.frames(timeout=0.5, duration=15)) == frames
        assert 0.45 <= time.monotonic() - t < 3
        net.send(frames)
        assert sum(len(c) for c in cap.columns(timeout=0.5, duration=15)) == 20
        assert list(cap.frames(count=5, timeout=0.3)) == []  # idle: ends with nothing
        assert cap.stats().received == 40


def test_idle_timeout_on_an_idle_link_ends_like_scapys_sniff(quiet_net: VethPair) -> None:
    with Capture(quiet_net.outer, block_timeout_ms=2) as cap:
        t = time.monotonic()
        assert list(cap.packets(timeout=0.4, duration=15)) == []
        assert 0.35 <= time.monotonic() - t < 1.5
        t = time.monotonic()
        assert list(cap.packets(timeout=0, duration=15)) == []  # 0: only what is already there
        assert time.monotonic() - t < 0.5


@pytest.mark.parametrize(("kwargs", "error", "words"), [
    ({"timeout": -1}, ArgumentError, "timeout"),
    ({"timeout": math.nan}, ArgumentError, "timeout"),
    ({"timeout": math.inf}, ArgumentError, "timeout"),
    ({"timeout": "2"}, TypeError, "timeout"),
    ({"timeout": True}, TypeError, "timeout"),
    ({"duration": -0.5}, ArgumentError, "duration"),
    ({"duration": math.nan}, ArgumentError, "duration"),
    ({"duration": [1]}, TypeError, "duration"),
    ({"count": -1}, ArgumentError, "count"),
    ({"count": 1.5}, TypeError, "count"),
    ({"count": "10"}, TypeError, "count"),
])
def test_bad_limits_are_refused_at_the_call(quiet_net: VethPair, kwargs: dict[str, object], error: type,
                                            words: str) -> None:
    with Capture(quiet_net.outer) as cap:
        for method in (cap.packets, cap.frames):
            with pytest.raises(error, match=rf"{method.__name__}\(\): {words}"):
                method(**kwargs)  # raises here, not at the first packet
        if "count" not in kwargs:
            for method in (cap.columns, cap.batches):
                with pytest.raises(error, match=words):
                    method(**kwargs)
        if "timeout" in kwargs:
            with pytest.raises(error, match="next_packet"):
                cap.next_packet(**kwargs)  # type: ignore[arg-type]
    assert issubclass(ArgumentError, ValueError) and issubclass(ArgumentError, AfPacketError)
    with pytest.raises(ArgumentError, match="poll_timeout"):
        Capture(quiet_net.outer, poll_timeout=-1)
    with pytest.raises(TypeError, match="interface"):
        Capture(5)  # type: ignore[arg-type]


def test_count_zero_and_numpy_like_numbers(quiet_net: VethPair) -> None:
    from fractions import Fraction

    with Capture(quiet_net.outer) as cap:
        assert list(cap.packets(count=0)) == []
        assert list(cap.packets(duration=Fraction(1, 10))) == []  # any real number of seconds


# --- frames of any bytes-like type, and scapy packets ---------------------------------------------
class NotAFrame:
    pass


@pytest.mark.parametrize("version", [1, 2, 3])
def test_send_takes_bytes_likes_and_objects_with_bytes(quiet_net: VethPair, tmp_path: Path, version: int) -> None:
    net = quiet_net
    base = frames_for(net, 8)
    scapy_pkt = Ether(src=net.outer_mac, dst=OTHER_MAC) / IP(src=SRC_IP, dst=DST_IP) / UDP(sport=5, dport=9) / b"sc"
    record = Record(0, base[7], len(base[7]))
    variants: list[object] = [
        base[0], bytearray(base[1]), memoryview(base[2]), array("B", base[3]),
        memoryview(base[4] + b"\0").cast("B")[:-1], scapy_pkt, record,
    ]
    expected = [*base[:5], bytes(scapy_pkt), base[7]]
    with Capture(net.outer, version=3, block_timeout_ms=2, filter="udp") as cap, \
            Transmitter(net.outer, version=version, frame_count=64) as tx:
        for v in variants:
            tx.send(v)  # type: ignore[arg-type]
        assert tx.send_many(iter(variants)) == len(variants)  # any iterable, mixed types
        assert tx.send_many(tuple(variants)) == len(variants)
        assert tx.send_repeated([scapy_pkt], 4) == 4
        tx.flush()
        assert tx.stats().sent == 3 * len(variants) + 4 and tx.stats().failed == 0
        seen = [p for p in cap.packets(count=3 * len(variants) + 4, timeout=3)]
        assert all(p.outgoing for p in seen)  # what the kernel sent on the outer end
        got = [bytes(p) for p in seen]
        # a captured packet goes back out as it is
        tx.send(seen[0])
        tx.flush()
        again = next(cap.packets(count=1, timeout=3))
        assert bytes(again) == expected[0]
    assert got == expected * 3 + [bytes(scapy_pkt)] * 4


def test_anything_else_is_a_type_error_naming_the_type(quiet_net: VethPair) -> None:
    net = quiet_net
    good = frames_for(net, 1)[0]
    with Transmitter(net.outer, frame_count=16) as tx:
        refused = [("text", "str"), (5, "int"), ([1, 2, 3], "list"), (None, "NoneType"), (NotAFrame(), "NotAFrame")]
        for bad, name in refused:
            with pytest.raises(TypeError, match=rf"bytes-like.*__bytes__.*not {name}"):
                tx.send(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=rf"not {name}"):
                tx.send_many([good, bad, good])  # type: ignore[list-item]
        # nothing was queued by the refused calls, and the ring still works
        assert tx.stats().sent == 0 and tx.stats().pending == 0
        tx.send(good)
        tx.flush()
        assert tx.stats().sent == 1
        with pytest.raises(TypeError, match="count"):
            tx.send_repeated([good], None)  # type: ignore[arg-type]
        with pytest.raises(ArgumentError, match="count"):
            tx.send_repeated([good], -3)


# --- savefile options: checked, and the format from the file name ---------------------------------
def magic(path: Path) -> str:
    head = path.read_bytes()[:4]
    if head == b"\x0a\x0d\x0d\x0a":
        return "pcapng"
    return "pcap" if head in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else "?"


@pytest.mark.parametrize(("name", "fmt", "expected"), [
    ("out.pcapng", None, "pcapng"), ("OUT.PCAPNG", None, "pcapng"), ("trace.ntar", None, "pcapng"),
    ("out.pcap", None, "pcap"), ("out.cap", None, "pcap"), ("out", None, "pcap"), ("out.pcapng.1", None, "pcap"),
    ("out.pcapng", "pcap", "pcap"), ("out.pcap", "pcapng", "pcapng"),  # an explicit fmt wins, as in tcpdump
])
def test_format_follows_the_file_name_unless_given(quiet_net: VethPair, tmp_path: Path, name: str,
                                                   fmt: str | None, expected: str) -> None:
    net = quiet_net
    frames = frames_for(net, 3)
    path = tmp_path / name
    assert format_for(path, fmt) == expected
    with Capture(net.outer, block_timeout_ms=2, filter="udp") as cap:
        net.send(frames)
        assert dump(cap, path, fmt=fmt, count=3, timeout=3) == 3  # type: ignore[arg-type]
    assert magic(path) == expected
    assert [r.data for r in open_reader(path)] == frames
    out = CaptureFile(str(tmp_path / ("direct-" + name)), fmt=fmt, linktype=1, snaplen=65535)  # type: ignore[arg-type]
    assert out.fmt == expected
    out.close()


def test_savefile_options_are_checked(quiet_net: VethPair, tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    with Capture(quiet_net.outer) as cap:
        with pytest.raises(TypeError, match="bogus"):
            dump(cap, path, fmt="pcap", bogus=3)  # type: ignore[call-arg]
        with pytest.raises(ArgumentError, match=r"fmt must be one of 'pcap', 'pcapng', got 'pcapx'"):
            dump(cap, path, fmt="pcapx")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="bogus"):
            open_for(cap, path, bogus=True)  # type: ignore[call-arg]
        with pytest.raises(ArgumentError, match="count"):
            dump(cap, path, count=-5)
        with pytest.raises(ArgumentError, match="timeout"):
            dump(cap, path, timeout=math.nan)
        with Capture("any") as anycap, pytest.raises(ArgumentError, match="cooked"):
            open_for(anycap, path, cooked=3)
        with pytest.raises(TypeError, match="CaptureFile"):
            tee(cap.packets(), "out.pcap")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="capture"):
            open_for("eth0", path)  # type: ignore[arg-type]
    assert not path.exists()  # nothing was created by a refused call
    for kwargs, error, word in (
        ({"file_size": -1}, ArgumentError, "file_size"),
        ({"file_count": -1}, ArgumentError, "file_count"),
        ({"rotate_seconds": math.inf}, ArgumentError, "rotate_seconds"),
        ({"snaplen": 0}, ArgumentError, "snaplen"),
        ({"nanosecond": "yes"}, TypeError, "nanosecond"),
        ({"linktype": "EN10MB"}, TypeError, "linktype"),
    ):
        args: dict[str, object] = {"linktype": 1, "snaplen": 65535, **kwargs}
        with pytest.raises(error, match=word):
            CaptureFile(str(path), **args)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        CaptureFile(42, linktype=1, snaplen=65535)  # type: ignore[arg-type]
    assert not path.exists()

"""`afpacket capture -w`: files equal to tcpdump's for the same traffic, readable by tcpdump/tshark/capinfos,
complete after SIGINT, SIGTERM or a vanished interface, and rotated like tcpdump's."""

from __future__ import annotations

import glob
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import dpkt
import pytest
from conftest import ether, trafgen, udp_frame

from afpacket import Capture
from afpacket.savefile import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, open_reader
from afpacket.testnet import VethPair
from afpacket.tofile import dump, open_for

AFPACKET = [sys.executable, "-m", "afpacket"]


@pytest.fixture
def quiet_net() -> VethPair:
    # no addresses: the kernel answers nothing, so both capturers see exactly what was sent
    with VethPair("afpw", addresses=False) as pair:
        yield pair


def start_capture(*args: str, stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([*AFPACKET, "capture", *args], stdout=stdout, stderr=subprocess.PIPE)
    assert p.stderr is not None
    while True:  # "capturing on ... link-type ..." once the ring is set up and bound
        line = p.stderr.readline().decode()
        assert line, "afpacket capture ended before it was listening"
        if "on " in line and "link-type" in line:
            return p


def start_tcpdump(interface: str, path: Path, *extra: str) -> subprocess.Popen[bytes]:
    # libpcap sizes its frames for 64 KiB GSO packets on veth, so its default 2 MB buffer holds ~30
    # frames and a burst overflows it: give the witness room.
    p = subprocess.Popen(["tcpdump", "-i", interface, "-w", str(path), "-U", "--immediate-mode", "-B", "32768",
                          *extra], stderr=subprocess.PIPE)
    assert p.stderr is not None
    while b"listening on" not in p.stderr.readline():
        pass
    return p


def stop(p: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> str:
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    return err.decode()


def dpkt_records(path: Path) -> list[tuple[float, bytes]]:
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        return [(ts, bytes(buf)) for ts, buf in reader]


def traffic(net: VethPair) -> list[bytes]:
    frames = [udp_frame(net.outer_mac, net.inner_mac, bytes([i]) * (10 + i * 13), sport=2000 + i) for i in range(60)]
    inner = udp_frame(net.outer_mac, net.inner_mac, b"vlan")
    frames.append(inner[:12] + struct.pack("!HH", 0x8100, 0x0064) + inner[12:])  # tag stripped on receive
    frames.append(ether("ff:ff:ff:ff:ff:ff", net.inner_mac, 0x0806, bytes(28)))
    return frames


@pytest.mark.parametrize(("fmt", "version"), [("pcap", 3), ("pcapng", 3), ("pcapng", 2), ("pcap", 1)])
def test_same_packets_as_tcpdump_byte_for_byte(quiet_net: VethPair, tmp_path: Path, fmt: str, version: int) -> None:
    net = quiet_net
    ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / "theirs.pcap"
    frames = traffic(net)
    # tcpdump leaves what is still in its ring behind on SIGINT: let it stop by itself after -c
    td = start_tcpdump(net.outer, theirs, "-c", str(len(frames)))
    p = start_capture("-i", net.outer, "-w", str(ours), "--format", fmt, "--tpacket-version", str(version))
    net.send(frames)
    td.wait(timeout=30)
    time.sleep(0.3)
    err = stop(p)
    a, b = dpkt_records(ours), dpkt_records(theirs)
    assert [d for _, d in b] == frames
    assert len(a) == len(b)
    if version == 1:
        # TPACKET_V1 has no VLAN fields: the tag the receive path stripped cannot be put back
        vlan = frames[60]
        frames = [*frames[:60], vlan[:12] + vlan[16:], *frames[61:]]
    assert [d for _, d in a] == frames  # with the VLAN tag put back (V2, V3)
    assert f"{len(frames)} packets captured" in err
    # each socket is stamped as the kernel hands it the packet: the same moments, within a little
    assert all(abs(x - y) < 0.05 for (x, _), (y, _) in zip(a, b, strict=True))
    assert [x for x, _ in a] == sorted(x for x, _ in a)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_peers_read_our_files_with_exact_nanoseconds(quiet_net: VethPair, tmp_path: Path, fmt: str) -> None:
    net = quiet_net
    path = tmp_path / f"cap.{fmt}"
    p = start_capture("-i", net.outer, "-w", str(path), "--format", fmt, "--time-stamp-precision", "nano")
    frames = traffic(net)[:20]
    net.send(frames)
    time.sleep(0.4)
    stop(p)
    ours = [(r.timestamp_ns, r.data) for r in open_reader(str(path))]
    assert [d for _, d in ours] == frames
    assert any(ts % 1000 for ts, _ in ours)  # real ns, not µs scaled
    epochs = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
                            capture_output=True, text=True, check=True).stdout.split()
    assert [int(e.replace(".", "")) for e in epochs] == [ts for ts, _ in ours]
    nano = subprocess.run(["tcpdump", "-r", str(path), "--nano", "-tt", "-n"], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    assert [int(line.split()[0].replace(".", "")) for line in nano] == [ts for ts, _ in ours]
    info = subprocess.run(["capinfos", "-c", "-M", str(path)], capture_output=True, text=True, check=True).stdout
    assert f"Number of packets:   {len(frames)}" in info


def test_pcapng_records_interface_direction_and_kernel_stats(quiet_net: VethPair, tmp_path: Path) -> None:
    net = quiet_net
    path = tmp_path / "cap.pcapng"
    with Capture(net.outer, block_timeout_ms=2) as cap:
        net.send(traffic(net)[:5])
        n = dump(cap, str(path), fmt="pcapng", duration=0.5)
    assert n == 5
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name",
                          "-e", "frame.packet_flags_direction"], capture_output=True, text=True, check=True).stdout
    name, direction = out.split("\n")[0].split("\t")
    assert name == net.outer and int(direction, 16) & 0x3 == 1  # inbound
    reader = open_reader(str(path))
    assert len(list(reader)) == 5
    assert reader.interface_stats == {0: (5, 0)}  # type: ignore[union-attr]


def test_write_to_stdout_pipes_into_tcpdump(quiet_net: VethPair) -> None:
    net = quiet_net
    p = start_capture("-i", net.outer, "-w", "-", "-c", "20", stdout=subprocess.PIPE)
    td = subprocess.Popen(["tcpdump", "-n", "-r", "-"], stdin=p.stdout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    p.stdout.close()
    net.send(traffic(net)[:20])
    out, _ = td.communicate(timeout=30)
    p.wait(timeout=30)
    assert len(out.splitlines()) == 20 and "UDP" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_million_packet_capture_leaves_complete_file(quiet_net: VethPair, tmp_path: Path,
                                                                  sig: int) -> None:
    net = quiet_net
    path = tmp_path / "big.pcap"
    p = start_capture("-i", net.outer, "-w", str(path), "-B", "65536")
    frame = ether(net.outer_mac, net.inner_mac, 0x88B5, b"b" * 50)
    gen = subprocess.Popen(["ip", "netns", "exec", net.netns, sys.executable, "-c", "pass"])  # warm ip netns
    gen.wait()
    import threading

    th = threading.Thread(target=trafgen, args=(net, frame, 1_000_000))
    th.start()
    time.sleep(1.0)  # in the middle of the run
    err = stop(p, sig)
    th.join()
    captured = int(err.split(" packets captured")[0].split()[-1])
    assert captured > 0
    records = sum(1 for _ in open_reader(str(path)))
    assert records == captured
    r = subprocess.run(["tcpdump", "-r", str(path), "-n", "-q"], capture_output=True, text=True)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == captured


def test_vanished_interface_ends_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "gone.pcap"
    net = VethPair("afpg", addresses=False)
    net.create()
    try:
        p = start_capture("-i", net.outer, "-w", str(path))
        net.send(traffic(net)[:10])
        time.sleep(0.3)
    finally:
        net.delete()
    _, err = p.communicate(timeout=30)
    text = err.decode()
    assert p.returncode == 1
    assert "the interface went away (it was removed" in text and "Traceback" not in text
    captured = int(text.split(" packets captured")[0].split()[-1])
    assert captured == 10 == sum(1 for _ in open_reader(str(path)))


def test_size_rotation_with_file_ring(quiet_net: VethPair, tmp_path: Path) -> None:
    net = quiet_net
    base = tmp_path / "ring.pcap"
    p = start_capture("-i", net.outer, "-w", str(base), "-C", "0.01", "-W", "3")  # 10 kB files, ring of 3
    frame = ether(net.outer_mac, net.inner_mac, 0x88B5, b"r" * 986)  # 1000-byte frames
    net.send([frame] * 50)
    time.sleep(0.5)
    err = stop(p)
    files = sorted(glob.glob(str(base) + "*"))
    assert [os.path.basename(f) for f in files] == ["ring.pcap0", "ring.pcap1", "ring.pcap2"]
    counts = [sum(1 for _ in open_reader(f)) for f in files]
    assert all(c > 0 for c in counts)
    assert "50 packets captured" in err
    for f in files:  # every file is complete on its own
        assert subprocess.run(["capinfos", f], capture_output=True).returncode == 0


def test_size_rotation_numbers_files_like_tcpdump(quiet_net: VethPair, tmp_path: Path) -> None:
    net = quiet_net
    base = tmp_path / "seq.pcap"
    p = start_capture("-i", net.outer, "-w", str(base), "-C", "0.01")
    net.send([ether(net.outer_mac, net.inner_mac, 0x88B5, b"s" * 986)] * 25)
    time.sleep(0.5)
    stop(p)
    names = sorted(os.path.basename(f) for f in glob.glob(str(base) + "*"))
    assert names == ["seq.pcap", "seq.pcap1", "seq.pcap2"]
    assert sum(sum(1 for _ in open_reader(str(tmp_path / n))) for n in names) == 25


def test_time_rotation_stops_after_w_files(quiet_net: VethPair, tmp_path: Path) -> None:
    net = quiet_net
    template = str(tmp_path / "t-%H%M%S.pcap")
    p = start_capture("-i", net.outer, "-w", template, "-G", "1", "-W", "2")
    deadline = time.monotonic() + 15
    while p.poll() is None and time.monotonic() < deadline:
        net.send([ether(net.outer_mac, net.inner_mac, 0x88B5, b"g" * 46)])
        time.sleep(0.2)
    assert p.poll() == 0  # ended by itself after 2 files
    files = sorted(glob.glob(str(tmp_path / "t-*.pcap")))
    assert len(files) == 2
    assert all(sum(1 for _ in open_reader(f)) > 0 for f in files)


def test_rotation_needs_a_file() -> None:
    r = subprocess.run([*AFPACKET, "capture", "-i", "lo", "-C", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "add -w FILE" in r.stderr


def test_any_capture_to_pcapng_describes_each_interface(tmp_path: Path) -> None:
    path = tmp_path / "any.pcapng"
    with VethPair("afpa", addresses=False) as a, VethPair("afpb", addresses=False) as b:
        with Capture("any", block_timeout_ms=2) as cap:
            a.send([ether(a.outer_mac, a.inner_mac, 0x88B5, b"a" * 46)] * 2)
            b.send([ether(b.outer_mac, b.inner_mac, 0x88B5, b"b" * 46)] * 3)
            dump(cap, str(path), fmt="pcapng", duration=0.5)
        a_index = socket.if_nametoindex(a.outer)
        reader = open_reader(str(path))
        records = [(r.interface_id, r.data) for r in reader]
        names = {i: iface.name for i, iface in enumerate(reader.interfaces)}  # type: ignore[union-attr]
    ours = [(names[i], d) for i, d in records if names[i] in (a.outer, b.outer)]
    assert [n for n, _ in ours] == [a.outer] * 2 + [b.outer] * 3
    # cooked v2 (SLL2, tcpdump's default for any) records: the 20-byte header names the protocol and the
    # interface index, then the payload after the Ethernet header
    assert reader.linktype == LINKTYPE_LINUX_SLL2
    assert all(d[0:2] == b"\x88\xb5" and len(d) == 20 + 46 for _, d in ours)
    assert {int.from_bytes(d[4:8], "big") for n, d in ours if n == a.outer} == {a_index}
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.interface_name", "-e", "sll.ifindex"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split("\t")[0] for line in out if line.split("\t")[0] in (a.outer, b.outer)] == [n for n, _ in ours]


@pytest.mark.parametrize("nano", [False, True])
def test_dump_block_fast_path_honours_count_and_precision(quiet_net: VethPair, tmp_path: Path, nano: bool) -> None:
    net = quiet_net
    path = tmp_path / "fast.pcap"
    frames = traffic(net)
    with Capture(net.outer, version=3, block_timeout_ms=2) as cap:
        net.send(frames)
        time.sleep(0.2)
        assert dump(cap, str(path), count=40, nanosecond=nano) == 40
    got = dpkt_records(path)
    assert [d for _, d in got] == frames[:40]
    ours = list(open_reader(str(path)))
    sub_us = [r.timestamp_ns % 1000 for r in ours]
    assert any(sub_us) if nano else not any(sub_us)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_block_fast_path_writes_what_the_packet_path_writes(quiet_net: VethPair, tmp_path: Path, fmt: str) -> None:
    from afpacket.tofile import open_for

    net = quiet_net
    frames = traffic(net)
    fast, slow = tmp_path / f"fast.{fmt}", tmp_path / f"slow.{fmt}"
    with Capture(net.outer, version=3, block_timeout_ms=2) as a, Capture(net.outer, version=3, block_timeout_ms=2) as b:
        net.send(frames)
        time.sleep(0.2)
        assert dump(a, str(fast), fmt=fmt, duration=0.5, nanosecond=True) == len(frames)  # block at a time
        out = open_for(b, str(slow), fmt, nanosecond=True)
        for pkt in b.packets(count=len(frames), duration=3):  # packet by packet
            out.write_packet(pkt, True)
        out.close()
    f = [(r.data, r.wire_len, r.flags, r.interface_id) for r in open_reader(str(fast))]
    s = [(r.data, r.wire_len, r.flags, r.interface_id) for r in open_reader(str(slow))]
    assert f == s and [d for d, *_ in f] == frames


@pytest.mark.parametrize("cooked", [1, 2])
def test_any_capture_cooked_header_version(tmp_path: Path, cooked: int) -> None:
    """``cooked=1`` writes SLL (16 bytes) for readers that predate SLL2; tcpdump reads both the same way."""
    path = tmp_path / "any.pcap"
    with VethPair("afpc", addresses=False) as a:
        with Capture("any", block_timeout_ms=2) as cap:
            a.send([ether(a.outer_mac, a.inner_mac, 0x88B5, b"c" * 46)] * 3)
            out = open_for(cap, str(path), "pcap", cooked=cooked)
            out.consume(cap, None, 0.5)
            out.close()
        recs = [r for r in open_reader(str(path)) if r.data.endswith(b"c" * 46)]
        assert len(recs) == 3
        assert open_reader(str(path)).linktype == (LINKTYPE_LINUX_SLL2 if cooked == 2 else LINKTYPE_LINUX_SLL)
        assert all(len(r.data) == (20 if cooked == 2 else 16) + 46 for r in recs)
        lines = subprocess.run(["tcpdump", "-n", "-e", "-r", str(path), "ether proto 0x88b5"], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        heads = [line for line in lines if not line.startswith("\t")]  # tcpdump hex-dumps unknown payloads
        assert len(heads) == 3 and all("ethertype Unknown (0x88b5)" in line for line in heads)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_size_rotation_through_write_counts_what_is_written(tmp_path: Path, fmt: str) -> None:
    # -C through the per-packet path (printing captures use it): a file is rotated once it holds more
    # than file_size bytes, as tcpdump does, so each finished file is over the limit by less than one record.
    from afpacket import CaptureFile

    limit = 10_000
    out = CaptureFile(tmp_path / f"w.{fmt}", fmt=fmt, linktype=1, snaplen=262144, file_size=limit)  # type: ignore[arg-type]
    sizes = [61, 64, 97, 1514, 3]
    for n in range(300):
        out.write(n * 1000, bytes(sizes[n % len(sizes)]), sizes[n % len(sizes)], ifindex=1, pkttype=0)
    out.close()
    files = [Path(f) for f in out.files]
    assert len(files) >= 5
    record_max = 32 + 16 + 1514 + 3  # EPB with its flags option, the largest frame, padding
    for f in files[:-1]:
        assert limit < f.stat().st_size <= limit + record_max, (f, f.stat().st_size)
    assert sum(len(list(open_reader(str(f)))) for f in files) == 300


def _distinct(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


@pytest.mark.parametrize(("rotate_seconds", "file_size"), [(1e-9, None), (1e-9, 10**9), (None, 1)],
                         ids=["period 1 ns", "period 1 ns, numbered files", "size 1 byte"])
def test_tiny_rotation_limits_write_every_record_and_end(tmp_path: Path, rotate_seconds: float | None,
                                                         file_size: int | None) -> None:
    """A period shorter than writing one record, or a size below a file header: every record still finds
    a file. As tcpdump rotates at most once per packet, a file a rotation opens takes the record that
    opened it (such a limit once made CaptureFile open new files forever without writing)."""
    from afpacket import CaptureFile

    out = CaptureFile(tmp_path / "t.pcap", linktype=1, snaplen=262144, rotate_seconds=rotate_seconds,
                      file_size=file_size)
    frames = [bytes([i]) * 60 for i in range(40)]
    for i, frame in enumerate(frames):
        out.write(1_700_000_000_000_000_000 + i * 1000, frame, len(frame))
    out.close()
    assert out.written == len(frames) and out.not_written == 0
    files = _distinct(out.files)
    held = [[r.data for r in open_reader(f)] for f in files]
    assert all(len(h) <= 1 for h in held)  # one record per file: the one that opened it
    if file_size is None:  # one name, reopened by every rotation: only the last record is left
        assert files == [str(tmp_path / "t.pcap")] and held == [frames[-1:]]
        assert out.overwritten == len(frames) - 1
    else:  # t.pcap, t.pcap1, t.pcap2, ...: every record, in order
        assert [d for h in held for d in h] == frames and out.overwritten == 0


@pytest.mark.parametrize(("rotate_seconds", "file_size"), [(1e-9, 10**9), (None, 1)], ids=["period 1 ns", "size 1"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_tiny_rotation_limits_through_the_block_path_end(quiet_net: VethPair, tmp_path: Path, fmt: str,
                                                         rotate_seconds: float | None, file_size: int | None) -> None:
    """The same limits through consume(), the block-at-a-time path `capture -w` takes: the capture ends
    at its duration with every packet in a file, in order. (A time limit is checked between the runs of
    records the ring kernels write, so a 1 ns period gives a file per run; the size limit stops a run at
    the record that passes it, so a 1-byte limit gives a file per packet.)"""
    net = quiet_net
    frames = traffic(net)[:30]
    with Capture(net.outer, version=3, block_timeout_ms=2) as cap:
        out = open_for(cap, str(tmp_path / f"b.{fmt}"), fmt, rotate_seconds=rotate_seconds,  # type: ignore[arg-type]
                       file_size=file_size)
        net.send(frames)
        started = time.monotonic()
        taken = out.consume(cap, duration=1.0)
        elapsed = time.monotonic() - started
        out.close()
    assert taken == out.written == len(frames) and elapsed < 10
    files = _distinct(out.files)
    held = [[r.data for r in open_reader(f)] for f in files]
    assert [d for h in held for d in h] == frames
    assert len(files) >= 2  # the first file is over its limit before the first packet, and rotated
    if rotate_seconds is None:
        assert all(len(h) <= 1 for h in held)


def test_time_rotation_onto_one_name_says_overwritten_not_w(quiet_net: VethPair, tmp_path: Path) -> None:
    """-G without -W and a name with no strftime fields: every new file has the same name and replaces the
    last one (as in tcpdump). The summary says so, and does not blame -W, which was not given."""
    net = quiet_net
    path = tmp_path / "same.pcap"
    p = start_capture("-i", net.outer, "-w", str(path), "-G", "0.05")
    for i in range(5):  # each packet well after the last file's period
        time.sleep(0.15)
        net.send([ether(net.outer_mac, net.inner_mac, 0x88B5, bytes([i]) * 46)])
    time.sleep(0.3)
    err = stop(p)
    assert p.returncode == 0, err
    kept = [r.data for r in open_reader(str(path))]
    assert "5 packets captured" in err and kept and kept[-1].endswith(bytes([4]) * 46)
    gone = 5 - len(kept)
    assert gone >= 1
    assert (f"{gone} packet{'s' if gone != 1 else ''} of them in files since overwritten: -G opened a file of the "
            "same name again (put strftime fields such as %H%M%S in the -w name)") in err, err
    assert "reused by -W" not in err


def test_pcapng_interface_snaplen_zero_keeps_whole_frames(tmp_path: Path) -> None:
    """pcapng's SnapLen 0 means "no limit": records of such an interface are kept whole (they were once
    cut to 0 bytes), and tshark reads them whole."""
    from afpacket.savefile import PcapngWriter

    path = tmp_path / "nolimit.pcapng"
    frames = [bytes([i]) * n for i, n in enumerate((60, 1514, 9000))]
    with PcapngWriter(str(path)) as w:
        iface = w.add_interface("x", 1, 0)
        for i, frame in enumerate(frames):
            w.write(i * 1000, frame, interface_id=iface)
    assert [r.data for r in open_reader(str(path))] == frames
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.cap_len"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [str(len(f)) for f in frames]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_short_file_declaring_a_16_mib_record_costs_little_memory(tmp_path: Path, fmt: str) -> None:
    """A record (pcap) or block (pcapng) may declare up to 16 MiB; in a file that ends after 1000 of them,
    the reader reports the truncation having allocated about one read chunk (1 MiB), not the 16 MiB the
    header claims. (A reader test, kept beside the files `capture -w` writes.)"""
    import tracemalloc

    from afpacket.errors import SavefileError
    from afpacket.savefile._io import READ_CHUNK

    path = tmp_path / f"short.{fmt}"
    if fmt == "pcap":
        head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 1 << 24, 1)
        head += struct.pack("<IIII", 0, 0, (1 << 24) - 16, 1 << 24)  # within the file's own snaplen
    else:
        body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        head = struct.pack("<II", 0x0A0D0D0A, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
        head += struct.pack("<II", 0x00000BAD, 16 << 20)  # an unknown block type, as long as libpcap allows
    path.write_bytes(head + b"x" * 1000)
    tracemalloc.start()
    try:
        with pytest.raises(SavefileError, match=r"truncated (record|block).*1000 of"):
            list(open_reader(str(path)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < READ_CHUNK + (256 << 10), peak


def test_read_error_after_a_short_read_is_a_savefile_error() -> None:
    """A source that returns a short read (as a pipe does) and then fails: the failure is the reader's
    SavefileError naming the offset, whichever read it hit (the second once escaped as a raw OSError)."""
    import errno
    import io

    from afpacket.errors import SavefileError

    class Flaky(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
            self.calls += 1
            if self.calls == 1:
                b[:2] = struct.pack("<I", 0xA1B2C3D4)[:2]  # half of the magic
                return 2
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(SavefileError, match="reading at byte offset 0 failed: Input/output error"):
        open_reader(Flaky())  # type: ignore[arg-type]

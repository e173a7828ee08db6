"""`afpacket.dump()` keeps every packet it took, whatever ends it.

close() or stop() from another thread, a count or a duration, a full disk: the file is closed, ends with a
whole record, and holds exactly the packets dump() says it wrote, in the order they arrived.
"""

from __future__ import annotations

import random
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import udp_frame

from afpacket import Capture, SavefileError, dump, open_reader
from afpacket.testnet import VethPair
from afpacket.tofile import CaptureFile, open_for

FRAMES = 500
MAGIC = b"DUMPSEQ!"


def frames_for(net: VethPair, n: int = FRAMES) -> list[bytes]:
    """UDP frames whose payload carries a sequence number, so a file's records can be matched to them."""
    return [udp_frame(net.outer_mac, net.inner_mac, MAGIC + struct.pack("!I", i) + bytes(40)) for i in range(n)]


def sequence(path: Path) -> list[int]:
    """The sequence numbers of the file's records, read back with afpacket."""
    seqs = []
    with open_reader(str(path)) as reader:
        for rec in reader:
            at = rec.data.find(MAGIC)
            assert at >= 0, "a record that is not one of the frames sent"
            (seq,) = struct.unpack_from("!I", rec.data, at + len(MAGIC))
            seqs.append(seq)
    return seqs


def tcpdump_count(path: Path) -> int:
    r = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "truncated" not in r.stderr, r.stderr
    return len(r.stdout.splitlines())


@pytest.fixture
def quiet_net(net: VethPair) -> Iterator[VethPair]:
    yield net


def _dump_in_thread(cap: Capture, path: Path, **kw: object) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["n"] = dump(cap, str(path), **kw)  # type: ignore[arg-type]
        except BaseException as e:  # reported by the test
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, result


@pytest.mark.parametrize(("fmt", "version"), [("pcap", 2), ("pcapng", 3)])
def test_close_from_another_thread_keeps_every_packet_taken(net: VethPair, tmp_path: Path, fmt: str,
                                                            version: int) -> None:
    """dump() runs with no limit while 500 packets arrive (about 0.3 s); close() comes from another thread
    at a random moment while they arrive, or once all are in. Every run, 20 of them: the file holds
    exactly what dump() returned, the first packets sent, in order, and tcpdump reads it whole."""
    rng = random.Random(9)
    frames = frames_for(net)
    whole = partial = 0
    for trial in range(20):
        path = tmp_path / f"t{trial}.{fmt}"
        with Capture(net.outer, version=version, block_timeout_ms=1, buffer_size=1 << 20) as cap:
            t, result = _dump_in_thread(cap, path)
            sender = threading.Thread(target=net.send, args=(frames, 0.0005))
            sender.start()
            if trial % 2:
                time.sleep(rng.uniform(0.05, 0.3))  # while the packets arrive
            else:
                sender.join()
                time.sleep(0.1)  # the last V3 block handed over and written
            cap.close()
            t.join(20)
            sender.join()
            assert not t.is_alive(), "dump() did not end after close()"
        assert "error" not in result, repr(result.get("error"))
        n = result["n"]
        assert isinstance(n, int)
        seqs = sequence(path)
        assert len(seqs) == n and tcpdump_count(path) == n
        assert seqs == list(range(n))
        if trial % 2 == 0:
            assert n == FRAMES
            whole += 1
        elif 0 < n < FRAMES:
            partial += 1
    assert whole == 10 and partial >= 5  # most closes landed in the middle of the stream


@pytest.mark.parametrize("how", ["stop", "count", "duration"])
def test_every_ending_closes_the_file_with_what_was_taken(net: VethPair, tmp_path: Path, how: str) -> None:
    frames = frames_for(net)
    for trial in range(5):
        path = tmp_path / f"{how}{trial}.pcapng"
        with Capture(net.outer, block_timeout_ms=1) as cap:
            net.send(frames)
            time.sleep(0.05)
            if how == "stop":
                t, result = _dump_in_thread(cap, path)
                time.sleep(0.3)
                cap.stop()
                t.join(20)
                assert not t.is_alive()
                assert result.get("n") == FRAMES, result
                n = FRAMES
            elif how == "count":
                n = 123 + trial
                assert dump(cap, str(path), count=n) == n
            else:
                n = dump(cap, str(path), duration=0.5)
                assert n == FRAMES
            st = cap.stats()
        assert sequence(path) == list(range(n))
        assert tcpdump_count(path) == n
        assert st.received >= n


def test_close_mid_dump_into_a_capture_file_counts_exactly(net: VethPair, tmp_path: Path) -> None:
    """The accounting behind dump(): taken == written (+ not written, none here) once closed."""
    frames = frames_for(net)
    path = tmp_path / "cf.pcap"
    with Capture(net.outer, block_timeout_ms=1) as cap:
        out = open_for(cap, str(path))
        net.send(frames)
        time.sleep(0.05)
        stopper = threading.Timer(0.002, cap.close)
        stopper.start()
        try:
            out.consume(cap)
        except Exception:  # whichever way close() ends the walk, the file is still closed
            pass
        finally:
            stopper.join()
            out.close()
    assert isinstance(out, CaptureFile)
    assert out.taken == out.written and out.not_written == 0 and out.error is None
    assert sequence(path) == list(range(out.written))




@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_dump_onto_a_full_disk_raises_and_leaves_a_whole_file(net: VethPair, tiny_fs: Path, fmt: str) -> None:
    frames = frames_for(net, 1000)
    path = tiny_fs / f"full.{fmt}"
    with Capture(net.outer, block_timeout_ms=1) as cap:
        net.send(frames)
        time.sleep(0.05)
        with pytest.raises(SavefileError, match=r"No space left on device \(ENOSPC\).*cut back"):
            dump(cap, str(path), duration=1)
        # the capture goes on: what dump() did not take is still in the ring
        assert cap.stats().received == 1000
    seqs = sequence(path)
    assert 0 < len(seqs) < 1000 and seqs == list(range(len(seqs)))
    assert tcpdump_count(path) == len(seqs)

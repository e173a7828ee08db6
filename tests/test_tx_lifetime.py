"""A Transmitter dropped without close() sends what it queued and says so (issue 9: nothing silently lost)."""

from __future__ import annotations

import gc
import os
import subprocess
import time
import warnings
import weakref

from conftest import udp_frame

from afpacket import Capture, CaptureClosedError, LinkDownError, Transmitter, TransmitWarning
from afpacket.testnet import VethPair


def test_dropped_transmitter_sends_its_queued_frames_and_warns(net: VethPair) -> None:
    frames = [udp_frame(net.inner_mac, net.outer_mac, b"lifetime%02d" % i, sport=7000 + i) for i in range(5)]
    with Capture(net.outer, block_timeout_ms=2, filter="udp and src port 7000 or src port 7001 or src port 7002 "
                 "or src port 7003 or src port 7004") as cap:
        tx = Transmitter(net.outer, batch=64)
        for f in frames:
            tx.send(f)
        assert tx._busy_slots() == 5  # queued, not kicked yet: batch is 64
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del tx
            gc.collect()
        assert [str(w.message) for w in caught if w.category is TransmitWarning] == [
            f"Transmitter on {net.outer} was dropped without close(): its 5 queued frame(s) were sent as it was "
            "released; use `with Transmitter(...)` or call close()"
        ]
        got = [bytes(p.data) for p in cap.packets(count=5, timeout=3)]
    assert got == frames


def test_closed_transmitter_is_dropped_quietly(net: VethPair) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx = Transmitter(net.outer)
        tx.send(udp_frame(net.inner_mac, net.outer_mac, b"x"))
        tx.close()
        del tx
        gc.collect()
        time.sleep(0.01)


# --- no reference cycle, nothing left behind ------------------------------------------------------------
def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _open_files() -> set[str]:
    """What every open descriptor refers to ("socket:[inode]" for a socket)."""
    seen = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            seen.add(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            pass  # the descriptor of the listing itself, closed again
    return seen


def _socket_mappings() -> list[str]:
    with open("/proc/self/maps") as f:
        return [line for line in f if "socket:[" in line]


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _released_at_once(tx: Transmitter) -> tuple[weakref.ref[Transmitter], int]:
    """A weak reference to ``tx`` and its socket's inode, taken before the caller drops ``tx``."""
    return weakref.ref(tx), os.fstat(tx.fileno()).st_ino


def test_a_dropped_transmitter_frees_its_socket_and_ring_without_the_cycle_collector(net: VethPair) -> None:
    """Every path used first (copy, batch, templates, zero copy, stats), then the last reference dropped
    with the cyclic GC off: no reference cycle keeps the object, so its ring is unmapped and its socket
    closed right there."""
    frames = [udp_frame(net.inner_mac, net.outer_mac, b"cycle%02d" % i, sport=7100 + i) for i in range(4)]
    gc.collect()
    gc.disable()
    try:
        tx = Transmitter(net.outer, batch=8)
        tx.send(frames[0])
        tx.send_many(frames)
        tx.send_repeated(frames, 64)
        with tx.slot() as slot:
            slot.data[: len(frames[1])] = frames[1]
            slot.commit(len(frames[1]))
        del slot  # the lent slot refers to its transmitter (as it must, to commit)
        tx.reserve()
        tx.abort()
        tx.flush()
        assert tx.stats().sent == 70
        ref, inode = _released_at_once(tx)
        del tx
        assert ref() is None
        assert not any(f"socket:[{inode}]" in line for line in _socket_mappings())
        assert f"socket:[{inode}]" not in _open_files()
    finally:
        gc.enable()


def test_a_transmitter_dropped_after_its_link_went_away_is_freed_and_says_so(net: VethPair) -> None:
    frame = udp_frame(net.inner_mac, net.outer_mac, b"gone")
    gc.collect()
    gc.disable()
    try:
        tx = Transmitter(net.outer)
        subprocess.run(["ip", "link", "del", net.outer], check=True)
        for _ in range(3):
            tx.send(frame)
        try:
            tx.flush()
        except LinkDownError as e:
            said = str(e)
        assert said == (f"{net.outer} was deleted or moved to another network namespace while sending (ENXIO): 0 "
                        "frame(s) were sent, 3 still queued in the TX ring were not")
        ref, inode = _released_at_once(tx)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del tx
        assert ref() is None
        assert not any(f"socket:[{inode}]" in line for line in _socket_mappings())
        assert f"socket:[{inode}]" not in _open_files()
        assert [str(w.message) for w in caught if w.category is TransmitWarning] == [
            f"Transmitter on {net.outer} was dropped without close(): its 3 queued frame(s) were possibly not sent "
            f"(3 frame(s) queued on {net.outer} were not sent: {net.outer} was deleted or moved to another network "
            "namespace) as it was released; use `with Transmitter(...)` or call close()"
        ]
    finally:
        gc.enable()


def test_open_close_cycles_keep_fds_mappings_and_memory_flat(net: VethPair) -> None:
    """Opened and closed, or opened and dropped, many times: the process keeps no descriptor, mapping or
    memory from earlier transmitters. (Each cycle costs ~30 ms of kernel time on this VM: opening a ring
    and closing a packet socket each wait for an RCU grace period.)"""
    for _ in range(10):  # the first cycles import and cache what later ones reuse
        Transmitter(net.outer).close()
    fds, mappings, rss = _open_fds(), len(_socket_mappings()), _rss_kib()
    for i in range(200):
        tx = Transmitter(net.outer)
        if i % 2:
            tx.close()
        del tx
    assert (_open_fds(), len(_socket_mappings())) == (fds, mappings)
    assert _rss_kib() - rss < 1024


def test_forked_child_cannot_use_the_parents_transmitter(net: VethPair) -> None:
    """The TX ring is not mapped in a child: every call raises CaptureClosedError naming the parent, and
    nothing the child does (close, drop) sends or releases the parent's frames."""
    frame = udp_frame(net.outer_mac, net.inner_mac, b"parent")
    with Transmitter(net.outer) as tx:
        tx.send(frame)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            code = 0
            try:
                for call in (lambda: tx.send(frame), lambda: tx.flush(), lambda: tx.reserve()):
                    try:
                        call()
                        code |= 1
                    except CaptureClosedError as e:
                        if "parent process" not in str(e):
                            code |= 2
                tx.close()  # releases nothing of the parent's
            except BaseException:
                code |= 4
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        tx.flush()
        assert tx.stats().sent == 1

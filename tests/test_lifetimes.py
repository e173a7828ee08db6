"""Threads, fork and lifetimes of a Capture (issue 9): close() from another thread ends any running
iteration cleanly and never leaves a socket polled after it was closed; a Capture dropped without
close() releases its ring and descriptors at once (no reference cycle); after fork() the child gets
CaptureClosedError from everything of the parent's capture and never touches the unmapped ring; 10,000
open/close cycles leave descriptors, mappings and memory flat. Traffic only crosses veth pairs made here.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import CORES, udp_frame

from afpacket import Capture, CaptureClosedError, Transmitter, ring
from afpacket.testnet import VethPair

#: a sender inside the namespace: one frame every ~200 µs until killed (send errors are waited out)
FLOOD = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((sys.argv[1], 0))
frame = bytes.fromhex(sys.argv[2])
while True:
    try:
        s.send(frame)
    except OSError:
        time.sleep(0.01)
    time.sleep(0.0002)
"""


@pytest.fixture
def flood(net: VethPair) -> Iterator[Callable[[], None]]:
    """Start (by calling it) a steady stream of frames into ``net.outer``; stopped at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        frame = udp_frame(net.outer_mac, net.inner_mac, b"lifetime-flood" * 4)
        procs.append(net.popen(sys.executable, "-c", FLOOD, net.inner, frame.hex()))

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _counts() -> tuple[int, int, int]:
    """(descriptors, mapping lines, VmRSS in KiB) of this process."""
    with open("/proc/self/maps") as f:
        maps = sum(1 for _ in f)
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return len(os.listdir("/proc/self/fd")), maps, rss


# -- close() from another thread ---------------------------------------------------------------------
def _reader(cap: Capture, mode: str, pause: float) -> Callable[[], int]:
    """The iteration ``mode`` names, obtained now (as a caller would before looping); calling the
    result runs it until it ends, touching every packet and taking ``pause`` seconds in the loop body
    (so that close() also lands while the body holds a packet). Returns how many items it saw."""
    items: Iterator[object]
    if mode == "iter":
        items = iter(cap)
    elif mode == "packets":
        items = cap.packets(duration=30)
    elif mode == "frames":
        items = cap.frames(duration=30)
    elif mode == "batches":
        items = cap.batches(duration=30)
    elif mode == "columns":
        items = cap.columns(duration=30)
    k = cap.kernels

    def touch(item: Any) -> bool:
        if isinstance(item, bytes):
            return len(item) > 0
        if hasattr(item, "caplen") and not hasattr(item, "data"):  # Columns
            return len(item.caplen) >= 0
        if hasattr(item, "hdrs"):  # a kernel Batch
            return bool(len(k.frame_bytes(item)) == item.count)
        return len(bytes(item)) > 0 and item.data[0] >= 0 and item.timestamp_ns > 0

    def run() -> int:
        n = 0
        if mode == "next_packet":
            try:
                while (p := cap.next_packet()) is not None:
                    time.sleep(pause)
                    n += touch(p)
            except CaptureClosedError:
                pass  # closed between two calls, as documented; this call finished the teardown
            return n
        for item in items:
            time.sleep(pause)
            n += touch(item)
        return n

    return run


MODES = ["iter", "packets", "frames", "batches", "columns", "next_packet"]


def test_close_from_another_thread_ends_the_iteration_cleanly_200_times(
    net: VethPair, flood: Callable[[], None]
) -> None:
    rng = random.Random(9)
    trials = 240  # idle, then with traffic; every mode and version in turn
    failures: list[str] = []
    seen = 0
    for trial in range(trials):
        if trial == trials // 2:
            flood()
            time.sleep(0.2)
        mode = MODES[trial % len(MODES)]
        version = 1 + trial % 3
        cap = Capture(net.outer, version=version, buffer_size=256 << 10, block_timeout_ms=1)
        fd = cap.fileno()
        outcome: list[object] = []
        pause = (0.0, 0.0002, 0.002)[trial // len(MODES) % 3]

        started, go = threading.Event(), threading.Event()
        close_first = trial % 7 == 0  # the iteration is obtained, and closed before its first step

        def reader(cap: Capture = cap, mode: str = mode, pause: float = pause, outcome: list[object] = outcome,
                   started: threading.Event = started, go: threading.Event = go) -> None:
            try:
                run = _reader(cap, mode, pause)
                started.set()
                go.wait(10)
                outcome.append(run())
            except BaseException as e:
                outcome.append(e)
            started.set()

        th = threading.Thread(target=reader)
        th.start()
        assert started.wait(10)
        if close_first:
            cap.close()
            go.set()
        else:
            go.set()
            time.sleep(rng.choice((0.0, rng.uniform(0, 0.02))))  # at once, or at any moment
            cap.close()
        th.join(10)
        where = f"trial {trial} ({mode}, V{version}, {'traffic' if trial >= trials // 2 else 'idle'})"
        if th.is_alive():
            failures.append(f"{where}: the iteration did not end")
            continue
        if not outcome or not isinstance(outcome[0], int):
            failures.append(f"{where}: ended with {outcome!r}")
            continue
        seen += outcome[0]
        if _fd_open(fd):
            failures.append(f"{where}: socket descriptor {fd} still open after the reader left")
        with pytest.raises(CaptureClosedError):
            cap.stats()
    assert failures == []
    assert seen > 0  # the traffic half really read packets while being closed


def test_close_from_another_thread_waits_for_the_loop_body_holding_a_packet(
    net: VethPair, flood: Callable[[], None]
) -> None:
    flood()
    cap = Capture(net.outer, version=3, block_timeout_ms=2)
    fd = cap.fileno()
    holding, closed = threading.Event(), threading.Event()
    result: list[object] = []

    def reader() -> None:
        try:
            for p in cap:
                holding.set()
                closed.wait(5)
                # close() has returned in the other thread: this packet's batch is still ours
                result.append(bytes(p.data) == bytes(p) and p.caplen > 0 and p.timestamp_ns > 0)
            result.append("ended")
        except BaseException as e:
            result.append(e)

    th = threading.Thread(target=reader)
    th.start()
    assert holding.wait(5)
    cap.close()
    with pytest.raises(CaptureClosedError):
        cap.stats()
    assert _fd_open(fd)  # the reader still has a packet in hand: the ring and socket wait for it
    closed.set()
    th.join(5)
    # the rest of the batch in hand (already taken from the kernel) is still handed out, then it ends
    assert result[-1] == "ended" and len(result) >= 2 and all(r is True for r in result[:-1]), result
    assert not _fd_open(fd)


def test_close_from_a_signal_handler_while_waiting_in_the_ring(net: VethPair) -> None:
    cap = Capture(net.outer, version=3)
    fd = cap.fileno()
    old = signal.signal(signal.SIGALRM, lambda *_: cap.close())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t = time.monotonic()
        assert list(cap) == []
        assert time.monotonic() - t < 3
    finally:
        signal.signal(signal.SIGALRM, old)
    assert not _fd_open(fd)
    with pytest.raises(CaptureClosedError):
        cap.next_packet(timeout=0)


def test_close_while_a_next_packet_call_waits_returns_none(net: VethPair) -> None:
    cap = Capture(net.outer, version=2)
    threading.Timer(0.2, cap.close).start()
    assert cap.next_packet() is None
    with pytest.raises(CaptureClosedError):
        cap.next_packet()


# -- dropped without close(): no reference cycle -----------------------------------------------------
@pytest.mark.parametrize("how", ["next_packet", "break", "count", "batches"])
def test_dropped_capture_is_released_at_once_without_the_cyclic_gc(
    net: VethPair, flood: Callable[[], None], how: str
) -> None:
    flood()
    for v in (1, 2, 3):  # warm up: imports, allocator arenas, class caches
        with Capture(net.outer, version=v, buffer_size=128 << 10) as cap:
            cap.next_packet(timeout=2)
    gc.collect()
    gc.disable()
    try:
        before = _counts()
        kept = []
        for i in range(60):  # each open and close waits for the kernel's RCU grace period (~30 ms)
            cap = Capture(net.outer, version=1 + i % 3, buffer_size=128 << 10, block_timeout_ms=1)
            if how == "next_packet":
                kept.append(cap.next_packet(timeout=2))
            elif how == "break":
                for p in cap:
                    kept.append(p)
                    break
            elif how == "count":
                kept.extend(cap.packets(count=2, timeout=2))
            else:
                for _b in cap.batches(timeout=2):
                    break
            assert cap._ring_walker.batch is not None or how == "batches"  # a batch was held: the hard case
            ref = weakref.ref(cap)
            fd = cap.fileno()
            del cap
            assert ref() is None, f"Capture not released at once (try {i})"
            assert not _fd_open(fd)
        after = _counts()
        assert all(p is not None for p in kept)
        assert all(len(bytes(p)) > 0 for p in kept if p is not None)  # kept packets still hold their frames
    finally:
        gc.enable()
    assert after[0] == before[0]
    assert after[1] <= before[1] + 2  # the allocator may map an arena, never a ring per capture


def test_a_suspended_iterator_does_not_keep_the_capture(net: VethPair, flood: Callable[[], None]) -> None:
    flood()
    gc.disable()
    try:
        cap = Capture(net.outer, version=3, block_timeout_ms=1)
        it = iter(cap)
        p = next(it)
        ref = weakref.ref(cap)
        fd = cap.fileno()
        del cap
        assert ref() is None
        assert not _fd_open(fd)
        assert len(bytes(p)) > 0  # the packet got its own copy of the frame
        with pytest.raises(StopIteration):
            next(it)
    finally:
        gc.enable()


# -- 10,000 open/close cycles -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("core", [CORES[0]], indirect=True)  # once, not per core: minutes of kernel waits
def test_ten_thousand_open_close_cycles_leave_fds_mappings_and_memory_flat(net: VethPair, core: str) -> None:
    assert core == ring.IMPLEMENTATION
    frame = udp_frame(net.inner_mac, net.outer_mac, b"leak")

    def cycle(i: int) -> None:
        with Capture(net.outer, version=1 + i % 3, buffer_size=64 << 10, block_timeout_ms=1) as cap:
            if i % 50 == 0:
                cap.next_packet(timeout=0)
        with Transmitter(net.outer, version=2, frame_count=16) as tx:
            if i % 50 == 0:
                tx.send(frame)

    # Creating and freeing a ring waits for an RCU grace period in the kernel (packet_set_ring ->
    # synchronize_net, ~15 ms here; afpacket makes that call without the GIL), so the cycles run 64 at a
    # time; counts are taken between rounds, when none is in flight.
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(cycle, range(500)))  # warm-up
        gc.collect()
        before = _counts()
        samples = []
        for start in range(0, 10_000, 1000):
            list(pool.map(cycle, range(start, start + 1000)))
            gc.collect()
            samples.append(_counts())
    after = samples[-1]
    assert after[0] == before[0], samples
    assert after[1] <= before[1] + 2, samples
    assert after[2] - before[2] < 8 << 10, samples  # KiB


# -- fork ------------------------------------------------------------------------------------------
#: what the child checks, one bit each in its exit status when the check fails
CHECKS = ["data", "bytes", "timestamp_ns", "copy", "view", "derived", "next_packet", "iter", "suspended",
          "stats", "fileno", "close"]


def _child_checks(cap: Capture, pkt: object, view: memoryview, derived: memoryview,
                  suspended: Iterator[object]) -> int:
    """In the forked child: every check is one bit of the exit status, set when it fails."""
    failed = 0

    def expect(name: str, fn: Callable[[], object], exc: type[BaseException]) -> None:
        nonlocal failed
        try:
            fn()
        except exc:
            return
        except BaseException:
            pass
        failed |= 1 << CHECKS.index(name)

    expect("data", lambda: pkt.data, CaptureClosedError)  # type: ignore[attr-defined]
    expect("bytes", lambda: bytes(pkt), CaptureClosedError)  # type: ignore[call-overload]
    expect("timestamp_ns", lambda: pkt.timestamp_ns, CaptureClosedError)  # type: ignore[attr-defined]
    expect("copy", lambda: pkt.copy(), CaptureClosedError)  # type: ignore[attr-defined]
    expect("view", lambda: view[0], ValueError)  # released: "operation forbidden on released memoryview"
    try:
        bytes(derived)  # cannot be revoked; the range is zero pages in the child, never unmapped memory
    except BaseException:
        failed |= 1 << CHECKS.index("derived")
    expect("next_packet", lambda: cap.next_packet(timeout=0), CaptureClosedError)
    expect("iter", lambda: next(iter(cap)), CaptureClosedError)
    expect("suspended", lambda: [next(suspended) for _ in range(10_000)], CaptureClosedError)
    expect("stats", cap.stats, CaptureClosedError)
    expect("fileno", cap.fileno, CaptureClosedError)
    try:
        cap.close()
    except BaseException:
        failed |= 1 << CHECKS.index("close")
    return failed


def _failed_checks(status: int) -> list[str]:
    assert os.WIFEXITED(status), f"the child died by signal {os.WTERMSIG(status)}"
    code = os.WEXITSTATUS(status)
    return [name for i, name in enumerate(CHECKS) if code & (1 << i)] if code != 255 else ["child crashed"]


@pytest.mark.parametrize("version", [1, 2, 3])
def test_forked_child_gets_capture_closed_from_everything_of_the_parents_capture(
    net: VethPair, flood: Callable[[], None], version: int
) -> None:
    flood()
    cap = Capture(net.outer, version=version, block_timeout_ms=1)
    suspended = iter(cap)
    pkt = next(suspended)  # the iteration stays mid-batch
    view = pkt.data
    derived = memoryview(view)  # a buffer made from the view: it cannot be revoked
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 255
        try:
            code = _child_checks(cap, pkt, view, derived, suspended)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    del derived  # (alive when its batch goes back, it would pin the ring until close, which then warns)
    assert _failed_checks(status) == []
    # the parent's capture, packet and view are untouched
    assert bytes(view) == bytes(pkt) and len(pkt) > 0
    assert next(suspended) is not None
    assert cap.next_packet(timeout=2) is not None
    assert cap.stats().received > 0
    cap.close()


def test_forked_child_while_another_thread_waits_in_the_ring(net: VethPair) -> None:
    cap = Capture(net.outer, version=3)
    th = threading.Thread(target=lambda: list(cap))
    th.start()
    time.sleep(0.2)  # the reader is in poll(), inside the walk
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            code = 0
            try:
                cap.next_packet(timeout=0)
                code |= 1
            except CaptureClosedError:
                pass
            cap.close()  # must not wait for the parent's reader thread, which does not exist here
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    cap.close()
    th.join(5)
    assert not th.is_alive()


def test_forked_child_holds_no_descriptor_of_the_parents_socket(net: VethPair) -> None:
    cap = Capture(net.outer, version=3)
    st = os.fstat(cap.fileno())
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 255
        try:
            same = 0
            for name in os.listdir("/proc/self/fd"):
                try:
                    s = os.fstat(int(name))
                except OSError:
                    continue
                same += (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino)
            os.write(w, str(same).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    got = os.read(r, 16)
    os.close(r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert got == b"0"  # neither the socket nor the mmap's duplicate of it: the parent's close frees the ring
    cap.close()

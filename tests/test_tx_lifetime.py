"""A Transmitter dropped without close() sends what it queued and says so (issue 9: nothing silently lost)."""

from __future__ import annotations

import gc
import time
import warnings

from conftest import udp_frame

from afpacket import Capture, Transmitter, TransmitWarning
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

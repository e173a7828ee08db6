"""The kernel pushing back on a transmitter: ENOBUFS from a full qdisc, EAGAIN from a full socket send
buffer. Every frame is retried until it leaves and counted once as sent; every push-back is counted.

What pushes back, observed on this kernel (Linux 6.18, 2 CPUs) over veth: a veth end with
``txqueuelen 1`` and ``pfifo limit 1`` never does, with or without GRO (NAPI) on the peer and with or
without PACKET_QDISC_BYPASS — veth hands each frame to its peer within the sender's own call and never
stops its queue, so the qdisc never holds more than the frame in hand (the test below checks that
nothing is lost there all the same). A token bucket (``tbf``) that drains slower than we send does: with
its byte limit full it drops the new frame (NET_XMIT_DROP), ``tpacket_snd`` puts the frame back to
SEND_REQUEST and answers ENOBUFS, once per drop, so the qdisc's drop counter equals our ENOBUFS count.
With a limit larger than the socket's send buffer, the buffer fills first and a kick that could take no
frame at all answers EAGAIN.

The peer's count comes from an afpacket Capture in its namespace (``test_send_faults.peer_count``).
"""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from test_send_faults import DST_IP, SRC_IP, frames, peer_count, summary_counts

from afpacket import TransmitError, Transmitter
from afpacket.savefile import PcapWriter
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
#: 10 Mbit/s: 60-byte frames leave at ~20,800/s, slower than any of our senders queue them.
SLOW = ["rate", "10mbit", "burst", "3kb"]


def qdisc(net: VethPair, *spec: str) -> None:
    subprocess.run(["tc", "qdisc", "replace", "dev", net.outer, "root", *spec], check=True)


def qdisc_drops(net: VethPair) -> int:
    out = subprocess.run(["tc", "-s", "qdisc", "show", "dev", net.outer], capture_output=True, text=True,
                         check=True).stdout
    return sum(int(n) for n in re.findall(r"\(dropped (\d+),", out))


def send_all(tx: Transmitter, fl: list[bytes], n: int, mode: str) -> None:
    if mode == "send":
        for i in range(n):
            tx.send(fl[i % len(fl)])
    elif mode == "send_many":
        tx.send_many([fl[i % len(fl)] for i in range(n)])
    else:
        tx.send_repeated(fl, n)
    tx.flush()


@pytest.mark.parametrize(("version", "mode"), [(2, "send"), (2, "send_many"), (2, "send_repeated"),
                                               (1, "send_many"), (3, "send_many")])
def test_a_full_qdisc_answers_enobufs_and_every_frame_still_arrives(net: VethPair, version: int, mode: str) -> None:
    qdisc(net, "tbf", *SLOW, "limit", "3000")  # 50 frames of 60 bytes
    fl = frames(net, 4, 60)
    n = 4000
    with peer_count(net) as got:
        before = qdisc_drops(net)
        gc.disable()  # the retry path keeps no reference cycle: the transmitter goes with its last reference
        try:
            tx = Transmitter(net.outer, version=version)
            send_all(tx, fl, n, mode)
            st = tx.stats()
            gone = weakref.ref(tx)
            del tx
            assert gone() is None
        finally:
            gc.enable()
        dropped = qdisc_drops(net) - before
    assert st.sent == n == got.frames
    assert (st.pending, st.unsent, st.failed, st.bytes) == (0, 0, 0, n * 60)
    assert st.enobufs == dropped > 0  # every drop was answered, and the frame tried again
    assert st.retries >= st.enobufs


def test_a_full_send_buffer_answers_eagain_and_every_frame_still_arrives(net: VethPair) -> None:
    qdisc(net, "tbf", *SLOW, "limit", "1mb")  # holds more than the socket's send buffer lets out
    fl = frames(net, 4, 60)
    n = 5000
    with peer_count(net) as got:
        before = qdisc_drops(net)
        with Transmitter(net.outer) as tx:
            send_all(tx, fl, n, "send")
            st = tx.stats()
        dropped = qdisc_drops(net) - before
    assert st.sent == n == got.frames
    assert dropped == st.enobufs == 0
    assert st.eagain > 0 and st.retries >= st.eagain


@pytest.mark.parametrize("bypass", [False, True])
def test_a_one_frame_fifo_on_veth_loses_nothing(net: VethPair, bypass: bool) -> None:
    subprocess.run(["ip", "link", "set", "dev", net.outer, "txqueuelen", "1"], check=True)
    qdisc(net, "pfifo", "limit", "1")
    fl = frames(net, 4, 60)
    n = 100_000
    with peer_count(net) as got:
        before = qdisc_drops(net)
        with Transmitter(net.outer, qdisc_bypass=bypass) as tx:
            send_all(tx, fl, n, "send_repeated")
            st = tx.stats()
        dropped = qdisc_drops(net) - before
    assert st.sent == n == got.frames
    assert st.enobufs == dropped  # 0 on veth here (see the module docstring); whatever drops, retried


def test_a_queue_that_stops_draining_raises_after_the_timeout(net: VethPair) -> None:
    """8 bit/s: after its first burst the bucket lets nothing out. With no frame leaving for ``timeout``
    seconds the transmitter gives up, says why, and counts what never left as unsent."""
    qdisc(net, "tbf", "rate", "8bit", "burst", "1600", "limit", "1600")
    fl = frames(net, 4, 60)
    tx = Transmitter(net.outer, timeout=0.5)
    returned = 0
    with pytest.raises(TransmitError, match=re.escape(
            f"the kernel kept answering ENOBUFS for 0.5 s with no frame leaving; the queue of {net.outer} is not "
            "draining (link down or congested?)")):
        for i in range(1000):
            tx.send(fl[i % 4])
            returned += 1
    with pytest.raises(TransmitError, match=rf"^\d+ frame\(s\) queued on {net.outer} were not sent and \d+ frame\(s\) "
                       rf"taken by the kernel had not left {net.outer}: "):
        tx.close()
    st = tx.stats()
    assert st.unsent > 0 and st.enobufs > 0 and st.failed == 0
    # the frame whose kick gave up was in the ring already: sent (taken, some still in the bucket) or unsent
    assert st.sent + st.unsent == returned + 1


def test_gen_and_send_report_the_retries_like_tcpreplay(net: VethPair, tmp_path: Path) -> None:
    qdisc(net, "tbf", *SLOW, "limit", "3000")
    out = tmp_path / "gen.json"
    with peer_count(net) as got:
        before = qdisc_drops(net)
        r = subprocess.run([*AFPACKET, "gen", "-i", net.outer, "-c", "4000", "--dst-mac", net.inner_mac,
                            "--src-ip", SRC_IP, "--dst-ip", DST_IP, "--stats-json", str(out)],
                           capture_output=True, text=True, timeout=60)
        dropped = qdisc_drops(net) - before
    assert r.returncode == 0, r.stderr
    counts = summary_counts(r.stderr)
    assert counts["Successful"] == 4000 == got.frames
    assert counts["Retried ENOBUFS"] == dropped > 0
    assert "\tRetried packets (ENOBUFS): " in r.stderr and "\tRetried packets (EAGAIN):  " in r.stderr
    data = json.loads(out.read_text())
    assert (data["retried_enobufs"], data["failed"], data["not_sent"]) == (dropped, 0, 0)

    path = tmp_path / "ten.pcap"
    with PcapWriter(str(path)) as w:
        for i, f in enumerate(frames(net, 10, 60)):
            w.write(1_700_000_000 * 10**9 + i * 1000, f)
    with peer_count(net) as got:
        before = qdisc_drops(net)
        r = subprocess.run([*AFPACKET, "send", "-i", net.outer, "-t", "-l", "400", str(path)],
                           capture_output=True, text=True, timeout=60)
        dropped = qdisc_drops(net) - before
    assert r.returncode == 0, r.stderr
    counts = summary_counts(r.stderr)
    assert counts["Successful"] == 4000 == got.frames
    assert counts["Retried ENOBUFS"] == dropped > 0

"""Worker groups (afpacket.CaptureGroup, `afpacket capture --workers`): real traffic over a private veth
pair, shared by worker processes through one PACKET_FANOUT group."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import udp_frame

from afpacket import ArgumentError, Capture, CaptureGroup, open_reader
from afpacket.group import merge_files
from afpacket.savefile import PcapWriter
from afpacket.testnet import VethPair

#: frames each flow sends each way
PER_FLOW = 20

#: UDP frames of ``flows`` flows from inside the namespace: PER_FLOW per flow, sport 20000+flow
SENDER = r"""
import socket, sys
iface, flows, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
frames = [bytes.fromhex(h) for h in sys.argv[4:]]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0))
for _ in range(per):
    for f in frames:
        s.send(f)
"""


def _frames(net: VethPair, flows: int, outbound: bool) -> list[bytes]:
    """One frame per flow: inner -> outer (``outbound`` False), or the reverse direction of the same flow."""
    out = []
    for f in range(flows):
        if outbound:
            out.append(udp_frame(net.inner_mac, net.outer_mac, b"r" * 18, sport=9000, dport=20000 + f,
                                 src=net.outer_ip, dst=net.inner_ip))
        else:
            out.append(udp_frame(net.outer_mac, net.inner_mac, b"q" * 18, sport=20000 + f, dport=9000,
                                 src=net.inner_ip, dst=net.outer_ip))
    return out


def _send_both_ways(net: VethPair, flows: int) -> int:
    """PER_FLOW frames of every flow in each direction; returns how many frames cross the outer end."""
    inbound = _frames(net, flows, outbound=False)
    net.exec(sys.executable, "-c", SENDER, net.inner, str(flows), str(PER_FLOW), *(f.hex() for f in inbound))
    outbound = _frames(net, flows, outbound=True)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
        s.bind((net.outer, 0))
        for _ in range(PER_FLOW):
            for fr in outbound:
                s.send(fr)
    return 2 * flows * PER_FLOW


def _flow_key(data: bytes) -> tuple[tuple[bytes, int], ...] | None:
    """Both directions of a UDP/IPv4 flow give one key (the endpoints sorted)."""
    if len(data) < 42 or data[12:14] != b"\x08\x00" or data[23] != 17:
        return None
    a = (data[26:30], int.from_bytes(data[34:36], "big"))
    b = (data[30:34], int.from_bytes(data[36:38], "big"))
    return tuple(sorted((a, b)))


_seen: Counter[object] = Counter()


def _count(pkt: object) -> None:
    key = _flow_key(bytes(pkt))  # type: ignore[call-overload]
    if key is not None:
        _seen[key] += 1


def _result() -> dict[object, int]:
    return dict(_seen)


def _settle(group: CaptureGroup, want: int, limit: float = 10.0) -> None:
    """Wait until the workers report ``want`` packets handled (or ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        group.poll(0.2)
        if group.stats().handled >= want:
            return


@pytest.mark.parametrize("workers", [2, 4])
def test_hash_keeps_each_flow_on_one_worker_and_loses_nothing(net: VethPair, workers: int) -> None:
    flows = 24
    with CaptureGroup(net.outer, workers=workers, on_packet=_count, result=_result, filter="udp") as group:
        assert group.group_id
        sent = _send_both_ways(net, flows)
        _settle(group, sent)
        group.stop()
        stats = group.wait(20)
    assert not stats.failed, [w.error for w in stats.failed]
    owners: dict[object, list[int]] = {}
    for rep in stats.workers:
        assert rep.complete and rep.exitcode == 0
        assert rep.handled == rep.received - rep.drops  # each worker: what its ring got, it handled
        for key, n in rep.result.items():
            owners.setdefault(key, []).append(rep.index)
            assert n == 2 * PER_FLOW, (key, n)  # both directions, every frame, on that one worker
    assert len(owners) == flows
    assert all(len(w) == 1 for w in owners.values()), owners  # no flow split between workers
    assert stats.received == sent and stats.drops == 0 and stats.handled == sent
    assert len({w[0] for w in owners.values()}) > 1  # the flows were spread, not all on one worker


def _slow_count(pkt: object) -> None:
    _count(pkt)
    time.sleep(0.002)


def test_killed_worker_is_reported_and_the_others_stay_exact(net: VethPair) -> None:
    group = CaptureGroup(net.outer, workers=3, fanout="lb", on_packet=_count, result=_result, filter="udp")
    group.start()
    try:
        victim = group.reports[1].pid
        sent = _send_both_ways(net, 8)
        _settle(group, sent)
        os.kill(victim, signal.SIGKILL)
        # after the kill: the group goes on with the two left, and every packet still lands somewhere
        sent2 = _send_both_ways(net, 8)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            group.poll(0.2)
            live = [r for r in group.reports if r.index != 1]
            if sum(r.handled for r in live) + group.reports[1].handled >= sent + sent2:
                break
    finally:
        group.stop()
        stats = group.wait(20)
    dead = stats.workers[1]
    assert dead.exitcode == -signal.SIGKILL and not dead.complete
    assert dead.error is not None and "SIGKILL" in dead.error
    assert stats.failed == (dead,)
    for rep in (stats.workers[0], stats.workers[2]):
        assert rep.complete and rep.error is None
        assert rep.handled == rep.received - rep.drops  # exact
        assert sum(rep.result.values()) == rep.handled
    # the survivors got every packet sent after the kill, and their share before it
    survivors = stats.workers[0].handled + stats.workers[2].handled
    assert survivors + dead.handled >= sent + sent2
    assert survivors >= sent2


def _batch_counter(cols: object) -> None:
    _seen["packets"] += len(cols)  # type: ignore[arg-type]
    _seen["bytes"] += sum(cols.wire_len)  # type: ignore[attr-defined]


def _own_loop(cap: Capture, index: int) -> int:
    n = 0
    for _ in cap.frames():
        n += 1
    return n


@pytest.mark.parametrize("mode", ["batch", "worker"])
def test_batch_and_worker_callables(net: VethPair, mode: str) -> None:
    kw: dict[str, Any] = {"on_batch": _batch_counter, "result": _result} if mode == "batch" else {"worker": _own_loop}
    with CaptureGroup(net.outer, workers=2, filter="udp", **kw) as group:
        sent = _send_both_ways(net, 6)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group.stats().received < sent:
            group.poll(0.2)
        group.stop()
        stats = group.wait(20)
    assert stats.received == sent and not stats.failed
    if mode == "batch":
        assert sum(r.result["packets"] for r in stats.workers) == sent
        assert sum(r.result["bytes"] for r in stats.workers) == sent * 60
    else:
        assert sum(r.result for r in stats.workers) == sent


def test_bad_arguments_are_refused_up_front(net: VethPair) -> None:
    with pytest.raises(ArgumentError, match="exactly one of"):
        CaptureGroup(net.outer, workers=2)
    with pytest.raises(ArgumentError, match="exactly one of"):
        CaptureGroup(net.outer, on_packet=_count, write="x-{worker}.pcap")
    with pytest.raises(ArgumentError, match=r"\{worker\}"):
        CaptureGroup(net.outer, workers=2, write="one.pcap")
    with pytest.raises(ArgumentError, match="workers"):
        CaptureGroup(net.outer, workers=0, on_packet=_count)
    with pytest.raises(ArgumentError, match="fanout must be one of"):
        CaptureGroup(net.outer, fanout="roundrobin", on_packet=_count)
    with pytest.raises(TypeError, match="on_packet must be callable"):
        CaptureGroup(net.outer, on_packet=3)  # type: ignore[arg-type]
    # a worker that cannot start: its error, raised by start(), and no worker left behind
    from afpacket import InterfaceNotFoundError

    group = CaptureGroup("afnosuch0", on_packet=_count)
    with pytest.raises(InterfaceNotFoundError):
        group.start()
    assert all(not p.is_alive() for p in group._procs)


def test_merge_files_orders_by_timestamp(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    with PcapWriter(a, nanosecond=True) as w:
        for t in (1, 4, 5, 9):
            w.write(t * 1000, bytes([t]) * 60)
    with PcapWriter(b, nanosecond=True) as w:
        for t in (2, 3, 7):
            w.write(t * 1000, bytes([t]) * 60)
    out = tmp_path / "m.pcapng"
    assert merge_files([a, b], out) == 7
    assert [r.timestamp_ns for r in open_reader(out)] == [1000, 2000, 3000, 4000, 5000, 7000, 9000]
    assert merge_files([a, b], tmp_path / "m.pcap", count=3) == 3
    assert [r.data[0] for r in open_reader(tmp_path / "m.pcap")] == [1, 2, 3]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "afpacket", "capture", *args]


def _run_cli_while_sending(net: VethPair, args: list[str], flows: int) -> tuple[subprocess.CompletedProcess[str], int]:
    proc = subprocess.Popen(_cli(*args), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 30
    while "workers in fanout group" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert "workers in fanout group" in seen, seen
    sent = _send_both_ways(net, flows)
    time.sleep(0.5)  # the V3 block timer hands the last block over
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, seen + err), sent


def test_cli_workers_merged_file_is_in_timestamp_order(net: VethPair, tmp_path: Path) -> None:
    target = tmp_path / "all.pcap"
    stats = tmp_path / "s.json"
    r, sent = _run_cli_while_sending(
        net, ["-i", net.outer, "--workers", "2", "-w", str(target), "--stats-json", str(stats), "udp"], 10)
    assert r.returncode == 0, r.stderr
    recs = list(open_reader(target))
    assert len(recs) == sent
    times = [x.timestamp_ns for x in recs]
    assert times == sorted(times)
    assert f"{sent} packets captured" in r.stderr and f"{sent} packets received by filter" in r.stderr
    summary = json.loads(stats.read_text())
    assert summary["captured"] == sent and summary["workers"] == 2
    assert sum(w["captured"] for w in summary["per_worker"]) == sent
    # tcpdump reads the merged file and finds every packet
    out = subprocess.run(["tcpdump", "-nr", str(target)], capture_output=True, text=True, check=True).stdout
    assert len(out.splitlines()) == sent
    assert not list(tmp_path.glob(".afpacket-workers-*"))  # the parts are gone


def test_cli_workers_one_file_each_and_count(net: VethPair, tmp_path: Path) -> None:
    r, sent = _run_cli_while_sending(
        net, ["-i", net.outer, "--workers", "2", "--fanout", "hash", "-w", str(tmp_path / "w{worker}.pcapng"),
              "udp"], 12)
    assert r.returncode == 0, r.stderr
    files = sorted(tmp_path.glob("w*.pcapng"))
    assert [f.name for f in files] == ["w0.pcapng", "w1.pcapng"]
    keys: dict[object, set[int]] = {}
    total = 0
    for i, f in enumerate(files):
        for rec in open_reader(f):
            keys.setdefault(_flow_key(rec.data), set()).add(i)
            total += 1
    assert total == sent and all(len(v) == 1 for v in keys.values())
    # -c with a merged file keeps exactly that many
    r2, _ = _run_cli_while_sending(net, ["-i", net.outer, "--workers", "2", "-c", "25", "-w",
                                         str(tmp_path / "c.pcap"), "udp"], 6)
    assert r2.returncode == 0, r2.stderr
    assert len(list(open_reader(tmp_path / "c.pcap"))) == 25
    assert "25 packets captured" in r2.stderr


def test_cli_workers_refuses_what_it_cannot_do(net: VethPair) -> None:
    r = subprocess.run(_cli("-i", net.outer, "--workers", "2"), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--workers writes files: add -w FILE" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(_cli("-i", net.outer, "--workers", "0", "-w", "x.pcap"), capture_output=True, text=True)
    assert r.returncode == 2 and "--workers" in r.stderr
    r = subprocess.run(_cli("-i", net.outer, "--fanout-program", "p.txt", "-w", "x.pcap"), capture_output=True,
                       text=True)
    assert r.returncode == 1 and "--fanout-program needs --workers" in r.stderr

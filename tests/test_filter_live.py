"""Complete kernel filters on real veth traffic: compiled for the live interface (``vlan`` reads the tag the
kernel stripped), raw programs, a swap at run time with nothing unfiltered in between, removal, locking,
and offline matching that selects the same packets as the live kernel filter."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ether, udp_frame

from afpacket import Capture, FilterError, PcapWriter, compile_filter, open_reader
from afpacket.filter import OfflineFilter, parse_program
from afpacket.testnet import VethPair

#: small rings: several captures share one link in these tests
RING = 1 << 20


def tagged(frame: bytes, vid: int, tpid: int = 0x8100) -> bytes:
    """``frame`` with an 802.1Q tag for VLAN ``vid`` after the MAC addresses."""
    return frame[:12] + struct.pack("!HH", tpid, vid) + frame[12:]


def mixed(net: VethPair, n: int = 10) -> dict[str, list[bytes]]:
    """``n`` frames of each kind, every one distinct (the source port numbers them)."""
    def udp(i: int, dport: int) -> bytes:
        return udp_frame(net.outer_mac, net.inner_mac, b"m" * 18, sport=20000 + i, dport=dport)

    return {
        "v100_53": [tagged(udp(i, 53), 100) for i in range(n)],
        "v100_54": [tagged(udp(100 + i, 54), 100) for i in range(n)],
        "v200_53": [tagged(udp(200 + i, 53), 200) for i in range(n)],
        "plain_53": [udp(300 + i, 53) for i in range(n)],
        "plain_54": [udp(400 + i, 54) for i in range(n)],
        "raw": [ether(net.outer_mac, net.inner_mac, 0x88B5, struct.pack("!H", i) + b"r" * 44) for i in range(n)],
    }


def interleave(kinds: dict[str, list[bytes]]) -> list[bytes]:
    return [f for group in zip(*kinds.values(), strict=True) for f in group]


def drain(cap: Capture, quiet: float = 0.3) -> list[bytes]:
    """Every packet in the ring until ``quiet`` seconds pass without one, as on the wire (tags back)."""
    return [p.tagged() for p in cap.packets(timeout=quiet)]


def test_vlan_catches_tags_the_kernel_stripped(net: VethPair) -> None:
    kinds = mixed(net, 15)
    with Capture(net.outer, filter="vlan 100", buffer_size=RING) as live, \
            Capture(net.outer, filter="vlan 200 and udp port 53", buffer_size=RING) as live200, \
            Capture(net.outer, filter=compile_filter("vlan 100"), buffer_size=RING) as dead:
        assert live.filter is not None and live.filter.interface == net.outer
        net.send(interleave(kinds))
        got = [(p.vlan_present, p.vlan_id, p.tagged()) for p in live.packets(timeout=0.5)]
        got200 = drain(live200)
        assert drain(dead, 0.05) == []  # the dead-handle program reads bytes, where no tag is left
        st = live.stats()
    assert [g[2] for g in got] == [f for pair in zip(kinds["v100_53"], kinds["v100_54"], strict=True) for f in pair]
    assert all(present and vid == 100 for present, vid, _ in got)  # the kernel did strip them
    assert got200 == kinds["v200_53"]
    assert st.received == 30 and st.drops == 0  # the kernel counted only what passed


def test_only_matching_frames_reach_the_ring(net: VethPair) -> None:
    kinds = mixed(net, 20)
    with Capture(net.outer, filter="udp port 53 and not vlan", buffer_size=RING) as cap:
        net.send(interleave(kinds))
        got = drain(cap)
        st = cap.stats()
    assert got == kinds["plain_53"]
    assert st.received == 20 and st.packets == 20


def test_raw_programs_attach_and_filter(net: VethPair) -> None:
    expr = "udp dst port 54"
    ddd = subprocess.run(["tcpdump", "-ddd", "-i", net.outer, expr], capture_output=True, text=True,
                         check=True).stdout
    dd = subprocess.run(["tcpdump", "-dd", "-i", net.outer, expr], capture_output=True, text=True,
                        check=True).stdout
    tuples = []
    for line in ddd.splitlines()[1:]:
        code, jt, jf, k = (int(x) for x in line.split())
        tuples.append((code, jt, jf, k))
    kinds = mixed(net, 5)
    with Capture(net.outer, filter=parse_program(ddd), buffer_size=RING) as a, \
            Capture(net.outer, filter=tuples, buffer_size=RING) as b, \
            Capture(net.outer, filter=parse_program(dd), buffer_size=RING) as c:
        net.send(interleave(kinds))
        results = [drain(a), drain(b, 0.05), drain(c, 0.05)]
    want = [f for trio in zip(kinds["v100_54"], kinds["plain_54"], strict=True) for f in trio]
    assert results == [want, want, want]


#: numbered UDP frames from inside the namespace to ports 1111, 2222 and 3333 in turn, until killed; the
#: 4-byte payload is the sequence number
SENDER = r"""
import socket, struct, sys, time
iface, dst, src = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0))
seq = 0
while True:
    for _ in range(30):
        port = (1111, 2222, 3333)[seq % 3]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 32, 1, 0, 64, 17, 0, bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1]))
        s.send(dst + src + b"\x08\x00" + ip + struct.pack("!HHHHI", 4000, port, 12, 0, seq))
        seq += 1
    time.sleep(0.001)
"""


@contextmanager
def numbered_traffic(net: VethPair) -> Iterator[None]:
    sender = net.popen(sys.executable, "-c", SENDER, net.inner, net.outer_mac.replace(":", ""),
                       net.inner_mac.replace(":", ""), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        sender.kill()
        sender.wait()


def port_seq(data: bytes) -> tuple[int, int]:
    """(UDP destination port, sequence number) of a SENDER frame."""
    port, _, _, seq = struct.unpack_from("!HHHI", data, 36)
    return port, seq


def until(cap: Capture, done: Callable[[list[tuple[int, int]]], bool]) -> list[tuple[int, int]]:
    """(port, sequence) of the packets read until ``done(seen)`` says so (at most 5 s)."""
    seen: list[tuple[int, int]] = []
    for p in cap.packets(duration=5):
        seen.append(port_seq(bytes(p)))
        if done(seen):
            break
    return seen


def test_swap_at_run_time_lets_nothing_unfiltered_through(net: VethPair) -> None:
    with numbered_traffic(net), Capture(net.outer, filter="udp dst port 1111", buffer_size=RING) as cap:
        before = [port_seq(bytes(p)) for p in cap.packets(count=200, duration=5)]
        cap.set_filter("udp dst port 2222")
        after = until(cap, lambda seen: sum(1 for port, _ in seen if port == 2222) >= 100)
        cap.set_filter(None)  # removed: every kind comes in
        unfiltered = {port for port, _ in until(cap, lambda seen: {p for p, _ in seen} >= {1111, 2222, 3333})}
        cap.set_filter(None)  # removing twice is not an error
        cap.set_filter([(0x06, 0, 0, 0)])  # a raw program: drop everything
        received = cap.stats().received
        sum(1 for _ in cap.packets(duration=0.2))  # what was already in the ring, while traffic goes on
        assert cap.stats().received == received  # the kernel let nothing more through
    assert len(before) == 200 and {p for p, _ in before} == {1111}
    ports = [p for p, _ in after]
    assert set(ports) <= {1111, 2222}, "a packet matching neither filter got in"
    switch = ports.index(2222)
    assert set(ports[switch:]) == {2222}  # after the swap only the new filter's packets
    assert ports[:switch] == [1111] * switch  # those that were already in the ring
    seqs = [s for _, s in before + after]
    assert seqs == sorted(seqs)  # in order, each once
    assert unfiltered == {1111, 2222, 3333}


def test_a_locked_filter_cannot_be_replaced_or_removed(net: VethPair) -> None:
    with Capture(net.outer, filter="udp dst port 1111", lock_filter=True, buffer_size=RING) as cap:
        with pytest.raises(FilterError, match=r"the filter is locked \(SO_LOCK_FILTER\)"):
            cap.set_filter("udp")
        with pytest.raises(FilterError, match="locked"):
            cap.set_filter(None)
        with numbered_traffic(net):
            ports = {port_seq(bytes(p))[0] for p in cap.packets(count=50, duration=5)}
        assert ports == {1111}  # the locked filter still works
    with Capture(net.outer, buffer_size=RING) as cap:
        cap.lock_filter()  # locking "no filter" works too
        with pytest.raises(FilterError, match="locked"):
            cap.set_filter("udp")


def test_a_refused_program_leaves_the_running_filter(net: VethPair) -> None:
    # The kernel refuses a load from scratch memory never stored to: tried aside first, the running
    # filter stays in place.
    with Capture(net.outer, filter="udp dst port 1111", buffer_size=RING) as cap:
        with pytest.raises(FilterError, match="refused"):
            cap.set_filter([(0x60, 0, 0, 3), (0x16, 0, 0, 0)])
        with numbered_traffic(net):
            ports = {port_seq(bytes(p))[0] for p in cap.packets(count=50, duration=5)}
    assert ports == {1111}


#: Expressions that select the same packets live and from a file. An expression without ``vlan`` differs
#: on tagged frames, in tcpdump as here: live, the kernel took the tag out before the filter ran, so
#: ``udp port 54`` matches a tagged frame's inner UDP; in the file the tag is back in the bytes, and the
#: same test reads the wrong offsets. Write ``vlan and udp port 54`` or ``udp port 54 and not vlan``.
OFFLINE_EXPRESSIONS = ["vlan 100", "vlan 200 and udp port 53", "udp and not vlan", "vlan and udp port 54",
                       "ether proto 0x88b5", "udp port 54 and not vlan", "udp port 54"]


def test_offline_and_live_select_the_same_packets(net: VethPair, tmp_path: Path) -> None:
    kinds = mixed(net, 8)
    path = tmp_path / "all.pcap"
    caps = [Capture(net.outer, filter=e, buffer_size=RING) for e in OFFLINE_EXPRESSIONS]
    try:
        with Capture(net.outer, buffer_size=RING) as everything, PcapWriter(path) as w:
            net.send(interleave(kinds))
            for p in everything.packets(timeout=0.5):
                w.write_packet(p)  # the stripped tags go back into the file
        live = {e: drain(c, 0.05) for e, c in zip(OFFLINE_EXPRESSIONS, caps, strict=True)}
    finally:
        for c in caps:
            c.close()
    with open_reader(path) as reader:
        records = list(reader)
    assert [r.data for r in records] == interleave(kinds)
    for expr in OFFLINE_EXPRESSIONS:
        flt = OfflineFilter(expr)
        offline = [r.data for r in records if flt.matches(r.data, r.wire_len, r.linktype)]
        dead = compile_filter(expr)  # the same expression for bytes, in Python
        assert offline == [r.data for r in records if dead.matches(r.data, r.wire_len)], expr
        subprocess.run(["tcpdump", "-r", str(path), "-w", str(tmp_path / "w.pcap"), expr], capture_output=True,
                       check=True)
        with open_reader(tmp_path / "w.pcap") as witness:
            assert offline == [r.data for r in witness] and offline, expr  # as tcpdump -r selects
        if expr == "udp port 54":  # live, the tagged ones too (see above)
            assert live[expr] == [f for pair in zip(kinds["v100_54"], kinds["plain_54"], strict=True) for f in pair]
            assert offline == kinds["plain_54"]
        else:
            assert offline == live[expr], expr
    # and through the command line, as tcpdump -r FILE EXPR
    for expr in ("vlan 100", "udp and not vlan"):
        r = subprocess.run([sys.executable, "-m", "afpacket", "read", str(path), expr, "--count"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"{len(live[expr])} packets"

"""PACKET_FANOUT in every mode, with real traffic over a veth pair.

Several Capture objects in this one process join one group on the outer end. Frames arrive from the
namespace end (incoming) and leave from the outer end through a raw socket here (outgoing), so a
member sees both directions of a flow. The pair has no addresses: the kernel sends nothing of its own,
and every count below is exact.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from conftest import checksum, ether, udp_frame

from afpacket import Capture
from afpacket.errors import AfPacketError, ArgumentError, FilterError, SocketOptionError
from afpacket.fanout import (
    MAX_MEMBERS,
    Fanout,
    RolloverStats,
    classic_steer_by_udp_dst_port,
    flow_hash_program,
    join,
    recorded_hash_program,
    rollover_stats,
)
from afpacket.filter import BpfProgram
from afpacket.sock import PacketSocket
from afpacket.testnet import VethPair

IN_IP, OUT_IP = "198.18.0.2", "198.18.0.1"  # the namespace end and the outer end, as the frames say


@pytest.fixture
def quiet() -> Iterator[VethPair]:
    """A veth pair without addresses: only the frames a test sends ever cross it."""
    with VethPair("afpf", addresses=False) as pair:
        yield pair


def inbound(net: VethPair, sport: int, dport: int, seq: int) -> bytes:
    """A UDP frame of flow (IN_IP:sport -> OUT_IP:dport) arriving on the outer end; ``seq`` in the payload."""
    return udp_frame(net.outer_mac, net.inner_mac, struct.pack("!I", seq) + bytes(14), sport=sport, dport=dport,
                     src=IN_IP, dst=OUT_IP)


def outbound(net: VethPair, sport: int, dport: int, seq: int) -> bytes:
    """The reply direction of the same flow: OUT_IP:dport -> IN_IP:sport, leaving the outer end."""
    return udp_frame(net.inner_mac, net.outer_mac, struct.pack("!I", seq) + bytes(14), sport=dport, dport=sport,
                     src=OUT_IP, dst=IN_IP)


def send_out(net: VethPair, frames: list[bytes]) -> None:
    """Send ``frames`` from the outer end: the group sees them as outgoing."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.bind((net.outer, 0))
        for f in frames:
            s.send(f)
    finally:
        s.close()


def collect(caps: list[Capture], expected: int, settle: float = 0.15, limit: float = 5.0) -> list[list[bytes]]:
    """Every member's packets (as bytes), read until ``expected`` packets arrived in all (or ``limit``
    seconds passed), then ``settle`` seconds more so that an extra packet would be seen too."""
    got: list[list[bytes]] = [[] for _ in caps]
    deadline = time.monotonic() + limit
    while sum(map(len, got)) < expected and time.monotonic() < deadline:
        for i, c in enumerate(caps):
            got[i].extend(bytes(p) for p in c.packets(timeout=0.02))
    end = time.monotonic() + settle
    while time.monotonic() < end:
        for i, c in enumerate(caps):
            got[i].extend(bytes(p) for p in c.packets(timeout=0.02))
    return got


def group(net: VethPair, n: int, fanout: Fanout, **kw: object) -> list[Capture]:
    """``n`` captures on the outer end in one group: the first asks the kernel for an id, the rest join it."""
    first = Capture(net.outer, fanout=fanout, block_timeout_ms=2, **kw)  # type: ignore[arg-type]
    caps = [first]
    try:
        assert first.fanout_id is not None
        same = Fanout(fanout.mode, first.fanout_id, fanout.defrag, fanout.rollover, fanout.ignore_outgoing,
                      fanout.program)
        for _ in range(n - 1):
            caps.append(Capture(net.outer, fanout=same, block_timeout_ms=2, **kw))  # type: ignore[arg-type]
    except BaseException:
        for c in caps:
            c.close()
        raise
    return caps


def close_all(caps: list[Capture]) -> None:
    for c in caps:
        c.close()


def flow_of(frame: bytes) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """The flow a UDP frame belongs to, the same for both directions."""
    src, dst = frame[26:30], frame[30:34]
    sport, dport = struct.unpack_from("!HH", frame, 34)
    a, b = (src, sport), (dst, dport)
    return (a, b) if a <= b else (b, a)


def seq_of(frame: bytes) -> int:
    return int(struct.unpack_from("!I", frame, 42)[0])


def dport_of(frame: bytes) -> int:
    return int(struct.unpack_from("!H", frame, 36)[0])


def received(caps: list[Capture]) -> int:
    return sum(c.stats().received for c in caps)


# -- HASH ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("members", [2, 4])
def test_hash_keeps_every_flow_on_one_member_in_both_directions(quiet: VethPair, members: int) -> None:
    flows = 24
    caps = group(quiet, members, Fanout("hash"))
    try:
        inb = [inbound(quiet, 20000 + f, 5000 + f, f * 10 + k) for f in range(flows) for k in range(3)]
        outb = [outbound(quiet, 20000 + f, 5000 + f, f * 10 + 5 + k) for f in range(flows) for k in range(3)]
        quiet.send(inb)
        send_out(quiet, outb)
        sent = len(inb) + len(outb)
        got = collect(caps, sent)
        owner: dict[object, set[int]] = defaultdict(set)
        for i, frames in enumerate(got):
            for f in frames:
                owner[flow_of(f)].add(i)
        assert len(owner) == flows
        assert all(len(m) == 1 for m in owner.values()), {k: v for k, v in owner.items() if len(v) > 1}
        seqs = sorted(seq_of(f) for frames in got for f in frames)
        assert seqs == sorted(seq_of(f) for f in inb + outb)  # each frame once, none lost
        assert received(caps) == sent
        assert sum(c.stats().drops for c in caps) == 0
        assert sum(1 for frames in got if frames) >= 2  # the flows really were spread
    finally:
        close_all(caps)


# -- LB --------------------------------------------------------------------------------------------
def test_lb_splits_evenly(quiet: VethPair) -> None:
    caps = group(quiet, 2, Fanout("lb"))
    try:
        frames = [inbound(quiet, 30000, 53, i) for i in range(400)]  # one flow: HASH would not split it
        quiet.send(frames)
        got = collect(caps, len(frames))
        a, b = len(got[0]), len(got[1])
        assert a + b == 400 == received(caps)
        assert abs(a - b) <= 8, (a, b)  # round robin: within 2 %
    finally:
        close_all(caps)


# -- ROLLOVER --------------------------------------------------------------------------------------
def stalled_member(net: VethPair, fanout: Fanout) -> Capture:
    """A member whose ring is 4 small blocks and is never read."""
    return Capture(net.outer, fanout=fanout, buffer_size=4 * 4096, block_size=4096, block_timeout_ms=1000)


def test_rollover_mode_moves_load_off_a_stalled_member(quiet: VethPair) -> None:
    stalled = stalled_member(quiet, Fanout("rollover"))  # first member: rollover mode fills it first
    reader = Capture(quiet.outer, fanout=Fanout("rollover", stalled.fanout_id), block_timeout_ms=2)
    try:
        frames = [inbound(quiet, 31000, 53, i) for i in range(600)]
        quiet.send(frames)
        (read,) = collect([reader], 600 - stalled.stats().received, settle=0.1, limit=2.0)
        s_stats, r_stats = stalled.stats(), reader.stats()
        # the stalled ring took what it had room for, the rest moved on; nothing was lost
        assert 0 < s_stats.received < 600
        assert len(read) == r_stats.received == 600 - s_stats.received
        assert s_stats.drops == 0
        ro = stalled.rollover_stats()
        assert isinstance(ro, RolloverStats)
        # mode rollover places every packet through the first member, which counts each placement
        assert ro.total == 600 and ro.failed == 0 and len(read) > 0
    finally:
        close_all([stalled, reader])


def test_rollover_flag_with_hash_moves_a_flow_off_a_stalled_member(quiet: VethPair) -> None:
    stalled = stalled_member(quiet, Fanout("hash", rollover=True))
    reader = Capture(quiet.outer, fanout=Fanout("hash", stalled.fanout_id, rollover=True), block_timeout_ms=2)
    try:
        # Find a flow HASH gives to the stalled member, then send a lot of it.
        port = None
        for p in range(40000, 40064):
            quiet.send([inbound(quiet, p, 53, 0)])
            if stalled.stats().received:
                port = p
                break
        assert port is not None, "no flow hashed to the first member among 64"
        list(reader.packets(timeout=0.05))
        base_r = reader.stats().received
        frames = [inbound(quiet, port, 53, i) for i in range(600)]
        quiet.send(frames)
        collect([reader], 1, settle=0.2)
        moved = reader.stats().received - base_r
        kept = stalled.stats().received - 1
        assert kept + moved == 600
        assert 0 < kept < 600 and moved > 0  # the flow started on its member, then rolled over
        ro = stalled.rollover_stats()
        assert ro.total == moved  # counted by the member the packets were meant for
        assert reader.rollover_stats().total == 0
        assert stalled.stats().drops == 0
    finally:
        close_all([stalled, reader])


# -- CBPF / EBPF -----------------------------------------------------------------------------------
def steer_traffic(net: VethPair) -> list[bytes]:
    """Both directions, even and odd destination ports; returns every frame sent."""
    inb = [inbound(net, 22000 + i, 6000 + i, i) for i in range(40)]
    outb = [outbound(net, 6100 + i, 23000 + i, 100 + i) for i in range(40)]  # destination 6100+i
    net.send(inb)
    send_out(net, outb)
    return inb + outb


def assert_steered_by_port_parity(caps: list[Capture], frames: list[bytes]) -> None:
    got = collect(caps, len(frames))
    for member, mine in enumerate(got):
        assert sorted(seq_of(f) for f in mine) == sorted(seq_of(f) for f in frames if dport_of(f) % 2 == member)
    assert received(caps) == len(frames)


def test_cbpf_program_steers_each_member_exactly_its_set(quiet: VethPair) -> None:
    caps = group(quiet, 2, Fanout("cbpf", program=classic_steer_by_udp_dst_port()))
    try:
        assert_steered_by_port_parity(caps, steer_traffic(quiet))
    finally:
        close_all(caps)


def assert_spread_and_whole(got: list[list[bytes]], *, flows: int, total: int) -> None:
    """Every flow on one member, both members used, every frame delivered once."""
    owner: dict[object, set[int]] = defaultdict(set)
    for i, mine in enumerate(got):
        for fr in mine:
            owner[flow_of(fr)].add(i)
    assert len(owner) == flows and all(len(m) == 1 for m in owner.values())
    assert got[0] and got[1]
    assert sum(map(len, got)) == total


def test_cbpf_default_program_is_a_symmetric_flow_hash(quiet: VethPair) -> None:
    assert Fanout("cbpf").program is None and flow_hash_program().instructions[-3:-2] == ((0x16, 0, 0, 0),)
    caps = group(quiet, 2, Fanout("cbpf"))
    try:
        # No help from the device (raw frames on a veth carry no skb->hash): the program hashes the
        # addresses and ports itself, so flows spread, each flow whole, both directions together.
        frames = [inbound(quiet, 24000 + f, 53, 100 + f * 4 + k) for f in range(16) for k in range(4)]
        quiet.send(frames)
        assert_spread_and_whole(collect(caps, len(frames)), flows=16, total=len(frames))
    finally:
        close_all(caps)


def test_cbpf_recorded_hash_program_needs_a_hash_from_the_device(quiet: VethPair) -> None:
    caps = group(quiet, 2, Fanout("cbpf", program=recorded_hash_program()))
    try:
        # Frames from a raw socket on a veth carry no hash (skb->hash == 0): all to member 0.
        frames = [inbound(quiet, 24000 + f, 53, f) for f in range(16)]
        quiet.send(frames)
        got = collect(caps, len(frames))
        assert (len(got[0]), len(got[1])) == (16, 0)
        # With RPS on the receiving end the kernel hashes every packet first: flows spread, each whole.
        rps = f"/sys/class/net/{quiet.outer}/queues/rx-0/rps_cpus"
        with open(rps, "w") as f:
            f.write("3")
        frames = [inbound(quiet, 25000 + f, 53, 100 + f * 4 + k) for f in range(16) for k in range(4)]
        quiet.send(frames)
        assert_spread_and_whole(collect(caps, len(frames)), flows=16, total=len(frames))
    finally:
        close_all(caps)


def test_ebpf_program_loaded_with_bpf_steers_like_cbpf(quiet: VethPair) -> None:
    from afpacket.ebpf import steer_by_udp_dst_port

    # No skip: root may load socket filters, so a failure here is a real failure with its reason.
    with steer_by_udp_dst_port() as prog:
        caps = group(quiet, 2, Fanout("ebpf", program=prog))
    assert prog.closed  # the group holds its own reference
    try:
        assert_steered_by_port_parity(caps, steer_traffic(quiet))
    finally:
        close_all(caps)


def test_ebpf_loader_reports_the_verifier_and_closes() -> None:
    from afpacket.ebpf import insn, load_socket_filter

    with pytest.raises(FilterError, match=r"verifier says:[\s\S]*R0 !read_ok"):
        load_socket_filter([insn(0x95)])  # exit without setting r0
    with pytest.raises(ArgumentError, match="multiple of 8 bytes"):
        load_socket_filter(b"\x95" * 7)
    with pytest.raises(TypeError, match="8 bytes or a"):
        load_socket_filter([1.5])  # type: ignore[list-item]
    prog = load_socket_filter([(0xB7, 0, 0, 0, 1), (0x95,)], name="ret_one")  # r0 = 1; exit
    fd = prog.fd
    assert prog.instruction_count == 2 and fd >= 0
    prog.close()
    prog.close()
    with pytest.raises(AfPacketError, match="closed"):
        prog.fileno()


def test_ebpf_without_privilege_is_a_clear_refusal(nobody_env: dict[str, str]) -> None:
    import subprocess
    import sys

    from conftest import AS_NOBODY

    code = ("from afpacket.ebpf import steer_by_udp_dst_port\n"
            "try:\n    steer_by_udp_dst_port()\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
            "else:\n    print('loaded')\n")
    r = subprocess.run([*AS_NOBODY, "--inh-caps=-all", sys.executable, "-c", code], env=nobody_env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        setting = f.read().strip()
    if setting == "0":  # this kernel lets anyone load socket filters
        assert r.stdout.strip() == "loaded"
    else:
        assert r.stdout.startswith("PermissionDeniedError loading an eBPF program was refused"), r.stdout
        assert "CAP_BPF" in r.stdout and f"unprivileged_bpf_disabled=0 (now {setting})" in r.stdout


# -- CPU, RND, QM, UNIQUEID, IGNORE_OUTGOING, DEFRAG ---------------------------------------------------
@pytest.mark.parametrize("mode", ["cpu", "rnd", "qm"])
def test_other_modes_deliver_every_packet_once(quiet: VethPair, mode: str) -> None:
    caps = group(quiet, 2, Fanout(mode))
    try:
        frames = [inbound(quiet, 26000 + i % 8, 53, i) for i in range(100)]
        quiet.send(frames)
        got = collect(caps, len(frames))
        assert sorted(seq_of(f) for mine in got for f in mine) == list(range(100))
        assert received(caps) == 100
        if mode == "rnd":
            assert got[0] and got[1]  # 100 coin flips
    finally:
        close_all(caps)


def test_uniqueid_gives_an_id_others_join(quiet: VethPair) -> None:
    a = Capture(quiet.outer, fanout="lb", block_timeout_ms=2)
    b = Capture(quiet.outer, fanout="lb", block_timeout_ms=2)  # another new group
    c = Capture(quiet.outer, fanout=Fanout("lb", a.fanout_id), block_timeout_ms=2)
    try:
        assert isinstance(a.fanout_id, int) and isinstance(b.fanout_id, int)
        assert a.fanout_id != b.fanout_id and 0 <= a.fanout_id <= 0xFFFF
        assert c.fanout_id == a.fanout_id
        frames = [inbound(quiet, 27000, 53, i) for i in range(40)]
        quiet.send(frames)
        ga, gb, gc = collect([a, b, c], 80)
        assert len(gb) == 40  # b alone in its group: everything
        assert (len(ga), len(gc)) == (20, 20)  # a and c share theirs round robin
    finally:
        close_all([a, b, c])


def test_ignore_outgoing_drops_this_hosts_packets(quiet: VethPair) -> None:
    caps = group(quiet, 2, Fanout("hash", ignore_outgoing=True))
    watch = Capture(quiet.outer, block_timeout_ms=2)  # not in the group: sees both directions
    try:
        inb = [inbound(quiet, 28000 + i, 53, i) for i in range(20)]
        outb = [outbound(quiet, 28000 + i, 53, 100 + i) for i in range(20)]
        quiet.send(inb)
        send_out(quiet, outb)
        got = collect(caps, 20, settle=0.3)
        assert sorted(seq_of(f) for mine in got for f in mine) == list(range(20))
        assert received(caps) == 20
        (seen,) = collect([watch], 40)
        assert len(seen) == 40
    finally:
        close_all([*caps, watch])


def fragments(net: VethPair, payload: bytes, ident: int) -> list[bytes]:
    """One UDP datagram to OUT_IP split into two IPv4 fragments (the first carries 8 + 48 bytes)."""
    udp = struct.pack("!HHHH", 29000, 53, 8 + len(payload), 0) + payload
    out = []
    for off, chunk, more in ((0, udp[:56], 1), (56, udp[56:], 0)):
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ident, (more << 13) | (off // 8), 64, 17, 0,
                          socket.inet_aton(IN_IP), socket.inet_aton(OUT_IP))
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        out.append(ether(net.outer_mac, net.inner_mac, 0x0800, hdr + chunk))
    return out


def test_defrag_hands_members_whole_datagrams(quiet: VethPair) -> None:
    plain = group(quiet, 2, Fanout("hash"))
    try:
        quiet.send(fragments(quiet, bytes(100), 7))
        got = collect(plain, 2)
        assert sorted(len(f) for mine in got for f in mine) == [14 + 20 + 52, 14 + 20 + 56]  # two fragments
    finally:
        close_all(plain)
    caps = group(quiet, 2, Fanout("hash", defrag=True))
    try:
        quiet.send(fragments(quiet, bytes(100), 8))
        got = collect(caps, 1, settle=0.3)
        whole = [f for mine in got for f in mine]
        assert [len(f) for f in whole] == [14 + 20 + 8 + 100]  # reassembled before the member was chosen
        assert received(caps) == 1
    finally:
        close_all(caps)


# -- bad combinations --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "hashh"}, ArgumentError, "unknown mode 'hashh'; use one of hash, lb"),
        ({"mode": 3}, TypeError, "mode must be a str"),
        ({"group_id": 65536}, ArgumentError, r"group_id must be 0..65535 .* got 65536"),
        ({"group_id": -1}, ArgumentError, "group_id must be 0..65535"),
        ({"group_id": "1"}, TypeError, "group_id must be an integer"),
        ({"defrag": 1}, TypeError, "defrag must be True or False"),
        ({"mode": "rollover", "rollover": True}, ArgumentError, "refused by the kernel .* drop rollover=True"),
        ({"mode": "hash", "program": flow_hash_program()}, ArgumentError, "program steers only modes 'cbpf'"),
        ({"mode": "ebpf"}, ArgumentError, "mode 'ebpf' needs program="),
        ({"mode": "ebpf", "program": flow_hash_program()}, TypeError, r"needs mode='cbpf'"),
        ({"mode": "cbpf", "program": "ret #1"}, TypeError, "takes a classic BpfProgram, not str"),
        ({"mode": "cbpf", "program": BpfProgram(())}, ArgumentError, "empty BpfProgram"),
    ],
)
def test_bad_fanout_is_refused_before_any_system_call(kwargs: dict[str, object], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Fanout(**kwargs)  # type: ignore[arg-type]


def test_ebpf_program_in_cbpf_mode_is_a_type_error() -> None:
    from afpacket.ebpf import steer_by_udp_dst_port

    with steer_by_udp_dst_port() as prog, pytest.raises(TypeError, match=r"needs mode='ebpf'"):
        Fanout("cbpf", program=prog)


def test_kernel_refusals_are_clear(quiet: VethPair) -> None:
    a = Capture(quiet.outer, fanout="hash", block_timeout_ms=2)
    try:
        gid = a.fanout_id
        with pytest.raises(SocketOptionError, match=rf"EINVAL.*group {gid} as lb.*all members must agree"):
            Capture(quiet.outer, fanout=Fanout("lb", gid))
        with pytest.raises(SocketOptionError, match=r"EINVAL.*another mode or flags"):
            Capture(quiet.outer, fanout=Fanout("hash", gid, defrag=True))
        with pytest.raises(SocketOptionError, match=r"EINVAL.*another interface or protocol"):
            Capture("lo", fanout=Fanout("hash", gid))
        with pytest.raises(SocketOptionError, match=r"EALREADY.*already in a fanout group"):
            join(a.socket, Fanout("hash"))
        with pytest.raises(SocketOptionError, match="not in a fanout group with rollover"):
            a.rollover_stats()
        # the lock comes after the join, so a locked member still sets the group's steering program
        with Capture(quiet.outer, fanout="cbpf", lock_filter=True) as locked, \
                pytest.raises(FilterError, match=r"filter is locked"):
            locked.set_filter("udp")
        ps = PacketSocket(quiet.outer)
        try:
            with pytest.raises(AfPacketError, match=r"not bound yet.*bind\(\) first"):
                join(ps, Fanout("hash", gid))
            with pytest.raises(SocketOptionError, match="not in a fanout group"):
                rollover_stats(ps)
        finally:
            ps.close()
    finally:
        a.close()


def test_a_full_group_says_how_many_members_fit(quiet: VethPair) -> None:
    members: list[PacketSocket] = []
    try:
        gid = None
        for _ in range(MAX_MEMBERS):
            ps = PacketSocket(quiet.outer)
            members.append(ps)
            ps.bind()
            gid = join(ps, Fanout("lb", gid))
        extra = PacketSocket(quiet.outer)
        members.append(extra)
        extra.bind()
        with pytest.raises(SocketOptionError, match=f"ENOSPC.*group {gid} is full.*at most 256 members"):
            join(extra, Fanout("lb", gid))
    finally:
        for ps in members:
            ps.close()

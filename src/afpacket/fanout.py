"""PACKET_FANOUT: several packet sockets on one interface share its traffic, each packet going to one
member, chosen by the group's mode.

A group is named by a 16-bit id, per network namespace. Every member must join with the same mode
and flags, and be bound to the same interface and protocol; the kernel refuses anything else with
EINVAL. The kernel takes a socket into a group only once it is bound (``bind`` with a protocol;
before that it answers EINVAL), so joining is the last setup step (see sock.py).

Modes (``Fanout.mode``), as ``linux/if_packet.h`` names them:

- ``hash``: by a symmetric flow hash of addresses and ports, so both directions of a flow reach the
  same member (Suricata's cluster_flow). IP fragments carry no ports: add ``defrag`` to keep them.
- ``lb``: round robin. ``cpu``: by the CPU that handles the packet. ``rnd``: at random.
- ``qm``: by the receive queue the NIC recorded (one queue on veth: everything to one member).
- ``rollover``: everything to the first member until its ring is short of room, then to the next.
- ``cbpf``/``ebpf``: a classic or eBPF program returns a number, taken modulo the member count. The
  program belongs to the *group*: the last member to set one (PACKET_FANOUT_DATA) replaces it for all,
  and until one is set every packet goes to the first member.

Flags: ``defrag`` (reassemble IPv4 fragments before choosing, so the member receives the whole
datagram as one packet), ``rollover`` (when the chosen member is short of room, pass the packet to
another member instead of dropping it; :func:`rollover_stats` counts it), ``ignore_outgoing`` (the
group does not see packets this host sends), and the group id ``None``, which asks the kernel for an
unused id (PACKET_FANOUT_FLAG_UNIQUEID) that further members then join by number.
"""

from __future__ import annotations

import errno
import operator
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import abi
from .ebpf import EbpfProgram
from .errors import AfPacketError, ArgumentError, FilterError, SocketOptionError, os_error
from .filter import (
    ADD_X,
    JA,
    JEQ_K,
    JSET_K,
    LD_B_ABS,
    LD_H_ABS,
    LD_H_IND,
    LD_W_ABS,
    LD_W_MEM,
    LDX_B_MSH,
    LDX_W_MEM,
    MUL_K,
    RET_A,
    RET_K,
    RSH_K,
    SKF_AD_OFF,
    SKF_AD_PROTOCOL,
    SKF_AD_RXHASH,
    SKF_NET_OFF,
    ST,
    TAX,
    TXA,
    XOR_X,
    BpfProgram,
)

if TYPE_CHECKING:
    from .sock import PacketSocket

#: Fanout.mode names and their kernel values
MODES = {
    "hash": abi.PACKET_FANOUT_HASH,
    "lb": abi.PACKET_FANOUT_LB,
    "cpu": abi.PACKET_FANOUT_CPU,
    "rollover": abi.PACKET_FANOUT_ROLLOVER,
    "rnd": abi.PACKET_FANOUT_RND,
    "qm": abi.PACKET_FANOUT_QM,
    "cbpf": abi.PACKET_FANOUT_CBPF,
    "ebpf": abi.PACKET_FANOUT_EBPF,
}
#: members per group when joining with the int form of PACKET_FANOUT, as afpacket does (the kernel's
#: legacy limit; newer kernels also take a struct fanout_args that can ask for up to 65536,
#: PACKET_FANOUT_MAX). A full group refuses the next member with ENOSPC.
MAX_MEMBERS = 256
#: struct tpacket_rollover_stats: tp_all, tp_huge, tp_failed (aligned u64 each)
ROLLOVER_STATS = struct.Struct("=QQQ")

#: SKF_NET_OFF (filter.py): a fanout program sees incoming packets from the network header but outgoing ones
#: from the link header, so only loads relative to the network header mean the same field in both directions.


def recorded_hash_program() -> BpfProgram:
    """The classic program ``ld rxhash; ret a``: the packet's flow hash as the kernel has recorded it
    (skb->hash). The hash is only there if something computed it before the packet reached the group: a
    NIC with receive hashing, RPS/RFS, or the sending socket for locally generated TCP/UDP. Where it is 0
    (frames from raw packet sockets on a veth) every packet goes to member 0, and the two directions of a
    flow may hash differently: :func:`flow_hash_program` has neither fault."""
    return BpfProgram(((LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_RXHASH), (RET_A, 0, 0, 0)), "ld rxhash; ret a")


def _assemble(code: list[tuple[int, object, object, int] | str]) -> tuple[tuple[int, int, int, int], ...]:
    """Classic BPF with labels: a str is a label; jt/jf may name one (or be a plain number)."""
    at: dict[str, int] = {}
    n = 0
    for item in code:
        if isinstance(item, str):
            at[item] = n
        else:
            n += 1
    out: list[tuple[int, int, int, int]] = []
    for item in code:
        if isinstance(item, str):
            continue
        op, jt, jf, k = item
        here = len(out) + 1

        def rel(j: object, here: int = here) -> int:
            return at[j] - here if isinstance(j, str) else int(j)  # type: ignore[call-overload]

        if op == JA:
            k = rel(jt)
            jt = 0
        out.append((op, rel(jt), rel(jf), k))
    return tuple(out)


def flow_hash_program() -> BpfProgram:
    """A classic program computing a symmetric flow hash itself: both directions of a flow give the same
    value, on any device (veth included), with no help from the NIC. The default program of
    ``Fanout(mode="cbpf")`` when none is given.

    IPv4: source + destination address, plus source + destination port for TCP/UDP/SCTP (not in later
    fragments); IPv6: the sum of the eight address words, plus the ports when the next header is TCP,
    UDP or SCTP. The sum is mixed (multiply by the golden-ratio constant, fold the high half down) so
    that the kernel's ``value % members`` spreads flows evenly. Other packets (ARP, ...) return the
    kernel's recorded hash (:func:`recorded_hash_program`). Fields are read relative to the network
    header, as fanout programs see incoming packets from there and outgoing ones from the link header."""
    net = SKF_NET_OFF
    code: list[tuple[int, object, object, int] | str] = [
        (LD_H_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PROTOCOL),
        (JEQ_K, 0, "not4", 0x0800),
        # IPv4: addresses
        (LD_W_ABS, 0, 0, net + 12), (TAX, 0, 0, 0), (LD_W_ABS, 0, 0, net + 16), (ADD_X, 0, 0, 0),
        (ST, 0, 0, 0),
        (LD_B_ABS, 0, 0, net + 9),
        (JEQ_K, "ports4", 0, 6), (JEQ_K, "ports4", 0, 17), (JEQ_K, "ports4", "mix", 132),
        "ports4",
        (LD_H_ABS, 0, 0, net + 6), (JSET_K, "mix", 0, 0x1FFF),
        (LDX_B_MSH, 0, 0, net),
        (LD_H_IND, 0, 0, net), (ST, 0, 0, 1),  # M[1] = source port
        (LD_H_IND, 0, 0, net + 2), (LDX_W_MEM, 0, 0, 1), (ADD_X, 0, 0, 0),
        (LDX_W_MEM, 0, 0, 0), (ADD_X, 0, 0, 0), (ST, 0, 0, 0),
        (JA, "mix", 0, 0),
        "not4",
        (JEQ_K, 0, "other", 0x86DD),
        # IPv6: the eight address words
        (LD_W_ABS, 0, 0, net + 8), (TAX, 0, 0, 0),
        *[x for off in range(12, 40, 4) for x in ((LD_W_ABS, 0, 0, net + off), (ADD_X, 0, 0, 0), (TAX, 0, 0, 0))],
        (TXA, 0, 0, 0), (ST, 0, 0, 0),
        (LD_B_ABS, 0, 0, net + 6),
        (JEQ_K, "ports6", 0, 6), (JEQ_K, "ports6", 0, 17), (JEQ_K, "ports6", "mix", 132),
        "ports6",
        (LD_H_ABS, 0, 0, net + 40), (TAX, 0, 0, 0), (LD_H_ABS, 0, 0, net + 42), (ADD_X, 0, 0, 0),
        (LDX_W_MEM, 0, 0, 0), (ADD_X, 0, 0, 0), (ST, 0, 0, 0),
        "mix",
        (LD_W_MEM, 0, 0, 0), (MUL_K, 0, 0, 0x9E3779B1), (TAX, 0, 0, 0), (RSH_K, 0, 0, 16), (XOR_X, 0, 0, 0),
        (RET_A, 0, 0, 0),
        "other",
        (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_RXHASH), (RET_A, 0, 0, 0),
    ]
    return BpfProgram(_assemble(code), "symmetric flow hash")


def classic_steer_by_udp_dst_port() -> BpfProgram:
    """A classic fanout program returning an IPv4 UDP packet's destination port, 0 for anything else
    (other protocols, non-first fragments): with N members, port % N picks the member. The eBPF twin is
    :func:`afpacket.ebpf.steer_by_udp_dst_port`."""
    net = SKF_NET_OFF
    return BpfProgram(
        (
            (LD_H_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PROTOCOL),  # EtherType (host order)
            (JEQ_K, 0, 6, 0x0800),
            (LD_B_ABS, 0, 0, net + 9),  # IP protocol
            (JEQ_K, 0, 4, 17),
            (LD_H_ABS, 0, 0, net + 6),  # flags + fragment offset
            (JSET_K, 2, 0, 0x1FFF),  # a later fragment has no UDP header
            (LDX_B_MSH, 0, 0, net),  # X = IP header length
            (LD_H_IND, 0, 0, net + 2),  # UDP destination port
            (RET_A, 0, 0, 0),
            (RET_K, 0, 0, 0),
        ),
        "udp dst port",
    )


@dataclass(frozen=True)
class Fanout:
    """How a socket joins a PACKET_FANOUT group (``Capture(iface, fanout=Fanout(...))``).

    - ``mode``: ``"hash"`` (flows, both directions together), ``"lb"`` (round robin), ``"cpu"``,
      ``"rollover"``, ``"rnd"``, ``"qm"`` (receive queue), ``"cbpf"`` or ``"ebpf"`` (a program picks).
    - ``group_id``: the group to join, 0..65535, per network namespace; None asks the kernel for an
      unused id (read it from ``Capture.fanout_id`` and give it to the other members).
    - ``defrag``: reassemble IPv4 fragments before choosing a member (the member receives the whole
      datagram); without it HASH can split a fragmented datagram over members.
    - ``rollover``: pass packets on to another member when the chosen one is short of room (not with
      mode ``"rollover"``, which always does; the kernel refuses the combination).
    - ``ignore_outgoing``: the group does not receive packets this host sends (Linux 4.20+).
    - ``program``: for ``"cbpf"`` a :class:`~afpacket.BpfProgram` whose return value modulo the member
      count picks the member (default: :func:`flow_hash_program`, ``ld rxhash; ret a``, the flow hash
      the kernel recorded); for ``"ebpf"`` a loaded :class:`~afpacket.ebpf.EbpfProgram` (required).
      The program is the group's: every member that sets one replaces it for all.

    All members of a group must agree on mode and flags. Invalid combinations raise ArgumentError or
    TypeError here, before any system call.
    """

    mode: str = "hash"
    group_id: int | None = None
    defrag: bool = False
    rollover: bool = False
    ignore_outgoing: bool = False
    program: BpfProgram | EbpfProgram | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, str):
            raise TypeError(f"Fanout(): mode must be a str ({', '.join(MODES)}), not {type(self.mode).__name__}")
        if self.mode not in MODES:
            raise ArgumentError(f"Fanout(): unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.group_id is not None:
            if isinstance(self.group_id, bool):
                raise TypeError("Fanout(): group_id must be an integer 0..65535 or None, not bool")
            try:
                gid = operator.index(self.group_id)
            except TypeError:
                raise TypeError(
                    f"Fanout(): group_id must be an integer 0..65535 or None, not {type(self.group_id).__name__}"
                ) from None
            if not 0 <= gid <= 0xFFFF:
                raise ArgumentError(
                    f"Fanout(): group_id must be 0..65535 (a 16-bit id), got {gid}; or None to have the kernel pick one"
                )
        for name in ("defrag", "rollover", "ignore_outgoing"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Fanout(): {name} must be True or False, not {getattr(self, name)!r}")
        if self.rollover and self.mode == "rollover":
            raise ArgumentError(
                "Fanout(): rollover=True with mode 'rollover' is refused by the kernel (EINVAL): mode 'rollover' "
                "already rolls over; drop rollover=True, or use it with another mode such as 'hash'"
            )
        program = self.program
        if program is not None and self.mode not in ("cbpf", "ebpf"):
            raise ArgumentError(
                f"Fanout(): a program steers only modes 'cbpf' and 'ebpf', not {self.mode!r}; "
                "use mode='cbpf' for a BpfProgram, mode='ebpf' for an EbpfProgram, or drop program="
            )
        if self.mode == "cbpf" and program is not None and not isinstance(program, BpfProgram):
            hint = " (an EbpfProgram needs mode='ebpf')" if isinstance(program, EbpfProgram) else ""
            raise TypeError(f"Fanout(): mode 'cbpf' takes a classic BpfProgram, not {type(program).__name__}{hint}")
        if self.mode == "ebpf":
            if program is None:
                raise ArgumentError(
                    "Fanout(): mode 'ebpf' needs program=, a loaded eBPF program "
                    "(afpacket.ebpf.load_socket_filter(...) or afpacket.ebpf.steer_by_udp_dst_port())"
                )
            if not isinstance(program, EbpfProgram):
                hint = " (a BpfProgram needs mode='cbpf')" if isinstance(program, BpfProgram) else ""
                raise TypeError(f"Fanout(): mode 'ebpf' takes an EbpfProgram, not {type(program).__name__}{hint}")
        if isinstance(program, BpfProgram) and not program.instructions:
            raise ArgumentError("Fanout(): program= is an empty BpfProgram; give at least one instruction")

    @property
    def type_flags(self) -> int:
        """The mode and flags as the high 16 bits of PACKET_FANOUT take them (UNIQUEID not included)."""
        value = MODES[self.mode]
        if self.defrag:
            value |= abi.PACKET_FANOUT_FLAG_DEFRAG
        if self.rollover:
            value |= abi.PACKET_FANOUT_FLAG_ROLLOVER
        if self.ignore_outgoing:
            value |= abi.PACKET_FANOUT_FLAG_IGNORE_OUTGOING
        return value

    def describe(self) -> str:
        """The mode and flags in words, for messages: ``"hash+defrag"``."""
        flags = [n for n in ("defrag", "rollover", "ignore_outgoing") if getattr(self, n)]
        return "+".join([self.mode, *flags])


@dataclass(frozen=True)
class RolloverStats:
    """PACKET_ROLLOVER_STATS of one member (:meth:`Capture.rollover_stats`), counted since it joined.

    ``total``: packets that were meant for this member and went to another one instead (in mode
    ``rollover`` the kernel places every packet starting from the first member, which counts each one,
    kept or moved); ``huge``: of those, how many
    moved because this member was short of room and the packet's flow was a large one; ``failed``:
    packets that found no member with room (they stayed here and were probably dropped).
    """

    total: int
    huge: int
    failed: int


def join(ps: PacketSocket, fanout: Fanout) -> int:
    """Join the socket ``ps`` to the group ``fanout`` describes; returns the group id (the one the kernel
    picked when ``fanout.group_id`` is None). Then, for ``cbpf``/``ebpf``, give the group its program
    (PACKET_FANOUT_DATA).

    The socket must be bound (the kernel takes only running sockets). Raises AfPacketError for an
    unbound socket, SocketOptionError naming the group and the cause for what the kernel refuses (a group
    with another mode, flags, interface or protocol; a full group; a socket already in a group),
    PermissionDeniedError (EPERM/EACCES), FilterError for a program the kernel refuses (the
    socket is then in the group without its program: close it).
    """
    if not isinstance(fanout, Fanout):
        raise TypeError(f"join(): fanout must be a Fanout, not {type(fanout).__name__}")
    ps.check_open()
    if not _is_bound(ps):
        raise AfPacketError(
            "join(): the socket is not bound yet; the kernel takes a socket into a fanout group only after "
            "bind() (call PacketSocket.bind() first, as Capture does)"
        )
    unique = fanout.group_id is None
    gid = 0 if unique else operator.index(fanout.group_id)  # type: ignore[arg-type]
    type_flags = fanout.type_flags | (abi.PACKET_FANOUT_FLAG_UNIQUEID if unique else 0)
    value = struct.pack("=I", gid | (type_flags << 16))
    group = "a new group with a kernel-chosen id" if unique else f"group {gid}"
    try:
        ps.sock.setsockopt(abi.SOL_PACKET, abi.PACKET_FANOUT, value)
    except OSError as e:
        raise _join_error(e, ps, fanout, group) from None
    if unique:
        gid = ps.getopt_int(abi.PACKET_FANOUT) & 0xFFFF
    if fanout.mode in ("cbpf", "ebpf"):
        # A socket leaves a group only by closing: if this fails, the caller closes it (Capture does).
        set_program(ps, fanout.program if fanout.program is not None else flow_hash_program())
    return gid


def _is_bound(ps: PacketSocket) -> bool:
    """True once bind() gave the socket a protocol (getsockname's sll_protocol is 0 before)."""
    try:
        return int(ps.sock.getsockname()[1]) != 0
    except OSError as e:
        raise os_error("asking the packet socket where it is bound", e, ps.interface_name) from None


def _join_error(e: OSError, ps: PacketSocket, fanout: Fanout, group: str) -> Exception:
    code = e.errno
    where = f"{ps.interface_name!r}"
    if code == errno.EALREADY:
        return SocketOptionError(
            "PACKET_FANOUT", e, "this socket is already in a fanout group; a socket joins at most one, and "
            "leaves it only by closing: open another socket for another group"
        )
    if code == errno.EINVAL:
        return SocketOptionError(
            "PACKET_FANOUT", e,
            f"the kernel refused to put the socket on {where} into {group} as {fanout.describe()}: the group "
            "already exists in this network namespace with another mode or flags, or on another interface or "
            "protocol (all members must agree on all four); use the members' settings or "
            "another group_id",
        )
    if code == errno.ENOSPC:
        return SocketOptionError(
            "PACKET_FANOUT", e, f"{group} is full: the kernel takes at most {MAX_MEMBERS} members per group"
        )
    if code == errno.ENOMEM:
        return SocketOptionError(
            "PACKET_FANOUT", e, "the kernel is out of memory, or of free group ids (all 65536 in use in this "
            "network namespace)"
        )
    if code in (errno.EOPNOTSUPP, errno.ENOPROTOOPT):
        return SocketOptionError("PACKET_FANOUT", e, "this kernel does not support PACKET_FANOUT (Linux 3.1+)")
    return os_error(f"joining fanout {group} ({fanout.describe()})", e, ps.interface_name)


def set_program(ps: PacketSocket, program: BpfProgram | EbpfProgram) -> None:
    """PACKET_FANOUT_DATA: make ``program`` the steering program of the (cbpf/ebpf) group ``ps`` is in;
    it replaces the group's program for every member. FilterError when the kernel refuses it."""
    ps.check_open()
    keep = None
    if isinstance(program, BpfProgram):
        import ctypes

        keep = ctypes.create_string_buffer(program.to_bytes())
        data = abi.SOCK_FPROG.pack(len(program), ctypes.addressof(keep))
        what = f"classic program {program.expression or '(hand-built)'!r}"
    elif isinstance(program, EbpfProgram):
        data = struct.pack("=I", program.fileno())
        what = f"eBPF program {program.name!r}"
    else:
        raise TypeError(f"set_program(): program must be a BpfProgram or an EbpfProgram, not {type(program).__name__}")
    try:
        ps.sock.setsockopt(abi.SOL_PACKET, abi.PACKET_FANOUT_DATA, data)
    except OSError as e:
        if e.errno == errno.EPERM:
            raise FilterError(
                f"setting the fanout {what} failed: EPERM, the socket's filter is locked (SO_LOCK_FILTER forbids "
                "PACKET_FANOUT_DATA too); do not combine lock_filter with a cbpf/ebpf fanout"
            ) from None
        if e.errno == errno.EINVAL and not isinstance(program, BpfProgram):
            raise FilterError(
                f"setting the fanout {what} failed: EINVAL; the group must be in mode 'ebpf' and the program "
                "of type BPF_PROG_TYPE_SOCKET_FILTER (load it with afpacket.ebpf.load_socket_filter)"
            ) from None
        if e.errno == errno.EINVAL:
            raise FilterError(
                f"setting the fanout {what} failed: EINVAL; the socket must be in a group of mode 'cbpf' and the "
                "program a valid classic BPF program (at most 4096 instructions, ending in a return)"
            ) from None
        if e.errno == errno.EBADF:
            raise FilterError(f"setting the fanout {what} failed: EBADF, its file descriptor is closed") from None
        reason = errno.errorcode.get(e.errno or 0, str(e.errno))
        raise FilterError(f"setting the fanout {what} failed: {reason} ({e.strerror})") from None
    finally:
        del keep


def rollover_stats(ps: PacketSocket) -> RolloverStats:
    """PACKET_ROLLOVER_STATS of ``ps``; SocketOptionError when the socket is not in a group with
    rollover (mode 'rollover' or the rollover flag), where the kernel keeps no such counters."""
    ps.check_open()
    try:
        raw = ps.sock.getsockopt(abi.SOL_PACKET, abi.PACKET_ROLLOVER_STATS, ROLLOVER_STATS.size)
    except OSError as e:
        if e.errno == errno.EINVAL:
            raise SocketOptionError(
                "PACKET_ROLLOVER_STATS", e, "the socket is not in a fanout group with rollover; join with "
                "Fanout(mode='rollover') or Fanout(..., rollover=True)"
            ) from None
        raise os_error("reading PACKET_ROLLOVER_STATS", e, ps.interface_name) from None
    total, huge, failed = ROLLOVER_STATS.unpack(raw)
    return RolloverStats(total, huge, failed)

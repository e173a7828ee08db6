"""Capture filters: tcpdump expressions compiled by libpcap (through ctypes) into classic BPF, attached
to the socket with SO_ATTACH_FILTER before the ring exists, so no unfiltered packet lands in it.

libpcap is the reference implementation of the filter language; we borrow its compiler and nothing
else. It is compiled "dead" (``pcap_open_dead``), so ``vlan`` tests look at packet bytes, which never
match tags the kernel stripped into metadata (as with every dead-handle compiler; see
docs/architecture.md). SOCK_DGRAM sockets hand the filter the packet from the network header on, so
their expressions are compiled for raw IP (DLT_RAW): ``ether`` primitives are refused there.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache

from . import abi
from .errors import FilterError

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
#: BPF_MAXINSNS: the kernel's limit for a classic BPF program
MAX_INSNS = 4096
DLT_EN10MB = 1
DLT_RAW = 12
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


@lru_cache(maxsize=1)
def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap")
    if name is None:
        raise FilterError("filter expressions need libpcap: apt-get install libpcap0.8 (or libpcap-dev)")
    lib = ctypes.CDLL(name)
    lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_compile.argtypes = (
        ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32,
    )
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_freecode.argtypes = (ctypes.POINTER(_BpfProgram),)
    lib.pcap_close.argtypes = (ctypes.c_void_p,)
    lib.bpf_filter.argtypes = (ctypes.POINTER(_BpfInsn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint)
    lib.bpf_filter.restype = ctypes.c_uint
    return lib


@dataclass(frozen=True)
class BpfProgram:
    """A classic BPF program: ``instructions``, (code, jt, jf, k) tuples as the kernel takes them, and
    the ``expression`` it was compiled from (empty when built by hand). Made by :func:`compile_filter`;
    pass it as ``Capture(filter=...)`` to compile once and open many captures. ``len()`` counts the
    instructions.
    """

    instructions: tuple[tuple[int, int, int, int], ...]
    expression: str = ""

    def __len__(self) -> int:
        return len(self.instructions)

    def to_bytes(self) -> bytes:
        """The instructions as an array of ``struct sock_filter``, as SO_ATTACH_FILTER takes them."""
        return b"".join(abi.SOCK_FILTER.pack(*i) for i in self.instructions)

    def dump(self) -> str:
        """One instruction per line, like ``tcpdump -dd``."""
        return "\n".join(f"{{ 0x{c:x}, {jt}, {jf}, 0x{k:08x} }}," for c, jt, jf, k in self.instructions)


def compile_filter(
    expression: str, *, dgram: bool = False, snaplen: int = 262144, optimize: bool = True, linktype: int | None = None
) -> BpfProgram:
    """Compile a tcpdump filter ``expression`` for a SOCK_RAW Ethernet socket (or, with ``dgram``, a
    SOCK_DGRAM one, whose packets start at the network header), or, with ``linktype``, for packets of
    that savefile link type (as ``tcpdump -r FILE EXPR`` does). ``snaplen`` is the return value of an
    accepting program (bytes kept), ``optimize`` libpcap's optimiser (``tcpdump -O`` turns it off).

    Raises FilterError (the expression is bad, naming libpcap's reason; it compiles to more than the
    kernel's 4096 instructions; or libpcap is not installed).

    Example::

        prog = compile_filter("udp port 53")
        print(len(prog), prog.dump())        # as tcpdump -dd prints it
        cap = Capture("eth0", filter=prog)
    """
    lib = _libpcap()
    dlt = linktype if linktype is not None else DLT_RAW if dgram else DLT_EN10MB
    handle = lib.pcap_open_dead(dlt, snaplen)
    if not handle:
        raise FilterError("libpcap could not open a handle to compile the filter")
    prog = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), int(optimize), PCAP_NETMASK_UNKNOWN):
            reason = (lib.pcap_geterr(handle) or b"unknown error").decode(errors="replace")
            hint = " (SOCK_DGRAM/'any' captures have no link header: use IP-level primitives)" if dgram else ""
            raise FilterError(f"bad filter expression {expression!r}: {reason}{hint}")
        try:
            insns = tuple(
                (prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                for i in range(prog.bf_len)
            )
        finally:
            lib.pcap_freecode(ctypes.byref(prog))
    finally:
        lib.pcap_close(handle)
    if len(insns) > MAX_INSNS:
        raise FilterError(
            f"filter {expression!r} compiles to {len(insns)} instructions; the kernel takes at most {MAX_INSNS}: "
            "simplify it"
        )
    return BpfProgram(insns, expression)


def attach(sock: socket.socket, program: BpfProgram) -> None:
    """Attach ``program`` to the socket ``sock`` (SO_ATTACH_FILTER). The kernel copies the program, so
    the buffer only has to live for the call. FilterError for an empty program or when the kernel
    refuses it (ENOMEM: raise net.core.optmem_max)."""
    if not program.instructions:
        raise FilterError("an empty BPF program cannot be attached")
    code = ctypes.create_string_buffer(program.to_bytes())
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as e:
        if e.errno == errno.ENOMEM:
            raise FilterError(
                f"attaching filter {program.expression!r} failed: ENOMEM; raise net.core.optmem_max "
                "(sysctl -w net.core.optmem_max=...) or simplify the filter"
            ) from None
        raise FilterError(f"attaching filter {program.expression!r} failed: {e.strerror}") from None


# Classic BPF opcodes and the kernel's ancillary loads (linux/filter.h) the direction prefix uses.
_LD_ABS_W = 0x20
_JEQ_K = 0x15
_RET_K = 0x06
_SKF_AD_OFF = 0xFFFFF000  # -0x1000 as the u32 the instruction holds
_SKF_AD_PKTTYPE = 4
_SKF_AD_IFINDEX = 8
_PACKET_OUTGOING = 4


def with_direction(
    program: BpfProgram | None, *, direction: str = "inout", loopback_ifindex: int | None = None,
    snaplen: int = 262144,
) -> BpfProgram | None:
    """``program`` behind a kernel-side direction check, as libpcap applies in user space:

    * ``direction`` "in" drops outgoing packets, "out" keeps only them (tcpdump ``-Q``), "inout" keeps
      both;
    * ``loopback_ifindex``: the outgoing copy of a packet on the loopback interface is dropped, since the
      same packet comes in again on ``lo`` (tcpdump prints it once; without this every packet on ``lo`` or
      ``any`` shows twice).

    The checks read the kernel's packet type and interface index (ancillary loads), then fall through to
    the user's program, whose jumps are relative and so need no relocation. With no ``program``, an
    accepting one returning ``snaplen`` follows the checks. Returns None when there is nothing to check
    and no program. FilterError for another ``direction`` or a program too long for the kernel.
    """
    if direction not in ("in", "out", "inout"):
        raise FilterError(f"direction must be 'in', 'out' or 'inout', got {direction!r}")
    if direction == "inout" and loopback_ifindex is None:
        return program
    body = list(program.instructions) if program is not None else [(_RET_K, 0, 0, snaplen)]
    lo_check = loopback_ifindex is not None and direction != "in"
    # Layout: [0] load pkttype, [1] branch, [2,3] loopback check (if any), DROP: return 0, PROG: the program.
    lo_at = 2
    drop_at = 4 if lo_check else 2
    prog_at = drop_at + 1
    out_target = drop_at if direction == "in" else lo_at if lo_check else prog_at
    in_target = drop_at if direction == "out" else prog_at
    insns: list[tuple[int, int, int, int]] = [
        (_LD_ABS_W, 0, 0, _SKF_AD_OFF + _SKF_AD_PKTTYPE),
        (_JEQ_K, out_target - 2, in_target - 2, _PACKET_OUTGOING),
    ]
    if lo_check:
        insns += [
            (_LD_ABS_W, 0, 0, _SKF_AD_OFF + _SKF_AD_IFINDEX),
            (_JEQ_K, drop_at - 4, prog_at - 4, loopback_ifindex or 0),
        ]
    insns.append((_RET_K, 0, 0, 0))
    insns += body
    if len(insns) > MAX_INSNS:
        raise FilterError(f"the filter with its direction check has {len(insns)} instructions; the kernel takes "
                          f"at most {MAX_INSNS}: simplify it")
    return BpfProgram(tuple(insns), program.expression if program is not None else "")


class OfflineFilter:
    """A filter expression matched against packets read from a file (``tcpdump -r FILE EXPR``): compiled by
    libpcap for the file's link type and run by libpcap's own BPF interpreter, so a file and a live
    capture select the same packets. One program per link type (a pcapng file may hold several).
    ``snaplen`` is the accepting program's return value. FilterError (from :meth:`check` or the first
    :meth:`matches`) for a bad expression.

    Example::

        f = OfflineFilter("icmp")
        hits = [rec for rec in open_reader("x.pcap") if f.matches(rec.data, rec.wire_len, rec.linktype)]
    """

    def __init__(self, expression: str, snaplen: int = 262144) -> None:
        self.expression = expression
        self.snaplen = snaplen
        self._programs: dict[int, ctypes.Array[_BpfInsn]] = {}
        self._lib = _libpcap()

    def _program(self, linktype: int) -> ctypes.Array[_BpfInsn]:
        prog = self._programs.get(linktype)
        if prog is None:
            compiled = compile_filter(self.expression, snaplen=self.snaplen, linktype=linktype)
            prog = (_BpfInsn * len(compiled))(*(_BpfInsn(*i) for i in compiled.instructions))
            self._programs[linktype] = prog
        return prog

    def check(self, linktype: int) -> BpfProgram:
        """Compile for ``linktype`` now (so a bad expression fails before any packet is read)."""
        self._program(linktype)
        return compile_filter(self.expression, snaplen=self.snaplen, linktype=linktype)

    def matches(self, data: bytes, wire_len: int, linktype: int) -> bool:
        """True when the filter accepts the packet (``data`` as captured, ``wire_len`` its length on the wire,
        ``linktype`` the LINKTYPE_* of ``data``)."""
        return bool(self._lib.bpf_filter(self._program(linktype), data, wire_len, len(data)))

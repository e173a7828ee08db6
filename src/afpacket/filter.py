"""Capture filters: tcpdump expressions compiled by libpcap (through ctypes) into classic BPF, raw
programs parsed from tcpdump's ``-dd``/``-ddd`` text, attached to the socket with SO_ATTACH_FILTER
before the ring exists (so no unfiltered packet lands in it), replaced or removed on a running socket,
and locked (SO_LOCK_FILTER).

libpcap is the reference implementation of the filter language; we borrow its compiler and nothing
else. For a named interface the expression is compiled *for that interface*, as ``tcpdump -d -i IFACE``
does: libpcap activates a handle on it (a few milliseconds), learns its link type and that the kernel
offers BPF extensions, and then compiles ``vlan`` tests to read the kernel's VLAN metadata
(SKF_AD_VLAN_TAG_PRESENT), since on Linux the tag of a received frame is usually stripped from the
bytes into metadata. Results are cached per interface, so compiling the same expression again is
cheap. Without an interface, or for SOCK_DGRAM/'any' sockets (whose packets start at the network
header: compiled for raw IP, DLT_RAW, so ``ether`` primitives are refused), or for a savefile link
type, the expression is compiled on a dead handle, whose ``vlan`` tests read the packet bytes.

If activation fails because the interface does not exist, that is the caller's mistake: FilterError
with libpcap's reason. Any other failure (no permission, the interface is down) falls back to the
dead-handle compile for Ethernet, so an unprivileged user can still compile and a capture opened on a
down link still gets its filter; :attr:`BpfProgram.interface` is then None, which says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import re
import socket
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from . import abi
from .errors import FilterError

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_DETACH_FILTER = getattr(socket, "SO_DETACH_FILTER", 27)
SO_LOCK_FILTER = 44
#: BPF_MAXINSNS: the kernel's limit for a classic BPF program
MAX_INSNS = 4096
DLT_EN10MB = 1
DLT_RAW = 12
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
#: libpcap's pcap_activate() status for "no such device" (the only activation failure we report)
_PCAP_ERROR_NO_SUCH_DEVICE = -5
#: libpcap's MAXIMUM_SNAPLEN: larger (or 0) snapshot lengths mean this one, as in tcpdump
MAXIMUM_SNAPLEN = 262144
#: the socket buffer asked of the short-lived handle a live compile activates (libpcap rounds it up to
#: one block): its ring is never read, so it is kept as small as libpcap allows
_LIVE_BUFFER = 1 << 16

# Classic BPF opcodes and the kernel's ancillary loads (linux/filter.h), for the programs built by hand here
# (the direction prefix) and in fanout.py (steering programs): named once.
LD_W_ABS, LD_H_ABS, LD_B_ABS, LD_H_IND = 0x20, 0x28, 0x30, 0x48
LDX_B_MSH, LD_W_MEM, LDX_W_MEM, ST = 0xB1, 0x60, 0x61, 0x02
TAX, TXA = 0x07, 0x87
ADD_X, XOR_X, MUL_K, RSH_K = 0x0C, 0xAC, 0x24, 0x74
JA, JEQ_K, JSET_K = 0x05, 0x15, 0x45
RET_K, RET_A = 0x06, 0x16
SKF_AD_OFF = 0xFFFFF000  # -0x1000 as the u32 the instruction holds
SKF_AD_PROTOCOL, SKF_AD_PKTTYPE, SKF_AD_IFINDEX, SKF_AD_RXHASH = 0, 4, 8, 32
#: -0x100000: loads relative to the network header
SKF_NET_OFF = 0xFFF00000
_PACKET_OUTGOING = 4

Instruction = tuple[int, int, int, int]


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
    vp, cp, ci = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    lib.pcap_open_dead.argtypes = (ci, ci)
    lib.pcap_open_dead.restype = vp
    lib.pcap_create.argtypes = (cp, cp)
    lib.pcap_create.restype = vp
    for setter in ("pcap_set_snaplen", "pcap_set_buffer_size", "pcap_set_immediate_mode"):
        getattr(lib, setter).argtypes = (vp, ci)
        getattr(lib, setter).restype = ci
    lib.pcap_activate.argtypes = (vp,)
    lib.pcap_activate.restype = ci
    lib.pcap_statustostr.argtypes = (ci,)
    lib.pcap_statustostr.restype = cp
    lib.pcap_compile.argtypes = (vp, ctypes.POINTER(_BpfProgram), cp, ci, ctypes.c_uint32)
    lib.pcap_compile.restype = ci
    lib.pcap_geterr.argtypes = (vp,)
    lib.pcap_geterr.restype = cp
    lib.pcap_freecode.argtypes = (ctypes.POINTER(_BpfProgram),)
    lib.pcap_close.argtypes = (vp,)
    lib.bpf_filter.argtypes = (ctypes.POINTER(_BpfInsn), cp, ctypes.c_uint, ctypes.c_uint)
    lib.bpf_filter.restype = ctypes.c_uint
    lib.bpf_image.argtypes = (ctypes.POINTER(_BpfInsn), ci)
    lib.bpf_image.restype = cp
    lib.pcap_datalink_name_to_val.argtypes = (cp,)
    lib.pcap_datalink_name_to_val.restype = ci
    return lib


#: bpf_image() formats into one static buffer: one caller at a time
_image_lock = threading.Lock()


def _insn_array(instructions: Sequence[Instruction]) -> ctypes.Array[_BpfInsn]:
    return (_BpfInsn * len(instructions))(*(_BpfInsn(*i) for i in instructions))


@dataclass(frozen=True)
class BpfProgram:
    """A classic BPF program: ``instructions``, (code, jt, jf, k) tuples as the kernel takes them, the
    ``expression`` it was compiled from (empty when built by hand or parsed) and the ``interface`` it was
    compiled for (None: a dead handle, whose ``vlan`` tests read packet bytes rather than the kernel's
    VLAN metadata). Made by :func:`compile_filter` or :func:`parse_program`; pass it as
    ``Capture(filter=...)`` to compile once and open many captures. ``len()`` counts the instructions.
    """

    instructions: tuple[Instruction, ...]
    expression: str = ""
    interface: str | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.instructions)

    def to_bytes(self) -> bytes:
        """The instructions as an array of ``struct sock_filter``, as SO_ATTACH_FILTER takes them."""
        return b"".join(abi.SOCK_FILTER.pack(*i) for i in self.instructions)

    def dump(self, level: int = 2) -> str:
        """The program as tcpdump prints it: ``level`` 1 like ``-d`` (readable, libpcap's own
        ``bpf_image``), 2 like ``-dd`` (a C array), 3 like ``-ddd`` (the count, then decimal
        ``code jt jf k`` lines, which :func:`parse_program` reads back). No trailing newline."""
        if level == 1:
            lib = _libpcap()
            insns = _insn_array(self.instructions)
            with _image_lock:
                return "\n".join(
                    (lib.bpf_image(ctypes.byref(insns[i]), i) or b"").decode() for i in range(len(insns))
                )
        if level == 2:
            return "\n".join(f"{{ 0x{c:x}, {jt}, {jf}, 0x{k:08x} }}," for c, jt, jf, k in self.instructions)
        if level == 3:
            return "\n".join([str(len(self.instructions)), *(f"{c} {jt} {jf} {k}" for c, jt, jf, k in
                                                              self.instructions)])
        raise FilterError(f"BpfProgram.dump(): level must be 1 (-d), 2 (-dd) or 3 (-ddd), got {level!r}")

    def matches(self, data: bytes | bytearray | memoryview, wire_len: int | None = None) -> bool:
        """True when the program accepts the packet ``data`` (``wire_len``: its length on the wire,
        default ``len(data)``), run by libpcap's BPF interpreter as the kernel would run it. The program
        sees only the bytes: loads of kernel metadata (a live-compiled ``vlan`` test, ``inbound``) find
        nothing and reject. To filter a file's records use :class:`OfflineFilter`, which compiles for the
        file's link type."""
        raw = bytes(data)
        insns = _insn_array(self.instructions)
        return bool(_libpcap().bpf_filter(insns, raw, len(raw) if wire_len is None else wire_len, len(raw)))


#: the start of tcpdump -ddd ("16" alone on the first line) or -dd ("{ 0x28, ...") text
_RAW_TEXT = re.compile(r"^\s*(\d+\s*\n|\{\s*0x)")


def _extract(lib: ctypes.CDLL, handle: int, expression: str, optimize: bool, netmask: int, hint: str = "") -> tuple[
        Instruction, ...]:
    """pcap_compile on ``handle``; the instructions, or FilterError with libpcap's reason."""
    prog = _BpfProgram()
    if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), int(optimize), netmask):
        reason = (lib.pcap_geterr(handle) or b"unknown error").decode(errors="replace")
        if _RAW_TEXT.match(expression):
            hint += " (it looks like tcpdump -ddd/-dd output: pass afpacket.parse_program(text) as the filter)"
        raise FilterError(f"bad filter expression {expression!r}: {reason}{hint}")
    try:
        return tuple(
            (prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
            for i in range(prog.bf_len)
        )
    finally:
        lib.pcap_freecode(ctypes.byref(prog))


#: live compiles already made: (interface, ifindex, expression, snaplen, optimize) -> program. The
#: ifindex changes when an interface of the same name is made again, so a stale entry never matches; a
#: program compiled while the link was up stays valid while it is down (its link type did not change).
_live_cache: OrderedDict[tuple[str, int, str, int, bool], tuple[Instruction, ...]] = OrderedDict()
_live_cache_lock = threading.Lock()
_LIVE_CACHE_SIZE = 256


def _compile_live(
    lib: ctypes.CDLL, expression: str, interface: str, snaplen: int, optimize: bool
) -> tuple[Instruction, ...] | None:
    """Compile as ``tcpdump -d -i interface`` does, on an activated handle; None when activation failed
    for a reason other than a missing interface (the caller then compiles dead)."""
    try:
        ifindex = socket.if_nametoindex(interface)
    except (OSError, ValueError):
        ifindex = 0  # libpcap names the problem below
    key = (interface, ifindex, expression, snaplen, optimize)
    with _live_cache_lock:
        hit = _live_cache.get(key)
        if hit is not None:
            _live_cache.move_to_end(key)
            return hit
    err = ctypes.create_string_buffer(256)
    handle = lib.pcap_create(interface.encode(), err)
    if not handle:
        raise FilterError(f"cannot compile a filter for interface {interface!r}: {err.value.decode(errors='replace')}")
    try:
        lib.pcap_set_snaplen(handle, snaplen)
        lib.pcap_set_buffer_size(handle, _LIVE_BUFFER)
        lib.pcap_set_immediate_mode(handle, 1)  # a TPACKET_V2 ring: activates in half the time of V3's
        status = lib.pcap_activate(handle)
        if status < 0:
            if status == _PCAP_ERROR_NO_SUCH_DEVICE:
                reason = (lib.pcap_geterr(handle) or lib.pcap_statustostr(status) or b"").decode(errors="replace")
                raise FilterError(
                    f"cannot compile filter {expression!r} for interface {interface!r}: {reason} "
                    "(libpcap); check the name with `ip link`"
                )
            return None
        # netmask 0, as tcpdump passes it (it looks the netmask up only for -f): `ip broadcast` then
        # means a host part of all zeros or all ones
        insns = _extract(lib, handle, expression, optimize, 0)
    finally:
        lib.pcap_close(handle)
    with _live_cache_lock:
        _live_cache[key] = insns
        while len(_live_cache) > _LIVE_CACHE_SIZE:
            _live_cache.popitem(last=False)
    return insns


def compile_filter(
    expression: str, *, dgram: bool = False, snaplen: int = MAXIMUM_SNAPLEN, optimize: bool = True,
    linktype: int | None = None, interface: str | None = None,
) -> BpfProgram:
    """Compile a tcpdump filter ``expression``:

    * with ``interface`` (and neither ``dgram`` nor ``linktype``): for that live interface, exactly as
      ``tcpdump -d -i interface`` does, so ``vlan`` reads the kernel's VLAN metadata. The first compile
      of an expression for an interface activates a short-lived libpcap handle on it (about 30 ms, most
      of it the kernel releasing the handle's socket); later ones come from a cache (microseconds).
    * otherwise for a SOCK_RAW Ethernet socket (or, with ``dgram``, a SOCK_DGRAM one, whose packets start
      at the network header), or, with ``linktype``, for packets of that savefile link type (as
      ``tcpdump -r FILE EXPR`` does), on a dead handle.

    ``snaplen`` is the return value of an accepting program (bytes kept; 0 or more than 262144 means
    262144, as in tcpdump), ``optimize`` libpcap's optimiser (``tcpdump -O`` turns it off).

    Raises FilterError (the expression is bad, naming libpcap's reason; no such interface; it compiles
    to more than the kernel's 4096 instructions; or libpcap is not installed). When the interface
    exists but cannot be activated (no permission, link down) it compiles on a dead handle for Ethernet
    instead, and the program's ``interface`` is None.

    Example::

        prog = compile_filter("vlan 100 and udp", interface="eth0")
        print(prog.dump(1))                  # as tcpdump -d -i eth0 prints it
        cap = Capture("eth0", filter=prog)
    """
    if not isinstance(expression, str):
        raise TypeError(f"compile_filter(): expression must be a str, not {type(expression).__name__}")
    lib = _libpcap()
    if snaplen <= 0 or snaplen > MAXIMUM_SNAPLEN:
        snaplen = MAXIMUM_SNAPLEN
    insns: tuple[Instruction, ...] | None = None
    compiled_for: str | None = None
    if interface is not None and not dgram and linktype is None:
        insns = _compile_live(lib, expression, interface, snaplen, optimize)
        compiled_for = interface if insns is not None else None
    if insns is None:
        dlt = linktype if linktype is not None else DLT_RAW if dgram else DLT_EN10MB
        handle = lib.pcap_open_dead(dlt, snaplen)
        if not handle:
            raise FilterError("libpcap could not open a handle to compile the filter")
        try:
            hint = " (SOCK_DGRAM/'any' captures have no link header: use IP-level primitives)" if dgram else ""
            insns = _extract(lib, handle, expression, optimize, PCAP_NETMASK_UNKNOWN, hint)
        finally:
            lib.pcap_close(handle)
    if len(insns) > MAX_INSNS:
        raise FilterError(
            f"filter {expression!r} compiles to {len(insns)} instructions; the kernel takes at most {MAX_INSNS}: "
            "simplify it"
        )
    return BpfProgram(insns, expression, compiled_for)


def linktype_value(name: str) -> int:
    """The link type ``name`` given as libpcap names it (``EN10MB``, ``RAW``, ``LINUX_SLL``; the ``DLT_``
    prefix optional, any case) or as a number; FilterError naming the value otherwise."""
    text = name.strip()
    if text.isdigit():
        return int(text)
    value = _libpcap().pcap_datalink_name_to_val(text.upper().removeprefix("DLT_").encode())
    if value < 0:
        raise FilterError(f"unknown link type {name!r}: give a libpcap name (EN10MB, RAW, LINUX_SLL, ...) or a number")
    return int(value)


def _fprog(program: BpfProgram) -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """``struct sock_fprog`` for ``program``, and the buffer it points to (keep it alive for the call)."""
    code = ctypes.create_string_buffer(program.to_bytes())
    return struct.pack("HL", len(program), ctypes.addressof(code)), code


_LOCKED = "the filter is locked (SO_LOCK_FILTER): it stays as it is until the socket closes; open a new capture"


def attach(sock: socket.socket, program: BpfProgram) -> None:
    """Attach ``program`` to the socket ``sock`` (SO_ATTACH_FILTER). The kernel copies the program, so
    the buffer only has to live for the call. FilterError for an empty program, a locked filter, or when
    the kernel refuses it (ENOMEM: raise net.core.optmem_max)."""
    if not program.instructions:
        raise FilterError("an empty BPF program cannot be attached")
    fprog, _code = _fprog(program)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError as e:
        if e.errno == errno.EPERM:
            raise FilterError(_LOCKED) from None
        if e.errno == errno.ENOMEM:
            raise FilterError(
                f"attaching filter {program.expression!r} failed: ENOMEM; raise net.core.optmem_max "
                "(sysctl -w net.core.optmem_max=...) or simplify the filter"
            ) from None
        what = f"filter {program.expression!r}" if program.expression else "the BPF program"
        raise FilterError(f"attaching {what} failed: {e.strerror} (the kernel's checker refused it)") from None


#: ``ret #0``: the program a swap attaches first, so nothing passes while the new one goes in
DROP_ALL = BpfProgram(((RET_K, 0, 0, 0),), "(drop all)")


def swap(sock: socket.socket, program: BpfProgram | None) -> None:
    """Replace the filter of the running socket ``sock`` by ``program``, or remove it (None), letting no packet
    through unfiltered in between: a drop-all program goes in first, then the new one (as libpcap's
    pcap_setfilter does on Linux). The new program is first tried on a throw-away UDP socket, so one the
    kernel's checker refuses fails before the running filter is touched. Removing a filter from a
    socket that has none is not an error. FilterError when the filter is locked (SO_LOCK_FILTER: the
    kernel answers EPERM) or the program is refused."""
    if program is None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        except OSError as e:
            if e.errno == errno.EPERM:
                raise FilterError(_LOCKED) from None
            if e.errno != errno.ENOENT:  # ENOENT: there was none
                raise FilterError(f"removing the filter failed: {e.strerror}") from None
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as trial:
        attach(trial, program)
    attach(sock, DROP_ALL)
    try:
        attach(sock, program)
    except FilterError as e:
        raise FilterError(f"{e}; the socket is left dropping every packet: set another filter or None") from None


def lock(sock: socket.socket) -> None:
    """SO_LOCK_FILTER on ``sock``: from now on its filter (or its lack of one) cannot be attached, replaced
    or removed, not even by this process, until the socket closes. FilterError if the kernel refuses."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_LOCK_FILTER, 1)
    except OSError as e:
        raise FilterError(f"locking the filter (SO_LOCK_FILTER) failed: {e.strerror}") from None




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
    body = list(program.instructions) if program is not None else [(RET_K, 0, 0, snaplen)]
    lo_check = loopback_ifindex is not None and direction != "in"
    # Layout: [0] load pkttype, [1] branch, [2,3] loopback check (if any), DROP: return 0, PROG: the program.
    lo_at = 2
    drop_at = 4 if lo_check else 2
    prog_at = drop_at + 1
    out_target = drop_at if direction == "in" else lo_at if lo_check else prog_at
    in_target = drop_at if direction == "out" else prog_at
    insns: list[tuple[int, int, int, int]] = [
        (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_PKTTYPE),
        (JEQ_K, out_target - 2, in_target - 2, _PACKET_OUTGOING),
    ]
    if lo_check:
        insns += [
            (LD_W_ABS, 0, 0, SKF_AD_OFF + SKF_AD_IFINDEX),
            (JEQ_K, drop_at - 4, prog_at - 4, loopback_ifindex or 0),
        ]
    insns.append((RET_K, 0, 0, 0))
    insns += body
    if len(insns) > MAX_INSNS:
        raise FilterError(f"the filter with its direction check has {len(insns)} instructions; the kernel takes "
                          f"at most {MAX_INSNS}: simplify it")
    return BpfProgram(tuple(insns), program.expression if program is not None else "",
                      program.interface if program is not None else None)


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
            prog = _insn_array(compiled.instructions)
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


# -- raw programs ---------------------------------------------------------------------------------------

#: Every opcode the kernel's classic BPF checker accepts (linux/net/core/filter.c, bpf_check_classic).
_VALID_CODES = frozenset({
    0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80,  # ld: imm, abs w/h/b, ind w/h/b, mem, len
    0x01, 0x61, 0x81, 0xB1,  # ldx: imm, mem, len, msh
    0x02, 0x03,  # st, stx
    *(0x04 | op | src for op in range(0x00, 0xB0, 0x10) if op != 0x80 for src in (0x00, 0x08)), 0x84,  # alu, neg
    0x05, *(0x05 | op | src for op in (0x10, 0x20, 0x30, 0x40) for src in (0x00, 0x08)),  # ja, jeq/jgt/jge/jset
    0x06, 0x16,  # ret k, ret a
    0x07, 0x87,  # tax, txa
})
_BPF_MEMWORDS = 16
_DDD_LINE = re.compile(r"^\s*(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")
_DD_LINE = re.compile(r"^\s*\{\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s]+)\s*,\s*([^,\s}]+)\s*\}\s*,?\s*$")


def _number(text: str, where: str, name: str) -> int:
    try:
        return int(text, 10) if text.isdigit() else int(text, 0)  # decimal (-ddd, leading zeros too) or 0x..
    except ValueError:
        raise FilterError(f"{where}: {name} {text!r} is not a number") from None


def _fields(groups: Sequence[str], where: str) -> Instruction:
    code, jt, jf, k = (_number(v, where, f) for v, f in zip(groups, ("code", "jt", "jf", "k"), strict=True))
    return code, jt, jf, k


def _parse_text(text: str) -> list[tuple[Instruction, str]]:
    """(instruction, where) pairs from ``-ddd`` text (a count line first; lines, or one line with the
    instructions separated by commas as iptables' ``--bytecode`` takes them) or ``-dd`` text."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise FilterError("the BPF program is empty: give tcpdump -ddd output (a count line, then 'code jt jf k' "
                          "lines)")
    if lines[0][1].lstrip().startswith("{"):  # -dd: "{ 0x28, 0, 0, 0x0000000c },"
        out: list[tuple[Instruction, str]] = []
        for n, line in lines:
            m = _DD_LINE.match(line)
            if m is None:
                raise FilterError(f"line {n}: {line.strip()!r} is not a '{{ code, jt, jf, k }},' line (tcpdump -dd)")
            out.append((_fields(m.groups(), f"line {n}"), f"line {n}"))
        return out
    if len(lines) == 1 and "," in lines[0][1]:  # "4,48 0 0 9,21 0 1 6,6 0 0 1,6 0 0 0"
        lines = list(enumerate(lines[0][1].split(","), 1))
        label = "item"
    else:
        label = "line"
    first_n, first = lines[0]
    count = _number(first.strip(), f"{label} {first_n}", "the instruction count")
    body = lines[1:]
    if count != len(body):
        raise FilterError(f"{label} {first_n}: the count says {count} instructions but {len(body)} follow")
    out = []
    for n, line in body:
        m = _DDD_LINE.match(line)
        where = f"{label} {n}"
        if m is None:
            raise FilterError(f"{where}: {line.strip()!r} is not a 'code jt jf k' line (tcpdump -ddd)")
        out.append((_fields(m.groups(), where), where))
    return out


def _check(insns: list[tuple[Instruction, str]]) -> tuple[Instruction, ...]:
    """The kernel checker's rules, checked here so a bad program is named by line and field."""
    n = len(insns)
    if n == 0:
        raise FilterError("the BPF program has no instructions (it needs at least one, ending in a ret)")
    if n > MAX_INSNS:
        raise FilterError(f"the BPF program has {n} instructions; the kernel takes at most {MAX_INSNS}")
    for i, ((code, jt, jf, k), where) in enumerate(insns):
        for name, value, top in (("code", code, 0xFFFF), ("jt", jt, 0xFF), ("jf", jf, 0xFF), ("k", k, 0xFFFFFFFF)):
            if not 0 <= value <= top:
                raise FilterError(f"{where}: {name} {value} is out of range (0..{top})")
        if code not in _VALID_CODES:
            raise FilterError(f"{where}: opcode 0x{code:02x} is not a classic BPF instruction the kernel accepts")
        cls, op = code & 0x07, code & 0xF0
        if cls == 0x05:  # jumps: relative to the next instruction, forward only
            targets = [("ja target", k)] if op == 0x00 else [("jt", jt), ("jf", jf)]
            for name, offset in targets:
                if i + 1 + offset >= n:
                    raise FilterError(f"{where}: {name} {offset} jumps to instruction {i + 1 + offset}, past the "
                                      f"program's end (instructions 0..{n - 1})")
        elif cls == 0x04 and code & 0x08 == 0 and op in (0x30, 0x90) and k == 0:
            raise FilterError(f"{where}: division by the constant 0")
        elif cls == 0x04 and code & 0x08 == 0 and op in (0x60, 0x70) and k >= 32:
            raise FilterError(f"{where}: shift by {k} (at most 31)")
        elif code in (0x60, 0x61, 0x02, 0x03) and k >= _BPF_MEMWORDS:
            raise FilterError(f"{where}: scratch memory slot {k} does not exist (M[0]..M[{_BPF_MEMWORDS - 1}])")
    last_code, last_where = insns[-1][0][0], insns[-1][1]
    if last_code & 0x07 != 0x06:
        raise FilterError(f"{last_where}: the last instruction must be a ret (opcode 0x06 or 0x16), "
                          f"not opcode 0x{last_code:02x}")
    return tuple(insn for insn, _ in insns)


def parse_program(program: object) -> BpfProgram:
    """A raw classic BPF program as a :class:`BpfProgram`, checked as the kernel will check it:

    * text as ``tcpdump -ddd`` prints it (the instruction count, then one ``code jt jf k`` line each,
      decimal; the comma-separated one-line form iptables' ``--bytecode`` takes is read too), or as
      ``tcpdump -dd`` prints it (``{ 0x28, 0, 0, 0x0000000c },`` lines);
    * a sequence of (code, jt, jf, k) integer tuples;
    * a BpfProgram (returned as it is).

    FilterError naming the line (or instruction) and what is wrong: a count that disagrees, a field out
    of range (code 16 bits, jt/jf 8 bits, k 32 bits), an opcode the kernel does not know, a jump past the
    end, fewer than 1 or more than 4096 instructions, a last instruction that is not a ret.

    Example::

        prog = parse_program(subprocess.check_output(["tcpdump", "-ddd", "-i", "eth0", "udp"], text=True))
        cap = Capture("eth0", filter=prog)
    """
    if isinstance(program, BpfProgram):
        return program
    if isinstance(program, bytes | bytearray):
        program = bytes(program).decode("ascii", errors="replace")
    if isinstance(program, str):
        return BpfProgram(_check(_parse_text(program)))
    if not isinstance(program, Sequence):
        raise TypeError("a BPF program must be tcpdump -ddd/-dd text, a sequence of (code, jt, jf, k) tuples or a "
                        f"BpfProgram, not {type(program).__name__}")
    insns: list[tuple[Instruction, str]] = []
    for i, item in enumerate(program):
        where = f"instruction {i}"
        if (not isinstance(item, Sequence) or isinstance(item, str | bytes) or len(item) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in item)):
            raise FilterError(f"{where}: {item!r} is not a (code, jt, jf, k) tuple of 4 integers")
        insns.append(((item[0], item[1], item[2], item[3]), where))
    return BpfProgram(_check(insns))


#: the name rx/capture.py imports
parse_filter = parse_program

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
    return lib


@dataclass(frozen=True)
class BpfProgram:
    """A classic BPF program: (code, jt, jf, k) instructions, as the kernel takes them."""

    instructions: tuple[tuple[int, int, int, int], ...]
    expression: str = ""

    def __len__(self) -> int:
        return len(self.instructions)

    def to_bytes(self) -> bytes:
        return b"".join(abi.SOCK_FILTER.pack(*i) for i in self.instructions)

    def dump(self) -> str:
        """One instruction per line, like ``tcpdump -dd``."""
        return "\n".join(f"{{ 0x{c:x}, {jt}, {jf}, 0x{k:08x} }}," for c, jt, jf, k in self.instructions)


def compile_filter(expression: str, *, dgram: bool = False, snaplen: int = 262144, optimize: bool = True) -> BpfProgram:
    """Compile a tcpdump filter expression for a SOCK_RAW Ethernet socket (or a SOCK_DGRAM one)."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_RAW if dgram else DLT_EN10MB, snaplen)
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
    """SO_ATTACH_FILTER: the kernel copies the program, so the buffer only has to live for the call."""
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

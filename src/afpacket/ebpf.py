"""eBPF socket-filter programs loaded with the bpf() system call through ctypes, for PACKET_FANOUT's
EBPF mode (:class:`afpacket.Fanout` ``mode="ebpf"``).

A fanout group in EBPF mode runs one program of type BPF_PROG_TYPE_SOCKET_FILTER per packet; the
kernel takes its return value modulo the number of members to pick the member. The program is loaded
here (``bpf(BPF_PROG_LOAD)``) and handed to the group as a file descriptor with PACKET_FANOUT_DATA;
the group keeps its own reference, so the :class:`EbpfProgram` may be closed once a member has set it.

What the kernel needs:

- ``CONFIG_BPF_SYSCALL=y`` (without it bpf() fails with ENOSYS).
- Privilege: CAP_BPF (Linux 5.8 or later) or CAP_SYS_ADMIN, or none at all for socket filters when
  the sysctl ``kernel.unprivileged_bpf_disabled`` is 0 (most distributions set 1 or 2, which refuses
  unprivileged loads with EPERM).
- Fanout EBPF mode itself exists since Linux 4.3.

No libbpf and no compiler are involved: the instructions are the 8-byte ``struct bpf_insn`` of
``linux/bpf.h``, built by hand (see :func:`steer_by_udp_dst_port`) or taken from an object file's
text section by the caller.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct
import sys
from collections.abc import Sequence
from types import TracebackType

from .errors import AfPacketError, FilterError, PermissionDeniedError

#: bpf()'s system call number per machine (``uname -m``); the kernel numbers it differently per ABI.
SYS_BPF = {
    "x86_64": 321,
    "aarch64": 280,
    "arm64": 280,
    "riscv64": 280,
    "loongarch64": 280,
    "i386": 357,
    "i686": 357,
    "armv7l": 386,
    "armv6l": 386,
    "ppc64le": 361,
    "ppc64": 361,
    "s390x": 351,
}

# linux/bpf.h
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SOCKET_FILTER = 1
#: the size of one instruction, struct bpf_insn
INSN_SIZE = 8
#: how much verifier log to ask for when a load fails (the kernel answers ENOSPC when it needs more)
LOG_SIZE = 1 << 16

# Instruction classes and fields (linux/bpf_common.h, linux/bpf.h), the few the builders use.
LD, LDX, JMP, ALU64 = 0x00, 0x01, 0x05, 0x07
W, H, B = 0x00, 0x08, 0x10
ABS, IND, MEM = 0x20, 0x40, 0x60
K, X = 0x00, 0x08
MOV, AND, LSH = 0xB0, 0x50, 0x60
JNE, JSET, EXIT = 0x50, 0x40, 0x90
#: LD_ABS/LD_IND offsets from here on are relative to the network header (SKF_NET_OFF), not to
#: skb->data: a fanout program sees incoming packets from the network header and outgoing ones from
#: the link header, so only network-relative loads read the same field in both directions.
SKF_NET_OFF = -0x100000
#: offsetof(struct __sk_buff, protocol): the EtherType, in network byte order
SKB_PROTOCOL = 16

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One ``struct bpf_insn``: opcode ``code``, registers ``dst``/``src`` (0..10), signed 16-bit
    ``off`` and signed 32-bit ``imm``, in the host's byte order (the register nibbles follow the C
    bitfield layout: destination in the low nibble on little-endian machines)."""
    regs = (dst & 0xF) | ((src & 0xF) << 4) if sys.byteorder == "little" else ((dst & 0xF) << 4) | (src & 0xF)
    return struct.pack("=BBhi", code, regs, off, imm)


def _as_bytes(instructions: bytes | bytearray | memoryview | Sequence[bytes | tuple[int, ...]]) -> bytes:
    """The program as one buffer of 8-byte instructions; TypeError/ArgumentError otherwise."""
    from .errors import ArgumentError

    if isinstance(instructions, (bytes, bytearray, memoryview)):
        code = bytes(instructions)
    elif isinstance(instructions, Sequence) and not isinstance(instructions, str):
        parts = []
        for i, item in enumerate(instructions):
            if isinstance(item, (bytes, bytearray)):
                if len(item) != INSN_SIZE:
                    raise ArgumentError(
                        f"load_socket_filter(): instruction {i} is {len(item)} bytes; each eBPF instruction is "
                        f"{INSN_SIZE} bytes (struct bpf_insn; build them with afpacket.ebpf.insn())"
                    )
                parts.append(bytes(item))
            elif isinstance(item, tuple) and 1 <= len(item) <= 5 and all(isinstance(v, int) for v in item):
                parts.append(insn(*item))
            else:
                raise TypeError(
                    f"load_socket_filter(): instruction {i} must be 8 bytes or a (code, dst, src, off, imm) "
                    f"tuple, not {type(item).__name__}"
                )
        code = b"".join(parts)
    else:
        raise TypeError(
            "load_socket_filter(): instructions must be bytes or a sequence of 8-byte instructions, not "
            f"{type(instructions).__name__}"
        )
    if not code or len(code) % INSN_SIZE:
        raise ArgumentError(
            f"load_socket_filter(): instructions must be a non-empty multiple of {INSN_SIZE} bytes "
            f"(struct bpf_insn), got {len(code)} bytes"
        )
    return code


class EbpfProgram:
    """A loaded eBPF program: owns its file descriptor ``fd`` until :meth:`close` (also on garbage
    collection, and at the end of a ``with`` block). ``name`` is the name given to the kernel (shown
    by ``bpftool prog``), ``instruction_count`` the number of instructions loaded.

    Made by :func:`load_socket_filter`. A fanout group keeps its own reference to the program it was
    given, so closing this object after the join does not change the group's steering.
    """

    def __init__(self, fd: int, name: str, instruction_count: int) -> None:
        self.fd = fd
        self.name = name
        self.instruction_count = instruction_count

    @property
    def closed(self) -> bool:
        """True once :meth:`close` released the descriptor."""
        return self.fd < 0

    def fileno(self) -> int:
        """The program's file descriptor; AfPacketError after close()."""
        if self.fd < 0:
            raise AfPacketError(f"eBPF program {self.name!r} is closed; load it again")
        return self.fd

    def close(self) -> None:
        """Release the descriptor (the kernel frees the program once nothing else holds it). Safe twice."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> EbpfProgram:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self.fd}"
        return f"<EbpfProgram {self.name!r} {self.instruction_count} insns {state}>"


def _bpf_number() -> int:
    machine = platform.machine()
    try:
        return SYS_BPF[machine]
    except KeyError:
        raise AfPacketError(
            f"afpacket does not know bpf()'s system call number on {machine!r}; known: {', '.join(sorted(SYS_BPF))}"
        ) from None


def _prog_load(code: bytes, license: bytes, name: bytes, log: ctypes.Array[ctypes.c_char] | None) -> tuple[int, int]:
    """One BPF_PROG_LOAD; (fd or -1, errno)."""
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license)
    # union bpf_attr, the BPF_PROG_LOAD member: prog_type, insn_cnt, insns, license, log_level,
    # log_size, log_buf, kern_version, prog_flags, prog_name[16]; the rest stays zero, as the kernel
    # requires of fields it knows but we do not set.
    attr = ctypes.create_string_buffer(128)
    struct.pack_into(
        "=IIQQIIQII16s", attr, 0,
        BPF_PROG_TYPE_SOCKET_FILTER, len(code) // INSN_SIZE, ctypes.addressof(insns), ctypes.addressof(lic),
        1 if log is not None else 0, len(log) if log is not None else 0,
        ctypes.addressof(log) if log is not None else 0, 0, 0, name,
    )
    fd = _libc.syscall(ctypes.c_long(_bpf_number()), ctypes.c_int(BPF_PROG_LOAD), attr, ctypes.c_uint(len(attr)))
    return int(fd), ctypes.get_errno() if fd < 0 else 0


def load_socket_filter(
    instructions: bytes | bytearray | memoryview | Sequence[bytes | tuple[int, ...]],
    license: str = "GPL",
    *,
    name: str = "afpacket",
) -> EbpfProgram:
    """Load ``instructions`` (8-byte ``struct bpf_insn``: one buffer, or a sequence of 8-byte items or
    ``(code, dst, src, off, imm)`` tuples) as a BPF_PROG_TYPE_SOCKET_FILTER program with ``license``
    (socket filters may use any; GPL-only helpers need "GPL") and ``name`` (at most 15 characters are
    kept). Returns the :class:`EbpfProgram` owning the new file descriptor.

    Needs CONFIG_BPF_SYSCALL and CAP_BPF or CAP_SYS_ADMIN (or ``kernel.unprivileged_bpf_disabled=0``).
    Raises AfPacketError when bpf() does not exist (ENOSYS) or another load failure, PermissionDeniedError
    (EPERM/EACCES without the privilege), FilterError when the verifier refuses the program (its log is
    in the message), TypeError/ArgumentError for instructions that are not whole 8-byte instructions.

    Example::

        from afpacket.ebpf import insn, load_socket_filter
        ret_one = [insn(0xB7, 0, imm=1), insn(0x95)]   # r0 = 1; exit
        with load_socket_filter(ret_one) as prog:
            cap = Capture("eth0", fanout=Fanout(mode="ebpf", program=prog))
    """
    code = _as_bytes(instructions)
    if not isinstance(license, str) or not isinstance(name, str):
        raise TypeError("load_socket_filter(): license and name must be str")
    lic = license.encode() + b"\0"
    tag = name.encode()[:15]
    fd, err = _prog_load(code, lic, tag, None)
    if fd >= 0:
        return EbpfProgram(fd, name[:15], len(code) // INSN_SIZE)
    if err == errno.ENOSYS:
        raise AfPacketError(
            "loading an eBPF program failed: this kernel has no bpf() system call (ENOSYS); it needs "
            "CONFIG_BPF_SYSCALL=y — use fanout mode 'cbpf' (classic BPF) instead"
        )
    # Ask again with a log: the verifier explains what it refused (an empty log means the refusal came
    # before the verifier ran: privilege, memory, a kernel without socket-filter programs).
    log = ctypes.create_string_buffer(LOG_SIZE)
    fd, err2 = _prog_load(code, lic, tag, log)
    if fd >= 0:  # loads with a log but not without: should not happen, but the program is fine
        return EbpfProgram(fd, name[:15], len(code) // INSN_SIZE)
    text = log.value.decode(errors="replace").strip()
    if not text and err2 in (errno.EPERM, errno.EACCES):
        raise PermissionDeniedError(
            f"loading an eBPF program was refused ({os.strerror(err2)}): it needs CAP_BPF (Linux 5.8+) or "
            f"CAP_SYS_ADMIN, or the sysctl kernel.unprivileged_bpf_disabled=0 (now {_unprivileged_setting()}); "
            "or use fanout mode 'cbpf', which needs no privilege beyond the packet socket's"
        )
    reason = errno.errorcode.get(err2, str(err2))
    detail = f"; the verifier says:\n{text}" if text else f" ({os.strerror(err2)})"
    raise FilterError(
        f"the kernel refused eBPF program {name!r} ({len(code) // INSN_SIZE} instructions): {reason}{detail}"
    )


def _unprivileged_setting() -> str:
    try:
        with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def udp_dst_port_instructions() -> list[bytes]:
    """The instructions of :func:`steer_by_udp_dst_port`: return an IPv4 UDP packet's destination port,
    0 for anything else (other protocols, non-first fragments), reading the header through the
    network-header offset so incoming and outgoing packets give the same answer."""
    ip = socket.htons(0x0800)
    return [
        insn(ALU64 | MOV | X, 6, 1),                          # r6 = ctx (LD_ABS/LD_IND need it there)
        insn(LDX | MEM | W, 0, 1, SKB_PROTOCOL),              # r0 = skb->protocol (network order)
        insn(JMP | JNE | K, 0, 0, 10, ip),                     # not IPv4: return 0
        insn(LD | ABS | B, imm=SKF_NET_OFF + 9),              # r0 = IP protocol
        insn(JMP | JNE | K, 0, 0, 8, socket.IPPROTO_UDP),     # not UDP: return 0
        insn(LD | ABS | H, imm=SKF_NET_OFF + 6),              # r0 = flags and fragment offset
        insn(JMP | JSET | K, 0, 0, 6, 0x1FFF),                # a later fragment has no UDP header
        insn(LD | ABS | B, imm=SKF_NET_OFF + 0),              # r0 = version and IHL
        insn(ALU64 | AND | K, 0, imm=0xF),
        insn(ALU64 | LSH | K, 0, imm=2),                      # header length in bytes
        insn(ALU64 | MOV | X, 7, 0),
        insn(LD | IND | H, 0, 7, imm=SKF_NET_OFF + 2),        # r0 = UDP destination port (host order)
        insn(JMP | EXIT),
        insn(ALU64 | MOV | K, 0, imm=0),                      # return 0
        insn(JMP | EXIT),
    ]


def steer_by_udp_dst_port() -> EbpfProgram:
    """Load an eBPF fanout program returning an IPv4 UDP packet's destination port (0 for other
    packets): the kernel takes it modulo the member count, so with two members even ports go to the
    first member and odd ports to the second. A small working example of EBPF fanout; the same
    steering in classic BPF is :func:`afpacket.fanout.classic_steer_by_udp_dst_port`."""
    return load_socket_filter(udp_dst_port_instructions(), name="afp_udp_dport")

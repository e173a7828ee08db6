"""Small pieces every application printer shares: tcpdump's escaping of packet text, its truncation rule and
its relative-time format.

tcpdump reads packet fields in two ways. Most checks are *soft*: a printer tests whether the bytes were
captured and, if not, prints its own marker and carries on, or goes to its ``trunc:`` label, prints
`` [|proto]`` and returns (``Stop`` here). Fixed-size reads are *hard*: a read past the captured end jumps
out of the whole packet with `` [|proto]`` (``Truncated``). Each printer catches both once at its top and
appends the marker, returning :class:`~.marks.Jumped` or :class:`~.marks.Stopped` text, so the lines it cuts
short match tcpdump's and so does where the ``-x`` dump after them starts (a jump resets it to byte 0).
"""

from __future__ import annotations

import socket
import struct

from .hexdump import CHAR
from .marks import Jumped, Stopped


class Truncated(Exception):
    """A fixed-size field ran past the captured bytes: tcpdump jumps out of the packet with `` [|proto]``."""


class Stop(Exception):
    """A length check failed: tcpdump prints `` [|proto]`` at the printer's ``trunc:`` label and returns."""


def finish(out: list[str], mark: str, cut: BaseException | None = None) -> str:
    """A printer's text from its pieces ``out``: with ``cut`` (what it caught) the text ends with ``mark``,
    :class:`Jumped` for a :class:`Truncated` and :class:`Stopped` for a :class:`Stop`; without, it is
    :class:`Stopped` when a sub-printer printed ``mark`` in place as its last words, plain otherwise."""
    if cut is not None:
        out.append(mark)
        return Jumped("".join(out)) if isinstance(cut, Truncated) else Stopped("".join(out))
    text = "".join(out)
    return Stopped(text) if text.endswith(mark) else text


_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def u8(data: bytes, off: int, end: int) -> int:
    """One byte at ``off``, or Truncated when it was not captured (``end`` is the captured end)."""
    if off >= end or off < 0:
        raise Truncated
    return data[off]


def u16(data: bytes, off: int, end: int) -> int:
    """A big-endian 16-bit field, or Truncated."""
    if off + 2 > end or off < 0:
        raise Truncated
    return int(_U16.unpack_from(data, off)[0])


def u32(data: bytes, off: int, end: int) -> int:
    """A big-endian 32-bit field, or Truncated."""
    if off + 4 > end or off < 0:
        raise Truncated
    return int(_U32.unpack_from(data, off)[0])


_PLAIN = bytes(range(0x20, 0x7F))


def text(raw: bytes) -> str:
    """Packet bytes as tcpdump prints them in names and strings (plain ASCII stays, the rest escaped)."""
    if not raw.translate(None, _PLAIN):
        return raw.decode("ascii")
    return "".join([CHAR[c] for c in raw])


def printn(data: bytes, off: int, n: int, end: int, out: list[str]) -> bool:
    """Print ``n`` bytes of text from ``off``, at most up to ``end``; True when the text was cut short there."""
    stop = min(off + n, end)
    if stop > off:
        out.append(text(data[off:stop]))
    return n > 0 and off + n > end


def ipv4(data: bytes, off: int) -> str:
    """Dotted quad of 4 bytes at ``off`` (the caller has checked they were captured)."""
    return f"{data[off]}.{data[off + 1]}.{data[off + 2]}.{data[off + 3]}"


def ipv6(data: bytes, off: int) -> str:
    """An IPv6 address of 16 bytes at ``off``, in the same compressed form tcpdump prints."""
    return socket.inet_ntop(socket.AF_INET6, data[off : off + 16])


def mac(data: bytes, off: int) -> str:
    """A colon-separated MAC address of 6 bytes at ``off``."""
    return data[off : off + 6].hex(":")


_RELTS = ((31536000, "y"), (604800, "w"), (86400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def relts(secs: int) -> str:
    """A count of seconds as tcpdump writes durations: ``1d2h3s``, ``0s`` for zero."""
    if secs == 0:
        return "0s"
    parts = []
    for size, unit in _RELTS:
        if secs >= size:
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(parts)

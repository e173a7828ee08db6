"""ICMP, ICMPv6 (with neighbour discovery and MLD) and IGMP as tcpdump -n prints them.

The three entry points return the text tcpdump 4.99 prints after ``"IP SRC > DST: "`` (or ``"IP6 SRC > DST: "``),
byte for byte, including its ``-v`` detail lines (``"\\n\\t..."``) and its truncation marks. tcpdump stops a
printer at the first field that lies beyond the captured bytes and appends ``" [|icmp]"``; here the field
readers raise ``_Truncated`` and the entry point appends the same mark to what was printed so far, so a
short or malformed message never raises. Texts a printer builds in a buffer before printing (the ICMP
summary) are dropped whole on truncation, as tcpdump's are.

tcpdump stops in two ways, and the line printer must know which (:mod:`.marks`): a field read with its
``GET_`` macros jumps out of every printer (``_Truncated``; the text comes back as :class:`Jumped`), while
an explicit check (``ND_TCHECK_*``, a helper that returns -1 or NULL) goes to the printer's own ``trunc:``
label, prints the mark and returns normally (``_Stop``, or a mark appended in place; :class:`Stopped`).
Only the jump moves the start of the ``-x``/``-A`` dump to the frame's first byte.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Final

from .checksum import checksum_of, shouldbe
from .hexdump import CHAR, hex_print
from .layers import ip6_text
from .marks import Jumped, Stopped
from .names import bittok

#: Renders an IP packet quoted inside an ICMP error (or carried in a tunnel) as the core printer would,
#: e.g. "IP (tos 0x0, ...) 10.0.0.2.40000 > 10.0.0.1.9999: UDP, length 10" with verbose.
InnerPrinter = Callable[[bytes], str]


class _Truncated(Exception):
    """A field lies beyond the captured bytes; tcpdump's GET_ macro jumps out of the whole packet there."""


class _Stop(Exception):
    """An explicit length check failed; tcpdump prints the mark at its ``trunc:`` label and returns."""


def _marked(out: list[str], mark: str) -> str:
    """The text of a printer that returned normally: :class:`Stopped` when it ends with tcpdump's mark
    (printed in place by a sub-printer that gave up), plain otherwise."""
    text = "".join(out)
    return Stopped(text) if text.endswith(mark) else text


_U16: Final = struct.Struct("!H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from
_HH: Final = struct.Struct("!HH").unpack_from
_BBH: Final = struct.Struct("!BBH").unpack_from
_HBB: Final = struct.Struct("!HBB").unpack_from
_inet_ntop: Final = socket.inet_ntop
_AF_INET6: Final = socket.AF_INET6


def _u8(b: bytes, off: int) -> int:
    if off >= len(b):
        raise _Truncated
    return b[off]


def _u16(b: bytes, off: int) -> int:
    if off + 2 > len(b):
        raise _Truncated
    return int(_U16(b, off)[0])


def _u24(b: bytes, off: int) -> int:
    if off + 3 > len(b):
        raise _Truncated
    return int.from_bytes(b[off : off + 3], "big")


def _u32(b: bytes, off: int) -> int:
    if off + 4 > len(b):
        raise _Truncated
    return int(_U32(b, off)[0])


def _ip4(b: bytes, off: int) -> str:
    if off + 4 > len(b):
        raise _Truncated
    return f"{b[off]}.{b[off + 1]}.{b[off + 2]}.{b[off + 3]}"


def _ip6(b: bytes, off: int) -> str:
    # glibc's inet_ntop follows the same rules as tcpdump's addrtostr6 (longest zero run of two or more
    # words compressed, the first on a tie; ::a.b.c.d and ::ffff:a.b.c.d for embedded IPv4), and
    # layers.ip6_text remembers what it made (neighbour discovery names the same targets again and again).
    if off + 16 > len(b):
        raise _Truncated
    return ip6_text(bytes(b[off : off + 16]))


def _relts(secs: int) -> str:
    """tcpdump's unsigned_relts_print: 1y2w3d4h5m6s."""
    if secs == 0:
        return "0s"
    out = []
    for unit, size in (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# ICMP (RFC 792 and friends)

_ICMP_NAMES: Final = {
    0: "echo reply",
    4: "source quench",
    8: "echo request",
    10: "router solicitation",
    13: "time stamp request",
    14: "time stamp reply",
    15: "information request",
    16: "information reply",
    17: "address mask request",
}

#: Unreachable codes printed as "<net|host|> DST unreachable<suffix>": code -> (prefix, suffix).
_UNREACH: Final = {
    0: ("net ", ""),
    1: ("host ", ""),
    5: ("", " - source route failed"),
    6: ("net ", " - unknown"),
    7: ("host ", " - unknown"),
    8: ("", " - source host isolated"),
    9: ("net ", " - admin prohibited"),
    10: ("host ", " - admin prohibited"),
    11: ("net ", " - tos prohibited"),
    12: ("host ", " - tos prohibited"),
    13: ("host ", " - admin prohibited filter"),
    14: ("host ", " - host precedence violation"),
    15: ("host ", " - precedence cutoff"),
}

_REDIRECT: Final = {0: "redirect %s to net %s", 1: "redirect %s to host %s", 2: "redirect-tos %s to net %s",
                    3: "redirect-tos %s to host %s"}

#: Types whose body quotes the offending IP packet (printed with -v), and those that may carry RFC 4884
#: extension objects after it.
_ICMP_ERRORS: Final = frozenset({3, 4, 5, 11, 12})
_ICMP_MULTIPART: Final = frozenset({3, 11, 12})
_ICMP_EXT_OFFSET: Final = 136  # 8-byte header + 128 bytes of original datagram
_ICMP_EXT_OBJECTS: Final = {1: "MPLS Stack Entry", 2: "Interface Identification"}


def _tstamp(ms: int) -> str:
    sec, msec = divmod(ms, 1000)
    mins, sec = divmod(sec, 60)
    hrs, mins = divmod(mins, 60)
    return f"{hrs:02d}:{mins:02d}:{sec:02d}.{msec:03d}"


def _icmp4_summary(seg: bytes) -> str:
    """The words between "ICMP " and ", length N" (tcpdump builds them in a buffer, so a truncated field
    drops them all)."""
    icmp_type = _u8(seg, 0)
    code = _u8(seg, 1)
    if icmp_type == 8 or icmp_type == 0:
        if len(seg) < 8:
            raise _Truncated
        ident, seq = _HH(seg, 4)
        return f"echo {'request' if icmp_type == 8 else 'reply'}, id {ident}, seq {seq}"
    if icmp_type == 3:
        if code == 3:
            if len(seg) < 18:  # ND_TCHECK_1 of the quoted protocol
                raise _Stop
            hlen = (seg[8] & 0x0F) * 4
            dport = _u16(seg, 8 + hlen + 2)
            proto = seg[17]
            dst = _ip4(seg, 24)
            if proto == 6:
                return f"{dst} tcp port {dport} unreachable"
            if proto == 17:
                return f"{dst} udp port {dport} unreachable"
            return f"{dst} protocol {proto} port {dport} unreachable"
        if code == 2:
            dst = _ip4(seg, 24)
            return f"{dst} protocol {_u8(seg, 17)} unreachable"
        if code == 4:
            mtu = _u16(seg, 6)
            dst = _ip4(seg, 24)
            return f"{dst} unreachable - need to frag (mtu {mtu})" if mtu else f"{dst} unreachable - need to frag"
        words = _UNREACH.get(code)
        dst = _ip4(seg, 24)
        if words is None:
            return f"{dst} unreachable - #{code}"
        return f"{words[0]}{dst} unreachable{words[1]}"
    if icmp_type == 5:
        dst = _ip4(seg, 24)
        gw = _ip4(seg, 4)
        fmt = _REDIRECT.get(code)
        return fmt % (dst, gw) if fmt else f"redirect-#{code} {dst} to {gw}"
    if icmp_type == 9:
        if len(seg) < 8:
            raise _Stop
        num, size, lifetime = _BBH(seg, 4)
        if lifetime < 60:
            life = str(lifetime)
        elif lifetime < 3600:
            life = f"{lifetime // 60}:{lifetime % 60:02d}"
        else:
            life = f"{lifetime // 3600}:{(lifetime % 3600) // 60:02d}:{lifetime % 60:02d}"
        text = f"router advertisement lifetime {life} {num}:"
        if size != 2:
            return f"{text} [size {size}]"
        entries = []
        for i in range(num):
            off = 8 + 8 * i
            if off + 8 > len(seg):
                raise _Stop
            entries.append(f" {{{_ip4(seg, off)} {_u32(seg, off + 4)}}}")
        return text + "".join(entries)
    if icmp_type == 11:
        if len(seg) < 28:
            raise _Stop
        if code == 0:
            return "time exceeded in-transit"
        if code == 1:
            return "ip reassembly time exceeded"
        return f"time exceeded-#{code}"
    if icmp_type == 12:
        if code:
            return f"parameter problem - code {code}"
        return f"parameter problem - octet {_u8(seg, 4)}"
    if icmp_type == 18:
        return f"address mask is 0x{_u32(seg, 8):08x}"
    if icmp_type == 13:
        if len(seg) < 8:
            raise _Truncated
        ident, seq = _HH(seg, 4)
        return f"time stamp query id {ident} seq {seq}"
    if icmp_type == 14:
        if len(seg) < 20:
            raise _Stop
        ident, seq = _HH(seg, 4)
        org, recv, xmit = struct.unpack_from("!III", seg, 8)
        return (f"time stamp reply id {ident} seq {seq}: org {_tstamp(org)}, recv {_tstamp(recv)}, "
                f"xmit {_tstamp(xmit)}")
    return _ICMP_NAMES.get(icmp_type) or f"type-#{icmp_type}"


def _icmp4_extensions(seg: bytes, length: int, out: list[str]) -> None:
    """RFC 4884 multi-part extensions after the quoted datagram (-v), as tcpdump prints them."""
    if len(seg) < _ICMP_EXT_OFFSET + 5:
        raise _Stop
    # A zero length field leaves the extension's presence to its checksum (not every sender sets it).
    if seg[5] == 0 and len(seg) >= length and checksum_of(seg[_ICMP_EXT_OFFSET:length]):
        return
    version = seg[_ICMP_EXT_OFFSET] >> 4
    out.append(f"\n\tICMP Multi-Part extension v{version}")
    if version != 2:
        out.append(" packet not supported")
        return
    hlen = length - _ICMP_EXT_OFFSET
    if len(seg) >= length:
        good = "in" if checksum_of(seg[_ICMP_EXT_OFFSET:length]) else ""
        out.append(f", checksum 0x{_u16(seg, _ICMP_EXT_OFFSET + 2):04x} ({good}correct), length {hlen}")
    hlen = (hlen - 4) & 0xFFFFFFFF  # tcpdump's unsigned arithmetic
    off = _ICMP_EXT_OFFSET + 4
    while hlen > 4:
        if off + 4 > len(seg):
            raise _Stop
        obj_len, obj_class, ctype = _HBB(seg, off)
        off += 4
        out.append(f"\n\t  {_ICMP_EXT_OBJECTS.get(obj_class, 'unknown')} Object ({obj_class}), "
                   f"Class-Type: {ctype}, length {obj_len}")
        hlen -= 4
        if obj_class == 0 or obj_len < 4:
            return
        obj_len -= 4
        if obj_class == 1 and ctype == 1:
            raw = _u32(seg, off)
            out.append(f"\n\t    label {raw >> 12}, tc {(raw >> 9) & 7}")
            if raw & 0x100:
                out.append(", [S]")
            out.append(f", ttl {raw & 0xFF}")
        else:
            out.append(hex_print(seg, off, "\n\t    ", obj_len))
        if hlen < obj_len:
            break
        hlen -= obj_len
        off += obj_len


def icmp4_text(seg: bytes, length: int, verbose: int, inner: InnerPrinter, *, fragmented: bool = False) -> str:
    """The text after ``"IP SRC > DST: "`` for an ICMP message (``seg`` from the ICMP header on, as captured;
    ``length`` the ICMP length from the IP header), e.g. ``"ICMP echo request, id 1, seq 1, length 64"``.

    ``verbose`` (-v) adds a wrong-checksum note and, for errors, ``"\\n\\t"`` followed by ``inner`` applied to
    the quoted IP packet (cut to that packet's own total length), then any RFC 4884 extension objects.
    ``fragmented`` is true for the first fragment of a fragmented datagram: tcpdump checks no checksum then.
    A message cut short by the capture gives tcpdump's ``" [|icmp]"`` (leading space included), as a
    :class:`Jumped` or :class:`Stopped` text (see the module's docstring).
    """
    if len(seg) > length:
        seg = seg[:length]
    try:
        summary = _icmp4_summary(seg)
    except _Truncated:
        return Jumped(" [|icmp]")
    except _Stop:
        return Stopped(" [|icmp]")
    text = f"ICMP {summary}, length {length}"
    if not verbose:
        return text
    out = [text]
    icmp_type = seg[0]
    try:
        if not fragmented and len(seg) >= length:
            computed = checksum_of(seg[:length])
            if computed:
                field = _u16(seg, 2)
                out.append(f" (wrong icmp cksum {field:x} (->{shouldbe(field, computed):x})!)")
        if icmp_type in _ICMP_ERRORS:
            out.append("\n\t")
            ip_len = _u16(seg, 10)
            quoted = inner(bytes(seg[8 : 8 + ip_len]))
            out.append(quoted)
            if type(quoted) is Jumped:
                # A read past the quoted packet jumped out of icmp_print too: the line ends there.
                return Jumped("".join(out))
        if length > _ICMP_EXT_OFFSET and icmp_type in _ICMP_MULTIPART:
            _icmp4_extensions(seg, length, out)
    except _Truncated:
        out.append(" [|icmp]")
        return Jumped("".join(out))
    except _Stop:
        out.append(" [|icmp]")
        return Stopped("".join(out))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# ICMPv6 (RFC 4443), neighbour discovery (RFC 4861), MLD (RFC 2710, 3810) and rarer messages tcpdump names

_ICMP6_NAMES: Final = {
    1: "destination unreachable",
    2: "packet too big",
    3: "time exceeded in-transit",
    4: "parameter problem",
    128: "echo request",
    129: "echo reply",
    130: "multicast listener query",
    131: "multicast listener report",
    132: "multicast listener done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbor solicitation",
    136: "neighbor advertisement",
    137: "redirect",
    138: "router renumbering",
    141: "inverse neighbor solicitation",
    142: "inverse neighbor advertisement",
    143: "multicast listener report v2",
    144: "ha discovery request",
    145: "ha discovery reply",
    146: "mobile router solicitation",
    147: "mobile router advertisement",
    # 139/140 are listed twice in tcpdump's table; its first names (the KAME drafts') win.
    139: "who-are-you request",
    140: "who-are-you reply",
    201: "mtrace message",
    200: "mtrace response",
    155: "RPL",
}

#: Types whose length tcpdump prints right after the name with -v (instead of at the end without).
_ICMP6_LENGTH_FIRST: Final = frozenset({133, 134, 136, 135, 137, 145, 147})

_UNREACH6: Final = {0: "unreachable route", 1: " unreachable prohibited", 2: "beyond scope",
                    3: "unreachable address", 4: "unreachable port"}

_PARAMPROB6: Final = {0: "erroneous", 1: "next header", 2: "option", 3: "incomplete header chain"}

_ND_OPTIONS: Final = {1: "source link-address", 2: "destination link-address", 3: "prefix info",
                      4: "redirected header", 5: "mtu", 25: "rdnss", 31: "dnssl", 7: "advertisement interval",
                      8: "homeagent information", 24: "route info"}

_PI_FLAGS: Final = ((0x80, "onlink"), (0x40, "auto"), (0x20, "router"))
_RA_FLAGS: Final = ((0x80, "managed"), (0x40, "other stateful"), (0x20, "home agent"), (0x02, "ipv6 only"))
_NA_FLAGS: Final = ((0x80000000, "router"), (0x40000000, "solicited"), (0x20000000, "override"))
_RTPREF: Final = ("medium", "high", "rsv", "low")
_RECORD_TYPES: Final = {1: "is_in", 2: "is_ex", 3: "to_in", 4: "to_ex", 5: "allow", 6: "block"}


def _lifetime(v: int) -> str:
    return "infinity" if v == 0xFFFFFFFF else f"{v}s"


def _pseudo6(src: str, dst: str, length: int) -> bytes:
    try:
        return (socket.inet_pton(_AF_INET6, src) + socket.inet_pton(_AF_INET6, dst)
                + struct.pack("!I3xB", length, 58))
    except (OSError, ValueError):
        return b""


def _fqdn(seg: bytes, off: int, end: int) -> tuple[str, int]:
    """A DNS name in wire format (no compression inside ND options), as "label.label."."""
    labels = []
    # tcpdump's fqdn_print checks before it reads and returns NULL, which icmp6_opt_print turns into -1.
    while True:
        if off >= len(seg):
            raise _Stop
        n = seg[off]
        off += 1
        if n == 0:
            break
        if n & 0xC0:
            # A compression pointer cannot point anywhere meaningful inside an ND option.
            off += 1
            labels.append("")
            break
        if off + n > len(seg):
            raise _Stop
        labels.append("".join(map(CHAR.__getitem__, seg[off : off + n])))
        off += n
        if off >= end:
            break
    return "".join(label + "." for label in labels) if labels else ".", off


def _nd_options(seg: bytes, start: int, resid: int, verbose: int, out: list[str]) -> None:
    """ND options from ``start``, tcpdump's icmp6_opt_print: raises _Stop where it returns -1 (its caller
    then prints the mark), _Truncated where a field read jumps out."""
    cp = start
    end = len(seg)
    while cp < end:
        if cp + 2 > end:
            raise _Stop
        if resid <= 0:
            return
        opt_type = seg[cp]
        opt_len = seg[cp + 1]
        if opt_len == 0 or cp + (opt_len << 3) > end:
            raise _Stop
        size = opt_len << 3
        out.append(f"\n\t  {_ND_OPTIONS.get(opt_type, 'unknown')} option ({opt_type}), length {size} ({opt_len}): ")
        if opt_type == 1 or opt_type == 2:
            out.append(":".join(f"{c:02x}" for c in seg[cp + 2 : cp + size]))
        elif opt_type == 3:
            prefix = _ip6(seg, cp + 16)
            plen = _u8(seg, cp + 2)
            flags = _u8(seg, cp + 3)
            valid = _u32(seg, cp + 4)
            out.append(f"{prefix}/{plen}{'badlen' if opt_len != 4 else ''}, Flags [{bittok(_PI_FLAGS, flags)}], "
                       f"valid time {_lifetime(valid)}")
            out.append(f", pref. time {_lifetime(_u32(seg, cp + 8))}")
        elif opt_type == 4:
            # tcpdump dumps from the first option here, not from this one.
            out.append(hex_print(seg, start, "\n\t    ", size))
        elif opt_type == 5:
            out.append(f" {_u32(seg, cp + 4)}{'bad option length' if opt_len != 1 else ''}")
        elif opt_type == 25:
            out.append(f" lifetime {_u32(seg, cp + 4)}s,")
            for i in range((opt_len - 1) // 2):
                out.append(f" addr: {_ip6(seg, cp + 8 + 16 * i)}")
        elif opt_type == 31:
            out.append(f" lifetime {_u32(seg, cp + 4)}s, domain(s):")
            dom = cp + 8
            while dom < cp + size and _u8(seg, dom) != 0:
                name, dom = _fqdn(seg, dom, cp + size)
                out.append(f" {name}")
        elif opt_type == 7:
            out.append(f" {_u32(seg, cp + 4)}ms")
        elif opt_type == 8:
            out.append(f" preference {_u16(seg, cp + 4)}, lifetime {_u16(seg, cp + 6)}")
        elif opt_type == 24:
            if cp + 8 > end:
                raise _Stop
            if opt_len == 1:
                raw = bytes(16)
            elif opt_len in (2, 3):
                n = 8 if opt_len == 2 else 16
                if cp + 8 + n > end:
                    raise _Truncated  # GET_CPY_BYTES
                raw = bytes(seg[cp + 8 : cp + 8 + n]).ljust(16, b"\0")
            else:
                raise _Stop
            flags = seg[cp + 3]
            out.append(f" {_inet_ntop(_AF_INET6, raw)}/{seg[cp + 2]}")
            out.append(f", pref={_RTPREF[(flags & 0x18) >> 3]}")
            out.append(f", lifetime={_lifetime(_u32(seg, cp + 4))}")
        else:
            if verbose <= 1:
                out.append(hex_print(seg, cp + 2, "\n\t  ", size - 2))
                return
        if verbose > 1:
            out.append(hex_print(seg, cp + 2, "\n\t    ", size - 2))
        cp += size
        resid -= size


def _upper_layer(seg: bytes, off: int) -> tuple[int, int] | None:
    """(protocol, destination port) of the IPv6 packet quoted at ``off``, past its extension headers."""
    end = len(seg)
    if off + 7 > end:
        return None
    nh = seg[off + 6]
    bp = off
    hlen = 40
    while bp < end:
        bp += hlen
        if nh == 6 or nh == 17:
            if bp + 4 > end:
                return None
            return nh, int(_U16(seg, bp + 2)[0])
        if nh in (0, 60, 43):
            if bp + 2 > end:
                return None
            nh, hlen = seg[bp], (seg[bp + 1] + 1) << 3
        elif nh == 44:
            if bp + 4 > end or _U16(seg, bp + 2)[0] & 0xFFF8:
                return None
            nh, hlen = seg[bp], 8
        elif nh == 51:
            if bp + 2 > end:
                return None
            nh, hlen = seg[bp], (seg[bp + 1] + 2) << 2
        else:
            return None
    return None


def _mld1(seg: bytes, out: list[str]) -> None:
    if len(seg) < 24:
        return
    out.append(f"max resp delay: {_u16(seg, 4)} addr: {_ip6(seg, 8)}")


def _mld2_report(seg: bytes, length: int, verbose: int, out: list[str]) -> None:
    if length < 8:
        out.append(f" [invalid len {length}]")
        return
    groups = _u16(seg, 6)
    out.append(f", {groups} group record(s)")
    if not verbose:
        return
    off = 8
    for _ in range(groups):
        if length < off + 20:
            out.append(" [invalid number of groups]")
            return
        out.append(f" [gaddr {_ip6(seg, off + 4)}")
        rtype = _u8(seg, off)
        out.append(f" {_RECORD_TYPES.get(rtype) or f' [v2-report-#{rtype}]'}")
        nsrcs = _u16(seg, off + 2)
        if length < off + 20 + nsrcs * 16:
            out.append(f" [invalid number of sources {nsrcs}]")
            return
        if verbose == 1:
            out.append(f", {nsrcs} source(s)")
        else:
            out.append(" {")
            for j in range(nsrcs):
                out.append(f" {_ip6(seg, off + 20 + 16 * j)}")
            out.append(" }")
        off += 20 + nsrcs * 16
        out.append("]")


def _mld2_query(seg: bytes, length: int, verbose: int, out: list[str]) -> None:
    if length < 28:
        out.append(f" [invalid len {length}]")
        return
    mrc = _u16(seg, 4)
    mrt = mrc if mrc < 32768 else ((mrc & 0x0FFF) | 0x1000) << (((mrc & 0x7000) >> 12) + 3)
    if verbose:
        out.append(f" [max resp delay={mrt}]")
    out.append(f" [gaddr {_ip6(seg, 8)}")
    if verbose:
        flags = _u8(seg, 24)
        if flags & 0x08:
            out.append(" sflag")
        if flags & 0x07:
            out.append(f" robustness={flags & 0x07}")
        qqic = _u8(seg, 25)
        qqi = qqic if qqic < 128 else ((qqic & 0x0F) | 0x10) << (((qqic & 0x70) >> 4) + 3)
        out.append(f" qqi={qqi}")
    nsrcs = _u16(seg, 26)
    if nsrcs > 0:
        if length < 28 + nsrcs * 16:
            out.append(" [invalid number of sources]")
        elif verbose > 1:
            out.append(" {")
            for i in range(nsrcs):
                out.append(f" {_ip6(seg, 28 + 16 * i)}")
            out.append(" }")
        else:
            out.append(f", {nsrcs} source(s)")
    out.append("]")


def _dnsname(seg: bytes, cp: int, out: list[str]) -> None:
    """tcpdump's dnsname_print (node information names: no compression, printable characters)."""
    ep = len(seg)
    out.append(', "')
    while cp < ep:
        n = seg[cp]
        cp += 1
        if n:
            if n > ep - cp:
                out.append("???")
                break
            while n and cp < ep:
                out.append(CHAR[seg[cp]])
                cp += 1
                n -= 1
            if cp + 1 < ep and seg[cp]:
                out.append(".")
        else:
            if cp == ep:
                out.append(".")
            elif cp + 1 == ep and seg[cp] == 0:
                pass
            else:
                out.append("???")
            break
    out.append('"')


def _nodeaddr_flags(flags: int, with_truncate: bool) -> str:
    s = "".join(c for bit, c in ((0x40, "a"), (0x20, "G"), (0x10, "S"), (0x08, "L"), (0x04, "C"), (0x02, "A"))
                if flags & bit)
    if with_truncate and flags & 0x01:
        s += "T"
    return f" [{s}]"


def _node_info(seg: bytes, length: int, verbose: int, out: list[str]) -> None:
    """RFC 4620 node information query/reply (tcpdump's icmp6_nodeinfo_print)."""
    siz = len(seg)
    if seg[0] == 139:
        if siz == 12:
            out.append(" who-are-you request")
            return
        out.append(" node information query")
        if siz < 16:
            out.append(" [|icmp6]")
            return
        out.append(" (")
        qtype = _u16(seg, 4)
        flags = _u16(seg, 6)
        if qtype == 0:
            out.append("noop")
        elif qtype == 1:
            out.append("supported qtypes")
            if flags:
                out.append(f" [{'C' if flags & 1 else ''}]")
        elif qtype == 2:
            out.append("DNS name")
        elif qtype == 3:
            out.append("node addresses")
            if flags:
                out.append(_nodeaddr_flags(flags, False))
        else:
            out.append("unknown")
        if qtype in (0, 1):
            if siz != 16 and verbose:
                out.append(", invalid len")
            out.append(")")
            return
        if siz == 16:
            out.append(", 03 draft)")
            return
        code = seg[1]
        if code == 0:
            if siz < 32:
                pass
            elif siz != 32:
                if verbose:
                    out.append(", invalid subject len")
            else:
                out.append(f", subject={_ip6(seg, 16)}")
        elif code == 1:
            out.append(", subject=DNS name")
            if _u8(seg, 16) == siz - 17:
                if verbose:
                    out.append(", 03 draft")
                out.append(', "' + "".join(CHAR[c] for c in seg[17:]) + '"')
            else:
                _dnsname(seg, 16, out)
        elif code == 2:
            if siz < 20:
                pass
            elif siz != 20:
                if verbose:
                    out.append(", invalid subject len")
            else:
                out.append(f", subject={_ip4(seg, 16)}")
        else:
            out.append(", unknown subject")
        out.append(")")
        return
    # reply
    if length > siz or siz < 16:
        out.append(" [|icmp6]")
        return
    out.append(" node information reply (")
    code = seg[1]
    comma = False
    if code == 0:
        if verbose:
            out.append("success")
            comma = True
    elif code in (1, 2):
        out.append("refused" if code == 1 else "unknown")
        comma = True
        if siz != 16 and verbose:
            out.append(", invalid length")
    if code != 0:
        out.append(")")
        return
    sep = ", " if comma else ""
    qtype = _u16(seg, 4)
    flags = _u16(seg, 6)
    if qtype == 0:
        out.append(f"{sep}noop")
        if siz != 16 and verbose:
            out.append(", invalid length")
    elif qtype == 1:
        out.append(f"{sep}supported qtypes")
        if flags:
            out.append(f" [{'C' if flags & 1 else ''}]")
    elif qtype == 2:
        out.append(f"{sep}DNS name")
        cp = 20
        if _u8(seg, cp) == siz - cp - 1:
            if verbose:
                out.append(", 03 draft")
            out.append(', "' + "".join(CHAR[c] for c in seg[cp + 1 :]) + '"')
        else:
            _dnsname(seg, cp, out)
        if flags & 1:
            out.append(f" [TTL={_u32(seg, 16)}]")
    elif qtype == 3:
        out.append(f"{sep}node addresses")
        i = 16
        while i + 20 <= siz:
            out.append(f" {_ip6(seg, i + 4)}({_u32(seg, i)})")
            i += 20
        if flags:
            out.append(_nodeaddr_flags(flags, True))
    else:
        out.append(f"{sep}unknown")
    out.append(")")


def _router_renumbering(seg: bytes, verbose: int, out: list[str]) -> None:
    """Router renumbering (RFC 2894), tcpdump's icmp6_rrenum_print."""
    if len(seg) < 16:
        out.append(" [|icmp6]")
        return
    code = seg[1]
    names = {0: ", command", 1: ", result", 255: ", sequence number reset"}
    out.append(names.get(code) or f", code-#{code}")
    out.append(f", seq={_u32(seg, 4)}")
    if verbose:
        flags = seg[9]
        out.append("[")
        if flags:
            out.append("".join(c for bit, c in ((0x80, "T"), (0x40, "R"), (0x20, "A"), (0x10, "S"), (0x08, "P"))
                               if flags & bit) + ",")
        out.append(f"seg={seg[8]},maxdelay={_u16(seg, 10)}")
        reserved = _u32(seg, 12)
        if reserved:
            out.append(f"rsvd=0x{reserved:x}")
        out.append("]")
    if code != 0:
        return
    if len(seg) < 40:
        out.append(" [|icmp6]")
        return
    out.append("\n\t" if verbose > 1 else " ")
    match_code = seg[16]
    out.append("match(" + ({1: "add", 2: "change", 3: "setglobal"}.get(match_code) or f"#{match_code}"))
    if verbose:
        out.append(f",ord={seg[18]},min={seg[20]},max={seg[21]}")
    out.append(f",{_ip6(seg, 24)}/{seg[19]})")
    n = seg[17] - 3
    if n % 4:
        out.append(" [|icmp6]")
        return
    off = 40
    for _ in range(n // 4):
        if off + 32 > len(seg):
            out.append(" [|icmp6]")
            return
        out.append("\n\t" if verbose > 1 else " ")
        out.append("use(")
        # tcpdump tests the first byte of the flags word against the network-order masks, so on a
        # little-endian host the V and P bits come from that byte's bits 7 and 6.
        flag_byte = seg[off + 12]
        if flag_byte:
            out.append(f"{'V' if flag_byte & 0x80 else ''}{'P' if flag_byte & 0x40 else ''},")
        if verbose:
            vl = _u32(seg, off + 4)
            pl = _u32(seg, off + 8)
            out.append(f"mask=0x{seg[off + 2]:x},raflags=0x{seg[off + 3]:x},")
            out.append("vltime=infty," if vl == 0xFFFFFFFF else f"vltime={vl},")
            out.append("pltime=infty," if pl == 0xFFFFFFFF else f"pltime={pl},")
        out.append(f"{_ip6(seg, off + 16)}/{seg[off]}/{seg[off + 1]})")
        off += 32


_RPL_MOP: Final = {0: "nonstoring", 1: "storing", 2: "nonstoring-multicast", 3: "storing-multicast"}
_RPL_SUBOPT: Final = {0: "pad1", 1: "padN", 2: "metrics", 3: "routinginfo", 4: "config", 5: "rpltarget",
                      6: "transitinfo", 8: "destprefix", 9: "rpltargetdesc"}


def _rpl_options(seg: bytes, off: int, length: int, verbose: int, out: list[str]) -> None:
    while length != 0:
        dio_type = _u8(seg, off)
        if dio_type == 0:
            optlen = 1
            out.append(" opt:pad1")
        else:
            if length < 2:
                out.append(" [|icmp6]")
                return
            optlen = _u8(seg, off + 1) + 2
            out.append(f" opt:{_RPL_SUBOPT.get(dio_type) or f'subopt:{dio_type}'} len:{optlen} ")
            if off + optlen > len(seg) or length < optlen:
                out.append(" [|icmp6]")
                return
            if verbose > 2:
                out.append(hex_print(seg, off + 2, " ", optlen - 2))
        off += optlen
        length -= optlen


def _rpl(seg: bytes, code: int, length: int, verbose: int, out: list[str]) -> None:
    """RPL control messages (RFC 6550), tcpdump's rpl_print over the body at offset 4."""
    if code & 0x80:
        out.append(", (SEC) [worktodo]")
        return
    out.append(", (CLR)")
    base = code & 0x7F
    if base == 0:
        out.append("DODAG Information Solicitation")
    elif base == 1:
        out.append("DODAG Information Object")
        if verbose:
            if length < 24:
                out.append(" (invalid)")
                return
            mopprf = _u8(seg, 8)
            mop = (mopprf >> 3) & 7
            out.append(f" [dagid:{_ip6(seg, 12)},seq:{_u8(seg, 9)},instance:{_u8(seg, 4)},rank:{_u16(seg, 6)},"
                       f"{'grounded,' if mopprf & 0x80 else ''}mop:{_RPL_MOP.get(mop, f'mop{mop}')},prf:{mopprf & 7}]")
            if verbose > 1:
                _rpl_options(seg, 28, length - 24, verbose, out)
    elif base == 2:
        out.append("Destination Advertisement Object")
        if verbose:
            if len(seg) < 24:
                out.append(" [|icmp6]")
                return
            if length < 4:
                out.append(" [|length too short]")
                return
            off, rest = 8, length - 4
            flags = _u8(seg, 5)
            dagid = "<elided>"
            if flags & 0x40:
                if len(seg) < 24:
                    out.append(" [|icmp6]")
                    return
                if rest < 16:
                    out.append(" [|length too short]")
                    return
                dagid = _ip6(seg, 8)
                off, rest = off + 16, rest - 16
            out.append(f" [dagid:{dagid},seq:{_u8(seg, 7)},instance:{_u8(seg, 4)}"
                       f"{',acK' if flags & 0x80 else ''}{',Dagid' if flags & 0x40 else ''},{flags:02x}]")
            if verbose > 1:
                _rpl_options(seg, off, rest, verbose, out)
    elif base == 3:
        out.append("Destination Advertisement Object Ack")
        if verbose:
            if len(seg) < 8:
                out.append(" [|icmp6]")
                return
            if length < 4:
                out.append(" [|dao-length too short]")
                return
            off, rest = 8, length - 4
            dagid = "<elided>"
            if _u8(seg, 5) & 0x80:
                if len(seg) < 24:
                    out.append(" [|icmp6]")
                    return
                if rest < 16:
                    out.append(" [|dao-length too short]")
                    return
                dagid = _ip6(seg, 8)
                off, rest = off + 16, rest - 16
            out.append(f" [dagid:{dagid},seq:{_u8(seg, 6)},instance:{_u8(seg, 4)},status:{_u8(seg, 7)}]")
            if verbose > 1:
                _rpl_options(seg, off, rest, verbose, out)
    else:
        out.append(f"RPL message, unknown code {code}")


def icmp6_text(
    seg: bytes, length: int, src: str, dst: str, verbose: int, inner: InnerPrinter, *, fragmented: bool = False
) -> str:
    """The text after ``"IP6 SRC > DST: "`` for an ICMPv6 message, e.g.
    ``"ICMP6, neighbor solicitation, who has fe80::1, length 32"``.

    ``seg`` is the message from its header on as captured, ``length`` its length from the IPv6 header
    (payload length minus extension headers); ``src``/``dst`` are the IPv6 addresses as printed, used for the
    checksum that -v verifies (``"[icmp6 sum ok] "`` in front), which is skipped when ``fragmented``.
    tcpdump 4.99 prints no quoted packet for ICMPv6 errors, so ``inner`` is not called (kept for symmetry
    with ``icmp4_text``). With -v the ND options follow on ``"\\n\\t  "`` lines.
    """
    if len(seg) > length:
        seg = seg[:length]
    if length == 0:
        return "ICMP6, length 0 (invalid)"
    out: list[str] = []
    try:
        if verbose and not fragmented and len(seg) >= length:
            field = _u16(seg, 2)
            pseudo = _pseudo6(src, dst, length)
            if pseudo:
                computed = checksum_of(pseudo + bytes(seg[:length]))
                if computed:
                    out.append(f"[bad icmp6 cksum 0x{field:04x} -> 0x{shouldbe(field, computed):04x}!] ")
                else:
                    out.append("[icmp6 sum ok] ")
        icmp_type = _u8(seg, 0)
        out.append("ICMP6, ")
        out.append(_ICMP6_NAMES.get(icmp_type) or f"unknown icmp6 type ({icmp_type})")
        if verbose and icmp_type in _ICMP6_LENGTH_FIRST:
            out.append(f", length {length}")
        code = _u8(seg, 1)
        if icmp_type == 128 or icmp_type == 129:
            out.append(f", id {_u16(seg, 4)}, seq {_u16(seg, 6)}")
        elif icmp_type == 135:
            out.append(f", who has {_ip6(seg, 8)}")
            if verbose:
                _nd_options(seg, 24, length - 24, verbose, out)
        elif icmp_type == 136:
            out.append(f", tgt is {_ip6(seg, 8)}")
            if verbose:
                out.append(f", Flags [{bittok(_NA_FLAGS, _u32(seg, 4))}]")
                _nd_options(seg, 24, length - 24, verbose, out)
        elif icmp_type == 1:
            out.append(", " + (_UNREACH6.get(code) or f"unknown unreach code ({code})"))
            if code in (0, 1, 3):
                out.append(f" {_ip6(seg, 32)}")
            elif code == 2:
                out.append(f" {_ip6(seg, 32)}, source address {_ip6(seg, 16)}")
            elif code == 4:
                upper = _upper_layer(seg, 8)
                if upper is None:
                    raise _Stop
                proto, dport = upper
                if proto == 6:
                    out.append(f", {_ip6(seg, 32)} tcp port {dport}")
                elif proto == 17:
                    out.append(f", {_ip6(seg, 32)} udp port {dport}")
                else:
                    out.append(f", {_ip6(seg, 32)} protocol {proto} port {dport} unreachable")
            elif verbose <= 1:
                out.append(hex_print(seg, 0, "\n\t", length))
                return "".join(out)
        elif icmp_type == 2:
            out.append(f", mtu {_u32(seg, 4)}")
        elif icmp_type == 3:
            if code == 0:
                out.append(f" for {_ip6(seg, 32)}")
            elif code == 1:
                out.append(" (reassembly)")
            else:
                out.append(f", unknown code ({code})")
        elif icmp_type == 4:
            if len(seg) < 48:  # ND_TCHECK_16 of the quoted destination
                raise _Stop
            words = _PARAMPROB6.get(code)
            if words is None:
                out.append(f", code-#{code}")
            elif code == 0:
                out.append(f", erroneous - octet {_u32(seg, 4)}")
            else:
                out.append(f", {words} - octet {_u32(seg, 4)}")
        elif icmp_type == 130:
            if length == 24:
                _mld1(seg, out)
            elif length >= 28:
                out.append(" v2")
                _mld2_query(seg, length, verbose, out)
            else:
                out.append(f" unknown-version (len {length}) ")
        elif icmp_type == 131 or icmp_type == 132:
            _mld1(seg, out)
        elif icmp_type == 143:
            _mld2_report(seg, length, verbose, out)
        elif icmp_type == 133:
            if verbose:
                _nd_options(seg, 8, length - 8, verbose, out)
        elif icmp_type == 134:
            if verbose:
                flags = _u8(seg, 5)
                out.append(f"\n\thop limit {_u8(seg, 4)}, Flags [{bittok(_RA_FLAGS, flags)}], "
                           f"pref {_RTPREF[(flags & 0x18) >> 3]}, router lifetime {_u16(seg, 6)}s, "
                           f"reachable time {_u32(seg, 8)}ms, retrans timer {_u32(seg, 12)}ms")
                _nd_options(seg, 16, length - 16, verbose, out)
        elif icmp_type == 137:
            out.append(f", {_ip6(seg, 24)}")
            out.append(f" to {_ip6(seg, 8)}")
            if verbose:
                _nd_options(seg, 40, length - 40, verbose, out)
        elif icmp_type == 138:
            _router_renumbering(seg, verbose, out)
        elif icmp_type == 139 or icmp_type == 140:
            _node_info(seg, length, verbose, out)
        elif icmp_type == 141 or icmp_type == 142:
            pass
        elif icmp_type == 146 or icmp_type == 144:
            out.append(f", id 0x{_u16(seg, 4):04x}")
        elif icmp_type == 145:
            if verbose:
                out.append(f", id 0x{_u16(seg, 4):04x}")
                off = 8
                while off < length:
                    out.append(f", {_ip6(seg, off)}")
                    off += 16
        elif icmp_type == 147:
            if verbose:
                out.append(f", id 0x{_u16(seg, 4):04x}")
                flags = _u16(seg, 6)
                if flags & 0xC000:
                    out.append(" ")
                if flags & 0x8000:
                    out.append("M")
                if flags & 0x4000:
                    out.append("O")
                _nd_options(seg, 8, length - 8, verbose, out)
        elif icmp_type == 155:
            _rpl(seg, code, length - 4, verbose, out)
        else:
            out.append(f", length {length}")
            if verbose <= 1:
                out.append(hex_print(seg, 0, "\n\t", length))
            return "".join(out)
        if not verbose:
            out.append(f", length {length}")
    except _Truncated:
        out.append(" [|icmp6]")
        return Jumped("".join(out))
    except _Stop:
        out.append(" [|icmp6]")
        return Stopped("".join(out))
    return _marked(out, " [|icmp6]")


# ---------------------------------------------------------------------------------------------------------
# IGMP (RFC 1112, 2236, 3376)

_DVMRP_TYPES: Final = {1: "Probe", 2: "Report", 3: "Ask-neighbors(old)", 4: "Neighbors(old)", 5: "Ask-neighbors2",
                       6: "Neighbors2", 7: "Prune", 8: "Graft", 9: "Graft-ACK"}
_PIMV1_TYPES: Final = {0: "Query", 1: "Register", 2: "Register-Stop", 3: "Join/Prune", 4: "RP-reachable",
                       5: "Assert", 6: "Graft", 7: "Graft-ACK"}


def _igmp3_query(seg: bytes, length: int, verbose: int, out: list[str]) -> None:
    out.append(" v3")
    if length < 12 or length & 3:
        out.append(f" [invalid len {length}]")
        return
    mrc = _u8(seg, 1)
    mrt = mrc if mrc < 128 else ((mrc & 0x0F) | 0x10) << (((mrc & 0x70) >> 4) + 3)
    if mrc != 100:
        out.append(f" [max resp time {mrt * 0.1:.1f}s]" if mrt < 600 else f" [max resp time {_relts(mrt // 10)}]")
    if _u32(seg, 4) == 0:
        return
    out.append(f" [gaddr {_ip4(seg, 4)}")
    nsrcs = _u16(seg, 10)
    if nsrcs > 0:
        if length < 12 + (nsrcs << 2):
            out.append(" [invalid number of sources]")
        elif verbose > 1:
            out.append(" {")
            for i in range(nsrcs):
                out.append(f" {_ip4(seg, 12 + 4 * i)}")
            out.append(" }")
        else:
            out.append(f", {nsrcs} source(s)")
    out.append("]")


def _igmp3_report(seg: bytes, length: int, verbose: int, out: list[str]) -> None:
    if length < 16 or length & 3:
        out.append(f" [invalid len {length}]")
        return
    groups = _u16(seg, 6)
    out.append(f", {groups} group record(s)")
    if not verbose:
        return
    off = 8
    for _ in range(groups):
        if length < off + 8:
            out.append(" [invalid number of groups]")
            return
        out.append(f" [gaddr {_ip4(seg, off + 4)}")
        rtype = _u8(seg, off)
        out.append(f" {_RECORD_TYPES.get(rtype) or f' [v3-report-#{rtype}]'}")
        nsrcs = _u16(seg, off + 2)
        if length < off + 8 + (nsrcs << 2):
            out.append(f" [invalid number of sources {nsrcs}]")
            return
        if verbose == 1:
            out.append(f", {nsrcs} source(s)")
        else:
            out.append(" {")
            for j in range(nsrcs):
                out.append(f" {_ip4(seg, off + 8 + 4 * j)}")
            out.append(" }")
        off += 8 + (nsrcs << 2)
        out.append("]")


def _mtrace(seg: bytes, name: str, length: int, out: list[str]) -> None:
    if length < 8 + 16:
        out.append(f" [invalid len {length}]")
        return
    raddr = _u32(seg, 16)
    out.append(f"{name} {_u24(seg, 21)}: {_ip4(seg, 8)} to {_ip4(seg, 12)} reply-to {_ip4(seg, 16)}")
    if raddr & 0xF0000000 == 0xE0000000:
        out.append(f" with-ttl {_u8(seg, 20)}")


def igmp_text(seg: bytes, length: int, verbose: int, *, quiet: bool = False) -> str:
    """The text after ``"IP SRC > DST: "`` for an IGMP message, e.g. ``"igmp v2 report 239.1.1.1"``.

    ``seg`` is the message as captured, ``length`` its length from the IP header. With -v (``verbose``) v3
    records and sources are listed and a wrong checksum is noted; ``quiet`` (-q) gives tcpdump's bare
    ``"igmp"``. DVMRP and PIMv1 carried in IGMP are named with their message type only.
    """
    if quiet:
        return "igmp"
    if len(seg) > length:
        seg = seg[:length]
    out: list[str] = []
    try:
        igmp_type = _u8(seg, 0)
        if igmp_type == 0x11:
            out.append("igmp query")
            if length >= 12:
                _igmp3_query(seg, length, verbose, out)
            else:
                mrt = _u8(seg, 1)
                if mrt:
                    out.append(" v2")
                    if mrt != 100:
                        out.append(f" [max resp time {mrt}]")
                else:
                    out.append(" v1")
                if _u32(seg, 4):
                    out.append(f" [gaddr {_ip4(seg, 4)}]")
                if length != 8:
                    out.append(f" [len {length}]")
        elif igmp_type == 0x12:
            out.append(f"igmp v1 report {_ip4(seg, 4)}")
            if length != 8:
                out.append(f" [len {length}]")
        elif igmp_type == 0x16:
            out.append(f"igmp v2 report {_ip4(seg, 4)}")
        elif igmp_type == 0x22:
            out.append("igmp v3 report")
            _igmp3_report(seg, length, verbose, out)
        elif igmp_type == 0x17:
            out.append(f"igmp leave {_ip4(seg, 4)}")
        elif igmp_type == 0x13:
            out.append("igmp dvmrp")
            if length < 8:
                out.append(f" [len {length}]")
            else:
                try:
                    dtype = _u8(seg, 1)
                    out.append(f" {_DVMRP_TYPES.get(dtype) or f'[type {dtype}]'}")
                    if dtype in (7, 8, 9):
                        out.append(f" src {_ip4(seg, 8)} grp {_ip4(seg, 12)}")
                        if dtype == 7:
                            out.append(" timer ")
                            out.append(_relts(_u32(seg, 16)))
                except _Truncated:
                    # Past this point tcpdump names the DVMRP printer in its mark.
                    out.append(" [|dvmrp]")
                    return Jumped("".join(out))
        elif igmp_type == 0x14:
            out.append("igmp pimv1")
            if len(seg) < 2:
                out.append(" [|pimv1]")
                return Jumped("".join(out))
            out.append(f" {_PIMV1_TYPES.get(seg[1]) or f'[type {seg[1]}]'}")
        elif igmp_type == 0x1E:
            _mtrace(seg, "mresp", length, out)
        elif igmp_type == 0x1F:
            _mtrace(seg, "mtrace", length, out)
        else:
            out.append(f"igmp-{igmp_type}")
        if verbose and length >= 4 and len(seg) >= length and checksum_of(seg[:length]):
            out.append(f" bad igmp cksum {_u16(seg, 2):x}!")
    except _Truncated:
        # print-igmp.c (and the DVMRP and PIMv1 printers it hands over to) only read with GET_ macros.
        out.append(" [|igmp]")
        return Jumped("".join(out))
    return "".join(out)

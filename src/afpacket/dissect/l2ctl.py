"""Link-layer control protocols as tcpdump -n prints them: 802.2 LLC (and SNAP), STP/RSTP/MSTP, CDP, IPX, LLDP.

``llc_line`` renders an 802.3 frame (a length field instead of an ethertype) the way tcpdump 4.99 does,
including the ``-e`` link header and the hex/ASCII dump tcpdump adds for payloads it cannot name;
``lldp_text`` renders an LLDP payload. Both follow tcpdump's truncation rules: printing stops at the first
field past the captured bytes with ``" [|proto]"``, and short or malformed frames never raise.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Final

from .hexdump import CHAR, hex_ascii_lines, hex_print
from .names import bittok

#: Prints what follows an ethertype (a SNAP header with OUI 000000, or the IP SAP) as the Ethernet printer
#: would: ``(ethertype, payload as captured, payload length) -> text``, or None when tcpdump has no printer
#: for that ethertype (then the SNAP header and a hex dump are printed instead).
EthertypePrinter = Callable[[int, bytes, int], "str | None"]


class _Truncated(Exception):
    """A field lies beyond the captured bytes; tcpdump stops printing there."""


class _Invalid(Exception):
    """Malformed: tcpdump prints " (invalid)", then a truncation mark when the rest (``args``: offset,
    length) was not even captured."""


_U16: Final = struct.Struct("!H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from


def _u8(b: bytes, off: int) -> int:
    if off >= len(b) or off < 0:
        raise _Truncated
    return b[off]


def _u16(b: bytes, off: int) -> int:
    if off + 2 > len(b) or off < 0:
        raise _Truncated
    return int(_U16(b, off)[0])


def _u24(b: bytes, off: int) -> int:
    if off + 3 > len(b) or off < 0:
        raise _Truncated
    return int.from_bytes(b[off : off + 3], "big")


def _u32(b: bytes, off: int) -> int:
    if off + 4 > len(b) or off < 0:
        raise _Truncated
    return int(_U32(b, off)[0])


def _need(b: bytes, off: int, n: int) -> None:
    if off + n > len(b) or off < 0:
        raise _Truncated


def _mac(b: bytes, off: int) -> str:
    _need(b, off, 6)
    return ":".join(f"{c:02x}" for c in b[off : off + 6])


def _ip4(b: bytes, off: int) -> str:
    _need(b, off, 4)
    return f"{b[off]}.{b[off + 1]}.{b[off + 2]}.{b[off + 3]}"


def _ip6(b: bytes, off: int) -> str:
    _need(b, off, 16)
    return socket.inet_ntop(socket.AF_INET6, bytes(b[off : off + 16]))


def _printjnp(b: bytes, off: int, n: int) -> str:
    """tcpdump's nd_printjnp: up to ``n`` characters, stopping at a NUL; truncation raises after the
    characters that were there (the caller appends them first via the exception's ``partial``)."""
    out: list[str] = []
    for i in range(off, off + n):
        if i >= len(b):
            raise _PartialTruncated("".join(out))
        c = b[i]
        if c == 0:
            break
        out.append(CHAR[c])
    return "".join(out)


def _printn(b: bytes, off: int, n: int) -> str:
    """tcpdump's nd_printn: exactly ``n`` characters, NULs included."""
    out: list[str] = []
    for i in range(off, off + n):
        if i >= len(b):
            raise _PartialTruncated("".join(out))
        out.append(CHAR[b[i]])
    return "".join(out)


class _PartialTruncated(_Truncated):
    """Truncation in the middle of a string tcpdump prints character by character: ``partial`` was printed."""

    def __init__(self, partial: str) -> None:
        super().__init__(partial)
        self.partial = partial


# ---------------------------------------------------------------------------------------------------------
# Names

_SAP_NAMES: Final = {0x00: "Null", 0xFF: "Global", 0x02: "802.1B I", 0x03: "802.1B G", 0x06: "IP", 0x04: "SNA",
                     0x0E: "ProWay NM", 0x42: "STP", 0x4E: "RS511", 0x7E: "ISO8208", 0x8E: "ProWay", 0xAA: "SNAP",
                     0xE0: "IPX", 0xF0: "NetBeui", 0xFE: "OSI"}
_LLC_COMMANDS: Final = {0x03: "ui", 0xE3: "test", 0xAF: "xid", 0x63: "ua", 0x43: "disc", 0x0F: "dm", 0x6F: "sabme",
                        0x87: "frmr"}
_LLC_FLAGS: Final = {0: "Command", 1: "Response", 0x10: "Poll", 0x11: "Final", 0x100: "Poll", 0x101: "Final"}
_SUPERVISORY: Final = {0: "Receiver Ready", 1: "Receiver not Ready", 2: "Reject"}

OUI_NAMES: Final = {
    0x000000: "Ethernet", 0x00000C: "Cisco", 0x00005E: "IANA", 0x000081: "Nortel Networks SONMP",
    0x0000F8: "Cisco bridged", 0x0080C2: "Ethernet bridged", 0x00A03E: "ATM Forum", 0x00E02F: "DOCSIS Spanning Tree",
    0x080007: "Appletalk", 0x009069: "Juniper", 0x080009: "Hewlett-Packard", 0x00120F: "IEEE 802.3 Private",
    0x0012BB: "ANSI/TIA", 0x001B21: "DCBX", 0x002320: "Nicira Networks", 0x5C16C7: "Big Switch Networks",
    0xB0D2F5: "Vello Systems", 0x002481: "HP", 0x0004EA: "HP-Labs", 0x748771: "Infoblox Inc",
    0xA42305: "Open Networking Lab", 0x00049F: "Freescale", 0x0015AD: "Netronome", 0x001018: "Broadcom",
    0x00E004: "PMC-Sierra", 0xD0F0DB: "Ericsson",
}  # 0x0080c2 is also IEEE 802.1's OUI; tcpdump's table names it "Ethernet bridged" first

ETHERTYPE_NAMES: Final = {
    0x0800: "IPv4", 0x8847: "MPLS unicast", 0x8848: "MPLS multicast", 0x86DD: "IPv6", 0x8100: "802.1Q",
    0x9100: "802.1Q-9100", 0x88A8: "802.1Q-QinQ", 0x9200: "802.1Q-9200", 0x88E5: "802.1AE MACsec", 0x0200: "PUP",
    0x0806: "ARP", 0x8035: "Reverse ARP", 0x0600: "NS", 0x0500: "Sprite", 0x1000: "Trail", 0x6001: "MOP DL",
    0x6002: "MOP RC", 0x6003: "DN", 0x6004: "LAT", 0x6007: "SCA", 0x6558: "TEB", 0x8038: "Lanbridge",
    0x803C: "DEC DNS", 0x803E: "DEC DTS", 0x805B: "VEXP", 0x805C: "VPROD", 0x809B: "Appletalk",
    0x80F3: "Appletalk ARP", 0x8137: "IPX", 0x880B: "PPP", 0x8808: "MPCP", 0x8809: "Slow Protocols",
    0x8863: "PPPoE D", 0x8864: "PPPoE S", 0x888E: "EAPOL", 0x8899: "Realtek protocols", 0x886F: "MS NLB heartbeat",
    0x8870: "Jumbo", 0x894F: "NSH", 0x9000: "Loopback", 0xFEFE: "OSI", 0x00FE: "GRE-OSI", 0xABCD: "CFM (old)",
    0x8902: "CFM", 0x893A: "IEEE1905.1", 0x88CC: "LLDP", 0x88CA: "TIPC", 0x0707: "GeoNet (old)", 0x8947: "GeoNet",
    0x1111: "CALM FAST", 0x88A2: "AoE", 0x88F7: "PTP", 0xD28B: "Arista Vendor Specific Protocol",
}

_CISCO_PIDS: Final = {0x2000: "CDP", 0x2003: "VTP", 0x2004: "DTP", 0x0111: "UDLD", 0x010B: "PVST",
                      0x010C: "VLAN Bridge"}
_BRIDGED_PIDS: Final = {1: "Ethernet + FCS", 7: "Ethernet w/o FCS", 2: "802.4 + FCS", 8: "802.4 w/o FCS",
                        3: "Token Ring + FCS", 9: "Token Ring w/o FCS", 4: "FDDI + FCS", 10: "FDDI w/o FCS",
                        5: "802.6 + FCS", 11: "802.6 w/o FCS", 14: "BPDU"}


def _pid_names(oui: int) -> dict[int, str]:
    if oui in (0x000000, 0x0000F8, 0x080007):
        return ETHERTYPE_NAMES
    if oui == 0x00000C:
        return _CISCO_PIDS
    if oui == 0x0080C2:
        return _BRIDGED_PIDS
    return {}


# ---------------------------------------------------------------------------------------------------------
# Spanning tree (802.1D, 802.1w, 802.1s, 802.1aq)

_STP_VERSIONS: Final = {0: "802.1d", 2: "802.1w", 3: "802.1s", 4: "802.1aq"}
_BPDU_TYPES: Final = {0x00: "Config", 0x02: "Rapid STP", 0x80: "Topology Change"}
_BPDU_FLAGS: Final = ((0x01, "Topology change"), (0x02, "Proposal"), (0x10, "Learn"), (0x20, "Forward"),
                      (0x40, "Agreement"), (0x80, "Topology change ACK"))
_PORT_ROLES: Final = {0: "Unknown", 1: "Alternate", 2: "Root", 3: "Designated"}


def _bridge_id(b: bytes, off: int) -> str:
    _need(b, off, 8)
    return (f"{b[off]:02x}{b[off + 1]:02x}."
            + ":".join(f"{c:02x}" for c in b[off + 2 : off + 8]))


def _stp_time(b: bytes, off: int) -> str:
    return f"{_u16(b, off) / 256:.2f}s"


def _stp_timers(b: bytes) -> str:
    return (f"\n\tmessage-age {_stp_time(b, 27)}, max-age {_stp_time(b, 29)}, hello-time {_stp_time(b, 31)}, "
            f"forwarding-delay {_stp_time(b, 33)}")


def _stp_config(b: bytes, length: int, verbose: int, out: list[str]) -> None:
    flags = _u8(b, 4)
    out.append(f", Flags [{bittok(_BPDU_FLAGS, flags)}]")
    out.append(f", bridge-id {_bridge_id(b, 17)}.{_u16(b, 25):04x}, length {length}")
    if not verbose:
        return
    out.append(_stp_timers(b))
    out.append(f"\n\troot-id {_bridge_id(b, 5)}, root-pathcost {_u32(b, 13)}")
    if _u8(b, 2) == 2:
        out.append(f", port-role {_PORT_ROLES[(flags & 0x0C) >> 2]}")


def _stp_mstp(b: bytes, length: int, verbose: int, out: list[str]) -> None:
    flags = _u8(b, 4)
    out.append(f", CIST Flags [{bittok(_BPDU_FLAGS, flags)}], length {length}")
    if not verbose:
        return
    out.append(f"\n\tport-role {_PORT_ROLES[(flags & 0x0C) >> 2]}, ")
    out.append(f"CIST root-id {_bridge_id(b, 5)}, CIST ext-pathcost {_u32(b, 13)}")
    out.append(f"\n\tCIST regional-root-id {_bridge_id(b, 17)}, ")
    out.append(f"CIST port-id {_u16(b, 25):04x},")
    out.append(_stp_timers(b))
    out.append(f"\n\tv3len {_u16(b, 36)}, ")
    out.append("MCID Name ")
    try:
        out.append(_printjnp(b, 39, 32))
    except _PartialTruncated as e:
        out.append(e.partial)
        raise
    out.append(f", rev {_u16(b, 71)},\n\t\tdigest {_u32(b, 73):08x}{_u32(b, 77):08x}{_u32(b, 81):08x}"
               f"{_u32(b, 85):08x}, ")
    out.append(f"CIST int-root-pathcost {_u32(b, 89)},")
    out.append(f"\n\tCIST bridge-id {_bridge_id(b, 93)}, ")
    out.append(f"CIST remaining-hops {_u8(b, 101)}")
    v3len = _u16(b, 36)
    if v3len > 64:
        rest = v3len - 64
        off = 102
        while rest >= 16:
            mflags = _u8(b, off)
            msti = _u16(b, off + 1) & 0x0FFF
            out.append(f"\n\tMSTI {msti}, Flags [{bittok(_BPDU_FLAGS, mflags)}], "
                       f"port-role {_PORT_ROLES[(mflags & 0x0C) >> 2]}")
            out.append(f"\n\t\tMSTI regional-root-id {_bridge_id(b, off + 1)}, pathcost {_u32(b, off + 9)}")
            out.append(f"\n\t\tMSTI bridge-prio {_u8(b, off + 13) >> 4}, port-prio {_u8(b, off + 14) >> 4}, "
                       f"hops {_u8(b, off + 15)}")
            rest -= 16
            off += 16


def _stp_spb(b: bytes, off: int, verbose: int, out: list[str]) -> None:
    if not verbose:
        return
    out.append(f"\n\tv4len {_u16(b, off)}, ")
    out.append("AUXMCID Name ")
    try:
        out.append(_printjnp(b, off + 3, 32))
    except _PartialTruncated as e:
        out.append(e.partial)
        raise
    d = off + 37
    out.append(f", Rev {_u16(b, off + 35)},\n\t\tdigest {_u32(b, d):08x}{_u32(b, d + 4):08x}{_u32(b, d + 8):08x}"
               f"{_u32(b, d + 12):08x}")
    a = off + 53
    agreement = _u8(b, a)
    fmt = _u8(b, a + 2)
    con = _u8(b, a + 3)
    edge = _u16(b, a + 4)
    dg = a + 14
    digest = "".join(f"{_u32(b, dg + 4 * i):08x}" for i in range(5))
    out.append(f"\n\tAgreement num {agreement >> 6}, Discarded Agreement num {(agreement >> 4) & 3}, Agreement valid-"
               f"flag {(agreement >> 3) & 1},\n\tRestricted role-flag: {(agreement >> 2) & 1}, Format id {fmt >> 4} "
               f"cap {fmt & 0xFF}, Convention id {con >> 4} cap {con & 0xFF},\n\tEdge count {edge}, "
               f"Agreement digest {digest}")


def stp_text(b: bytes, length: int, verbose: int) -> str:
    """A spanning-tree BPDU (``b`` from the protocol identifier on, as captured; ``length`` what the frame
    says remains), e.g. ``"STP 802.1d, Config, Flags [none], bridge-id 8000.02:00:00:00:00:01.8001, length 35"``."""
    out: list[str] = []
    try:
        if length < 4:
            out.append(" (invalid)")
            return "".join(out)
        if _u16(b, 0):
            return f"unknown STP version, length {length}"
        version = _u8(b, 2)
        out.append(f"STP {_STP_VERSIONS.get(version) or f'Unknown STP protocol (0x{version:02x})'}")
        if version not in _STP_VERSIONS:
            return "".join(out)
        bpdu = _u8(b, 3)
        out.append(f", {_BPDU_TYPES.get(bpdu) or f'Unknown BPDU Type (0x{bpdu:02x})'}")
        if bpdu == 0x00:
            if length < 35:
                out.append(" (invalid)")
            else:
                _stp_config(b, length, verbose, out)
        elif bpdu == 0x02:
            if version == 2:
                if length < 36:
                    out.append(" (invalid)")
                else:
                    _stp_config(b, length, verbose, out)
            elif version in (3, 4):
                if length < 102 or _u8(b, 35) != 0:
                    out.append(" (invalid)")
                    return "".join(out)
                mstp_len = _u16(b, 36) + 2
                if length < 36 + mstp_len:
                    out.append(" (invalid)")
                    return "".join(out)
                _stp_mstp(b, length, verbose, out)
                if version == 4:
                    spb_len = _u16(b, 36 + mstp_len) + 2
                    if length < 36 + mstp_len + spb_len or spb_len < 87:
                        out.append(" (invalid)")
                    else:
                        _stp_spb(b, 36 + mstp_len, verbose, out)
    except _Truncated:
        out.append(" [|stp]")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# CDP (Cisco Discovery Protocol, in SNAP with OUI 00000c, PID 0x2000)

_CDP_CAPS: Final = ((0x01, "Router"), (0x02, "Transparent Bridge"), (0x04, "Source Route Bridge"),
                    (0x08, "L2 Switch"), (0x10, "L3 capable"), (0x20, "IGMP snooping"), (0x40, "L1 capable"))
_IPV6_SNAP: Final = b"\xaa\xaa\x03\x00\x00\x00\x86\xdd"


def _cdp_addresses(b: bytes, p: int, ln: int, out: list[str]) -> None:
    if ln < 4:
        out.append(" (not enough space for num)")
        _need(b, p, ln)
        return
    num = _u32(b, p)
    p += 4
    ln -= 4
    while num:
        if ln < 2:
            out.append(" (not enough space for PT+PL)")
            _need(b, p, ln)
            return
        pt, pl = _u8(b, p), _u8(b, p + 1)
        p += 2
        ln -= 2
        if ln < pl + 2:
            out.append(" (not enough space for P+AL)")
            _need(b, p, ln)
            return
        al = _u16(b, p + pl)
        if pt == 1 and pl == 1 and _u8(b, p) == 0xCC and al == 4:
            p += pl + 2
            ln -= pl + 2
            if ln < al:
                out.append(" (not enough space for A)")
                _need(b, p, ln)
                return
            out.append(f"IPv4 ({num}) {_ip4(b, p)}")
            p += al
            ln -= al
        elif pt == 2 and pl == 8 and bytes(b[p : p + 8]) == _IPV6_SNAP and al == 16:
            p += pl + 2
            ln -= pl + 2
            if ln < al:
                out.append(" (not enough space for A)")
                _need(b, p, ln)
                return
            out.append(f"IPv6 ({num}) {_ip6(b, p)}")
            p += al
            ln -= al
        else:
            out.append(f"pt=0x{pt:02x}, pl={pl}, pb=")
            for _ in range(pl):
                out.append(f" {_u8(b, p):02x}")
                p += 1
                ln -= 1
            out.append(f", al={al}, a=")
            p += 2
            ln -= 2
            if ln < al:
                out.append(" (not enough space for A)")
                _need(b, p, ln)
                return
            for _ in range(al):
                out.append(f" {_u8(b, p):02x}")
                p += 1
                ln -= 1
        num -= 1
        if num:
            out.append(" ")
    if ln:
        out.append(f" ({ln} bytes of stray data)")


def _cdp_value(b: bytes, ttype: int, p: int, ln: int, out: list[str]) -> None:
    """One CDP TLV's value, with tcpdump's printer for its type."""
    if ttype in (0x01, 0x03, 0x06, 0x09, 0x14):
        out.append("'")
        try:
            out.append(_printn(b, p, ln))
        except _PartialTruncated as e:
            out.append(e.partial)
            raise
        out.append("'")
    elif ttype in (0x02, 0x16):
        _cdp_addresses(b, p, ln, out)
    elif ttype == 0x04:
        v = _u32(b, p)
        out.append(f"(0x{v:08x}): {bittok(_CDP_CAPS, v)}")
    elif ttype == 0x05:
        out.append("\n\t  ")
        for i in range(ln):
            c = _u8(b, p + i)
            out.append("\n\t  " if c == 0x0A else CHAR[c])
    elif ttype == 0x07:
        if ln % 5:
            out.append(f" [length {ln} is not a multiple of 5]")
            _need(b, p, ln)
            return
        out.append(f" IPv4 Prefixes ({ln // 5}):")
        for i in range(0, ln, 5):
            _need(b, p + i, 5)
            out.append(f" {b[p + i]}.{b[p + i + 1]}.{b[p + i + 2]}.{b[p + i + 3]}/{b[p + i + 4]}")
    elif ttype == 0x0A:
        out.append(str(_u16(b, p)))
    elif ttype == 0x0B:
        out.append("full" if _u8(b, p) else "half")
    elif ttype in (0x0E, 0x0F):
        if ln == 2:
            out.append(f"unknown 0x{_u16(b, p):04x}")
        else:
            out.append(f"app {_u8(b, p)}, vlan {_u16(b, p + 1)}")
    elif ttype == 0x10:
        val = _u8(b, p) if ln == 1 else _u16(b, p) if ln == 2 else _u24(b, p) if ln == 3 else 0
        out.append(f"{val / 1000.0:1.2f}W")
    elif ttype == 0x11:
        out.append(f"{_u32(b, p)} bytes")
    elif ttype in (0x12, 0x13):
        out.append(f"0x{_u8(b, p):02x}")
    elif ttype == 0x17:
        out.append(f"0x{_u8(b, p):02x}")
        if ln > 1:
            out.append("/")
            try:
                out.append(_printn(b, p + 1, ln - 1))
            except _PartialTruncated as e:
                out.append(e.partial)
                raise
    else:  # types known by name only (0x08, 0x15): nothing printed, but the bytes must be there
        _need(b, p, ln)


#: CDP TLV type -> (name, minimum length, maximum length), -1 for no limit.
_CDP_TLVS: Final = {
    0x01: ("Device-ID", -1, -1), 0x02: ("Address", -1, -1), 0x03: ("Port-ID", -1, -1), 0x04: ("Capability", 4, 4),
    0x05: ("Version String", -1, -1), 0x06: ("Platform", -1, -1), 0x07: ("Prefixes", -1, -1),
    0x08: ("Protocol-Hello option", -1, -1), 0x09: ("VTP Management Domain", -1, -1),
    0x0A: ("Native VLAN ID", 2, 2), 0x0B: ("Duplex", 1, 1), 0x0E: ("ATA-186 VoIP VLAN assignment", 3, 3),
    0x0F: ("ATA-186 VoIP VLAN request", 2, 3), 0x10: ("power consumption", 1, 3), 0x11: ("MTU", 4, 4),
    0x12: ("AVVID trust bitmap", 1, 1), 0x13: ("AVVID untrusted ports CoS", 1, 1), 0x14: ("System Name", -1, -1),
    0x15: ("System Object ID (not decoded)", -1, -1), 0x16: ("Management Addresses", 4, -1),
    0x17: ("Physical Location", 1, -1),
}


def cdp_text(b: bytes, length: int, verbose: int) -> str:
    """A CDP message (``b`` from the CDP header on, as captured), e.g.
    ``"CDPv2, ttl: 180s, Device-ID 'switch1', length 380"``, with every TLV listed under -v."""
    out: list[str] = []
    try:
        if length < 4:
            out.append(f" (packet length {length} < 4)")
            raise _Invalid(0, length)
        out.append(f"CDPv{_u8(b, 0)}, ttl: {_u8(b, 1)}s")
        checksum = _u16(b, 2)
        if verbose:
            out.append(f", checksum: 0x{checksum:04x} (unverified), length {length}")
        p = 4
        rest = length - 4
        while rest:
            if rest < 4:
                out.append(f" (remaining packet length {rest} < 4)")
                raise _Invalid(p, rest)
            ttype = _u16(b, p)
            tlen = _u16(b, p + 2)
            info = _CDP_TLVS.get(ttype)
            name = info[0] if info else "unknown field type"
            if tlen < 4:
                if verbose:
                    out.append(f"\n\t{name} (0x{ttype:02x}), TLV length: {tlen} byte{'' if tlen == 1 else 's'}"
                               " (too short)")
                else:
                    out.append(f", {name} TLV length {tlen} too short")
                raise _Invalid(p, rest)
            if tlen > rest:
                out.append(f" (TLV length {tlen} > {rest})")
                raise _Invalid(p, rest)
            p += 4
            rest -= 4
            tlen -= 4
            if not verbose and ttype == 1:
                out.append(", Device-ID ")
            elif verbose:
                out.append(f"\n\t{name} (0x{ttype:02x}), value length: {tlen} byte{'' if tlen == 1 else 's'}: ")
            covered = False
            if info:
                lo, hi = info[1], info[2]
                if (lo > 0 and tlen < lo) or (hi > 0 and tlen > hi):
                    out.append(" (malformed TLV)")
                elif verbose or ttype == 1:
                    _cdp_value(b, ttype, p, tlen, out)
                    covered = True
            if not covered:
                _need(b, p, tlen)
                out.append(hex_print(b, p, "\n\t  ", tlen))
            p += tlen
            rest -= tlen
        if verbose < 1:
            out.append(f", length {length}")
    except _Invalid as e:
        out.append(" (invalid)")
        if e.args and len(b) < e.args[0] + e.args[1]:
            out.append(" [|cdp]")
    except _Truncated:
        out.append(" [|cdp]")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# DTP and UDLD (Cisco, in SNAP with OUI 00000c)

_DTP_TLVS: Final = {1: "Domain", 2: "Status", 3: "DTP type", 4: "Neighbor"}


def dtp_text(b: bytes, length: int, verbose: int) -> str:
    """Cisco Dynamic Trunking Protocol, e.g. ``"DTPv1, length 38"`` (TLVs with -v)."""
    out: list[str] = []
    p = 0
    try:
        if length < 1:
            out.append("[zero packet length]")
            raise _Invalid(p, length)
        out.append(f"DTPv{_u8(b, 0)}, length {length}")
        if verbose < 1:
            return "".join(out)
        p, rest = 1, length - 1
        while rest:
            if rest < 4:
                out.append(f"[{rest} bytes remaining]")
                raise _Invalid(p, rest)
            ttype, tlen = _u16(b, p), _u16(b, p + 2)
            if ttype == 0:
                break
            out.append(f"\n\t{_DTP_TLVS.get(ttype, 'Unknown')} (0x{ttype:04x}) TLV, length {tlen}")
            if tlen < 4 or tlen > rest:
                out.append(f"[invalid TLV length {tlen}]")
                raise _Invalid(p, rest)
            if ttype == 1:
                out.append(", ")
                _jnp(b, p + 4, tlen - 4, out)
            elif ttype in (2, 3):
                if tlen != 5:
                    raise _Invalid(p, rest)
                out.append(f", 0x{_u8(b, p + 4):x}")
            elif ttype == 4:
                if tlen != 10:
                    raise _Invalid(p, rest)
                out.append(f", {_mac(b, p + 4)}")
            else:
                _need(b, p, tlen)
            p += tlen
            rest -= tlen
    except _Invalid as e:
        out.append(" (invalid)")
        if len(b) < e.args[0] + e.args[1]:
            out.append(" [|dtp]")
    except _Truncated:
        out.append(" [|dtp]")
    return "".join(out)


_UDLD_TLVS: Final = {1: "Device-ID TLV", 2: "Port-ID TLV", 3: "Echo TLV", 4: "Message Interval TLV",
                     5: "Timeout Interval TLV", 6: "Device Name TLV", 7: "Sequence Number TLV"}
_UDLD_CODES: Final = {0: "Reserved", 1: "Probe message", 2: "Echo message", 3: "Flush message"}
_UDLD_FLAGS: Final = tuple((1 << i, name) for i, name in enumerate(
    ("RT", "RSY", "MBZ-2", "MBZ-3", "MBZ-4", "MBZ-5", "MBZ-6", "MBZ-7")))


def udld_text(b: bytes, length: int, verbose: int) -> str:
    """Cisco UniDirectional Link Detection, e.g. ``"UDLDv1, Code Probe message (1), Flags [RT] (0x01), length 60"``."""
    out: list[str] = []
    p, rest = 0, length
    try:
        if length < 4:
            raise _Invalid(p, rest)
        first = _u8(b, 0)
        flags = _u8(b, 1)
        code = first & 0x1F
        out.append(f"UDLDv{(first & 0xE0) >> 5}, Code {_UDLD_CODES.get(code, 'Reserved')} ({code:x}), "
                   f"Flags [{bittok(_UDLD_FLAGS, flags)}] (0x{flags:02x}), length {length}")
        p, rest = 2, length - 2
        if verbose < 1:
            _need(b, p, rest)
            return "".join(out)
        out.append(f"\n\tChecksum 0x{_u16(b, p):04x} (unverified)")
        p, rest = p + 2, rest - 2
        while rest:
            if rest < 4:
                raise _Invalid(p, rest)
            ttype = _u16(b, p)
            tlen = _u16(b, p + 2)
            p, rest = p + 4, rest - 4
            out.append(f"\n\t{_UDLD_TLVS.get(ttype, 'Unknown')} (0x{ttype:04x}) TLV, length {tlen}")
            if tlen <= 4:
                raise _Invalid(p, rest)
            tlen -= 4
            if rest < tlen:
                raise _Invalid(p, rest)
            if ttype in (1, 2, 6):
                out.append(", ")
                _jnp(b, p, tlen, out)
            elif ttype == 3:
                out.append(", ")
                try:
                    out.append(_printn(b, p, tlen))
                except _PartialTruncated as e:
                    out.append(e.partial)
                    raise
            elif ttype in (4, 5):
                if tlen != 1:
                    raise _Invalid(p, rest)
                out.append(f", {_u8(b, p)}s")
            elif ttype == 7:
                if tlen != 4:
                    raise _Invalid(p, rest)
                out.append(f", {_u32(b, p)}")
            else:
                _need(b, p, tlen)
            p, rest = p + tlen, rest - tlen
    except _Invalid as e:
        out.append(" (invalid)")
        if len(b) < e.args[0] + e.args[1]:
            out.append(" [|udld]")
    except _Truncated:
        out.append(" [|udld]")
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# IPX (Ethernet_802.3 and 802.2 framings)

_IPX_SOCKETS: Final = {0x0451: "ipx-ncp", 0x0455: "ipx-netbios", 0x0456: "ipx-diags", 0x0553: "ipx-nwlink-dgm"}


def _ipx_addr(b: bytes, off: int) -> str:
    return f"{_u32(b, off):08x}." + _mac(b, off + 4)


def ipx_text(b: bytes, length: int, link: bool) -> str:
    """An IPX datagram header line, e.g. ``"IPX 00000000.02:00:00:00:00:01.0453 > ...: ipx-#453 10"``.

    SAP and RIP bodies are printed as tcpdump -n does."""
    out: list[str] = [] if link else ["IPX "]
    try:
        out.append(f"{_ipx_addr(b, 18)}.{_u16(b, 28):04x} > ")
        out.append(f"{_ipx_addr(b, 6)}.{_u16(b, 16):04x}: ")
        ipx_len = _u16(b, 2)
        if ipx_len < 30:
            out.append(f"[length {ipx_len} < 30] (invalid)")
            return "".join(out)
        ipx_len -= 30
        skt = _u16(b, 16)
        if skt in _IPX_SOCKETS:
            out.append(f"{_IPX_SOCKETS[skt]} {ipx_len}")
        elif skt == 0x0453:
            _ipx_rip(b, 30, ipx_len, out)
        elif skt == 0x0452:
            _ipx_sap(b, 30, ipx_len, out)
        else:
            out.append(f"ipx-#{skt:x} {ipx_len}")
    except _Truncated:
        out.append(" [|ipx]")
    return "".join(out)


def _ipx_rip(b: bytes, p: int, ln: int, out: list[str]) -> None:
    command = _u16(b, p)
    if ln < 2:
        out.append(" (invalid)")
        return
    p += 2
    ln -= 2
    if command == 1:
        out.append("ipx-rip-req")
        if ln:
            if ln < 8:
                out.append(" (invalid)")
                return
            out.append(f" {_u32(b, p):08x}/{_u16(b, p + 4)}.{_u16(b, p + 6)}")
    elif command == 2:
        out.append("ipx-rip-resp")
        i = 0
        while i < 50 and ln:
            if ln < 8:
                out.append(" (invalid)")
                return
            out.append(f" {_u32(b, p):08x}/{_u16(b, p + 4)}.{_u16(b, p + 6)}")
            p += 8
            ln -= 8
            i += 1
    else:
        out.append(f"ipx-rip-?{command:x}")


def _sap_name(v: int) -> str:
    # tcpdump -n loads no service-name table, so every SAP type prints as four hex digits.
    return f"{v:04x}"


def _ipx_sap(b: bytes, p: int, ln: int, out: list[str]) -> None:
    command = _u16(b, p)
    if ln < 2:
        out.append(" (invalid)")
        return
    p += 2
    ln -= 2
    if command in (1, 3):
        out.append("ipx-sap-req" if command == 1 else "ipx-sap-nearest-req")
        out.append(f" {_sap_name(_u16(b, p))}")
    elif command in (2, 4):
        out.append("ipx-sap-resp" if command == 2 else "ipx-sap-nearest-resp")
        i = 0
        while i < 8 and ln:
            _need(b, p, 2)
            if ln < 2:
                out.append(" (invalid)")
                return
            out.append(f" {_sap_name(_u16(b, p))} '")
            p += 2
            ln -= 2
            if ln < 48:
                out.append("' (invalid)")
                return
            try:
                out.append(_printjnp(b, p, 48))
            except _PartialTruncated as e:
                out.append(e.partial)
                raise
            out.append("'")
            p += 48
            ln -= 48
            _need(b, p, 10)
            if ln < 10:
                out.append(" (invalid)")
                return
            out.append(f" addr {_ipx_addr(b, p)}")
            p += 10
            ln -= 10
            _need(b, p, 4)
            if ln < 4:
                out.append(" (invalid)")
                return
            p += 4
            ln -= 4
            i += 1
    else:
        out.append(f"ipx-sap-?{command:x}")


# ---------------------------------------------------------------------------------------------------------
# 802.2 LLC and SNAP


def _snap(
    b: bytes, p: int, length: int, src: str, dst: str, link: bool, verbose: int,
    ethertype: EthertypePrinter | None, out: list[str],
) -> bool:
    """tcpdump's snap_print from ``p`` (after the LLC header); False when it named nothing (the caller then
    dumps the frame). Raises _Truncated with the "snap" mark already appended."""
    if p + 5 > len(b) or length < 5:
        out.append(" [|snap]")
        return True
    oui = int.from_bytes(b[p : p + 3], "big")
    et = int(_U16(b, p + 3)[0])
    if link:
        out.append(f"oui {OUI_NAMES.get(oui, 'Unknown')} (0x{oui:06x}), {'ethertype' if oui == 0 else 'pid'} "
                   f"{_pid_names(oui).get(et, 'Unknown')} (0x{et:04x}), length {length - 5}: ")
    p += 5
    length -= 5
    if oui in (0x000000, 0x0000F8) or (oui == 0x080007 and et == 0x809B):
        text = ethertype(et, bytes(b[p : p + length]), length) if ethertype is not None else None
        if text is not None:
            out.append(text)
            return True
    elif oui == 0x00000C:
        if et == 0x2000:
            out.append(cdp_text(b[p:], length, verbose))
            return True
        if et == 0x2004:
            out.append(dtp_text(b[p:], length, verbose))
            return True
        if et == 0x0111:
            out.append(udld_text(b[p:], length, verbose))
            return True
        if et in (0x010B, 0x010C):
            out.append(stp_text(b[p:], length, verbose))
            return True
    elif oui == 0x0080C2 and et == 0x000E:
        out.append(stp_text(b[p:], length, verbose))
        return True
    if not link:
        out.append(f"{src} > {dst} ")
        if oui == 0:
            out.append(f"SNAP, ethertype {ETHERTYPE_NAMES.get(et, 'Unknown')} (0x{et:04x}), length {length}: ")
        else:
            out.append(f"SNAP, oui {OUI_NAMES.get(oui, 'Unknown')} (0x{oui:06x}), pid "
                       f"{_pid_names(oui).get(et, 'Unknown')} (0x{et:04x}), length {length}: ")
    return False


def _llc(
    b: bytes, p: int, length: int, src: str, dst: str, link: bool, verbose: int,
    ethertype: EthertypePrinter | None, out: list[str],
) -> int:
    """tcpdump's llc_print over ``b[p:]``: the header length when the payload was named, its negative when
    not (the caller then dumps from ``p``), or 0 when a dump was already printed."""
    caplen = len(b) - p
    if caplen < 3 or length < 3:
        out.append(" [|llc]")
        out.append(hex_ascii_lines(b[p:]))
        return 0
    dsap_field, ssap_field, control = b[p], b[p + 1], b[p + 2]
    if control & 3 == 3:
        is_u = True
        hdrlen = 3
    else:
        if caplen < 4 or length < 4:
            out.append(" [|llc]")
            out.append(hex_ascii_lines(b[p:]))
            return 0
        control = b[p + 2] | b[p + 3] << 8
        is_u = False
        hdrlen = 4
    if dsap_field == 0xFF and ssap_field == 0xFF:
        # Novell's "raw" Ethernet_802.3: no LLC header, the IPX checksum 0xffff in its place.
        if link:
            out.append("IPX 802.3: ")
        out.append(ipx_text(b[p:], length, link))
        return 3
    dsap = dsap_field & 0xFE
    ssap = ssap_field & 0xFE
    if link:
        out.append(f"LLC, dsap {_SAP_NAMES.get(dsap, 'Unknown')} (0x{dsap:02x}) "
                   f"{'Group' if dsap_field & 1 else 'Individual'}, ssap {_SAP_NAMES.get(ssap, 'Unknown')} "
                   f"(0x{ssap:02x}) {'Response' if ssap_field & 1 else 'Command'}")
        out.append(f", ctrl 0x{control:02x}: " if is_u else f", ctrl 0x{control:04x}: ")
    q = p + hdrlen
    rest = length - hdrlen
    if ssap == 0xAA and dsap == 0xAA and control == 0x03:
        if _snap(b, q, rest, src, dst, link, verbose, ethertype, out):
            return hdrlen + 5
        return -(hdrlen + 5)
    if ssap == 0x42 and dsap == 0x42 and control == 0x03:
        out.append(stp_text(b[q:], rest, verbose))
        return hdrlen
    if ssap == 0x06 and dsap == 0x06 and control == 0x03 and ethertype is not None:
        text = ethertype(0x0800, bytes(b[q : q + rest]), rest)
        if text is not None:
            out.append(text)
            return hdrlen
    if ssap == 0xE0 and dsap == 0xE0 and control == 0x03:
        if link:
            out.append("IPX 802.2: ")
        out.append(ipx_text(b[q:], rest, link))
        return hdrlen
    if not link:
        if ssap == dsap:
            out.append(f"{src} > {dst} {_SAP_NAMES.get(dsap) or f'Unknown DSAP 0x{dsap:02x}'} ")
        else:
            out.append(f"{src} {_SAP_NAMES.get(ssap) or f'Unknown SSAP 0x{ssap:02x}'} > {dst} "
                       f"{_SAP_NAMES.get(dsap) or f'Unknown DSAP 0x{dsap:02x}'} ")
    if is_u:
        command = control & 0xEF
        out.append(f"Unnumbered, {_LLC_COMMANDS.get(command) or f'{command:02x}'}, "
                   f"Flags [{_LLC_FLAGS.get((ssap_field & 1) | (control & 0x10), '?')}], length {length}")
        if control & 0xEF == 0xAF:  # XID
            if rest == 0:
                return hdrlen
            if len(b) - q < 1:
                out.append(" [|llc]")
                return hdrlen
            if b[q] == 0x81:
                if len(b) - q < 3 or rest < 3:
                    out.append(" [|llc]")
                    out.append(hex_ascii_lines(b[q:]))
                else:
                    out.append(f": {b[q + 1]:02x} {b[q + 2]:02x}")
                return hdrlen
    else:
        flags = _LLC_FLAGS.get((ssap_field & 1) | (control & 0x100), "?")
        if control & 1:
            out.append(f"Supervisory, {_SUPERVISORY.get((control >> 2) & 3, '?')}, rcv seq {(control >> 9) & 0x7F}, "
                       f"Flags [{flags}], length {length}")
            return hdrlen
        out.append(f"Information, send seq {(control >> 1) & 0x7F}, rcv seq {(control >> 9) & 0x7F}, "
                   f"Flags [{flags}], length {length}")
    return -hdrlen


def llc_line(
    frame: bytes, length: int, link: bool, verbose: int, *,
    hdrlen: int = 14, ethertype: EthertypePrinter | None = None, dump: bool = True,
) -> str:
    """The whole text tcpdump prints after the timestamp for an 802.3 frame (length field <= 1500),
    ``frame`` from the 14-byte Ethernet header on as captured, ``length`` the frame's wire length, ``link``
    for -e (tcpdump then shows the MAC addresses and the LLC header), e.g. ``"STP 802.1d, Config, ..."``.

    ``hdrlen`` is where the 802.3 length field ends: 14, or more when VLAN tags precede it. With tags and
    ``link``, the caller has already printed the link header up to and including the tags (``"..., length
    N: vlan 10, p 0, "``) and this returns the rest, which tcpdump starts with ``"802.3"`` and no separator.
    ``ethertype`` prints what follows a SNAP header with OUI 000000 (and the IP SAP), as the Ethernet printer
    would for that ethertype; without it those payloads are dumped as unknown. ``dump=False`` leaves out the
    hex/ASCII dump of unnamed payloads, as tcpdump does with -x, -X or -q.
    """
    if len(frame) < hdrlen:
        return " [|ether]" if len(frame) < 14 else " [|vlan]"
    src = _mac(frame, 6)
    dst = _mac(frame, 0)
    field = int(_U16(frame, hdrlen - 2)[0])
    rest = length - hdrlen
    if field < rest:
        rest = field
    b = frame[: hdrlen + rest] if len(frame) > hdrlen + rest else frame
    out: list[str] = []
    if link:
        if hdrlen == 14:
            out.append(f"{src} > {dst}, 802.3, length {rest}: ")
        else:
            out.append("802.3")
    try:
        named = _llc(b, hdrlen, rest, src, dst, link, verbose, ethertype, out)
    except _Truncated:
        return "".join(out)
    if named < 0 and dump:
        out.append(hex_ascii_lines(b[hdrlen:]))
    return "".join(out)


# ---------------------------------------------------------------------------------------------------------
# LLDP (IEEE 802.1AB)

_LLDP_TLVS: Final = {0: "End", 1: "Chassis ID", 2: "Port ID", 3: "Time to Live", 4: "Port Description",
                     5: "System Name", 6: "System Description", 7: "System Capabilities", 8: "Management Address",
                     127: "Organization specific"}
_CHASSIS_SUBTYPES: Final = {1: "Chassis component", 2: "Interface alias", 3: "Port component", 4: "MAC address",
                            5: "Network address", 6: "Interface name", 7: "Local"}
_PORT_SUBTYPES: Final = {1: "Interface alias", 2: "Port component", 3: "MAC address", 4: "Network Address",
                         5: "Interface Name", 6: "Agent circuit ID", 7: "Local"}
_LLDP_CAPS: Final = ((0x01, "Other"), (0x02, "Repeater"), (0x04, "Bridge"), (0x08, "WLAN AP"), (0x10, "Router"),
                     (0x20, "Telephone"), (0x40, "Docsis"), (0x80, "Station Only"))
_AF_NAMES: Final = {0: "Reserved", 1: "IPv4", 2: "IPv6", 3: "NSAP", 4: "HDLC", 5: "BBN 1822", 6: "802",
                    7: "E.163", 8: "E.164", 9: "F.69", 10: "X.121", 11: "Novell IPX", 12: "Appletalk",
                    13: "Decnet IV", 14: "Banyan Vines", 15: "E.164 with NSAP subaddress", 196: "Layer-2 VPN",
                    25: "VPLS"}
_INTF_NUMBERING: Final = {2: "Interface Index", 3: "System Port Number"}
_8021_SUBTYPES: Final = {1: "Port VLAN Id", 2: "Port and Protocol VLAN ID", 3: "VLAN name", 4: "Protocol Identity",
                         7: "Link aggregation", 8: "Congestion Notification", 9: "ETS Configuration",
                         10: "ETS Recommendation", 11: "Priority Flow Control Configuration",
                         12: "Application Priority", 13: "EVB", 14: "CDCP"}
_8023_SUBTYPES: Final = {1: "MAC/PHY configuration/status", 2: "Power via MDI", 3: "Link aggregation",
                         4: "Max frame size"}
_TIA_SUBTYPES: Final = {1: "LLDP-MED Capabilities", 2: "Network policy", 3: "Location identification",
                        4: "Extended power-via-MDI", 5: "Inventory - hardware revision",
                        6: "Inventory - firmware revision", 7: "Inventory - software revision",
                        8: "Inventory - serial number", 9: "Inventory - manufacturer name",
                        10: "Inventory - model name", 11: "Inventory - asset ID"}
_TIA_INVENTORY: Final = {5: "Hardware revision", 6: "Firmware revision", 7: "Software revision", 8: "Serial number",
                         9: "Manufacturer name", 10: "Model name", 11: "Asset ID"}
_AGGREGATION: Final = ((0x01, "supported"), (0x02, "enabled"))
_PROTO_VLAN: Final = ((0x02, "supported"), (0x04, "enabled"))
_AUTONEG: Final = ((0x01, "supported"), (0x02, "enabled"))
_PMD_CAPS: Final = ((1 << 14, "10BASE-T hdx"), (1 << 13, "10BASE-T fdx"), (1 << 12, "100BASE-T4"),
                    (1 << 11, "100BASE-TX hdx"), (1 << 10, "100BASE-TX fdx"), (1 << 9, "100BASE-T2 hdx"),
                    (1 << 8, "100BASE-T2 fdx"), (1 << 7, "Pause for fdx links"), (1 << 6, "Asym PAUSE for fdx"),
                    (1 << 5, "Sym PAUSE for fdx"), (1 << 4, "Asym and Sym PAUSE for fdx"),
                    (1 << 3, "1000BASE-{X LX SX CX} hdx"), (1 << 2, "1000BASE-{X LX SX CX} fdx"),
                    (1 << 1, "1000BASE-T hdx"), (1 << 0, "1000BASE-T fdx"))
_MAU_TYPES: Final = ("Unknown", "AUI", "10BASE_5", "FOIRL", "10BASE2", "10BASET duplex mode unknown", "10BASEFP",
                     "10BASEFB", "10BASEFL duplex mode unknown", "10BROAD36", "10BASET hdx", "10BASET fdx",
                     "10BASEFL hdx", "10BASEFL fdx", "100BASET4", "100BASETX hdx", "100BASETX fdx", "100BASEFX hdx",
                     "100BASEFX fdx", "100BASET2 hdx", "100BASET2 fdx", "1000BASEX hdx", "1000BASEX fdx",
                     "1000BASELX hdx", "1000BASELX fdx", "1000BASESX hdx", "1000BASESX fdx", "1000BASECX hdx",
                     "1000BASECX fdx", "1000BASET hdx", "1000BASET fdx", "10GBASEX", "10GBASELX4", "10GBASER",
                     "10GBASEER", "10GBASELR", "10GBASESR", "10GBASEW", "10GBASEEW", "10GBASELW", "10GBASESW")
_MDI: Final = ((0x01, "PSE"), (0x02, "supported"), (0x04, "enabled"), (0x08, "can be controlled"))
_MDI_PAIRS: Final = {1: "signal", 2: "spare"}
_MDI_CLASSES: Final = {1: "class0", 2: "class1", 3: "class2", 4: "class3", 5: "class4"}
_TIA_CAPS: Final = ((0x01, "LLDP-MED capabilities"), (0x02, "network policy"), (0x04, "location identification"),
                    (0x08, "extended power via MDI-PSE"), (0x10, "extended power via MDI-PD"), (0x20, "Inventory"))
_TIA_DEVICES: Final = {1: "endpoint class 1", 2: "endpoint class 2", 3: "endpoint class 3",
                       4: "network connectivity"}
_TIA_APPS: Final = {1: "voice", 2: "voice signaling", 3: "guest voice", 4: "guest voice signaling",
                    5: "softphone voice", 6: "video conferencing", 7: "streaming video", 8: "video signaling"}
_TIA_POLICY_BITS: Final = ((0x80, "Unknown"), (0x40, "Tagged"), (0x20, "reserved"))
_TIA_LOCATION_FORMATS: Final = {1: "coordinate-based LCI", 2: "civic address LCI", 3: "ECS ELIN"}
_TIA_POWER_SOURCES: Final = {1: "PSE - primary power source", 2: "local - backup power source",
                             3: "PSE+local - reserved"}
_TIA_POWER_PRIORITIES: Final = {1: "critical", 2: "high", 3: "low"}


def _jnp(b: bytes, off: int, n: int, out: list[str]) -> None:
    try:
        out.append(_printjnp(b, off, n))
    except _PartialTruncated as e:
        out.append(e.partial)
        raise


def _network_addr(b: bytes, off: int, ln: int) -> str | None:
    if ln < 1:
        return None
    ln -= 1
    af = _u8(b, off)
    name = _AF_NAMES.get(af, "Unknown")
    if af == 1:
        if ln < 4:
            return None
        return f"AFI {name} ({af}): {_ip4(b, off + 1)}"
    if af == 2:
        if ln < 16:
            return None
        return f"AFI {name} ({af}): {_ip6(b, off + 1)}"
    if af == 6:
        if ln < 6:
            return None
        return f"AFI {name} ({af}): {_mac(b, off + 1)}"
    return f"AFI {name} ({af}), no AF printer !"


def _lldp_8021(b: bytes, t: int, ln: int, out: list[str]) -> bool:
    if ln < 4:
        return False
    sub = _u8(b, t + 3)
    out.append(f"\n\t  {_8021_SUBTYPES.get(sub, 'unknown')} Subtype ({sub})")
    if sub == 1:
        if ln < 6:
            return False
        out.append(f"\n\t    port vlan id (PVID): {_u16(b, t + 4)}")
    elif sub == 2:
        if ln < 7:
            return False
        flags = _u8(b, t + 4)
        out.append(f"\n\t    port and protocol vlan id (PPVID): {_u16(b, t + 5)}, flags "
                   f"[{bittok(_PROTO_VLAN, flags)}] (0x{flags:02x})")
    elif sub == 3:
        if ln < 6:
            return False
        out.append(f"\n\t    vlan id (VID): {_u16(b, t + 4)}")
        if ln < 7:
            return False
        sublen = _u8(b, t + 6)
        if ln < 7 + sublen:
            return False
        out.append("\n\t    vlan name: ")
        _jnp(b, t + 7, sublen, out)
    elif sub == 4:
        if ln < 5:
            return False
        sublen = _u8(b, t + 4)
        if ln < 5 + sublen:
            return False
        out.append("\n\t    protocol identity: ")
        _jnp(b, t + 5, sublen, out)
    elif sub == 7:
        if ln < 9:
            return False
        out.append(f"\n\t    aggregation status [{bittok(_AGGREGATION, _u8(b, t + 4))}], aggregation port ID "
                   f"{_u32(b, t + 5)}")
    elif sub == 8:
        if ln < 6:
            return False
        for label, off in (("Pre-Priority CNPV Indicator", 4), ("Pre-Priority Ready Indicator", 5)):
            v = _u8(b, t + off)
            out.append(f"\n\t    {label}")
            out.append("\n\t     Priority : 0  1  2  3  4  5  6  7")
            out.append("\n\t     Value    : " + "".join(f"{(v >> i) & 1:<2d} " for i in range(8)))
    elif sub in (9, 10):
        if ln < 25:
            return False
        v = _u8(b, t + 4)
        if sub == 9:
            out.append(f"\n\t    Willing:{v >> 7}, CBS:{(v >> 6) & 0x02}, RES:{(v >> 3) & 0x07}, Max TCs:{v & 0x07}")
        else:
            out.append(f"\n\t    RES: {v}")
        p = [_u8(b, t + 5 + i) for i in range(4)]
        out.append("\n\t    Priority Assignment Table")
        out.append("\n\t     Priority : 0   1   2   3   4   5   6   7")
        out.append("\n\t     Value    : " + " ".join(f"{x:<3d}" for c in p for x in (c >> 4, c & 0x0F)))
        bw = [_u8(b, t + 9 + i) for i in range(8)]
        out.append("\n\t    TC Bandwidth Table")
        out.append("\n\t     TC%   : 0   1   2   3   4   5   6   7")
        out.append("\n\t     Value : " + " ".join(f"{x:<3d}" for x in bw))
        tsa = [_u8(b, t + 17 + i) for i in range(8)]
        out.append("\n\t    TSA Assignment Table")
        out.append("\n\t     Traffic Class: 0   1   2   3   4   5   6   7")
        out.append("\n\t     Value        : " + " ".join(f"{x:<3d}" for x in tsa))
    elif sub == 11:
        if ln < 6:
            return False
        v = _u8(b, t + 4)
        out.append(f"\n\t    Willing: {v >> 7}, MBC: {(v >> 6) & 1}, RES: {(v >> 4) & 3}, PFC cap:{v & 0x0F} ")
        out.append("\n\t    PFC Enable")
        v = _u8(b, t + 5)
        out.append("\n\t     Priority : 0  1  2  3  4  5  6  7")
        out.append("\n\t     Value    : " + "".join(f"{(v >> i) & 1:<2d} " for i in range(8)))
    elif sub == 12:
        if ln < 5:
            return False
        out.append(f"\n\t    RES: {_u8(b, t + 4)}")
        if ln <= 5:
            return False
        sublen = ln - 5
        if sublen % 3:
            return False
        out.append("\n\t    Application Priority Table")
        for i in range(0, sublen, 3):
            v = _u8(b, t + i + 5)
            out.append(f"\n\t      Priority: {v >> 5}, RES: {(v >> 3) & 3}, Sel: {v & 7}, Protocol ID: "
                       f"{_u16(b, t + i + 6)}")
    elif sub == 13:
        if ln < 9:
            return False
        out.append("\n\t    EVB Bridge Status")
        v = _u8(b, t + 4)
        out.append(f"\n\t      RES: {v >> 3}, BGID: {(v >> 2) & 1}, RRCAP: {(v >> 1) & 1}, RRCTR: {v & 1}")
        out.append("\n\t    EVB Station Status")
        v = _u8(b, t + 5)
        out.append(f"\n\t      RES: {v >> 4}, SGID: {(v >> 3) & 1}, RRREQ: {(v >> 2) & 1},RRSTAT: {v & 3}")
        v = _u8(b, t + 6)
        out.append(f"\n\t    R: {v >> 5}, RTE: {v & 0x1F}, ")
        v = _u8(b, t + 7)
        mode = {0: "Not Supported", 1: "EVB Bridge", 2: "EVB Station", 3: "Reserved for future Standardization"}
        out.append(f"EVB Mode: {mode[v >> 6]} [{v >> 6}]")
        out.append(f"\n\t    ROL: {(v >> 5) & 1}, RWD: {v & 0x1F}, ")
        v = _u8(b, t + 8)
        out.append(f"RES: {v >> 6}, ROL: {(v >> 5) & 1}, RKA: {v & 0x1F}")
    elif sub == 14:
        if ln < 8:
            return False
        v = _u8(b, t + 4)
        out.append(f"\n\t    Role: {v >> 7}, RES: {(v >> 4) & 7}, Scomp: {(v >> 3) & 1} ")
        out.append(f"ChnCap: {_u16(b, t + 6) & 0x0FFF}")
        sublen = ln - 8
        if sublen % 3:
            return False
        for i in range(0, sublen, 3):
            v = _u24(b, t + i + 8)
            out.append(f"\n\t    SCID: {v >> 12}, SVID: {v & 0xFFF}")
    else:
        return True
    return False


def _lldp_8023(b: bytes, t: int, ln: int, out: list[str]) -> bool:
    if ln < 4:
        return False
    sub = _u8(b, t + 3)
    out.append(f"\n\t  {_8023_SUBTYPES.get(sub, 'unknown')} Subtype ({sub})")
    if sub == 1:
        if ln < 9:
            return False
        an = _u8(b, t + 4)
        out.append(f"\n\t    autonegotiation [{bittok(_AUTONEG, an)}] (0x{an:02x})")
        pmd = _u16(b, t + 5)
        out.append(f"\n\t    PMD autoneg capability [{bittok(_PMD_CAPS, pmd, 'unknown')}] (0x{pmd:04x})")
        mau = _u16(b, t + 7)
        out.append(f"\n\t    MAU type {_MAU_TYPES[mau] if mau < len(_MAU_TYPES) else 'unknown'} (0x{mau:04x})")
    elif sub == 2:
        if ln < 7:
            return False
        out.append(f"\n\t    MDI power support [{bittok(_MDI, _u8(b, t + 4))}], power pair "
                   f"{_MDI_PAIRS.get(_u8(b, t + 5), 'unknown')}, power class "
                   f"{_MDI_CLASSES.get(_u8(b, t + 6), 'unknown')}")
    elif sub == 3:
        if ln < 9:
            return False
        out.append(f"\n\t    aggregation status [{bittok(_AGGREGATION, _u8(b, t + 4))}], aggregation port ID "
                   f"{_u32(b, t + 5)}")
    elif sub == 4:
        if ln < 6:
            return False
        out.append(f"\n\t    MTU size {_u16(b, t + 4)}")
    else:
        return True
    return False


def _lldp_iana(b: bytes, t: int, ln: int, out: list[str]) -> bool:
    if ln < 8:
        return False
    sub = _u8(b, t + 3)
    out.append(f"\n\t  {'MUD-URL' if sub == 1 else 'unknown'} Subtype ({sub})")
    if sub != 1:
        return True
    out.append("\n\t  MUD-URL=")
    try:
        out.append(_printn(b, t + 4, ln - 4))
    except _PartialTruncated as e:
        out.append(e.partial)
        raise
    return False


def _latlon(b: bytes, off: int) -> int:
    return (_u8(b, off) & 0x3) << 32 | _u32(b, off + 1)


def _lldp_tia(b: bytes, t: int, ln: int, out: list[str]) -> bool:
    if ln < 4:
        return False
    sub = _u8(b, t + 3)
    out.append(f"\n\t  {_TIA_SUBTYPES.get(sub, 'unknown')} Subtype ({sub})")
    if sub == 1:
        if ln < 7:
            return False
        caps = _u16(b, t + 4)
        out.append(f"\n\t    Media capabilities [{bittok(_TIA_CAPS, caps)}] (0x{caps:04x})")
        dev = _u8(b, t + 6)
        out.append(f"\n\t    Device type [{_TIA_DEVICES.get(dev, 'unknown')}] (0x{dev:02x})")
    elif sub == 2:
        if ln < 8:
            return False
        app = _u8(b, t + 4)
        out.append(f"\n\t    Application type [{_TIA_APPS.get(app, 'none')}] (0x{app:02x})")
        out.append(f", Flags [{bittok(_TIA_POLICY_BITS, _u8(b, t + 5))}]")
        out.append(f"\n\t    Vlan id {(_u16(b, t + 5) & 0x1FFE) >> 1}")
        v = _u16(b, t + 6)
        out.append(f", L2 priority {(v & 0x01FF) >> 6}")
        out.append(f", DSCP value {v & 0x003F}")
    elif sub == 3:
        if ln < 5:
            return False
        fmt = _u8(b, t + 4)
        out.append(f"\n\t    Location data format {_TIA_LOCATION_FORMATS.get(fmt, 'unknown')} (0x{fmt:02x})")
        if fmt == 1:
            if ln < 21:
                return False
            out.append(f"\n\t    Latitude resolution {_u8(b, t + 5) >> 2}, latitude value {_latlon(b, t + 5)}")
            out.append(f"\n\t    Longitude resolution {_u8(b, t + 10) >> 2}, longitude value {_latlon(b, t + 10)}")
            alt = _u8(b, t + 15) >> 4
            out.append(f"\n\t    Altitude type {({1: 'meters', 2: 'floors'}).get(alt, 'unknown')} ({alt})")
            out.append(f"\n\t    Altitude resolution {(_u16(b, t + 15) >> 6) & 0x3F}, altitude value "
                       f"0x{_u32(b, t + 16) & 0x3FFFFFFF:x}")
            datum = _u8(b, t + 20)
            names = {1: "World Geodesic System 1984", 2: "North American Datum 1983 (NAVD88)",
                     3: "North American Datum 1983 (MLLW)"}
            out.append(f"\n\t    Datum {names.get(datum, 'unknown')} (0x{datum:02x})")
        elif fmt == 2:
            if ln < 6:
                return False
            lci_len = _u8(b, t + 5)
            if lci_len < 3 or ln < 7 + lci_len:
                return False
            what = _u8(b, t + 6)
            whats = {0: "location of DHCP server",
                     1: "location of the network element believed to be closest to the client",
                     2: "location of the client"}
            out.append(f"\n\t    LCI length {lci_len}, LCI what {whats.get(what, 'unknown')} (0x{what:02x}), "
                       "Country-code ")
            _jnp(b, t + 7, 2, out)
            lci_len -= 3
            p = t + 9
            catypes = {1: "national subdivisions (state,canton,region,province,prefecture)",
                       2: "county, parish, gun, district", 3: "city, township, shi",
                       4: "city division, borough, city district, ward chou", 5: "neighborhood, block", 6: "street"}
            while lci_len > 0:
                if lci_len < 2:
                    return False
                ca_type, ca_len = _u8(b, p), _u8(b, p + 1)
                p += 2
                lci_len -= 2
                out.append(f"\n\t      CA type '{catypes.get(ca_type, 'unknown')}' ({ca_type}), length {ca_len}: ")
                if ca_type == 0 or ca_len == 0 or lci_len < ca_len:
                    return False
                _jnp(b, p, ca_len, out)
                p += ca_len
                lci_len -= ca_len
        elif fmt == 3:
            out.append("\n\t    ECS ELIN id ")
            _jnp(b, t + 5, ln - 5, out)
        else:
            out.append("\n\t    Location ID ")
            out.append(hex_print(b, t + 5, "\n\t      ", ln - 5))
    elif sub == 4:
        if ln < 7:
            return False
        v = _u8(b, t + 4)
        # tcpdump tests (v & (0xC0 >> 6)), i.e. v & 0x03, for the device type
        out.append(f"\n\t    Power type [{'PD device' if v & 0x03 else 'PSE device'}]")
        out.append(f", Power source [{_TIA_POWER_SOURCES.get((v & 0x30) >> 4, 'none')}]")
        out.append(f"\n\t    Power priority [{_TIA_POWER_PRIORITIES.get(v & 0x0F, 'none')}] (0x{v & 0x0F:02x})")
        power = _u16(b, t + 5)
        out.append(f", Power {power / 10:.1f} Watts" if power < 1024 else f", Power {power} (Reserved)")
    elif 5 <= sub <= 11:
        out.append(f"\n\t  {_TIA_INVENTORY[sub]} ")
        _jnp(b, t + 4, ln - 4, out)
    else:
        return True
    return False


def _lldp_dcbx(b: bytes, t: int, ln: int, verbose: int, out: list[str]) -> bool:
    if ln < 4:
        return False
    sub = _u8(b, t + 3)
    names = {1: "DCB Capability Exchange Protocol Rev 1", 2: "DCB Capability Exchange Protocol Rev 1.01"}
    out.append(f"\n\t  {names.get(sub, 'unknown')} Subtype ({sub})")
    if sub == 1:
        return True
    p = t + 4
    rest = ln - 4
    hexdump = False
    while rest >= 2:
        if p + 2 > len(b):
            break
        tlv = _u16(b, p)
        ttype, tlen = tlv >> 9, tlv & 0x1FF
        hexdump = False
        rest -= 2
        p += 2
        if not ttype or not tlen or p + tlen > len(b) or rest < tlen:
            break  # tcpdump ends the DCBX list quietly here
        if ttype in (2, 3, 4):
            if tlen < {2: 17, 3: 6, 4: 4}[ttype]:
                break
            label = {2: "Feature - Priority Group", 3: "Feature - Priority Flow Control",
                     4: "Feature - Application"}[ttype]
            out.append(f"\n\t    {label} (type 0x{ttype:x}, length {tlen})")
            out.append(f"\n\t      Oper_Version: {_u8(b, p)}")
            out.append(f"\n\t      Max_Version: {_u8(b, p + 1)}")
            v = _u8(b, p + 2)
            out.append(f"\n\t      Info block(0x{v:02X}): ")
            out.append(f"Enable bit: {1 if v & 0x80 else 0}, Willing bit: {1 if v & 0x40 else 0}, "
                       f"Error Bit: {1 if v & 0x20 else 0}")
            out.append(f"\n\t      SubType: {_u8(b, p + 3)}")
            if ttype == 2:
                out.append("\n\t      Priority Allocation")
                pg = _u32(b, p + 4)
                for i in range(8):
                    out.append(f"\n\t          PgId_{i}: {(pg >> (28 - 4 * i)) & 0xF}")
                out.append("\n\t      Priority Group Allocation")
                for i in range(8):
                    out.append(f"\n\t          Pg percentage[{i}]: {_u8(b, p + 8 + i)}")
                out.append(f"\n\t      NumTCsSupported: {_u8(b, p + 16)}")
            elif ttype == 3:
                v = _u8(b, p + 4)
                out.append(f"\n\t      PFC Config (0x{v:02X})")
                for i in range(8):
                    out.append(f"\n\t          Priority Bit {i}: {'Enabled' if v & (1 << i) else 'Disabled'}")
                out.append(f"\n\t      NumTCPFCSupported: {_u8(b, p + 5)}")
            else:
                left = tlen - 4
                m = p + 4
                while left >= 6:
                    out.append("\n\t      Application Value")
                    out.append(f"\n\t          Application Protocol ID: 0x{_u16(b, m):04x}")
                    u = _u24(b, m + 2)
                    out.append(f"\n\t          SF (0x{u >> 22:x}) Application Protocol ID is "
                               f"{'Socket Number' if u >> 22 else 'L2 EtherType'}")
                    out.append(f"\n\t          OUI: 0x{u & 0x3FFFFF:06x}")
                    out.append(f"\n\t          User Priority Map: 0x{_u8(b, m + 5):02x}")
                    left -= 6
                    m += 6
        elif ttype == 1:
            if tlen < 10:
                break
            out.append(f"\n\t    Control - Protocol Control (type 0x1, length {tlen})")
            out.append(f"\n\t      Oper_Version: {_u8(b, p)}")
            out.append(f"\n\t      Max_Version: {_u8(b, p + 1)}")
            out.append(f"\n\t      Sequence Number: {_u32(b, p + 2)}")
            out.append(f"\n\t      Acknowledgement Number: {_u32(b, p + 6)}")
        else:
            hexdump = True
        if verbose > 1 or (verbose and hexdump):
            out.append(hex_print(b, p, "\n\t    ", tlen))
        rest -= tlen
        p += tlen
    return hexdump


def lldp_text(payload: bytes, length: int, verbose: int) -> str:
    """The text for an LLDP frame (ethertype 0x88cc) after the ethertype, e.g. ``"LLDP, length 46: host1"``.

    ``payload`` is what follows the ethertype, as captured; ``length`` its length on the wire (the frame's
    wire length less the Ethernet header, padding included, as tcpdump counts it). Without -v only the
    system name follows the length; with -v every TLV is listed on its own ``"\\n\\t"`` line, and with -vv
    each also as hex.
    """
    b = payload
    out: list[str] = [f"LLDP, length {length}"]
    t = 0
    rest = length
    try:
        while rest >= 2:
            tlv = _u16(b, t)
            ttype, tlen = tlv >> 9, tlv & 0x1FF
            hexdump = False
            rest -= 2
            t += 2
            if verbose:
                out.append(f"\n\t{_LLDP_TLVS.get(ttype, 'Unknown')} TLV ({ttype}), length {tlen}")
            if not ttype or not tlen:
                break
            _need(b, t, tlen)
            if rest < tlen:
                raise _Truncated
            if ttype in (1, 2):
                if verbose:
                    if tlen < 2:
                        raise _Truncated
                    sub = _u8(b, t)
                    names = _CHASSIS_SUBTYPES if ttype == 1 else _PORT_SUBTYPES
                    out.append(f"\n\t  Subtype {names.get(sub, 'Unknown')} ({sub}): ")
                    mac_sub = 4 if ttype == 1 else 3
                    net_sub = 5 if ttype == 1 else 4
                    if sub == mac_sub:
                        if tlen < 7:
                            raise _Truncated
                        out.append(_mac(b, t + 1))
                    elif sub == net_sub:
                        addr = _network_addr(b, t + 1, tlen - 1)
                        if addr is None:
                            raise _Truncated
                        out.append(addr)
                    elif 1 <= sub <= 7:
                        _jnp(b, t + 1, tlen - 1, out)
                    else:
                        hexdump = True
            elif ttype == 3:
                if verbose:
                    if tlen < 2:
                        raise _Truncated
                    out.append(f": TTL {_u16(b, t)}s")
            elif ttype == 4:
                if verbose:
                    out.append(": ")
                    _jnp(b, t, tlen, out)
            elif ttype == 5:
                out.append(": ")
                _jnp(b, t, tlen, out)
            elif ttype == 6:
                if verbose:
                    out.append("\n\t  ")
                    _jnp(b, t, tlen, out)
            elif ttype == 7:
                if verbose:
                    if tlen < 4:
                        raise _Truncated
                    cap, ena = _u16(b, t), _u16(b, t + 2)
                    out.append(f"\n\t  System  Capabilities [{bittok(_LLDP_CAPS, cap)}] (0x{cap:04x})")
                    out.append(f"\n\t  Enabled Capabilities [{bittok(_LLDP_CAPS, ena)}] (0x{ena:04x})")
            elif ttype == 8:
                if verbose and not _lldp_mgmt(b, t, tlen, out):
                    raise _Truncated
            elif ttype == 127:
                if verbose:
                    if tlen < 3:
                        raise _Truncated
                    oui = _u24(b, t)
                    out.append(f": OUI {OUI_NAMES.get(oui, 'Unknown')} (0x{oui:06x})")
                    if oui == 0x0080C2:
                        hexdump = _lldp_8021(b, t, tlen, out)
                    elif oui == 0x00120F:
                        hexdump = _lldp_8023(b, t, tlen, out)
                    elif oui == 0x00005E:
                        hexdump = _lldp_iana(b, t, tlen, out)
                    elif oui == 0x0012BB:
                        hexdump = _lldp_tia(b, t, tlen, out)
                    elif oui == 0x001B21:
                        hexdump = _lldp_dcbx(b, t, tlen, verbose, out)
                    else:
                        hexdump = True
            else:
                hexdump = True
            if verbose > 1 or (verbose and hexdump):
                out.append(hex_print(b, t, "\n\t  ", tlen))
            rest -= tlen
            t += tlen
    except _Truncated:
        out.append(" [|lldp]")
    return "".join(out)


def _lldp_mgmt(b: bytes, t: int, ln: int, out: list[str]) -> bool:
    if ln < 1:
        return False
    alen = _u8(b, t)
    t += 1
    ln -= 1
    if ln < alen:
        return False
    addr = _network_addr(b, t, alen)
    if addr is None:
        return False
    out.append(f"\n\t  Management Address length {alen}, {addr}")
    t += alen
    ln -= alen
    if ln < 5:
        return False
    sub = _u8(b, t)
    out.append(f"\n\t  {_INTF_NUMBERING.get(sub, 'Unknown')} Interface Numbering ({sub}): {_u32(b, t + 1)}")
    t += 5
    ln -= 5
    if ln:
        oid_len = _u8(b, t)
        if ln < 1 + oid_len:
            return False
        if oid_len:
            out.append(f"\n\t  OID length {oid_len}")
            _jnp(b, t + 1, oid_len, out)
    return True

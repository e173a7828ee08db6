"""What flow metering needs from one packet, read straight from its bytes: the 5-tuple, VLAN, lengths, TCP flags.

:func:`flow_fields` slices the headers at their offsets, without building layer objects (``afpacket.decode``
does that, at several times the cost). It understands the link types a capture or a savefile gives a
flow meter: Ethernet (with 802.1Q/802.1ad tags), Linux cooked v1 and v2, raw IP, and BSD/OpenBSD loopback; then
IPv4 (options, fragments) or IPv6 (hop-by-hop, routing, destination options, fragment and AH headers);
then TCP, UDP, SCTP, ICMP and ICMPv6.

Lengths come from the IP header, not from the bytes captured, so a short snapshot (``-s 96``) still counts
every byte the packet carried: ``ip_len`` is the IP datagram's length (IPv4 total length, IPv6 40 + payload
length) and ``payload`` what follows the transport header (a fragment after the first: what follows the IP
header). Ports of ICMP/ICMPv6 packets are the type and the code, as Zeek reports them.
"""

from __future__ import annotations

from typing import Final

from ..savefile.linktype import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMP6: Final = 58
SCTP: Final = 132
_PORTED = frozenset((TCP, UDP, SCTP))
_V6_SKIP = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options: (len + 1) * 8 bytes

#: (vlan, proto, src address, dst address, sport, dport, ip_len, payload, tcp_flags)
Fields = tuple[int, int, bytes, bytes, int, int, int, int, int]


def flow_fields(data: bytes, linktype: int = LINKTYPE_ETHERNET, vlan_tci: int = 0) -> Fields | None:
    """The flow fields of one packet (see :data:`Fields`), or None when it is not IPv4/IPv6 or too short
    to hold its IP header. ``vlan_tci`` is a tag the kernel stripped (a live capture's metadata); a tag
    still in the frame is read from it."""
    vlan = vlan_tci & 0xFFF
    try:
        if linktype == LINKTYPE_ETHERNET:
            et = data[12] << 8 | data[13]
            off = 14
            while et == 0x8100 or et == 0x88A8:
                vlan = (data[off] << 8 | data[off + 1]) & 0xFFF
                et = data[off + 2] << 8 | data[off + 3]
                off += 4
            if et == 0x0800:
                return _ipv4(data, off, vlan)
            if et == 0x86DD:
                return _ipv6(data, off, vlan)
            return None
        if linktype in (LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
            off, at = (16, 14) if linktype == LINKTYPE_LINUX_SLL else (20, 0)
            et = data[at] << 8 | data[at + 1]
            if et == 0x0800:
                return _ipv4(data, off, vlan)
            if et == 0x86DD:
                return _ipv6(data, off, vlan)
            return None
        if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
            version = data[0] >> 4
            return _ipv4(data, 0, vlan) if version == 4 else _ipv6(data, 0, vlan) if version == 6 else None
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            # NULL: the writer's byte order (a small number: its non-zero byte tells); LOOP: network order
            family = int.from_bytes(data[:4], "little" if data[0] and linktype == LINKTYPE_NULL else "big")
            if family == 2:
                return _ipv4(data, 4, vlan)
            if family in (24, 28, 30):  # AF_INET6 on the BSDs, FreeBSD, macOS
                return _ipv6(data, 4, vlan)
            return None
    except IndexError:
        return None
    return None


def _ipv4(d: bytes, o: int, vlan: int) -> Fields | None:
    if d[o] >> 4 != 4:
        return None
    ihl = (d[o] & 15) * 4
    if ihl < 20:  # a header length below 5 words: not a valid IPv4 header
        return None
    total = d[o + 2] << 8 | d[o + 3]
    proto = d[o + 9]
    src, dst = d[o + 12:o + 16], d[o + 16:o + 20]
    if len(dst) < 4:
        return None
    if (d[o + 6] & 0x1F) | d[o + 7]:  # a fragment after the first: no transport header here
        return vlan, proto, src, dst, 0, 0, total, max(total - ihl, 0), 0
    return _transport(d, o + ihl, proto, src, dst, total, total - ihl, vlan)


def _ipv6(d: bytes, o: int, vlan: int) -> Fields | None:
    if d[o] >> 4 != 6:
        return None
    plen = d[o + 4] << 8 | d[o + 5]
    nxt = d[o + 6]
    src, dst = d[o + 8:o + 24], d[o + 24:o + 40]
    if len(dst) < 16:
        return None
    total = plen + 40
    at = o + 40
    left = plen
    while True:
        if nxt in _V6_SKIP:
            n = (d[at + 1] + 1) * 8
        elif nxt == 51:  # AH: (len + 2) 32-bit words
            n = (d[at + 1] + 2) * 4
        elif nxt == 44:  # fragment header: 8 bytes; a fragment after the first has no transport header
            if (d[at + 2] << 8 | d[at + 3]) & 0xFFF8:
                return vlan, d[at], src, dst, 0, 0, total, max(left - 8, 0), 0
            n = 8
        else:
            break
        nxt = d[at]
        at += n
        left -= n
    return _transport(d, at, nxt, src, dst, total, left, vlan)


def _transport(d: bytes, t: int, proto: int, src: bytes, dst: bytes, total: int, left: int, vlan: int) -> Fields:
    """The ports (ICMP: type and code), the payload after the transport header, and TCP's flags. A header
    cut off by the snapshot gives ports 0 and the whole IP payload."""
    left = max(left, 0)
    if len(d) < t + 4:
        return vlan, proto, src, dst, 0, 0, total, left, 0
    if proto == TCP:
        if len(d) < t + 14:
            return vlan, proto, src, dst, d[t] << 8 | d[t + 1], d[t + 2] << 8 | d[t + 3], total, left, 0
        hl = (d[t + 12] >> 4) * 4
        return (vlan, proto, src, dst, d[t] << 8 | d[t + 1], d[t + 2] << 8 | d[t + 3], total, max(left - hl, 0),
                d[t + 13])
    if proto == UDP:
        return vlan, proto, src, dst, d[t] << 8 | d[t + 1], d[t + 2] << 8 | d[t + 3], total, max(left - 8, 0), 0
    if proto in (ICMP, ICMP6):
        return vlan, proto, src, dst, d[t], d[t + 1], total, max(left - 8, 0), 0
    if proto == SCTP:
        return vlan, proto, src, dst, d[t] << 8 | d[t + 1], d[t + 2] << 8 | d[t + 3], total, max(left - 12, 0), 0
    return vlan, proto, src, dst, 0, 0, total, left, 0


__all__ = ["ICMP", "ICMP6", "SCTP", "TCP", "UDP", "Fields", "flow_fields"]

"""One-line packet summaries in the style of ``tcpdump -n`` (``-e`` with ``link=True``).

Enough of Ethernet, 802.1Q/802.1ad, Linux cooked headers (SLL, SLL2), ARP, IPv4, IPv6, TCP, UDP and
ICMP to tell what a packet is; anything else is named by its type. The output follows tcpdump 4.99 so
``afpacket read`` and ``tcpdump -r`` can be compared line by line, with two simplifications: TCP
sequence numbers are absolute (tcpdump ``-S``) and TCP options and application protocols are not
decoded. Garbage never raises: a header cut short prints tcpdump's ``[|proto]`` marker.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Final, Literal

from .savefile.linktype import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

Bytes = bytes | bytearray | memoryview

ETHERTYPE_NAMES: Final = {
    0x0800: "IPv4",
    0x0806: "ARP",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x88A8: "802.1Q-QinQ",
    0x8847: "MPLS unicast",
    0x88CC: "LLDP",
}
_VLAN_TPIDS: Final = frozenset({0x8100, 0x88A8, 0x9100})
# Linux sll_pkttype as tcpdump prints it for cooked captures.
_SLL_DIRECTION: Final = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}
_TCP_FLAGS: Final = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"), (0x40, "E"),
                     (0x80, "W"))
_ICMP_TYPES: Final = {0: "echo reply", 3: "unreachable", 5: "redirect", 8: "echo request", 11: "time exceeded",
                      13: "time stamp query", 14: "time stamp reply"}
_ICMP6_TYPES: Final = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded in-transit",
                       128: "echo request", 129: "echo reply", 133: "router solicitation",
                       134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement",
                       143: "multicast listener report v2"}
_IPV6_EXTENSIONS: Final = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options


def _mac(b: Bytes) -> str:
    return ":".join(f"{x:02x}" for x in bytes(b))


def _ethertype_name(ethertype: int) -> str:
    return f"{ETHERTYPE_NAMES.get(ethertype, 'Unknown')} (0x{ethertype:04x})"


def format_time(ts_ns: int, precision: str = "micro") -> str:
    """``HH:MM:SS.ffffff`` (or 9 digits for ``"nano"``) in local time, as tcpdump prints it."""
    sec, frac = divmod(ts_ns, 1_000_000_000)
    clock = time.strftime("%H:%M:%S", time.localtime(sec))
    if precision == "nano":
        return f"{clock}.{frac:09d}"
    return f"{clock}.{frac // 1000:06d}"


def packet_line(
    ts_ns: int, data: Bytes, wire_len: int, linktype: int, precision: str = "micro", *, link: bool = False
) -> str:
    """The whole line tcpdump prints for a packet: the time, then :func:`summarize`."""
    return f"{format_time(ts_ns, precision)} {summarize(data, linktype, link=link, wire_len=wire_len)}"


def summarize(data: Bytes, linktype: int, *, link: bool = False, wire_len: int | None = None) -> str:
    """What tcpdump -n prints after the timestamp (with ``link``, what tcpdump -e -n prints)."""
    data = bytes(data)
    length = len(data) if wire_len is None else wire_len
    try:
        if linktype == LINKTYPE_ETHERNET:
            return _ethernet(data, length, link)
        if linktype == LINKTYPE_LINUX_SLL:
            return _sll(data, length, link)
        if linktype == LINKTYPE_LINUX_SLL2:
            return _sll2(data, length, link)
        if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            return _null(data, length, link, "little" if linktype == LINKTYPE_NULL else "big")
        if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
            version = data[0] >> 4 if data else 0
            return _network(0x86DD if version == 6 else 0x0800, data, length, False)
    except (IndexError, struct.error, ValueError):
        # Every decoder checks lengths first; this is the last guard of "never raises on garbage".
        return "[|packet]"
    return f"unknown link-type {linktype}, length {length}"


def _ethernet(data: bytes, length: int, link: bool) -> str:
    if len(data) < 14:
        return "[|ether]"
    (ethertype,) = struct.unpack_from("!H", data, 12)
    prefix = f"{_mac(data[6:12])} > {_mac(data[0:6])}, "
    if ethertype <= 1500:  # an 802.3 length field: LLC follows
        return f"{prefix}802.3, length {length}" if link else f"{prefix}802.3, length {length}: LLC"
    if ethertype not in ETHERTYPE_NAMES:
        return f"{prefix}ethertype {_ethertype_name(ethertype)}, length {length}"
    if link:
        prefix += f"ethertype {_ethertype_name(ethertype)}, length {length}: "
        return prefix + _ethertype_payload(ethertype, data[14:], length - 14, True)
    return _ethertype_payload(ethertype, data[14:], length - 14, False)


def _ethertype_payload(ethertype: int, data: bytes, length: int, link: bool) -> str:
    """The frame after its ethertype; with ``link``, VLAN tags are shown and the "IP " word dropped."""
    while ethertype in _VLAN_TPIDS:
        if len(data) < 4:
            return "[|vlan]"
        tci, ethertype = struct.unpack_from("!HH", data)
        if link:
            link_text = f"vlan {tci & 0x0FFF}, p {tci >> 13}, "
            if tci & 0x1000:
                link_text += "DEI, "
            rest = _ethertype_payload(ethertype, data[4:], length - 4, True)
            return f"{link_text}ethertype {_ethertype_name(ethertype)}, {rest}"
        data, length = data[4:], length - 4
    return _network(ethertype, data, length, link)


def _network(ethertype: int, data: bytes, length: int, link: bool) -> str:
    if ethertype == 0x0800:
        return ("" if link else "IP ") + _ipv4(data)
    if ethertype == 0x86DD:
        return ("" if link else "IP6 ") + _ipv6(data)
    if ethertype == 0x0806:
        return ("" if link else "ARP, ") + _arp(data, length)
    return f"ethertype {_ethertype_name(ethertype)}, length {length}"


def _sll(data: bytes, length: int, link: bool) -> str:
    if len(data) < 16:
        return "[|sll]"
    pkttype, _hatype, halen, addr, protocol = struct.unpack_from("!HHH8sH", data)
    text = ""
    if link:
        direction = _SLL_DIRECTION.get(pkttype, f"pkttype {pkttype}")
        text = f"{direction:>3} {_mac(addr[: min(halen, 8)])} ethertype {_ethertype_name(protocol)}, length {length}: "
    return text + _ethertype_payload(protocol, data[16:], length - 16, link)


def _sll2(data: bytes, length: int, link: bool) -> str:
    if len(data) < 20:
        return "[|sll2]"
    protocol, _, ifindex, _hatype, pkttype, halen, addr = struct.unpack_from("!HHIHBB8s", data)
    direction = _SLL_DIRECTION.get(pkttype, f"pkttype {pkttype}")
    text = f"ifindex {ifindex} {direction} "
    if link:
        text += f"{_mac(addr[: min(halen, 8)])} ethertype {_ethertype_name(protocol)}, length {length}: "
    return text + _ethertype_payload(protocol, data[20:], length - 20, link)


def _null(data: bytes, length: int, link: bool, order: Literal["little", "big"]) -> str:
    if len(data) < 4:
        return "[|null]"
    family = int.from_bytes(data[:4], order)
    ethertype = 0x0800 if family == 2 else 0x86DD if family in (10, 24, 28, 30) else 0
    text = f"AF {'IPv4' if family == 2 else 'IPv6' if ethertype else 'Unknown'} ({family}), length {length}: "
    if not ethertype:
        return text
    return (text if link else "") + _network(ethertype, data[4:], length - 4, link)


def _arp(data: bytes, length: int) -> str:
    if len(data) < 8:
        return "[|arp]"
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", data)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return f"htype {htype}, ptype 0x{ptype:04x}, op {op}, length {length}"
    if len(data) < 28:
        return "[|arp]"
    sha, spa, tha, tpa = data[8:14], socket.inet_ntoa(data[14:18]), data[18:24], socket.inet_ntoa(data[24:28])
    if op == 1:
        target = f"{tpa} ({_mac(tha)})" if any(tha) else tpa
        return f"Request who-has {target} tell {spa}, length {length}"
    if op == 2:
        return f"Reply {spa} is-at {_mac(sha)}, length {length}"
    return f"op {op} {spa} > {tpa}, length {length}"


def _ipv4(data: bytes) -> str:
    if len(data) < 20 or data[0] >> 4 != 4 or (data[0] & 0x0F) < 5:
        return " [|ip]"
    ihl = (data[0] & 0x0F) * 4
    total_len, frag, proto = struct.unpack_from("!H2xHxB", data, 2)
    src, dst = socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])
    if len(data) < ihl:
        return f"{src} > {dst}: [|ip]"
    payload_len = total_len - ihl
    if frag & 0x1FFF:  # a later fragment: no transport header in it
        return f"{src} > {dst}: ip-proto-{proto}"
    return _transport(proto, src, dst, data[ihl:total_len], payload_len, icmp=1)


def _ipv6(data: bytes) -> str:
    if len(data) < 40:
        return " [|ip6]"
    payload_len, next_header = struct.unpack_from("!HB", data, 4)
    src = socket.inet_ntop(socket.AF_INET6, data[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, data[24:40])
    payload = data[40 : 40 + payload_len]
    while next_header in _IPV6_EXTENSIONS or next_header == 44:
        if len(payload) < 8:
            return f"{src} > {dst}: [|ip6]"
        ext_len = 8 if next_header == 44 else (payload[1] + 1) * 8
        next_header = payload[0]
        payload, payload_len = payload[ext_len:], payload_len - ext_len
    return _transport(next_header, src, dst, payload, payload_len, icmp=58)


def _transport(proto: int, src: str, dst: str, seg: bytes, length: int, icmp: int) -> str:
    if proto == 17:
        if len(seg) < 8:
            return f"{src} > {dst}: [|udp]"
        sport, dport, ulen = struct.unpack_from("!HHH", seg)
        return f"{src}.{sport} > {dst}.{dport}: UDP, length {ulen - 8}"
    if proto == 6:
        return _tcp(src, dst, seg, length)
    if proto == icmp == 1:
        return f"{src} > {dst}: ICMP {_icmp(seg, length, _ICMP_TYPES)}"
    if proto == icmp == 58:
        return f"{src} > {dst}: ICMP6, {_icmp(seg, length, _ICMP6_TYPES)}"
    return f"{src} > {dst}:  ip-proto-{proto} {length}"  # two spaces, as tcpdump prints it


def _icmp(seg: bytes, length: int, names: dict[int, str]) -> str:
    if len(seg) < 4:
        return "[|icmp]"
    icmp_type = seg[0]
    name = names.get(icmp_type, f"type-#{icmp_type}")
    if name.startswith("echo") and len(seg) >= 8:
        ident, seq = struct.unpack_from("!HH", seg, 4)
        return f"{name}, id {ident}, seq {seq}, length {length}"
    return f"{name}, length {length}"


def _tcp(src: str, dst: str, seg: bytes, length: int) -> str:
    if len(seg) < 20:
        return f"{src} > {dst}: [|tcp]"
    sport, dport, seq, ack, offset, flags, win, _, urg = struct.unpack_from("!HHIIBBHHH", seg)
    data_len = length - (offset >> 4) * 4
    names = "".join(letter for bit, letter in _TCP_FLAGS if flags & bit) or "none"
    text = f"{src}.{sport} > {dst}.{dport}: Flags [{names}], seq {seq}"
    if data_len > 0:
        text += f":{(seq + data_len) & 0xFFFFFFFF}"
    if flags & 0x10:
        text += f", ack {ack}"
    text += f", win {win}"
    if flags & 0x20:
        text += f", urg {urg}"
    return f"{text}, length {max(data_len, 0)}"

"""Build Ethernet (optionally 802.1Q tagged) / IPv4 / UDP frames with valid checksums.

Frames are built once and sent many times, so clarity wins over speed here. ``size`` is always the
frame length handed to the kernel: link header included, FCS excluded (a "64-byte frame" on the wire is
60 bytes here plus 4 of FCS the NIC adds). The payload is a repeating byte pattern.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from . import abi
from .errors import AfPacketError
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

ETH_HDR = struct.Struct("!6s6sH")
VLAN_TAG = struct.Struct("!HH")
IPV4_HDR = struct.Struct("!BBHHHBBH4s4s")
UDP_HDR = struct.Struct("!HHHH")
IPPROTO_UDP = 17
#: Ethernet + IPv4 + UDP headers
MIN_UDP_FRAME = abi.ETH_HLEN + IPV4_HDR.size + UDP_HDR.size


def mac_bytes(mac: str | bytes) -> bytes:
    """``mac`` as the 6 bytes a link header carries.

    ``mac`` is text (``aa:bb:cc:dd:ee:ff``, ``aa-bb-cc-dd-ee-ff`` or 12 hex digits) or already 6 raw
    bytes, which are returned as they are, so callers can pass either form through. Raises
    :class:`AfPacketError` naming the value for anything else.

    >>> mac_bytes("02:00:00:00:00:01").hex()
    '020000000001'
    """
    if isinstance(mac, bytes):
        if len(mac) == 6:
            return mac
        raise AfPacketError(f"a MAC address has 6 bytes, got {len(mac)}")
    try:
        raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise AfPacketError(f"{mac!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    return raw


def ip_bytes(ip: str | bytes) -> bytes:
    """``ip`` as the 4 bytes an IPv4 header carries (network byte order).

    ``ip`` is dotted-quad text or already 4 raw bytes, returned as they are. Only IPv4: the frames
    built here are IPv4/UDP. Raises :class:`AfPacketError` naming the value for anything else
    (an IPv6 address included).

    >>> ip_bytes("198.18.0.1").hex()
    'c6120001'
    """
    if isinstance(ip, bytes):
        if len(ip) == 4:
            return ip
        raise AfPacketError(f"an IPv4 address has 4 bytes, got {len(ip)}")
    try:
        return ipaddress.IPv4Address(ip).packed
    except ValueError:
        raise AfPacketError(f"{ip!r} is not an IPv4 address") from None


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: one's complement of the one's complement sum.

    An odd-length ``data`` is padded with one zero byte, as the RFC says. Over a header that already
    holds its checksum the result is 0, which is how a received header is verified.
    """
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_header(
    src: bytes, dst: bytes, payload_len: int, *, proto: int = IPPROTO_UDP, ttl: int = 64, ident: int = 0
) -> bytes:
    """A 20-byte IPv4 header (no options) with a valid header checksum.

    ``src`` and ``dst`` are 4-byte addresses (see :func:`ip_bytes`); ``payload_len`` is the length of
    what follows the header, so the total length field is ``20 + payload_len``. ``proto`` is the
    IP protocol number (UDP by default), ``ttl`` the time to live and ``ident`` the identification
    field (taken modulo 2**16). Don't Fragment is set, so a frame too big for a link is dropped rather
    than fragmented on the way and counted twice. Values are not range-checked: the callers built them.
    """
    total = IPV4_HDR.size + payload_len
    hdr = IPV4_HDR.pack(0x45, 0, total, ident & 0xFFFF, 0x4000, ttl, proto, 0, src, dst)  # DF set
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]


def udp_datagram(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header from ``sport`` to ``dport`` followed by ``payload``, with a valid checksum.

    The checksum covers the IPv4 pseudo-header, so it needs the 4-byte ``src`` and ``dst`` addresses
    the datagram will travel between. A computed checksum of 0 is sent as 0xffff: in UDP over IPv4 a
    0 means "no checksum" (RFC 768).
    """
    length = UDP_HDR.size + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, length)
    hdr = UDP_HDR.pack(sport, dport, length, 0)
    csum = checksum(pseudo + hdr + payload) or 0xFFFF
    return UDP_HDR.pack(sport, dport, length, csum) + payload


def _pattern(n: int, seed: int = 0) -> bytes:
    return bytes((seed + i) & 0xFF for i in range(n))


def udp_frame(
    *,
    src_mac: str | bytes,
    dst_mac: str | bytes,
    src_ip: str | bytes,
    dst_ip: str | bytes,
    sport: int = 1024,
    dport: int = 9,
    size: int = 60,
    payload: bytes | None = None,
    vlan: int | None = None,
    ttl: int = 64,
    ident: int = 0,
    link_header: bool = True,
) -> bytes:
    """One Ethernet/[802.1Q]/IPv4/UDP frame of ``size`` bytes (or sized by ``payload`` when given).

    - ``src_mac``, ``dst_mac``: the Ethernet addresses (text or 6 bytes, see :func:`mac_bytes`).
    - ``src_ip``, ``dst_ip``: the IPv4 addresses (text or 4 bytes, see :func:`ip_bytes`).
    - ``sport``, ``dport``: the UDP ports, 0..65535 (9 is the discard service).
    - ``size``: the frame length handed to the kernel, link header included and FCS excluded; the
      payload is a repeating byte pattern filling the rest. Ignored when ``payload`` is given.
    - ``payload``: exact UDP payload bytes instead of the pattern.
    - ``vlan``: an 802.1Q VLAN id (0..4095) to tag the frame with; the tag counts toward ``size``.
    - ``ttl``, ``ident``: the IPv4 time to live and identification field.
    - ``link_header``: False returns the IPv4 packet only, for SOCK_DGRAM transmitters where the
      kernel writes the link header; ``size`` then counts the IPv4 packet.

    Raises :class:`AfPacketError` saying what is wrong for a port or VLAN id out of range, a ``size``
    too small for the headers or too large for IPv4's 16-bit length, or a malformed address.

    >>> f = udp_frame(src_mac="02:00:00:00:00:01", dst_mac="ff:ff:ff:ff:ff:ff",
    ...               src_ip="198.18.0.1", dst_ip="198.18.0.2", size=60)
    >>> len(f), f[12:14].hex(), f[23]
    (60, '0800', 17)
    """
    for name, port in (("source port", sport), ("destination port", dport)):
        if not 0 <= port <= 0xFFFF:
            raise AfPacketError(f"{name} must be 0..65535, got {port}")
    if vlan is not None and not 0 <= vlan <= 4095:
        raise AfPacketError(f"VLAN id must be 0..4095, got {vlan}")
    link = (abi.ETH_HLEN + (abi.VLAN_HLEN if vlan is not None else 0)) if link_header else 0
    headers = link + IPV4_HDR.size + UDP_HDR.size
    if payload is None:
        if size < headers:
            raise AfPacketError(
                f"a {size}-byte frame cannot hold the {headers} bytes of headers; use --size {headers} or more"
            )
        if size > 65535 + link:
            raise AfPacketError(f"a UDP/IPv4 frame is at most {65535 + link} bytes, got {size}")
        payload = _pattern(size - headers)
    s, d = ip_bytes(src_ip), ip_bytes(dst_ip)
    udp = udp_datagram(s, d, sport, dport, payload)
    packet = ipv4_header(s, d, len(udp), ttl=ttl, ident=ident) + udp
    if not link_header:
        return packet
    if vlan is None:
        eth = ETH_HDR.pack(mac_bytes(dst_mac), mac_bytes(src_mac), abi.ETH_P_IP)
    else:
        eth = ETH_HDR.pack(mac_bytes(dst_mac), mac_bytes(src_mac), abi.ETH_P_8021Q) + VLAN_TAG.pack(
            vlan, abi.ETH_P_IP
        )
    return eth + packet


@dataclass(frozen=True)
class FlowSpec:
    """What ``afpacket gen`` varies: flow ``i`` uses ``src_ip + i`` and ``sport + i`` (both wrapping).

    The fields are those of :func:`udp_frame`: ``src_mac`` and ``dst_mac`` (broadcast by default, so
    a receiver without a known address still sees the frames), ``src_ip`` and ``dst_ip`` (from the
    RFC 2544 benchmarking range), ``sport`` and ``dport``, the frame ``size`` and an optional ``vlan``
    id. Varying the source address and port gives every flow its own 5-tuple, so receive-side hashing
    (RSS, fanout by hash) spreads the flows instead of putting them all on one queue.

    >>> [f[26:30].hex() for f in FlowSpec().frames(2)]
    ['c6120001', 'c6120002']
    """

    src_mac: str = "02:00:00:00:00:01"
    dst_mac: str = "ff:ff:ff:ff:ff:ff"
    src_ip: str = "198.18.0.1"
    dst_ip: str = "198.18.0.2"
    sport: int = 1024
    dport: int = 9
    size: int = 60
    vlan: int | None = None

    def frames(self, flows: int = 1, *, link_header: bool = True) -> list[bytes]:
        """``flows`` frames, one per flow: the 5-tuple differs in source address and source port.

        ``link_header`` is passed to :func:`udp_frame` (False: IPv4 packets for SOCK_DGRAM). Raises
        :class:`AfPacketError` when ``flows`` is below 1 or a field is invalid (see :func:`udp_frame`).
        """
        if flows < 1:
            raise AfPacketError(f"the number of flows must be at least 1, got {flows}")
        base = int.from_bytes(ip_bytes(self.src_ip), "big")  # a malformed address: AfPacketError
        out = []
        for i in range(flows):
            out.append(
                udp_frame(
                    src_mac=self.src_mac,
                    dst_mac=self.dst_mac,
                    src_ip=str(ipaddress.IPv4Address((base + i) & 0xFFFFFFFF)),
                    dst_ip=self.dst_ip,
                    sport=(self.sport + i) & 0xFFFF,
                    dport=self.dport,
                    size=self.size,
                    vlan=self.vlan,
                    link_header=link_header,
                )
            )
        return out


# --- link-layer rebuilding: savefile records of other link types as Ethernet frames ----------------
#: Savefile link types :func:`ethernet_from` can turn into Ethernet frames: Ethernet itself, Linux
#: cooked v1/v2, bare IP, BSD/OpenBSD loopback.
REBUILDABLE_LINKTYPES = frozenset({
    LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6,
    LINKTYPE_NULL, LINKTYPE_LOOP,
})
_SLL1 = struct.Struct("!HHH8sH")  # pkttype, hatype, halen, address, protocol
_SLL2 = struct.Struct("!HHIHBB8s")  # protocol, reserved, ifindex, hatype, pkttype, halen, address
#: Protocol values of a cooked header below 0x0600 that stand for an 802.3 frame (a length, not a type):
#: ETH_P_802_3 (Novell raw 802.3) and ETH_P_802_2 (an LLC header follows).
_COOKED_8023 = (0x0001, 0x0004)
#: BSD address families of the NULL/LOOP link types: AF_INET is 2 everywhere, AF_INET6 differs per OS.
_AF_INET6 = (10, 24, 28, 30)
_MAX_8023_PAYLOAD = 1500


def ethernet_from(
    linktype: int, data: bytes, *, src_mac: bytes, dst_mac: bytes, keep_src: bool = True
) -> bytes:
    """``data``, a packet recorded with link type ``linktype``, as an Ethernet frame for a raw socket.

    A Linux cooked capture (LINKTYPE_LINUX_SLL 113, LINUX_SLL2 276: what ``tcpdump -i any`` writes)
    stored the packet without its link header; bare IP captures (RAW 101, IPV4 228, IPV6 229) and BSD
    loopback (NULL 0, LOOP 108) never had one. An Ethernet header is put in front, built as follows:

    - ``dst_mac`` (6 bytes) is the destination: the capture does not say where the packet went.
    - the source is the 6-byte address of the cooked header (the sender's, in a Linux cooked capture)
      when ``keep_src`` is true and the address is a non-zero 6-byte one, else ``src_mac``.
    - the EtherType is the cooked header's protocol, or derived from the IP version / address family.
      A cooked protocol of 1 or 4 (802.3 / 802.2 LLC) gives an 802.3 frame with a length field.

    Ethernet records (link type 1) are returned unchanged. Raises :class:`AfPacketError` saying why for
    a record that cannot be rebuilt (a truncated cooked header, an unknown protocol or link type).

    >>> ethernet_from(101, bytes([0x45]) + bytes(19), src_mac=bytes(6), dst_mac=b"\\xff" * 6)[12:14].hex()
    '0800'
    """
    if linktype == LINKTYPE_ETHERNET:
        return data
    src = src_mac
    if linktype in (LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2):
        shape = _SLL1 if linktype == LINKTYPE_LINUX_SLL else _SLL2
        if len(data) < shape.size:
            raise AfPacketError(f"a {len(data)}-byte record is shorter than its {shape.size}-byte cooked header")
        if linktype == LINKTYPE_LINUX_SLL:
            _, _, halen, addr, protocol = shape.unpack_from(data)
        else:
            protocol, _, _, _, _, halen, addr = shape.unpack_from(data)
        if keep_src and halen == 6 and any(addr[:6]):
            src = addr[:6]
        payload = data[shape.size :]
        if protocol in _COOKED_8023:
            if len(payload) > _MAX_8023_PAYLOAD:
                raise AfPacketError(f"an 802.3 payload of {len(payload)} bytes does not fit a length field")
            return dst_mac + src + struct.pack("!H", len(payload)) + payload
        if protocol < 0x0600:
            raise AfPacketError(f"cooked protocol 0x{protocol:04x} has no Ethernet equivalent")
        return dst_mac + src + struct.pack("!H", protocol) + payload
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        version = data[0] >> 4 if data else 0
        if linktype == LINKTYPE_IPV4 or (linktype == LINKTYPE_RAW and version == 4):
            return ETH_HDR.pack(dst_mac, src, abi.ETH_P_IP) + data
        if linktype == LINKTYPE_IPV6 or (linktype == LINKTYPE_RAW and version == 6):
            return ETH_HDR.pack(dst_mac, src, abi.ETH_P_IPV6) + data
        raise AfPacketError(f"a raw-IP record with IP version {version} (neither 4 nor 6)")
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            raise AfPacketError(f"a {len(data)}-byte record is shorter than its 4-byte loopback header")
        # NULL stores the family in the writer's byte order; a small number in the first byte means little.
        big = linktype == LINKTYPE_LOOP or not data[0]
        family = int.from_bytes(data[:4], "big" if big else "little")
        if family == 2:
            return ETH_HDR.pack(dst_mac, src, abi.ETH_P_IP) + data[4:]
        if family in _AF_INET6:
            return ETH_HDR.pack(dst_mac, src, abi.ETH_P_IPV6) + data[4:]
        raise AfPacketError(f"loopback address family {family} is neither IPv4 nor IPv6")
    raise AfPacketError(f"link type {linktype} cannot be rebuilt as Ethernet")

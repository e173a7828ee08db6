"""The decoded layers of a packet: one small immutable record per protocol header, and the flow 5-tuple.

Every layer is a ``NamedTuple``: the decoder builds it straight from a ``struct`` unpack with
``tuple.__new__`` (no Python ``__init__`` runs), which is what keeps decoding cheap enough to print
200,000 lines a second from these same records. Fields hold the header's values as the wire has them
(ints), addresses as text (``"10.0.0.1"``, ``"fe80::1"``, ``"02:00:00:00:00:01"``, converted through
bounded caches), and variable parts (IPv4 and TCP options) as their raw bytes with a property that
decodes them on demand.
"""

from __future__ import annotations

import socket
import struct
from typing import Final, NamedTuple

# -- address text, cached ------------------------------------------------------------------------
# A capture holds few distinct addresses and converting them costs more than a dict lookup, so every
# conversion goes through a cache; the caches are cleared when they grow past _CACHE_MAX (a scan of a
# whole /8 must not grow memory without bound).
_CACHE_MAX: Final = 65536
_ip4_cache: dict[int, str] = {}
_ip6_cache: dict[bytes, str] = {}
_mac_cache: dict[bytes, str] = {}
_inet_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6


def ip4_text(addr: int) -> str:
    """Dotted-quad text of an IPv4 address given as a 32-bit integer."""
    text = _ip4_cache.get(addr)
    if text is None:
        if len(_ip4_cache) >= _CACHE_MAX:
            _ip4_cache.clear()
        text = _ip4_cache[addr] = f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"
    return text


def ip6_text(addr: bytes) -> str:
    """RFC 5952 text of a 16-byte IPv6 address (what inet_ntop, and so tcpdump, prints)."""
    text = _ip6_cache.get(addr)
    if text is None:
        if len(_ip6_cache) >= _CACHE_MAX:
            _ip6_cache.clear()
        text = _ip6_cache[addr] = _inet_ntop(_AF_INET6, addr)
    return text


def mac_text(addr: bytes) -> str:
    """``aa:bb:cc:dd:ee:ff`` for a 6-byte MAC address; other lengths as colon-separated hex bytes."""
    text = _mac_cache.get(addr)
    if text is None:
        if len(_mac_cache) >= _CACHE_MAX:
            _mac_cache.clear()
        text = _mac_cache[addr] = addr.hex(":")
    return text


# -- link layer ----------------------------------------------------------------------------------
class Ethernet(NamedTuple):
    """An Ethernet II / 802.3 header. ``ethertype`` is the type/length field after the MAC addresses
    (0x8100 when a VLAN tag follows; a value <= 1500 is an 802.3 length)."""

    dst: str
    src: str
    ethertype: int


class Vlan(NamedTuple):
    """One 802.1Q/802.1ad tag: the TPID that announced it, its TCI split into priority, drop-eligible
    bit and VLAN id, and the ethertype that follows the tag. QinQ frames have several, outer first."""

    tpid: int
    pcp: int
    dei: int
    vid: int
    ethertype: int


class LinuxSLL(NamedTuple):
    """Linux cooked header v1 (LINKTYPE_LINUX_SLL, 16 bytes). ``pkttype`` is the kernel's PACKET_*
    (0 host, 1 broadcast, 2 multicast, 3 other host, 4 outgoing); ``address`` the link-layer source
    (``halen`` bytes, at most 8, as text)."""

    pkttype: int
    hatype: int
    halen: int
    address: str
    protocol: int


class LinuxSLL2(NamedTuple):
    """Linux cooked header v2 (LINKTYPE_LINUX_SLL2, 20 bytes, what ``-i any`` records in libpcap 1.10):
    adds the interface index."""

    protocol: int
    ifindex: int
    hatype: int
    pkttype: int
    halen: int
    address: str


class Loopback(NamedTuple):
    """The 4-byte address family of BSD loopback (LINKTYPE_NULL, host order) and OpenBSD loopback
    (LINKTYPE_LOOP, network order) headers: 2 is IPv4; 24, 28 and 30 are IPv6."""

    family: int


class ARP(NamedTuple):
    """An ARP (or RARP) packet. Hardware addresses are MAC text, protocol addresses dotted quads when
    they are IPv4 (``ptype`` 0x0800, ``plen`` 4), otherwise hex."""

    htype: int
    ptype: int
    hlen: int
    plen: int
    op: int
    sha: str
    spa: str
    tha: str
    tpa: str


# -- network layer -------------------------------------------------------------------------------
IP_RES: Final = 4  # the reserved ("evil") bit of IPv4 flags
IP_DF: Final = 2
IP_MF: Final = 1


class IPv4(NamedTuple):
    """An IPv4 header. ``ihl`` is the header length in bytes; ``flags`` the three flag bits (4 reserved,
    2 DF, 1 MF); ``frag_offset`` the fragment offset in bytes (the field times 8); ``options`` the raw
    option bytes (``option_list`` decodes them)."""

    version: int
    ihl: int
    tos: int
    total_length: int
    id: int
    flags: int
    frag_offset: int
    ttl: int
    proto: int
    checksum: int
    src: str
    dst: str
    options: bytes

    @property
    def df(self) -> bool:
        """The Don't Fragment flag (0x4000 of the flags/offset word): routers must drop, not split, the
        datagram when it is too large for a link (path MTU discovery relies on it)."""
        return bool(self.flags & IP_DF)

    @property
    def mf(self) -> bool:
        """The More Fragments flag: this is a fragment and others follow it (false on the last one, and
        on an unfragmented datagram; ``is_fragment`` covers both cases)."""
        return bool(self.flags & IP_MF)

    @property
    def is_fragment(self) -> bool:
        """True for every piece of a fragmented datagram (more fragments follow, or not the first)."""
        return bool(self.flags & IP_MF) or self.frag_offset != 0

    @property
    def option_list(self) -> tuple[tuple[int, bytes], ...]:
        """The options as ``(kind, value)``: value is the bytes after the kind and length octets (empty
        for EOL and NOP). A malformed length ends the list."""
        return _tlv_options(self.options)


class IPv6Extension(NamedTuple):
    """An IPv6 extension header: ``kind`` is its protocol number (0 hop-by-hop, 43 routing, 60
    destination options, ...), ``next_header`` what follows it, ``data`` its bytes after the first two."""

    kind: int
    next_header: int
    length: int
    data: bytes


class IPv6Fragment(NamedTuple):
    """The IPv6 fragment header (protocol 44): ``offset`` in bytes, ``more`` the M flag."""

    next_header: int
    offset: int
    more: bool
    ident: int

    @property
    def kind(self) -> int:
        """44, the protocol number of the fragment header, so that every entry of
        :attr:`IPv6.extensions` has a ``kind`` (as :class:`IPv6Extension` does)."""
        return 44


class IPv6(NamedTuple):
    """An IPv6 header with its extension header chain (``extensions``, in order; a fragment header is an
    :class:`IPv6Fragment`). ``next_header`` is the fixed header's field; ``proto`` the upper-layer
    protocol after the chain."""

    version: int
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: str
    dst: str
    extensions: tuple[IPv6Extension | IPv6Fragment, ...]
    proto: int

    @property
    def fragment(self) -> IPv6Fragment | None:
        """The fragment header of the extension chain, or None when the packet is not a fragment.
        A later fragment (``offset`` > 0) carries no upper-layer header, so ``proto`` is then only what
        the fragment header names."""
        for ext in self.extensions:
            if isinstance(ext, IPv6Fragment):
                return ext
        return None


# -- transport layer -----------------------------------------------------------------------------
TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10
TCP_URG: Final = 0x20
TCP_ECE: Final = 0x40
TCP_CWR: Final = 0x80

TcpOptionValue = int | tuple[int, int] | tuple[tuple[int, int], ...] | bytes | None


class TCP(NamedTuple):
    """A TCP header. ``header_length`` is in bytes; ``flags`` the 8 flag bits (FIN 0x01 ... CWR 0x80);
    ``raw_options`` the option bytes, decoded by ``options``."""

    sport: int
    dport: int
    seq: int
    ack: int
    header_length: int
    flags: int
    window: int
    checksum: int
    urgent: int
    raw_options: bytes

    @property
    def options(self) -> tuple[tuple[int, TcpOptionValue], ...]:
        """``(kind, value)`` per option: mss (2) and wscale (3) an int, timestamps (8) ``(val, ecr)``,
        SACK (5) a tuple of ``(left, right)`` edges, NOP/EOL/sackOK None, anything else its raw bytes.
        A malformed length ends the list."""
        out: list[tuple[int, TcpOptionValue]] = []
        for kind, value in _tlv_options(self.raw_options):
            v: TcpOptionValue = value
            if kind in (0, 1, 4):
                v = None
            elif (kind == 2 and len(value) == 2) or (kind == 3 and len(value) == 1):
                v = int.from_bytes(value, "big")
            elif kind == 8 and len(value) == 8:
                v = (int.from_bytes(value[:4], "big"), int.from_bytes(value[4:], "big"))
            elif kind == 5 and len(value) % 8 == 0:
                v = tuple(struct.iter_unpack("!II", value))
            out.append((kind, v))
        return tuple(out)


class UDP(NamedTuple):
    """A UDP header; ``length`` is the UDP length field (header included)."""

    sport: int
    dport: int
    length: int
    checksum: int


class ICMP(NamedTuple):
    """An ICMP (IPv4) header: type, code, checksum and the 4 bytes after them (``rest``: id and sequence
    for echo, the next-hop MTU for fragmentation needed, the gateway for redirects, ...)."""

    type: int
    code: int
    checksum: int
    rest: bytes

    @property
    def id(self) -> int:
        """The identifier of an echo request or reply (and of timestamp/information/address-mask
        messages): the first 2 bytes of ``rest``. Meaningless for other types (0 when those bytes were not captured)."""
        return int.from_bytes(self.rest[:2], "big")

    @property
    def seq(self) -> int:
        """The sequence number of an echo request or reply (and timestamp/information/address-mask
        messages): bytes 2-3 of ``rest``. Meaningless for other types (0 when those bytes were not captured)."""
        return int.from_bytes(self.rest[2:4], "big")


class ICMPv6(NamedTuple):
    """An ICMPv6 header: type, code, checksum and the 4 bytes after them."""

    type: int
    code: int
    checksum: int
    rest: bytes

    @property
    def id(self) -> int:
        """The identifier of an echo request (128) or reply (129): the first 2 bytes of ``rest``.
        Meaningless for other types (0 when those bytes were not captured)."""
        return int.from_bytes(self.rest[:2], "big")

    @property
    def seq(self) -> int:
        """The sequence number of an echo request (128) or reply (129): bytes 2-3 of ``rest``.
        Meaningless for other types (0 when those bytes were not captured)."""
        return int.from_bytes(self.rest[2:4], "big")


class IGMP(NamedTuple):
    """The first 8 bytes of an IGMP message: type, max response time/code, checksum, group address."""

    type: int
    code: int
    checksum: int
    group: str


class GRE(NamedTuple):
    """A GRE header (RFC 2784/2890, and PPTP's version 1). Optional fields are None when their flag
    bit is clear; ``key`` in version 1 is the whole key word (payload length and call id)."""

    flags: int
    version: int
    protocol: int
    checksum: int | None
    offset: int | None
    key: int | None
    sequence: int | None
    ack: int | None


class VXLAN(NamedTuple):
    """A VXLAN header (RFC 7348): flags (0x08: a valid VNI) and the 24-bit network identifier."""

    flags: int
    vni: int


Layer = (
    Ethernet | Vlan | LinuxSLL | LinuxSLL2 | Loopback | ARP | IPv4 | IPv6 | TCP | UDP | ICMP | ICMPv6 | IGMP | GRE
    | VXLAN
)


class Flow(NamedTuple):
    """The 5-tuple of an IP packet: addresses as text, the upper-layer protocol number, and the ports
    (None when the protocol has none, e.g. ICMP)."""

    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None


def _tlv_options(raw: bytes) -> tuple[tuple[int, bytes], ...]:
    """Kind/length/value options as IPv4 and TCP share them (kinds 0 and 1 are a single octet)."""
    out = []
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind in (0, 1):
            out.append((kind, b""))
            i += 1
            if kind == 0:
                break
            continue
        if i + 1 >= n:
            break
        size = raw[i + 1]
        if size < 2 or i + size > n:
            break
        out.append((kind, bytes(raw[i + 2 : i + size])))
        i += size
    return tuple(out)

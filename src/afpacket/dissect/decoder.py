"""``decode()``: one pass over a frame that builds its layer records (``layers.py``) and remembers where
each starts, so the line printer and Python users read the same fields.

The decoder follows the bounds tcpdump uses: a layer is built only when its fixed header was captured
(otherwise ``Decoded.truncated`` names it, with tcpdump's protocol word), and the IPv4/IPv6 length
fields bound what follows them (Ethernet padding is never taken for payload). Garbage never raises:
every read is length-checked first.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

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
from .layers import (
    ARP,
    GRE,
    ICMP,
    IGMP,
    TCP,
    UDP,
    VXLAN,
    Ethernet,
    Flow,
    ICMPv6,
    IPv4,
    IPv6,
    IPv6Extension,
    IPv6Fragment,
    Layer,
    LinuxSLL,
    LinuxSLL2,
    Loopback,
    Vlan,
    ip4_text,
    ip6_text,
    mac_text,
)

Bytes = bytes | bytearray | memoryview

#: The TPIDs that announce a VLAN tag (as tcpdump: 802.1Q, 802.1ad, and the two pre-standard ones).
VLAN_TPIDS: Final = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
ETHERTYPE_IP: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_REVARP: Final = 0x8035
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_TEB: Final = 0x6558  # transparent Ethernet bridging (Ethernet inside GRE)
VXLAN_PORT: Final = 4789
#: IPv6 extension headers the decoder walks (hop-by-hop, routing, destination options); 44 is the
#: fragment header, handled apart because its length is fixed.
IPV6_EXTENSIONS: Final = frozenset({0, 43, 60})

Transport = TCP | UDP | ICMP | ICMPv6 | IGMP | GRE

_HH: Final = struct.Struct("!HH")
_II: Final = struct.Struct("!II")
_SLL: Final = struct.Struct("!HHH8sH")
_SLL2: Final = struct.Struct("!HHIHBB8s")
_ARP: Final = struct.Struct("!HHBBH")
_IP4: Final = struct.Struct("!BBHHHBBHII")
_IP6: Final = struct.Struct("!IHBB16s16s")
_TCP: Final = struct.Struct("!HHIIBBHHH")
_UDP: Final = struct.Struct("!HHHH")
_ICMP: Final = struct.Struct("!BBH")
_IGMP: Final = struct.Struct("!BBHI")
_FRAG6: Final = struct.Struct("!BxHI")
#: builds a layer record from a tuple of its fields without running any Python code
_new: Final[Callable[..., Any]] = tuple.__new__


class Decoded:
    """A decoded packet: its layers in order (``layers``), shortcuts to the usual ones, the application
    payload and the flow 5-tuple.

    ``link`` (Ethernet, LinuxSLL, LinuxSLL2, Loopback or None for raw IP), ``vlans`` (outer first),
    ``net`` (IPv4, IPv6 or ARP), ``transport`` (TCP, UDP, ICMP, ICMPv6, IGMP or GRE), ``tunnel`` (GRE or
    VXLAN) with ``inner`` the encapsulated packet as its own :class:`Decoded`. ``truncated`` names the
    first layer whose header was cut short by the capture (tcpdump's word for it: ``"tcp"``, ``"ip"``,
    ...), None when every header present was whole. Attributes a packet does not have are None.
    ``offsets[i]`` is where ``layers[i]`` starts in ``data``.

    :func:`decode` builds these; constructing one directly gives an empty packet (no layers) to fill.
    The constructor's parameters are kept as attributes of the same names:

    * ``data`` -- the captured bytes of the frame (``bytes``; ``decode`` converts other buffers);
    * ``linktype`` -- its link type (a ``LINKTYPE_*`` value of :mod:`afpacket.savefile.linktype`), which
      says what the first header is;
    * ``wire_len`` -- the frame's length on the wire, at least ``len(data)``; a larger value means the
      capture kept only the first ``len(data)`` bytes (a snap length).

    Example::

        d = afpacket.decode(frame)
        if d.tcp and d.tcp.flags & 0x02:
            print("SYN", d.flow)
    """

    # A plain class with class-level defaults: a packet only pays for the attributes it sets.
    data: bytes = b""
    linktype: int = LINKTYPE_ETHERNET
    wire_len: int = 0
    link: Ethernet | LinuxSLL | LinuxSLL2 | Loopback | None = None
    vlans: tuple[Vlan, ...] = ()
    net: IPv4 | IPv6 | ARP | None = None
    net_offset: int = -1
    transport: Transport | None = None
    transport_offset: int = -1
    tunnel: GRE | VXLAN | None = None
    inner: Decoded | None = None
    truncated: str | None = None
    #: where this packet's first header starts in ``data`` (non-zero for a packet inside a tunnel)
    start: int = 0
    #: where the bytes after the last decoded header start and end (end bounded by the IP/UDP lengths)
    payload_offset: int = 0
    payload_end: int = 0

    def __init__(self, data: bytes, linktype: int, wire_len: int) -> None:
        self.data = data
        self.linktype = linktype
        self.wire_len = wire_len
        self.layers: list[Layer] = []
        self.offsets: list[int] = []

    def __repr__(self) -> str:
        names = "/".join(type(layer).__name__ for layer in self.layers) or "nothing"
        cut = f", truncated at {self.truncated}" if self.truncated else ""
        return f"<Decoded {names}, {len(self.data)} of {self.wire_len} bytes{cut}>"

    # -- shortcuts ---------------------------------------------------------------------------------
    @property
    def eth(self) -> Ethernet | None:
        """The Ethernet header, or None when the frame has another link layer (Linux cooked, loopback,
        raw IP) or its 14 bytes were not captured."""
        return self.link if isinstance(self.link, Ethernet) else None

    @property
    def ip(self) -> IPv4 | IPv6 | None:
        """The (outer) IPv4 or IPv6 header."""
        net = self.net
        return net if isinstance(net, (IPv4, IPv6)) else None

    @property
    def ip4(self) -> IPv4 | None:
        """The outer IPv4 header, or None when the packet is not IPv4 (or its 20 bytes were cut short).
        A tunnelled inner header is ``inner.ip4``."""
        return self.net if isinstance(self.net, IPv4) else None

    @property
    def ip6(self) -> IPv6 | None:
        """The outer IPv6 header (with its extension headers), or None when the packet is not IPv6.
        A tunnelled inner header is ``inner.ip6``."""
        return self.net if isinstance(self.net, IPv6) else None

    @property
    def arp(self) -> ARP | None:
        """The ARP or RARP packet, or None for anything else (or an ARP packet cut short)."""
        return self.net if isinstance(self.net, ARP) else None

    @property
    def tcp(self) -> TCP | None:
        """The (outer) TCP header, or None when the packet is not TCP or its 20-byte header was cut
        short (``truncated`` is then ``"tcp"``)."""
        return self.transport if isinstance(self.transport, TCP) else None

    @property
    def udp(self) -> UDP | None:
        """The (outer) UDP header, or None when the packet is not UDP or its 8 bytes were cut short.
        For VXLAN the UDP header is here and the Ethernet frame it carries is ``inner``."""
        return self.transport if isinstance(self.transport, UDP) else None

    @property
    def icmp(self) -> ICMP | ICMPv6 | None:
        """The ICMP (over IPv4) or ICMPv6 (over IPv6) header, or None for other packets. Tell the two
        apart with ``isinstance(d.icmp, ICMPv6)``: their type numbers differ (echo request is 8 in ICMP,
        128 in ICMPv6)."""
        t = self.transport
        return t if isinstance(t, (ICMP, ICMPv6)) else None

    @property
    def payload(self) -> bytes:
        """The bytes after the last header decoded (the application data of a TCP/UDP segment), as
        captured, without link-layer padding."""
        return self.data[self.payload_offset : self.payload_end]

    @property
    def flow(self) -> Flow | None:
        """``Flow(src, dst, proto, sport, dport)`` of the outer IP packet; None when it is not IP.
        Ports are None unless the packet is TCP or UDP (and its header was captured)."""
        net = self.net
        if isinstance(net, (IPv4, IPv6)):
            t = self.transport
            if isinstance(t, (TCP, UDP)):
                return Flow(net.src, net.dst, net.proto, t.sport, t.dport)
            return Flow(net.src, net.dst, net.proto, None, None)
        return None

    def _add(self, layer: Layer, offset: int) -> None:
        self.layers.append(layer)
        self.offsets.append(offset)


def decode(data: Bytes, linktype: int = LINKTYPE_ETHERNET, wire_len: int | None = None) -> Decoded:
    """Decode ``data`` (a frame of link type ``linktype``, see :mod:`afpacket.savefile.linktype`) into
    its layers. ``wire_len`` is the frame's length on the wire (default: ``len(data)``). Never raises on
    malformed or truncated input: it stops at the first header that is cut short or invalid.

    Example::

        >>> d = decode(frame)
        >>> d.ip.src, d.tcp.dport, d.flow
        ('10.0.0.1', 80, Flow(src='10.0.0.1', dst='10.0.0.2', proto=6, sport=40000, dport=80))
    """
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if linktype == LINKTYPE_ETHERNET and n >= 34:
        d = _fast_ethernet(data, n, n if wire_len is None else wire_len)
        if d is not None:
            return d
    return decode_general(data, linktype, n if wire_len is None else wire_len)


def decode_general(data: bytes, linktype: int, wire_len: int) -> Decoded:
    """:func:`decode` without its shortcut for everyday frames (for a caller that already tried it)."""
    n = len(data)
    d = Decoded(data, linktype, wire_len)
    d.payload_end = n
    if linktype == LINKTYPE_ETHERNET:
        _ethernet(d, data, 0, n)
    elif linktype == LINKTYPE_LINUX_SLL2:
        _sll2(d, data, n)
    elif linktype == LINKTYPE_LINUX_SLL:
        _sll(d, data, n)
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if n:
            _ethertype(d, data, ETHERTYPE_IPV6 if data[0] >> 4 == 6 else ETHERTYPE_IP, 0, n)
        else:
            d.truncated = "raw"
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        _null(d, data, n)
    return d


# -- the everyday case in one function ----------------------------------------------------------------
_eth_cache: dict[bytes, Ethernet] = {}
_pair4_cache: dict[bytes, tuple[str, str]] = {}
_pair6_cache: dict[bytes, tuple[str, str]] = {}
_IP4_REST: Final = struct.Struct("!BHHHBBH")  # the IPv4 header after its first byte, up to the addresses
_IP6_HEAD: Final = struct.Struct("!IHBB")
_object_new = object.__new__


def _ethernet_layer(header: bytes) -> Ethernet:
    """The Ethernet record of a 14-byte header, shared by every frame with the same header (a capture
    has few distinct ones)."""
    eth = _eth_cache.get(header)
    if eth is None:
        if len(_eth_cache) >= 4096:
            _eth_cache.clear()
        eth = _eth_cache[header] = _new(Ethernet, (mac_text(header[:6]), mac_text(header[6:12]),
                                                   (header[12] << 8) | header[13]))
    return eth


FastLayers = tuple[Ethernet, IPv4 | IPv6, TCP | UDP | ICMP | ICMPv6, int, int, int]


def fast_layers(data: bytes, n: int) -> FastLayers | None:
    """Ethernet + IPv4 (no options, not a later fragment) or IPv6 (no extension headers) + whole TCP,
    UDP (not VXLAN) or ICMP/ICMPv6 headers: most of any capture, decoded with no call per layer.
    Returns ``(ethernet, ip, transport, transport offset, payload offset, payload end)``, or None for
    anything else (or anything cut short), which the general path decodes into the same records.
    ``n`` is ``len(data)``, at least 34."""
    header = data[:14]
    eth = _eth_cache.get(header) or _ethernet_layer(header)
    etype = eth[2]
    if etype == ETHERTYPE_IP:
        if data[14] != 0x45:
            return None
        tos, tlen, ident, frag, ttl, proto, csum = _IP4_REST.unpack_from(data, 15)
        if tlen < 20 or frag & 0x1FFF:
            return None
        key = data[26:34]
        pair = _pair4_cache.get(key)
        if pair is None:
            if len(_pair4_cache) >= 65536:
                _pair4_cache.clear()
            a, b = _II.unpack(key)
            pair = _pair4_cache[key] = (ip4_text(a), ip4_text(b))
        src, dst = pair
        ip: IPv4 | IPv6 = _new(IPv4, (4, 20, tos, tlen, ident, frag >> 13, 0, ttl, proto, csum, src, dst, b""))
        end = 14 + tlen
        p = 34
        icmp_proto = 1
    elif etype == ETHERTYPE_IPV6:
        if n < 54:
            return None
        vfl, plen, proto, hlim = _IP6_HEAD.unpack_from(data, 14)
        if vfl >> 28 != 6 or proto not in (6, 17, 58) or not plen:
            return None
        key = data[22:54]
        pair = _pair6_cache.get(key)
        if pair is None:
            if len(_pair6_cache) >= 65536:
                _pair6_cache.clear()
            pair = _pair6_cache[key] = (ip6_text(key[:16]), ip6_text(key[16:]))
        ip = _new(IPv6, (6, (vfl >> 20) & 0xFF, vfl & 0xFFFFF, plen, proto, hlim, pair[0], pair[1], (), proto))
        end = 54 + plen
        p = 54
        icmp_proto = 58
    else:
        return None
    if end > n:
        end = n
    avail = end - p
    if proto == 6:
        if avail < 20:
            return None
        sport, dport, seq, ack, doff, flags, win, tsum, urg = _TCP.unpack_from(data, p)
        hlen = (doff >> 4) << 2
        if hlen < 20 or hlen > avail:
            return None
        t: TCP | UDP | ICMP | ICMPv6 = _new(TCP, (sport, dport, seq, ack, hlen, flags, win, tsum, urg,
                                                  data[p + 20 : p + hlen] if hlen > 20 else b""))
        start = p + hlen
    elif proto == 17:
        if avail < 8:
            return None
        sport, dport, ulen, usum = _UDP.unpack_from(data, p)
        if sport == VXLAN_PORT or dport == VXLAN_PORT:
            return None
        t = _new(UDP, (sport, dport, ulen, usum))
        start = p + 8
        if ulen >= 8 and p + ulen < end:
            end = p + ulen
    elif proto == icmp_proto:
        if avail < 8:
            return None
        typ, code, isum = _ICMP.unpack_from(data, p)
        t = _new(ICMP if proto == 1 else ICMPv6, (typ, code, isum, data[p + 4 : p + 8]))
        start = p + 8
    else:
        return None
    return eth, ip, t, p, start, end


def _fast_ethernet(data: bytes, n: int, wire_len: int) -> Decoded | None:
    layers = fast_layers(data, n)
    if layers is None:
        return None
    eth, ip, t, p, start, end = layers
    d = _object_new(Decoded)
    d.data = data
    d.wire_len = wire_len
    d.layers = [eth, ip, t]
    d.offsets = [0, 14, p]
    d.link = eth
    d.net = ip
    d.net_offset = 14
    d.transport = t
    d.transport_offset = p
    d.payload_offset = start
    d.payload_end = end
    return d


# -- link layers -------------------------------------------------------------------------------------
def _ethernet(d: Decoded, data: bytes, off: int, end: int) -> None:
    if end - off < 14:
        d.truncated = "ether"
        d.payload_offset = off
        return
    header = data[off : off + 14]
    d.link = eth = _eth_cache.get(header) or _ethernet_layer(header)
    etype = eth.ethertype
    d.layers.append(eth)
    d.offsets.append(off)
    off += 14
    if etype in VLAN_TPIDS:
        off, etype = _vlans(d, data, off, end, etype, VLAN_TPIDS)
        if off < 0:
            return
    if etype <= 1500:
        # An 802.3 length: an LLC frame of that many bytes follows (the rest is padding).
        d.payload_offset = off
        d.payload_end = min(end, off + etype)
        return
    _ethertype(d, data, etype, off, end)


def _vlans(d: Decoded, data: bytes, off: int, end: int, etype: int, tpids: frozenset[int]) -> tuple[int, int]:
    tags: list[Vlan] = []
    while etype in tpids:
        if end - off < 4:
            d.truncated = "vlan"
            d.payload_offset = off
            d.vlans = tuple(tags)
            return -1, etype
        tci, inner = _HH.unpack_from(data, off)
        tag = _new(Vlan, (etype, tci >> 13, (tci >> 12) & 1, tci & 0xFFF, inner))
        tags.append(tag)
        d.layers.append(tag)
        d.offsets.append(off)
        off += 4
        etype = inner
    d.vlans = tuple(tags)
    return off, etype


def _sll(d: Decoded, data: bytes, end: int) -> None:
    if end < 16:
        d.truncated = "sll"
        return
    pkttype, hatype, halen, addr, proto = _SLL.unpack_from(data)
    d.link = link = _new(LinuxSLL, (pkttype, hatype, halen, mac_text(addr[: min(halen, 8)]), proto))
    d._add(link, 0)
    _cooked_payload(d, data, proto, 16, end)


def _sll2(d: Decoded, data: bytes, end: int) -> None:
    if end < 20:
        d.truncated = "sll2"
        return
    proto, _, ifindex, hatype, pkttype, halen, addr = _SLL2.unpack_from(data)
    d.link = link = _new(LinuxSLL2, (proto, ifindex, hatype, pkttype, halen, mac_text(addr[: min(halen, 8)])))
    d._add(link, 0)
    _cooked_payload(d, data, proto, 20, end)


def _cooked_payload(d: Decoded, data: bytes, proto: int, off: int, end: int) -> None:
    # libpcap's cooked headers carry at most one 802.1Q tag (the kernel strips the outer one into
    # metadata, and libpcap puts it back only as 0x8100).
    d.payload_offset = off
    if proto == 0x8100:
        off, proto = _vlans(d, data, off, end, proto, frozenset({0x8100}))
        if off < 0:
            return
        d.payload_offset = off
    if proto > 1500:
        _ethertype(d, data, proto, off, end)


def _null(d: Decoded, data: bytes, end: int) -> None:
    if end < 4:
        d.truncated = "null"
        return
    family = int.from_bytes(data[:4], "little")
    if family & 0xFFFF0000:
        # Written on a machine of the other byte order (or DLT_LOOP, always network order).
        family = int.from_bytes(data[:4], "big")
    d.link = link = _new(Loopback, (family,))
    d._add(link, 0)
    d.payload_offset = 4
    if family == 2:
        _ethertype(d, data, ETHERTYPE_IP, 4, end)
    elif family in (24, 28, 30):
        _ethertype(d, data, ETHERTYPE_IPV6, 4, end)


# -- network layers ----------------------------------------------------------------------------------
def _ethertype(d: Decoded, data: bytes, etype: int, off: int, end: int) -> None:
    d.payload_offset = off
    if etype == ETHERTYPE_IP:
        _ipv4(d, data, off, end)
    elif etype == ETHERTYPE_IPV6:
        _ipv6(d, data, off, end)
    elif etype in (ETHERTYPE_ARP, ETHERTYPE_REVARP):
        _arp(d, data, off, end)


def _arp(d: Decoded, data: bytes, off: int, end: int) -> None:
    if end - off < 8:
        d.truncated = "arp"
        return
    htype, ptype, hlen, plen, op = _ARP.unpack_from(data, off)
    p = off + 8
    if p + 2 * (hlen + plen) > end:
        d.truncated = "arp"
        return
    sha = data[p : p + hlen]
    spa = data[p + hlen : p + hlen + plen]
    tha = data[p + hlen + plen : p + 2 * hlen + plen]
    tpa = data[p + 2 * hlen + plen : p + 2 * (hlen + plen)]
    ip4 = plen == 4 and ptype in (ETHERTYPE_IP, 0x1000)
    spa_t = ".".join(map(str, spa)) if ip4 else spa.hex(":")
    tpa_t = ".".join(map(str, tpa)) if ip4 else tpa.hex(":")
    d.net = arp = _new(ARP, (htype, ptype, hlen, plen, op, mac_text(sha), spa_t, mac_text(tha), tpa_t))
    d.net_offset = off
    d._add(arp, off)
    d.payload_offset = d.payload_end = p + 2 * (hlen + plen)


def _ipv4(d: Decoded, data: bytes, off: int, end: int) -> None:
    if end - off < 20:
        d.truncated = "ip"
        return
    ip = ipv4_layer(data, off)
    hlen = ip.ihl
    tlen = ip.total_length
    if d.net is None:
        d.net = ip
        d.net_offset = off
    d.layers.append(ip)
    d.offsets.append(off)
    if ip.version != 4 or hlen < 20 or tlen < hlen:
        d.payload_offset = d.payload_end = off + 20
        return
    p = off + hlen
    if p > end:
        d.truncated = "ip"
        d.payload_offset = end
        return
    if off + tlen < end:
        end = off + tlen
    d.payload_offset = p
    d.payload_end = end
    if ip.frag_offset:  # a later fragment carries no upper-layer header
        return
    _upper(d, data, ip.proto, p, end, True)


def _ipv6(d: Decoded, data: bytes, off: int, end: int) -> None:
    if end - off < 40:
        d.truncated = "ip6"
        return
    vfl, plen, nh, hlim, src, dst = _IP6.unpack_from(data, off)
    if plen and off + 40 + plen < end:
        end = off + 40 + plen
    p = off + 40
    exts: list[IPv6Extension | IPv6Fragment] = []
    proto = nh
    later_fragment = False
    if vfl >> 28 == 6:
        while True:
            if proto in IPV6_EXTENSIONS:
                if end - p < 2:
                    d.truncated = "ip6"
                    break
                size = (data[p + 1] + 1) * 8
                if end - p < size:
                    d.truncated = {0: "hbhopt", 43: "rt6", 60: "dstopt"}[proto]
                    break
                exts.append(_new(IPv6Extension, (proto, data[p], size, data[p + 2 : p + size])))
                proto = data[p]
                p += size
            elif proto == 44:
                if end - p < 8:
                    d.truncated = "frag6"
                    break
                nxt, offlg, ident = _FRAG6.unpack_from(data, p)
                exts.append(_new(IPv6Fragment, (nxt, offlg & 0xFFF8, bool(offlg & 1), ident)))
                proto = nxt
                p += 8
                if offlg & 0xFFF8:
                    later_fragment = True
                    break
            else:
                break
    ip = _new(IPv6, (vfl >> 28, (vfl >> 20) & 0xFF, vfl & 0xFFFFF, plen, nh, hlim, ip6_text(src), ip6_text(dst),
                     tuple(exts), proto))
    if d.net is None:
        d.net = ip
        d.net_offset = off
    d.layers.append(ip)
    d.offsets.append(off)
    d.payload_offset = p
    d.payload_end = end
    if vfl >> 28 != 6 or d.truncated or later_fragment:
        return
    _upper(d, data, proto, p, end, False)


def _upper(d: Decoded, data: bytes, proto: int, off: int, end: int, v4: bool) -> None:
    """The protocol after an IP header (and, for IPv6, its extension headers)."""
    avail = end - off
    if proto == 6:
        if avail < 20:
            d.truncated = "tcp"
            return
        tcp = tcp_layer(data, off)
        hlen = tcp.header_length
        t: Transport = tcp
        p = off + hlen if hlen >= 20 else off + 20
        if p > end:
            d.truncated = "tcp"
            p = end
    elif proto == 17:
        if avail < 8:
            d.truncated = "udp"
            return
        sport, dport, ulen, csum = _UDP.unpack_from(data, off)
        t = _new(UDP, (sport, dport, ulen, csum))
        p = off + 8
        if ulen >= 8 and off + ulen < end:
            end = off + ulen
        if (dport == VXLAN_PORT or sport == VXLAN_PORT) and end - p >= 8:
            _add_transport(d, t, off, p, end)
            _vxlan(d, data, p, end)
            return
    elif (proto == 1 and v4) or (proto == 58 and not v4):
        if avail < 4:
            d.truncated = "icmp" if v4 else "icmp6"
            return
        typ, code, csum = _ICMP.unpack_from(data, off)
        t = _new(ICMP if v4 else ICMPv6, (typ, code, csum, data[off + 4 : min(off + 8, end)]))
        p = min(off + 8, end)
    elif proto == 2 and v4:
        if avail < 8:
            d.truncated = "igmp"
            return
        typ, code, csum, group = _IGMP.unpack_from(data, off)
        t = _new(IGMP, (typ, code, csum, ip4_text(group)))
        p = off + 8
    elif proto == 47:
        _gre(d, data, off, end)
        return
    elif proto == 4:
        _ipv4(_inner(d, off, LINKTYPE_RAW), data, off, end)
        _finish_inner(d)
        return
    elif proto == 41:
        _ipv6(_inner(d, off, LINKTYPE_RAW), data, off, end)
        _finish_inner(d)
        return
    else:
        return
    _add_transport(d, t, off, p, end)


def _add_transport(d: Decoded, t: Transport, off: int, p: int, end: int) -> None:
    if d.transport is None:
        d.transport = t
        d.transport_offset = off
    d.layers.append(t)
    d.offsets.append(off)
    d.payload_offset = p
    d.payload_end = end


def _inner(d: Decoded, off: int, linktype: int) -> Decoded:
    """A Decoded for a packet carried inside this one (same bytes, its own layers)."""
    inner = Decoded(d.data, linktype, d.wire_len)
    inner.start = inner.payload_offset = off
    inner.payload_end = len(d.data)
    d.inner = inner
    return inner


def _finish_inner(d: Decoded) -> None:
    inner = d.inner
    if inner is not None and inner.truncated and not d.truncated:
        d.truncated = inner.truncated


def _gre(d: Decoded, data: bytes, off: int, end: int) -> None:
    if end - off < 4:
        d.truncated = "gre"
        return
    flags, proto = _HH.unpack_from(data, off)
    version = flags & 7
    p = off + 4
    need = p + (4 if flags & 0xC000 else 0) + (4 if flags & 0x2000 else 0) + (4 if flags & 0x1000 else 0)
    need += 4 if version == 1 and flags & 0x0080 else 0
    if need > end:
        d.truncated = "gre"
        return
    checksum = offset = key = seq = ack = None
    if flags & 0xC000 and version == 0:
        checksum, offset = _HH.unpack_from(data, p)
        p += 4
    if flags & 0x2000:
        key = int.from_bytes(data[p : p + 4], "big")
        p += 4
    if flags & 0x1000:
        seq = int.from_bytes(data[p : p + 4], "big")
        p += 4
    if version == 1 and flags & 0x0080:
        ack = int.from_bytes(data[p : p + 4], "big")
        p += 4
    g = _new(GRE, (flags, version, proto, checksum, offset, key, seq, ack))
    _add_transport(d, g, off, p, end)
    d.tunnel = g
    if version != 0 or flags & 0x4000:  # source routes: not decoded further
        return
    if proto == ETHERTYPE_IP:
        _ipv4(_inner(d, p, LINKTYPE_RAW), data, p, end)
    elif proto == ETHERTYPE_IPV6:
        _ipv6(_inner(d, p, LINKTYPE_RAW), data, p, end)
    elif proto == ETHERTYPE_TEB:
        _ethernet(_inner(d, p, LINKTYPE_ETHERNET), data, p, end)
    _finish_inner(d)


def _vxlan(d: Decoded, data: bytes, off: int, end: int) -> None:
    flags = data[off]
    vni = int.from_bytes(data[off + 4 : off + 7], "big")
    v = _new(VXLAN, (flags, vni))
    d.tunnel = v
    d.layers.append(v)
    d.offsets.append(off)
    d.payload_offset = off + 8
    _ethernet(_inner(d, off + 8, LINKTYPE_ETHERNET), data, off + 8, end)
    _finish_inner(d)


def decode_at(data: bytes, off: int, end: int, first: str, wire_len: int) -> Decoded:
    """Decode the packet that starts at ``data[off]`` (captured up to ``end``) with ``first`` its first
    header: ``"ether"``, ``"ip"`` or ``"ip6"`` (anything else: no layers). For packets inside others
    (tunnels, ICMP quotes)."""
    d = Decoded(data, LINKTYPE_ETHERNET if first == "ether" else LINKTYPE_RAW, wire_len)
    d.start = d.payload_offset = off
    d.payload_end = end
    if first == "ether":
        _ethernet(d, data, off, end)
    elif first == "ip":
        _ipv4(d, data, off, end)
    elif first == "ip6":
        _ipv6(d, data, off, end)
    return d


def ipv4_layer(data: bytes, off: int) -> IPv4:
    """The IPv4 header at ``data[off]`` (20 bytes must be there)."""
    vhl, tos, tlen, ident, frag, ttl, proto, csum, src, dst = _IP4.unpack_from(data, off)
    hlen = (vhl & 15) * 4
    ip: IPv4 = _new(IPv4, (vhl >> 4, hlen, tos, tlen, ident, frag >> 13, (frag & 0x1FFF) * 8, ttl, proto, csum,
                           ip4_text(src), ip4_text(dst), data[off + 20 : off + hlen] if hlen > 20 else b""))
    return ip


def tcp_layer(data: bytes, off: int) -> TCP:
    """The TCP header at ``data[off]`` (20 bytes must be there; options as far as captured)."""
    sport, dport, seq, ack, doff, flags, win, csum, urg = _TCP.unpack_from(data, off)
    hlen = (doff >> 4) * 4
    tcp: TCP = _new(TCP, (sport, dport, seq, ack, hlen, flags, win, csum, urg,
                          data[off + 20 : off + hlen] if hlen > 20 else b""))
    return tcp

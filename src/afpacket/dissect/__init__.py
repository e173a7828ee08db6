"""Packet dissection: structured fields (:func:`decode`, also ``afpacket.decode``) and the lines
``tcpdump -n`` prints, printed from those fields (:class:`LinePrinter`).

``decode(frame)`` gives a :class:`Decoded` with one small record per header (Ethernet, VLAN tags, Linux
cooked headers, ARP, IPv4, IPv6 with its extension headers, TCP, UDP, ICMP, ICMPv6, IGMP, GRE, VXLAN
and the packet inside a tunnel), the application payload and the flow 5-tuple. ``LinePrinter`` turns
packets into tcpdump 4.99's text, option for option (-e, -v, -q, -S, -x/-X/-A).

Example::

    from afpacket import open_reader
    from afpacket.dissect import LinePrinter, decode

    printer = LinePrinter()
    for rec in open_reader("x.pcap"):
        d = decode(rec.data, rec.linktype)
        print(d.flow, printer.line(rec.data, rec.wire_len, rec.linktype))
"""

from __future__ import annotations

from .checksum import checksum_of
from .decoder import Decoded, decode
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
    LinuxSLL,
    LinuxSLL2,
    Loopback,
    Vlan,
)
from .printer import LinePrinter

__all__ = [
    "ARP",
    "GRE",
    "ICMP",
    "IGMP",
    "TCP",
    "UDP",
    "VXLAN",
    "Decoded",
    "Ethernet",
    "Flow",
    "ICMPv6",
    "IPv4",
    "IPv6",
    "IPv6Extension",
    "IPv6Fragment",
    "LinePrinter",
    "LinuxSLL",
    "LinuxSLL2",
    "Loopback",
    "Vlan",
    "checksum_of",
    "decode",
]

"""Link-layer header types of savefiles (tcpdump.org/linktypes.html) and how a packet socket maps to one.

A SOCK_RAW packet socket hands over the device's own link header, so the link type follows the device
type (ARPHRD_*); a SOCK_DGRAM socket strips it, and libpcap then synthesises a "cooked" header (SLL or
SLL2), which is what the ``any`` device always uses.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from .. import abi

LINKTYPE_NULL: Final = 0  # BSD loopback: 4-byte address family in host order
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101  # bare IPv4 or IPv6, told apart by the version nibble
LINKTYPE_LOOP: Final = 108  # like NULL, but the family is in network order
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

#: tcpdump's name and description, as it prints them in "reading from file ..., link-type NAME (DESC)"
LINKTYPE_NAMES: Final = {
    LINKTYPE_NULL: ("NULL", "BSD loopback"),
    LINKTYPE_ETHERNET: ("EN10MB", "Ethernet"),
    LINKTYPE_RAW: ("RAW", "Raw IP"),
    LINKTYPE_LOOP: ("LOOP", "OpenBSD loopback"),
    LINKTYPE_LINUX_SLL: ("LINUX_SLL", "Linux cooked v1"),
    LINKTYPE_IPV4: ("IPV4", "Raw IPv4"),
    LINKTYPE_IPV6: ("IPV6", "Raw IPv6"),
    LINKTYPE_LINUX_SLL2: ("LINUX_SLL2", "Linux cooked v2"),
}

# Device types whose SOCK_RAW link header is an Ethernet header. Linux loopback (ARPHRD_LOOPBACK)
# carries a zeroed Ethernet header too, which is why libpcap records "lo" as EN10MB.
_ETHERNET_LIKE: Final = frozenset({abi.ARPHRD_ETHER, abi.ARPHRD_LOOPBACK})


def linktype_for(arphrd: int, sock_type: int = socket.SOCK_RAW, *, cooked_v2: bool = False) -> int:
    """The savefile link type for packets read from a device of type ``arphrd`` with ``sock_type``.

    SOCK_DGRAM sockets get a cooked link type (SLL, or SLL2 with ``cooked_v2``). Devices with no link
    header (tun, wireguard: ARPHRD_NONE) give bare IP packets. Any other device type is recorded cooked
    too, as libpcap does when it has no better mapping.
    """
    cooked = LINKTYPE_LINUX_SLL2 if cooked_v2 else LINKTYPE_LINUX_SLL
    if sock_type == socket.SOCK_DGRAM:
        return cooked
    if arphrd in _ETHERNET_LIKE:
        return LINKTYPE_ETHERNET
    if arphrd == abi.ARPHRD_NONE:
        return LINKTYPE_RAW
    return cooked


def describe(linktype: int) -> str:
    """``linktype`` as tcpdump names it: ``"EN10MB (Ethernet)"``, or the bare number for a type we have
    no name for."""
    name = LINKTYPE_NAMES.get(linktype)
    return f"{name[0]} ({name[1]})" if name else f"{linktype}"


_SLL_HEADER: Final = struct.Struct("!HHH8sH")
_SLL2_HEADER: Final = struct.Struct("!HHIHBB8s")
_VLAN_TAG: Final = struct.Struct("!HH")


def cooked_header(pkttype: int, hatype: int, addr: bytes, protocol: int, ifindex: int = 0, version: int = 1) -> bytes:
    """The Linux cooked header libpcap puts before SOCK_DGRAM packets: 16-byte SLL (``version=1``) or
    20-byte SLL2 (``version=2``, which also records ``ifindex``), from the packet's sockaddr_ll:
    ``pkttype`` (PACKET_*), ``hatype`` (ARPHRD_*), ``addr`` (the link-layer source address; at most 8
    bytes kept, zero padded) and ``protocol`` (the EtherType)."""
    if version == 2:
        return _SLL2_HEADER.pack(protocol, 0, ifindex & 0xFFFFFFFF, hatype, pkttype, min(len(addr), 8),
                                 addr[:8].ljust(8, b"\0"))
    return _SLL_HEADER.pack(pkttype, hatype, min(len(addr), 8), addr[:8].ljust(8, b"\0"), protocol)


def insert_tag(frame: bytes, tpid: int, tci: int) -> bytes:
    """``frame`` with an 802.1Q/802.1ad tag (``tpid`` 0x8100/0x88a8, ``tci``: priority, DEI, VLAN id)
    inserted after its MAC addresses (unchanged if it is too short to have them)."""
    if len(frame) < 12:
        return frame
    return frame[:12] + _VLAN_TAG.pack(tpid, tci) + frame[12:]

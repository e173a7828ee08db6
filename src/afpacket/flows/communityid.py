"""Community ID v1: the flow hash Zeek, Suricata, Arkime, Elastic and Wireshark print for a connection.

A flow record carries it so that one string comparison joins afpacket's records with another tool's logs of the
same traffic, with no fiddling over which side is the originator or how each tool spells an address. The
algorithm is the public specification's (https://github.com/corelight/community-id-spec); this module is written
from it and checked against the specification's published vectors and the ``communityid`` package.

The hash input, all in network byte order, is::

    seed (2 bytes) . address A . address B . protocol (1 byte) . 0 (1 byte) [. port A (2) . port B (2)]

where (A, port A) is the numerically smaller endpoint, so both directions of a conversation hash alike. The
ports are there only for TCP, UDP, SCTP, ICMP and ICMPv6; every other IP protocol hashes the addresses alone.
ICMP has no ports, so the type stands in for the source port and, for the request/reply types that come in
pairs (echo, timestamp, router solicitation/advertisement, ...), the *counterpart* type for the destination
port: a request and its reply then give the same tuple and so the same ID. The other ICMP types are one-way:
the code is the destination port and the endpoints stay in the order given (the sender first), as Zeek does.
The result is ``"1:"`` (the version) followed by the base64 SHA-1 digest.

The cost is one SHA-1 of at most 40 bytes and one ``struct`` pack: meant to run once per flow, not per packet.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from typing import Final

from .. import _check
from ..errors import ArgumentError

__all__ = ["community_id"]

#: IP protocol numbers whose flows hash with ports (the ICMPs through their type/code mapping).
PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_ICMP6: Final = 58
PROTO_SCTP: Final = 132
#: Protocols whose hash input includes the two ports (for the ICMPs, the type and counterpart or code).
PORT_PROTOCOLS: Final[frozenset[int]] = frozenset({PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMP6})


def _both_ways(pairs: tuple[tuple[int, int], ...]) -> dict[int, int]:
    """The counterpart table of request/reply type pairs, looked up from either side."""
    table = {}
    for request, reply in pairs:
        table[request] = reply
        table[reply] = request
    return table


#: ICMPv4 types that come as request/reply pairs (RFC 792, 950, 1256): type -> the other type of its pair.
#: Types absent from the table are one-way (errors such as destination unreachable or time exceeded).
_ICMP_COUNTERPART: Final[dict[int, int]] = _both_ways((
    (8, 0),    # echo request, echo reply
    (13, 14),  # timestamp request, reply
    (15, 16),  # information request, reply
    (10, 9),   # router solicitation, router advertisement
    (17, 18),  # address mask request, reply
))
#: The same for ICMPv6 (RFC 4443, 4861, 2710, 4620, 6275).
_ICMP6_COUNTERPART: Final[dict[int, int]] = _both_ways((
    (128, 129),  # echo request, echo reply
    (133, 134),  # router solicitation, router advertisement
    (135, 136),  # neighbor solicitation, neighbor advertisement
    (130, 131),  # multicast listener query, multicast listener report
    (139, 140),  # node information query, node information response
    (144, 145),  # home agent address discovery request, reply
))

# One precompiled layout per (address length, with ports): a single pack builds the whole hash input. The
# 'x' is the padding byte that keeps the input on a 32-bit boundary.
_WITH_PORTS: Final[dict[int, struct.Struct]] = {
    4: struct.Struct("!H4s4sBxHH"),
    16: struct.Struct("!H16s16sBxHH"),
}
_WITHOUT_PORTS: Final[dict[int, struct.Struct]] = {
    4: struct.Struct("!H4s4sBx"),
    16: struct.Struct("!H16s16sBx"),
}

_WHERE = "community_id"


def community_id(proto: int, src: bytes, dst: bytes, sport: int, dport: int, seed: int = 0) -> str:
    """The Community ID v1 string of a flow, such as ``'1:wCb3OG7yAFWelaUydu0D+125CLM='``.

    ``proto`` is the IP protocol number (0..255: 6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6, any other is hashed
    without ports). ``src`` and ``dst`` are the packed addresses of the two endpoints, both 4 bytes (IPv4) or
    both 16 bytes (IPv6), as found in the IP header or given by ``ipaddress.ip_address(text).packed``.
    ``sport`` and ``dport`` are the ports (0..65535); for ICMP and ICMPv6 pass the message type as ``sport`` and
    the code as ``dport``, and for protocols without ports any value (they are ignored; 0 reads best).
    ``seed`` (0..65535, default 0 as in Zeek and Suricata) separates ID domains: only IDs made with the same
    seed compare.

    Which endpoint is ``src`` does not matter (the endpoints are sorted before hashing), except for one-way
    ICMP messages, where the sender must be ``src``, as in a flow record's originator.

    Raises ``TypeError`` for an argument of the wrong type and :class:`~afpacket.errors.ArgumentError` (a
    ``ValueError``) for a value out of range or addresses of different families, naming the parameter.

    Example::

        >>> import ipaddress
        >>> a, b = ipaddress.ip_address("1.2.3.4").packed, ipaddress.ip_address("5.6.7.8").packed
        >>> community_id(6, a, b, 1122, 3344)
        '1:wCb3OG7yAFWelaUydu0D+125CLM='
        >>> community_id(6, b, a, 3344, 1122)
        '1:wCb3OG7yAFWelaUydu0D+125CLM='
    """
    # The usual call passes plain ints and bytes: test for exactly those first and leave the slower, more
    # forgiving checks (numpy integers, bytearray, the error messages) to the rare call that needs them.
    if not (type(proto) is int and 0 <= proto <= 255):
        proto = _integer("proto", proto, 255)
    if not (type(sport) is int and 0 <= sport <= 0xFFFF):
        sport = _integer("sport", sport, 0xFFFF)
    if not (type(dport) is int and 0 <= dport <= 0xFFFF):
        dport = _integer("dport", dport, 0xFFFF)
    if not (type(seed) is int and 0 <= seed <= 0xFFFF):
        seed = _integer("seed", seed, 0xFFFF)
    if type(src) is not bytes or len(src) not in _WITH_PORTS:
        src = _address("src", src)
    if type(dst) is not bytes or len(dst) not in _WITH_PORTS:
        dst = _address("dst", dst)
    if len(src) != len(dst):
        raise ArgumentError(
            f"{_WHERE}: src and dst must be addresses of the same family, got {len(src)} and {len(dst)} bytes"
        )

    if proto in (PROTO_ICMP, PROTO_ICMP6):
        table = _ICMP_COUNTERPART if proto == PROTO_ICMP else _ICMP6_COUNTERPART
        counterpart = table.get(sport)
        if counterpart is None:
            # One-way message: the code is the second "port" and the sender stays first, so no sorting.
            data = _WITH_PORTS[len(src)].pack(seed, src, dst, proto, sport, dport)
            return _render(data)
        dport = counterpart  # the code of a request/reply type plays no part
    elif proto not in PORT_PROTOCOLS:
        if dst < src:
            src, dst = dst, src
        return _render(_WITHOUT_PORTS[len(src)].pack(seed, src, dst, proto))

    if dst < src or (dst == src and dport < sport):
        src, dst, sport, dport = dst, src, dport, sport
    return _render(_WITH_PORTS[len(src)].pack(seed, src, dst, proto, sport, dport))


def _render(data: bytes) -> str:
    """``"1:"`` and the base64 SHA-1 of the hash input: the version tells apart IDs of future algorithms."""
    return "1:" + binascii.b2a_base64(hashlib.sha1(data).digest(), newline=False).decode("ascii")


def _integer(name: str, value: object, maximum: int) -> int:
    """``value`` as an int in 0..``maximum``, or the error naming ``name`` (the slow path of the checks)."""
    n = _check.count(_WHERE, name, value, optional=False, maximum=maximum)
    assert n is not None  # optional=False never gives None
    return n


def _address(name: str, value: object) -> bytes:
    """``value`` as 4 or 16 packed bytes, or the error naming ``name``: a text address is the likely mistake,
    so the message says how to pack one."""
    if isinstance(value, str):
        raise TypeError(
            f"{_WHERE}: {name} must be a packed address (bytes), not str; "
            f"use ipaddress.ip_address({value!r}).packed"
        )
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{_WHERE}: {name} must be a packed address (bytes), not {type(value).__name__}")
    packed = bytes(value)
    if len(packed) not in _WITH_PORTS:
        raise ArgumentError(
            f"{_WHERE}: {name} must be a packed IPv4 (4 bytes) or IPv6 (16 bytes) address, got {len(packed)} bytes"
        )
    return packed

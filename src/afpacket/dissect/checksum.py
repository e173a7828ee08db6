"""The Internet checksum as tcpdump computes and reports it (in_cksum, in_cksum_shouldbe), for every
printer that verifies one (IPv4, TCP, UDP, ICMP, ICMPv6, IGMP, GRE)."""

from __future__ import annotations


def checksum_of(*parts: bytes) -> int:
    """The Internet checksum over ``parts`` as tcpdump's in_cksum returns it: 0 when the data (with its
    checksum field) is correct. Each part must start on an even offset of the summed whole, except the
    last (an odd tail is padded with a zero byte).

    Summing the 16-bit words modulo 0xffff equals reading the bytes as one big integer modulo 0xffff
    (2**16 = 1 mod 0xffff), which CPython does in C."""
    total = 0
    nonzero = False
    for part in parts:
        if len(part) & 1:
            part = part + b"\0"
        value = int.from_bytes(part, "big")
        if value:
            nonzero = True
        total += value % 0xFFFF
    folded = total % 0xFFFF
    if folded == 0 and nonzero:
        folded = 0xFFFF
    return ~folded & 0xFFFF



def shouldbe(field: int, computed: int) -> int:
    """The checksum field value that would have made the sum right (tcpdump's in_cksum_shouldbe)."""
    s = field + computed
    s = (s & 0xFFFF) + (s >> 16)
    return ((s & 0xFFFF) + (s >> 16)) & 0xFFFF

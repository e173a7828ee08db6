"""Application protocols tcpdump names on a UDP or TCP line: DNS, DHCP/BOOTP, DHCPv6, NTP, HTTP, SSH.

tcpdump picks a UDP or TCP payload's printer from the ports alone, trying its printers in a fixed order and
taking the first whose port is the source or the destination: a DNS reply to port 123 is DNS, not NTP. The
tables below keep that order (as a rank per port) for every printer up to the last one implemented here, so a
port pair is never claimed by a printer tcpdump would not have chosen. The lookup is two dict probes; only the
chosen printer reads the payload. The printers themselves live in the ``app_*`` modules.
"""

from __future__ import annotations

from collections.abc import Callable

from .app_dhcp import bootp_text, dhcp6_text
from .app_dns import dns_tcp_text, dns_text
from .app_http import http_text, rtsp_text, ssh_text, text_protocol
from .app_ntp import ntp_text

_Printer = Callable[[bytes, int, "int | None"], str]  # (captured payload, verbose, wire length)
_NOT_HERE = 99  # rank of ports no printer claims

# -- UDP: tcpdump's order (4.99) up to DHCPv6; None marks a printer of tcpdump's that is not implemented here.
_UDP_EITHER: dict[int, int] = {
    53: 1, 5353: 2, 525: 3, 69: 4, 67: 5, 68: 5, 520: 6, 654: 7, 500: 8, 4500: 9, 7500: 10, 8500: 10,
    161: 11, 162: 11, 123: 12, 88: 13, 750: 13, 1701: 14, 2103: 16, 2104: 16, 521: 18, 546: 19, 547: 19,
    **dict.fromkeys(range(7000, 7010), 17),
}
_UDP_DPORT: dict[int, int] = {3456: 15}  # VAT is recognised by destination port only
_UDP_PRINTERS: dict[int, _Printer | None] = {
    1: lambda p, v, n: dns_text(p, v, False, n),
    2: lambda p, v, n: dns_text(p, v, True, n),
    5: bootp_text,
    12: ntp_text,
    19: dhcp6_text,
}
_NFS = 2049

# -- TCP: tcpdump's order up to its last port-chosen printer (NetBIOS/SMB are not built into Debian's tcpdump).
_TCP_EITHER: dict[int, int] = {
    23: 1, 25: 2, 43: 3, 179: 4, 1723: 5, 6379: 6, 22: 7, 10288: 8, 6633: 9, 6653: 9, 21: 10, 80: 11,
    8080: 11, 554: 12, 8554: 12, 53: 13, 639: 14, 323: 15, 646: 16, 2049: 17,
}
_TCP_PRINTERS: dict[int, _Printer | None] = {
    2: lambda p, v, n: text_protocol(p, v, "smtp", None, n),
    3: lambda p, v, n: text_protocol(p, v, "whois", None, n),
    7: lambda p, v, n: ssh_text(p, n),
    10: lambda p, v, n: text_protocol(p, v, "ftp", None, n),
    11: http_text,
    12: rtsp_text,
    13: dns_tcp_text,
}


#: Per port: (its TCP rank, its UDP rank as either port, its UDP rank as the destination port), for claimed().
_RANKS: dict[int, tuple[int, int, int]] = {
    port: (_TCP_EITHER.get(port, _NOT_HERE), _UDP_EITHER.get(port, _NOT_HERE), _UDP_DPORT.get(port, _NOT_HERE))
    for port in (*_TCP_EITHER, *_UDP_EITHER, *_UDP_DPORT)
}
_NO_RANKS = (_NOT_HERE, _NOT_HERE, _NOT_HERE)
_TCP_PRINTING = frozenset(rank for rank, printer in _TCP_PRINTERS.items() if printer is not None)
_UDP_PRINTING = frozenset(rank for rank, printer in _UDP_PRINTERS.items() if printer is not None)
_NOTHING = (False, False)


def claimed(sport: int, dport: int) -> tuple[bool, bool]:
    """Whether :func:`tcp_app` and :func:`udp_app` may print something for this port pair (False: that one
    always returns None), so a caller can remember it per flow instead of asking per packet."""
    a = _RANKS.get(sport, _NO_RANKS)
    b = _RANKS.get(dport, _NO_RANKS)
    if a is b is _NO_RANKS:
        return _NOTHING
    return min(a[0], b[0]) in _TCP_PRINTING, min(a[1], b[1], b[2]) in _UDP_PRINTING


def udp_app(sport: int, dport: int, payload: bytes, verbose: int, *, length: int | None = None) -> str | None:
    """What tcpdump -n prints after ``"SRC.SPORT > DST.DPORT: "`` for a UDP application it decodes
    (e.g. ``"4660+ A? example.com. (29)"``), or None: the caller then prints ``"UDP, length N"``.
    ``payload`` is the UDP payload as captured (may be cut short by the snaplen); ``length`` is its length
    on the wire (the UDP length, bounded by the IP length), which tcpdump prints (DNS ``(N)``, DHCP and NTP
    ``length N``) even when the capture holds less; None means ``len(payload)``."""
    get = _UDP_EITHER.get
    rank = min(get(sport, _NOT_HERE), get(dport, _NOT_HERE), _UDP_DPORT.get(dport, _NOT_HERE))
    if rank == _NOT_HERE:
        return None
    if (dport == _NFS or sport == _NFS) and len(payload) >= 8:
        # tcpdump tries NFS (by the RPC direction word) before any port printer.
        direction = int.from_bytes(payload[4:8], "big")
        if (dport == _NFS and direction == 0) or (sport == _NFS and direction == 1):
            return None
    printer = _UDP_PRINTERS.get(rank)
    return printer(payload, verbose, length) if printer else None


def tcp_app(sport: int, dport: int, payload: bytes, verbose: int, *, length: int | None = None) -> str | None:
    """What tcpdump -n appends after ``"length N"`` on a TCP line whose payload it decodes, including the
    leading separator (e.g. ``": HTTP: GET / HTTP/1.1"``), or None: nothing is appended.
    Called only when the segment carries payload bytes. ``length``: the payload's length on the wire (the
    ``N`` of ``length N``) when the capture holds less; None means ``len(payload)``."""
    get = _TCP_EITHER.get
    rank = min(get(sport, _NOT_HERE), get(dport, _NOT_HERE))
    printer = _TCP_PRINTERS.get(rank)
    if printer is None:
        return None
    return printer(payload, verbose, length) or None

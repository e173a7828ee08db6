"""The names tcpdump 4.99 prints for numbers: ethertypes, IP protocols, TCP options, ARP fields.

Only the values tcpdump has a name for are listed; a missing value prints tcpdump's fallback text,
which each caller supplies (``"Unknown"``, ``"unknown"``, ``"unknown-N"``, ...).
"""

from __future__ import annotations

from typing import Final

#: tcpdump's ethertype_values (print-ether.c). 0x9100 appears there twice; the first name wins.
ETHERTYPES: Final = {
    0x0800: "IPv4", 0x8847: "MPLS unicast", 0x8848: "MPLS multicast", 0x86DD: "IPv6", 0x8100: "802.1Q",
    0x9100: "802.1Q-9100", 0x88A8: "802.1Q-QinQ", 0x9200: "802.1Q-9200", 0x88E5: "802.1AE MACsec",
    0x0200: "PUP", 0x0806: "ARP", 0x8035: "Reverse ARP", 0x0600: "NS", 0x0500: "Sprite", 0x1000: "Trail",
    0x6001: "MOP DL", 0x6002: "MOP RC", 0x6003: "DN", 0x6004: "LAT", 0x6007: "SCA", 0x6558: "TEB",
    0x8038: "Lanbridge", 0x803C: "DEC DNS", 0x803E: "DEC DTS", 0x805B: "VEXP", 0x805C: "VPROD",
    0x809B: "Appletalk", 0x80F3: "Appletalk ARP", 0x8137: "IPX", 0x880B: "PPP", 0x8808: "MPCP",
    0x8809: "Slow Protocols", 0x8863: "PPPoE D", 0x8864: "PPPoE S", 0x888E: "EAPOL", 0x8899: "Realtek protocols",
    0x886F: "MS NLB heartbeat", 0x8870: "Jumbo", 0x894F: "NSH", 0x9000: "Loopback", 0xFEFE: "OSI",
    0x00FE: "GRE-OSI", 0xABCD: "CFM (old)", 0x8902: "CFM", 0x893A: "IEEE1905.1", 0x88CC: "LLDP", 0x88CA: "TIPC",
    0x0707: "GeoNet (old)", 0x8947: "GeoNet", 0x1111: "CALM FAST", 0x88A2: "AoE", 0x88F7: "PTP",
    0xD28B: "Arista Vendor Specific Protocol",
}

#: tcpdump's ipproto_values (ipproto.c), used by -v ("proto TCP (6)", "next-header ICMPv6 (58)").
IPPROTOS: Final = {
    0: "Options", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 8: "EGP", 9: "IGRP", 17: "UDP", 33: "DCCP",
    41: "IPv6", 43: "Routing", 44: "Fragment", 46: "RSVP", 47: "GRE", 50: "ESP", 51: "AH", 55: "Mobile IP",
    58: "ICMPv6", 62: "Mobile IP (old)", 88: "EIGRP", 89: "OSPF", 103: "PIM", 108: "Compressed IP", 112: "VRRP",
    113: "PGM", 132: "SCTP", 135: "Mobility", 143: "Ethernet",
}

#: print-tcp.c tcp_option_values (kind 13, CCECHO, really has an empty name there).
TCP_OPTIONS: Final = {
    0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo", 7: "echoreply", 8: "TS",
    11: "cc", 12: "ccnew", 13: "", 19: "md5", 20: "scps", 28: "uto", 29: "tcp-ao", 30: "mptcp", 34: "tfo",
    254: "exp",
}

#: The TCP flag letters in tcpdump's order (FIN first), for "Flags [S.]".
TCP_FLAG_LETTERS: Final = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
                           (0x40, "E"), (0x80, "W"))

ARP_OPS: Final = {1: "Request", 2: "Reply", 3: "Reverse Request", 4: "Reverse Reply", 8: "Inverse Request",
                  9: "Inverse Reply", 10: "NACK Reply"}
ARP_HARDWARE: Final = {1: "Ethernet", 6: "TokenRing", 7: "ArcNet", 15: "FrameRelay", 23: "Strip",
                       24: "IEEE 1394", 19: "ATM", 32: "InfiniBand"}

#: IPv4 options (print-ip.c ip_option_values).
IP_OPTIONS: Final = {0: "EOL", 1: "NOP", 68: "timestamp", 130: "security", 7: "RR", 137: "SSRR", 131: "LSRR",
                     148: "RA", 82: "traceroute"}

#: BSD address families of NULL/LOOP headers (af.c bsd_af_values).
BSD_AF: Final = {2: "IPv4", 6: "NS", 7: "ISO", 16: "Appletalk", 23: "IPX", 24: "IPv6", 28: "IPv6", 30: "IPv6"}

#: Linux packet types as cooked headers print them (print-sll.c).
SLL_PKTTYPES: Final = {0: "In", 1: "B", 2: "M", 3: "P", 4: "Out"}

#: GRE flag bits with -v (print-gre.c gre_flag_values), in tcpdump's order.
GRE_FLAGS: Final = ((0x8000, "checksum present"), (0x4000, "routing present"), (0x2000, "key present"),
                    (0x1000, "sequence# present"), (0x0800, "source routing present"), (0x0080, "ack present"))

UDP_PORTS_TCPDUMP_DECODES: Final = frozenset({
    # Ports print-udp.c hands to a protocol printer before "UDP, length N" (besides DNS, DHCP, NTP and
    # VXLAN, which afpacket prints). A packet on one of these prints differently from tcpdump.
    69, 88, 137, 138, 161, 162, 319, 320, 496, 500, 514, 520, 521, 525, 546, 547, 646, 654, 698, 701, 750, 921,
    1589, 1645, 1646, 1700, 1701, 1812, 1813, 1985, 2103, 2104, 3456, 3503, 3784, 3785, 3799, 4342, 4500,
    4567, 4784, 4790, 5060, 5353, 5359, 6081, 6343, 6635, 6696, 6697, 6784, 7500, 8231, 8472, 8500, 12222,
    12223, 17754, 30490, *range(7000, 7010),
})


def ethertype_name(etype: int, default: str = "Unknown") -> str:
    return ETHERTYPES.get(etype, default)


def tcp_flags(flags: int) -> str:
    return "".join(letter for bit, letter in TCP_FLAG_LETTERS if flags & bit) or "none"


#: "Flags [...]" text for every flag byte, built once.
TCP_FLAGS_TEXT: Final = tuple(f"Flags [{tcp_flags(f)}]" for f in range(256))

#: print-ppp.c ppptype2str (PPP protocol numbers, shown by -e inside PPTP's GRE).
PPP_PROTOCOLS: Final = {
    0x0021: "IP", 0x0023: "OSI", 0x0025: "NS", 0x0027: "DECNET", 0x0029: "APPLE", 0x002B: "IPX", 0x002D: "VJC IP",
    0x002F: "VJNC IP", 0x0031: "BRPDU", 0x0033: "STII", 0x0035: "VINES", 0x0281: "MPLS", 0x0283: "MPLS",
    0x00FD: "Compressed", 0x003D: "MLPPP", 0x0057: "IP6", 0x0201: "HELLO", 0x0231: "LUXCOM", 0x0233: "SNS",
    0x8021: "IPCP", 0x8023: "OSICP", 0x8025: "NSCP", 0x8027: "DECNETCP", 0x8029: "APPLECP", 0x802B: "IPXCP",
    0x8033: "STIICP", 0x8035: "VINESCP", 0x8057: "IP6CP", 0x8281: "MPLSCP", 0xC021: "LCP", 0xC023: "PAP",
    0xC025: "LQM", 0xC223: "CHAP", 0xC227: "EAP", 0xC027: "SPAP", 0xC123: "Old-SPAP", 0xC02B: "BACP",
    0xC02D: "BAP", 0xC03D: "MLPPP-CP", 0x80FD: "CCP",
}


def bittok(table: tuple[tuple[int, str], ...], v: int, none: str = "none") -> str:
    """tcpdump's bittok2str: the names of the bits set in ``v``, comma-separated, or ``none``."""
    names = [name for bit, name in table if bit and v & bit == bit]
    return ", ".join(names) if names else none

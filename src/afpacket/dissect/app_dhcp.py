"""BOOTP/DHCP (ports 67/68) and DHCPv6 (546/547) as tcpdump -n prints them.

``BOOTP/DHCP, Request from aa:bb:cc:dd:ee:ff, length 300`` and ``dhcp6 solicit``; with -v tcpdump lists the
header fields and every option (one per line, ``\\n\\t    ``-indented, for DHCP; in parentheses on the same line
for DHCPv6), and from -vvv the DHCP pad and end options as well. The option names and value formats are
tcpdump's, so the text can be compared with its output byte for byte.
"""

from __future__ import annotations

from .app_common import Stop, Truncated, finish, ipv4, ipv6, mac, text, u8, u16, u32
from .app_dns import Names

# -- BOOTP / DHCPv4 -----------------------------------------------------------------------------------------

#: Option names with tcpdump's value format as first letter: i addresses, p address pairs, l unsigned and
#: L signed 32-bit numbers, s 16-bit numbers, b dotted bytes, a text, B booleans, $ special, space: none.
_TAGS = {
    0: " PAD", 1: "iSubnet-Mask", 2: "LTime-Zone", 3: "iDefault-Gateway", 4: "iTime-Server",
    5: "iIEN-Name-Server", 6: "iDomain-Name-Server", 7: "iLOG", 8: "iCS", 9: "iLPR-Server", 10: "iIM",
    11: "iRL", 12: "aHostname", 13: "sBS", 255: " END", 14: "aDP", 15: "aDomain-Name", 16: "iSS", 17: "aRP",
    18: "aEP", 19: "BIPF", 20: "BSRT", 21: "pPF", 22: "sRSZ", 23: "bTTL", 24: "lMTU-Timeout",
    25: "sMTU-Table", 26: "sMTU", 27: "BLSN", 28: "iBR", 29: "BMD", 30: "BMS", 31: "BRouter-Discovery",
    32: "iRSA", 33: "pStatic-Route", 34: "BUT", 35: "lAT", 36: "BIE", 37: "bTT", 38: "lKI", 39: "BKG",
    40: "aYD", 41: "iYS", 42: "iNTP", 43: "bVendor-Option", 44: "iNetbios-Name-Server", 45: "iWDD",
    46: "$Netbios-Node", 47: "aNetbios-Scope", 48: "iXFS", 49: "iXDM", 64: "sN+D", 65: "iN+S", 68: "iMH",
    69: "iSMTP", 70: "iPOP3", 71: "iNNTP", 72: "iWWW", 73: "iFG", 74: "iIRC", 75: "iSTS", 76: "iSTDA",
    50: "iRequested-IP", 51: "lLease-Time", 52: "$OO", 66: "aTFTP", 67: "aBF", 53: " DHCP-Message",
    54: "iServer-ID", 55: "bParameter-Request", 56: "aMSG", 57: "sMSZ", 58: "lRN", 59: "lRB",
    60: "aVendor-Class", 61: "$Client-ID", 98: "aUAP", 116: "BNOAUTO", 78: "bSLP-DA", 79: "bSLP-SCOPE",
    117: "sNSSEARCH", 77: "$User-Class", 118: "iSUBNET", 121: "$Classless-Static-Route",
    249: "$Classless-Static-Route-Microsoft", 150: "iTFTP-Server-Address", 80: "aSLP-NA", 81: "$FQDN",
    82: "$Agent-Information", 83: "bARMT", 88: "aTZSTR", 89: "bFQDNS", 90: "bAUTH",
    91: "LLast-Transaction-Time", 92: "iAssociated-IP", 93: "sARCH", 94: "bNDI", 97: "bGUID", 95: "aLDAP",
    100: "aPOSIX-TZ", 101: "aTZ-Name", 112: "iNI", 113: "aNITAG", 114: "aURL", 161: "aMUD-URL",
}
_UNKNOWN_TAG = "?Unknown"
_DHCP_MESSAGES = {
    1: "Discover", 2: "Offer", 3: "Request", 4: "Decline", 5: "ACK", 6: "NACK", 7: "Release", 8: "Inform",
    10: "LeaseQuery", 11: "LeaseUnassigned", 12: "LeaseUnknown", 13: "LeaseActive",
}
_NETBIOS_NODES = {1: "b-node", 2: "p-node", 4: "m-node", 8: "h-node"}
_OVERLOAD = {1: "file", 2: "sname", 3: "file+sname"}
_HW_TYPES = {1: "ether", 6: "ieee802", 7: "arcnet", 15: "frelay", 23: "strip", 24: "ieee1394"}
_AGENT_SUBOPTS = {1: "Circuit-ID", 2: "Remote-ID", 6: "Subscriber-ID"}
_RFC1048_MAGIC = b"\x63\x82\x53\x63"
_CMU_MAGIC = b"CMU\x00"


def _hexdump(data: bytes, indent: str) -> str:
    # tcpdump's hex_print: 16 bytes a line, "0x0000: " offsets, bytes in pairs.
    parts = []
    for line in range(0, len(data), 16):
        chunk = data[line : line + 16]
        parts.append(f"{indent}0x{line:04x}: ")
        for k in range(0, len(chunk) - 1, 2):
            parts.append(f" {chunk[k]:02x}{chunk[k + 1]:02x}")
        if len(chunk) & 1:
            parts.append(f" {chunk[-1]:02x}")
    return "".join(parts)


def _zstring(data: bytes, off: int, size: int, end: int, out: list[str]) -> bool:
    # A NUL-terminated string in a fixed field; False (after printing what there was) when no NUL ends it
    # inside the field and the captured bytes.
    stop = min(off + size, end)
    nul = data.find(0, off, stop)
    if nul < 0:
        out.append(text(data[off:stop]))
        return False
    out.append(text(data[off:nul]))
    return True


def _bootp(data: bytes, length: int, verbose: int, out: list[str]) -> None:
    end = len(data)
    op = u8(data, 0, end)
    out.append("BOOTP/DHCP, " + ("Request" if op == 1 else "Reply" if op == 2 else f"unknown (0x{op:02x})"))
    htype, hlen = u8(data, 1, end), u8(data, 2, end)
    ether = htype == 1 and hlen == 6
    if ether and op == 1:
        if end < 34:
            raise Truncated
        out.append(" from " + mac(data, 28))
    out.append(f", length {length}")
    if not verbose:
        return
    if end < 10:  # ND_TCHECK_2 of the seconds field
        raise Stop
    if htype != 1:
        out.append(f", htype {htype}")
    if not ether:
        out.append(f", hlen {hlen}")
    if data[3]:
        out.append(f", hops {data[3]}")
    xid = u32(data, 4, end)
    if xid:
        out.append(f", xid 0x{xid:x}")
    secs = u16(data, 8, end)
    if secs:
        out.append(f", secs {secs}")
    flags = u16(data, 10, end)
    out.append(f", Flags [{'Broadcast' if flags & 0x8000 else 'none'}]")
    if verbose > 1:
        out.append(f" (0x{flags:04x})")
    for off, label in ((12, "Client-IP"), (16, "Your-IP"), (20, "Server-IP"), (24, "Gateway-IP")):
        if u32(data, off, end):
            out.append(f"\n\t  {label} {ipv4(data, off)}")
    if ether:
        if end < 34:
            raise Truncated
        out.append("\n\t  Client-Ethernet-Address " + mac(data, 28))
    for off, size, label in ((44, 64, "sname"), (108, 128, "file")):
        if u8(data, off, end):
            out.append(f'\n\t  {label} "')
            if not _zstring(data, off, size, end, out):
                out.append('"')
                raise Stop
            out.append('"')
    if end < 240:  # ND_TCHECK_4 of the vendor area's magic
        raise Stop
    magic = data[236:240]
    if magic == _RFC1048_MAGIC:
        _rfc1048(data, end, verbose, out)
    elif magic == _CMU_MAGIC:
        _cmu(data, end, out)
    else:
        vendor = u32(data, 236, end)
        if vendor:
            out.append(f"\n\t  Vendor-#0x{vendor:x}")


def _cmu(data: bytes, end: int, out: list[str]) -> None:
    out.append(" vend-cmu")
    # cmu_print checks each field (ND_TCHECK_4) before it reads it.
    if end < 244:
        raise Stop
    flags = data[240]
    if flags & ~1:
        out.append(f" F:0x{flags:x}")
    for off, label in ((248, "DG"), (244, "SM" if flags & 1 else "SM*"), (252, "NS1"), (256, "NS2"),
                       (260, "IEN1"), (264, "IEN2"), (268, "TS1"), (272, "TS2")):
        if off + 4 > end:
            raise Stop
        if u32(data, off, end):
            out.append(f" {label}:{ipv4(data, off)}")


def _rfc1048(data: bytes, end: int, verbose: int, out: list[str]) -> None:
    out.append(f"\n\t  Vendor-rfc1048 Extensions\n\t    Magic Cookie 0x{u32(data, 236, end):08x}")
    bp = 240
    while bp < end:
        tag = data[bp]
        bp += 1
        if verbose < 3 and (tag == 0 or tag == 255):
            if tag == 255:
                return
            continue
        spec = _TAGS.get(tag, _UNKNOWN_TAG)
        fmt, name = spec[0], spec[1:]
        if tag == 0 or tag == 255:
            n = 0
        else:
            n = u8(data, bp, end)
            bp += 1
        out.append(f"\n\t    {name} ({tag}), length {n}{': ' if n else ''}")
        if tag == 0:
            pads = 1
            while bp < end and data[bp] == 0:
                bp += 1
                pads += 1
            if pads > 1:
                out.append(f", occurs {pads}")
        if bp + n > end:  # ND_TCHECK_LEN of the option's value
            raise Stop
        if tag == 53 and n == 1:
            out.append(_DHCP_MESSAGES.get(data[bp]) or f"Unknown ({data[bp]})")
            bp += 1
            continue
        if tag == 55:
            for k in range(n):
                inner = data[bp + k]
                out.append("\n\t      " if k % 4 == 0 else ", ")
                out.append(f"{_TAGS.get(inner, _UNKNOWN_TAG)[1:]} ({inner})")
            bp += n
            continue
        if fmt == "?":
            fmt = "b" if n & 1 else "s" if n & 2 else "l"
        used, left = _option_value(data, bp, n, tag, fmt, out)
        bp += used
        if left:
            out.append(f"\n\t  trailing data length {left}")
            bp += left


def _option_value(data: bytes, bp: int, n: int, tag: int, fmt: str, out: list[str]) -> tuple[int, int]:
    """Print one option's value (all ``n`` bytes are captured); returns (bytes used, bytes left over)."""
    if fmt == "a":
        out.append('"' + text(data[bp : bp + n]) + '"')
        return n, 0
    if fmt in "ilL":
        k = n // 4
        if fmt == "i":
            values = [ipv4(data, bp + 4 * j) for j in range(k)]
        else:
            values = [str(int.from_bytes(data[bp + 4 * j : bp + 4 * j + 4], "big", signed=fmt == "L"))
                      for j in range(k)]
        out.append(",".join(values))
        return 4 * k, n - 4 * k
    if fmt == "p":
        k = n // 8
        out.append(",".join(f"({ipv4(data, bp + 8 * j)}:{ipv4(data, bp + 8 * j + 4)})" for j in range(k)))
        return 8 * k, n - 8 * k
    if fmt == "s":
        k = n // 2
        out.append(",".join(str((data[bp + 2 * j] << 8) | data[bp + 2 * j + 1]) for j in range(k)))
        return 2 * k, n - 2 * k
    if fmt == "B":
        out.append(",".join("N" if b == 0 else "Y" if b == 1 else f"{b}?" for b in data[bp : bp + n]))
        return n, 0
    if fmt == "$":
        return _special(data, bp, n, tag, out)
    out.append(".".join(str(b) for b in data[bp : bp + n]))
    return n, 0


def _special(data: bytes, bp: int, n: int, tag: int, out: list[str]) -> tuple[int, int]:
    # The options tcpdump decodes with code of their own.
    if tag in (46, 52):
        if n < 1:
            out.append("[ERROR: length < 1 bytes]")
            return 0, 0
        names = _NETBIOS_NODES if tag == 46 else _OVERLOAD
        out.append(names.get(data[bp]) or f"#{data[bp]}")
        return 1, n - 1
    if tag == 81:  # client FQDN
        if n < 3:
            out.append("[ERROR: length < 3 bytes]")
            return n, 0
        flags = data[bp]
        if flags & 0xF0:
            out.append(f"[ERROR: MBZ nibble 0x{(flags & 0xF0) >> 4:x} != 0] ")
        if flags & 0x0F:
            out.append("[" + "".join(c for bit, c in ((1, "S"), (2, "O"), (4, "E"), (8, "N")) if flags & bit) + "] ")
        if data[bp + 1] or data[bp + 2]:
            out.append(f"{data[bp + 1]}/{data[bp + 2]} ")
        out.append('"' + text(data[bp + 3 : bp + n]) + '"')
        return n, 0
    if tag == 61:  # client id
        if n < 1:
            out.append("[ERROR: length < 1 bytes]")
            return 0, 0
        kind = data[bp]
        if kind == 0:
            out.append('"' + text(data[bp + 1 : bp + n]) + '"')
        else:
            out.append((_HW_TYPES.get(kind) or f"hardware-type {kind},") + " " + data[bp + 1 : bp + n].hex(":"))
        return n, 0
    if tag == 82:  # relay agent information
        used = 0
        while n - used >= 2:
            sub, size = data[bp + used], data[bp + used + 1]
            used += 2
            name = _AGENT_SUBOPTS.get(sub, "Unknown")
            if size > n - used:
                out.append(f"\n\t      {name} SubOption {sub}, length {size}: length goes past end of option")
                return n, 0
            out.append(f"\n\t      {name} SubOption {sub}, length {size}: ")
            body = data[bp + used : bp + used + size]
            out.append(text(body) if sub in _AGENT_SUBOPTS else _hexdump(body, "\n\t\t"))
            used += size
        return used, n - used
    if tag in (121, 249):  # classless static routes
        if n < 5:
            out.append("[ERROR: length < 5 bytes]")
            return n, 0
        used = 0
        first = True
        while used < n:
            if not first:
                out.append(",")
            width = data[bp + used]
            used += 1
            if width > 32:
                out.append(f"[ERROR: Mask width ({width}) > 32]")
                return n, 0
            significant = (width + 7) // 8
            if n - used < significant + 4:
                out.append(f"[ERROR: Remaining length ({n - used}) < {significant + 4} bytes]")
                return n, 0
            if width == 0:
                out.append("(default")
            else:
                octets = [str(b) for b in data[bp + used : bp + used + significant]] + ["0"] * (4 - significant)
                out.append("(" + ".".join(octets) + f"/{width}")
            used += significant
            out.append(f":{ipv4(data, bp + used)})")
            used += 4
            first = False
        return n, 0
    if tag == 77:  # user class
        if n < 2:
            out.append("[ERROR: length < 2 bytes]")
            return n, 0
        used = 0
        number = 1
        while used < n:
            size = data[bp + used]
            used += 1
            out.append(f"\n\t      instance#{number}: ")
            if size == 0:
                out.append("[ERROR: suboption length must be non-zero]")
                return n, 0
            if n - used < size:
                out.append("[ERROR: invalid option]")
                return n, 0
            out.append('"' + text(data[bp + used : bp + used + size]) + f'", length {size}')
            number += 1
            used += size
        return n, 0
    out.append(f"[unknown special tag {tag}, size {n}]")
    return n, 0


def bootp_text(payload: bytes, verbose: int, length: int | None = None) -> str:
    """What tcpdump prints for a BOOTP/DHCP message (``length`` its length on the wire, the captured
    length when not given)."""
    out: list[str] = []
    try:
        _bootp(payload, len(payload) if length is None else length, verbose, out)
    except (Stop, Truncated) as cut:
        return finish(out, " [|bootp]", cut)
    return "".join(out)


# -- DHCPv6 -------------------------------------------------------------------------------------------------

_DH6_MESSAGES = {
    1: "solicit", 2: "advertise", 3: "request", 4: "confirm", 5: "renew", 6: "rebind", 7: "reply",
    8: "release", 9: "decline", 10: "reconfigure", 11: "inf-req", 12: "relay-fwd", 13: "relay-reply",
    14: "leasequery", 15: "leasequery-reply",
}
_DH6_OPTIONS = {
    1: "client-ID", 2: "server-ID", 3: "IA_NA", 4: "IA_TA", 5: "IA_ADDR", 6: "option-request",
    7: "preference", 8: "elapsed-time", 9: "relay-message", 11: "authentication", 12: "server-unicast",
    13: "status-code", 14: "rapid-commit", 15: "user-class", 16: "vendor-class", 17: "vendor-specific-info",
    18: "interface-ID", 19: "reconfigure-message", 20: "reconfigure-accept", 21: "SIP-servers-domain",
    22: "SIP-servers-address", 23: "DNS-server", 24: "DNS-search-list", 25: "IA_PD", 26: "IA_PD-prefix",
    31: "SNTP-servers", 32: "lifetime", 27: "NIS-server", 28: "NIS+-server", 29: "NIS-domain-name",
    30: "NIS+-domain-name", 33: "BCMCS-domain-name", 34: "BCMCS-server", 36: "Geoconf-Civic",
    37: "Remote-ID", 38: "Subscriber-ID", 39: "Client-FQDN", 40: "PANA-agent", 41: "POSIX-timezone",
    42: "POSIX-tz-database", 43: "Echo-request-option", 44: "Lease-query", 45: "LQ-client-data",
    46: "Clt-time", 47: "LQ-relay-data", 48: "LQ-client-link", 56: "NTP-server", 64: "AFTR-Name",
    112: "MUD-URL",
}
_DH6_STATUS = {
    0: "Success", 1: "UnspecFail", 2: "NoAddrsAvail", 3: "NoBinding", 4: "NotOnLink", 5: "UseMulticast",
    6: "NoPrefixAvail", 7: "UnknownQueryType", 8: "MalformedQuery", 9: "NotConfigured", 10: "NotAllowed",
}
#: Options holding a list of IPv6 addresses.
_DH6_ADDRESS_LISTS = frozenset((22, 23, 31, 27, 28, 34, 40, 48))
_TRUNC6 = " [|dhcp6]"


def _opt_name(code: int) -> str:
    return _DH6_OPTIONS.get(code) or f"opt_{code}"


def _jnp(data: bytes, off: int, n: int, end: int) -> str:
    # Text up to n bytes or a NUL; a missing byte stops the whole packet (tcpdump's GET).
    stop = off + n
    nul = data.find(0, off, min(stop, end))
    if nul >= 0:
        return text(data[off:nul])
    if stop > end:
        raise Truncated
    return text(data[off:stop])


class _Dhcp6:
    __slots__ = ("data", "end", "out")

    def __init__(self, data: bytes, out: list[str]) -> None:
        self.data = data
        self.end = len(data)
        self.out = out

    def message(self, cp: int, length: int, verbose: int) -> None:
        data, out = self.data, self.out
        out.append("dhcp6")
        ep = min(self.end, cp + length)
        if cp + 4 > self.end:
            out.append(_TRUNC6)
            return
        msgtype = data[cp]
        name = _DH6_MESSAGES.get(msgtype) or f"msgtype-{msgtype}"
        if not verbose:
            out.append(" " + name)
            return
        out.append(f" {name} (")
        if msgtype not in (12, 13):
            out.append(f"xid={u32(data, cp, self.end) & 0xFFFFFF:x}")
            self.options(cp + 4, ep)
        else:
            if cp + 18 > self.end:
                raise Truncated
            out.append(f"linkaddr={ipv6(data, cp + 2)}")
            if cp + 34 > self.end:
                raise Truncated
            out.append(f" peeraddr={ipv6(data, cp + 18)}")
            self.options(cp + 34, ep)
        out.append(")")

    def options(self, cp: int, ep: int) -> None:
        """Options from ``cp`` to ``ep``; a cut-short option list ends with `` [|dhcp6]`` and printing goes on
        in the enclosing option, as in tcpdump."""
        data, out = self.data, self.out
        while cp < ep:
            if ep < cp + 4 or cp + 4 > self.end:
                out.append(_TRUNC6)
                return
            optlen = u16(data, cp + 2, self.end)
            if ep < cp + 4 + optlen:
                out.append(_TRUNC6)
                return
            opttype = u16(data, cp, self.end)
            out.append(" (" + _opt_name(opttype))
            if cp + 4 + optlen > self.end:
                out.append(_TRUNC6)
                return
            if not self._option(opttype, cp + 4, optlen):
                out.append(_TRUNC6)
                return
            cp += 4 + optlen

    def _option(self, opttype: int, tp: int, optlen: int) -> bool:
        # One option's value and closing parenthesis; False when tcpdump's option walk gives up.
        data, out, end = self.data, self.out, self.end
        body = data[tp : tp + optlen]
        if opttype in (1, 2):  # DUID
            if optlen < 2:
                out.append(" ?)")
            else:
                kind = (body[0] << 8) | body[1]
                if kind == 1:
                    out.append(f" hwaddr/time type {u16(body, 2, optlen)} time {u32(body, 4, optlen)} "
                               f"{body[8:].hex()})" if optlen >= 8 else " ?)")
                elif kind == 2:
                    out.append(f" vid {body[2:10].hex()})" if optlen >= 10 else " ?)")
                elif kind == 3:
                    out.append(f" hwaddr type {u16(body, 2, optlen)} {body[4:].hex()})" if optlen >= 4 else " ?)")
                else:
                    out.append(f" type {kind})")
        elif opttype == 5:  # IA address
            if optlen < 24:
                out.append(" ?)")
            else:
                out.append(f" {ipv6(body, 0)} pltime:{u32(body, 16, optlen)} vltime:{u32(body, 20, optlen)}")
                if optlen > 24:
                    self.options(tp + 24, tp + optlen)
                out.append(")")
        elif opttype in (6, 43):  # option request, echo request
            if optlen % 2:
                out.append(" ?)")
            else:
                out.append("".join(" " + _opt_name(u16(body, k, optlen)) for k in range(0, optlen, 2)) + ")")
        elif opttype == 7:
            out.append(f" {body[0]})" if optlen == 1 else " ?)")
        elif opttype == 8:
            out.append(f" {u16(body, 0, optlen)})" if optlen == 2 else " ?)")
        elif opttype == 9:  # relay message: a whole DHCPv6 message, read only up to the option's end
            out.append(" (")
            saved = self.end
            self.end = min(tp + optlen, saved)
            try:
                self.message(tp, optlen, 1)
            finally:
                self.end = saved
            out.append(")")
        elif opttype == 11:
            self._auth(body, optlen)
        elif opttype in (14, 20):  # rapid commit, reconfigure accept: no value
            out.append(")")
        elif opttype in (18, 38):  # interface id, subscriber id: the first 10 bytes
            out.append(f" {body[:10].hex()}...)")
        elif opttype == 19:
            if optlen != 1:
                out.append(" ?)")
            else:
                out.append({5: " for renew)", 11: " for inf-req)"}.get(body[0]) or f" for ???({body[0]:02x}))")
        elif opttype in _DH6_ADDRESS_LISTS:
            if optlen % 16:
                out.append(" ?)")
            else:
                out.append("".join(" " + ipv6(body, k) for k in range(0, optlen, 16)) + ")")
        elif opttype in (21, 24):  # domain lists
            stop = tp + optlen
            names = Names(data, end, out)
            while tp < stop:
                out.append(" ")
                after = names.name(tp, stop)
                if after is None:
                    return False
                tp = after
            out.append(")")
        elif opttype == 13:
            if optlen < 2:
                out.append(" ?)")
            else:
                code = u16(body, 0, optlen)
                out.append(" " + ("INVALID code" if code > 255 else _DH6_STATUS.get(code) or f"code{code}") + ")")
        elif opttype in (3, 25):  # IA_NA, IA_PD
            if optlen < 12:
                out.append(" ?)")
            else:
                out.append(f" IAID:{u32(body, 0, optlen)} T1:{u32(body, 4, optlen)} T2:{u32(body, 8, optlen)}")
                if optlen > 12:
                    self.options(tp + 12, tp + optlen)
                out.append(")")
        elif opttype == 4:  # IA_TA
            if optlen < 4:
                out.append(" ?)")
            else:
                out.append(f" IAID:{u32(body, 0, optlen)}")
                if optlen > 4:
                    self.options(tp + 4, tp + optlen)
                out.append(")")
        elif opttype == 26:  # IA prefix
            if optlen < 25:
                out.append(" ?)")
            else:
                out.append(f" {ipv6(body, 9)}/{body[8]} pltime:{u32(body, 0, optlen)} vltime:{u32(body, 4, optlen)}")
                if optlen > 25:
                    self.options(tp + 25, tp + optlen)
                out.append(")")
        elif opttype in (32, 46):
            out.append(f" {u32(body, 0, optlen)})" if optlen == 4 else " ?)")
        elif opttype == 37:  # remote id: enterprise number, then 10 bytes
            out.append(f" {u32(body, 0, optlen)} {body[4:14].hex()}...)" if optlen >= 4 else " ?)")
        elif opttype == 44:  # lease query
            if optlen < 17:
                out.append(" ?)")
            else:
                query = {1: " by-address", 2: " by-clientID"}.get(body[0]) or f" type_{body[0]}"
                out.append(f"{query} {ipv6(body, 1)}")
                if optlen > 17:
                    self.options(tp + 17, tp + optlen)
                out.append(")")
        elif opttype == 45:  # client data
            if optlen > 0:
                self.options(tp, tp + optlen)
            out.append(")")
        elif opttype == 47:  # relay data
            out.append(f" {ipv6(body, 0)} {body[16:26].hex()}...)" if optlen >= 16 else " ?)")
        elif opttype == 56:
            return self._ntp_server(tp, optlen)
        elif opttype == 64:
            self._aftr_name(tp, optlen)
        elif opttype in (41, 42, 112):  # text
            out.append(f" {_jnp(data, tp, optlen, end)})" if optlen >= 5 else " ?)")
        else:
            out.append(")")
        return True

    def _auth(self, body: bytes, optlen: int) -> None:
        out = self.out
        if optlen < 11:
            out.append(" ?)")
            return
        proto, alg, rdm = body[0], body[1], body[2]
        out.append({2: " proto: delayed", 3: " proto: reconfigure"}.get(proto) or f" proto: {proto}")
        out.append(", alg: HMAC-MD5" if alg == 1 else f", alg: {alg}")
        out.append(", RDM: mono" if rdm == 0 else f", RDM: {rdm}")
        out.append(", RD:" + "".join(f" {u16(body, 3 + 2 * k, optlen):04x}" for k in range(4)))
        info = optlen - 11
        tp = 11
        if proto == 2:
            if info == 0:
                pass
            elif info < 20:
                out.append(" ??")
            else:
                realm = info - 20
                if realm > 0:
                    out.append(", realm: " + body[tp : tp + realm].hex())
                tp += realm
                out.append(f", key ID: {u32(body, tp, optlen):08x}, HMAC-MD5:")
                out.append("".join(f" {u32(body, tp + 4 + 4 * k, optlen):08x}" for k in range(4)))
        elif proto == 3:
            if info != 17:
                out.append(" ??")
            else:
                out.append({1: " reconfig-key", 2: " type: HMAC-MD5"}.get(body[tp]) or " type: ??")
                out.append(" value:" + "".join(f" {u32(body, tp + 1 + 4 * k, optlen):08x}" for k in range(4)))
        else:
            out.append(" ??")
        out.append(")")

    def _ntp_server(self, tp: int, optlen: int) -> bool:
        data, out, end = self.data, self.out, self.end
        if optlen < 4:
            out.append(" ?)")
            return True
        stop = tp + optlen
        while tp < stop - 4:
            code, size = u16(data, tp, end), u16(data, tp + 2, end)
            tp += 4
            if tp + size > stop:
                return False
            out.append(f" subopt:{code}")
            if code in (1, 2):
                out.append(f" {ipv6(data, tp)}" if size == 16 else " ?")
            elif code == 3:
                out.append(" ")
                if Names(data, end, out).name(tp, tp + size) is None:
                    return False
            else:
                out.append(" ?")
            tp += size
        out.append(")")
        return True

    def _aftr_name(self, tp: int, optlen: int) -> None:
        # RFC 1035 labels; like tcpdump, the walk checks bytes against the captured end, not the option's.
        data, out, end = self.data, self.out, self.end
        if optlen < 3:
            out.append(" ?)")
            return
        out.append(" ")
        remain = optlen
        while remain and u8(data, tp, end):
            label = data[tp]
            tp += 1
            if label < remain - 1:
                out.append(_jnp(data, tp, label, end))
                tp += label
                remain -= label + 1
                if u8(data, tp, end):
                    out.append(".")
            else:
                out.append(" ?")
                break
        out.append(")")


def dhcp6_text(payload: bytes, verbose: int, length: int | None = None) -> str:
    """What tcpdump prints for a DHCPv6 message: ``dhcp6 solicit``, with -v the options in parentheses."""
    out: list[str] = []
    try:
        _Dhcp6(payload, out).message(0, len(payload) if length is None else length, verbose)
    except Truncated as cut:
        return finish(out, _TRUNC6, cut)
    # Its length checks print the mark in place (dhcp6_print's and dhcp6opt_print's trunc labels).
    return finish(out, _TRUNC6)


__all__ = ["bootp_text", "dhcp6_text"]

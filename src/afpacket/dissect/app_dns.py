"""DNS (and mDNS) messages as tcpdump -n prints them: ``4660+ A? example.com. (29)``, ``4660 1/0/0 A 1.2.3.4 (45)``.

The summary is tcpdump's own: the id, opcode, rcode (with the EDNS extended bits) and flag marks; the first
question of a query; the answer records of a response; the other sections from ``-vv`` on and record TTLs with
``-vvv``. A name that is malformed (a forward or looping compression pointer, a reserved label type) prints the
marker tcpdump prints (``<BAD PTR>``, ``<BAD LABEL TYPE>``, ``<ELT n>``) and ends the line with `` [|domain]``.
Everything works on byte offsets into the message, checked against the captured end, so a short or hostile
packet can cut a line short but never raise.
"""

from __future__ import annotations

import struct

from .app_common import Stop, Truncated, finish, ipv4, ipv6, printn, relts, text, u8, u16, u32
from .marks import Jumped

_OPS = (
    "", " inv_q", " stat", " op3", " notify", " update", " op6", " op7",
    " op8", " updateA", " updateD", " updateDA", " updateM", " updateMA", " zoneInit", " zoneRef",
)
# tcpdump's table, including its two names without the leading space (17 and 21).
_RCODES = (
    "", " FormErr", " ServFail", " NXDomain", " NotImp", " Refused", " YXDomain", " YXRRSet",
    " NXRRSet", " NotAuth", " NotZone", " Resp11", " Resp12", " Resp13", " Resp14", " NoChange",
    " BadVers", "Resp17", " Resp18", " Resp19", " Resp20", "Resp21", " Resp22", " BadCookie",
)

TYPES: dict[int, str] = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
    11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25",
    20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP_PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA",
    29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT",
    38: "A6", 39: "DNAME", 40: "SINK", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC",
    104: "UNSPECA", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA",
    255: "ANY", 256: "URI",
}
_CLASSES = {1: "IN", 3: "CHAOS", 4: "HS", 255: "ANY"}
_EDNS_OPTS = {
    1: "LLQ", 2: "UL", 3: "NSID", 5: "DAU", 6: "DHU", 7: "N3U", 8: "ECS", 9: "EXPIRE", 10: "COOKIE",
    11: "KEEPALIVE", 12: "PADDING", 13: "CHAIN", 14: "KEY-TAG", 16: "CLIENT-TAG", 17: "SERVER-TAG",
}
_DAU = {
    0: "DELETE", 1: "RSAMD5", 2: "DH", 3: "DS", 5: "RSASHA1", 6: "DSA-NSEC3-SHA1", 7: "RSASHA1-NSEC3-SHA1",
    8: "RSASHA256", 10: "RSASHA512", 12: "ECC-GOST", 13: "ECDSAP256SHA256", 14: "ECDSAP384SHA384",
    15: "ED25519", 16: "ED448", 252: "INDIRECT", 253: "PRIVATEDNS", 254: "PRIVATEOID",
}
_DHU = {1: "SHA-1", 2: "SHA-256", 3: "GOST_R_34.11-94", 4: "SHA-384"}
_N3U = {1: "SHA-1"}

T_OPT = 41
_HEADER = struct.Struct("!6H")  # id, flags, qd, an, ns, ar
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_HH = struct.Struct("!HH")
#: The text of names without compression pointers, by their bytes (see _Message.question).
_plain_names: dict[bytes, tuple[str, int]] = {}
_U16 = struct.Struct("!H")
MAXCDNAME = 255  # longest name tcpdump prints before "<DOMAIN NAME TOO LONG>"


def type_name(t: int) -> str:
    return TYPES.get(t) or f"Type{t}"


def _class_name(c: int) -> str:
    return _CLASSES.get(c) or f"(Class {c})"


class Names:
    """Domain names inside one buffer: ``data[:end]`` is what was captured, ``out`` collects the text.

    Shared with DHCPv6, whose domain-list options hold names in the same wire form.
    """

    __slots__ = ("data", "end", "out")

    def __init__(self, data: bytes, end: int, out: list[str]) -> None:
        self.data = data
        self.end = end
        self.out = out

    def skip(self, cp: int) -> int | None:
        """Offset just past the name at ``cp`` (without following pointers), or None when it runs off the end."""
        data, end = self.data, self.end
        if cp >= end:
            return None
        i = data[cp]
        cp += 1
        while i:
            kind = i & 0xC0
            if kind == 0xC0:
                return cp + 1
            if kind == 0x40:
                if i & 0x3F != 1:  # only the bit-string label has a known length
                    return None
                if cp >= end:
                    return None
                bits = data[cp] or 256
                cp += 1 + (bits + 7) // 8
            elif kind == 0x80:
                return None
            else:
                cp += i
            if cp >= end:
                return None
            i = data[cp]
            cp += 1
        return cp

    def _labellen(self, cp: int) -> int:
        # The length a label at cp occupies after its first byte, or -1 (with tcpdump's marker) when unusable.
        if cp >= self.end:
            return -1
        i = self.data[cp]
        kind = i & 0xC0
        if kind == 0x40:
            elt = i & 0x3F
            if elt != 1:
                self.out.append(f"<ELT {elt}>")
                return -1
            if cp + 1 >= self.end:
                return -1
            return ((self.data[cp + 1] or 256) + 7) // 8 + 1
        if kind == 0x80:
            self.out.append("<BAD LABEL TYPE>")
            return -1
        return i

    def _bitlabel(self, cp: int) -> bool:
        # An RFC 2673 bit-string label: "\[x<hex>/<bits>]".
        data, end = self.data, self.end
        if cp >= end:
            return False
        bitlen = data[cp] or 256
        lim = cp + 1 + (bitlen + 3) // 4
        parts = self.out  # appended as it goes: a byte missing half way leaves what came before, as in tcpdump
        parts.append("\\[x")
        bitp, b = cp + 1, bitlen
        while bitp < lim and b > 7:
            parts.append(f"{u8(data, bitp, end):02x}")
            b -= 8
            bitp += 1
        if b > 4:
            parts.append(f"{u8(data, bitp, end) & (0xFF << (8 - b)) & 0xFF:02x}")
        elif b > 0:
            parts.append(f"{((u8(data, bitp, end) >> 4) & 0x0F) & (0x0F << (4 - b)):x}")
        parts.append(f"/{bitlen}]")
        return True

    def name(self, cp: int, bp: int) -> int | None:
        """Print the name at ``cp`` (compression offsets count from ``bp``); the offset after it, or None when
        tcpdump gives up on it (after printing whatever it had printed so far)."""
        data, end, out = self.data, self.end, self.out
        size = self._labellen(cp)
        if size < 0 or cp >= end:
            return None
        max_offset = (cp - bp) & 0xFFFFFFFF
        i = data[cp]
        cp += 1
        compressed = False
        # Where the name ends in the buffer; for a name that starts with a pointer, just after that pointer.
        rp: int | None = cp + size if i & 0xC0 != 0xC0 else None
        if i == 0:
            out.append(".")
            return rp
        chars = 0
        while i and cp < end:
            kind = i & 0xC0
            if kind == 0xC0:
                if not compressed:
                    rp = cp + 1
                    compressed = True
                offset = ((i << 8) | data[cp]) & 0x3FFF
                # Pointers must go backwards, which also ends loops.
                if offset >= max_offset:
                    out.append("<BAD PTR>")
                    return None
                max_offset = offset
                cp = bp + offset
                if cp >= end:
                    return None
                i = data[cp]
                size = self._labellen(cp)
                if size < 0:
                    return None
                cp += 1
                continue
            if kind == 0x40:
                elt = i & 0x3F
                if elt != 1:
                    out.append(f"<ELT {elt}>")
                    return None
                if not self._bitlabel(cp):
                    return None
            elif kind == 0x80:
                out.append("<BAD LABEL TYPE>")
                return None
            elif chars + size <= MAXCDNAME and cp + size <= end:
                # The common case, a whole label well within the name limit: printed with its dot.
                out.append(text(data[cp : cp + size]) + ".")
                chars += size + 1
                cp += size
            else:
                if chars + size <= MAXCDNAME:
                    if printn(data, cp, size, end, out):
                        return None
                elif chars < MAXCDNAME and printn(data, cp, MAXCDNAME - chars, end, out):
                    return None
                chars += size
                cp += size
                if chars <= MAXCDNAME:
                    out.append(".")
                chars += 1
            if kind != 0:
                cp += size
                if chars <= MAXCDNAME:
                    out.append(".")
                chars += 1
            if cp >= end:
                return None
            i = data[cp]
            if i & 0xC0 in (0x40, 0x80):
                size = self._labellen(cp)
                if size < 0:
                    return None
            else:
                size = i
            cp += 1
            if not compressed and rp is not None:
                rp += size + 1
        if chars > MAXCDNAME:
            out.append("<DOMAIN NAME TOO LONG>")
        return rp


class _Message(Names):
    """One DNS message being printed."""

    __slots__ = ("mdns", "verbose")

    def __init__(self, data: bytes, end: int, out: list[str], verbose: int, mdns: bool) -> None:
        # (Names.__init__'s three assignments, without the call: one message per DNS line)
        self.data = data
        self.end = end
        self.out = out
        self.verbose = verbose
        self.mdns = mdns

    def _cstring(self, cp: int) -> int | None:
        if cp >= self.end:
            return None
        n = self.data[cp]
        if printn(self.data, cp + 1, n, self.end, self.out):
            return None
        return cp + 1 + n

    def question(self, cp: int) -> int | None:
        """`` A? name.``; the offset after the question, or None."""
        data, end, out = self.data, self.end, self.out
        start = cp
        # A name of plain labels (no compression pointer, no bit labels) is most of them: its text then
        # depends on its own bytes only, and the same names come back again and again.
        plain = 0
        while cp < end:
            size = data[cp]
            if not size:
                plain = cp + 1
                break
            if size & 0xC0:
                break
            cp += size + 1
        after = plain or self.skip(start)
        if after is None or after + 4 > end:
            return None
        qtype, qclass = _HH.unpack_from(data, after)
        out.append(" " + (TYPES.get(qtype) or f"Type{qtype}"))
        klass = qclass & 0x7FFF if self.mdns else qclass
        if klass != 1:
            out.append(" " + _class_name(klass))
        if self.mdns:
            out.append(" (QU)" if qclass & 0x8000 else " (QM)")
        out.append("? ")
        if plain:
            raw = data[start:plain]
            known = _plain_names.get(raw) or self._plain_name(start, raw)
            if known is None:
                return None
            out.append(known[0])
            return start + known[1] + 4
        rp = self.name(start, 0)
        return None if rp is None else rp + 4

    def _plain_name(self, start: int, raw: bytes) -> tuple[str, int] | None:
        """Print the plain name at ``start`` (whose bytes are ``raw``) into a buffer of its own and remember
        the text for :data:`_plain_names`; None (with what it printed, printed) when it gave up."""
        out = self.out
        mine: list[str] = []
        self.out = mine
        try:
            rp = self.name(start, 0)
        except BaseException:
            out.extend(mine)
            raise
        finally:
            self.out = out
        if rp is None:
            out.extend(mine)  # (what was printed before it gave up, as printed in place)
            return None
        if len(_plain_names) >= 4096:
            _plain_names.clear()
        known = _plain_names[raw] = ("".join(mine), rp - start)
        return known

    def record(self, cp: int) -> int | None:
        """One resource record: `` A 1.2.3.4``, with its name from -v on. The offset after it, the captured end
        when its fixed part is missing (the caller stops there), or None when tcpdump gives up."""
        data, end, out, verbose = self.data, self.end, self.out, self.verbose
        after: int | None
        if verbose:
            out.append(" ")
            after = self.name(cp, 0)
            if after is None:
                return None
        else:
            after = self.skip(cp)
        if after is None or after + 10 > end:
            return end
        typ, cls, ttl, rdlen = _RR_FIXED.unpack_from(data, after)
        cp = after + 4
        klass = cls & 0x7FFF if self.mdns else cls
        if klass != 1 and typ != T_OPT:
            out.append(" " + _class_name(klass))
        if self.mdns and cls & 0x8000:
            out.append(" (Cache flush)")
        opt_flags = ttl & 0xFFFF  # an OPT record keeps its flags in the TTL's low half
        if typ != T_OPT and verbose > 2:
            out.append(f" [{relts(ttl)}]")
        cp += 6
        rp: int = cp + rdlen
        out.append(" " + type_name(typ))
        if rp > end:
            return None
        if typ == 1:  # A
            if cp + 4 > end:
                return None
            out.append(" " + ipv4(data, cp))
        elif typ in (2, 5, 12, 39):  # NS, CNAME, PTR, DNAME
            out.append(" ")
            if self.name(cp, 0) is None:
                return None
        elif typ == 6:  # SOA: names and numbers from -v on
            if verbose:
                out.append(" ")
                n = self.name(cp, 0)
                if n is None:
                    return None
                out.append(" ")
                n = self.name(n, 0)
                if n is None or n + 20 > end:
                    return None
                out.append(" " + " ".join(str(u32(data, n + 4 * k, end)) for k in range(5)))
        elif typ == 15:  # MX: exchange, then preference
            out.append(" ")
            if cp + 2 > end or self.name(cp + 2, 0) is None:
                return None
            out.append(f" {u16(data, cp, end)}")
        elif typ == 16:  # TXT
            while cp < rp:
                out.append(' "')
                n = self._cstring(cp)
                if n is None:
                    return None
                cp = n
                out.append('"')
        elif typ == 33:  # SRV: target:port priority weight
            out.append(" ")
            if cp + 6 > end or self.name(cp + 6, 0) is None:
                return None
            out.append(f":{u16(data, cp + 4, end)} {u16(data, cp, end)} {u16(data, cp + 2, end)}")
        elif typ == 28:  # AAAA
            if cp + 16 > end:
                return None
            out.append(" " + ipv6(data, cp))
        elif typ == 38:  # A6
            if not self._a6(cp):
                return None
        elif typ == 256:  # URI
            if cp + rdlen > end:
                return None
            out.append(f" {u16(data, cp, end)} {u16(data, cp + 2, end)} ")
            if printn(data, cp + 4, (rdlen - 4) & 0xFFFFFFFF, end, out):
                return None
        elif typ == T_OPT:
            out.append(f" UDPsize={klass}")
            if opt_flags & 0x8000:
                out.append(" DO")
            if cp < rp:
                out.append(" [")
                while cp < rp:
                    n = self._edns_option(cp)
                    if n is None:
                        return None
                    cp = n
                    if cp < rp:
                        out.append(",")
                out.append("]")
        elif typ == 104:  # UNSPECA: one long string
            if cp + rdlen > end or printn(data, cp, rdlen, end, out):
                return None
        elif typ == 250:  # TSIG
            if cp + rdlen > end:
                return None
            if verbose and not self._tsig(cp):
                return None
        return rp

    def _a6(self, cp: int) -> bool:
        data, end, out = self.data, self.end, self.out
        if cp >= end:
            return False
        pbit = data[cp]
        pbyte = (pbit & ~7) // 8
        if pbit > 128:
            out.append(f" {pbit}(bad plen)")
            return True
        if pbit < 128:
            suffix = 16 - pbyte
            if cp + 1 + suffix > end:
                raise Truncated
            addr = bytes(pbyte) + data[cp + 1 : cp + 1 + suffix]
            out.append(f" {pbit} {ipv6(addr, 0)}")
        if pbit > 0:
            out.append(" ")
            if self.name(cp + 1 + 16 - pbyte, 0) is None:
                return False
        return True

    def _tsig(self, cp: int) -> bool:
        data, end, out = self.data, self.end, self.out
        out.append(" ")
        n = self.name(cp, 0)
        if n is None:
            return False
        cp = n + 6
        for label in ("fudge", "maclen", "origid", "error", "otherlen"):
            if cp + 2 > end:
                return False
            value = u16(data, cp, end)
            out.append(f" {label}={value}")
            cp += 2 + value if label == "maclen" else 2
        return True

    def _edns_option(self, cp: int) -> int | None:
        data, end, out = self.data, self.end, self.out
        if cp + 2 > end:
            return None
        opt = u16(data, cp, end)
        out.append(_EDNS_OPTS.get(opt) or f"Opt{opt}")
        if cp + 4 > end:
            return None
        n = u16(data, cp + 2, end)
        cp += 4
        if cp + n > end:
            return None
        if n:
            out.append(" ")
            body = data[cp : cp + n]
            if opt == 8:
                out.append(_ecs(body))
            elif opt == 10:
                if n < 8 or 8 < n < 16 or n > 40:
                    out.append(" (invalid)")
                else:
                    out.append(body[:8].hex() + (" " + body[8:].hex() if n > 8 else ""))
            elif opt == 11:
                out.append(" (invalid)" if n != 2 else "%0.1f sec" % (u16(body, 0, 2) / 10.0))
            elif opt == 9:
                out.append(" (invalid)" if n != 4 else f"{u32(body, 0, 4)} sec")
            elif opt == 12:
                out.append(f"({n})")
            elif opt == 14:
                if n % 2:
                    out.append(" (invalid)")
                else:
                    out.append(" ".join(str(u16(body, k, n)) for k in range(0, n, 2)))
            elif opt in (5, 6, 7):
                table = _DAU if opt == 5 else _DHU if opt == 6 else _N3U
                out.append(" ".join(table.get(b) or f"Alg_{b}" for b in body))
            elif opt == 13:
                self.name(cp, cp + n)
            else:
                out.append(body.hex())
        return cp + n


def _ecs(body: bytes) -> str:
    # EDNS client subnet: family, source and scope prefix lengths, then the significant address bytes.
    n = len(body)
    if n < 4:
        return " (invalid)"
    family, src, scope = int.from_bytes(body[:2], "big"), body[2], body[3]
    bits = 32 if family == 1 else 128 if family == 2 else 0
    if not bits or n - 4 > bits // 8 or src > bits or scope > bits or (src + 7) // 8 != n - 4:
        return " (invalid)"
    addr = body[4:] + bytes(bits // 8 - (n - 4))
    return f"{ipv4(addr, 0) if family == 1 else ipv6(addr, 0)}/{src}/{scope}"


def _extended_rcode(m: _Message, counts: tuple[int, int, int, int], rcode: int) -> int:
    # The OPT record in the additional section carries the high bits of the rcode; tcpdump walks the
    # sections (without printing) to find it, and stops quietly at the first thing it cannot step over.
    data, end = m.data, m.end
    qd, an, ns, ar = counts
    if not ar:
        return rcode  # (no additional section, no OPT record: nothing to walk to)
    cp = 12
    for _ in range(qd):
        after = m.skip(cp)
        if after is None:
            return rcode
        cp = after + 4
        if cp >= end:
            return rcode
    for _ in range(an + ns):
        after = m.skip(cp)
        if after is None:
            return rcode
        cp = after + 8
        if cp + 2 > end:
            return rcode
        cp += 2 + _U16.unpack_from(data, cp)[0]
        if cp >= end:
            return rcode
    for _ in range(ar):
        after = m.skip(cp)
        if after is None or after + 2 > end:
            return rcode
        cp = after
        typ = _U16.unpack_from(data, cp)[0]
        cp += 4
        if cp + 1 > end:
            return rcode
        if typ == T_OPT:
            return int(rcode | (data[cp] << 4))
        cp += 4
        if cp + 2 > end:
            return rcode
        cp += 2 + _U16.unpack_from(data, cp)[0]
        if cp >= end:
            return rcode
    return rcode


def _records(m: _Message, cp: int, count: int, label: str) -> int:
    # A section's records, comma separated, after `label`; Stop (tcpdump's goto trunc) when they cannot all be
    # printed.
    if count and cp < m.end:
        m.out.append(label)
        n = m.record(cp)
        if n is None:
            raise Stop
        cp = n
        count -= 1
        while cp < m.end and count:
            m.out.append(",")
            n = m.record(cp)
            if n is None:
                raise Stop
            cp = n
            count -= 1
    if count:
        raise Stop
    return cp


def _print(m: _Message, length: int) -> None:
    data, end, out, verbose = m.data, m.end, m.out, m.verbose
    if length < 12:
        out.append(f"domain [length {length} < 12] (invalid)")
        return
    if end < 12:
        raise Stop
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    opcode = (flags >> 11) & 0xF
    cp = 12
    after: int | None
    if flags & 0x8000:
        rcode = _extended_rcode(m, (qd, an, ns, ar), flags & 0xF)
        rname = _RCODES[rcode] if rcode < len(_RCODES) else f" Resp{rcode & 0xFFF}"
        out.append(
            f"{ident}{_OPS[opcode]}{rname}{'*' if flags & 0x0400 else ''}{'' if flags & 0x0080 else '-'}"
            f"{'|' if flags & 0x0200 else ''}{'$' if flags & 0x0020 else ''}"
        )
        if qd != 1:
            out.append(f" [{qd}q]")
        for i in range(qd):
            if i:
                out.append(",")
            if verbose > 1:
                out.append(" q:")
                after = m.question(cp)
            else:
                after = m.skip(cp)
                if after is not None:
                    after += 4
            if after is None:
                raise Stop
            cp = after
        out.append(f" {an}/{ns}/{ar}")
        if an:
            n = m.record(cp)
            if n is None:
                raise Stop
            cp = n
            an -= 1
            while cp < end and an:
                out.append(",")
                n = m.record(cp)
                if n is None:
                    raise Stop
                cp = n
                an -= 1
        if an:
            raise Stop
        if verbose > 1:
            cp = _records(m, cp, ns, " ns:")
            _records(m, cp, ar, " ar:")
    else:
        out.append(f"{ident}{_OPS[opcode]}{'+' if flags & 0x0100 else ''}{'%' if flags & 0x0010 else ''}")
        if flags & 0x6CF:
            out.append(f" [b2&3=0x{flags:x}]")
        if opcode == 1:  # inverse query
            if qd:
                out.append(f" [{qd}q]")
            if an != 1:
                out.append(f" [{an}a]")
        else:
            if an:
                out.append(f" [{an}a]")
            if qd != 1:
                out.append(f" [{qd}q]")
        if ns:
            out.append(f" [{ns}n]")
        if ar:
            out.append(f" [{ar}au]")
        if qd:
            after = m.question(12)
            if after is None:
                raise Stop
            cp = after
            qd -= 1
            while cp < end and qd:
                after = m.question(cp)
                if after is None:
                    raise Stop
                cp = after
                qd -= 1
        if qd:
            raise Stop
        if verbose > 1:
            if an:
                n = m.record(cp)
                if n is None:
                    raise Stop
                cp = n
                an -= 1
                while cp < end and an:
                    out.append(",")
                    n = m.record(cp)
                    if n is None:
                        raise Stop
                    cp = n
                    an -= 1
            if an:
                raise Stop
            cp = _records(m, cp, ns, " ns:")
            _records(m, cp, ar, " ar:")
    out.append(f" ({length})")


def dns_text(msg: bytes, verbose: int, mdns: bool = False, length: int | None = None) -> str:
    """What tcpdump prints for the DNS message ``msg`` carried over UDP (``length`` its length on the wire,
    the captured length when not given)."""
    out: list[str] = []
    try:
        _print(_Message(msg, len(msg), out, verbose, mdns), len(msg) if length is None else length)
    except (Stop, Truncated) as cut:
        # domain_print's own checks (its header, names and records that stop short) go to its trunc label;
        # a GET_ read past the capture (a bit-string label, an A6 address) jumps out instead.
        return finish(out, " [|domain]", cut)
    return "".join(out)


def dns_tcp_text(payload: bytes, verbose: int, length: int | None = None) -> str:
    """What tcpdump appends to a TCP line on port 53: the message after its two-byte length prefix, with a
    leading space, or tcpdump's complaint when the prefix does not match the segment (a message split over
    segments, or several in one). ``length``: the segment's payload length on the wire, when the capture
    holds less."""
    captured = len(payload)
    n = captured if length is None else length
    if n < 2:
        return f" [DNS over TCP: length {n} < 2] (invalid)"
    if captured < 2:
        return Jumped(" [|domain]")  # the prefix is read with GET_BE_U_2
    prefix = (payload[0] << 8) | payload[1]
    if prefix != n - 2:
        return f" [prefix length({prefix}) != length({n - 2})] (invalid)"
    message = dns_text(payload[2:], verbose, length=n - 2)
    return type(message)(" " + message)  # (keeps Jumped/Stopped)


__all__ = ["Names", "dns_tcp_text", "dns_text", "type_name"]

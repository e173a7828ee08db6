"""``LinePrinter``: the text ``tcpdump -n`` prints for a packet, printed from ``decode()``'s layers.

The rules are tcpdump 4.99's (print-ether.c, print-ip.c, print-ip6.c, print-tcp.c, print-udp.c,
print-gre.c, print-vxlan.c, print-arp.c, print-sll.c, print-null.c, print-ascii.c, read to learn what
they print; this is our own code). Three tcpdump behaviours shape the code:

* tcpdump prints as it goes and, when a read runs past the captured bytes, jumps out to the top and
  ends the line with `` [|proto]`` (``_Trunc`` here); some printers instead check first and print the
  marker themselves and carry on. Which of the two happens decides the text *and* where the ``-x``
  dump starts (a jump resets the link-header length to 0, so the dump includes the link header).
* IPv4 and IPv6 cut the captured bytes to their length field ("snapend"); every printer below gets
  ``end``, the first byte it may not read, and ``length``, the length the enclosing header claims.
* The printer is stateful like tcpdump: TCP sequence numbers are shown relative to the first ones seen
  in each connection (``absolute_seq`` turns that off, as ``-S``).

Without -e/-v/-q, everyday Ethernet frames (IPv4/IPv6 TCP, UDP, ICMP echo, neighbour discovery, MLD
reports, ARP) take a shortcut, ``LinePrinter._fast_line``: it reads the few fields those lines need
straight from the bytes, keeps each flow's address text and connection key (``_flows``), and builds
no layer records; anything unusual goes to the general path, which prints the same (a test holds the
two to that). This is what lets ``afpacket read`` print over 200,000 lines a second.

Application protocols (DNS, DHCP, NTP, HTTP, ...) come from :mod:`.apps`, ICMP/ICMPv6/IGMP from
:mod:`.icmp`, LLC/STP/LLDP from :mod:`.l2ctl`, each called through its documented function.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Final

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
from . import apps, icmp, l2ctl
from .checksum import checksum_of, shouldbe
from .decoder import (
    VLAN_TPIDS,
    VXLAN_PORT,
    Decoded,
    decode,
    decode_at,
    decode_general,
    ipv4_layer,
    tcp_layer,
)
from .hexdump import CHAR, ascii_text, hex_ascii_lines, hex_lines
from .layers import (
    TCP,
    Ethernet,
    IPv4,
    IPv6,
    IPv6Extension,
    LinuxSLL,
    LinuxSLL2,
    Loopback,
    Vlan,
    ip4_text,
    ip6_text,
    mac_text,
)
from .marks import Jumped
from .names import (
    ARP_HARDWARE,
    ARP_OPS,
    BSD_AF,
    ETHERTYPES,
    GRE_FLAGS,
    IP_OPTIONS,
    IPPROTOS,
    PPP_PROTOCOLS,
    SLL_PKTTYPES,
    TCP_FLAGS_TEXT,
    TCP_OPTIONS,
)

Bytes = bytes | bytearray | memoryview

#: tcpdump refuses (prints "[Invalid header: ...]" for) records longer than this.
MAXIMUM_SNAPLEN: Final = 262144
DUMP_MODES: Final = frozenset({"x", "xx", "X", "XX", "A", "AA"})

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_HH: Final = struct.Struct("!HH")
_TS_ONLY: Final = struct.Struct("!4xII")  # NOP, NOP, TS(8, 10), val, ecr
_NOP_NOP_TS: Final = b"\x01\x01\x08\x0a"
_SACKOK_TS: Final = b"\x04\x02\x08\x0a"
_NOP_WSCALE: Final = b"\x01\x03\x03"
_SYN_OPTIONS: Final = struct.Struct("!2xH4xII3xB")  # mss, TS val, TS ecr, window scale
_ECN: Final = ("", ",ECT(1)", ",ECT(0)", ",CE")
#: "flags [...]" of -v for the three IPv4 flag bits (4 reserved, 2 DF, 1 MF), tcpdump's order and commas.
_IP_FLAGS: Final = tuple(
    ", ".join(name for bit, name in ((1, "+"), (2, "DF"), (4, "rsvd")) if f & bit) or "none" for f in range(8)
)
_TCP_ACK: Final = 0x10
_TCP_SYN_FIN_RST: Final = 0x07
_TCP_RST: Final = 0x04
_TCP_URG: Final = 0x20
_NO_ADDR_PROTOS: Final = frozenset({6, 17, 33, 132})  # their printers print the addresses themselves
_MASK32: Final = 0xFFFFFFFF


_FAKE_MACS: Final = bytes.fromhex("fffefdfcfbfa") * 2
_FAKE_TEXT: Final = "ff:fe:fd:fc:fb:fa"


class _Trunc(Exception):
    """tcpdump's longjmp: a read past the captured bytes. ``args[0]`` is the protocol word."""


def _default_ifname(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except (OSError, OverflowError, ValueError):
        return "?"


class LinePrinter:
    """Prints packets as ``tcpdump -n`` does, one call per packet.

    ``line(data, wire_len, linktype)`` returns exactly what tcpdump prints after the timestamp and the
    space that follows it, without the final newline (several lines for ``-v`` and the dumps).
    Options mirror tcpdump's: ``link`` (-e), ``verbose`` (-v: 1, -vv: 2, -vvv: 3), ``quiet`` (-q),
    ``absolute_seq`` (-S), ``dump`` ("x", "xx", "X", "XX", "A" or "AA" for -x/-xx/-X/-XX/-A/-AA),
    ``verify_checksums`` (False for -K: with -v, IP, TCP and UDP checksums are not checked or printed).
    ``ifname(ifindex)`` names interfaces for Linux cooked v2 (``-i any``) lines; the default asks the
    kernel (``socket.if_indextoname``) and prints "?" for an index it does not know.

    A printer keeps state across packets (TCP connections, for relative sequence numbers): use one per
    stream of packets, as one tcpdump process.

    Example::

        p = LinePrinter(verbose=1)
        for rec in afpacket.open_reader("x.pcap"):
            print(p.line(rec.data, rec.wire_len, rec.linktype))
    """

    def __init__(
        self,
        *,
        link: bool = False,
        verbose: int = 0,
        quiet: bool = False,
        absolute_seq: bool = False,
        dump: str | None = None,
        ifname: Callable[[int], str] | None = None,
        verify_checksums: bool = True,
    ) -> None:
        if dump is not None and dump not in DUMP_MODES:
            from ..errors import ArgumentError

            raise ArgumentError(f"LinePrinter(dump={dump!r}): use one of {', '.join(sorted(DUMP_MODES))} or None")
        if isinstance(verbose, bool) or not isinstance(verbose, int) or verbose < 0:
            from ..errors import ArgumentError

            raise ArgumentError(f"LinePrinter(verbose={verbose!r}): a count of -v flags (0, 1, 2, 3)")
        self._abs = absolute_seq
        self._ck = verify_checksums
        self._dump = dump
        self._e = link
        self._v = verbose
        self._q = quiet
        # tcpdump skips its hex dump of undecodable payloads under -q, -x and -X (not -A).
        self._suppress = quiet or (dump is not None and dump[0] in "xX")
        self._ifname = ifname or _default_ifname
        self._ifnames: dict[int, str] = {}
        #: TCP connections: key -> (initial seq, initial ack) of the "forward" direction (tcpdump's tha)
        self._conns: dict[tuple[str, str, int], tuple[int, int]] = {}
        self._jumped = False
        #: the everyday-frame shortcut applies (no option changes what those frames print)
        self._plain = not link and not verbose and not quiet

    @property
    def link(self) -> bool:
        """-e: the link-level header on each line."""
        return self._e

    @property
    def verbose(self) -> int:
        """The number of -v flags."""
        return self._v

    @property
    def quiet(self) -> bool:
        """-q: shorter lines."""
        return self._q

    @property
    def absolute_seq(self) -> bool:
        """-S: absolute TCP sequence numbers."""
        return self._abs

    @property
    def dump(self) -> str | None:
        """The raw-data dump after each line: "x", "xx", "X", "XX", "A", "AA" or None."""
        return self._dump

    # -- the entry point ---------------------------------------------------------------------------
    def line(self, data: Bytes, wire_len: int, linktype: int) -> str:
        """What ``tcpdump -n`` (with this printer's options) prints for one packet after its timestamp.

        ``data`` is the captured bytes of the frame (any buffer; a savefile record's ``data``),
        ``wire_len`` its length on the wire (larger than ``len(data)`` when the capture cut it short, as
        a snap length does), ``linktype`` its link type (``LINKTYPE_ETHERNET``, ``LINKTYPE_LINUX_SLL``/
        ``SLL2``, ``LINKTYPE_RAW``/``IPV4``/``IPV6``, ``LINKTYPE_NULL``/``LOOP``; see
        :mod:`afpacket.savefile.linktype`). Other link types print ``UNSUPPORTED`` and a hex dump.

        Returns the text without a final newline; -v and the dump options make it several lines. Never
        raises for malformed input: a packet cut short ends with tcpdump's `` [|proto]`` mark, and
        lengths tcpdump rejects (empty, ``wire_len`` below ``len(data)``, over 262144 bytes) print its
        ``[Invalid header: ...]`` text.

        Example::

            >>> LinePrinter().line(frame, len(frame), LINKTYPE_ETHERNET)
            'IP 10.0.0.1.40000 > 10.0.0.2.53: 4660+ A? example.com. (29)'
        """
        if type(data) is not bytes:
            data = bytes(data)
        caplen = len(data)
        if self._plain and linktype == LINKTYPE_ETHERNET and caplen >= 34 and caplen <= wire_len <= MAXIMUM_SNAPLEN:
            self._jumped = False
            try:
                text = self._fast_line(data, caplen, wire_len)
            except Exception:  # the general path below has the last guard
                text = None
            if text is not None:
                if self._dump is None:
                    return text
                return text + self._dump_text(data, caplen, 0 if self._jumped else 14)
        if not caplen or not wire_len or wire_len < caplen or caplen > MAXIMUM_SNAPLEN or wire_len > MAXIMUM_SNAPLEN:
            return _invalid_header(caplen, wire_len)
        # (when the shortcut above declined, decoding need not try it again)
        d = decode_general(data, linktype, wire_len) if self._plain and linktype == LINKTYPE_ETHERNET else decode(
            data, linktype, wire_len)
        out: list[str] = []
        self._jumped = False
        try:
            if linktype == LINKTYPE_ETHERNET:
                hdrlen = self._ether(out, d, 0, wire_len, caplen)
            elif linktype == LINKTYPE_LINUX_SLL2:
                hdrlen = self._sll2(out, d, wire_len, caplen)
            elif linktype == LINKTYPE_LINUX_SLL:
                hdrlen = self._sll(out, d, wire_len, caplen)
            elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
                hdrlen = self._raw(out, d, wire_len, caplen)
            elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
                hdrlen = self._null(out, d, wire_len, caplen)
            else:
                out.append("UNSUPPORTED")
                out.append(hex_ascii_lines(data))
                hdrlen = 0
        except _Trunc as t:
            out.append(f" [|{t.args[0]}]")
            hdrlen = 0
        except Exception:
            out.append(" [|packet]")
            hdrlen = 0
        if self._jumped:
            hdrlen = 0
        text = "".join(out)
        if self._dump is not None:
            text += self._dump_text(data, caplen, hdrlen)
        return text

    def _dump_text(self, data: bytes, caplen: int, hdrlen: int) -> str:
        """The -x/-xx/-X/-XX/-A/-AA dump: from after the link header, or the whole frame for the doubled
        forms (and after a cut-short line, whose link-header length tcpdump resets to 0)."""
        dump = self._dump
        assert dump is not None
        if len(dump) == 2:
            hdrlen = 0
        if caplen <= hdrlen:
            return ""
        body = data[hdrlen:] if hdrlen else data
        if dump[0] == "X":
            return hex_ascii_lines(body)
        if dump[0] == "x":
            return hex_lines(body)
        return ascii_text(body)

    def _fast_line(self, data: bytes, n: int, wire_len: int) -> str | None:
        """The line of an everyday Ethernet frame without -e/-v/-q, read straight from the bytes: IPv4
        without options (not a later fragment) or IPv6 (no extension header but the router-alert
        hop-by-hop header of MLD) carrying whole TCP, UDP or ICMP/ICMPv6 headers, and IPv4-over-Ethernet
        ARP requests and replies. The general printers' rules for exactly these, without building layer
        records, in one function; ``n`` is ``len(data)`` (at least 34). None hands the frame to the
        general path (anything else, and the few checks whose messages only it prints)."""
        etype, vhl, length, frag, proto = _FAST_IP4.unpack_from(data, 12)
        hbh = False
        if etype == 0x0800:
            if vhl != 0x45 or length < 20 or frag & 0x1FFF or wire_len - 14 < length:
                return None
            end = 14 + length
            length -= 20
            p = 34
            v4 = True
        elif etype == 0x86DD:
            if n < 54:
                return None
            vfl, length, proto = _FAST_IP6.unpack_from(data, 14)
            if vfl >> 28 != 6 or not length or wire_len - 54 < length:
                return None
            end = 54 + length
            p = 54
            v4 = False
            if proto == 0:
                # Linux's MLD reports: one hop-by-hop header holding a router alert and padding, which
                # tcpdump prints as "HBH " without -v.
                if n < 62 or length < 8 or data[54:62] != _MLD_HBH:
                    return None
                proto = 58
                p = 62
                length -= 8
                hbh = True
        elif etype == 0x0806:
            return _fast_arp(data, n, wire_len)
        else:
            return None
        if end > n:
            end = n
        avail = end - p
        if proto == 6:
            if avail < 20:
                return None
            flow = _flows.get(data[26:38] if v4 else data[22:58]) or _flow(data, v4)
            seq, ack, doff, flags, win, urg = _FAST_TCP.unpack_from(data, p + 4)
            hlen = (doff >> 4) << 2
            if hlen < 20 or hlen > avail or hlen > length:
                return None
            prefix, sport, dport, conn, rev, src, dst, tcp_app, _ = flow
            thseq = thack = 0
            if flags & _TCP_ACK:
                if self._abs:
                    rev = False
                elif sport != dport and not flags & 0x02:
                    # _relative() inlined for the common case (a segment of a known connection), which is
                    # most of any capture: the same rule, without a call.
                    th = self._conns.get(conn)
                    if th is None:
                        seq, ack, rev, thseq, thack = self._relative(data, src, dst, v4, 14, sport, dport, seq, ack,
                                                                     flags)
                    else:
                        thseq, thack = th
                        if rev:
                            seq = (seq - thack) & _MASK32
                            ack = (ack - thseq) & _MASK32
                        else:
                            seq = (seq - thseq) & _MASK32
                            ack = (ack - thack) & _MASK32
                else:
                    seq, ack, rev, thseq, thack = self._relative(data, src, dst, v4, 14, sport, dport, seq, ack,
                                                                 flags)
            else:
                rev = False
            length -= hlen
            if hlen == 32 and flags & 0x30 == _TCP_ACK and data[p + 20 : p + 24] == _NOP_NOP_TS:
                # The segment of an established Linux connection, in one string.
                val, ecr = _II.unpack_from(data, p + 24)
                if length > 0:
                    text = (f"{prefix}{TCP_FLAGS_TEXT[flags]}, seq {seq}:{(seq + length) & _MASK32}, ack {ack}, "
                            f"win {win}, options [nop,nop,TS val {val} ecr {ecr}], length {length}")
                    if tcp_app:
                        app = apps.tcp_app(sport, dport, data[p + 32 : end], 0, length=length)
                        if app:
                            return text + self._cut(app)
                    return text
                if flags & _TCP_SYN_FIN_RST:
                    return (f"{prefix}{TCP_FLAGS_TEXT[flags]}, seq {seq}, ack {ack}, win {win}, "
                            f"options [nop,nop,TS val {val} ecr {ecr}], length {length}")
                return (f"{prefix}{TCP_FLAGS_TEXT[flags]}, ack {ack}, win {win}, options [nop,nop,TS val {val} "
                        f"ecr {ecr}], length {length}")
            if hlen == 20:
                opts = ""
            elif hlen == 32 and data[p + 20 : p + 24] == _NOP_NOP_TS:
                val, ecr = _II.unpack_from(data, p + 24)
                opts = f", options [nop,nop,TS val {val} ecr {ecr}]"
            else:
                common = _common_options(data[p + 20 : p + hlen])
                if common is not None:
                    opts = common
                else:
                    out: list[str] = []
                    try:
                        done = self._tcp_options(out, data, p + 20, hlen - 20, end, rev, thseq, thack,
                                                 p + hlen + length)
                    except _Trunc as t:
                        # Handled here: the general path must not see this segment again (its sequence
                        # numbers were recorded already).
                        self._jumped = True
                        done = False
                        out.append(f" [|{t.args[0]}]")
                    opts = "".join(out)
                    if not done:
                        return f"{prefix}{_seq_text(flags, seq, length)}{_ack_text(flags, ack, win, urg)}{opts}"
            if flags & 0x30 == _TCP_ACK:
                # (most segments: ACK without URG, each form in one string)
                if length > 0:
                    text = (f"{prefix}{TCP_FLAGS_TEXT[flags]}, seq {seq}:{(seq + length) & _MASK32}, ack {ack}, "
                            f"win {win}{opts}, length {length}")
                elif flags & _TCP_SYN_FIN_RST:
                    text = f"{prefix}{TCP_FLAGS_TEXT[flags]}, seq {seq}, ack {ack}, win {win}{opts}, length {length}"
                else:
                    text = f"{prefix}{TCP_FLAGS_TEXT[flags]}, ack {ack}, win {win}{opts}, length {length}"
            else:
                text = (f"{prefix}{_seq_text(flags, seq, length)}{_ack_text(flags, ack, win, urg)}{opts}, "
                        f"length {length}")
            if length > 0 and tcp_app:
                app = apps.tcp_app(sport, dport, data[p + hlen : end], 0, length=length)
                if app:
                    return text + self._cut(app)
            return text
        if proto == 17:
            if avail < 8 or length < 8:
                return None
            ulen = (data[p + 4] << 8) | data[p + 5]
            if ulen < 8:
                return None
            flow = _flows.get(data[26:38] if v4 else data[22:58]) or _flow(data, v4)
            prefix, sport, dport = flow[0], flow[1], flow[2]
            if sport == VXLAN_PORT or dport == VXLAN_PORT:
                return None
            ulen -= 8
            length -= 8
            if ulen < length:
                length = ulen
            if flow[8]:
                start = p + 8
                app = apps.udp_app(sport, dport, data[start : min(end, start + length)], 0, length=length)
                if app is not None:
                    return prefix + self._cut(app)
            if ulen > length and not (v4 and frag & 0x2000):
                return f"{prefix}UDP, bad length {ulen} > {length}"
            return f"{prefix}UDP, length {ulen}"
        if avail < 8:
            return None
        if v4:
            if proto != 1:
                return None
            key = data[26:34]
            head = (_pairs.get(key) or _pair(key, True))[0]
            typ = data[34]
            if typ == 8 or typ == 0:
                ident, seq = _HH.unpack_from(data, 38)
                return f"{head}ICMP echo {'request' if typ == 8 else 'reply'}, id {ident}, seq {seq}, length {length}"
            return head + self._cut(icmp.icmp4_text(data[p:end], length, 0, self._quoted,
                                                    fragmented=bool(frag & 0x2000)))
        if proto != 58:
            return None
        key = data[22:54]
        head = (_pairs.get(key) or _pair(key, False))[0]
        if hbh:
            head += "HBH "
        typ = data[p]
        if typ == 128 or typ == 129:
            ident, seq = _HH.unpack_from(data, p + 4)
            return f"{head}ICMP6, echo {'request' if typ == 128 else 'reply'}, id {ident}, seq {seq}, length {length}"
        # Neighbour discovery and MLDv2 reports, as icmp6_text prints them without -v (no options then).
        if (typ == 135 or typ == 136) and avail >= 24:
            target = ip6_text(data[p + 8 : p + 24])
            if typ == 135:
                return f"{head}ICMP6, neighbor solicitation, who has {target}, length {length}"
            return f"{head}ICMP6, neighbor advertisement, tgt is {target}, length {length}"
        if typ == 143 and length >= 8:
            return (f"{head}ICMP6, multicast listener report v2, {(data[p + 6] << 8) | data[p + 7]} group record(s), "
                    f"length {length}")
        # (the addresses serve only the checksum that -v verifies)
        return head + self._cut(icmp.icmp6_text(data[p:end], length, "", "", 0, self._quoted))

    def _cut(self, text: str) -> str:
        """Text from another module's printer, which cannot jump out as tcpdump does. A :class:`Jumped`
        text says it stopped where tcpdump's longjmp would, which resets the link-header length for the
        -x/-A dump as in tcpdump; a :class:`Stopped` or plain one that tcpdump's printer returned normally
        (a `` [|proto]`` mark in it was printed at one of its ``trunc:`` labels)."""
        if type(text) is Jumped:
            self._jumped = True
        return text

    # -- link layers -------------------------------------------------------------------------------
    def _ethertype_text(self, etype: int) -> str:
        if self._q:
            return ETHERTYPES.get(etype) or f"Unknown Ethertype (0x{etype:04x})"
        return f"ethertype {ETHERTYPES.get(etype, 'Unknown')} (0x{etype:04x})"

    def _ether(self, out: list[str], d: Decoded, off: int, length: int, caplen: int) -> int:
        """An Ethernet frame at ``data[off]``; returns the link-header length (for -x)."""
        if length < caplen:
            out.append(f"[length {length} < caplen {caplen}] (invalid)")
            return length
        if caplen < 14:
            out.append(" [|ether]")
            return caplen
        eth = d.link
        if type(eth) is not Ethernet or d.start != off:
            d = decode_at(d.data, off, off + caplen, "ether", d.wire_len)
            eth = d.link
        assert isinstance(eth, Ethernet)
        e = self._e
        first = len(out)
        if e:
            out.append(f"{eth.src} > {eth.dst}, ")
        orig = length
        length -= 14
        caplen -= 14
        p = off + 14
        hdrlen = 14
        etype = eth.ethertype
        printed_length = False
        if etype in VLAN_TPIDS:
            tags = d.vlans
            k = 0
            while etype in VLAN_TPIDS:
                if caplen < 4:
                    out.append(" [|vlan]")
                    return hdrlen + caplen
                if e:
                    tag: Vlan = tags[k]
                    out.append(self._ethertype_text(etype))
                    out.append(", " if printed_length else f", length {orig}: ")
                    printed_length = True
                    out.append(f"vlan {tag.vid}, p {tag.pcp}{', DEI' if tag.dei else ''}, ")
                etype = tags[k].ethertype
                k += 1
                p += 4
                length -= 4
                caplen -= 4
                hdrlen += 4
        if etype <= 1500 or etype == 0x8870:
            return hdrlen + self._llc(out, d, first, off, p, etype, orig, length, caplen, printed_length)
        if e:
            out.append(self._ethertype_text(etype))
            out.append(", " if printed_length else f", length {orig}: ")
        if not self._ethertype(out, d, etype, p, length, caplen):
            if not e:
                out.append(f"{eth.src} > {eth.dst}, {self._ethertype_text(etype)}, length {orig}: ")
            if not self._suppress:
                out.append(hex_ascii_lines(d.data[p : p + caplen]))
        return hdrlen

    def _llc(
        self, out: list[str], d: Decoded, first: int, off: int, p: int, etype: int, orig: int, length: int,
        caplen: int, printed_length: bool,
    ) -> int:
        """An 802.3 frame: the LLC printer (l2ctl.llc_line) prints the whole frame's text; returns the
        LLC header length tcpdump counts into the link header."""
        data = d.data
        if etype <= 1500 and etype < length:
            length = etype
            caplen = min(caplen, length)
        # tcpdump's LLC printer takes over the line: l2ctl prints it (for a tagged frame with -e, what
        # follows the tags this printer already wrote).
        text = l2ctl.llc_line(data[off : p + caplen], orig, self._e, self._v, hdrlen=p - off,
                              ethertype=self._ethertype_callback, dump=not self._suppress)
        if p - off == 14 or not self._e:
            del out[first:]
        out.append(text)
        return _llc_header_length(data, p, length, caplen)

    def _ethertype_callback(self, etype: int, payload: bytes, length: int) -> str | None:
        """What follows an ethertype carried elsewhere (SNAP headers), for l2ctl: None when unknown."""
        out: list[str] = []
        try:
            if not self._ethertype(out, decode_at(payload, 0, len(payload), "", length), etype, 0, length,
                                   len(payload)):
                return None
        except _Trunc as t:
            out.append(f" [|{t.args[0]}]")
            self._jumped = True
        return "".join(out)

    def _ethertype(self, out: list[str], d: Decoded, etype: int, p: int, length: int, caplen: int) -> bool:
        """The payload of a known ethertype; False when tcpdump would dump it as unknown."""
        if etype == 0x0800:
            self._ip4(out, d, p, length, p + caplen)
        elif etype == 0x86DD:
            self._ip6(out, d, p, length, p + caplen)
        elif etype == 0x0806 or etype == 0x8035:
            self._arp(out, d, p, length, caplen)
        elif etype == 0x88CC:
            out.append(l2ctl.lldp_text(d.data[p : p + caplen], length, self._v))
        else:
            return False
        return True

    def _sll(self, out: list[str], d: Decoded, length: int, caplen: int) -> int:
        if caplen < 16:
            raise _Trunc("sll")
        sll = d.link
        assert isinstance(sll, LinuxSLL)
        if self._e:
            out.append(self._cooked_head(f"{SLL_PKTTYPES.get(sll.pkttype, '?'):>3} ", sll.halen, sll.address,
                                         sll.protocol, length))
        if sll.hatype == 803:  # radiotap inside: not decoded here
            return 16
        return 16 + self._cooked(out, d, sll.protocol, 16, length - 16, caplen - 16,
                                 lambda: self._cooked_head(f"{SLL_PKTTYPES.get(sll.pkttype, '?'):>3} ", sll.halen,
                                                           sll.address, sll.protocol, length))

    def _sll2(self, out: list[str], d: Decoded, length: int, caplen: int) -> int:
        if caplen < 20:
            raise _Trunc("sll2")
        sll = d.link
        assert isinstance(sll, LinuxSLL2)
        name = self._ifnames.get(sll.ifindex)
        if name is None:
            name = self._ifnames[sll.ifindex] = self._ifname(sll.ifindex)
        out.append(f"{name:<5} {SLL_PKTTYPES.get(sll.pkttype, '?'):<3} ")

        def head() -> str:
            return self._cooked_head(f"ifindex {sll.ifindex} ", sll.halen, sll.address, sll.protocol, length)

        if self._e:
            out.append(head())
        if sll.hatype == 803:
            return 20
        return 20 + self._cooked(out, d, sll.protocol, 20, length - 20, caplen - 20, head)

    def _cooked_head(self, first: str, halen: int, address: str, proto: int, length: int) -> str:
        text = first + (f"{address} " if halen == 6 else "")
        if self._q:
            return text
        if proto <= 1500:
            kind = {1: "802.3", 4: "802.2"}.get(proto, f"ethertype Unknown (0x{proto:04x})")
        else:
            kind = f"ethertype {ETHERTYPES.get(proto, 'Unknown')} (0x{proto:04x})"
        return f"{text}{kind}, length {length}: "

    def _cooked(
        self, out: list[str], d: Decoded, proto: int, p: int, length: int, caplen: int, head: Callable[[], str]
    ) -> int:
        """The payload of a cooked header; returns the extra header bytes (VLAN tag, LLC)."""
        extra = 0
        while True:
            if proto <= 1500:
                if proto == 4:  # 802.2: an LLC header without the Ethernet part
                    if caplen >= 3:
                        # l2ctl prints LLC after an 802.3 header; give it one with placeholder
                        # addresses and take them out again (a cooked header has no MAC pair).
                        frame = _FAKE_MACS + _U16.pack(min(length, 1500)) + d.data[p : p + caplen]
                        text = l2ctl.llc_line(frame, length + 14, self._e, self._v,
                                              ethertype=self._ethertype_callback, dump=not self._suppress)
                        if self._e:
                            text = text.split(": ", 1)[1] if text.startswith(_FAKE_TEXT) else text
                        else:
                            text = text.replace(f"{_FAKE_TEXT} > {_FAKE_TEXT} ", "").replace(f"{_FAKE_TEXT} ", "")
                        out.append(text)
                    else:
                        out.append(" [|llc]")
                    return extra + _llc_header_length(d.data, p, length, caplen)
                if not self._suppress and proto != 1:
                    out.append(hex_ascii_lines(d.data[p : p + caplen]))
                return extra
            if proto == 0x8100:
                if caplen < 4:
                    out.append(" [|vlan]")
                    return extra + caplen
                tci, inner = _HH.unpack_from(d.data, p)
                if self._e:
                    out.append(f"vlan {tci & 0xFFF}, p {tci >> 13}{', DEI' if tci & 0x1000 else ''}, ")
                if inner <= 1500:
                    inner = 4
                if not self._q:
                    out.append(f"ethertype {ETHERTYPES.get(inner, 'Unknown')}, ")
                proto = inner
                p += 4
                length -= 4
                caplen -= 4
                extra += 4
                continue
            if not self._ethertype(out, d, proto, p, length, caplen):
                if not self._e:
                    out.append(head())
                if not self._suppress:
                    out.append(hex_ascii_lines(d.data[p : p + caplen]))
            return extra

    def _null(self, out: list[str], d: Decoded, length: int, caplen: int) -> int:
        if caplen < 4:
            raise _Trunc("null")
        lo = d.link
        assert isinstance(lo, Loopback)
        family = lo.family
        if self._e:
            out.append(self._null_head(family, length))
        if family == 2:
            self._ip4(out, d, 4, length - 4, caplen)
        elif family in (24, 28, 30):
            self._ip6(out, d, 4, length - 4, caplen)
        else:
            if not self._e:
                out.append(self._null_head(family, length))
            if not self._suppress:
                out.append(hex_ascii_lines(d.data[4:caplen]))
        return 4

    def _null_head(self, family: int, length: int) -> str:
        if self._q:
            return f"{BSD_AF.get(family) or f'Unknown AF {family}'}, length {length}: "
        return f"AF {BSD_AF.get(family, 'Unknown')} ({family}), length {length}: "

    def _raw(self, out: list[str], d: Decoded, length: int, caplen: int) -> int:
        if self._e:
            out.append("ip: ")
        version = d.data[0] >> 4
        if version == 4:
            self._ip4(out, d, 0, length, caplen)
        elif version == 6:
            self._ip6(out, d, 0, length, caplen)
        else:
            out.append(f"unknown ip {version}")
        return 0

    # -- ARP ---------------------------------------------------------------------------------------
    def _arp(self, out: list[str], d: Decoded, off: int, length: int, caplen: int) -> None:
        data = d.data
        end = off + caplen
        if caplen < 8:
            raise _Trunc("arp")
        hrd, pro, hln, pln, op = struct.unpack_from("!HHBBH", data, off)
        if hrd == 19:  # ATM ARP has its own layout, which afpacket does not decode
            raise _Trunc("arp")
        sha = off + 8
        spa = sha + hln
        tha = spa + pln
        tpa = tha + hln
        if tpa + pln > end:
            raise _Trunc("arp")
        v = self._v
        if not self._e:
            out.append("ARP, ")
        ip_proto = pro in (0x0800, 0x1000)
        if not ip_proto or pln != 4 or hln == 0 or v:
            out.append(f"{ARP_HARDWARE.get(hrd) or f'Unknown Hardware ({hrd})'} (len {hln}), "
                       f"{ETHERTYPES.get(pro) or f'Unknown Protocol (0x{pro:04x})'} (len {pln})")
            if not v:
                out.append(f", length {length}")
                return
        out.append(f"{', ' if v else ''}{ARP_OPS.get(op) or f'Unknown ({op})'} ")

        def proto_addr(at: int) -> str:
            if not ip_proto:
                return "<wrong proto type>"
            if pln != 4:
                return "<wrong len>"
            return ip4_text(_U32.unpack_from(data, at)[0])

        def hw_addr(at: int) -> str:
            return mac_text(data[at : at + hln]) if hln else "<empty>"

        if op == 1:
            text = f"who-has {proto_addr(tpa)}"
            if any(data[tha : tha + hln]):
                text += f" ({hw_addr(tha)})"
            out.append(f"{text} tell {proto_addr(spa)}")
        elif op == 2:
            out.append(f"{proto_addr(spa)} is-at {hw_addr(sha)}")
        elif op in (3, 8):
            out.append(f"who-is {hw_addr(tha)} tell {hw_addr(sha)}")
        elif op == 4:
            out.append(f"{hw_addr(tha)} at {proto_addr(tpa)}")
        elif op == 9:
            out.append(f"{hw_addr(sha)} at {proto_addr(spa)}")
        else:
            # tcpdump dumps an unknown operation even under -q/-x (this dump is not the optional one)
            out.append(hex_ascii_lines(data[off:end]))
            return
        out.append(f", length {length}")

    # -- IPv4 --------------------------------------------------------------------------------------
    def _ip4(self, out: list[str], d: Decoded, off: int, length: int, end: int) -> None:
        data = d.data
        if end <= off:
            raise _Trunc("ip")
        version = data[off] >> 4
        if version != 4:
            out.append("IP6, wrong link-layer encapsulation (invalid)" if version == 6 else f"IP{version} (invalid)")
            return
        if not self._e:
            out.append("IP ")
        if end - off < 20:
            out.append(" [|ip]")
            return
        if length < 20:
            out.append(f"truncated-ip {length}")
            return
        ip = d.net
        if d.net_offset != off or type(ip) is not IPv4:
            ip = ipv4_layer(data, off)
        hlen = ip.ihl
        if hlen < 20:
            out.append(f"bad-hlen {hlen}")
            return
        tlen = ip.total_length
        if length < tlen:
            out.append(f"truncated-ip - {tlen - length} bytes missing! ")
        if tlen < hlen:
            out.append(f"bad-len {tlen}")
            return
        if off + tlen < end:
            end = off + tlen
        if self._v:
            proto = ip.proto
            tos = ip.tos
            out.append(f"(tos 0x{tos:x}{_ECN[tos & 3]}{f', ttl {ip.ttl}' if ip.ttl else ''}, id {ip.id}, offset "
                       f"{ip.frag_offset}, flags [{_IP_FLAGS[ip.flags]}], proto {IPPROTOS.get(proto, 'unknown')} "
                       f"({proto}), length {tlen}")
            bad_options = False
            if hlen > 20:
                out.append(", options (")
                if self._ip_options(out, data, off + 20, hlen - 20, end) < 0:
                    out.append(" [truncated-option]")
                    bad_options = True
                out.append(")")
            if self._ck and off + hlen <= end:
                s = checksum_of(data[off : off + hlen])
                if s:
                    out.append(f", bad cksum {ip.checksum:x} (->{shouldbe(ip.checksum, s):x})!")
            out.append(")\n    ")
            if bad_options:
                out.append(f"{ip.src} > {ip.dst}:  [|ip]")
                return
        if ip.frag_offset:
            out.append(f"{ip.src} > {ip.dst}: ip-proto-{ip.proto}")
            return
        proto = ip.proto
        if proto not in _NO_ADDR_PROTOS:
            out.append(f"{ip.src} > {ip.dst}: ")
        if off + hlen > end:
            out.append(f" [remaining caplen({end - off}) < header length({hlen})]")
            raise _Trunc("ip")
        self._demux(out, d, off + hlen, tlen - hlen, ip, off, ip.flags & 1, proto, end)

    def _ip_options(self, out: list[str], data: bytes, p: int, length: int, end: int) -> int:
        """IPv4 options as -v prints them; -1 when one was cut short by the capture."""
        sep = ""
        while length > 0:
            out.append(sep)
            sep = ","
            if p >= end:
                raise _Trunc("ip")
            code = data[p]
            out.append(IP_OPTIONS.get(code) or f"unknown {code}")
            if code <= 1:
                olen = 1
            else:
                if p + 1 >= end:
                    raise _Trunc("ip")
                olen = data[p + 1]
                if olen < 2:
                    out.append(f" [bad length {olen}]")
                    return 0
            if olen > length:
                out.append(f" [bad length {olen}]")
                return 0
            if p + olen > end:
                return -1
            if code == 0:
                return 0
            if code == 68:
                if self._ip_timestamps(out, data, p, olen, end) < 0:
                    return -1
            elif code in (7, 131, 137):
                if olen < 3:
                    out.append(f" [bad length {olen}]")
                else:
                    if (olen + 1) & 3:
                        out.append(f" [bad length {olen}]")
                    ptr = data[p + 2] - 1
                    if ptr < 3 or (ptr + 1) & 3 or ptr > olen + 1:
                        out.append(f" [bad ptr {data[p + 2]}]")
                    for i in range(3, olen, 4):
                        if p + i + 4 > end:
                            return -1
                        out.append(f" {ip4_text(_U32.unpack_from(data, p + i)[0])}")
                        if ptr > i:
                            out.append(",")
            elif code == 148:
                if olen < 4:
                    out.append(f" [bad length {olen}]")
                else:
                    value = _U16.unpack_from(data, p + 2)[0]
                    if value:
                        out.append(f" value {value}")
            p += olen
            length -= olen
        return 0

    def _ip_timestamps(self, out: list[str], data: bytes, p: int, length: int, end: int) -> int:
        if length < 4:
            out.append(f"[bad length {length}]")
            return 0
        out.append(" TS{")
        flag = data[p + 3]
        kind = flag & 0xF
        hoplen = 4 if kind == 0 else 8
        if (length - 4) & (hoplen - 1):
            out.append(f"[bad length {length}]")
        ptr = data[p + 2] - 1
        if ptr < 4 or (ptr - 4) & (hoplen - 1) or ptr > length + 1:
            out.append(f"[bad ptr {data[p + 2]}]")
        i = 0
        if kind in (0, 1, 3):
            out.append({0: "TSONLY", 1: "TS+ADDR", 3: "PRESPEC"}[kind])
            sep = " "
            i = 4
            while i < length:
                if ptr == i:
                    sep = " ^ "
                if p + i + hoplen > end:
                    return -1
                stamp = _U32.unpack_from(data, p + i + hoplen - 4)[0]
                addr = ip4_text(_U32.unpack_from(data, p + i)[0]) if hoplen == 8 else ""
                out.append(f"{sep}{stamp}@{addr}")
                sep = " "
                i += hoplen
        else:
            out.append(f"[bad ts type {kind}]")
        out.append(" ^ " if ptr == i else "")
        if flag >> 4:
            out.append(f" [{flag >> 4} hops not recorded]}} ")
        else:
            out.append("}")
        return 0

    # -- IPv6 --------------------------------------------------------------------------------------
    def _ip6(self, out: list[str], d: Decoded, off: int, length: int, end: int) -> None:
        data = d.data
        if end - off < 40:
            out.append(" [|ip6]")
            return
        if length < 40:
            out.append(f"truncated-ip6 {length}")
            return
        if not self._e:
            out.append("IP6 ")
        ip = d.net
        if d.net_offset != off or type(ip) is not IPv6:
            d = decode_at(data, off, end, "ip6", d.wire_len)
            ip = d.net
        assert isinstance(ip, IPv6)
        if ip.version != 6:
            out.append(f"version error: {ip.version} != 6")
            return
        payload_len = ip.payload_length
        if payload_len:
            total = payload_len + 40
            if length < total:
                out.append(f"truncated-ip6 - {total - length} bytes missing!")
        else:
            total = length + 40
        nh = ip.next_header
        if self._v:
            tc, fl = ip.traffic_class, ip.flow_label
            out.append(f"({f'class 0x{tc:02x}, ' if tc else ''}{f'flowlabel 0x{fl:05x}, ' if fl else ''}hlim "
                       f"{ip.hop_limit}, next-header {IPPROTOS.get(nh, 'unknown')} ({nh}) payload length: "
                       f"{payload_len}) ")
        if off + total < end:
            end = off + total
        cp = off
        advance = 40
        remaining = total
        total_advance = 0
        found_ext = found_hbh = fragmented = False
        found_jumbo: int | None = None
        ph = 255
        while cp < end and advance > 0:
            if remaining < advance:
                out.append(" [|ip6]")
                return
            cp += advance
            remaining -= advance
            total_advance += advance
            if cp == off + 40 and nh not in _NO_ADDR_PROTOS:
                out.append(f"{ip.src} > {ip.dst}: ")
            if nh == 0:
                if found_hbh:
                    out.append("[The Hop-by-Hop Options header was already found] (invalid)")
                    return
                if ph != 255:
                    out.append("[The Hop-by-Hop Options header don't follow the IPv6 header] (invalid)")
                    return
                advance, jumbo = self._ip6_options(out, data, cp, end, "hbhopt", "HBH ", payload_len)
                found_jumbo = jumbo
                if payload_len == 0 and jumbo is None:
                    out.append("[No valid Jumbo Payload Hop-by-Hop option found] (invalid)")
                    return
                if advance < 0:
                    return
                found_ext = found_hbh = True
                nh = data[cp]
            elif nh == 60:
                advance, _ = self._ip6_options(out, data, cp, end, "dstopt", "DSTOPT ", None)
                if advance < 0:
                    return
                found_ext = True
                nh = data[cp]
            elif nh == 44:
                if cp + (8 if self._v else 4) > end:
                    raise _Trunc("frag6")
                offlg = _U16.unpack_from(data, cp + 2)[0]
                size = (40 + payload_len - (cp - off) - 8) & 0xFFFFFFFFFFFFFFFF
                if self._v:
                    out.append(f"frag (0x{_U32.unpack_from(data, cp + 4)[0]:08x}:{offlg & 0xFFF8}|{size})")
                else:
                    out.append(f"frag ({offlg & 0xFFF8}|{size})")
                if offlg & 0xFFF8:
                    return
                out.append(" ")
                advance = 8
                if end <= cp + advance:
                    return
                found_ext = fragmented = True
                nh = data[cp]
            elif nh == 43:
                if cp >= end:
                    out.append(" [|ip6]")
                    return
                advance = self._rt6(out, data, cp, end)
                if advance < 0:
                    return
                found_ext = True
                nh = data[cp]
            elif nh in (135, 62):
                out.append("mobility")  # Mobile IPv6 is not decoded here
                return
            else:
                if found_jumbo is not None:
                    total = found_jumbo + 40
                    if total < total_advance:
                        out.append(" [|ip6]")
                        return
                    if length < total:
                        out.append(f"truncated-ip6 - {total - length} bytes missing!")
                    end = min(end, off + total)
                    remaining = total - total_advance
                elif payload_len == 0:
                    if found_ext:
                        out.append(" [|ip6]")
                        return
                    remaining = 0
                    end = min(end, off + 40)
                self._demux(out, d, cp, remaining, ip, off, fragmented, nh, end)
                return
            ph = nh

    def _ip6_options(
        self, out: list[str], data: bytes, cp: int, end: int, proto: str, label: str, payload_len: int | None
    ) -> tuple[int, int | None]:
        """A hop-by-hop or destination options header; returns (its length or -1, the jumbo length)."""
        if cp + 2 > end:
            raise _Trunc(proto)
        size = (data[cp + 1] + 1) << 3
        if cp + size > end:
            out.append(f" [|{proto}]")
            return -1, None
        out.append(label)
        v = self._v
        if label == "DSTOPT " and not v:
            return size, None
        jumbo: int | None = None
        found_jumbo = False
        i, n, p = 0, size - 2, cp + 2
        if n == 0:
            return size, None
        while i < n:
            kind = data[p + i]
            if kind == 0:
                optlen = 1
            elif i + 1 < n:
                optlen = data[p + i + 1] + 2
            else:
                out.append(f" [|{proto}]")
                return -1, jumbo
            if i + optlen > n:
                out.append(f" [|{proto}]")
                return -1, jumbo
            left = n - i
            if kind == 0:
                if v:
                    out.append("(pad1)")
            elif kind == 1:
                if left < 2:
                    out.append("(padn: trunc)")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if v:
                    out.append("(padn)")
            elif kind == 5:
                if left < 4:
                    out.append("(rtalert: trunc)")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if data[p + i + 1] != 2:
                    out.append(f"(rtalert: invalid len {data[p + i + 1]})")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if v:
                    out.append(f"(rtalert: 0x{_U16.unpack_from(data, p + i + 2)[0]:04x}) ")
            elif kind == 0xC2:
                if left < 6:
                    out.append("(jumbo: trunc)")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if data[p + i + 1] != 4:
                    out.append(f"(jumbo: invalid len {data[p + i + 1]})")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                value = _U32.unpack_from(data, p + i + 2)[0]
                if found_jumbo:
                    if v:
                        out.append(f"(jumbo: {value} - already seen) ")
                else:
                    found_jumbo = True
                    if payload_len is None:
                        if v:
                            out.append(f"(jumbo: {value} - not a hop-by-hop option) ")
                    elif payload_len != 0:
                        if v:
                            out.append(f"(jumbo: {value} - payload len != 0) ")
                    elif value < 65536:
                        if v:
                            out.append(f"(jumbo: {value} - < 65536) ")
                    else:
                        jumbo = value
                        if v:
                            out.append(f"(jumbo: {value}) ")
            elif kind == 0xC9:
                if left < 18:
                    out.append("(homeaddr: trunc)")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if data[p + i + 1] < 16:
                    out.append(f"(homeaddr: invalid len {data[p + i + 1]})")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if v:
                    out.append(f"(homeaddr: {ip6_text(data[p + i + 2 : p + i + 18])}")
                    out.append(")")
            else:
                if left < 2:
                    out.append(f"(type {kind}: trunc)")
                    out.append(f" [|{proto}]")
                    return -1, jumbo
                if v:
                    out.append(f"(opt_type 0x{kind:02x}: len={data[p + i + 1]})")
            i += optlen
        if v:
            out.append(" ")
        return size, jumbo

    def _rt6(self, out: list[str], data: bytes, cp: int, end: int) -> int:
        """An IPv6 routing header, printed field by field as tcpdump reads it."""
        out.append("RT6")

        def need(n: int) -> None:
            if cp + n > end:
                raise _Trunc("rt6")

        need(2)
        size = data[cp + 1]
        out.append(f" (len={size}")
        need(3)
        rtype = data[cp + 2]
        out.append(f", type={rtype}{' [Deprecated]' if rtype == 0 else ''}")
        need(4)
        out.append(f", segleft={data[cp + 3]}")
        if rtype in (0, 2):
            need(8)
            reserved = _U32.unpack_from(data, cp + 4)[0]
            if reserved or self._v:
                out.append(f", rsv=0x{reserved:x}")
        elif rtype == 4:
            need(5)
            out.append(f", last-entry={data[cp + 4]}")
            need(6)
            if data[cp + 5] or self._v:
                out.append(f", flags=0x{data[cp + 5]:x}")
            need(8)
            out.append(f", tag={_U16.unpack_from(data, cp + 6)[0]:x}")
        else:
            out.append(" (unknown type) (invalid)")
            return -1
        if size % 2:
            out.append(f" (invalid length {size}) (invalid)")
            return -1
        for i in range(size >> 1):
            need(8 + 16 * (i + 1))
            out.append(f", [{i}]{ip6_text(data[cp + 8 + 16 * i : cp + 24 + 16 * i])}")
        out.append(") ")
        return (size + 1) << 3

    # -- the protocol after IP ---------------------------------------------------------------------
    def _demux(
        self, out: list[str], d: Decoded, off: int, length: int, ip: IPv4 | IPv6, iph: int, fragmented: int | bool,
        nh: int, end: int,
    ) -> None:
        v4 = type(ip) is IPv4
        if nh == 6:
            self._tcp(out, d, off, length, ip, iph, fragmented, end)
        elif nh == 17:
            self._udp(out, d, off, length, ip, iph, fragmented, end)
        elif nh == 1:
            if v4:
                out.append(self._cut(icmp.icmp4_text(d.data[off:end], length, self._v, self._quoted,
                                                     fragmented=bool(fragmented))))
            else:
                out.append("[ICMP requires IPv4] (invalid)")
        elif nh == 58:
            if not v4:
                out.append(self._cut(icmp.icmp6_text(d.data[off:end], length, ip.src, ip.dst, self._v, self._quoted,
                                                     fragmented=bool(fragmented))))
            else:
                out.append("[ICMPv6 requires IPv6] (invalid)")
        elif nh == 2:
            if not v4:
                out.append("[IGMP requires IPv4] (invalid)")
            elif self._q:
                out.append("igmp")
            else:
                out.append(self._cut(icmp.igmp_text(d.data[off:end], length, self._v)))
        elif nh == 4 or nh == 41:
            inner = d.inner
            if inner is None or inner.start != off:
                inner = decode_at(d.data, off, end, "ip" if nh == 4 else "ip6", d.wire_len)
            if nh == 4:
                self._ip4(out, inner, off, length, end)
            else:
                self._ip6(out, inner, off, length, end)
        elif nh == 47:
            self._gre(out, d, off, length, end)
        elif nh == 59:
            out.append("no next header")
        elif nh == 77:
            out.append(f" nd {length}")
        elif nh == 143:
            if v4:
                out.append("[Ethernet requires IPv6] (invalid)")
            else:
                self._ether(out, decode_at(d.data, off, end, "ether", d.wire_len), off, length, end - off)
        elif nh == 132:
            # The SCTP common header only; its chunks are not decoded here.
            if length < 12:
                out.append(f"truncated-sctp - {12 - length} bytes missing!")
            elif end - off < 12:
                out.append(" [|sctp]")
            else:
                sport, dport = _HH.unpack_from(d.data, off)
                out.append(f"{ip.src}.{sport} > {ip.dst}.{dport}: sctp")
        elif nh == 33:
            # DCCP is not decoded here (tcpdump's printer for it prints the addresses itself).
            out.append(f"{ip.src} > {ip.dst}: ip-proto-{nh} {length}")
        else:
            out.append(f" ip-proto-{nh} {length}")

    # -- TCP ---------------------------------------------------------------------------------------
    def _tcp(
        self, out: list[str], d: Decoded, off: int, length: int, ip: IPv4 | IPv6, iph: int, fragmented: int | bool,
        end: int,
    ) -> None:
        data = d.data
        v4 = type(ip) is IPv4
        if end - off < 4:
            out.append(f"{ip.src} > {ip.dst}: [|tcp]")
            return
        if end - off < 20:
            sport, dport = _HH.unpack_from(data, off)
            out.append(self._ports_prefix(ip, v4, 6, sport, dport))
            out.append(" [|tcp]")
            return
        t = d.transport
        if d.transport_offset != off or type(t) is not TCP:
            t = tcp_layer(data, off)
        sport, dport = t[0], t[1]
        hlen = t[4]
        if _first_proto(ip) == 6:
            out.append(f"{ip.src}.{sport} > {ip.dst}.{dport}: ")
        else:
            out.append(f"{sport} > {dport}: ")
        if hlen < 20:
            out.append(f" tcp {(length - hlen) & _MASK32} [bad hdr length {hlen} - too short, < 20]")
            return
        if self._q:
            out.append(f"tcp {(length - hlen) & _MASK32}")
            if hlen > length:
                out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        flags = t[5]
        seq = t[2]
        ack = t[3]
        thseq = thack = 0
        rev = False
        if flags & _TCP_ACK and not self._abs:
            seq, ack, rev, thseq, thack = self._relative(data, ip.src, ip.dst, v4, iph, sport, dport, seq, ack,
                                                         flags)
        out.append(TCP_FLAGS_TEXT[flags])
        if hlen > length:
            out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        if self._v and self._ck and not fragmented and off + length <= end:
            s = checksum_of(self._pseudo(data, ip, iph, v4, 6, length), data[off : off + length])
            out.append(f", cksum 0x{t[7]:04x}" + (f" (incorrect -> 0x{shouldbe(t[7], s):04x})" if s else " (correct)"))
        length -= hlen
        if length > 0:
            out.append(f", seq {seq}:{(seq + length) & _MASK32}")
        elif self._v > 1 or flags & _TCP_SYN_FIN_RST:
            out.append(f", seq {seq}")
        if flags & _TCP_ACK:
            out.append(f", ack {ack}, win {t[6]}")
        else:
            out.append(f", win {t[6]}")
        if flags & _TCP_URG:
            out.append(f", urg {t[8]}")
        if hlen > 20:
            raw = t[9]
            common = _common_options(raw) if len(raw) == hlen - 20 else None
            if common is not None:
                out.append(common)
            elif not self._tcp_options(out, data, off + 20, hlen - 20, end, rev, thseq, thack, off + length + hlen):
                return
        out.append(f", length {length}")
        if length <= 0:
            return
        if off + hlen > end:
            out.append(f" [remaining caplen({end - off}) < header length({hlen})]")
            raise _Trunc("tcp")
        payload = data[off + hlen : end]
        if flags & _TCP_RST and self._v:
            out.append(_rst_data(payload, length))
            return
        app = apps.tcp_app(sport, dport, payload, self._v, length=length)
        if app:
            out.append(self._cut(app))

    def _relative(
        self, data: bytes, src: str, dst: str, v4: bool, iph: int, sport: int, dport: int, seq: int, ack: int,
        flags: int,
    ) -> tuple[int, int, bool, int, int]:
        """tcpdump's relative sequence numbers: the first segment with ACK set seen in a connection (or
        any SYN) records both directions' initial numbers; later segments print offsets from them.
        Returns (seq, ack, reversed, initial seq, initial ack) as tcpdump's tcp_print uses them. ``src``
        and ``dst`` are the IP header's addresses (as printed), which start at ``data[iph + 12]`` (IPv4) or
        ``data[iph + 8]`` (IPv6)."""
        if sport > dport:
            rev = True
        elif sport == dport:
            alen = 4 if v4 else 16
            a0 = iph + (12 if v4 else 8)
            rev = data[a0 : a0 + alen] > data[a0 + alen : a0 + 2 * alen]
        else:
            rev = False
        key = (dst, src, (dport << 16) | sport) if rev else (src, dst, (sport << 16) | dport)
        table = self._conns
        th = table.get(key)
        if th is None or flags & 0x02:
            th = table[key] = ((ack - 1) & _MASK32, seq) if rev else (seq, (ack - 1) & _MASK32)
        elif rev:
            seq = (seq - th[1]) & _MASK32
            ack = (ack - th[0]) & _MASK32
        else:
            seq = (seq - th[0]) & _MASK32
            ack = (ack - th[1]) & _MASK32
        return seq, ack, rev, th[0], th[1]

    def _ports_prefix(self, ip: IPv4 | IPv6, v4: bool, proto: int, sport: int, dport: int) -> str:
        if _first_proto(ip) == proto:
            return f"{ip.src}.{sport} > {ip.dst}.{dport}: "
        return f"{sport} > {dport}: "

    def _tcp_options(
        self, out: list[str], data: bytes, cp: int, hl: int, end: int, rev: bool, thseq: int, thack: int,
        tcp_end: int,
    ) -> bool:
        """TCP options as tcpdump prints them; False when it stopped the line there ([bad opt], [|tcp]).
        ``tcp_end`` is where the segment ends by the IP length (for the md5 option's message)."""
        out.append(", options [")
        ch = ""

        def bad() -> bool:
            out.append("[bad opt]")
            if ch:
                out.append("]")
            return False

        def trunc() -> bool:
            out.append(" [|tcp]")
            if ch:
                out.append(">")
            return False

        while hl > 0:
            out.append(ch)
            if cp >= end:
                raise _Trunc("tcp")
            opt = data[cp]
            cp += 1
            if opt <= 1:
                olen = 1
            else:
                if cp >= end:
                    raise _Trunc("tcp")
                olen = data[cp]
                cp += 1
                if olen < 2 or olen > hl:
                    return bad()
                hl -= 1
            hl -= 1
            datalen = 0
            name = TCP_OPTIONS.get(opt)
            out.append(f"unknown-{opt}" if name is None else name)
            if opt in (2, 3, 6, 7, 8, 11, 12, 13, 19, 20, 28):
                datalen = {2: 2, 3: 1, 8: 8, 19: 16, 20: 2, 28: 2}.get(opt, 4)
                if datalen > hl:
                    return bad()
                if cp + datalen > end:
                    return trunc()
                if opt == 2:
                    out.append(f" {_U16.unpack_from(data, cp)[0]}")
                elif opt == 3:
                    out.append(f" {data[cp]}")
                elif opt == 8:
                    val, ecr = struct.unpack_from("!II", data, cp)
                    out.append(f" val {val} ecr {ecr}")
                elif opt == 19:
                    # tcpdump (built with OpenSSL) first checks the segment was captured whole, then asks
                    # for the -M secret, which afpacket does not take.
                    why = "snaplen too short" if tcp_end > end else "shared secret not supplied with -M"
                    out.append(f" {why}, can't check - " + data[cp : cp + 16].hex())
                elif opt == 20:
                    out.append(f" cap {data[cp]:02x} id {data[cp + 1]}")
                elif opt == 28:
                    uto = _U16.unpack_from(data, cp)[0]
                    out.append(f" 0x{uto:x} {(uto >> 1) * 60 if uto & 1 else uto >> 1}")
                else:
                    out.append(f" {_U32.unpack_from(data, cp)[0]}")
            elif opt == 5:
                datalen = olen - 2
                if datalen % 8:
                    out.append(" invalid sack")
                else:
                    out.append(f" {datalen // 8} ")
                    for i in range(0, datalen, 8):
                        if i + 4 > hl:
                            return bad()
                        if cp + i + 4 > end:
                            return trunc()
                        if i + 8 > hl:
                            return bad()
                        if cp + i + 8 > end:
                            return trunc()
                        s, e = struct.unpack_from("!II", data, cp + i)
                        base = thseq if rev else thack
                        out.append(f"{{{(s - base) & _MASK32}:{(e - base) & _MASK32}}}")
            elif opt == 29:
                datalen = olen - 2
                if datalen < 2:
                    out.append(" (invalid)")
                else:
                    if hl < 1:
                        return bad()
                    if cp + 1 > end:
                        return trunc()
                    out.append(f" keyid {data[cp]}")
                    if hl < 2:
                        return bad()
                    if cp + 2 > end:
                        return trunc()
                    out.append(f" rnextkeyid {data[cp + 1]}")
                    if datalen > 2:
                        out.append(" mac 0x")
                        for i in range(2, datalen):
                            if i + 1 > hl:
                                return bad()
                            if cp + i + 1 > end:
                                return trunc()
                            out.append(f"{data[cp + i]:02x}")
            elif opt in (0, 1, 4):
                pass
            elif opt == 34 or opt == 254:
                datalen = olen - 2
                if datalen > hl:
                    return bad()
                if cp + datalen > end:
                    return trunc()
                if opt == 34:
                    out.append(" " + _fastopen(data[cp : cp + datalen], False))
                else:
                    if datalen < 2:
                        return bad()
                    magic = _U16.unpack_from(data, cp)[0]
                    out.append("-")
                    if magic == 0xF989:
                        out.append(_fastopen(data[cp + 2 : cp + datalen], True))
                    else:
                        out.append(f"{magic:04x}")
            else:
                # mptcp (30) is printed as raw bytes here too: its decoder is not part of afpacket.
                datalen = olen - 2
                if datalen:
                    out.append(" 0x")
                for i in range(datalen):
                    if i + 1 > hl:
                        return bad()
                    if cp + i + 1 > end:
                        return trunc()
                    out.append(f"{data[cp + i]:02x}")
            cp += datalen
            hl -= datalen
            datalen += 1 if opt <= 1 else 2
            if datalen != olen:
                out.append(f"[len {olen}]")
            ch = ","
            if opt == 0:
                break
        out.append("]")
        return True

    def _pseudo(self, data: bytes, ip: IPv4 | IPv6, iph: int, v4: bool, proto: int, length: int) -> bytes:
        """The pseudo-header of a TCP/UDP checksum (with the final destination of a source route)."""
        if v4:
            dst = data[iph + 16 : iph + 20]
            if isinstance(ip, IPv4) and ip.ihl > 20:
                dst = _ip4_final_dst(data, iph, ip.ihl) or dst
            return data[iph + 12 : iph + 16] + dst + bytes((0, proto)) + _U16.pack(length & 0xFFFF)
        dst = data[iph + 24 : iph + 40]
        if isinstance(ip, IPv6) and ip.next_header in (0, 60, 62, 135, 44, 43):
            dst = _ip6_final_dst(ip, dst)
        return data[iph + 8 : iph + 24] + dst + _U32.pack(length) + bytes((0, 0, 0, proto))

    # -- UDP ---------------------------------------------------------------------------------------
    def _udp(
        self, out: list[str], d: Decoded, off: int, length: int, ip: IPv4 | IPv6, iph: int, fragmented: int | bool,
        end: int,
    ) -> None:
        data = d.data
        v4 = type(ip) is IPv4
        is_udp = _first_proto(ip) == 17
        if end - off < 4:
            if is_udp:
                out.append(f"{ip.src} > {ip.dst}: ")
            out.append(" [|udp]")
            return
        sport, dport = _HH.unpack_from(data, off)
        prefix = f"{ip.src}.{sport} > {ip.dst}.{dport}: " if is_udp else f"{sport} > {dport}: "
        if length < 8:
            out.append(f"{prefix}truncated-udp {length}")
            return
        if end - off < 6:
            out.append(prefix + " [|udp]")
            return
        ulen = _U16.unpack_from(data, off + 4)[0]
        if ulen == 0 and length > 65535:
            ulen = length
        if ulen < 8:
            out.append(f"{prefix}truncated-udplength {ulen}")
            return
        ulen -= 8
        length -= 8
        if ulen < length:
            length = ulen
        cp = off + 8
        if cp > end:
            out.append(prefix + " [|udp]")
            return
        out.append(prefix)
        v = self._v
        if v and self._ck and not fragmented:
            if v4 and v > 1:
                if end - off < 8:
                    raise _Trunc("udp")
                field = _U16.unpack_from(data, off + 6)[0]
                if field == 0:
                    out.append("[no cksum] ")
                elif cp + length <= end:
                    s = checksum_of(self._pseudo(data, ip, iph, v4, 17, length + 8), data[off : cp + length])
                    out.append(f"[bad udp cksum 0x{field:04x} -> 0x{shouldbe(field, s):04x}!] " if s
                               else "[udp sum ok] ")
            elif not v4 and cp + length <= end:
                field = _U16.unpack_from(data, off + 6)[0]
                s = checksum_of(self._pseudo(data, ip, iph, v4, 17, length + 8), data[off : cp + length])
                out.append(f"[bad udp cksum 0x{field:04x} -> 0x{shouldbe(field, s):04x}!] " if s else "[udp sum ok] ")
        if not self._q:
            payload = data[cp : min(end, cp + length)]
            app = apps.udp_app(sport, dport, payload, v, length=length)
            if app is not None:
                out.append(self._cut(app))
                return
            if sport == 4789 or dport == 4789:
                self._vxlan(out, d, cp, length, end)
                return
        if ulen > length and not fragmented:
            out.append(f"UDP, bad length {ulen} > {length}")
        else:
            out.append(f"UDP, length {ulen}")

    # -- tunnels -----------------------------------------------------------------------------------
    def _vxlan(self, out: list[str], d: Decoded, off: int, length: int, end: int) -> None:
        data = d.data
        out.append("VXLAN")
        if length < 8:
            out.append(" (invalid)")
            return
        if off >= end:
            raise _Trunc("vxlan")
        flags = data[off]
        out.append(f", flags [{'I' if flags & 8 else 'invalid'}] (0x{flags:02x}), ")
        if off + 7 > end:
            raise _Trunc("vxlan")
        out.append(f"vni {int.from_bytes(data[off + 4 : off + 7], 'big')}\n")
        if off + 8 > end:
            raise _Trunc("vxlan")
        inner = d.inner
        if inner is None or inner.start != off + 8:
            inner = decode_at(data, off + 8, end, "ether", d.wire_len)
        self._ether(out, inner, off + 8, length - 8, end - off - 8)

    def _gre(self, out: list[str], d: Decoded, off: int, length: int, end: int) -> None:
        data = d.data
        if off + 2 > end or length < 2:
            out.append(" [|gre]")
            return
        flags = _U16.unpack_from(data, off)[0]
        version = flags & 7
        out.append(f"GREv{version}")
        if version > 1:
            out.append(" ERROR: unknown-version")
            return
        v = self._v
        if version == 0 and v:
            out.append(f", Flags [{', '.join(n for bit, n in GRE_FLAGS if flags & bit) or 'none'}]")
        total = length
        p = off + 2
        length -= 2
        if version == 1 and v:
            out.append(f", Flags [{', '.join(n for bit, n in GRE_FLAGS if flags & bit) or 'none'}]")

        def need(n: int) -> bool:
            if p + n > end or length < n:
                out.append(" [|gre]")
                return False
            return True

        if not need(2):
            return
        proto = _U16.unpack_from(data, p)[0]
        p += 2
        length -= 2
        if version == 0:
            if flags & 0xC000:
                if not need(2):
                    return
                if v:
                    out.append(f", sum 0x{_U16.unpack_from(data, p)[0]:x}")
                p += 2
                length -= 2
                if not need(2):
                    return
                out.append(f", off 0x{_U16.unpack_from(data, p)[0]:x}")
                p += 2
                length -= 2
            if flags & 0x2000:
                if not need(4):
                    return
                out.append(f", key=0x{_U32.unpack_from(data, p)[0]:x}")
                p += 4
                length -= 4
            if flags & 0x1000:
                if not need(4):
                    return
                out.append(f", seq {_U32.unpack_from(data, p)[0]}")
                p += 4
                length -= 4
            if flags & 0x4000:
                while True:
                    if not need(4):
                        return
                    af, sreoff, srelen = struct.unpack_from("!HBB", data, p)
                    p += 4
                    length -= 4
                    if af == 0 and srelen == 0:
                        break
                    if not self._gre_sre(out, data, af, sreoff, srelen, p, length, end):
                        out.append(" [|gre]")
                        return
                    if length < srelen:
                        out.append(" [|gre]")
                        return
                    p += srelen
                    length -= srelen
        else:
            if flags & 0x2000:
                if not need(4):
                    return
                out.append(f", call {_U32.unpack_from(data, p)[0] & 0xFFFF}")
                p += 4
                length -= 4
            if flags & 0x1000:
                if not need(4):
                    return
                out.append(f", seq {_U32.unpack_from(data, p)[0]}")
                p += 4
                length -= 4
            if flags & 0x0080:
                if not need(4):
                    return
                out.append(f", ack {_U32.unpack_from(data, p)[0]}")
                p += 4
                length -= 4
            if not flags & 0x1000:
                out.append(", no-payload")
        if self._e:
            out.append(f", proto {ETHERTYPES.get(proto, 'unknown')} (0x{proto:04x})")
        out.append(f", length {total}")
        if version == 1 and not flags & 0x1000:
            return
        out.append("\n\t" if v else ": ")
        inner = d.inner
        if version == 0 and proto == 0x0800:
            if inner is None or inner.start != p:
                inner = decode_at(data, p, end, "ip", d.wire_len)
            self._ip4(out, inner, p, length, end)
        elif version == 0 and proto == 0x86DD:
            if inner is None or inner.start != p:
                inner = decode_at(data, p, end, "ip6", d.wire_len)
            self._ip6(out, inner, p, length, end)
        elif version == 0 and proto == 0x6558:
            if inner is None or inner.start != p:
                inner = decode_at(data, p, end, "ether", d.wire_len)
            self._ether(out, inner, p, length, end - p)
        elif version == 1 and proto == 0x880B:
            self._ppp(out, d, p, length, end)
        else:
            # MPLS, IPX, AppleTalk, OSI and PPP inside GRE are not decoded here.
            out.append(f"gre-proto-0x{proto:x}")

    def _ppp(self, out: list[str], d: Decoded, p: int, length: int, end: int) -> None:
        """PPP inside PPTP's GRE: the IP and IPv6 it carries (control protocols are not decoded here)."""
        data = d.data
        total = length
        if length < 2:
            out.append(" [|ppp]")
            return
        if p + 2 > end:
            raise _Trunc("ppp")
        header = _U16.unpack_from(data, p)[0]
        if header in (0x0003, 0x0103, 0xFF03):
            if self._e and header != 0xFF03:
                out.append("In  " if header == 0x0003 else "Out ")
            p += 2
            length -= 2
        if length < 2:
            out.append(" [|ppp]")
            return
        if p + 1 > end:
            raise _Trunc("ppp")
        if data[p] & 1:
            proto = data[p]
            p += 1
            length -= 1
        else:
            if p + 2 > end:
                raise _Trunc("ppp")
            proto = _U16.unpack_from(data, p)[0]
            p += 2
            length -= 2
        if self._e:
            out.append(f"{PPP_PROTOCOLS.get(proto, 'unknown')} (0x{proto:04x}), length {total}: ")
        if proto in (0x0021, 0x002F, 0x0800):
            self._ip4(out, decode_at(data, p, end, "ip", d.wire_len), p, length, end)
        elif proto in (0x0057, 0x86DD):
            self._ip6(out, decode_at(data, p, end, "ip6", d.wire_len), p, length, end)
        elif proto == 0x00FD:
            out.append("compressed PPP data")
        else:
            out.append(f"{PPP_PROTOCOLS.get(proto) or f'unknown PPP protocol (0x{proto:04x})'} ")
            out.append(hex_lines(data[p : min(end, p + length)]))

    def _gre_sre(self, out: list[str], data: bytes, af: int, sreoff: int, srelen: int, p: int, length: int,
                 end: int) -> bool:
        if af not in (0x0800, 0xFFFE):
            out.append(f", (rtaf=0x{af:x})")
            return True
        ip = af == 0x0800
        out.append(", (rtaf=ip" if ip else ", (rtaf=asn")
        unit = 4 if ip else 2
        if sreoff & (unit - 1):
            out.append(f", badoffset={sreoff})")
            return True
        if srelen & (unit - 1):
            out.append(f", badlength={srelen})")
            return True
        if sreoff >= srelen:
            out.append(f", badoff/len={sreoff}/{srelen})")
            return True
        at = 0
        while srelen:
            if p + at + unit > end or length < unit:
                return False
            star = "*" if at == sreoff else ""
            if ip:
                out.append(f" {star}{ip4_text(_U32.unpack_from(data, p + at)[0])}")
            else:
                out.append(f" {star}{_U16.unpack_from(data, p + at)[0]:x}")
            at += unit
            length -= unit
            srelen -= unit
        out.append(")")
        return True

    # -- ICMP's quoted packets ---------------------------------------------------------------------
    def _quoted(self, packet: bytes) -> str:
        """The IP packet quoted in an ICMP error, as tcpdump -v prints it there: ``ip_print`` of the
        quoted header on, its own length field bounding it ("IP " prefix included, unless -e). Never
        raises: a read past the quote ends its text with `` [|proto]``, and the whole line then counts
        as cut short (which decides where a -x dump starts)."""
        out: list[str] = []
        data = bytes(packet)
        try:
            if len(data) < 1:
                raise _Trunc("icmp")
            if data[0] >> 4 == 6:
                if len(data) < 6:
                    raise _Trunc("icmp")
                length = _U16.unpack_from(data, 4)[0] + 40
                end = min(len(data), length)
                self._ip6(out, decode_at(data, 0, end, "ip6", len(data)), 0, length, end)
            else:
                if len(data) < 4:
                    raise _Trunc("icmp")
                length = _U16.unpack_from(data, 2)[0]
                end = min(len(data), length)
                self._ip4(out, decode_at(data, 0, end, "ip", len(data)), 0, length, end)
        except _Trunc as t:
            out.append(f" [|{t.args[0]}]")
            self._jumped = True
        # A jump anywhere inside the quote (here, or in a printer that said so) ends icmp_print too.
        return Jumped("".join(out)) if self._jumped else "".join(out)


# -- the everyday frames' shortcut (LinePrinter._fast_line) ------------------------------------------------
_FAST_IP4: Final = struct.Struct("!HBxH2xHxB")  # at 12: ethertype, version/IHL, length, flags/offset, protocol
_FAST_IP6: Final = struct.Struct("!IHB")  # at 14: version/class/label, payload length, next header
_FAST_TCP: Final = struct.Struct("!IIBBH2xH")  # at 4 into TCP: seq, ack, data offset, flags, window, urgent
_II: Final = struct.Struct("!II")
_FAST_ARP: Final = struct.Struct("!6sI6xI")  # at 22: sender MAC and address, (target MAC,) target address
#: The hop-by-hop header of Linux's MLD reports: next header ICMPv6, 8 bytes, router alert 0, PadN.
_MLD_HBH: Final = bytes((58, 0, 5, 2, 0, 0, 1, 0))
_ARP_IP4_ETHER: Final = bytes.fromhex("000108000604")  # hardware 1, protocol 0x0800, lengths 6 and 4
_ZERO_MAC: Final = bytes(6)
#: Per address pair and port pair (the bytes from the source address to the destination port), what the
#: line of every TCP or UDP packet between them starts with, and what its printing needs:
#: (prefix, sport, dport, connection key, reversed, src, dst, TCP application?, UDP application?).
FlowEntry = tuple[str, int, int, tuple[str, str, int], bool, str, str, bool, bool]
_flows: dict[bytes, FlowEntry] = {}
#: Per address pair (the bytes of both addresses): ("IP SRC > DST: " or "IP6 SRC > DST: ", SRC, DST).
_pairs: dict[bytes, tuple[str, str, str]] = {}
_CACHE_MAX: Final = 65536  # cleared when full: a scan must not grow memory without bound


def _flow(data: bytes, v4: bool) -> FlowEntry:
    """The :data:`_flows` entry of a TCP/UDP packet (in an Ethernet frame, IPv4 without options). Each
    DNS query and its answer are a flow of their own, so this is on the hot path too."""
    if v4:
        key = data[26:38]
        alen = 4
        pair = _pairs.get(key[:8]) or _pair(key[:8], True)
    else:
        key = data[22:58]
        alen = 16
        pair = _pairs.get(key[:32]) or _pair(key[:32], False)
    _, src, dst = pair
    sport, dport = _HH.unpack_from(key, 2 * alen)
    # The same direction rule as LinePrinter._relative: the lower port (or address) names the connection.
    rev = sport > dport or (sport == dport and key[:alen] > key[alen : 2 * alen])
    conn = (dst, src, (dport << 16) | sport) if rev else (src, dst, (sport << 16) | dport)
    if len(_flows) >= _CACHE_MAX:
        _flows.clear()
    tcp, udp = apps.claimed(sport, dport)
    flow = _flows[key] = (f"{'IP' if v4 else 'IP6'} {src}.{sport} > {dst}.{dport}: ", sport, dport, conn, rev,
                          src, dst, tcp, udp)
    return flow


def _pair(key: bytes, v4: bool) -> tuple[str, str, str]:
    """The :data:`_pairs` entry for the addresses in ``key`` (8 or 32 bytes)."""
    if v4:
        src, dst = ip4_text(_U32.unpack_from(key)[0]), ip4_text(_U32.unpack_from(key, 4)[0])
    else:
        src, dst = ip6_text(key[:16]), ip6_text(key[16:])
    if len(_pairs) >= _CACHE_MAX:
        _pairs.clear()
    pair = _pairs[key] = (f"{'IP' if v4 else 'IP6'} {src} > {dst}: ", src, dst)
    return pair


def _fast_arp(data: bytes, n: int, wire_len: int) -> str | None:
    """An ARP request or reply for IPv4 over Ethernet, as LinePrinter._arp prints it without -e/-v; None
    for anything else."""
    if n < 42 or data[14:20] != _ARP_IP4_ETHER or data[20] or data[21] not in (1, 2):
        return None
    sha, spa, tpa = _FAST_ARP.unpack_from(data, 22)
    if data[21] == 1:
        tha = data[32:38]
        told = f" ({mac_text(tha)})" if tha != _ZERO_MAC else ""
        return f"ARP, Request who-has {ip4_text(tpa)}{told} tell {ip4_text(spa)}, length {wire_len - 14}"
    return f"ARP, Reply {ip4_text(spa)} is-at {mac_text(sha)}, length {wire_len - 14}"


# -- helpers -----------------------------------------------------------------------------------------
def _first_proto(ip: IPv4 | IPv6) -> int:
    """The protocol field of the IP header itself (for IPv6 the fixed header's next header, which is not
    the upper layer when extension headers follow): TCP and UDP print the addresses only when it is theirs,
    as ip6_print printed them otherwise."""
    return ip.proto if isinstance(ip, IPv4) else ip.next_header


def _common_options(raw: bytes) -> str | None:
    """The option lists Linux puts on nearly every segment, printed without the general loop: NOP, NOP,
    timestamps (established connections) and MSS, SACK permitted, timestamps, NOP, window scale (SYN and
    SYN-ACK). None for anything else (or options cut short)."""
    size = len(raw)
    if size == 12 and raw[:4] == _NOP_NOP_TS:
        val, ecr = _TS_ONLY.unpack_from(raw)
        return f", options [nop,nop,TS val {val} ecr {ecr}]"
    if size == 20 and raw[:2] == b"\x02\x04" and raw[4:8] == _SACKOK_TS and raw[16:19] == _NOP_WSCALE:
        mss, val, ecr, scale = _SYN_OPTIONS.unpack_from(raw)
        return f", options [mss {mss},sackOK,TS val {val} ecr {ecr},nop,wscale {scale}]"
    return None


def _seq_text(flags: int, seq: int, length: int) -> str:
    """A TCP line's flags and sequence numbers, as LinePrinter._tcp prints them without -v."""
    if length > 0:
        return f"{TCP_FLAGS_TEXT[flags]}, seq {seq}:{(seq + length) & _MASK32}"
    if flags & _TCP_SYN_FIN_RST:
        return f"{TCP_FLAGS_TEXT[flags]}, seq {seq}"
    return TCP_FLAGS_TEXT[flags]


def _ack_text(flags: int, ack: int, win: int, urg: int) -> str:
    """The acknowledgement, window and urgent pointer of a TCP line."""
    text = f", ack {ack}, win {win}" if flags & _TCP_ACK else f", win {win}"
    return f"{text}, urg {urg}" if flags & _TCP_URG else text


def _invalid_header(caplen: int, wire_len: int) -> str:
    parts = []
    if caplen == 0:
        parts.append(" caplen==0")
    if wire_len == 0:
        parts.append(" len==0")
    elif wire_len < caplen:
        parts.append(f" len({wire_len}) < caplen({caplen})")
    if caplen > MAXIMUM_SNAPLEN:
        parts.append(f" caplen({caplen}) > {MAXIMUM_SNAPLEN}")
    if wire_len > MAXIMUM_SNAPLEN:
        parts.append(f" len({wire_len}) > {MAXIMUM_SNAPLEN}")
    return "[Invalid header:" + ",".join(parts) + "]"


def _llc_header_length(data: bytes, p: int, length: int, caplen: int) -> int:
    """How many bytes tcpdump's llc_print counts as LLC (and SNAP) header, for where -x starts."""
    if caplen < 3:
        return caplen
    if length < 3:
        return length
    dsap, ssap, control = data[p], data[p + 1], data[p + 2]
    if control & 3 == 3:
        size = 3
    else:
        if caplen < 4:
            return caplen
        if length < 4:
            return length
        size = 4
    if dsap == 0xFF and ssap == 0xFF:
        return 0
    if dsap & 0xFE == 0xAA and ssap & 0xFE == 0xAA and control == 3:
        return size + 5
    return size


def _rst_data(payload: bytes, length: int) -> str:
    """tcpdump -v's text of the data in a RST segment (at most 30 bytes, as printable characters)."""
    text = " [RST" if len(payload) >= length else " [!RST"
    if length > 30:
        length = 30
        text += "+"
    chunk = payload[:length]
    return text + " " + "".join(CHAR[b] for b in chunk) + "]"


def _fastopen(cookie: bytes, experimental: bool) -> str:
    text = "tfo" if experimental else ""
    if not cookie:
        return text + " cookiereq"
    if len(cookie) % 2 or not 4 <= len(cookie) <= 16:
        return text + " (invalid)"
    return text + " cookie " + cookie.hex()


def _ip4_final_dst(data: bytes, iph: int, hlen: int) -> bytes | None:
    """The last address of a loose/strict source route option (the checksum's real destination)."""
    p, end = iph + 20, iph + hlen
    while p < end:
        kind = data[p]
        if kind == 0:
            break
        if kind == 1:
            p += 1
            continue
        if p + 1 >= end:
            break
        olen = data[p + 1]
        if olen < 2 or p + olen > end:
            break
        if kind in (131, 137) and olen >= 7:
            return data[p + olen - 4 : p + olen]
        p += olen
    return None


def _ip6_final_dst(ip: IPv6, dst: bytes) -> bytes:
    """The final destination of a type 0/2 or 4 (segment routing) routing header, else ``dst``: what
    the TCP/UDP checksum's pseudo-header holds (tcpdump's ip6_finddst)."""
    for ext in ip.extensions:
        if isinstance(ext, IPv6Extension) and ext.kind == 43:
            body = ext.data  # routing type, segments left, 4 more bytes, then the addresses
            units = ext.length // 8 - 1
            if len(body) < 6 or units % 2:
                return dst
            if body[0] in (0, 2) and units:
                last = 6 + 16 * (units // 2 - 1)
                return bytes(body[last : last + 16]) if len(body) >= last + 16 else dst
            if body[0] == 4 and len(body) >= 22:
                return bytes(body[6:22])  # segment 0 is the final one
            return dst
    return dst

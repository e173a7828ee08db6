"""The pcapng format (draft-ietf-opsawg-pcapng): a sequence of self-delimiting blocks.

Every block is ``type, total length, body, total length``; a reader can skip any block it does not
know. A Section Header Block (SHB) starts each section and fixes its byte order; Interface Description
Blocks (IDB) number the interfaces 0, 1, ... within the section; Enhanced Packet Blocks (EPB) carry
packets; Interface Statistics Blocks (ISB) carry counters.
"""

from __future__ import annotations

import operator
import struct
import time
from collections.abc import Iterator
from typing import Final, NamedTuple

from .. import _check
from .._version import __version__
from ..errors import ArgumentError, SavefileError
from ._io import PathOrFile, Source
from ._writer import CapturedPacket, RecordWriter
from .linktype import LINKTYPE_ETHERNET
from .record import PKTTYPE_TO_EPB_FLAGS, Interface, Record

SHB_TYPE: Final = 0x0A0D0D0A
IDB_TYPE: Final = 0x00000001
PB_TYPE: Final = 0x00000002  # obsolete Packet Block, still read
SPB_TYPE: Final = 0x00000003
ISB_TYPE: Final = 0x00000005
EPB_TYPE: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
SHB_MAGIC_BYTES: Final = SHB_TYPE.to_bytes(4, "little")  # a palindrome: the same in both orders

OPT_ENDOFOPT: Final = 0
OPT_SHB_USERAPPL: Final = 4
OPT_IF_NAME: Final = 2
OPT_IF_TSRESOL: Final = 9
OPT_IF_TSOFFSET: Final = 14
OPT_EPB_FLAGS: Final = 2
OPT_ISB_ENDTIME: Final = 3
OPT_ISB_IFRECV: Final = 4
OPT_ISB_IFDROP: Final = 5

#: the largest values of the unsigned fields a writer fills in from its arguments
_U16_MAX: Final = 0xFFFF
_U32_MAX: Final = 0xFFFFFFFF
_U64_MAX: Final = 0xFFFFFFFFFFFFFFFF

#: libpcap refuses blocks above 16 MiB; no real packet needs more.
MAX_BLOCK_SIZE: Final = 16 * 1024 * 1024

_PADS: Final = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4
EPB_HEAD: Final = struct.Struct("<IIIIIII")  # type, total length, interface, ts high, ts low, caplen, wire len
# What follows the packet bytes, indexed by caplen % 4 so the padding comes in the same pack call:
# padding, then total length; or padding, the epb_flags option, opt_endofopt, total length.
_EPB_TAILS: Final = tuple(struct.Struct(f"<{-n & 3}xI") for n in range(4))
EPB_TAILS_FLAGS: Final = tuple(struct.Struct(f"<{-n & 3}xHHIHHI") for n in range(4))
_EPB_FIXED: Final = EPB_HEAD.size + 4
EPB_FIXED_FLAGS: Final = EPB_HEAD.size + 16
_BLOCK_HEAD_LE: Final = struct.Struct("<II")


def _pad(n: int) -> int:
    return -n & 3


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + _PADS[len(value) & 3]


def _text_option(where: str, name: str, value: object, accepted: str = "a str") -> bytes:
    """``value`` (a str) encoded for a text option, whose length is a 16-bit field: checked where the
    argument is given, so a wrong one fails there by name rather than as a struct.error later."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be {accepted}, not {type(value).__name__}")
    encoded = value.encode(errors="surrogateescape")  # a name from the system may not be valid UTF-8
    if len(encoded) > _U16_MAX:
        raise ArgumentError(f"{where}: {name} must be at most {_U16_MAX} bytes long, got {len(encoded)}")
    return encoded


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


_PACKET_BLOCKS: Final = frozenset({EPB_TYPE, SPB_TYPE, PB_TYPE})


def _block_boundary(buf: bytes | bytearray, limit: int) -> tuple[int, int]:
    """(length, packet blocks in it) of the longest run of whole blocks at the start of ``buf`` within
    ``limit`` bytes; interface descriptions and statistics are blocks but not packets."""
    pos = packets = 0
    while pos + 12 <= limit:
        block_type, total = _BLOCK_HEAD_LE.unpack_from(buf, pos)
        if total < 12 or pos + total > limit:
            break
        pos += total
        packets += block_type in _PACKET_BLOCKS
    return pos, packets


class PcapngWriter(RecordWriter):
    """Writes a single-section, little-endian pcapng file.

    ``target`` is a path, ``"-"`` for standard output, or a binary file object; ``application`` goes
    into the section header (shb_userappl). Call :meth:`add_interface` once per capture interface
    before writing its packets; it returns the interface id that :meth:`write` takes. Packets written
    with a Linux ``pkttype`` carry it as epb_flags (direction and reception type). Counters given to
    :meth:`set_interface_stats` are written as Interface Statistics Blocks when the writer closes.
    Buffering, ``unbuffered``, ``reinsert_vlan`` and the full-disk behaviour are those of
    :class:`PcapWriter`.

    Example::

        with PcapngWriter("out.pcapng") as w:
            eth0 = w.add_interface("eth0", LINKTYPE_ETHERNET, 262144)
            w.write(time.time_ns(), frame, interface_id=eth0, pkttype=PACKET_OUTGOING)
    """

    def __init__(
        self,
        target: PathOrFile,
        *,
        unbuffered: bool = False,
        reinsert_vlan: bool = True,
        application: str = f"afpacket {__version__}",
    ) -> None:
        userappl = _text_option("PcapngWriter()", "application", application)  # before the file is created
        super().__init__(target, _block_boundary, unbuffered=unbuffered, reinsert_vlan=reinsert_vlan)
        #: per interface id: (snaplen, nanoseconds per timestamp tick)
        self._ifaces: list[tuple[int, int]] = []
        self._by_ifindex: dict[int, int] = {}
        self._stats: dict[int, tuple[int, int]] = {}
        options = _option(OPT_SHB_USERAPPL, userappl) + _option(OPT_ENDOFOPT, b"")
        # Section length -1: unknown, so readers never try to skip the section.
        self._start(_block(SHB_TYPE, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options))

    @property
    def interface_count(self) -> int:
        """Interfaces described so far (the next :meth:`add_interface` returns this id)."""
        return len(self._ifaces)

    def add_interface(
        self,
        name: str | None = None,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = 262144,
        tsresol: int = 9,
        *,
        ifindex: int | None = None,
    ) -> int:
        """Describe one capture interface and return its id (0, 1, ...).

        ``name`` is its name (if_name; None for none), ``linktype`` the LINKTYPE_* of its packets,
        ``snaplen`` the longest record kept for it (0: no limit, as pcapng defines it), ``tsresol`` the
        power of ten of the timestamp unit (9 = nanoseconds, 6 = microseconds). ``ifindex`` lets
        :meth:`write_packet` find the interface from a live packet's ifindex. Each number is checked
        against its field (linktype 16 bits, snaplen 32 bits, tsresol 0..9): TypeError for a wrong type,
        ArgumentError (a ValueError) for a value out of range, both naming the parameter; SavefileError
        after close().
        """
        self._check_open()
        where = "PcapngWriter.add_interface()"
        _check.count(where, "linktype", linktype, optional=False, maximum=_U16_MAX)
        _check.count(where, "snaplen", snaplen, optional=False, maximum=_U32_MAX)
        # if_tsresol as a power of ten: 9 is nanoseconds, and nothing finer fits a nanosecond timestamp
        _check.count(where, "tsresol", tsresol, optional=False, maximum=9)
        _check.count(where, "ifindex", ifindex)
        tsresol = operator.index(tsresol)
        options = b""
        if name is not None:
            options += _option(OPT_IF_NAME, _text_option(where, "name", name, "a str or None"))
        options += _option(OPT_IF_TSRESOL, bytes([tsresol])) + _option(OPT_ENDOFOPT, b"")
        self._buf += _block(IDB_TYPE, struct.pack("<HHI", linktype, 0, snaplen) + options)
        self._commit()
        iface_id = len(self._ifaces)
        self._ifaces.append((snaplen or _U32_MAX, 10 ** (9 - tsresol)))
        if ifindex is not None:
            self._by_ifindex[ifindex] = iface_id
        return iface_id

    def set_interface_stats(self, interface_id: int, received: int, dropped: int) -> None:
        """Counters to record in an Interface Statistics Block for interface ``interface_id`` at close:
        ``received`` packets (isb_ifrecv) and ``dropped`` (isb_ifdrop), e.g. :meth:`Capture.stats`'s
        ``received`` and ``drops``. The counters are 64-bit fields, checked here (TypeError, ArgumentError
        naming the parameter) rather than failing when the block is packed at close; SavefileError for an
        interface not added."""
        where = "PcapngWriter.set_interface_stats()"
        _check.count(where, "interface_id", interface_id, optional=False)
        _check.count(where, "received", received, optional=False, maximum=_U64_MAX)
        _check.count(where, "dropped", dropped, optional=False, maximum=_U64_MAX)
        if interface_id >= len(self._ifaces):
            raise SavefileError(f"{self.name}: no interface {interface_id} (add_interface first)")
        self._stats[interface_id] = (operator.index(received), operator.index(dropped))

    def write(
        self,
        ts_ns: int,
        data: bytes | bytearray | memoryview,
        wire_len: int | None = None,
        interface_id: int = 0,
        pkttype: int | None = None,
    ) -> None:
        """Append one Enhanced Packet Block: ``data`` captured at ``ts_ns`` (ns since the epoch) on
        interface ``interface_id``, ``wire_len`` bytes long on the wire (default ``len(data)``).

        ``pkttype`` is the Linux packet type (PACKET_HOST, ... PACKET_OUTGOING); when given, the block
        carries the matching epb_flags. SavefileError for an interface not added, after close(), or
        when the file cannot be written.
        """
        if self._closed or self._failed:
            self._check_open()
        try:
            snaplen, tick_ns = self._ifaces[interface_id]
        except IndexError:
            raise SavefileError(f"{self.name}: no interface {interface_id} (add_interface first)") from None
        caplen = len(data)
        if wire_len is None:
            wire_len = caplen
        if caplen > snaplen:
            caplen = snaplen
            data = data[:caplen]
        ticks = ts_ns // tick_ns
        total = (_EPB_FIXED if pkttype is None else EPB_FIXED_FLAGS) + caplen + (-caplen & 3)
        try:
            head = EPB_HEAD.pack(EPB_TYPE, total, interface_id, ticks >> 32, ticks & 0xFFFFFFFF, caplen, wire_len)
        except struct.error:
            raise SavefileError(
                f"{self.name}: cannot store timestamp {ts_ns} ns or length {wire_len} in an EPB"
            ) from None
        buf = self._buf
        buf += head
        buf += data
        if pkttype is None:
            buf += _EPB_TAILS[caplen & 3].pack(total)
        else:
            flags = PKTTYPE_TO_EPB_FLAGS.get(pkttype, 0)
            buf += EPB_TAILS_FLAGS[caplen & 3].pack(OPT_EPB_FLAGS, 4, flags, 0, 0, total)
        self._pending += 1
        if len(buf) >= self._threshold:
            self._commit()

    def write_packet(self, pkt: CapturedPacket, interface_id: int | None = None) -> None:
        """Append a live-capture packet ``pkt`` (an afpacket Packet) with its direction; ``interface_id``
        defaults to the interface added with the packet's ifindex, else 0. The VLAN tag goes back into
        the frame when the kernel took it out (unless ``reinsert_vlan=False``)."""
        if interface_id is None:
            interface_id = self._by_ifindex.get(pkt.ifindex, 0)
        if self.reinsert_vlan:
            data, wire = pkt.file_record()
            self.write(pkt.timestamp_ns, data, wire, interface_id, pkt.pkttype)
        else:
            self.write(pkt.timestamp_ns, pkt.data, pkt.wire_len, interface_id, pkt.pkttype)

    def _finish(self) -> None:
        now_ns = time.time_ns()
        for iface_id, (received, dropped) in sorted(self._stats.items()):
            ticks = now_ns // self._ifaces[iface_id][1]
            options = (
                _option(OPT_ISB_ENDTIME, struct.pack("<II", ticks >> 32, ticks & 0xFFFFFFFF))
                + _option(OPT_ISB_IFRECV, struct.pack("<Q", received))
                + _option(OPT_ISB_IFDROP, struct.pack("<Q", dropped))
                + _option(OPT_ENDOFOPT, b"")
            )
            self._buf += _block(ISB_TYPE, struct.pack("<III", iface_id, ticks >> 32, ticks & 0xFFFFFFFF) + options)


class _Structs(NamedTuple):
    u32: struct.Struct
    type_len: struct.Struct
    epb: struct.Struct
    option: struct.Struct


_STRUCTS: Final = {
    order: _Structs(struct.Struct(order + "I"), struct.Struct(order + "II"), struct.Struct(order + "5I"),
                    struct.Struct(order + "HH"))
    for order in "<>"
}


def _tick_scale(tsresol: int) -> tuple[int, int, int]:
    """(multiplier, right shift, divisor) that turn a tick count into nanoseconds for if_tsresol."""
    if tsresol & 0x80:  # 2**-n seconds per tick
        return 1_000_000_000, tsresol & 0x7F, 1
    if tsresol <= 9:
        return 10 ** (9 - tsresol), 0, 1
    return 1, 0, 10 ** (tsresol - 9)


class PcapngReader:
    """Reads pcapng files of either byte order, with any number of sections and interfaces.

    ``target`` is a path, ``"-"`` for standard input, or a binary file object
    (:func:`~afpacket.open_reader` picks this or :class:`PcapReader` by the file's first bytes).

    Iterating yields Records in file order; ``interface_id`` counts within the record's section, and
    ``interfaces`` lists the current section's interfaces. Unknown block types are skipped. A truncated
    or corrupt block raises SavefileError (naming the file, the byte offset and the fault) after every
    complete packet before it was yielded; so does reading on after :meth:`close`. ``interface_stats``
    maps interface id to the ``(received, dropped)`` counters of the last Interface Statistics Block
    seen (None where absent).
    """

    def __init__(self, target: PathOrFile | Source, *, _magic: bytes | None = None) -> None:
        self._src = target if isinstance(target, Source) else Source(target)
        self.name = self._src.name
        self.interfaces: list[Interface] = []
        self.interface_stats: dict[int, tuple[int | None, int | None]] = {}
        self._scales: list[tuple[int, int, int, int]] = []
        self._order = "<"
        self._s = _STRUCTS["<"]
        self._pending: list[Record] = []
        self._eof = False
        try:
            magic = _magic if _magic is not None else self._src.read(4)
            self._section_header(0, magic + self._src.read(4))
            # Read on to the first interface, so the link type and snaplen are known up front.
            while not self.interfaces and not self._eof:
                self._step()
        except BaseException:
            self._src.close()
            raise

    @property
    def linktype(self) -> int | None:
        """The link type of interface 0 (None for a file without interfaces)."""
        return self.interfaces[0].linktype if self.interfaces else None

    @property
    def snaplen(self) -> int:
        """The snaplen of interface 0 (0 for a file without interfaces)."""
        return self.interfaces[0].snaplen if self.interfaces else 0

    @property
    def nanosecond(self) -> bool:
        """Interface 0 has timestamps finer than microseconds."""
        return bool(self.interfaces) and self.interfaces[0].nanosecond

    def __iter__(self) -> Iterator[Record]:
        pending = self._pending
        while True:
            if pending:
                yield from pending
                pending.clear()
            if self._eof:
                return
            try:
                self._step()
            except ValueError as e:
                # The file was closed under the reader (close(), or whoever owns the file object).
                raise self._src.error(self._src.offset, f"cannot read: {e}") from None

    def _step(self) -> None:
        """Read one block; packets land in ``self._pending``."""
        src = self._src
        offset = src.offset
        head = src.read(8)
        if len(head) < 8 or head[:4] == SHB_MAGIC_BYTES:
            if not head:
                self._eof = True
                return
            self._section_header(offset, head)
            return
        block_type, total = self._s.type_len.unpack(head)
        self._check_total(offset, total, minimum=12)
        body = src.exact(total - 8, f"block of length {total}", offset)
        (trailer,) = self._s.u32.unpack_from(body, total - 12)
        if trailer != total:
            raise src.error(offset, f"block trailing length {trailer} does not match its leading length {total}")
        self._handle(offset, block_type, memoryview(body)[:-4])

    def _section_header(self, offset: int, head: bytes) -> None:
        """A Section Header Block, whose byte-order magic sets how everything after it is read."""
        src = self._src
        if len(head) < 8:
            raise src.error(offset, f"truncated block header: {len(head)} of 8 bytes")
        if head[:4] != SHB_MAGIC_BYTES:
            raise src.error(offset, f"not a pcapng file (first block type 0x{head[:4].hex()}, not a section header)")
        bom = src.exact(4, "section header block", offset)
        if bom == b"\x4d\x3c\x2b\x1a":
            self._order = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            self._order = ">"
        else:
            raise src.error(offset, f"section header with unknown byte-order magic 0x{bom.hex()}")
        self._s = _STRUCTS[self._order]
        (total,) = self._s.u32.unpack_from(head, 4)
        self._check_total(offset, total, minimum=28)
        body = bom + src.exact(total - 12, f"section header block of length {total}", offset)
        (trailer,) = self._s.u32.unpack_from(body, total - 12)
        if trailer != total:
            raise src.error(offset, f"block trailing length {trailer} does not match its leading length {total}")
        self._handle(offset, SHB_TYPE, memoryview(body)[:-4])

    def _check_total(self, offset: int, total: int, minimum: int) -> None:
        if total < minimum or total % 4 or total > MAX_BLOCK_SIZE:
            raise self._src.error(
                offset, f"invalid block length {total} (must be a multiple of 4 in {minimum}..{MAX_BLOCK_SIZE})"
            )

    def _handle(self, offset: int, block_type: int, body: memoryview) -> None:
        o = self._order
        if block_type == EPB_TYPE:
            if len(body) < 20:
                raise self._src.error(offset, f"enhanced packet block too short ({len(body)} body bytes)")
            iface_id, ts_high, ts_low, caplen, wire_len = self._s.epb.unpack_from(body)
            self._packet(offset, iface_id, (ts_high << 32) | ts_low, caplen, wire_len, body, 20, "EPB")
        elif block_type == SPB_TYPE:
            if len(body) < 4:
                raise self._src.error(offset, "simple packet block too short")
            (wire_len,) = struct.unpack_from(o + "I", body)
            snaplen = self.interfaces[0].snaplen if self.interfaces else 0
            caplen = min(wire_len, snaplen or wire_len, len(body) - 4)
            self._packet(offset, 0, None, caplen, wire_len, body, 4, "SPB")
        elif block_type == PB_TYPE:
            if len(body) < 20:
                raise self._src.error(offset, f"packet block too short ({len(body)} body bytes)")
            iface_id, _drops, ts_high, ts_low, caplen, wire_len = struct.unpack_from(o + "HHIIII", body)
            self._packet(offset, iface_id, (ts_high << 32) | ts_low, caplen, wire_len, body, 20, "PB")
        elif block_type == IDB_TYPE:
            self._interface(offset, body)
        elif block_type == ISB_TYPE:
            self._statistics(offset, body)
        elif block_type == SHB_TYPE:
            (major,) = struct.unpack_from(o + "H", body, 4)
            if major != 1:
                raise self._src.error(offset, f"unsupported pcapng version {major}")
            self.interfaces = []
            self._scales = []
            self.interface_stats = {}
        # Any other block (name resolution, decryption secrets, custom, ...) is skipped.

    def _packet(
        self, offset: int, iface_id: int, ticks: int | None, caplen: int, wire_len: int,
        body: memoryview, start: int, kind: str,
    ) -> None:
        if iface_id >= len(self.interfaces):
            raise self._src.error(
                offset, f"{kind} for interface {iface_id}, but the section describes {len(self.interfaces)}"
            )
        end = start + caplen
        if end > len(body):
            raise self._src.error(offset, f"{kind} captured length {caplen} overruns its block")
        flags = None
        if kind != "SPB" and end + (-caplen & 3) < len(body):
            options = self._options(offset, body, end + (-caplen & 3))
            raw_flags = options.get(OPT_EPB_FLAGS)
            if raw_flags is not None and len(raw_flags) == 4:
                (flags,) = struct.unpack(self._order + "I", raw_flags)
        if ticks is None:
            ts_ns = 0
        else:
            mul, shift, div, off = self._scales[iface_id]
            ts_ns = ((ticks * mul) >> shift) // div + off
        iface = self.interfaces[iface_id]
        self._pending.append(Record(ts_ns, bytes(body[start:end]), wire_len, iface_id, iface.linktype, flags))

    def _interface(self, offset: int, body: memoryview) -> None:
        if len(body) < 8:
            raise self._src.error(offset, "interface description block too short")
        linktype, _, snaplen = struct.unpack_from(self._order + "HHI", body)
        options = self._options(offset, body, 8)
        name = options.get(OPT_IF_NAME)
        tsresol = options.get(OPT_IF_TSRESOL, b"\x06")[:1] or b"\x06"
        tsoffset_raw = options.get(OPT_IF_TSOFFSET)
        tsoffset = 0
        if tsoffset_raw is not None and len(tsoffset_raw) == 8:
            (tsoffset,) = struct.unpack(self._order + "q", tsoffset_raw)
        iface = Interface(
            linktype=linktype,
            snaplen=snaplen,
            name=bytes(name).decode("utf-8", "replace").rstrip("\0") if name is not None else None,
            tsresol=tsresol[0],
            tsoffset=tsoffset,
        )
        self.interfaces.append(iface)
        self._scales.append((*_tick_scale(iface.tsresol), tsoffset * 1_000_000_000))

    def _statistics(self, offset: int, body: memoryview) -> None:
        if len(body) < 12:
            raise self._src.error(offset, "interface statistics block too short")
        (iface_id,) = struct.unpack_from(self._order + "I", body)
        options = self._options(offset, body, 12)
        counters: list[int | None] = []
        for code in (OPT_ISB_IFRECV, OPT_ISB_IFDROP):
            raw = options.get(code)
            counters.append(struct.unpack(self._order + "Q", raw)[0] if raw is not None and len(raw) == 8 else None)
        self.interface_stats[iface_id] = (counters[0], counters[1])

    def _options(self, offset: int, body: memoryview, pos: int) -> dict[int, memoryview]:
        """The options from ``pos`` to the end of the body: code -> value (the first of each code)."""
        found: dict[int, memoryview] = {}
        end = len(body)
        unpack_from = self._s.option.unpack_from
        while pos + 4 <= end:
            code, length = unpack_from(body, pos)
            if code == OPT_ENDOFOPT:
                break
            value_end = pos + 4 + length
            if value_end > end:
                raise self._src.error(offset, f"option {code} of length {length} overruns its block")
            found.setdefault(code, body[pos + 4 : value_end])
            pos = value_end + (-length & 3)
        return found

    def close(self) -> None:
        """Close the file, if this reader opened it."""
        self._src.close()

    def __enter__(self) -> PcapngReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The classic pcap format (libpcap's savefile): one 24-byte file header, then records.

Each record is a 16-byte header (seconds, micro- or nanoseconds, captured length, length on the wire)
followed by the captured bytes. The magic number says both the byte order and the timestamp unit.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from .. import _check
from ..errors import SavefileError
from ._io import PathOrFile, Source
from ._writer import CapturedPacket, RecordWriter
from .linktype import LINKTYPE_ETHERNET
from .record import Record

MAGIC_MICRO: Final = 0xA1B2C3D4
MAGIC_NANO: Final = 0xA1B23C4D

#: libpcap's MAXIMUM_SNAPLEN: no link type needs more, and a larger captured length means corruption.
MAX_SNAPLEN: Final = 262144
_MAX_CAPLEN_CEILING: Final = 1 << 24

_FILE_HEADER_LE: Final = struct.Struct("<IHHiIII")
_FILE_HEADER_BE: Final = struct.Struct(">IHHiIII")
#: one little-endian record header: seconds, fraction, captured length, wire length
RECORD_LE: Final = struct.Struct("<IIII")
_RECORD_BE: Final = struct.Struct(">IIII")
_CAPLEN_LE: Final = struct.Struct("<I")
#: the largest value of an unsigned 32-bit header field (snaplen, link type)
_U32_MAX: Final = 0xFFFFFFFF

# The magic as it reads when taken as little-endian bytes -> (record struct, file header struct, ns?)
_MAGICS: Final = {
    MAGIC_MICRO: (RECORD_LE, _FILE_HEADER_LE, False),
    MAGIC_NANO: (RECORD_LE, _FILE_HEADER_LE, True),
    int.from_bytes(MAGIC_MICRO.to_bytes(4, "big"), "little"): (_RECORD_BE, _FILE_HEADER_BE, False),
    int.from_bytes(MAGIC_NANO.to_bytes(4, "big"), "little"): (_RECORD_BE, _FILE_HEADER_BE, True),
}
PCAP_MAGIC_BYTES: Final = frozenset(m.to_bytes(4, "little") for m in _MAGICS)


def _record_boundary(buf: bytes | bytearray, limit: int) -> tuple[int, int]:
    """(length, count) of the longest run of whole records at the start of ``buf`` within ``limit`` bytes."""
    pos = records = 0
    while pos + 16 <= limit:
        (caplen,) = _CAPLEN_LE.unpack_from(buf, pos + 8)
        end = pos + 16 + caplen
        if end > limit:
            break
        pos = end
        records += 1
    return pos, records


class PcapWriter(RecordWriter):
    """Writes a pcap file, little-endian, with micro- (default) or ``nanosecond`` timestamps.

    ``target`` is a path, ``"-"`` for standard output, or a binary file object. ``linktype`` is the
    LINKTYPE_* of every record (default Ethernet). Records longer than ``snaplen`` are cut to it, as
    the header promises. With ``unbuffered=True`` every record reaches the file before ``write``
    returns (tcpdump ``-U``); otherwise records are buffered, whole, and written in batches.
    ``reinsert_vlan`` (default True): :meth:`write_packet` puts a VLAN tag the kernel stripped back into
    the frame. On a full disk the write raises SavefileError and a file this writer opened is cut back
    to its last complete record; SavefileError too when the file cannot be created. Use it as a
    context manager, or call :meth:`close`.

    Example::

        with PcapWriter("out.pcap", nanosecond=True) as w:
            w.write(time.time_ns(), frame)
    """

    def __init__(
        self,
        target: PathOrFile,
        *,
        linktype: int = LINKTYPE_ETHERNET,
        snaplen: int = MAX_SNAPLEN,
        nanosecond: bool = False,
        unbuffered: bool = False,
        reinsert_vlan: bool = True,
    ) -> None:
        # Both are 32-bit fields of the file header: a larger number is refused here, by name, rather
        # than failing as a struct.error while the header is packed.
        _check.count("PcapWriter()", "linktype", linktype, optional=False, maximum=_U32_MAX)
        _check.count("PcapWriter()", "snaplen", snaplen, allow_zero=False, optional=False, maximum=_U32_MAX)
        super().__init__(target, _record_boundary, unbuffered=unbuffered, reinsert_vlan=reinsert_vlan)
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self._unit_ns = 1 if nanosecond else 1000
        self._pack = RECORD_LE.pack
        magic = MAGIC_NANO if nanosecond else MAGIC_MICRO
        self._start(_FILE_HEADER_LE.pack(magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts_ns: int, data: bytes | bytearray | memoryview, wire_len: int | None = None) -> None:
        """Append one record: ``data`` captured at ``ts_ns`` (nanoseconds since the epoch).

        ``wire_len`` is the packet's length on the wire, when more than was captured (default
        ``len(data)``). Raises SavefileError after close(), or when the file cannot be written.
        """
        if self._closed or self._failed:
            self._check_open()
        caplen = len(data)
        if wire_len is None:
            wire_len = caplen
        if caplen > self.snaplen:
            caplen = self.snaplen
            data = data[:caplen]
        sec, frac = divmod(ts_ns, 1_000_000_000)
        # Fractions of the timestamp unit are dropped (floored), as the kernel does for TPACKET_V1.
        frac //= self._unit_ns
        buf = self._buf
        try:
            buf += self._pack(sec, frac, caplen, wire_len)
        except struct.error:
            raise SavefileError(
                f"{self.name}: cannot store timestamp {ts_ns} ns or length {wire_len} in a pcap record"
            ) from None
        buf += data
        self._pending += 1
        if len(buf) >= self._threshold:
            self._commit()

    def write_packet(self, pkt: CapturedPacket) -> None:
        """Append a live-capture packet ``pkt`` (an afpacket Packet), with its VLAN tag put back into the
        frame when the kernel took it out (unless ``reinsert_vlan=False``)."""
        if self.reinsert_vlan:
            data, wire = pkt.file_record()
            self.write(pkt.timestamp_ns, data, wire)
        else:
            self.write(pkt.timestamp_ns, pkt.data, pkt.wire_len)


class PcapReader:
    """Reads a pcap file of either byte order, micro- or nanosecond (:func:`~afpacket.open_reader`
    picks this or :class:`PcapngReader` by the file's first bytes).

    ``target`` is a path, ``"-"`` for standard input, or a binary file object. Iterating yields
    :class:`Record` objects in file order; ``linktype``, ``snaplen`` and ``nanosecond`` come from the
    file header. A truncated or corrupt record raises SavefileError (naming the file, the byte offset
    and the fault) after every complete record before it was yielded; so does a file that cannot be
    opened or is not pcap, and reading on after :meth:`close` (or after the file object was closed).
    """

    def __init__(self, target: PathOrFile | Source, *, _magic: bytes | None = None) -> None:
        self._src = target if isinstance(target, Source) else Source(target)
        self.name = self._src.name
        try:
            magic = _magic if _magic is not None else self._src.exact(4, "file header")
            self._parse_header(magic)
        except BaseException:
            self._src.close()
            raise

    def _parse_header(self, magic: bytes) -> None:
        chosen = _MAGICS.get(int.from_bytes(magic, "little"))
        if chosen is None:
            raise self._src.error(0, f"not a pcap file (magic 0x{magic.hex()})")
        self._record, header, self.nanosecond = chosen
        rest = self._src.exact(header.size - 4, "file header")
        _, major, minor, _, _, self.snaplen, linktype_field = header.unpack(magic + rest)
        if major != 2:
            raise self._src.error(4, f"unsupported pcap version {major}.{minor}")
        # The top bits carry the FCS length (libpcap LT_FCS_DATA_PRESENT); the link type is the rest.
        self.linktype = linktype_field & 0x03FFFFFF
        self._frac_ns = 1 if self.nanosecond else 1000
        self._max_caplen = max(MAX_SNAPLEN, min(self.snaplen, _MAX_CAPLEN_CEILING))

    def __iter__(self) -> Iterator[Record]:
        src = self._src
        read = src.read
        unpack = self._record.unpack
        frac_ns = self._frac_ns
        max_caplen = self._max_caplen
        linktype = self.linktype
        try:
            while True:
                offset = src.offset
                head = read(16)
                if len(head) < 16:
                    if not head:
                        return
                    raise src.error(offset, f"truncated record header: {len(head)} of 16 bytes")
                sec, frac, caplen, wire_len = unpack(head)
                if caplen > max_caplen:
                    raise src.error(offset, f"record captured length {caplen} is larger than the maximum {max_caplen}")
                data = read(caplen)
                if len(data) < caplen:
                    raise src.error(offset, f"truncated record: {len(data)} of {caplen} captured bytes")
                yield Record(sec * 1_000_000_000 + frac * frac_ns, data, wire_len, 0, linktype)
        except ValueError as e:
            # The file was closed under the reader (close(), or whoever owns the file object): Python says
            # ValueError, the reader's family says SavefileError. Zero cost until it happens.
            raise src.error(src.offset, f"cannot read: {e}") from None

    def close(self) -> None:
        """Close the file, if this reader opened it."""
        self._src.close()

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

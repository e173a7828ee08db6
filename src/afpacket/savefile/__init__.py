"""pcap and pcapng savefiles: writers for live capture, readers that stop cleanly at corruption.

Independent of sockets: writers take ``(timestamp_ns, bytes, wire_len)`` or a live-capture packet,
readers give back :class:`Record` objects, so the same code serves capture, replay and tests.
"""

from __future__ import annotations

from ..errors import SavefileError
from ._io import PathOrFile, Source
from ._writer import CapturedPacket
from .linktype import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    describe,
    linktype_for,
)
from .pcap import PCAP_MAGIC_BYTES, PcapReader, PcapWriter
from .pcapng import SHB_MAGIC_BYTES, PcapngReader, PcapngWriter
from .record import Interface, Record

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "CapturedPacket",
    "Interface",
    "PcapReader",
    "PcapWriter",
    "PcapngReader",
    "PcapngWriter",
    "Reader",
    "Record",
    "SavefileError",
    "describe",
    "linktype_for",
    "open_reader",
]

Reader = PcapReader | PcapngReader


def open_reader(target: PathOrFile) -> Reader:
    """A reader for ``target`` (a path, ``"-"`` for standard input, or a binary file object), pcap or
    pcapng by its first four bytes, so it works on pipes too: a :class:`PcapReader` or a
    :class:`PcapngReader`, both iterating :class:`Record` objects (µs or ns, either byte order).

    Raises SavefileError when the file cannot be opened, is empty, or is neither format; while
    iterating, at a truncated or corrupt record (after every whole record before it).

    Example::

        with open_reader("in.pcapng") as reader:
            for rec in reader:
                print(rec.timestamp_ns, rec.wire_len, rec.to_scapy().summary())
    """
    src = Source(target)
    try:
        magic = src.read(4)
        if not isinstance(magic, bytes):
            # a file opened in text mode: refused by name here, not as an AttributeError on the magic
            raise TypeError(
                f"a savefile source must be opened in binary mode ('rb'): reading {src.name} gave "
                f"{type(magic).__name__}, not bytes"
            )
        if magic == SHB_MAGIC_BYTES:
            return PcapngReader(src, _magic=magic)
        if magic in PCAP_MAGIC_BYTES:
            return PcapReader(src, _magic=magic)
        if not magic:
            raise src.error(0, "empty file, not a pcap or pcapng file")
        raise src.error(0, f"not a pcap or pcapng file (magic 0x{magic.hex()})")
    except BaseException:
        src.close()
        raise

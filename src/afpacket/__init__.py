"""afpacket: line-rate packet capture and transmission through AF_PACKET sockets with PACKET_MMAP rings."""

from ._version import __version__
from .errors import (
    AfPacketError,
    ArgumentError,
    CaptureClosedError,
    FilterError,
    FrameTooLargeError,
    InterfaceNotFoundError,
    LinkDownError,
    PacketExpiredError,
    PermissionDeniedError,
    RingAllocationError,
    RingGeometryError,
    SavefileError,
    SocketOptionError,
    TransmitError,
)
from .geometry import RingGeometry

__all__ = [
    "AfPacketError",
    "ArgumentError",
    "CaptureClosedError",
    "FilterError",
    "FrameTooLargeError",
    "InterfaceNotFoundError",
    "LinkDownError",
    "PacketExpiredError",
    "PermissionDeniedError",
    "RingAllocationError",
    "RingGeometry",
    "RingGeometryError",
    "SavefileError",
    "SocketOptionError",
    "TransmitError",
]

from .rx import Capture, Columns, CopiedPacket, Packet
from .sock import SocketStats

__all__ += ["IMPLEMENTATION", "Capture", "Columns", "CopiedPacket", "Packet", "SocketStats", "__version__"]

from .filter import BpfProgram, compile_filter  # noqa: E402

__all__ += ["BpfProgram", "compile_filter"]

from .savefile import PcapngReader, PcapngWriter, PcapReader, PcapWriter, Record, open_reader  # noqa: E402
from .tofile import CaptureFile, dump, format_for, tee  # noqa: E402
from .tx import RejectedFrame, TransmitStats, Transmitter, TransmitWarning, TxSlot  # noqa: E402

__all__ += [
    "CaptureFile",
    "PcapReader",
    "PcapWriter",
    "PcapngReader",
    "PcapngWriter",
    "Record",
    "RejectedFrame",
    "TransmitStats",
    "TransmitWarning",
    "Transmitter",
    "TxSlot",
    "dump",
    "format_for",
    "open_reader",
    "tee",
]


# afpacket.decode(frame) is the function; the decoders and the tcpdump printer live in afpacket.dissect.
from . import dissect  # noqa: E402
from .dissect import Decoded, Flow, LinePrinter, decode  # noqa: E402

__all__ += ["Decoded", "Flow", "LinePrinter", "decode", "dissect"]


def __getattr__(name: str) -> str:
    # IMPLEMENTATION follows afpacket.ring.use() (tests switch cores), so it is looked up, not copied.
    if name == "IMPLEMENTATION":
        from . import ring

        return ring.IMPLEMENTATION
    raise AttributeError(f"module 'afpacket' has no attribute {name!r}")

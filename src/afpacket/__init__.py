"""afpacket: line-rate packet capture and transmission through AF_PACKET sockets with PACKET_MMAP rings."""

from .errors import (
    AfPacketError,
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

__version__ = "0.1.0"

__all__ = [
    "AfPacketError",
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

from .packet import CopiedPacket, Packet
from .rx import Capture
from .sock import SocketStats

__all__ += ["Capture", "CopiedPacket", "Packet", "SocketStats"]

from .filter import BpfProgram, compile_filter  # noqa: E402

__all__ += ["BpfProgram", "compile_filter"]

from .savefile import PcapngReader, PcapngWriter, PcapReader, PcapWriter, Record, open_reader  # noqa: E402
from .tofile import CaptureFile, dump, tee  # noqa: E402
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
    "open_reader",
    "tee",
]

"""afpacket: line-rate packet capture and transmission through AF_PACKET sockets with PACKET_MMAP rings."""

from typing import TYPE_CHECKING, Any

from . import _startup as _startup  # first: the command holds stop signals from here on (see _startup)
from ._version import __version__
from .errors import (
    AfPacketError,
    ArgumentError,
    CaptureClosedError,
    FilterError,
    FrameDecodeError,
    FrameTooLargeError,
    HandoffError,
    InterfaceNotFoundError,
    LinkDownError,
    PacketExpiredError,
    PermissionDeniedError,
    RingAllocationError,
    RingGeometryError,
    SavefileError,
    SocketOptionError,
    TimestampError,
    TransmitError,
)
from .geometry import RingGeometry

__all__ = [
    "AfPacketError",
    "ArgumentError",
    "CaptureClosedError",
    "FilterError",
    "FrameDecodeError",
    "FrameTooLargeError",
    "HandoffError",
    "InterfaceNotFoundError",
    "LinkDownError",
    "PacketExpiredError",
    "PermissionDeniedError",
    "RingAllocationError",
    "RingGeometry",
    "RingGeometryError",
    "SavefileError",
    "SocketOptionError",
    "TimestampError",
    "TransmitError",
]

from .rx import Capture, Columns, CopiedPacket, Packet
from .sock import SocketStats

__all__ += ["IMPLEMENTATION", "Capture", "Columns", "CopiedPacket", "Packet", "SocketStats", "__version__"]

from .ebpf import EbpfProgram, load_socket_filter  # noqa: E402
from .fanout import Fanout, RolloverStats  # noqa: E402
from .filter import BpfProgram, OfflineFilter, compile_filter, parse_program  # noqa: E402
from .timestamps import TimestampType, list_timestamp_types  # noqa: E402

__all__ += [
    "BpfProgram",
    "EbpfProgram",
    "Fanout",
    "OfflineFilter",
    "RolloverStats",
    "TimestampType",
    "compile_filter",
    "list_timestamp_types",
    "load_socket_filter",
    "parse_program",
]

from .aio import AsyncCapture, AsyncTransmitter  # noqa: E402
from .group import CaptureGroup, GroupStats, WorkerReport, merge_files  # noqa: E402
from .handoff import receive_capture, serve_socket  # noqa: E402
from .savefile import PcapngReader, PcapngWriter, PcapReader, PcapWriter, Record, open_reader  # noqa: E402
from .tofile import CaptureFile, dump, format_for, tee  # noqa: E402
from .tx import RejectedFrame, TransmitStats, Transmitter, TransmitWarning, TxSlot  # noqa: E402

__all__ += [
    "AsyncCapture",
    "AsyncTransmitter",
    "CaptureFile",
    "CaptureGroup",
    "GroupStats",
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
    "WorkerReport",
    "dump",
    "format_for",
    "merge_files",
    "open_reader",
    "receive_capture",
    "serve_socket",
    "tee",
]


# afpacket.decode(frame) is the function; the decoders and the tcpdump printer live in afpacket.dissect,
# loaded on first use (a capture that only writes files never needs them).
_DISSECT_NAMES = ("Decoded", "Flow", "LinePrinter", "decode")
__all__ += [*_DISSECT_NAMES, "dissect"]

if TYPE_CHECKING:
    from . import dissect as dissect
    from .dissect import Decoded as Decoded
    from .dissect import Flow as Flow
    from .dissect import LinePrinter as LinePrinter
    from .dissect import decode as decode


def __getattr__(name: str) -> Any:
    # IMPLEMENTATION follows afpacket.ring.use() (tests switch cores), so it is looked up, not copied.
    if name == "IMPLEMENTATION":
        from . import ring

        return ring.IMPLEMENTATION
    if name == "dissect" or name in _DISSECT_NAMES:
        import importlib

        module = importlib.import_module(".dissect", __name__)
        value = module if name == "dissect" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'afpacket' has no attribute {name!r}")

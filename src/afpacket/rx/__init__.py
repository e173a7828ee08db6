"""Receiving: the capture façade, the non-blocking ring walk, its waiter, packets and columns."""

from .capture import Capture
from .columns import Columns
from .packet import CopiedPacket, Packet

__all__ = ["Capture", "Columns", "CopiedPacket", "Packet"]

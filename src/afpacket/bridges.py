"""Bridges to scapy and dpkt: a captured packet or a savefile record as the object either library builds
when it reads the same bytes from a capture file.

Behind ``Packet.to_scapy()``/``to_dpkt()``, ``CopiedPacket``'s and ``Record``'s. Both libraries are
optional and imported on first use only; a missing one is an :class:`~afpacket.AfPacketError` naming
the pip package. The bytes handed over are those a capture file stores (``file_record()``: a stripped
VLAN tag put back, a Linux cooked header in front of SOCK_DGRAM / ``any`` packets), dissected by the
class of their link type, as ``rdpcap`` and ``dpkt.pcap.Reader`` users would choose it: Ethernet,
Linux cooked v1 (SLL) and v2 (SLL2), raw IPv4/IPv6, BSD/OpenBSD loopback.

Timestamps: a scapy packet carries one, so ``.time`` is set exactly (an ``EDecimal`` of seconds, to the
nanosecond, as scapy's pcapng reader makes it), with ``.wirelen`` and, when known, ``.direction``
(pcapng's: 1 inbound, 2 outbound) and ``.sniffed_on``. A dpkt object has no timestamp field, so
``to_dpkt()`` returns the pair dpkt's own readers yield, ``(timestamp, obj)``: ``for ts, buf in
dpkt.pcap.Reader(f)``, with ``ts`` a float of seconds (the same float as ``pkt.timestamp``; the exact
value stays in ``timestamp_ns``).

A frame either library cannot dissect (too short for its link header: an empty SLL record, a 3-byte
"Ethernet" frame): ``to_scapy()`` gives ``conf.raw_layer`` of the bytes, as ``rdpcap`` does; ``to_dpkt()``
raises :class:`FrameDecodeError`, since dpkt's own reader hands over bytes and its class would raise too
(but dpkt's errors are not afpacket's family, and a caller catching AfPacketError must see this one).
"""

from __future__ import annotations

import importlib
import importlib.util
import struct
from decimal import Decimal
from typing import Any

from .errors import AfPacketError, FrameDecodeError
from .savefile.linktype import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    describe,
)

#: link type -> (dpkt module, class) for the link layers dpkt has a class for
_DPKT_CLASSES = {
    LINKTYPE_ETHERNET: ("dpkt.ethernet", "Ethernet"),
    LINKTYPE_LINUX_SLL: ("dpkt.sll", "SLL"),
    LINKTYPE_LINUX_SLL2: ("dpkt.sll2", "SLL2"),
    LINKTYPE_NULL: ("dpkt.loopback", "Loopback"),
    LINKTYPE_LOOP: ("dpkt.loopback", "Loopback"),
    LINKTYPE_IPV4: ("dpkt.ip", "IP"),
    LINKTYPE_IPV6: ("dpkt.ip6", "IP6"),
}


def to_scapy(
    data: bytes | memoryview, linktype: int, timestamp_ns: int, wire_len: int, *,
    direction: int | None = None, ifname: str | None = None,
) -> Any:
    """``data`` (a frame of link type ``linktype``) dissected by scapy, as ``rdpcap`` would.

    The class is scapy's for the link type (``conf.l2types``: ``Ether``, ``CookedLinux``,
    ``CookedLinuxV2``, ``IPv46``, ``Loopback``, ...), or ``conf.raw_layer`` for one it does not know
    (rdpcap does the same). ``timestamp_ns`` becomes ``.time`` exactly, ``wire_len`` ``.wirelen``;
    ``direction`` (pcapng's: 0 unknown, 1 in, 2 out) and ``ifname`` (``.sniffed_on``) are set when
    given. Every layer scapy loads by default is loaded, so the dissection goes as deep as with
    ``from scapy.all import *``. A frame the class cannot dissect (scapy raises ``struct.error`` for a
    1-byte Loopback or raw IP frame) becomes ``conf.raw_layer`` of the bytes, as rdpcap makes it (unless
    ``conf.debug_dissector`` asks for scapy's error). Raises AfPacketError when scapy is not installed.
    """
    try:
        import scapy.layers.all  # noqa: F401  (registers every default layer and its bindings)
        from scapy.config import conf
        from scapy.utils import EDecimal
    except ImportError:
        raise AfPacketError("to_scapy() needs scapy: pip install scapy") from None
    cls = conf.l2types.num2layer.get(linktype, conf.raw_layer)
    frame = bytes(data)
    try:
        pkt = cls(frame)
    except Exception:  # rdpcap's rule, in scapy's PcapReader: what the class cannot dissect stays raw
        if conf.debug_dissector:
            raise
        pkt = conf.raw_layer(frame)
    sign, digits, exponent = Decimal(timestamp_ns).as_tuple()
    # Built from the digits, so exact whatever the decimal context's precision.
    pkt.time = EDecimal((sign, digits, int(exponent) - 9))
    pkt.wirelen = wire_len
    if direction is not None:
        pkt.direction = direction
    if ifname is not None:
        pkt.sniffed_on = ifname
    return pkt


def to_dpkt(data: bytes | memoryview, linktype: int, timestamp_ns: int) -> tuple[float, Any]:
    """``(timestamp, obj)``: ``data`` (a frame of link type ``linktype``) parsed by dpkt's class for the
    link type, and ``timestamp_ns`` as float seconds, the pair ``dpkt.pcap.Reader`` yields.

    Classes: ``dpkt.ethernet.Ethernet``, ``dpkt.sll.SLL``, ``dpkt.sll2.SLL2``,
    ``dpkt.loopback.Loopback``, and ``dpkt.ip.IP``/``dpkt.ip6.IP6`` for raw IP (by the version nibble).
    Raises AfPacketError when dpkt is not installed or has no class for the link type, and
    :class:`FrameDecodeError` (an AfPacketError and ValueError) when dpkt cannot parse the frame: too
    short for its link header (dpkt's ``NeedData``; an empty SLL record) or with an impossible header.
    """
    frame = bytes(data)
    where = _DPKT_CLASSES.get(linktype)
    if where is None and linktype == LINKTYPE_RAW:
        where = _DPKT_CLASSES[LINKTYPE_IPV6 if frame[:1] and frame[0] >> 4 == 6 else LINKTYPE_IPV4]
    if where is None:
        raise AfPacketError(f"to_dpkt(): dpkt has no class for link type {describe(linktype)}")
    module, name = where
    try:
        cls = getattr(importlib.import_module(module), name)
    except ImportError:
        if importlib.util.find_spec("dpkt") is None:
            raise AfPacketError("to_dpkt() needs dpkt: pip install dpkt") from None
        raise AfPacketError(
            f"to_dpkt(): this dpkt has no {module}.{name} for link type {describe(linktype)}; "
            "pip install --upgrade dpkt"
        ) from None
    dpkt_error = importlib.import_module("dpkt").Error  # NeedData, UnpackError
    try:
        obj = cls(frame)
    except (dpkt_error, struct.error, IndexError, ValueError) as e:  # and what a layer could let out besides
        problem = "too short for" if type(e).__name__ == "NeedData" else "not parsed by"
        raise FrameDecodeError(
            f"to_dpkt(): a {len(frame)}-byte frame of link type {describe(linktype)} is {problem} "
            f"{module}.{name}: {e}"
        ) from None
    return timestamp_ns / 1e9, obj


__all__ = ["FrameDecodeError", "to_dpkt", "to_scapy"]

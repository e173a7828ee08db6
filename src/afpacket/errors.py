"""One exception family. Every message says what failed, why, and what to do about it.

Catch :class:`AfPacketError` for anything afpacket raises on purpose. Several classes also derive from
the built-in exception a Python user would expect (``PermissionError``, ``ValueError``, ``MemoryError``,
``ConnectionError``), so ``except ValueError`` keeps working around code that passes bad values.
Wrong argument *types* raise a plain ``TypeError``, as Python's own functions do.
"""

from __future__ import annotations

import errno as _errno
from typing import Any


class AfPacketError(Exception):
    """Base class of every error afpacket raises on purpose.

    Example::

        try:
            cap = afpacket.Capture("eth9")
        except afpacket.AfPacketError as e:
            print(e)    # no interface named 'eth9' in this network namespace (have: lo, eth0, or 'any')
    """


class ArgumentError(AfPacketError, ValueError):
    """An argument has an acceptable type but a value afpacket cannot use (a negative or NaN duration,
    an unknown file format, ...). The message names the function, the parameter and what is accepted."""


class InterfaceNotFoundError(AfPacketError):
    """The named network interface does not exist (in this network namespace)."""


class PermissionDeniedError(AfPacketError, PermissionError):
    """The process lacks CAP_NET_RAW, the only capability afpacket needs (opening the socket; promiscuous
    mode through PACKET_ADD_MEMBERSHIP, PACKET_QDISC_BYPASS, fanout and PACKET_TIMESTAMP need no other)."""


class RingGeometryError(AfPacketError, ValueError):
    """A ring geometry the kernel would reject, caught before any system call."""


class RingAllocationError(AfPacketError, MemoryError):
    """The kernel could not allocate the ring (ENOMEM), even after retrying smaller."""


class SocketOptionError(AfPacketError):
    """A setsockopt/getsockopt on the packet socket failed.

    ``option`` is the option's name (e.g. ``"PACKET_RX_RING"``), ``err`` the OSError the kernel
    returned (its errno is kept in :attr:`errno`), ``hint`` an optional sentence on what to do.
    """

    def __init__(self, option: str, err: OSError, hint: str = "") -> None:
        self.option = option
        self.errno = err.errno
        reason = _errno.errorcode.get(err.errno or 0, str(err.errno))
        msg = f"setting {option} failed: {reason} ({err.strerror})"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class FilterError(AfPacketError, ValueError):
    """A capture filter could not be compiled or attached."""


class CaptureClosedError(AfPacketError, ValueError):
    """The capture (or transmitter) was used after close()."""


class PacketExpiredError(AfPacketError, ValueError):
    """A zero-copy packet was read after its frame or block went back to the kernel."""


class LinkDownError(AfPacketError, ConnectionError):
    """The interface went down or was removed while the socket was in use (ENETDOWN/ENXIO).

    ``stats``: for a capture whose interface went away, the socket's final
    :class:`~afpacket.SocketStats` (every received packet counted as read from the ring or dropped);
    None otherwise."""

    stats: Any = None


class TransmitError(AfPacketError):
    """A frame could not be queued or sent."""


class FrameTooLargeError(TransmitError, ValueError):
    """A frame is larger than the ring slot or the interface MTU plus the link header."""


class FrameDecodeError(AfPacketError, ValueError):
    """Another library (dpkt) cannot parse a frame handed to it: too short for its link-layer class."""


class HandoffError(AfPacketError):
    """A capture socket could not be handed to another process over a Unix socket (serve_socket /
    receive_capture): no server, a refused user, or a message that is not a capture description."""


class TimestampError(AfPacketError):
    """The time stamp source asked for cannot be used on this interface (no hardware clock, as on veth
    and loopback, or no interface named, as with 'any'). The message names the device and the fix."""


class SavefileError(AfPacketError):
    """A pcap/pcapng file is corrupt, truncated, or could not be written."""


def os_error(action: str, err: OSError, interface: str | None = None) -> AfPacketError:
    """Translate an OSError from a socket call into the family, with a hint for the usual causes.

    ``action`` says what was being done ("binding the packet socket"), ``err`` is the OSError caught,
    ``interface`` the interface name to mention (or None). Returns the error; the caller raises it:
    EPERM/EACCES give PermissionDeniedError, ENODEV/ENXIO InterfaceNotFoundError, ENETDOWN
    LinkDownError, ENOMEM RingAllocationError, anything else AfPacketError.
    """
    where = f" on {interface!r}" if interface else ""
    code = err.errno
    if code in (_errno.EPERM, _errno.EACCES):
        return PermissionDeniedError(
            f"{action}{where} was refused ({err.strerror}): AF_PACKET sockets need CAP_NET_RAW (and nothing "
            "else); run as root (with -Z USER to drop it once the capture is open), or give CAP_NET_RAW alone "
            "to a dedicated interpreter copy in a venv (`setcap cap_net_raw=eip /path/to/venv/bin/python3.11`, "
            "never the system python3), or run under systemd with AmbientCapabilities=CAP_NET_RAW"
        )
    if code in (_errno.ENODEV, _errno.ENXIO):
        return InterfaceNotFoundError(
            f"{action}{where} failed: no such device; `afpacket list` shows the interfaces you can open"
        )
    if code == _errno.ENETDOWN:
        return LinkDownError(f"{action}{where} failed: the interface is down or was removed")
    if code == _errno.ENOMEM:
        return RingAllocationError(
            f"{action}{where} failed: the kernel is out of memory for it (ENOMEM); use a smaller buffer"
        )
    reason = _errno.errorcode.get(code or 0, str(code))
    return AfPacketError(f"{action}{where} failed: {reason} ({err.strerror})")

"""Which clock stamps received packets: the kernel's (software) or the network card's (hardware).

The kernel stamps a packet the ring receives with one of two clocks, chosen per socket with
PACKET_TIMESTAMP and reported per packet in the TP_STATUS_TS_* bits of its status word:

* **software** — the system clock, read when the packet enters the receive path (or, for a packet this
  host sends, when the packet taps see it). The kernel only reads the clock there while some socket
  has asked for software receive stamps (a global switch); otherwise a ring packet gets the time it
  was copied into the ring and no TS bit. :func:`enable` asks for them (SO_TIMESTAMPING with
  SOF_TIMESTAMPING_RX_SOFTWARE), so every packet carries TS_SOFTWARE. The first socket to ask flips
  the switch from a kernel work queue, so packets in the first instant after opening may still carry
  the copy time; the switch stays on while any socket wants it, and then every capture (with a source
  or not) gets the receive-path stamp, the same for every socket that sees the packet.
* **hardware** — the raw clock of the NIC (its PTP hardware clock), which the driver must first be
  told to stamp every packet with (SIOCSHWTSTAMP, rx_filter HWTSTAMP_FILTER_ALL). The kernel honours
  only SOF_TIMESTAMPING_RAW_HARDWARE in PACKET_TIMESTAMP; the "system-synced" hardware stamp
  (SOF_TIMESTAMPING_SYS_HARDWARE) was removed in Linux 3.17. Virtual devices (veth, loopback, bridges)
  have no such clock.

:func:`list_types` answers what ``tcpdump -J`` lists, by libpcap's rules (ETHTOOL_GET_TS_INFO), and
:data:`TYPES` maps tcpdump's ``-j`` names onto the two sources.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import socket
import struct
from typing import TYPE_CHECKING, NamedTuple

from . import abi
from .errors import ArgumentError, PermissionDeniedError, TimestampError

if TYPE_CHECKING:
    from .sock import PacketSocket

#: The values ``Capture(timestamp_source=...)`` accepts (None: leave the kernel's default).
SOURCES = ("software", "hardware")

#: Linux's internal "not supported" errno, which some drivers let out of an ioctl.
_ENOTSUPP = 524
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.EINVAL, errno.ERANGE, errno.ENOTTY, _ENOTSUPP)


class TimestampType(NamedTuple):
    """A time stamp type by libpcap's name (what ``tcpdump -J`` lists and ``-j`` takes): ``name``,
    its ``description`` as tcpdump prints it, and the afpacket ``source`` it selects."""

    name: str
    description: str
    source: str


#: libpcap's time stamp types, in its order, each with the source it means on Linux: the host types
#: are all the kernel's clock (Linux has one precision, ns); both adapter types are the NIC's raw clock,
#: since the kernel no longer offers a hardware stamp converted to system time ("adapter" is synced
#: with system time only where phc2sys or ptp4l keeps the NIC clock in step).
TYPES: dict[str, TimestampType] = {
    t.name: t
    for t in (
        TimestampType("host", "Host", "software"),
        TimestampType("host_lowprec", "Host, low precision", "software"),
        TimestampType("host_hiprec", "Host, high precision", "software"),
        TimestampType("adapter", "Adapter", "hardware"),
        TimestampType("adapter_unsynced", "Adapter, not synced with system time", "hardware"),
        TimestampType("host_hiprec_unsynced", "Host, high precision, not synced with system time", "software"),
    )
}

# The ETHTOOL_GET_TS_INFO capability bit behind each type libpcap lists, in its order.
_LISTED_BY_BIT = (
    (abi.SOF_TIMESTAMPING_SOFTWARE, "host"),
    (abi.SOF_TIMESTAMPING_SYS_HARDWARE, "adapter"),
    (abi.SOF_TIMESTAMPING_RAW_HARDWARE, "adapter_unsynced"),
)


def check_source(source: object, where: str = "Capture()") -> str:
    """``source`` if it is a timestamp source name; TypeError for a non-string, ArgumentError for an
    unknown name (both name the parameter and list the accepted values; ``where`` is the function the
    message starts with)."""
    accepted = "'software' or 'hardware' (None: the kernel's default)"
    if not isinstance(source, str):
        raise TypeError(f"{where}: timestamp_source must be {accepted}, not {type(source).__name__}")
    if source not in SOURCES:
        hint = ""
        if source.lower() in TYPES:
            hint = f" (tcpdump's -j {source.lower()} is timestamp_source={TYPES[source.lower()].source!r})"
        raise ArgumentError(f"{where}: timestamp_source must be {accepted}, got {source!r}{hint}")
    return source


def type_by_name(name: str) -> TimestampType:
    """The :class:`TimestampType` called ``name`` (case-insensitive, as libpcap); ArgumentError listing
    the valid names otherwise."""
    found = TYPES.get(name.lower())
    if found is None:
        raise ArgumentError(f"invalid time stamp type {name!r}: use one of {', '.join(TYPES)}")
    return found


def _ioctl_ifreq(fd: int, request: int, ifname: str, payload: bytes) -> bytes:
    """An ioctl whose struct ifreq carries a pointer (ifr_data) to ``payload``; returns the payload as
    the kernel left it. OSError as the kernel reports it."""
    buf = ctypes.create_string_buffer(payload, len(payload))
    ifreq = struct.pack("16sP16x", ifname.encode(), ctypes.addressof(buf))
    fcntl.ioctl(fd, request, ifreq)
    return buf.raw


def ts_info(ifname: str) -> tuple[int, int, int] | None:
    """The ETHTOOL_GET_TS_INFO of the device called ``ifname``: (so_timestamping capability bits, PHC
    index or -1, rx_filters bit mask), or None when the driver or kernel cannot say (EOPNOTSUPP/EINVAL).
    InterfaceNotFoundError when there is no such interface."""
    from .interfaces import lookup

    lookup(ifname)  # a clear error for a name that does not exist
    request = abi.ETHTOOL_TS_INFO.pack(abi.ETHTOOL_GET_TS_INFO, 0, -1, 0, 0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:  # any socket serves; this one needs no privilege
        try:
            raw = _ioctl_ifreq(s.fileno(), abi.SIOCETHTOOL, ifname, request)
        except OSError as e:
            if e.errno in _NOT_SUPPORTED:
                return None
            raise TimestampError(
                f"asking {ifname} for its time stamping capabilities (SIOCETHTOOL ETHTOOL_GET_TS_INFO) failed: "
                f"{errno.errorcode.get(e.errno or 0, e.errno)} ({e.strerror})"
            ) from None
    _cmd, caps, phc, _tx, rx_filters = abi.ETHTOOL_TS_INFO.unpack(raw)
    return caps, phc, rx_filters


def list_timestamp_types(ifname: str) -> list[TimestampType]:
    """The time stamp types of interface ``ifname``, as ``tcpdump -J -i IFNAME`` lists them (what
    :func:`list_types` returns; exported as ``afpacket.list_timestamp_types``): each a
    :class:`TimestampType` with tcpdump's name, description and the ``timestamp_source`` it selects."""
    return list_types(ifname)


def list_types(ifname: str) -> list[TimestampType]:
    """The time stamp types ``tcpdump -J -i IFNAME`` lists for interface ``ifname``, by libpcap's (1.10) rules.

    'any' has host only. A device that can hardware-stamp *every* received packet (rx_filters has
    HWTSTAMP_FILTER_ALL) lists the types its ETHTOOL_GET_TS_INFO capabilities name (host for
    SOF_TIMESTAMPING_SOFTWARE, adapter for the legacy SYS_HARDWARE, adapter_unsynced for RAW_HARDWARE);
    a device that cannot say lists host, adapter and adapter_unsynced; any other device (veth, lo)
    host only. InterfaceNotFoundError for a name that does not exist (tcpdump lists host for it).
    """
    if ifname == "any":
        return [TYPES["host"]]
    info = ts_info(ifname)
    if info is None:
        return [TYPES[name] for _bit, name in _LISTED_BY_BIT]
    caps, _phc, rx_filters = info
    if not rx_filters & (1 << abi.HWTSTAMP_FILTER_ALL):
        return [TYPES["host"]]
    listed = [TYPES[name] for bit, name in _LISTED_BY_BIT if caps & bit]
    return listed or [TYPES["host"]]  # libpcap's list for "no types": host alone


def list_lines(ifname: str) -> list[str]:
    """``tcpdump -J``'s lines for ``ifname`` (it prints them on stderr)."""
    return [f"Time stamp types for {ifname} (use option -j to set):"] + [
        f"  {t.name} ({t.description})" for t in list_types(ifname)
    ]


def _no_clock(ifname: str, why: str) -> TimestampError:
    return TimestampError(
        f"{ifname} has no hardware clock ({why}; `ethtool -T {ifname}` lists none); "
        "use timestamp_source='software'"
    )


def _enable_device(ps: PacketSocket, ifname: str) -> None:
    """Have the driver stamp every received packet (SIOCSHWTSTAMP with HWTSTAMP_FILTER_ALL), keeping the
    device's other settings (ptp4l's transmit stamping, say). Skipped when the device already stamps
    all packets, so a capture needs CAP_NET_ADMIN only to change the device. The device keeps the
    setting after the capture, as with libpcap: other programs may rely on it."""
    fd = ps.sock.fileno()
    cfg = abi.HWTSTAMP_CONFIG
    try:
        flags, tx_type, rx_filter = cfg.unpack(_ioctl_ifreq(fd, abi.SIOCGHWTSTAMP, ifname, cfg.pack(0, 0, 0)))
    except OSError:
        # Older drivers have no SIOCGHWTSTAMP; SIOCSHWTSTAMP below says whether there is a clock at all.
        flags, tx_type, rx_filter = 0, abi.HWTSTAMP_TX_OFF, abi.HWTSTAMP_FILTER_NONE
    if rx_filter == abi.HWTSTAMP_FILTER_ALL:
        return
    try:
        _f, _t, rx_filter = cfg.unpack(
            _ioctl_ifreq(fd, abi.SIOCSHWTSTAMP, ifname, cfg.pack(flags, tx_type, abi.HWTSTAMP_FILTER_ALL))
        )
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            raise PermissionDeniedError(
                f"turning on hardware time stamps on {ifname} (SIOCSHWTSTAMP) was refused: changing the device "
                "needs CAP_NET_ADMIN (the capture itself needs only CAP_NET_RAW); run as root once, or have "
                f"`hwstamp_ctl -i {ifname} -r 1` set it up beforehand"
            ) from None
        if e.errno == errno.ERANGE:
            raise TimestampError(
                f"{ifname} can stamp only some packets in hardware (e.g. PTP), not all of them "
                "(SIOCSHWTSTAMP refused HWTSTAMP_FILTER_ALL); use timestamp_source='software'"
            ) from None
        if e.errno in _NOT_SUPPORTED:
            raise _no_clock(ifname, "SIOCSHWTSTAMP: not supported") from None
        raise TimestampError(
            f"turning on hardware time stamps on {ifname} (SIOCSHWTSTAMP) failed: "
            f"{errno.errorcode.get(e.errno or 0, e.errno)} ({e.strerror})"
        ) from None
    if rx_filter == abi.HWTSTAMP_FILTER_NONE:
        raise _no_clock(ifname, "the driver accepted SIOCSHWTSTAMP but stamps no received packets")


def enable(ps: PacketSocket, source: str) -> None:
    """Make ``source`` ("software" or "hardware") stamp the packets the socket ``ps`` receives; called
    during setup, before the ring is made.

    Both sources also ask for software receive stamps (SO_TIMESTAMPING), so a packet the hardware did
    not stamp (one this host sends, say) still carries the kernel's receive time with TS_SOFTWARE.
    TimestampError naming the device and the fix where there is no hardware clock (veth, lo, 'any');
    PermissionDeniedError when turning it on needs CAP_NET_ADMIN.
    """
    check_source(source)
    ifname = ps.interface_name
    if source == "hardware":
        if ifname == "any" or ps.iface is None:
            raise TimestampError(
                "hardware time stamps need one named interface, not 'any' (each card has its own clock); "
                "use timestamp_source='software'"
            )
        info = ts_info(ifname)
        if info is not None and not info[0] & abi.SOF_TIMESTAMPING_RAW_HARDWARE:
            raise _no_clock(ifname, "its driver reports no raw hardware time stamping")
        _enable_device(ps, ifname)
    wanted = abi.SOF_TIMESTAMPING_RX_SOFTWARE | abi.SOF_TIMESTAMPING_SOFTWARE
    if source == "hardware":
        wanted |= abi.SOF_TIMESTAMPING_RX_HARDWARE | abi.SOF_TIMESTAMPING_RAW_HARDWARE
    try:
        ps.sock.setsockopt(socket.SOL_SOCKET, abi.SO_TIMESTAMPING, wanted)
    except OSError as e:
        raise TimestampError(
            f"asking for {source} receive time stamps (SO_TIMESTAMPING) on {ifname} failed: "
            f"{errno.errorcode.get(e.errno or 0, e.errno)} ({e.strerror})"
        ) from None
    # PACKET_TIMESTAMP: the kernel always accepts software stamps; RAW_HARDWARE lets a NIC's stamp win.
    packet_flags = abi.SOF_TIMESTAMPING_SOFTWARE
    if source == "hardware":
        packet_flags |= abi.SOF_TIMESTAMPING_RAW_HARDWARE
    ps.setopt("PACKET_TIMESTAMP", abi.PACKET_TIMESTAMP, packet_flags, "needs Linux 2.6.36 or later")


SOURCE_BY_TS_BITS: tuple[str | None, ...] = (
    None, "software", "sys_hardware", "sys_hardware", "hardware", "hardware", "hardware", "hardware",
)


def source_of(status: int) -> str | None:
    """The clock that stamped a packet, from its tp_status word ``status``: "hardware" (TS_RAW_HARDWARE), "sys_hardware"
    (the deprecated TS_SYS_HARDWARE), "software" (TS_SOFTWARE), or None when the kernel set no TS bit
    (the time the packet was copied into the ring, while nobody asked for receive stamps)."""
    return SOURCE_BY_TS_BITS[(status >> 29) & 7]

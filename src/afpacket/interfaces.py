"""Network interfaces as a capture sees them: index, MTU, link type, flags (read from sysfs)."""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from dataclasses import dataclass

from . import abi
from .errors import InterfaceNotFoundError

SYS_NET = "/sys/class/net"
#: The pseudo-interface that captures on every interface at once (tcpdump's ``any``).
ANY = "any"

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40


@dataclass(frozen=True)
class Interface:
    """A network interface as :func:`lookup` found it: ``name``, ``index`` (ifindex), ``mtu``,
    ``hatype`` (ARPHRD_* device type: 1 Ethernet, 772 loopback, 65534 none), ``flags`` (IFF_* bits),
    ``address`` (its hardware address as text, "" when none)."""

    name: str
    index: int
    mtu: int
    hatype: int
    flags: int
    address: str

    @property
    def up(self) -> bool:
        """Administratively up (IFF_UP)."""
        return bool(self.flags & IFF_UP)

    @property
    def running(self) -> bool:
        """Up with its carrier present (IFF_RUNNING; sysfs ``flags`` never shows it, the ioctl does)."""
        return bool(self.flags & IFF_RUNNING)

    @property
    def loopback(self) -> bool:
        """A loopback interface (IFF_LOOPBACK)."""
        return bool(self.flags & IFF_LOOPBACK)


def _read(name: str, attr: str, default: str = "") -> str:
    try:
        with open(os.path.join(SYS_NET, name, attr)) as f:
            return f.read().strip()
    except OSError:
        return default


def lookup(name: str) -> Interface:
    """The interface called ``name``, or InterfaceNotFoundError listing the ones that exist."""
    if not name or "/" in name or len(name) >= 16:
        raise InterfaceNotFoundError(f"{name!r} is not a valid interface name (1-15 characters, no '/')")
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        names = ", ".join(i.name for i in list_interfaces()) or "none"
        raise InterfaceNotFoundError(
            f"no interface named {name!r} in this network namespace (have: {names}, or 'any')"
        ) from None
    return Interface(
        name=name,
        index=index,
        mtu=int(_read(name, "mtu", "1500") or 1500),
        hatype=int(_read(name, "type", str(abi.ARPHRD_ETHER)) or abi.ARPHRD_ETHER),
        flags=_ifflags(name),
        address=_read(name, "address"),
    )


_SIOCGIFFLAGS = 0x8913
_SIOCETHTOOL = 0x8946
_ETHTOOL_GLINK = 0x0000000A


def _ifflags(name: str) -> int:
    """The flags SIOCGIFFLAGS reports: sysfs ``flags`` lacks IFF_RUNNING, which the kernel computes
    (``dev_get_flags``: up and carrier on)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, struct.pack("16sH14x", name.encode(), 0))
            return int(struct.unpack_from("16sH", ifr)[1])
    except OSError:
        return int(_read(name, "flags", "0") or "0", 16)


def link_detected(name: str) -> bool | None:
    """The link state of the interface called ``name`` as its driver reports it (ETHTOOL_GLINK, what
    ``ethtool`` prints as "Link detected"), or None when the driver does not say (libpcap then prints
    no connection status)."""
    value = ctypes.create_string_buffer(struct.pack("II", _ETHTOOL_GLINK, 0), 8)  # struct ethtool_value
    ifreq = struct.pack("16sP16x", name.encode(), ctypes.addressof(value))  # ifr_name, ifr_data
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), _SIOCETHTOOL, ifreq)
    except OSError:
        return None
    return bool(struct.unpack("II", value.raw)[1])


def status_words(iface: Interface) -> list[str]:
    """What ``tcpdump -D`` prints in brackets for ``iface``: Up, Running, Loopback, then
    Connected/Disconnected where the driver reports its link (never for loopback)."""
    words = [w for w, on in (("Up", iface.up), ("Running", iface.running), ("Loopback", iface.loopback)) if on]
    if not iface.loopback and iface.up:
        link = link_detected(iface.name)
        if link is not None:
            words.append("Connected" if link else "Disconnected")
    return words


def list_interfaces() -> list[Interface]:
    """Every interface in this network namespace, in index order."""
    out = []
    for _, name in socket.if_nameindex():
        try:
            out.append(lookup(name))
        except InterfaceNotFoundError:  # vanished while listing
            continue
    return sorted(out, key=lambda i: i.index)


def max_mtu() -> int:
    """The largest MTU of any interface: what a capture on ``any`` must be ready for."""
    return max((i.mtu for i in list_interfaces()), default=1500)


def capture_order(ifaces: list[Interface]) -> list[Interface]:
    """The interfaces ``ifaces`` in the order ``tcpdump -D`` lists them (libpcap's): running before not
    running, up before down, connected before disconnected, loopback last among equals; index order
    otherwise."""

    def merit(iface: Interface) -> tuple[bool, bool, bool, bool, int]:
        link = link_detected(iface.name) if iface.up and not iface.loopback else None
        return (not iface.running, not iface.up, link is False, iface.loopback, iface.index)

    return sorted(ifaces, key=merit)


def default_interface() -> str:
    """What tcpdump captures on without ``-i``: the first interface of :func:`capture_order` that is up,
    running and not loopback; ``any`` when there is none."""
    for iface in capture_order(list_interfaces()):
        if iface.up and iface.running and not iface.loopback:
            return iface.name
    return ANY

"""Network interfaces as a capture sees them: index, MTU, link type, flags (read from sysfs)."""

from __future__ import annotations

import os
import socket
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
    name: str
    index: int
    mtu: int
    hatype: int
    flags: int
    address: str

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def running(self) -> bool:
        return bool(self.flags & IFF_RUNNING)

    @property
    def loopback(self) -> bool:
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
        flags=int(_read(name, "flags", "0") or "0", 16),
        address=_read(name, "address"),
    )


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

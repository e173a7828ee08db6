"""Private test networks: a network namespace with one end of a veth pair inside it.

Used by the demo, the tests and the benchmarks, so all of them send traffic only over links they made
themselves. The *outer* end stays in the caller's namespace (afpacket opens it there, Python 3.11 has no
``os.setns``); the *inner* end lives in the new namespace, where peers (trafgen, tcpdump, ...) run through
``ip netns exec``. IPv6 is disabled on both ends so no router solicitations or DAD probes mix into exact
counts. Everything is removed on exit, even after an error.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from types import TracebackType

from .errors import AfPacketError, ArgumentError

_counter = itertools.count()

#: Addresses from the benchmarking range (RFC 2544) written into crafted test frames. Each VethPair puts
#: its own /30 from the same range on its ends (``outer_ip``/``inner_ip``), never these two, so pairs that
#: exist at the same time (tests running side by side) never share a route.
OUTER_IP = "198.18.0.1"
INNER_IP = "198.18.0.2"
_RANGE_BASE = int.from_bytes(bytes([198, 18, 1, 0]), "big")
_RANGE_SUBNETS = ((1 << 17) - 256) // 4


def _subnet(serial: int) -> tuple[str, str]:
    import socket

    base = _RANGE_BASE + 4 * ((os.getpid() * 7919 + serial) % _RANGE_SUBNETS)
    return (socket.inet_ntoa((base + 1).to_bytes(4, "big")), socket.inet_ntoa((base + 2).to_bytes(4, "big")))


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)
    except FileNotFoundError:
        raise AfPacketError("the `ip` command is missing; install iproute2") from None
    except subprocess.CalledProcessError as e:
        raise AfPacketError(f"`ip {' '.join(args)}` failed: {e.stderr.strip()}") from None


def _sysctl(path: str, value: str, netns: str | None = None) -> None:
    """Write ``value`` to the /proc/sys file ``path``, inside ``netns`` when given; failures are ignored.

    No shell: ``tee`` gets the path as one argument and the value on stdin, so an interface name can
    never become a command (``/proc/sys/net`` shows the namespace of whoever opens it, hence ``tee``
    run through ``ip netns exec`` rather than an open() here).
    """
    if netns is None:
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            pass
        return
    subprocess.run(["ip", "netns", "exec", netns, "tee", path], input=value, text=True, check=False,
                   capture_output=True)


#: Longest ``prefix``: with a 5-digit pid, a serial and the end's letter the names stay within the
#: kernel's 15 bytes (IFNAMSIZ - 1), so the outer and inner names are never cut to the same string.
MAX_PREFIX = 6


def _check_prefix(prefix: object) -> str:
    """``prefix`` if it is 1 to MAX_PREFIX ASCII letters or digits, else ArgumentError: it goes into
    interface and namespace names, which ``ip`` takes as they are."""
    if not isinstance(prefix, str):
        raise TypeError(f"VethPair(): prefix must be a str, not {type(prefix).__name__}")
    if not (1 <= len(prefix) <= MAX_PREFIX and prefix.isascii() and prefix.isalnum()):
        raise ArgumentError(
            f"VethPair(): prefix {prefix!r} is not usable: give 1 to {MAX_PREFIX} ASCII letters or digits "
            "(it starts interface and namespace names)"
        )
    return prefix


class VethPair:
    """A veth pair: ``outer`` here, ``inner`` inside network namespace ``netns``.

    ``with VethPair() as net:`` creates and brings both ends up; leaving the block deletes the
    namespace, which deletes the pair. Needs root (CAP_NET_ADMIN) and the ``ip`` command.

    - ``prefix`` starts the namespace and interface names, followed by the process id and a serial
      number, so pairs made by parallel tests never collide (names are cut to the kernel's 15 bytes).
      It must be 1 to 6 ASCII letters or digits (ArgumentError otherwise, before anything runs).
    - ``addresses``: put a /30 from the RFC 2544 range on the two ends (``outer_ip``, ``inner_ip``)
      with static neighbour entries; False leaves both ends without addresses, so the kernel sends
      nothing of its own on the link.
    - ``mtu``: an MTU for both ends (the veth default of 1500 when None).

    After :meth:`create`, ``outer_mac`` and ``inner_mac`` hold the ends' addresses. Failures raise
    :class:`AfPacketError` with the failing ``ip`` command and its message.

    Example::

        with VethPair() as net:
            net.send([frame])  # arrives on net.outer, where a Capture can see it
    """

    def __init__(self, prefix: str = "afp", *, addresses: bool = True, mtu: int | None = None) -> None:
        prefix = _check_prefix(prefix)
        serial = next(_counter)
        tag = f"{os.getpid() % 100000}{serial}"
        self.outer_ip, self.inner_ip = _subnet(serial)
        self.netns = f"{prefix}ns{tag}"
        self.outer = f"{prefix}{tag}o"[:15]
        self.inner = f"{prefix}{tag}i"[:15]
        self.addresses = addresses
        self.mtu = mtu
        self.outer_mac = ""
        self.inner_mac = ""
        self._up = False

    def __enter__(self) -> VethPair:
        self.create()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.delete()

    def create(self) -> None:
        """Make the namespace and the pair, configure and bring both ends up (``with`` calls it).

        On any failure whatever was already made is removed before the error propagates.
        """
        _ip("netns", "add", self.netns)
        self._up = True
        try:
            _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
            _ip("link", "set", self.inner, "netns", self.netns)
            _sysctl(f"/proc/sys/net/ipv6/conf/{self.outer}/disable_ipv6", "1")
            _sysctl(f"/proc/sys/net/ipv6/conf/{self.inner}/disable_ipv6", "1", self.netns)
            if self.mtu:
                _ip("link", "set", self.outer, "mtu", str(self.mtu))
                self.exec("ip", "link", "set", self.inner, "mtu", str(self.mtu))
            if self.addresses:
                _ip("addr", "add", f"{self.outer_ip}/30", "dev", self.outer)
                self.exec("ip", "addr", "add", f"{self.inner_ip}/30", "dev", self.inner)
            _ip("link", "set", self.outer, "up")
            self.exec("ip", "link", "set", self.inner, "up")
            self.exec("ip", "link", "set", "lo", "up")
            self.outer_mac = _read_mac(self.outer)
            self.inner_mac = self.exec("cat", f"/sys/class/net/{self.inner}/address").stdout.strip()
            if self.addresses:
                # Static neighbours: no ARP exchange mixes into exact packet counts.
                _ip("neigh", "replace", self.inner_ip, "lladdr", self.inner_mac, "dev", self.outer, "nud", "permanent")
                self.exec(
                    "ip", "neigh", "replace", self.outer_ip, "lladdr", self.outer_mac, "dev", self.inner,
                    "nud", "permanent",
                )
        except BaseException:
            self.delete()
            raise

    def delete(self) -> None:
        """Remove the pair and the namespace; does nothing if they are already gone, so it is safe twice."""
        if not self._up:
            return
        self._up = False
        _ip("link", "del", self.outer, check=False)
        _ip("netns", "del", self.netns, check=False)

    def exec(self, *cmd: str, check: bool = True, timeout: float | None = 120) -> subprocess.CompletedProcess[str]:
        """Run the command ``cmd`` (program and arguments) inside the namespace and wait for it.

        Returns the finished process with its text output. With ``check`` true a non-zero exit raises
        :class:`AfPacketError` with the command's stderr; ``timeout`` (seconds, None for none) bounds
        the wait, so a stuck peer cannot hang a test (raises :class:`subprocess.TimeoutExpired`).
        """
        try:
            return subprocess.run(
                ["ip", "netns", "exec", self.netns, *cmd],
                check=check,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.CalledProcessError as e:
            raise AfPacketError(f"`{' '.join(cmd)}` in {self.netns} failed: {e.stderr.strip()}") from None

    def send(self, frames: list[bytes], gap: float = 0.0) -> None:
        """Send raw Ethernet ``frames`` from the inner end (they arrive on ``outer``), in order.

        ``gap`` is a pause in seconds after each frame (0: back to back). See :func:`send_frames_in`.
        """
        send_frames_in(self.netns, self.inner, frames, gap)

    def popen(self, *cmd: str, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start the command ``cmd`` inside the namespace without waiting; returns the process.

        ``kwargs`` go to :class:`subprocess.Popen` as they are (``stdout=``, ``stderr=``, ...). The
        caller must stop and wait for the process before the pair is deleted.
        """
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *cmd], **kwargs)  # type: ignore[call-overload, no-any-return]


_SENDER = r"""
import socket, struct, sys
iface, gap = sys.argv[1], float(sys.argv[2])
data = sys.stdin.buffer.read()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0))
off = 0
import time
while off < len(data):
    (n,) = struct.unpack_from("!I", data, off)
    s.send(data[off + 4 : off + 4 + n])
    off += 4 + n
    if gap:
        time.sleep(gap)
"""


def send_frames_in(netns: str, interface: str, frames: list[bytes], gap: float = 0.0) -> None:
    """Send raw ``frames``, in order, from ``interface`` inside network namespace ``netns``.

    A child Python in the namespace sends them over a plain packet socket, because Python 3.11 has no
    ``os.setns`` to enter the namespace from this process. ``gap`` is a pause in seconds after each
    frame (0: back to back). Raises :class:`subprocess.CalledProcessError` if the sender fails (e.g.
    no such interface) and :class:`subprocess.TimeoutExpired` after 120 seconds.
    """
    import struct
    import sys

    payload = b"".join(struct.pack("!I", len(f)) + f for f in frames)
    subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", _SENDER, interface, str(gap)],
        input=payload,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _read_mac(name: str) -> str:
    with open(f"/sys/class/net/{name}/address") as f:
        return f.read().strip()

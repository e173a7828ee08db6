"""Waiting for a ring: poll the socket and a wake-up pipe, and tell a link that is down from one that is gone.

The walker never blocks; whoever drives it decides how to wait. This is the blocking way (a thread
in ``poll``); an event loop can watch :meth:`PacketSocket.fileno` itself instead. ``POLLIN`` only
says that *some* slot is the user's, so the caller always re-checks its own slot after a wake-up.

Link faults, as the kernel reports them (``packet_notifier`` in ``net/packet/af_packet.c``): when the
bound interface goes down, or is unregistered (deleted, or moved to another network namespace), the
socket gets ``sk_err = ENETDOWN``, which ``poll`` shows as POLLERR and ``SO_ERROR`` reads (and clears).
A link set down keeps the socket bound, and the kernel re-attaches it when the link comes back up, so
the capture simply goes on (libpcap 1.10 does the same: it fails only when the device no longer
exists). An unregistered one unbinds it for good (``getsockname`` then says ifindex -1). And an
interface removed *while down* raises no second error (the socket is no longer attached), so while
the link is down the binding is checked again at every wake-up, at least every
:data:`NETDOWN_RECHECK_MS`.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import threading

from ..errors import AfPacketError, LinkDownError, os_error
from ..interfaces import lookup
from ..sock import PacketSocket

#: while the link is down, the longest poll between two checks that the interface still exists (ms)
NETDOWN_RECHECK_MS = 200


class Waiter:
    """poll() on a packet socket plus a pipe that :meth:`wake` writes to (stop/close from elsewhere).

    :meth:`wait` raises LinkDownError once the interface is gone (removed, or moved to another network
    namespace); a link that is merely down is waited out. :meth:`wake` and :meth:`close` may be called
    from any thread or a signal handler: a lock keeps ``wake`` from writing to a descriptor number that
    ``close`` has just given back (and that the process may already have reused).
    """

    def __init__(self, sock: PacketSocket, interface: str) -> None:
        self.interface = interface
        self._sock = sock
        #: ENETDOWN was reported and the interface still exists: the link is down, not gone
        self.netdown = False
        #: the interface went away; later waits only look for data still in the ring
        self.gone = False
        self._lock = threading.RLock()  # reentrant: wake() from a signal handler that interrupted close()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(sock.sock.fileno(), select.POLLIN | select.POLLERR)
        self._poller.register(self._wake_r, select.POLLIN)

    def wait(self, timeout_ms: int) -> bool:
        """True when the socket reports data; False on timeout or a wake-up. Raises LinkDownError when
        the interface went away (once; the caller then drains the ring), or for a socket hung up."""
        if self.netdown and not 0 <= timeout_ms <= NETDOWN_RECHECK_MS:
            timeout_ms = NETDOWN_RECHECK_MS
        try:
            events = self._poller.poll(timeout_ms)
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            return False
        ready = False
        for fd, ev in events:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, 64)
                except BlockingIOError:
                    pass
                continue
            if ev & select.POLLERR:
                err = self._sock.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    self.netdown = True  # checked below: down, or gone?
                elif err:
                    raise os_error("polling the capture socket", OSError(err, os.strerror(err)), self.interface)
            if ev & (select.POLLHUP | select.POLLNVAL):
                raise LinkDownError(f"capture on {self.interface!r}: the socket was hung up")
            if ev & select.POLLIN:
                ready = True
        if self.netdown and not self.gone:
            self._check_link()
        return ready

    def _check_link(self) -> None:
        """After ENETDOWN: gone (the kernel unbound the socket) raises; up again ends the down state."""
        ifindex = self._sock.ifindex
        if not ifindex:
            self.netdown = False  # "any": no single interface to lose
            return
        if self._sock.bound_ifindex() != ifindex:
            self.gone = True
            self.netdown = False
            raise LinkDownError(
                f"capture on {self.interface!r} ended: the interface went away (it was removed, or moved to "
                "another network namespace)"
            )
        try:
            up = lookup(socket.if_indextoname(ifindex)).up
        except (OSError, AfPacketError):
            up = False  # between two notifications; the next wake-up looks again
        if up:
            self.netdown = False

    def wake(self) -> None:
        """Make a wait in progress (or the next one) return at once; safe from any thread or signal handler."""
        with self._lock:
            if self._wake_w >= 0:
                try:
                    os.write(self._wake_w, b"x")
                except OSError:  # the pipe is full: a wake-up is pending anyway
                    pass

    def close(self) -> None:
        """Close the wake-up pipe (idempotent). The socket is the caller's."""
        with self._lock:
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def after_fork_in_child(self) -> None:
        """In a forked child: close the child's copies of the pipe without taking the lock (a thread of
        the parent may have held it at fork() time; that thread does not exist here)."""
        self._lock = threading.RLock()
        self.close()

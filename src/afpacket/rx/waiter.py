"""Waiting for a ring: poll the socket and a wake-up pipe, and turn poll's error bits into errors.

The walker never blocks; whoever drives it decides how to wait. This is the blocking way (a thread
in ``poll``); an event loop can watch :meth:`PacketSocket.fileno` itself instead. ``POLLIN`` only
says that *some* slot is the user's, so the caller always re-checks its own slot after a wake-up.
"""

from __future__ import annotations

import errno
import os
import select
import socket

from ..errors import LinkDownError, os_error
from ..sock import PacketSocket


class Waiter:
    """poll() on a packet socket plus a pipe that :meth:`wake` writes to (stop/close from elsewhere)."""

    def __init__(self, sock: PacketSocket, interface: str) -> None:
        self.interface = interface
        self._sock = sock
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(sock.sock.fileno(), select.POLLIN | select.POLLERR)
        self._poller.register(self._wake_r, select.POLLIN)

    def wait(self, timeout_ms: int) -> bool:
        """True when the socket reports data; False on timeout or a wake-up. Raises on link errors."""
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
                    raise LinkDownError(f"capture on {self.interface!r}: the interface went down or was removed")
                if err:
                    raise os_error("polling the capture socket", OSError(err, os.strerror(err)), self.interface)
            if ev & (select.POLLHUP | select.POLLNVAL):
                raise LinkDownError(f"capture on {self.interface!r}: the socket was hung up")
            if ev & select.POLLIN:
                ready = True
        return ready

    def wake(self) -> None:
        """Make a wait in progress (or the next one) return at once; safe from any thread or signal handler."""
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1

"""Hand an opened capture to an unprivileged process: the socket, with its ring, over a Unix socket.

Opening an AF_PACKET socket needs CAP_NET_RAW; using one does not. So a small privileged process opens
the capture (socket options, ring, filter, bind) and passes the socket's file descriptor over a Unix
domain socket (``SCM_RIGHTS``), with a description of the ring (JSON, in the same message); the
receiving process maps the ring itself and reads it with no privilege at all, so the code that parses
packets from the network never runs as root. The same split as tcpdump's ``-Z``, but across processes,
so the analysis process can be started by anyone the server lets connect.

Server (root, or CAP_NET_RAW)::

    afpacket.serve_socket("/run/afpacket/eth0.sock", "eth0", allow_user="analyst", filter="tcp port 443")

Client (as ``analyst``)::

    with afpacket.receive_capture("/run/afpacket/eth0.sock") as cap:
        for pkt in cap.packets(count=100):
            ...

The kernel's counters (``stats()``) are per socket and cleared when read: the server never reads them,
so the receiver's statistics cover everything since the socket was opened.
"""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import struct
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from . import _check
from .errors import HandoffError
from .geometry import RingGeometry

if TYPE_CHECKING:
    from .rx.capture import Capture

#: names the message format; a receiver refuses any other
PROTOCOL = "afpacket-handoff/1"
#: the description is small; anything larger is not ours
MAX_MESSAGE = 16 << 10
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class SocketDescription:
    """What a receiver needs besides the descriptor to use a capture socket: the ring's geometry (the
    kernel cannot be asked for it) and the capture's options that shape how frames are read."""

    interface: str
    ifindex: int
    hatype: int
    sock_type: str
    protocol: int
    version: int
    snaplen: int
    rx: RingGeometry
    tx: RingGeometry | None
    copy_thresh: bool
    reinsert: bool

    def to_bytes(self) -> bytes:
        d = asdict(self)
        d["protocol_name"] = PROTOCOL
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SocketDescription:
        """Parse and check a description; HandoffError names what is wrong."""
        try:
            d = json.loads(data.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HandoffError(f"the hand-off message is not a capture description ({e})") from None
        if not isinstance(d, dict) or d.get("protocol_name") != PROTOCOL:
            raise HandoffError(
                f"the peer does not speak {PROTOCOL} (is it an afpacket.serve_socket() of the same version?)"
            )
        try:
            rx = RingGeometry(**d["rx"])
            tx = RingGeometry(**d["tx"]) if d["tx"] is not None else None
            rx.validate()
            if tx is not None:
                tx.validate()
            desc = cls(
                interface=str(d["interface"]), ifindex=int(d["ifindex"]), hatype=int(d["hatype"]),
                sock_type=str(d["sock_type"]), protocol=int(d["protocol"]), version=int(d["version"]),
                snaplen=int(d["snaplen"]), rx=rx, tx=tx, copy_thresh=bool(d["copy_thresh"]),
                reinsert=bool(d["reinsert"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise HandoffError(f"the capture description is incomplete or wrong: {e}") from None
        if desc.sock_type not in ("raw", "dgram") or desc.version != rx.version or rx.tx:
            raise HandoffError("the capture description is inconsistent (socket type or ring version)")
        return desc


def describe(cap: Capture) -> SocketDescription:
    """The description of an open capture's socket and ring."""
    ps = cap.socket
    return SocketDescription(
        interface=cap.interface, ifindex=ps.ifindex, hatype=cap.hatype, sock_type=cap.sock_type,
        protocol=ps.protocol, version=cap.version, snaplen=cap.snaplen, rx=cap.geometry, tx=ps.tx,
        copy_thresh=cap.copy_thresh, reinsert=bool(cap.geometry.reserve),
    )


def send_capture(conn: socket.socket, cap: Capture) -> None:
    """Send ``cap``'s socket (a duplicate of its descriptor) and description over the connected Unix
    socket ``conn``. The caller then closes its own Capture; the ring lives on in the receiver."""
    socket.send_fds(conn, [describe(cap).to_bytes()], [cap.fileno()])


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    pid, uid, gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid, uid, gid


def _uid_of(user: int | str) -> int:
    if isinstance(user, int) and not isinstance(user, bool):
        return user
    if isinstance(user, str):
        from .privileges import lookup_user

        return lookup_user(user).pw_uid
    raise TypeError(f"serve_socket(): allow_user must be a user name or uid, not {type(user).__name__}")


def _listen(path: str, owner_uid: int | None) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from creation, owned by ``owner_uid`` if given.
    Refuses to replace anything but a stale socket of our own."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
            raise HandoffError(
                f"{path} exists and is not a socket left by this user; remove it or choose another path"
            )
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)
    try:
        server.bind(path)
    except OSError as e:
        server.close()
        raise HandoffError(f"cannot listen on {path}: {e.strerror}; check that its directory exists") from None
    finally:
        os.umask(old)
    if owner_uid is not None and owner_uid != os.geteuid():
        os.chown(path, owner_uid, -1)
    server.listen(8)
    return server


def serve_socket(
    path: str,
    interface: str,
    *,
    allow_user: int | str | None = None,
    count: int | None = 1,
    timeout: float | None = None,
    **capture_options: Any,
) -> int:
    """Listen on the Unix socket ``path`` and hand each client that connects a freshly opened capture
    on ``interface`` (``capture_options`` as for :class:`~afpacket.Capture`: ``filter``, ``version``,
    ``buffer_size``, ...). Returns how many captures were handed over.

    - ``allow_user``: the user (name or uid) allowed to connect; the socket file is created 0600 and
      owned by that user, and a connecting process of any other uid (checked with SO_PEERCRED) is
      refused and counted out. None: only the server's own user (and root).
    - ``count``: return after this many hand-offs (None: serve until interrupted).
    - ``timeout``: give up (HandoffError) after this many seconds without a client.

    Each capture's options are checked, and the capture opened, before the first client is accepted
    (so a bad filter fails here, not in the client). Raises HandoffError, or what Capture raises.
    """
    from .rx.capture import Capture

    count = _check.count("serve_socket()", "count", count)
    timeout = _check.seconds("serve_socket()", "timeout", timeout)
    allowed = {os.geteuid(), 0}
    owner_uid = None
    if allow_user is not None:
        owner_uid = _uid_of(allow_user)
        allowed.add(owner_uid)
    Capture(interface, **capture_options).close()  # fail early on bad options, before anyone connects
    server = _listen(path, owner_uid)
    served = 0
    try:
        while count is None or served < count:
            ready, _, _ = select.select([server], [], [], timeout)
            if not ready:
                raise HandoffError(f"serve_socket(): no client connected to {path} within {timeout} s")
            conn, _ = server.accept()
            with conn:
                _pid, uid, _gid = peer_credentials(conn)
                if uid not in allowed:
                    conn.sendall(b"")  # nothing: the client sees the connection closed
                    continue
                with Capture(interface, **capture_options) as cap:
                    send_capture(conn, cap)
                served += 1
    finally:
        server.close()
        try:
            os.unlink(path)
        except OSError:
            pass
    return served


def receive_description(conn: socket.socket) -> tuple[int, SocketDescription]:
    """Receive one descriptor and its description from ``conn``; the caller owns the descriptor."""
    msg, fds, _flags, _addr = socket.recv_fds(conn, MAX_MESSAGE, 4)
    if not fds:
        raise HandoffError(
            "the server sent no socket: it refused this user (serve_socket(allow_user=...)) or failed"
        )
    fd, extra = fds[0], fds[1:]
    for other in extra:
        os.close(other)
    try:
        desc = SocketDescription.from_bytes(msg)
        dup = os.dup(fd)
        try:
            sock = socket.socket(fileno=dup)
        except OSError:  # not a socket at all (ENOTSOCK)
            os.close(dup)
            family, kind = -1, -1
        else:
            family, kind = sock.family, sock.type
            sock.close()
        want = socket.SOCK_RAW if desc.sock_type == "raw" else socket.SOCK_DGRAM
        if family != socket.AF_PACKET or kind != want:
            raise HandoffError("the descriptor received is not the packet socket described")
    except BaseException:
        os.close(fd)
        raise
    return fd, desc


def receive_capture(path: str, *, timeout: float | None = 10.0) -> Capture:
    """Connect to a :func:`serve_socket` at ``path`` and return the capture it hands over (no privilege
    needed). ``timeout``: seconds to wait for the server (HandoffError after). The capture reads as any
    other: :meth:`~afpacket.Capture.packets`, ``stats()``, ``close()``."""
    from .rx.capture import Capture

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"receive_capture(): path must be a str, not {type(path).__name__}")
    timeout = _check.seconds("receive_capture()", "timeout", timeout)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    conn.settimeout(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                conn.connect(os.fspath(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if deadline is not None and time.monotonic() >= deadline:
                    raise HandoffError(f"no afpacket server listens on {path}") from None
                time.sleep(0.05)
            except PermissionError:
                raise HandoffError(
                    f"not allowed to connect to {path}: the server lets another user in "
                    "(serve_socket(allow_user=...))"
                ) from None
        try:
            fd, desc = receive_description(conn)
        except TimeoutError:
            raise HandoffError(f"the server at {path} sent nothing within {timeout} s") from None
    finally:
        conn.close()
    return Capture.from_fd(fd, desc)

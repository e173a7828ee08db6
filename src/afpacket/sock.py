"""The AF_PACKET socket: setup in the order the kernel needs, teardown in reverse, in one place each.

Order (see docs/architecture.md): socket with protocol 0 (receives nothing yet) -> PACKET_VERSION ->
options that must precede a ring (PACKET_RESERVE, PACKET_LOSS, PACKET_TX_HAS_OFF) -> filter ->
PACKET_RX_RING / PACKET_TX_RING -> one mmap (RX first) -> bind(ifindex, protocol) -> membership,
fanout. Binding last means no packet lands before the socket is fully set up.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
import threading
import warnings
import weakref
from dataclasses import dataclass

from . import abi
from .errors import (
    AfPacketError,
    CaptureClosedError,
    RingAllocationError,
    SocketOptionError,
    os_error,
)
from .geometry import RingGeometry, check_ring_memory
from .interfaces import ANY, Interface, lookup
from .ring.layout import layout

_libc = ctypes.CDLL(None, use_errno=True)
_libc.bind.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
_libc.bind.restype = ctypes.c_int
_libc.setsockopt.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
_libc.setsockopt.restype = ctypes.c_int


def _setsockopt_nogil(fd: int, level: int, option: int, value: bytes) -> None:
    """setsockopt() without holding the GIL (ctypes releases it around the call): creating or freeing a
    ring waits for an RCU grace period in the kernel (synchronize_net, tens of ms), and Python's own
    socket.setsockopt would stall every other thread of the program meanwhile."""
    if _libc.setsockopt(fd, level, option, value, len(value)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))

SOCK_TYPES = {"raw": socket.SOCK_RAW, "dgram": socket.SOCK_DGRAM}

# Every open socket, so a forked child can disown the parent's rings (see _after_fork_in_child).
_live: weakref.WeakSet[PacketSocket] = weakref.WeakSet()


@dataclass(frozen=True)
class SocketStats:
    """Cumulative PACKET_STATISTICS since the socket was opened (:meth:`Capture.stats`).

    Fields: ``received`` (packets the kernel handed to the socket, after the filter, including those
    it dropped: tcpdump's "received by filter"), ``drops`` (packets dropped because the ring or socket
    buffer was full: "dropped by kernel"), ``freeze_count`` (V3 only: how often the ring froze because
    user space had not released a block). :attr:`packets` is what reached the ring.
    """

    #: packets the kernel handed to the socket (after the filter), including those it dropped
    received: int
    #: packets dropped because the ring (or socket buffer) was full
    drops: int
    #: V3 only: how often the ring froze because user space had not released a block
    freeze_count: int

    @property
    def packets(self) -> int:
        """Packets delivered into the ring: received minus drops."""
        return self.received - self.drops


class PacketSocket:
    """An AF_PACKET socket with up to one RX and one TX ring sharing one mapping (advanced: what
    :class:`~afpacket.Capture` and :class:`~afpacket.Transmitter` are built on).

    ``interface`` is an interface name or ``"any"``, ``sock_type`` ``"raw"`` (frames from the link
    header) or ``"dgram"`` (from the network header), ``protocol`` the EtherType :meth:`bind` receives
    (default ETH_P_ALL). The socket is opened with protocol 0 and receives nothing until
    :meth:`bind`; the setup methods are meant to be called in the kernel's order (see the module
    docstring). Raises AfPacketError for a bad ``sock_type`` or ``protocol``, InterfaceNotFoundError,
    PermissionDeniedError (needs CAP_NET_RAW).
    """

    def __init__(self, interface: str, *, sock_type: str = "raw", protocol: int = abi.ETH_P_ALL) -> None:
        if sock_type not in SOCK_TYPES:
            raise AfPacketError(f"socket type must be 'raw' or 'dgram', got {sock_type!r}")
        if isinstance(protocol, bool) or not isinstance(protocol, int):
            raise TypeError(f"protocol must be an integer EtherType 0..0xffff, not {type(protocol).__name__}")
        if not 0 <= protocol <= 0xFFFF:
            raise AfPacketError(f"protocol must be an EtherType 0..0xffff, got {protocol:#x}")
        self.interface_name = interface
        self.iface: Interface | None = None if interface == ANY else lookup(interface)
        self.ifindex = self.iface.index if self.iface else 0
        self.sock_type = sock_type
        self.protocol = protocol
        self.version = 0
        self.rx: RingGeometry | None = None
        self.tx: RingGeometry | None = None
        self.map: mmap.mmap | None = None
        #: where ``map`` is mapped (for the forked child's safety net, see _orphan_mapping)
        self.map_addr = 0
        self.closed = False
        self.forked = False
        self._stats = [0, 0, 0]
        # PACKET_STATISTICS is clear-on-read: one reader at a time, or two threads (a capture loop and a
        # metrics scrape) could each read half and add the other's half twice or not at all
        self._stats_lock = threading.Lock()
        self._memberships: list[bytes] = []
        try:
            # Protocol 0: the socket receives nothing until bind() at the end of setup.
            self.sock = socket.socket(socket.AF_PACKET, SOCK_TYPES[sock_type], 0)
        except OSError as e:
            raise os_error("opening an AF_PACKET socket", e, interface) from None
        _live.add(self)

    @classmethod
    def adopt(
        cls, fd: int, interface: str, *, ifindex: int, sock_type: str, protocol: int, version: int,
        rx: RingGeometry | None, tx: RingGeometry | None,
    ) -> PacketSocket:
        """A PacketSocket over ``fd``: an AF_PACKET socket that another process set up (``version``,
        rings, bind) and handed over (afpacket.handoff). Takes ownership of ``fd``. ``interface``,
        ``ifindex``, ``sock_type`` and ``protocol`` are what the socket was opened and bound with (as the
        sender describes it). Nothing is set up again; the rings ``rx``/``tx`` describe are mapped by
        :meth:`map_rings`, which needs no privilege."""
        if sock_type not in SOCK_TYPES:
            raise AfPacketError(f"socket type must be 'raw' or 'dgram', got {sock_type!r}")
        self = cls.__new__(cls)
        self.interface_name = interface
        self.iface = None
        if interface != ANY:
            try:
                self.iface = lookup(interface)
            except AfPacketError:
                pass  # not visible here: the socket stays bound to it all the same
        self.ifindex = ifindex
        self.sock_type = sock_type
        self.protocol = protocol
        self.version = version
        self.rx, self.tx = rx, tx
        self.map = None
        self.map_addr = 0
        self.closed = False
        self.forked = False
        self._stats = [0, 0, 0]
        # PACKET_STATISTICS is clear-on-read: one reader at a time, or two threads (a capture loop and a
        # metrics scrape) could each read half and add the other's half twice or not at all
        self._stats_lock = threading.Lock()
        self._memberships = []
        self.sock = socket.socket(fileno=fd)
        _live.add(self)
        return self

    # -- small helpers --------------------------------------------------------------------------
    def fileno(self) -> int:
        """The socket's fd (CaptureClosedError once closed)."""
        self.check_open()
        return self.sock.fileno()

    def check_open(self) -> None:
        """Raise CaptureClosedError if the socket is closed, or belongs to the parent after fork()."""
        if self.closed:
            raise CaptureClosedError("the socket is closed; open a new Capture/Transmitter")
        if self.forked:
            raise CaptureClosedError(
                "this ring belongs to the parent process (fork() does not share it); "
                "open a new socket in the child, or join a fanout group"
            )

    def setopt(self, name: str, option: int, value: int | bytes, hint: str = "") -> None:
        """setsockopt(SOL_PACKET, ``option``, ``value``); ``name`` (e.g. "PACKET_LOSS") and ``hint`` (what
        to do) go into the SocketOptionError raised on failure (or PermissionDeniedError,
        InterfaceNotFoundError, LinkDownError for those causes)."""
        try:
            self.sock.setsockopt(abi.SOL_PACKET, option, value)
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EACCES, errno.ENODEV, errno.ENETDOWN):
                raise os_error(f"setting {name}", e, self.interface_name) from None
            raise SocketOptionError(name, e, hint) from None

    def getopt_int(self, option: int) -> int:
        """getsockopt(SOL_PACKET, ``option``) as an int."""
        return int(self.sock.getsockopt(abi.SOL_PACKET, option))

    # -- setup steps, in order ------------------------------------------------------------------
    def set_version(self, version: int) -> None:
        """PACKET_VERSION: the TPACKET ``version`` (1, 2 or 3) of the rings to come; first of all steps."""
        self.setopt("PACKET_VERSION", abi.PACKET_VERSION, layout(version).kernel_enum)
        self.version = version

    def set_ring(
        self, geometry: RingGeometry, *, retry_smaller: bool = True, allow_large: bool = False
    ) -> RingGeometry:
        """Create the RX or TX ring ``geometry`` describes (PACKET_RX_RING / PACKET_TX_RING); returns the
        geometry the kernel accepted. The socket's rings together may take at most half of MemAvailable
        (RingAllocationError naming a size that works) unless ``allow_large``. On ENOMEM, with
        ``retry_smaller``, retry with 3/4 of the blocks, down to 2 blocks, then RingAllocationError.
        SocketOptionError for other refusals."""
        geometry.validate()
        if geometry.version != self.version:
            raise AfPacketError("ring version differs from the socket's PACKET_VERSION")
        option = abi.PACKET_TX_RING if geometry.tx else abi.PACKET_RX_RING
        name = "PACKET_TX_RING" if geometry.tx else "PACKET_RX_RING"
        other = self.rx if geometry.tx else self.tx
        check_ring_memory(geometry.size + (other.size if other else 0), name, allow_large=allow_large)
        wanted = geometry
        while True:
            try:
                _setsockopt_nogil(self.sock.fileno(), abi.SOL_PACKET, option, geometry.request())
                break
            except OSError as e:
                if e.errno == errno.ENOMEM:
                    smaller = geometry.shrunk() if retry_smaller else None
                    if smaller is None:
                        raise RingAllocationError(
                            f"{name}: the kernel could not allocate a ring of {wanted.size} bytes "
                            f"({wanted.block_nr} blocks of {wanted.block_size}), nor a smaller one; "
                            "free memory or ask for a smaller buffer"
                        ) from None
                    geometry = smaller
                    continue
                if e.errno == errno.EINVAL:
                    raise SocketOptionError(
                        name, e, f"the kernel rejected geometry {geometry}; this is a bug in afpacket's checks"
                    ) from None
                if e.errno == errno.EBUSY:
                    raise SocketOptionError(name, e, "the socket already has this ring") from None
                raise os_error(f"setting {name}", e, self.interface_name) from None
        if geometry.tx:
            self.tx = geometry
        else:
            self.rx = geometry
        return geometry

    def map_rings(self) -> mmap.mmap:
        """Map RX then TX with one mmap, as the kernel lays them out."""
        size = (self.rx.size if self.rx else 0) + (self.tx.size if self.tx else 0)
        try:
            m = mmap.mmap(self.sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as e:
            raise os_error(f"mapping the {size}-byte ring", e, self.interface_name) from None
        # A forked child must not walk the parent's ring: the mapping is not inherited at all.
        if hasattr(mmap, "MADV_DONTFORK"):
            m.madvise(mmap.MADV_DONTFORK)
        self.map = m
        self.map_addr = _address_of(m)
        return m

    def bind(self, protocol: int | None = None) -> None:
        """Bind to the interface (ifindex 0 = all) and start receiving ``protocol``."""
        proto = self.protocol if protocol is None else protocol
        addr = abi.SOCKADDR_LL.pack(socket.AF_PACKET, socket.htons(proto), self.ifindex, 0, 0, 0, b"")
        if _libc.bind(self.sock.fileno(), addr, len(addr)) != 0:
            err = ctypes.get_errno()
            raise os_error("binding the packet socket", OSError(err, os.strerror(err)), self.interface_name)

    def bound_ifindex(self) -> int:
        """The interface index the kernel has this socket bound to (getsockname's ``sll_ifindex``): the
        index given to :meth:`bind`, 0 for all interfaces, and -1 once that interface was removed or moved
        to another network namespace (the kernel unbinds the socket then; a link set down keeps it)."""
        buf = ctypes.create_string_buffer(abi.SOCKADDR_LL.size)
        size = ctypes.c_uint32(len(buf))
        if _libc.getsockname(self.sock.fileno(), buf, ctypes.byref(size)) != 0:
            err = ctypes.get_errno()
            raise os_error("asking the packet socket where it is bound", OSError(err, os.strerror(err)),
                           self.interface_name)
        return int(abi.SOCKADDR_LL.unpack_from(buf.raw)[2])

    def set_promisc(self, on: bool = True) -> None:
        """Promiscuous mode ``on`` (PACKET_ADD_MEMBERSHIP(PACKET_MR_PROMISC)) or off (DROP): counted per
        socket by the kernel and undone when the socket closes. Needs a named interface."""
        if not self.ifindex:
            raise AfPacketError("promiscuous mode needs a named interface, not 'any' (as in tcpdump)")
        mreq = abi.PACKET_MREQ.pack(self.ifindex, abi.PACKET_MR_PROMISC, 0, b"")
        opt = abi.PACKET_ADD_MEMBERSHIP if on else abi.PACKET_DROP_MEMBERSHIP
        self.setopt("PACKET_ADD_MEMBERSHIP(PROMISC)", opt, mreq)

    # -- statistics -----------------------------------------------------------------------------
    def stats(self) -> SocketStats:
        """Read PACKET_STATISTICS (clear-on-read in the kernel) and return running totals."""
        with self._stats_lock:
            return self._read_stats()

    def _read_stats(self) -> SocketStats:
        self.check_open()
        try:
            if self.version == 3:
                raw = self.sock.getsockopt(abi.SOL_PACKET, abi.PACKET_STATISTICS, abi.TPACKET_STATS_V3.size)
                packets, drops, freeze = abi.TPACKET_STATS_V3.unpack(raw)
            else:
                raw = self.sock.getsockopt(abi.SOL_PACKET, abi.PACKET_STATISTICS, abi.TPACKET_STATS.size)
                packets, drops = abi.TPACKET_STATS.unpack(raw)
                freeze = 0
        except OSError as e:
            self.check_open()  # closed from another thread meanwhile: say so, not EBADF
            raise os_error("reading PACKET_STATISTICS", e, self.interface_name) from None
        s = self._stats
        s[0] += packets
        s[1] += drops
        s[2] += freeze
        return SocketStats(s[0], s[1], s[2])

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        """Unmap, then close. Safe to call twice. Views into the ring must be released first."""
        if self.closed:
            return
        self.closed = True
        _live.discard(self)
        m, self.map = self.map, None
        if m is not None and not self.forked:
            try:
                m.close()
            except BufferError:
                # Someone still holds a buffer made from a packet view (memoryview(pkt.data), a
                # cast, a numpy array): the mapping stays until that is gone. Closing the socket
                # below still frees the ring in the kernel; those buffers just no longer change.
                warnings.warn(
                    "a buffer derived from a packet's data view is still alive; the ring stays mapped "
                    "until it is released (copy with bytes(pkt) to keep data)",
                    ResourceWarning,
                    stacklevel=3,
                )
        self.sock.close()

    def _disown(self) -> None:
        """In a forked child: this socket and ring are the parent's. Every call raises from now on; the
        child's descriptors of the socket are closed or blinded (the child can neither read nor kick the
        parent's rings, nor keep them alive after the parent closes them); the mapping, which
        MADV_DONTFORK kept out of the child, is made safe (see :func:`_orphan_mapping`)."""
        self.forked = True
        m, self.map = self.map, None
        if m is not None:
            _orphan_mapping(m, self.map_addr)
        if self.closed:
            return
        try:
            _blind_copies(self.sock.fileno())
        except OSError:
            pass
        self.sock.close()


#: mmap objects of the parent's rings, in a forked child: never deallocated there (see _orphan_mapping)
_orphans: list[mmap.mmap] = []
_MAP_FIXED_NOREPLACE = 0x100000  # Linux 4.17; older kernels take the address as a hint only
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.getsockname.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32))


def _address_of(m: mmap.mmap) -> int:
    """Where ``m`` is mapped (the temporary ctypes export is released before returning)."""
    anchor = ctypes.c_char.from_buffer(m)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


def _orphan_mapping(m: mmap.mmap, addr: int) -> None:
    """In a forked child, make a parent ring's mmap object harmless.

    The range it names is empty in the child (MADV_DONTFORK), so any buffer that escaped revocation (a
    ``memoryview`` derived from a packet view, a numpy array) would fault there, and the object's own
    deallocation would ``munmap`` that range, which by then may hold the child's own memory. So: cover
    the range with private zero pages (MAP_FIXED_NOREPLACE never replaces anything the child mapped
    since), and keep the object alive for the life of the process (it never unmaps).
    """
    size = len(m)
    if addr and size:
        got = _libc.mmap(addr, size, mmap.PROT_READ | mmap.PROT_WRITE,
                         mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED_NOREPLACE, -1, 0)
        if got not in (None, addr, ctypes.c_void_p(-1).value):
            _libc.munmap(got, size)  # an old kernel placed it elsewhere: not ours to keep
    _orphans.append(m)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(m))  # survives interpreter shutdown too: never munmapped


def _blind_copies(fd: int) -> None:
    """In a forked child, point every other descriptor of the socket ``fd`` (such as the duplicate an
    mmap object keeps) at /dev/null: the child must not keep the parent's socket, and with it its ring,
    alive in the kernel after the parent closes it. dup2 rather than close: the number stays taken, so
    whoever owns it later closes /dev/null, never a descriptor opened since."""
    me = os.fstat(fd)
    null = -1
    try:
        for name in os.listdir("/proc/self/fd"):
            other = int(name)
            if other == fd:
                continue
            try:
                st = os.fstat(other)
            except OSError:
                continue  # the listing's own descriptor, or one closed meanwhile
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                if null < 0:
                    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                os.dup2(null, other, inheritable=False)
    finally:
        if null >= 0:
            os.close(null)


def _after_fork_in_child() -> None:
    for ps in list(_live):
        ps._stats_lock = threading.Lock()  # another thread may have held it at the fork
        try:
            ps._disown()
        except Exception:  # a hook must not fail the fork; the socket is marked forked first
            ps.forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)

"""Ring geometry: what a user knows (buffer size, snaplen, version) turned into a layout the kernel accepts.

Pure functions and one immutable value; no sockets. ``RingGeometry.validate()`` applies the rules of the
kernel's ``packet_set_ring()`` in Python, so a bad layout is refused with the rule it breaks and a value
that would work, instead of a bare ``EINVAL`` from ``setsockopt``.
"""

from __future__ import annotations

import mmap
import numbers
from dataclasses import dataclass, replace

from . import abi
from .errors import RingAllocationError, RingGeometryError
from .ring.layout import layout

PAGE_SIZE = mmap.PAGESIZE

#: The largest V3 block the defaults will choose. Blocks are allocated with get_order(block_size);
#: high orders can fail on a fragmented machine and fall back to vmalloc.
MAX_AUTO_BLOCK = 1 << 20
#: V3 rings the defaults derive are split into about this many blocks (at least 64 KiB each).
V3_AUTO_BLOCKS = 128
MIN_AUTO_BLOCK_V3 = 64 << 10
#: V1/V2 blocks hold many frames so that little of each block is wasted.
MIN_AUTO_BLOCK_V12 = 64 << 10
#: ``tp_retire_blk_tov`` is an unsigned short in older kernels: only 1..65535 ms survive.
MAX_BLOCK_TIMEOUT_MS = 65535
DEFAULT_BUFFER_SIZE = 4 << 20
DEFAULT_SNAPLEN = 262144
DEFAULT_BLOCK_TIMEOUT_MS = 8
#: Ethernet header + one VLAN tag + FCS slack: the link-layer overhead a frame of MTU bytes carries.
LINK_OVERHEAD = 18
#: BLK_PLUS_PRIV(0): the V3 block descriptor, 8-byte aligned.
V3_BLOCK_HDR = (abi.BLOCK_DESC_SIZE + 7) & ~7


#: A ring may take at most this share of the memory the kernel reports available (MemAvailable) unless
#: forced: ring pages are unswappable kernel memory, so a ring near the size of free memory makes the
#: kernel reclaim everything else and then OOM-kill someone (often the capture itself).
MEMORY_SHARE = 0.5
#: V1/V2: a ring must hold at least this many frames of the size snaplen asks for (else ``-s`` decides
#: the ring's size and ``-B`` means nothing)
MIN_FRAMES = 2
MEMINFO = "/proc/meminfo"


def available_memory() -> int | None:
    """Bytes of memory the kernel says are available for new allocations (``MemAvailable`` in
    /proc/meminfo), or None where it cannot be read."""
    try:
        with open(MEMINFO, "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def ring_memory_limit() -> int | None:
    """The most ring memory afpacket asks for without being forced: ``MEMORY_SHARE`` of MemAvailable
    (None where /proc/meminfo is unreadable: no limit)."""
    avail = available_memory()
    return None if avail is None else int(avail * MEMORY_SHARE)


def check_ring_memory(total: int, what: str, *, allow_large: bool = False) -> None:
    """Refuse (RingAllocationError) rings that together take ``total`` bytes, more than
    :func:`ring_memory_limit`, unless ``allow_large``; the message starts with ``what`` (the ring being
    made, e.g. "PACKET_RX_RING") and names the size that would work.
    Checked before the allocation, so a too-large request never wakes the OOM killer."""
    if allow_large:
        return
    limit = ring_memory_limit()
    if limit is None or total <= limit:
        return
    mib = 1 << 20
    raise RingAllocationError(
        f"{what}: {total // mib} MiB of ring memory is more than half of the memory available now "
        f"({(limit * 2) // mib} MiB MemAvailable), and ring memory cannot be swapped; ask for at most "
        f"{limit // mib} MiB (capture -B {limit // 1024}, buffer_size={limit}; transmit: fewer or smaller "
        "frames), or force it (allow_large_ring=True, CLI --allow-large-ring) if you know the memory is there"
    )


#: what the kernel's tpacket_req fields (unsigned int) and our sanity allow
MAX_FIELD = (1 << 32) - 1
MAX_SNAPLEN_FIELD = (1 << 31) - 1


def _integer(where: str, name: str, value: object, maximum: int) -> int:
    """``value`` as an int no larger than ``maximum``: TypeError for a non-integer (a float, None),
    RingGeometryError above the limit; the sign is left to the caller's own (older, specific) checks."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an integer, not {type(value).__name__}")
    n = int(value)
    if n > maximum:
        raise RingGeometryError(f"{where}: {name} must be at most {maximum}, got {n}")
    return n


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _pow2_floor(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1)


def frame_size_for(version: int, data_len: int, reserve: int = 0) -> int:
    """The smallest frame (V1/V2 RX, TPACKET ``version``) holding ``data_len`` bytes of link-layer data
    with ``reserve`` bytes of PACKET_RESERVE before it.

    The kernel puts the network header at ``TPACKET_ALIGN(hdrlen + max(maclen, 16)) + reserve``
    and the link header just before it, so this much room before the data is always enough.
    """
    netoff = abi.tpacket_align(layout(version).hdrlen + 16) + reserve
    return abi.tpacket_align(netoff + data_len)


@dataclass(frozen=True)
class RingGeometry:
    """One ring's layout, as passed to PACKET_RX_RING / PACKET_TX_RING; immutable.

    Usually derived from what you know with :meth:`for_capture` or :meth:`for_transmit`, which pick
    sizes the kernel accepts; :meth:`validate` checks one built by hand against the kernel's rules
    (``packet_set_ring()``) and raises RingGeometryError naming the broken rule and a value that works.

    Fields: ``version`` (TPACKET 1, 2 or 3), ``block_size`` (bytes per block: a power-of-two multiple
    of the page size), ``block_nr`` (number of blocks), ``frame_size`` (bytes per frame slot, a
    multiple of 16), ``frame_nr`` (frames in all = frames per block x ``block_nr``),
    ``block_timeout_ms`` (V3 RX only: block retire timeout in ms; 0 lets the kernel choose),
    ``feature_req_word`` (V3 RX only: tp_feature_req_word, TP_FT_REQ_FILL_RXHASH), ``reserve``
    (PACKET_RESERVE bytes set before the ring, room to reinsert a VLAN tag), ``tx`` (a TX ring).

    Example::

        geom = RingGeometry.for_capture(3, buffer_size=64 << 20)
        cap = Capture("eth0", geometry=geom)
        print(geom.block_size, geom.block_nr, geom.size)
    """

    version: int
    block_size: int
    block_nr: int
    frame_size: int
    frame_nr: int
    #: V3 RX only: block retire timeout in ms (0 lets the kernel choose, 8 ms below 1 Gb/s)
    block_timeout_ms: int = 0
    #: V3 RX only: tp_feature_req_word (TP_FT_REQ_FILL_RXHASH)
    feature_req_word: int = 0
    #: PACKET_RESERVE bytes the socket sets before the ring (room to reinsert a VLAN tag)
    reserve: int = 0
    tx: bool = False

    @property
    def size(self) -> int:
        """Bytes of memory the ring maps."""
        return self.block_size * self.block_nr

    @property
    def frames_per_block(self) -> int:
        """Frame slots in one block (the rest of a block is unused)."""
        return self.block_size // self.frame_size

    # -- constructors from user intent ----------------------------------------------------------
    @classmethod
    def for_capture(
        cls,
        version: int = 3,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        snaplen: int = DEFAULT_SNAPLEN,
        *,
        mtu: int | None = None,
        block_timeout_ms: int = DEFAULT_BLOCK_TIMEOUT_MS,
        rxhash: bool = False,
        reserve: int = 0,
        block_size: int | None = None,
    ) -> RingGeometry:
        """An RX ring of TPACKET ``version`` and about ``buffer_size`` bytes for packets of up to
        ``snaplen`` bytes.

        V1/V2 frames bound what is captured, so their frame size is derived from
        ``min(snaplen, mtu + 18)`` when the MTU is known (as libpcap does); larger packets (GRO/GSO
        aggregates) arrive truncated with ``caplen < wire_len``. V3 packets are bounded by the block
        only, so snaplen is applied when reading. ``block_timeout_ms`` (V3) is the block retire
        timeout, ``rxhash`` (V3) asks the kernel for each packet's flow hash, ``reserve`` leaves that
        many bytes before each packet (PACKET_RESERVE, for VLAN reinsertion), ``block_size`` replaces
        the derived block size (V3 default: about 1/128 of the buffer, 64 KiB to 1 MiB). Raises
        RingGeometryError (naming a value that works) for values the kernel would refuse.
        """
        _check_version(version)
        where = "RingGeometry.for_capture()"
        buffer_size = _integer(where, "buffer_size", buffer_size, 1 << 40)
        snaplen = _integer(where, "snaplen", snaplen, MAX_SNAPLEN_FIELD)
        block_timeout_ms = _integer(where, "block_timeout_ms", block_timeout_ms, MAX_FIELD)
        if block_size is not None:
            block_size = _integer(where, "block_size", block_size, 1 << 31)
            if block_size <= 0:
                raise RingGeometryError(f"{where}: block_size must be positive, got {block_size}; try {1 << 20}")
        if mtu is not None:
            mtu = _integer(where, "mtu", mtu, MAX_FIELD)
        if snaplen <= 0:
            raise RingGeometryError(f"snaplen must be positive, got {snaplen}; 262144 captures whole packets")
        if buffer_size <= 0:
            raise RingGeometryError(f"buffer size must be positive, got {buffer_size}; try {DEFAULT_BUFFER_SIZE}")
        if block_timeout_ms < 0:
            raise RingGeometryError(
                f"block timeout must be 0 (kernel default) or 1..{MAX_BLOCK_TIMEOUT_MS} ms, got {block_timeout_ms}"
            )
        data_len = snaplen
        if mtu is not None and version != 3:
            data_len = min(snaplen, mtu + LINK_OVERHEAD)
        frame_size = frame_size_for(version, data_len, reserve)
        if version != 3 and frame_size * MIN_FRAMES > buffer_size:
            # V1/V2 frames are sized from the snaplen; a ring that holds fewer than two of them would be
            # sized by -s instead of -B (tcpdump's -B is the ring size, whatever -s says).
            most = buffer_size // MIN_FRAMES - (frame_size - data_len)
            raise RingGeometryError(
                f"TPACKET_V{version} frames for a snaplen of {data_len} bytes take {frame_size} bytes each, and "
                f"a buffer of {buffer_size} bytes holds fewer than {MIN_FRAMES} of them; raise the buffer "
                f"(-B) to at least {-(-frame_size * MIN_FRAMES // 1024)} KiB"
                + (f", or lower the snaplen (-s) to {most} or less" if most > 0 else "")
                + " (or use TPACKET_V3, whose frames are not sized by snaplen)"
            )
        if version == 3:
            # The frame size is not a bound on V3, but the kernel still checks it against the block.
            frame_size = frame_size_for(3, min(data_len, 2048), reserve)
            if block_size is None:
                # Many small blocks rather than a few large ones: when the reader falls behind, the
                # kernel still retires the block it is filling every block timeout, however empty,
                # so what the ring holds is about blocks x (rate x timeout), not its size.
                block_size = _pow2_floor(max(buffer_size // V3_AUTO_BLOCKS, PAGE_SIZE))
                block_size = min(max(block_size, MIN_AUTO_BLOCK_V3, _pow2_ceil(frame_size)), MAX_AUTO_BLOCK)
        elif block_size is None:
            block_size = max(_pow2_ceil(frame_size), MIN_AUTO_BLOCK_V12, PAGE_SIZE)
            block_size = min(block_size, max(_pow2_floor(buffer_size // 2), _pow2_ceil(frame_size), PAGE_SIZE))
        block_nr = max(2, buffer_size // block_size)
        frames_per_block = block_size // frame_size if frame_size else 0
        geom = cls(
            version=version,
            block_size=block_size,
            block_nr=block_nr,
            frame_size=frame_size,
            frame_nr=frames_per_block * block_nr,
            block_timeout_ms=min(block_timeout_ms, MAX_BLOCK_TIMEOUT_MS) if version == 3 else 0,
            feature_req_word=abi.TP_FT_REQ_FILL_RXHASH if (rxhash and version == 3) else 0,
            reserve=reserve,
        )
        geom.validate()
        return geom

    @classmethod
    def for_transmit(
        cls, version: int = 2, frame_size: int = 2048, frame_count: int = 1024, *, block_size: int | None = None
    ) -> RingGeometry:
        """A TX ring of TPACKET ``version`` with ``frame_count`` slots of ``frame_size`` bytes (header
        included), in blocks of ``block_size`` bytes (default: up to 64 KiB, a power of two). Raises
        RingGeometryError (naming a value that works) for values the kernel would refuse."""
        _check_version(version)
        where = "RingGeometry.for_transmit()"
        frame_size = _integer(where, "frame_size", frame_size, 1 << 31)
        frame_count = _integer(where, "frame_count", frame_count, MAX_FIELD)
        if block_size is not None:
            block_size = _integer(where, "block_size", block_size, 1 << 31)
            if block_size <= 0:
                raise RingGeometryError(f"{where}: block_size must be positive, got {block_size}; try 65536")
        if frame_size <= 0:
            raise RingGeometryError(f"{where}: frame_size must be positive, got {frame_size}; try 2048")
        if frame_count <= 0:
            raise RingGeometryError(f"frame count must be positive, got {frame_count}; try 1024")
        if frame_size % abi.TPACKET_ALIGNMENT:
            up = abi.tpacket_align(frame_size)
            raise RingGeometryError(
                f"frame size {frame_size} is not a multiple of TPACKET_ALIGNMENT (16); use {up}"
            )
        if block_size is None:
            block_size = max(_pow2_ceil(frame_size), PAGE_SIZE)
            # Up to 64 KiB per block, so fewer, larger allocations serve many frames.
            while block_size < MIN_AUTO_BLOCK_V12 and (block_size * 2) // frame_size <= frame_count:
                block_size *= 2
        per_block = max(1, block_size // frame_size)
        block_nr = max(1, -(-frame_count // per_block))
        geom = cls(
            version=version,
            block_size=block_size,
            block_nr=block_nr,
            frame_size=frame_size,
            frame_nr=per_block * block_nr,
            tx=True,
        )
        geom.validate()
        return geom

    # -- the kernel's rules ---------------------------------------------------------------------
    def validate(self) -> None:
        """Raise RingGeometryError naming the first rule of ``packet_set_ring()`` this layout breaks."""
        _check_version(self.version)
        min_frame = layout(self.version).hdrlen + self.reserve
        if self.block_size <= 0 or self.block_size % PAGE_SIZE:
            good = max(PAGE_SIZE, -(-max(self.block_size, 1) // PAGE_SIZE) * PAGE_SIZE)
            raise RingGeometryError(
                f"block size {self.block_size} must be a positive multiple of the page size ({PAGE_SIZE}); "
                f"use {_pow2_ceil(good)}"
            )
        if self.block_size & (self.block_size - 1):
            # Not a kernel rule, but blocks are allocated in power-of-two pages: the rest is wasted.
            raise RingGeometryError(
                f"block size {self.block_size} is not a power of two: the kernel allocates "
                f"{_pow2_ceil(self.block_size)} bytes per block anyway; use {_pow2_ceil(self.block_size)} "
                f"or {_pow2_floor(self.block_size)}"
            )
        if self.block_nr <= 0:
            raise RingGeometryError(f"block count must be positive, got {self.block_nr}")
        if self.frame_size < min_frame:
            raise RingGeometryError(
                f"frame size {self.frame_size} is smaller than the TPACKET_V{self.version} header "
                f"({layout(self.version).hdrlen} bytes{f' + {self.reserve} reserved' if self.reserve else ''}); "
                f"use at least {abi.tpacket_align(min_frame + 64)}"
            )
        if self.frame_size % abi.TPACKET_ALIGNMENT:
            raise RingGeometryError(
                f"frame size {self.frame_size} is not a multiple of TPACKET_ALIGNMENT (16); "
                f"use {abi.tpacket_align(self.frame_size)}"
            )
        if self.frame_size > self.block_size:
            raise RingGeometryError(
                f"frame size {self.frame_size} is larger than the block size {self.block_size}, so a block "
                f"holds no frame; use a block size of {_pow2_ceil(max(self.frame_size, PAGE_SIZE))}"
            )
        if self.version == 3 and not self.tx and self.block_size < V3_BLOCK_HDR + min_frame:
            raise RingGeometryError(
                f"V3 block size {self.block_size} cannot hold the block header and one frame; "
                f"use at least {PAGE_SIZE}"
            )
        if self.frames_per_block * self.block_nr != self.frame_nr:
            raise RingGeometryError(
                f"frame count {self.frame_nr} must equal frames per block ({self.frames_per_block}) x "
                f"block count ({self.block_nr}) = {self.frames_per_block * self.block_nr}"
            )
        if self.frame_nr >= 1 << 32 or self.size >= 1 << 40:
            raise RingGeometryError(f"ring of {self.size} bytes / {self.frame_nr} frames is too large")
        if self.version == 3 and self.tx and (self.block_timeout_ms or self.feature_req_word):
            raise RingGeometryError(
                "a V3 TX ring takes no block timeout and no feature request (the kernel answers EINVAL); "
                "leave both 0"
            )
        if self.block_timeout_ms > MAX_BLOCK_TIMEOUT_MS:
            raise RingGeometryError(
                f"block timeout {self.block_timeout_ms} ms exceeds {MAX_BLOCK_TIMEOUT_MS} ms, the most the "
                f"kernel stores; use {MAX_BLOCK_TIMEOUT_MS} or less"
            )

    def shrunk(self) -> RingGeometry | None:
        """The same layout with about 3/4 of the blocks, for an ENOMEM retry; None below 2 blocks."""
        block_nr = (self.block_nr * 3) // 4
        if block_nr < 2 or block_nr == self.block_nr:
            return None
        return replace(self, block_nr=block_nr, frame_nr=self.frames_per_block * block_nr)

    def request(self) -> bytes:
        """The tpacket_req (V1/V2) or tpacket_req3 (V3) bytes for setsockopt."""
        if self.version == 3:
            return abi.TPACKET_REQ3.pack(
                self.block_size,
                self.block_nr,
                self.frame_size,
                self.frame_nr,
                self.block_timeout_ms,
                0,
                self.feature_req_word,
            )
        return abi.TPACKET_REQ.pack(self.block_size, self.block_nr, self.frame_size, self.frame_nr)


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"TPACKET version must be the integer 1, 2 or 3, not {type(version).__name__}")
    if version not in (1, 2, 3):
        raise RingGeometryError(f"TPACKET version must be 1, 2 or 3, got {version!r}")

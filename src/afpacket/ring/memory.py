"""The mapped ring as the walkers see it, and what happens to a packet a user keeps.

:class:`RingMemory` holds the mapping, typed views of it, and one version's layout (the numbers the
kernels need, also as one tuple, :attr:`RingMemory.params`, that the C kernels read once per batch).
:func:`detach` gives a packet that is still referenced when its batch goes back to the kernel a
private copy of its frame (header, sockaddr_ll and data), so it keeps working: only packets someone
kept pay for the copy.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING, Any

from .layout import FrameLayout, layout

if TYPE_CHECKING:
    from ..rx.packet import Packet


class RingMemory:
    """The mapping (or a detached packet's private copy), typed views, and the ring's layout."""

    __slots__ = (
        "cooked", "decode", "frame_size", "layout", "map", "mv", "off_len", "off_mac", "off_snap", "params", "pins",
        "raw", "reinsert", "sll_off", "snaplen", "u16", "u32", "version",
    )

    def __init__(
        self,
        ring_map: mmap.mmap | bytearray,
        size: int,
        version: int,
        snaplen: int,
        *,
        raw: bool,
        reinsert: bool,
        frame_size: int = 0,
        cooked: int = 1,
    ) -> None:
        lay: FrameLayout = layout(version)
        self.map = ring_map
        self.mv = memoryview(ring_map)[:size]
        self.u32 = self.mv.cast("I")
        self.u16 = self.mv.cast("H")
        self.layout = lay
        self.version = version
        self.decode = lay.decode
        self.snaplen = snaplen
        self.off_len = lay.off_len
        self.off_snap = lay.off_snaplen
        self.off_mac = lay.off_mac
        self.sll_off = lay.sll_offset
        self.raw = raw
        self.reinsert = reinsert
        #: V1/V2: the frame stride, which bounds a frame's data; 0 for V3 (the block bounds it)
        self.frame_size = 0 if version == 3 else frame_size
        #: the cooked header a SOCK_DGRAM packet gets in a file: 1 (SLL, 16 bytes) or 2 (SLL2, 20 bytes)
        self.cooked = cooked
        #: exports of the mapping kept for buffers that could not be revoked (see pin())
        self.pins: list[memoryview] = []
        #: for the C kernels, in the order _kernels.c reads them
        self.params: tuple[int, ...] = ()
        self.set_cooked(cooked)

    def set_cooked(self, cooked: int) -> None:
        """Choose the cooked header SOCK_DGRAM packets get in files: 1 (SLL) or 2 (SLL2, tcpdump's default
        for ``any``, which also records the interface index)."""
        if cooked not in (1, 2):
            raise ValueError(f"cooked header version must be 1 (SLL) or 2 (SLL2), got {cooked!r}")
        lay = self.layout
        self.cooked = cooked
        self.params = (
            self.version, self.snaplen, lay.off_status, lay.off_len, lay.off_snaplen, lay.off_mac, lay.off_sec,
            lay.off_frac, lay.frac_ns, lay.off_vlan_tci, lay.off_vlan_tpid, lay.off_rxhash, lay.sll_offset,
            self.frame_size, int(self.raw), int(self.reinsert), lay.header.size, cooked,
        )

    def pin(self) -> None:
        """A buffer derived from a packet view (np.frombuffer) outlived its batch and cannot be revoked:
        keep an export of the mapping so it is never unmapped under that buffer (close() then warns)."""
        if not self.pins:
            self.pins.append(memoryview(self.map))

    def release(self) -> None:
        self.u16.release()
        self.u32.release()
        self.mv.release()


def data_end(ring: RingMemory, batch_end: int, hdr: int) -> int:
    """The offset past which a packet's bytes may not reach: its frame (V1/V2) or its block (V3)."""
    return batch_end if batch_end else hdr + ring.frame_size


def detach(pkt: Packet, kernels: Any, generic: type[Packet]) -> None:
    """Give ``pkt`` a private copy of its frame, so it outlives its batch; it becomes ``generic``."""
    batch = pkt._batch
    ring: RingMemory = batch.ring
    h = pkt._hdr
    end = data_end(ring, batch.end, h)
    mac = ring.u16[(h + ring.off_mac) >> 1]
    cap = ring.u32[(h + ring.off_snap) >> 2]
    stop = min(h + mac + min(cap, ring.snaplen), end)
    stop = max(stop, min(h + ring.layout.hdrlen, len(ring.mv)))
    region = bytearray(ring.mv[h:stop])
    region += bytes(-len(region) % 4)  # the typed views need whole words
    private = RingMemory(
        region, len(region), ring.version, ring.snaplen, raw=ring.raw, reinsert=ring.reinsert, cooked=ring.cooked
    )
    copy = batch.copies.get(h) if batch.copies else None
    kept = kernels.Batch(private, [0], len(region), -1)
    if copy is not None:
        kept.copies = {0: copy}
    pkt._batch = kept
    pkt._hdr = 0  # type: ignore[misc]  # the slot lives in the kernels' PacketBase
    if type(pkt) is not generic:
        pkt.__class__ = generic

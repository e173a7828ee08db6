"""The RX ring walk as non-blocking steps: the next user-owned batch, or None; then hand it back.

:class:`RingWalker` owns the cursor. :meth:`RingWalker.step` looks at the slot under the cursor
through the ring kernels (``ready_frames`` for V1/V2 frames, ``block_ready`` + ``block_batch`` for
a V3 block), applies the per-batch fix-ups some captures ask for (PACKET_COPY_THRESH copies, VLAN
reinsertion in the ring), and returns a :class:`Batch` that the caller reads; :meth:`RingWalker.release`
revokes the views handed out for it, gives packets that someone kept a copy of their frame, hands the
slots back to the kernel and moves the cursor. Nothing here waits: a blocking capture pairs it with a
:class:`~afpacket.rx.waiter.Waiter`, an event loop with its own readiness source.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .. import abi
from ..geometry import RingGeometry
from ..ring.memory import RingMemory, detach
from .packet import Packet, forked_class, generic_class, packet_class

#: how many ready V1/V2 frames one batch may take before handing them back
MAX_FRAME_BATCH = 256


class RingWalker:
    """Steps over an RX ring's user-owned batches in ring order (see the module docstring)."""

    def __init__(
        self, ring: RingMemory, geometry: RingGeometry, kernels: ModuleType, *,
        copy_thresh: bool = False, sock: socket.socket | None = None,
    ) -> None:
        self.ring = ring
        self.geometry = geometry
        self.k = kernels
        self.copy_thresh = copy_thresh
        self._sock = sock
        self.v3 = geometry.version == 3
        self.batch: Any = None
        self.cursor = 0
        self.frame_offsets = [
            b * geometry.block_size + f * geometry.frame_size
            for b in range(geometry.block_nr) for f in range(geometry.frames_per_block)
        ]
        self.packet_class = packet_class(kernels, ring, copies=copy_thresh)
        self.generic = generic_class(kernels)
        self.pool: list[Packet] = kernels.new_pool(self.packet_class)
        self.fixup = copy_thresh or ring.reinsert
        #: V3 bookkeeping: blocks read, blocks flagged TP_STATUS_LOSING, gaps in seq_num
        self.blocks_seen = 0
        self.losing_seen = 0
        self.seq_gaps = 0
        self._last_seq = 0
        #: packets in every batch stepped over so far: compared with the kernel's count of packets
        #: delivered into the ring, it tells whether the ring has been read to the end
        self.taken = 0
        #: wire bytes (tp_len) of those packets: ``afpacket_bytes_total`` of a capture
        self.bytes = 0

    def step(self) -> Any:
        """The next user-owned batch (the previous one must have been released), or None if the
        slot under the cursor is still the kernel's."""
        assert self.batch is None, "release() the previous batch first"
        k, ring = self.k, self.ring
        if self.v3:
            bsz = self.geometry.block_size
            boff = self.cursor * bsz
            if not k.block_ready(ring, boff):
                return None
            status, count, first, seq = k.block_info(ring, boff)
            end = boff + bsz
            batch = k.block_batch(ring, boff + first, count, end, boff)
            self.taken += count
            self.blocks_seen += 1
            if status & abi.TP_STATUS_LOSING:
                self.losing_seen += 1
            if self._last_seq and seq != self._last_seq + 1:
                self.seq_gaps += 1
            self._last_seq = seq
        else:
            hdrs = k.ready_frames(ring, self.frame_offsets, self.cursor, MAX_FRAME_BATCH)
            if not hdrs:
                return None
            batch = k.Batch(ring, hdrs, 0, -1)
            self.taken += len(hdrs)
        self.bytes += k.wire_bytes(batch)
        self.batch = batch
        if self.fixup:
            self._fixup(batch)
        return batch

    def packets(self, batch: Any) -> Iterator[Packet]:
        """The batch's packets as objects (the kernels reuse objects nobody kept)."""
        it: Iterator[Packet] = self.k.packets(batch, self.packet_class, self.pool)
        return it

    def release(self) -> None:
        """Hand the current batch back (no-op without one): views revoked, kept packets detached,
        slots given to the kernel, cursor advanced."""
        b = self.batch
        if b is None:
            return
        self.batch = None
        for p in b.expire(self.pool):
            detach(p, self.k, self.generic)
        k, ring = self.k, self.ring
        if self.v3:
            k.release_block(ring, b.block)
            self.cursor = (self.cursor + 1) % self.geometry.block_nr
        else:
            k.release_frames(ring, b.hdrs)
            self.cursor = (self.cursor + len(b.hdrs)) % len(self.frame_offsets)

    def abandon(self) -> None:
        """At close: revoke the current batch's views and give the packets someone kept a copy of their
        frame, without handing the slots back (the ring is about to be unmapped)."""
        b, self.batch = self.batch, None
        if b is not None:
            for p in b.expire(self.pool):
                detach(p, self.k, self.generic)

    def disown(self) -> None:
        """In a forked child, where the ring is not mapped: revoke the current batch's views without
        reading the ring, and turn the packets someone kept into ones that raise CaptureClosedError
        (their frames cannot be copied: the memory is not there)."""
        b, self.batch = self.batch, None
        if b is not None:
            forked = forked_class(self.generic)
            for p in b.expire(self.pool):
                p.__class__ = forked

    # -- fix-ups ------------------------------------------------------------------------------------
    def _fixup(self, batch: Any) -> None:
        """Per-batch work that only some captures ask for: COPY_THRESH copies and VLAN reinsertion."""
        ring = self.ring
        for h in batch.hdrs:
            status, wire, snap, mac, _ts, tci, tpid, _rx = ring.decode(ring.mv, h)
            if status & abi.TP_STATUS_COPY and self.copy_thresh and self._sock is not None:
                # The kernel queued a full copy on the socket, in ring order: drain it now, or the
                # socket's receive buffer fills and later copies are lost.
                try:
                    full = self._sock.recv(wire + 64, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
                except BlockingIOError:
                    full = None
                if full is not None:
                    if batch.copies is None:
                        batch.copies = {}
                    batch.copies[h] = full[: ring.snaplen]
            if ring.reinsert and ring.version != 1 and (status & abi.TP_STATUS_VLAN_VALID or tci):
                self._reinsert(h, mac, snap, wire, tci, tpid if status & abi.TP_STATUS_VLAN_TPID_VALID else 0)

    def _reinsert(self, h: int, mac: int, snap: int, wire: int, tci: int, tpid: int) -> None:
        """Put the stripped tag back in place: move the MAC addresses down 4 bytes into the
        PACKET_RESERVE room and write TPID/TCI after them; the header then describes the tagged frame."""
        ring = self.ring
        mv = ring.mv
        start = h + mac
        if mac < 4 or snap < 12:
            return
        mv[start - 4 : start + 8] = bytes(mv[start : start + 12])
        struct.pack_into("!HH", mv, start + 8, tpid or abi.ETH_P_8021Q, tci)
        u32, u16 = ring.u32, ring.u16
        u16[(h + ring.off_mac) >> 1] = mac - 4
        u32[(h + ring.off_snap) >> 2] = snap + 4
        u32[(h + ring.off_len) >> 2] = wire + 4

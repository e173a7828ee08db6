"""The ring kernels in pure Python: every read and write of ring memory goes through these.

``_kernels.c`` implements the same names with the same behaviour (tests compare them byte for byte
over synthetic rings, and a fuzz test over random ones). Rules both follow:

* Ownership: a V1/V2 frame is the user's when ``tp_status & TP_STATUS_USER``; a V3 block when its
  ``block_status`` has it. Handing back stores ``TP_STATUS_KERNEL`` last. Pure Python has no acquire
  load or release store: on x86-64 loads are not reordered with loads, nor stores with stores, which
  is all the ring protocol needs. The C kernels use ``__atomic`` acquire/release and are also right on
  weakly ordered CPUs (arm64).
* Bounds: a header must lie 4-byte aligned and wholly inside its frame (V1/V2) or block (V3); a V3
  block's chain stops at the first ``tp_next_offset`` that leaves the block, or is 0 before
  ``num_pkts``. A packet's bytes start at ``hdr + tp_mac`` and run ``min(tp_snaplen, snaplen)``
  bytes, cut at the end of the frame or block. So a corrupt header never reads outside the mapping.
* Live packet to file record (one owner, used by every capture-to-file path): SOCK_RAW frames get a
  tag the kernel stripped put back after the MAC addresses (unless ``reinsert_vlan`` already did, or
  the ring is V1, which has no VLAN fields), and both lengths grow by 4; SOCK_DGRAM packets get the
  Linux cooked header (16-byte SLL, or 20-byte SLL2 when ``ring.cooked == 2``) built from their sockaddr_ll,
  and both lengths grow by its size.
"""

from __future__ import annotations

import mmap
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from .. import abi
from ..errors import PacketExpiredError
from ..savefile.linktype import cooked_header, insert_tag
from ..savefile.pcap import RECORD_LE as _PCAP_RECORD
from ..savefile.pcapng import EPB_FIXED_FLAGS, EPB_HEAD, EPB_TAILS_FLAGS, EPB_TYPE, OPT_EPB_FLAGS
from ..savefile.record import PKTTYPE_TO_EPB_FLAGS
from .layout import BLOCK
from .memory import RingMemory

if TYPE_CHECKING:
    from array import array

IMPLEMENTATION = "python"

_USER = abi.TP_STATUS_USER
_VLAN_VALID = abi.TP_STATUS_VLAN_VALID
_TPID_VALID = abi.TP_STATUS_VLAN_TPID_VALID
_EPB_FLAGS = [PKTTYPE_TO_EPB_FLAGS.get(t, 0) for t in range(256)]
_new = object.__new__
_3 = 3

_U32_MAX = 0xFFFFFFFF


def _live(batch: Batch, fn: str) -> None:
    """Kernels read a batch only while it is leased (as the C kernels check)."""
    if batch.views is None:
        raise PacketExpiredError(f"{fn}(): the batch went back to the kernel")


def _block_at(ring: RingMemory, block: int) -> int:
    if block < 0 or block & 7 or block + BLOCK.size > len(ring.mv):
        raise ValueError(f"block offset {block} outside the ring")
    return block >> 2


EXPIRED = (
    "packet expired: its frame or block went back to the kernel when the capture read past it; "
    "use it before taking the next one, or keep bytes(pkt) / pkt.copy()"
)


class Batch:
    """The lease on a run of V1/V2 frames or one V3 block: header offsets, and the views handed out.

    ``end`` bounds every packet's bytes: the block's end for V3, 0 for V1/V2 (each frame then ends
    at ``hdr + ring.frame_size``). ``views`` is None once the batch went back to the kernel.
    """

    __slots__ = ("block", "copies", "count", "end", "hdrs", "kept", "ring", "views")

    def __init__(
        self, ring: RingMemory, hdrs: list[int], end: int = 0, block: int = -1, *, _aligned: bool = False
    ) -> None:
        size = len(ring.mv)
        end = min(max(end, 0), size)
        if hdrs:  # the C Batch's check, per header there; min/max/map keep it cheap here
            lo, hi = min(hdrs), max(hdrs)
            lim = end if end else hi + ring.frame_size
            if (lo < 0 or hi + ring.sll_off + 20 > size or hi + ring.layout.header.size > lim or lim > size
                    or (not _aligned and any(map(_3.__and__, hdrs)))):
                raise ValueError(f"a frame header offset ({lo}..{hi}) lies outside its frame/block or the ring")
        self.ring = ring
        self.hdrs = hdrs
        self.count = len(hdrs)
        self.end = end
        self.block = block
        self.views: list[memoryview] | None = []
        #: PACKET_COPY_THRESH: full copies of truncated frames, by header offset
        self.copies: dict[int, bytes] | None = None
        #: packets of this batch that someone kept while the walk went on (see :func:`packets`)
        self.kept: list[Any] = []

    def expire(self, pool: list[Any] | None = None) -> list[Any]:
        """Revoke every view handed out, and return the packets of this batch still referenced
        elsewhere (the caller detaches them). Pool entries that are returned are replaced."""
        views, self.views = self.views, None
        if views:
            for v in views:
                try:
                    v.release()
                except BufferError:
                    # A buffer exported from the view (np.frombuffer) cannot be revoked from Python.
                    pass
        held = []
        rc = sys.getrefcount
        kept, self.kept = self.kept, []
        for p in kept:  # references: the list, p, getrefcount's argument
            if rc(p) > 3 and p._batch is self:
                held.append(p)
        if pool is not None:
            for i in range(len(pool)):
                p = pool[i]
                if rc(p) > 3 and getattr(p, "_batch", None) is self:  # the pool, p, the argument
                    held.append(p)
                    pool[i] = _new(type(p))
        return held


class PacketBase:
    """The hot part of a packet: where it is, and its bytes (``data`` zero copy, ``bytes()`` a copy)."""

    __slots__ = ("_batch", "_hdr")
    _batch: Batch
    _hdr: int

    def _span(self) -> tuple[int, int]:
        b = self._batch
        if b.views is None:
            raise PacketExpiredError(EXPIRED)
        r = b.ring
        h = self._hdr
        start = h + r.u16[(h + r.off_mac) >> 1]
        cap = r.u32[(h + r.off_snap) >> 2]
        stop = start + (cap if cap < r.snaplen else r.snaplen)
        end = b.end if b.end else h + r.frame_size
        if stop > end:
            stop = end if end > start else start
        return start, stop

    @property
    def data(self) -> memoryview:
        """The captured bytes, a zero-copy view into the ring (raises once the batch went back)."""
        b = self._batch
        views = b.views
        if views is None:
            raise PacketExpiredError(EXPIRED)
        if b.copies is not None and self._hdr in b.copies:
            v = memoryview(b.copies[self._hdr])
        else:
            start, stop = self._span()
            v = b.ring.mv[start:stop]
        views.append(v)
        return v

    def __bytes__(self) -> bytes:
        b = self._batch
        if b.views is None:
            raise PacketExpiredError(EXPIRED)
        if b.copies is not None and self._hdr in b.copies:
            return b.copies[self._hdr]
        start, stop = self._span()
        return bytes(b.ring.mv[start:stop])

    def _caplen(self) -> int:
        b = self._batch
        if b.copies is not None and self._hdr in b.copies:
            if b.views is None:
                raise PacketExpiredError(EXPIRED)
            return len(b.copies[self._hdr])
        start, stop = self._span()
        return stop - start


def _free_refcount() -> int:
    # What sys.getrefcount reports inside packets() for a pooled packet nobody else holds: measured
    # with the same code shape rather than assumed, so it follows the interpreter.
    pool = [_new(PacketBase)]
    p = pool[0]
    return sys.getrefcount(p)


_FREE = _free_refcount()


def new_pool(cls: type[Any]) -> list[Any]:
    """Two packet objects of ``cls`` that :func:`packets` uses in turn."""
    return [_new(cls), _new(cls)]


def packets(batch: Batch, cls: type[Any], pool: list[Any]) -> Iterator[Any]:
    """One packet per header of ``batch`` (see :func:`_packets`)."""
    _live(batch, "packets")
    if not (isinstance(cls, type) and issubclass(cls, PacketBase)):
        raise TypeError("packets(): cls must be a subclass of PacketBase")
    return _packets(batch, cls, pool)


def _packets(batch: Batch, cls: type[Any], pool: list[Any]) -> Iterator[Any]:
    """One packet per header of ``batch``.

    Allocation is most of a packet's cost, so an object from ``pool`` is re-pointed when its reference
    count shows that nobody kept it (CPython's zip() does the same with its result tuples); a packet
    the caller kept is never touched again: it is noted in ``batch.kept`` (so the batch can give it a
    copy of its frame when it goes back) and the pool takes a fresh object.
    """
    rc = sys.getrefcount
    free = _FREE
    kept = batch.kept
    k = 0
    for h in batch.hdrs:
        k ^= 1
        p = pool[k]
        if rc(p) != free:
            if p._batch is batch:
                kept.append(p)
            p = pool[k] = _new(cls)
        p._batch = batch
        p._hdr = h
        yield p


# -- ownership -------------------------------------------------------------------------------------
def ready_frames(ring: RingMemory, offsets: Sequence[int], start: int, limit: int) -> list[int]:
    """V1/V2: header offsets of the consecutive user-owned frames from index ``start`` on, at most
    ``limit`` and never more than one ring's worth."""
    if not isinstance(offsets, list):
        raise TypeError("ready_frames(): offsets must be a list")
    u32 = ring.u32
    n = len(offsets)
    out: list[int] = []
    if n == 0:
        return out
    if not 0 <= start < n:
        raise IndexError("ready_frames(): start outside the ring")
    i = start
    if limit > n:
        limit = n
    size = len(ring.mv)
    while len(out) < limit:
        off = offsets[i]
        if off < 0 or off & 3 or off + 4 > size:
            raise ValueError(f"frame offset {off} outside the ring")
        if not u32[off >> 2] & _USER:  # the low word of tp_status (V1's is 64 bits)
            break
        out.append(off)
        i += 1
        if i == n:
            i = 0
    return out


def block_ready(ring: RingMemory, block: int) -> bool:
    """V3: the kernel retired the block at offset ``block`` and handed it over."""
    return bool(ring.u32[_block_at(ring, block) + (BLOCK.off_status >> 2)] & _USER)


def release_frames(ring: RingMemory, hdrs: Sequence[int]) -> None:
    """Hand V1/V2 frames back (tp_status = TP_STATUS_KERNEL, after every read of them)."""
    u32 = ring.u32
    size = len(ring.mv)
    for h in hdrs:
        if h < 0 or h & 3 or h + 8 > size:
            raise ValueError(f"frame offset {h} outside the ring")
        if ring.version == 1:
            u32[(h >> 2) + 1] = 0  # V1's tp_status is an unsigned long
        u32[h >> 2] = 0


def release_block(ring: RingMemory, block: int) -> None:
    """Hand a V3 block back (block_status = TP_STATUS_KERNEL, after every read of it)."""
    ring.u32[_block_at(ring, block) + (BLOCK.off_status >> 2)] = 0


def block_headers(ring: RingMemory, first: int, count: int, end: int) -> list[int]:
    """V3: the header offsets of a block's packets, from ``first`` along tp_next_offset, at most
    ``count``, each aligned and wholly before ``end`` (a corrupt chain stops early)."""
    u32 = ring.u32
    out: list[int] = []
    h = first
    if h < 0 or h & 3:
        return out
    lim = min(end, len(ring.mv)) - ring.layout.header.size
    append = out.append
    for _ in range(count):
        if h > lim:
            break
        append(h)
        nxt = u32[h >> 2]
        if not nxt or nxt & 3:  # the end of the chain, or a next header that is not aligned
            break
        h += nxt
    return out


def block_batch(ring: RingMemory, first: int, count: int, end: int, block: int) -> Batch:
    """V3: the batch of one block, ``Batch(ring, block_headers(ring, first, count, end), end, block)``."""
    return Batch(ring, block_headers(ring, first, count, end), end, block, _aligned=True)


def block_info(ring: RingMemory, block: int) -> tuple[int, int, int, int]:
    """V3: (block_status, num_pkts, offset_to_first_pkt, seq_num) of the block at ``block``."""
    u32 = ring.u32
    b = _block_at(ring, block)
    st = u32[b + (BLOCK.off_status >> 2)]
    n = u32[b + (BLOCK.off_num_pkts >> 2)]
    first = u32[b + (BLOCK.off_first_pkt >> 2)]
    seq = u32[b + (BLOCK.off_seq_num >> 2)] | u32[b + (BLOCK.off_seq_num >> 2) + 1] << 32
    return st, n, first, seq


# -- reading a batch -------------------------------------------------------------------------------
def frame_bytes(batch: Batch) -> list[bytes]:
    """The bytes of every packet of the batch (copies, ring order)."""
    _live(batch, "frame_bytes")
    r = batch.ring
    mv, u16, u32, snaplen = r.mv, r.u16, r.u32, r.snaplen
    off_mac, off_snap, fsz, bend = r.off_mac, r.off_snap, r.frame_size, batch.end
    # slicing an mmap gives bytes in one step; a private copy (bytearray) needs the conversion
    m = r.map if isinstance(r.map, mmap.mmap) else None
    out: list[bytes] = []
    append = out.append
    for h in batch.hdrs:
        start = h + u16[(h + off_mac) >> 1]
        cap = u32[(h + off_snap) >> 2]
        stop = start + (cap if cap < snaplen else snaplen)
        end = bend if bend else h + fsz
        if stop > end:
            stop = end if end > start else start
        append(m[start:stop] if m is not None else bytes(mv[start:stop]))
    return out


def wire_bytes(batch: Batch) -> int:
    """The sum of the batch's wire lengths (tp_len): what the walker counts as bytes taken."""
    _live(batch, "wire_bytes")
    u32, off = batch.ring.u32, batch.ring.off_len
    return sum([u32[(h + off) >> 2] for h in batch.hdrs])


def _record(r: RingMemory, h: int, end: int) -> tuple[int, int, bytes, int]:
    """(timestamp ns, wire length, the bytes to store, pkttype) for one packet, as a file should hold
    it (see the module docstring)."""
    mv = r.mv
    st, wire, snap, mac, ts, tci, tpid, _rxhash = r.decode(mv, h)
    start = h + mac
    stop = start + (snap if snap < r.snaplen else r.snaplen)
    if stop > end:
        stop = end if end > start else start
    sll = h + r.sll_off
    pkttype = mv[sll + 10]
    data = mv[start:stop].tobytes()
    if not r.raw:
        addr = bytes(mv[sll + 12 : sll + 12 + min(mv[sll + 11], 8)])
        # sll_protocol is kept in network byte order: read it as big endian
        head = cooked_header(pkttype, r.u16[(sll + 8) >> 1], addr, int.from_bytes(mv[sll + 2 : sll + 4], "big"),
                             _I32.unpack_from(mv, sll + 4)[0], r.cooked)
        return ts, (wire + len(head)) & _U32_MAX, head + data, pkttype
    if (st & _VLAN_VALID or tci) and r.version != 1 and not r.reinsert and len(data) >= 12:
        tpid = tpid if st & _TPID_VALID and tpid else abi.ETH_P_8021Q
        return ts, (wire + 4) & _U32_MAX, insert_tag(data, tpid, tci), pkttype
    return ts, wire, data, pkttype


def _record_range(batch: Batch, fn: str, start: int, stop: int, out: bytearray) -> tuple[list[int], int]:
    """The checks both record kernels make: a live batch, a bytearray, 0 <= start <= stop <= count."""
    _live(batch, fn)
    if not isinstance(out, bytearray):
        raise TypeError(f"{fn}(): out must be a bytearray")
    stop = min(stop, batch.count)
    if start < 0 or start > stop:
        raise ValueError(f"start {start} must lie between 0 and stop ({stop})")
    return batch.hdrs, stop


def _append_record(out: bytearray, r: RingMemory, h: int, end: int, unit: int) -> None:
    """One pcap record the general way: a tag to put back, a cooked header, a fraction carry."""
    ts, wire, data, _pt = _record(r, h, end)
    sec, frac = divmod(ts, 1_000_000_000)
    out += _PCAP_RECORD.pack(sec & _U32_MAX, frac // unit, len(data), wire)  # u32 fields wrap, as in C
    out += data


def pcap_records(batch: Batch, start: int, stop: int, out: bytearray, nanosecond: bool, budget: int = -1) -> int:
    """Append pcap records (little endian) for the batch's packets ``start`` to ``stop`` (indexes).

    Stops before a packet once more than ``budget`` bytes were appended (``-1``: no limit), so a
    caller can rotate files by size; returns the index of the first packet not written.
    """
    hdrs, stop = _record_range(batch, "pcap_records", start, stop, out)
    r = batch.ring
    lay = r.layout
    pack = _PCAP_RECORD.pack
    unpack = lay.header.unpack_from
    mv, snaplen = r.mv, r.snaplen
    bend, fsz = batch.end, r.frame_size
    raw, tags = r.raw, lay.off_vlan_tci >= 0 and not r.reinsert
    vlan_valid = _VLAN_VALID
    unit = 1 if nanosecond else 1000
    limited = budget >= 0
    base = len(out)
    fields, frac_ns = lay.fields, lay.frac_ns
    v3 = lay.version == 3  # V3's field order is unpacked directly: itemgetter costs as much as the rest
    for i in range(start, stop):
        if limited and len(out) - base > budget:
            return i
        h = hdrs[i]
        if v3:
            _nxt, sec, frac, snap, wire, st, mac, _net, _rxhash, tci, _tpid = unpack(mv, h)
        else:
            st, wire, snap, mac, sec, frac, tci, _tpid = fields(unpack(mv, h))
            frac *= frac_ns
        s = h + mac
        e = s + (snap if snap < snaplen else snaplen)
        end = bend if bend else h + fsz
        if e > end:
            e = end if end > s else s
        if raw and frac < 1_000_000_000 and not (tags and (st & vlan_valid or tci & 0xFFFF) and e - s >= 12):
            out += pack(sec, frac // unit, e - s, wire)  # the common case: the frame as the ring holds it
            out += mv[s:e]
        else:
            _append_record(out, r, h, end, unit)
    return stop


def pcapng_records(
    batch: Batch, start: int, stop: int, out: bytearray, iface_ids: dict[int, int], nanosecond: bool,
    budget: int = -1,
) -> int:
    """Append pcapng enhanced packet blocks (little endian, with epb_flags for the direction) for the
    batch's packets ``start`` to ``stop``; each packet's interface id is ``iface_ids[ifindex]``.

    Stops before a packet whose ifindex is not in ``iface_ids`` (the caller writes its interface
    description and calls again) or once more than ``budget`` bytes were appended; returns the index
    of the first packet not written.
    """
    hdrs, stop = _record_range(batch, "pcapng_records", start, stop, out)
    if not isinstance(iface_ids, dict):
        raise TypeError("pcapng_records(): iface_ids must be a dict")
    r = batch.ring
    lay = r.layout
    head = EPB_HEAD.pack
    tails = [t.pack for t in EPB_TAILS_FLAGS]
    flags_of = _EPB_FLAGS
    unpack, fields = lay.header.unpack_from, lay.fields
    mv, snaplen, frac_ns = r.mv, r.snaplen, lay.frac_ns
    bend, fsz = batch.end, r.frame_size
    raw, tags = r.raw, lay.off_vlan_tci >= 0 and not r.reinsert
    ifindex_at = r.sll_off + 4
    ifindex_pkttype = _IFINDEX_PKTTYPE.unpack_from
    vlan_valid, v3 = _VLAN_VALID, lay.version == 3
    last_if: int | None = None
    iid = 0
    unit = 1 if nanosecond else 1000
    base = len(out)
    limited = budget >= 0
    for i in range(start, stop):
        if limited and len(out) - base > budget:
            return i
        h = hdrs[i]
        ifindex, pkttype = ifindex_pkttype(mv, h + ifindex_at)
        if ifindex != last_if:
            found = iface_ids.get(ifindex)
            if found is None:
                return i
            iid, last_if = found, ifindex
        if v3:
            _nxt, sec, frac, snap, wire, st, mac, _net, _rxhash, tci, _tpid = unpack(mv, h)
        else:
            st, wire, snap, mac, sec, frac, tci, _tpid = fields(unpack(mv, h))
            frac *= frac_ns
        s = h + mac
        e = s + (snap if snap < snaplen else snaplen)
        end = bend if bend else h + fsz
        if e > end:
            e = end if end > s else s
        if raw and not (tags and (st & vlan_valid or tci & 0xFFFF) and e - s >= 12):
            ticks = (sec * 1_000_000_000 + frac) // unit
            data: bytes | memoryview = mv[s:e]
        else:  # a tag to put back, or a cooked header
            ts, wire, data, _pt = _record(r, h, end)
            ticks = ts // unit
        cap = len(data)
        total = EPB_FIXED_FLAGS + cap + (-cap & 3)
        out += head(EPB_TYPE, total, iid & _U32_MAX, (ticks >> 32) & _U32_MAX, ticks & _U32_MAX, cap, wire)
        out += data
        out += tails[cap & 3](OPT_EPB_FLAGS, 4, flags_of[pkttype], 0, 0, total)
    return stop


def fill_columns(
    batch: Batch, ts_ns: array[int], caplen: array[int], wire_len: array[int], vlan_tci: array[int],
    rxhash: array[int], pkttype: array[int], ifindex: array[int],
) -> None:
    """Write each packet's metadata into the arrays (each at least ``batch.count`` long): timestamp
    in ns, bytes captured (as ``data`` holds them), wire length, VLAN TCI (0 when none or V1), rxhash
    (V3 with rxhash requested, else 0), packet type and interface index."""
    _live(batch, "fill_columns")
    cols = (ts_ns, caplen, wire_len, vlan_tci, rxhash, pkttype, ifindex)
    for i, (col, size) in enumerate(zip(cols, (8, 4, 4, 2, 4, 1, 4), strict=True)):
        have = memoryview(col).nbytes
        if have < batch.count * size:
            raise ValueError(f"fill_columns(): column {i} holds {have} bytes, needs {batch.count * size}")
    r = batch.ring
    lay = r.layout
    u16, u32, mv = r.u16, r.u32, r.mv
    snaplen, bend, fsz = r.snaplen, batch.end, r.frame_size
    sll = r.sll_off
    for i, h in enumerate(batch.hdrs):
        start = h + u16[(h + lay.off_mac) >> 1]
        cap = u32[(h + lay.off_snaplen) >> 2]
        stop = start + (cap if cap < snaplen else snaplen)
        end = bend if bend else h + fsz
        if stop > end:
            stop = end if end > start else start
        ts_ns[i] = u32[(h + lay.off_sec) >> 2] * 1_000_000_000 + u32[(h + lay.off_frac) >> 2] * lay.frac_ns
        caplen[i] = stop - start
        wire_len[i] = u32[(h + lay.off_len) >> 2]
        vlan_tci[i] = u16[(h + lay.off_vlan_tci) >> 1] if lay.off_vlan_tci >= 0 else 0
        rxhash[i] = u32[(h + lay.off_rxhash) >> 2] if lay.off_rxhash >= 0 else 0
        pkttype[i] = mv[h + sll + 10]
        ifindex[i] = _I32.unpack_from(mv, h + sll + 4)[0]


# -- transmit --------------------------------------------------------------------------------------
def tx_fill(
    tx_map: Any, offsets: Sequence[int], head: int, frames: Sequence[Any], first: int, room: int,
    data_offset: int, min_len: int, max_len: int, params: tuple[int, ...],
) -> tuple[int, int]:
    """Copy ``frames[first:]`` into consecutive free TX slots from index ``head`` and mark each
    TP_STATUS_SEND_REQUEST, header words first, the status last; at most ``room`` frames.

    Stops at a frame whose length is outside ``min_len..max_len`` (the caller checks it) or at a slot
    that is not free (the caller reclaims it). Returns (frames queued, their bytes).
    ``params``: (version, tp_status offset, tp_len offset, tp_snaplen offset, tp_mac offset, tp_net offset).
    """
    if (not isinstance(offsets, list) or not isinstance(frames, (list, tuple)) or not isinstance(params, tuple)
            or len(params) != 6):
        raise TypeError("tx_fill(): offsets a list, frames a list or tuple, params a 6-tuple")
    _version, off_st, off_len, off_snap, off_mac, off_net = params
    m = tx_map
    n = len(offsets)
    if n == 0 or not 0 <= head < n or first < 0:
        raise ValueError("tx_fill(): head or first out of range")
    size = len(m)
    busy = abi.TP_STATUS_SEND_REQUEST | abi.TP_STATUS_SENDING | abi.TP_STATUS_WRONG_FORMAT
    i = head
    done = nbytes = 0
    pack16, pack32 = _U16.pack_into, _U32.pack_into
    for j in range(first, min(len(frames), first + room)):
        f = frames[j]
        ln = len(f)
        if ln < min_len or ln > max_len:
            break
        off = offsets[i]
        if off < 0 or off & 3 or off + data_offset + ln > size or off + off_st + 4 > size:
            raise ValueError(f"TX slot offset {off} outside the ring")
        if m[off + off_st] & busy:
            break
        d = off + data_offset
        m[d : d + ln] = f
        pack32(m, off + off_len, ln)
        pack32(m, off + off_snap, ln)
        pack16(m, off + off_mac, data_offset)
        pack16(m, off + off_net, data_offset)
        pack32(m, off + off_st, abi.TP_STATUS_SEND_REQUEST)
        i += 1
        if i == n:
            i = 0
        done += 1
        nbytes += ln
    return done, nbytes


_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
#: sockaddr_ll.sll_ifindex .. sll_pkttype (hatype skipped)
_IFINDEX_PKTTYPE = struct.Struct("=i2xB")


# -- async for --------------------------------------------------------------------------------------
def async_stream(state: Any, slow: Callable[[], Awaitable[Any]], check: int) -> AsyncIterator[Any]:
    """An async iterator for ``async for`` over a walk: the items of ``state.rest`` (the iterator of the
    batch in hand) while it has some, at most ``check - 1`` in a row; then ``await slow()``, which waits as
    needed and returns the next item (or raises StopAsyncIteration: the end). A walk that ends a batch
    early must exhaust that iterator (the capture's ``cut_current`` does), so nothing more is taken from
    it. The C kernel's is an object with an ``am_send`` slot (no coroutine per item); this one is an async
    generator with the same steps.
    """
    if not callable(slow):
        raise TypeError("async_stream(): slow must be callable")
    if check < 1:
        raise ValueError("async_stream(): check must be at least 1")
    return _async_stream(state, slow, check)


async def _async_stream(state: Any, slow: Callable[[], Awaitable[Any]], check: int) -> AsyncIterator[Any]:
    run = check - 1
    while True:
        rest = state.rest
        if rest is not None and run:
            for item in islice(rest, run):  # C's islice: no per-item count in Python
                yield item
            if state.rest is not rest and state.rest is not None:
                continue  # someone stepped the walk meanwhile (anext, next_packet): its new batch is in hand
        try:
            item = await slow()
        except StopAsyncIteration:  # the end (raised out of an async generator it would be a RuntimeError)
            return
        yield item

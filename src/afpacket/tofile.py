"""Capture to file: live packets into pcap/pcapng writers, with tcpdump's rotation (-C, -G, -W).

The savefile writers know nothing of sockets; this module is the bridge. It decides what a live packet
looks like on disk — the wire frame with its VLAN tag put back (SOCK_RAW), or a Linux cooked (SLL)
header built from the packet's sockaddr_ll in front of the network-layer data (SOCK_DGRAM and ``any``),
as libpcap writes them — and which interface description a packet belongs to.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Literal

from . import abi
from .errors import SavefileError
from .packet import Packet, RingMemory
from .rx import Capture
from .savefile import LINKTYPE_LINUX_SLL, PcapngWriter, PcapWriter, linktype_for
from .savefile.pcap import RECORD_LE as PCAP_RECORD
from .savefile.pcapng import EPB_FIXED_FLAGS, EPB_HEAD, EPB_TAILS_FLAGS, EPB_TYPE, OPT_EPB_FLAGS
from .savefile.record import PKTTYPE_TO_EPB_FLAGS

Format = Literal["pcap", "pcapng"]
_SLL = struct.Struct("!HHH8sH")
_TAG = struct.Struct("!HH")


def cooked_header(pkttype: int, hatype: int, addr: bytes, protocol: int) -> bytes:
    """The 16-byte Linux cooked (SLL) header libpcap puts before SOCK_DGRAM packets."""
    return _SLL.pack(pkttype, hatype, len(addr), addr.ljust(8, b"\0"), protocol)


def frame_of(pkt: Packet, raw: bool) -> tuple[bytes | memoryview, int]:
    """(bytes to store, length on the wire) for a live packet, as tcpdump would have written it."""
    if raw:
        if pkt.vlan_present and not pkt.tag_in_data:
            return pkt.tagged(), pkt.wire_len + 4
        return pkt.data, pkt.wire_len
    head = cooked_header(pkt.pkttype, pkt.hatype, pkt.src_addr, pkt.protocol)
    return head + bytes(pkt), pkt.wire_len + len(head)


class CaptureFile:
    """Writes a capture's packets to a file, rotating like tcpdump.

    ``path`` may hold strftime fields (used with ``rotate_seconds``). ``file_size`` (bytes, tcpdump -C
    counts millions) starts a new file once the current one has passed it: ``path``, ``path1``,
    ``path2``, ... or, with ``file_count`` (-W), a ring ``path0`` .. ``path{W-1}`` that is reused.
    ``rotate_seconds`` (-G) starts a new file every so many seconds; with ``file_count`` the capture
    ends after that many files (``done`` turns true). Every file is complete on its own.
    """

    def __init__(
        self,
        path: str,
        *,
        fmt: Format = "pcap",
        linktype: int,
        snaplen: int,
        nanosecond: bool = False,
        unbuffered: bool = False,
        interface: str = "",
        ifindex: int = 0,
        file_size: int | None = None,
        rotate_seconds: float | None = None,
        file_count: int | None = None,
    ) -> None:
        if path == "-" and (file_size or rotate_seconds):
            raise SavefileError("file rotation (-C/-G) needs a file name, not '-' (standard output)")
        self.template = path
        self.fmt = fmt
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = nanosecond
        self.unbuffered = unbuffered
        self.interface = interface
        self.ifindex = ifindex
        self.file_size = file_size
        self.rotate_seconds = rotate_seconds
        self.file_count = file_count
        self.files: list[str] = []
        self.done = False
        #: packets written so far, over all files (kept up to date even when a capture stops on an error)
        self.written = 0
        self._serial = 0
        self._writer: PcapWriter | PcapngWriter | None = None
        self._ids: dict[int, int] = {}
        self._bytes = 0
        self._opened_at = 0.0
        self._open()

    # -- files ----------------------------------------------------------------------------------
    def _name(self) -> str:
        base = self.template
        if self.rotate_seconds:
            base = time.strftime(base, time.localtime())
        if not self.file_size:
            return base
        if self.file_count:
            width = len(str(self.file_count - 1))
            return f"{base}{self._serial % self.file_count:0{width}d}"
        return base if self._serial == 0 else f"{base}{self._serial}"

    def _open(self) -> None:
        name = self._name()
        self._ids = {}
        w: PcapWriter | PcapngWriter
        if self.fmt == "pcapng":
            w = ng = PcapngWriter(name, unbuffered=self.unbuffered)
            if self.ifindex:
                self._ids[self.ifindex] = ng.add_interface(
                    self.interface, self.linktype, self.snaplen, 9 if self.nanosecond else 6, ifindex=self.ifindex
                )
        else:
            w = PcapWriter(name, linktype=self.linktype, snaplen=self.snaplen, nanosecond=self.nanosecond,
                           unbuffered=self.unbuffered)
        self._writer = w
        self.files.append(name)
        self._bytes = 0
        self._opened_at = time.monotonic()

    def _rotate(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._serial += 1
        if self.rotate_seconds and self.file_count and not self.file_size and self._serial >= self.file_count:
            self._writer = None
            self.done = True
            return
        self._open()

    # -- records --------------------------------------------------------------------------------
    def _interface_id(self, w: PcapngWriter, ifindex: int) -> int:
        iid = self._ids.get(ifindex)
        if iid is None:  # a capture on "any": one interface description per interface seen
            try:
                name = socket.if_indextoname(ifindex)
            except OSError:
                name = f"ifindex{ifindex}"
            iid = self._ids[ifindex] = w.add_interface(
                name, self.linktype, self.snaplen, 9 if self.nanosecond else 6, ifindex=ifindex
            )
        return iid

    def write(self, ts_ns: int, data: bytes | memoryview, wire_len: int, ifindex: int = 0, pkttype: int = 0) -> None:
        w = self._writer
        if w is None:
            raise SavefileError("capture file is finished (-W file count reached)")
        if self.rotate_seconds and time.monotonic() - self._opened_at >= self.rotate_seconds:
            self._rotate()
            w = self._writer
            if w is None:
                return
        if self.file_size and self._bytes > self.file_size:
            self._rotate()
            w = self._writer
            assert w is not None
        if isinstance(w, PcapngWriter):
            w.write(ts_ns, data, wire_len, self._interface_id(w, ifindex), pkttype)
            self._bytes += 40 + len(data)
        else:
            w.write(ts_ns, data, wire_len)
            self._bytes += 16 + len(data)
        self.written += 1

    def write_packet(self, pkt: Packet, raw: bool) -> None:
        data: bytes | memoryview
        if not raw:
            data, wire = frame_of(pkt, raw)
            self.write(pkt.timestamp_ns, data, wire, pkt.ifindex, pkt.pkttype)
            return
        st, wire, _snap, _mac, ts, tci, _tpid, _rxhash = pkt._header()  # one decode for all fields
        if (st & abi.TP_STATUS_VLAN_VALID or tci) and not pkt.tag_in_data:
            data = pkt.tagged()
            wire += 4
        else:
            data = pkt.data
        if self.fmt == "pcapng":
            self.write(ts, data, wire, pkt.ifindex, pkt.pkttype)
        else:
            self.write(ts, data, wire)

    def consume(self, capture: Capture, count: int | None = None, duration: float | None = None) -> int:
        """Write the capture's packets until ``count``, ``duration``, stop() or the end of -W files;
        returns how many were written. One file (pcap, or pcapng of a named interface) of a V3
        SOCK_RAW capture takes the block fast path (:func:`pcap_block_records`,
        :func:`pcapng_block_records`); everything else goes packet by packet."""
        raw = capture.sock_type == "raw"
        if (raw and capture.version == 3 and not capture.copy_thresh and not self.file_size
                and not self.rotate_seconds and (self.fmt == "pcap" or self.ifindex in self._ids)):
            return self._consume_blocks(capture, count, duration)
        start = self.written
        for pkt in capture.packets(count=count, duration=duration):
            self.write_packet(pkt, raw)
            if self.done or (count is not None and self.written - start >= count):
                break
        return self.written - start

    def _consume_blocks(self, capture: Capture, count: int | None, duration: float | None) -> int:
        w = self._writer
        assert w is not None
        start = self.written
        records = bytearray()
        iface_id = self._ids.get(self.ifindex, 0)
        for batch in capture.batches(duration=duration):
            n = self.written - start
            take = batch.count if count is None else min(batch.count, count - n)
            records.clear()
            if isinstance(w, PcapWriter):
                pcap_block_records(batch.ring, batch.first, take, self.nanosecond, self.snaplen, records)
            else:
                pcapng_block_records(batch.ring, batch.first, take, iface_id, self.nanosecond, self.snaplen, records)
            w.write_raw(records)
            self._bytes += len(records)
            self.written += take
            if count is not None and self.written - start >= count:
                break
        return self.written - start

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self, received: int | None = None, dropped: int | None = None) -> None:
        """Close the current file; a pcapng file gets the kernel's counters in a statistics block."""
        w, self._writer = self._writer, None
        if w is None:
            return
        if isinstance(w, PcapngWriter) and received is not None and self.ifindex in self._ids:
            w.set_interface_stats(self._ids[self.ifindex], received, dropped or 0)
        w.close()


def pcap_block_records(
    ring: RingMemory, first: int, count: int, nanosecond: bool, snaplen: int, out: bytearray
) -> None:
    """Append pcap records (little endian) for ``count`` packets of a V3 block to ``out``.

    The capture-to-file hot loop: one header unpack, one record header, one slice per packet, no
    Packet objects. Stripped VLAN tags are put back, as ``frame_of`` does.
    """
    mv = ring.mv
    unpack = abi.TPACKET3_HDR.unpack_from
    pack = PCAP_RECORD.pack
    tag = _TAG.pack
    tagged_bits = abi.TP_STATUS_VLAN_VALID
    tpid_valid = abi.TP_STATUS_VLAN_TPID_VALID
    reinserted = ring.reinsert
    off = first
    for _ in range(count):
        nxt, sec, nsec, snap, wire, st, mac, _net, _rxhash, tci, tpid = unpack(mv, off)
        cap = snap if snap < snaplen else snaplen
        start = off + mac
        frac = nsec if nanosecond else nsec // 1000
        if (st & tagged_bits or tci) and not reinserted and cap >= 12:
            out += pack(sec, frac, cap + 4, wire + 4)
            out += mv[start : start + 12]
            out += tag(tpid if st & tpid_valid and tpid else abi.ETH_P_8021Q, tci & 0xFFFF)
            out += mv[start + 12 : start + cap]
        else:
            out += pack(sec, frac, cap, wire)
            out += mv[start : start + cap]
        off += nxt


#: epb_flags by Linux packet type (0..7), from the savefile module's mapping
_EPB_FLAGS = [PKTTYPE_TO_EPB_FLAGS.get(t, 0) for t in range(8)]


def pcapng_block_records(
    ring: RingMemory, first: int, count: int, iface_id: int, nanosecond: bool, snaplen: int, out: bytearray
) -> None:
    """Append pcapng EPBs (little endian, with direction flags) for ``count`` packets of a V3 block.

    The pcapng twin of :func:`pcap_block_records`, for one interface: what PcapngWriter.write would
    write for each packet, a block at a time. Stripped VLAN tags are put back.
    """
    mv = ring.mv
    unpack = abi.TPACKET3_HDR.unpack_from
    head = EPB_HEAD.pack
    tails = [t.pack for t in EPB_TAILS_FLAGS]
    tag = _TAG.pack
    flags_of = _EPB_FLAGS
    pkttype_at = ring.sll_off + 10  # sockaddr_ll.sll_pkttype
    tagged_bits = abi.TP_STATUS_VLAN_VALID
    tpid_valid = abi.TP_STATUS_VLAN_TPID_VALID
    reinserted = ring.reinsert
    off = first
    for _ in range(count):
        nxt, sec, nsec, snap, wire, st, mac, _net, _rxhash, tci, tpid = unpack(mv, off)
        cap = snap if snap < snaplen else snaplen
        start = off + mac
        ticks = sec * 1_000_000_000 + nsec if nanosecond else sec * 1_000_000 + nsec // 1000
        flags = flags_of[mv[off + pkttype_at] & 7]
        if (st & tagged_bits or tci) and not reinserted and cap >= 12:
            total = EPB_FIXED_FLAGS + cap + 4 + (-(cap + 4) & 3)
            out += head(EPB_TYPE, total, iface_id, ticks >> 32, ticks & 0xFFFFFFFF, cap + 4, wire + 4)
            out += mv[start : start + 12]
            out += tag(tpid if st & tpid_valid and tpid else abi.ETH_P_8021Q, tci & 0xFFFF)
            out += mv[start + 12 : start + cap]
            out += tails[(cap + 4) & 3](OPT_EPB_FLAGS, 4, flags, 0, 0, total)
        else:
            total = EPB_FIXED_FLAGS + cap + (-cap & 3)
            out += head(EPB_TYPE, total, iface_id, ticks >> 32, ticks & 0xFFFFFFFF, cap, wire)
            out += mv[start : start + cap]
            out += tails[cap & 3](OPT_EPB_FLAGS, 4, flags, 0, 0, total)
        off += nxt


def open_for(capture: Capture, path: str, fmt: Format = "pcap", **kwargs: object) -> CaptureFile:
    """A CaptureFile whose link type, snaplen and interface come from ``capture``."""
    raw = capture.sock_type == "raw"
    linktype = linktype_for(capture.hatype, socket.SOCK_RAW) if raw else LINKTYPE_LINUX_SLL
    ifindex = capture.socket.ifindex
    return CaptureFile(path, fmt=fmt, linktype=linktype, snaplen=capture.snaplen, interface=capture.interface,
                       ifindex=ifindex, **kwargs)  # type: ignore[arg-type]


def tee(packets: Iterable[Packet], out: CaptureFile, raw: bool = True) -> Iterator[Packet]:
    """Write every packet to ``out`` and pass it on: ``for pkt in tee(cap.packets(), out): ...``."""
    for pkt in packets:
        out.write_packet(pkt, raw)
        yield pkt


def dump(capture: Capture, path: str, *, fmt: Format = "pcap", count: int | None = None,
         duration: float | None = None, **kwargs: object) -> int:
    """Capture to a file in one call; returns the number of packets written. The file ends with the
    last whole packet even if the capture stops with an error."""
    out = open_for(capture, path, fmt, **kwargs)
    n = 0
    try:
        n = out.consume(capture, count, duration)
    finally:
        st = capture.stats()
        out.close(st.received, st.drops)
    return n


__all__ = [
    "CaptureFile", "cooked_header", "dump", "frame_of", "open_for", "pcap_block_records", "pcapng_block_records", "tee",
]

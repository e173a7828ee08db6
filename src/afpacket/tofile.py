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

from .errors import SavefileError
from .rx import Capture, Packet
from .savefile import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, PcapngWriter, PcapWriter, linktype_for
from .savefile.linktype import cooked_header

Format = Literal["pcap", "pcapng"]
_I32 = struct.Struct("=i")


def frame_of(pkt: Packet, raw: bool = True) -> tuple[bytes | memoryview, int]:
    """(bytes to store, length on the wire) for a live packet, as tcpdump would have written it
    (the ring kernels' rule, see :meth:`Packet.file_record`; ``raw`` is implied by the capture)."""
    return pkt.file_record()


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

    def write_packet(self, pkt: Packet, raw: bool = True) -> None:
        """One live packet, as :meth:`Packet.file_record` says it looks on disk."""
        data, wire = pkt.file_record()
        if self.fmt == "pcapng":
            self.write(pkt.timestamp_ns, data, wire, pkt.ifindex, pkt.pkttype)
        else:
            self.write(pkt.timestamp_ns, data, wire)

    def consume(self, capture: Capture, count: int | None = None, duration: float | None = None) -> int:
        """Write the capture's packets until ``count``, ``duration``, stop() or the end of -W files;
        returns how many were written. Records are built a batch at a time by the ring kernels
        (``pcap_records``/``pcapng_records``: no packet objects), for every ring version, socket type,
        ``any`` and rotated files; only PACKET_COPY_THRESH captures go packet by packet (their full
        copies live beside the ring)."""
        if capture.copy_thresh:
            start = self.written
            for pkt in capture.packets(count=count, duration=duration):
                self.write_packet(pkt)
                if self.done or (count is not None and self.written - start >= count):
                    break
            return self.written - start
        return self._consume_batches(capture, count, duration)

    def _consume_batches(self, capture: Capture, count: int | None, duration: float | None) -> int:
        k = capture.kernels
        start = self.written
        for batch in capture.batches(duration=duration):
            i, n = 0, batch.count
            if count is not None:
                n = min(n, count - (self.written - start))
            while i < n:
                w = self._writer
                if w is None:
                    break
                if self.rotate_seconds and time.monotonic() - self._opened_at >= self.rotate_seconds:
                    self._rotate()
                    continue
                if self.file_size and self._bytes > self.file_size:
                    self._rotate()
                    continue
                budget = self.file_size - self._bytes if self.file_size else -1
                out = w.pending  # records are formatted straight into the writer's buffer
                before = len(out)
                if isinstance(w, PcapngWriter):
                    j = k.pcapng_records(batch, i, n, out, self._ids, self.nanosecond, budget)
                    if j < n and len(out) == before:  # stopped at an interface not described yet
                        ring = batch.ring
                        (ifindex,) = _I32.unpack_from(ring.mv, batch.hdrs[j] + ring.sll_off + 4)
                        if ifindex not in self._ids:
                            self._interface_id(w, ifindex)
                            continue
                else:
                    j = k.pcap_records(batch, i, n, out, self.nanosecond, budget)
                self._bytes += len(out) - before
                w.commit_pending()
                self.written += j - i
                i = j
            if self.done or (count is not None and self.written - start >= count):
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


def open_for(capture: Capture, path: str, fmt: Format = "pcap", *, cooked: int = 2, **kwargs: object) -> CaptureFile:
    """A CaptureFile whose link type, snaplen and interface come from ``capture``. Packets of a SOCK_DGRAM
    (``any``) capture get a Linux cooked header: SLL2 (``cooked=2``, tcpdump's default: it records the
    interface and direction) or SLL (``cooked=1``, for readers that predate SLL2)."""
    raw = capture.sock_type == "raw"
    if raw:
        linktype = linktype_for(capture.hatype, socket.SOCK_RAW)
    else:
        capture._ring.set_cooked(cooked)  # the record kernels and Packet.file_record read it from the ring
        linktype = LINKTYPE_LINUX_SLL2 if cooked == 2 else LINKTYPE_LINUX_SLL
    ifindex = capture.socket.ifindex
    return CaptureFile(path, fmt=fmt, linktype=linktype, snaplen=capture.snaplen, interface=capture.interface,
                       ifindex=ifindex, **kwargs)  # type: ignore[arg-type]


def tee(packets: Iterable[Packet], out: CaptureFile, raw: bool = True) -> Iterator[Packet]:
    """Write every packet to ``out`` and pass it on: ``for pkt in tee(cap.packets(), out): ...``."""
    for pkt in packets:
        out.write_packet(pkt)
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


__all__ = ["CaptureFile", "cooked_header", "dump", "frame_of", "open_for", "tee"]

"""Capture to file: live packets into pcap/pcapng writers, with tcpdump's rotation (-C, -G, -W).

The savefile writers know nothing of sockets; this module is the bridge. It decides what a live packet
looks like on disk — the wire frame with its VLAN tag put back (SOCK_RAW), or a Linux cooked (SLL)
header built from the packet's sockaddr_ll in front of the network-layer data (SOCK_DGRAM and ``any``),
as libpcap writes them — and which interface description a packet belongs to.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from typing import Literal

from . import _check
from .errors import AfPacketError, CaptureClosedError, SavefileError
from .rx import Capture, Packet
from .savefile import LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, PcapngWriter, PcapWriter, linktype_for
from .savefile.linktype import cooked_header
from .savefile.pcapng import EPB_FIXED_FLAGS

Format = Literal["pcap", "pcapng"]
FORMATS: tuple[Format, ...] = ("pcap", "pcapng")
#: file name extensions that mean pcapng (compared lower-case); any other name means pcap
PCAPNG_EXTENSIONS = (".pcapng", ".ntar")
_I32 = struct.Struct("=i")


def format_for(path: str | os.PathLike[str], fmt: str | None = None) -> Format:
    """The savefile format to write ``path`` in: ``fmt`` when given ("pcap" or "pcapng"), else the one
    the file name says: ``.pcapng`` or ``.ntar`` (any case) mean pcapng, anything else (``.pcap``,
    ``.cap``, no extension, ``-`` for standard output) pcap, as libpcap writes by default.

    An explicit ``fmt`` wins over the extension (``format_for("x.pcap", "pcapng") == "pcapng"``), as
    tcpdump writes whatever it was told whatever the name. Raises ArgumentError for another ``fmt``,
    TypeError for a ``path`` that is not a str or path.
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file name (str or os.PathLike), not {type(path).__name__}")
    if fmt is not None:
        return _check.choice("", "fmt", fmt, FORMATS)  # type: ignore[return-value]
    name = os.fspath(path)
    if not isinstance(name, str):
        raise TypeError(f"path must be a str file name, not {type(name).__name__}")
    return "pcapng" if name.lower().endswith(PCAPNG_EXTENSIONS) else "pcap"


def frame_of(pkt: Packet, raw: bool = True) -> tuple[bytes | memoryview, int]:
    """(bytes to store, length on the wire) for a live packet ``pkt``, as tcpdump would have written it
    (the ring kernels' rule, see :meth:`Packet.file_record`). ``raw`` is ignored (the packet knows its
    capture's socket type) and kept for compatibility."""
    return pkt.file_record()


class CaptureFile:
    """Writes a capture's packets to a file, rotating like tcpdump. :func:`open_for` makes one for a
    capture (link type, snaplen and interface taken from it); :func:`dump` does it all in one call.

    Example::

        with afpacket.Capture("eth0") as cap:
            out = afpacket.tofile.open_for(cap, "ring.pcapng", file_size=100_000_000, file_count=10)
            try:
                out.consume(cap, duration=60)
            finally:
                st = cap.stats()
                out.close(st.received, st.drops)

    Parameters (all but ``path`` keyword-only):

    - ``path``: the file name (``"-"``: standard output). It may hold strftime fields (filled in with
      ``rotate_seconds``).
    - ``fmt``: ``"pcap"`` or ``"pcapng"``; None (the default) takes it from the name's extension
      (``.pcapng``/``.ntar``: pcapng, anything else: pcap; see :func:`format_for`). An explicit
      ``fmt`` wins over the extension.
    - ``linktype``: the LINKTYPE_* of the packets (required); ``snaplen``: the longest record kept
      (required).
    - ``nanosecond``: nanosecond time stamps (pcap's nanosecond magic, pcapng if_tsresol 9); default µs.
    - ``unbuffered``: every record reaches the file before the write returns (tcpdump -U).
    - ``interface``/``ifindex``: the capture interface's name and index, described up front in a
      pcapng file (others, on ``any``, are described when first seen); 0 for none.
    - ``file_size`` (bytes; tcpdump -C counts millions): start a new file once the current one has
      passed it: ``path``, ``path1``, ``path2``, ... or, with ``file_count`` (-W), a ring ``path0`` ..
      ``path{W-1}`` that is reused.
    - ``rotate_seconds`` (-G): start a new file every so many seconds; with ``file_count`` the capture
      ends after that many files (``done`` turns true). None or 0 turns each of the three off. A file
      that a rotation opens takes at least the record that opened it, as tcpdump rotates at most once
      per packet: a limit below one record's time or a file header's size makes a file per record
      (or per run of records the ring kernels write), never an endless run of empty files.

    Every file is complete on its own. Raises TypeError for an argument of the wrong type (or an
    unknown keyword, as any Python function), ArgumentError for an unusable value (an unknown
    ``fmt``, a negative size or count, a NaN or infinite time), SavefileError when the file cannot be
    created or rotation is asked of standard output.

    Accounting, exact once :meth:`close` returned (or raised): every packet taken from the capture
    (:attr:`taken`) is either in a file (:attr:`written`) or counted in :attr:`not_written` (a full disk,
    a closed pipe; :attr:`error` says why). A write that fails ends the file at its last whole record
    (a file with no room even for its header is removed) and raises a SavefileError; so does every
    later write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fmt: Format | None = None,
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
        where = "CaptureFile()"
        fmt = format_for(path, fmt)
        path = os.fspath(path)
        linktype = _check.count(where, "linktype", linktype, optional=False)  # type: ignore[assignment]
        snaplen = _check.count(where, "snaplen", snaplen, allow_zero=False, optional=False)  # type: ignore[assignment]
        if not isinstance(interface, str):
            raise TypeError(f"{where}: interface must be a str, not {type(interface).__name__}")
        ifindex = _check.count(where, "ifindex", ifindex, optional=False)  # type: ignore[assignment]
        # 0 means "off" for the three rotation limits, as None does (tcpdump's -C/-G/-W defaults)
        file_size = _check.count(where, "file_size", file_size)
        rotate_seconds = _check.seconds(where, "rotate_seconds", rotate_seconds)
        file_count = _check.count(where, "file_count", file_count)
        if path == "-" and (file_size or rotate_seconds):
            raise SavefileError("file rotation (-C/-G) needs a file name, not '-' (standard output)")
        self.template = path
        self.fmt: Format = fmt
        self.linktype = linktype
        self.snaplen = snaplen
        self.nanosecond = _check.flag(where, "nanosecond", nanosecond)
        self.unbuffered = _check.flag(where, "unbuffered", unbuffered)
        self.interface = interface
        self.ifindex = ifindex
        self.file_size = file_size
        self.rotate_seconds = rotate_seconds
        self.file_count = file_count
        self.files: list[str] = []
        self.done = False
        self._records_closed = 0  # packet records in the files closed so far
        self._lost_closed = 0  # and those that could not be written to them
        self._error: SavefileError | None = None
        self._kept: dict[str, int] = {}  # records per closed file, to know what a reused (-W) file held
        #: packets written to files that a -W ring of files has since started over
        self.overwritten = 0
        self._serial = 0
        self._writer: PcapWriter | PcapngWriter | None = None
        self._ids: dict[int, int] = {}
        self._bytes = 0
        self._opened_at = 0.0
        #: the current file was opened by a rotation and holds no record yet: it takes the next record
        #: whatever the limits say, so every rotation is followed by a write (see :meth:`_rotation_due`)
        self._fresh = False
        self._open()

    # -- accounting -----------------------------------------------------------------------------
    @property
    def taken(self) -> int:
        """Packets handed to the writers, over all files: written, still buffered, or not written
        (up to date even when a capture stops on an error)."""
        w = self._writer
        if w is None:
            return self._records_closed + self._lost_closed
        return self._records_closed + self._lost_closed + w.records + w.lost + w.buffered

    @property
    def written(self) -> int:
        """Packets in the file(s), over all files: records written out whole (for a -W ring of files,
        including the :attr:`overwritten` ones). Exact after :meth:`close`; while writing, records still
        in the write buffer are not counted yet (:attr:`taken` counts them)."""
        w = self._writer
        return self._records_closed + (w.records if w is not None else 0)

    @property
    def not_written(self) -> int:
        """Packets taken from the capture that could not be written (the disk was full, the reader of
        the pipe went away, ...): :attr:`error` says why."""
        w = self._writer
        return self._lost_closed + (w.lost if w is not None else 0)

    @property
    def error(self) -> SavefileError | None:
        """The write error that ended the capture file (its ``errno`` and ``reason`` say why when it is a
        :class:`~afpacket.savefile.WriteError`), or None."""
        w = self._writer
        if self._error is None and w is not None:
            return w.error
        return self._error

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
        self.overwritten += self._kept.pop(name, 0)
        self.files.append(name)
        self._bytes = w.size  # the file header (and interface block) count toward -C, as in tcpdump
        self._opened_at = time.monotonic()

    def _close_writer(self, received: int | None = None, dropped: int | None = None) -> None:
        """Close the current file (with a statistics block when counters are given) and add its counts
        to the totals, also when closing fails (the records that did not fit are counted as not written)."""
        w, self._writer = self._writer, None
        if w is None:
            return
        try:
            if isinstance(w, PcapngWriter) and received is not None and self.ifindex in self._ids:
                w.set_interface_stats(self._ids[self.ifindex], received, dropped or 0)
            w.close()
        except SavefileError as e:
            if self._error is None:
                self._error = e
            raise
        finally:
            self._records_closed += w.records
            self._kept[w.name] = w.records
            self._lost_closed += w.lost
            if self._error is None:
                self._error = w.error

    def _rotation_due(self) -> bool:
        """Whether the next record goes to a new file: the current one has passed ``file_size`` or lived
        ``rotate_seconds``. Never for a file that a rotation has just opened and that holds no record
        yet: as tcpdump rotates at most once per packet, the record that started a file goes into it,
        however small the period or the size limit (below the time one record takes, or the size of a
        file header, a limit would otherwise make a new file again and again and never write)."""
        if self._fresh:
            return False
        if self.rotate_seconds and time.monotonic() - self._opened_at >= self.rotate_seconds:
            return True
        return bool(self.file_size) and self._bytes > (self.file_size or 0)

    def _rotate(self) -> None:
        self._close_writer()
        self._serial += 1
        if self.rotate_seconds and self.file_count and not self.file_size and self._serial >= self.file_count:
            self._writer = None
            self.done = True
            return
        try:
            self._open()
        except SavefileError as e:  # no room for the next file: the capture file ends here
            if self._error is None:
                self._error = e
            raise
        self._fresh = True

    # -- records --------------------------------------------------------------------------------
    def _interface_id(self, w: PcapngWriter, ifindex: int) -> int:
        iid = self._ids.get(ifindex)
        if iid is None:  # a capture on "any": one interface description per interface seen
            try:
                name = socket.if_indextoname(ifindex)
            except OSError:
                name = f"ifindex{ifindex}"
            before = w.size
            iid = self._ids[ifindex] = w.add_interface(
                name, self.linktype, self.snaplen, 9 if self.nanosecond else 6, ifindex=ifindex
            )
            self._bytes += w.size - before
        return iid

    def write(self, ts_ns: int, data: bytes | memoryview, wire_len: int, ifindex: int = 0, pkttype: int = 0) -> None:
        """Append one record: ``data`` (the bytes as stored, link header included) captured at ``ts_ns``
        (ns since the epoch), ``wire_len`` bytes long on the wire; for pcapng, seen on interface
        ``ifindex`` (described on first sight) with Linux packet type ``pkttype`` (direction).
        Rotates first when a size or time limit is due. Raises SavefileError once a -W run of files
        is finished (``done``) or when the write fails (the file keeps its last whole record)."""
        w = self._writer
        if w is None:
            raise SavefileError("capture file is finished (-W file count reached)")
        if (self.rotate_seconds or self.file_size) and self._rotation_due():
            self._rotate()
            w = self._writer
            if w is None:
                return
        self._fresh = False
        if isinstance(w, PcapngWriter):
            w.write(ts_ns, data, wire_len, self._interface_id(w, ifindex), pkttype)
            n = len(data)
            self._bytes += EPB_FIXED_FLAGS + n + (-n & 3)  # the block as written: flags option, padding
        else:
            w.write(ts_ns, data, wire_len)
            self._bytes += 16 + len(data)

    def write_packet(self, pkt: Packet, raw: bool = True) -> None:
        """Append one live packet ``pkt``, as :meth:`Packet.file_record` says it looks on disk (VLAN tag
        put back, cooked header for SOCK_DGRAM). ``raw`` is ignored (the packet knows its capture's
        socket type) and kept for compatibility. Errors as :meth:`write`."""
        data, wire = pkt.file_record()
        if self.fmt == "pcapng":
            self.write(pkt.timestamp_ns, data, wire, pkt.ifindex, pkt.pkttype)
        else:
            self.write(pkt.timestamp_ns, data, wire)

    def consume(
        self, capture: Capture, count: int | None = None, duration: float | None = None, timeout: float | None = None
    ) -> int:
        """Write the packets of ``capture`` until ``count`` packets, ``duration`` seconds in all,
        ``timeout`` seconds without a packet (all optional, as in :meth:`Capture.packets`), stop() or
        the end of -W files; returns how many were taken (written, or buffered to be written).

        Records are built a batch at a time by the ring kernels (``pcap_records``/``pcapng_records``:
        no packet objects), for every ring version, socket type, ``any`` and rotated files; only
        PACKET_COPY_THRESH captures go packet by packet (their full copies live beside the ring).
        When ``count`` ends in the middle of a batch (a V3 block, a run of V1/V2 frames), the rest of
        that batch is handed back to the kernel unread: the kernel counts those packets as received,
        they are neither written nor dropped, and a later read does not see them (``packets(count=)``
        keeps them; the CLI's ``-c`` ends the capture there, as tcpdump's does).
        Raises ArgumentError/TypeError for a bad limit, SavefileError when writing fails (see the
        class's accounting).
        """
        count = _check.count("consume()", "count", count)
        duration = _check.seconds("consume()", "duration", duration)
        timeout = _check.seconds("consume()", "timeout", timeout)
        if count == 0:
            return 0
        if capture.copy_thresh:
            start = self.taken
            for pkt in capture.packets(count=count, duration=duration, timeout=timeout):
                self.write_packet(pkt)
                if self.done or (count is not None and self.taken - start >= count):
                    break
            return self.taken - start
        return self._consume_batches(capture, count, duration, timeout)

    def _consume_batches(
        self, capture: Capture, count: int | None, duration: float | None, timeout: float | None
    ) -> int:
        k = capture.kernels
        start = self.taken
        for batch in capture.batches(duration=duration, timeout=timeout):
            i, n = 0, batch.count
            if count is not None:
                n = min(n, count - (self.taken - start))
            while i < n:
                w = self._writer
                if w is None:
                    break
                if (self.rotate_seconds or self.file_size) and self._rotation_due():
                    self._rotate()
                    continue
                # A fresh file over its size already (a header larger than file_size) takes one record.
                budget = max(self.file_size - self._bytes, 0) if self.file_size else -1
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
                if j > i:
                    self._fresh = False
                w.commit_pending(j - i)  # may raise (disk full): the writer has counted them by then
                i = j
            if self.done or (count is not None and self.taken - start >= count):
                break
        return self.taken - start

    def flush(self) -> None:
        """Write every buffered record to the current file now (SavefileError if that fails)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self, received: int | None = None, dropped: int | None = None) -> None:
        """Close the current file. A pcapng file gets the capture's counters in an Interface
        Statistics Block: ``received`` packets (by the filter) and ``dropped`` (the kernel's, from
        :meth:`Capture.stats`); None writes none. After a failed write the block is still written if
        it fits. Safe to call twice. Raises SavefileError when the buffered records cannot be written
        (they are counted in :attr:`not_written`)."""
        self._close_writer(received, dropped)


def open_for(
    capture: Capture,
    path: str | os.PathLike[str],
    fmt: Format | None = None,
    *,
    cooked: int = 2,
    nanosecond: bool = False,
    unbuffered: bool = False,
    file_size: int | None = None,
    rotate_seconds: float | None = None,
    file_count: int | None = None,
) -> CaptureFile:
    """A :class:`CaptureFile` at ``path`` whose link type, snaplen and interface come from ``capture``.

    ``fmt`` is "pcap" or "pcapng", or None to follow the file name's extension (see
    :func:`format_for`). Packets of a SOCK_DGRAM (``any``) capture get a Linux cooked header: SLL2
    (``cooked=2``, tcpdump's default: it records the interface and direction) or SLL (``cooked=1``,
    for readers that predate SLL2). ``nanosecond``, ``unbuffered``, ``file_size``, ``rotate_seconds``
    and ``file_count`` are :class:`CaptureFile`'s. An unknown keyword is a TypeError; other errors as
    :class:`CaptureFile`.

    Example::

        out = open_for(cap, "dns.pcapng")
        for pkt in tee(cap.packets(count=100), out):
            ...
        out.close()
    """
    if not isinstance(capture, Capture):
        raise TypeError(f"open_for(): capture must be an afpacket.Capture, not {type(capture).__name__}")
    fmt = format_for(path, fmt)
    raw = capture.sock_type == "raw"
    if raw:
        linktype = linktype_for(capture.hatype, socket.SOCK_RAW)
    else:
        _check.choice("open_for()", "cooked", cooked, (1, 2))
        capture._ring.set_cooked(cooked)  # the record kernels and Packet.file_record read it from the ring
        linktype = LINKTYPE_LINUX_SLL2 if cooked == 2 else LINKTYPE_LINUX_SLL
    ifindex = capture.socket.ifindex
    return CaptureFile(
        path, fmt=fmt, linktype=linktype, snaplen=capture.snaplen, interface=capture.interface, ifindex=ifindex,
        nanosecond=nanosecond, unbuffered=unbuffered, file_size=file_size, rotate_seconds=rotate_seconds,
        file_count=file_count,
    )


def tee(packets: Iterable[Packet], out: CaptureFile, raw: bool = True) -> Iterator[Packet]:
    """Write every packet of ``packets`` to ``out`` (a :class:`CaptureFile`) and pass it on. ``raw`` is
    ignored (each packet knows its capture's socket type) and kept for compatibility. Raises
    TypeError at the call when ``out`` is not a CaptureFile; write errors as :meth:`CaptureFile.write`.

    Example::

        for pkt in tee(cap.packets(count=100), out):
            print(pkt.wire_len)
    """
    if not isinstance(out, CaptureFile):
        raise TypeError(f"tee(): out must be a CaptureFile (afpacket.tofile.open_for), not {type(out).__name__}")
    return _tee(iter(packets), out)


def _tee(packets: Iterator[Packet], out: CaptureFile) -> Iterator[Packet]:
    for pkt in packets:
        out.write_packet(pkt)
        yield pkt


def dump(
    capture: Capture,
    path: str | os.PathLike[str],
    *,
    fmt: Format | None = None,
    count: int | None = None,
    duration: float | None = None,
    timeout: float | None = None,
    cooked: int = 2,
    nanosecond: bool = False,
    unbuffered: bool = False,
    file_size: int | None = None,
    rotate_seconds: float | None = None,
    file_count: int | None = None,
) -> int:
    """Capture from ``capture`` to the file ``path`` in one call; returns the number of packets written.

    Stops after ``count`` packets, ``duration`` seconds in all, ``timeout`` seconds without a packet
    (as :meth:`Capture.packets`), at stop(), or when a -W run of files is complete; with no limit it
    runs until stop()/close() from another thread or a signal handler. When ``count`` ends in the middle
    of a batch, the rest of that batch goes back to the kernel unread (see :meth:`CaptureFile.consume`).
    ``fmt`` is "pcap" or "pcapng", or None (the default) to follow the file name: ``out.pcapng`` is
    pcapng, anything else pcap (see :func:`format_for`; an explicit ``fmt`` wins). ``cooked``, ``nanosecond``,
    ``unbuffered``, ``file_size``, ``rotate_seconds`` and ``file_count`` are :func:`open_for`'s.

    VLAN tags the kernel stripped are put back; a pcapng file ends with the kernel's counters (an
    Interface Statistics Block; none when the capture was closed meanwhile, its counters are gone).
    Whatever ends it — a limit, stop(), close() from another thread (the count of packets written is
    returned, as for a limit), an error from the capture or from the file — every packet it took is
    in the file, which is closed and ends with a whole record, or is counted as not written (a full
    disk: the SavefileError raised says so). An unknown keyword is a TypeError (as for any Python
    function), a bad value an ArgumentError naming the parameter; SavefileError when the file cannot
    be written.

    Example::

        with afpacket.Capture("eth0", filter="tcp port 443") as cap:
            n = afpacket.dump(cap, "tls.pcapng", count=10_000, timeout=5)
    """
    fmt = format_for(path, fmt)
    count = _check.count("dump()", "count", count)
    duration = _check.seconds("dump()", "duration", duration)
    timeout = _check.seconds("dump()", "timeout", timeout)
    out = open_for(
        capture, path, fmt, cooked=cooked, nanosecond=nanosecond, unbuffered=unbuffered, file_size=file_size,
        rotate_seconds=rotate_seconds, file_count=file_count,
    )
    try:
        out.consume(capture, count, duration, timeout)
    except CaptureClosedError:
        pass  # close() from another thread: the documented way to end an unbounded dump
    except SavefileError:
        raise
    except (AfPacketError, OSError, ValueError):
        if not getattr(capture, "_closed", False):
            raise
        # Closed from another thread while the reader was inside the walk: an older capture could end
        # the walk with LinkDownError, EBADF or an expired batch; the packets taken are kept all the same.
    finally:
        received: int | None = None
        dropped: int | None = None
        try:
            st = capture.stats()
            received, dropped = st.received, st.drops
        except (AfPacketError, OSError):
            pass  # closed meanwhile: the file is closed all the same, without a statistics block
        out.close(received, dropped)
    return out.written


__all__ = ["FORMATS", "CaptureFile", "cooked_header", "dump", "format_for", "frame_of", "open_for", "tee"]

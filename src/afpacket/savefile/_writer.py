"""What the pcap and pcapng writers share: whole-record buffering, flush, close, live packets, and the
count of packet records that reached the file (``records``) and that could not (``lost``)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from ..errors import SavefileError
from ._io import FLUSH_THRESHOLD, Boundary, PathOrFile, Sink, WriteError


class CapturedPacket(Protocol):
    """The part of a live-capture packet a writer needs (afpacket's RX packet has all of it)."""

    @property
    def timestamp_ns(self) -> int:
        """Receive time, ns since the epoch."""
        ...
    @property
    def wire_len(self) -> int:
        """Length on the wire."""
        ...
    @property
    def pkttype(self) -> int:
        """Linux PACKET_* type (direction)."""
        ...
    @property
    def ifindex(self) -> int:
        """Index of the interface it was seen on."""
        ...
    @property
    def vlan_present(self) -> bool:
        """The kernel stripped a VLAN tag into metadata."""
        ...
    @property
    def data(self) -> memoryview:
        """The captured bytes."""
        ...
    def file_record(self) -> tuple[bytes | memoryview, int]:
        """(bytes, wire length) as a file stores the packet: stripped VLAN tag put back, or a cooked
        header for SOCK_DGRAM captures. One owner of that rule: afpacket's packets and ring kernels."""
        ...
    def tagged(self) -> bytes:
        """The frame with its stripped VLAN tag put back."""
        ...


class RecordWriter:
    """Buffers whole records in ``self._buf`` and hands them to the sink in whole records only.

    Subclasses append one complete record to ``self._buf`` per write, add one to ``self._pending`` for
    a packet record, and then call ``self._commit()``.

    Accounting: ``records`` counts the packet records known to be in the file (written out whole),
    ``lost`` those that could not be written (a full disk, a closed pipe: the ones after the file's last
    whole record), ``error`` is the WriteError that ended the file (None while all is well). Records
    still in the buffer are in neither count; after :meth:`close` every record written is in one of them.
    """

    def __init__(
        self, target: PathOrFile, boundary: Boundary, *, unbuffered: bool = False, reinsert_vlan: bool = True
    ) -> None:
        self._sink = Sink(target, boundary)
        self.name = self._sink.name
        self.unbuffered = unbuffered
        self.reinsert_vlan = reinsert_vlan
        self._buf = bytearray()
        # 0 makes every write drain the buffer: tcpdump -U, "packet-buffered" output.
        self._threshold = 0 if unbuffered else FLUSH_THRESHOLD
        self._closed = False
        self._failed = False
        #: packet records in the file / that could not be written / in the buffer
        self.records = 0
        self.lost = 0
        self._pending = 0
        self.error: WriteError | None = None

    def _start(self, header: bytes) -> None:
        """Write the file header at once, so even an empty capture is a valid file. On failure close,
        and remove a file this writer created that did not get even its header (it could not be read)."""
        self._buf += header
        try:
            self._sink.write_records(self._buf, header=True)
        except BaseException:
            self._closed = True
            self._sink.discard()
            raise
        finally:
            self._buf.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise SavefileError(f"{self.name}: write after close()")
        if self._failed:
            raise SavefileError(f"{self.name}: an earlier write failed; the file ends at its last whole record")

    def _commit(self) -> None:
        """Write the buffered records out if the buffer is full (or on every record when unbuffered)."""
        if len(self._buf) >= self._threshold:
            self._drain()
            if self.unbuffered:
                self._sink.flush()

    def _drain(self) -> None:
        if not self._buf:
            return
        pending, self._pending = self._pending, 0
        try:
            self._sink.write_records(self._buf)
        except WriteError as e:
            self._failed = True
            if self.error is None:
                self.error = e
            self.records += e.records
            self.lost += pending - e.records
            raise
        except BaseException:
            self._failed = True
            self.lost += pending
            raise
        finally:
            self._buf.clear()
        self.records += pending

    def write_raw(self, records: bytes | bytearray | memoryview, count: int = 0) -> None:
        """Append whole records already in this file's format (and byte order); ``count`` is how many
        packet records they hold (for :attr:`records`/:attr:`lost`; 0 leaves them uncounted).

        For fast paths that format a batch of records at once (afpacket.tofile does, a V3 block at a
        time); the records are buffered and written like any others.
        """
        if self._closed or self._failed:
            self._check_open()
        self._buf += records
        self._pending += count
        if len(self._buf) >= self._threshold:
            self._commit()

    @property
    def size(self) -> int:
        """Bytes of the file so far: written out, plus what the buffer holds (what -C rotation measures)."""
        return self._sink.offset + len(self._buf)

    @property
    def buffered(self) -> int:
        """Packet records in the buffer, not written yet (flush() or close() writes them)."""
        return self._pending

    @property
    def pending(self) -> bytearray:
        """The buffer whole records are appended to, for fast paths that format records in place (the
        ring kernels do); call :meth:`commit_pending` after appending. Saves a copy per record."""
        if self._closed or self._failed:
            self._check_open()
        return self._buf

    def commit_pending(self, count: int = 0) -> None:
        """Count ``count`` packet records appended to :attr:`pending`, and write the buffer out if it
        is full. On a failed write the records are counted as :attr:`records` or :attr:`lost`."""
        self._pending += count
        self._commit()

    def flush(self) -> None:
        """Write every buffered record to the file and flush it."""
        self._check_open()
        self._drain()
        self._sink.flush()

    def _finish(self) -> None:
        """Called once by close() before the buffer is drained: add trailing blocks here."""

    def close(self) -> None:
        """Write what is buffered and close the file (if this writer opened it). Safe to call twice.

        After a failed write the trailing blocks (pcapng's statistics) are still tried, since cutting the
        file back may have left room for them; a second failure is not raised again."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._failed:
                self._finish()
                self._drain()
                self._sink.flush()
            else:
                self._buf.clear()
                self._pending = 0
                self._finish()
                try:
                    self._drain()
                    self._sink.flush()
                except SavefileError:
                    pass
        finally:
            self._sink.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

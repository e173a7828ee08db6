"""What the pcap and pcapng writers share: whole-record buffering, flush, close, and live packets."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from ..errors import SavefileError
from ._io import FLUSH_THRESHOLD, PathOrFile, Sink

Boundary = Callable[[bytes | bytearray, int], int]


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

    Subclasses append one complete record to ``self._buf`` per write and then call ``self._commit()``.
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

    def _start(self, header: bytes) -> None:
        """Write the file header at once, so even an empty capture is a valid file; close on failure."""
        self._buf += header
        try:
            self._drain()
        except BaseException:
            self._closed = True
            self._sink.close()
            raise

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
        try:
            self._sink.write_records(self._buf)
        except SavefileError:
            self._failed = True
            raise
        finally:
            self._buf.clear()

    def write_raw(self, records: bytes | bytearray | memoryview) -> None:
        """Append whole records already in this file's format (and byte order).

        For fast paths that format a batch of records at once (afpacket.tofile does, a V3 block at a
        time); the records are buffered and written like any others.
        """
        if self._closed or self._failed:
            self._check_open()
        self._buf += records
        if len(self._buf) >= self._threshold:
            self._commit()

    @property
    def pending(self) -> bytearray:
        """The buffer whole records are appended to, for fast paths that format records in place (the
        ring kernels do); call :meth:`commit_pending` after appending. Saves a copy per record."""
        if self._closed or self._failed:
            self._check_open()
        return self._buf

    def commit_pending(self) -> None:
        """Write the buffer out if it is full (see :attr:`pending`)."""
        self._commit()

    def flush(self) -> None:
        """Write every buffered record to the file and flush it."""
        self._check_open()
        self._drain()
        self._sink.flush()

    def _finish(self) -> None:
        """Called once by close() before the buffer is drained: add trailing blocks here."""

    def close(self) -> None:
        """Write what is buffered and close the file (if this writer opened it). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._failed:
                self._finish()
                self._drain()
                self._sink.flush()
        finally:
            self._sink.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

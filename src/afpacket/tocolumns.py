"""Capture to Parquet: one row per packet, the columns an analyst queries (``afpacket capture --format parquet``).

Columns: ``ts`` (receive time, ns, UTC), ``caplen``, ``wire_len``, ``proto`` (IP protocol number, null for
non-IP), ``src``/``dst`` (addresses as text), ``sport``/``dport`` (ICMP: type and code), ``ip_len``,
``tcp_flags``, ``vlan``, ``rxhash``, ``pkttype``, ``ifindex``, and with ``payload_bytes=N`` a ``data`` column
holding each packet's first N bytes. The ring's metadata comes from the core's ``columns_of`` (one call per
batch); the 5-tuple from :func:`afpacket.flows.packet.flow_fields`. Rows are buffered as Python lists and
written a row group at a time (``ROW_GROUP`` rows) by pyarrow's ParquetWriter under a hidden ``.NAME.tmp``
name, renamed to NAME when the file is closed, so no reader sees a half file.

:class:`ColumnFile` offers what ``afpacket capture`` asks of a :class:`~afpacket.tofile.CaptureFile`
(``consume``, ``written``, ``taken``, ``files``, ``close``), so the command's accounting is the same.
"""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Final

from .errors import AfPacketError, SavefileError
from .flows.packet import flow_fields
from .savefile.linktype import LINKTYPE_ETHERNET, LINKTYPE_RAW

if TYPE_CHECKING:
    from .rx.capture import Capture

#: rows per Parquet row group
ROW_GROUP: Final = 65536
#: column name -> Arrow type name (see :func:`schema`)
COLUMNS: Final = {
    "ts": "timestamp_ns", "caplen": "uint32", "wire_len": "uint32", "proto": "uint8", "src": "string",
    "dst": "string", "sport": "uint16", "dport": "uint16", "ip_len": "uint32", "tcp_flags": "uint8",
    "vlan": "uint16", "rxhash": "uint32", "pkttype": "uint8", "ifindex": "int32",
}


def _pyarrow() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import pyarrow.parquet  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise AfPacketError("writing Parquet needs pyarrow: pip install 'afpacket[flows]'") from None
    return pyarrow


def schema(payload_bytes: int = 0) -> Any:
    """The Arrow schema of a column file (with a ``data`` column when ``payload_bytes``)."""
    pa = _pyarrow()
    types = {"timestamp_ns": pa.timestamp("ns", tz="UTC"), "string": pa.string(), "uint8": pa.uint8(),
             "uint16": pa.uint16(), "uint32": pa.uint32(), "int32": pa.int32()}
    fields = [pa.field(name, types[t]) for name, t in COLUMNS.items()]
    if payload_bytes:
        fields.append(pa.field("data", pa.binary()))
    return pa.schema(fields)


class ColumnFile:
    """Packets of a capture as rows of a Parquet file at ``path`` (see the module docstring).

    ``payload_bytes``: keep each packet's first N bytes in a ``data`` column (0: none). Raises AfPacketError
    without pyarrow, SavefileError when the file cannot be created or written.
    """

    def __init__(self, path: str | os.PathLike[str], *, payload_bytes: int = 0, linktype: int = LINKTYPE_ETHERNET
                 ) -> None:
        pa = _pyarrow()
        self.path = os.fspath(path)
        if self.path == "-":
            raise AfPacketError("--format parquet writes a file: give -w FILE.parquet, not -w -")
        self.payload_bytes = payload_bytes
        self.linktype = linktype
        directory, name = os.path.split(os.path.abspath(self.path))
        self._tmp = os.path.join(directory, f".{name}.tmp")
        self._schema = schema(payload_bytes)
        try:
            self._writer = pa.parquet.ParquetWriter(self._tmp, self._schema, compression="zstd")
        except OSError as e:
            raise SavefileError(f"cannot create {self.path}: {e.strerror or e}") from None
        self._rows: dict[str, list[Any]] = {name: [] for name in self._schema.names}
        self.written = 0  # rows in the file (or buffered for it)
        self.taken = 0
        self.not_written = 0
        self.overwritten = 0
        self.error: str | None = None
        self.done = False
        self.files = [self.path]
        self._closed = False

    def consume(self, capture: Capture, count: int | None = None, duration: float | None = None,
                timeout: float | None = None) -> int:
        """Write ``capture``'s packets until ``count`` packets, ``duration`` seconds, ``timeout`` seconds without
        one, or stop(); returns how many were taken."""
        from .rx.columns import columns_of

        k = capture.kernels
        linktype = LINKTYPE_RAW if capture.sock_type == "dgram" else self.linktype
        start = self.taken
        for batch in capture.batches(duration=duration, timeout=timeout):
            n = batch.count
            if count is not None:
                n = min(n, count - (self.taken - start))
            cols = columns_of(k, batch)
            self._add(k.frame_bytes(batch)[:n], cols, n, linktype)
            if count is not None and self.taken - start >= count:
                break
        return self.taken - start

    def _add(self, frames: list[bytes], cols: Any, n: int, linktype: int) -> None:
        r = self._rows
        ts, caplen, wire, vlan, rxhash, pkttype, ifindex = (r["ts"], r["caplen"], r["wire_len"], r["vlan"],
                                                           r["rxhash"], r["pkttype"], r["ifindex"])
        proto, src, dst, sport, dport, ip_len, flags = (r["proto"], r["src"], r["dst"], r["sport"], r["dport"],
                                                       r["ip_len"], r["tcp_flags"])
        data = r.get("data")
        keep = self.payload_bytes
        ntop = socket.inet_ntop
        for i in range(n):
            frame = frames[i]
            f = flow_fields(frame, linktype, cols.vlan_tci[i])
            ts.append(cols.timestamp_ns[i])
            caplen.append(cols.caplen[i])
            wire.append(cols.wire_len[i])
            rxhash.append(cols.rxhash[i])
            pkttype.append(cols.pkttype[i])
            ifindex.append(cols.ifindex[i])
            if f is None:
                vlan.append(cols.vlan_tci[i] & 0xFFF)
                for col in (proto, src, dst, sport, dport, ip_len, flags):
                    col.append(None)
            else:
                v, p, s, d, sp, dp, il, _payload, fl = f
                fam = socket.AF_INET if len(s) == 4 else socket.AF_INET6
                vlan.append(v)
                proto.append(p)
                src.append(ntop(fam, s))
                dst.append(ntop(fam, d))
                sport.append(sp)
                dport.append(dp)
                ip_len.append(il)
                flags.append(fl)
            if data is not None:
                data.append(frame[:keep])
        self.taken += n
        self.written += n
        if len(ts) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as a row group."""
        if not self._rows["ts"]:
            return
        pa = _pyarrow()
        try:
            table = pa.Table.from_pydict(self._rows, schema=self._schema)
            self._writer.write_table(table)
        except OSError as e:
            self.error = f"{e.strerror or e}"
            raise SavefileError(f"writing {self.path} failed: {self.error}") from None
        for col in self._rows.values():
            col.clear()

    def write_packet(self, pkt: Any) -> None:
        """One packet object (the capture's per-packet path, e.g. PACKET_COPY_THRESH captures)."""
        one = SimpleNamespace(timestamp_ns=[pkt.timestamp_ns], caplen=[pkt.caplen], wire_len=[pkt.wire_len],
                              vlan_tci=[pkt.vlan_tci], rxhash=[pkt.rxhash], pkttype=[pkt.pkttype],
                              ifindex=[pkt.ifindex])
        self._add([bytes(pkt)], one, 1, self.linktype)

    def close(self, received: int | None = None, dropped: int | None = None) -> None:
        """Write what is buffered, close the file and give it its name (``received``/``dropped``: accepted for
        the same call as CaptureFile's; Parquet has no place for them)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            self._writer.close()
            os.replace(self._tmp, self.path)


__all__ = ["COLUMNS", "ROW_GROUP", "ColumnFile", "schema"]

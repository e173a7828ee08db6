"""Flow metering: packets in, one bidirectional record per conversation out.

A flow is keyed by (VLAN, IP protocol, the two endpoints) with the endpoints in a fixed order, so both
directions land in one entry; ICMP and ICMPv6 are keyed without type and code, so an echo request and its
reply are one flow (its record still reports the first packet's type and code as ``orig_p``/``resp_p``, as
Zeek does). The originator is the sender of the first packet seen.

A flow ends, and its record is handed on, when:

* no packet came for ``idle_timeout`` seconds (``idle``), noticed by the next packet of the flow or by the
  sweep that runs once a second of packet time;
* it has been open ``active_timeout`` seconds (``active``): the record is written and the next packet starts a
  new one, so a long transfer shows up before it ends;
* TCP: a reset, or a FIN from both sides (``rst``/``fin``): the flow stays for :data:`CLOSE_GRACE` seconds so
  the last ACKs are counted in it, as Zeek waits, then ends; a SYN in that time starts a new flow at once;
* the table holds ``max_flows`` and a new flow arrives: the oldest (earliest started) is ended early and
  counted (``evicted``), so memory stays bounded whatever the traffic;
* :meth:`FlowMeter.finish` (the capture or file ended: ``end``).

Time is the packets' own clock, never the wall clock, so a file gives the same records however fast it is
read; a live capture calls :meth:`FlowMeter.expire` with the current time when traffic pauses.

Cost: one dict lookup and a few list updates per packet; addresses become text, and the Community ID is
computed, once per record.
"""

from __future__ import annotations

import mmap
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .. import _check
from ..savefile.linktype import LINKTYPE_ETHERNET
from ._table_py import Raw
from .communityid import community_id
from .packet import ICMP, ICMP6, SCTP, TCP, UDP
from .record import FlowRecord

#: seconds a TCP flow is kept after a reset or the second FIN, for the packets that close it
CLOSE_GRACE: Final = 2.0
#: defaults: NFStream's (Zeek ends TCP after 5 minutes idle, UDP after 1)
IDLE_TIMEOUT: Final = 120.0
ACTIVE_TIMEOUT: Final = 1800.0
MAX_FLOWS: Final = 1_000_000
_NS: Final = 1_000_000_000
#: pcap records the table counts per call of add_pcap (between two, finished records are handed on)
PCAP_CHUNK: Final = 65536
#: bytes of a mapped file asked for ahead of the walk (MADV_WILLNEED)
READ_AHEAD: Final = 64 << 20
_PAGE_MASK: Final = mmap.PAGESIZE - 1
#: pcap magic -> (big endian, ns per fraction unit)
_PCAP_MAGICS: Final = {b"\xd4\xc3\xb2\xa1": (False, 1000), b"\xa1\xb2\xc3\xd4": (True, 1000),
                       b"\x4d\x3c\xb2\xa1": (False, 1), b"\xa1\xb2\x3c\x4d": (True, 1)}
_PROTO_NAMES: Final = {TCP: "tcp", UDP: "udp", ICMP: "icmp", ICMP6: "icmp6", SCTP: "sctp"}

@dataclass(frozen=True)
class MeterStats:
    """What a :class:`FlowMeter` has seen: ``packets`` given to it, ``not_ip`` (not IPv4/IPv6, or too short),
    ``flows`` started, ``records`` handed on, ``evicted`` (ended early because the table was full), ``active``
    (open now)."""

    packets: int
    not_ip: int
    flows: int
    records: int
    evicted: int
    active: int


class FlowMeter:
    """Bidirectional flow records from packets (see the module docstring for when a flow ends).

    Example::

        meter = FlowMeter(idle_timeout=60, sensor="edge-1")
        for rec in afpacket.open_reader("day.pcap"):
            meter.add(rec.timestamp_ns, rec.data, rec.linktype)
        meter.finish()
        for flow in meter.take():
            print(flow.orig_h, flow.resp_h, flow.proto, flow.orig_pkts + flow.resp_pkts)

    ``idle_timeout`` and ``active_timeout`` are seconds (> 0); ``max_flows`` bounds the table; ``sensor`` is
    copied into every record; ``on_records``, if given, is called with each list of finished records instead
    of keeping them for :meth:`take`. The table underneath is the ring core's (``afpacket.ring``): C when it
    is built, else pure Python, with the same records.
    """

    def __init__(
        self, *, idle_timeout: float = IDLE_TIMEOUT, active_timeout: float = ACTIVE_TIMEOUT,
        max_flows: int = MAX_FLOWS, sensor: str = "", on_records: Callable[[list[FlowRecord]], None] | None = None,
    ) -> None:
        idle = _check.seconds("FlowMeter()", "idle_timeout", idle_timeout, allow_zero=False, optional=False)
        active = _check.seconds("FlowMeter()", "active_timeout", active_timeout, allow_zero=False, optional=False)
        limit = _check.count("FlowMeter()", "max_flows", max_flows, allow_zero=False, optional=False)
        if not isinstance(sensor, str):
            raise TypeError(f"FlowMeter(): sensor must be a str, not {type(sensor).__name__}")
        assert idle is not None and active is not None and limit is not None
        self.max_flows = limit
        self.sensor = sensor
        self.on_records = on_records
        self.table = _table_class()(int(idle * _NS), int(active * _NS), int(CLOSE_GRACE * _NS), limit)
        #: the table's implementation: "c" or "python"
        self.implementation: str = getattr(self.table, "IMPLEMENTATION", None) or _implementation(self.table)
        self._done: list[FlowRecord] = []
        self._next_publish = 0

    # -- packets in ---------------------------------------------------------------------------------
    def add(self, ts_ns: int, data: bytes, linktype: int = LINKTYPE_ETHERNET, vlan_tci: int = 0,
            ifindex: int = 0) -> None:
        """Meter one packet: ``data`` from its link header on (of ``linktype``), received at ``ts_ns``;
        ``vlan_tci`` a tag the kernel stripped, ``ifindex`` where it was seen (0 for a file)."""
        self.table.add(ts_ns, data, linktype, vlan_tci, ifindex)
        if ts_ns >= self._next_publish:  # once a second of packet time: hand on what the table's sweep ended
            self._next_publish = ts_ns + _NS
            self._publish()

    def add_frames(self, frames: Sequence[bytes], ts_ns: Sequence[int], vlan_tci: Sequence[int],
                   ifindex: Sequence[int], linktype: int = LINKTYPE_ETHERNET) -> None:
        """Meter a batch of packets (a live capture's: frames with their columns, one entry each)."""
        self.table.add_frames(frames, ts_ns, vlan_tci, ifindex, linktype)
        self._publish()

    def add_file(self, path: str | os.PathLike[str], expression: str | None = None) -> int:
        """Meter every packet of the pcap or pcapng file at ``path`` (those ``expression``, a tcpdump filter,
        selects); returns how many were metered. A pcap file without a filter is read in place (mmap) and its
        records are counted by the table straight from the file's bytes; otherwise record by record."""
        from ..savefile import open_reader

        if expression is None:
            n = self._add_pcap_mapped(path)
            if n is not None:
                return n
        flt = None
        if expression is not None:
            from ..filter import OfflineFilter

            flt = OfflineFilter(expression)
        n = 0
        add = self.add
        with open_reader(path) as reader:
            for rec in reader:
                if flt is not None and not flt.matches(rec.data, rec.wire_len, rec.linktype):
                    continue
                add(rec.timestamp_ns, rec.data, rec.linktype)
                n += 1
        return n

    def _add_pcap_mapped(self, path: str | os.PathLike[str]) -> int | None:
        """:meth:`add_file` for a pcap file, through the table's ``add_pcap``; None when ``path`` is not a
        pcap file that can be mapped (pcapng, a pipe, an empty file), to be read record by record. Only the
        opening may fall back: once records were counted, an error is raised, never a second reading."""
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except (OSError, ValueError):
            return None
        with f:
            head = f.read(24)
            order = _PCAP_MAGICS.get(head[:4]) if len(head) == 24 else None
            if order is None:
                return None
            big, frac_ns = order
            linktype = int.from_bytes(head[20:24], "big" if big else "little") & 0x03FFFFFF
            try:
                m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # not a regular file (a pipe, a device)
                return None
            with m:
                return self._walk_mapped(m, os.fspath(path), linktype, frac_ns, big)

    def _walk_mapped(self, m: mmap.mmap, name: str, linktype: int, frac_ns: int, big: bool) -> int:
        # Read ahead of the walk and drop what it has passed: the pages come in large sequential reads (not
        # faulted in one by one), and the mapping holds about a window of the file (the page cache keeps the
        # file; this process's resident set does not).
        m.madvise(mmap.MADV_SEQUENTIAL)
        size = len(m)
        off, total, dropped = 24, 0, 0
        while True:
            ahead = off & ~_PAGE_MASK
            m.madvise(mmap.MADV_WILLNEED, ahead, min(READ_AHEAD, size - ahead))
            n: int
            off, n = self.table.add_pcap(m, off, linktype, frac_ns, big, PCAP_CHUNK)
            total += n
            done = off & ~_PAGE_MASK
            if done > dropped:
                m.madvise(mmap.MADV_DONTNEED, dropped, done - dropped)
                dropped = done
            self._publish()
            if n < PCAP_CHUNK:
                break
        if off != size:
            from ..errors import SavefileError

            raise SavefileError(f"{name}: truncated record at byte {off} (the {total} records before it were metered)")
        return total

    # -- ending ----------------------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        """End every flow idle for ``idle_timeout``, open for ``active_timeout``, or closed (TCP) for
        :data:`CLOSE_GRACE`, as of ``now_ns`` (a live capture calls this when traffic pauses; :meth:`add` does
        it once a second of packet time), and hand on what has finished."""
        self.table.expire(now_ns)
        self._publish()

    def finish(self) -> None:
        """End every open flow (``end``; ``fin``/``rst`` for TCP flows already closed): the capture or the
        file is over."""
        self.table.finish()
        self._publish()

    def take(self) -> list[FlowRecord]:
        """The records finished since the last call (without ``on_records``)."""
        self._collect()
        done, self._done = self._done, []
        return done

    def stats(self) -> MeterStats:
        """Counts so far (see :class:`MeterStats`)."""
        return MeterStats(*self.table.stats())

    def _collect(self) -> None:
        raw = self.table.take()
        if raw:
            sensor = self.sensor
            self._done.extend(_record(r, sensor) for r in raw)

    def _publish(self) -> None:
        self._collect()
        if self.on_records is not None and self._done:
            done, self._done = self._done, []
            self.on_records(done)


def _table_class() -> Callable[[int, int, int, int], Any]:
    """The flow table of the ring core in use: C's when it is, else the pure-Python one."""
    from .. import ring

    table = getattr(ring.kernels, "FlowTable", None)
    if table is not None:
        return table  # type: ignore[no-any-return]
    from ._table_py import FlowTable

    return FlowTable


def _implementation(table: object) -> str:
    return "python" if type(table).__module__.endswith("_table_py") else "c"


def _record(r: Raw, sensor: str) -> FlowRecord:
    vlan, proto, orig, resp, sport, dport, ts, last, opk, rpk, oip, rip, opl, rpl, hist, ifindex, why = r
    oaddr, raddr = orig[:-2], resp[:-2]
    family = socket.AF_INET if len(oaddr) == 4 else socket.AF_INET6
    return FlowRecord(
        ts=ts, last_ts=last, duration=(last - ts) / _NS, proto=_PROTO_NAMES.get(proto, str(proto)),
        orig_h=socket.inet_ntop(family, oaddr), orig_p=sport, resp_h=socket.inet_ntop(family, raddr), resp_p=dport,
        orig_pkts=opk, resp_pkts=rpk, orig_ip_bytes=oip, resp_ip_bytes=rip, orig_bytes=opl, resp_bytes=rpl,
        history=hist, community_id=community_id(proto, oaddr, raddr, sport, dport), vlan=vlan, ifindex=ifindex,
        end_reason=why, sensor=sensor,
    )


def meter_records(records: Iterable[tuple[int, bytes, int]], **options: object) -> list[FlowRecord]:
    """The flow records of ``records`` ((ts_ns, data, linktype) triples, in time order), every flow ended at
    the end: a convenience over :class:`FlowMeter` (``options`` are its keywords)."""
    meter = FlowMeter(**options)  # type: ignore[arg-type]
    add = meter.add
    for ts, data, linktype in records:
        add(ts, data, linktype)
    meter.finish()
    return meter.take()


__all__ = ["ACTIVE_TIMEOUT", "CLOSE_GRACE", "IDLE_TIMEOUT", "MAX_FLOWS", "FlowMeter", "MeterStats", "meter_records"]

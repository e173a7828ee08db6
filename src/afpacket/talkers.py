"""Top talkers: per-flow, per-host and per-protocol traffic with iftop's 2 s / 10 s / 40 s averages.

The model behind ``afpacket top``, kept apart from the terminal and the capture so it can be tested
with synthetic packets and fixed timestamps. It has two halves, because with ``--workers`` they run in
different processes:

- :class:`Aggregator` is the per-packet half. It reads the 5-tuple out of each frame by slicing fixed
  offsets (no decode, no object per packet) and adds the packet to a dict for the current second,
  keyed by the flow with both directions folded into one key (the endpoints sorted), as iftop pairs
  them. When a second is over it becomes a :class:`Second`: a small picklable summary (one
  ``[packets, bytes]`` per flow seen in it), which is all that crosses to the parent.
- :class:`TalkerTable` is the per-second half. It takes one :class:`Second` after another (merged
  over workers with :func:`merge_seconds`) and keeps, for every flow, host and protocol, sliding sums
  over the last 2, 10 and 40 seconds: each second adds the summary that enters and subtracts the one
  that leaves, so the cost is per flow active in a second, never per packet and never a rescan of 40
  seconds of history.

Memory is bounded: at most ``max_flows`` keys in one second's dict (the rest are counted in an
``other`` row and in :attr:`Second.overflow`), at most ``max_flows`` flow and host entries in the
table (the least recently active tenth is evicted when it fills, counted in :attr:`TalkerTable.evicted`),
and 40 seconds of summaries.

Averages are iftop's: the bytes (or packets) of the last N whole seconds divided by N, or by the
number of seconds seen so far while fewer than N have passed.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from .errors import ArgumentError

#: the average windows, in seconds, as iftop shows them
WINDOWS = (2, 10, 40)
#: the sort keys ``TalkerTable.report`` takes
SORT_KEYS = ("2s", "10s", "40s", "total")
#: bytes of each frame ``afpacket top`` needs: Ethernet, two VLAN tags, an IPv6 header with one
#: extension header, and the ports
SNAPLEN = 128
#: the default bound on flow (and host) entries
MAX_FLOWS = 10_000

#: A flow key: (VLAN id, kind, endpoint a, endpoint b). ``kind`` is the IP protocol number (0-255) for
#: IP, 0x10000 + EtherType otherwise; an endpoint is address + port bytes (IP) or a MAC address; a <= b.
FlowKey = tuple[int, int, bytes, bytes]
#: the key of the row that collects the flows a full second's dict had no room for
OTHER: FlowKey = (0, -1, b"", b"")

_IP_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 41: "IPv6-in-IP", 47: "GRE", 50: "ESP", 51: "AH",
             58: "ICMPv6", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP"}
_ETHER_NAMES = {0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x8863: "PPPoE-discovery", 0x8864: "PPPoE",
                0x8847: "MPLS", 0x8848: "MPLS", 0x88E5: "MACsec", 0x88F7: "PTP", 0x8809: "slow-protocols"}
_V6_EXT = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options: skipped to reach the ports
_PORTED = frozenset((6, 17, 132, 33))  # TCP, UDP, SCTP, DCCP: ports in the first 4 bytes


def flow_key(frame: bytes, vlan_tci: int = 0) -> FlowKey:
    """The flow ``frame`` (an Ethernet frame, from its first byte) belongs to, both directions alike.

    ``vlan_tci`` is the tag the kernel stripped (the ring's metadata); a tag still in the frame
    (802.1Q or 802.1ad, up to two) is read from it instead. IPv4 and IPv6 give (protocol, address +
    port of each end); fragments after the first, and protocols without ports, have port 0. Other
    frames give (0x10000 + EtherType, the two MAC addresses). A frame too short for a header gets
    what it has (it still counts, under a key of its own)."""
    try:
        if frame[12] == 8 and frame[13] == 0 and frame[14] == 0x45:
            # the common case first, at fixed offsets: untagged IPv4 without options (half the cost)
            proto = frame[23]
            if proto in _PORTED and not (frame[20] & 0x1F or frame[21]):
                a, b = frame[26:30] + frame[34:36], frame[30:34] + frame[36:38]
            else:
                a, b = frame[26:30] + b"\0\0", frame[30:34] + b"\0\0"
            vid = vlan_tci & 0xFFF
            return (vid, proto, a, b) if a <= b else (vid, proto, b, a)
    except IndexError:
        pass
    et = frame[12:14]
    off = 14
    vid = vlan_tci & 0xFFF
    while et == b"\x81\x00" or et == b"\x88\xa8":
        vid = int.from_bytes(frame[off:off + 2], "big") & 0xFFF
        et = frame[off + 2:off + 4]
        off += 4
    if et == b"\x08\x00":
        ihl = (frame[off] & 15) * 4 if len(frame) > off else 20
        proto = frame[off + 9] if len(frame) > off + 9 else 0
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        l4 = off + ihl
        if proto in _PORTED and not (int.from_bytes(frame[off + 6:off + 8], "big") & 0x1FFF):
            a, b = src + frame[l4:l4 + 2], dst + frame[l4 + 2:l4 + 4]
        else:
            a, b = src + b"\0\0", dst + b"\0\0"
    elif et == b"\x86\xdd":
        proto = frame[off + 6] if len(frame) > off + 6 else 0
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        l4 = off + 40
        if proto in _V6_EXT and len(frame) > l4 + 1:
            proto, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
        if proto in _PORTED:
            a, b = src + frame[l4:l4 + 2], dst + frame[l4 + 2:l4 + 4]
        else:
            a, b = src + b"\0\0", dst + b"\0\0"
    else:
        proto = 0x10000 + int.from_bytes(et, "big")
        a, b = frame[6:12], frame[0:6]
    return (vid, proto, a, b) if a <= b else (vid, proto, b, a)


@dataclass
class Second:
    """What one second of traffic was (or one worker's share of it): ``second`` (Unix time, whole
    seconds), ``packets`` and ``bytes`` (wire lengths) in it, ``flows`` (flow key -> [packets, bytes]),
    and ``overflow``: packets whose flow found the second's dict full (they are in the ``OTHER`` row)."""

    second: int
    packets: int = 0
    bytes: int = 0
    flows: dict[FlowKey, list[int]] = field(default_factory=dict)
    overflow: int = 0


def merge_seconds(parts: Sequence[Second]) -> Second:
    """One :class:`Second` from ``parts``, the workers' shares of the same second (ArgumentError if they
    are of different seconds, or none)."""
    if not parts:
        raise ArgumentError("merge_seconds(): nothing to merge")
    out = Second(parts[0].second)
    flows = out.flows
    for p in parts:
        if p.second != out.second:
            raise ArgumentError(f"merge_seconds(): seconds {out.second} and {p.second} differ")
        out.packets += p.packets
        out.bytes += p.bytes
        out.overflow += p.overflow
        for k, (n, b) in p.flows.items():
            cur = flows.get(k)
            if cur is None:
                flows[k] = [n, b]
            else:
                cur[0] += n
                cur[1] += b
    return out


class Aggregator:
    """The per-packet half: frames in, one :class:`Second` per whole second out (see the module).

    ``max_flows`` bounds the keys of one second (the rest go to the ``OTHER`` row). Packets are put
    in the second of their timestamp; one stamped before the second in progress (a late block) counts
    in the second in progress, since the earlier ones were handed on already. :meth:`close_before`
    ends every second that ended before a time (the empty ones too, so that a reader merging several
    aggregators sees every second from each), and :meth:`take` hands the ended seconds over."""

    def __init__(self, max_flows: int = MAX_FLOWS) -> None:
        if max_flows < 1:
            raise ArgumentError(f"Aggregator(): max_flows must be at least 1, got {max_flows}")
        self.max_flows = max_flows
        self._cur: Second | None = None
        self._next_ns = 0  # where the second in progress ends
        self._done: list[Second] = []

    def _start(self, second: int) -> Second:
        self._cur = Second(second)
        self._next_ns = (second + 1) * 1_000_000_000
        return self._cur

    def add(self, frames: Sequence[bytes], timestamp_ns: Sequence[int], wire_len: Sequence[int],
            vlan_tci: Sequence[int] | None = None) -> None:
        """Count a batch: ``frames[i]`` (its first bytes are enough: :data:`SNAPLEN`) received at
        ``timestamp_ns[i]`` with ``wire_len[i]`` bytes on the wire and the stripped tag
        ``vlan_tci[i]`` (None: no stripped tags)."""
        cur = self._cur
        nxt = self._next_ns
        key_of = flow_key
        limit = self.max_flows
        flows: dict[FlowKey, list[int]] = cur.flows if cur is not None else {}
        packets = nbytes = 0  # of the second in progress, added to it when it ends or the batch does
        tcis = vlan_tci if vlan_tci is not None else repeat(0)
        for frame, ts, wl, tci in zip(frames, timestamp_ns, wire_len, tcis, strict=False):
            if cur is None or ts >= nxt:
                if cur is not None:
                    cur.packets += packets
                    cur.bytes += nbytes
                    packets = nbytes = 0
                    self._close_until(ts // 1_000_000_000)
                cur = self._start(ts // 1_000_000_000)
                nxt = self._next_ns
                flows = cur.flows
            packets += 1
            nbytes += wl
            key = key_of(frame, tci)
            entry = flows.get(key)
            if entry is None:
                if len(flows) >= limit:
                    cur.overflow += 1
                    key = OTHER
                    entry = flows.get(key)
                if entry is None:
                    flows[key] = [1, wl]
                    continue
            entry[0] += 1
            entry[1] += wl
        if cur is not None:
            cur.packets += packets
            cur.bytes += nbytes

    def _close_until(self, second: int) -> None:
        """End the second in progress and every empty one before ``second``."""
        cur = self._cur
        if cur is None:
            return
        self._done.append(cur)
        for s in range(cur.second + 1, second):
            self._done.append(Second(s))
        self._cur = None

    def close_before(self, now_ns: int) -> None:
        """End every second that ended by ``now_ns`` (nanoseconds since the epoch): the one in progress
        and, after it, empty ones, so that the next one starts at the second of ``now_ns``."""
        now_s = now_ns // 1_000_000_000
        if self._cur is None:
            if self._done:
                last = self._done[-1].second
                self._done.extend(Second(s) for s in range(last + 1, now_s))
            return
        if self._cur.second < now_s:
            self._close_until(now_s)
            self._start(now_s)

    def start_at(self, now_ns: int) -> None:
        """Begin with the second of ``now_ns`` even before a packet comes (so an idle start still
        reports its seconds)."""
        if self._cur is None and not self._done:
            self._start(now_ns // 1_000_000_000)

    def take(self) -> list[Second]:
        """The seconds ended since the last call, oldest first."""
        out, self._done = self._done, []
        return out


class _Entry:
    __slots__ = ("born", "bytes", "last", "packets", "w")

    def __init__(self, born: int) -> None:
        self.born = born
        self.last = born
        self.packets = 0
        self.bytes = 0
        # [packets 2 s, bytes 2 s, packets 10 s, bytes 10 s, packets 40 s, bytes 40 s]
        self.w = [0, 0, 0, 0, 0, 0]


class _Window:
    """Entries with sliding sums over the last 2/10/40 seconds, bounded to ``limit`` entries."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.entries: dict[Any, _Entry] = {}
        self.history: deque[tuple[int, dict[Any, list[int]]]] = deque()
        self.evicted = 0

    def add(self, second: int, items: dict[Any, list[int]]) -> None:
        entries = self.entries
        for key, (n, b) in items.items():
            e = entries.get(key)
            if e is None:
                if self.limit is not None and len(entries) >= self.limit:
                    self._evict(second)
                e = entries[key] = _Entry(second)
            e.last = second
            e.packets += n
            e.bytes += b
            w = e.w
            w[0] += n
            w[1] += b
            w[2] += n
            w[3] += b
            w[4] += n
            w[5] += b
        hist = self.history
        hist.append((second, items))
        for slot, size in enumerate(WINDOWS):
            if len(hist) > size:
                old_second, old = hist[-size - 1]
                i = slot * 2
                for key, (n, b) in old.items():
                    e = entries.get(key)
                    if e is not None and e.born <= old_second:
                        e.w[i] -= n
                        e.w[i + 1] -= b
        while len(hist) > WINDOWS[-1]:
            hist.popleft()

    def _evict(self, second: int) -> None:
        # The least recently active tenth (idle ones first), in one pass: an amortised O(1) per new entry.
        n = max(1, len(self.entries) // 10)
        victims = heapq.nsmallest(n, self.entries.items(), key=lambda kv: (kv[1].last, kv[1].w[5], kv[1].bytes))
        for key, _e in victims:
            del self.entries[key]
        self.evicted += len(victims)


@dataclass(frozen=True)
class Row:
    """One line of a top list: ``name`` (as printed), ``key`` (the raw key), ``rates``: window ->
    (packets/s, bits/s) for "2s", "10s" and "40s", and ``packets``/``bytes``: totals since the start."""

    name: str
    key: Any
    rates: dict[str, tuple[float, float]]
    packets: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """The row for JSON: name, packets, bytes, and ``pps_2s``/``bps_2s``... per window."""
        out: dict[str, Any] = {"name": self.name, "packets": self.packets, "bytes": self.bytes}
        for w, (pps, bps) in self.rates.items():
            out[f"pps_{w}"] = round(pps, 3)
            out[f"bps_{w}"] = round(bps, 3)
        return out


@dataclass(frozen=True)
class Report:
    """A snapshot of a :class:`TalkerTable`: ``second`` (the last whole second counted), ``seconds``
    (how many have been counted), ``totals`` (a Row for all traffic), ``flows``/``hosts``/``protocols``
    (top Rows, sorted), ``sort``, ``evicted_flows``/``evicted_hosts``, ``overflow`` (packets put in the
    ``other`` row), ``flow_count``/``host_count`` (entries held), and the kernel's ``received``/``drops``
    as the caller set them on the table."""

    second: int
    seconds: int
    sort: str
    totals: Row
    flows: list[Row]
    hosts: list[Row]
    protocols: list[Row]
    flow_count: int
    host_count: int
    evicted_flows: int
    evicted_hosts: int
    overflow: int
    received: int
    drops: int

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data for JSON."""
        return {
            "second": self.second, "seconds": self.seconds, "sort": self.sort,
            "totals": self.totals.to_dict(),
            "flows": [{**r.to_dict(), **flow_fields(r.key)} for r in self.flows],
            "hosts": [r.to_dict() for r in self.hosts],
            "protocols": [r.to_dict() for r in self.protocols],
            "flow_count": self.flow_count, "host_count": self.host_count,
            "evicted_flows": self.evicted_flows, "evicted_hosts": self.evicted_hosts, "overflow": self.overflow,
            "received": self.received, "drops": self.drops,
        }


class TalkerTable:
    """The per-second half: the sliding 2/10/40 s sums of every flow, host and protocol.

    Feed it :class:`Second` objects in time order with :meth:`add` (a gap is filled with empty
    seconds; a second older than the last one added is counted in the last one); :meth:`report`
    gives the top ``limit`` of each by a sort key. ``max_flows`` bounds the flow entries and the host
    entries each (the least recently active tenth is evicted when full; :attr:`evicted` counts them).
    ``received`` and ``drops`` are for the caller to set from the kernel's counters, and are shown."""

    def __init__(self, max_flows: int = MAX_FLOWS) -> None:
        if max_flows < 1:
            raise ArgumentError(f"TalkerTable(): max_flows must be at least 1, got {max_flows}")
        self.flows = _Window(max_flows)
        self.hosts = _Window(max_flows)
        self.protocols = _Window(None)  # a few hundred names at most
        self.totals = _Window(None)
        self.last: int | None = None
        self.seconds = 0
        self.overflow = 0
        self.received = 0
        self.drops = 0

    @property
    def evicted(self) -> int:
        """Flow entries evicted to keep the table within ``max_flows``."""
        return self.flows.evicted

    def add(self, sec: Second) -> None:
        """Count ``sec``, one whole second (merged over workers)."""
        s = sec.second
        if self.last is not None:
            if s <= self.last:
                self._add_late(sec)
                return
            for gap in range(self.last + 1, s):
                self._step(gap, {})
        self._step(s, sec.flows, sec)

    def _add_late(self, sec: Second) -> None:
        """Fold a second that comes after a later one (a worker's share that arrived after the parent
        stopped waiting for it) into the last second, which is already in the windows: it leaves them
        with that second, so the sums stay exact."""
        hosts, protos = _split(sec.flows)
        last = self.last
        assert last is not None
        for win, items in ((self.flows, sec.flows), (self.hosts, hosts), (self.protocols, protos),
                           (self.totals, {(): [sec.packets, sec.bytes]} if sec.packets else {})):
            if not win.history:
                continue
            merged = win.history[-1][1]
            for key, (n, b) in items.items():
                e = win.entries.get(key)
                if e is None:
                    if win.limit is not None and len(win.entries) >= win.limit:
                        win._evict(last)
                    e = win.entries[key] = _Entry(last)
                e.last = last
                e.packets += n
                e.bytes += b
                for i in (0, 2, 4):
                    e.w[i] += n
                    e.w[i + 1] += b
                cur = merged.get(key)
                if cur is None:
                    merged[key] = [n, b]
                else:
                    cur[0] += n
                    cur[1] += b
        self.overflow += sec.overflow

    def _step(self, second: int, flows: dict[FlowKey, list[int]], sec: Second | None = None) -> None:
        hosts, protos = _split(flows)
        self.flows.add(second, flows)
        self.hosts.add(second, hosts)
        self.protocols.add(second, protos)
        total = {(): [sec.packets, sec.bytes]} if sec is not None and sec.packets else {}
        self.totals.add(second, total)
        if sec is not None:
            self.overflow += sec.overflow
        self.last = second
        self.seconds += 1

    def _rates(self, e: _Entry | None) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for slot, size in enumerate(WINDOWS):
            div = min(size, self.seconds) or 1
            n, b = (e.w[slot * 2], e.w[slot * 2 + 1]) if e is not None else (0, 0)
            out[f"{size}s"] = (n / div, b * 8 / div)
        return out

    def _top(self, win: _Window, sort: str, limit: int, namer: Any) -> list[Row]:
        if sort == "total":
            def order(kv: tuple[Any, _Entry]) -> tuple[int, int]:
                return (kv[1].bytes, kv[1].packets)
        else:
            slot = WINDOWS.index(int(sort[:-1])) * 2

            def order(kv: tuple[Any, _Entry]) -> tuple[int, int]:
                return (kv[1].w[slot + 1], kv[1].w[slot])
        best = heapq.nlargest(limit, win.entries.items(), key=order)
        return [Row(namer(k), k, self._rates(e), e.packets, e.bytes) for k, e in best]

    def report(self, sort: str = "2s", limit: int = 10) -> Report:
        """The top ``limit`` flows, hosts and protocols by ``sort`` ("2s", "10s", "40s": that average's
        bytes; "total": bytes since the start), with the totals."""
        if sort not in SORT_KEYS:
            raise ArgumentError(f"report(): sort must be one of {', '.join(SORT_KEYS)}, got {sort!r}")
        if limit < 0:
            raise ArgumentError(f"report(): limit must be 0 or more, got {limit}")
        t = self.totals.entries.get(())
        totals = Row("total", (), self._rates(t), t.packets if t else 0, t.bytes if t else 0)
        return Report(
            second=self.last if self.last is not None else 0, seconds=self.seconds, sort=sort, totals=totals,
            flows=self._top(self.flows, sort, limit, flow_name), hosts=self._top(self.hosts, sort, limit, host_name),
            protocols=self._top(self.protocols, sort, limit, str),
            flow_count=len(self.flows.entries), host_count=len(self.hosts.entries),
            evicted_flows=self.flows.evicted, evicted_hosts=self.hosts.evicted, overflow=self.overflow,
            received=self.received, drops=self.drops,
        )


def _split(flows: dict[FlowKey, list[int]]) -> tuple[dict[bytes, list[int]], dict[str, list[int]]]:
    """A second's per-host and per-protocol sums from its flows (a flow counts for both its hosts)."""
    hosts: dict[bytes, list[int]] = {}
    protos: dict[str, list[int]] = {}
    for key, (n, b) in flows.items():
        kind = key[1]
        if kind == -1:
            ends: tuple[bytes, ...] = ()
        elif kind < 0x10000:
            ends = (key[2][:-2], key[3][:-2]) if key[2][:-2] != key[3][:-2] else (key[2][:-2],)
        else:
            ends = (key[2], key[3]) if key[2] != key[3] else (key[2],)
        for h in ends:
            cur = hosts.get(h)
            if cur is None:
                hosts[h] = [n, b]
            else:
                cur[0] += n
                cur[1] += b
        name = protocol_name(key)
        cur = protos.get(name)
        if cur is None:
            protos[name] = [n, b]
        else:
            cur[0] += n
            cur[1] += b
    return hosts, protos


def protocol_name(key: FlowKey) -> str:
    """"IPv4/UDP", "IPv6/TCP", "ARP", "ethertype 0x88b5"... for a flow key."""
    kind = key[1]
    if kind == -1:
        return "other"
    if kind >= 0x10000:
        et = kind - 0x10000
        return _ETHER_NAMES.get(et, f"ethertype 0x{et:04x}")
    fam = "IPv4" if len(key[2]) == 6 else "IPv6"
    return f"{fam}/{_IP_NAMES.get(kind, f'proto {kind}')}"


def host_name(addr: bytes) -> str:
    """The address ``addr`` (4, 16 or 6 bytes) as printed: dotted IPv4, IPv6, or a MAC address."""
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        return str(ipaddress.IPv6Address(addr))
    if len(addr) == 6:
        return ":".join(f"{x:02x}" for x in addr)
    return addr.hex() or "?"


def _end(ep: bytes, ported: bool) -> str:
    host = host_name(ep[:-2])
    if not ported:
        return host
    port = int.from_bytes(ep[-2:], "big")
    return f"[{host}]:{port}" if len(ep) == 18 else f"{host}:{port}"


def flow_fields(key: FlowKey) -> dict[str, Any]:
    """The flow ``key`` as fields for scripts: ``vlan``, ``protocol`` (as :func:`protocol_name`), and
    ``endpoints``: two [address, port] pairs (port None without ports; MAC addresses for non-IP)."""
    vid, kind, a, b = key
    if kind == -1:
        return {"vlan": None, "protocol": "other", "endpoints": []}
    if kind >= 0x10000:
        ends: list[list[Any]] = [[host_name(a), None], [host_name(b), None]]
    else:
        ported = kind in _PORTED
        ends = [[host_name(e[:-2]), int.from_bytes(e[-2:], "big") if ported else None] for e in (a, b)]
    return {"vlan": vid, "protocol": protocol_name(key), "endpoints": ends}


def flow_name(key: FlowKey) -> str:
    """The flow ``key`` as printed: "10.0.0.1:40000 <=> 10.0.0.2:53 IPv4/UDP" ("vlan N " in front when tagged)."""
    vid, kind, a, b = key
    if kind == -1:
        return "other (flows beyond --max-flows in one second)"
    vlan = f"vlan {vid} " if vid else ""
    if kind >= 0x10000:
        return f"{vlan}{host_name(a)} <=> {host_name(b)} {protocol_name(key)}"
    ported = kind in _PORTED
    return f"{vlan}{_end(a, ported)} <=> {_end(b, ported)} {protocol_name(key)}"


def human_bits(bps: float) -> str:
    """``bps`` bits per second in iftop's short units: "812b", "1.23Kb", "45.6Mb", "1.00Gb"."""
    for unit, scale in (("Gb", 1e9), ("Mb", 1e6), ("Kb", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f}{unit}"
    return f"{bps:.0f}b"


def human_bytes(n: float) -> str:
    """``n`` bytes in short units: "512B", "1.5KB", "20.3MB"."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}B"


def text_report(rep: Report, header: str = "") -> str:
    """The report ``rep`` as plain text (no terminal control codes), after a ``header`` line if given:
    totals, then the top flows, hosts and protocols, each with its 2 s / 10 s / 40 s rates and total."""
    lines: list[str] = []
    if header:
        lines.append(header)
    t = rep.totals
    lines.append(
        f"{rep.seconds} s counted, {t.packets} packets, {human_bytes(t.bytes)}; received {rep.received}, "
        f"dropped {rep.drops}; flows {rep.flow_count} (evicted {rep.evicted_flows})"
    )
    lines.append(_line("", "2s", "10s", "40s", "total"))
    lines.append(_line("bits/s", *(human_bits(t.rates[w][1]) for w in ("2s", "10s", "40s")), human_bytes(t.bytes)))
    lines.append(_line("packets/s", *(f"{t.rates[w][0]:.1f}" for w in ("2s", "10s", "40s")), str(t.packets)))
    for title, rows in (("flows", rep.flows), ("hosts", rep.hosts), ("protocols", rep.protocols)):
        lines.append("")
        lines.append(f"top {title} (sorted by {rep.sort})")
        for r in rows:
            lines.append(_line(r.name, *(human_bits(r.rates[w][1]) for w in ("2s", "10s", "40s")),
                               human_bytes(r.bytes)))
    return "\n".join(lines)


def _line(name: str, *cols: str) -> str:
    return f"{name:<58} " + " ".join(f"{c:>9}" for c in cols)


__all__ = [
    "MAX_FLOWS", "OTHER", "SNAPLEN", "SORT_KEYS", "WINDOWS", "Aggregator", "FlowKey", "Report", "Row", "Second",
    "TalkerTable", "flow_fields", "flow_key", "flow_name", "host_name", "human_bits", "human_bytes", "merge_seconds",
    "protocol_name", "text_report",
]

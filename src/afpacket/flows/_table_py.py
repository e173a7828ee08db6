"""The flow table in pure Python: the specification of the C one (``afpacket.ring._kernels.FlowTable``).

Both have the same names and behaviour (tests feed them the same packets and compare every finished
entry); :class:`afpacket.flows.FlowMeter` picks the one of the ring core in use. The table keys flows,
counts packets into them and decides when they end (see :mod:`afpacket.flows.meter` for the rules); it hands
finished flows out as raw tuples (:data:`Raw`) and leaves text (addresses, Community IDs) to the meter, which
builds records once per flow.

Entry points, cheapest last: :meth:`FlowTable.add` (one packet), :meth:`FlowTable.add_frames` (a live batch:
frames with their time stamps, stripped tags and interface indexes), :meth:`FlowTable.add_pcap` (pcap records
straight from a file's bytes, no object per record).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from .packet import ICMP, ICMP6, TCP, flow_fields

IMPLEMENTATION: Final = "python"

#: a finished flow: (vlan, proto, orig endpoint, resp endpoint, orig_p, resp_p, ts, last_ts, orig_pkts,
#: resp_pkts, orig_ip_bytes, resp_ip_bytes, orig_bytes, resp_bytes, history, ifindex, end_reason); an endpoint
#: is the address bytes followed by two port bytes (zero for ICMP)
Raw = tuple[int, int, bytes, bytes, int, int, int, int, int, int, int, int, int, int, str, int, str]

_NS: Final = 1_000_000_000
_UNPORTED_KEY: Final = frozenset((ICMP, ICMP6))
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_OFIN, _RFIN = 1, 2
# entry fields (a list: the cheapest mutable record to update per packet)
_TS, _LAST, _ORIG, _OPK, _RPK, _OIP, _RIP, _OPL, _RPL, _HIST, _STATE, _IF, _OP, _RP, _CLOSE, _WHY = range(16)
_PCAP_LE = struct.Struct("<IIII")
_PCAP_BE = struct.Struct(">IIII")

Key = tuple[int, int, bytes, bytes]


class FlowTable:
    """Flows keyed by (VLAN, protocol, endpoints in order), ended by the timeouts (ns), TCP's FIN/RST plus
    ``grace_ns``, and eviction of the oldest when ``max_flows`` are open."""

    def __init__(self, idle_ns: int, active_ns: int, grace_ns: int, max_flows: int) -> None:
        if idle_ns <= 0 or active_ns <= 0 or grace_ns < 0 or max_flows <= 0:
            raise ValueError("FlowTable(): timeouts and max_flows must be positive")
        self.idle_ns, self.active_ns, self.grace_ns, self.max_flows = idle_ns, active_ns, grace_ns, max_flows
        self._table: dict[Key, list[object]] = {}
        self._done: list[Raw] = []
        self._next_sweep = 0
        self._packets = self._not_ip = self._flows = self._records = self._evicted = 0

    # -- packets in ---------------------------------------------------------------------------------
    def add(self, ts_ns: int, data: bytes, linktype: int, vlan_tci: int = 0, ifindex: int = 0) -> None:
        """Count one packet (``data`` from its ``linktype`` header on)."""
        self._packets += 1
        f = flow_fields(data, linktype, vlan_tci)
        if f is None:
            self._not_ip += 1
        else:
            self._count(ts_ns, f, ifindex)
        if ts_ns >= self._next_sweep:
            self.expire(ts_ns)

    def add_frames(self, frames: Sequence[bytes], ts_ns: Sequence[int], vlan_tci: Sequence[int],
                   ifindex: Sequence[int], linktype: int) -> None:
        """Count a batch: ``frames[i]`` received at ``ts_ns[i]`` (the sequences have one entry per frame)."""
        add = self.add
        for data, ts, tci, ifx in zip(frames, ts_ns, vlan_tci, ifindex, strict=True):
            add(ts, data, linktype, tci, ifx)

    def add_pcap(self, buf: bytes | bytearray | memoryview, start: int, linktype: int, frac_ns: int,
                 big_endian: bool, limit: int = -1) -> tuple[int, int]:
        """Count the pcap records in ``buf`` from byte ``start`` (a record header): at most ``limit`` records
        (-1: all). Returns (the offset after the last whole record counted, records counted); a record cut
        off by the end of ``buf`` is left for the next call. ``frac_ns`` is 1000 (microsecond files) or 1."""
        head = _PCAP_BE if big_endian else _PCAP_LE
        unpack = head.unpack_from
        end = len(buf)
        mv = memoryview(buf)
        off = start
        n = 0
        add = self.add
        while (limit < 0 or n < limit) and off + 16 <= end:
            sec, frac, caplen, _wire = unpack(buf, off)
            stop = off + 16 + caplen
            if stop > end:
                break
            add(sec * _NS + frac * frac_ns, bytes(mv[off + 16:stop]), linktype)
            off = stop
            n += 1
        return off, n

    def _count(self, ts_ns: int, f: tuple[int, int, bytes, bytes, int, int, int, int, int], ifindex: int) -> None:
        vlan, proto, src, dst, sport, dport, ip_len, payload, flags = f
        if proto in _UNPORTED_KEY:
            a, b = src + b"\0\0", dst + b"\0\0"
        else:
            a, b = src + bytes((sport >> 8, sport & 255)), dst + bytes((dport >> 8, dport & 255))
        key = (vlan, proto, a, b) if a <= b else (vlan, proto, b, a)
        table = self._table
        e = table.get(key)
        if e is not None:
            close = e[_CLOSE]
            # the same order as expire(): a TCP flow already closed ends by its FIN/RST (past its grace, idle,
            # or at a new SYN), then idle, then active
            idle = ts_ns - e[_LAST] >= self.idle_ns  # type: ignore[operator]
            if close is not None and (idle or ts_ns >= close or (flags & (_SYN | _ACK)) == _SYN):  # type: ignore[operator]
                self._end(key, e, str(e[_WHY]))
                e = None
            elif idle:
                self._end(key, e, "idle")
                e = None
            elif ts_ns - e[_TS] >= self.active_ns:  # type: ignore[operator]
                self._end(key, e, "active")
                e = None
        if e is None:
            if len(table) >= self.max_flows:
                old = next(iter(table))
                self._end(old, table[old], "evicted")
                self._evicted += 1
            e = [ts_ns, ts_ns, a, 0, 0, 0, 0, 0, 0, "", 0, ifindex, sport, dport, None, None]
            table[key] = e
            self._flows += 1
        e[_LAST] = ts_ns
        orig = e[_ORIG] == a
        if orig:
            e[_OPK] += 1  # type: ignore[operator]
            e[_OIP] += ip_len  # type: ignore[operator]
            e[_OPL] += payload  # type: ignore[operator]
        else:
            e[_RPK] += 1  # type: ignore[operator]
            e[_RIP] += ip_len  # type: ignore[operator]
            e[_RPL] += payload  # type: ignore[operator]
        if proto == TCP:
            self._tcp(e, orig, flags, payload, ts_ns)

    def _tcp(self, e: list[object], orig: bool, flags: int, payload: int, ts_ns: int) -> None:
        """Zeek's history letters (each once per direction, in order of first occurrence) and the TCP end."""
        hist = e[_HIST]
        assert isinstance(hist, str)
        letters = ""
        if flags & _SYN:
            letters += "H" if flags & _ACK else "S"
        if flags & _FIN:
            letters += "F"
        if flags & _RST:
            letters += "R"
        if payload:
            letters += "D"
        elif flags & _ACK and not flags & (_SYN | _FIN | _RST):
            letters += "A"
        if letters:
            if not orig:
                letters = letters.lower()
            for c in letters:
                if c not in hist:
                    hist += c
            e[_HIST] = hist
        if flags & (_FIN | _RST) and e[_CLOSE] is None:
            state = e[_STATE]
            assert isinstance(state, int)
            if flags & _FIN:
                state |= _OFIN if orig else _RFIN
                e[_STATE] = state
            if flags & _RST or state == _OFIN | _RFIN:
                e[_CLOSE] = ts_ns + self.grace_ns
                e[_WHY] = "rst" if flags & _RST else "fin"

    # -- ending ----------------------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        """End the flows idle, open too long, or closed past their grace as of ``now_ns``; the next sweep
        from :meth:`add` comes one second of packet time later."""
        self._next_sweep = now_ns + _NS
        idle, active = self.idle_ns, self.active_ns
        ended: list[tuple[Key, list[object], str]] = []
        for key, e in self._table.items():
            close = e[_CLOSE]
            quiet = now_ns - e[_LAST] >= idle  # type: ignore[operator]
            if close is not None and (quiet or now_ns >= close):  # type: ignore[operator]
                ended.append((key, e, str(e[_WHY])))
            elif quiet:
                ended.append((key, e, "idle"))
            elif now_ns - e[_TS] >= active:  # type: ignore[operator]
                ended.append((key, e, "active"))
        for key, e, why in ended:
            self._end(key, e, why)

    def finish(self) -> None:
        """End every open flow: ``end``, or ``fin``/``rst`` for a TCP flow already closed."""
        for key, e in list(self._table.items()):
            why = e[_WHY]
            self._end(key, e, why if isinstance(why, str) else "end")

    def take(self) -> list[Raw]:
        """The flows finished since the last call, in the order they ended."""
        done, self._done = self._done, []
        return done

    def stats(self) -> tuple[int, int, int, int, int, int]:
        """(packets, not_ip, flows started, flows finished, evicted, open now)."""
        return self._packets, self._not_ip, self._flows, self._records, self._evicted, len(self._table)

    def _end(self, key: Key, e: list[object], why: str) -> None:
        del self._table[key]
        vlan, proto, a, b = key
        orig = e[_ORIG]
        resp = b if orig == a else a
        assert isinstance(orig, bytes)
        self._done.append((vlan, proto, orig, resp, e[_OP], e[_RP], e[_TS], e[_LAST], e[_OPK], e[_RPK],  # type: ignore[arg-type]
                           e[_OIP], e[_RIP], e[_OPL], e[_RPL], e[_HIST], e[_IF], why))
        self._records += 1


__all__ = ["IMPLEMENTATION", "FlowTable", "Raw"]

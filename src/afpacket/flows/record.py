"""A flow record: one bidirectional conversation, with Zeek conn.log's column names.

The names are Zeek's (``ts``, ``orig_h``, ``resp_p``, ``orig_ip_bytes``, ``history``, ``community_id`` ...), so a
query written for Zeek data carries over to afpacket's Parquet, Arrow, JSON lines and CSV. Where afpacket's value
differs from Zeek's, the field's comment says how. :data:`FIELDS` is the one place the columns are listed: the
exporters, the Arrow schema and the CSV header all come from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: column name -> (Arrow type name, meaning). The order is the column order of every format.
FIELDS: Final[dict[str, tuple[str, str]]] = {
    "ts": ("timestamp_ns", "first packet's time (ns since the epoch, UTC)"),
    "last_ts": ("timestamp_ns", "last packet's time"),
    "duration": ("float64", "last_ts - ts, seconds"),
    "proto": ("string", "transport protocol: tcp, udp, icmp, icmp6, sctp, or the IP protocol number as text"),
    "orig_h": ("string", "originator address (the sender of the first packet seen)"),
    "orig_p": ("uint16", "originator port (ICMP: the type)"),
    "resp_h": ("string", "responder address"),
    "resp_p": ("uint16", "responder port (ICMP: the code)"),
    "orig_pkts": ("uint64", "packets from the originator"),
    "resp_pkts": ("uint64", "packets from the responder"),
    "orig_ip_bytes": ("uint64", "IP bytes from the originator (IP header included)"),
    "resp_ip_bytes": ("uint64", "IP bytes from the responder"),
    "orig_bytes": ("uint64", "payload bytes from the originator (after the TCP/UDP/ICMP header; Zeek counts TCP "
                             "payload by sequence numbers, so retransmissions differ)"),
    "resp_bytes": ("uint64", "payload bytes from the responder"),
    "history": ("string", "TCP events in order of first occurrence, upper case from the originator, lower case "
                          "from the responder: S syn, H syn-ack, A pure ack, D data, F fin, R rst (as Zeek)"),
    "community_id": ("string", "Community ID v1 of the 5-tuple (seed 0), as Zeek and Suricata print it"),
    "vlan": ("uint16", "VLAN id (0: untagged)"),
    "ifindex": ("int32", "interface index the first packet was seen on (0: from a file)"),
    "end_reason": ("string", "why the record was written: idle, active, fin, rst, evicted, end"),
    "sensor": ("string", "the sensor name (a partition column in Parquet datasets)"),
}

#: how a flow ended (``end_reason``)
END_IDLE: Final = "idle"  # no packet for the idle timeout
END_ACTIVE: Final = "active"  # open longer than the active timeout: written, and a new record begins
END_FIN: Final = "fin"  # TCP: both sides sent FIN
END_RST: Final = "rst"  # TCP: a reset
END_EVICTED: Final = "evicted"  # the flow table was full and this was the oldest flow
END_END: Final = "end"  # the capture or file ended with the flow open


@dataclass(slots=True)
class FlowRecord:
    """One finished flow (see :data:`FIELDS` for each column's meaning)."""

    ts: int
    last_ts: int
    duration: float
    proto: str
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    orig_pkts: int
    resp_pkts: int
    orig_ip_bytes: int
    resp_ip_bytes: int
    orig_bytes: int
    resp_bytes: int
    history: str
    community_id: str
    vlan: int
    ifindex: int
    end_reason: str
    sensor: str

    def as_dict(self) -> dict[str, object]:
        """The record as a dict in column order."""
        return {name: getattr(self, name) for name in FIELDS}


__all__ = ["END_ACTIVE", "END_END", "END_EVICTED", "END_FIN", "END_IDLE", "END_RST", "FIELDS", "FlowRecord"]

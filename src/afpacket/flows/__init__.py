"""Flow records: bidirectional conversations metered from packets, exported where engines read them.

- :mod:`.record`: the record and its columns (Zeek conn.log's names), :data:`FIELDS`;
- :mod:`.packet`: the flow fields of one packet, sliced from its bytes;
- :mod:`.meter`: :class:`FlowMeter`, the table (timeouts, TCP ends, bounded memory);
- :mod:`.communityid`: Community ID v1;
- :mod:`.export`: Parquet datasets (hive-partitioned), Arrow IPC streams, JSON lines, CSV.
"""

from __future__ import annotations

from .communityid import community_id
from .export import FORMATS, ArrowStream, Csv, FlowSink, JsonLines, ParquetDataset, open_sink
from .meter import FlowMeter, MeterStats, meter_records
from .record import FIELDS, FlowRecord

__all__ = [
    "FIELDS", "FORMATS", "ArrowStream", "Csv", "FlowMeter", "FlowRecord", "FlowSink", "JsonLines", "MeterStats",
    "ParquetDataset", "community_id", "meter_records", "open_sink",
]

"""A batch's packet metadata as arrays: one ``array.array`` per field, no Python object per packet.

The ring kernels fill the arrays (``fill_columns``); :meth:`Columns.to_numpy` and
:meth:`Columns.to_arrow` hand them to numpy or pyarrow without copying, both imported only when
asked for (optional extras: ``pip install afpacket[numpy]`` / ``afpacket[arrow]``).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from ..errors import AfPacketError

#: field name -> array typecode
COLUMNS: dict[str, str] = {
    "timestamp_ns": "q",
    "caplen": "I",
    "wire_len": "I",
    "vlan_tci": "H",
    "rxhash": "I",
    "pkttype": "B",
    "ifindex": "i",
}


@dataclass(frozen=True)
class Columns:
    """Per-packet metadata of one batch (what :meth:`Capture.columns` yields), in ring order: one
    ``array.array`` per field, every one of the same length (``len(cols)``).

    Fields: ``timestamp_ns`` (receive time, ns since the epoch), ``caplen`` (bytes captured),
    ``wire_len`` (bytes on the wire), ``vlan_tci`` (the stripped VLAN tag's TCI, 0 if none),
    ``rxhash`` (the kernel's flow hash, V3 with ``rxhash=True``, else 0), ``pkttype`` (PACKET_HOST,
    ... PACKET_OUTGOING), ``ifindex`` (the interface's index).

    Example::

        for cols in cap.columns(duration=10):
            arrays = cols.to_numpy()            # needs numpy; shares the memory
            print(len(cols), arrays["wire_len"].sum())
    """

    timestamp_ns: array[int]
    caplen: array[int]
    wire_len: array[int]
    vlan_tci: array[int]
    rxhash: array[int]
    pkttype: array[int]
    ifindex: array[int]

    def __len__(self) -> int:
        return len(self.timestamp_ns)

    def to_dict(self) -> dict[str, array[int]]:
        """The columns by field name, in field order (the arrays themselves, not copies)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_numpy(self) -> dict[str, Any]:
        """numpy arrays sharing the columns' memory, by field name (needs numpy: AfPacketError naming
        the extra to install when it is missing)."""
        try:
            import numpy as np  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise AfPacketError("to_numpy() needs numpy: pip install 'afpacket[numpy]'") from None
        return {name: np.frombuffer(col, dtype=col.typecode) for name, col in self.to_dict().items()}

    def to_arrow(self) -> Any:
        """A pyarrow Table with one column per field; timestamps as timestamp[ns] (needs pyarrow:
        AfPacketError naming the extra to install when it is missing)."""
        try:
            import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            raise AfPacketError("to_arrow() needs pyarrow: pip install 'afpacket[arrow]'") from None
        types = {"q": pa.int64(), "I": pa.uint32(), "H": pa.uint16(), "B": pa.uint8(), "i": pa.int32()}
        arrays = []
        for name, col in self.to_dict().items():
            buf = pa.py_buffer(col)
            arr = pa.Array.from_buffers(types[col.typecode], len(col), [None, buf])
            if name == "timestamp_ns":
                arr = arr.cast(pa.timestamp("ns"))
            arrays.append(arr)
        return pa.Table.from_arrays(arrays, names=list(COLUMNS))


def columns_of(kernels: ModuleType, batch: Any) -> Columns:
    """The metadata columns of ``batch`` (from :meth:`Capture.batches`), filled by the ring
    ``kernels``' ``fill_columns`` (``capture.kernels``)."""
    n = batch.count
    cols = {name: array(code, bytes(array(code).itemsize * n)) for name, code in COLUMNS.items()}
    kernels.fill_columns(batch, *cols.values())
    return Columns(**cols)

"""Counters that Prometheus scrapes: the text exposition of a capture's, a transmitter's or a worker
group's live statistics, served over HTTP by the official client library (``prometheus-client``).

Why a custom collector and not Counter objects updated by the capture loop: the loop would pay for every
increment, and the numbers would be copies that can drift from the kernel's. The collector instead reads
the live values when Prometheus scrapes (``stats()``, the walker's count, the ring's slots), so a scrape
says exactly what :meth:`Capture.stats` says at that moment, and nothing costs anything between scrapes.
PACKET_STATISTICS is clear-on-read; :meth:`PacketSocket.stats` holds a lock around the read and the
running totals, so a scrape from the server's thread and the capture loop's own reads never split a
count between them.

Each server has its own registry (not the library's global one), so two servers in one process, or a
program that uses prometheus-client for its own metrics, do not see each other's series.

The names follow Prometheus conventions (base units, ``_total`` for counters); labels ``interface``,
and ``worker`` for the workers of a :class:`~afpacket.CaptureGroup`. See :data:`METRICS`.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import abi
from .errors import AfPacketError

if TYPE_CHECKING:
    from .group import CaptureGroup
    from .rx.capture import Capture
    from .tx import Transmitter

#: The default address: metrics say what is on the wire, so they are not offered to the network unless asked.
DEFAULT_ADDRESS: Final = "127.0.0.1"

#: name → (type, help) of every metric this module serves.
METRICS: Final[dict[str, tuple[str, str]]] = {
    "afpacket_packets_total": ("counter", "Packets captured (taken from the ring) or sent (taken by the kernel)."),
    "afpacket_bytes_total": ("counter", "Bytes of the packets captured or sent (link-layer length on the wire, "
                                        "no FCS; a capture counts the full length, not the snapshot)."),
    "afpacket_received_total": ("counter", "Packets the kernel handed to the socket after the filter "
                                           "(received by filter), including those it dropped."),
    "afpacket_drops_total": ("counter", "Packets the kernel dropped because the ring was full."),
    "afpacket_freeze_total": ("counter", "Times the TPACKET_V3 ring froze because no block was free."),
    "afpacket_ring_blocks": ("gauge", "Slots in the RX ring: blocks (TPACKET_V3) or frames (V1/V2)."),
    "afpacket_ring_blocks_in_use": ("gauge", "Slots of the RX ring filled by the kernel and not yet "
                                             "handed back by the reader."),
    "afpacket_ring_occupancy_ratio": ("gauge", "Fraction of the RX ring's slots in use (0 to 1)."),
    "afpacket_failed_total": ("counter", "Frames that could not be sent (refused before or by the kernel)."),
    "afpacket_retries_total": ("counter", "Times a send was retried because the kernel pushed back "
                                          "(ENOBUFS, EAGAIN)."),
}

#: A snapshot: metric name (a key of :data:`METRICS`) → value.
Snapshot = dict[str, float]
#: What a source may return: one snapshot, or (labels, snapshot) pairs (one per worker, say).
Series = Mapping[str, float] | Iterable[tuple[Mapping[str, str], Mapping[str, float]]]


# -- snapshots --------------------------------------------------------------------------------------------


def ring_occupancy(cap: Capture) -> tuple[int, int]:
    """(slots in use, slots) of capture ``cap``'s RX ring: blocks on TPACKET_V3, frames on V1/V2. A slot is in
    use from the moment the kernel hands it to user space until the reader gives it back. Read under the
    walk's lock, so the ring is never read while close() unmaps it; (0, slots) once closed."""
    geo = cap.geometry
    v3 = geo.version == 3
    slots = geo.block_nr if v3 else geo.block_nr * geo.frames_per_block
    st = cap._st
    with st.lock:
        ring, walker = st.ring, st.walker
        if st.torn or st.forked or ring is None or walker is None:
            return 0, slots
        words = ring.u32
        if v3:
            # struct tpacket_block_desc: block_status is a u32 at byte 8 of the block
            offsets: Iterable[int] = (b * geo.block_size + 8 for b in range(geo.block_nr))
        else:
            offsets = walker.frame_offsets  # tp_status at byte 0 (V1: low half of an unsigned long)
        used = sum(1 for off in offsets if words[off >> 2] & abi.TP_STATUS_USER)
    return used, slots


def capture_snapshot(cap: Capture) -> Snapshot:
    """What :meth:`Capture.metrics` returns for capture ``cap``: ``stats()`` (received, drops, freeze
    count), the packets the reader has taken from the ring, and the ring's occupancy."""
    st = cap.stats()
    walker = cap._ring_walker
    used, slots = ring_occupancy(cap)
    return {
        "afpacket_packets_total": walker.taken if walker is not None else st.packets,
        "afpacket_bytes_total": walker.bytes if walker is not None else 0,
        "afpacket_received_total": st.received,
        "afpacket_drops_total": st.drops,
        "afpacket_freeze_total": st.freeze_count,
        "afpacket_ring_blocks": slots,
        "afpacket_ring_blocks_in_use": used,
        "afpacket_ring_occupancy_ratio": used / slots if slots else 0.0,
    }


def transmit_snapshot(tx: Transmitter, refused: int = 0) -> Snapshot:
    """Transmitter ``tx``'s counters: frames and bytes the kernel took, frames it rejected (plus ``refused``,
    frames the caller refused before the kernel, as `afpacket send` counts a frame too long for the
    MTU), and retries."""
    st = tx.stats()
    return {
        "afpacket_packets_total": st.sent,
        "afpacket_bytes_total": st.bytes,
        "afpacket_failed_total": st.failed + refused,
        "afpacket_retries_total": st.retries,
    }


def group_series(group: CaptureGroup) -> list[tuple[dict[str, str], Snapshot]]:
    """One snapshot per worker of capture group ``group``, labelled ``worker``, from the workers' latest reports
    (they report a few times a second; exact once the group has ended)."""
    out: list[tuple[dict[str, str], Snapshot]] = []
    for rep in group.stats().workers:
        out.append(({"worker": str(rep.index)}, {
            "afpacket_packets_total": rep.handled,
            "afpacket_bytes_total": rep.bytes,
            "afpacket_received_total": rep.received,
            "afpacket_drops_total": rep.drops,
        }))
    return out


def source_for(obj: Any) -> Callable[[], Series]:
    """The scrape-time reader for ``obj``, which is a Capture, a Transmitter, a CaptureGroup, an object with a
    ``metrics()`` method, or already a callable returning a snapshot (or (labels, snapshot) pairs)."""
    from .group import CaptureGroup
    from .rx.capture import Capture
    from .tx import Transmitter

    if isinstance(obj, Capture):
        return lambda: capture_snapshot(obj)
    if isinstance(obj, Transmitter):
        return lambda: transmit_snapshot(obj)
    if isinstance(obj, CaptureGroup):
        return lambda: group_series(obj)
    if hasattr(obj, "metrics") and callable(obj.metrics):
        return obj.metrics  # type: ignore[no-any-return]
    if callable(obj):
        return obj  # type: ignore[no-any-return]
    raise TypeError(f"a metrics source is a Capture, Transmitter, CaptureGroup or a callable, not {type(obj).__name__}")


# -- the collector and the server -------------------------------------------------------------------------


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise AfPacketError(
            "serving metrics needs the prometheus-client package: pip install 'afpacket[metrics]'"
        ) from None
    return prometheus_client


def _extra(name: str) -> tuple[str, str]:
    """The type and help of a name :data:`METRICS` does not list: by Prometheus's convention a name
    ending in ``_total`` is a counter, anything else a gauge."""
    return ("counter" if name.endswith("_total") else "gauge"), name.replace("_", " ")


class _Collector:
    """Reads the source at every scrape and turns its snapshot into metric families. If the source fails
    (the capture was closed, the interface went away) the last snapshot is served, so counters never go
    back to zero while the process lives."""

    def __init__(self, source: Callable[[], Series], labels: Mapping[str, str]) -> None:
        self._source = source
        self._labels = dict(labels)
        self._last: list[tuple[dict[str, str], Mapping[str, float]]] = []
        self._lock = threading.Lock()

    def read(self) -> list[tuple[dict[str, str], Mapping[str, float]]]:
        with self._lock:  # two scrapes at once read the source one after the other
            try:
                got = self._source()
            except (AfPacketError, OSError, ValueError):
                return self._last
            if isinstance(got, Mapping):
                series = [(dict(self._labels), got)]
            else:
                series = [({**self._labels, **lab}, snap) for lab, snap in got]
            self._last = series
            return series

    def describe(self) -> list[Any]:
        return []  # nothing read at registration: the source may not be ready yet

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        series = self.read()
        present = {n for _lab, snap in series for n in snap}
        # the known names in their documented order, then any a caller added (e.g. `afpacket top`'s own)
        names = [n for n in METRICS if n in present] + sorted(present - METRICS.keys())
        for name in names:
            kind, help_text = METRICS.get(name) or _extra(name)
            keys = sorted({k for lab, snap in series if name in snap for k in lab})
            family: Any
            if kind == "counter":
                family = CounterMetricFamily(name.removesuffix("_total"), help_text, labels=keys)
            else:
                family = GaugeMetricFamily(name, help_text, labels=keys)
            for lab, snap in series:
                if name in snap:
                    family.add_metric([lab.get(k, "") for k in keys], float(snap[name]))
            yield family


@dataclass
class MetricsServer:
    """A running metrics endpoint (see :func:`serve`): ``address`` and ``port`` it listens on (the port
    the kernel chose when 0 was asked), ``url`` of its /metrics page; :meth:`close` stops it."""

    address: str
    port: int
    _httpd: Any
    _thread: threading.Thread

    @property
    def url(self) -> str:
        """The page to scrape."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port (safe to call twice)."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            self._thread.join(5.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    port: int, address: str = DEFAULT_ADDRESS, source: Any = None, *, labels: Mapping[str, str] | None = None,
) -> MetricsServer:
    """Serve the Prometheus text exposition of ``source`` on ``address``:``port`` (``/metrics``, or any
    path) from a daemon thread, until :meth:`MetricsServer.close`.

    ``port``: the TCP port (0: any free one, see ``MetricsServer.port``). ``address``: where to listen
    (default 127.0.0.1, this host only; ``0.0.0.0`` or ``::`` for every address). ``source``: what is read
    at each scrape — a Capture, a Transmitter, a CaptureGroup (one series per worker, label ``worker``),
    or a callable returning a snapshot dict (metric name → value, names from :data:`METRICS`) or a list of
    (labels, snapshot) pairs; a name :data:`METRICS` does not list is served too, as a counter if it ends
    in ``_total``, else a gauge. ``labels``: added to every series, e.g. ``{"interface": "eth0"}`` (for a
    Capture, Transmitter or CaptureGroup the interface is filled in when not given).

    Raises AfPacketError when the port is in use or the address cannot be bound, or when
    prometheus-client is not installed (``pip install 'afpacket[metrics]'``).
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise AfPacketError(f"metrics port must be 0..65535, got {port!r}")
    if source is None:
        raise TypeError("serve() needs a source: a Capture, Transmitter, CaptureGroup or a callable")
    client = _client()
    lab = dict(labels or {})
    iface = getattr(source, "interface", None)
    if isinstance(iface, str):
        lab.setdefault("interface", iface)
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(_Collector(source_for(source), lab))
    try:
        httpd, thread = client.start_http_server(port, addr=address, registry=registry)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise AfPacketError(
                f"metrics port {port} on {address} is already in use: choose another --metrics-port"
            ) from None
        raise AfPacketError(f"cannot serve metrics on {address}:{port}: {e.strerror or e}") from None
    bound = httpd.server_address
    return MetricsServer(address, int(bound[1]), httpd, thread)


__all__ = [
    "DEFAULT_ADDRESS", "METRICS", "MetricsServer", "Snapshot", "capture_snapshot", "group_series",
    "ring_occupancy", "serve", "source_for", "transmit_snapshot",
]

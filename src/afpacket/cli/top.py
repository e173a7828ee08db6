"""`afpacket top`: a live view of the top talkers on an interface (flows, hosts, protocols), as iftop.

The per-packet work is afpacket.talkers.Aggregator's: a V3 ring with a short snapshot (the headers are
all it needs), each block's frames sliced into 5-tuples and counted in a dict for the current second.
Once a second the finished second (a small summary) goes to a TalkerTable, which keeps the 2 s / 10 s /
40 s averages, and the view is redrawn from its report. With ``--workers N`` the ring and the
aggregation run in N fanout workers (afpacket.group.CaptureGroup), each sending its summaries over a
pipe of its own; the parent merges the workers' shares of every second and only draws.
"""

from __future__ import annotations

import json
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import click

from ..errors import AfPacketError
from ..filter import BpfProgram, compile_filter
from ..interfaces import ANY, default_interface
from ..talkers import MAX_FLOWS, SNAPLEN, SORT_KEYS, Aggregator, Report, Second, TalkerTable, merge_seconds
from ..talkers import text_report as plain_report
from . import main
from .capture import _Stop, fail, metrics_options, start_metrics
from .output import IntRange, PositiveFloat

if TYPE_CHECKING:
    from ..group import CaptureGroup
    from ..rx import Capture

#: a second is handed on this long after it ended: the V3 block timeout (8 ms) may hold its last packets
GRACE_NS = 50_000_000
#: how long the parent waits for every worker's share of a second before counting it with what it has
MERGE_WAIT = 3
#: seconds between redraws of the live view
REFRESH = 1.0


def _count_batches(cap: Capture, agg: Aggregator, seconds: float) -> None:
    """Read the ring for ``seconds`` (or until stop()), counting every batch into ``agg``."""
    from ..rx.columns import columns_of

    if cap.sock_type == "dgram":
        _count_cooked(cap, agg, seconds)
        return
    kernels = cap.kernels
    frame_bytes = kernels.frame_bytes
    for batch in cap.batches(duration=max(seconds, 0.001)):
        cols = columns_of(kernels, batch)
        agg.add(frame_bytes(batch), cols.timestamp_ns, cols.wire_len, cols.vlan_tci)


#: cooked packets counted in one call of Aggregator.add
COOKED_CHUNK = 256
ETH_HLEN = 14
#: ARPHRD_ETHER, ARPHRD_LOOPBACK: devices whose packets had an Ethernet header the cooked socket took off
_ETHERNET_LIKE = frozenset((1, 772))


def _count_cooked(cap: Capture, agg: Aggregator, seconds: float) -> None:
    """:func:`_count_batches` for a capture without link headers (``-i any``: SOCK_DGRAM, data from the
    network header). Each packet is given a stand-in Ethernet header: no destination address, the
    source address the kernel reports, and the EtherType it saw (sll_protocol), so :func:`flow_key`
    reads it as it reads a frame; its length gets the 14 bytes of the Ethernet header the kernel took
    off (Ethernet and loopback devices), so rates are those a capture on the device itself shows. Per
    packet, since the EtherType is not among the ring's columns."""
    frames: list[bytes] = []
    stamps: list[int] = []
    lengths: list[int] = []
    tags: list[int] = []
    for pkt in cap.packets(duration=max(seconds, 0.001)):
        src = pkt.src_addr[:6]
        frames.append(b"\0" * 6 + src + b"\0" * (6 - len(src)) + pkt.protocol.to_bytes(2, "big")
                      + bytes(pkt.data[:SNAPLEN]))
        stamps.append(pkt.timestamp_ns)
        lengths.append(pkt.wire_len + (ETH_HLEN if pkt.hatype in _ETHERNET_LIKE else 0))
        tags.append(pkt.vlan_tci)
        if len(frames) == COOKED_CHUNK:
            agg.add(frames, stamps, lengths, tags)
            frames, stamps, lengths, tags = [], [], [], []
    if frames:
        agg.add(frames, stamps, lengths, tags)


class _Local:
    """One process: the capture and the aggregation here."""

    def __init__(self, iface: str, options: dict[str, Any], max_flows: int, stop: _Stop) -> None:
        from ..rx import Capture

        stop.before_open()
        self.cap = Capture(iface, **options)
        stop.attach(self.cap)
        self.agg = Aggregator(max_flows)
        self.agg.start_at(time.time_ns())
        self.metrics_source: Any = self.cap

    def pump(self, seconds: float) -> list[Second]:
        _count_batches(self.cap, self.agg, seconds)
        self.agg.close_before(time.time_ns() - GRACE_NS)
        return self.agg.take()

    def finish(self) -> list[Second]:
        self.agg.close_before(time.time_ns())
        return self.agg.take()

    def counters(self) -> tuple[int, int]:
        st = self.cap.stats()
        return st.received, st.drops

    def close(self) -> None:
        self.cap.close()


def _worker_loop(cap: Capture, conn: Connection, max_flows: int, start_ns: int) -> None:
    """A fanout worker's life: count its share, send each finished second to the parent."""
    agg = Aggregator(max_flows)
    agg.start_at(start_ns)
    st = cap._st
    while not st.halt:
        _count_batches(cap, agg, 0.25)
        agg.close_before(time.time_ns() - GRACE_NS)
        done = agg.take()
        if done:
            conn.send(done)
    agg.close_before(time.time_ns())
    conn.send(agg.take())
    conn.close()


class _Workers:
    """N fanout workers aggregate; this process merges their seconds."""

    def __init__(self, iface: str, options: dict[str, Any], max_flows: int, stop: _Stop, workers: int,
                 duration: float | None) -> None:
        import multiprocessing

        from ..group import CaptureGroup

        ctx = multiprocessing.get_context("fork")
        pipes = [ctx.Pipe(duplex=False) for _ in range(workers)]
        self.readers = [r for r, _w in pipes]
        writers = [w for _r, w in pipes]
        start_ns = time.time_ns()

        def work(cap: Capture, index: int) -> None:
            for i, r in enumerate(self.readers):  # the parent's ends, and the other workers' send ends
                r.close()
                if i != index:
                    writers[i].close()
            _worker_loop(cap, writers[index], max_flows, start_ns)

        self.workers = workers
        self.group: CaptureGroup = CaptureGroup(iface, workers=workers, worker=work, duration=duration, **options)
        stop.before_open()
        try:
            self.group.start()
        finally:
            for w in writers:
                w.close()
        stop.attach(self.group)
        self.metrics_source = self.group
        self.pending: dict[int, list[Second]] = {}
        self.fed: int | None = None

    def _read(self, timeout: float) -> None:
        if not self.readers:
            time.sleep(max(timeout, 0))
            return
        for conn in wait(self.readers, timeout):
            assert isinstance(conn, Connection)
            try:
                seconds: list[Second] = conn.recv()
            except (EOFError, OSError):
                self.readers.remove(conn)
                conn.close()
                continue
            for s in seconds:
                self.pending.setdefault(s.second, []).append(s)

    def _ready(self, everything: bool = False) -> list[Second]:
        out: list[Second] = []
        now_s = time.time_ns() // 1_000_000_000
        expected = max(1, sum(1 for r in self.group.reports if r.alive)) if not everything else 0
        for sec in sorted(self.pending):
            parts = self.pending[sec]
            if everything or len(parts) >= expected or sec < now_s - MERGE_WAIT:
                out.append(merge_seconds(parts))
                del self.pending[sec]
            else:
                break  # in order: a later second waits for this one
        return out

    def pump(self, seconds: float) -> list[Second]:
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            self._read(min(left, 0.25))
            self.group.poll(0)
            if not any(r.alive for r in self.group.reports) and not self.readers:
                break
        return self._ready()

    def finish(self) -> list[Second]:
        self.group.stop()
        deadline = time.monotonic() + 10
        while self.readers and time.monotonic() < deadline:
            self._read(0.25)
            self.group.poll(0)
        self.group.wait(5.0)
        return self._ready(everything=True)

    def counters(self) -> tuple[int, int]:
        st = self.group.stats()
        return st.received, st.drops

    def close(self) -> None:
        self.group.close()
        for r in self.readers:
            r.close()


class _View:
    """The live terminal view (rich): redrawn in place once a second, on the alternate screen."""

    def __init__(self, header: str) -> None:
        try:
            from rich.console import Console
            from rich.live import Live
        except ImportError:
            raise AfPacketError("the live view needs rich: pip install 'afpacket[top]' (or use --once)") from None
        self.header = header
        self.console = Console()
        self.live = Live(console=self.console, auto_refresh=False, screen=True, transient=True)
        self.live.start()

    def show(self, rep: Report) -> None:
        self.live.update(_renderable(rep, self.header), refresh=True)

    def close(self) -> None:
        self.live.stop()


def _renderable(rep: Report, header: str) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ..talkers import human_bits, human_bytes

    windows = ("2s", "10s", "40s")
    t = rep.totals
    head = Text(
        f"{header}   {t.rates['2s'][0]:,.0f} packets/s  {human_bits(t.rates['2s'][1])}/s  "
        f"received {rep.received:,}  dropped {rep.drops:,}  flows {rep.flow_count:,} (evicted "
        f"{rep.evicted_flows:,})  sort {rep.sort}", style="bold")
    parts: list[Any] = [head]
    totals = Table(box=None, pad_edge=False, expand=False)
    totals.add_column("")
    for w in windows:
        totals.add_column(w, justify="right")
    totals.add_column("total", justify="right")
    totals.add_row("bits/s", *(human_bits(t.rates[w][1]) for w in windows), human_bytes(t.bytes))
    totals.add_row("packets/s", *(f"{t.rates[w][0]:,.1f}" for w in windows), f"{t.packets:,}")
    parts.append(totals)
    for title, rows in (("flows", rep.flows), ("hosts", rep.hosts), ("protocols", rep.protocols)):
        table = Table(title=f"top {title}", title_justify="left", expand=True, box=None, pad_edge=False)
        table.add_column(title[:-1], overflow="fold", ratio=1)
        if title == "flows":
            table.add_column("proto", no_wrap=True)
        for w in windows:
            table.add_column(w, justify="right", no_wrap=True)
        table.add_column("total", justify="right", no_wrap=True)
        table.add_column("pkt/s", justify="right", no_wrap=True)
        for r in rows:
            # a flow's name ends with its protocol: a column of its own keeps the endpoints on one line
            names = r.name.rsplit(" ", 1) if title == "flows" and " <=> " in r.name else [r.name]
            if title == "flows" and len(names) == 1:
                names.append("")
            table.add_row(*names, *(human_bits(r.rates[w][1]) for w in windows), human_bytes(r.bytes),
                          f"{r.rates['2s'][0]:,.0f}")
        parts.append(table)
    return Group(*parts)


@main.command("top")
@click.option("-i", "--interface", help="Interface to watch (default: the first of `afpacket list`).")
@click.option("--sort", "sort_key", type=click.Choice(SORT_KEYS), default="2s", show_default=True,
              help="Order the lists by this average (of bytes), or by the total since the start.")
@click.option("--limit", type=IntRange(min=1, max=10_000), default=10, show_default=True,
              help="Rows in each list (flows, hosts, protocols).")
@click.option("--once", is_flag=True, help="Print one plain-text report after --duration seconds and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the report as JSON.")
@click.option("--duration", type=PositiveFloat(maximum=1e9), help="Stop after this many seconds.")
@click.option("--workers", type=IntRange(min=1, max=1024), default=None,
              help="Aggregate in N processes of one PACKET_FANOUT group (by flow hash); this one only draws.")
@click.option("-B", "--buffer-size", "buffer_kib", type=IntRange(min=64, max=1 << 30), default=4096,
              show_default=True, help="Ring size in KiB (per worker with --workers).")
@click.option("-p", "--no-promiscuous-mode", "no_promisc", is_flag=True,
              help="Don't put the interface into promiscuous mode.")
@click.option("--max-flows", type=IntRange(min=1, max=10_000_000), default=MAX_FLOWS, show_default=True,
              help="Bound on the flows (and hosts) held; the least recently active are evicted beyond it.")
@metrics_options
@click.argument("expression", nargs=-1)
def top_cmd(
    interface: str | None, sort_key: str, limit: int, once: bool, as_json: bool, duration: float | None,
    workers: int | None, buffer_kib: int, no_promisc: bool, max_flows: int, metrics_port: int | None,
    metrics_address: str, expression: tuple[str, ...],
) -> None:
    """Show the top talkers on an interface, refreshed every second, as iftop: flows (both directions
    in one row), hosts and protocols, with 2 s / 10 s / 40 s average rates.

    EXPRESSION is a tcpdump filter (run in the kernel). Ctrl-C (or SIGTERM/SIGHUP) ends it."""
    stop = _Stop()
    stop.install()
    if as_json and not once:
        raise click.UsageError("--json goes with --once (one report, then exit)")
    if once and duration is None:
        raise click.UsageError("--once needs --duration N (the seconds to watch before the report)")
    iface = interface or default_interface()
    expr = " ".join(expression) or None
    program: BpfProgram | None = None
    try:
        if expr:
            dgram = iface == ANY  # no link header on 'any' (SOCK_DGRAM): the program starts at the network header
            program = compile_filter(expr, dgram=dgram, snaplen=SNAPLEN, interface=None if dgram else iface)
    except AfPacketError as e:
        fail(str(e))
        return
    options: dict[str, Any] = dict(version=3, snaplen=SNAPLEN, buffer_size=buffer_kib * 1024, block_timeout_ms=8,
                                   promisc=not no_promisc and iface != ANY, filter=program)
    header = f"afpacket top on {iface}" + (f" ({expr})" if expr else "") + (f", {workers} workers" if workers else "")
    source: _Local | _Workers
    try:
        if workers is not None:
            source = _Workers(iface, options, max_flows, stop, workers, None)
        else:
            source = _Local(iface, options, max_flows, stop)
    except AfPacketError as e:
        fail(str(e))
        return
    try:
        metrics = start_metrics(metrics_port, metrics_address, source.metrics_source)
    except AfPacketError as e:
        source.close()
        fail(str(e))
        return
    table = TalkerTable(max_flows)
    view: _View | None = None
    error: str | None = None
    try:
        if not once and sys.stdout.isatty():
            view = _View(header)
        _run(source, table, view, sort_key, limit, duration, stop, once)
        for sec in source.finish():
            table.add(sec)
        table.received, table.drops = source.counters()
    except AfPacketError as e:
        error = str(e)
    except BrokenPipeError:
        pass
    finally:
        if view is not None:
            view.close()
        source.close()
        if metrics is not None:
            metrics.close()
    if error is not None:
        fail(error)
        return
    rep = table.report(sort_key, limit)
    if once:
        if as_json:
            doc = {"interface": iface, "filter": expr, "duration": duration, "workers": workers or 0,
                   **rep.to_dict()}
            click.echo(json.dumps(doc, indent=2))
        else:
            click.echo(plain_report(rep, header))
    else:
        click.echo(f"afpacket: {rep.received} packets received by filter, {rep.drops} dropped by kernel", err=True)


def _run(source: _Local | _Workers, table: TalkerTable, view: _View | None, sort_key: str, limit: int,
         duration: float | None, stop: _Stop, once: bool) -> None:
    """Pump the source, feed the table, redraw once a second, until --duration or a stop signal."""
    start = time.monotonic()
    deadline = start + duration if duration is not None else None
    next_draw = start + REFRESH
    while not stop.signum:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        until = next_draw if deadline is None else min(next_draw, deadline)
        for sec in source.pump(until - now):
            table.add(sec)
        if time.monotonic() >= next_draw:
            next_draw += REFRESH
            table.received, table.drops = source.counters()
            if once:
                continue
            rep = table.report(sort_key, limit)
            if view is not None:
                view.show(rep)
            else:
                click.echo(plain_report(rep, time.strftime("%H:%M:%S ") + "afpacket top") + "\n")


__all__ = ["top_cmd"]

"""``afpacket flows``: flow records from a live interface (optionally over fanout workers) or from files.

Live: a V3 ring with a short snapshot (headers are all a flow needs), read a batch at a time through the
core's ``frame_bytes`` and ``columns_of`` (timestamp, stripped VLAN tag, interface index), metered by
:class:`afpacket.flows.FlowMeter`, and handed to a sink from :mod:`afpacket.flows.export`. Once a second the
meter ends idle flows by the wall clock and the sink may publish a file. With ``--workers N`` each worker of
a fanout group (by flow hash, so both directions of a flow reach one worker) meters and writes its own part
files into the same Parquet dataset; the parent only waits and sums. Offline (``-r FILE...``): the files'
records in order, filtered as ``afpacket read`` filters them.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from ..errors import AfPacketError
from ..filter import BpfProgram, OfflineFilter, compile_filter
from ..flows.meter import ACTIVE_TIMEOUT, IDLE_TIMEOUT, MAX_FLOWS, FlowMeter, MeterStats
from ..interfaces import ANY, default_interface
from ..savefile.linktype import LINKTYPE_ETHERNET, LINKTYPE_RAW
from . import main
from .capture import _Stop, fail
from .output import IntRange, PositiveFloat

if TYPE_CHECKING:
    from ..flows.export import FlowSink
    from ..rx import Capture

#: bytes of each packet a flow meter reads: Ethernet, two tags, IPv6 with extension headers, TCP
SNAPLEN = 256
FORMATS = ("parquet", "arrow", "jsonl", "csv")
#: seconds between the live loop's looks at the clock (idle flows ended, files published)
TICK = 1.0


@dataclass
class _Totals:
    """What the closing summary adds up (one per worker, summed)."""

    packets: int = 0
    not_ip: int = 0
    flows: int = 0
    records: int = 0
    evicted: int = 0
    received: int = 0
    drops: int = 0

    def add(self, st: MeterStats) -> None:
        self.packets += st.packets
        self.not_ip += st.not_ip
        self.flows += st.flows
        self.records += st.records
        self.evicted += st.evicted


def _sink(fmt: str, out: str, sensor: str, roll_seconds: float) -> FlowSink:
    from ..flows.export import open_sink

    return open_sink(fmt, out, sensor, max_seconds=roll_seconds)


def _meter_live(cap: Capture, meter: FlowMeter, sink: FlowSink, stop: Any, duration: float | None,
                count: int | None) -> None:
    """Meter ``cap``'s packets into ``sink`` until stop(), ``duration`` seconds or ``count`` packets."""
    from ..rx.columns import columns_of

    kernels = cap.kernels
    frame_bytes = kernels.frame_bytes
    linktype = LINKTYPE_RAW if cap.sock_type == "dgram" else LINKTYPE_ETHERNET
    add_frames = meter.add_frames
    end = time.monotonic() + duration if duration is not None else None
    while not stop():
        slice_s = TICK if end is None else min(TICK, end - time.monotonic())
        if slice_s <= 0:
            break
        for batch in cap.batches(duration=slice_s):
            cols = columns_of(kernels, batch)
            add_frames(frame_bytes(batch), cols.timestamp_ns, cols.vlan_tci, cols.ifindex, linktype)
            if count is not None and meter.stats().packets >= count:
                return
        meter.expire(time.time_ns())
        _roll(sink)


def _roll(sink: FlowSink) -> None:
    sink.maybe_roll(time.monotonic())


def _worker(cap: Capture, index: int, *, fmt: str, out: str, sensor: str, roll_seconds: float,
            idle: float, active: float, max_flows: int, duration: float | None) -> MeterStats:
    """One fanout worker: its own meter and its own part files in the shared dataset."""
    sink = _sink(fmt, out, sensor, roll_seconds)
    meter = FlowMeter(idle_timeout=idle, active_timeout=active, max_flows=max_flows, sensor=sensor,
                      on_records=sink.write)
    try:
        _meter_live(cap, meter, sink, lambda: cap._st.halt, duration, None)
        meter.finish()
    finally:
        sink.close()
    return meter.stats()


@main.command("flows")
@click.option("-i", "--interface", help="Interface to meter live (default: the first of `afpacket list`).")
@click.option("-r", "--read", "files", multiple=True, metavar="FILE",
              help="Meter pcap/pcapng files instead, read in order: -r A B C (the files after -r, up to the "
                   "first word that is not a file, which starts the filter), or -r A -r B.")
@click.option("--out", "out", metavar="DIR|FILE|-",
              help="Where records go: a directory for parquet (a hive-partitioned dataset), a file or - "
                   "(stdout) for arrow, jsonl and csv. Default: - with jsonl.")
@click.option("--format", "fmt", type=click.Choice(FORMATS),
              help="Record format (default: parquet with an --out directory, jsonl on stdout).")
@click.option("--workers", type=IntRange(min=1, max=1024), default=None,
              help="Meter in N processes of one PACKET_FANOUT group (by flow); each writes its own parquet parts.")
@click.option("--idle-timeout", type=PositiveFloat(maximum=1e9), default=IDLE_TIMEOUT, show_default=True,
              help="End a flow after this many seconds without a packet.")
@click.option("--active-timeout", type=PositiveFloat(maximum=1e9), default=ACTIVE_TIMEOUT, show_default=True,
              help="Write a record for a flow open this long, and start a new one.")
@click.option("--max-flows", type=IntRange(min=1, max=100_000_000), default=MAX_FLOWS, show_default=True,
              help="Bound on open flows (per worker); beyond it the oldest is ended early and counted.")
@click.option("--sensor", default=None, help="Sensor name in every record and the dataset path (default: hostname).")
@click.option("--duration", type=PositiveFloat(maximum=1e9), help="Live: stop after this many seconds.")
@click.option("-c", "--count", type=IntRange(min=1), help="Live: stop after this many packets.")
@click.option("--roll-seconds", type=PositiveFloat(maximum=1e9), default=60.0, show_default=True,
              help="Parquet: publish the open file at least this often (a reader sees records this late).")
@click.option("-B", "--buffer-size", "buffer_kib", type=IntRange(min=64, max=1 << 30), default=16384,
              show_default=True, help="Live: ring size in KiB (per worker).")
@click.option("-p", "--no-promiscuous-mode", "no_promisc", is_flag=True,
              help="Live: don't put the interface into promiscuous mode.")
@click.argument("expression", nargs=-1)
def flows_cmd(
    interface: str | None, files: tuple[str, ...], out: str | None, fmt: str | None, workers: int | None,
    idle_timeout: float, active_timeout: float, max_flows: int, sensor: str | None, duration: float | None,
    count: int | None, roll_seconds: float, buffer_kib: int, no_promisc: bool, expression: tuple[str, ...],
) -> None:
    """Bidirectional flow records (Zeek conn.log's fields) from an interface or from files, as Parquet
    (a dataset DuckDB and Spark read), an Arrow IPC stream, JSON lines or CSV.

    EXPRESSION is a tcpdump filter. Ctrl-C (or SIGTERM/SIGHUP) ends a live run: open flows are written
    (end_reason "end") and the summary printed."""
    stop = _Stop()
    stop.install()
    if files:
        # `-r a.pcap b.pcap 'tcp'`: the files named right after -r (existing regular files) are read too; the
        # first word that is not one starts the filter expression
        more = list(expression)
        while more and os.path.isfile(more[0]):
            files += (more.pop(0),)
        expression = tuple(more)
    if files and interface:
        raise click.UsageError("give -i IFACE (live) or -r FILE (offline), not both")
    if files and (workers or duration is not None or count is not None):
        raise click.UsageError("--workers, --duration and -c are for live metering (-i), not -r FILE")
    out = out or "-"
    fmt = fmt or ("jsonl" if out == "-" else "parquet")
    if fmt == "parquet" and out == "-":
        raise click.UsageError("--format parquet writes a dataset directory: give --out DIR")
    if workers and fmt != "parquet":
        raise click.UsageError("--workers needs --format parquet --out DIR (each worker writes its own files)")
    from ..flows.export import check_sensor

    named = sensor is not None
    sensor = sensor if sensor is not None else socket.gethostname().split(".")[0]
    try:
        check_sensor(sensor)
    except AfPacketError as e:
        fix = "" if named else f" (the default is this host's name, {sensor!r}: give --sensor NAME)"
        raise click.UsageError(f"--sensor: {str(e).split(': ', 1)[-1]}{fix}") from None
    expr = " ".join(expression) or None
    totals = _Totals()
    started = time.monotonic()
    try:
        if files:
            _offline(files, expr, fmt, out, sensor, roll_seconds, idle_timeout, active_timeout, max_flows, stop,
                     totals)
        elif workers:
            _live_workers(interface, expr, out, sensor, roll_seconds, idle_timeout, active_timeout, max_flows,
                          duration, buffer_kib, no_promisc, workers, stop, totals)
        else:
            _live(interface, expr, fmt, out, sensor, roll_seconds, idle_timeout, active_timeout, max_flows,
                  duration, count, buffer_kib, no_promisc, stop, totals)
    except AfPacketError as e:
        fail(str(e))
        return
    except BrokenPipeError:
        _quiet_stdout()
        return
    _summary(totals, time.monotonic() - started, live=not files)


def _offline(files: tuple[str, ...], expr: str | None, fmt: str, out: str, sensor: str, roll_seconds: float,
             idle: float, active: float, max_flows: int, stop: _Stop, totals: _Totals) -> None:

    if expr:
        OfflineFilter(expr).check(LINKTYPE_ETHERNET)  # a bad expression fails before any file is read
    sink = _sink(fmt, out, sensor, roll_seconds)
    meter = FlowMeter(idle_timeout=idle, active_timeout=active, max_flows=max_flows, sensor=sensor,
                      on_records=sink.write)
    try:
        for path in files:
            if stop.signum:
                break
            meter.add_file(path, expr)
        meter.finish()
    finally:
        sink.close()
    totals.add(meter.stats())


def _open_live(
    interface: str | None, expr: str | None, buffer_kib: int, no_promisc: bool
) -> tuple[str, dict[str, Any]]:
    iface = interface or default_interface()
    program: BpfProgram | None = None
    if expr:
        dgram = iface == ANY
        program = compile_filter(expr, dgram=dgram, snaplen=SNAPLEN, interface=None if dgram else iface)
    return iface, dict(version=3, snaplen=SNAPLEN, buffer_size=buffer_kib * 1024, block_timeout_ms=10,
                       promisc=not no_promisc and iface != ANY, filter=program)


def _live(interface: str | None, expr: str | None, fmt: str, out: str, sensor: str, roll_seconds: float,
          idle: float, active: float, max_flows: int, duration: float | None, count: int | None, buffer_kib: int,
          no_promisc: bool, stop: _Stop, totals: _Totals) -> None:
    from ..rx import Capture

    iface, options = _open_live(interface, expr, buffer_kib, no_promisc)
    sink = _sink(fmt, out, sensor, roll_seconds)
    meter = FlowMeter(idle_timeout=idle, active_timeout=active, max_flows=max_flows, sensor=sensor,
                      on_records=sink.write)
    try:
        stop.before_open()
        with Capture(iface, **options) as cap:
            stop.attach(cap)
            click.echo(f"afpacket: metering flows on {iface}" + (f" ({expr})" if expr else ""), err=True)
            _meter_live(cap, meter, sink, lambda: bool(stop.signum), duration, count)
            st = cap.stats()
            totals.received, totals.drops = st.received, st.drops
        meter.finish()
    finally:
        sink.close()
    totals.add(meter.stats())


def _live_workers(interface: str | None, expr: str | None, out: str, sensor: str, roll_seconds: float,
                  idle: float, active: float, max_flows: int, duration: float | None, buffer_kib: int,
                  no_promisc: bool, workers: int, stop: _Stop, totals: _Totals) -> None:
    import functools

    from ..group import CaptureGroup

    iface, options = _open_live(interface, expr, buffer_kib, no_promisc)
    work = functools.partial(_worker, fmt="parquet", out=out, sensor=sensor, roll_seconds=roll_seconds, idle=idle,
                             active=active, max_flows=max_flows, duration=duration)
    group = CaptureGroup(iface, workers=workers, worker=work, duration=duration, **options)
    stop.before_open()
    group.start()
    stop.attach(group)
    click.echo(f"afpacket: metering flows on {iface} with {workers} workers in fanout group {group.group_id}",
               err=True)
    group.wait()
    gs = group.stats()
    totals.received, totals.drops = gs.received, gs.drops
    for rep in gs.workers:
        if rep.error is not None:
            click.echo(f"afpacket: worker {rep.index}: {rep.error.strip().splitlines()[-1]}", err=True)
        if isinstance(rep.result, MeterStats):
            totals.add(rep.result)
    if gs.failed:
        raise AfPacketError(f"{len(gs.failed)} of {workers} workers failed; their records up to the failure are "
                            "in the dataset")


def _summary(t: _Totals, seconds: float, live: bool) -> None:
    lines = [f"{t.records} flow records written ({t.evicted} ended early: the table was full)",
             f"{t.packets} packets metered ({t.not_ip} not IP) in {seconds:.1f} s"]
    if live:
        lines.append(f"{t.received} packets received by filter, {t.drops} dropped by kernel")
    click.echo("\n".join(lines), err=True)


def _quiet_stdout() -> None:
    # The reader went away (`| head`): nothing more can be said on stdout, and Python's flush at exit must
    # not complain about it either.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


__all__ = ["flows_cmd"]

"""`afpacket capture` (live capture with tcpdump's options and output) and `afpacket list` (``tcpdump -D``)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from types import FrameType
from typing import Any

import click

from .. import _startup
from .._check import MAX_COUNT, MAX_SECONDS
from ..errors import AfPacketError
from ..filter import BpfProgram, compile_filter, with_direction
from ..interfaces import ANY, capture_order, default_interface, list_interfaces, lookup, status_words
from ..privileges import drop_privileges, lookup_user, writable_as
from ..rx import Capture
from ..savefile._io import WriteError
from ..savefile.linktype import (
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NAMES,
    describe,
    linktype_for,
)
from ..timestamps import TYPES as TIMESTAMP_TYPES
from ..timestamps import list_lines as timestamp_list_lines
from ..timestamps import list_types as list_timestamp_types
from ..tofile import CaptureFile, format_for, open_for
from . import main
from .output import MAX_SNAPLEN, IntRange, PositiveFloat, filter_expression, make_writer, printing_options
from .report import LiveStatus, write_stats_json

#: Signals that end a capture cleanly between packets (the file ends with a whole record), as in tcpdump.
STOP_SIGNALS = _startup.STOP_SIGNALS
#: The smallest -C file, in bytes: a file must hold at least a header and a record or two, else a
#: tiny value (``-C 0.000001``) makes a new file for every packet, thousands of them.
MIN_FILE_SIZE = 4096
_MIN_FILE_WHY = f" ({MIN_FILE_SIZE} bytes; -C counts millions of bytes, as in tcpdump)"
#: The shortest -G period, in seconds. tcpdump takes whole seconds; fractions are accepted for short
#: tests and demos, down to one file per millisecond: below that, a period is shorter than one open()
#: of a file, and its only effect would be a new file for every packet.
MIN_ROTATE_SECONDS = 0.001
_MIN_ROTATE_WHY = " (one file per millisecond at most; tcpdump takes whole seconds)"


class _Count(IntRange):
    """A count option (-c, -W): a whole number from ``min`` up to :data:`~afpacket._check.MAX_COUNT`,
    the most the capture loops (and ``afpacket._check``) take, so a larger one is a usage error naming
    the option instead of an error from inside the capture."""

    def __init__(self, minimum: int = 1) -> None:
        super().__init__(min=minimum, max=MAX_COUNT)


def _timestamp_source(iface: str, tstamp_type: str | None, list_only: bool) -> str | None:
    """-J: print the interface's time stamp types as tcpdump does (on stderr). -j TYPE: the Capture
    timestamp_source it means; a type the interface does not list gets tcpdump's warning and the
    default clock, as tcpdump goes on with host stamps."""
    if list_only:
        for line in timestamp_list_lines(iface):
            click.echo(line, err=True)
        return None
    if tstamp_type is None:
        return None
    wanted = TIMESTAMP_TYPES[tstamp_type.lower()]
    if wanted not in list_timestamp_types(iface):
        click.echo(f"afpacket: WARNING: When trying to set timestamp type '{wanted.name}' on {iface}: That type of "
                   f"time stamp is not supported by that device (`afpacket capture -J -i {iface}` lists the ones "
                   "it has); using host time stamps", err=True)
        return None
    return wanted.source


def metrics_options(f: Any) -> Any:
    """--metrics-port and --metrics-address, shared by capture, send and gen (see afpacket.metrics)."""
    f = click.option("--metrics-address", default="127.0.0.1", show_default=True, metavar="ADDR",
                     help="With --metrics-port: the address to listen on (0.0.0.0 or :: for every address).")(f)
    return click.option("--metrics-port", type=IntRange(0, 65535), metavar="PORT",
                        help="Serve Prometheus metrics (counters read live) on this TCP port, at /metrics "
                             "(0: any free port, printed on stderr); needs afpacket[metrics].")(f)


def start_metrics(port: int | None, address: str, source: Any, labels: dict[str, str] | None = None) -> Any:
    """The metrics server for ``source`` (with ``labels`` on every series), or None without
    --metrics-port; AfPacketError when the port is in use (the caller ends with that one line)."""
    if port is None:
        return None
    from ..metrics import serve

    server = serve(port, address, source, labels=labels)
    if port == 0:  # the kernel picked the port: say which
        host = f"[{server.address}]" if ":" in server.address else server.address
        click.echo(f"afpacket: metrics at http://{host}:{server.port}/metrics", err=True)
    return server


def fail(message: str) -> None:
    click.echo(f"afpacket: {message}", err=True)
    sys.exit(1)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def print_summary(
    captured: int, received: int, dropped: int, not_written: int = 0, why: str = "", overwritten: int = 0,
    ring: bool = True,
) -> None:
    """tcpdump's closing statistics, one per line on stderr. With ``-w``, "captured" is the number of
    records written to the file(s); lines after it say how many of them are in files written over since
    (``ring``: a -W ring of files started over; else -G reopened a file name that repeats) and how many
    packets could not be written (and why), before the kernel's counters."""
    lines = [f"{_plural(captured, 'packet')} captured"]
    if overwritten and ring:
        lines.append(f"{_plural(overwritten, 'packet')} of them in files since reused by -W")
    elif overwritten:
        lines.append(f"{_plural(overwritten, 'packet')} of them in files since overwritten: -G opened a file "
                     "of the same name again (put strftime fields such as %H%M%S in the -w name)")
    if not_written:
        lines.append(f"{_plural(not_written, 'packet')} could not be written ({why})")
    lines += [f"{_plural(received, 'packet')} received by filter", f"{_plural(dropped, 'packet')} dropped by kernel"]
    try:
        click.echo("\n".join(lines), err=True)
    except OSError:  # stderr went away too: nothing left to tell
        pass


class _Stop:
    """The stop signals (SIGINT, SIGTERM, SIGHUP) of one capture, from the first line of the command.

    The handler never raises (no KeyboardInterrupt can cut a write or a teardown in half): it records
    the first signal and asks the capture to stop, which then ends between batches, closes its file on
    a whole record and prints its summary. Before the socket is open there is nothing to summarise:
    :meth:`before_open` ends the process quietly, as the signal would have (the shell shows 128 + N).
    A signal that arrived during start-up (held by afpacket._startup) counts as arrived now. A signal
    the process inherited as ignored (nohup, a background job of a script) stays ignored, as in tcpdump.
    """

    def __init__(self) -> None:
        self.signum = _startup.pending
        self.cap: Any = None  # a Capture, or a CaptureGroup: anything with stop()

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.signum:
            self.signum = signum
        cap = self.cap
        if cap is not None:
            try:
                cap.stop()
            except Exception:  # a handler must not raise into the code it interrupted
                pass

    def before_open(self) -> None:
        if self.signum:
            _startup.exit_by(self.signum)

    def attach(self, cap: Any) -> None:
        """From now on a stop signal stops ``cap`` (at once, if one came while it was being opened)."""
        self.cap = cap
        if self.signum:
            cap.stop()


def _quiet_stdout() -> None:
    """The reader of stdout went away: point fd 1 at /dev/null so that nothing later (our flushes,
    Python's at exit) fails on it again, as tcpdump ends quietly on SIGPIPE."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def list_lines() -> list[str]:
    """``tcpdump -D``: the interfaces in libpcap's order with their state, ``any`` after the running ones."""
    lines: list[str] = []
    ordered = capture_order(list_interfaces())
    any_line = "any (Pseudo-device that captures on all interfaces) [Up, Running]"
    placed = False
    for iface in ordered:
        if not placed and (iface.loopback or not iface.running):
            lines.append(any_line)
            placed = True
        lines.append(f"{iface.name} [{', '.join(status_words(iface)) or 'none'}]")
    if not placed:
        lines.append(any_line)
    return [f"{n}.{line}" for n, line in enumerate(lines, 1)]


@main.command("list")
def list_cmd() -> None:
    """List the interfaces a capture can open (like `tcpdump -D`)."""
    for line in list_lines():
        click.echo(line)


def link_types(interface: str) -> list[int]:
    """The link types a capture on ``interface`` can record (``tcpdump -L``): the first is the default."""
    if interface == ANY:
        return [LINKTYPE_LINUX_SLL2, LINKTYPE_LINUX_SLL]
    return [linktype_for(lookup(interface).hatype, socket.SOCK_RAW)]


def _linktype_by_name(name: str) -> int | None:
    for number, (short, _desc) in LINKTYPE_NAMES.items():
        if short.lower() == name.lower():
            return number
    return int(name) if name.isdigit() else None


class _Progress:
    """``-w`` on a terminal: a live line (packets, drops, rate) refreshed from a timer thread, so the
    block-at-a-time write path pays nothing per packet."""

    def __init__(self, cap: Capture, out: CaptureFile, enabled: bool, lock: threading.Lock) -> None:
        self.status = LiveStatus(enabled)
        self._cap, self._out, self._lock = cap, out, lock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if enabled:
            self._thread = threading.Thread(target=self._run, name="afpacket-progress", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(0.25):
            with self._lock:
                try:
                    drops = self._cap.stats().drops
                except AfPacketError:
                    return
            n = self._out.taken
            rate = n / max(time.monotonic() - start, 1e-9)
            self.status.update(f"Got {n}  ({rate:,.0f} packets/s, {drops} dropped by kernel)")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.status.close()


@main.command("capture")
@click.option("-i", "--interface", help="Interface to capture on, or 'any' (default: the first of -D).")
@click.option("-c", "--count", type=_Count(), help="Exit after this many packets.")
@click.option("-s", "--snaplen", type=IntRange(min=0), default=MAX_SNAPLEN, show_default=True,
              help="Bytes to keep of each packet (0: the maximum, 262144).")
@click.option("-B", "--buffer-size", "buffer_kib", type=IntRange(min=64, max=1 << 30), default=4096,
              show_default=True, help="Ring size in KiB (tcpdump's -B); at most half of the memory available "
              "unless --allow-large-ring.")
@click.option("--allow-large-ring", is_flag=True,
              help="Allocate a -B ring larger than half of MemAvailable (ring memory cannot be swapped).")
@click.option("--tpacket-version", type=click.Choice(["1", "2", "3"]), default="3", show_default=True,
              help="PACKET_MMAP ring version.")
@click.option("--block-timeout-ms", type=IntRange(min=0, max=65535), default=8, show_default=True,
              help="V3: how long the kernel may hold a partly filled block.")
@click.option("-p", "--no-promiscuous-mode", "no_promisc", is_flag=True,
              help="Don't put the interface into promiscuous mode (it is, by default, like tcpdump).")
@click.option("-Q", "--direction", type=click.Choice(["in", "out", "inout"], case_sensitive=False), default="inout",
              show_default=True, help="Capture packets received, sent, or both (any case, as tcpdump).")
@click.option("-j", "--time-stamp-type", "tstamp_type", metavar="TYPE",
              type=click.Choice(list(TIMESTAMP_TYPES), case_sensitive=False),
              help="Time stamp source, by tcpdump's names (see -J): host (the kernel's clock) or adapter / "
              "adapter_unsynced (the NIC's hardware clock, where it has one).")
@click.option("-J", "--list-time-stamp-types", "list_tstamps", is_flag=True,
              help="List the time stamp types the interface supports and exit.")
@click.option("--duration", type=PositiveFloat(maximum=MAX_SECONDS), help="Stop after this many seconds.")
@click.option("-D", "--list-interfaces", "list_only", is_flag=True, help="List interfaces and exit.")
@click.option("-L", "--list-data-link-types", "list_dlts", is_flag=True,
              help="List the link types the interface can record and exit.")
@click.option("-y", "--linktype", "dlt", metavar="TYPE", help="Link type to record (see -L): LINUX_SLL2 or "
              "LINUX_SLL for 'any'.")
@click.option("-w", "--write", "write_path", metavar="FILE", help="Write packets to FILE ('-' for stdout).")
@click.option("--format", "fmt", type=click.Choice(["pcap", "pcapng", "parquet"]), default=None,
              help="Format for -w (default: from FILE's extension, .pcapng → pcapng, .parquet → parquet, else "
                   "pcap). parquet: one row per packet (time, lengths, 5-tuple, VLAN, rxhash, pkttype, ifindex).")
@click.option("--payload-bytes", type=IntRange(min=0, max=65535), default=0, show_default=True,
              help="With --format parquet: keep each packet's first N bytes in a data column.")
@click.option("-U", "--packet-buffered", is_flag=True,
              help="Flush each packet: to the -w file, or each printed line to stdout.")
@click.option("-C", "file_size_mb", type=PositiveFloat(minimum=MIN_FILE_SIZE / 1e6, why=_MIN_FILE_WHY, maximum=1e12),
              help="With -w: start a new file after this many million bytes (tcpdump -C).")
@click.option("-G", "rotate_seconds",
              type=PositiveFloat(minimum=MIN_ROTATE_SECONDS, why=_MIN_ROTATE_WHY, maximum=MAX_SECONDS),
              help="With -w: start a new file every this many seconds (at least 0.001; fractions allowed, "
              "tcpdump takes whole seconds); FILE may hold strftime fields.")
@click.option("-W", "file_count", type=_Count(),
              help="With -C: keep a ring of this many files; with -G: stop after this many files.")
@click.option("--print", "print_too", is_flag=True, help="With -w: also print packet lines.")
@click.option("--stats-json", "stats_json", metavar="FILE", help="Write the closing summary as JSON to FILE.")
@click.option("-Z", "--relinquish-privileges", "drop_user", metavar="USER",
              help="Once the socket, ring and -w file are open, become USER (no root, no capabilities, "
              "no supplementary groups); the -w file is given to USER, as tcpdump does.")
@printing_options
@click.option("-d", "dump_level", count=True,
              help="Print the compiled filter program and exit: -d readable, -dd as C, -ddd as decimal numbers "
                   "(as tcpdump; see also afpacket compile-filter).")
@click.option("--workers", type=IntRange(min=1, max=1024), default=None,
              help="Spread the capture over N processes in one PACKET_FANOUT group (needs -w: one file per worker "
                   "with {worker} in the name, else one file merged in timestamp order).")
@click.option("--fanout", "fanout_mode", type=click.Choice(["hash", "lb", "cpu", "rnd", "rollover", "qm", "cbpf"]),
              default="hash", show_default=True,
              help="With --workers: how the kernel picks a worker (hash: by flow, with defrag, as Suricata).")
@click.option("--fanout-program", metavar="FILE",
              help="With --fanout cbpf: a classic BPF program (tcpdump -ddd text) whose return value picks the "
                   "worker (modulo N); default: a symmetric flow hash (addresses and ports) computed in BPF.")
@metrics_options
@click.argument("expression", nargs=-1)
def capture_cmd(
    interface: str | None, count: int | None, snaplen: int, buffer_kib: int, allow_large_ring: bool,
    tpacket_version: str,
    tstamp_type: str | None, list_tstamps: bool,
    block_timeout_ms: int, no_promisc: bool, direction: str, duration: float | None, list_only: bool,
    list_dlts: bool, dlt: str | None, write_path: str | None, fmt: str | None, payload_bytes: int,
    packet_buffered: bool,
    file_size_mb: float | None, rotate_seconds: float | None, file_count: int | None, print_too: bool,
    stats_json: str | None, drop_user: str | None,
    expression: tuple[str, ...], numeric: int, link: bool, quiet: bool, verbose: int,
    hex_level: int, hex_ascii_level: int, ascii: bool, time_level: int, absolute_seq: bool, no_checksums: bool,
    number: bool, line_buffered: bool, filter_file: str | None, precision: str,
    workers: int | None = None, fanout_mode: str = "hash", fanout_program: str | None = None, dump_level: int = 0,
    metrics_port: int | None = None, metrics_address: str = "127.0.0.1",
) -> None:
    """Capture packets and print one line per packet, like `tcpdump -n`.

    EXPRESSION is a tcpdump filter (e.g. `udp port 53`), compiled by libpcap and run in the kernel.
    SIGUSR1 prints the statistics so far; SIGINT, SIGTERM and SIGHUP end the capture with its summary."""
    stop = _Stop()
    stop.install()
    if list_only:
        for line in list_lines():
            click.echo(line)
        return
    iface = interface or default_interface()
    try:
        types = link_types(iface)
    except AfPacketError as e:
        fail(str(e))
        return
    if list_dlts:
        # on stderr, by number, as tcpdump 4.99 prints them; the default is still the first of ``types``
        click.echo(f"Data link types for {iface} (use option -y to set):", err=True)
        for lt in sorted(types):
            click.echo(f"  {describe(lt)}", err=True)
        return
    try:
        ts_source = _timestamp_source(iface, tstamp_type, list_tstamps)
    except AfPacketError as e:
        fail(str(e))
        return
    if list_tstamps:
        return
    linktype = types[0]
    if dlt is not None:
        wanted = _linktype_by_name(dlt)
        if wanted not in types:
            fail(f"{dlt} is not one of the link types {iface} can record (afpacket capture -i {iface} -L lists them)")
            return
        linktype = wanted
    if file_count is not None and not (file_size_mb or rotate_seconds):
        # tcpdump refuses it too: -W only counts files that -C or -G make
        raise click.UsageError("-W needs -C or -G (it sets how many files they rotate through)")
    if write_path is None and (file_size_mb or rotate_seconds or file_count):
        fail("-C, -G and -W apply to a capture file: add -w FILE")
        return
    parquet = fmt == "parquet" or (fmt is None and write_path is not None and write_path.lower().endswith(".parquet"))
    if parquet:
        if write_path is None or write_path == "-":
            raise click.UsageError("--format parquet writes a file: give -w FILE.parquet (not stdout)")
        if file_size_mb or rotate_seconds or file_count or workers is not None:
            raise click.UsageError("--format parquet writes one file: -C, -G, -W and --workers are for pcap/pcapng")
    elif payload_bytes:
        raise click.UsageError("--payload-bytes goes with --format parquet")
    if drop_user is not None:
        problem = _drop_problem(drop_user, write_path, bool(file_size_mb or rotate_seconds), stats_json)
        if problem:
            fail(problem)
            return
    snaplen = snaplen or MAX_SNAPLEN
    if snaplen > MAX_SNAPLEN:
        snaplen = MAX_SNAPLEN  # tcpdump's rule: larger values mean the maximum
    expr = filter_expression(expression, filter_file)
    dgram = iface == ANY
    program: BpfProgram | None = None
    try:
        if expr:
            program = compile_filter(expr, dgram=dgram, snaplen=snaplen, interface=None if dgram else iface)
        if dump_level:
            # tcpdump -d/-dd/-ddd: the program compiled for this interface (the accepting one without an
            # expression), then exit
            shown = program or compile_filter("", dgram=dgram, snaplen=snaplen, interface=None if dgram else iface)
            click.echo(shown.dump(level=min(dump_level, 3)))
            return
        # One copy of each packet on loopback, as tcpdump prints it: the outgoing copy of a packet sent on
        # lo comes straight back in. PACKET_IGNORE_OUTGOING does -Q in in the kernel; the rest is BPF.
        lo_index = _loopback_index() if iface in (ANY, "lo") or _is_loopback(iface) else None
        program = with_direction(program, direction="inout" if direction == "in" else direction,
                                 loopback_ifindex=lo_index, snaplen=snaplen)
        if workers is not None:
            steering = _steering_program(fanout_mode, fanout_program)
            problem = _workers_problem(write_path, print_too, drop_user)
            if problem:
                fail(problem)
                return
            from .workers import run_workers

            run_workers(
                stop, iface=iface, workers=workers, mode=fanout_mode, steering=steering, write_path=str(write_path),
                fmt=fmt, count=count, duration=duration,
                capture_options=dict(
                    version=int(tpacket_version), snaplen=snaplen, buffer_size=buffer_kib * 1024,
                    block_timeout_ms=block_timeout_ms, promisc=not no_promisc and iface != ANY, filter=program,
                    ignore_outgoing=direction == "in", allow_large_ring=allow_large_ring,
                    timestamp_source=ts_source,
                ),
                file_options=dict(
                    cooked=1 if linktype == LINKTYPE_LINUX_SLL else 2, unbuffered=packet_buffered,
                    file_size=int(file_size_mb * 1_000_000) if file_size_mb else None,
                    rotate_seconds=rotate_seconds, file_count=file_count,
                ),
                nanosecond=precision == "nano", stats_json=stats_json,
                metrics=(metrics_port, metrics_address),
                banner=f"afpacket: capturing on {iface}, link-type {describe(linktype)}, snapshot length {snaplen} "
                       f"bytes (TPACKET_V{tpacket_version})",
            )
            return
        if fanout_program is not None:
            fail("--fanout-program needs --workers N --fanout cbpf")
            return
        stop.before_open()
        cap = Capture(
            iface,
            version=int(tpacket_version),
            snaplen=snaplen,
            buffer_size=buffer_kib * 1024,
            block_timeout_ms=block_timeout_ms,
            promisc=not no_promisc and iface != ANY,
            filter=program,
            ignore_outgoing=direction == "in",
            allow_large_ring=allow_large_ring,
            timestamp_source=ts_source,
        )
    except AfPacketError as e:
        fail(str(e))
        return
    stop.attach(cap)
    cooked = 1 if linktype == LINKTYPE_LINUX_SLL else 2
    if dgram:
        cap._ring.set_cooked(cooked)  # printed lines and file records get the same cooked header
    out: Any = None  # a CaptureFile, or a ColumnFile for --format parquet
    if write_path is not None and parquet:
        try:
            from ..tocolumns import ColumnFile

            out = ColumnFile(write_path, payload_bytes=payload_bytes)
        except AfPacketError as e:
            cap.close()
            fail(str(e))
            return
    elif write_path is not None:
        try:
            out = open_for(
                cap, write_path, format_for(write_path, fmt),
                cooked=cooked,
                nanosecond=precision == "nano",
                unbuffered=packet_buffered,
                file_size=int(file_size_mb * 1_000_000) if file_size_mb else None,
                rotate_seconds=rotate_seconds,
                file_count=file_count,
            )
        except AfPacketError as e:
            cap.close()
            fail(str(e))
            return
    metrics_server = None
    try:
        metrics_server = start_metrics(metrics_port, metrics_address, cap)  # before -Z: a port below 1024 needs root
        if drop_user is not None:
            drop_privileges(drop_user, chown=out.files if out is not None else ())
    except AfPacketError as e:
        if metrics_server is not None:
            metrics_server.close()
        if out is not None:
            out.close()
        cap.close()
        fail(str(e))
        return
    show = out is None or print_too
    if show and not verbose:
        click.echo("afpacket: verbose output suppressed, use -v[v]... for full protocol decode", err=True)
    click.echo(
        f"afpacket: {'listening' if out is None else 'capturing'} on {iface}, link-type {describe(linktype)}, "
        f"snapshot length {snaplen} bytes (TPACKET_V{tpacket_version}, {cap.geometry.size // 1024} KiB ring)",
        err=True,
    )
    if tpacket_version == "1" and not dgram:
        click.echo("afpacket: note: TPACKET_V1 has no VLAN fields; tags the kernel strips are lost (use V2/V3)",
                   err=True)
    state: dict[str, Any] = {"captured": 0}
    stats_lock = threading.Lock()

    def captured_now() -> int:
        return out.written if out is not None else int(state["captured"])

    def interim(signum: int, frame: FrameType | None) -> None:
        # SIGUSR1, as tcpdump: the statistics so far on one line, and the capture goes on.
        try:
            with stats_lock:
                st = cap.stats()
            n = out.taken if out is not None else int(state["captured"])
            click.echo(f"afpacket: {_plural(n, 'packet')} captured, {_plural(st.received, 'packet')} "
                       f"received by filter, {_plural(st.drops, 'packet')} dropped by kernel", err=True)
        except (AfPacketError, OSError, RuntimeError):  # closing, or stderr busy or gone: skip this one
            pass

    # The stop handlers stay until the process exits: a signal during the teardown must not cut it short.
    signal.signal(signal.SIGUSR1, interim)
    progress = None
    if out is not None and not show:
        progress = _Progress(cap, out, LiveStatus.enabled_for(sys.stderr, quiet) and write_path != "-", stats_lock)
    started = time.monotonic()
    error: str | None = None
    closed_output = False
    try:
        if out is not None and not show:
            out.consume(cap, count, duration)  # block-at-a-time fast path
        else:
            writer = make_writer(
                link=link, quiet=quiet, verbose=verbose, hex_level=hex_level, hex_ascii_level=hex_ascii_level,
                ascii=ascii, time_level=time_level, absolute_seq=absolute_seq, no_checksums=no_checksums,
                number=number, precision=precision, flush_each=packet_buffered or line_buffered,
            )
            print_type = linktype if not dgram else LINKTYPE_LINUX_SLL if cooked == 1 else LINKTYPE_LINUX_SLL2
            for pkt in cap.packets(count=count, duration=duration):
                if out is not None:
                    out.write_packet(pkt)
                    if out.done:
                        break
                state["captured"] += 1
                data, wire = pkt.file_record()
                writer.write(pkt.timestamp_ns, data, wire, print_type)
    except WriteError as e:
        # The -w output failed: a full disk is an error; a reader that went away (-w - | head) is the end
        # of the output, which tcpdump meets quietly (its SIGPIPE handler prints the summary, exit 0).
        if e.output_closed:
            closed_output = True
        else:
            error = str(e)
    except AfPacketError as e:
        error = str(e)
    except BrokenPipeError:  # printed lines: the reader of stdout went away
        closed_output = True
    finally:
        if progress is not None:
            progress.close()
    if closed_output:
        _quiet_stdout()
    seconds = time.monotonic() - started
    received, dropped, close_error = _finish(cap, out)
    failure = out.error if out is not None else None
    ended_by_reader = isinstance(failure, WriteError) and failure.output_closed
    if close_error is not None and error is None and not ended_by_reader:
        error = close_error
    captured = captured_now()
    not_written = out.not_written if out is not None else 0
    why = ""
    if isinstance(failure, WriteError):
        why = "output closed" if ended_by_reader else failure.reason
    elif failure is not None:
        why = str(failure)
    if error is not None:
        click.echo(f"afpacket: {error}", err=True)
    overwritten = out.overwritten if out is not None else 0
    # -W makes a ring of numbered files only with -C; with -G alone it counts files, and a file is only
    # overwritten when its (strftime) name repeats
    ring = file_count is not None and file_size_mb is not None
    print_summary(captured, received, dropped, not_written, why, overwritten, ring=ring)
    if metrics_server is not None:
        metrics_server.close()
    if stats_json is not None:
        summary = {
            "command": "capture", "interface": iface, "link_type": LINKTYPE_NAMES.get(linktype, (str(linktype),))[0],
            "captured": captured, "received_by_filter": received, "dropped_by_kernel": dropped,
            "written": out.written if out is not None else None, "not_written": not_written,
            "overwritten": overwritten,
            "not_written_reason": why or None, "files": list(out.files) if out is not None else [],
            "stop_signal": signal.Signals(stop.signum).name if stop.signum else None,
            "seconds": round(seconds, 6), "file": write_path, "error": error,
        }
        try:
            write_stats_json(stats_json, summary)
        except AfPacketError as e:
            click.echo(f"afpacket: {e}", err=True)
            error = error or str(e)
    if error is not None:
        sys.exit(1)


def _steering_program(mode: str, path: str | None) -> BpfProgram | None:
    """--fanout-program FILE: the cbpf steering program (tcpdump -ddd text), read and checked."""
    if path is None:
        return None
    if mode != "cbpf":
        raise AfPacketError("--fanout-program needs --fanout cbpf (it is the program that picks a worker)")
    from ..filter import parse_filter

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise AfPacketError(f"cannot read --fanout-program {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise AfPacketError(f"--fanout-program {path} is not text: give tcpdump -ddd output") from None
    return parse_filter(text)


def _workers_problem(write_path: str | None, print_too: bool, drop_user: str | None) -> str | None:
    """Why --workers cannot go with the other options given, or None."""
    if write_path is None:
        return ("--workers writes files: add -w FILE (one merged file in timestamp order) or -w 'out-{worker}.pcap' "
                "(one per worker); read them with afpacket read")
    if print_too:
        return "--print cannot go with --workers (each worker writes a file): read the file afterwards"
    if drop_user is not None:
        return "-Z cannot go with --workers yet: run the capture as the user, with CAP_NET_RAW"
    return None


def _drop_problem(user: str, write_path: str | None, rotating: bool, stats_json: str | None) -> str | None:
    """Why ``-Z user`` cannot work with these outputs, or None. Checked before anything is opened:
    rotated files and the --stats-json summary are created after the drop, by USER, so their directory
    must be writable by USER (the first -w file is created as root and then given to USER)."""
    try:
        lookup_user(user)
        if os.geteuid() != 0:
            return (f"-Z {user}: switching users needs root (this process runs as uid {os.geteuid()}); "
                    "run the capture as root with -Z, or without -Z as the user you want")
        if rotating and write_path is not None:
            where = os.path.dirname(os.path.abspath(time.strftime(write_path))) or "/"
            if not writable_as(user, where, directory=True):
                return (f"-Z {user}: rotated -C/-G files are created after switching to {user}, who cannot "
                        f"write to {where}; write them to a directory {user} may write to, or leave out -Z")
        if stats_json is not None and stats_json != "-" and not writable_as(user, stats_json):
            return (f"-Z {user}: the --stats-json file is written after switching to {user}, who cannot "
                    f"write {stats_json}; put it where {user} may write, or leave out -Z")
    except AfPacketError as e:
        return str(e)
    return None


def _loopback_index() -> int | None:
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return None


def _is_loopback(name: str) -> bool:
    try:
        return lookup(name).loopback
    except AfPacketError:
        return False


def _finish(cap: Capture, out: CaptureFile | None) -> tuple[int, int, str | None]:
    """Read the kernel's counters, close the capture, then the file (its statistics block carries the
    counters): (received, dropped, the error closing the file raised, if any). Counting what reached
    the file is the file's (``out.written``, exact once closed)."""
    try:
        sys.stdout.flush()
    except OSError:
        _quiet_stdout()
    except ValueError:
        pass
    received = dropped = 0
    problem: str | None = None
    try:
        st = cap.stats()
        received, dropped = st.received, st.drops
    except AfPacketError as e:
        problem = str(e)
    cap.close()
    if out is not None:
        try:
            out.close(received, dropped)
        except AfPacketError as e:
            problem = str(e)
    return received, dropped, problem


__all__ = ["capture_cmd", "list_cmd", "list_lines"]

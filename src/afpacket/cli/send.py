"""`afpacket send` (replay pcap/pcapng files, like tcpreplay 4.4) and `afpacket gen` (UDP/IPv4 generator).

``send`` takes tcpreplay's everyday options with their meanings (``-i``, ``-t``, ``-x``, ``-p``, ``-M``,
``-l``, ``-L``, ``--duration``, ``-K``, ``--stats``, ``--loopdelay-ms``, ``-q``, ``-v``) and files as plain
arguments. A frame that cannot be sent is counted as failed, with its reason, and the replay goes on, as
tcpreplay does; records of other link types that carry no Ethernet header (Linux cooked, raw IP,
loopback) are rebuilt as Ethernet frames (:func:`afpacket.craft.ethernet_from`). Both commands end with a
summary in tcpreplay's shape on stderr, also after SIGINT, SIGTERM or SIGHUP (exit status 0, as tcpdump),
optionally as JSON (``--stats-json``), and show a live progress line while stderr is a terminal.

Faults: a gap in the file's time stamps longer than ``--maxsleep`` (default one hour) is cut to it, said
once on stderr; the kernel pushing back (ENOBUFS, EAGAIN) is waited out and counted ("Retried packets");
an interface that goes down, is deleted or moves to another network namespace ends the run with the
summary (frames still queued counted as failed, "not sent") and one line saying what happened, exit 1.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from .. import _startup, abi
from .._check import MAX_SECONDS
from ..craft import REBUILDABLE_LINKTYPES, FlowSpec, ethernet_from, ip_bytes, mac_bytes
from ..errors import AfPacketError
from ..interfaces import lookup
from ..pacing import MAX_GAP, Pacer, wait_until
from ..savefile import SavefileError, describe, open_reader
from ..savefile.linktype import LINKTYPE_ETHERNET
from ..tx import Transmitter, TransmitWarning
from . import main
from .capture import metrics_options, start_metrics

if TYPE_CHECKING:
    from ..dissect import LinePrinter
from .output import IntRange, PositiveFloat, clock_text
from .report import LiveStatus, write_stats_json

#: With a rate limit, bursts are sized so that the ring is kicked at most this often per second.
_MAX_KICKS_PER_SECOND = 20_000
#: Frames handed to the transmitter at once at top speed; also how often stop conditions are checked.
_CHUNK = 256
#: Frames per send_repeated call in `gen` at top speed: ~0.1 s, so progress and signals stay responsive.
_GEN_CHUNK = 1 << 16
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
#: IP protocols whose first four bytes are source and destination ports: TCP, UDP, SCTP.
_PORT_PROTOCOLS = (6, 17, 132)
#: Exit status for usage errors (click's convention).
_USAGE = 2
#: The signals that end a run with its summary (exit status 0, as tcpdump; tcpreplay does so for SIGINT).
_STOP_SIGNALS = _startup.STOP_SIGNALS  # SIGINT, SIGTERM, SIGHUP: one list for every command
_STOPPED_BY_SIGNAL = frozenset(sig.name for sig in _STOP_SIGNALS)
#: The slowest rate accepted for -x, -p and -M (and gen --pps): below it one frame would wait for weeks,
#: and the schedule's arithmetic leaves the range of a float (-x 1e-300).
#: gen --flows: one template frame per flow is built before sending, so their number is bounded (the
#: 5-tuples differ in source address and port; a million is more than a flow table test needs)
MAX_FLOWS = 1_000_000
_SLOWEST = 1e-6


_version_option = click.option(
    "--tpacket-version", "version", type=IntRange(1, 3), default=2, show_default=True,
    help="TX ring version (V2 is the best supported; V3 TX needs Linux 4.11).",
)
_bypass_option = click.option(
    "--qdisc-bypass", is_flag=True,
    help="PACKET_QDISC_BYPASS: skip tc/qdisc (faster; more loss possible; tcpdump on this host won't see the frames).",
)
_quiet_option = click.option("-q", "--quiet", is_flag=True, help="No live progress and no warnings; only the summary.")
_json_option = click.option(
    "--stats-json", "stats_json", metavar="FILE",
    help="Also write the closing summary as one JSON object to FILE ('-': standard output).",
)


def _address(parse: Callable[[str], bytes]) -> Callable[[click.Context, click.Parameter, str | None], str | None]:
    """An option callback that refuses a malformed address at parse time (exit 2, the option named),
    before any interface is opened; the text itself is kept, as the commands take it."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value)
            except AfPacketError as e:
                raise click.BadParameter(str(e), ctx, param) from None
        return value

    return check


_check_mac = _address(mac_bytes)
_check_ipv4 = _address(ip_bytes)


def _fail(message: str) -> None:
    click.echo(f"afpacket: {message}", err=True)
    sys.exit(1)


def _open(interface: str, version: int, qdisc_bypass: bool) -> Transmitter:
    iface = lookup(interface)
    if iface.hatype not in (abi.ARPHRD_ETHER, abi.ARPHRD_LOOPBACK):
        raise AfPacketError(
            f"{interface} is not an Ethernet interface (ARPHRD {iface.hatype}); send and gen write Ethernet frames"
        )
    # Slots big enough for the interface's largest frame (MTU + Ethernet + VLAN tag + ring header).
    need = iface.mtu + 18 + 48
    return Transmitter(interface, version=version, qdisc_bypass=qdisc_bypass, frame_size=max(2048, (need + 15) & ~15))


# --- counting and reporting, shared by send and gen ---------------------------------------------------
@dataclass
class _Run:
    """The state of one send or gen run: counts, stop conditions, and what the user sees meanwhile.

    ``queued``/``queued_bytes`` count frames handed to the transmitter (the kernel may still reject
    some: the final numbers come from the transmitter's own statistics). ``failed`` holds the frames
    refused before the kernel, by reason; ``tick()`` is called between chunks and during waits and
    answers whether to stop.
    """

    command: str
    interface: str
    live: LiveStatus
    quiet: bool
    stats_every: float | None = None
    duration: float | None = None
    loops: int = 1
    start: float = 0.0
    end: float = math.inf
    queued: int = 0
    queued_bytes: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    failed_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    loop: int = 0
    stopped_by: str | None = None
    #: set by SIGUSR1; the next tick prints (a handler writing to stderr could interleave with a write)
    interim_asked: bool = False
    _next_stats: float = math.inf

    def begin(self) -> None:
        self.start = time.monotonic()
        if self.duration is not None:
            self.end = self.start + self.duration
        if self.stats_every:
            self._next_stats = self.start + self.stats_every
        if self.stats_every is not None:
            click.echo(f"Test start: {_wallclock()} ...", err=True)

    def tick(self) -> bool:
        """Redraw progress and print interim statistics when due; True when the run must stop."""
        if self.stopped_by is not None:
            return True
        now = time.monotonic()
        if now >= self.end:
            self.stopped_by = "duration"
            return True
        if self.live.due():
            self.live.update(self.progress_line(now))
        if now >= self._next_stats:
            self._next_stats = now + (self.stats_every or math.inf)
            self.interim(now)
        elif self.interim_asked:
            self.interim(now)
        return False

    def progress_line(self, now: float) -> str:
        secs = max(now - self.start, 1e-9)
        line = (
            f"{self.queued} packets ({_human_bytes(self.queued_bytes)}) in {secs:.1f} s, "
            f"{self.queued / secs:.0f} pps, {self.queued_bytes * 8 / secs / 1e6:.2f} Mbps"
        )
        if self.failed:
            line += f", {sum(self.failed.values())} failed"
        if self.loops != 1:
            line += f", loop {self.loop + 1}" + (f"/{self.loops}" if self.loops else "")
        return line

    def interim(self, now: float | None = None) -> None:
        """tcpreplay's interim lines (``--stats N``, SIGUSR1): packets so far and the rates."""
        self.interim_asked = False
        secs = (time.monotonic() if now is None else now) - self.start
        self.live.clear()
        for line in _rate_lines(self.queued, self.queued_bytes, _rates(self.queued, self.queued_bytes, secs)):
            click.echo(line, err=True)

    def fail(self, reason: str, size: int, where: str) -> None:
        """Count a frame refused before the kernel; the first of each reason is also said at once."""
        if reason not in self.failed and not self.quiet:
            self.live.clear()
            click.echo(f"afpacket: warning: {where}: {size}-byte frame {reason}; counted as failed", err=True)
        self.failed[reason] += 1
        lo, hi = self.failed_sizes.get(reason, (size, size))
        self.failed_sizes[reason] = (min(lo, size), max(hi, size))

    def signals(self) -> _Signals:
        return _Signals(self)


class _Signals:
    """SIGINT, SIGTERM and SIGHUP end the run at the next check (the summary is still printed; waits
    check every 50 ms, so a long gap in a file does not delay it); a second one interrupts at once.
    SIGUSR1 prints the interim statistics, as it does for tcpdump."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.old: dict[int, Any] = {}

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self.run.stopped_by in _STOPPED_BY_SIGNAL:
            raise KeyboardInterrupt
        self.run.stopped_by = signal.Signals(signum).name

    def _usr1(self, signum: int, frame: FrameType | None) -> None:
        self.run.interim_asked = True

    def __enter__(self) -> _Signals:
        for sig in _STOP_SIGNALS:
            self.old[sig] = signal.signal(sig, self._stop)
        self.old[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._usr1)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


def _wallclock() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1e6):06d}"


def _human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _mbps_text(mbps: float) -> str:
    return f"{mbps:.3f}" if mbps < 1 else f"{mbps:.2f}"


def _rates(packets: int, nbytes: int, seconds: float) -> dict[str, float]:
    """Seconds and rates as both the text and the JSON show them (computed from the rounded seconds)."""
    seconds = round(max(seconds, 0.0), 6)
    s = max(seconds, 1e-6)
    return {
        "seconds": seconds,
        "bytes_per_second": round(nbytes / s, 1),
        "mbps": round(nbytes * 8 / s / 1e6, 3),
        "pps": round(packets / s, 2),
    }


def _rate_lines(packets: int, nbytes: int, rates: dict[str, float]) -> list[str]:
    return [
        f"Actual: {packets} packets ({nbytes} bytes) sent in {rates['seconds']:.6f} seconds",
        f"Rated: {rates['bytes_per_second']:.1f} Bps, {_mbps_text(rates['mbps'])} Mbps, {rates['pps']:.2f} pps",
    ]


#: The order of the JSON summary's keys (the text follows the same order).
_SUMMARY_KEYS = (
    "command", "interface", "files", "packets", "bytes", "seconds", "bytes_per_second", "mbps", "pps",
    "flows", "flows_per_second", "flow_packets", "non_flow_packets", "successful", "failed", "truncated",
    "retried_enobufs", "retried_eagain", "rebuilt", "failed_reasons", "not_sent", "attempted", "loops",
    "stopped_by",
)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The closing summary as text, in tcpreplay's shape, from the same dict ``--stats-json`` writes."""
    lines = _rate_lines(summary["packets"], summary["bytes"], summary)
    if summary.get("flows") is not None:
        lines.append(
            f"Flows: {summary['flows']} flows, {summary['flows_per_second']:.2f} fps, "
            f"{summary['flow_packets']} flow packets, {summary['non_flow_packets']} non-flow packets"
        )
    lines.append(f"Statistics for network device: {summary['interface']}")
    rows = [("Successful packets:", summary["successful"]), ("Failed packets:", summary["failed"])]
    if "truncated" in summary:
        rows.append(("Truncated packets:", summary["truncated"]))
    rows.append(("Retried packets (ENOBUFS):", summary["retried_enobufs"]))
    rows.append(("Retried packets (EAGAIN):", summary["retried_eagain"]))
    if summary.get("rebuilt"):
        rows.append(("Rebuilt packets:", summary["rebuilt"]))
    lines += [f"\t{label:<27}{value}" for label, value in rows]
    if summary["failed_reasons"]:
        lines.append("Failed packets, by reason:")
        for reason, info in summary["failed_reasons"].items():
            sizes = info.get("sizes")
            span = "" if sizes is None else f" ({sizes[0]} bytes)" if sizes[0] == sizes[1] else (
                f" ({sizes[0]}-{sizes[1]} bytes)"
            )
            lines.append(f"\t{info['count']:<7}{reason}{span}")
    if summary.get("stopped_by") in _STOPPED_BY_SIGNAL:
        lines.append(f"Interrupted by {summary['stopped_by']}.")
    return lines


def _finish(
    run: _Run, tx: Transmitter, seconds: float, extra: dict[str, Any], stats_json: str | None
) -> dict[str, Any]:
    """Build the summary from the transmitter's final statistics, print it, and write the JSON.

    Called after ``tx`` is closed, so that a frame still queued when the run ended (the link went down
    or away) is counted as not sent, never as sent. Frames handed to the transmitter that never reached
    its ring (the kick before them failed) are not sent either; both are failed packets, with the reason.
    """
    st = tx.stats()
    reasons: dict[str, dict[str, Any]] = {
        r: {"count": n, "sizes": list(run.failed_sizes[r])} for r, n in run.failed.most_common()
    }
    for r, n in tx.rejected_by_reason.most_common():
        reasons[f"rejected by the kernel ({r})"] = {"count": n, "sizes": None}
    in_ring = st.sent + st.failed + st.pending + st.unsent
    not_sent = st.pending + st.unsent + max(0, run.queued - in_ring)
    if not_sent:
        why = tx.fault or f"{tx.interface} did not take them within {tx.timeout:g} s"
        reasons[f"not sent: {why}"] = {"count": not_sent, "sizes": None}
    rates = _rates(st.sent, st.bytes, seconds)
    fields: dict[str, Any] = {
        "command": run.command, "interface": run.interface, "packets": st.sent, "bytes": st.bytes, **rates,
        **extra, "successful": st.sent, "failed": sum(run.failed.values()) + st.failed + not_sent,
        "retried_enobufs": st.enobufs, "retried_eagain": st.eagain, "failed_reasons": reasons,
        "not_sent": not_sent, "stopped_by": run.stopped_by,
    }
    if fields.get("flows") is not None:
        fields["flows_per_second"] = round(fields["flows"] / max(rates["seconds"], 1e-6), 2)
    summary = {k: fields[k] for k in _SUMMARY_KEYS if k in fields}
    run.live.close()
    for line in summary_lines(summary):
        click.echo(line, err=True)
    if stats_json:
        write_stats_json(stats_json, summary)
    return summary


def _serve_metrics(port: int | None, address: str, run: _Run, tx: Transmitter) -> Any:
    """--metrics-port: the transmitter's counters, with the frames refused before the kernel counted as
    failed (as the summary counts them); None without the option."""
    from ..metrics import transmit_snapshot

    return start_metrics(port, address, lambda: transmit_snapshot(tx, sum(run.failed.values())),
                         labels={"interface": run.interface})


def _close(tx: Transmitter) -> None:
    """Close ``tx``, sending what is queued; frames it could not send are counted by :func:`_finish`
    (as not sent, with the reason), so the error close() raises for them says nothing more."""
    try:
        tx.close()
    except AfPacketError:
        pass


def _stopped_message(tx: Transmitter, summary: dict[str, Any], error: str) -> str:
    """The one line that ends a run stopped by an error: what happened to the link, when that was it,
    with the counts of the summary just printed; otherwise the error itself."""
    if tx.fault is None:
        return error
    return (f"{tx.fault} while sending; stopped after {summary['successful']} packets sent, "
            f"{summary['not_sent']} queued not sent")


# --- gen ----------------------------------------------------------------------------------------------
@main.command("gen")
@click.option("-i", "--interface", required=True, help="Interface to send on.")
@click.option("-c", "--count", type=IntRange(min=1), required=True, help="Number of frames to send.")
@click.option("--size", type=IntRange(min=42), default=60, show_default=True,
              help="Frame length in bytes, link header included, FCS excluded.")
@click.option("-p", "--pps", type=PositiveFloat(minimum=_SLOWEST, why=" (one packet in 11.6 days)"),
              help="Rate in packets/s (default: top speed).")
@click.option("--flows", type=IntRange(min=1, max=MAX_FLOWS), default=1, show_default=True,
              help=f"Number of flows (at most {MAX_FLOWS:,}): source address and port are incremented per flow.")
@click.option("--src-mac", callback=_check_mac, help="Source MAC (default: the interface's).")
@click.option("--dst-mac", default="ff:ff:ff:ff:ff:ff", show_default=True, callback=_check_mac)
@click.option("--src-ip", default="198.18.0.1", show_default=True, callback=_check_ipv4)
@click.option("--dst-ip", default="198.18.0.2", show_default=True, callback=_check_ipv4)
@click.option("--sport", type=IntRange(0, 65535), default=1024, show_default=True)
@click.option("--dport", type=IntRange(0, 65535), default=9, show_default=True)
@click.option("--vlan", type=IntRange(0, 4095), help="Add an 802.1Q tag with this VLAN id.")
@_quiet_option
@_json_option
@_version_option
@_bypass_option
@metrics_options
def gen_cmd(
    interface: str, count: int, size: int, pps: float | None, flows: int, src_mac: str | None, dst_mac: str,
    src_ip: str, dst_ip: str, sport: int, dport: int, vlan: int | None, quiet: bool, stats_json: str | None,
    version: int, qdisc_bypass: bool, metrics_port: int | None = None, metrics_address: str = "127.0.0.1",
) -> None:
    """Generate UDP/IPv4 frames with valid checksums, over FLOWS 5-tuples.

    Shows a live count while stderr is a terminal (not with -q), and ends, also on SIGINT, SIGTERM or
    SIGHUP (exit status 0), with a summary in tcpreplay's shape (--stats-json FILE: the same as JSON).
    If the interface goes down, is deleted or moves to another network namespace, the summary counts
    what was sent and what was not, and one line says what happened (exit status 1).
    """
    run = _Run("gen", interface, LiveStatus(LiveStatus.enabled_for(sys.stderr, quiet)), quiet)
    try:
        with run.signals():  # from the start: a signal during set-up still ends with a summary
            iface = lookup(interface)
            spec = FlowSpec(
                src_mac=src_mac or iface.address or "02:00:00:00:00:01", dst_mac=dst_mac, src_ip=src_ip,
                dst_ip=dst_ip, sport=sport, dport=dport, size=size, vlan=vlan,
            )
            frames = spec.frames(min(flows, count))  # one template per flow that will be sent
            error = None
            tx = _open(interface, version, qdisc_bypass)
            try:
                metrics_server = _serve_metrics(metrics_port, metrics_address, run, tx)
                run.begin()
                try:
                    if pps is None:
                        _gen_topspeed(run, tx, frames, count)
                    else:
                        _gen_paced(run, tx, frames, count, pps)
                    tx.flush()
                except AfPacketError as e:
                    if not run.queued and tx.fault is None:
                        raise  # nothing left: the error alone says it all
                    error = str(e)  # what did leave is still summed up
                seconds = time.monotonic() - run.start
            finally:
                _close(tx)
            extra = {"flows": min(flows, count), "flow_packets": tx.stats().sent, "non_flow_packets": 0}
            summary = _finish(run, tx, seconds, extra, stats_json)
            if metrics_server is not None:
                metrics_server.close()
        if error:
            _fail(_stopped_message(tx, summary, error))
    except KeyboardInterrupt:
        run.live.close()
        _fail("interrupted")
    except AfPacketError as e:
        run.live.close()
        _fail(str(e))


def _gen_topspeed(run: _Run, tx: Transmitter, frames: list[bytes], count: int) -> None:
    size = len(frames[0])
    while run.queued < count and not run.tick():
        n = min(count - run.queued, _GEN_CHUNK)
        # send_repeated keeps templates in the ring when they divide it; the chunk must keep their phase.
        tx.send_repeated(frames[run.queued % len(frames) :] + frames[: run.queued % len(frames)], n)
        run.queued += n
        run.queued_bytes += n * size


def _gen_paced(run: _Run, tx: Transmitter, frames: list[bytes], count: int, pps: float) -> None:
    def capped(gap: float, longest: float) -> None:
        if pacer.capped == 1 and not run.quiet:
            run.live.clear()
            click.echo(f"afpacket: warning: at {pps:g} packets/s a packet would wait {gap:.6g} s for the one before; "
                       f"each waits {longest:g} s instead (the longest wait)", err=True)

    pacer = Pacer(pps=pps, burst=max(1, int(pps // _MAX_KICKS_PER_SECOND)), on_cap=capped)
    pacer.begin(run.start)
    clock, send, tick, k, size = time.monotonic, tx.send, run.tick, len(frames), len(frames[0])
    for i in range(count):
        due = pacer.deadline()
        if due > clock():
            tx.flush(False)
            if not wait_until(due, pacer.spin, tick):
                break
        elif not i % _CHUNK and tick():
            break
        send(frames[i % k])
        run.queued += 1
        run.queued_bytes += size


# --- send ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Frame:
    """One record made ready for the ring: the Ethernet frame, or why it cannot be sent."""

    frame: bytes | None
    timestamp_ns: int
    wire_len: int
    truncated: bool
    rebuilt: bool
    reason: str | None = None
    size: int = 0
    flow: bytes | None = None


class _Preparer:
    """Turns savefile records into Ethernet frames the transmitter accepts, or into a failure reason.

    The same limits as :class:`Transmitter` checks (MTU + link header, +4 for a VLAN-tagged frame, and
    the 14-byte Ethernet header), applied before the ring so that one bad frame neither raises in the
    middle of a batch nor stops the replay.
    """

    def __init__(self, tx: Transmitter, src_mac: bytes, dst_mac: bytes, keep_src: bool, flows: bool) -> None:
        self.max_len = tx.max_frame
        self.max_tagged = min(tx.slot_capacity, tx.mtu + abi.ETH_HLEN + abi.VLAN_HLEN)
        self.too_long = f"larger than MTU {tx.mtu} + {abi.ETH_HLEN}-byte Ethernet header = {self.max_len} bytes"
        self.too_short = f"shorter than the {abi.ETH_HLEN}-byte Ethernet header"
        self.src_mac, self.dst_mac, self.keep_src, self.flows = src_mac, dst_mac, keep_src, flows

    def prepare(self, data: bytes, linktype: int, ts: int, wire_len: int) -> _Frame:
        truncated = wire_len > len(data)
        rebuilt = linktype != LINKTYPE_ETHERNET
        if rebuilt:
            if linktype not in REBUILDABLE_LINKTYPES:
                return _Frame(None, ts, wire_len, truncated, rebuilt, f"of link type {describe(linktype)}, "
                              "which cannot be rebuilt as Ethernet", len(data))
            try:
                frame = ethernet_from(linktype, data, src_mac=self.src_mac, dst_mac=self.dst_mac,
                                      keep_src=self.keep_src)
            except AfPacketError as e:
                return _Frame(None, ts, wire_len, truncated, rebuilt, f"not rebuilt as Ethernet: {e}", len(data))
            wire_len += len(frame) - len(data)
        else:
            frame = data
        n = len(frame)
        if n > self.max_len and not (n <= self.max_tagged and frame[12:14] in _VLAN_TPIDS):
            return _Frame(None, ts, wire_len, truncated, rebuilt, self.too_long, n)
        if n < abi.ETH_HLEN:
            return _Frame(None, ts, wire_len, truncated, rebuilt, self.too_short, n)
        return _Frame(frame, ts, wire_len, truncated, rebuilt, None, n, flow_key(frame) if self.flows else None)


def flow_key(frame: bytes) -> bytes | None:
    """The unidirectional flow an Ethernet frame belongs to (protocol, addresses, and ports for TCP, UDP
    and SCTP), or None for a frame that is not IP (tcpreplay's "non-flow packets").

    Keys of IPv4 and IPv6, with and without ports, have four different lengths, so they never collide.
    """
    if frame[12:14] == b"\x08\x00" and len(frame) >= 38 and frame[14] == 0x45:
        # The common case in one slice: a 20-byte IPv4 header puts addresses and ports side by side.
        if frame[23] in _PORT_PROTOCOLS and not (frame[20] & 0x1F or frame[21]):
            return frame[23:24] + frame[26:38]
        return frame[23:24] + frame[26:34]
    off = abi.ETH_HLEN
    et = frame[12:14]
    while et in _VLAN_TPIDS and len(frame) >= off + 4:
        et = frame[off + 2 : off + 4]
        off += 4
    if et == b"\x08\x00" and len(frame) >= off + 20:
        proto = frame[off + 9]
        ip_end = off + (frame[off] & 15) * 4
        first = not (frame[off + 6] & 0x1F or frame[off + 7])  # ports only in the first fragment
        key = frame[off + 9 : off + 10] + frame[off + 12 : off + 20]
        return key + frame[ip_end : ip_end + 4] if proto in _PORT_PROTOCOLS and first else key
    if et == b"\x86\xdd" and len(frame) >= off + 40:
        key = frame[off + 6 : off + 7] + frame[off + 8 : off + 40]
        return key + frame[off + 40 : off + 44] if frame[off + 6] in _PORT_PROTOCOLS else key
    return None


def _check_files(paths: Sequence[str]) -> None:
    """Open every file before sending anything (tcpreplay does too): a typo in the third file must not
    surface after the first two were replayed. Link types that cannot become Ethernet are refused."""
    for path in paths:
        try:
            reader = open_reader(path)
        except OSError as e:
            raise AfPacketError(f"cannot read {path}: {e.strerror or e}") from None
        try:
            linktype = reader.linktype
        finally:
            reader.close()
        if linktype is not None and linktype not in REBUILDABLE_LINKTYPES:
            raise AfPacketError(
                f"{path}: link type {describe(linktype)} cannot be replayed as Ethernet frames (only Ethernet, "
                "Linux cooked SLL/SLL2, raw IP and loopback captures can); convert it first, e.g. with "
                "`tcprewrite --dlt=enet`"
            )


def _records(path: str, prep: _Preparer) -> Iterator[_Frame]:
    """The file's records, prepared one by one as they are read (tcpreplay without -K)."""
    reader = open_reader(path)
    try:
        prepare = prep.prepare
        for rec in reader:
            yield prepare(rec.data, rec.linktype, rec.timestamp_ns, rec.wire_len)
    finally:
        reader.close()


@dataclass
class _Replay:
    """The replay loop: files in order, ``loops`` times, on the pacer's schedule, within the limits."""

    run: _Run
    tx: Transmitter
    pacer: Pacer
    files: Sequence[str]
    prep: _Preparer
    limit: int | None
    loop_delay: float
    preload: dict[str, list[_Frame]] | None
    verbose: bool
    attempted: int = 0
    truncated: int = 0
    rebuilt: int = 0
    flows: set[bytes] = field(default_factory=set)
    flow_packets: int = 0
    non_flow_packets: int = 0
    #: why the replay stopped early, when it was an error (a corrupt record, a transmit failure)
    error: str | None = None
    _line_printer: LinePrinter | None = None
    #: the file being sent, and ``attempted`` before its first record: where a capped gap is
    _path: str = ""
    _before: int = 0

    def gap_capped(self, gap: float, longest: float) -> None:
        """The pacer cut a gap to ``longest`` seconds: say so the first time (tcpreplay would have waited)."""
        if self.pacer.capped != 1 or self.run.quiet:
            return
        self.run.live.clear()
        asked = "more than 1e308 s" if gap == math.inf else f"{gap:.6g} s"
        click.echo(
            f"afpacket: warning: {self._path} packet {self.attempted - self._before} is due {asked} after the one "
            f"before it; waiting {longest:g} s instead, as for every longer gap (--maxsleep MS sets the longest "
            "wait, -t ignores the time stamps)",
            err=True,
        )

    def frames(self, path: str) -> Iterator[_Frame] | list[_Frame]:
        return self.preload[path] if self.preload is not None else _records(path, self.prep)

    def _printer(self) -> LinePrinter:
        """The -v line printer, made on first use (stateful: TCP sequence numbers relative per flow)."""
        if self._line_printer is None:
            from ..dissect import LinePrinter

            self._line_printer = LinePrinter()
        return self._line_printer

    def _print(self, line: str) -> bool:
        """Print a -v line; False once stdout is gone (``| head``): the replay goes on without them."""
        try:
            click.echo(line)
            return True
        except BrokenPipeError:
            # Point stdout at /dev/null so that the interpreter's final flush does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
            self.verbose = False
            return False

    def go(self) -> None:
        run, pacer = self.run, self.pacer
        pacer.begin(run.start)
        if run.stopped_by is not None:
            return  # a signal came during set-up (or the -K preload)
        first = True
        while run.loops == 0 or run.loop < run.loops:
            if run.loop and run.stats_every == 0:
                run.interim()
            if run.stats_every is not None and run.loops > 1:
                run.live.clear()
                click.echo(f"Loop {run.loop + 1} of {run.loops}...", err=True)
            for i, path in enumerate(self.files):
                if not first:
                    delay = self.loop_delay if i == 0 else 0.0
                    if delay and pacer.topspeed:
                        self.tx.flush(False)
                        if not wait_until(time.monotonic() + delay, stop=run.tick):
                            return
                    pacer.restart(delay)
                first = False
                if not self._one(path):
                    return
            run.loop += 1
            if not run.queued:
                return  # another pass over files that sent nothing would only fail again (or spin, with -l 0)

    def _one(self, path: str) -> bool:
        """Send one pass over ``path``; False when the run must stop."""
        run, tx, pacer = self.run, self.tx, self.pacer
        topspeed = pacer.topspeed
        deadline, clock, spin, tick = pacer.deadline, time.monotonic, pacer.spin, run.tick
        send_many, flush = tx.send_many, tx.flush
        limit = self.limit if self.limit is not None else -1
        verbose, fail = self.verbose, run.fail
        batch: list[bytes] = []
        index = 0
        self._path, self._before = path, self.attempted
        try:
            for item in self.frames(path):
                index += 1
                self.attempted += 1
                frame = item.frame
                if frame is None:
                    fail(item.reason or "", item.size, f"{path} packet {index}")
                    continue
                if not topspeed:
                    due = deadline(item.size, item.timestamp_ns)
                    if due > clock():
                        self.attempted -= 1  # not attempted until its wait is over (a stop or a fault may come)
                        if batch:
                            send_many(batch)
                            batch.clear()
                        flush(False)
                        if not wait_until(min(due, run.end), spin, tick) or due > run.end:
                            run.stopped_by = run.stopped_by or "duration"
                            return False
                        self.attempted += 1
                batch.append(frame)
                run.queued += 1
                run.queued_bytes += item.size
                self.truncated += item.truncated
                self.rebuilt += item.rebuilt
                if item.flow is not None:
                    self.flows.add(item.flow)
                    self.flow_packets += 1
                else:
                    self.non_flow_packets += 1
                if verbose:
                    text = self._printer().line(frame, item.wire_len, LINKTYPE_ETHERNET)
                    verbose = self._print(f"{clock_text(item.timestamp_ns)} {text}")
                if run.queued == limit:
                    run.stopped_by = "limit"
                    return False
                if len(batch) >= _CHUNK:
                    send_many(batch)
                    batch.clear()
                    if tick():
                        return False
        except SavefileError as e:
            self.error = str(e)
            return False
        except BaseException:
            # A transmit error (the link went away) or an interrupt: what in ``batch`` did not reach the
            # ring is not sent (the summary counts it so), rather than queued a second time below.
            batch.clear()
            raise
        finally:
            if batch:
                send_many(batch)
        return not tick()


@main.command("send")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("-i", "--interface", "--intf1", "interface", required=True, help="Interface to send on.")
@click.option("-r", "--read", "read_files", multiple=True, metavar="FILE",
              help="pcap or pcapng file to replay (same as a plain argument; may be repeated).")
@click.option("-t", "--topspeed", is_flag=True, help="Replay as fast as possible.")
@click.option("-x", "--multiplier", type=PositiveFloat(minimum=_SLOWEST, why=" (a millionth of the captured speed)"),
              help="Replay X times faster than captured (1 = original timing).")
@click.option("-p", "--pps", type=PositiveFloat(minimum=_SLOWEST, why=" (one packet in 11.6 days)"),
              help="Replay at this many packets/s.")
@click.option("-M", "--mbps", type=PositiveFloat(minimum=_SLOWEST, why=" (1 bit/s)"),
              help="Replay at this many megabits/s (frame bytes, no FCS).")
@click.option("--maxsleep", "maxsleep_ms", type=IntRange(1, int(MAX_SECONDS * 1000)), metavar="MS",
              help=f"Sleep at most MS milliseconds between two packets (tcpreplay's --maxsleep). Without it a "
                   f"longer gap is cut to {MAX_GAP * 1000:.0f} ms (one hour) and said once on stderr.")
@click.option("-l", "--loop", type=IntRange(min=0), default=1, show_default=True,
              help="Replay the files N times; 0 loops forever (end with --duration, -L or Ctrl-C).")
@click.option("--loopdelay-ms", type=IntRange(0, int(MAX_SECONDS * 1000)), default=0,
              help="Pause between loops, in milliseconds.")
@click.option("-L", "--limit", type=IntRange(min=1), help="Stop after sending this many packets.")
@click.option("--duration", type=PositiveFloat(maximum=MAX_SECONDS), help="Stop after this many seconds.")
@click.option("-K", "--preload-pcap", "preload", is_flag=True,
              help="Read (and rebuild) every packet into memory before sending, so file reading costs no time.")
@click.option("--stats", "stats_every", type=PositiveFloat(zero=True, maximum=MAX_SECONDS), metavar="N",
              help="Print statistics every N seconds (0: after every loop).")
@click.option("-v", "--verbose", is_flag=True, help="Print a tcpdump-style line for every packet sent (stdout).")
@_quiet_option
@_json_option
@click.option("--no-flow-stats", is_flag=True, help="Do not track flows (saves a little time per packet).")
@click.option("--dst-mac", default="ff:ff:ff:ff:ff:ff", show_default=True, callback=_check_mac,
              help="Destination MAC of frames rebuilt from cooked/raw-IP captures.")
@click.option("--src-mac", callback=_check_mac,
              help="Source MAC of rebuilt frames (default: the cooked header's address, else the interface's).")
@_version_option
@_bypass_option
@metrics_options
def send_cmd(
    files: tuple[str, ...], interface: str, read_files: tuple[str, ...], topspeed: bool, multiplier: float | None,
    pps: float | None, mbps: float | None, loop: int, loopdelay_ms: int, limit: int | None, duration: float | None,
    preload: bool, stats_every: float | None, verbose: bool, quiet: bool, stats_json: str | None,
    no_flow_stats: bool, dst_mac: str, src_mac: str | None, version: int, qdisc_bypass: bool, maxsleep_ms: int | None,
    metrics_port: int | None = None, metrics_address: str = "127.0.0.1",
) -> None:
    """Replay pcap/pcapng FILEs on an interface, with their original timing or at a given rate (like tcpreplay).

    A frame that cannot be sent (larger than the MTU allows, shorter than an Ethernet header, refused by
    the kernel) is counted as failed and the replay goes on; the summary gives the reasons. Linux cooked
    (SLL/SLL2), raw IP and loopback captures are rebuilt as Ethernet frames: destination --dst-mac,
    source the cooked header's address or the interface's (--src-mac overrides). "Truncated packets"
    are frames captured shorter than they were on the wire (a snaplen), sent as captured.

    Original timing (-x, the default): no single wait between two packets is longer than --maxsleep, or
    one hour without it (a far-future time stamp is waited for one hour, said once; tcpreplay would wait
    for it). SIGINT, SIGTERM or SIGHUP stop between packets, also in the middle of a long wait, and
    still print the summary (exit status 0, as tcpdump); SIGUSR1 prints interim statistics. When the
    kernel pushes back (ENOBUFS, EAGAIN) the frame is retried, never lost ("Retried packets"). If the
    interface goes down, is deleted or moves to another network namespace, the summary counts what was
    sent and what was not, and one line says what happened. Exit status: 0, or 1 when nothing could be
    sent or on an error, 2 for a usage error.
    """
    paths = [*read_files, *files]
    if not paths:
        raise click.UsageError("no file to replay: give one or more pcap/pcapng files (or -r FILE)")
    if sum(x is not None for x in (pps, mbps, multiplier)) + topspeed > 1:
        raise click.UsageError("give at most one of -t/--topspeed, -x/--multiplier, -p/--pps, -M/--mbps")
    longest = MAX_GAP if maxsleep_ms is None else maxsleep_ms / 1000
    if pps is not None:
        pacer = Pacer(pps=pps, burst=max(1, int(pps // _MAX_KICKS_PER_SECOND)), max_gap=longest)
    elif mbps is not None:
        pacer = Pacer(bps=mbps * 1e6, max_gap=longest)
    elif topspeed:
        pacer = Pacer()
    else:
        pacer = Pacer(multiplier=multiplier or 1.0, max_gap=longest)
    live = LiveStatus(LiveStatus.enabled_for(sys.stderr, quiet) and not verbose)
    run = _Run("send", interface, live, quiet, stats_every, duration, loop)
    try:
        # Signals from the start: one during set-up (or a long -K preload) still ends with a summary.
        with run.signals(), warnings.catch_warnings():
            # Kernel rejections are counted and named in the summary; a Python warning each adds nothing.
            warnings.simplefilter("ignore", TransmitWarning)
            dst = mac_bytes(dst_mac)
            iface = lookup(interface)
            src = mac_bytes(src_mac or iface.address or "02:00:00:00:00:01")
            _check_files(paths)
            tx = _open(interface, version, qdisc_bypass)
            try:
                metrics_server = _serve_metrics(metrics_port, metrics_address, run, tx)
                prep = _Preparer(tx, src, dst, keep_src=src_mac is None, flows=not no_flow_stats)
                loaded = _preload(paths, prep) if preload else None
                replay = _Replay(run, tx, pacer, paths, prep, limit, loopdelay_ms / 1000, loaded, verbose)
                if maxsleep_ms is None:
                    pacer.on_cap = replay.gap_capped  # an explicit --maxsleep is obeyed silently, as tcpreplay
                run.begin()
                try:
                    replay.go()
                    tx.flush()
                except AfPacketError as e:
                    if not run.queued and not replay.attempted and tx.fault is None:
                        raise  # nothing happened yet: the error alone says it all
                    replay.error = str(e)  # the link went away, say: what did leave is still summed up
                seconds = time.monotonic() - run.start
            finally:
                _close(tx)  # before the summary: a frame still queued now was not sent
            if stats_every is not None:
                run.live.clear()
                click.echo(f"Test complete: {_wallclock()}", err=True)
            extra = {
                "files": paths,
                "loops": run.loop,
                "attempted": replay.attempted,
                "flows": None if no_flow_stats else len(replay.flows),
                "flow_packets": None if no_flow_stats else replay.flow_packets,
                "non_flow_packets": None if no_flow_stats else replay.non_flow_packets,
                "truncated": replay.truncated,
                "rebuilt": replay.rebuilt,
            }
            summary = _finish(run, tx, seconds, extra, stats_json)
            if metrics_server is not None:
                metrics_server.close()
        if replay.error:
            _fail(_stopped_message(tx, summary, f"{replay.error}; the replay stopped there"))
        if summary["attempted"] and not summary["successful"]:
            _fail(f"nothing was sent: all {summary['attempted']} packets failed (reasons above)")
    except KeyboardInterrupt:
        run.live.close()
        _fail("interrupted")
    except AfPacketError as e:
        run.live.close()
        _fail(str(e))


def _preload(paths: Sequence[str], prep: _Preparer) -> dict[str, list[_Frame]]:
    """-K: every file read and prepared before the clock starts."""
    return {path: list(_records(path, prep)) for path in dict.fromkeys(paths)}


"""`afpacket capture` (tcpdump-like live capture) and `afpacket list` (like `tcpdump -D`)."""

from __future__ import annotations

import signal
import socket
import sys

import click

from .. import abi
from ..dissect import packet_line
from ..errors import AfPacketError
from ..interfaces import ANY, list_interfaces
from ..rx import Capture
from ..savefile.linktype import LINKTYPE_LINUX_SLL, describe, linktype_for
from ..tofile import CaptureFile, frame_of, open_for
from . import main


def fail(message: str) -> None:
    click.echo(f"afpacket: {message}", err=True)
    sys.exit(1)


def print_summary(captured: int, received: int, dropped: int) -> None:
    click.echo(f"{captured} packet{'s' if captured != 1 else ''} captured", err=True)
    click.echo(f"{received} packet{'s' if received != 1 else ''} received by filter", err=True)
    click.echo(f"{dropped} packet{'s' if dropped != 1 else ''} dropped by kernel", err=True)


def list_lines() -> list[str]:
    lines = []
    n = 0
    for n, iface in enumerate(list_interfaces(), 1):
        state = ["Up" if iface.up else "Down", "Running" if iface.running else "Not running"]
        if iface.loopback:
            state.insert(0, "Loopback")
        lines.append(f"{n}.{iface.name} [{', '.join(state)}]")
    lines.append(f"{n + 1}.any (Pseudo-device that captures on all interfaces) [Up, Running]")
    return lines


@main.command("list")
def list_cmd() -> None:
    """List the interfaces a capture can open (like `tcpdump -D`)."""
    for line in list_lines():
        click.echo(line)


@main.command("capture")
@click.option("-i", "--interface", default=ANY, show_default=True, help="Interface to capture on, or 'any'.")
@click.option("-c", "--count", type=click.IntRange(min=1), help="Exit after this many packets.")
@click.option("-s", "--snaplen", type=click.IntRange(min=1), default=262144, show_default=True,
              help="Bytes to keep of each packet.")
@click.option("-B", "--buffer-size", "buffer_kib", type=click.IntRange(min=64), default=4096, show_default=True,
              help="Ring size in KiB (tcpdump's -B).")
@click.option("--tpacket-version", type=click.Choice(["1", "2", "3"]), default="3", show_default=True,
              help="PACKET_MMAP ring version.")
@click.option("--block-timeout-ms", type=click.IntRange(min=0, max=65535), default=8, show_default=True,
              help="V3: how long the kernel may hold a partly filled block.")
@click.option("-q", "--quiet", is_flag=True, help="Print no per-packet lines, only the summary.")
@click.option("-e", "link", is_flag=True, help="Print the link-level header (MAC addresses) on each line.")
@click.option("-p", "--no-promiscuous-mode", "no_promisc", is_flag=True,
              help="Don't put the interface into promiscuous mode (it is, by default, like tcpdump).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--time-stamp-precision", type=click.Choice(["micro", "nano"]), default="micro", show_default=True)
@click.option("-D", "--list-interfaces", "list_only", is_flag=True, help="List interfaces and exit.")
@click.option("-w", "--write", "write_path", metavar="FILE", help="Write packets to FILE ('-' for stdout).")
@click.option("--format", "fmt", type=click.Choice(["pcap", "pcapng"]), default="pcap", show_default=True,
              help="Savefile format for -w.")
@click.option("-U", "--packet-buffered", is_flag=True, help="With -w: flush each packet to the file.")
@click.option("-C", "file_size_mb", type=click.FloatRange(min=0, min_open=True),
              help="With -w: start a new file after this many million bytes (tcpdump -C).")
@click.option("-G", "rotate_seconds", type=click.FloatRange(min=0, min_open=True),
              help="With -w: start a new file every this many seconds; FILE may hold strftime fields.")
@click.option("-W", "file_count", type=click.IntRange(min=1),
              help="With -C: keep a ring of this many files; with -G: stop after this many files.")
@click.option("--print", "print_too", is_flag=True, help="With -w: also print packet lines.")
@click.argument("expression", nargs=-1)
def capture_cmd(
    interface: str,
    count: int | None,
    snaplen: int,
    buffer_kib: int,
    tpacket_version: str,
    block_timeout_ms: int,
    quiet: bool,
    link: bool,
    no_promisc: bool,
    duration: float | None,
    time_stamp_precision: str,
    list_only: bool,
    write_path: str | None,
    fmt: str,
    packet_buffered: bool,
    file_size_mb: float | None,
    rotate_seconds: float | None,
    file_count: int | None,
    print_too: bool,
    expression: tuple[str, ...],
) -> None:
    """Capture packets and print one line per packet, like `tcpdump -n`.

    EXPRESSION is a tcpdump filter (e.g. `udp port 53`), compiled by libpcap and run in the kernel."""
    if list_only:
        for line in list_lines():
            click.echo(line)
        return
    try:
        cap = Capture(
            interface,
            version=int(tpacket_version),
            snaplen=snaplen,
            buffer_size=buffer_kib * 1024,
            block_timeout_ms=block_timeout_ms,
            promisc=not no_promisc and interface != ANY,
            filter=" ".join(expression) or None,
        )
    except AfPacketError as e:
        fail(str(e))
        return
    raw = cap.sock_type == "raw"
    linktype = linktype_for(cap.hatype, socket.SOCK_RAW if raw else socket.SOCK_DGRAM)
    out: CaptureFile | None = None
    if write_path is not None:
        try:
            out = open_for(
                cap, write_path, fmt,  # type: ignore[arg-type]
                nanosecond=time_stamp_precision == "nano",
                unbuffered=packet_buffered,
                file_size=int(file_size_mb * 1_000_000) if file_size_mb else None,
                rotate_seconds=rotate_seconds,
                file_count=file_count,
            )
        except AfPacketError as e:
            cap.close()
            fail(str(e))
            return
    elif file_size_mb or rotate_seconds or file_count or packet_buffered:
        cap.close()
        fail("-C, -G, -W and -U apply to a capture file: add -w FILE")
        return
    click.echo(
        f"{'listening' if out is None else 'capturing'} on {interface}, link-type {describe(linktype)}, "
        f"snapshot length {snaplen} bytes (TPACKET_V{tpacket_version}, {cap.geometry.size // 1024} KiB ring)",
        err=True,
    )
    if tpacket_version == "1" and raw:
        click.echo("afpacket: note: TPACKET_V1 has no VLAN fields; tags the kernel strips are lost (use V2/V3)",
                   err=True)
    show = not quiet and (out is None or print_too)
    # Ctrl-C and SIGTERM end the loop between packets: the file never holds half a record.
    stop_signals = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda signum, frame: cap.stop()) for sig in stop_signals}
    captured = 0
    write = sys.stdout.write
    error: str | None = None
    try:
        if out is not None and not show:
            out.consume(cap, count, duration)  # block-at-a-time fast path where it applies
        else:
            for pkt in cap.packets(count=count, duration=duration):
                if out is not None:
                    out.write_packet(pkt, raw)
                    if out.done:
                        break
                captured += 1
                if show:
                    data, wire = frame_of(pkt, raw)
                    lt = linktype if raw else LINKTYPE_LINUX_SLL
                    write(packet_line(pkt.timestamp_ns, data, wire, lt, time_stamp_precision, link=link) + "\n")
    except AfPacketError as e:
        error = str(e)
    except BrokenPipeError:
        error = "output closed (broken pipe)"
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if out is not None:
            captured = out.written
    _finish(cap, captured, out)
    if error is not None:
        click.echo(f"afpacket: {error}", err=True)
        sys.exit(1)


def _finish(cap: Capture, captured: int, out: CaptureFile | None) -> None:
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    st = cap.stats()
    cap.close()
    if out is not None:
        try:
            out.close(st.received, st.drops)
        except AfPacketError as e:
            click.echo(f"afpacket: {e}", err=True)
    print_summary(captured, st.received, st.drops)


__all__ = ["abi", "capture_cmd", "list_cmd"]

"""`afpacket capture` (tcpdump-like live capture) and `afpacket list` (like `tcpdump -D`)."""

from __future__ import annotations

import signal
import socket
import struct
import sys
import time
from types import FrameType

import click

from .. import abi
from ..dissect import packet_line
from ..errors import AfPacketError
from ..interfaces import ANY, list_interfaces
from ..rx import Capture
from ..savefile.linktype import LINKTYPE_LINUX_SLL, describe, linktype_for
from . import main

_SLL = struct.Struct("!HHH8sH")


def cooked_header(pkttype: int, hatype: int, addr: bytes, protocol: int) -> bytes:
    """The 16-byte Linux cooked (SLL) header libpcap puts before SOCK_DGRAM packets."""
    return _SLL.pack(pkttype, hatype, len(addr), addr.ljust(8, b"\0"), protocol)


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
    click.echo(
        f"listening on {interface}, link-type {describe(linktype)}, snapshot length {snaplen} bytes "
        f"(TPACKET_V{tpacket_version}, {cap.geometry.size // 1024} KiB ring)",
        err=True,
    )

    def on_term(signum: int, frame: FrameType | None) -> None:
        cap.stop()

    old_term = signal.signal(signal.SIGTERM, on_term)
    captured = 0
    out = sys.stdout
    write = out.write
    try:
        for pkt in cap.packets(count=count, duration=duration):
            captured += 1
            if quiet:
                continue
            if raw:
                data: bytes | memoryview = pkt.tagged() if pkt.vlan_present else pkt.data
                lt = linktype
            else:
                data = cooked_header(pkt.pkttype, pkt.hatype, pkt.src_addr, pkt.protocol) + bytes(pkt)
                lt = LINKTYPE_LINUX_SLL
            write(packet_line(pkt.timestamp_ns, data, pkt.wire_len, lt, time_stamp_precision, link=link) + "\n")
    except KeyboardInterrupt:
        pass
    except AfPacketError as e:
        click.echo(f"afpacket: {e}", err=True)
        _finish(cap, captured)
        sys.exit(1)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    finally:
        signal.signal(signal.SIGTERM, old_term)
    _finish(cap, captured)


def _finish(cap: Capture, captured: int) -> None:
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    time.sleep(0)  # let a pending signal land before the last statistics read
    st = cap.stats()
    cap.close()
    print_summary(captured, st.received, st.drops)


__all__ = ["abi", "capture_cmd", "cooked_header", "list_cmd"]

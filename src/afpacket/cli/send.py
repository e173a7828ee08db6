"""`afpacket send` (replay a pcap/pcapng file, like tcpreplay) and `afpacket gen` (UDP/IPv4 generator)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import click

from ..craft import FlowSpec
from ..errors import AfPacketError
from ..interfaces import lookup
from ..pacing import Pacer, paced_send
from ..tx import Transmitter
from . import main

#: pcap linktype of Ethernet, the only one a raw packet socket on an Ethernet device can replay as is
_LINKTYPE_ETHERNET = 1
#: With a rate limit, bursts are sized so that the ring is kicked at most this often per second.
_MAX_KICKS_PER_SECOND = 20_000

_version_option = click.option(
    "--tpacket-version", "version", type=click.IntRange(1, 3), default=2, show_default=True,
    help="TX ring version (V2 is the best supported; V3 TX needs Linux 4.11).",
)
_bypass_option = click.option(
    "--qdisc-bypass", is_flag=True,
    help="PACKET_QDISC_BYPASS: skip tc/qdisc (faster; more loss possible; tcpdump on this host won't see the frames).",
)


def _fail(message: str) -> None:
    click.echo(f"afpacket: {message}", err=True)
    sys.exit(1)


def _summary(tx: Transmitter, seconds: float, skipped: int = 0) -> None:
    st = tx.stats()
    rate = st.sent / seconds if seconds > 0 else 0.0
    line = (
        f"{st.sent} packets sent, {st.bytes} bytes, {seconds:.3f} seconds, {rate:.0f} packets/s, "
        f"{st.failed} failed"
    )
    if skipped:
        line += f", {skipped} skipped (not Ethernet)"
    click.echo(line, err=True)
    for rec in tx.rejected[-5:]:
        click.echo(f"  rejected: {rec}", err=True)


def _open(interface: str, version: int, qdisc_bypass: bool, frame_size: int = 2048) -> Transmitter:
    mtu = lookup(interface).mtu
    # Slots big enough for the interface's largest frame (MTU + Ethernet + VLAN tag + ring header).
    need = mtu + 18 + 48
    frame_size = max(frame_size, (need + 15) & ~15)
    return Transmitter(interface, version=version, qdisc_bypass=qdisc_bypass, frame_size=frame_size)


@main.command("gen")
@click.option("-i", "--interface", required=True, help="Interface to send on.")
@click.option("-c", "--count", type=click.IntRange(min=1), required=True, help="Number of frames to send.")
@click.option("--size", type=click.IntRange(min=42), default=60, show_default=True,
              help="Frame length in bytes, link header included, FCS excluded.")
@click.option("--pps", type=click.FloatRange(min=0, min_open=True), help="Rate in packets/s (default: top speed).")
@click.option("--flows", type=click.IntRange(min=1), default=1, show_default=True,
              help="Number of flows: source address and port are incremented per flow.")
@click.option("--src-mac", help="Source MAC (default: the interface's).")
@click.option("--dst-mac", default="ff:ff:ff:ff:ff:ff", show_default=True)
@click.option("--src-ip", default="198.18.0.1", show_default=True)
@click.option("--dst-ip", default="198.18.0.2", show_default=True)
@click.option("--sport", type=click.IntRange(0, 65535), default=1024, show_default=True)
@click.option("--dport", type=click.IntRange(0, 65535), default=9, show_default=True)
@click.option("--vlan", type=click.IntRange(0, 4095), help="Add an 802.1Q tag with this VLAN id.")
@_version_option
@_bypass_option
def gen_cmd(
    interface: str, count: int, size: int, pps: float | None, flows: int, src_mac: str | None, dst_mac: str,
    src_ip: str, dst_ip: str, sport: int, dport: int, vlan: int | None, version: int, qdisc_bypass: bool,
) -> None:
    """Generate UDP/IPv4 frames with valid checksums, over FLOWS 5-tuples."""
    try:
        iface = lookup(interface)
        spec = FlowSpec(
            src_mac=src_mac or iface.address or "02:00:00:00:00:01", dst_mac=dst_mac, src_ip=src_ip, dst_ip=dst_ip,
            sport=sport, dport=dport, size=size, vlan=vlan,
        )
        frames = spec.frames(flows)
        with _open(interface, version, qdisc_bypass) as tx:
            t0 = time.monotonic()
            try:
                if pps is None:
                    tx.send_repeated(frames, count)
                    tx.flush()
                else:
                    burst = max(1, int(pps // _MAX_KICKS_PER_SECOND))
                    k = len(frames)
                    paced_send(tx, ((frames[i % k], None) for i in range(count)), Pacer(pps=pps, burst=burst))
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
            tx.flush()
            _summary(tx, time.monotonic() - t0)
    except AfPacketError as e:
        _fail(str(e))


def _records(path: str, loops: int, skipped: list[int]) -> Iterator[tuple[bytes, int | None]]:
    from ..savefile import open_reader

    offset = 0
    for _ in range(loops):
        first = last = None
        reader = open_reader(path)
        try:
            for rec in reader:
                if rec.linktype != _LINKTYPE_ETHERNET:
                    skipped[0] += 1
                    continue
                if first is None:
                    first = rec.timestamp_ns
                last = rec.timestamp_ns
                yield rec.data, rec.timestamp_ns + offset
        finally:
            reader.close()
        if first is not None and last is not None:
            # The next loop starts right after this one ended (one mean gap later).
            offset += last - first + 1
    return


@main.command("send")
@click.option("-i", "--interface", required=True, help="Interface to send on.")
@click.option("-r", "--read", "path", required=True, type=click.Path(dir_okay=False), help="pcap or pcapng file.")
@click.option("--pps", type=click.FloatRange(min=0, min_open=True), help="Replay at this many packets/s.")
@click.option("--mbps", type=click.FloatRange(min=0, min_open=True), help="Replay at this many megabits/s.")
@click.option("--topspeed", is_flag=True, help="Replay as fast as possible.")
@click.option("--multiplier", type=click.FloatRange(min=0, min_open=True),
              help="Replay X times faster than captured (default: original timing, X=1).")
@click.option("--loop", type=click.IntRange(min=1), default=1, show_default=True, help="Replay the file N times.")
@_version_option
@_bypass_option
def send_cmd(
    interface: str, path: str, pps: float | None, mbps: float | None, topspeed: bool, multiplier: float | None,
    loop: int, version: int, qdisc_bypass: bool,
) -> None:
    """Replay a pcap/pcapng file with its original timing (or at a given rate)."""
    if sum(x is not None and x is not False for x in (pps, mbps, topspeed or None, multiplier)) > 1:
        raise click.UsageError("give at most one of --pps, --mbps, --topspeed, --multiplier")
    if pps is not None:
        pacer = Pacer(pps=pps, burst=max(1, int(pps // _MAX_KICKS_PER_SECOND)))
    elif mbps is not None:
        pacer = Pacer(bps=mbps * 1e6)
    elif topspeed:
        pacer = Pacer()
    else:
        pacer = Pacer(multiplier=multiplier or 1.0)
    skipped = [0]
    try:
        with _open(interface, version, qdisc_bypass) as tx:
            t0 = time.monotonic()
            try:
                if pacer.topspeed:
                    tx.send_many(frame for frame, _ in _records(path, loop, skipped))
                else:
                    paced_send(tx, _records(path, loop, skipped), pacer)
            except KeyboardInterrupt:
                click.echo("interrupted", err=True)
            tx.flush()
            _summary(tx, time.monotonic() - t0, skipped[0])
    except AfPacketError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot read {path}: {e.strerror}")

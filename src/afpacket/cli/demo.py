"""`afpacket demo`: a self-contained tour on a private veth pair, safe on any machine (as root).

Makes a network namespace with a veth pair, sends known frames into the far end (trafgen when it is
installed, else a plain packet socket), captures them on the near end with each ring version, prints
what it saw and the rates, and removes everything again.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import threading
import time

import click

from .. import ring
from ..dissect import LinePrinter
from ..errors import AfPacketError
from ..rx import Capture
from ..savefile.linktype import LINKTYPE_ETHERNET
from ..testnet import INNER_IP, OUTER_IP, VethPair
from . import main
from .output import IntRange


def _udp(dst_mac: str, src_mac: str, seq: int, size: int) -> bytes:
    import socket

    payload = struct.pack("!I", seq).ljust(max(4, size - 42), b"\xa5")
    ulen = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, seq & 0xFFFF, 0, 64, 17, 0,
                     socket.inet_aton(INNER_IP), socket.inet_aton(OUTER_IP))
    words = struct.unpack("!10H", ip)
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
    udp = struct.pack("!HHHH", 40000, 9, ulen, 0) + payload  # UDP checksum 0: "none" in IPv4
    return bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex(src_mac.replace(":", "")) + b"\x08\x00" + ip + udp


def _send(net: VethPair, frame: bytes, count: int) -> str:
    if shutil.which("trafgen"):
        with tempfile.NamedTemporaryFile("w", suffix=".cfg") as cfg:
            cfg.write("{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n")
            cfg.flush()
            net.exec("trafgen", "-o", net.inner, "-i", cfg.name, "-n", str(count), "-P", "1",
                     "--no-sock-mem", "--notouch-irq", "-C", timeout=300)
        return "trafgen"
    net.send([frame] * count)
    return "packet socket"


def _run_version(net: VethPair, version: int, frame: bytes, count: int) -> tuple[list[str], tuple[int, ...], str]:
    """Capture ``count`` copies of ``frame`` with one ring version while the generator sends them."""
    seen = good = 0
    first: list[str] = []
    done_at: list[float] = []
    printer = LinePrinter()
    with Capture(net.outer, version=version, buffer_size=32 << 20, block_timeout_ms=2) as cap:

        def reader() -> None:
            nonlocal seen, good
            for p in cap:
                seen += 1
                d = p.data
                if len(d) == len(frame) and d[-1] == 0xA5:
                    good += 1
                if len(first) < 2:
                    sec, frac = divmod(p.timestamp_ns, 1_000_000_000)
                    clock = time.strftime("%H:%M:%S", time.localtime(sec))
                    first.append(f"{clock}.{frac // 1000:06d} {printer.line(d, p.wire_len, LINKTYPE_ETHERNET)}")
                if seen == count:
                    done_at.append(time.perf_counter())
                    break

        th = threading.Thread(target=reader)
        th.start()
        t0 = time.perf_counter()
        tool = _send(net, frame, count)
        sent_at = time.perf_counter()
        th.join(timeout=5 + count / 20000)
        cap.stop()
        th.join()
        st = cap.stats()
    t1 = done_at[0] if done_at else sent_at
    return first, (version, seen, good, st.drops, int(seen / max(t1 - t0, 1e-9))), tool


@main.command("demo")
@click.option("-n", "--count", type=IntRange(min=1), default=200_000, show_default=True,
              help="Frames to send for each ring version.")
@click.option("--size", type=IntRange(min=60, max=1514), default=64, show_default=True)
def demo_cmd(count: int, size: int) -> None:
    """Send known traffic over a private veth pair and capture it with TPACKET_V1, V2 and V3."""
    try:
        with VethPair("afpd", addresses=False) as net:
            click.echo(f"private namespace {net.netns}: {net.outer} (here) <-> {net.inner} (namespace)")
            click.echo(f"ring kernels: {ring.IMPLEMENTATION} (AFPACKET_NO_EXTENSIONS=1 for the pure-Python core)")
            frame = _udp(net.outer_mac, net.inner_mac, 7, size)
            rows = []
            for version in (1, 2, 3):
                first, row, tool = _run_version(net, version, frame, count)
                click.echo(f"\nTPACKET_V{version}: {tool} sent {count} frames of {len(frame)} bytes")
                for line in first:
                    click.echo(f"  {line}")
                rows.append(row)
            click.echo("\nring  captured  intact   dropped  packets/s (wall clock, generator start-up included)")
            for version, seen, good, drops, pps in rows:
                click.echo(f"V{version}    {seen:8d}  {good:8d}  {drops:7d}  {pps:10,d}")
            click.echo(f"\nremoved {net.netns}")
    except AfPacketError as e:
        click.echo(f"afpacket: {e}", err=True)
        raise SystemExit(1) from None
    except subprocess.TimeoutExpired:
        click.echo("afpacket: the traffic generator did not finish in time", err=True)
        raise SystemExit(1) from None

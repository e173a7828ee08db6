"""`afpacket read FILE`: print a pcap or pcapng file one packet per line, like ``tcpdump -n -r``."""

from __future__ import annotations

import sys

import click

from .. import dissect
from ..errors import SavefileError
from ..savefile import describe, open_reader
from . import main


@main.command("read")
@click.argument("file", metavar="FILE")
@click.option("-c", "count", type=click.IntRange(min=0), default=None, help="Stop after N packets.")
@click.option("-e", "link", is_flag=True, help="Print the link-level header (MAC addresses, ethertype).")
@click.option(
    "--time-stamp-precision",
    "precision",
    type=click.Choice(["micro", "nano"]),
    default="micro",
    show_default=True,
    help="Print timestamps to the microsecond or the nanosecond.",
)
def read(file: str, count: int | None, link: bool, precision: str) -> None:
    """Print the packets of FILE (pcap or pcapng; - for standard input) as tcpdump -n -r would."""
    out = sys.stdout
    try:
        with open_reader(file) as reader:
            linktype = "unknown" if reader.linktype is None else describe(reader.linktype)
            click.echo(f"reading from file {file}, link-type {linktype}, snapshot length {reader.snaplen}", err=True)
            if count == 0:
                return
            for printed, rec in enumerate(reader, 1):
                out.write(
                    dissect.packet_line(rec.timestamp_ns, rec.data, rec.wire_len, rec.linktype, precision, link=link)
                    + "\n"
                )
                if printed == count:
                    break
    except SavefileError as e:
        out.flush()
        click.echo(f"afpacket: {e}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # `afpacket read f | head`: the reader left; stop quietly as tcpdump does.
        sys.stderr.close()
        sys.exit(0)

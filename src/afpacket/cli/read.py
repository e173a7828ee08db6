"""`afpacket read FILE [EXPRESSION]`: print a pcap or pcapng file one packet per line, like ``tcpdump -n -r``."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import click

from ..errors import AfPacketError, SavefileError
from ..filter import OfflineFilter
from ..savefile import Record, describe, open_reader
from ..savefile.linktype import LINKTYPE_LINUX_SLL2
from . import main
from .output import MAX_SNAPLEN, IntRange, filter_expression, make_writer, printing_options

#: libpcap's max_snaplen_for_dlt(): the link types whose packets may be longer than MAX_SNAPLEN
#: (D-Bus 128 MiB, EBHSCR 8 MiB, USBPcap 1 MiB).
_LARGER_SNAPLEN = {231: 128 << 20, 279: 8 << 20, 249: 1 << 20}


def file_snaplen(linktype: int | None, snaplen: int) -> int:
    """The snapshot length tcpdump reports for a file header's ``snaplen``: libpcap replaces 0 and values
    above INT_MAX (corrupt, or written by a tool that meant "no limit") by the link type's maximum."""
    if snaplen == 0 or snaplen > 0x7FFFFFFF:
        return _LARGER_SNAPLEN.get(linktype or 0, MAX_SNAPLEN)
    return snaplen


@main.command("read")
@click.argument("args", nargs=-1, metavar="FILE [EXPRESSION]")
@click.option("-r", "rfile", metavar="FILE", help="The file to read (tcpdump's habit; or give FILE first).")
@click.option("-c", "count", type=IntRange(min=0), default=None, help="Stop after N matching packets.")
@click.option("--count", "count_only", is_flag=True, help="Print only the number of matching packets.")
@printing_options
def read(
    args: tuple[str, ...], rfile: str | None, count: int | None, count_only: bool, numeric: int, link: bool,
    quiet: bool, verbose: int, hex_level: int, hex_ascii_level: int, ascii: bool, time_level: int,
    absolute_seq: bool, no_checksums: bool, number: bool, line_buffered: bool, filter_file: str | None,
    precision: str,
) -> None:
    """Print the packets of FILE (pcap or pcapng; - for standard input) as `tcpdump -n -r FILE` would,
    those matching EXPRESSION (a tcpdump filter, compiled by libpcap for the file's link type)."""
    if rfile is None:
        if not args:
            raise click.UsageError("give the file to read: afpacket read FILE [EXPRESSION]")
        rfile, args = args[0], args[1:]
    expr = filter_expression(args, filter_file)
    writer = make_writer(
        link=link, quiet=quiet, verbose=verbose, hex_level=hex_level, hex_ascii_level=hex_ascii_level,
        ascii=ascii, time_level=time_level, absolute_seq=absolute_seq, no_checksums=no_checksums, number=number,
        precision=precision, flush_each=line_buffered,
    )
    matched = 0
    try:
        with open_reader(rfile) as reader:
            linktype = "unknown" if reader.linktype is None else describe(reader.linktype)
            snaplen = file_snaplen(reader.linktype, reader.snaplen)
            click.echo(f"reading from file {rfile}, link-type {linktype}, snapshot length {snaplen}", err=True)
            if reader.linktype == LINKTYPE_LINUX_SLL2:
                click.echo("Warning: interface names might be incorrect", err=True)
            flt = OfflineFilter(expr, snaplen) if expr else None
            if flt is not None and reader.linktype is not None:
                flt.check(reader.linktype)  # a bad expression fails before any line
            if count == 0:
                return
            records: Iterable[Record] = reader
            if flt is not None:
                match = flt.matches
                records = (r for r in reader if match(r.data, r.wire_len, r.linktype))
            if count_only:
                for matched, _ in enumerate(records, 1):
                    if matched == count:
                        break
            else:
                matched = writer.write_records(records, count)
        if count_only:
            click.echo(f"{matched} packet{'s' if matched != 1 else ''}")
    except (SavefileError, AfPacketError) as e:
        sys.stdout.flush()
        click.echo(f"afpacket: {e}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        # `afpacket read f | head`: the reader left; stop quietly as tcpdump does.
        sys.stderr.close()
        sys.exit(0)

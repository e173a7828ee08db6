"""`afpacket compile-filter [-i IFACE] [-d|-dd|-ddd] EXPRESSION`: the classic BPF program a capture would
attach, printed exactly as ``tcpdump -d``/``-dd``/``-ddd`` prints it, so the two can be compared line by
line (and the ``-ddd`` text fed back as a raw program: ``Capture(filter=afpacket.parse_program(text))``).
"""

from __future__ import annotations

import sys

import click

from ..errors import AfPacketError
from ..filter import MAXIMUM_SNAPLEN, compile_filter, linktype_value
from . import main
from .output import IntRange, filter_expression


@main.command("compile-filter", context_settings={"ignore_unknown_options": False})
@click.argument("expression", nargs=-1, metavar="EXPRESSION")
@click.option("-i", "--interface", metavar="IFACE",
              help="Compile for this live interface, as `tcpdump -d -i IFACE` does (libpcap activates it: needs "
                   "CAP_NET_RAW; `vlan` then reads the kernel's VLAN metadata). Without -i: for Ethernet, on a "
                   "dead handle, as `tcpdump -d` with no interface does.")
@click.option("-d", "level", count=True,
              help="-d: readable (default); -dd: a C array; -ddd: decimal, the count first (as tcpdump).")
@click.option("-O", "no_optimize", is_flag=True, help="Do not run libpcap's optimiser (as tcpdump -O).")
@click.option("-s", "--snapshot-length", "snaplen", type=IntRange(min=0), default=MAXIMUM_SNAPLEN,
              show_default=True, help="The accepting return value (0 or more than 262144: 262144, as tcpdump).")
@click.option("-F", "filter_file", metavar="FILE", help="Read the expression from FILE (# starts a comment).")
@click.option("-y", "--linktype", metavar="LINKTYPE",
              help="Compile for this link type (EN10MB, RAW, LINUX_SLL, ... or a number) on a dead handle.")
def compile_filter_cmd(
    expression: tuple[str, ...], interface: str | None, level: int, no_optimize: bool, snaplen: int,
    filter_file: str | None, linktype: str | None,
) -> None:
    """Print the BPF program for the tcpdump filter EXPRESSION as `tcpdump -d [-i IFACE] EXPRESSION`
    prints it (an empty expression accepts everything). A bad expression prints libpcap's reason and
    exits with status 1."""
    if level > 3:
        raise click.UsageError("-d, -dd and -ddd are the three forms")
    if interface is not None and linktype is not None:
        raise click.UsageError("-i and -y exclude each other: -y compiles for a link type on a dead handle")
    expr = filter_expression(expression, filter_file) or ""
    try:
        dlt = linktype_value(linktype) if linktype is not None else None
        program = compile_filter(expr, snaplen=snaplen, optimize=not no_optimize, linktype=dlt, interface=interface)
    except AfPacketError as e:
        click.echo(f"afpacket: {e}", err=True)
        sys.exit(1)
    if interface is not None and program.interface is None:
        click.echo(f"afpacket: warning: could not activate {interface} (no permission, or the link is down): "
                   "compiled for Ethernet on a dead handle, so `vlan` reads packet bytes", err=True)
    click.echo(program.dump(level or 1))

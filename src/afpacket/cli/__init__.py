"""The ``afpacket`` command: thin subcommands over the public API.

Every error from the library arrives as an AfPacketError and leaves as one line on stderr with exit
status 1; usage errors exit 2 (click's convention).
"""

from __future__ import annotations

import click

from .. import __version__, _startup, ring


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, prog_name="afpacket", message=f"%(prog)s %(version)s (ring kernels: {ring.IMPLEMENTATION})"
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Line-rate packet capture and transmission through AF_PACKET PACKET_MMAP rings."""
    # Stop signals were held since start-up (afpacket._startup): capture takes them over, the other
    # subcommands get the usual handlers back.
    _startup.settle(capture=ctx.invoked_subcommand == "capture")


def _register() -> None:
    # Each subcommand lives in its own module; importing it adds it to the group.
    from . import capture, compile_filter, demo, flows, read, send, top  # noqa: F401


_register()

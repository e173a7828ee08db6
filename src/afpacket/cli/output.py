"""Packet lines as tcpdump prints them: the options both `capture` and `read` take, the timestamp forms
(``-t`` … ``-ttttt``), the packet number (``-#``), and the line itself from :class:`afpacket.dissect.LinePrinter`.

The decoding and the text after the timestamp belong to ``afpacket.dissect``; this module only adds what
tcpdump adds around it, and writes. Formatting the clock is the costly part of a line, so the text of the
current second is kept and only the fraction is formatted per packet.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

if TYPE_CHECKING:
    from ..dissect import LinePrinter
    from ..savefile import Record

F = TypeVar("F", bound=Callable[..., Any])

#: tcpdump's largest snapshot length; ``-s 0`` means it, as in tcpdump
MAX_SNAPLEN = 262144

#: What a packet line shows, as tcpdump does, for a time stamp the C library cannot turn into a date
#: (a crafted or corrupt file: years beyond 9999, or seconds beyond time_t).
TIME_ERROR = "[Error converting time]"

if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older versions cannot subscript it at run time
    _FloatParam = click.ParamType[float]
else:
    _FloatParam = click.ParamType


class PositiveFloat(_FloatParam):
    """A finite number above zero (``zero``: at or above zero), within ``minimum``..``maximum`` when given.

    click's FloatRange lets ``nan`` and ``inf`` through, which later fail deep inside a loop or a
    conversion; this refuses them at the option, so the user gets one line naming it and exit 2.
    """

    name = "number"

    def __init__(
        self, zero: bool = False, minimum: float | None = None, why: str = "", maximum: float | None = None
    ) -> None:
        self.zero = zero
        self.minimum = minimum
        self.maximum = maximum
        self.why = why

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            v = value  # a default, or a value converted already
        else:
            try:
                v = float(value)
            except OverflowError:  # an int beyond what a float holds
                v = math.inf
            except (TypeError, ValueError):
                self.fail(f"{_shown(value)} is not a number", param, ctx)
        shown = _shown(value)
        if v == math.inf and "inf" not in str(value).lower():
            # a finite number written out (1e999, 400 digits) beyond what a float holds
            self.fail(f"{shown} is too large{f' (the maximum is {self.maximum:g})' if self.maximum else ''}",
                      param, ctx)
        if not math.isfinite(v) or v < 0 or (v == 0 and not self.zero):
            self.fail(f"{shown} must be a finite number {'>= 0' if self.zero else '> 0'}", param, ctx)
        if self.minimum is not None and v < self.minimum:
            self.fail(f"{shown} is below the minimum {self.minimum:g}{self.why}", param, ctx)
        if self.maximum is not None and v > self.maximum:
            self.fail(f"{shown} is above the maximum {self.maximum:g}", param, ctx)
        return v + 0.0  # -0.0 becomes 0.0: "0" has one meaning, whichever way it was typed


class IntRange(click.IntRange):
    """click's IntRange, with a refused number quoted short: click quotes the whole text, which can be
    hundreds of digits long; this gives one readable line naming the option instead."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if len(str(value)) <= 40:
                raise
            self.fail(f"{_shown(str(value))} is not {self._describe_range()}.", param, ctx)


def _shown(value: Any) -> str:
    """The value as an error message quotes it, cut short: one readable line even for 400 digits."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]} ({len(text)} characters)"


def local_clock(fmt: str, sec: int) -> str | None:
    """``sec`` formatted by strftime in local time, or None when the C library cannot (out of range)."""
    try:
        return time.strftime(fmt, time.localtime(sec))
    except (OverflowError, OSError, ValueError):
        return None


_DUMP_MODES = {(1, 0, False): "x", (2, 0, False): "xx", (0, 1, False): "X", (0, 2, False): "XX"}


def printing_options(f: F) -> F:
    """The tcpdump options that shape packet lines, shared by `capture` and `read`."""
    options = [
        click.option("-n", "numeric", count=True, help="Don't convert addresses or ports to names (always so; "
                     "accepted for tcpdump's habit, as is -nn)."),
        click.option("-e", "link", is_flag=True, help="Print the link-level header on each line."),
        click.option("-q", "quiet", is_flag=True, help="Quick output: less protocol information per line."),
        click.option("-v", "verbose", count=True, help="More detail (-v, -vv, -vvv): IP header fields, checksums."),
        click.option("-x", "hex_level", count=True,
                     help="Hex dump of each packet without (-x) or with (-xx) its link header."),
        click.option("-X", "hex_ascii_level", count=True,
                     help="Hex and ASCII dump of each packet without (-X) or with (-XX) its link header."),
        click.option("-A", "ascii", is_flag=True, help="Print each packet (minus its link header) in ASCII."),
        click.option("-t", "time_level", count=True,
                     help="-t no timestamp, -tt seconds since 1970, -ttt delta to the previous line, "
                     "-tttt date and time, -ttttt delta to the first line."),
        click.option("-S", "--absolute-tcp-sequence-numbers", "absolute_seq", is_flag=True,
                     help="Print absolute, not relative, TCP sequence numbers."),
        click.option("-K", "--dont-verify-checksums", "no_checksums", is_flag=True,
                     help="Don't verify IP, TCP or UDP checksums (with -v)."),
        click.option("-#", "--number", "number", is_flag=True, help="Print a packet number at the start of the line."),
        click.option("-l", "line_buffered", is_flag=True, help="Make stdout line buffered (for `| grep`)."),
        click.option("-F", "filter_file", metavar="FILE", type=click.Path(dir_okay=False),
                     help="Read the filter expression from FILE (the command line's is then ignored)."),
        click.option("--time-stamp-precision", "precision", type=click.Choice(["micro", "nano"]), default="micro",
                     show_default=True, help="Print timestamps to the microsecond or the nanosecond."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def dump_mode(hex_level: int, hex_ascii_level: int, ascii: bool) -> str | None:
    """The LinePrinter dump mode for tcpdump's -x/-xx/-X/-XX/-A (the largest wins, as in tcpdump)."""
    if hex_ascii_level:
        return "XX" if hex_ascii_level > 1 else "X"
    if hex_level:
        return "xx" if hex_level > 1 else "x"
    return "A" if ascii else None


def filter_expression(expression: tuple[str, ...], filter_file: str | None) -> str | None:
    """The filter from the command line, or from ``-F FILE`` (``#`` starts a comment, as in tcpdump)."""
    if filter_file is None:
        return " ".join(expression) or None
    if expression:
        click.echo("afpacket: warning: -F given: the command-line expression is ignored", err=True)
    try:
        with open(filter_file, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise click.UsageError(f"cannot read the filter file {filter_file}: {e.strerror}") from None
    words = " ".join(line.split("#", 1)[0] for line in text.splitlines()).split()
    return " ".join(words) or None


def check_time_level(level: int) -> None:
    if level > 5:
        raise click.UsageError("only -t, -tt, -ttt, -tttt and -ttttt are supported")


def clock_text(ts_ns: int, nano: bool = False) -> str:
    """``HH:MM:SS.ffffff`` (``nano``: 9 digits) in local time: tcpdump's default timestamp."""
    sec, frac = divmod(ts_ns, 1_000_000_000)
    clock = local_clock("%H:%M:%S", sec)
    if clock is None:
        return TIME_ERROR
    return f"{clock}.{frac:09d}" if nano else f"{clock}.{frac // 1000:06d}"


def _hms(delta_ns: int, nano: bool) -> str:
    """A delta as tcpdump prints it for -ttt/-ttttt: `` HH:MM:SS.ffffff`` (hours not wrapped)."""
    sign = "-" if delta_ns < 0 else ""
    sec, frac = divmod(abs(delta_ns), 1_000_000_000)
    hms = f"{sign}{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}"
    return f"{hms}.{frac:09d}" if nano else f"{hms}.{frac // 1000:06d}"


class LineWriter:
    """Writes one packet per line: [number] [time] the LinePrinter's text."""

    def __init__(
        self,
        printer: LinePrinter,
        *,
        time_level: int = 0,
        precision: str = "micro",
        number: bool = False,
        stream: TextIO | None = None,
        flush_each: bool = False,
    ) -> None:
        self.printer = printer
        self.time_level = time_level
        self.nano = precision == "nano"
        self.number = number
        self.stream = sys.stdout if stream is None else stream
        self.flush_each = flush_each
        self.count = 0
        self._started = False
        self._first = 0
        self._prev = 0
        self._sec = -1
        self._clock: str | None = ""

    def _stamp(self, ts_ns: int) -> str:
        level = self.time_level
        if level == 1:
            return ""
        if level in (0, 4):
            sec, frac = divmod(ts_ns, 1_000_000_000)
            if sec != self._sec:
                self._sec = sec
                fmt = "%Y-%m-%d %H:%M:%S" if level == 4 else "%H:%M:%S"
                self._clock = local_clock(fmt, sec)
            if self._clock is None:
                return f"{TIME_ERROR} "
            return f"{self._clock}.{frac:09d} " if self.nano else f"{self._clock}.{frac // 1000:06d} "
        if level == 2:
            sec, frac = divmod(ts_ns, 1_000_000_000)
            return f"{sec}.{frac:09d} " if self.nano else f"{sec}.{frac // 1000:06d} "
        # -ttt: since the previous packet; -ttttt: since the first (the first line shows zero)
        if not self._started:
            self._started = True
            self._first = self._prev = ts_ns
        base = self._prev if level == 3 else self._first
        self._prev = ts_ns
        return f" {_hms(ts_ns - base, self.nano)} "

    def _head(self, ts_ns: int, text: str) -> str:
        if text.startswith("[Invalid header"):  # tcpdump prints a record it cannot trust without a time
            return ""
        head = self._stamp(ts_ns)
        return f"{self.count:5d}  {head}" if self.number else head

    def write(self, ts_ns: int, data: bytes | memoryview, wire_len: int, linktype: int) -> None:
        """Print one packet (a live capture's: written and, with ``flush_each``, flushed at once)."""
        self.count += 1
        text = self.printer.line(data, wire_len, linktype)
        self.stream.write(f"{self._head(ts_ns, text)}{text}\n")
        if self.flush_each:
            self.stream.flush()

    def write_records(self, records: Iterable[Record], limit: int | None = None) -> int:
        """Print records of a file until ``limit``; returns how many. The hot loop of ``afpacket read``:
        lines go out in chunks (unless ``flush_each``), and the default timestamp is formatted inline
        with the clock text of the current second kept."""
        line = self.printer.line
        write = self.stream.write
        flush_each = self.flush_each
        simple = self.time_level == 0 and not self.nano and not self.number
        out: list[str] = []
        append = out.append
        sec_now, clock = -1, ""
        n = 0
        try:
            for rec in records:
                text = line(rec.data, rec.wire_len, rec.linktype)
                n += 1
                if simple and text[:1] != "[":
                    sec, frac = divmod(rec.timestamp_ns, 1_000_000_000)
                    if sec != sec_now:
                        sec_now, clock = sec, local_clock("%H:%M:%S", sec) or ""
                    if clock:
                        append(f"{clock}.{frac // 1000:06d} {text}\n")
                    else:
                        append(f"{TIME_ERROR} {text}\n")
                else:
                    self.count = n
                    append(f"{self._head(rec.timestamp_ns, text)}{text}\n")
                if flush_each or len(out) >= 256:
                    write("".join(out))
                    out.clear()
                    if flush_each:
                        self.stream.flush()
                if n == limit:
                    break
        finally:
            # lines already made go out even when the file ends in a broken record (an error follows)
            if out:
                write("".join(out))
            self.count = n
        return n


def make_writer(
    *, link: bool, quiet: bool, verbose: int, hex_level: int, hex_ascii_level: int, ascii: bool, time_level: int,
    absolute_seq: bool, no_checksums: bool, number: bool, precision: str, flush_each: bool,
) -> LineWriter:
    """The LineWriter for a command's printing options."""
    from ..dissect import LinePrinter  # the decoders load only when a command prints packets

    check_time_level(time_level)
    kwargs: dict[str, Any] = {
        "link": link, "verbose": verbose, "quiet": quiet, "absolute_seq": absolute_seq,
        "dump": dump_mode(hex_level, hex_ascii_level, ascii),
    }
    if no_checksums:
        kwargs["verify_checksums"] = False
    printer = LinePrinter(**kwargs)
    return LineWriter(printer, time_level=time_level, precision=precision, number=number, flush_each=flush_each)

"""Hypothesis fuzzing of every numeric command-line option and API argument at the boundary.

Command line: the numeric options are found by looking at the commands themselves (``capture``, ``read``,
``send``, ``gen``, ``top``, ``compile-filter``: every option whose type is an integer, a float,
:class:`PositiveFloat` or a choice of numbers), so an option added later is fuzzed too. Each gets values
chosen by hypothesis: integers near every limit (0, -1, 2^31, 2^32, 2^63, 2^64, 400 digits), floats (nan, inf,
-inf, 1e-300, 5e-324, 1e300, -0.0), and text a user might type ('1.5', '0x10', '1e3', '', ' ', '1_000'). The
property: click's parsing either accepts the value and hands the command a finite number inside the option's
declared range, or refuses it with a usage error that names the option; a refused value, run as a whole
command, exits with status 2 and one ``Error:`` line, never a traceback. Parsing is tested without starting
captures (``make_context``); a few accepted extremes are then run for real, as subprocesses, on a veth pair in
a namespace the test makes.

API: ``Capture(...)``'s numeric keywords, ``packets()``'s count/duration/timeout, ``Transmitter(...)``,
``open_reader``, the writers and the shared checks of ``afpacket._check`` get the same values (and
non-numbers); the property is "accepted, or an exception of the afpacket.errors family (ArgumentError is
also a ValueError) or a TypeError whose message names the parameter". Rings are opened only on the test's
own veth and only when the geometry is small (a fuzzed buffer size is never allocated for real).

Argument checks run before any ring code, so every test runs once (not once per ring core).
"""

from __future__ import annotations

import io
import math
import operator
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import afpacket
from afpacket import _check
from afpacket.cli import main
from afpacket.cli.output import PositiveFloat
from afpacket.errors import AfPacketError, ArgumentError
from afpacket.geometry import RingGeometry
from afpacket.savefile import PcapngWriter, PcapWriter, open_reader
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: A ring the API tests may really allocate; larger fuzzed geometries are checked but never opened.
RING_BUDGET = 64 << 20
HUGE = "1" + "0" * 400


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: argument checks run before any ring code."""
    return "any"


@pytest.fixture(scope="module")
def net() -> Iterator[VethPair]:
    """One veth pair for the whole module: the API and subprocess tests open sockets only on its ends."""
    with VethPair("afpfz") as pair:
        yield pair


# --- values ----------------------------------------------------------------------------------------------
EDGE_INTS = [0, -1, 1, 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64, -(2**63), 10**400]
EDGE_FLOATS = [math.nan, math.inf, -math.inf, 1e-300, 5e-324, 1e300, -0.0, 0.0, 0.5, 1.5, 1e9, 1e9 + 1]
#: What a user types: every edge number as text, and the text click or float() might misread.
TYPED = [str(n) for n in EDGE_INTS] + [repr(f) for f in EDGE_FLOATS] + [
    "NaN", "Infinity", "-inf", "1e999", "-1e999", "1.5", "0x10", "0o7", "0b1", "1e3", "", " ", "1_000", " 7 ",
    "+3", "-0", "1,5", "1.", ".5", "٣", "abc", "--", "-", "1e-7", "0.004096", "65535", "65536", "4095", "4096",
]
TEXT = st.one_of(
    st.sampled_from(TYPED),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(repr),
    st.text(alphabet="0123456789.eE+-_xinfa ", max_size=10),
)
NUMBERS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(EDGE_INTS),
    st.sampled_from(EDGE_FLOATS),
    st.integers(),
    st.floats(),
    st.sampled_from([True, False, None, "1", b"1", Fraction(3, 2), Fraction(2**80, 1), Decimal("1.5"), [1]]),
)


# --- command line: parsing -------------------------------------------------------------------------------
COMMANDS: dict[str, click.Command] = {
    name: main.commands[name] for name in ("capture", "read", "send", "gen", "top", "compile-filter")
}
#: Arguments that make each command parse (required options, a file name; never opened when parsing).
BASE = {"capture": [], "read": ["x.pcap"], "send": ["-i", "lo", "x.pcap"], "gen": ["-i", "lo", "-c", "1"],
        "top": ["-i", "lo"], "compile-filter": ["ip"]}


def is_numeric(p: click.Parameter) -> bool:
    if not isinstance(p, click.Option) or p.is_flag or p.count:
        return False
    if isinstance(p.type, click.Choice):
        return all(str(c).isdigit() for c in p.type.choices)
    return isinstance(p.type, click.types.IntParamType | click.types.FloatParamType | PositiveFloat)


NUMERIC = [(name, p) for name, cmd in COMMANDS.items() for p in cmd.params if is_numeric(p)]


def test_every_numeric_option_is_found() -> None:
    """The introspection finds the options the docs name (and so will find new ones)."""
    found = {(name, p.opts[0]) for name, p in NUMERIC}
    for expected in [("capture", "-c"), ("capture", "-s"), ("capture", "-B"), ("capture", "--block-timeout-ms"),
                     ("capture", "--duration"), ("capture", "-C"), ("capture", "-G"), ("capture", "-W"),
                     ("capture", "--tpacket-version"), ("read", "-c"), ("send", "-x"), ("send", "-p"),
                     ("send", "-M"), ("send", "-l"), ("send", "--loopdelay-ms"), ("send", "-L"),
                     ("send", "--duration"), ("send", "--stats"), ("gen", "-c"), ("gen", "--size"), ("gen", "-p"),
                     ("gen", "--flows"), ("gen", "--sport"), ("gen", "--vlan"), ("capture", "--metrics-port"),
                     ("send", "--metrics-port"), ("gen", "--metrics-port"), ("top", "--metrics-port"),
                     ("top", "--limit"), ("top", "--workers"), ("top", "-B"), ("capture", "--workers"),
                     ("compile-filter", "-s")]:
        assert expected in found, expected


def assert_in_declared_range(p: click.Option, value: Any) -> None:
    """An accepted value is what the option promises the command: the right type, finite, in range."""
    t = p.type
    if isinstance(t, click.Choice):
        assert value in t.choices
        return
    if isinstance(t, click.types.IntParamType):
        assert type(value) is int, value
    else:
        assert type(value) is float and math.isfinite(value), value
    if isinstance(t, click.IntRange | click.FloatRange):
        if t.min is not None:
            assert value > t.min if t.min_open else value >= t.min
        if t.max is not None:
            assert value < t.max if t.max_open else value <= t.max
    if isinstance(t, PositiveFloat):
        assert value >= 0 if t.zero else value > 0
        assert math.copysign(1.0, value) == 1.0  # no -0.0: zero has one meaning
        if t.minimum is not None:
            assert value >= t.minimum
        if t.maximum is not None:
            assert value <= t.maximum


def names_option(p: click.Option, message: str) -> bool:
    return any(f"'{o}'" in message for o in p.opts)


@settings(FUZZ, max_examples=1000)
@given(st.sampled_from(NUMERIC), TEXT)
def test_numeric_option_parsed_in_range_or_refused_naming_it(option: tuple[str, click.Option], text: str) -> None:
    name, p = option
    args = [*BASE[name], p.opts[0], text]
    try:
        ctx = COMMANDS[name].make_context(name, list(args))
    except click.UsageError as e:
        event(f"{name} {p.opts[0]}: refused")
        message = e.format_message()
        assert "\n" not in message and len(message) < 400, message
        assert names_option(p, message), message
        assert e.exit_code == 2
        return
    event(f"{name} {p.opts[0]}: accepted")
    assert_in_declared_range(p, ctx.params[p.name or ""])


@settings(FUZZ, max_examples=200)
@given(st.sampled_from(NUMERIC), TEXT)
def test_refused_value_exits_2_with_one_error_line(option: tuple[str, click.Option], text: str) -> None:
    """The whole command, as click runs it: a refused value never reaches the command's body."""
    name, p = option
    args = [name, *BASE[name], p.opts[0], text]
    try:
        COMMANDS[name].make_context(name, args[1:])
    except click.UsageError:
        pass
    else:
        event("accepted (not run here)")
        return  # accepted values would start a capture or a transmission: see the subprocess tests
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and names_option(p, errors[0]), result.stderr
    assert result.stdout == ""


@settings(FUZZ, max_examples=300)
@given(st.sampled_from([PositiveFloat(), PositiveFloat(zero=True), PositiveFloat(minimum=0.004096, maximum=1e12),
                        PositiveFloat(maximum=1e9)]), st.one_of(TEXT, NUMBERS))
def test_positive_float_type(kind: PositiveFloat, value: Any) -> None:
    """The click type itself, given anything (defaults arrive as numbers, typed values as text)."""
    try:
        v = kind.convert(value, None, None)
    except click.BadParameter as e:
        assert e.format_message() and "\n" not in e.format_message()
        return
    assert type(v) is float and math.isfinite(v) and math.copysign(1.0, v) == 1.0
    assert v >= 0 if kind.zero else v > 0
    assert kind.minimum is None or v >= kind.minimum
    assert kind.maximum is None or v <= kind.maximum


# --- command line: accepted extremes, run for real ------------------------------------------------------------
def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, *args], capture_output=True, text=True, timeout=timeout)


def assert_clean_run(r: subprocess.CompletedProcess[str], status: int = 0) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == status, (r.returncode, r.stderr)
    if status == 1:
        errors = [line for line in r.stderr.splitlines() if line.startswith("afpacket: ") and "listening" not in line
                  and "capturing" not in line and "verbose output" not in line]
        assert len(errors) == 1, r.stderr


@pytest.fixture(scope="module")
def replay_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz-options") / "three.pcap"
    with PcapWriter(str(path)) as w:
        for i in range(3):
            w.write(1_000_000_000 + i * 1000, b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(46))
    return path


#: Extreme values the parsing accepts, each run once as a user would, with a short --duration or a count.
#: (arguments, expected exit status, what stderr must say)
REAL_RUNS: list[tuple[list[str], int, str]] = [
    (["capture", "-i", "{outer}", "-c", str(2**63 - 1), "--duration", "0.3"], 0, "packets captured"),
    (["capture", "-i", "{outer}", "-s", str(2**64), "--duration", "0.3"], 0, "snapshot length 262144 bytes"),
    (["capture", "-i", "{outer}", "--block-timeout-ms", "65535", "--duration", "0.3"], 0, "dropped by kernel"),
    (["capture", "-i", "{outer}", "--duration", "5e-324"], 0, "packets captured"),
    (["capture", "-i", "{outer}", "-B", str(2**26), "--duration", "0.3"], 1, "more than half of the memory available"),
    (["capture", "-i", "{outer}", "-w", "{tmp}/r.pcap", "-C", "0.004096", "-W", str(2**63 - 1), "--duration",
      "0.3"], 0, "packets captured"),
    (["read", "-c", HUGE, "{file}"], 0, "reading from file"),
    (["send", "-i", "{outer}", "-q", "-x", "1e300", "-L", str(2**64), "{file}"], 0, "Successful packets:        3"),
    (["send", "-i", "{outer}", "-q", "-p", "1e-6", "--duration", "0.3", "{file}"], 0, "Successful packets:        1"),
    (["gen", "-i", "{outer}", "-q", "-c", "3", "--pps", "1e300", "--size", "1514", "--sport", "65535"], 0,
     "Successful packets:        3"),
]


@pytest.mark.parametrize(("args", "status", "says"), REAL_RUNS, ids=[" ".join(a[:5]) for a, _, _ in REAL_RUNS])
def test_accepted_extremes_run_without_traceback(net: VethPair, replay_file: Path, tmp_path: Path, args: list[str],
                                                 status: int, says: str) -> None:
    argv = [a.format(outer=net.outer, tmp=tmp_path, file=replay_file) for a in args]
    r = run(*argv)
    assert_clean_run(r, status)
    assert says in r.stderr, r.stderr


@pytest.mark.parametrize(("args", "option"), [
    (["capture", "-i", "{outer}", "-c", str(2**63), "--duration", "0.3"], "'-c' / '--count'"),
    (["capture", "-i", "{outer}", "-w", "{tmp}/w.pcap", "-C", "1", "-W", str(2**63), "--duration", "0.3"], "'-W'"),
], ids=["capture -c 2^63", "capture -W 2^63"])
def test_counts_beyond_2_63_end_cleanly(net: VethPair, tmp_path: Path, args: list[str], option: str) -> None:
    """A count no loop can reach (above afpacket._check.MAX_COUNT, which the API refuses too): a usage
    error naming the option and the largest count, one line, before any capture starts."""
    r = run(*[a.format(outer=net.outer, tmp=tmp_path) for a in args])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: Invalid value for {option}: 9223372036854775808 is not in the range "
                      "1<=x<=9223372036854775807."], r.stderr
    assert "capturing on" not in r.stderr and not (tmp_path / "w.pcap0").exists()


def test_gen_huge_flows_is_refused_and_large_flows_start_at_once(net: VethPair) -> None:
    r = run("gen", "-i", net.outer, "-q", "-c", "1", "--flows", str(10**12), timeout=6)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--flows" in r.stderr and "1000000" in r.stderr
    t0 = time.monotonic()
    r = run("gen", "-i", net.outer, "-q", "-c", "3", "--flows", "1000000", timeout=20)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 10  # only the flows that are sent get a template


def test_tiny_rotation_period_still_ends(net: VethPair, tmp_path: Path) -> None:
    """-G below its minimum (0.001 s) is a usage error naming -G, before any capture starts. (Such a period
    once made every record find its file's period over, so the capture reopened files forever without
    writing; CaptureFile itself now writes a record into every file a rotation opens, see
    tests/test_capture_file.py.)"""
    proc = subprocess.Popen([*AFPACKET, "capture", "-i", net.outer, "-w", str(tmp_path / "g.pcap"), "-G", "1e-300",
                             "--duration", "0.5"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        net.send([b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(46)] * 3)
        _, err = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert errors == ["Error: Invalid value for '-G': '1e-300' is below the minimum 0.001 (one file per "
                      "millisecond at most; tcpdump takes whole seconds)"], err
    assert not list(tmp_path.iterdir())  # refused before the file was created


# --- API: the shared checks -----------------------------------------------------------------------------------
def _message_names(e: BaseException, *words: str) -> None:
    text = str(e)
    assert text and "\n" not in text and len(text) < 300, text
    for w in words:
        assert w in text, (w, text)


@settings(FUZZ, max_examples=400)
@given(NUMBERS, st.sampled_from(["timeout", "poll_timeout", "duration", "rotate_seconds"]), st.booleans(),
       st.booleans())
def test_check_seconds(value: Any, name: str, allow_zero: bool, optional: bool) -> None:
    try:
        f = _check.seconds("f()", name, value, allow_zero=allow_zero, optional=optional)
    except (ArgumentError, TypeError) as e:
        _message_names(e, "f()", name)
        return
    if f is None:
        assert value is None and optional
        return
    limit = _check.MAX_WAIT if name in ("timeout", "poll_timeout") else _check.MAX_SECONDS
    assert type(f) is float and math.isfinite(f) and 0 <= f <= limit and f == float(value)
    assert f > 0 or allow_zero


@settings(FUZZ, max_examples=400)
@given(NUMBERS, st.booleans(), st.booleans(), st.sampled_from([_check.MAX_COUNT, 0xFFFFFFFF, 0xFFFF]))
def test_check_count(value: Any, allow_zero: bool, optional: bool, maximum: int) -> None:
    try:
        n = _check.count("f()", "n", value, allow_zero=allow_zero, optional=optional, maximum=maximum)
    except (ArgumentError, TypeError) as e:
        _message_names(e, "f()", "n")
        return
    if n is None:
        assert value is None and optional
        return
    assert type(n) is int and n == operator.index(value) and 0 <= n <= maximum
    assert n > 0 or allow_zero


# --- API: Capture, packets(), Transmitter ------------------------------------------------------------------
def _event(text: str) -> None:
    """hypothesis.event() inside a @given test; outside one (the plain repro tests) nothing to record."""
    try:
        event(text)
    except Exception:
        pass


def assert_refused_or_accepted(call: Callable[[], object], name: str) -> object | None:
    """``call()``'s result, or None when it raised what the API promises for a bad argument (the
    afpacket.errors family, or TypeError) with a message naming ``name``. Anything else fails the test."""
    try:
        return call()
    except AfPacketError as e:
        _event(f"{type(e).__name__}")
        assert str(e) and "\n" not in str(e), e
        return None
    except TypeError as e:
        _event("TypeError")
        _message_names(e, name)
        return None


CAPTURE_DEFAULTS: dict[str, Any] = {"snaplen": 262144, "buffer_size": 1 << 20, "block_timeout_ms": 8,
                                    "block_size": None, "version": 3}


#: Capture() keywords whose numbers are checked up front (fuzzed below).
CHECKED_CAPTURE_KEYWORDS = ["version", "poll_timeout", "snaplen", "buffer_size", "block_timeout_ms", "block_size",
                            "protocol"]


@pytest.mark.parametrize("name", CHECKED_CAPTURE_KEYWORDS)
@settings(FUZZ, max_examples=80)
@given(value=NUMBERS)
def test_capture_numeric_keywords(net: VethPair, name: str, value: Any) -> None:
    kwargs = {**CAPTURE_DEFAULTS, name: value}
    geometry_args = {k: kwargs[k] for k in ("buffer_size", "snaplen", "block_timeout_ms", "block_size")}
    # The geometry is pure arithmetic: computed first, so a fuzzed size is never allocated for real.
    geom = assert_refused_or_accepted(lambda: RingGeometry.for_capture(kwargs["version"], **geometry_args), name)
    if isinstance(geom, RingGeometry) and geom.size > RING_BUDGET:
        event("accepted, too large to open here")
        return
    cap = assert_refused_or_accepted(lambda: afpacket.Capture(net.outer, **kwargs), name)
    if isinstance(cap, afpacket.Capture):
        cap.close()


def _known(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"known defect, not in this module's files: {reason}")


@pytest.mark.parametrize(("name", "value"), [
    ("snaplen", None), ("snaplen", 1.5), ("buffer_size", math.nan), ("buffer_size", 1e300),
    ("block_timeout_ms", 1.5), ("block_size", 0), ("block_size", 2**32), ("protocol", math.nan),
])
def test_capture_keywords_found_by_fuzzing(net: VethPair, name: str, value: Any) -> None:
    """The values that once failed deep in the geometry arithmetic or struct packing: refused at the call,
    naming the keyword."""
    kwargs = {**CAPTURE_DEFAULTS, name: value}
    with pytest.raises((TypeError, AfPacketError), match=name):
        afpacket.Capture(net.outer, **kwargs)


@pytest.fixture(scope="module")
def idle_capture(net: VethPair) -> Iterator[afpacket.Capture]:
    """A capture on the test's own veth, where nothing is sent: every fuzzed loop ends on its bounds."""
    with afpacket.Capture(net.outer, buffer_size=1 << 20) as cap:
        yield cap


@settings(FUZZ, max_examples=150)
@given(st.sampled_from(["count", "duration", "timeout"]), NUMBERS,
       st.sampled_from(["packets", "frames", "columns", "batches", "next_packet"]))
def test_capture_loop_bounds(idle_capture: afpacket.Capture, name: str, value: Any, method: str) -> None:
    """packets(count=, duration=, timeout=) and its siblings: refused, or ended within the other bounds."""
    if method == "next_packet":
        if name != "timeout":
            return
        bounded = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 0.05
        if not bounded:
            # a long wait, or None (no limit), is valid: check the argument without waiting for it
            try:
                _check.seconds("next_packet()", "timeout", value)
            except (ArgumentError, TypeError):
                pass
            else:
                return
        assert_refused_or_accepted(lambda: idle_capture.next_packet(timeout=value), name)
        return
    if method in ("columns", "batches") and name == "count":
        return  # they take no count
    bounds: dict[str, Any] = {"count": 5, "duration": 0.05, "timeout": 0.02}
    bounds[name] = value
    if name != "duration":
        bounds["duration"] = 0.05  # whatever the fuzzed value allows, the loop ends
    if method in ("columns", "batches"):
        del bounds["count"]
    assert_refused_or_accepted(lambda: list(getattr(idle_capture, method)(**bounds)), name)


@settings(FUZZ, max_examples=120)
@given(st.sampled_from(["frame_size", "frame_count", "version", "batch", "timeout"]), NUMBERS)
def test_transmitter_numeric_keywords(net: VethPair, name: str, value: Any) -> None:
    kwargs: dict[str, Any] = {"frame_size": 2048, "frame_count": 64, "version": 2, name: value}
    try:
        geom = RingGeometry.for_transmit(kwargs["version"], kwargs["frame_size"], kwargs["frame_count"])
    except Exception:  # a value the arithmetic refuses: the constructor must refuse it too, as checked below
        geom = None
    if geom is not None and geom.size > RING_BUDGET:
        event("accepted, too large to open here")
        return
    tx = assert_refused_or_accepted(lambda: afpacket.Transmitter(net.outer, **kwargs), name)
    if isinstance(tx, afpacket.Transmitter):
        tx.close()


# --- API: files --------------------------------------------------------------------------------------------
@settings(FUZZ, max_examples=100)
@given(NUMBERS)
def test_open_reader_arguments(value: Any) -> None:
    reader = assert_refused_or_accepted(lambda: open_reader(value), "savefile source")
    assert reader is None  # no number, bool, bytes or None is a readable source


def test_open_reader_path_with_nul_byte() -> None:
    """open() says ValueError for a name with a NUL byte; the reader says what it says for any name it
    cannot open, on one line (the NUL escaped)."""
    with pytest.raises(AfPacketError, match="cannot open") as info:
        open_reader("bad\0name.pcap")
    assert str(info.value) == "cannot open 'bad\\x00name.pcap': a file name cannot contain a NUL byte"


WRITER_CALLS: dict[str, Callable[[Any], None]] = {
    "PcapWriter linktype": lambda v: PcapWriter(io.BytesIO(), linktype=v).close(),
    "PcapWriter snaplen": lambda v: PcapWriter(io.BytesIO(), snaplen=v).close(),
    "PcapWriter.write ts_ns": lambda v: _pcap_write(ts=v),
    "PcapWriter.write wire_len": lambda v: _pcap_write(wire=v),
    "PcapngWriter.add_interface linktype": lambda v: _pcapng(linktype=v),
    "PcapngWriter.add_interface snaplen": lambda v: _pcapng(snaplen=v),
    "PcapngWriter.add_interface tsresol": lambda v: _pcapng(tsresol=v),
    "PcapngWriter.write ts_ns": lambda v: _pcapng(ts=v),
    "PcapngWriter.write wire_len": lambda v: _pcapng(wire=v),
    "PcapngWriter.write interface_id": lambda v: _pcapng(iface=v),
    "PcapngWriter.set_interface_stats received": lambda v: _pcapng(received=v),
    "PcapngWriter.set_interface_stats dropped": lambda v: _pcapng(dropped=v),
}


def _pcap_write(ts: Any = 0, wire: Any = None) -> None:
    with PcapWriter(io.BytesIO()) as w:
        w.write(ts, b"x" * 20, wire)


def _pcapng(linktype: Any = 1, snaplen: Any = 100, tsresol: Any = 9, ts: Any = 0, wire: Any = None, iface: Any = 0,
            received: Any = 1, dropped: Any = 0) -> None:
    with PcapngWriter(io.BytesIO()) as w:
        w.add_interface("a", linktype, snaplen, tsresol)
        w.write(ts, b"x" * 20, wire, iface)
        w.set_interface_stats(0, received, dropped)


#: Writer arguments whose numbers are checked (fuzzed below): all of them.
CHECKED_WRITER_CALLS = ["PcapWriter linktype", "PcapWriter snaplen", "PcapWriter.write ts_ns",
                        "PcapWriter.write wire_len", "PcapngWriter.add_interface linktype",
                        "PcapngWriter.add_interface snaplen", "PcapngWriter.add_interface tsresol",
                        "PcapngWriter.write ts_ns", "PcapngWriter.write wire_len", "PcapngWriter.write interface_id",
                        "PcapngWriter.set_interface_stats received", "PcapngWriter.set_interface_stats dropped"]
#: Arguments of a per-record write(): not checked one by one (a check per packet costs; the docs promise a
#: TypeError, or SavefileError for a value a record cannot store), so any TypeError will do there.
PER_RECORD = ("ts_ns", "wire_len", "interface_id")


@pytest.mark.parametrize("call", CHECKED_WRITER_CALLS)
@settings(FUZZ, max_examples=100)
@given(value=NUMBERS)
def test_writer_numeric_arguments(call: str, value: Any) -> None:
    check_writer_call(call, value)


def check_writer_call(call: str, value: Any) -> None:
    name = call.split()[-1]
    try:
        WRITER_CALLS[call](value)
    except AfPacketError as e:
        assert str(e) and "\n" not in str(e)
    except TypeError as e:
        if name not in PER_RECORD:
            _message_names(e, name)


#: The issue 9 report's exact repros (each once failed as a struct.error, a plain ValueError, a TypeError
#: without the parameter's name, or only at close()): refused at the call, naming the function and parameter.
WRITER_REPROS = [
    ("PcapWriter linktype", 2**32, ArgumentError, "PcapWriter(): linktype must be at most 4294967295"),
    ("PcapWriter snaplen", 2**32, ArgumentError, "PcapWriter(): snaplen must be at most 4294967295"),
    ("PcapngWriter.add_interface linktype", 2**16, ArgumentError,
     "PcapngWriter.add_interface(): linktype must be at most 65535"),
    ("PcapngWriter.add_interface snaplen", 2**32, ArgumentError,
     "PcapngWriter.add_interface(): snaplen must be at most 4294967295"),
    ("PcapngWriter.add_interface tsresol", -1, ArgumentError, "PcapngWriter.add_interface(): tsresol must be >= 0"),
    ("PcapngWriter.add_interface tsresol", 10, ArgumentError,
     "PcapngWriter.add_interface(): tsresol must be at most 9"),
    ("PcapngWriter.add_interface tsresol", None, TypeError,
     "PcapngWriter.add_interface(): tsresol must be an integer, not None"),
    ("PcapngWriter.set_interface_stats received", -1, ArgumentError,
     "PcapngWriter.set_interface_stats(): received must be >= 0"),
    ("PcapngWriter.set_interface_stats received", 2**64, ArgumentError,
     "PcapngWriter.set_interface_stats(): received must be at most 18446744073709551615"),
    ("PcapngWriter.set_interface_stats dropped", 1.5, TypeError,
     "PcapngWriter.set_interface_stats(): dropped must be an integer, not float"),
]


@pytest.mark.parametrize(("call", "value", "error", "message"), WRITER_REPROS)
def test_writer_argument_repros(call: str, value: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        WRITER_CALLS[call](value)
    assert str(info.value).startswith(message), info.value


def test_check_quotes_huge_numbers_short() -> None:
    """A refused number is quoted short, whatever its size (a 400-digit count is not echoed whole)."""
    with pytest.raises(ArgumentError) as info:
        _check.count("f()", "n", 10**400)
    assert len(str(info.value)) < 200 and "401 characters" in str(info.value)
    assert re.search(r"must be at most 9223372036854775807", str(info.value))

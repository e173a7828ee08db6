"""Every row of docs/bad-input.md: a bad value is refused up front with one line naming it, never a
traceback. The CLI rows run the command as a user would (a subprocess) and assert the message and the
exit status; the API rows assert the exception class and the parameter named.

The refused CLI values never open a socket; the accepted ``-s`` row and the API rows that need a socket
capture on loopback only. The checks do not depend on the ring core, so every test runs once.
"""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import afpacket
from afpacket.savefile import PcapWriter, open_reader

AFPACKET = [sys.executable, "-m", "afpacket"]


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: argument checks run before any ring code."""
    return "any"


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AFPACKET, *args], capture_output=True, text=True, timeout=timeout)


def assert_refused(r: subprocess.CompletedProcess[str], message: str, status: int = 2) -> None:
    """One clean refusal: the status, the message on stderr, no traceback, nothing on stdout."""
    assert r.returncode == status, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    assert message in r.stderr, r.stderr
    assert r.stdout == ""


# --- command line: capture -------------------------------------------------------------------------
CAPTURE_ROWS = [
    (["--duration", "nan"], "Invalid value for '--duration': 'nan' must be a finite number > 0"),
    (["--duration", "inf"], "Invalid value for '--duration': 'inf' must be a finite number > 0"),
    (["--duration", "-1"], "Invalid value for '--duration': '-1' must be a finite number > 0"),
    (["--duration", "0"], "Invalid value for '--duration': '0' must be a finite number > 0"),
    (["--duration", "1e308"], "Invalid value for '--duration': '1e308' is above the maximum 1e+09"),
    (["-w", "{out}", "-C", "nan"], "Invalid value for '-C': 'nan' must be a finite number > 0"),
    (["-w", "{out}", "-C", "inf"], "Invalid value for '-C': 'inf' must be a finite number > 0"),
    (["-w", "{out}", "-C", "abc"], "Invalid value for '-C': 'abc' is not a number"),
    (["-w", "{out}", "-C", "0.000001"],
     "Invalid value for '-C': '0.000001' is below the minimum 0.004096 (4096 bytes; -C counts millions of bytes"),
    (["-w", "{out}", "-C", "1e308"], "Invalid value for '-C': '1e308' is above the maximum 1e+12"),
    (["-w", "{out}", "-G", "nan"], "Invalid value for '-G': 'nan' must be a finite number > 0"),
    (["-w", "{out}", "-G", "inf"], "Invalid value for '-G': 'inf' must be a finite number > 0"),
    (["-w", "{out}", "-G", "0"], "Invalid value for '-G': '0' must be a finite number > 0"),
    (["-w", "{out}", "-W", "3"], "-W needs -C or -G (it sets how many files they rotate through)"),
    (["-W", "3"], "-W needs -C or -G"),
]


@pytest.mark.parametrize(("args", "message"), CAPTURE_ROWS, ids=[" ".join(a) for a, _ in CAPTURE_ROWS])
def test_capture_refuses(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.pcap"
    r = run("capture", "-i", "lo", *[a.format(out=out) for a in args])
    assert_refused(r, message)
    assert list(tmp_path.iterdir()) == []  # refused before any file was made


def test_capture_rotation_needs_a_file() -> None:
    assert_refused(run("capture", "-i", "lo", "-C", "1"), "-C, -G and -W apply to a capture file: add -w FILE", 1)


def test_capture_huge_snaplen_means_the_maximum() -> None:
    """``-s 4294967296``: as in tcpdump, a snaplen above the maximum means the maximum."""
    r = run("capture", "-i", "lo", "-s", "4294967296", "--duration", "0.3", "-c", "1")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "snapshot length 262144 bytes" in r.stderr


# --- command line: send and gen ----------------------------------------------------------------------
SEND_ROWS = [
    (["-p", "nan"], "Invalid value for '-p' / '--pps': 'nan' must be a finite number > 0"),
    (["-p", "inf"], "Invalid value for '-p' / '--pps': 'inf' must be a finite number > 0"),
    (["-M", "inf"], "Invalid value for '-M' / '--mbps': 'inf' must be a finite number > 0"),
    (["-M", "0"], "Invalid value for '-M' / '--mbps': '0' must be a finite number > 0"),
    (["-x", "nan"], "Invalid value for '-x' / '--multiplier': 'nan' must be a finite number > 0"),
    (["-x", "-2"], "Invalid value for '-x' / '--multiplier': '-2' must be a finite number > 0"),
    (["--duration", "inf"], "Invalid value for '--duration': 'inf' must be a finite number > 0"),
    (["--stats", "nan"], "Invalid value for '--stats': 'nan' must be a finite number >= 0"),
    (["--dst-mac", "zz"], "Invalid value for '--dst-mac': 'zz' is not a MAC address (expected aa:bb:cc:dd:ee:ff)"),
    (["--src-mac", "1:2"], "Invalid value for '--src-mac': '1:2' is not a MAC address"),
]


@pytest.mark.parametrize(("args", "message"), SEND_ROWS, ids=[" ".join(a) for a, _ in SEND_ROWS])
def test_send_refuses(tmp_path: Path, args: list[str], message: str) -> None:
    pcap = tmp_path / "one.pcap"
    with PcapWriter(str(pcap)) as w:
        w.write(1_000_000_000, bytes(60))
    assert_refused(run("send", "-i", "lo", "-q", *args, str(pcap)), message)


GEN_ROWS = [
    (["--pps", "inf"], "Invalid value for '-p' / '--pps': 'inf' must be a finite number > 0"),
    (["--pps", "nan"], "Invalid value for '-p' / '--pps': 'nan' must be a finite number > 0"),
    (["--src-ip", "1.2.3"], "Invalid value for '--src-ip': '1.2.3' is not an IPv4 address"),
    (["--dst-ip", "999.1.1.1"], "Invalid value for '--dst-ip': '999.1.1.1' is not an IPv4 address"),
    (["--src-ip", "::1"], "Invalid value for '--src-ip': '::1' is not an IPv4 address"),
    (["--src-mac", "zz"], "Invalid value for '--src-mac': 'zz' is not a MAC address (expected aa:bb:cc:dd:ee:ff)"),
    (["--dst-mac", "1:2:3"], "Invalid value for '--dst-mac': '1:2:3' is not a MAC address"),
]


@pytest.mark.parametrize(("args", "message"), GEN_ROWS, ids=[" ".join(a) for a, _ in GEN_ROWS])
def test_gen_refuses(args: list[str], message: str) -> None:
    assert_refused(run("gen", "-i", "lo", "-q", "-c", "1", *args), message)


def test_flowspec_refuses_malformed_source() -> None:
    """The API under ``gen``: a malformed source address is an AfPacketError, not ipaddress's own error."""
    with pytest.raises(afpacket.AfPacketError, match=r"'1\.2\.3' is not an IPv4 address"):
        afpacket.craft.FlowSpec(src_ip="1.2.3").frames(2)


# --- command line: read of crafted pcapng time stamps ---------------------------------------------------
def _pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    body = _pad(body)
    return struct.pack("<II", block_type, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def _pcapng(ticks: int, tsoffset: int | None = None, tsresol: int | None = None) -> bytes:
    """One Ethernet interface and two records: one at 1 s, one at ``ticks`` with the options given."""
    options = b""
    if tsoffset is not None:
        options += _pad(struct.pack("<HHq", 14, 8, tsoffset))
    if tsresol is not None:
        options += _pad(struct.pack("<HHB", 9, 1, tsresol))
    if options:
        options += struct.pack("<HH", 0, 0)
    frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)  # an (empty) ARP frame
    shb = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535) + options)
    epbs = b"".join(
        _block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xFFFFFFFF, len(frame), len(frame)) + frame)
        for t in (1, ticks)
    )
    return shb + idb + epbs


READ_ROWS = {
    "ts 2^64-1 s": dict(ticks=2**64 - 1, tsresol=0),
    "ts 2^64-1 2^-n s": dict(ticks=2**64 - 1, tsresol=0x80),
    "if_tsoffset 2^63-1": dict(ticks=1, tsoffset=2**63 - 1),
    "if_tsoffset -2^63": dict(ticks=1, tsoffset=-(2**63)),
}


@pytest.mark.parametrize("time_option", ["", "-tttt", "-#", "--time-stamp-precision=nano"])
@pytest.mark.parametrize("kwargs", list(READ_ROWS.values()), ids=list(READ_ROWS))
def test_read_extreme_timestamps(tmp_path: Path, kwargs: dict[str, int], time_option: str) -> None:
    """Every record is printed; a time the C library cannot convert shows as tcpdump shows it."""
    path = tmp_path / "t.pcapng"
    path.write_bytes(_pcapng(**kwargs))
    r = run("read", *([time_option] if time_option else []), str(path))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    assert all("ARP" in line for line in lines)
    assert "[Error converting time]" in r.stdout


def test_read_extreme_timestamp_seconds() -> None:
    """-tt needs no date: the seconds of the record are printed exactly."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pcapng") as f:
        f.write(_pcapng(ticks=2**64 - 1, tsresol=0))
        f.flush()
        r = run("read", "-tt", f.name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith(f"{2**64 - 1}.000000 ")


# --- API ---------------------------------------------------------------------------------------------
NAN = math.nan
API_ROWS: list[tuple[str, Callable[[], object], type[BaseException], str]] = [
    ("Transmitter frame_size=0", lambda: afpacket.Transmitter("lo", frame_size=0),
     afpacket.ArgumentError, r"Transmitter\(\): frame_size must be > 0, got 0"),
    ("Transmitter frame_size=1.5", lambda: afpacket.Transmitter("lo", frame_size=1.5),  # type: ignore[arg-type]
     TypeError, r"Transmitter\(\): frame_size must be an integer, not float"),
    ("Transmitter frame_count=nan", lambda: afpacket.Transmitter("lo", frame_count=NAN),  # type: ignore[arg-type]
     TypeError, r"Transmitter\(\): frame_count must be an integer, not float"),
    ("Transmitter timeout=nan", lambda: afpacket.Transmitter("lo", timeout=NAN),
     afpacket.ArgumentError, r"Transmitter: timeout must be a finite number of seconds > 0, got nan"),
    ("Transmitter timeout=None", lambda: afpacket.Transmitter("lo", timeout=None),  # type: ignore[arg-type]
     TypeError, r"Transmitter: timeout must be a number of seconds, not None"),
    ("Transmitter batch=0", lambda: afpacket.Transmitter("lo", batch=0),
     afpacket.ArgumentError, r"Transmitter: batch must be > 0"),
    ("Transmitter loss='yes'", lambda: afpacket.Transmitter("lo", loss="yes"),  # type: ignore[arg-type]
     TypeError, r"Transmitter\(\): loss must be True or False, not 'yes'"),
    ("open_reader(None)", lambda: open_reader(None),  # type: ignore[arg-type]
     TypeError, r"a savefile source must be a path, '-' or a binary file object, not NoneType"),
    ("PcapWriter(None)", lambda: PcapWriter(None),  # type: ignore[arg-type]
     TypeError, r"a savefile target must be a path, '-' or a binary file object, not NoneType"),
    ("Capture poll_timeout=nan", lambda: afpacket.Capture("lo", poll_timeout=NAN),
     afpacket.ArgumentError, r"Capture\(\): poll_timeout must be a finite number of seconds >= 0"),
    ("Capture poll_timeout=inf", lambda: afpacket.Capture("lo", poll_timeout=math.inf),
     afpacket.ArgumentError, r"Capture\(\): poll_timeout must be a finite number of seconds >= 0"),
    ("Capture poll_timeout=1e7", lambda: afpacket.Capture("lo", poll_timeout=1e7),
     afpacket.ArgumentError, r"Capture\(\): poll_timeout must be at most 2147483 seconds"),
]


@pytest.mark.parametrize(("call", "error", "message"), [r[1:] for r in API_ROWS], ids=[r[0] for r in API_ROWS])
def test_api_refuses(call: Callable[[], object], error: type[BaseException], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        call()
    if error is afpacket.ArgumentError:
        assert isinstance(info.value, afpacket.AfPacketError) and isinstance(info.value, ValueError)


def test_send_none_is_a_type_error() -> None:
    with afpacket.Transmitter("lo") as tx, pytest.raises(TypeError, match=r"a frame must be bytes-like.*not NoneType"):
        tx.send(None)  # type: ignore[arg-type]
    assert tx.stats().sent == 0


CAPTURE_CALLS: list[tuple[str, Callable[[afpacket.Capture], object], type[BaseException], str]] = [
    ("next_packet timeout=1e7", lambda c: c.next_packet(timeout=1e7),
     afpacket.ArgumentError, r"next_packet\(\): timeout must be at most 2147483 seconds"),
    ("next_packet timeout=inf", lambda c: c.next_packet(timeout=math.inf),
     afpacket.ArgumentError, r"next_packet\(\): timeout must be a finite number of seconds"),
    ("packets duration=1e308", lambda c: next(iter(c.packets(duration=1e308))),
     afpacket.ArgumentError, r"packets\(\): duration must be at most 1000000000 seconds"),
    ("packets duration=nan", lambda c: next(iter(c.packets(duration=NAN))),
     afpacket.ArgumentError, r"packets\(\): duration must be a finite number of seconds"),
    ("packets count=1.5", lambda c: next(iter(c.packets(count=1.5))),  # type: ignore[arg-type]
     TypeError, r"packets\(\): count must be an integer or None, not float"),
]


@pytest.mark.parametrize(("call", "error", "message"), [r[1:] for r in CAPTURE_CALLS],
                         ids=[r[0] for r in CAPTURE_CALLS])
def test_capture_api_refuses(call: Callable[[afpacket.Capture], object], error: type[BaseException],
                             message: str) -> None:
    with afpacket.Capture("lo") as cap, pytest.raises(error, match=message):
        call(cap)

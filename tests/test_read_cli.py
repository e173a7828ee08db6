"""`afpacket read` prints what `tcpdump -n -r` prints, for files of real traffic over a private veth pair."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ping

from afpacket.testnet import VethPair


def afpacket(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("afpacket")
    cmd = [exe] if exe else [sys.executable, "-c", "from afpacket.cli import main; main()"]
    return subprocess.run([*cmd, *args], input=stdin.decode("latin-1") if stdin else None, capture_output=True,
                          text=True, timeout=60, encoding="latin-1")


def tcpdump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tcpdump", "-n", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def capture() -> Iterator[Path]:
    """Ten packets of ping traffic over a private veth pair, written by tcpdump with nanosecond stamps."""
    with tempfile.TemporaryDirectory() as d, VethPair("afrd") as net:
        path = Path(d) / "ping.pcap"
        proc = subprocess.Popen(
            ["tcpdump", "-n", "-U", "--time-stamp-precision", "nano", "-i", net.outer, "-w", str(path), "-c", "10"],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )
        try:
            assert proc.stderr is not None
            deadline, seen = time.monotonic() + 20, ""
            while "listening on" not in seen and time.monotonic() < deadline:
                seen += proc.stderr.readline()
            ping(net)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        yield path


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ((), ()),
        (("-e",), ("-e",)),
        (("--time-stamp-precision", "nano"), ("--time-stamp-precision", "nano")),
        (("-c", "3"), ("-c", "3")),
    ],
)
def test_prints_what_tcpdump_prints(capture: Path, ours: tuple[str, ...], theirs: tuple[str, ...]) -> None:
    mine = afpacket("read", str(capture), *ours)
    ref = tcpdump("-r", str(capture), *theirs)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout == ref.stdout
    assert len(mine.stdout.splitlines()) == (3 if "-c" in ours else 10)
    assert "ICMP echo request, id 16962, seq 1, length 64" in mine.stdout
    assert mine.stderr.splitlines() == [line for line in ref.stderr.splitlines() if line.startswith("reading")]


def test_reads_pcapng_and_standard_input(capture: Path, tmp_path: Path) -> None:
    ng = tmp_path / "ping.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(capture), str(ng)], check=True, capture_output=True)
    ref = tcpdump("-r", str(capture)).stdout
    assert afpacket("read", str(ng)).stdout == ref
    piped = afpacket("read", "-", stdin=ng.read_bytes())
    assert piped.returncode == 0
    assert piped.stdout == ref
    assert piped.stderr.startswith("reading from file -, link-type EN10MB (Ethernet), snapshot length 262144")


def test_cut_off_file_prints_the_whole_packets_then_one_error_line(capture: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(capture.read_bytes()[:-30])
    mine = afpacket("read", str(cut))
    assert mine.returncode == 1
    assert mine.stdout.splitlines() == tcpdump("-r", str(capture)).stdout.splitlines()[:9]
    errors = mine.stderr.splitlines()
    assert errors[0].startswith("reading from file")
    assert len(errors) == 2 and "Traceback" not in mine.stderr
    assert errors[1].startswith(f"afpacket: {cut}: truncated record: ") and "at byte offset" in errors[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot open"), (b"", "empty file"), (b"not a capture file", "not a pcap or pcapng file")],
)
def test_unreadable_files_fail_with_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.pcap"
    if content is not None:
        path.write_bytes(content)
    mine = afpacket("read", str(path))
    assert mine.returncode == 1
    assert mine.stdout == ""
    assert len(mine.stderr.splitlines()) == 1 and message in mine.stderr

"""A full disk and a closed output: `afpacket capture -w` says what happened and counts exactly.

On a 256 KiB tmpfs the capture must end with one line naming the file, ENOSPC and the fix, then a
summary whose "captured" is the number of records in the file(s) (read back by afpacket and tcpdump,
which must not call them truncated), a line for the packets taken but not written, and the kernel's
received/dropped lines; --stats-json carries the same numbers. A reader that closes the pipe of
``-w -`` ends the capture quietly with its summary and exit status 0, as tcpdump's SIGPIPE handler does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import small_tmpfs, streaming, udp_frame

from afpacket import PcapngReader, PcapngWriter, PcapWriter, SavefileError, open_reader
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]

@pytest.fixture
def core() -> Iterator[str]:
    """Once, not once per ring core: these tests run the afpacket command as a user would."""
    yield "default"


@pytest.fixture
def busy_net() -> Iterator[VethPair]:
    if os.geteuid() != 0:
        pytest.fail("this test opens AF_PACKET sockets and makes network namespaces: run it as root")
    with VethPair("afdf", addresses=False) as net, streaming(net, payload=300, burst=50, pause=0.005):
        yield net


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    """A 256 KiB tmpfs, always unmounted again."""
    with small_tmpfs("256k") as d:
        yield d


def records(path: Path) -> int:
    """Records in ``path`` by afpacket's reader and by tcpdump, which must agree and find it whole."""
    with open_reader(str(path)) as reader:
        ours = sum(1 for _ in reader)
    r = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "truncated" not in r.stderr, f"{path}: {r.stderr}"
    assert len(r.stdout.splitlines()) == ours
    return ours


def summary_numbers(err: str) -> dict[str, int]:
    found = {}
    for key, pattern in (("captured", r"^(\d+) packets? captured$"),
                         ("not_written", r"^(\d+) packets? could not be written \(No space left on device\)$"),
                         ("received", r"^(\d+) packets? received by filter$"),
                         ("dropped", r"^(\d+) packets? dropped by kernel$")):
        m = re.search(pattern, err, re.M)
        assert m is not None, f"no {key!r} line in:\n{err}"
        found[key] = int(m.group(1))
    return found


@pytest.mark.parametrize("rotate", [False, True], ids=["one-file", "rotated"])
@pytest.mark.parametrize("version", ["2", "3"])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_full_disk_says_so_and_the_summary_counts_the_file(busy_net: VethPair, tiny_fs: Path, tmp_path: Path,
                                                           fmt: str, version: str, rotate: bool) -> None:
    path = tiny_fs / f"cap.{fmt}"
    stats = tmp_path / "stats.json"
    extra = ["-C", "0.05"] if rotate else []
    r = subprocess.run([*AFPACKET, "capture", "-i", busy_net.outer, "-w", str(path), "--tpacket-version", version,
                        "--stats-json", str(stats), *extra], capture_output=True, text=True, timeout=120)
    err = r.stderr
    assert r.returncode == 1, err
    assert "Traceback" not in err
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if "capturing on" in line)
    error = lines[start + 1]
    # one line: the file, the cause, that the file is whole, the fix; then tcpdump's summary
    assert re.match(rf"afpacket: writing {re.escape(str(tiny_fs))}/cap\.{fmt}\d* failed: No space left on device "
                    r"\(ENOSPC\); .*free space on that file system or write the capture elsewhere$", error), error
    assert lines[start + 2].endswith("packets captured")
    numbers = summary_numbers(err)
    files = sorted(tiny_fs.iterdir())
    assert (len(files) > 1) == rotate
    assert sum(records(f) for f in files) == numbers["captured"] > 0
    assert numbers["not_written"] > 0
    assert numbers["received"] >= numbers["captured"] + numbers["not_written"] + numbers["dropped"]
    summary = json.loads(stats.read_text())
    assert summary["captured"] == summary["written"] == numbers["captured"]
    assert summary["not_written"] == numbers["not_written"]
    assert summary["not_written_reason"] == "No space left on device"
    assert summary["received_by_filter"] == numbers["received"]
    assert summary["dropped_by_kernel"] == numbers["dropped"]
    assert summary["files"] == [str(f) for f in sorted(files, key=lambda f: (len(f.name), f.name))]
    assert "ENOSPC" in summary["error"]
    if fmt == "pcapng":
        # the statistics block goes at the end of the last file when the cut-back left room for it
        with PcapngReader(str(files[-1] if not rotate else max(files, key=lambda f: (len(f.name), f.name)))) as rd:
            list(rd)
            got = rd.interface_stats
        assert got in ({}, {0: (numbers["received"], numbers["dropped"])})


def _pipe(net: VethPair, command: str) -> tuple[int, str]:
    """Run ``afpacket <command> | head -c 3000`` while traffic flows: (afpacket's exit status, its stderr)."""
    shell = (f"{sys.executable} -m afpacket {command} | head -c 3000 > /dev/null; "
             "echo \"status ${PIPESTATUS[0]}\" >&2")
    p = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    status = int(re.findall(r"^status (\d+)$", p.stderr, re.M)[-1])
    return status, p.stderr


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_reader_closing_the_pipe_ends_quietly_like_tcpdump(busy_net: VethPair, fmt: str) -> None:
    status, err = _pipe(busy_net, f"capture -i {busy_net.outer} -w - --format {fmt}")
    assert status == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception ignored" not in err, err
    m = re.search(r"^(\d+) packets? captured$", err, re.M)
    assert m is not None and int(m.group(1)) > 0, err
    lost = re.search(r"^(\d+) packets? could not be written \(output closed\)$", err, re.M)
    assert lost is not None and int(lost.group(1)) > 0, err
    assert re.search(r"^\d+ packets? received by filter$", err, re.M)
    assert "afpacket: writing" not in err  # no error line: the reader ending is the end of the output


def test_reader_closing_the_pipe_of_printed_lines_ends_quietly(busy_net: VethPair) -> None:
    status, err = _pipe(busy_net, f"capture -i {busy_net.outer} -l")
    assert status == 0, err
    assert "Traceback" not in err and "Broken pipe" not in err and "Exception ignored" not in err, err
    assert re.search(r"^\d+ packets? captured$", err, re.M), err


def test_tcpdump_itself_ends_like_that(busy_net: VethPair) -> None:
    """The witness: tcpdump 4.99 meets a closed -w - pipe with its summary and exit status 0."""
    shell = (f"tcpdump -i {busy_net.outer} -w - | head -c 3000 > /dev/null; echo \"status ${{PIPESTATUS[0]}}\" >&2")
    p = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60)
    assert re.search(r"^status 0$", p.stderr, re.M), p.stderr
    assert re.search(r"^\d+ packets? captured$", p.stderr, re.M), p.stderr


# --- the writers' own accounting ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_writer_counts_records_in_the_file_and_records_lost(tiny_fs: Path, kind: str) -> None:
    path = tiny_fs / f"w.{kind}"
    w: PcapWriter | PcapngWriter
    if kind == "pcap":
        w = PcapWriter(path)
    else:
        w = PcapngWriter(path)
        w.set_interface_stats(w.add_interface("x"), 1000, 3)
    attempts = 0
    frame = udp_frame("02:00:00:00:00:01", "02:00:00:00:00:02", bytes(300))
    with pytest.raises(SavefileError, match="ENOSPC"):
        for _ in range(100_000):
            attempts += 1
            w.write(time.time_ns(), frame)
    w.close()
    assert w.error is not None and w.error.disk_full
    assert w.records + w.lost == attempts and w.lost > 0 and w.buffered == 0
    assert records(path) == w.records


def test_no_room_for_a_header_leaves_no_file(tiny_fs: Path) -> None:
    filler = tiny_fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    with pytest.raises(SavefileError, match=r"ENOSPC.*not even its file header fit, so the file is removed"):
        PcapWriter(tiny_fs / "new.pcap")
    assert not (tiny_fs / "new.pcap").exists()


def test_ring_of_files_says_how_many_records_it_reused(busy_net: VethPair, tmp_path: Path) -> None:
    """-C with -W starts over at the first file: the summary says how many of the packets captured were
    in files since reused, so captured - reused is what the files hold."""
    path = tmp_path / "ring.pcap"
    p = subprocess.Popen([*AFPACKET, "capture", "-i", busy_net.outer, "-w", str(path), "-C", "0.02", "-W", "3",
                          "--stats-json", str(tmp_path / "s.json")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    while "capturing on" not in p.stderr.readline():
        pass
    time.sleep(1.0)  # a few MB/s: the three 20 kB files go round many times
    p.send_signal(2)
    err = p.stderr.read()
    p.wait(timeout=30)
    assert p.returncode == 0 and "Traceback" not in err, err
    captured = int(re.search(r"^(\d+) packets? captured$", err, re.M).group(1))  # type: ignore[union-attr]
    reused = int(re.search(r"^(\d+) packets? of them in files since reused by -W$", err, re.M).group(1))  # type: ignore[union-attr]
    files = sorted(tmp_path.glob("ring.pcap*"))
    assert [f.name for f in files] == ["ring.pcap0", "ring.pcap1", "ring.pcap2"]
    assert reused > 0 and sum(records(f) for f in files) == captured - reused
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["overwritten"] == reused and summary["captured"] == captured

"""Capture files are created safely (issue 9): never through a symbolic link, mode 0644 as tcpdump's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from afpacket import PcapngWriter, PcapWriter, SavefileError, open_reader


@pytest.fixture
def core() -> str:
    """Overrides conftest's per-core fixture: no ring here."""
    return "none"


def planted_link(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A link owned by nobody in a world-writable sticky directory (as /tmp), pointing at a victim file."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = shared / name
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    return link, victim


@pytest.mark.parametrize("writer", [PcapWriter, PcapngWriter])
def test_a_planted_symlink_is_not_followed(tmp_path: Path, writer: type) -> None:
    link, victim = planted_link(tmp_path, "out.pcap")
    with pytest.raises(SavefileError, match="symbolic link"):
        writer(str(link))
    assert victim.read_bytes() == b"precious"  # neither truncated nor written


def test_our_own_links_and_dev_stdout_are_followed(tmp_path: Path) -> None:
    target = tmp_path / "real.pcap"
    link = tmp_path / "mine.pcap"  # our own link, in a directory only we can write
    link.symlink_to(target)
    with PcapWriter(str(link)) as w:
        w.write(0, b"\0" * 60)
    assert sum(1 for _ in open_reader(str(target))) == 1
    r = subprocess.run([sys.executable, "-c", "from afpacket import PcapWriter\n"
                        "with PcapWriter('/dev/stdout') as w: w.write(0, bytes(60))"], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout[:4] == bytes.fromhex("d4c3b2a1")


def test_capture_w_refuses_a_symlink_with_one_line(tmp_path: Path) -> None:
    link, victim = planted_link(tmp_path, "cap.pcap")
    r = subprocess.run([sys.executable, "-m", "afpacket", "capture", "-i", "lo", "-c", "1", "-w", str(link)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "symbolic link" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_bytes() == b"precious"


def test_files_are_created_0644_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "m.pcap"
        with PcapWriter(str(path)) as w:
            w.write(0, b"\0" * 60)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
    assert sum(1 for _ in open_reader(str(path))) == 1


def test_an_existing_regular_file_is_truncated_as_before(tmp_path: Path) -> None:
    path = tmp_path / "old.pcap"
    path.write_bytes(b"x" * 1000)
    with PcapWriter(str(path)) as w:
        w.write(0, b"\0" * 60)
    assert sum(1 for _ in open_reader(str(path))) == 1

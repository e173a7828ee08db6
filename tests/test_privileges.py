"""Privileges: `capture -Z USER` gives up root before the first packet, a capture with CAP_NET_RAW alone
works, and the test network never hands a name to a shell. Traffic only crosses veth pairs made here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AS_NOBODY, NOBODY, SRC, udp_frame

from afpacket import open_reader
from afpacket.errors import ArgumentError
from afpacket.privileges import process_status
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
CAP_NET_RAW_BIT = 1 << 13


@pytest.fixture
def env() -> dict[str, str]:
    """The environment for `-Z` captures, which start as root: the source tree on the path, and
    conftest's core choice (AFPACKET_NO_EXTENSIONS) kept."""
    return {**os.environ, "PYTHONPATH": SRC}


def _wait_for(p: subprocess.Popen[str], words: str) -> None:
    assert p.stderr is not None
    while True:
        line = p.stderr.readline()
        assert line, f"the capture ended before printing {words!r}"
        if words in line:
            return


def test_dash_z_nobody_captures_to_a_file_owned_by_nobody_with_no_privilege(
    tmp_path: Path, env: dict[str, str]
) -> None:
    out = tmp_path / "z.pcap"
    with VethPair("afz", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, bytes([n]) * (20 + n), sport=6000 + n) for n in range(7)]
        p = subprocess.Popen([*AFPACKET, "capture", "-i", net.outer, "-Z", "nobody", "-w", str(out), "-c", "7",
                              "-q"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            _wait_for(p, "capturing on")  # printed after the switch, before the first packet is read
            seen = []
            for _ in range(5):  # while it waits for packets, as the kernel reports it
                st = process_status(p.pid)
                seen.append((st["Uid"].split(), st["Gid"].split(), st["Groups"], int(st["CapEff"], 16),
                             int(st["CapPrm"], 16), int(st["CapAmb"], 16), st["NoNewPrivs"]))
                time.sleep(0.05)
            assert p.poll() is None
            net.send(frames)
            _, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, err
    for uids, gids, groups, eff, prm, amb, nnp in seen:
        assert uids == [str(NOBODY)] * 4 and gids == [str(NOBODY)] * 4
        assert groups == "" and eff == 0 and prm == 0 and amb == 0 and nnp == "1"
    assert out.stat().st_uid == NOBODY and out.stat().st_gid == NOBODY
    assert [bytes(r.data) for r in open_reader(str(out))] == frames
    assert "7 packets captured" in err


def test_dash_z_unknown_user_is_refused_before_anything_opens(tmp_path: Path) -> None:
    out = tmp_path / "never.pcap"
    with VethPair("afzu", addresses=False) as net:
        r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "-Z", "nosuchuser", "-w", str(out), "-c", "1"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "-Z nosuchuser: no such user" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_dash_z_root_is_refused() -> None:
    with VethPair("afzr", addresses=False) as net:
        r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "-Z", "root", "-c", "1"],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "that is root" in r.stderr and "Traceback" not in r.stderr


def test_dash_z_with_rotation_into_a_directory_nobody_cannot_write_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with VethPair("afzc", addresses=False) as net:
        r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "-Z", "nobody", "-w", str(private / "r.pcap"),
                            "-C", "1", "-c", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "rotated -C/-G files are created after switching to nobody" in r.stderr
    assert str(private) in r.stderr and "Traceback" not in r.stderr
    assert list(private.iterdir()) == []


def test_dash_z_with_a_stats_json_file_nobody_cannot_write_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    with VethPair("afzj", addresses=False) as net:
        r = subprocess.run([*AFPACKET, "capture", "-i", net.outer, "-Z", "nobody", "--stats-json",
                            str(private / "s.json"), "-c", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "the --stats-json file is written after switching to nobody" in r.stderr and "Traceback" not in r.stderr


def test_dash_z_with_rotation_creates_every_file_as_nobody(nobody_dir: Path, env: dict[str, str]) -> None:
    out = nobody_dir / "r.pcap"
    with VethPair("afzg", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, b"r" * 1000, sport=7000 + n) for n in range(12)]
        p = subprocess.Popen([*AFPACKET, "capture", "-i", net.outer, "-Z", "nobody", "-w", str(out), "-C", "0.005",
                              "-c", "12", "-q"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            _wait_for(p, "capturing on")
            net.send(frames)
            _, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, err
    files = sorted(nobody_dir.iterdir())
    assert len(files) >= 2  # 5,000-byte files: the later ones were created after the switch
    assert all(f.stat().st_uid == NOBODY for f in files)
    later = sorted((f for f in files if f != out), key=lambda f: int(f.name[len(out.name):]))
    got = [bytes(r.data) for f in [out, *later] for r in open_reader(str(f))]
    assert got == frames


def test_capture_with_only_cap_net_raw_as_nobody(nobody_dir: Path, nobody_env: dict[str, str]) -> None:
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed"
    out = nobody_dir / "raw.pcap"
    with VethPair("afzn", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, b"n" * n, sport=8000 + n) for n in (1, 50, 500)]
        p = subprocess.Popen([*AS_NOBODY,
                              "--inh-caps", "-all,+net_raw", "--ambient-caps", "+net_raw",
                              *AFPACKET, "capture", "-i", net.outer, "-w", str(out), "-c", "3", "-q"],
                             stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=nobody_env)
        try:
            _wait_for(p, "capturing on")
            st = process_status(p.pid)
            net.send(frames)
            _, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode == 0, err
    assert st["Uid"].split() == [str(NOBODY)] * 4
    assert int(st["CapEff"], 16) == CAP_NET_RAW_BIT  # CAP_NET_RAW and nothing else
    assert out.stat().st_uid == NOBODY
    assert [bytes(r.data) for r in open_reader(str(out))] == frames


def test_without_cap_net_raw_the_message_recommends_it_alone(nobody_env: dict[str, str]) -> None:
    r = subprocess.run([*AS_NOBODY,
                        *AFPACKET, "capture", "-i", "lo", "-c", "1"], capture_output=True, text=True, timeout=30,
                       env=nobody_env)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "CAP_NET_RAW" in r.stderr and "cap_net_raw=eip /path/to/venv/bin/python3.11" in r.stderr
    assert "cap_net_admin" not in r.stderr and "AmbientCapabilities=CAP_NET_RAW" in r.stderr


def test_dash_z_without_root_is_refused(nobody_env: dict[str, str]) -> None:
    r = subprocess.run([*AS_NOBODY,
                        "--inh-caps", "-all,+net_raw", "--ambient-caps", "+net_raw",
                        *AFPACKET, "capture", "-i", "lo", "-Z", "nobody", "-c", "1"],
                       capture_output=True, text=True, timeout=30, env=nobody_env)
    assert r.returncode == 1 and "switching users needs root" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("prefix", [";id>P;", "a b", "x$(id)", "", "toolong7", "a/b", "é"])
def test_veth_pair_refuses_a_prefix_that_is_not_a_plain_name(prefix: str, tmp_path: Path) -> None:
    before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    cwd = os.getcwd()
    os.chdir(tmp_path)  # ";id>P;" would have written the file P here
    try:
        with pytest.raises(ArgumentError, match="letters or digits"):
            VethPair(prefix)
    finally:
        os.chdir(cwd)
    assert list(tmp_path.iterdir()) == []
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout == before


def test_veth_pair_names_reach_ip_as_arguments() -> None:
    with VethPair("afzq9", addresses=False) as net:
        # the ends exist with the names asked for, and IPv6 was turned off without a shell
        assert Path(f"/sys/class/net/{net.outer}").exists()
        assert Path(f"/proc/sys/net/ipv6/conf/{net.outer}/disable_ipv6").read_text().strip() == "1"
        inner = net.exec("cat", f"/proc/sys/net/ipv6/conf/{net.inner}/disable_ipv6").stdout.strip()
        assert inner == "1"

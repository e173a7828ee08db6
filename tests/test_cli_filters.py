"""The capture command's filters as tcpdump has them: compiled for the live interface (``vlan 100`` on a veth
that strips tags captures what tcpdump captures) and printed by ``-d``/``-dd``/``-ddd`` as tcpdump prints them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_filter_live import interleave, mixed

from afpacket import open_reader
from afpacket.testnet import VethPair


def _start(cmd: list[str], ready: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 20
    while ready not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert ready in seen, seen
    return proc


def test_capture_vlan_100_catches_what_tcpdump_catches(net: VethPair, tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "tcpdump.pcap"
    a = _start([sys.executable, "-m", "afpacket", "capture", "-i", net.outer, "-w", str(ours), "vlan", "100"],
               "capturing on")
    b = _start(["tcpdump", "-i", net.outer, "-c", "30", "-w", str(theirs), "vlan", "100"], "listening on")
    try:
        kinds = mixed(net, 15)
        net.send(interleave(kinds))
        b.communicate(timeout=20)  # tcpdump ends at its 30th packet
    finally:
        a.send_signal(2)
        out_a = a.communicate(timeout=20)[1]
        if b.poll() is None:
            b.kill()
    assert a.returncode == 0, out_a
    want = [f for pair in zip(kinds["v100_53"], kinds["v100_54"], strict=True) for f in pair]
    assert [r.data for r in open_reader(ours)] == want  # 30 of 30, the tags put back into the frames
    assert [r.data for r in open_reader(theirs)] == want
    assert "30 packets captured" in out_a and "30 packets received by filter" in out_a


@pytest.mark.parametrize("flag", ["-d", "-dd", "-ddd"])
def test_capture_d_prints_the_program_as_tcpdump(net: VethPair, flag: str) -> None:
    for expr in (["vlan", "100"], ["udp", "port", "53"], ["tcp[tcpflags]", "&", "tcp-syn", "!=", "0"], []):
        ours = subprocess.run([sys.executable, "-m", "afpacket", "capture", "-i", net.outer, flag, *expr],
                              capture_output=True, text=True, timeout=30)
        theirs = subprocess.run(["tcpdump", "-i", net.outer, flag, *expr], capture_output=True, text=True,
                                timeout=30)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == theirs.stdout, expr

"""Direction (-Q in|out|inout, PACKET_IGNORE_OUTGOING, Packet.outgoing) against tcpdump on the same traffic.

ICMP echo: on the outer end of a veth pair the requests come in and the kernel's replies go out; on a
namespace's loopback every packet is both sent and received; on 'any' inside the namespace the
requests go out of the inner end and the replies come in. tcpdump and afpacket capture side by side
and must print, and write, the same packets.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from conftest import PINGER, private_pair

from afpacket import Capture, compile_filter
from afpacket.filter import with_direction
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
DIRECTIONS = ("in", "out", "inout")
PINGS = 3
ONCE = pytest.mark.parametrize("core", ["python"], indirect=True)  # option parsing only: one core is enough


@pytest.fixture(scope="module")
def pair() -> Iterator[VethPair]:
    with private_pair("afdir") as p:
        yield p


def _ping(pair: VethPair, dst: str) -> None:
    pair.exec(sys.executable, "-c", PINGER, dst, str(PINGS))


def _records(path: Path) -> tuple[int, list[bytes]]:
    with path.open("rb") as f:
        r = dpkt.pcap.Reader(f)
        return r.datalink(), [bytes(buf) for _ts, buf in r]


# Where each capture runs, what to ping from the namespace, and how many packets each direction sees.
CASES = {
    # outer end, this namespace: requests in, replies out
    "veth": ("outer", "outer_ip", {"in": PINGS, "out": PINGS, "inout": 2 * PINGS}),
    # the namespace's lo: each packet's outgoing copy is dropped (it comes in again), as libpcap does
    "lo": ("lo", "127.0.0.1", {"in": 2 * PINGS, "out": 0, "inout": 2 * PINGS}),
    # every interface of the namespace: requests out of the inner end, replies in
    "any": ("any", "outer_ip", {"in": PINGS, "out": PINGS, "inout": 2 * PINGS}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_direction_equals_tcpdump(pair: VethPair, tmp_path: Path, case: str) -> None:
    where, target, expected = CASES[case]
    iface = getattr(pair, where, where)
    dst = getattr(pair, target, target)
    inside = case != "veth"  # lo and any: those of the namespace, where no other test sends anything
    procs: dict[tuple[str, str], subprocess.Popen[str]] = {}
    for d in DIRECTIONS:
        for tool, cmd in (("tcpdump", ["tcpdump", "--immediate-mode"]), ("afpacket", [*AFPACKET, "capture"])):
            args = [*cmd, "-Q", d, "-i", iface, "-n", "-t", "-e", "-l", "--print", "-w", str(tmp_path / f"{d}.{tool}")]
            kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
            procs[(tool, d)] = pair.popen(*args, **kw) if inside else subprocess.Popen(args, **kw)  # type: ignore
    for key, p in procs.items():  # all started at once; traffic only once every one is listening
        assert p.stderr is not None
        head = ""
        while "listening on" not in head and "capturing on" not in head:
            line = p.stderr.readline()
            assert line, f"{key} ended before it was listening: {head}"
            head += line
    try:
        _ping(pair, dst)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGINT)
        done = {key: p.communicate(timeout=20) for key, p in procs.items()}
    for d in DIRECTIONS:
        (td_out, td_err), (out, err) = done[("tcpdump", d)], done[("afpacket", d)]
        assert procs[("afpacket", d)].returncode == 0, err
        theirs = [line for line in td_out.splitlines() if line]
        ours = [line for line in out.splitlines() if line]
        assert ours == theirs, (case, d)
        assert len(ours) == expected[d], (case, d, ours)
        captured = f"{expected[d]} packet{'s' if expected[d] != 1 else ''} captured"
        assert captured in err and captured in td_err
        td_file, our_file = _records(tmp_path / f"{d}.tcpdump"), _records(tmp_path / f"{d}.afpacket")
        assert our_file == td_file and len(our_file[1]) == expected[d]
    if case == "veth":  # requests in, replies out
        assert all("echo request" in line for line in done[("afpacket", "in")][0].splitlines() if line)
        assert all("echo reply" in line for line in done[("afpacket", "out")][0].splitlines() if line)
    if case == "any":  # the cooked header says which way each packet went
        assert all(" Out " in line for line in done[("afpacket", "out")][0].splitlines() if line)
        assert all(" In " in line for line in done[("afpacket", "in")][0].splitlines() if line)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_api_ignore_outgoing_and_packet_outgoing(pair: VethPair, version: int) -> None:
    icmp = compile_filter("icmp")
    with Capture(pair.outer, version=version, filter=icmp) as both, \
            Capture(pair.outer, version=version, filter=icmp, ignore_outgoing=True) as inbound, \
            Capture(pair.outer, version=version, filter=with_direction(icmp, direction="out")) as outbound:
        _ping(pair, pair.outer_ip)
        every = [(bytes(p), p.outgoing, p.pkttype_name, p.copy().outgoing) for p in both.packets(count=6, duration=3)]
        ins = [(bytes(p), p.outgoing) for p in inbound.packets(count=3, duration=3)]
        outs = [(bytes(p), p.outgoing, p.pkttype_name) for p in outbound.packets(count=3, duration=3)]
        # what the kernel delivered to each socket: PACKET_IGNORE_OUTGOING keeps the replies off it entirely
        received = [c.stats().received for c in (both, inbound, outbound)]
    assert [o for _b, o, _n, _c in every] == [False, True] * PINGS
    assert all(o == c for _b, o, _n, c in every)
    assert {n for _b, o, n, _c in every if o} == {"outgoing"} and {n for _b, o, n, _c in every if not o} == {"host"}
    assert [b for b, _o in ins] == [b for b, o, _n, _c in every if not o]
    assert not any(o for _b, o in ins)
    assert [b for b, _o, _n in outs] == [b for b, o, _n, _c in every if o]
    assert all(o and n == "outgoing" for _b, o, n in outs)
    assert all(b[34] == 8 for b, _o in ins) and all(b[34] == 0 for b, _o, _n in outs)  # ICMP type: request, reply
    # the kernel counts what passed the filter: the replies never reached the ignore_outgoing socket, and the
    # direction check in the other's filter dropped the requests before they were counted
    assert received == [2 * PINGS, PINGS, PINGS]


@ONCE
def test_direction_names_any_case_like_tcpdump(pair: VethPair) -> None:
    for d in ("IN", "Out", "INOUT", "sideways"):
        theirs = subprocess.run(["tcpdump", "-Q", d, "-i", pair.outer, "-d"], capture_output=True, text=True,
                                timeout=20)  # -d: parse the options and compile, capture nothing
        ours = subprocess.run([*AFPACKET, "capture", "-Q", d, "-i", pair.outer, "--duration", "0.1"],
                              capture_output=True, text=True, timeout=20)
        assert "Traceback" not in ours.stderr
        if d == "sideways":  # both refuse it: tcpdump exits 1, a click usage error exits 2
            assert theirs.returncode == 1 and "unknown capture direction" in theirs.stderr
            assert ours.returncode == 2
            assert "Invalid value for '-Q' / '--direction': 'sideways' is not one of" in ours.stderr
        else:
            assert theirs.returncode == ours.returncode == 0, ours.stderr

"""`afpacket top`: the talkers model with synthetic packets (exact averages), the command over a veth with
trafgen sending known flows at known rates (--once --json), and the live view in a real terminal (tmux)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ether, private_pair, udp_frame

from afpacket import ring
from afpacket.talkers import (
    OTHER,
    Aggregator,
    Second,
    TalkerTable,
    flow_key,
    flow_name,
    merge_seconds,
    text_report,
)
from afpacket.testnet import VethPair

SRC = str(Path(__file__).resolve().parent.parent / "src")
ONCE = pytest.mark.parametrize("core", ["python"], indirect=True)  # the model touches no ring
NS = 1_000_000_000
T0 = 1_700_000_000  # a second to start the synthetic clock at


def udp4(src: str, sport: int, dst: str, dport: int, size: int = 100) -> bytes:
    frame = udp_frame("02:00:00:00:00:02", "02:00:00:00:00:01", b"", sport=sport, dport=dport, src=src, dst=dst)
    return frame + b"\0" * max(0, size - len(frame))


def tcp6(src: str, sport: int, dst: str, dport: int) -> bytes:
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, 20, 6, 64, socket.inet_pton(socket.AF_INET6, src),
                      socket.inet_pton(socket.AF_INET6, dst))
    return ether("02:00:00:00:00:02", "02:00:00:00:00:01", 0x86DD, ip6 + struct.pack("!HHIIHHHH", sport, dport,
                                                                                     0, 0, 0x5000, 0, 0, 0))


def feed(agg: Aggregator, packets: list[tuple[int, bytes, int]]) -> None:
    """(timestamp ns, frame, wire length) tuples, in one batch."""
    agg.add([p[1] for p in packets], [p[0] for p in packets], [p[2] for p in packets])


# -- the model -------------------------------------------------------------------------------------------------


@ONCE
def test_flow_key_merges_directions_and_reads_vlan_ipv6_fragments_and_non_ip() -> None:
    ab = flow_key(udp4("10.0.0.1", 40000, "10.0.0.2", 53))
    ba = flow_key(udp4("10.0.0.2", 53, "10.0.0.1", 40000))
    assert ab == ba
    assert flow_name(ab) == "10.0.0.1:40000 <=> 10.0.0.2:53 IPv4/UDP"
    assert flow_key(udp4("10.0.0.1", 40001, "10.0.0.2", 53)) != ab
    v6 = flow_key(tcp6("2001:db8::1", 443, "2001:db8::2", 50000))
    assert v6 == flow_key(tcp6("2001:db8::2", 50000, "2001:db8::1", 443))
    assert flow_name(v6) == "[2001:db8::1]:443 <=> [2001:db8::2]:50000 IPv6/TCP"
    # an 802.1Q tag in the frame, and one the kernel stripped (ring metadata), give the same key
    frame = udp4("10.0.0.1", 1, "10.0.0.2", 2)
    tagged = frame[:12] + b"\x81\x00" + struct.pack("!H", 7) + frame[12:]
    assert flow_key(tagged) == flow_key(frame, 0x2007) == (7, 17, *flow_key(frame)[2:])
    assert flow_name(flow_key(tagged)).startswith("vlan 7 10.0.0.1:1 <=> ")
    # a fragment after the first has no ports: port 0
    frag = bytearray(frame)
    frag[20:22] = struct.pack("!H", 185)
    assert flow_name(flow_key(bytes(frag))) == "10.0.0.1:0 <=> 10.0.0.2:0 IPv4/UDP"
    # IPv6 with a hop-by-hop options header before UDP: the ports are after it
    hbh = tcp6("2001:db8::1", 0, "2001:db8::2", 0)
    hbh = hbh[:20] + b"\x00" + hbh[21:54] + bytes([17, 0]) + b"\0" * 6 + struct.pack("!HHHH", 7, 8, 8, 0)
    assert flow_name(flow_key(hbh)) == "[2001:db8::1]:7 <=> [2001:db8::2]:8 IPv6/UDP"
    arp = ether("ff:ff:ff:ff:ff:ff", "02:00:00:00:00:01", 0x0806, b"\0" * 28)
    assert flow_name(flow_key(arp)) == "02:00:00:00:00:01 <=> ff:ff:ff:ff:ff:ff ARP"
    # any prefix of a frame (a short snapshot, a runt) still gives a key, no exception
    for f in (frame, tagged, bytes(frag), arp, tcp6("2001:db8::1", 1, "2001:db8::2", 2)):
        for n in range(len(f)):
            flow_key(f[:n])


@ONCE
def test_averages_are_exact_for_known_timestamps() -> None:
    a_out, a_back = udp4("10.0.0.1", 1000, "10.0.0.2", 2000), udp4("10.0.0.2", 2000, "10.0.0.1", 1000)
    b = udp4("10.0.0.3", 3000, "10.0.0.4", 4000)
    agg, table = Aggregator(), TalkerTable()
    # flow A: 100 packets of 100 bytes every second for 20 s, half each way; flow B: 10 packets of 500 bytes
    # per second during the first 5 seconds only
    for s in range(20):
        pkts = [((T0 + s) * NS + i * 10_000_000, a_out if i % 2 else a_back, 100) for i in range(100)]
        if s < 5:
            pkts += [((T0 + s) * NS + i * 90_000_000 + 1, b, 500) for i in range(10)]
        pkts.sort()
        feed(agg, pkts)
    agg.close_before((T0 + 20) * NS)
    seconds = agg.take()
    assert [s.second for s in seconds] == list(range(T0, T0 + 20))
    assert seconds[0].packets == 110 and seconds[0].bytes == 100 * 100 + 10 * 500
    for s in seconds:
        table.add(s)
    rep = table.report("2s", 10)
    assert rep.seconds == 20 and rep.second == T0 + 19
    a, bb = rep.flows
    assert a.name == "10.0.0.1:1000 <=> 10.0.0.2:2000 IPv4/UDP"  # both directions in one row
    assert a.packets == 2000 and a.bytes == 200_000
    assert a.rates == {"2s": (100.0, 80_000.0), "10s": (100.0, 80_000.0), "40s": (100.0, 80_000.0)}
    # B: nothing in the last 2 or 10 s; 40 s: 50 packets over the 20 seconds seen so far (iftop's divisor)
    assert bb.rates["2s"] == (0.0, 0.0) and bb.rates["10s"] == (0.0, 0.0)
    assert bb.rates["40s"] == (50 / 20, 50 * 500 * 8 / 20)
    t = rep.totals
    assert t.packets == 2050 and t.rates["2s"] == (100.0, 80_000.0)
    assert t.rates["40s"] == (2050 / 20, (200_000 + 25_000) * 8 / 20)
    hosts = {r.name: r for r in rep.hosts}
    assert hosts["10.0.0.1"].packets == 2000 and hosts["10.0.0.3"].packets == 50
    assert [(r.name, r.packets) for r in rep.protocols] == [("IPv4/UDP", 2050)]
    # 30 more idle seconds (one arriving late: the gap is filled): A leaves the 2 s and 10 s windows, then
    # everything the 40 s one, exactly
    table.add(Second(T0 + 30))
    rep = table.report("40s")
    a = rep.flows[0]
    assert rep.seconds == 31
    assert a.rates["2s"] == (0.0, 0.0) and a.rates["10s"] == (0.0, 0.0)
    assert a.rates["40s"] == (2000 / 31, 200_000 * 8 / 31)  # all 31 seconds seen are within the last 40
    for s in range(31, 51):
        table.add(Second(T0 + s))
    a = table.report("40s").flows[0]
    assert a.rates["40s"] == (9 * 100 / 40, 9 * 100 * 800 / 40)  # seconds T0+11..T0+19 are within the last 40
    for s in range(51, 60):
        table.add(Second(T0 + s))
    rep = table.report("40s")
    assert all(r.rates["40s"] == (0.0, 0.0) for r in rep.flows + rep.hosts + rep.protocols)
    assert rep.totals.packets == 2050  # totals since the start stay


@ONCE
def test_sort_keys_and_limit() -> None:
    old = udp4("10.0.1.1", 1, "10.0.1.2", 1)  # busy long ago
    new = udp4("10.0.2.1", 2, "10.0.2.2", 2)  # a little, recently
    table = TalkerTable()
    for s in range(30):
        flows = {}
        if s < 20:
            flows[flow_key(old)] = [50, 50_000]
        if s >= 28:
            flows[flow_key(new)] = [10, 10_000]
        table.add(Second(T0 + s, sum(v[0] for v in flows.values()), sum(v[1] for v in flows.values()), flows))
    assert table.report("2s").flows[0].name.startswith("10.0.2.1")
    assert table.report("10s").flows[0].name.startswith("10.0.2.1")
    assert table.report("40s").flows[0].name.startswith("10.0.1.1")
    assert table.report("total").flows[0].name.startswith("10.0.1.1")
    assert len(table.report("2s", limit=1).flows) == 1
    assert len(table.report("2s", limit=5).flows) == 2
    text = text_report(table.report("2s"), "header")
    assert "\x1b" not in text and "10.0.2.1:2 <=> 10.0.2.2:2 IPv4/UDP" in text


@ONCE
def test_memory_is_bounded_and_evictions_counted() -> None:
    # one second with more flows than the aggregator holds: the rest go to the "other" row, counted
    agg = Aggregator(max_flows=10)
    feed(agg, [(T0 * NS + i, udp4("10.0.0.1", 1000 + i, "10.0.0.2", 9), 100) for i in range(25)])
    agg.close_before((T0 + 1) * NS)
    (sec,) = agg.take()
    assert len(sec.flows) == 11 and sec.flows[OTHER] == [15, 1500] and sec.overflow == 15
    assert sec.packets == 25
    # a table bounded to 100 flows, fed 1000 distinct ones: never more than 100 held, the rest evicted
    table = TalkerTable(max_flows=100)
    for s in range(10):
        flows = {flow_key(udp4("10.1.0.1", 1 + s * 100 + i, "10.1.0.2", 9)): [1, 100] for i in range(100)}
        table.add(Second(T0 + s, 100, 10_000, flows))
        assert len(table.flows.entries) <= 100 and len(table.hosts.entries) <= 100
    rep = table.report("2s", 1000)
    assert rep.flow_count <= 100 and rep.evicted_flows >= 900 and table.evicted == rep.evicted_flows
    assert rep.totals.packets == 1000  # the totals row loses nothing
    # the newest second's flows are the ones kept, with their 2 s rate exact
    assert all(r.rates["2s"][0] == 0.5 for r in rep.flows if r.name.split(":")[1].startswith("9"))
    assert len(table.totals.history) == 10


@ONCE
def test_merge_of_workers_shares_and_empty_seconds() -> None:
    k = flow_key(udp4("10.0.0.1", 1, "10.0.0.2", 2))
    m = merge_seconds([Second(T0, 3, 300, {k: [3, 300]}), Second(T0, 2, 200, {k: [2, 200]}, overflow=1)])
    assert (m.packets, m.bytes, m.flows[k], m.overflow) == (5, 500, [5, 500], 1)
    agg = Aggregator()
    agg.start_at(T0 * NS + 5)
    agg.close_before((T0 + 3) * NS)  # idle: still one (empty) Second per second
    assert [s.second for s in agg.take()] == [T0, T0 + 1, T0 + 2]
    # a worker's share arriving after a later second was counted: folded into the last one, and it leaves
    # the windows with it
    table = TalkerTable()
    table.add(Second(T0 + 1, 1, 100, {k: [1, 100]}))
    table.add(Second(T0, 4, 400, {k: [4, 400]}))
    row = table.report().flows[0]
    assert (table.seconds, row.packets, row.rates["2s"][0]) == (1, 5, 5.0)
    for s in range(2, 4):
        table.add(Second(T0 + s))
    assert table.report().flows[0].rates["2s"] == (0.0, 0.0)


# -- the command over a veth --------------------------------------------------------------------------------

#: flows and rates (packets/s): the first both ways (250 + 250: one row at 500), then 250 and 50. trafgen
#: paces them with a gap between packets (``-t``; its ``-b`` rate sends a second's packets in one burst),
#: which costs it ~0.1 ms per packet on top of the gap: at these rates that is 2.5% at most.
FLOWS = [(("10.9.0.1", 5001, "10.9.0.2", 6001), 250), (("10.9.0.2", 6001, "10.9.0.1", 5001), 250),
         (("10.9.0.3", 5002, "10.9.0.4", 6002), 250), (("10.9.0.5", 5003, "10.9.0.6", 6003), 50)]
EXPECTED = [("10.9.0.1:5001 <=> 10.9.0.2:6001 IPv4/UDP", 500), ("10.9.0.3:5002 <=> 10.9.0.4:6002 IPv4/UDP", 250),
            ("10.9.0.5:5003 <=> 10.9.0.6:6003 IPv4/UDP", 50)]


@pytest.fixture(scope="module")
def pair() -> Iterator[VethPair]:
    with private_pair("aftop") as p:
        yield p


@contextmanager
def paced(net: VethPair, seconds: float) -> Iterator[Callable[[], list[float]]]:
    """FLOWS sent from the inner end for about ``seconds``: one trafgen per flow, paced by a gap between
    packets (``-t``; its ``-b`` rate sends each second's packets in one burst). Yields ``achieved()``, which
    waits for the trafgens to finish and returns each one's real rate (packets over the time its send loop
    ran, as it prints them): the gap is approximate (on this VM 4 ms gave 3.3 ms), so those, not the
    nominal rates, are what top must report."""
    if shutil.which("trafgen") is None:
        pytest.fail("trafgen is missing: apt-get install netsniff-ng")
    procs: list[subprocess.Popen[bytes]] = []
    cfgs: list[str] = []

    def achieved() -> list[float]:
        rates = []
        for proc in procs:
            out, _err = proc.communicate(timeout=3 * seconds + 10)
            m = re.search(rb"(\d+) sec, (\d+) usec on CPU\d+ \((\d+) packets\)", out)
            assert m is not None, out
            rates.append(int(m[3]) / (int(m[1]) + int(m[2]) / 1e6))
        return rates

    try:
        for (a, sp, b, dp), rate in FLOWS:
            frame = udp_frame(net.outer_mac, net.inner_mac, b"x" * 64, src=a, sport=sp, dst=b, dport=dp)
            with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
                f.write("{ " + ", ".join(f"0x{x:02x}" for x in frame) + " }\n")
            cfgs.append(f.name)
            procs.append(net.popen("trafgen", "-o", net.inner, "-i", f.name, "-t", f"{1_000_000 // rate}us",
                                   "-n", str(int(rate * seconds)), "-P", "1", "--no-sock-mem", "--notouch-irq",
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        yield achieved
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for cfg in cfgs:
            os.unlink(cfg)


def top(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-m", "afpacket", "top", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def check_report(doc: dict[str, object], sent: list[float]) -> None:
    """``doc`` is top's JSON report; ``sent`` the rates trafgen achieved for FLOWS (packets/s)."""
    flows = doc["flows"]
    assert isinstance(flows, list)
    got = [(f["name"], f["pps_2s"]) for f in flows]
    assert [name for name, _pps in got] == [name for name, _rate in EXPECTED], got
    rates = [sent[0] + sent[1], sent[2], sent[3]]  # the first flow's two directions are one row
    for (name, pps), (_n, nominal), rate in zip(got, EXPECTED, rates, strict=True):
        assert abs(rate - nominal) <= nominal * 0.5, (name, rate, nominal)  # trafgen did roughly as asked
        assert abs(pps - rate) <= rate * 0.10, (name, pps, rate)
    f0 = flows[0]
    assert isinstance(f0, dict)
    assert abs(f0["bps_2s"] - rates[0] * 106 * 8) <= rates[0] * 106 * 8 * 0.10  # 106-byte frames on the wire
    hosts = [h["name"] for h in doc["hosts"]]  # type: ignore[attr-defined]
    assert hosts[:2] == ["10.9.0.1", "10.9.0.2"]
    assert doc["protocols"][0]["name"] == "IPv4/UDP"  # type: ignore[index]
    assert doc["drops"] == 0
    assert f0["protocol"] == "IPv4/UDP" and f0["vlan"] == 0
    assert f0["endpoints"] == [["10.9.0.1", 5001], ["10.9.0.2", 6001]]


def test_once_json_reports_known_flows_and_rates(pair: VethPair, core: str) -> None:
    with paced(pair, 6) as achieved:
        time.sleep(0.5)
        r = top("-i", pair.outer, "--once", "--duration", "3", "--json", "udp")
        sent = achieved()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["interface"] == pair.outer and doc["filter"] == "udp" and doc["sort"] == "2s"
    check_report(doc, sent)


def test_once_on_any_reports_the_same_flows(pair: VethPair, core: str) -> None:
    """-i any (SOCK_DGRAM: no link header in the ring): the same flows, hosts and rates as on the device,
    the bits counting the Ethernet header the kernel took off."""
    with paced(pair, 6) as achieved:
        time.sleep(0.5)
        r = top("-i", "any", "--once", "--duration", "3", "--json", "udp and net 10.9.0.0/16")
        sent = achieved()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["interface"] == "any"
    check_report(doc, sent)


@pytest.mark.parametrize("core", ["c" if "c" in ring.available() else "python"], indirect=True)
def test_once_with_fanout_workers(pair: VethPair, core: str) -> None:
    with paced(pair, 6) as achieved:
        time.sleep(0.5)
        r = top("-i", pair.outer, "--once", "--duration", "3", "--json", "--workers", "2")
        sent = achieved()
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["workers"] == 2
    check_report(doc, sent)
    # plain text, no terminal codes
    with paced(pair, 3):
        time.sleep(0.3)
        r = top("-i", pair.outer, "--once", "--duration", "1.5", "--limit", "2")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "top flows (sorted by 2s)" in r.stdout
    assert EXPECTED[0][0] in r.stdout and EXPECTED[2][0] not in r.stdout  # --limit 2
    # not a terminal and no --once: a plain report every second
    with paced(pair, 3):
        r = top("-i", pair.outer, "--duration", "2.5", "--sort", "total")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and r.stdout.count("top flows (sorted by total)") == 2
    assert "packets received by filter, 0 dropped by kernel" in r.stderr


@pytest.mark.parametrize("core", ["c" if "c" in ring.available() else "python"], indirect=True)
def test_live_view_in_a_terminal(pair: VethPair, core: str, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is missing: apt-get install tmux")
    session = f"aftop-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    # the tmux server inherits pytest's COLUMNS/LINES (80x24), which rich would prefer to the pane's real size
    out = tmp_path / "stderr"
    cmd = (f"env -u COLUMNS -u LINES PYTHONPATH={SRC} {sys.executable} -m afpacket top -i {pair.outer} udp "
           f"2>{out}; echo $? >>{out}")
    screen = ""
    ends = [name.rsplit(" ", 1)[0] for name, _rate in EXPECTED]  # the view puts the protocol in a column
    with paced(pair, 8):
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50", cmd], check=True)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                time.sleep(0.5)
                screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                        text=True).stdout
                if all(e in screen for e in ends) and "top protocols" in screen:
                    break
            # Ctrl-C ends it cleanly: the process exits, and with it the session
            subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
            ended = time.monotonic() + 5
            while time.monotonic() < ended and subprocess.run(["tmux", "has-session", "-t", session],
                                                              capture_output=True).returncode == 0:
                time.sleep(0.1)
            stopped = subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert f"afpacket top on {pair.outer} (udp)" in screen, screen
    lines = [ln for ln in screen.splitlines() if "<=>" in ln]
    assert [next(e for e in ends if e in ln) for ln in lines] == ends, screen  # in rate order, one row each
    assert all("IPv4/UDP" in ln for ln in lines), screen
    assert "top hosts" in screen and "10.9.0.1" in screen and "top protocols" in screen
    assert stopped, "afpacket top did not end on Ctrl-C"
    err = out.read_text().splitlines()
    assert err[-1] == "0" and "packets received by filter, 0 dropped by kernel" in err[-2], err


@pytest.mark.parametrize("core", ["c" if "c" in ring.available() else "python"], indirect=True)
def test_metrics_port_while_top_runs(pair: VethPair, core: str) -> None:
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": SRC}
    with paced(pair, 4):
        proc = subprocess.Popen([sys.executable, "-m", "afpacket", "top", "-i", pair.outer, "--once", "--duration",
                                 "2.5", "--json", "--metrics-port", str(port)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
        try:
            body = ""
            deadline = time.monotonic() + 10
            while "afpacket_received_total" not in body and time.monotonic() < deadline:
                time.sleep(0.3)
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
                except OSError:
                    continue
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    line = next(ln for ln in body.splitlines() if ln.startswith("afpacket_received_total{"))
    assert f'interface="{pair.outer}"' in line and float(line.split()[-1]) > 0
    assert json.loads(out)["received"] >= float(line.split()[-1])

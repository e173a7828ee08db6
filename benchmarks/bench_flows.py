#!/usr/bin/env python3
"""Flow export benchmark: afpacket against NFStream and pcaptoparquet on one pcap, and live flow metering.

Issue 12's figures. **Offline**: a synthetic pcap of ``--packets`` (5,000,000) Ethernet frames over
``--flows`` (100,000) bidirectional flows (70% TCP with a handshake and FIN, 25% UDP, 5% ICMP echo;
flow sizes skewed, a few flows carry most packets; IPv4 and 10% IPv6; packets of 60-1514 bytes) is
turned into flow records by each tool in its own process, timed from start to exit, with its CPU
(user + sys of the process and its children) and peak RSS (``wait4``):

* ``afpacket``: ``afpacket flows -r FILE --format parquet --out DIR`` (C core), and ``afpacket-py`` on the
  pure-Python core (``AFPACKET_NO_EXTENSIONS=1``);
* ``nfstream``: ``NFStreamer(source=FILE, accounting_mode=1, statistical_analysis=False).to_pandas()``
  written with ``DataFrame.to_parquet``: its defaults (nDPI dissection on, one meter per CPU), and
  ``nfstream-nodpi`` with ``n_dissections=0`` (the same work as ours: no payload inspection);
* ``pcaptoparquet``: ``pcaptoparquet -i FILE -o OUT.parquet`` (one row per packet, dpkt + polars) on the
  first ``--p2p-packets`` (200,000) packets, since it is slow; its rate is per packet like the others'.

The afpacket and NFStream flow counts are printed side by side (they key flows alike: they should agree).
Targets: afpacket's packets/s >= 2x NFStream's and >= 10x pcaptoparquet's.

**Live** (``--live``): trafgen, pinned to CPU 0 at its full one-CPU rate, sends ``--live-count`` frames over
``--live-flows`` UDP flows from a private veth namespace while ``afpacket flows -i`` meters them; the
summary's kernel counters give the drops. Target: 0 drops.

Run as root:  python benchmarks/bench_flows.py [--packets 5000000] [--flows 100000] [--only afpacket,nfstream]
              [--live] [--keep FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from afpacket.savefile import PcapWriter  # noqa: E402

ROWS = ["afpacket", "afpacket-py", "nfstream", "nfstream-nodpi", "pcaptoparquet"]
T0 = 1_760_000_000 * 1_000_000_000


# -- the file ---------------------------------------------------------------------------------------------
def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s & 0xFFFF) + (s >> 16)
    return ~(s + (s >> 16)) & 0xFFFF


def _eth(v6: bool, l3: bytes) -> bytes:
    return b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01" + (b"\x86\xdd" if v6 else b"\x08\x00") + l3


def _ip(v6: bool, src: bytes, dst: bytes, proto: int, l4: bytes) -> bytes:
    if v6:
        return struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + src + dst + l4
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", _csum(h)) + h[12:] + l4


def _tcp(sp: int, dp: int, flags: int, payload: int) -> bytes:
    return struct.pack("!HHIIBBHHH", sp, dp, 1, 1, 5 << 4, flags, 65535, 0, 0) + b"t" * payload


def _udp(sp: int, dp: int, payload: int) -> bytes:
    return struct.pack("!HHHH", sp, dp, 8 + payload, 0) + b"u" * payload


def make_pcap(path: str, packets: int, flows: int, seed: int = 12) -> None:
    """The synthetic file described in the module docstring (deterministic for a seed)."""
    rnd = random.Random(seed)
    weights = [1.0 / (i + 1) ** 0.9 for i in range(flows)]  # a few elephants, many mice
    total = sum(weights)
    # every flow gets at least its opening packets; the rest are spread by weight
    sizes = [max(2, int(packets * w / total)) for w in weights]
    while sum(sizes) > packets:
        i = rnd.randrange(flows)
        if sizes[i] > 2:
            sizes[i] -= 1
    sizes[0] += packets - sum(sizes)
    templates = []
    for i in range(flows):
        v6 = i % 10 == 9
        if v6:
            a = socket.inet_pton(socket.AF_INET6, f"fd00::{(i + 1) >> 16:x}:{(i + 1) & 0xFFFF:x}")
            b = socket.inet_pton(socket.AF_INET6, "fd01::1")
        else:
            a, b = struct.pack("!I", 0x0A000000 + i + 1), struct.pack("!I", 0xAC100000 + (i % 4096) + 1)
        kind = "tcp" if i % 20 < 14 else "udp" if i % 20 < 19 else "icmp"
        sp, dp = 10000 + i % 50000, (443, 80, 53, 123)[i % 4]
        pl_a, pl_b = rnd.choice((0, 40, 200, 1400)), rnd.choice((0, 100, 600, 1400))
        templates.append((v6, a, b, kind, sp, dp, pl_a, pl_b))
    # interleave: packets of all flows in a random order, each flow's own packets in order
    order = [i for i, n in enumerate(sizes) for _ in range(n)]
    rnd.shuffle(order)
    sent = [0] * flows
    t = T0
    with PcapWriter(path) as w:
        for i in order:
            v6, a, b, kind, sp, dp, pl_a, pl_b = templates[i]
            k = sent[i]
            sent[i] += 1
            last = k == sizes[i] - 1
            fwd = k % 2 == 0
            src, dst = (a, b) if fwd else (b, a)
            if kind == "tcp":
                if k == 0:
                    l4 = _tcp(sp, dp, 0x02, 0)
                elif k == 1:
                    l4 = _tcp(dp, sp, 0x12, 0)
                else:
                    flags = 0x11 if last else 0x18
                    l4 = _tcp(sp, dp, flags, pl_a) if fwd else _tcp(dp, sp, flags, pl_b)
                proto = 6
            elif kind == "udp":
                l4 = _udp(sp, dp, pl_a) if fwd else _udp(dp, sp, pl_b)
                proto = 17
            else:
                l4 = struct.pack("!BBHHH", 8 if fwd else 0, 0, 0, i & 0xFFFF, k) + b"p" * 56
                proto = 58 if v6 else 1
                if v6:
                    l4 = bytes((128 if fwd else 129,)) + l4[1:]
            t += rnd.randrange(1000, 4000)
            w.write(t, _eth(v6, _ip(v6, src, dst, proto, l4)))


def head_of(path: str, out: str, n: int) -> None:
    """The first ``n`` records of pcap ``path`` into ``out`` (for the slow tool)."""
    with open(path, "rb") as f, open(out, "wb") as o:
        o.write(f.read(24))
        for _ in range(n):
            h = f.read(16)
            if len(h) < 16:
                break
            caplen = struct.unpack("<I", h[8:12])[0]
            o.write(h + f.read(caplen))


# -- running one row --------------------------------------------------------------------------------------
@dataclass
class Result:
    row: str
    packets: int
    records: int
    wall: float
    cpu: float
    rss_mb: float
    note: str = ""

    @property
    def pps(self) -> float:
        return self.packets / self.wall if self.wall else 0.0


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str, str]:
    """(wall s, user+sys s, peak RSS MB, stdout, stderr) of ``cmd``, through wait4 for its rusage."""
    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, env=env)
        _pid, status, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({p.returncode}):\n{err[-2000:]}")
    # ru covers the process and every child it waited for (NFStream's meter processes included)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out, err


NFSTREAM = r"""
import sys, nfstream
path, out, dpi = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
opts = dict(source=path, accounting_mode=1, statistical_analysis=False)
if not dpi:
    opts["n_dissections"] = 0
df = nfstream.NFStreamer(**opts).to_pandas()
df.to_parquet(out)
print(len(df), int(df["bidirectional_packets"].sum()))
"""


def row_afpacket(path: str, packets: int, work: str, pure: bool) -> Result:
    out = os.path.join(work, "afp-py" if pure else "afp")
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    if pure:
        env["AFPACKET_NO_EXTENSIONS"] = "1"
    else:
        env.pop("AFPACKET_NO_EXTENSIONS", None)
    wall, cpu, rss, _out, err = run_measured(
        [sys.executable, "-m", "afpacket", "flows", "-r", path, "--format", "parquet", "--out", out,
         "--sensor", "bench"], env)
    m = re.search(r"(\d+) flow records written", err)
    n = re.search(r"(\d+) packets metered", err)
    assert m and n, err
    shutil.rmtree(out, ignore_errors=True)
    return Result("afpacket-py" if pure else "afpacket", int(n[1]), int(m[1]), wall, cpu, rss)


def row_nfstream(path: str, packets: int, work: str, dpi: bool) -> Result:
    out = os.path.join(work, "nfs.parquet")
    wall, cpu, rss, stdout, _err = run_measured([sys.executable, "-c", NFSTREAM, path, out, "1" if dpi else "0"])
    flows, pk = (int(x) for x in stdout.split())
    os.unlink(out)
    return Result("nfstream" if dpi else "nfstream-nodpi", pk, flows, wall, cpu, rss)


def row_pcaptoparquet(path: str, n: int, work: str) -> Result:
    small = os.path.join(work, "head.pcap")
    head_of(path, small, n)
    out = os.path.join(work, "p2p.parquet")
    exe = shutil.which("pcaptoparquet")
    if exe is None:
        raise SystemExit("pcaptoparquet is missing: pip install pcaptoparquet")
    wall, cpu, rss, _o, _e = run_measured([exe, "-i", small, "-o", out])
    import pyarrow.parquet as pq

    rows = pq.read_metadata(out).num_rows
    os.unlink(out)
    os.unlink(small)
    return Result("pcaptoparquet", n, rows, wall, cpu, rss, f"first {n:,} packets; one row per packet")


# -- live -------------------------------------------------------------------------------------------------
def live(count: int, flows: int) -> str:
    from afpacket.testnet import VethPair

    lines = []
    with VethPair("afbfl") as net:
        frames = []
        for i in range(flows):
            l4 = _udp(20000 + i, 9, 18)
            src = struct.pack("!I", 0x0A400000 + i + 1)
            dst = struct.pack("!I", 0x0A410001)
            ip = _ip(False, src, dst, 17, l4)
            frames.append(bytes.fromhex(net.outer_mac.replace(":", "")) + bytes.fromhex(net.inner_mac.replace(":", ""))
                          + b"\x08\x00" + ip)
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
            for fr in frames:
                f.write("{ " + ", ".join(f"0x{b:02x}" for b in fr) + " }\n")
        env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
        out = tempfile.mkdtemp()
        meter = subprocess.Popen([sys.executable, "-m", "afpacket", "flows", "-i", net.outer, "--format", "parquet",
                                  "--out", out, "--sensor", "live", "udp"], stderr=subprocess.PIPE, text=True, env=env)
        assert meter.stderr is not None
        meter.stderr.readline()
        time.sleep(0.5)
        start = time.monotonic()
        subprocess.run(["ip", "netns", "exec", net.netns, "taskset", "-c", "0", "trafgen", "-o", net.inner,
                        "-i", f.name, "-n", str(count), "-P", "1", "--no-sock-mem", "--notouch-irq"],
                       capture_output=True, text=True, check=True)
        elapsed = time.monotonic() - start
        os.unlink(f.name)
        time.sleep(1.5)
        meter.send_signal(2)
        err = meter.communicate(timeout=60)[1]
        shutil.rmtree(out, ignore_errors=True)
        rate = count / elapsed
        lines.append(f"live: trafgen sent {count:,} frames over {flows} UDP flows in {elapsed:.2f} s "
                     f"({rate:,.0f} pps, one CPU)")
        lines += ["  afpacket flows: " + ln for ln in err.strip().splitlines()[-3:]]
        m = re.search(r"(\d+) dropped by kernel", err)
        lines.append(f"  target 0 drops: {'MET' if m and m[1] == '0' else 'NOT MET'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--packets", type=int, default=5_000_000)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--p2p-packets", type=int, default=200_000, help="packets for pcaptoparquet (slow)")
    ap.add_argument("--only", default=",".join(ROWS))
    ap.add_argument("--keep", help="reuse (or keep) the pcap at this path")
    ap.add_argument("--live", action="store_true", help="also the live run (root, trafgen)")
    ap.add_argument("--live-count", type=int, default=4_000_000)
    ap.add_argument("--live-flows", type=int, default=1000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="afpflows-")
    path = a.keep or os.path.join(work, "bench.pcap")
    if not os.path.exists(path):
        t = time.monotonic()
        make_pcap(path, a.packets, a.flows)
        print(f"made {path}: {a.packets:,} packets, {a.flows:,} flows, {os.path.getsize(path) / 1e6:.0f} MB "
              f"in {time.monotonic() - t:.1f} s", flush=True)
    only = a.only.split(",")
    results: list[Result] = []
    for row in only:
        if row == "afpacket":
            results.append(row_afpacket(path, a.packets, work, pure=False))
        elif row == "afpacket-py":
            results.append(row_afpacket(path, a.packets, work, pure=True))
        elif row == "nfstream":
            results.append(row_nfstream(path, a.packets, work, dpi=True))
        elif row == "nfstream-nodpi":
            results.append(row_nfstream(path, a.packets, work, dpi=False))
        elif row == "pcaptoparquet":
            results.append(row_pcaptoparquet(path, min(a.p2p_packets, a.packets), work))
        r = results[-1]
        print(f"  {r.row}: {r.pps:,.0f} pps, {r.records:,} records, {r.wall:.2f} s, cpu {r.cpu:.2f} s, "
              f"rss {r.rss_mb:.0f} MB", flush=True)
    print(f"\noffline flow export: {a.packets:,} packets, {a.flows:,} flows (synthetic mix, see the docstring)")
    print(f"{'row':<16}{'packets':>11}{'records':>10}{'wall s':>9}{'CPU s':>8}{'RSS MB':>8}{'packets/s':>12}"
          f"{'records/s':>11}  notes")
    for r in results:
        print(f"{r.row:<16}{r.packets:>11,}{r.records:>10,}{r.wall:>9.2f}{r.cpu:>8.2f}{r.rss_mb:>8.0f}{r.pps:>12,.0f}"
              f"{r.records / r.wall:>11,.0f}  {r.note}")
    by = {r.row: r for r in results}
    if "afpacket" in by:
        ours = by["afpacket"].pps
        for peer, want in (("nfstream", 2.0), ("nfstream-nodpi", 2.0), ("pcaptoparquet", 10.0)):
            if peer in by:
                ratio = ours / by[peer].pps
                print(f"target: afpacket >= {want:g}x {peer}: {ratio:.2f}x  {'MET' if ratio >= want else 'NOT MET'}")
        for peer in ("nfstream", "nfstream-nodpi"):
            if peer in by:
                print(f"flow records: afpacket {by['afpacket'].records:,}, {peer} {by[peer].records:,}")
    if a.live:
        print()
        print(live(a.live_count, a.live_flows))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

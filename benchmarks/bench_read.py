#!/usr/bin/env python3
"""Reading a capture file as text: ``afpacket read`` against ``tcpdump -n -r`` and scapy, lines per second.

1. A corpus of real frames: two network namespaces joined by a private veth pair
   (``afpacket.testnet.VethPair``, its outer end moved into a second namespace, both removed on exit),
   tcpdump capturing in one of them while the other sends ping, a TCP connection with data (HTTP) and a
   close, UDP, DNS queries answered by dnsmasq, ARP, and the same over IPv6 (with neighbour discovery).
2. A file of ``--packets`` frames (default 1,000,000): the corpus replayed over and over, each round with
   other addresses (so TCP connections are new ones, as in a long capture) and timestamps 10 us apart.
3. On the same file, one after the other:

   * ``afpacket read FILE > /dev/null`` (the CLI, a subprocess; wall time),
   * ``tcpdump -n -r FILE > /dev/null``,
   * ``LinePrinter`` in this process: reading the records and printing every line (``read+print``) and
     printing alone over records already in memory (``print``, the per-line cost of the decoder),
   * scapy: ``rdpcap`` and ``summary()`` of every packet, on the first ``--scapy-packets`` (100,000) of
     the file, its rate then taken as is (scapy's time grows linearly with the packets).

The table gives lines/s and each row against tcpdump. Run as root (namespaces):
``python benchmarks/bench_read.py [--packets 1000000] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from afpacket import PcapWriter, open_reader
from afpacket.dissect import LinePrinter
from afpacket.testnet import VethPair

PING = r"""
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
six = ":" in sys.argv[1]
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if six else socket.IPPROTO_ICMP)
s.settimeout(1)
for seq in range(1, int(sys.argv[2]) + 1):
    body = struct.pack("!HH", 0x4242, seq) + bytes(range(56))
    msg = struct.pack("!BBH", 128, 0, 0) + body if six else struct.pack("!BBH", 8, 0, csum(b"\x08\0\0\0" + body)) + body
    s.sendto(msg, (sys.argv[1], 0))
    try: s.recv(2000)
    except OSError: pass
"""

TCP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(8)
print("ready", flush=True)
for _ in range(int(sys.argv[3])):
    c, _ = s.accept()
    c.recv(1000)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n" + b"x" * 600)
    c.close()
"""

TCP_CLIENT = r"""
import socket, sys
for _ in range(int(sys.argv[3])):
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
    c.sendall(b"GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n")
    while c.recv(4096):
        pass
    c.close()
"""

UDP = r"""
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b"datagram %d" % i, (sys.argv[1], int(sys.argv[2])))
"""


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True, timeout=60)


class Lab:
    """Namespace A (the pair's inner end) and B (its outer end, moved there)."""

    def __init__(self) -> None:
        self.pair = VethPair("afbr")

    def __enter__(self) -> Lab:
        p = self.pair
        p.create()
        self.ns_a, self.ns_b = p.netns, p.netns + "b"
        self.a, self.b, self.ip_a, self.ip_b = p.inner, p.outer, p.inner_ip, p.outer_ip
        tag = f"{os.getpid() % 0xFFFF:x}"
        self.ip6_a, self.ip6_b = f"fd00:afb:{tag}::2", f"fd00:afb:{tag}::1"
        try:
            _ip("netns", "add", self.ns_b)
            _ip("link", "set", self.b, "netns", self.ns_b)
            self.b_run("ip", "link", "set", "lo", "up")
            self.b_run("ip", "link", "set", self.b, "up")
            self.b_run("ip", "addr", "add", f"{self.ip_b}/30", "dev", self.b)
            for run, dev, addr in ((self.a_run, self.a, self.ip6_a), (self.b_run, self.b, self.ip6_b)):
                run("sh", "-c", f"echo 0 > /proc/sys/net/ipv6/conf/{dev}/disable_ipv6")
                run("ip", "-6", "addr", "add", f"{addr}/64", "dev", dev, "nodad")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _ip("netns", "del", self.ns_b, check=False)
        self.pair.delete()

    def a_run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns_a, *cmd], check=check, capture_output=True, text=True,
                              timeout=120)

    def b_run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns_b, *cmd], check=check, capture_output=True, text=True,
                              timeout=120)

    def b_popen(self, *cmd: str, **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", self.ns_b, *cmd], text=True, **kw)  # type: ignore[call-overload, no-any-return]


@contextmanager
def tcpdump_in(lab: Lab, path: Path) -> Iterator[None]:
    proc = lab.b_popen("tcpdump", "--immediate-mode", "-U", "-i", lab.b, "-w", str(path), stderr=subprocess.PIPE,
                       stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    while "listening on" not in (line := proc.stderr.readline()):
        if not line:
            sys.exit(f"FATAL: tcpdump did not start in {lab.ns_b}")
    time.sleep(0.5)
    try:
        yield
    finally:
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def capture_corpus(path: Path) -> None:
    """Everyday traffic between the two namespaces, as tcpdump writes it."""
    connections = 3
    with Lab() as lab, tcpdump_in(lab, path):
        dns = lab.b_popen("dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", f"--listen-address={lab.ip_b}",
                          "--bind-interfaces", "--address=/example.com/192.0.2.10",
                          "--address=/example.net/2001:db8::1", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for server_ip, port in ((lab.ip_b, "8080"), (lab.ip6_b, "8081")):
                srv = lab.b_popen(sys.executable, "-c", TCP_SERVER, server_ip, port, str(connections),
                                  stdout=subprocess.PIPE)
                assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
                lab.a_run(sys.executable, "-c", TCP_CLIENT, server_ip, port, str(connections))
                srv.wait(timeout=30)
            lab.a_run(sys.executable, "-c", PING, lab.ip_b, "4")
            lab.a_run(sys.executable, "-c", PING, lab.ip6_b, "4")
            lab.a_run(sys.executable, "-c", UDP, lab.ip_b, "9999", "4")
            lab.a_run(sys.executable, "-c", UDP, lab.ip6_b, "9999", "2")
            time.sleep(0.5)  # dnsmasq is up by now
            for name, kind in (("example.com", "A"), ("example.net", "AAAA"), ("www.example.com", "A")):
                lab.a_run("dig", "+tries=1", "+time=1", f"@{lab.ip_b}", name, kind, check=False)
            lab.a_run("ip", "neigh", "flush", "dev", lab.a, check=False)
            lab.a_run(sys.executable, "-c", PING, lab.ip_b, "1")  # after an ARP exchange
        finally:
            dns.terminate()
            dns.wait(timeout=10)


def replicate(corpus: Path, out: Path, packets: int, distinct: int = 0) -> dict[str, int]:
    """``packets`` frames: the corpus again and again, each round with other IPv4/IPv6/ARP addresses
    (with ``distinct``, the addresses of round ``r % distinct``: at most that many rounds' connections)."""
    frames = [(r.data, r.wire_len) for r in open_reader(corpus)]
    if not frames:
        sys.exit("FATAL: the corpus capture is empty")
    kinds: dict[str, int] = {}
    ts = 1_700_000_000_000_000_000
    with PcapWriter(out) as w:
        n = 0
        rnd = 0
        while n < packets:
            a = rnd % distinct if distinct else rnd
            hi, lo = (a >> 8) & 0xFF, a & 0xFF
            for data, wire_len in frames:
                if n == packets:
                    break
                f = bytearray(data)
                etype = struct.unpack_from("!H", f, 12)[0] if len(f) >= 14 else 0
                if etype == 0x0800 and len(f) >= 34:
                    f[28], f[29], f[32], f[33] = hi, lo, hi, lo  # 198.18.hi.lo on both ends
                elif etype == 0x86DD and len(f) >= 54:
                    f[34:36] = f[50:52] = bytes((hi, lo))
                elif etype == 0x0806 and len(f) >= 42:
                    f[30], f[31], f[40], f[41] = hi, lo, hi, lo
                w.write(ts + n * 10_000, bytes(f), wire_len)
                kind = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp"}.get(etype, "other")
                kinds[kind] = kinds.get(kind, 0) + 1
                n += 1
            rnd += 1
    return kinds


def timed(cmd: list[str], stdout: object = subprocess.DEVNULL) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=stdout, stderr=subprocess.DEVNULL, check=True)  # type: ignore[call-overload]
    return time.perf_counter() - start


SCAPY = r"""
import sys, time
from scapy.utils import rdpcap
start = time.perf_counter()
for p in rdpcap(sys.argv[1], count=int(sys.argv[2])):
    p.summary()
print(time.perf_counter() - start)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=1_000_000, help="frames in the file (default 1,000,000)")
    ap.add_argument("--scapy-packets", type=int, default=100_000, help="frames scapy reads (default 100,000)")
    ap.add_argument("--dir", default="/var/tmp", help="where the temp dir with the files goes")
    ap.add_argument("--keep", action="store_true", help="keep the files (and print where)")
    ap.add_argument("--distinct", type=int, default=0,
                    help="reuse the addresses of this many rounds (default 0: every round new). tcpdump's cost per "
                    "line grows with the TCP connections it has seen; this bounds them")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("FATAL: run as root (the corpus is captured in network namespaces)")
    for tool in ("tcpdump", "dnsmasq", "dig", "ip"):
        if shutil.which(tool) is None:
            sys.exit(f"FATAL: {tool} is missing")
    afpacket_cmd = [shutil.which("afpacket") or "", "read"] if shutil.which("afpacket") else [
        sys.executable, "-m", "afpacket", "read"]

    tmp = Path(tempfile.mkdtemp(prefix="bench_read.", dir=args.dir))
    try:
        corpus, big = tmp / "corpus.pcap", tmp / "mixed.pcap"
        capture_corpus(corpus)
        kinds = replicate(corpus, big, args.packets, args.distinct)
        n = args.packets
        print(f"corpus: {sum(1 for _ in open_reader(corpus))} real frames; file: {n:,} frames "
              f"({', '.join(f'{k} {v:,}' for k, v in sorted(kinds.items()))}), {big.stat().st_size / 1e6:.0f} MB, "
              f"{'every round new addresses' if not args.distinct else f'{args.distinct} rounds of addresses'}")

        rows: list[tuple[str, int, float]] = []
        rows.append(("tcpdump -n -r FILE", n, timed(["tcpdump", "-n", "-r", str(big)])))
        rows.append(("afpacket read FILE", n, timed([*afpacket_cmd, str(big)])))

        printer = LinePrinter()
        start = time.perf_counter()
        for rec in open_reader(big):
            printer.line(rec.data, rec.wire_len, rec.linktype)
        rows.append(("LinePrinter read+print", n, time.perf_counter() - start))
        records = [(r.data, r.wire_len, r.linktype) for r in open_reader(big)]
        printer = LinePrinter()
        line = printer.line
        start = time.perf_counter()
        for data, wire_len, linktype in records:
            line(data, wire_len, linktype)
        rows.append(("LinePrinter print only", n, time.perf_counter() - start))
        del records

        m = min(args.scapy_packets, n)
        out = subprocess.run([sys.executable, "-c", SCAPY, str(big), str(m)], capture_output=True, text=True,
                             check=True)
        rows.append((f"scapy rdpcap+summary ({m:,} frames)", m, float(out.stdout.strip())))

        tcpdump_rate = rows[0][1] / rows[0][2]
        print(f"\n{'reader':<40} {'frames':>10} {'seconds':>9} {'lines/s':>11} {'us/line':>8} {'x tcpdump':>10}")
        for name, count, secs in rows:
            rate = count / secs
            print(f"{name:<40} {count:>10,} {secs:>9.2f} {rate:>11,.0f} {1e6 / rate:>8.2f} "
                  f"{rate / tcpdump_rate:>10.2f}")
        print("\nx tcpdump: lines/s relative to tcpdump's (higher is faster). afpacket read must print >= 200,000 "
              "lines/s.")
        if args.keep:
            print(f"files kept in {tmp}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Fanout benchmark: one interface's traffic over 1 and 2 worker processes (``afpacket.CaptureGroup``, HASH).

Issue 10's figure: ``--count`` (4,000,000) 64-byte UDP/IPv4 frames over ``--flows`` (64) flows (the UDP
source port cycles over that many values, so the kernel's flow hash spreads them), sent by trafgen from a
private veth namespace and captured on the outer end by

* ``w1`` / ``w2``: ``afpacket.CaptureGroup(outer, workers=N, fanout="hash", on_packet=count, result=...)``,
  each worker doing real Python work per packet: ``k = bytes(pkt.data[26:38]); d[k] = d.get(k, 0) + 1``
  (a per-flow counter keyed by the addresses and ports), C ring kernels;
* ``w1-py`` / ``w2-py``: the same in a process started with ``AFPACKET_NO_EXTENSIONS=1`` (pure Python);
* ``tcpdump``: ``tcpdump -p -n -w /dev/null`` in the same run, as the reference.

The machine this was written for has 2 CPUs, so the generator and the workers share them: trafgen is pinned
to CPU 0 (the veth receive path, AF_PACKET's copy into the rings included, runs there too) and paced with
``-b RATEpps`` (it sleeps between bursts, leaving the rest of CPU 0 to a worker); the workers float. The rate
is ``--rate`` pps, or with ``--rate auto`` (the default) 1.9x what one worker captured in a short
calibration run at the generator's full speed (per core), capped by what trafgen sends alone: a rate one
worker cannot keep up with and two ideally can. See benchmarks/README.md for the method and its limits.

That is ``--mode live``. ``--mode backlog`` separates the generator from the workers in time, so each worker
has a whole CPU: the group starts with ``worker=`` a function that first blocks on a gate (a pipe inherited
through fork), each worker's V3 ring sized to hold every frame of the run; trafgen sends ``--count`` frames at
full speed while the workers wait (the workers' kernel counters must then show received == sent, 0 drops);
then the gate opens and the drain is timed: from the gate to the last worker's last packet, each worker doing
the same per-flow dict work per packet over ``cap.packets(count=..., timeout=...)``. Rows ``w1``, ``w2`` (and
``-py``) per ``--fanout`` (hash by default; cbpf is afpacket's symmetric flow hash in classic BPF). The
default ``--mode both`` runs live, then backlog.

Run as root:  python benchmarks/bench_fanout.py [--mode both|live|backlog] [--count 4000000] [--flows 64]
              [--rate auto] [--only w1,w2,tcpdump] [--fanout hash,cbpf]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rx import (
    GEN_CPU,
    NO_EXTENSIONS_ENV,
    PY_SUFFIX,
    core_env,
    cpu_clock,
    parse_trafgen,
    probe_core,
    require_core,
)

DEFAULT_KINDS = ["tcpdump", "w1", "w2", "w1" + PY_SUFFIX, "w2" + PY_SUFFIX]
KIND_RE = re.compile(r"^w([1-8])(" + re.escape(PY_SUFFIX) + r")?$")
#: the issue's target: where 1 worker drops, 2 workers capture >= this many times its packets/s, 0 drops
TARGET_SPEEDUP = 1.8
#: --rate auto: this many times one worker's captured packets/s (above TARGET_SPEEDUP, so a pass is possible)
AUTO_FACTOR = 1.9
#: UDP source ports: SPORT_HIGH << 8 | 0..flows-1; destination port fixed
SPORT_HIGH = 0x9C
DPORT = 10000
FRAME_SIZE = 64
#: a sample of the workers' CPU clocks counts as busy when they used more than this share of the interval
BUSY_SHARE = 0.1
SAMPLE_INTERVAL = 0.01


# -- the capture side: one process per row, which starts the group -------------------------------------------
def split_kind(kind: str) -> tuple[int, str | None]:
    """(workers, core) of an afpacket row (``"w2-py"`` -> ``(2, "python")``), (0, None) for tcpdump."""
    m = KIND_RE.match(kind)
    if not m:
        return 0, None
    return int(m.group(1)), "python" if m.group(2) else "c"


def group_main(kind: str, iface: str, buffer_size: int) -> None:
    """Start a CaptureGroup on ``iface``, say READY with the workers' pids, run until SIGINT, print the
    merged statistics and every worker's report as one JSON line."""
    import afpacket

    workers, _core = split_kind(kind)
    counts: dict[bytes, int] = {}  # forked into each worker empty: one table per worker

    def on_packet(pkt: afpacket.Packet) -> None:  # the per-packet work being measured
        k = bytes(pkt.data[26:38])  # IPv4 source, destination, UDP ports
        counts[k] = counts.get(k, 0) + 1

    def result() -> dict[str, Any]:  # runs in the worker when it ends
        return {"implementation": afpacket.IMPLEMENTATION, "flows": {k.hex(): v for k, v in counts.items()}}

    group = afpacket.CaptureGroup(
        iface, workers=workers, fanout="hash", on_packet=on_packet, result=result, buffer_size=buffer_size
    )
    signal.signal(signal.SIGINT, lambda *_: group.stop())
    group.start()
    ready = {"pids": [r.pid for r in group.reports], "group_id": group.group_id,
             "implementation": afpacket.IMPLEMENTATION, "fanout": group.fanout.mode}
    print("READY " + json.dumps(ready), flush=True)
    st = group.wait()
    out = {
        "implementation": afpacket.IMPLEMENTATION,
        "received": st.received,
        "drops": st.drops,
        "handled": st.handled,
        "workers": [
            {"index": w.index, "pid": w.pid, "received": w.received, "drops": w.drops, "handled": w.handled,
             "result": w.result, "error": w.error, "exitcode": w.exitcode, "complete": w.complete}
            for w in st.workers
        ],
    }
    print(json.dumps(out), flush=True)


# -- traffic ----------------------------------------------------------------------------------------------------
def trafgen_flows_cfg(path: str, dst: str, src: str, flows: int) -> None:
    """A 64-byte UDP/IPv4 frame (no FCS) to ``dst`` whose UDP source port's low byte counts 0..flows-1
    (trafgen's ``dinc``), one new value per frame: ``flows`` flows, round robin."""
    from afpacket.testnet import INNER_IP, OUTER_IP

    macs = [f"0x{b}" for b in dst.split(":") + src.split(":")]
    ip_src = ", ".join(INNER_IP.split("."))
    ip_dst = ", ".join(OUTER_IP.split("."))
    payload = FRAME_SIZE - 14 - 20 - 8
    fields = [
        *macs, "c16(0x0800)",
        # IPv4: version/IHL, TOS, total length, id, flags/fragment, TTL, UDP, header checksum, addresses
        "0x45", "0x00", f"c16({20 + 8 + payload})", "c16(0)", "c16(0)", "64", "17", "csumip(14, 33)",
        ip_src, ip_dst,
        # UDP: source port (flows values), destination port, length, checksum 0 (none, allowed over IPv4)
        f"{SPORT_HIGH:#04x}", f"dinc(0, {flows - 1}, 1)", f"c16({DPORT})", f"c16({8 + payload})", "c16(0)",
        f"fill(0x00, {payload})",
    ]
    with open(path, "w") as f:
        f.write("{ " + ", ".join(fields) + " }\n")


def start_trafgen(net: Any, cfg: str, count: int, rate: int) -> subprocess.Popen[bytes]:
    """trafgen -P 1 pinned to CPU GEN_CPU inside the namespace; paced at ``rate`` pps unless 0."""
    cmd = ["taskset", "-c", str(GEN_CPU), "trafgen", "-o", net.inner, "-i", cfg, "-n", str(count), "-P", "1",
           "--no-sock-mem", "-Q"]
    if rate:
        cmd += ["-b", f"{rate}pps"]
    return net.popen(*cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # type: ignore[no-any-return]


def finish_trafgen(tg: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """(frames sent, trafgen's own send time in s, monotonic time it exited)."""
    out, _ = tg.communicate(timeout=3600)
    t_exit = time.monotonic()
    text = out.decode(errors="replace")
    if tg.returncode != 0:
        raise RuntimeError(f"trafgen failed ({tg.returncode}):\n{text}")
    sent, dur = parse_trafgen(text)
    return sent, dur, t_exit


def trafgen_alone(net: Any, cfg: str, count: int, rate: int = 0) -> float:
    sent, dur, _ = finish_trafgen(start_trafgen(net, cfg, count, rate))
    return sent / dur


def iface_counter(name: str, counter: str) -> int:
    with open(f"/sys/class/net/{name}/statistics/{counter}") as f:
        return int(f.read())


# -- one row ------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    kind: str
    workers: int = 1
    rate: int = 0
    impl: str = "-"
    sent: int = 0
    captured: int = 0
    received: int = 0
    drops: int = 0
    seconds: float = 0.0
    gen_pps: float = 0.0
    cpu_s: float = 0.0
    per_worker: list[dict[str, Any]] = field(default_factory=list)
    flows_seen: int = 0
    flows_shared: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def cap_pps(self) -> float:
        return self.captured / self.seconds if self.seconds else 0.0

    @property
    def us_per_pkt(self) -> float:
        return self.cpu_s / self.captured * 1e6 if self.captured else float("nan")


def start_capturer(kind: str, outer: str, args: argparse.Namespace) -> tuple[subprocess.Popen[str], list[int]]:
    """Start the row's capture process; returns it and the pids whose CPU is the capture's."""
    buf = args.buffer_mb << 20
    if kind == "tcpdump":
        cmd = ["taskset", "-c", args.capture_cpus, "tcpdump", "-i", outer, "-p", "-n", "-w", "/dev/null",
               "-B", str(buf >> 10)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
        return proc, [proc.pid]
    _workers, core = split_kind(kind)
    cmd = ["taskset", "-c", args.capture_cpus, sys.executable, os.path.abspath(__file__), "--group", kind,
           "--iface", outer, "--buffer-mb", str(args.buffer_mb)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=core_env(core or "c"))
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"{kind}: the group did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
    ready = json.loads(line[6:])
    require_core(f"the {kind} group process (afpacket.IMPLEMENTATION)", core, ready["implementation"])
    return proc, [int(p) for p in ready["pids"]]


def run_row(kind: str, net: Any, cfg: str, count: int, rate: int, args: argparse.Namespace) -> Row:
    workers, core = split_kind(kind)
    row = Row(kind, workers=workers or 1, rate=rate)
    proc, pids = start_capturer(kind, net.outer, args)
    try:
        time.sleep(0.3)  # let set-up settle: the workers now sleep in poll
        outer_tx0 = iface_counter(net.outer, "tx_packets")
        cpu0 = sum(cpu_clock(p) for p in pids)
        tg = start_trafgen(net, cfg, count, rate)
        last_cpu, last_busy_t = cpu0, 0.0
        t_exit: float | None = None
        dur = 0.0
        while True:  # sample the capture's CPU until it has been idle --quiet s after trafgen ended
            time.sleep(SAMPLE_INTERVAL)
            now = time.monotonic()
            c = sum(cpu_clock(p) for p in pids)
            if c - last_cpu > BUSY_SHARE * SAMPLE_INTERVAL:
                last_busy_t = now
            last_cpu = c
            if t_exit is None and tg.poll() is not None:
                row.sent, dur, t_exit = finish_trafgen(tg)
            if t_exit is not None and now - max(last_busy_t, t_exit) >= args.quiet:
                break
            if t_exit is not None and now - t_exit > args.max_drain:
                row.notes.append(f"still busy {args.max_drain:.0f} s after trafgen ended")
                break
        row.cpu_s = last_cpu - cpu0
        outer_tx = iface_counter(net.outer, "tx_packets") - outer_tx0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise RuntimeError(f"{kind} did not stop on SIGINT:\n{err}") from None
    assert t_exit is not None
    row.gen_pps = row.sent / dur if dur else 0.0
    t_first = t_exit - dur  # trafgen's send time ends when it exits
    row.seconds = max(t_exit, last_busy_t) - t_first
    if outer_tx:
        row.notes.append(f"outer sent {outer_tx} frames (something answered)")
    if kind == "tcpdump":

        def grab(pat: str) -> int:
            m = re.search(r"(\d+) packets? " + pat, err)
            return int(m.group(1)) if m else -1

        row.captured, row.received, row.drops = grab("captured"), grab("received by filter"), grab("dropped by kernel")
        return row
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{kind}: the group process gave no result:\n{out}\n{err}") from None
    row.impl = str(res["implementation"])
    require_core(f"the {kind} group process (afpacket.IMPLEMENTATION)", core, res["implementation"], err)
    row.captured, row.received, row.drops = res["handled"], res["received"], res["drops"]
    seen: dict[str, int] = {}
    for w in res["workers"]:
        if w["error"]:
            row.notes.append(f"worker {w['index']}: {w['error'].strip().splitlines()[-1]}")
        r = w["result"] or {}
        require_core(f"the {kind} worker {w['index']} (afpacket.IMPLEMENTATION)", core, r.get("implementation"), err)
        flows = r.get("flows", {})
        for k in flows:
            seen[k] = seen.get(k, 0) + 1
        if sum(flows.values()) != w["handled"]:
            row.notes.append(f"worker {w['index']}: flow counts {sum(flows.values())} != handled {w['handled']}")
        row.per_worker.append({"handled": w["handled"], "drops": w["drops"], "flows": len(flows)})
    row.flows_seen = len(seen)
    row.flows_shared = sum(1 for v in seen.values() if v > 1)
    if row.received != row.sent:
        row.notes.append(f"received {row.received} != sent {row.sent}")
    if row.captured + row.drops != row.received:
        row.notes.append(f"captured + drops = {row.captured + row.drops} != received")
    if row.flows_shared:
        row.notes.append(f"{row.flows_shared} flows seen by more than one worker")
    return row


# -- report -----------------------------------------------------------------------------------------------------
def speedup(rows: list[Row], r: Row) -> float | None:
    """``r``'s captured pps over the 1-worker row of its core."""
    workers, core = split_kind(r.kind)
    if not workers:
        return None
    one = next((x for x in rows if split_kind(x.kind) == (1, core)), None)
    return r.cap_pps / one.cap_pps if one and one.cap_pps else None


def print_report(
    rows: list[Row], tg_alone: list[float], rates: dict[str, tuple[int, str]], args: argparse.Namespace
) -> None:
    print()
    print(f"Fanout benchmark: {FRAME_SIZE}-byte UDP frames over {args.flows} flows, buffer {args.buffer_mb} MiB per "
          f"ring, trafgen -P 1 on CPU {GEN_CPU} (paced with -b), capture processes float over "
          f"CPUs {args.capture_cpus}; workers count flows in a dict per packet")
    if tg_alone:
        print("trafgen alone (nothing capturing, full speed): " + ", ".join(f"{p:,.0f} pps" for p in tg_alone))
    for core, (rate, why) in rates.items():
        print(f"rate for the {core} rows: {f'{rate:,} pps' if rate else 'full speed'} ({why})")
    hdr = (f"{'row':<9} {'core':<6} {'wk':>2} {'sent':>9} {'captured':>9} {'received':>9} {'drops':>8} {'seconds':>7} "
           f"{'gen pps':>9} {'capt pps':>9} {'x 1wk':>5} {'us/pkt':>6}  {'per worker (handled/flows)':<28} notes")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        sp = speedup(rows, r)
        split = " ".join(f"{w['handled'] / max(r.captured, 1):.0%}/{w['flows']}" for w in r.per_worker) or "-"
        print(f"{r.kind:<9} {r.impl:<6} {r.workers:>2} {r.sent:>9} {r.captured:>9} {r.received:>9} {r.drops:>8} "
              f"{r.seconds:>7.2f} {r.gen_pps:>9,.0f} {r.cap_pps:>9,.0f} {(f'{sp:.2f}' if sp else '-'):>5} "
              f"{r.us_per_pkt:>6.2f}  {split:<28} {'; '.join(r.notes)}")
    print()
    print("  wN: CaptureGroup(outer, workers=N, fanout='hash', on_packet=f), f: k = bytes(pkt.data[26:38]); "
          "d[k] = d.get(k, 0) + 1")
    print(f"  -py: the group's process (and so its forked workers) started with {NO_EXTENSIONS_ENV}=1; core: what the "
          "workers reported")
    print("  tcpdump: tcpdump -p -n -w /dev/null (one process, libpcap)")
    print("  seconds: from trafgen's first frame to the last busy moment of the capture; capt pps = captured / "
          "seconds; x 1wk: capt pps over the 1-worker row of the same core; us/pkt: CPU of all the capture "
          "processes per captured packet; per worker: share of captured / flows counted")
    print()
    print(f"target (issue 10): where 1 worker drops, 2 workers capture >= {TARGET_SPEEDUP:g}x as many packets per "
          "second with 0 drops")
    for core in ("c", "python"):
        suffix = "" if core == "c" else PY_SUFFIX
        one = next((r for r in rows if r.kind == "w1" + suffix), None)
        two = next((r for r in rows if r.kind == "w2" + suffix), None)
        label = "C core" if core == "c" else "pure-Python core (for information)"
        if one is None or two is None:
            print(f"  {label}: not run (needs w1{suffix} and w2{suffix})")
            continue
        sp = two.cap_pps / one.cap_pps if one.cap_pps else 0.0
        facts = (f"1 worker {one.cap_pps:,.0f} pps, {one.drops:,} drops; 2 workers {two.cap_pps:,.0f} pps, "
                 f"{two.drops:,} drops; {sp:.2f}x")
        if one.drops == 0:
            print(f"  {label}: NOT SHOWN, 1 worker did not drop at this rate ({facts}): raise --rate")
        else:
            ok = two.drops == 0 and sp >= TARGET_SPEEDUP
            print(f"  {label}: {'MET' if ok else 'NOT MET'} ({facts})")
        share = max((w["handled"] / max(two.captured, 1) for w in two.per_worker), default=0.0)
        if share:
            print(f"      the busier of the 2 workers took {share:.1%} of the packets: with that split the "
                  f"ceiling is {1 / share:.2f}x one worker's rate, on free CPUs")


# -- backlog mode: send everything while the workers wait, then time the drain --------------------------------------
#: V3 block size of the backlog rings, and their block retire timeout: long, so the kernel's timer retires a
#: partly filled block (wasting the rest of it) at most once a second; the gate opens only after it has
#: retired the last one
BACKLOG_BLOCK = 1 << 20
BACKLOG_BLOCK_TIMEOUT_MS = 1000
#: spare blocks per ring: one per second of sending at this slowest rate (timer retirements), plus a few
BACKLOG_SLOWEST_PPS = 50_000
BACKLOG_SPARE_BLOCKS = 4
#: a worker's drain loop ends at its packet count, or after this long without a packet (a safety net)
BACKLOG_IDLE = 2.0
#: the rings together may take at most this share of MemAvailable
BACKLOG_MEMORY_SHARE = 0.8


def v3_slot(frame: int) -> int:
    """Bytes one ``frame``-byte Ethernet frame takes in a V3 block: the kernel puts the network header at
    TPACKET_ALIGN(tp_hdrlen + max(maclen, 16)), the frame starts maclen (14) before it, and the next packet
    starts at the 8-byte-aligned end (tp_next_offset)."""
    from afpacket import abi

    netoff = abi.tpacket_align(abi.TPACKET3_HDRLEN + 16)
    return (netoff - 14 + frame + 7) & ~7


def backlog_ring(count: int) -> tuple[int, int]:
    """(buffer_size, packets it holds) of a V3 ring of BACKLOG_BLOCK blocks holding ``count`` frames (the
    whole run: which share of the flows a worker gets depends on the kernel's hash seed, so every ring can
    take all of it) plus the blocks the retire timer may leave partly filled."""
    from afpacket.geometry import V3_BLOCK_HDR

    per_block = (BACKLOG_BLOCK - V3_BLOCK_HDR) // v3_slot(FRAME_SIZE)
    blocks = -(-count // per_block) + math.ceil(count / BACKLOG_SLOWEST_PPS / (BACKLOG_BLOCK_TIMEOUT_MS / 1000))
    blocks += BACKLOG_SPARE_BLOCKS
    return blocks * BACKLOG_BLOCK, (blocks - BACKLOG_SPARE_BLOCKS) * per_block


def backlog_main(kind: str, iface: str, count: int, fanout: str) -> None:
    """The group process of a backlog row: start the workers behind the gate, say READY, wait for ``GO
    <sent>`` on stdin (trafgen has sent everything), check the workers' kernel counters, open the gate,
    print every worker's drain as one JSON line."""
    import afpacket
    from afpacket.geometry import ring_memory_limit

    workers, _core = split_kind(kind)
    buffer_size, _holds = backlog_ring(count)
    gate_r, gate_w = os.pipe()  # inherited by the forked workers: each reads one byte when the gate opens

    cpus = sorted(os.sched_getaffinity(0), reverse=True)

    def drain(cap: afpacket.Capture, index: int) -> dict[str, Any]:
        os.close(gate_w)
        if workers <= len(cpus):  # a CPU of its own (worker 0 on the highest: away from trafgen's CPU 0)
            os.sched_setaffinity(0, {cpus[index]})
        os.read(gate_r, 1)
        expected = cap.stats().packets  # everything is in the ring already (the parent checked)
        counts: dict[bytes, int] = {}
        first_ns = 0
        cpu0 = time.process_time()
        it = cap.packets(count=expected, timeout=BACKLOG_IDLE)
        for pkt in it:  # the first packet apart, to stamp its time without a test per packet
            first_ns = time.monotonic_ns()
            k = bytes(pkt.data[26:38])
            counts[k] = counts.get(k, 0) + 1
            break
        for pkt in it:  # the per-packet work being measured: the live rows' on_packet, inline
            k = bytes(pkt.data[26:38])  # IPv4 source, destination, UDP ports
            counts[k] = counts.get(k, 0) + 1
        last_ns = time.monotonic_ns()
        cpu = time.process_time() - cpu0
        return {"packets": sum(counts.values()), "expected": expected, "first_ns": first_ns, "last_ns": last_ns,
                "cpu_s": cpu, "flows": sorted(k.hex() for k in counts), "implementation": afpacket.IMPLEMENTATION}

    limit = ring_memory_limit()
    group = afpacket.CaptureGroup(
        iface, workers=workers, fanout=fanout, worker=drain, buffer_size=buffer_size, block_size=BACKLOG_BLOCK,
        block_timeout_ms=BACKLOG_BLOCK_TIMEOUT_MS, allow_large_ring=limit is not None and buffer_size > limit,
    )
    group.start()
    os.close(gate_r)
    print("READY " + json.dumps({"pids": [r.pid for r in group.reports], "implementation": afpacket.IMPLEMENTATION,
                                 "buffer_size": buffer_size}), flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "GO":
        group.close()
        sys.exit("no GO from the benchmark")
    sent = int(line[1])
    deadline = time.monotonic() + 10
    while True:  # the workers report their counters every REPORT_INTERVAL
        group.poll(0.1)
        st = group.stats()
        if st.received >= sent or time.monotonic() > deadline:
            break
    time.sleep(BACKLOG_BLOCK_TIMEOUT_MS / 1000 + 0.5)  # the retire timer hands the last partial blocks over
    group.poll(0.3)
    before = group.stats()
    t_gate = time.monotonic_ns()
    os.write(gate_w, b"g" * workers)
    st = group.wait()
    out = {
        "implementation": afpacket.IMPLEMENTATION, "t_gate": t_gate, "buffer_size": buffer_size,
        "before": {"received": before.received, "drops": before.drops},
        "received": st.received, "drops": st.drops,
        "workers": [{"index": w.index, "received": w.received, "drops": w.drops, "result": w.result,
                     "error": w.error} for w in st.workers],
    }
    print(json.dumps(out), flush=True)


@dataclass
class BacklogRow:
    kind: str
    fanout: str
    workers: int
    core: str
    impl: str = "-"
    sent: int = 0
    gen_pps: float = 0.0
    received: int = 0
    drops: int = 0
    packets: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    ring_mb: int = 0
    shares: list[float] = field(default_factory=list)
    worker_pps: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.kind + ("" if self.fanout == "hash" else f" {self.fanout}")

    @property
    def pps(self) -> float:
        return self.packets / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        """Every frame reached a ring before the gate, none dropped, every one drained."""
        return self.drops == 0 and self.received == self.sent == self.packets and not self.notes


def run_backlog_row(kind: str, fanout: str, net: Any, cfg: str, args: argparse.Namespace) -> BacklogRow:
    workers, core = split_kind(kind)
    assert core is not None
    row = BacklogRow(kind, fanout, workers, core)
    cmd = ["taskset", "-c", args.capture_cpus, sys.executable, os.path.abspath(__file__), "--backlog-group", kind,
           "--iface", net.outer, "--count", str(args.count), "--fanout", fanout]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=core_env(core))
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("READY "):
            raise RuntimeError(f"{kind}: the group did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
        ready = json.loads(line[6:])
        require_core(f"the {kind} backlog group process (afpacket.IMPLEMENTATION)", core, ready["implementation"])
        row.ring_mb = int(ready["buffer_size"]) >> 20
        outer_tx0 = iface_counter(net.outer, "tx_packets")
        row.sent, dur, _ = finish_trafgen(start_trafgen(net, cfg, args.count, 0))
        row.gen_pps = row.sent / dur if dur else 0.0
        out, err = proc.communicate(f"GO {row.sent}\n", timeout=600)
        outer_tx = iface_counter(net.outer, "tx_packets") - outer_tx0
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{kind}: the backlog group gave no result:\n{out}\n{err}") from None
    row.impl = str(res["implementation"])
    require_core(f"the {kind} backlog group process (afpacket.IMPLEMENTATION)", core, res["implementation"], err)
    row.received, row.drops = res["before"]["received"], res["before"]["drops"]
    if (res["received"], res["drops"]) != (row.received, row.drops):
        row.notes.append(f"counters moved after the gate: {res['received']} received, {res['drops']} drops")
    if outer_tx:
        row.notes.append(f"outer sent {outer_tx} frames (something answered)")
    t_gate = int(res["t_gate"])
    last = t_gate
    seen: dict[str, int] = {}
    for w in res["workers"]:
        r = w["result"] or {}
        if w["error"]:
            row.notes.append(f"worker {w['index']}: {w['error'].strip().splitlines()[-1]}")
            row.worker_pps.append(0.0)
            continue
        require_core(f"the {kind} worker {w['index']} (afpacket.IMPLEMENTATION)", core, r.get("implementation"), err)
        n = int(r["packets"])
        row.packets += n
        row.cpu_s += float(r["cpu_s"])
        if n != r["expected"]:
            row.notes.append(f"worker {w['index']} drained {n} of {r['expected']}")
        own = (int(r["last_ns"]) - t_gate) / 1e9
        row.worker_pps.append(n / own if n and own > 0 else 0.0)
        if n:
            last = max(last, int(r["last_ns"]))
        for k in r["flows"]:
            seen[k] = seen.get(k, 0) + 1
    row.seconds = (last - t_gate) / 1e9
    row.shares = [(w["result"] or {}).get("packets", 0) / max(row.packets, 1) for w in res["workers"]]
    if len(seen) != args.flows:
        row.notes.append(f"{len(seen)} flows counted, {args.flows} sent")
    shared = sum(1 for v in seen.values() if v > 1)
    if shared:
        row.notes.append(f"{shared} flows seen by more than one worker")
    if row.received != row.sent:
        row.notes.append(f"received {row.received} != sent {row.sent}")
    if row.drops:
        row.notes.append(f"{row.drops} kernel drops")
    return row


def backlog_kinds(kinds: list[str], fanouts: list[str]) -> list[tuple[str, str]]:
    """(kind, fanout) of the backlog rows: the afpacket rows of --only; a 1-worker row once (its fanout
    does not matter), the others once per fanout."""
    out: list[tuple[str, str]] = []
    for kind in kinds:
        workers, core = split_kind(kind)
        if not core:
            continue
        for fo in fanouts[:1] if workers == 1 else fanouts:
            out.append((kind, fo))
    return out


def print_backlog_report(rows: list[BacklogRow], args: argparse.Namespace) -> None:
    print()
    print(f"Backlog mode: {args.count:,} {FRAME_SIZE}-byte UDP frames over {args.flows} flows sent by trafgen "
          f"(full speed, CPU {GEN_CPU}) while the workers wait at a gate, each worker's V3 ring holding the whole "
          f"run; then the gate opens and the drain is timed (worker i pinned to CPU N-1-i of CPUs {args.capture_cpus}, "
          "nothing else of the benchmark runs)")
    hdr = (f"{'row':<10} {'core':<6} {'wk':>2} {'sent':>9} {'received':>9} {'drops':>5} {'packets':>9} "
           f"{'drain s':>7} {'pps':>10} {'x 1wk':>5} {'>=1.8x':>6} {'us/pkt':>6} {'ring MiB':>8} "
           f"{'gen pps':>9}  {'per worker: share/pps':<32} notes")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        one = next((x for x in rows if x.workers == 1 and x.core == r.core), None)
        sp = r.pps / one.pps if one and one.pps and r.workers > 1 else None
        verdict = "-" if sp is None else ("yes" if sp >= TARGET_SPEEDUP and r.ok and one and one.ok else "no")
        us = r.cpu_s / r.packets * 1e6 if r.packets else float("nan")
        split = " ".join(f"{s:.1%}/{p / 1000:,.0f}k" for s, p in zip(r.shares, r.worker_pps, strict=True))
        print(f"{r.label:<10} {r.impl:<6} {r.workers:>2} {r.sent:>9} {r.received:>9} {r.drops:>5} {r.packets:>9} "
              f"{r.seconds:>7.3f} {r.pps:>10,.0f} {(f'{sp:.2f}' if sp else '-'):>5} {verdict:>6} {us:>6.2f} "
              f"{r.ring_mb:>8} {r.gen_pps:>9,.0f}  {split:<32} {'; '.join(r.notes)}")
    print()
    print("  drain s: from the gate opening to the last worker's last packet; pps = packets / drain s; x 1wk: pps "
          "over the 1-worker row of the same core; us/pkt: the workers' CPU per packet during the drain; per "
          "worker: its share of the packets / its own packets over (its last packet - gate)")
    print("  each worker: k = bytes(pkt.data[26:38]); d[k] = d.get(k, 0) + 1 for every pkt in "
          f"cap.packets(count=in_ring, timeout={BACKLOG_IDLE:g}); received/drops: the workers' kernel counters "
          "before the gate")
    print()
    print(f"target (issue 10), backlog mode: 2 workers drain >= {TARGET_SPEEDUP:g}x as many packets per second as 1, "
          "with 0 drops and every frame received and handled")
    for r in rows:
        if r.workers != 2:
            continue
        one = next((x for x in rows if x.workers == 1 and x.core == r.core), None)
        label = f"{'C core' if r.core == 'c' else 'pure-Python core'}, {r.fanout}"
        if one is None or not one.pps:
            print(f"  {label}: not run (needs the 1-worker row of that core)")
            continue
        sp = r.pps / one.pps
        ok = sp >= TARGET_SPEEDUP and r.ok and one.ok
        top = max(r.shares, default=0.0)
        ceiling = f"; the split's ceiling 1/{top:.1%} = {1 / top:.2f}x" if top else ""
        print(f"  {label}: {'MET' if ok else 'NOT MET'} (1 worker {one.pps:,.0f} pps, 2 workers {r.pps:,.0f} pps, "
              f"{sp:.2f}x{ceiling}; drops {one.drops} / {r.drops})")


# -- main ----------------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=4_000_000, help="frames per row (default 4,000,000)")
    ap.add_argument("--flows", type=int, default=64, help="UDP flows, 2..256 (default 64)")
    ap.add_argument("--rate", default="auto",
                    help="trafgen's pace in packets/s (-b), 0 for full speed, or 'auto' (default): "
                         f"{AUTO_FACTOR:g}x one worker's captured rate at full speed, per core")
    ap.add_argument("--only", default=",".join(DEFAULT_KINDS),
                    help=f"comma list of rows: tcpdump, wN, wN{PY_SUFFIX} (N 1..8) (default {','.join(DEFAULT_KINDS)})")
    ap.add_argument("--buffer-mb", type=int, default=64, help="ring / socket buffer per worker, and tcpdump's (64 MiB)")
    ap.add_argument("--calibrate-count", type=int, default=0,
                    help="frames for --rate auto's calibration run (default count/8, at least 200,000)")
    ap.add_argument("--quiet", type=float, default=1.5,
                    help="the capture counts as done after this long idle (> libpcap's 1 s timeout)")
    ap.add_argument("--max-drain", type=float, default=300.0, help="give up draining after this many seconds")
    ap.add_argument("--mode", choices=("both", "live", "backlog"), default="both",
                    help="live: trafgen paced while the group captures; backlog: trafgen fills the rings while the "
                         "workers wait, then the drain is timed; both (default): live, then backlog")
    ap.add_argument("--fanout", default="hash",
                    help="backlog mode: comma list of fanout modes for the 2-worker rows, hash and/or cbpf "
                         "(default hash)")
    ap.add_argument("--group", help=argparse.SUPPRESS)
    ap.add_argument("--backlog-group", help=argparse.SUPPRESS)
    ap.add_argument("--iface", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.group:
        group_main(args.group, args.iface, args.buffer_mb << 20)
        return
    if args.backlog_group:
        backlog_main(args.backlog_group, args.iface, args.count, args.fanout)
        return

    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    bad = [k for k in kinds if k != "tcpdump" and not KIND_RE.match(k)]
    if bad or not kinds:
        ap.error(f"unknown row(s) {bad}; give tcpdump, wN or wN{PY_SUFFIX} (N 1..8)")
    if args.count < 1 or args.buffer_mb < 1:
        ap.error("--count and --buffer-mb must be positive")
    if not 2 <= args.flows <= 256:
        ap.error("--flows must be 2..256 (one byte of the UDP source port counts them)")
    fanouts = [f.strip() for f in args.fanout.split(",") if f.strip()]
    if not fanouts or any(f not in ("hash", "cbpf") for f in fanouts):
        ap.error(f"--fanout takes hash and/or cbpf, not {args.fanout!r}")
    live = args.mode in ("both", "live")
    backlog = backlog_kinds(kinds, fanouts) if args.mode in ("both", "backlog") else []
    if args.mode == "backlog" and not backlog:
        ap.error("--mode backlog needs afpacket rows in --only (wN, wN-py)")
    if backlog:
        from afpacket.geometry import available_memory

        ring, _holds = backlog_ring(args.count)
        most = max(split_kind(k)[0] for k, _f in backlog) * ring
        avail = available_memory()
        if avail is not None and most > BACKLOG_MEMORY_SHARE * avail:
            sys.exit(f"--mode backlog: {most >> 20} MiB of rings (each holds all {args.count:,} frames) is more "
                     f"than {BACKLOG_MEMORY_SHARE:.0%} of MemAvailable ({avail >> 20} MiB): lower --count")
    if args.rate == "auto":
        fixed_rate: int | None = None
    else:
        try:
            fixed_rate = int(args.rate)
        except ValueError:
            ap.error(f"--rate must be a number of packets/s, 0 or 'auto', not {args.rate!r}")
        if fixed_rate < 0:
            ap.error("--rate must not be negative")
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, packet sockets)")
    for tool in ("trafgen", "taskset", "ip") + (("tcpdump",) if "tcpdump" in kinds else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    cpus = os.sched_getaffinity(0)
    if len(cpus) < 2 or GEN_CPU not in cpus:
        sys.exit(f"needs at least 2 CPUs, CPU {GEN_CPU} among them")
    cores = sorted({c for _w, c in map(split_kind, kinds) if c})
    for core in cores:  # before any traffic: each core the run needs must be the one a worker gets
        probe_core(core)
    args.capture_cpus = ",".join(map(str, sorted(cpus)))  # the capture processes float over all of them
    os.sched_setaffinity(0, {GEN_CPU})  # keep this sampler with the generator

    from afpacket.testnet import VethPair

    rows: list[Row] = []
    tg_alone: list[float] = []
    rates: dict[str, tuple[int, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fanout") as tmp, VethPair("bfo", addresses=False) as net:
        # the frames go to an address nobody owns: the outer end must not forward them anywhere
        fwd = f"/proc/sys/net/ipv4/conf/{net.outer}/forwarding"
        with open(fwd, "w") as f:
            f.write("0")
        with open(fwd) as f:
            if f.read().strip() != "0":
                sys.exit(f"FATAL: could not turn off IPv4 forwarding on {net.outer}")
        cfg = os.path.join(tmp, "flows.cfg")
        trafgen_flows_cfg(cfg, net.outer_mac, net.inner_mac, args.flows)
        trafgen_alone(net, cfg, 10_000)  # warm up (and a check of the configuration)
        tg_alone.append(trafgen_alone(net, cfg, args.count))
        print(f"trafgen alone: {tg_alone[-1]:,.0f} pps", flush=True)

        def run(kind: str, count: int, rate: int) -> Row:
            return run_row(kind, net, cfg, count, rate, args)

        def rate_for(core: str) -> int:
            if core in rates:
                return rates[core][0]
            if fixed_rate is not None:
                rates[core] = (fixed_rate, "--rate")
                return fixed_rate
            n = args.calibrate_count or max(200_000, args.count // 8)
            cal = run("w1" + ("" if core == "c" else PY_SUFFIX), n, 0)
            rate = math.ceil(AUTO_FACTOR * cal.cap_pps / 1000) * 1000
            why = (f"auto: {AUTO_FACTOR:g}x the {cal.cap_pps:,.0f} pps one worker captured at full speed, "
                   f"{cal.drops:,} drops of {cal.sent:,}")
            if rate >= tg_alone[0]:
                why += (f"; above what trafgen sends alone ({tg_alone[0]:,.0f} pps), so it sends at full speed and "
                        "the target cannot be shown with this generator")
                rate = 0
            rates[core] = (rate, why)
            print(f"rate for the {core} rows: {f'{rate:,} pps' if rate else 'full speed'} ({why})", flush=True)
            return rate

        for kind in kinds if live else []:
            _w, row_core = split_kind(kind)
            rate = rate_for(row_core or "c")
            row = run(kind, args.count, rate)
            rows.append(row)
            print(f"{kind}: captured {row.captured:,}/{row.sent:,} drops {row.drops:,} {row.cap_pps:,.0f} pps "
                  f"{row.us_per_pkt:.2f} us/pkt", flush=True)
            if row.workers and row.impl != "-" and row.captured >= 100 * args.flows and row.flows_seen != args.flows:
                sys.exit(f"FATAL: {kind} counted {row.flows_seen} flows, the generator was set up for {args.flows}: "
                         f"the trafgen configuration does not spread the flows ({cfg})")
        if live:
            tg_alone.append(trafgen_alone(net, cfg, args.count))
            print_report(rows, tg_alone, rates, args)
        brows: list[BacklogRow] = []
        for kind, fo in backlog:
            b = run_backlog_row(kind, fo, net, cfg, args)
            brows.append(b)
            print(f"backlog {b.label}: {b.packets:,}/{b.sent:,} in {b.seconds:.3f} s, {b.pps:,.0f} pps, drops "
                  f"{b.drops}, split {' '.join(f'{x:.1%}' for x in b.shares)}", flush=True)
        if brows:
            print_backlog_report(brows, args)


if __name__ == "__main__":
    main()

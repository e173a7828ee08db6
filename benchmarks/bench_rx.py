#!/usr/bin/env python3
"""RX capture benchmark: afpacket V1/V2/V3, C and pure-Python cores, against tcpdump, pcapy-ng and scapy.

For every capturer, in one run and over one private veth pair (``afpacket.testnet.VethPair``):

1. start the capturer in its own process, pinned to CPU 1 (``taskset -c 1``), on the *outer* end;
2. once it is ready, run ``trafgen`` pinned to CPU 0 inside the namespace (``-P 1``), sending
   ``--count`` frames of ``--size`` bytes from the *inner* end, so they arrive on *outer*;
3. sample the capture process's CPU clock (``clock_gettime`` on the process CPU clock: user+sys,
   ns resolution) from just before trafgen starts until the capturer has been quiet for
   ``--quiet`` seconds after trafgen finished; then SIGINT the capturer, which reports how many
   packets its loop saw and the kernel's counters (received / dropped).

Every afpacket kind runs twice: as is on the C ring kernels (the run stops if a worker reports
``afpacket.IMPLEMENTATION != "c"``), and with a ``-py`` suffix in a worker started with
``AFPACKET_NO_EXTENSIONS=1`` (pure Python). The per-packet Python loops touch every packet (read its
first byte); ``v3-count`` and ``v3-columns`` only count per batch. The issue's targets are printed
after the table, MET / NOT MET from the same run. See benchmarks/README.md.

Run as root:  python benchmarks/bench_rx.py [--count 2000000] [--only v3,tcpdump] [--buffer-mb 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

GEN_CPU = 0
CAP_CPU = 1
#: afpacket's ring kernels: a kind ending in PY_SUFFIX runs its worker with NO_EXTENSIONS_ENV=1 (pure
#: Python); the plain kind runs the C extension, and the run stops if it did not get it
PY_SUFFIX = "-py"
NO_EXTENSIONS_ENV = "AFPACKET_NO_EXTENSIONS"
AFPACKET_KINDS = ["v1", "v2", "v3", "v3-frames", "v3-count", "v3-columns"]
OTHER_KINDS = ["tcpdump", "pcapy", "pcapy-batch", "scapy"]
ALL_KINDS = [*AFPACKET_KINDS, *(k + PY_SUFFIX for k in AFPACKET_KINDS), *OTHER_KINDS]
DESCRIPTIONS = {
    "v1": "afpacket TPACKET_V1, for p in cap: p.data[0]",
    "v2": "afpacket TPACKET_V2, for p in cap: p.data[0]",
    "v3": "afpacket TPACKET_V3, for p in cap: p.data[0]",
    "v3-frames": "afpacket TPACKET_V3, for b in cap.frames(): b[0] (bytes, no packet objects)",
    "v3-count": "afpacket TPACKET_V3, for b in cap.batches(): n += b.count (no per-packet work)",
    "v3-columns": "afpacket TPACKET_V3, for c in cap.columns(): n += len(c) (metadata arrays per block)",
    "tcpdump": "tcpdump -w /dev/null (C, libpcap V3)",
    "pcapy": "pcapy-ng dispatch(-1, cb), cb: data[0]",
    "pcapy-batch": "pcapy-ng next_batch(4096), buf[off] per pkt",
    "scapy": "scapy sniff(store=False, prn=cb)",
}
for _k in AFPACKET_KINDS:
    DESCRIPTIONS[_k + PY_SUFFIX] = DESCRIPTIONS[_k] + f"; pure-Python core ({NO_EXTENSIONS_ENV}=1)"
    DESCRIPTIONS[_k] += "; C core"

#: the issue's reference figures (us/pkt), and the previous session's pure-Python figures (target 5)
REFERENCE_US = {"tcpdump": "0.05-0.08 (issue)", "pcapy": "0.14 (issue)"}
PREVIOUS_PURE_US = {"v1": 2.41, "v2": 2.58, "v3": 1.579, "v3-frames": 0.858}
for _k, _v in PREVIOUS_PURE_US.items():
    REFERENCE_US[_k + PY_SUFFIX] = f"{_v} (prev. pure)"
#: the issue's targets: CPU/packet ratios
TARGET_V3_VS_PCAPY = 0.5  # "v3" (packet objects, C core) <= 0.5x pcapy-ng's callback loop
TARGET_FRAMES_VS_TCPDUMP = 2.0  # "v3-frames" <= 2x tcpdump
TARGET_BATCH_VS_TCPDUMP = 1.0  # "v3-count", "v3-columns" <= 1x tcpdump

SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33


# -- the capture side: one process per capturer ----------------------------------------------------
def _ready() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def split_kind(kind: str) -> tuple[str, str | None]:
    """(afpacket kind without the core suffix, the core it must run: "c" / "python"), or (kind, None)
    for the other capturers: ``"v3-py"`` -> ``("v3", "python")``, ``"v3"`` -> ``("v3", "c")``."""
    base = kind.removesuffix(PY_SUFFIX)
    if base not in AFPACKET_KINDS:
        return kind, None
    return base, "python" if kind.endswith(PY_SUFFIX) else "c"


def core_env(core: str) -> dict[str, str]:
    """This environment, with the variable that makes afpacket pick ``core`` at import."""
    env = dict(os.environ)
    env.pop(NO_EXTENSIONS_ENV, None)
    if core == "python":
        env[NO_EXTENSIONS_ENV] = "1"
    return env


def probe_core(core: str) -> str:
    """The afpacket.IMPLEMENTATION a fresh interpreter gets in :func:`core_env` (``core``); stops the run
    loudly if it is not ``core`` (e.g. the C extension is not built or does not load)."""
    p = subprocess.run(
        [sys.executable, "-c", "import afpacket; print(afpacket.IMPLEMENTATION)"],
        env=core_env(core),
        capture_output=True,
        text=True,
    )
    got = p.stdout.strip()
    require_core(
        f"import afpacket ({NO_EXTENSIONS_ENV}={core_env(core).get(NO_EXTENSIONS_ENV, '')!r})", core, got, p.stderr
    )
    return got


def require_core(what: str, want: object, got: object, detail: str = "") -> None:
    if got != want:
        raise SystemExit(
            f"FATAL: {what} ran afpacket's {got!r} ring kernels, expected {want!r}; its numbers would be "
            f"mislabelled, so the run stops here.\n{detail}".rstrip()
        )


def worker(kind: str, iface: str, buffer_size: int, profile: str | None) -> None:
    """Capture until SIGINT, touching every packet; print a JSON line with the results."""
    result: dict[str, object] = {"kind": kind}
    base, _core = split_kind(kind)
    if base in AFPACKET_KINDS:
        import afpacket

        result["module"] = afpacket.__file__
        result["implementation"] = afpacket.IMPLEMENTATION
        cap = afpacket.Capture(iface, version=int(base[1]), buffer_size=buffer_size)
        result["capture_kernels"] = cap.kernels.IMPLEMENTATION
        signal.signal(signal.SIGINT, lambda *_: cap.stop())
        prof = None
        if profile:
            import cProfile

            prof = cProfile.Profile()
        _ready()
        if prof:
            prof.enable()
        n = 0
        if base == "v3-frames":
            for b in cap.frames():  # the loop being measured
                n += 1
                x = b[0]  # touch the packet's bytes
        elif base == "v3-count":
            for batch in cap.batches():  # the loop being measured
                n += batch.count
        elif base == "v3-columns":
            for cols in cap.columns():  # the loop being measured
                n += len(cols)
        else:
            for p in cap:  # the loop being measured
                n += 1
                x = p.data[0]  # touch the packet's bytes
        if prof:
            prof.disable()
            prof.dump_stats(profile)
        st = cap.stats()
        result.update(captured=n, received=st.received, drops=st.drops)
        cap.close()
    elif kind in ("pcapy", "pcapy-batch"):
        import pcapy

        r = pcapy.create(iface)
        r.set_snaplen(262144)
        r.set_promisc(0)
        r.set_timeout(100)
        r.set_buffer_size(buffer_size)
        r.activate()
        # libpcap's V3 reader polls without a timeout (it relies on the block timeout), so a blocking
        # handle never returns on an idle link: read non-blocking and wait with select ourselves.
        r.setnonblock(1)
        fd = r.getfd()
        stop = False

        def on_int(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, on_int)
        n = 0
        _ready()
        if kind == "pcapy":

            def cb(hdr: object, data: bytes) -> None:
                nonlocal n
                n += 1
                x = data[0]  # noqa: F841

            while not stop:
                if not r.dispatch(-1, cb):
                    select.select([fd], [], [], 0.1)
        else:
            while not stop:
                buf, meta = r.next_batch(4096)
                if not meta:
                    select.select([fd], [], [], 0.1)
                    continue
                offsets = memoryview(meta).cast("B").cast("I")[2::4]
                for off in offsets:
                    n += 1
                    x = buf[off]  # noqa: F841
        recv, drop, _ifdrop = r.stats()
        result.update(captured=n, received=recv, drops=drop)
    elif kind == "scapy":
        from scapy.all import conf, sniff  # scapy.all registers the link layers (Ether)

        s = conf.L2listen(iface=iface, promisc=False)
        s.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_size)
        n = 0

        def prn(pkt: object) -> None:
            nonlocal n
            n += 1
            x = bytes(pkt)[0]  # noqa: F841

        _ready()
        sniff(opened_socket=s, store=False, prn=prn)  # ends on KeyboardInterrupt (SIGINT)
        recv, drop = struct.unpack("II", s.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        result.update(captured=n, received=recv, drops=drop)
        s.close()
    else:
        raise SystemExit(f"unknown capturer {kind!r}")
    import resource

    result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # peak RSS, ring pages included
    print(json.dumps(result), flush=True)


# -- the orchestrating side ------------------------------------------------------------------------
def cpu_clock(pid: int) -> float:
    """User+sys CPU seconds of process ``pid`` (its CPUCLOCK_SCHED process clock, ns resolution)."""
    return time.clock_gettime(((~pid) << 3) | 2)


@dataclass
class Row:
    kind: str
    sent: int = 0
    captured: int = 0
    received: int = 0
    drops: int = 0
    gen_pps: float = 0.0
    cap_pps: float = 0.0
    cpu_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    impl: str = "-"  # afpacket's ring kernels the capturer ran ("c" / "python"), "-" for the others
    rss_mb: float = 0.0  # the capture process's peak RSS (Python capturers), MiB

    @property
    def us_per_pkt(self) -> float:
        return self.cpu_s / self.captured * 1e6 if self.captured else float("nan")


def trafgen_cfg(path: str, dst: str, src: str, size: int) -> None:
    macs = [f"0x{b}" for b in dst.split(":") + src.split(":")]
    # dst MAC = outer's, EtherType 0x88b5 (local experimental): nothing in the stack answers it
    with open(path, "w") as f:
        f.write("{ " + ", ".join(macs) + f", c16(0x88b5), fill(0x00, {size - 14}) }}\n")


def parse_trafgen(out: str) -> tuple[int, float]:
    m = re.search(r"(\d+) packets outgoing", out)
    t = re.search(r"(\d+) sec, (\d+) usec on CPU", out)
    if not m or not t:
        raise RuntimeError(f"cannot parse trafgen output:\n{out}")
    return int(m.group(1)), int(t.group(1)) + int(t.group(2)) / 1e6


def start_trafgen(net: object, cfg: str, count: int) -> subprocess.Popen[bytes]:
    return net.popen(  # type: ignore[attr-defined, no-any-return]
        "taskset",
        "-c",
        str(GEN_CPU),
        "trafgen",
        "-o",
        net.inner,
        "-i",
        cfg,  # type: ignore[attr-defined]
        "-n",
        str(count),
        "-P",
        "1",
        "--no-sock-mem",
        "-Q",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish_trafgen(tg: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    out, _ = tg.communicate(timeout=600)
    t_exit = time.monotonic()
    if tg.returncode != 0:
        raise RuntimeError(f"trafgen failed ({tg.returncode}):\n{out.decode(errors='replace')}")
    sent, dur = parse_trafgen(out.decode(errors="replace"))
    return sent, dur, t_exit


def run_trafgen_alone(net: object, cfg: str, count: int) -> tuple[int, float]:
    sent, dur, _ = finish_trafgen(start_trafgen(net, cfg, count))
    return sent, dur


@dataclass
class Measurement:
    cpu0: float
    cpu1: float
    sent: int
    dur: float
    t_tg_exit: float
    last_busy_t: float


def measure(pid: int, net: object, cfg: str, count: int, quiet: float, max_drain: float) -> Measurement:
    """Run trafgen once and sample capture process ``pid``'s CPU clock from just before it starts until
    the process has been quiet for ``quiet`` s after trafgen ended (or ``max_drain`` s passed)."""
    cpu0 = cpu_clock(pid)
    tg = start_trafgen(net, cfg, count)
    # Sample the capturer's CPU clock: busy periods tell when it finished (draining a backlog counts).
    interval = 0.01
    last_cpu, last_busy_t, last_change_t = cpu0, 0.0, time.monotonic()
    t_tg_exit = None
    sent = dur = 0
    while True:
        time.sleep(interval)
        now = time.monotonic()
        c = cpu_clock(pid)
        if c - last_cpu > 0.3 * interval:
            last_busy_t = now
        if c - last_cpu > 100e-6:
            last_change_t = now
        last_cpu = c
        if t_tg_exit is None and tg.poll() is not None:
            sent, dur, t_tg_exit = finish_trafgen(tg)
            last_change_t = max(last_change_t, t_tg_exit)
        if t_tg_exit is not None and now - last_change_t >= quiet:
            break
        if t_tg_exit is not None and now - t_tg_exit > max_drain:
            break
    cpu1 = cpu_clock(pid)
    return Measurement(cpu0, cpu1, sent, dur, t_tg_exit, last_busy_t)  # type: ignore[arg-type]


def run_one(kind: str, net: object, cfg: str, count: int, args: argparse.Namespace) -> Row:
    outer = net.outer  # type: ignore[attr-defined]
    buf = args.buffer_mb << 20
    if kind == "tcpdump":
        cmd = [
            "taskset",
            "-c",
            str(CAP_CPU),
            "tcpdump",
            "-i",
            outer,
            "-p",
            "-n",
            "-w",
            "/dev/null",
            "-B",
            str(buf >> 10),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
    else:
        cmd = [
            "taskset",
            "-c",
            str(CAP_CPU),
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            kind,
            "--iface",
            outer,
            "--buffer-mb",
            str(args.buffer_mb),
        ]
        if args.profile and kind == "v3":
            cmd += ["--profile-out", args.profile]
        _base, core = split_kind(kind)
        env = core_env(core) if core else None
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "READY":
            raise RuntimeError(f"{kind} worker did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
    time.sleep(0.2)  # let setup settle (the process is idle in poll now)
    m = measure(proc.pid, net, cfg, count, args.quiet, args.max_drain)
    cpu0, cpu1, sent, dur, t_tg_exit, last_busy_t = m.cpu0, m.cpu1, m.sent, m.dur, m.t_tg_exit, m.last_busy_t
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{kind} did not stop on SIGINT") from None
    row = Row(kind, sent=sent, gen_pps=sent / dur if dur else 0.0, cpu_s=cpu1 - cpu0)
    if kind == "tcpdump":

        def grab(pat: str) -> int:
            m = re.search(r"(\d+) packets? " + pat, err)
            return int(m.group(1)) if m else -1

        row.captured, row.received, row.drops = grab("captured"), grab("received by filter"), grab("dropped by kernel")
    else:
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(f"{kind} worker gave no result:\n{out}\n{err}") from None
        row.captured, row.received, row.drops = res["captured"], res["received"], res["drops"]
        row.rss_mb = float(res.get("maxrss_kb", 0)) / 1024
        _base, core = split_kind(kind)
        if core:
            row.impl = str(res.get("implementation"))
            require_core(f"the {kind} worker (afpacket.IMPLEMENTATION)", core, res.get("implementation"), err)
            require_core(f"the {kind} worker's Capture (cap.kernels)", core, res.get("capture_kernels"), err)
    t_send_start = t_tg_exit - dur  # type: ignore[operator]
    t_done = max(t_tg_exit, last_busy_t)  # type: ignore[type-var]
    row.cap_pps = row.captured / (t_done - t_send_start)
    if row.captured != row.sent:
        row.notes.append(f"missed {row.sent - row.captured}")
    if t_done > t_tg_exit + 0.05:  # type: ignore[operator]
        row.notes.append(f"drained {t_done - t_tg_exit:.2f}s after trafgen ended")  # type: ignore[operator]
    return row


def _verdict(ok: bool | None) -> str:
    return "n/a (not run)" if ok is None else ("MET" if ok else "NOT MET")


def print_targets(rows: list[Row]) -> None:
    """The issue's targets, MET / NOT MET from this run's rows."""
    by = {r.kind: r for r in rows}

    def us(kind: str) -> float | None:
        r = by.get(kind)
        return r.us_per_pkt if r and r.captured else None

    def ratio_line(kind: str, ref_kind: str, limit: float) -> str:
        a, b = us(kind), us(ref_kind)
        if a is None or b is None:
            missing = " and ".join(k for k in (kind, ref_kind) if k not in by)
            return f"{kind:<11} {_verdict(None)}: {missing or 'no packets captured'}"
        x = a / b
        return f"{kind:<11} {_verdict(x <= limit)}: {a:.3f} vs {b:.3f} us/pkt = {x:.3f}x (limit {limit:g}x)"

    print()
    print("targets (issue), from this run's rows; CPU per captured packet:")
    full = [by[k] for k in ("v1", "v2", "v3") if k in by]
    ok1 = all(r.drops == 0 and r.captured == r.sent for r in full) if len(full) == 3 else None
    print(f"(1) V1, V2 and V3 (C core) capture everything with 0 drops: {_verdict(ok1)}")
    for k in ("v1", "v2", "v3"):
        r = by.get(k)
        if r is None:
            print(f"      {k:<11} not run")
        else:
            good = r.drops == 0 and r.captured == r.sent
            print(
                f"      {k:<11} {'ok' if good else 'FAIL'}: captured {r.captured:,}/{r.sent:,}, drops {r.drops}, "
                f"{r.cap_pps:,.0f} of {r.gen_pps:,.0f} pps"
            )
    print(f"(2) V3 packet objects (v3, C core) CPU/pkt <= {TARGET_V3_VS_PCAPY:g}x pcapy-ng callback (pcapy):")
    print("      " + ratio_line("v3", "pcapy", TARGET_V3_VS_PCAPY))
    print(f"(3) v3-frames (C core) CPU/pkt <= {TARGET_FRAMES_VS_TCPDUMP:g}x tcpdump:")
    print("      " + ratio_line("v3-frames", "tcpdump", TARGET_FRAMES_VS_TCPDUMP))
    print(f"(4) v3-count and v3-columns (C core) CPU/pkt <= {TARGET_BATCH_VS_TCPDUMP:g}x tcpdump:")
    for k in ("v3-count", "v3-columns"):
        print("      " + ratio_line(k, "tcpdump", TARGET_BATCH_VS_TCPDUMP))
    refs = ", ".join(f"{k} {v:g}" for k, v in PREVIOUS_PURE_US.items())
    pure = [(us(k + PY_SUFFIX), v) for k, v in PREVIOUS_PURE_US.items()]
    ok5 = None if any(a is None for a, _ in pure) else all(a <= v for a, v in pure)  # type: ignore[operator]
    print(
        f"(5) each -py row (pure-Python core) not slower than the previous session's published pure figures "
        f"({refs} us/pkt, measured on another VM): {_verdict(ok5)}"
    )
    print(
        "    indicative only: for a same-machine answer run the previous code's own bench_rx.py beside this one "
        "and compare ratios to tcpdump (benchmarks/README.md, 'The pure core against the code before it')"
    )
    for base in AFPACKET_KINDS:
        k = base + PY_SUFFIX
        ref = PREVIOUS_PURE_US.get(base)
        a = us(k)
        if ref is None:
            got = f"{a:.3f} us/pkt" if a is not None else "not run"
            print(f"      {k:<14} no previous figure ({got})")
        elif a is None:
            print(f"      {k:<14} {_verdict(None)} (reference {ref:g} us/pkt)")
        else:
            print(f"      {k:<14} {_verdict(a <= ref)}: {a:.3f} vs {ref:g} us/pkt ({a / ref:.2f}x)")
    for base in AFPACKET_KINDS:  # what the C core buys, per row
        a, b = us(base), us(base + PY_SUFFIX)
        if a is not None and b is not None:
            print(f"      C core vs pure, {base:<11} {a:.3f} vs {b:.3f} us/pkt: pure costs {b / a:.1f}x")


def print_table(rows: list[Row], tg_alone: list[float], args: argparse.Namespace) -> None:
    tcp = next((r for r in rows if r.kind == "tcpdump"), None)
    base = tcp.us_per_pkt if tcp and tcp.captured else None
    print()
    print(
        f"RX benchmark: {args.size}-byte frames, buffer {args.buffer_mb} MiB, trafgen -P 1 on CPU {GEN_CPU}, "
        f"capturer on CPU {CAP_CPU}; Python loops touch every packet (first byte)"
    )
    if tg_alone:
        print("trafgen alone (nothing capturing): " + ", ".join(f"{p:,.0f} pps" for p in tg_alone))
    hdr = (
        f"{'capturer':<14} {'core':<6} {'sent':>9} {'captured':>9} {'received':>9} {'drops':>8} {'gen pps':>9} "
        f"{'capt pps':>9} {'CPU s':>7} {'us/pkt':>7} {'x tcpd':>6}  {'ref us/pkt':<18} notes"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ratio = f"{r.us_per_pkt / base:6.2f}" if base else "   n/a"
        notes = list(r.notes)
        if r.kind == "scapy" and r.sent != args.count:
            notes.insert(0, f"smaller count ({r.sent:,}): scapy is slow")
        print(
            f"{r.kind:<14} {r.impl:<6} {r.sent:>9} {r.captured:>9} {r.received:>9} {r.drops:>8} {r.gen_pps:>9,.0f} "
            f"{r.cap_pps:>9,.0f} {r.cpu_s:>7.3f} {r.us_per_pkt:>7.3f} {ratio}  "
            f"{REFERENCE_US.get(r.kind, ''):<18} {'; '.join(notes)}"
        )
    print()
    for k in (r.kind for r in rows):
        print(f"  {k:<14} {DESCRIPTIONS[k]}")
    print(
        f"  core: the ring kernels the worker reported (afpacket.IMPLEMENTATION); -py rows ran with "
        f"{NO_EXTENSIONS_ENV}=1"
    )
    print_targets(rows)
    ring_mb = args.buffer_mb
    afp = [r for r in rows if r.impl != "-" and r.rss_mb]
    if afp:
        worst = max(r.rss_mb for r in afp)
        ok = worst <= ring_mb + 30
        print(
            f"(6) peak RSS of every afpacket capturer <= ring ({ring_mb} MiB) + 30 MiB: {'MET' if ok else 'NOT MET'}"
            f" (largest {worst:.1f} MiB)"
        )
        for r in afp:
            print(f"      {r.kind:<14} peak RSS {r.rss_mb:7.1f} MiB = ring + {r.rss_mb - ring_mb:5.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2_000_000, help="frames per trafgen run (default 2,000,000)")
    ap.add_argument("--scapy-count", type=int, default=100_000, help="frames for scapy, which is slow (100,000)")
    ap.add_argument("--size", type=int, default=64, help="frame size in bytes, no FCS (default 64)")
    ap.add_argument("--buffer-mb", type=int, default=64, help="ring / socket buffer for every capturer (64 MiB)")
    ap.add_argument("--only", default=",".join(ALL_KINDS), help=f"comma list from {','.join(ALL_KINDS)}")
    ap.add_argument(
        "--quiet",
        type=float,
        default=1.5,
        help="capturer counts as done after this long without CPU use (> libpcap's 1 s timeout)",
    )
    ap.add_argument("--max-drain", type=float, default=120.0, help="give up draining after this many seconds")
    ap.add_argument("--no-trafgen-alone", action="store_true", help="skip measuring trafgen with no capturer")
    ap.add_argument("--profile", metavar="PATH", help="cProfile the afpacket V3 loop into PATH (slows it)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--iface", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker(args.worker, args.iface, args.buffer_mb << 20, args.profile_out)
        return

    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad:
        ap.error(f"unknown capturer(s) {bad}; choose from {ALL_KINDS}")
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, packet sockets)")
    for tool in ("trafgen", "taskset", "ip") + (("tcpdump",) if "tcpdump" in kinds else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if len(os.sched_getaffinity(0)) < 2 or os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("needs at least 2 CPUs")
    os.sched_setaffinity(0, {GEN_CPU})  # keep this sampler off the capture CPU
    # before any traffic: each core the run needs must be the one a worker gets (fails loudly if not)
    for core in sorted({c for _b, c in map(split_kind, kinds) if c}):
        probe_core(core)

    from afpacket.testnet import VethPair

    rows: list[Row] = []
    tg_alone: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench_rx") as tmp, VethPair("brx", addresses=False) as net:
        cfg = os.path.join(tmp, "frame.cfg")
        trafgen_cfg(cfg, net.outer_mac, net.inner_mac, args.size)
        if not args.no_trafgen_alone:
            run_trafgen_alone(net, cfg, 10_000)  # warm up
            sent, dur = run_trafgen_alone(net, cfg, args.count)
            tg_alone.append(sent / dur)
            print(f"trafgen alone: {sent:,} frames in {dur:.3f} s = {sent / dur:,.0f} pps", flush=True)
        for kind in kinds:
            count = args.scapy_count if kind == "scapy" else args.count
            row = run_one(kind, net, cfg, count, args)
            rows.append(row)
            print(
                f"{kind}: captured {row.captured:,}/{row.sent:,} drops {row.drops} "
                f"{row.cap_pps:,.0f} pps {row.us_per_pkt:.3f} us/pkt",
                flush=True,
            )
        if not args.no_trafgen_alone:
            sent, dur = run_trafgen_alone(net, cfg, args.count)
            tg_alone.append(sent / dur)
    print_table(rows, tg_alone, args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Async capture benchmark: AsyncCapture's CPU per packet against the blocking Capture and scapy's AsyncSniffer.

The issue's target: ``async for pkt in AsyncCapture(...)`` within 1.2x of the blocking ``for pkt in
Capture(...)``'s CPU per packet, with 0 drops, at the full one-CPU trafgen rate. Every row runs in the
same run over one private veth pair, as ``bench_rx.py`` does (its helpers are imported from there):
the capturer in its own process pinned to CPU 1 on the *outer* end, ``trafgen -P 1`` pinned to CPU 0
in the namespace sending ``--count`` frames of ``--size`` bytes from the *inner* end, and the
capturer's process CPU clock (user+sys) sampled from just before trafgen starts until it has been
quiet for ``--quiet`` s. The per-packet loops read each packet's first byte; ``async-batches`` only
counts per batch. Each afpacket row runs on the C core and again (``-py``) on the pure-Python core
(``AFPACKET_NO_EXTENSIONS=1``); the ratio column compares each row with the blocking row of its own
core (scapy with the C core's). See benchmarks/README.md.

Run as root:  python benchmarks/bench_async.py [--count 2000000] [--scapy-count 100000] [--repeat 3]
              [--only blocking,async]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rx import (
    CAP_CPU,
    GEN_CPU,
    NO_EXTENSIONS_ENV,
    PACKET_STATISTICS,
    PY_SUFFIX,
    SO_RCVBUFFORCE,
    SOL_PACKET,
    Row,
    core_env,
    measure,
    probe_core,
    require_core,
    run_trafgen_alone,
    trafgen_cfg,
)

AFPACKET_KINDS = ["blocking", "async", "uvloop", "async-batches"]
ALL_KINDS = [*AFPACKET_KINDS, *(k + PY_SUFFIX for k in AFPACKET_KINDS), "scapy"]
DESCRIPTIONS = {
    "blocking": "Capture (V3), for p in cap: p.data[0]",
    "async": "AsyncCapture (V3) on asyncio's default loop, async for p in cap: p.data[0]",
    "uvloop": "AsyncCapture (V3) on uvloop, async for p in cap: p.data[0]",
    "async-batches": "AsyncCapture (V3), async for b in cap.batches(): n += b.count (no per-packet work)",
    "scapy": "scapy AsyncSniffer(store=False, prn=cb), cb: bytes(pkt)[0] (its sniffing thread)",
}
for _k in AFPACKET_KINDS:
    DESCRIPTIONS[_k + PY_SUFFIX] = DESCRIPTIONS[_k] + f"; pure-Python core ({NO_EXTENSIONS_ENV}=1)"
    DESCRIPTIONS[_k] += "; C core"
#: the issue's target: async packet capture CPU/packet <= this times the blocking capture's, 0 drops
TARGET_VS_BLOCKING = 1.2
#: the rows the target is judged on (per core): async packet iteration on both loops
TARGET_KINDS = ["async", "uvloop"]
#: kind -> every pass of that row captured all it was sent with 0 drops (the verdict needs all passes)
ALL_PASSES_CLEAN: dict[str, bool] = {}


def split_kind(kind: str) -> tuple[str, str | None]:
    """(kind without the core suffix, its core "c"/"python"), or (kind, None) for scapy."""
    base = kind.removesuffix(PY_SUFFIX)
    if base not in AFPACKET_KINDS:
        return kind, None
    return base, "python" if kind.endswith(PY_SUFFIX) else "c"


# -- the capture side: one process per row ---------------------------------------------------------
def _ready() -> None:
    sys.stdout.write("READY\n")
    sys.stdout.flush()


def _afpacket_worker(base: str, iface: str, buffer_size: int, result: dict[str, Any]) -> None:
    import asyncio

    import afpacket

    result["module"] = afpacket.__file__
    result["implementation"] = afpacket.IMPLEMENTATION
    n = 0
    if base == "blocking":
        cap = afpacket.Capture(iface, version=3, buffer_size=buffer_size)
        result["capture_kernels"] = cap.kernels.IMPLEMENTATION
        signal.signal(signal.SIGINT, lambda *_: cap.stop())
        _ready()
        for p in cap:  # the loop being measured
            n += 1
            x = p.data[0]  # noqa: F841  (touch the packet's bytes)
        st = cap.stats()
        cap.close()
    else:

        async def main() -> afpacket.SocketStats:
            nonlocal n
            acap = afpacket.AsyncCapture(iface, version=3, buffer_size=buffer_size)
            result["capture_kernels"] = acap.capture.kernels.IMPLEMENTATION
            result["loop"] = type(asyncio.get_running_loop()).__module__
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, acap.stop)
            _ready()
            if base == "async-batches":
                async for batch in acap.batches():  # the loop being measured
                    n += batch.count
            else:
                async for p in acap:  # the loop being measured
                    n += 1
                    x = p.data[0]  # noqa: F841
            st = acap.stats()
            acap.close()
            return st

        if base == "uvloop":
            import uvloop

            st = uvloop.run(main())
        else:
            st = asyncio.run(main())
    result.update(captured=n, received=st.received, drops=st.drops)


def _scapy_worker(iface: str, buffer_size: int, result: dict[str, Any]) -> None:
    import threading

    from scapy.all import AsyncSniffer, conf  # scapy.all registers the link layers (Ether)

    s = conf.L2listen(iface=iface, promisc=False)
    s.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_size)
    n = 0

    def prn(pkt: Any) -> None:
        nonlocal n
        n += 1
        x = bytes(pkt)[0]  # noqa: F841

    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    sniffer = AsyncSniffer(opened_socket=s, store=False, prn=prn)
    sniffer.start()
    _ready()
    done.wait()
    recv, drop = struct.unpack("II", s.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    sniffer.stop(join=True)
    result.update(captured=n, received=recv, drops=drop)


def worker(kind: str, iface: str, buffer_size: int) -> None:
    """Capture until SIGINT, touching every packet; print a JSON line with the results."""
    result: dict[str, Any] = {"kind": kind}
    base, _core = split_kind(kind)
    if base in AFPACKET_KINDS:
        _afpacket_worker(base, iface, buffer_size, result)
    elif kind == "scapy":
        _scapy_worker(iface, buffer_size, result)
    else:
        raise SystemExit(f"unknown capturer {kind!r}")
    print(json.dumps(result), flush=True)


# -- the orchestrating side ------------------------------------------------------------------------
def run_one(kind: str, net: Any, cfg: str, count: int, args: argparse.Namespace) -> Row:
    cmd = [
        "taskset",
        "-c",
        str(CAP_CPU),
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        kind,
        "--iface",
        net.outer,
        "--buffer-mb",
        str(args.buffer_mb),
    ]
    _base, core = split_kind(kind)
    env = core_env(core) if core else None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    if line.strip() != "READY":
        raise RuntimeError(f"{kind} worker did not start: {line}{proc.stderr.read()}")
    time.sleep(0.2)  # let setup settle (the process is idle, waiting for packets)
    m = measure(proc.pid, net, cfg, count, args.quiet, args.max_drain)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{kind} did not stop on SIGINT") from None
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{kind} worker gave no result:\n{out}\n{err}") from None
    row = Row(kind, sent=m.sent, gen_pps=m.sent / m.dur if m.dur else 0.0, cpu_s=m.cpu1 - m.cpu0)
    row.captured, row.received, row.drops = res["captured"], res["received"], res["drops"]
    if core:
        row.impl = str(res.get("implementation"))
        require_core(f"the {kind} worker (afpacket.IMPLEMENTATION)", core, res.get("implementation"), err)
        require_core(f"the {kind} worker's capture (kernels)", core, res.get("capture_kernels"), err)
    if _base == "uvloop" and res.get("loop") != "uvloop":
        raise SystemExit(f"FATAL: the uvloop row ran on {res.get('loop')!r}")
    t_send_start = m.t_tg_exit - m.dur
    t_done = max(m.t_tg_exit, m.last_busy_t)
    row.cap_pps = row.captured / (t_done - t_send_start)
    if row.captured != row.sent:
        row.notes.append(f"missed {row.sent - row.captured}")
    if t_done > m.t_tg_exit + 0.05:
        row.notes.append(f"drained {t_done - m.t_tg_exit:.2f}s after trafgen ended")
    return row


def _reference(rows: dict[str, Row], kind: str) -> Row | None:
    """The blocking row a row is compared with: the one of its own core (scapy: the C core's)."""
    _base, core = split_kind(kind)
    ref = rows.get("blocking" + (PY_SUFFIX if core == "python" else ""))
    return ref if ref is not None and ref.captured else None


def print_table(rows: list[Row], tg_alone: list[float], args: argparse.Namespace) -> None:
    by = {r.kind: r for r in rows}
    print()
    print(
        f"async RX benchmark: {args.size}-byte frames, buffer {args.buffer_mb} MiB, trafgen -P 1 on CPU {GEN_CPU}, "
        f"capturer on CPU {CAP_CPU}; per-packet loops touch every packet (first byte)"
    )
    if tg_alone:
        print("trafgen alone (nothing capturing): " + ", ".join(f"{p:,.0f} pps" for p in tg_alone))
    hdr = (
        f"{'capturer':<17} {'core':<6} {'sent':>9} {'captured':>9} {'received':>9} {'drops':>8} {'gen pps':>9} "
        f"{'capt pps':>9} {'CPU s':>7} {'us/pkt':>7} {'x block':>7}  notes"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ref = _reference(by, r.kind)
        ratio = f"{r.us_per_pkt / ref.us_per_pkt:7.2f}" if ref and r.captured else "    n/a"
        notes = list(r.notes)
        if r.kind == "scapy":
            notes.insert(0, f"count {r.sent:,} (scapy is slow); ratio to the C core's blocking row")
        print(
            f"{r.kind:<17} {r.impl:<6} {r.sent:>9} {r.captured:>9} {r.received:>9} {r.drops:>8} {r.gen_pps:>9,.0f} "
            f"{r.cap_pps:>9,.0f} {r.cpu_s:>7.3f} {r.us_per_pkt:>7.3f} {ratio}  {'; '.join(notes)}"
        )
    print()
    for k in (r.kind for r in rows):
        print(f"  {k:<17} {DESCRIPTIONS[k]}")
    print()
    print(
        f"target (issue): async within {TARGET_VS_BLOCKING:g}x of blocking CPU per packet, 0 drops "
        f"(rows {', '.join(TARGET_KINDS)}; every packet sent captured), per core:"
    )
    for core, suffix in (("c", ""), ("python", PY_SUFFIX)):
        base_ref = by.get("blocking" + suffix)
        lines: list[str] = []
        verdicts: list[bool] = []
        for base in TARGET_KINDS:
            row = by.get(base + suffix)
            if row is None or base_ref is None or not row.captured or not base_ref.captured:
                lines.append(f"      {base + suffix:<17} not run (or nothing captured)")
                continue
            x = row.us_per_pkt / base_ref.us_per_pkt
            clean = ALL_PASSES_CLEAN.get(row.kind, True) and row.drops == 0 and row.captured == row.sent
            ok = x <= TARGET_VS_BLOCKING and clean
            verdicts.append(ok)
            lines.append(
                f"      {base + suffix:<17} {'ok' if ok else 'FAIL'}: {row.us_per_pkt:.3f} vs "
                f"{base_ref.us_per_pkt:.3f} us/pkt = {x:.3f}x, drops {row.drops}, "
                f"captured {row.captured:,}/{row.sent:,}" + ("" if clean else " (or another pass lost packets)")
            )
        if base_ref is not None and (base_ref.drops or base_ref.captured != base_ref.sent):
            lines.append(
                f"      (the blocking{suffix} row itself dropped {base_ref.drops}, "
                f"captured {base_ref.captured:,}/{base_ref.sent:,})"
            )
        verdict = "n/a (not run)" if not verdicts else ("MET" if all(verdicts) else "NOT MET")
        print(f"  {core} core: {verdict}")
        for line in lines:
            print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2_000_000, help="frames per trafgen run (default 2,000,000)")
    ap.add_argument("--scapy-count", type=int, default=100_000, help="frames for scapy, which is slow (100,000)")
    ap.add_argument("--size", type=int, default=64, help="frame size in bytes, no FCS (default 64)")
    ap.add_argument("--buffer-mb", type=int, default=64, help="ring / socket buffer for every capturer (64 MiB)")
    ap.add_argument("--only", default=",".join(ALL_KINDS), help=f"comma list from {','.join(ALL_KINDS)}")
    ap.add_argument("--quiet", type=float, default=1.0, help="capturer counts as done after this long without CPU use")
    ap.add_argument("--max-drain", type=float, default=120.0, help="give up draining after this many seconds")
    ap.add_argument("--repeat", type=int, default=1, help="passes over every row; the table shows each median")
    ap.add_argument("--no-trafgen-alone", action="store_true", help="skip measuring trafgen with no capturer")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--iface", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker(args.worker, args.iface, args.buffer_mb << 20)
        return

    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ALL_KINDS]
    if bad:
        ap.error(f"unknown capturer(s) {bad}; choose from {ALL_KINDS}")
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, packet sockets)")
    for tool in ("trafgen", "taskset", "ip"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if len(os.sched_getaffinity(0)) < 2 or (os.cpu_count() or 1) < 2:
        sys.exit("needs at least 2 CPUs")
    os.sched_setaffinity(0, {GEN_CPU})  # keep this sampler off the capture CPU
    for core in sorted({c for _b, c in map(split_kind, kinds) if c}):
        probe_core(core)  # before any traffic: each core the run needs must be the one a worker gets

    from afpacket.testnet import VethPair

    rows: list[Row] = []
    tg_alone: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench_async") as tmp, VethPair("bas", addresses=False) as net:
        cfg = os.path.join(tmp, "frame.cfg")
        trafgen_cfg(cfg, net.outer_mac, net.inner_mac, args.size)
        if not args.no_trafgen_alone:
            run_trafgen_alone(net, cfg, 10_000)  # warm up
            sent, dur = run_trafgen_alone(net, cfg, args.count)
            tg_alone.append(sent / dur)
            print(f"trafgen alone: {sent:,} frames in {dur:.3f} s = {sent / dur:,.0f} pps", flush=True)
        runs: dict[str, list[Row]] = {k: [] for k in kinds}
        for rep in range(args.repeat):  # passes interleave the rows, so a burst of noise hits all of them
            for kind in kinds:
                count = args.scapy_count if kind == "scapy" else args.count
                row = run_one(kind, net, cfg, count, args)
                runs[kind].append(row)
                print(
                    f"pass {rep + 1}/{args.repeat} {kind}: captured {row.captured:,}/{row.sent:,} drops {row.drops} "
                    f"{row.cap_pps:,.0f} pps {row.us_per_pkt:.3f} us/pkt",
                    flush=True,
                )
        rows = [median_row(runs[k]) for k in kinds]
        ALL_PASSES_CLEAN.update({k: all(r.drops == 0 and r.captured == r.sent for r in runs[k]) for k in kinds})
    print_table(rows, tg_alone, args)


def median_row(runs: list[Row]) -> Row:
    """The run with the median CPU per packet; with several, the others' figures go in its notes."""
    ordered = sorted(runs, key=lambda r: r.us_per_pkt)
    row = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        row.notes.insert(0, "median of " + "/".join(f"{r.us_per_pkt:.3f}" for r in runs) + " us/pkt")
        worst = max(runs, key=lambda r: (r.drops, r.sent - r.captured))
        if worst.drops or worst.captured != worst.sent:
            row.notes.append(f"worst pass: drops {worst.drops}, captured {worst.captured:,}/{worst.sent:,}")
    return row


if __name__ == "__main__":
    main()

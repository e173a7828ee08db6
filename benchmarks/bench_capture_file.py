#!/usr/bin/env python3
"""Capture-to-file benchmark: afpacket (CLI and API, TPACKET_V3, C and pure-Python cores) against ``tcpdump -w FILE``.

Same rig as bench_rx.py (its helpers are imported from it): one private veth pair
(``afpacket.testnet.VethPair``), ``trafgen -P 1`` pinned to CPU 0 in the namespace sending ``--count``
frames of ``--size`` bytes from the inner end, the capturer pinned to CPU 1 on the outer end, and its
CPU clock sampled from just before trafgen starts until it has been quiet for ``--quiet`` seconds after
trafgen ended. Then the capturer gets SIGINT, and its count is checked against the records in the file.

Capturers, each writing to a file in a temp dir on disk (``--dir``, default /var/tmp; not tmpfs):

* ``tcpdump``: ``tcpdump -i OUTER -p -n -w FILE -B 65536``; counts from its summary.
* ``cli``:     ``python -m afpacket capture -i OUTER -p -w FILE -B 65536 [--format F]``; counts from its
  summary on stderr.
* ``api``:     a child process running ``afpacket.tofile.dump(Capture(OUTER, version=3,
  buffer_size=64 << 20), FILE, fmt=F)``, stopped by ``Capture.stop()`` from a SIGINT handler.
* ``cli-py``, ``api-py``: the same, started with ``AFPACKET_NO_EXTENSIONS=1`` (pure-Python ring kernels);
  ``cli`` and ``api`` run the C kernels, and the run stops if they would not get them.

Rows are labelled ``KIND-FORMAT`` (``cli-pcapng``, ``api-pcap-py``). The issue's targets (CLI pcap CPU/packet
<= 1.0x tcpdump -w, pcapng <= 1.3x, 0 drops, every file read back whole) are printed after the table.

Run as root:  python benchmarks/bench_capture_file.py [--count 2000000] [--formats pcap,pcapng]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rx import (
    CAP_CPU,
    GEN_CPU,
    NO_EXTENSIONS_ENV,
    PY_SUFFIX,
    Row,
    core_env,
    measure,
    probe_core,
    require_core,
    run_trafgen_alone,
    trafgen_cfg,
)

ALL_KINDS = ["tcpdump", "cli", "api", "cli" + PY_SUFFIX, "api" + PY_SUFFIX]
#: the issue's targets (CLI CPU/packet against tcpdump -w, per format) and reference figure
TARGET_CLI_RATIO = {"pcap": 1.0, "pcapng": 1.3}
TCPDUMP_REF_US = 0.08


@dataclass
class FileRow(Row):
    fmt: str = "pcap"
    path: str = ""
    file_bytes: int = 0
    in_file: int = -1  # records counted with afpacket.savefile.open_reader
    capinfos: int = -1  # records counted by capinfos -c (-1: not run)

    @property
    def base(self) -> str:
        """tcpdump, cli or api (the kind without its core suffix)."""
        return self.kind.removesuffix(PY_SUFFIX)

    @property
    def core(self) -> str | None:
        """The ring kernels this afpacket row must run ("c" / "python"); None for tcpdump."""
        if self.kind == "tcpdump":
            return None
        return "python" if self.kind.endswith(PY_SUFFIX) else "c"

    @property
    def label(self) -> str:
        if self.kind == "tcpdump":
            return self.kind
        return f"{self.base}-{self.fmt}" + (PY_SUFFIX if self.core == "python" else "")

    @property
    def file_ok(self) -> bool:
        """The file holds every record the capturer reported (by our reader, and capinfos if run)."""
        return self.in_file == self.captured and (self.capinfos < 0 or self.capinfos == self.captured)


# -- the API capture process -----------------------------------------------------------------------
def worker(iface: str, path: str, fmt: str, buffer_size: int, block_kb: int, profile: str | None) -> None:
    import afpacket
    from afpacket.tofile import dump

    kw = {"block_size": block_kb << 10} if block_kb else {}
    cap = afpacket.Capture(iface, version=3, buffer_size=buffer_size, **kw)
    cap_kernels = cap.kernels.IMPLEMENTATION
    signal.signal(signal.SIGINT, lambda *_: cap.stop())
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    if prof:
        prof.enable()
    n = dump(cap, path, fmt=fmt)  # type: ignore[arg-type]  # the call being measured
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    st = cap.stats()
    cap.close()
    print(
        json.dumps(
            {
                "captured": n,
                "received": st.received,
                "drops": st.drops,
                "module": afpacket.__file__,
                "implementation": afpacket.IMPLEMENTATION,
                "capture_kernels": cap_kernels,
            }
        )
    )


# -- orchestration ---------------------------------------------------------------------------------
def summary_counts(err: str) -> tuple[int, int, int]:
    """(captured, received by filter, dropped by kernel) from a tcpdump-style summary."""

    def grab(pat: str) -> int:
        m = re.search(r"(\d+) packets? " + pat, err)
        return int(m.group(1)) if m else -1

    return grab("captured"), grab("received by filter"), grab("dropped by kernel")


def count_records(path: str) -> int:
    from afpacket.savefile import open_reader

    n = 0
    with open_reader(path) as r:
        for _ in r:
            n += 1
    return n


def capinfos_count(path: str) -> int:
    if not shutil.which("capinfos"):
        return -1
    p = subprocess.run(["capinfos", "-M", "-c", path], capture_output=True, text=True)
    m = re.search(r"Number of packets:\s*(\d+)", p.stdout)
    return int(m.group(1)) if m else -1


def cli_core(core: str) -> str:
    """The ring kernels ``python -m afpacket`` reports (``--version``) in :func:`core_env` (``core``): the
    CLI capture is started with exactly that interpreter and environment."""
    p = subprocess.run([sys.executable, "-m", "afpacket", "--version"], env=core_env(core),
                       capture_output=True, text=True)
    m = re.search(r"ring kernels: (\w+)", p.stdout + p.stderr)
    got = m.group(1) if m else f"unknown ({(p.stdout + p.stderr).strip()})"
    require_core("python -m afpacket (--version)", core, got, p.stderr)
    return got


def run_one(kind: str, fmt: str, net: object, cfg: str, tmp: str, args: argparse.Namespace) -> FileRow:
    outer = net.outer  # type: ignore[attr-defined]
    buf = args.buffer_mb << 20
    row = FileRow(kind)
    row.fmt = "pcap" if kind == "tcpdump" else fmt
    base, core = row.base, row.core
    path = os.path.join(tmp, f"{kind}.{'pcapng' if fmt == 'pcapng' else 'pcap'}")
    pin = ["taskset", "-c", str(CAP_CPU)]
    env = core_env(core) if core else None
    if kind == "tcpdump":
        cmd = [*pin, "tcpdump", "-i", outer, "-p", "-n", "-w", path, "-B", str(buf >> 10)]
    elif base == "cli":
        row.impl = cli_core(core)  # type: ignore[arg-type]
        cmd = [*pin, sys.executable, "-m", "afpacket", "capture", "-i", outer, "-p", "-w", path,
               "-B", str(buf >> 10), "--format", fmt]
    else:
        cmd = [*pin, sys.executable, os.path.abspath(__file__), "--worker", "--iface", outer, "--path", path,
               "--format-one", fmt, "--buffer-mb", str(args.buffer_mb), "--block-kb", str(args.block_kb)]
        if args.profile:
            cmd += ["--profile-out", f"{args.profile}.{fmt}" + (PY_SUFFIX if core == "python" else "")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if base == "api":
        line = proc.stdout.readline()  # type: ignore[union-attr]
        ok = line.strip() == "READY"
    else:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        ok = "listening on" in line or "capturing on" in line
    if not ok:
        proc.kill()
        raise RuntimeError(f"{kind} did not start: {line}{proc.stderr.read()}")  # type: ignore[union-attr]
    time.sleep(0.2)  # let setup settle (the process is idle in poll now)
    m = measure(proc.pid, net, cfg, args.count, args.quiet, args.max_drain)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"{kind} did not stop on SIGINT") from None
    row.sent, row.gen_pps, row.cpu_s = m.sent, (m.sent / m.dur if m.dur else 0.0), m.cpu1 - m.cpu0
    row.path = path
    if base == "api":
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise RuntimeError(f"{kind} worker gave no result:\n{out}\n{err}") from None
        row.captured, row.received, row.drops = res["captured"], res["received"], res["drops"]
        row.impl = str(res.get("implementation"))
        require_core(f"the {row.label} worker (afpacket.IMPLEMENTATION)", core, res.get("implementation"), err)
        require_core(f"the {row.label} worker's Capture (cap.kernels)", core, res.get("capture_kernels"), err)
    else:
        row.captured, row.received, row.drops = summary_counts(err)
        if row.captured < 0:
            raise RuntimeError(f"{kind}: no summary in its stderr:\n{err}")
    t_send_start = m.t_tg_exit - m.dur
    t_done = max(m.t_tg_exit, m.last_busy_t)
    row.cap_pps = row.captured / (t_done - t_send_start)
    if row.captured != row.sent:
        row.notes.append(f"missed {row.sent - row.captured}")
    if t_done > m.t_tg_exit + 0.05:
        row.notes.append(f"drained {t_done - m.t_tg_exit:.2f}s after trafgen ended")
    row.file_bytes = os.path.getsize(path)
    row.in_file = count_records(path)
    if not args.no_capinfos:
        row.capinfos = capinfos_count(path)
    if not row.file_ok:
        row.notes.append(f"FILE MISMATCH: {row.in_file} records (capinfos {row.capinfos}) vs {row.captured} reported")
    if not args.keep:
        os.unlink(path)
    return row


def print_targets(rows: list[FileRow], base: float | None, capinfos: bool) -> None:
    """The issue's targets, MET / NOT MET from this run's rows."""

    def verdict(ok: bool | None) -> str:
        return "n/a (not run)" if ok is None else ("MET" if ok else "NOT MET")

    def full(r: FileRow) -> bool:
        return r.drops == 0 and r.captured == r.sent

    print()
    print(f"issue: tcpdump -w spends about {TCPDUMP_REF_US} us/packet on the author's machine"
          + (f"; here {base:.3f} us" if base else ""))
    print("targets (issue), from this run's rows (the CLI on the C core; every other afpacket row against the")
    print("same bar for its format, for information):")
    by = {r.label: r for r in rows}
    n = 0
    for fmt, limit in TARGET_CLI_RATIO.items():
        n += 1
        r = by.get(f"cli-{fmt}")
        head = f"({n}) CLI {fmt:<6} (afpacket capture -w file.{fmt}, C core) CPU/pkt <= {limit:.1f}x tcpdump -w:"
        if r is None or not base or not r.captured:
            print(f"{head} {verdict(None)}")
        else:
            x = r.us_per_pkt / base
            print(f"{head} {verdict(x <= limit)} ({r.us_per_pkt:.3f} vs {base:.3f} us, {x:.3f}x)")
    c_rows = [r for r in rows if r.core == "c"]
    bad = [r.label for r in c_rows if not full(r)]
    n += 1
    print(f"({n}) 0 drops, every frame sent captured (C-core rows): {verdict(not bad if c_rows else None)}"
          + (f" (not: {', '.join(bad)})" if bad else ""))
    bad = [r.label for r in rows if not r.file_ok]
    n += 1
    how = "open_reader and capinfos -c" if capinfos else "open_reader"
    print(f"({n}) every file read back whole ({how} count = captured, all rows): {verdict(not bad if rows else None)}"
          + (f" (not: {', '.join(bad)})" if bad else ""))
    for r in rows:
        if r.kind == "tcpdump":
            continue
        limit = TARGET_CLI_RATIO.get(r.fmt, 1.0)
        line = (f"      {r.label:<15} core {r.impl:<6} drops {r.drops:>8}, captured {r.captured:,}/{r.sent:,}, "
                f"file {'ok' if r.file_ok else 'FAIL'}")
        if base and r.captured:
            x = r.us_per_pkt / base
            line += f", {x:5.2f}x tcpdump ({'within' if x <= limit else 'over'} {limit:.1f}x)"
        print(line)


def print_table(rows: list[FileRow], tg_alone: list[float], args: argparse.Namespace, where: str) -> None:
    tcp = next((r for r in rows if r.kind == "tcpdump"), None)
    base = tcp.us_per_pkt if tcp and tcp.captured else None
    print()
    print(
        f"Capture-to-file benchmark: {args.size}-byte frames x {args.count:,}, buffer {args.buffer_mb} MiB, "
        f"trafgen -P 1 on CPU {GEN_CPU}, capturer on CPU {CAP_CPU}, files in {where}"
    )
    if tg_alone:
        print("trafgen alone (nothing capturing): " + ", ".join(f"{p:,.0f} pps" for p in tg_alone))
    hdr = (
        f"{'capturer':<15} {'core':<6} {'sent':>9} {'captured':>9} {'received':>9} {'drops':>8} {'gen pps':>9} "
        f"{'capt pps':>9} {'CPU s':>7} {'us/pkt':>7} {'x tcpd':>6} {'file MB':>8} {'in file':>9} {'check':>5}  notes"
    )
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ratio = f"{r.us_per_pkt / base:6.2f}" if base else "   n/a"
        print(
            f"{r.label:<15} {r.impl:<6} {r.sent:>9} {r.captured:>9} {r.received:>9} {r.drops:>8} {r.gen_pps:>9,.0f} "
            f"{r.cap_pps:>9,.0f} {r.cpu_s:>7.3f} {r.us_per_pkt:>7.3f} {ratio} {r.file_bytes / 1e6:>8.1f} "
            f"{r.in_file:>9} {'ok' if r.file_ok else 'FAIL':>5}  {'; '.join(r.notes)}"
        )
    print()
    print("  tcpdump      tcpdump -i OUTER -p -n -w FILE -B 65536 (C, libpcap V3; pcap only)")
    print("  cli-FMT      python -m afpacket capture -i OUTER -p -w FILE -B 65536 --format FMT (SIGINT to stop)")
    print("  api-FMT      afpacket.tofile.dump(Capture(OUTER, version=3, buffer_size=64<<20), FILE, fmt=FMT)"
          + (f" with block_size={args.block_kb} KiB" if args.block_kb else ""))
    print(f"  ...-py       the same with {NO_EXTENSIONS_ENV}=1 (pure-Python ring kernels); the others run the C ones")
    print("  core         the ring kernels the row ran (api: afpacket.IMPLEMENTATION reported by the worker;")
    print("               cli: python -m afpacket --version in the same environment)")
    capinfos = not args.no_capinfos and bool(shutil.which("capinfos"))
    print("  in file      records counted with afpacket.savefile.open_reader"
          + (" and capinfos -c" if capinfos else ""))
    print_targets(rows, base, capinfos)


def fs_type(path: str) -> str:
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2_000_000, help="frames per trafgen run (default 2,000,000)")
    ap.add_argument("--size", type=int, default=64, help="frame size in bytes, no FCS (default 64)")
    ap.add_argument("--buffer-mb", type=int, default=64, help="ring / socket buffer for every capturer (64 MiB)")
    ap.add_argument("--only", default=",".join(ALL_KINDS),
                    help=f"comma list from {','.join(ALL_KINDS)} (-py: pure-Python ring kernels)")
    ap.add_argument("--formats", "--format", dest="formats", default="pcap,pcapng",
                    help="comma list of afpacket file formats: pcap,pcapng (tcpdump always writes pcap)")
    ap.add_argument("--block-kb", type=int, default=0,
                    help="api only: V3 block size in KiB (default: afpacket's choice, 4 MiB blocks for 64 MiB)")
    ap.add_argument("--dir", default="/var/tmp", help="where the temp dir for the files goes (not tmpfs)")
    ap.add_argument("--keep", action="store_true", help="keep the capture files (and print where)")
    ap.add_argument("--no-capinfos", action="store_true", help="don't cross-check record counts with capinfos")
    ap.add_argument("--quiet", type=float, default=1.5,
                    help="capturer counts as done after this long without CPU use (> libpcap's 1 s timeout)")
    ap.add_argument("--max-drain", type=float, default=120.0, help="give up draining after this many seconds")
    ap.add_argument("--no-trafgen-alone", action="store_true", help="skip measuring trafgen with no capturer")
    ap.add_argument("--profile", metavar="PREFIX", help="cProfile the api dump() into PREFIX.FMT (slows it)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--iface", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--format-one", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        worker(args.iface, args.path, args.format_one, args.buffer_mb << 20, args.block_kb, args.profile_out)
        return

    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    fmts = [f.strip() for f in args.formats.split(",") if f.strip()]
    if bad := [k for k in kinds if k not in ALL_KINDS]:
        ap.error(f"unknown capturer(s) {bad}")
    if bad := [f for f in fmts if f not in ("pcap", "pcapng")]:
        ap.error(f"unknown format(s) {bad}")
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, packet sockets)")
    for tool in ("trafgen", "taskset", "ip") + (("tcpdump",) if "tcpdump" in kinds else ()):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs at least 2 CPUs")
    if fs_type(args.dir) == "tmpfs":
        print(f"warning: {args.dir} is tmpfs, not a disk", file=sys.stderr)
    os.sched_setaffinity(0, {GEN_CPU})  # keep this sampler off the capture CPU
    # before any traffic: each core the run needs must be the one its processes get (fails loudly if not)
    for core in sorted({FileRow(k).core for k in kinds} - {None}):  # type: ignore[type-var]
        probe_core(core)  # type: ignore[arg-type]
        if any(k.removesuffix(PY_SUFFIX) == "cli" for k in kinds):
            cli_core(core)  # type: ignore[arg-type]

    from afpacket.testnet import VethPair

    plan = [(k, "pcap") for k in kinds if k == "tcpdump"]
    plan += [(k, f) for f in fmts for k in kinds if k != "tcpdump"]
    rows: list[FileRow] = []
    tg_alone: list[float] = []
    tmp = tempfile.mkdtemp(prefix="bench_capfile", dir=args.dir)
    where = f"{tmp} ({fs_type(tmp)})"
    try:
        with VethPair("bcf", addresses=False) as net:
            cfg = os.path.join(tmp, "frame.cfg")
            trafgen_cfg(cfg, net.outer_mac, net.inner_mac, args.size)
            if not args.no_trafgen_alone:
                run_trafgen_alone(net, cfg, 10_000)  # warm up
                sent, dur = run_trafgen_alone(net, cfg, args.count)
                tg_alone.append(sent / dur)
                print(f"trafgen alone: {sent:,} frames in {dur:.3f} s = {sent / dur:,.0f} pps", flush=True)
            for kind, fmt in plan:
                row = run_one(kind, fmt, net, cfg, tmp, args)
                rows.append(row)
                print(
                    f"{row.label}: captured {row.captured:,}/{row.sent:,} drops {row.drops} "
                    f"{row.cap_pps:,.0f} pps {row.us_per_pkt:.3f} us/pkt, file {row.file_bytes:,} B "
                    f"with {row.in_file:,} records",
                    flush=True,
                )
            if not args.no_trafgen_alone:
                sent, dur = run_trafgen_alone(net, cfg, args.count)
                tg_alone.append(sent / dur)
    finally:
        if args.keep:
            print(f"files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, tg_alone, args, where)


if __name__ == "__main__":
    main()

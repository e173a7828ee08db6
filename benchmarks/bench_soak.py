#!/usr/bin/env python3
"""Soak benchmark: millions of frames at a fixed rate into ``afpacket capture`` (TPACKET_V3) writing rotated pcapng.

What one run does, over a private veth pair in a throw-away network namespace (``afpacket.testnet.VethPair``,
unique names, removed on exit even after an error or Ctrl-C):

1. ``trafgen -P 1 -b RATEpps -n FRAMES`` pinned to CPU 0 inside the namespace sends FRAMES frames of ``--size``
   bytes from the inner end: dst = the outer end's MAC, EtherType 0x88b5 (nothing in the stack answers it),
   and a 32-bit sequence number in the last four bytes of the source MAC (trafgen's ``dinc()``), so every
   record on disk can be traced to the frame it came from. trafgen paces by busy-waiting between frames.
2. ``python -m afpacket capture -i OUTER -p --tpacket-version 3 -B BUF -w DIR/soak.pcapng -C MB`` pinned to
   CPU 1, with the filter ``ether proto 0x88b5`` (only the generated frames count; IPv6 is off on both ends
   too). ``-C`` rotation by size makes about 100 files (tcpdump's names: soak.pcapng, soak.pcapng1, ...);
   never ``-W``, which would delete files that must be counted.
3. Every second: the capture's RSS (``/proc/PID/status``: VmRSS, RssAnon) and the outer end's rx_packets.
4. Once trafgen has ended and the capture has been idle for ``--quiet`` s: SIGINT, then its summary
   (``--stats-json``).
5. Sent = the inner end's kernel ``tx_packets`` counter (before/after; trafgen's own count and the outer
   end's ``rx_packets`` beside it). Every rotated file is read back with ``afpacket.savefile.open_reader``
   (no error allowed, records counted, each record the frame sent, sequence numbers strictly increasing
   across all files, so no record is duplicated or reordered), and a sample of files also with
   ``tcpdump -r`` (its count must match).

Then the same traffic, shorter (``--peer-frames``), into ``tcpdump -w DIR/tcpdump.pcap -C MB`` as the peer.

Verdicts (the final line is PASS only if all three hold for afpacket):
  * captured + dropped == sent, exactly (summary's captured and kernel drops against tx_packets);
  * RSS flat: the highest VmRSS after the warm-up exceeds the VmRSS at the end of the warm-up by less than
    ``--rss-bound-mib`` (8 MiB); the slope (KiB per million packets, least squares after warm-up) is shown;
  * every file whole: every file read with no error, the records summed over all files == the summary's
    captured, frames intact and in order, and the tcpdump -r counts agree.

Disk: pcapng costs 44 bytes + the frame (padded to 4) per record: 50,000,000 64-byte frames make 5.4 GB.
``--verify after`` keeps every file until the run is over, then reads them (nothing competes with the
capture); ``--verify stream`` reads each file as soon as it is closed (the next one exists) in a thread
pinned to the capture's CPU at nice 19, and deletes it once counted, so the disk holds only a few files.
``auto`` (the default) takes ``after`` when the output directory has room for every file of both runs
plus 1 GiB, else ``stream``. Files that fail a check are kept.

Run as root:  python benchmarks/bench_soak.py [--frames 50000000] [--rate 500000] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from afpacket.errors import AfPacketError
from afpacket.savefile import PcapngReader, open_reader
from afpacket.testnet import VethPair

GEN_CPU = 0
CAP_CPU = 1
DEFAULT_FRAMES = 50_000_000
#: About 80% of what the sender reaches on this 2-CPU VM with the capture running: trafgen alone ~765,000 pps,
#: ~615,000 with the capture (veth delivers on the sender's CPU, AF_PACKET copy into the ring included), while
#: the capture itself needs ~0.1 us per packet of CPU 1. See benchmarks/README.md.
DEFAULT_RATE = 500_000
DEFAULT_PEER_FRAMES = 5_000_000
ETHERTYPE = 0x88B5
FILTER = ["ether", "proto", f"0x{ETHERTYPE:04x}"]
SRC_MAC = "02:00:00:00:00:00"  # its last four bytes count the frames (trafgen dinc())
SEQ = slice(8, 12)  # where that counter sits in each frame
#: bytes per record beyond the (4-aligned) frame: a pcapng EPB (28 + epb_flags option 12 + 4) as afpacket writes
#: it, and the pcap record header tcpdump writes
RECORD_OVERHEAD = {"pcapng": 44, "pcap": 16}
RATE_HELD = 0.95  # below this share of --rate the report says the sender did not keep up
MAX_DRAIN_S = 120.0  # a capture still busy this long after the sender ended is stopped anyway
TARGET_FILES = 100  # the automatic -C gives about this many files per run
MIB = 1024  # KiB per MiB (RSS is read in KiB)


# -- small kernel/proc readers ------------------------------------------------------------------------
def read_int(path: str) -> int:
    with open(path) as f:
        return int(f.read())


def read_text(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()


def netns_counter(net: VethPair, iface: str, name: str) -> int:
    """A statistics counter of ``iface`` inside the pair's namespace (/sys there shows that namespace)."""
    return int(net.exec("cat", f"/sys/class/net/{iface}/statistics/{name}").stdout)


def proc_rss(pid: int) -> tuple[int, int] | None:
    """(VmRSS, RssAnon) of ``pid`` in KiB, or None once it is gone."""
    vals: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon"):
                    vals[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if "VmRSS" not in vals:
        return None  # a zombie has no memory lines
    return vals["VmRSS"], vals.get("RssAnon", 0)


def cpu_clock(pid: int) -> float:
    """User+sys CPU seconds of process ``pid`` (its CPUCLOCK_SCHED clock), 0.0 once it is gone."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        return 0.0


def fs_free(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fs_type(path: str) -> str:
    p = subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def record_bytes(size: int, fmt: str) -> int:
    return RECORD_OVERHEAD[fmt] + (size + 3) // 4 * 4


# -- the sender --------------------------------------------------------------------------------------
def trafgen_cfg(path: str, dst_mac: str, size: int) -> None:
    """One frame: dst = the capture's end, src = SRC_MAC with a run-time 32-bit counter in its last four
    bytes, EtherType 0x88b5, zero fill to ``size`` bytes (no FCS)."""
    with open(path, "w") as f:
        f.write(f"{{ eth(da={dst_mac}, sa={SRC_MAC}, sa=dinc(), type=0x{ETHERTYPE:04x}), fill(0x00, {size - 14}) }}\n")


def start_trafgen(net: VethPair, cfg: str, frames: int, rate: int) -> subprocess.Popen[bytes]:
    return net.popen(
        "taskset", "-c", str(GEN_CPU), "trafgen", "-o", net.inner, "-i", cfg, "-n", str(frames), "-P", "1",
        "-b", f"{rate}pps", "--no-sock-mem", "-Q",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: trafgen forks a worker, stop() must reach both
    )


def trafgen_count(out: str) -> int:
    m = re.search(r"(\d+) packets outgoing", out)
    if not m:
        raise RuntimeError(f"cannot read trafgen's count from its output:\n{out}")
    return int(m.group(1))


def stop(p: subprocess.Popen[bytes]) -> None:
    """Kill the process group ``p`` leads (every process here starts its own; trafgen's worker is a child of
    the process started) unless it has already ended, and reap ``p``."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


# -- reading the files back --------------------------------------------------------------------------
@dataclass
class FileCheck:
    """One rotated file as read back."""

    name: str
    index: int
    bytes: int = 0
    records: int = 0
    error: str | None = None  # open_reader's error, if the file is not whole
    bad_frames: int = 0  # records that are not a frame the generator sent (size, EtherType)
    disorder: int = 0  # records whose sequence number is not above the previous record's (any file)
    first_seq: int = -1
    last_seq: int = -1
    tcpdump_records: int | None = None  # tcpdump -r's count (None: not in the sample)
    tcpdump_error: str | None = None
    isb: tuple[int | None, int | None] | None = None  # pcapng Interface Statistics Block, if the file has one
    deleted: bool = False

    @property
    def whole(self) -> bool:
        return (
            self.error is None and self.bad_frames == 0 and self.disorder == 0 and self.tcpdump_error is None
            and (self.tcpdump_records is None or self.tcpdump_records == self.records)
        )


def tcpdump_read_count(path: str) -> tuple[int, str | None]:
    """(lines ``tcpdump -r`` prints, its complaint or None): a second, independent reader of the file."""
    p = subprocess.Popen(["tcpdump", "-r", path, "-nn", "-q", "-t"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    n = 0
    while chunk := p.stdout.read(1 << 20):
        n += chunk.count(b"\n")
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    complaints = [line for line in err.splitlines() if line and not line.startswith("reading from file")]
    if p.returncode != 0 or complaints:
        return n, f"tcpdump -r exit {p.returncode}: {' / '.join(complaints)}"
    return n, None


class Verifier:
    """Reads every rotated file of one run, in order, with afpacket's reader (and a sample with tcpdump -r).

    ``stream=True`` runs :meth:`loop` in a thread while the capture writes: a file is closed once the next
    one exists (the writer closes a file before it creates the next), so each closed file is read and then
    deleted (unless ``keep`` or it failed). The thread is pinned to the capture's CPU at nice 19, where it
    only takes time the capture leaves idle (the sender busy-waits on the other CPU). :meth:`finish` reads
    whatever is left once the capture has exited.
    """

    def __init__(self, directory: str, base: str, size: int, sample_every: int, keep: bool, stream: bool) -> None:
        self.directory, self.base, self.size = directory, base, size
        self.sample_every, self.keep, self.stream = sample_every, keep, stream  # sample_every 0: no tcpdump -r
        self.checks: list[FileCheck] = []
        self._last_seq = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def files(self) -> list[tuple[int, str]]:
        """(serial, path) of every rotated file now present, by serial (base, base1, base2, ...)."""
        found = []
        for name in os.listdir(self.directory):
            if name.startswith(self.base):
                tail = name[len(self.base):]
                if tail == "" or tail.isdigit():
                    found.append((int(tail or 0), os.path.join(self.directory, name)))
        return sorted(found)

    def _check(self, index: int, path: str, last: bool) -> None:
        c = FileCheck(os.path.basename(path), index, bytes=os.path.getsize(path))
        size, seq_at, ethertype = self.size, SEQ, ETHERTYPE.to_bytes(2, "big")
        prev = self._last_seq
        try:
            with open_reader(path) as r:
                for rec in r:
                    d = rec.data
                    if len(d) != size or d[12:14] != ethertype:
                        c.bad_frames += 1
                        continue
                    seq = int.from_bytes(d[seq_at], "big")
                    if seq <= prev:
                        c.disorder += 1
                    if c.first_seq < 0:
                        c.first_seq = seq
                    prev = seq
                    c.records += 1
                if isinstance(r, PcapngReader) and r.interface_stats:
                    c.isb = r.interface_stats.get(0)
        except AfPacketError as e:
            c.error = str(e)
        c.last_seq = prev
        self._last_seq = prev
        if self.sample_every and (index % self.sample_every == 0 or last):
            c.tcpdump_records, c.tcpdump_error = tcpdump_read_count(path)
        if self.stream and not self.keep and c.whole:
            os.unlink(path)
            c.deleted = True
        self.checks.append(c)

    def _pending(self, final: bool) -> list[tuple[int, str, bool]]:
        done = len(self.checks)
        present = [(i, p) for i, p in self.files() if i >= done]
        if not final:
            present = present[:-1]  # the newest file may still be written
        return [(i, p, final and k == len(present) - 1) for k, (i, p) in enumerate(present)]

    def loop(self) -> None:
        try:
            os.sched_setaffinity(0, {CAP_CPU})  # this thread only (Linux affinity is per thread)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            while not self._stop.is_set():
                for i, p, last in self._pending(final=False):
                    self._check(i, p, last)
                self._stop.wait(0.5)
        except BaseException as e:  # reported by finish(), never lost in the thread
            self.error = e

    def start(self) -> None:
        if self.stream:
            self._thread = threading.Thread(target=self.loop, name="verifier", daemon=True)
            self._thread.start()

    def finish(self) -> list[FileCheck]:
        """Read every file not read yet (the capture has exited: all are closed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.error is not None:
            raise RuntimeError(f"the file verifier failed: {self.error!r}")
        for i, p, last in self._pending(final=True):
            self._check(i, p, last)
        return self.checks

    def cleanup(self) -> None:
        """Delete the files that passed (failed ones stay for inspection) unless ``keep``."""
        if self.keep:
            return
        for c in self.checks:
            if not c.deleted and c.whole:
                try:
                    os.unlink(os.path.join(self.directory, c.name))
                except FileNotFoundError:
                    pass
                c.deleted = True


# -- one run ---------------------------------------------------------------------------------------
@dataclass
class RssSample:
    t: float  # seconds since the sender started (negative: before)
    packets: int  # the outer end's rx_packets since the start
    rss_kib: int
    anon_kib: int


@dataclass
class RssSummary:
    samples: int
    min_mib: float
    median_mib: float
    max_mib: float
    anon_min_mib: float
    anon_max_mib: float
    warmup_s: float
    after_warmup_mib: float  # VmRSS at the end of the warm-up (the baseline)
    growth_mib: float  # highest VmRSS after the warm-up minus that baseline
    slope_kib_per_mpkt: float | None  # least squares of VmRSS over packets after the warm-up
    anon_slope_kib_per_mpkt: float | None
    flat: bool


@dataclass
class Run:
    """One capturer's run: what was sent, what it says, what its files hold, its memory over time."""

    kind: str  # "afpacket" or "tcpdump"
    command: list[str]
    frames: int
    rate: int
    file_mb: float
    verify: str
    sent: int = 0  # inner end's tx_packets delta: what went onto the wire
    trafgen_sent: int = 0
    tx_dropped: int = 0  # inner end's tx_dropped delta (frames the veth could not deliver)
    arrived: int = 0  # outer end's rx_packets delta
    captured: int = -1  # the capturer's summary
    received: int = -1
    dropped: int = -1
    exit_code: int | None = None
    send_s: float = 0.0
    capture_s: float = 0.0  # first frame sent until the capturer went idle
    cpu_s: float = 0.0
    verify_s: float = 0.0  # reading the files back (after the capture ended; stream: what was left)
    rss: list[RssSample] = field(default_factory=list)
    rss_summary: RssSummary | None = None
    files: list[FileCheck] = field(default_factory=list)
    stderr_tail: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def in_files(self) -> int:
        return sum(c.records for c in self.files)

    @property
    def file_bytes(self) -> int:
        return sum(c.bytes for c in self.files)

    @property
    def accounted(self) -> bool:
        return self.captured >= 0 and self.dropped >= 0 and self.captured + self.dropped == self.sent

    @property
    def files_whole(self) -> bool:
        return bool(self.files) and all(c.whole for c in self.files) and self.in_files == self.captured

    @property
    def steady_pps(self) -> float | None:
        """The arrival rate between the first and the last 1 s sample taken while frames were arriving (the
        sender's start-up and the last partial second left out); None for a run too short to tell."""
        mid = [s for s in self.rss if 0 < s.packets < self.arrived]
        if len(mid) >= 2 and mid[-1].t > mid[0].t:
            return (mid[-1].packets - mid[0].packets) / (mid[-1].t - mid[0].t)
        return None

    @property
    def sampled(self) -> list[FileCheck]:
        return [c for c in self.files if c.tcpdump_records is not None]


def summarise_rss(samples: list[RssSample], send_s: float, warmup: float, bound_mib: float) -> RssSummary | None:
    """min/median/max over the run, and growth after the warm-up: ``warmup`` seconds of traffic, at most a
    fifth of the sending time (a short run still gets samples after it)."""
    if not samples:
        return None
    rss = [s.rss_kib for s in samples]
    anon = [s.anon_kib for s in samples]
    warm = min(warmup, send_s / 5) if send_s > 0 else warmup
    after = [s for s in samples if s.t >= warm] or samples[-1:]
    base = after[0].rss_kib
    growth = max(s.rss_kib for s in after) - base

    def slope(ys: list[int]) -> float | None:
        xs = [s.packets / 1e6 for s in after]
        if len(after) < 3 or max(xs) - min(xs) < 0.1:
            return None
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        den = sum((x - mx) ** 2 for x in xs)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den

    return RssSummary(
        samples=len(samples), min_mib=min(rss) / MIB, median_mib=statistics.median(rss) / MIB,
        max_mib=max(rss) / MIB, anon_min_mib=min(anon) / MIB, anon_max_mib=max(anon) / MIB, warmup_s=warm,
        after_warmup_mib=base / MIB, growth_mib=growth / MIB, slope_kib_per_mpkt=slope([s.rss_kib for s in after]),
        anon_slope_kib_per_mpkt=slope([s.anon_kib for s in after]), flat=growth < bound_mib * MIB,
    )


def wait_ready(proc: subprocess.Popen[bytes], log: str, marker: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = read_text(log)
        if marker in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the capture exited ({proc.returncode}) before it started:\n{text}")
        time.sleep(0.05)
    raise RuntimeError(f"the capture did not say {marker!r} within {timeout:.0f} s")


def parse_summary(text: str) -> tuple[int, int, int]:
    """(captured, received by filter, dropped by kernel) from a tcpdump-style summary; -1 where absent."""

    def grab(what: str) -> int:
        m = re.search(r"(\d+) packets? " + what, text)
        return int(m.group(1)) if m else -1

    return grab("captured"), grab("received by filter"), grab("dropped by kernel")


def run_capture(kind: str, net: VethPair, cfg: str, tmp: str, frames: int, args: argparse.Namespace,
                procs: list[subprocess.Popen[bytes]], stream: bool) -> Run:
    """Start ``kind``'s capture on the outer end, send ``frames`` through trafgen, sample, stop, verify."""
    fmt = "pcapng" if kind == "afpacket" else "pcap"
    base = f"soak.{fmt}" if kind == "afpacket" else f"tcpdump.{fmt}"
    path = os.path.join(tmp, base)
    file_mb = args.file_mb or max(1.0, round(frames * record_bytes(args.size, fmt) / 1e6 / TARGET_FILES))
    summary_json = os.path.join(tmp, f"{kind}-summary.json")
    log = os.path.join(tmp, f"{kind}.stderr")
    pin = ["taskset", "-c", str(CAP_CPU)]
    buf_kib = str(args.buffer_mb << 10)
    if kind == "afpacket":
        cmd = [*pin, sys.executable, "-m", "afpacket", "capture", "-i", net.outer, "-p", "--tpacket-version", "3",
               "-B", buf_kib, "-w", path, "-C", f"{file_mb:g}", "--stats-json", summary_json, *FILTER]
        marker = "capturing on"
    else:
        cmd = [*pin, "tcpdump", "-i", net.outer, "-p", "-n", "-B", buf_kib, "-w", path, "-C", f"{file_mb:g}",
               "-Z", "root", *FILTER]
        marker = "listening on"
    run = Run(kind, cmd, frames, args.rate, file_mb, "stream" if stream else "after")
    expected_files = max(1, frames * record_bytes(args.size, fmt) // max(1, int(file_mb * 1e6)))
    every = 0 if args.tcpdump_sample < 1 else max(1, expected_files // max(1, args.tcpdump_sample - 1))
    verifier = Verifier(tmp, base, args.size, every, args.keep, stream)
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    procs.append(proc)
    wait_ready(proc, log, marker)
    time.sleep(0.3)  # the capture is idle in poll now
    rx_path = f"/sys/class/net/{net.outer}/statistics/rx_packets"
    tx0, txd0 = netns_counter(net, net.inner, "tx_packets"), netns_counter(net, net.inner, "tx_dropped")
    rx0 = read_int(rx_path)
    cpu0 = cpu_clock(proc.pid)
    verifier.start()
    t0 = time.monotonic()
    tg = start_trafgen(net, cfg, frames, args.rate)
    procs.append(tg)
    t_end: float | None = None
    last_cpu, last_change, next_sample, next_note = cpu0, t0, t0, t0 + args.progress
    tg_out = b""
    while True:
        now = time.monotonic()
        if now >= next_sample:
            m = proc_rss(proc.pid)
            if m is not None:
                run.rss.append(RssSample(now - t0, read_int(rx_path) - rx0, m[0], m[1]))
            next_sample = max(next_sample + 1.0, now + 0.5)  # 1 s apart, no burst after a stall
        if now >= next_note and run.rss:
            s = run.rss[-1]
            print(f"  {kind}: {s.t:6.0f} s, {s.packets:>12,} frames arrived, VmRSS {s.rss_kib / MIB:7.1f} MiB, "
                  f"RssAnon {s.anon_kib / MIB:6.1f} MiB, files {len(verifier.files())}", file=sys.stderr, flush=True)
            next_note += args.progress
        c = cpu_clock(proc.pid)
        if c - last_cpu > 1e-3:
            last_change, last_cpu = now, c
        if t_end is None and tg.poll() is not None:
            t_end = time.monotonic()
            assert tg.stdout is not None
            tg_out = tg.stdout.read()
            if tg.returncode != 0:
                raise RuntimeError(f"trafgen failed ({tg.returncode}):\n{tg_out.decode(errors='replace')}")
            last_change = max(last_change, t_end)
        if t_end is not None and now - last_change >= args.quiet:
            break
        if t_end is not None and now - t_end > MAX_DRAIN_S:
            run.notes.append(f"still busy {MAX_DRAIN_S:.0f} s after the sender ended; stopped anyway")
            break
        if proc.poll() is not None:
            raise RuntimeError(f"the capture ended early ({proc.returncode}):\n{read_text(log)}")
        time.sleep(0.05)
    run.send_s = t_end - t0
    run.capture_s = last_change - t0
    run.cpu_s = cpu_clock(proc.pid) - cpu0
    proc.send_signal(signal.SIGINT)
    try:
        run.exit_code = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{kind} did not stop on SIGINT within 300 s") from None
    run.trafgen_sent = trafgen_count(tg_out.decode(errors="replace"))
    run.sent = netns_counter(net, net.inner, "tx_packets") - tx0
    run.tx_dropped = netns_counter(net, net.inner, "tx_dropped") - txd0
    run.arrived = read_int(rx_path) - rx0
    text = read_text(log)
    run.stderr_tail = "\n".join(text.strip().splitlines()[-6:])
    if kind == "afpacket" and os.path.exists(summary_json):
        with open(summary_json) as f:
            s = json.load(f)
        run.captured, run.received, run.dropped = s["captured"], s["received_by_filter"], s["dropped_by_kernel"]
    else:
        run.captured, run.received, run.dropped = parse_summary(text)
    run.rss_summary = summarise_rss(run.rss, run.send_s, args.warmup, args.rss_bound_mib)
    print(f"  {kind}: sent {run.sent:,}, captured {run.captured:,}, dropped {run.dropped:,}; reading "
          f"{'the remaining' if stream else 'its'} files back ...", file=sys.stderr, flush=True)
    t_verify = time.monotonic()
    run.files = verifier.finish()
    run.verify_s = time.monotonic() - t_verify
    verifier.cleanup()
    return run


# -- report ----------------------------------------------------------------------------------------
def fmt_int(n: int | None) -> str:
    return "-" if n is None or n < 0 else f"{n:,}"


def print_report(runs: list[Run], args: argparse.Namespace, where: str, verify_why: str) -> dict[str, Any]:
    main = runs[0]
    peer = runs[1] if len(runs) > 1 else None
    print()
    print(f"Soak benchmark: {args.size}-byte frames at {args.rate:,} pps (trafgen -P 1 -b {args.rate}pps, busy-wait "
          f"pacing, CPU {GEN_CPU}); capturer on CPU {CAP_CPU}, ring {args.buffer_mb} MiB")
    print(f"files in {where}; verify: {main.verify} ({verify_why})")
    for r in runs:
        print(f"  {r.kind:<9} {' '.join(r.command)}")
    print()

    def rss(r: Run, what: str) -> str:
        s = r.rss_summary
        if s is None:
            return "-"
        if what == "range":
            return f"{s.min_mib:.1f} / {s.median_mib:.1f} / {s.max_mib:.1f}"
        if what == "anon":
            return f"{s.anon_min_mib:.1f} .. {s.anon_max_mib:.1f}"
        if what == "growth":
            return f"{s.after_warmup_mib:.1f} +{s.growth_mib:.2f} (after {s.warmup_s:.1f} s)"
        v = s.slope_kib_per_mpkt if what == "slope" else s.anon_slope_kib_per_mpkt
        return "n/a (too few samples)" if v is None else f"{v:+.1f}"

    def sample(r: Run) -> str:
        sm = r.sampled
        bad = [c for c in sm if c.tcpdump_error or c.tcpdump_records != c.records]
        return f"{len(sm)} files, {'agree' if not bad else 'DISAGREE: ' + ', '.join(c.name for c in bad)}"

    def isb(r: Run) -> str:
        last = r.files[-1].isb if r.files else None
        return "-" if last is None else f"{fmt_int(last[0])} / {fmt_int(last[1])}"

    rows: list[tuple[str, Any]] = [
        ("frames asked", lambda r: fmt_int(r.frames)),
        ("sent: inner tx_packets delta", lambda r: fmt_int(r.sent)),
        ("trafgen's count / veth tx_dropped", lambda r: f"{r.trafgen_sent:,} / {r.tx_dropped:,}"),
        ("arrived: outer rx_packets delta", lambda r: fmt_int(r.arrived)),
        ("captured (summary)", lambda r: fmt_int(r.captured)),
        ("dropped by kernel (summary)", lambda r: fmt_int(r.dropped)),
        ("received by filter (summary)", lambda r: fmt_int(r.received)),
        ("captured + dropped - sent",
         lambda r: f"{r.captured + r.dropped - r.sent:+,}" if min(r.captured, r.dropped) >= 0 else "n/a (no summary)"),
        ("records in all files (open_reader)", lambda r: fmt_int(r.in_files)),
        ("files / bytes written", lambda r: f"{len(r.files)} / {r.file_bytes:,}"),
        ("rotation -C (million bytes)", lambda r: f"{r.file_mb:g}"),
        ("files with a read error", lambda r: str(sum(c.error is not None for c in r.files))),
        ("records not a sent frame / out of order",
         lambda r: f"{sum(c.bad_frames for c in r.files)} / {sum(c.disorder for c in r.files)}"),
        ("tcpdump -r on a sample", sample),
        ("last file's ISB received / dropped", isb),
        ("send time s / sent pps", lambda r: f"{r.send_s:.1f} / {r.sent / r.send_s:,.0f}" if r.send_s else "-"),
        ("steady arrival pps (1 s samples)",
         lambda r: "n/a (run too short)" if r.steady_pps is None else f"{r.steady_pps:,.0f}"),
        ("capture time s / captured pps",
         lambda r: f"{r.capture_s:.1f} / {r.captured / r.capture_s:,.0f}" if r.capture_s else "-"),
        ("capture CPU s / us per packet",
         lambda r: f"{r.cpu_s:.2f} / {r.cpu_s / r.captured * 1e6:.3f}" if r.captured > 0 else "-"),
        ("VmRSS min / median / max MiB", lambda r: rss(r, "range")),
        ("RssAnon min .. max MiB", lambda r: rss(r, "anon")),
        ("VmRSS after warm-up, then growth MiB", lambda r: rss(r, "growth")),
        ("VmRSS slope KiB per Mpkt", lambda r: rss(r, "slope")),
        ("RssAnon slope KiB per Mpkt", lambda r: rss(r, "anon-slope")),
        ("RSS samples (1 s apart)", lambda r: str(r.rss_summary.samples if r.rss_summary else 0)),
        ("reading files back s", lambda r: f"{r.verify_s:.1f}"),
        ("exit code", lambda r: str(r.exit_code)),
    ]
    heads = ["afpacket capture (V3, pcapng)"] + (["tcpdump -w -C (peer)"] if peer else [])
    print(f"{'':<40} " + " ".join(f"{h:<34}" for h in heads))
    for label, fn in rows:
        print(f"{label:<40} " + " ".join(f"{fn(r):<34}" for r in runs))
    print()

    verdicts = {
        "captured + dropped == sent": main.accounted,
        "RSS flat": bool(main.rss_summary and main.rss_summary.flat),
        "all files whole": main.files_whole,
    }
    s = main.rss_summary
    detail = {
        "captured + dropped == sent": f"{main.captured:,} + {main.dropped:,} = {main.captured + main.dropped:,}, "
                                      f"sent {main.sent:,}",
        "RSS flat": (f"VmRSS grew {s.growth_mib:.2f} MiB after the {s.warmup_s:.1f} s warm-up, bound "
                     f"{args.rss_bound_mib:g} MiB" if s else "no samples"),
        "all files whole": (f"{len(main.files)} files, {sum(c.whole for c in main.files)} whole, "
                            f"{main.in_files:,} records = captured {main.captured:,}: "
                            f"{'yes' if main.in_files == main.captured else 'NO'}"),
    }
    for name, ok in verdicts.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail[name]}")
    if peer:
        print(f"peer  tcpdump: captured {peer.captured:,} + dropped {peer.dropped:,} "
              f"{'==' if peer.accounted else '!='} sent {peer.sent:,}; {len(peer.files)} files, "
              f"{peer.in_files:,} records, {'all whole' if peer.files_whole else 'NOT all whole'}; "
              f"VmRSS {rss(peer, 'range')} MiB")
    for r in runs:
        for n in r.notes:
            print(f"note: {r.kind} run: {n}")
        pps = r.steady_pps
        if pps is not None and pps < RATE_HELD * r.rate:
            print(f"note: {r.kind} run: the sender did not hold --rate ({pps:,.0f} of {r.rate:,} pps); the "
                  "machine is busy or the rate is above what it sustains, lower --rate")
    if main.verify == "stream" and not args.keep:
        print(f"note: each file was deleted once counted (verify stream); "
              f"{sum(not c.deleted for c in main.files)} kept")
    kept = [c.name for r in runs for c in r.files if not c.deleted]
    if kept:
        print(f"files kept: {len(kept)} in {where.split(' (')[0]}")
    ok = all(verdicts.values())
    print(f"RESULT: {'PASS' if ok else 'FAIL'}")
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "where": where,
        "verify_reason": verify_why,
        "runs": [dataclasses.asdict(r) | {"in_files": r.in_files, "file_bytes": r.file_bytes,
                                          "steady_pps": r.steady_pps, "accounted": r.accounted,
                                          "files_whole": r.files_whole} for r in runs],
        "verdicts": verdicts,
        "pass": ok,
    }


# -- main ------------------------------------------------------------------------------------------
def choose_verify(args: argparse.Namespace, directory: str) -> tuple[bool, str]:
    """(stream?, why): see the module docstring."""
    need = args.frames * record_bytes(args.size, "pcapng") + args.peer_frames * record_bytes(args.size, "pcap")
    free = fs_free(directory)
    room = f"{free / 1e9:.1f} GB free, the files need {need / 1e9:.1f} GB"
    if args.verify == "after":
        if free < need + (1 << 30):
            raise SystemExit(f"--verify after: {directory} has {room} (+1 GiB margin); use --verify stream, "
                             "--dir elsewhere, or fewer --frames")
        return False, room
    if args.verify == "stream":
        return True, room + "; each file deleted once counted" if not args.keep else room
    stream = free < need + (1 << 30)
    return stream, room + ("; too little room to keep them all" if stream else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames to send (default 50,000,000)")
    ap.add_argument("--rate", type=int, default=DEFAULT_RATE,
                    help=f"packets/s, trafgen -b RATEpps (default {DEFAULT_RATE:,}: what this VM sustains)")
    ap.add_argument("--size", type=int, default=64, help="frame size in bytes, no FCS (default 64)")
    ap.add_argument("--peer-frames", type=int, default=None,
                    help="frames for the tcpdump peer run (default min(5,000,000, --frames); 0: no peer)")
    ap.add_argument("--buffer-mb", type=int, default=64, help="ring / buffer size for both capturers (64 MiB)")
    ap.add_argument("--file-mb", type=float, default=0.0,
                    help="-C value in million bytes (default: about 100 files per run, at least 1)")
    ap.add_argument("--dir", default="/var/tmp", help="where the temp dir for the files goes (default /var/tmp)")
    ap.add_argument("--verify", choices=["auto", "after", "stream"], default="auto",
                    help="read files back after the run, or as each is closed and delete it (default auto)")
    ap.add_argument("--tcpdump-sample", type=int, default=5, help="files also read with tcpdump -r (about 5)")
    ap.add_argument("--warmup", type=float, default=10.0,
                    help="seconds of traffic before RSS must stay flat (at most a fifth of the run)")
    ap.add_argument("--rss-bound-mib", type=float, default=8.0, help="allowed VmRSS growth after warm-up (8 MiB)")
    ap.add_argument("--quiet", type=float, default=1.5,
                    help="the capturer is done after this long without CPU use once trafgen ended")
    ap.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines on stderr")
    ap.add_argument("--keep", action="store_true", help="keep every file (and the temp dir)")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="also write the results as JSON (- stdout)")
    args = ap.parse_args()
    if args.peer_frames is None:
        args.peer_frames = min(DEFAULT_PEER_FRAMES, args.frames)
    if args.frames < 1 or args.rate < 1 or args.peer_frames < 0 or args.buffer_mb < 1:
        ap.error("--frames, --rate and --buffer-mb must be positive, --peer-frames not negative")
    if max(args.frames, args.peer_frames) >= 1 << 32:
        ap.error("--frames and --peer-frames must be below 2**32 (the frames carry a 32-bit sequence number)")
    for name in ("file_mb", "warmup", "rss_bound_mib", "quiet", "progress"):
        v = getattr(args, name)
        if not math.isfinite(v) or v < 0 or (v == 0 and name in ("rss_bound_mib", "quiet", "progress")):
            ap.error(f"--{name.replace('_', '-')} must be a finite number, " + (
                "not negative" if name in ("file_mb", "warmup") else "above 0") + f" (got {v})")
    if not 60 <= args.size <= 1514:
        ap.error("--size must be 60..1514 (an Ethernet frame without FCS)")
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, packet sockets)")
    for tool in ("trafgen", "tcpdump", "taskset", "ip"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs at least 2 CPUs")
    if not os.path.isdir(args.dir):
        sys.exit(f"--dir {args.dir}: no such directory")
    stream, why = choose_verify(args, args.dir)
    os.sched_setaffinity(0, {GEN_CPU})  # this sampler stays off the capture CPU
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # SIGTERM cleans up as Ctrl-C does (finally below)

    tmp = tempfile.mkdtemp(prefix="bench_soak", dir=args.dir)
    where = f"{tmp} ({fs_type(tmp)})"
    procs: list[subprocess.Popen[bytes]] = []
    runs: list[Run] = []
    try:
        with VethPair("soak", addresses=False) as net:
            cfg = os.path.join(tmp, "frame.cfg")
            trafgen_cfg(cfg, net.outer_mac, args.size)
            print(f"soak: {args.frames:,} frames at {args.rate:,} pps over {net.inner} -> {net.outer} "
                  f"(namespace {net.netns}); files in {where}; verify {'stream' if stream else 'after'} ({why})",
                  file=sys.stderr, flush=True)
            runs.append(run_capture("afpacket", net, cfg, tmp, args.frames, args, procs, stream))
            if args.peer_frames:
                runs.append(run_capture("tcpdump", net, cfg, tmp, args.peer_frames, args, procs, False))
    finally:
        for p in procs:
            stop(p)
        failed = any(not c.deleted for r in runs for c in r.files)
        if args.keep or failed:
            print(f"files kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result = print_report(runs, args, where, why)
    if args.json:
        text = json.dumps(result, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    sys.exit(0 if result["pass"] else 1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the namespace, the processes and the files are gone already (finally)
        print("interrupted; namespace, processes and files removed", file=sys.stderr)
        sys.exit(130)

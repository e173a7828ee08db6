"""Worker groups: one interface's traffic spread over N processes through a PACKET_FANOUT group.

Each worker is a forked process with its own socket and ring in one fanout group, as Suricata and Zeek run
one worker per core: the kernel picks the member for every packet (by flow hash by default, with DEFRAG so
the fragments of a datagram stay together), so a worker never shares a ring with another and needs no lock.

Start-up: worker 0 joins first with a group id the kernel picks (UNIQUEID) unless one is given; the others
join that id. Nothing is lost while they join: the group's members share whatever arrives, however many
there are. Each worker reports its kernel counters over a pipe a few times a second and once when it ends,
so the parent merges exact totals (the sum of the members' ``received`` is what the kernel delivered to the
group) and, for a worker that died, the counts up to its last report.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import select
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _check
from .errors import AfPacketError, ArgumentError

if TYPE_CHECKING:
    from .fanout import Fanout
    from .rx import Capture, Columns, Packet

#: seconds between a worker's reports of its counters
REPORT_INTERVAL = 0.25
#: seconds the start-up waits for a worker to open its socket and join the group
START_TIMEOUT = 30.0
#: the fanout modes a group can be asked for by name (cbpf/ebpf take a program: pass a Fanout)
MODES = ("hash", "lb", "cpu", "rollover", "rnd", "qm", "cbpf", "ebpf")


@dataclass
class WorkerReport:
    """What one worker of a :class:`CaptureGroup` did.

    ``index`` (0..N-1), ``pid``, ``received``/``drops`` (its socket's kernel counters: received by the
    filter, dropped because its ring was full), ``handled`` (packets given to the callable, or records
    written to its file), ``files`` (the files it wrote), ``result`` (what ``result()`` returned in the
    worker, pickled back), ``error`` (why it failed: the exception and traceback of the callable, or the
    signal that killed it; None when it ended normally), ``exitcode``, and ``complete``: False when the
    worker died before its last report, so its counts are those of its last report (at most
    :data:`REPORT_INTERVAL` old). ``bytes`` is the wire length (tp_len) summed over the packets the worker
    took from its ring.
    """

    index: int
    pid: int = 0
    received: int = 0
    drops: int = 0
    handled: int = 0
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    exitcode: int | None = None
    complete: bool = False

    @property
    def alive(self) -> bool:
        """The worker process has not ended yet (it may have sent its last report already)."""
        return self.exitcode is None


@dataclass(frozen=True)
class GroupStats:
    """The group's merged counters: ``received`` and ``drops`` summed over every worker's socket (the
    sum of ``received`` is what the kernel delivered to the group), ``handled`` summed over workers, and
    ``workers``, one :class:`WorkerReport` each. ``failed`` lists the workers that died or raised."""

    received: int
    drops: int
    handled: int
    workers: tuple[WorkerReport, ...]

    @property
    def packets(self) -> int:
        """Packets that reached the workers' rings: received minus drops."""
        return self.received - self.drops

    @property
    def failed(self) -> tuple[WorkerReport, ...]:
        """The workers that died or whose callable raised."""
        return tuple(w for w in self.workers if w.error is not None)


@dataclass(frozen=True)
class _Job:
    """What a worker process runs (inherited through fork, never pickled)."""

    interface: str
    fanout: Fanout
    capture_options: dict[str, Any]
    on_packet: Callable[[Packet], Any] | None
    on_batch: Callable[[Columns], Any] | None
    worker: Callable[[Capture, int], Any] | None
    result: Callable[[], Any] | None
    write: str | None
    fmt: str | None
    file_options: dict[str, Any]
    duration: float | None


class CaptureGroup:
    """Capture on ``interface`` with ``workers`` processes sharing its traffic through PACKET_FANOUT.

    Example::

        counts: dict[bytes, int] = {}

        def count(pkt: afpacket.Packet) -> None:          # runs in each worker process
            key = bytes(pkt.data[26:38])                   # IPv4 addresses and ports
            counts[key] = counts.get(key, 0) + 1

        with afpacket.CaptureGroup("eth0", workers=4, on_packet=count, result=lambda: counts) as group:
            time.sleep(10)
        for w in group.reports:
            print(w.index, w.handled, len(w.result))
        print(group.stats())                               # merged: received, drops, handled

    What each worker does (exactly one of):

    - ``on_packet``: called with every packet (an :class:`~afpacket.Packet`, valid during the call);
    - ``on_batch``: called with the metadata of every ring batch (:class:`~afpacket.Columns`);
    - ``worker``: called once as ``worker(capture, index)``, free to read its Capture as it likes
      (``frames()``, ``batches()``...) until :meth:`~afpacket.Capture.stop` ends its loop; its return
      value is the worker's result;
    - ``write``: write the packets to a file, one per worker: ``write`` is a path with ``{worker}`` in
      it (``"out-{worker}.pcap"``), in ``fmt`` (pcap or pcapng; default from the name) with
      ``file_options`` (:func:`~afpacket.tofile.open_for`'s: ``nanosecond``, ``unbuffered``,
      ``file_size``, ``rotate_seconds``, ``file_count``). :func:`merge_files` makes one file in
      timestamp order from them.

    ``result`` (optional) is called in the worker when it ends; what it returns is pickled back to
    :attr:`reports`. ``fanout`` is a mode name (``"hash"``, the default, with DEFRAG as Suricata's
    cluster_flow; ``"lb"``, ``"cpu"``, ``"rollover"``, ``"rnd"``, ``"qm"``; ``"cbpf"`` with the kernel's
    flow hash) or a :class:`~afpacket.Fanout` (a steering program for cbpf/ebpf, flags, a fixed group id).
    ``duration`` ends the group after that many seconds, ``count`` once the workers together have handled
    that many packets (as they report, a few times a second: they may handle a few more; the CLI's merged
    file keeps exactly ``count``); otherwise it runs until :meth:`stop` (or, for ``worker=``, until every
    worker returns). Other keywords (``capture_options``) go to each worker's :class:`~afpacket.Capture`
    (``filter``, ``version``, ``buffer_size``, ``snaplen``...).

    A worker that dies (killed, or its callable raised) is reported in :attr:`reports` (``error``,
    ``exitcode``) and the others go on: the kernel shares the traffic among the members left.
    :meth:`stats` merges the workers' kernel counters exactly. Workers are forked (Linux), so callables
    need not be picklable; their results must be. Workers ignore SIGINT (the parent stops them) and end
    cleanly on SIGTERM. Raises ArgumentError/TypeError for bad arguments, and the first worker's error
    (InterfaceNotFoundError, PermissionDeniedError, FilterError, ...) when it cannot start.
    """

    def __init__(
        self,
        interface: str,
        *,
        workers: int = 2,
        fanout: str | Fanout = "hash",
        on_packet: Callable[[Packet], Any] | None = None,
        on_batch: Callable[[Columns], Any] | None = None,
        worker: Callable[[Capture, int], Any] | None = None,
        result: Callable[[], Any] | None = None,
        write: str | os.PathLike[str] | None = None,
        fmt: str | None = None,
        file_options: dict[str, Any] | None = None,
        duration: float | None = None,
        count: int | None = None,
        **capture_options: Any,
    ) -> None:
        if not isinstance(interface, str):
            raise TypeError(f"CaptureGroup(): interface must be a str, not {type(interface).__name__}")
        n = _check.count("CaptureGroup()", "workers", workers, allow_zero=False, optional=False, maximum=1024)
        assert n is not None
        chosen = [name for name, v in (("on_packet", on_packet), ("on_batch", on_batch), ("worker", worker),
                                       ("write", write)) if v is not None]
        if len(chosen) != 1:
            raise ArgumentError(
                "CaptureGroup(): give exactly one of on_packet=, on_batch=, worker= or write= (what each worker "
                f"does with its packets), got {', '.join(chosen) or 'none'}"
            )
        for name, fn in (("on_packet", on_packet), ("on_batch", on_batch), ("worker", worker), ("result", result)):
            if fn is not None and not callable(fn):
                raise TypeError(f"CaptureGroup(): {name} must be callable, not {type(fn).__name__}")
        path = os.fspath(write) if write is not None else None
        if path is not None and n > 1 and "{worker}" not in path:
            raise ArgumentError(
                f"CaptureGroup(): write={path!r} would be one file for {n} workers: put '{{worker}}' in the name "
                "(e.g. 'out-{worker}.pcap'), then merge_files() makes one file in timestamp order"
            )
        if "fanout" in capture_options or "interface" in capture_options:
            raise ArgumentError("CaptureGroup(): the group sets each worker's fanout and interface itself")
        self.interface = interface
        self.workers = n
        self.fanout = _fanout_for(fanout)
        self._job = _Job(
            interface, self.fanout, dict(capture_options), on_packet, on_batch, worker, result, path, fmt,
            dict(file_options or {}), _check.seconds("CaptureGroup()", "duration", duration),
        )
        #: stop once the workers together have handled this many packets (checked as they report)
        self.count = _check.count("CaptureGroup()", "count", count)
        #: one report per worker, updated as they report (see WorkerReport)
        self.reports: list[WorkerReport] = [WorkerReport(i) for i in range(n)]
        #: the fanout group id the workers joined (known once start() returns)
        self.group_id: int | None = None
        self._ctx = multiprocessing.get_context("fork")
        # The stop "signal" is a pipe whose write end only the parent holds: closing it (stop(), or the parent
        # dying) is EOF for every worker at once. Signal-safe, and nothing a killed worker can leave locked (a
        # multiprocessing.Event's lock, held by a worker killed inside wait(), would hang the others).
        self._stop_r, self._stop_w = -1, -1
        self._pid = os.getpid()
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._conns: list[Connection] = []
        self._started = False
        self._finished = False

    # -- running --------------------------------------------------------------------------------
    def start(self) -> CaptureGroup:
        """Start the workers; returns once every one has joined the group (or raises the first one's
        error, after stopping the others)."""
        if self._started:
            raise AfPacketError("CaptureGroup.start(): the group was started already; make a new one")
        self._started = True
        self._stop_r, self._stop_w = os.pipe()
        try:
            self._spawn(0, self.fanout)
            first = self._await_ready([0])
            self.group_id = first
            rest = replace(self.fanout, group_id=first)
            for i in range(1, self.workers):
                self._spawn(i, rest)
            self._await_ready(list(range(1, self.workers)))
        except BaseException:
            self._kill_all()
            raise
        return self

    def _spawn(self, index: int, fanout: Fanout) -> None:
        parent, child = self._ctx.Pipe(duplex=False)
        job = replace(self._job, fanout=fanout)
        # what the child must not keep: the parent's ends of every pipe (or a dead parent would go unnoticed)
        foreign = [c.fileno() for c in (*self._conns, parent)] + [self._stop_w]
        proc = self._ctx.Process(target=_worker_main, args=(job, index, child, self._stop_r, foreign),
                                 name=f"afpacket-worker-{index}", daemon=True)
        proc.start()
        child.close()
        self._procs.append(proc)
        self._conns.append(parent)
        self.reports[index].pid = proc.pid or 0

    def _await_ready(self, indexes: list[int]) -> int:
        """Wait until the workers ``indexes`` have joined; the group id they report."""
        waiting = set(indexes)
        group = 0
        deadline = time.monotonic() + START_TIMEOUT
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AfPacketError(
                    f"CaptureGroup: workers {sorted(waiting)} did not start within {START_TIMEOUT:.0f} s"
                )
            ready = wait([self._conns[i] for i in waiting] + [self._procs[i].sentinel for i in waiting], left)
            for i in list(waiting):
                conn = self._conns[i]
                if conn in ready or conn.poll():
                    try:
                        msg = conn.recv()
                    except EOFError:
                        msg = None
                    if msg is not None and msg[0] == "ready":
                        group = int(msg[1])
                        waiting.discard(i)
                        continue
                    if msg is not None and msg[0] == "error":
                        raise msg[1] if isinstance(msg[1], AfPacketError) else AfPacketError(str(msg[1]))
                if self._procs[i].sentinel in ready and not conn.poll():
                    self._procs[i].join()
                    why = _exit_text(self._procs[i].exitcode)
                    raise AfPacketError(f"CaptureGroup: worker {i} ended while starting ({why})")
        return group

    def stop(self) -> None:
        """Ask every worker to end (each finishes what it holds and sends its last report); :meth:`wait`
        collects them. Safe from another thread or a signal handler."""
        if os.getpid() != self._pid:
            return  # a worker that inherited a handler calling this: the pipe's write end is not its own
        w, self._stop_w = self._stop_w, -1
        if w >= 0:
            os.close(w)

    def wait(self, timeout: float | None = None) -> GroupStats:
        """Wait for the workers to end (after ``duration``, :meth:`stop`, or by themselves) for up to
        ``timeout`` seconds, collecting their reports; returns the merged :meth:`stats`. Workers still
        running when ``timeout`` passes keep running (call stop() and wait() again)."""
        timeout = _check.seconds("CaptureGroup.wait()", "timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while any(r.alive for r in self.reports[: len(self._procs)]):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self.poll(left if left is not None else 1.0)
        if not any(r.alive for r in self.reports):
            self._finished = True
        return self.stats()

    def poll(self, timeout: float = 0.0) -> None:
        """Take in the reports the workers sent (waiting up to ``timeout`` seconds for one), and notice the
        workers that died."""
        live = [i for i, r in enumerate(self.reports[: len(self._procs)]) if r.alive]
        if not live:
            return
        objs: list[Any] = [self._conns[i] for i in live] + [self._procs[i].sentinel for i in live]
        ready = wait(objs, timeout)
        for i in live:
            conn, proc, rep = self._conns[i], self._procs[i], self.reports[i]
            while conn.poll():
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    break
                _apply(rep, msg)
            if proc.sentinel in ready or not proc.is_alive():
                proc.join(1.0)
                while conn.poll():
                    try:
                        _apply(rep, conn.recv())
                    except (EOFError, OSError):
                        break
                rep.exitcode = proc.exitcode
                if not rep.complete and rep.error is None:
                    rep.error = f"worker {i} (pid {rep.pid}) {_exit_text(proc.exitcode)} before its last report"
        if self.count is not None and sum(r.handled for r in self.reports) >= self.count:
            self.stop()

    def stats(self) -> GroupStats:
        """The merged counters of the reports received so far (exact once :meth:`wait` has returned)."""
        reps = tuple(replace(r) for r in self.reports)
        return GroupStats(sum(r.received for r in reps), sum(r.drops for r in reps), sum(r.handled for r in reps),
                          reps)

    def run(self) -> GroupStats:
        """start(), then wait() until the workers end (``duration``, or stop() from elsewhere); Ctrl-C
        stops them cleanly."""
        self.start()
        try:
            return self.wait()
        except KeyboardInterrupt:
            self.stop()
            return self.wait()

    def _kill_all(self) -> None:
        self.stop()
        for proc in self._procs:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def close(self) -> None:
        """Stop the workers and wait for their last reports (workers that do not end within 10 s are
        killed)."""
        if not self._started or self._finished:
            return
        self.stop()
        self.wait(10.0)
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        self.wait(2.0)
        self._finished = True
        for conn in self._conns:
            conn.close()
        r, self._stop_r = self._stop_r, -1
        if r >= 0:
            os.close(r)

    def __enter__(self) -> CaptureGroup:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = self.fanout.mode
        return f"<CaptureGroup {self.interface!r} {self.workers} workers fanout={mode} group={self.group_id}>"


def _fanout_for(fanout: str | Fanout) -> Fanout:
    from .fanout import Fanout

    if isinstance(fanout, str):
        if fanout not in MODES:
            raise ArgumentError(
                f"CaptureGroup(): fanout must be one of {', '.join(MODES)} (or a Fanout), got {fanout!r}"
            )
        if fanout == "ebpf":
            raise ArgumentError(
                "CaptureGroup(): fanout 'ebpf' needs a program: pass Fanout(mode='ebpf', program=...)"
            )
        return Fanout(mode=fanout, defrag=fanout == "hash")
    if not isinstance(fanout, Fanout):
        raise TypeError(f"CaptureGroup(): fanout must be a mode name or a Fanout, not {type(fanout).__name__}")
    return fanout


def _exit_text(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _apply(rep: WorkerReport, msg: tuple[Any, ...]) -> None:
    kind = msg[0]
    if kind == "stats":
        rep.received, rep.drops, rep.handled, rep.bytes = msg[1], msg[2], msg[3], msg[4]
    elif kind == "error":
        rep.error = str(msg[1])
    elif kind == "done":
        rep.received, rep.drops, rep.handled = msg[1], msg[2], msg[3]
        rep.files, rep.result, rep.error, rep.bytes = list(msg[4]), msg[5], msg[6], msg[7]
        rep.complete = True


# -- the worker process ---------------------------------------------------------------------------------


def _worker_main(job: _Job, index: int, conn: Connection, stop_fd: int, foreign: list[int]) -> None:
    """Open a capture in the group, tell the parent, run the job until stop/duration, send the totals."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # `kill -USR1 $(pidof ...)` asks the parent for statistics
    for fd in foreign:
        try:
            os.close(fd)
        except OSError:
            pass
    status = 0
    try:
        status = _worker_body(job, index, conn, stop_fd)
    except BaseException as e:
        try:
            conn.send(("error", e if isinstance(e, AfPacketError) else AfPacketError(f"worker {index}: {e!r}")))
        except Exception:
            pass
        status = 1
    finally:
        conn.close()
    os._exit(status)


def _worker_body(job: _Job, index: int, conn: Connection, stop_fd: int) -> int:
    from .rx import Capture

    cap = Capture(job.interface, fanout=job.fanout, **job.capture_options)
    term = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        term.set()
        cap.stop()

    signal.signal(signal.SIGTERM, on_term)
    out = None
    if job.write is not None:
        from .tofile import format_for, open_for

        path = job.write.replace("{worker}", str(index))
        try:
            out = open_for(cap, path, format_for(path, job.fmt), **job.file_options)
        except BaseException:
            cap.close()
            raise
    handled = [0]
    send_lock = threading.Lock()
    walker = cap._ring_walker

    def taken_bytes() -> int:
        return walker.bytes if walker is not None else 0

    done = threading.Event()
    conn.send(("ready", cap.fanout_id or 0))

    def reporter() -> None:
        # The counters a few times a second (so a worker that dies leaves recent counts), and the stop.
        while not done.is_set():
            if term.is_set() or select.select([stop_fd], [], [], REPORT_INTERVAL)[0]:
                cap.stop()  # the parent closed the stop pipe (stop(), or it died)
                return
            if done.is_set():
                return
            try:
                with send_lock:
                    st = cap.stats()
                    conn.send(("stats", st.received, st.drops, out.taken if out is not None else handled[0],
                               taken_bytes()))
            except (AfPacketError, OSError):
                return

    thread = threading.Thread(target=reporter, name="afpacket-worker-reporter", daemon=True)
    thread.start()
    result: Any = None
    error: str | None = None
    try:
        result = _run_job(job, cap, index, out, handled)
        if job.result is not None:
            result = job.result()
    except Exception:  # the user's callable, or the file: reported, the other workers go on
        error = f"worker {index} (pid {os.getpid()}) failed:\n{traceback.format_exc()}"
    done.set()
    thread.join()
    files: list[str] = []
    if out is not None:
        out.close()
        files = [os.fspath(f) for f in out.files]
        handled[0] = out.written
    with send_lock:
        st = cap.stats()
    cap.close()
    try:
        conn.send(("done", st.received, st.drops, handled[0], files, result, error, taken_bytes()))
    except Exception as e:  # an unpicklable result: say so, keep the counts
        conn.send(("done", st.received, st.drops, handled[0], files, None,
                   f"worker {index}: its result could not be sent back ({e})", taken_bytes()))
        return 1
    return 1 if error else 0


def _run_job(job: _Job, cap: Capture, index: int, out: Any, handled: list[int]) -> Any:
    if out is not None:
        out.consume(cap, None, job.duration)
        return None
    if job.worker is not None:
        if job.duration is not None:
            timer = threading.Timer(job.duration, cap.stop)
            timer.daemon = True
            timer.start()
        return job.worker(cap, index)
    if job.on_packet is not None:
        fn = job.on_packet
        for pkt in cap.packets(duration=job.duration):
            fn(pkt)
            handled[0] += 1  # read by the reporter thread
        return None
    assert job.on_batch is not None
    fb = job.on_batch
    for cols in cap.columns(duration=job.duration):
        fb(cols)
        handled[0] += len(cols)
    return None


# -- merging the workers' files ------------------------------------------------------------------------


def merge_files(paths: Sequence[str | os.PathLike[str]], target: str | os.PathLike[str], *, fmt: str | None = None,
                count: int | None = None, nanosecond: bool = True) -> int:
    """Write the records of ``paths`` (the files of a group's workers) to ``target`` in timestamp order
    (a k-way merge: each file is already in order), the first ``count`` of them if given; returns how many
    were written. ``fmt`` is pcap or pcapng (default from ``target``'s name); ``nanosecond``: a pcap target
    keeps nanosecond timestamps (pcapng always does). SavefileError when a file cannot be read or written."""
    from .savefile import PcapngWriter, PcapWriter, Record, open_reader
    from .tofile import format_for

    limit = _check.count("merge_files()", "count", count)
    readers = [open_reader(p) for p in paths]
    try:
        kind = format_for(target, fmt)
        linktype = next((r.linktype for r in readers if r.linktype is not None), 1)
        snaplen = max((getattr(r, "snaplen", 0) or 262144 for r in readers), default=262144)
        streams: list[Iterator[Record]] = [iter(r) for r in readers]
        merged = heapq.merge(*streams, key=lambda rec: rec.timestamp_ns)
        written = 0
        if kind == "pcapng":
            with PcapngWriter(target) as ng:
                name = None
                for r in readers:
                    name = name or _first_name(r)
                iface = ng.add_interface(name, linktype, snaplen)
                for rec in merged:
                    if limit is not None and written >= limit:
                        break
                    ng.write(rec.timestamp_ns, rec.data, rec.wire_len, interface_id=iface, pkttype=rec.pkttype)
                    written += 1
        else:
            with PcapWriter(target, linktype=linktype, snaplen=snaplen, nanosecond=nanosecond) as pw:
                for rec in merged:
                    if limit is not None and written >= limit:
                        break
                    pw.write(rec.timestamp_ns, rec.data, rec.wire_len)
                    written += 1
        return written
    finally:
        for r in readers:
            r.close()


def _first_name(reader: Any) -> str | None:
    ifaces = getattr(reader, "interfaces", None)
    return getattr(ifaces[0], "name", None) if ifaces else None


def worker_paths(template: str | os.PathLike[str], workers: int) -> list[Path]:
    """The files ``write=template`` makes for ``workers`` workers (``{worker}`` replaced by 0..N-1)."""
    t = os.fspath(template)
    return [Path(t.replace("{worker}", str(i))) for i in range(workers)]

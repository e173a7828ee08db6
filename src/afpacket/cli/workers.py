"""`afpacket capture --workers N`: the capture spread over N processes in one PACKET_FANOUT group
(afpacket.group.CaptureGroup), one file per worker or one file merged in timestamp order, one summary."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from ..errors import AfPacketError
from ..filter import BpfProgram
from ..group import CaptureGroup, GroupStats, merge_files, worker_paths
from .report import write_stats_json

#: what --fanout offers (ebpf needs a loaded program: the Python API's Fanout)
CLI_MODES = ("hash", "lb", "cpu", "rnd", "rollover", "qm", "cbpf")


def run_workers(
    stop: Any, *, iface: str, workers: int, mode: str, steering: BpfProgram | None, write_path: str,
    fmt: str | None, count: int | None, duration: float | None, capture_options: dict[str, Any],
    file_options: dict[str, Any], nanosecond: bool, stats_json: str | None, banner: str,
    metrics: tuple[int | None, str] = (None, "127.0.0.1"),
) -> None:
    """Run the group until -c/--duration/a stop signal, write its file(s), print one summary; exits 1 on
    an error. ``stop`` is the command's stop-signal holder (``_Stop``): a signal stops the group.
    ``metrics``: (--metrics-port, --metrics-address), the workers' counters served with a ``worker`` label."""
    from ..fanout import Fanout
    from .capture import _plural, fail, print_summary

    per_worker = "{worker}" in write_path
    tmpdir: str | None = None
    if per_worker:
        template = write_path
    else:
        if file_options.get("file_size") or file_options.get("rotate_seconds"):
            fail("-C/-G with --workers rotate each worker's file: put {worker} in the -w name "
                 "(e.g. -w 'out-{worker}.pcap')")
            return
        # Each worker writes its own part next to the target (or in $TMPDIR for stdout); they are merged
        # in timestamp order when the capture ends.
        where = Path(write_path).resolve().parent if write_path != "-" else Path(tempfile.gettempdir())
        try:
            tmpdir = tempfile.mkdtemp(prefix=".afpacket-workers-", dir=where)
        except OSError as e:
            fail(f"cannot make the workers' part files in {where}: {e.strerror}")
            return
        ext = ".pcapng" if (fmt or ("pcapng" if write_path.endswith(".pcapng") else "pcap")) == "pcapng" else ".pcap"
        template = os.path.join(tmpdir, "part-{worker}" + ext)
    fanout = Fanout(mode=mode, defrag=mode == "hash", program=steering) if mode == "cbpf" and steering else mode
    started = time.monotonic()
    error: str | None = None
    try:
        group = CaptureGroup(
            iface, workers=workers, fanout=fanout, write=template, fmt=fmt, duration=duration, count=count,
            file_options={**file_options, "nanosecond": nanosecond}, **capture_options,
        )
        stop.before_open()
        group.start()
    except AfPacketError as e:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        fail(str(e))
        return
    stop.attach(group)
    try:
        from .capture import start_metrics

        metrics_server = start_metrics(metrics[0], metrics[1], group)  # one series per worker
    except AfPacketError as e:
        group.stop()
        group.wait()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        fail(str(e))
        return
    click.echo(f"{banner}, {workers} workers in fanout group {group.group_id} ({group.fanout.mode}"
               f"{'+defrag' if group.fanout.defrag else ''})", err=True)
    signal.signal(signal.SIGUSR1, lambda signum, frame: _interim(group))
    stats: GroupStats = group.wait()
    for rep in stats.failed:
        first = (rep.error or "").strip().splitlines()
        click.echo(f"afpacket: {first[0] if first else f'worker {rep.index} failed'}"
                   f"{'' if rep.complete else '; its counts are those of its last report'}", err=True)
    for rep in stats.workers:
        click.echo(f"afpacket: worker {rep.index}: {_plural(rep.handled, 'packet')} captured, "
                   f"{_plural(rep.received, 'packet')} received by filter, "
                   f"{_plural(rep.drops, 'packet')} dropped by kernel", err=True)
    captured = stats.handled
    files: list[str] = []
    if per_worker:
        files = [f for rep in stats.workers for f in rep.files] or [str(p) for p in worker_paths(template, workers)]
    else:
        parts = [str(p) for p in worker_paths(template, workers) if p.exists()]
        try:
            captured = merge_files(parts, write_path, fmt=fmt, count=count, nanosecond=nanosecond)
            files = [write_path]
        except AfPacketError as e:
            error = f"merging the workers' files into {write_path}: {e}"
            captured = 0
        finally:
            assert tmpdir is not None
            shutil.rmtree(tmpdir, ignore_errors=True)
    if error is not None:
        click.echo(f"afpacket: {error}", err=True)
    print_summary(captured, stats.received, stats.drops)
    if metrics_server is not None:
        metrics_server.close()
    if stats_json is not None:
        summary = {
            "command": "capture", "interface": iface, "workers": workers, "fanout": group.fanout.mode,
            "fanout_group": group.group_id, "captured": captured, "received_by_filter": stats.received,
            "dropped_by_kernel": stats.drops, "files": files, "file": write_path, "error": error,
            "seconds": round(time.monotonic() - started, 6),
            "per_worker": [
                {"worker": r.index, "pid": r.pid, "captured": r.handled, "received_by_filter": r.received,
                 "dropped_by_kernel": r.drops, "error": r.error, "complete": r.complete, "exitcode": r.exitcode}
                for r in stats.workers
            ],
            "stop_signal": signal.Signals(stop.signum).name if stop.signum else None,
        }
        try:
            write_stats_json(stats_json, summary)
        except AfPacketError as e:
            click.echo(f"afpacket: {e}", err=True)
            error = error or str(e)
    if error is not None or stats.failed:
        raise SystemExit(1)


def _interim(group: CaptureGroup) -> None:
    """SIGUSR1: the group's totals so far, as of the workers' last reports."""
    from .capture import _plural

    try:
        st = group.stats()
        click.echo(f"afpacket: {_plural(st.handled, 'packet')} captured, {_plural(st.received, 'packet')} "
                   f"received by filter, {_plural(st.drops, 'packet')} dropped by kernel", err=True)
    except (OSError, RuntimeError):
        pass

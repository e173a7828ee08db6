"""Prometheus metrics: `--metrics-port` on capture, send and gen, and afpacket.metrics.serve() in Python,
scraped over HTTP with urllib and parsed with prometheus-client's own parser, against stats() and the
commands' summaries, over veth pairs the tests make."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import private_pair, trafgen, udp_frame
from prometheus_client.parser import text_string_to_metric_families

import afpacket
from afpacket.errors import AfPacketError
from afpacket.metrics import METRICS, serve
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
once = pytest.mark.parametrize("core", ["python"], indirect=True)


@pytest.fixture(scope="module")
def pair() -> Iterator[VethPair]:
    with private_pair("afpm") as p:
        yield p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape_text(port: int, host: str = "127.0.0.1") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        return str(r.read().decode())


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (sample name, sorted labels) → value."""
    out = {}
    for fam in text_string_to_metric_families(scrape_text(port)):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def frames(net: VethPair, n: int) -> list[bytes]:
    return [udp_frame(net.outer_mac, net.inner_mac, b"m" * 20, sport=10000 + i) for i in range(n)]


def test_python_capture_served_equals_stats(pair: VethPair) -> None:
    """A Capture served through serve(): names, types and HELP lines as Prometheus wants them, counters equal
    to stats() and cap.metrics(), the ring's occupancy seen while packets wait, and 127.0.0.1 by default."""
    with afpacket.Capture(pair.outer, filter="udp", block_timeout_ms=2) as cap, serve(0, source=cap) as srv:
        assert srv.address == "127.0.0.1" and srv._httpd.socket.getsockname()[0] == "127.0.0.1"
        pair.send(frames(pair, 40))
        time.sleep(0.3)  # past the block timeout: the frames wait in the ring, unread
        waiting = scrape(srv.port)
        assert value(waiting, "afpacket_ring_blocks_in_use", interface=pair.outer) >= 1
        assert 0 < value(waiting, "afpacket_ring_occupancy_ratio", interface=pair.outer) <= 1
        assert value(waiting, "afpacket_ring_blocks", interface=pair.outer) == cap.geometry.block_nr
        assert value(waiting, "afpacket_packets_total", interface=pair.outer) == 0  # nothing taken yet
        got = list(cap.packets(count=40, timeout=5))
        assert len(got) == 40
        assert not list(cap.packets(timeout=0.2))  # nothing more: this read hands every block back
        del got
        st = cap.stats()
        text = scrape_text(srv.port)
        snap = cap.metrics()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("afpacket_packets", "afpacket_received", "afpacket_drops", "afpacket_freeze"):
        assert fams[name].type == "counter"
        assert f"# TYPE {name}_total counter" in text or f"# TYPE {name} counter" in text
    assert fams["afpacket_ring_blocks_in_use"].type == "gauge"
    assert f"# HELP afpacket_drops_total {METRICS['afpacket_drops_total'][1]}" in text
    samples = {s.name: s for f in fams.values() for s in f.samples if not s.name.endswith("_created")}
    assert samples["afpacket_packets_total"].labels == {"interface": pair.outer}
    assert samples["afpacket_packets_total"].value == st.packets == 40
    assert samples["afpacket_bytes_total"].value == 40 * len(frames(pair, 1)[0])  # wire lengths taken
    assert samples["afpacket_received_total"].value == st.received == 40
    assert samples["afpacket_drops_total"].value == st.drops == 0
    assert samples["afpacket_freeze_total"].value == st.freeze_count
    assert samples["afpacket_ring_blocks_in_use"].value == 0  # every block handed back
    assert snap["afpacket_packets_total"] == 40 and snap["afpacket_received_total"] == st.received
    assert {k for k in snap} <= set(METRICS)


@once
def test_scrapes_do_not_race_the_capture_loops_stats(pair: VethPair) -> None:
    """PACKET_STATISTICS is clear-on-read: scrapes in a tight loop, and a thread reading cap.metrics() (the
    stats and the ring's slots) nonstop, beside a capture loop that reads stats() after every batch, leave
    the running totals exact (every frame trafgen sent, counted once) and the ring readable throughout."""
    n = 20_000
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, not every 5 ms
    try:
        _race(pair, n)
    finally:
        sys.setswitchinterval(switch)


def _race(pair: VethPair, n: int) -> None:
    with afpacket.Capture(pair.outer, filter="udp", block_timeout_ms=2) as cap, serve(0, source=cap) as srv:
        done = threading.Event()
        scrapes = [0]

        def scraper() -> None:
            while not done.is_set():
                scrape(srv.port)
                scrapes[0] += 1

        def hammer() -> None:  # what a scrape reads (stats() and the ring's slots), as often as it can
            while not done.is_set():
                cap.metrics()

        threads = [threading.Thread(target=scraper), threading.Thread(target=hammer)]
        for t in threads:
            t.start()
        sender = threading.Thread(target=trafgen, args=(pair, frames(pair, 1)[0], n))
        sender.start()
        taken = 0
        deadline = time.monotonic() + 20
        try:
            for batch in cap.batches(timeout=0.5):
                taken += batch.count
                cap.stats()
                if (taken >= n and not sender.is_alive()) or time.monotonic() > deadline:
                    break
        finally:
            sender.join()
            done.set()
            for t in threads:
                t.join()
        st = cap.stats()
        final = scrape(srv.port)
    assert scrapes[0] > 3
    assert st.received == n, st
    assert value(final, "afpacket_received_total", interface=pair.outer) == n
    assert value(final, "afpacket_packets_total", interface=pair.outer) == taken == st.packets


def _start(args: list[str], ready: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([*AFPACKET, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    while True:
        line = p.stderr.readline()
        assert line, f"afpacket {args[0]} ended before it was ready"
        if ready in line:
            return p


def _wait_for(port: int, name: str, want: float, timeout: float = 10.0, **labels: str) -> dict[Any, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = scrape(port)
        if value(got, name, **labels) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


@once
def test_port_0_prints_the_port_the_kernel_picked(pair: VethPair, tmp_path: Path) -> None:
    p = subprocess.Popen([*AFPACKET, "capture", "-i", pair.outer, "--metrics-port", "0", "-w", str(tmp_path / "z.pcap"),
                          "udp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        lines = []
        while not any("capturing on" in ln for ln in lines):  # the metrics line comes first
            lines.append(p.stderr.readline())
            assert lines[-1], lines
        announce = re.compile(r"afpacket: metrics at http://127\.0\.0\.1:(\d+)/metrics\n")
        found = [m for ln in lines if (m := announce.fullmatch(ln))]
        assert len(found) == 1, lines
        port = int(found[0][1])
        pair.send(frames(pair, 5))
        got = _wait_for(port, "afpacket_packets_total", 5, interface=pair.outer)
        assert value(got, "afpacket_packets_total", interface=pair.outer) == 5
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=20)
    assert p.returncode == 0


def test_cli_capture_metrics_equal_summary(pair: VethPair, tmp_path: Path) -> None:
    """`afpacket capture --metrics-port P -w F`: the endpoint counts what the closing summary prints."""
    port = free_port()
    stats = tmp_path / "s.json"
    p = _start(["capture", "-i", pair.outer, "--metrics-port", str(port), "-w", str(tmp_path / "f.pcap"),
                "--stats-json", str(stats), "udp"], "capturing on")
    pair.send(frames(pair, 50))
    got = _wait_for(port, "afpacket_packets_total", 50, interface=pair.outer)
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    summary = json.loads(stats.read_text())
    assert value(got, "afpacket_packets_total", interface=pair.outer) == summary["captured"] == 50
    assert value(got, "afpacket_bytes_total", interface=pair.outer) == 50 * len(frames(pair, 1)[0])
    assert value(got, "afpacket_received_total", interface=pair.outer) == summary["received_by_filter"] == 50
    assert value(got, "afpacket_drops_total", interface=pair.outer) == summary["dropped_by_kernel"] == 0


@once
def test_port_in_use_is_one_clear_line(pair: VethPair) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for cmd in (["capture", "-i", pair.outer, "-w", "/dev/null"],
                    ["gen", "-i", pair.outer, "-c", "1"]):
            r = subprocess.run([*AFPACKET, *cmd, "--metrics-port", str(port)], capture_output=True, text=True,
                               timeout=30)
            lines = [ln for ln in r.stderr.splitlines() if "metrics" in ln]
            assert r.returncode == 1, r.stderr
            assert lines == [f"afpacket: metrics port {port} on 127.0.0.1 is already in use: choose another "
                             "--metrics-port"], r.stderr
            assert "Traceback" not in r.stderr
        with pytest.raises(AfPacketError, match="already in use"):
            serve(port, source=lambda: {})


@once
def test_metrics_address_option(pair: VethPair) -> None:
    """--metrics-address moves the listener; a name that is no address is one clear line."""
    port = free_port()
    p = subprocess.Popen([*AFPACKET, "gen", "-i", pair.outer, "-c", "4000", "-p", "200", "--metrics-port", str(port),
                          "--metrics-address", "127.0.0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                scrape_text(port, "127.0.0.2")
                break
            except OSError:
                assert p.poll() is None and time.monotonic() < deadline, "nothing listening on 127.0.0.2"
                time.sleep(0.05)
        with pytest.raises(OSError):
            scrape_text(port, "127.0.0.1")
    finally:
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    r = subprocess.run([*AFPACKET, "gen", "-i", pair.outer, "-c", "1", "--metrics-port", "0", "--metrics-address",
                        "no.such.host.invalid"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot serve metrics on no.such.host.invalid" in r.stderr, r.stderr


@once
def test_transmitter_served_equals_its_stats(pair: VethPair) -> None:
    with afpacket.Transmitter(pair.outer) as tx, serve(0, source=tx) as srv:
        for f in frames(pair, 30):
            tx.send(f)
        tx.flush()
        st = tx.stats()
        got = scrape(srv.port)
    assert value(got, "afpacket_packets_total", interface=pair.outer) == st.sent == 30
    assert value(got, "afpacket_bytes_total", interface=pair.outer) == st.bytes == 30 * 62
    assert value(got, "afpacket_failed_total", interface=pair.outer) == st.failed == 0
    assert value(got, "afpacket_retries_total", interface=pair.outer) == st.retries


@once
def test_cli_gen_and_send_counters_follow_their_summary(pair: VethPair, tmp_path: Path) -> None:
    """gen and send serve what they have sent while they run: counters that only grow, never past the
    summary they end with, and the bytes of exactly the frames counted."""
    for name, args in (("gen", ["gen", "-i", pair.outer, "-c", "600", "-p", "600", "--size", "100"]),
                       ("send", ["send", "-i", pair.outer, "-p", "600", str(_pcap(pair, tmp_path, 600))])):
        port = free_port()
        stats = tmp_path / f"{name}.json"
        p = subprocess.Popen([*AFPACKET, *args, "--metrics-port", str(port), "-q", "--stats-json", str(stats)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen: list[dict[Any, float]] = []
        while p.poll() is None:
            try:
                seen.append(scrape(port))
            except OSError:
                pass  # not listening yet, or already closed
            time.sleep(0.05)
        _out, err = p.communicate(timeout=20)
        assert p.returncode == 0, err
        summary = json.loads(stats.read_text())
        assert summary["packets"] == 600
        assert len(seen) > 5, name
        sent = [value(s, "afpacket_packets_total", interface=pair.outer) for s in seen]
        assert sent == sorted(sent) and 0 < sent[-1] <= summary["packets"], (name, sent)
        assert sent[-1] > 300, (name, sent)  # the run lasts ~1 s: late scrapes see most of it
        for s, n in zip(seen, sent, strict=True):
            assert value(s, "afpacket_bytes_total", interface=pair.outer) == n * 100
            assert value(s, "afpacket_failed_total", interface=pair.outer) == 0
            assert ("afpacket_retries_total", (("interface", pair.outer),)) in s


def _pcap(net: VethPair, tmp_path: Path, n: int) -> Path:
    from afpacket.savefile import PcapWriter

    path = tmp_path / "replay.pcap"
    frame = udp_frame(net.outer_mac, net.inner_mac, b"r" * 58)  # 100 bytes
    assert len(frame) == 100
    with PcapWriter(path) as w:
        for i in range(n):
            w.write(i * 1000, frame)
    return path


def test_cli_workers_have_a_worker_label(pair: VethPair, tmp_path: Path) -> None:
    """capture --workers 2: one series per worker, labelled, whose counts are the per-worker summary lines."""
    port = free_port()
    stats = tmp_path / "w.json"
    p = _start(["capture", "-i", pair.outer, "--workers", "2", "--metrics-port", str(port), "-w",
                str(tmp_path / "w{worker}.pcap"), "--stats-json", str(stats), "udp"], "workers in fanout group")
    pair.send(frames(pair, 200))
    deadline = time.monotonic() + 10
    while True:
        got = scrape(port)
        total = sum(v for (n, _lab), v in got.items() if n == "afpacket_packets_total")
        if total >= 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    summary = json.loads(stats.read_text())
    per = {str(w["worker"]): w for w in summary["per_worker"]}
    counts = {w: value(got, "afpacket_packets_total", interface=pair.outer, worker=w) for w in ("0", "1")}
    assert sum(counts.values()) == summary["captured"] == 200
    assert all(c > 0 for c in counts.values()), counts  # 200 flows hashed over two workers
    for w in ("0", "1"):
        assert f"worker {w}: {int(counts[w])} packet" in err, err
        assert per[w]["captured"] == counts[w]
        assert value(got, "afpacket_received_total", interface=pair.outer, worker=w) == counts[w]
        assert value(got, "afpacket_drops_total", interface=pair.outer, worker=w) == 0
        assert value(got, "afpacket_bytes_total", interface=pair.outer, worker=w) == counts[w] * len(frames(pair, 1)[0])


@once
def test_callable_source_labels_extras_and_after_close(pair: VethPair) -> None:
    """What `afpacket top` serves: a callable's (labels, snapshot) pairs, names of its own typed by the
    `_total` convention; and a capture closed under a server keeps serving its last counts."""
    rows = [({"worker": "0"}, {"afpacket_packets_total": 3, "afpacket_flows": 2}),
            ({"worker": "1"}, {"afpacket_packets_total": 4, "afpacket_flows": 1})]
    with serve(0, source=lambda: rows, labels={"interface": "x0"}) as srv:
        fams = {f.name: f for f in text_string_to_metric_families(scrape_text(srv.port))}
    assert fams["afpacket_flows"].type == "gauge" and fams["afpacket_packets"].type == "counter"
    assert {(s.labels["worker"], s.labels["interface"], s.value) for s in fams["afpacket_packets"].samples} == {
        ("0", "x0", 3), ("1", "x0", 4)}
    cap = afpacket.Capture(pair.outer, filter="udp", block_timeout_ms=2)
    with serve(0, source=cap) as srv:
        pair.send(frames(pair, 5))
        assert len(list(cap.packets(count=5, timeout=5))) == 5
        before = scrape(srv.port)
        cap.close()
        after = scrape(srv.port)
    assert value(after, "afpacket_packets_total", interface=pair.outer) == 5
    assert value(after, "afpacket_received_total", interface=pair.outer) == 5
    assert after == before

"""Stop signals at any moment: `afpacket capture -w` ends cleanly whatever the moment, start-up included.

Each run starts a capture writing a file while traffic flows, sends SIGINT, SIGTERM or SIGHUP after a
random delay (from the process's very start: imports, socket, ring and file set-up included) and checks
what a user would see: never a traceback; a summary once the capture had opened its socket, whose
"captured" equals the records in the file (read back by afpacket and by tcpdump, which must not call it
truncated); before that, a quiet end as the signal's own (nothing printed, no file).

One window belongs to no program: the interpreter's own start-up before the first line of afpacket runs
(``site`` and its ``.pth`` files). A SIGINT there is CPython's KeyboardInterrupt, with a traceback that
holds no afpacket frame; such runs are recognised by exactly that, must end without a file, and must stay
rare. A traceback with any afpacket frame in it fails the test.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import streaming

from afpacket import open_reader
from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RUNS = 150
PARALLEL = 4

@pytest.fixture
def core() -> Iterator[str]:
    """Once, not once per ring core: these tests run the afpacket command as a user would."""
    yield "default"


@pytest.fixture
def busy_net() -> Iterator[VethPair]:
    if os.geteuid() != 0:
        pytest.fail("this test opens AF_PACKET sockets and makes network namespaces: run it as root")
    with VethPair("afsg", addresses=False) as net, streaming(net, payload=64, burst=20, pause=0.01):
        yield net


class Run(NamedTuple):
    sig: signal.Signals
    delay: float
    returncode: int
    stderr: str
    path: Path

    def files(self) -> list[Path]:
        """The file and, with -C, the files after it (``path``, ``path1``, ``path2``, ...)."""
        return sorted(self.path.parent.glob(self.path.name + "*"))


def one_run(net: VethPair, path: Path, sig: signal.Signals, delay: float, extra: list[str]) -> Run:
    p = subprocess.Popen([*AFPACKET, "capture", "-i", net.outer, "-w", str(path), *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    return Run(sig, delay, p.returncode, err, path)


def records_by_tcpdump(path: Path) -> int:
    r = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "truncated" not in r.stderr, f"{path}: {r.stderr}"
    return len(r.stdout.splitlines())


def in_python_startup(run: Run) -> bool:
    """SIGINT arrived while the interpreter itself was starting, before afpacket's first line ran: a
    KeyboardInterrupt traceback with no afpacket file in it (see the module docstring)."""
    return (run.sig == signal.SIGINT and "Traceback" in run.stderr
            and run.stderr.rstrip().endswith("KeyboardInterrupt")
            and re.search(r'File "[^"]*/afpacket/', run.stderr) is None)


def check(run: Run) -> bool:
    """Assert what the user sees after one run; True when the capture had started (summary)."""
    what = f"{run.sig.name} after {run.delay:.3f} s: rc {run.returncode}, stderr:\n{run.stderr}"
    if in_python_startup(run):
        assert run.returncode != 0 and not run.files(), what
        return False
    assert "Traceback" not in run.stderr, what
    m = re.search(r"^(\d+) packets? captured$", run.stderr, re.M)
    if m is None:
        # Stopped before the socket was open: nothing to summarise, the process ends as the signal would.
        assert run.returncode == -run.sig, what
        assert run.stderr == "", what
        assert not run.files(), what
        return False
    assert run.returncode == 0, what
    assert "could not be written" not in run.stderr, what
    captured = int(m.group(1))
    ours = 0
    for path in run.files():
        with open_reader(str(path)) as reader:
            ours += sum(1 for _ in reader)
    assert ours == captured, what
    assert sum(records_by_tcpdump(path) for path in run.files()) == captured, what
    return True


def test_stop_signals_at_random_moments_leave_a_whole_file_and_an_exact_summary(
    busy_net: VethPair, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("AFPACKET_SIGNAL_SEED", "0")) or None)
    plans = []
    for i in range(RUNS):
        fmt = rng.choice(("pcap", "pcapng"))
        extra = ["--tpacket-version", rng.choice(("2", "3"))]
        if rng.random() < 0.25:
            extra += ["-C", "0.02"]  # rotated files of ~20 kB: the summary counts them all
        plans.append((tmp_path / f"run{i}.{fmt}", rng.choice(STOPS), rng.uniform(0.0, 1.0), extra))
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = list(pool.map(lambda plan: one_run(busy_net, *plan), plans))
    started = [check(run) for run in runs]
    # the interpreter's own start-up is a few tens of milliseconds of the second the moments span
    assert sum(in_python_startup(run) for run in runs) <= RUNS // 20
    # the random moments cover both sides of the socket being opened, with traffic written in most runs
    assert any(started) and sum(started) > RUNS // 3
    assert any(int(re.search(r"^(\d+) packets? captured", r.stderr, re.M).group(1)) > 0  # type: ignore[union-attr]
               for r, s in zip(runs, started, strict=True) if s)


@pytest.mark.parametrize("sig", STOPS, ids=lambda s: s.name)
def test_stop_signal_while_writing_ends_with_summary_like_tcpdump(busy_net: VethPair, tmp_path: Path,
                                                                  sig: signal.Signals) -> None:
    path = tmp_path / "cap.pcapng"
    p = subprocess.Popen([*AFPACKET, "capture", "-i", busy_net.outer, "-w", str(path), "--stats-json",
                          str(tmp_path / "s.json")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    while "capturing on" not in p.stderr.readline():
        pass
    time.sleep(0.5)
    p.send_signal(sig)
    err = p.stderr.read()
    p.wait(timeout=30)
    assert p.returncode == 0 and "Traceback" not in err, err
    run = Run(sig, 0.5, p.returncode, err, path)
    assert check(run)
    import json

    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["stop_signal"] == sig.name
    assert summary["captured"] == summary["written"] > 0 and summary["not_written"] == 0


def test_nohup_keeps_sighup_ignored(busy_net: VethPair, tmp_path: Path) -> None:
    """Like tcpdump under nohup: a SIGHUP the process inherited as ignored does not end the capture."""
    path = tmp_path / "cap.pcap"
    p = subprocess.Popen(["nohup", *AFPACKET, "capture", "-i", busy_net.outer, "-w", str(path)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    while "capturing on" not in p.stderr.readline():
        pass
    p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert p.poll() is None
    p.send_signal(signal.SIGTERM)
    err = p.stderr.read()
    p.wait(timeout=30)
    assert check(Run(signal.SIGTERM, 0.5, p.returncode, err, path))

"""Shared fixtures: private network namespaces with veth pairs, and crafted frames.

Traffic in these tests only ever crosses veth pairs that the fixtures create (and delete again).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from afpacket import ring
from afpacket.testnet import INNER_IP, OUTER_IP, VethPair

#: The ring kernels the whole suite runs against, as multidict's and yarl's suites do. With
#: AFPACKET_REQUIRE_EXTENSIONS=1 (CI) a missing C core is a failure, not a quiet pure-Python run.
CORES = ring.available()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("AFPACKET_REQUIRE_EXTENSIONS", "") not in ("", "0") and "c" not in CORES:
        raise pytest.UsageError("AFPACKET_REQUIRE_EXTENSIONS=1 but the C ring kernels did not load")


@pytest.fixture(params=CORES, autouse=True)
def core(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs once per ring kernel implementation ("c", "python"): in this process through
    afpacket.ring.use(), and in the afpacket commands tests start through AFPACKET_NO_EXTENSIONS."""
    previous = ring.IMPLEMENTATION
    previous_env = os.environ.get("AFPACKET_NO_EXTENSIONS")
    ring.use(request.param)
    if request.param == "python":
        os.environ["AFPACKET_NO_EXTENSIONS"] = "1"
    else:
        os.environ.pop("AFPACKET_NO_EXTENSIONS", None)
    try:
        yield request.param
    finally:
        ring.use(previous)
        if previous_env is None:
            os.environ.pop("AFPACKET_NO_EXTENSIONS", None)
        else:
            os.environ["AFPACKET_NO_EXTENSIONS"] = previous_env


@contextmanager
def private_pair(prefix: str) -> Iterator[VethPair]:
    """A veth pair in a private namespace, removed afterwards (a module-scoped fixture wraps it)."""
    # Tests of ring kernels, file formats, decoding and geometry run as any user; these need root.
    if os.geteuid() != 0:
        pytest.fail("this test opens AF_PACKET sockets and makes network namespaces: run it as root")
    with VethPair(prefix) as pair:
        yield pair


@pytest.fixture
def net() -> Iterator[VethPair]:
    with private_pair("afpt") as pair:
        yield pair


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ether(dst: str | bytes, src: str | bytes, ethertype: int, payload: bytes) -> bytes:
    d = mac(dst) if isinstance(dst, str) else dst
    s = mac(src) if isinstance(src, str) else src
    return d + s + struct.pack("!H", ethertype) + payload


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(
    dst_mac: str, src_mac: str, payload: bytes, *, sport: int = 40000, dport: int = 9,
    src: str = INNER_IP, dst: str = OUTER_IP,
) -> bytes:
    """An Ethernet/IPv4/UDP frame with valid checksums."""
    import socket

    sa, da = socket.inet_aton(src), socket.inet_aton(dst)
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0, sa, da)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    pseudo = sa + da + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    return ether(dst_mac, src_mac, 0x0800, ip + udp)


def trafgen(net: VethPair, frame: bytes, count: int, *, cpu: int | None = None, extra: tuple[str, ...] = ()) -> str:
    """Send ``count`` copies of ``frame`` from the namespace end with trafgen; returns its output."""
    if shutil.which("trafgen") is None:
        pytest.fail("trafgen is missing: apt-get install netsniff-ng")
    body = ", ".join(f"0x{b:02x}" for b in frame)
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        f.write("{ " + body + " }\n")
        cfg = f.name
    cmd = ["trafgen", "-o", net.inner, "-i", cfg, "-n", str(count), "-P", "1", "--no-sock-mem", "--notouch-irq",
           "-C", *extra]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    try:
        r = subprocess.run(["ip", "netns", "exec", net.netns, *cmd], capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(cfg)
    if r.returncode != 0:
        pytest.fail(f"trafgen failed: {r.stderr}")
    return r.stdout + r.stderr


#: ICMP echo requests from inside the namespace (no ping binary needed); the outer end's kernel answers.
PINGER = r"""
import socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xFFFF) + (s >> 16)
    return ~(s + (s >> 16)) & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for seq in range(1, int(sys.argv[2]) + 1):
    body = struct.pack("!HH", 0x4242, seq) + bytes(range(56))
    s.sendto(struct.pack("!BBH", 8, 0, csum(b"\x08\x00\x00\x00" + body)) + body, (sys.argv[1], 0))
    time.sleep(0.1)
"""


def ping(net: VethPair, count: int = 5) -> None:
    """``count`` echo requests from the inner end to the outer end's address, 0.1 s apart."""
    import sys

    net.exec(sys.executable, "-c", PINGER, net.outer_ip, str(count))


#: UDP frames from inside the namespace, ``burst`` at a time every ``pause`` seconds, until killed
STREAMER = r"""
import socket, struct, sys, time
iface, dst, src = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
payload, burst, pause = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0))
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + payload, 1, 0, 64, 17, 0, bytes(4), bytes(4))
frame = dst + src + b"\x08\x00" + ip + struct.pack("!HHHH", 4000, 9, 8 + payload, 0) + bytes(payload)
while True:
    for _ in range(burst):
        s.send(frame)
    time.sleep(pause)
"""


@contextmanager
def streaming(net: VethPair, *, payload: int, burst: int, pause: float) -> Iterator[None]:
    """Traffic to the outer end for as long as the block runs: ``burst`` UDP frames of ``payload`` bytes
    every ``pause`` seconds, sent from inside the namespace by a process killed on the way out."""
    import sys

    sender = net.popen(sys.executable, "-c", STREAMER, net.inner, net.outer_mac.replace(":", ""),
                       net.inner_mac.replace(":", ""), str(payload), str(burst), str(pause),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        sender.kill()
        sender.wait()


@contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's notation: "64k") in a temporary directory: a disk that fills up.
    Always unmounted again."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", d], check=True)
        try:
            yield Path(d)
        finally:
            subprocess.run(["umount", d], check=True)


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that fills up after a few hundred records."""
    with small_tmpfs("64k") as d:
        yield d


# -- unprivileged processes ----------------------------------------------------------------------
SRC = str(Path(__file__).resolve().parent.parent / "src")
NOBODY = 65534
#: the start of a command line that runs the rest as nobody:nogroup with no supplementary group
#: (add setpriv's capability options after it)
AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]


@pytest.fixture(scope="module")
def nobody_site() -> Iterator[Path]:
    """Site directory for processes that start as nobody: the interpreter's own site-packages may sit
    where nobody cannot read (here, under /root), so afpacket's one dependency, click, is copied to a
    world-readable directory put on PYTHONPATH with the source tree."""
    import click

    d = Path(tempfile.mkdtemp(prefix="afp_site"))
    try:
        shutil.copytree(Path(click.__file__).parent, d / "click")
        for path in [d, *d.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.fixture
def nobody_env(nobody_site: Path) -> dict[str, str]:
    """The environment for commands started as nobody (conftest's core choice kept)."""
    return {**os.environ, "PYTHONPATH": f"{SRC}:{nobody_site}"}


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory nobody owns, for files the unprivileged process creates."""
    d = Path(tempfile.mkdtemp(prefix="afp_priv"))
    os.chown(d, NOBODY, NOBODY)
    try:
        yield d
    finally:
        shutil.rmtree(d)

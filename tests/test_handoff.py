"""Hand-off of an opened capture to an unprivileged process (afpacket.serve_socket / receive_capture):
the process that reads packets has uid nobody and no capability, and still captures every frame.
Traffic only crosses veth pairs made here."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import AS_NOBODY, NOBODY, udp_frame

import afpacket
from afpacket import handoff
from afpacket.errors import HandoffError
from afpacket.testnet import VethPair

#: the unprivileged client: receives the capture, proves it cannot open one itself, reads N packets
CLIENT = r"""
import json, os, sys
import afpacket
from afpacket.privileges import process_status
path, n = sys.argv[1], int(sys.argv[2])
try:
    afpacket.Capture(sys.argv[3]).close()
    own = "opened"
except afpacket.PermissionDeniedError:
    own = "denied"
with afpacket.receive_capture(path) as cap:
    print("ready", flush=True)
    frames = [bytes(p) for p in cap.packets(count=n, timeout=10)]
    st = cap.stats()
    status = process_status()
    print(json.dumps({"own": own, "frames": [f.hex() for f in frames], "received": st.received,
                      "drops": st.drops, "uid": status["Uid"].split(), "capeff": int(status["CapEff"], 16),
                      "version": cap.version, "interface": cap.interface}), flush=True)
"""


def _unprivileged(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed"
    return subprocess.Popen(
        [*AS_NOBODY, "--inh-caps", "-all",
         "--bounding-set", "-all", sys.executable, "-c", CLIENT, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _serve(path: str, interface: str, **kw: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def run() -> None:
        try:
            result.append(afpacket.serve_socket(path, interface, **kw))  # type: ignore[arg-type]
        except Exception as e:  # reported to the test
            result.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        assert time.monotonic() < deadline and t.is_alive(), f"server did not start: {result}"
        time.sleep(0.01)
    return t, result


@pytest.mark.parametrize("version", [2, 3])
def test_an_unprivileged_process_captures_through_a_handed_over_socket(
    nobody_dir: Path, nobody_env: dict[str, str], version: int
) -> None:
    path = str(nobody_dir / "cap.sock")
    with VethPair("afho", addresses=False) as net:
        frames = [udp_frame(net.outer_mac, net.inner_mac, bytes([n]) * (30 + n), sport=9000 + n) for n in range(25)]
        t, result = _serve(path, net.outer, allow_user="nobody", timeout=30, version=version,
                           filter="udp portrange 9000-9099")
        st = os.stat(path)
        assert st.st_uid == NOBODY and st.st_mode & 0o777 == 0o600
        p = _unprivileged(nobody_env, path, str(len(frames)), net.outer)
        try:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
            net.send(frames)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        t.join(10)
    assert p.returncode == 0, err
    assert result == [1]
    got = json.loads(out)
    assert got["own"] == "denied"  # it could not have opened the socket itself
    assert got["uid"] == [str(NOBODY)] * 4 and got["capeff"] == 0
    assert [bytes.fromhex(f) for f in got["frames"]] == frames
    assert got["received"] == len(frames) and got["drops"] == 0  # the filter travelled with the socket
    assert got["version"] == version and got["interface"] == net.outer
    assert not os.path.exists(path)  # the server removes its socket file


def test_a_user_the_server_does_not_allow_gets_no_socket(nobody_dir: Path, nobody_env: dict[str, str]) -> None:
    path = str(nobody_dir / "root-only.sock")
    with VethPair("afhr", addresses=False) as net:
        t, result = _serve(path, net.outer, timeout=30)  # only root (the server's user) may connect
        assert os.stat(path).st_uid == 0 and os.stat(path).st_mode & 0o777 == 0o600
        r = subprocess.run(
            [*AS_NOBODY, "--inh-caps", "-all",
             sys.executable, "-c", "import afpacket,sys; afpacket.receive_capture(sys.argv[1], timeout=2)", path],
            capture_output=True, text=True, env=nobody_env, timeout=60,
        )
        assert r.returncode == 1
        assert "HandoffError: not allowed to connect" in r.stderr
        # Defence in depth: even with the file opened up, SO_PEERCRED keeps nobody out.
        os.chmod(path, 0o666)
        r = subprocess.run(
            [*AS_NOBODY, "--inh-caps", "-all",
             sys.executable, "-c", "import afpacket,sys; afpacket.receive_capture(sys.argv[1], timeout=5)", path],
            capture_output=True, text=True, env=nobody_env, timeout=60,
        )
        assert r.returncode == 1 and "the server sent no socket" in r.stderr
        # Root, allowed, gets its capture and the server ends.
        with afpacket.receive_capture(path) as cap:
            assert cap.interface == net.outer
        t.join(10)
    assert result == [1]


def test_serve_socket_refuses_to_replace_a_file_that_is_not_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "victim"
    path.write_text("keep me")
    with VethPair("afhf", addresses=False) as net, pytest.raises(HandoffError, match="is not a socket"):
        afpacket.serve_socket(str(path), net.outer, timeout=1)
    assert path.read_text() == "keep me"


def test_serve_socket_checks_capture_options_before_listening(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with VethPair("afhb", addresses=False) as net, pytest.raises(afpacket.FilterError):
        afpacket.serve_socket(str(path), net.outer, filter="not a filter (", timeout=1)
    assert not path.exists()


def test_receive_capture_without_a_server_is_a_clear_error(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(HandoffError, match="no afpacket server listens on"):
        afpacket.receive_capture(str(tmp_path / "nothing.sock"), timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_a_peer_that_sends_something_else_is_refused(tmp_path: Path) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        r, w = os.pipe()
        try:
            socket.send_fds(a, [b'{"protocol_name": "something/9"}'], [r])
            with pytest.raises(HandoffError, match="does not speak"):
                handoff.receive_description(b)
            a.sendall(b"no descriptor here")
            with pytest.raises(HandoffError, match="sent no socket"):
                handoff.receive_description(b)
        finally:
            os.close(r)
            os.close(w)


def test_a_descriptor_that_is_not_the_described_packet_socket_is_refused(tmp_path: Path) -> None:
    with VethPair("afhd", addresses=False) as net:
        with afpacket.Capture(net.outer) as cap:
            desc = handoff.describe(cap).to_bytes()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with a, b:
            r, w = os.pipe()
            try:
                socket.send_fds(a, [desc], [r])
                with pytest.raises(HandoffError, match="not the packet socket described"):
                    handoff.receive_description(b)
            finally:
                os.close(r)
                os.close(w)
    assert handoff.SocketDescription.from_bytes(desc).interface == net.outer

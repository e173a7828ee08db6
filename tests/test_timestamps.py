"""Time stamp sources: PACKET_TIMESTAMP, the per-packet TS flag, and tcpdump's -j / -J.

Traffic is ICMP echo over a veth pair: requests come in on the outer end, the outer end's kernel sends
the replies out. veth and lo have no hardware clock, so "hardware" is shown to fail there, clearly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import ping, private_pair

from afpacket import Capture, abi
from afpacket.errors import AfPacketError, ArgumentError, TimestampError
from afpacket.sock import PacketSocket
from afpacket.testnet import VethPair
from afpacket.timestamps import TYPES, _enable_device, list_types, source_of, ts_info

AFPACKET = [sys.executable, "-m", "afpacket"]
ONCE = pytest.mark.parametrize("core", ["python"], indirect=True)  # no ring involved: one core is enough


@pytest.fixture(scope="module")
def pair() -> Iterator[VethPair]:
    with private_pair("afts") as p:
        yield p


# -- the software source ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
def test_software_source_stamps_every_packet(pair: VethPair, version: int) -> None:
    with Capture(pair.outer, version=version, timestamp_source="software", filter="icmp") as cap:
        t0 = time.time_ns()
        ping(pair, 3)
        t1 = time.time_ns()
        seen, kept = [], []
        for p in cap.packets(count=6, duration=3):
            # the live packet reads the flag from its frame header; the copy from the status it kept
            seen.append((p.timestamp_source, p.status, p.timestamp_ns, p.outgoing, p.copy().timestamp_source))
            kept.append(p)
        assert [p.timestamp_source for p in kept] == ["software"] * 6  # also once their batches went back
    assert len(seen) == 6
    assert [o for *_, o, _c in seen] == [False, True] * 3  # request in, reply out
    for live, status, ts, _out, copied in seen:
        assert live == copied == "software"
        assert status & abi.TP_STATUS_TS_SOFTWARE
        assert not status & (abi.TP_STATUS_TS_RAW_HARDWARE | abi.TP_STATUS_TS_SYS_HARDWARE)
        assert t0 <= ts <= t1
    stamps = [ts for _s, _st, ts, _o, _c in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == 6  # monotonic, and no two alike


def test_software_stamp_is_taken_once_in_the_receive_path(pair: VethPair) -> None:
    # With receive stamps on, the kernel stamps a packet once, before the packet taps: two sockets see
    # the same time for it (a copy-time stamp would differ), and the switch is global, so a capture
    # opened without a source reports "software" too while another one asked for it.
    with Capture(pair.outer, timestamp_source="software", filter="icmp") as soft, \
            Capture(pair.outer, version=2, filter="icmp") as default:
        ping(pair, 3)
        a = [(p.timestamp_ns, p.timestamp_source, bytes(p)) for p in soft.packets(count=6, duration=3)]
        b = [(p.timestamp_ns, p.timestamp_source, bytes(p)) for p in default.packets(count=6, duration=3)]
    assert len(a) == len(b) == 6
    assert a == b
    assert {s for _t, s, _d in b} == {"software"}


def test_default_source_flag_matches_status(pair: VethPair) -> None:
    # Without a source the kernel sets TS_SOFTWARE only while some socket on the host asked for receive
    # stamps (another test or program may have); otherwise none: the time the frame was copied.
    with Capture(pair.outer, filter="icmp") as cap:
        ping(pair, 2)
        seen = [(p.timestamp_source, p.status) for p in cap.packets(count=4, duration=3)]
    assert len(seen) == 4
    for src, status in seen:
        assert src in (None, "software")
        assert src == source_of(status)
        assert (src is None) == (not status & abi.TP_STATUS_TS_SOFTWARE)


@ONCE
def test_source_of_reads_the_three_ts_bits() -> None:
    assert source_of(abi.TP_STATUS_USER) is None
    assert source_of(abi.TP_STATUS_USER | abi.TP_STATUS_TS_SOFTWARE) == "software"
    assert source_of(abi.TP_STATUS_TS_SYS_HARDWARE) == "sys_hardware"
    assert source_of(abi.TP_STATUS_TS_RAW_HARDWARE | abi.TP_STATUS_VLAN_VALID) == "hardware"


# -- the hardware source: a clear error where there is no clock ---------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hardware_on_veth_lo_and_any_is_a_clear_error(pair: VethPair) -> None:
    before = _open_fds()
    for name in (pair.outer, "lo"):
        with pytest.raises(TimestampError) as e:
            Capture(name, timestamp_source="hardware")
        msg = str(e.value)
        assert msg.startswith(f"{name} has no hardware clock (")
        assert f"`ethtool -T {name}` lists none" in msg
        assert msg.endswith("use timestamp_source='software'")
    with pytest.raises(TimestampError, match=r"need one named interface, not 'any'.*timestamp_source='software'"):
        Capture("any", timestamp_source="hardware")
    assert _open_fds() == before  # the failed captures closed their sockets
    assert isinstance(e.value, AfPacketError)
    # ethtool agrees: no PTP clock, no hardware receive filter
    info = ts_info(pair.outer)
    ethtool = subprocess.run(["ethtool", "-T", pair.outer], capture_output=True, text=True, check=True).stdout
    assert info is not None and info[1] == -1 and "PTP Hardware Clock: none" in ethtool
    assert not info[0] & abi.SOF_TIMESTAMPING_RAW_HARDWARE and not info[2]


@ONCE
def test_siocshwtstamp_refusal_is_the_same_clear_error(pair: VethPair) -> None:
    # The step after the capability check: the driver itself refuses SIOCSHWTSTAMP (EOPNOTSUPP on veth).
    for name in (pair.outer, "lo"):
        ps = PacketSocket(name)
        try:
            with pytest.raises(TimestampError, match=rf"^{name} has no hardware clock \(SIOCSHWTSTAMP: not supported"):
                _enable_device(ps, name)
        finally:
            ps.close()


@ONCE
def test_bad_source_values_name_the_parameter(pair: VethPair) -> None:
    with pytest.raises(ArgumentError, match=r"^Capture\(\): timestamp_source must be 'software' or 'hardware'.*'hw'"):
        Capture(pair.outer, timestamp_source="hw")
    with pytest.raises(TypeError, match=r"^Capture\(\): timestamp_source must be .* not int"):
        Capture(pair.outer, timestamp_source=3)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match=r"tcpdump's -j adapter is timestamp_source='hardware'"):
        Capture(pair.outer, timestamp_source="adapter")


# -- tcpdump's -J and -j -------------------------------------------------------------------------------------


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


@ONCE
def test_list_time_stamp_types_equals_tcpdump(pair: VethPair) -> None:
    for name in (pair.outer, "lo", "any"):
        theirs = _run(["tcpdump", "-J", "-i", name])
        ours = _run([*AFPACKET, "capture", "-J", "-i", name])
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
        assert ours.stderr == f"Time stamp types for {name} (use option -j to set):\n  host (Host)\n"
        assert [t.name for t in list_types(name)] == ["host"]
    long = _run([*AFPACKET, "capture", "--list-time-stamp-types", "-i", pair.outer])
    assert long.returncode == 0 and long.stderr.startswith(f"Time stamp types for {pair.outer} ")


@ONCE
def test_list_time_stamp_types_of_a_missing_interface_is_one_line() -> None:
    r = _run([*AFPACKET, "capture", "-J", "-i", "nosuch0"])
    assert r.returncode == 1
    assert r.stderr.startswith("afpacket: no interface named 'nosuch0'") and r.stderr.count("\n") == 1


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    lines = []
    while True:
        line = p.stderr.readline()
        assert line, f"{cmd[0]} ended before it was listening: {''.join(lines)}"
        lines.append(line)
        if "listening on" in line:
            p.head = "".join(lines)  # type: ignore[attr-defined]
            return p


def _side_by_side(pair: VethPair, jtype: str) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """tcpdump and afpacket, each ``-j jtype -c 2 -n -t icmp`` on the outer end during one ping."""
    args = ["-j", jtype, "-i", pair.outer, "-c", "2", "-n", "-t", "-l", "icmp"]
    td = _start(["tcpdump", "--immediate-mode", *args])
    ours = _start([*AFPACKET, "capture", *args])
    ping(pair, 1)
    results = []
    for p in (td, ours):
        out, err = p.communicate(timeout=20)
        results.append((p.returncode, out, p.head + err))  # type: ignore[attr-defined]
    return results[0], results[1]


def test_j_host_captures_like_tcpdump(pair: VethPair) -> None:
    (td_rc, td_out, td_err), (rc, out, err) = _side_by_side(pair, "host")
    assert rc == td_rc == 0
    assert out == td_out and len(out.splitlines()) == 2
    assert "WARNING" not in err and "WARNING" not in td_err


@pytest.mark.parametrize("jtype", ["adapter_unsynced", "adapter", "host_hiprec"])
def test_j_type_the_device_lacks_warns_and_goes_on_as_tcpdump(pair: VethPair, jtype: str) -> None:
    # tcpdump 4.99 does not stop: it warns that the device cannot, and captures with host stamps.
    (td_rc, td_out, td_err), (rc, out, err) = _side_by_side(pair, jtype)
    warning = (f"WARNING: When trying to set timestamp type '{jtype}' on {pair.outer}: "
               "That type of time stamp is not supported by that device")
    assert f"tcpdump: {warning}\n" in td_err
    assert f"afpacket: {warning} (`afpacket capture -J -i {pair.outer}` lists the ones it has); " \
           "using host time stamps\n" in err
    assert rc == td_rc == 0
    assert out == td_out and len(out.splitlines()) == 2


@ONCE
def test_j_names_are_tcpdumps_and_case_insensitive(pair: VethPair) -> None:
    r = _run([*AFPACKET, "capture", "-j", "bogus", "-i", pair.outer, "-c", "1"])
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Invalid value for '-j' / '--time-stamp-type': 'bogus' is not one of" in r.stderr
    for name in TYPES:
        assert f"'{name}'" in r.stderr
    td = _run(["tcpdump", "-j", "bogus", "-i", pair.outer, "-c", "1"])
    assert td.returncode == 1 and "invalid time stamp type bogus" in td.stderr
    assert {t.source for t in TYPES.values() if t.name.startswith("adapter")} == {"hardware"}
    assert {t.source for t in TYPES.values() if t.name.startswith("host")} == {"software"}
    r = _run([*AFPACKET, "capture", "-j", "HOST", "-J", "-i", pair.outer])  # -J wins, as in tcpdump
    assert r.returncode == 0 and "  host (Host)" in r.stderr

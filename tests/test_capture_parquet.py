"""``afpacket capture --format parquet``: one row per packet, read back by pyarrow and DuckDB.

Known UDP frames (several flows, one tagged with VLAN 7 in the frame) cross a veth pair; the capture writes
them as rows: time, lengths, the 5-tuple, VLAN, pkttype, ifindex, and with ``--payload-bytes`` the first
bytes. The file appears under its name only when complete (written as ``.NAME.tmp``). Bad combinations are
usage errors.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from conftest import ether, udp_frame

from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]


def frames(net: VethPair) -> list[bytes]:
    out = []
    for i in range(30):
        f = udp_frame(net.outer_mac, net.inner_mac, bytes([i]) * (20 + i), sport=3000 + i % 3, dport=53,
                      src=f"10.7.0.{1 + i % 3}", dst="10.7.1.1")
        if i == 29:  # the last one tagged in the frame
            f = ether(f[:6], f[6:12], 0x8100, b"\x00\x07" + f[12:])
        out.append(f)
    return out


def test_rows_hold_the_packets(net: VethPair, tmp_path: Path, core: str) -> None:
    path = tmp_path / "pk.parquet"
    sent = frames(net)
    p = subprocess.Popen([*AFPACKET, "capture", "-i", net.outer, "-w", str(path), "--payload-bytes", "64", "-c",
                          str(len(sent)), "udp or (vlan and udp)"], stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    assert "capturing on" in p.stderr.readline()
    time.sleep(0.2)
    net.send(sent)
    _out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert f"{len(sent)} packets captured" in err
    assert not list(tmp_path.glob(".*.tmp"))
    t = pq.read_table(path).to_pylist()
    assert len(t) == len(sent)
    ifindex = socket.if_nametoindex(net.outer)
    for i, (row, f) in enumerate(zip(t, sent, strict=True)):
        assert row["wire_len"] == row["caplen"] == len(f) - (4 if f[12:14] == b"\x81\x00" else 0)
        assert row["proto"] == 17 and row["dst"] == "10.7.1.1" and row["dport"] == 53
        assert (row["src"], row["sport"]) == (f"10.7.0.{1 + i % 3}", 3000 + i % 3)
        assert row["ifindex"] == ifindex and row["pkttype"] == 0
        assert row["ip_len"] == len(f) - 14 - (4 if f[12:14] == b"\x81\x00" else 0)
    assert t[-1]["vlan"] == 7 and all(r["vlan"] == 0 for r in t[:-1])
    # the data column: the frame's first 64 bytes as the ring held it (the kernel strips the tag into metadata)
    assert t[0]["data"] == sent[0][:64]
    ts = [r["ts"] for r in t]
    assert ts == sorted(ts)
    got = duckdb.sql(f"select src, count(*), sum(wire_len) from read_parquet('{path}') group by src order by src")
    want = {}
    for row in t:
        want.setdefault(row["src"], [0, 0])
        want[row["src"]][0] += 1
        want[row["src"]][1] += row["wire_len"]
    assert [tuple(r) for r in got.fetchall()] == [(k, *v) for k, v in sorted(want.items())]


def test_bad_combinations_are_usage_errors(tmp_path: Path, core: str) -> None:
    for args, message in [
        (["-w", "-", "--format", "parquet"], "give -w FILE.parquet"),
        (["-w", str(tmp_path / "x.parquet"), "-C", "1"], "-C, -G, -W and --workers are for pcap/pcapng"),
        (["-w", str(tmp_path / "x.pcap"), "--payload-bytes", "10"], "--payload-bytes goes with --format parquet"),
    ]:
        r = subprocess.run([*AFPACKET, "capture", "-i", "lo", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and message in r.stderr, r.stderr

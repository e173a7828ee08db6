"""The same flow dataset read by DuckDB (embedded) and by Apache Spark (pyspark, local mode): same answers.

Two "sensors" run at once, each an ``afpacket flows --workers 2`` fanout group on its own veth pair,
writing one hive-partitioned Parquet dataset (``sensor=…/date=…/hour=…``). trafgen sends known flows
on each pair (different addresses per sensor, a known number of packets per flow). Then:

- DuckDB and Spark compute the top talkers and the bytes per protocol per hour per sensor, and get the
  same rows;
- both equal what was sent (packets and IP bytes per sensor, one record per flow);
- each sensor's records were written by both of its workers (part files from two processes).

Spark reads Parquet nanosecond timestamps only with ``spark.sql.legacy.parquet.nanosAsLong=true`` (they
arrive as integer nanoseconds); the queries here use the partition columns and counters, which both
engines read alike. DuckDB reads the zero-padded ``hour=05`` as text unless told: ``hive_types``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from conftest import udp_frame

from afpacket.testnet import VethPair

AFPACKET = [sys.executable, "-m", "afpacket"]
FLOWS = 16
PER_FLOW = 200
PAYLOAD = 50  # bytes of UDP payload: 78-byte IP datagrams
SENSORS = ("edge-a", "edge-b")


@pytest.fixture(autouse=True)
def core() -> str:
    """Once, on the default core: the commands run as subprocesses (the per-core runs are in test_flows*)."""
    return "c"


def trafgen_flows(net: VethPair, subnet: int) -> subprocess.Popen[bytes]:
    """FLOWS UDP flows from the inner end, PER_FLOW packets each, interleaved (one trafgen config with a
    packet per flow, sent round robin), at a modest gap so the capture sees every one."""
    frames = [udp_frame(net.outer_mac, net.inner_mac, b"f" * PAYLOAD, sport=20000 + i, dport=9,
                        src=f"10.{subnet}.0.{i + 1}", dst=f"10.{subnet}.1.1") for i in range(FLOWS)]
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as f:
        for fr in frames:
            f.write("{ " + ", ".join(f"0x{b:02x}" for b in fr) + " }\n")
    proc = net.popen("trafgen", "-o", net.inner, "-i", f.name, "-n", str(FLOWS * PER_FLOW), "-t", "200us", "-P", "1",
                     "--no-sock-mem", "--notouch-irq", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc.cfg = f.name  # type: ignore[attr-defined]
    return proc


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("trafgen") is None:
        pytest.fail("trafgen is missing: apt-get install netsniff-ng")
    root = tmp_path_factory.mktemp("engines") / "flows"
    with VethPair("afeA") as a, VethPair("afeB") as b:
        meters = []
        for net, sensor in zip((a, b), SENSORS, strict=True):
            meters.append(subprocess.Popen(
                [*AFPACKET, "flows", "-i", net.outer, "--workers", "2", "--sensor", sensor, "--out", str(root),
                 "--duration", "6", "--idle-timeout", "60", "udp"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        for m in meters:
            assert m.stderr is not None
            line = m.stderr.readline()
            assert "metering flows on" in line, line + m.stderr.read()
        senders = [trafgen_flows(a, 1), trafgen_flows(b, 2)]
        for s in senders:
            _out, err = s.communicate(timeout=60)
            os.unlink(s.cfg)  # type: ignore[attr-defined]
            assert s.returncode == 0, err
        for m in meters:
            _out, err = m.communicate(timeout=60)
            assert m.returncode == 0, err
            assert f"{FLOWS} flow records written" in err and "0 dropped by kernel" in err, err
    yield root


QUERIES = {
    "bytes per protocol per hour": """
        select sensor, proto, cast(hour as integer) as hour, count(*) as flows,
               sum(orig_pkts + resp_pkts) as packets, sum(orig_ip_bytes + resp_ip_bytes) as bytes
        from flows group by sensor, proto, cast(hour as integer) order by sensor, proto, hour""",
    "top talkers": """
        select sensor, orig_h, sum(orig_ip_bytes + resp_ip_bytes) as bytes, count(*) as flows
        from flows group by sensor, orig_h order by bytes desc, sensor, orig_h limit 5""",
}


def duckdb_answers(root: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect()
    con.execute(f"create view flows as select * from read_parquet('{root}/**/*.parquet', hive_partitioning = true)")
    return {name: [tuple(row) for row in con.execute(q).fetchall()] for name, q in QUERIES.items()}


def spark_answers(root: Path) -> dict[str, list[tuple[object, ...]]]:
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("afpacket-flows-test")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
             .config("spark.sql.legacy.parquet.nanosAsLong", "true").config("spark.driver.memory", "512m")
             .getOrCreate())
    try:
        spark.read.option("basePath", str(root)).parquet(str(root)).createOrReplaceTempView("flows")
        return {name: [tuple(row) for row in spark.sql(q).collect()] for name, q in QUERIES.items()}
    finally:
        spark.stop()


def test_duckdb_and_spark_give_the_same_answers_and_they_equal_what_was_sent(dataset: Path) -> None:
    if shutil.which("java") is None:
        pytest.fail("Spark needs Java: apt-get install default-jre-headless")
    duck = duckdb_answers(dataset)
    spark = spark_answers(dataset)
    assert duck == spark
    per_sensor = {row[0]: row for row in duck["bytes per protocol per hour"] if row[1] == "udp"}
    for sensor in SENSORS:
        _s, _p, _h, flows, packets, nbytes = per_sensor[sensor]
        assert (flows, packets, nbytes) == (FLOWS, FLOWS * PER_FLOW, FLOWS * PER_FLOW * (20 + 8 + PAYLOAD))
    top = duck["top talkers"]
    assert len(top) == 5 and all(row[2] == PER_FLOW * (28 + PAYLOAD) and row[3] == 1 for row in top)


def test_each_sensor_was_written_by_both_of_its_workers(dataset: Path) -> None:
    for sensor in SENSORS:
        parts = list((dataset / f"sensor={sensor}").rglob("*.parquet"))
        pids = {re.match(r"part-[^-]+-(\d+)-", p.name)[1] for p in parts}  # type: ignore[index]
        assert len(pids) == 2, parts
        assert not list((dataset / f"sensor={sensor}").rglob(".*.tmp"))  # nothing left half-written

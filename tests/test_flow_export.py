"""Flow record export: what DuckDB, pyarrow and a pipe's reader get back is exactly what was written.

No socket and no root: the records are built by hand (several sensors, hours across a date change, IPv4
and IPv6, tcp/udp/icmp, counters above 2**63 so an unsigned column cannot hide behind a signed one) and
written with the sinks of :mod:`afpacket.flows.export`. The Parquet dataset is read back by pyarrow's
dataset API and by DuckDB (values, types, the partition columns from the path, the aggregates an analyst
would run); a reader thread lists and reads the dataset while a writer publishes many small files; the
Arrow stream goes through a pipe into another process; JSON lines and CSV come back through the standard
library; and every refusal is checked by its message.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from afpacket.errors import AfPacketError, ArgumentError, CaptureClosedError
from afpacket.flows.export import (
    ArrowStream,
    Csv,
    FlowSink,
    JsonLines,
    OutputClosedError,
    ParquetDataset,
    arrow_schema,
    check_sensor,
    open_sink,
)
from afpacket.flows.record import FIELDS, FlowRecord

NS = 1_000_000_000
HOUR = 3600 * NS
#: 2026-11-25 22:00:00 UTC: the records span 22h, 23h and the next day's 00h and 01h.
BASE = int(datetime(2026, 11, 25, 22, tzinfo=UTC).timestamp()) * NS
SENSORS = ("edge-1", "edge-2", "dc2.rack4")
BIG = 2**63 + 12_345  # above int64: only a real uint64 column carries it

HOSTS = [("10.0.0.1", "10.0.0.2"), ("192.168.7.9", "8.8.8.8"), ("2001:db8::1", "2001:db8::53"),
         ("fe80::1", "ff02::1"), ("10.0.0.3", "10.0.0.2")]


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: exporting records touches no ring."""
    return "any"


def flow(i: int, sensor: str, ts: int | None = None) -> FlowRecord:
    """The ``i``-th hand-made record: every column varies with ``i``, ``ts`` to the nanosecond."""
    proto = ("tcp", "udp", "icmp")[i % 3]
    orig_h, resp_h = HOSTS[i % len(HOSTS)]
    if proto == "icmp" and ":" in orig_h:
        proto = "icmp6"
    start = BASE + (i * 997 * NS) % (4 * HOUR) + i if ts is None else ts  # 4 hours, odd nanoseconds
    length = (i % 50) * 1_000_003
    big = BIG if i % 7 == 0 else 0
    return FlowRecord(
        ts=start, last_ts=start + length, duration=length / NS, proto=proto,
        orig_h=orig_h, orig_p=(40_000 + i) % 65_536 if proto != "icmp" else 8,
        resp_h=resp_h, resp_p=65_535 if i % 11 == 0 else (443, 53, 0)[i % 3],
        orig_pkts=1 + i % 9, resp_pkts=i % 5, orig_ip_bytes=100 * (1 + i % 9) + big,
        resp_ip_bytes=60 * (i % 5), orig_bytes=52 * (i % 9), resp_bytes=20 * (i % 5) + big,
        history="ShADadFf" if proto == "tcp" else "", community_id=f"1:{i:04d}abcdefghijklmnopqrstuvwx=",
        vlan=(0, 100, 4094)[i % 3], ifindex=(i % 4) + 1, end_reason=("idle", "fin", "rst", "end")[i % 4],
        sensor=sensor,
    )


def many(n: int, sensor: str, offset: int = 0) -> list[FlowRecord]:
    return [flow(offset + i, sensor) for i in range(n)]


def key(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["sensor"], d["ts"], d["community_id"])


def published(root: Path) -> list[str]:
    """The files a reader of the dataset sees: ``**/*.parquet``, hidden names skipped as pyarrow does."""
    return sorted(p for p in glob.glob(f"{root}/**/*.parquet", recursive=True)
                  if not os.path.basename(p).startswith((".", "_")))


def write_dataset(root: Path, per_sensor: int = 120, **kw: Any) -> list[FlowRecord]:
    written: list[FlowRecord] = []
    for n, sensor in enumerate(SENSORS):
        records = many(per_sensor, sensor, offset=n * 1000)
        with ParquetDataset(root, sensor, **kw) as sink:
            for start in range(0, len(records), 25):
                sink.write(records[start:start + 25])
        assert sink.records == per_sensor
        assert sink.files >= 4  # four hours at least
        written += records
    return written


def expected_partition(r: FlowRecord) -> tuple[str, int]:
    t = datetime.fromtimestamp(r.ts // NS, UTC)
    return t.strftime("%Y-%m-%d"), t.hour


# ------------------------------------------------------------------------------------------- Parquet


def test_parquet_dataset_reads_back_in_pyarrow_with_partitions_from_the_path(tmp_path: Path) -> None:
    written = write_dataset(tmp_path, max_records=40)
    files = published(tmp_path)
    assert not [p for p in glob.glob(f"{tmp_path}/**/.*", recursive=True)]  # nothing hidden left behind
    for p in files:
        rel = Path(p).relative_to(tmp_path).parts
        assert rel[0].split("=")[0] == "sensor" and rel[1].startswith("date=") and rel[2].startswith("hour=")
        assert len(rel[2]) == len("hour=HH") and rel[3].startswith("part-") and rel[3].endswith(".parquet")
        # The sensor is the path's, never a column of the file (Spark refuses a column in both).
        assert pq.read_schema(p).names == [n for n in FIELDS if n != "sensor"]
        assert pq.read_metadata(p).num_rows <= 40
    assert len(set(map(os.path.basename, files))) == len(files)  # unique names, even across sinks

    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(written)
    declared = arrow_schema(with_sensor=False)
    for f in declared:
        assert table.schema.field(f.name).type == f.type, f.name
    assert table.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("sensor").type == pa.string()
    assert table.schema.field("hour").type == pa.int32()

    rows = table.cast(pa.schema([pa.field(f.name, pa.int64() if pa.types.is_timestamp(f.type) else f.type)
                                 for f in table.schema])).to_pylist()
    got = {key(r): r for r in rows}
    assert len(got) == len(written)
    for rec in written:
        row = got[key(rec.as_dict())]
        assert {n: row[n] for n in FIELDS} == rec.as_dict()
        assert (row["date"], row["hour"]) == expected_partition(rec)


def test_duckdb_reads_every_value_and_agrees_on_the_aggregates(tmp_path: Path) -> None:
    written = write_dataset(tmp_path, max_records=40)
    con = duckdb.connect()
    src = f"read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true)"
    cols = ", ".join(f"epoch_ns({n})" if FIELDS[n][0] == "timestamp_ns" else n for n in FIELDS)
    rows = con.sql(f"select {cols}, cast(date as varchar), cast(hour as integer) from {src}").fetchall()
    assert len(rows) == len(written)
    names = [*FIELDS, "date", "hour"]
    got = {key(d): d for d in (dict(zip(names, r, strict=True)) for r in rows)}
    for rec in written:
        row = got[key(rec.as_dict())]
        assert {n: row[n] for n in FIELDS} == rec.as_dict()  # ns timestamps and uint64 above 2**63 exact
        assert (row["date"], row["hour"]) == expected_partition(rec)

    types = dict(con.sql(f"select column_name, column_type from (describe select * from {src})").fetchall())
    assert types == {
        "ts": "TIMESTAMPTZ_NS", "last_ts": "TIMESTAMPTZ_NS", "duration": "DOUBLE", "proto": "VARCHAR",
        "orig_h": "VARCHAR", "orig_p": "USMALLINT", "resp_h": "VARCHAR", "resp_p": "USMALLINT",
        "orig_pkts": "UBIGINT", "resp_pkts": "UBIGINT", "orig_ip_bytes": "UBIGINT", "resp_ip_bytes": "UBIGINT",
        "orig_bytes": "UBIGINT", "resp_bytes": "UBIGINT", "history": "VARCHAR", "community_id": "VARCHAR",
        "vlan": "USMALLINT", "ifindex": "INTEGER", "end_reason": "VARCHAR",
        # from the path: DuckDB keeps a zero-padded hour ("00") as text unless told its type
        "sensor": "VARCHAR", "date": "DATE", "hour": "VARCHAR",
    }
    src = f"read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true, hive_types={{'hour': INTEGER}})"
    [(hour_type,)] = con.sql(f"select column_type from (describe select * from {src}) where column_name = 'hour'"
                             ).fetchall()
    assert hour_type == "INTEGER"

    # bytes per protocol per hour, across every sensor's partitions
    per_hour: Counter[tuple[str, str, int]] = Counter()
    for r in written:
        d, h = expected_partition(r)
        per_hour[(d, r.proto, h)] += r.orig_ip_bytes + r.resp_ip_bytes
    q = f"select cast(date as varchar), proto, hour, sum(orig_ip_bytes + resp_ip_bytes) from {src} group by all"
    assert {(d, p, h): int(b) for d, p, h, b in con.sql(q).fetchall()} == per_hour

    # top talkers by originator, with a tie-break so the order is defined
    talkers: Counter[str] = Counter()
    for r in written:
        talkers[r.orig_h] += r.orig_bytes
    expected = sorted(talkers.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    q = f"select orig_h, sum(orig_bytes) b from {src} group by orig_h order by b desc, orig_h limit 3"
    assert [(h, int(b)) for h, b in con.sql(q).fetchall()] == expected

    # one sensor's partition only, as a fleet query narrows it
    [(n,)] = con.sql(f"select count(*) from {src} where sensor = 'dc2.rack4' and hour = 23").fetchall()
    assert n == sum(1 for r in written if r.sensor == "dc2.rack4"
                                        and expected_partition(r)[1] == 23)


def test_a_reader_listing_the_dataset_during_a_write_never_sees_a_partial_file(tmp_path: Path) -> None:
    total, batch = 3000, 7
    records = many(total, "edge-1")
    done = threading.Event()
    errors: list[str] = []
    reads = 0
    counts_during_write: list[int] = []

    def writer() -> None:
        try:
            with ParquetDataset(tmp_path, "edge-1", max_records=20, row_group_records=8) as sink:
                for start in range(0, total, batch):
                    sink.write(records[start:start + batch])
        finally:
            done.set()

    def reader() -> None:
        nonlocal reads
        con = duckdb.connect()
        last_count = 0
        while True:
            finished = done.is_set()
            try:
                for p in published(tmp_path):
                    t = pq.read_table(p)
                    assert 0 < t.num_rows <= 20
                    reads += 1
                if published(tmp_path):
                    # DuckDB reads dot-files too: the hidden names must not match *.parquet at all.
                    [(n,)] = con.sql(f"select count(*) from read_parquet('{tmp_path}/**/*.parquet')").fetchall()
                    assert n >= last_count
                    last_count = n
                    if not finished:
                        counts_during_write.append(n)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
            if finished:
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert reads > 0 and any(0 < n < total for n in counts_during_write)  # the reader overlapped the writer
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table(columns=["community_id"])
    assert sorted(table.column("community_id").to_pylist()) == sorted(r.community_id for r in records)


def test_files_roll_by_count_by_age_and_on_flush(tmp_path: Path) -> None:
    one_hour = [flow(i, "edge-1", ts=BASE + i) for i in range(10)]
    sink = ParquetDataset(tmp_path, "edge-1", max_records=4, max_seconds=30)
    sink.write(one_hour)
    assert [pq.read_metadata(p).num_rows for p in published(tmp_path)] == [4, 4]
    hidden = glob.glob(f"{tmp_path}/**/.part-*.parquet.tmp", recursive=True)
    assert len(hidden) == 1 and sink.open_files == 1  # the last 2 records: written, not yet published
    sink.maybe_roll(time.monotonic() + 10)  # younger than max_seconds: stays open
    assert len(published(tmp_path)) == 2
    sink.maybe_roll(time.monotonic() + 31)  # a quiet link still publishes every max_seconds
    assert sorted(pq.read_metadata(p).num_rows for p in published(tmp_path)) == [2, 4, 4]
    assert sink.open_files == 0 and sink.files == 3

    sink.write([flow(20, "edge-1", ts=BASE + HOUR + 5)])
    assert len(published(tmp_path)) == 3
    sink.flush()
    assert len(published(tmp_path)) == 4
    sink.write([flow(21, "")])  # an empty sensor takes the sink's
    sink.close()
    sink.close()  # idempotent
    assert sink.records == 12 and sink.files == 5
    assert not glob.glob(f"{tmp_path}/**/.*", recursive=True)
    with pytest.raises(CaptureClosedError, match=r"ParquetDataset.write\(\): the sink is closed"):
        sink.write(one_hour)
    sensors = ds.dataset(tmp_path, partitioning="hive").to_table(columns=["sensor"]).column("sensor")
    assert set(sensors.to_pylist()) == {"edge-1"}


def test_microsecond_timestamps_for_spark_cut_only_the_nanoseconds(tmp_path: Path) -> None:
    records = many(30, "edge-1")
    with ParquetDataset(tmp_path, "edge-1", timestamp_unit="us") as sink:
        sink.write(records)
    for p in published(tmp_path):
        schema = pq.read_schema(p)
        assert schema.field("ts").type == schema.field("last_ts").type == pa.timestamp("us", tz="UTC")
    src = f"read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true)"
    [(kind,)] = duckdb.sql(f"select distinct typeof(ts) from {src}").fetchall()
    assert kind == "TIMESTAMP WITH TIME ZONE"
    got = sorted(duckdb.sql(f"select epoch_us(ts), epoch_us(last_ts), orig_bytes from {src}").fetchall())
    assert got == sorted((r.ts // 1000, r.last_ts // 1000, r.orig_bytes) for r in records)
    assert any(r.ts % 1000 for r in records)  # there were nanoseconds to cut
    with pytest.raises(ArgumentError, match=r"ParquetDataset\(\): timestamp_unit must be one of 'ns', 'us', got 'ms'"):
        ParquetDataset(tmp_path, "edge-1", timestamp_unit="ms")


def _worker(root: str, sensor: str, offset: int) -> None:
    with ParquetDataset(root, sensor, max_records=5, fsync=False) as sink:
        for start in range(0, 60, 6):
            sink.write(many(6, sensor, offset + start))


def test_worker_processes_write_one_dataset_at_once(tmp_path: Path) -> None:
    # Fanout workers: two with the same sensor name, one with its own; names must never collide.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), s, o))
             for s, o in (("edge-1", 0), ("edge-1", 100), ("edge-2", 200))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    files = published(tmp_path)
    pids = {os.path.basename(p).split("-")[2] for p in files}
    assert len(pids) == 3 and len(set(map(os.path.basename, files))) == len(files)
    t = ds.dataset(tmp_path, partitioning="hive").to_table(columns=["sensor", "community_id"])
    assert Counter(t.column("sensor").to_pylist()) == {"edge-1": 120, "edge-2": 60}
    assert len(set(t.column("community_id").to_pylist())) == 180


# ------------------------------------------------------------------------------------------- streams


READER = """
import json, sys
import pyarrow as pa, pyarrow.ipc as ipc
reader = ipc.open_stream(sys.stdin.buffer)
batches = list(reader)
table = pa.Table.from_batches(batches, schema=reader.schema)
ts = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
table = table.cast(pa.schema([pa.field(f.name, pa.int64() if f.name in ts else f.type) for f in table.schema]))
print(json.dumps({"batches": len(batches), "types": [str(f.type) for f in reader.schema],
                  "rows": table.to_pylist()}))
"""


def test_arrow_stream_through_a_pipe_into_another_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    records = many(50, "edge-1") + many(5, "", offset=50)
    with ArrowStream(proc.stdin, sensor="edge-1") as sink:
        sink.write(records[:20])
        sink.write([])  # nothing: no empty batch
        sink.write(records[20:])
    proc.stdin.close()
    assert proc.stdout is not None
    out = proc.stdout.read()
    assert proc.wait(30) == 0
    result = json.loads(out)
    assert result["batches"] == 2 and sink.records == 55 and sink.files == 1
    assert result["types"] == [str(f.type) for f in arrow_schema()]
    assert result["types"][0] == "timestamp[ns, tz=UTC]" and result["types"][-1] == "string"
    expected = [r.as_dict() for r in records]
    for d in expected:
        d["sensor"] = "edge-1"
    assert result["rows"] == expected


def test_arrow_stream_over_os_pipe_and_an_empty_stream_is_still_valid() -> None:
    r, w = os.pipe()
    with os.fdopen(r, "rb") as rf, os.fdopen(w, "wb") as wf:
        got: list[Any] = []
        t = threading.Thread(target=lambda: got.append(ipc.open_stream(rf).read_all()))
        t.start()
        with ArrowStream(wf) as sink:
            sink.write(many(3, "edge-2"))
        wf.close()
        t.join(10)
    table = got[0]
    assert table.schema == arrow_schema()
    assert table.column("sensor").to_pylist() == ["edge-2"] * 3
    assert table.column("ts").cast(pa.int64()).to_pylist() == [r.ts for r in many(3, "edge-2")]

    empty = io.BytesIO()
    ArrowStream(empty).close()  # a capture with no flows still leaves a stream a reader opens
    table = ipc.open_stream(empty.getvalue()).read_all()
    assert table.num_rows == 0 and table.schema == arrow_schema()


@pytest.mark.parametrize("fmt", ["arrow", "jsonl", "csv"])
def test_a_reader_that_goes_away_ends_the_stream_with_a_clear_error(fmt: str) -> None:
    r, w = os.pipe()
    os.close(r)  # the reader has gone (`afpacket flows ... | head` after head exits)
    f: Any = os.fdopen(w, "wb") if fmt == "arrow" else os.fdopen(w, "w", newline="")
    sinks: dict[str, Any] = {"arrow": ArrowStream, "jsonl": JsonLines, "csv": Csv}
    try:
        sink: FlowSink = sinks[fmt](f)
    except OutputClosedError:
        assert fmt == "csv"  # the header is the first write
    else:
        with pytest.raises(OutputClosedError, match=r"the reader of the output went away \(broken pipe\) after "
                                                    r"0 records; the rest were not written") as e:
            sink.write(many(200, "edge-1"))
        assert isinstance(e.value, BrokenPipeError) and isinstance(e.value, AfPacketError)
        with pytest.raises(OutputClosedError):
            sink.write(many(1, "edge-1"))  # finished: no half-written stream is continued
        sink.close()  # quiet: no end marker for a reader that is not there
        assert sink.records == 0 and sink.files == 0
    finally:
        try:
            f.close()
        except BrokenPipeError:
            pass  # the file object's own buffer


def test_json_lines_round_trip_with_integer_nanoseconds() -> None:
    out = io.StringIO()
    records = many(40, "edge-1")
    with JsonLines(out) as sink:
        sink.write(records[:15])
        sink.write(records[15:])
    lines = out.getvalue().splitlines()
    assert len(lines) == 40 and out.getvalue().endswith("\n")
    rows = [json.loads(line) for line in lines]
    assert rows == [r.as_dict() for r in records]
    assert list(rows[0]) == list(FIELDS)  # column order
    assert all(type(row["ts"]) is int and type(row["last_ts"]) is int for row in rows)
    assert any(row["resp_bytes"] == BIG for row in rows)


def test_csv_round_trip_with_the_header_from_fields() -> None:
    out = io.StringIO(newline="")
    records = [*many(40, "edge-2"), flow(99, "edge-2")]
    records[-1].history = 'a,"quoted"\nvalue'  # the csv module's quoting must carry it
    with Csv(out) as sink:
        sink.write(records)
    reader = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    assert reader.fieldnames == list(FIELDS)
    convert = {"timestamp_ns": int, "uint16": int, "uint64": int, "int32": int, "float64": float, "string": str}
    rows = [{n: convert[FIELDS[n][0]](v) for n, v in row.items()} for row in reader]
    assert rows == [r.as_dict() for r in records]

    empty = io.StringIO()
    Csv(empty).close()
    assert empty.getvalue() == ",".join(FIELDS) + "\n"  # an empty capture still has a header


def test_open_sink_opens_each_format_and_owns_only_what_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = many(12, "")
    for fmt in ("arrow", "jsonl", "csv"):
        path = tmp_path / f"flows.{fmt}"
        with open_sink(fmt, path, "edge-9") as sink:
            sink.write(records)
        assert isinstance(sink, {"arrow": ArrowStream, "jsonl": JsonLines, "csv": Csv}[fmt])
        assert sink.file.closed  # type: ignore[attr-defined]
    assert ipc.open_stream((tmp_path / "flows.arrow").read_bytes()).read_all().column("sensor").to_pylist() \
        == ["edge-9"] * 12
    assert [json.loads(x)["sensor"] for x in (tmp_path / "flows.jsonl").read_text().splitlines()] == ["edge-9"] * 12
    assert len((tmp_path / "flows.csv").read_text().splitlines()) == 13

    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    with open_sink("jsonl", "-", "edge-9") as sink:
        sink.write(records[:2])
    assert not stdout.closed and len(stdout.getvalue().splitlines()) == 2

    with open_sink("parquet", tmp_path / "ds", "edge-9", max_records=5) as sink:
        sink.write(records)
    assert isinstance(sink, ParquetDataset) and sink.files >= 3
    assert ds.dataset(tmp_path / "ds", partitioning="hive").count_rows() == 12


# ------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("name", "message"), [
    ("", "the sensor name is empty; name the sensor"),
    ("a/b", r"sensor name 'a/b' has '/' \('/' and '=' would break the sensor=NAME partition directory\)"),
    ("a=b", r"has '=' \('/' and '=' would break"),
    ("tab\there", r"has '\\t' \(unprintable characters\); use letters, digits"),
    ("a b%", r"has ' ', '%'; use letters, digits, '.', '_' and '-', starting with a letter"),
    ("01", r"sensor name '01' must start with a letter: query engines read a partition value that looks like "
           r"a number as a number"),
    ("x" * 101, "the sensor name is 101 characters, at most 100"),
])
def test_bad_sensor_names_are_refused_with_the_fix(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ArgumentError, match=r"ParquetDataset\(\): .*" + message):
        ParquetDataset(tmp_path, name)
    with pytest.raises(ArgumentError, match=message):
        open_sink("jsonl", "-", name)
    assert not list(tmp_path.iterdir())  # nothing created
    assert check_sensor("edge-1") == "edge-1"
    with pytest.raises(TypeError, match="the sensor name must be a str, not int"):
        check_sensor(5)


def test_open_sink_refuses_what_it_cannot_write_and_says_what_to_give(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases: list[tuple[tuple[Any, ...], str]] = [
        (("xml", tmp_path / "o", "edge-1"), r"unknown format 'xml'; use one of parquet, arrow, jsonl, csv"),
        (("parquet", "-", "edge-1"), r"a Parquet dataset is a directory of files and cannot go to standard "
                                     r"output; give a directory \(--out DIR\), or use --format arrow"),
        (("parquet", a_file, "edge-1"), r"'.*a-file' exists and is a file; a Parquet dataset is a directory"),
        (("csv", tmp_path, "edge-1"), r"is a directory; --format csv writes one file: give a file name, or '-'"),
        (("jsonl", tmp_path / "no" / "f.jsonl", "edge-1"), r"the directory '.*/no' of .* does not exist"),
        (("arrow", "", "edge-1"), r"out is empty; give a file or '-'"),
    ]
    for args, message in cases:
        with pytest.raises(ArgumentError, match=r"open_sink\(\): .*" + message):
            open_sink(*args)
    with pytest.raises(TypeError, match="fmt must be a str, not NoneType"):
        open_sink(None, "-", "edge-1")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match=r"ParquetDataset\(\): .*a-file' is a file; a Parquet dataset is a "
                                            r"directory of partitions"):
        ParquetDataset(a_file, "edge-1")
    with pytest.raises(ArgumentError, match=r"ParquetDataset\(\): max_records must be > 0, got 0"):
        ParquetDataset(tmp_path / "d", "edge-1", max_records=0)
    with pytest.raises(ArgumentError, match=r"ParquetDataset\(\): max_seconds must be a finite number of "
                                            r"seconds > 0, got nan"):
        ParquetDataset(tmp_path / "d", "edge-1", max_seconds=float("nan"))


@pytest.mark.parametrize(("change", "message"), [
    ({"orig_p": 70_000}, r"column 'orig_p' does not fit uint16 \(Value 70000 too large"),
    ({"resp_bytes": -1}, r"column 'resp_bytes' does not fit uint64"),
    ({"orig_pkts": 1.5}, r"column 'orig_pkts' does not fit uint64 \(1.5 is not an int\)"),
    ({"vlan": None}, r"column 'vlan' does not fit uint16 \(None is not an int\)"),
    ({"proto": 6}, r"column 'proto' does not fit string"),
    ({"ts": 1.5}, r"ts must be an int of nanoseconds since the epoch, not float"),
])
def test_a_bad_value_names_its_column_and_leaves_the_dataset_as_it_was(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    good = many(5, "edge-1")
    bad = flow(5, "edge-1")
    for name, value in change.items():
        setattr(bad, name, value)
    with ParquetDataset(tmp_path, "edge-1") as sink:
        with pytest.raises(ArgumentError, match=message):
            sink.write([*good, bad])
        assert sink.records == 0 and sink.open_files == 0
    assert published(tmp_path) == []
    if "ts" not in change:
        with pytest.raises(ArgumentError, match=message):
            ArrowStream(io.BytesIO()).write([*good, bad])


def test_records_of_another_sensor_and_wrong_files_are_refused(tmp_path: Path) -> None:
    for sink in (ParquetDataset(tmp_path, "edge-1"), JsonLines(io.StringIO(), sensor="edge-1")):
        with pytest.raises(ArgumentError, match=r"write\(\): a record of sensor 'edge-2' was given to the sink of "
                                                r"sensor 'edge-1'; open one sink per sensor"):
            sink.write(many(2, "edge-2"))
        with pytest.raises(TypeError, match=r"write\(\) takes a list of FlowRecord, not tuple"):
            sink.write(tuple(many(2, "edge-1")))  # type: ignore[arg-type]
        sink.close()
    with pytest.raises(TypeError, match=r"ArrowStream\(\): needs a binary file .*sys.stdout.buffer"):
        ArrowStream(io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"JsonLines\(\): needs a text file"):
        JsonLines(io.BytesIO())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Csv\(\): needs a file object with write\(\), not str"):
        Csv("flows.csv")  # type: ignore[arg-type]


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(AfPacketError, match=r"ParquetDataset needs pyarrow: pip install 'afpacket\[flows\]'"):
        ParquetDataset(tmp_path, "edge-1")
    with pytest.raises(AfPacketError, match=r"--format arrow needs pyarrow: pip install 'afpacket\[flows\]'"):
        open_sink("arrow", tmp_path / "f.arrow", "edge-1")
    assert not (tmp_path / "f.arrow").exists()
    out = io.StringIO()
    with JsonLines(out) as sink:  # the text formats need nothing beyond the standard library
        sink.write(many(1, "edge-1"))
    assert json.loads(out.getvalue())["sensor"] == "edge-1"


def test_flow_sinks_are_context_managers_that_count() -> None:
    sink = JsonLines(io.StringIO())
    assert (sink.records, sink.files, sink.closed) == (0, 0, False)
    sink.maybe_roll()
    sink.flush()  # stream sinks: nothing to roll
    with sink:
        sink.write(many(3, "edge-1"))
    assert (sink.records, sink.files, sink.closed) == (3, 1, True)

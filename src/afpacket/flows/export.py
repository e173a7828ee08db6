"""Flow record sinks: Parquet datasets, an Arrow IPC stream, JSON lines and CSV.

Flows leave afpacket in the forms the engines people already run ingest without a collector: a
hive-partitioned Parquet dataset that DuckDB, Spark, Trino and pyarrow read in place, an Arrow stream for a
pipe into another program, and JSON lines or CSV for everything else. Every sink takes batches (a list of
:class:`~afpacket.flows.record.FlowRecord`), because Arrow and Parquet are columnar: one conversion per batch
costs little, one per record a lot.

The columns, their order and their types all come from :data:`~afpacket.flows.record.FIELDS`, so the four
formats cannot drift apart. pyarrow is imported only when a Parquet or Arrow sink is opened (the ``flows``
extra); JSON lines and CSV need nothing beyond the standard library.

Parquet files are published atomically: each is written under a hidden name (``.part-….parquet.tmp``) in
its partition directory and renamed when complete, so a reader listing the dataset sees whole files or
nothing. The hidden name does not end in ``.parquet`` on purpose: DuckDB's ``**/*.parquet`` glob does
*not* skip dot-files (pyarrow and Spark do), so a name ending in ``.parquet`` would be read half-written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import IO, Any, Final, Self

from .._check import choice, count, seconds
from ..errors import AfPacketError, ArgumentError, CaptureClosedError
from .record import FIELDS, FlowRecord

#: The formats :func:`open_sink` knows, in the order its error message lists them.
FORMATS: Final = ("parquet", "arrow", "jsonl", "csv")
#: Default file roll: a file is published when it holds this many records ...
DEFAULT_MAX_RECORDS: Final = 1_000_000
#: ... or when it has been open this long (seconds), so a quiet live capture still publishes every minute.
DEFAULT_MAX_SECONDS: Final = 60.0
#: Records buffered (as Arrow columns) before they are written as one Parquet row group: large enough for
#: the column encodings and statistics to pay off, small enough to bound memory per open partition.
DEFAULT_ROW_GROUP: Final = 65_536
#: The units a Parquet dataset can store ``ts``/``last_ts`` in (see :class:`ParquetDataset`).
TIMESTAMP_UNITS: Final = ("ns", "us")
#: The longest sensor name: ``sensor=NAME`` must stay well inside a file name's 255 bytes.
MAX_SENSOR_LENGTH: Final = 100

_NS_PER_HOUR: Final = 3_600 * 1_000_000_000
_SENSOR_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_EXTRA_HINT: Final = "pip install 'afpacket[flows]'"
_INTEGER_KINDS: Final = frozenset({"timestamp_ns", "uint16", "uint64", "int32"})


class OutputClosedError(AfPacketError, BrokenPipeError):
    """The reader of a stream sink went away (EPIPE: ``afpacket flows ... | head``, a consumer that quit).

    Raised by ``write()`` of :class:`ArrowStream`, :class:`JsonLines` and :class:`Csv` instead of a bare
    BrokenPipeError, so a library user learns how many records got out (``records`` of the sink) and a
    command can end quietly, as tcpdump does when its pipe closes: it is also a ``BrokenPipeError``, so an
    existing ``except BrokenPipeError`` keeps working. After it the sink is finished: later writes raise it
    again and ``close()`` writes nothing (there is no one to read an end-of-stream marker).
    """


def check_sensor(sensor: object, where: str = "sensor") -> str:
    """``sensor`` if it can be a partition value that every engine reads back unchanged; else an error.

    ``where`` names the caller in the message. A name is 1-100 characters of letters, digits, ``.``, ``_``
    and ``-``, starting with a letter. Why so strict: ``/`` would add a directory level and ``=`` break the
    ``key=value`` form; Hive and Spark escape ``%``, ``:``, spaces and more in partition paths and unescape
    ``%XX`` when reading; and DuckDB, Spark and pyarrow type a partition value from its text, so a sensor
    named ``01`` or ``2024`` would come back as the number 1 or 2024. A leading letter rules that out.
    """
    if not isinstance(sensor, str):
        raise TypeError(f"{where}: the sensor name must be a str, not {type(sensor).__name__}")
    fix = "use letters, digits, '.', '_' and '-', starting with a letter (e.g. 'edge-1' or 'dc2.rack4')"
    if not sensor:
        raise ArgumentError(f"{where}: the sensor name is empty; name the sensor ({fix})")
    if len(sensor) > MAX_SENSOR_LENGTH:
        raise ArgumentError(
            f"{where}: the sensor name is {len(sensor)} characters, at most {MAX_SENSOR_LENGTH} fit a partition "
            f"directory name; use a shorter one"
        )
    bad = sorted({c for c in sensor if c not in _SENSOR_CHARS})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        why = ""
        if "/" in bad or "=" in bad:
            why = " ('/' and '=' would break the sensor=NAME partition directory)"
        elif not sensor.isprintable():
            why = " (unprintable characters)"
        raise ArgumentError(f"{where}: sensor name {sensor!r} has {shown}{why}; {fix}")
    if not sensor[0].isalpha():
        raise ArgumentError(
            f"{where}: sensor name {sensor!r} must start with a letter: query engines read a partition value "
            f"that looks like a number as a number; {fix}"
        )
    return sensor


def _pyarrow(what: str) -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet) imported on first use, or the error naming the extra to install."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise AfPacketError(f"{what} needs pyarrow: {_EXTRA_HINT}") from None
    return pa, pq


def arrow_schema(with_sensor: bool = True, timestamp_unit: str = "ns") -> Any:
    """The flow records' ``pyarrow.Schema``, built from :data:`FIELDS` (each field's meaning in its metadata).

    ``with_sensor=False`` leaves out the ``sensor`` column, as Parquet datasets do: there it is the
    partition directory, and Spark refuses a column that is both in the files and in the path.
    ``timestamp_unit`` is the unit of ``ts`` and ``last_ts`` (``"ns"``, or ``"us"``: see
    :class:`ParquetDataset`). Needs pyarrow (an AfPacketError names the extra when it is missing).
    """
    pa, _ = _pyarrow("arrow_schema()")
    choice("arrow_schema()", "timestamp_unit", timestamp_unit, TIMESTAMP_UNITS)
    types = {
        "timestamp_ns": pa.timestamp(timestamp_unit, tz="UTC"),
        "float64": pa.float64(),
        "string": pa.string(),
        "uint16": pa.uint16(),
        "uint64": pa.uint64(),
        "int32": pa.int32(),
    }
    return pa.schema(
        [
            pa.field(name, types[kind], nullable=False, metadata={"description": meaning})
            for name, (kind, meaning) in FIELDS.items()
            if with_sensor or name != "sensor"
        ]
    )


def record_batch(records: list[FlowRecord], schema: Any, sensor: str | None = None) -> Any:
    """``records`` as one ``pyarrow.RecordBatch`` with ``schema`` (from :func:`arrow_schema`).

    ``sensor``, when given, is written in the ``sensor`` column of records whose own ``sensor`` is empty
    (see :meth:`FlowSink.write` for the rule). A value that does not fit its column (a port above 65535, a
    negative count, a string where a number belongs) raises ArgumentError naming the column, instead of
    Arrow's message about C integer types.
    """
    pa, _ = _pyarrow("record_batch()")
    arrays = []
    for f in schema:
        if f.name == "sensor" and sensor is not None:
            values: list[Any] = [sensor] * len(records)
        else:
            values = list(map(operator.attrgetter(f.name), records))
        problem = ""
        if FIELDS[f.name][0] in _INTEGER_KINDS:
            # Arrow would cut 1.5 to 1 without a word and take None as a null: both hide a bug in the meter.
            odd = next((v for v in values if type(v) is not int), None)
            if odd is not None or None in values:
                problem = f"{odd!r} is not an int"
        if not problem:
            try:
                arr = pa.array(values, type=f.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as e:
                problem = str(e)
            else:
                if arr.null_count:
                    problem = "None is not a value"
        if problem:
            raise ArgumentError(
                f"flow records: a value of column {f.name!r} does not fit {f.type} ({problem}); "
                f"FIELDS in afpacket.flows.record says what each column holds"
            )
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class FlowSink:
    """What every sink does: take batches of flow records, count them, and finish on ``close()``.

    A sink is a context manager (``with open_sink(...) as sink:``): leaving the block closes it, which for
    Parquet publishes the files still open, so an exception in the capture loop still leaves every record
    written so far readable. ``records`` counts the records written, ``files`` the outputs finished (Parquet
    files published; a stream sink counts its one stream once it is closed). ``flush()`` and
    ``maybe_roll()`` exist on every sink so a capture loop can call them without knowing the format.
    """

    def __init__(self, sensor: str | None = None) -> None:
        """``sensor``: the name written in records whose own ``sensor`` is empty (None: leave them)."""
        self.sensor = None if sensor is None else check_sensor(sensor, type(self).__name__)
        #: records written so far
        self.records = 0
        #: outputs finished so far (Parquet files published)
        self.files = 0
        self.closed = False

    def write(self, records: list[FlowRecord]) -> None:
        """Write ``records`` (a list of FlowRecord, possibly empty).

        The sensor rule: with a sink ``sensor``, a record whose ``sensor`` is empty gets the sink's, one
        with the same name is fine, and one naming another sensor raises ArgumentError (it would be filed
        under the wrong sensor). Without one, the records' own names are written.
        """
        if self.closed:
            raise CaptureClosedError(f"{type(self).__name__}.write(): the sink is closed")
        if not isinstance(records, list):
            raise TypeError(f"{type(self).__name__}.write() takes a list of FlowRecord, not "
                            f"{type(records).__name__}")
        if not records:
            return
        self._check_sensors(records)
        self._write(records)
        self.records += len(records)

    def flush(self) -> None:
        """Make everything written so far visible to readers (Parquet: publish the open files)."""

    def maybe_roll(self, now: float | None = None) -> None:
        """Publish what has been open for the sink's age limit; call it now and then from a quiet loop.

        ``now`` is a ``time.monotonic()`` reading (None: the current one). Only Parquet datasets roll;
        for the stream sinks this does nothing.
        """

    def close(self) -> None:
        """Finish the output (idempotent): publish, write the end-of-stream marker, flush."""
        self.closed = True

    def _write(self, records: list[FlowRecord]) -> None:
        raise NotImplementedError

    def _check_sensors(self, records: list[FlowRecord]) -> None:
        mine = self.sensor
        if mine is None:
            return
        for r in records:
            if r.sensor and r.sensor != mine:
                raise ArgumentError(
                    f"{type(self).__name__}.write(): a record of sensor {r.sensor!r} was given to the sink of "
                    f"sensor {mine!r}; open one sink per sensor, or leave the records' sensor empty"
                )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------- Parquet


@dataclass(slots=True)
class _OpenFile:
    """One Parquet file being written in one partition directory, under its hidden name."""

    tmp: str
    final: str
    writer: Any
    opened: float  # time.monotonic() when the first record arrived
    rows: int = 0  # records in the file, pending ones included
    pending: list[Any] = field(default_factory=list)  # record batches not yet in a row group
    pending_rows: int = 0


class ParquetDataset(FlowSink):
    """A hive-partitioned Parquet dataset: ``ROOT/sensor=NAME/date=YYYY-MM-DD/hour=HH/part-….parquet``.

    Example::

        with ParquetDataset("/data/flows", "edge-1", max_seconds=60) as sink:
            for batch in meter:                      # lists of FlowRecord
                sink.write(batch)
                sink.maybe_roll()                    # also when no flow ended: publishes by age

    ``root`` is the dataset directory (created if missing); ``sensor`` the partition the files go in (see
    :func:`check_sensor`). A record goes to the date and hour (UTC) of its ``ts``. The sensor is a partition
    column only, never inside the files (Spark refuses a column that is both); every other column of
    :data:`FIELDS` is, with its Arrow type, so readers get ``ts`` as ``timestamp[ns, UTC]``.

    A partition's file is written as ``.part-….parquet.tmp`` (hidden from every reader: see the module
    docstring), then fsync'ed (``fsync=True``) and renamed to ``part-<UTC time>-<pid>-<random>-<n>.parquet``
    with ``os.rename``, so readers never see half a file and several processes (fanout workers, with the same
    sensor or not) can write one dataset at once. A file is published when it holds ``max_records`` records,
    when it has been open ``max_seconds`` (checked on each ``write()`` and by ``maybe_roll()``), on
    ``flush()`` and on ``close()``. Records reach the file in row groups of ``row_group_records`` (buffered as
    Arrow columns until then); ``compression`` is the Parquet codec (``"zstd"``: small files that DuckDB,
    Spark and pyarrow all read). A process that dies leaves ``.tmp`` files behind, which readers ignore and
    which can be deleted. One sink belongs to one thread; processes each open their own.

    ``timestamp_unit`` is how ``ts`` and ``last_ts`` are stored: ``"ns"`` (the default) keeps every
    nanosecond, and DuckDB and pyarrow read it as a timestamp; Apache Spark (3.2 to 4.x)
    refuses Parquet's ``TIMESTAMP(NANOS)`` unless ``spark.sql.legacy.parquet.nanosAsLong=true``, which gives
    the integer nanoseconds. ``"us"`` stores microseconds (the nanoseconds below a microsecond are cut),
    which Spark reads as its own ``timestamp`` type with no setting.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        sensor: str,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        row_group_records: int = DEFAULT_ROW_GROUP,
        compression: str = "zstd",
        fsync: bool = True,
        timestamp_unit: str = "ns",
    ) -> None:
        where = "ParquetDataset()"
        super().__init__(check_sensor(sensor, where))
        self.max_records = count(where, "max_records", max_records, allow_zero=False, optional=False) or 1
        self.max_seconds = seconds(where, "max_seconds", max_seconds, allow_zero=False, optional=False) or 1.0
        self.row_group_records = count(
            where, "row_group_records", row_group_records, allow_zero=False, optional=False
        ) or 1
        self.compression = compression
        self.fsync = bool(fsync)
        self.root = os.fspath(root)
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise ArgumentError(
                f"{where}: {self.root!r} is a file; a Parquet dataset is a directory of partitions: give a "
                f"directory (new or existing)"
            )
        self._pa, self._pq = _pyarrow("ParquetDataset")
        choice(where, "timestamp_unit", timestamp_unit, TIMESTAMP_UNITS)
        self.timestamp_unit = timestamp_unit
        self._records_schema = arrow_schema(with_sensor=False)  # what the records convert to (ns)
        self._schema = arrow_schema(with_sensor=False, timestamp_unit=timestamp_unit)  # what the files hold
        self._run = uuid.uuid4().hex[:8]  # tells apart two processes that got the same pid (hosts, restarts)
        self._seq = 0
        self._open: dict[int, _OpenFile] = {}  # by hour number since the epoch
        try:
            os.makedirs(os.path.join(self.root, f"sensor={self.sensor}"), exist_ok=True)
        except OSError as e:
            raise AfPacketError(f"{where}: cannot create the dataset directory {self.root!r}: {e.strerror}") from None

    @property
    def open_files(self) -> int:
        """How many partition files are being written (not yet visible to readers)."""
        return len(self._open)

    def partition_dir(self, ts: int) -> str:
        """The directory a record whose first packet was at ``ts`` (ns since the epoch, UTC) goes in."""
        return self._dir_of(ts // _NS_PER_HOUR)

    def _dir_of(self, hour: int) -> str:
        try:
            t = datetime.fromtimestamp(hour * 3600, UTC)
        except (OverflowError, OSError, ValueError):
            raise ArgumentError(
                f"ParquetDataset.write(): ts {hour * _NS_PER_HOUR} ns is outside the dates Python can name; "
                f"flow times are nanoseconds since 1970-01-01 UTC"
            ) from None
        return os.path.join(self.root, f"sensor={self.sensor}", f"date={t:%Y-%m-%d}", f"hour={t:%H}")

    def _write(self, records: list[FlowRecord]) -> None:
        by_hour: dict[int, list[FlowRecord]] = {}
        for r in records:
            ts = r.ts
            if not isinstance(ts, int) or isinstance(ts, bool):
                raise ArgumentError(
                    f"ParquetDataset.write(): ts must be an int of nanoseconds since the epoch, "
                    f"not {type(ts).__name__}"
                )
            by_hour.setdefault(ts // _NS_PER_HOUR, []).append(r)
        # Convert every group before writing any, so a bad value leaves the dataset as it was.
        batches = [(hour, record_batch(group, self._records_schema)) for hour, group in by_hour.items()]
        for hour, batch in batches:
            self._append(hour, batch)
        self.maybe_roll()

    def _append(self, hour: int, batch: Any) -> None:
        offset = 0
        while offset < batch.num_rows:
            f = self._open.get(hour)
            if f is None:
                f = self._open[hour] = self._new_file(hour)
            chunk = batch.slice(offset, self.max_records - f.rows)
            offset += chunk.num_rows
            f.pending.append(chunk)
            f.pending_rows += chunk.num_rows
            f.rows += chunk.num_rows
            if f.pending_rows >= self.row_group_records:
                self._write_pending(f)
            if f.rows >= self.max_records:
                self._publish(hour)

    def _new_file(self, hour: int) -> _OpenFile:
        directory = self._dir_of(hour)
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = f"part-{stamp}-{os.getpid()}-{self._run}-{self._seq:06d}.parquet"
        tmp = os.path.join(directory, f".{name}.tmp")
        try:
            os.makedirs(directory, exist_ok=True)
            writer = self._pq.ParquetWriter(tmp, self._schema, compression=self.compression)
        except OSError as e:
            raise AfPacketError(f"ParquetDataset: cannot create {tmp!r}: {e}") from None
        return _OpenFile(tmp, os.path.join(directory, name), writer, time.monotonic())

    def _write_pending(self, f: _OpenFile) -> None:
        if not f.pending:
            return
        table = self._pa.Table.from_batches(f.pending, schema=self._records_schema)
        if self.timestamp_unit != "ns":
            table = table.cast(self._schema, safe=False)  # safe=False: cutting the sub-unit digits is the point
        f.pending.clear()
        f.pending_rows = 0
        try:
            f.writer.write_table(table, row_group_size=max(self.row_group_records, table.num_rows))
        except OSError as e:
            self._abandon(f)
            raise AfPacketError(f"ParquetDataset: writing {f.tmp!r} failed: {e}") from None

    def _publish(self, hour: int) -> None:
        f = self._open.pop(hour)
        try:
            self._write_pending(f)
            f.writer.close()
            if self.fsync:
                # Without it a crash soon after the rename can leave a complete name on an empty file.
                fd = os.open(f.tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.rename(f.tmp, f.final)  # atomic within the directory: readers see nothing or the whole file
        except OSError as e:
            self._abandon(f)
            raise AfPacketError(f"ParquetDataset: publishing {f.final!r} failed: {e}") from None
        self.files += 1

    def _abandon(self, f: _OpenFile) -> None:
        """Drop a file that failed (disk full, ...): close what can be closed, remove the hidden name."""
        try:
            f.writer.close()
        except Exception:
            pass  # the first failure is the one reported
        try:
            os.unlink(f.tmp)
        except OSError:
            pass

    def maybe_roll(self, now: float | None = None) -> None:
        """Publish every file open for ``max_seconds`` or longer.

        ``now`` is a ``time.monotonic()`` reading (None: the current one). ``write()`` calls it too; a live
        capture should also call it when no flow ends for a while (every second is plenty), so the last
        minute of a quiet link reaches readers on time.
        """
        if not self._open:
            return
        t = time.monotonic() if now is None else now
        for hour in [h for h, f in self._open.items() if t - f.opened >= self.max_seconds]:
            self._publish(hour)

    def flush(self) -> None:
        """Publish every open file now (a smaller file than the limits would make, but visible at once)."""
        for hour in list(self._open):
            self._publish(hour)

    def close(self) -> None:
        """Publish the open files and finish (idempotent). Records written after this raise an error."""
        if self.closed:
            return
        self.closed = True
        self.flush()


# --------------------------------------------------------------------------------------------- streams


class _StreamSink(FlowSink):
    """A sink writing one stream to a file object; owns the file only when :func:`open_sink` opened it."""

    def __init__(self, file: IO[Any], sensor: str | None) -> None:
        super().__init__(sensor)
        self.file = file
        self._owned = False  # set by open_sink for files it opened
        self._broken = False

    def _gone(self) -> OutputClosedError:
        self._broken = True
        return OutputClosedError(
            f"{type(self).__name__}: the reader of the output went away (broken pipe) after "
            f"{self.records} records; the rest were not written"
        )

    def _io(self, action: str, e: OSError) -> AfPacketError:
        if isinstance(e, BrokenPipeError):
            return self._gone()
        self._broken = True
        return AfPacketError(f"{type(self).__name__}: {action} failed: {e.strerror or e}")

    def write(self, records: list[FlowRecord]) -> None:
        """Write ``records`` (a list of FlowRecord) and flush them to the file, so a pipe's reader gets
        each batch at once. Raises :class:`OutputClosedError` once the reader has gone (see
        :meth:`FlowSink.write` for the sensor rule)."""
        if self._broken:
            raise self._gone()
        super().write(records)

    def close(self) -> None:
        """Finish the stream and flush it (idempotent); closes the file only if :func:`open_sink` opened
        it. After a broken pipe nothing more is written."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self._broken:
                self._finish()
                self.file.flush()
                self.files += 1
        except BrokenPipeError:
            self._broken = True  # the end marker had no reader: nothing lost that anyone could read
        except OSError as e:
            raise self._io("closing the output", e) from None
        finally:
            if self._owned:
                try:
                    self.file.close()
                except OSError:
                    pass

    def _finish(self) -> None:
        """Write what ends the stream (nothing by default)."""


def _require(file: object, binary: bool, where: str) -> None:
    """Refuse the wrong kind of file object at once, with the fix, rather than at the first write."""
    if not callable(getattr(file, "write", None)):
        raise TypeError(f"{where}: needs a file object with write(), not {type(file).__name__}")
    if binary and isinstance(file, io.TextIOBase):
        raise TypeError(f"{where}: needs a binary file (open(path, 'wb'), or sys.stdout.buffer), not a text file")
    if not binary and isinstance(file, (io.RawIOBase, io.BufferedIOBase)):
        raise TypeError(f"{where}: needs a text file (open(path, 'w', newline='') or sys.stdout), not a binary file")


class ArrowStream(_StreamSink):
    """The Arrow IPC *stream* format on a binary file: one record batch per ``write()``.

    Example::

        with ArrowStream(sys.stdout.buffer) as sink:       # afpacket flows ... --format arrow | reader
            sink.write(records)

    ``binary_file`` is a writable binary file object (``sys.stdout.buffer``, a pipe, a socket's makefile);
    the stream format (``pyarrow.ipc.open_stream`` reads it) needs no seeking, unlike the file format.
    The schema has every :data:`FIELDS` column, ``sensor`` included. ``sensor`` fills records whose own is
    empty (see :meth:`FlowSink.write`). When the reader goes away, ``write()`` raises
    :class:`OutputClosedError` (a BrokenPipeError too) and ``close()`` stays quiet; the caller decides
    whether that is the end (a command: yes, quietly, as tcpdump) or a fault.
    """

    def __init__(self, binary_file: IO[bytes], *, sensor: str | None = None) -> None:
        _require(binary_file, True, "ArrowStream()")
        super().__init__(binary_file, sensor)
        self._pa, _ = _pyarrow("ArrowStream")
        self._schema = arrow_schema(with_sensor=True)
        self._writer: Any = None  # opened at the first write or at close: the schema message goes first

    def _stream(self) -> Any:
        if self._writer is None:
            self._writer = self._pa.ipc.new_stream(self.file, self._schema)
        return self._writer

    def _write(self, records: list[FlowRecord]) -> None:
        batch = record_batch(records, self._schema, self.sensor)
        try:
            self._stream().write_batch(batch)
            self.file.flush()
        except OSError as e:
            raise self._io("writing the Arrow stream", e) from None

    def _finish(self) -> None:
        self._stream().close()  # an empty capture still gives a valid stream: the schema and the end marker


class JsonLines(_StreamSink):
    """One JSON object per line, keys in :data:`FIELDS` order (the format Zeek's JSON logs and most log
    shippers use).

    ``text_file`` is a writable text file object (``sys.stdout``, ``open(path, "w")``). ``ts`` and
    ``last_ts`` are integers of nanoseconds since the epoch, not Zeek's float seconds: a float64 cannot hold
    today's time to the nanosecond, and an integer converts exactly in any engine (DuckDB:
    ``make_timestamp_ns(ts)``, Spark: ``timestamp_micros(ts div 1000)``). ``duration`` is a float of
    seconds. ``sensor`` fills records whose own is empty (see :meth:`FlowSink.write`). A closed pipe raises
    :class:`OutputClosedError`, as :class:`ArrowStream` does.
    """

    def __init__(self, text_file: IO[str], *, sensor: str | None = None) -> None:
        _require(text_file, False, "JsonLines()")
        super().__init__(text_file, sensor)

    def _write(self, records: list[FlowRecord]) -> None:
        sensor = self.sensor
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
        lines = []
        for r in records:
            d = r.as_dict()
            if sensor is not None:
                d["sensor"] = sensor
            if isinstance(r.duration, float) and not math.isfinite(r.duration):
                raise ArgumentError(f"JsonLines.write(): duration {r.duration!r} is not a finite number")
            lines.append(dumps(d))
        lines.append("")
        try:
            self.file.write("\n".join(lines))
            self.file.flush()
        except OSError as e:
            raise self._io("writing JSON lines", e) from None


class Csv(_StreamSink):
    """CSV with a header row of the :data:`FIELDS` names, written by the ``csv`` module (RFC 4180 quoting).

    ``text_file`` is a writable text file object; open it with ``newline=""`` as the csv module asks. The
    header is written at once, so even an empty capture leaves a file any reader accepts. Values are as in
    :class:`JsonLines` (``ts``/``last_ts`` integer nanoseconds). ``sensor`` fills records whose own is empty
    (see :meth:`FlowSink.write`). A closed pipe raises :class:`OutputClosedError`.
    """

    def __init__(self, text_file: IO[str], *, sensor: str | None = None) -> None:
        _require(text_file, False, "Csv()")
        super().__init__(text_file, sensor)
        self._csv = csv.writer(text_file, lineterminator="\n")
        try:
            self._csv.writerow(FIELDS)
        except OSError as e:
            raise self._io("writing the CSV header", e) from None

    def _write(self, records: list[FlowRecord]) -> None:
        names = tuple(FIELDS)
        get = operator.attrgetter(*names)
        sensor = self.sensor
        rows = [get(r) for r in records]
        if sensor is not None:
            rows = [(*row[:-1], sensor) for row in rows]
        try:
            self._csv.writerows(rows)
            self.file.flush()
        except OSError as e:
            raise self._io("writing CSV", e) from None


# --------------------------------------------------------------------------------------------- open_sink


def open_sink(
    fmt: str,
    out: str | os.PathLike[str],
    sensor: str,
    *,
    max_records: int = DEFAULT_MAX_RECORDS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    timestamp_unit: str = "ns",
) -> FlowSink:
    """The sink for ``--format FMT --out OUT``, as ``afpacket flows`` opens it.

    ``fmt`` is one of :data:`FORMATS`. For ``parquet``, ``out`` is the dataset directory (created if
    missing), ``max_records``/``max_seconds`` roll its files and ``timestamp_unit`` is the unit of its
    timestamps (see :class:`ParquetDataset`; the other formats always carry nanoseconds). For
    ``arrow``, ``jsonl`` and ``csv``, ``out`` is a file to create (replaced if it exists) or ``"-"`` for
    standard output; the sink closes a file it opened, never stdout. ``sensor`` is the sensor name (see
    :func:`check_sensor`): the partition for Parquet, and the ``sensor`` value of records that carry none.
    Every mistake (unknown format, a dataset on stdout, a file where a directory belongs and the reverse, a
    missing parent directory) is an ArgumentError saying what to give instead.
    """
    where = "open_sink()"
    if not isinstance(fmt, str):
        raise TypeError(f"{where}: fmt must be a str, not {type(fmt).__name__}")
    if fmt not in FORMATS:
        raise ArgumentError(f"{where}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"{where}: out must be a path or '-', not {type(out).__name__}")
    path = os.fspath(out)
    check_sensor(sensor, where)
    if not path:
        raise ArgumentError(f"{where}: out is empty; give a {'directory' if fmt == 'parquet' else 'file'} or '-'")
    if fmt == "parquet":
        if path == "-":
            raise ArgumentError(
                f"{where}: a Parquet dataset is a directory of files and cannot go to standard output; give a "
                f"directory (--out DIR), or use --format arrow to stream to a pipe"
            )
        if os.path.exists(path) and not os.path.isdir(path):
            raise ArgumentError(
                f"{where}: {path!r} exists and is a file; a Parquet dataset is a directory: give a directory "
                f"(new or existing), or --format arrow/jsonl/csv to write one file"
            )
        return ParquetDataset(
            path, sensor, max_records=max_records, max_seconds=max_seconds, timestamp_unit=timestamp_unit
        )
    if path != "-":
        if os.path.isdir(path):
            raise ArgumentError(
                f"{where}: {path!r} is a directory; --format {fmt} writes one file: give a file name, or '-' "
                f"for standard output (a directory is for --format parquet)"
            )
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ArgumentError(f"{where}: the directory {parent!r} of {path!r} does not exist; create it first")
    if fmt == "arrow":
        _pyarrow("--format arrow")  # fail before creating the file
        binary: IO[bytes] = sys.stdout.buffer if path == "-" else _create(path, "wb")
        return _owning(ArrowStream(binary, sensor=sensor), path)
    text: IO[str] = sys.stdout if path == "-" else _create(path, "w")
    if fmt == "jsonl":
        return _owning(JsonLines(text, sensor=sensor), path)
    return _owning(Csv(text, sensor=sensor), path)


def _create(path: str, mode: str) -> Any:
    try:
        if "b" in mode:
            return open(path, mode)  # the sink owns and closes it
        return open(path, mode, encoding="utf-8", newline="")
    except OSError as e:
        raise AfPacketError(f"open_sink(): cannot create {path!r}: {e.strerror}") from None


def _owning(sink: _StreamSink, path: str) -> _StreamSink:
    sink._owned = path != "-"
    return sink


__all__ = [
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_SECONDS",
    "FORMATS",
    "TIMESTAMP_UNITS",
    "ArrowStream",
    "Csv",
    "FlowSink",
    "JsonLines",
    "OutputClosedError",
    "ParquetDataset",
    "arrow_schema",
    "check_sensor",
    "open_sink",
    "record_batch",
]

"""Hypothesis fuzzing of the savefile readers with crafted files.

The files are built here, byte by byte, independently of afpacket's writers: pcap headers with every
magic (byte order, micro/nanoseconds), version, snaplen and link type; records whose lengths run from 0
to 2^32-1, past the snaplen and past the end of the file; pcapng sections of either byte order with
interface, enhanced, simple, obsolete packet, statistics and unknown blocks, if_tsresol/if_tsoffset and
time stamps at their extremes, options of every length. Then block lengths that disagree, zero-length
blocks, bad options and cut-off files.

The property is the one the readers document, "records, then at most one clean error": iterating
yields zero or more records, then either ends or raises one exception of the afpacket.errors family
whose message names the byte offset; never another exception type, never a hang (each example runs
under an alarm), never an allocation of a huge declared length (tracemalloc). A well-formed file, however
extreme its values, must read back exactly as crafted (time stamps computed here from if_tsresol and
if_tsoffset with exact fractions); a damaged one must still yield every record before the damage.
``afpacket read`` of the same files prints one line per record, then at most one ``afpacket: ...`` line
with exit status 1, and never a traceback.

No sockets: the ring core does not matter, so every test runs once.
"""

from __future__ import annotations

import io
import math
import re
import signal
import struct
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import BinaryIO

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from afpacket.cli import main
from afpacket.errors import AfPacketError
from afpacket.savefile import Interface, PcapngReader, Record, open_reader
from afpacket.savefile.pcap import MAX_SNAPLEN
from afpacket.savefile.pcapng import MAX_BLOCK_SIZE

AFPACKET = [sys.executable, "-m", "afpacket"]
#: One example may take this long before the alarm calls it a hang.
LIMIT = 10.0
#: Every hypothesis test is reproducible (CI) and keeps no example database in the tree.
FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
OFFSET = re.compile(r"at byte offset (\d+)")


@pytest.fixture(autouse=True)
def core() -> str:
    """Overrides conftest's per-core fixture: file readers touch no ring."""
    return "any"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory for files the CLI reads (module scope, so hypothesis tests may use it)."""
    with tempfile.TemporaryDirectory(prefix="afp-fuzz-") as d:
        yield Path(d)


# --- reading, bounded --------------------------------------------------------------------------------
class Hang(Exception):
    """Raised by the alarm: a reader took longer than LIMIT seconds on one small file."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail the example (rather than the whole run) when a reader loops without advancing."""

    def expired(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Outcome:
    records: list[Record]
    error: AfPacketError | None


def read_outcome(source: bytes | str | Path | BinaryIO) -> Outcome:
    """Everything a reader yields, and the one error that ended it (None: the file ended cleanly).
    Any exception outside the afpacket.errors family propagates and fails the test."""
    target = io.BytesIO(source) if isinstance(source, bytes) else source
    records: list[Record] = []
    with time_limit(LIMIT):
        try:
            with open_reader(target) as reader:
                # the header properties must be answerable whatever the file says
                assert isinstance(reader.linktype, int | None) and isinstance(reader.snaplen, int)
                assert isinstance(reader.nanosecond, bool)
                for rec in reader:
                    records.append(rec)
        except AfPacketError as e:
            assert str(e), "an error without a message"
            return Outcome(records, e)
    return Outcome(records, None)


def tally(out: Outcome) -> Outcome:
    """Name the kind of outcome in hypothesis's statistics (``--hypothesis-show-statistics``), so a run shows
    that the strategies reach both ends of the property: files read whole, and files refused part-way."""
    n = len(out.records)
    event(f"records: {n if n < 3 else '3+'}; " + ("clean end" if out.error is None else type(out.error).__name__))
    return out


def error_offset(err: AfPacketError) -> int:
    m = OFFSET.search(str(err))
    assert m is not None, f"the error does not name the byte offset: {err}"
    return int(m.group(1))


def assert_clean(out: Outcome, data: bytes) -> None:
    """What holds for any file, however damaged: records that are the file's own bytes, then at most
    one error that names an offset inside the file."""
    for rec in out.records:
        assert isinstance(rec, Record)
        assert isinstance(rec.data, bytes) and rec.data in data
        assert isinstance(rec.timestamp_ns, int) and isinstance(rec.wire_len, int)
        assert 0 <= rec.wire_len < 2**32 and 0 <= rec.interface_id < 2**32
    # every record costs at least a 12-byte header in the file: the output is bounded by the input
    assert len(out.records) * 12 <= len(data)
    if out.error is not None:
        assert 0 <= error_offset(out.error) <= len(data)


def payload(seed: int, n: int) -> bytes:
    """``n`` bytes that differ from record to record (so a record read from the wrong place shows)."""
    return bytes((seed * 37 + k * 11 + 5) & 0xFF for k in range(n))


def pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


# --- pcap ---------------------------------------------------------------------------------------------
PCAP_MAGIC = {False: 0xA1B2C3D4, True: 0xA1B23C4D}
#: The reader's documented bound on a record: up to libpcap's maximum snaplen always, up to the file's
#: snaplen when that is larger, and never above 16 MiB (a larger captured length means corruption).
CAPLEN_CEILING = 1 << 24


@dataclass(frozen=True)
class PcapRecord:
    sec: int
    frac: int
    caplen: int
    wire: int
    #: bytes of data actually in the file (fewer than caplen: the file ends inside this record)
    stored: int


@dataclass(frozen=True)
class PcapFile:
    order: str
    nano: bool
    major: int
    minor: int
    zone: int
    sigfigs: int
    snaplen: int
    linktype: int
    records: tuple[PcapRecord, ...]
    tail: bytes = b""

    def build(self) -> bytes:
        o = self.order
        out = [struct.pack(o + "IHHiIII", PCAP_MAGIC[self.nano], self.major, self.minor, self.zone, self.sigfigs,
                           self.snaplen, self.linktype)]
        for i, r in enumerate(self.records):
            out.append(struct.pack(o + "IIII", r.sec, r.frac, r.caplen, r.wire))
            out.append(payload(i, min(r.stored, r.caplen)))
            if r.stored < r.caplen:
                return b"".join(out)  # the file ends inside this record
        return b"".join(out) + self.tail

    def expected(self) -> tuple[list[tuple[int, bytes, int, int]], int | None]:
        """The records a reader must yield, as (timestamp_ns, data, wire_len, linktype), and the byte offset
        of the error after them (None: a clean end; -1: the file header itself is refused)."""
        if self.major != 2:
            return [], -1
        unit = 1 if self.nano else 1000
        limit = max(MAX_SNAPLEN, min(self.snaplen, CAPLEN_CEILING))
        linktype = self.linktype & 0x03FFFFFF  # the top bits carry the FCS length, not the link type
        got: list[tuple[int, bytes, int, int]] = []
        pos = 24
        for i, r in enumerate(self.records):
            if r.caplen > limit or r.stored < r.caplen:
                return got, pos
            got.append((r.sec * 10**9 + r.frac * unit, payload(i, r.caplen), r.wire, linktype))
            pos += 16 + r.caplen
        return got, (pos if self.tail else None)


def extremes(*values: int, lo: int = 0, hi: int = 2**32 - 1) -> st.SearchStrategy[int]:
    """The named edge values half of the time, any integer in lo..hi otherwise."""
    return st.one_of(st.sampled_from(values), st.integers(lo, hi))


def mostly(usual: st.SearchStrategy[int], rare: st.SearchStrategy[int], odds: int = 4) -> st.SearchStrategy[int]:
    """``usual`` ``odds`` times out of ``odds + 1``, else ``rare``: damage that stops a file at its first
    record would leave the records-before-it half of the property untested."""
    return st.integers(0, odds).flatmap(lambda k: usual if k else rare)


SECONDS = extremes(0, 1, 2**31 - 1, 2**31, 2**32 - 1)
FRACTIONS = extremes(0, 999_999, 1_000_000, 999_999_999, 10**9, 2**32 - 1)
SNAPLENS = extremes(0, 1, 65535, MAX_SNAPLEN, MAX_SNAPLEN + 1, CAPLEN_CEILING, CAPLEN_CEILING + 1, 2**31, 2**32 - 1)
WIRE = extremes(0, 1, 60, 65535, 2**31, 2**32 - 1)


@st.composite
def pcap_files(draw: st.DrawFn, well_formed: bool = False) -> PcapFile:
    snaplen = draw(SNAPLENS)
    records = []
    for _ in range(draw(st.integers(0, 5))):
        if well_formed:
            caplen = draw(st.integers(0, 96))
        else:
            caplen = draw(mostly(
                st.integers(0, 96),
                st.sampled_from([snaplen, snaplen + 1, MAX_SNAPLEN, MAX_SNAPLEN + 1, CAPLEN_CEILING,
                                 CAPLEN_CEILING + 1, 2**31, 2**32 - 1]).map(lambda n: min(n, 2**32 - 1)),
            ))
        if well_formed or (caplen <= 96 and draw(st.integers(0, 3))):
            stored = caplen
        elif caplen <= MAX_SNAPLEN + 1 and draw(st.booleans()):
            stored = caplen  # a large record that is really there
        else:
            stored = draw(st.integers(0, min(caplen, 64)))
        records.append(PcapRecord(draw(SECONDS), draw(FRACTIONS), caplen, draw(WIRE), stored))
    return PcapFile(
        order=draw(st.sampled_from("<>")),
        nano=draw(st.booleans()),
        major=2 if well_formed else draw(mostly(st.just(2), st.integers(0, 65535), odds=9)),
        minor=draw(st.one_of(st.just(4), st.integers(0, 65535))),
        zone=draw(st.integers(-(2**31), 2**31 - 1)),
        sigfigs=draw(st.integers(0, 2**32 - 1)),
        snaplen=snaplen,
        linktype=draw(st.one_of(st.sampled_from([0, 1, 101, 113, 276]), st.integers(0, 2**32 - 1))),
        records=tuple(records),
        tail=b"" if well_formed else draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=15))),
    )


def check_pcap(spec: PcapFile) -> Outcome:
    data = spec.build()
    out = tally(read_outcome(data))
    assert_clean(out, data)
    want, error_at = spec.expected()
    assert [(r.timestamp_ns, r.data, r.wire_len, r.linktype) for r in out.records] == want
    if error_at is None:
        assert out.error is None, out.error
    else:
        assert out.error is not None, "a damaged file read as if it were whole"
        if error_at >= 0:
            assert error_offset(out.error) == error_at
    return out


@settings(FUZZ, max_examples=600)
@given(pcap_files())
def test_pcap_crafted_records_then_one_clean_error(spec: PcapFile) -> None:
    check_pcap(spec)


@settings(FUZZ, max_examples=60)
@given(pcap_files(well_formed=True))
def test_pcap_extreme_but_valid_fields_read_back_exactly(spec: PcapFile) -> None:
    out = check_pcap(spec)
    assert out.error is None and len(out.records) == len(spec.records)


# --- pcapng: blocks as crafted here --------------------------------------------------------------------
SHB, IDB, PB, SPB, ISB, EPB = 0x0A0D0D0A, 1, 2, 3, 5, 6
KNOWN = {SHB, IDB, PB, SPB, ISB, EPB}


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def options(order: str, opts: tuple[tuple[int, bytes], ...], end: bool) -> bytes:
    if not opts:
        return b""
    return b"".join(option(order, c, v) for c, v in opts) + (struct.pack(order + "HH", 0, 0) if end else b"")


def block(order: str, block_type: int, body: bytes) -> bytes:
    body = pad4(body)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


@dataclass(frozen=True)
class Idb:
    linktype: int
    snaplen: int
    tsresol: int | None = None
    tsoffset: int | None = None
    name: str | None = None
    extra: tuple[tuple[int, bytes], ...] = ()
    end: bool = True

    def body(self, o: str) -> bytes:
        opts: list[tuple[int, bytes]] = []
        if self.name is not None:
            opts.append((2, self.name.encode()))
        if self.tsresol is not None:
            opts.append((9, bytes([self.tsresol])))
        if self.tsoffset is not None:
            opts.append((14, struct.pack(o + "q", self.tsoffset)))
        opts += self.extra
        return struct.pack(o + "HHI", self.linktype, 0, self.snaplen) + options(o, tuple(opts), self.end)


@dataclass(frozen=True)
class Epb:
    pick: int  # the interface: pick % (interfaces so far in the section)
    ticks: int
    caplen: int
    wire: int
    flags: int | None = None
    extra: tuple[tuple[int, bytes], ...] = ()
    obsolete: bool = False  # an obsolete Packet Block (type 2) instead

    def body(self, o: str, iface: int, seed: int) -> bytes:
        opts = ((2, struct.pack(o + "I", self.flags)),) if self.flags is not None else ()
        tail = options(o, opts + self.extra, True)
        hi, lo = self.ticks >> 32, self.ticks & 0xFFFFFFFF
        if self.obsolete:
            head = struct.pack(o + "HHIIII", iface, 0, hi, lo, self.caplen, self.wire)
        else:
            head = struct.pack(o + "IIIII", iface, hi, lo, self.caplen, self.wire)
        return head + pad4(payload(seed, self.caplen)) + tail


@dataclass(frozen=True)
class Spb:
    wire: int


@dataclass(frozen=True)
class Isb:
    pick: int
    ticks: int
    received: int | None
    dropped: int | None


@dataclass(frozen=True)
class Unknown:
    block_type: int
    body: bytes


@dataclass(frozen=True)
class Section:
    order: str
    interfaces: tuple[Idb, ...]  # at least one, right after the section header
    blocks: tuple[Idb | Epb | Spb | Isb | Unknown, ...]
    shb_options: tuple[tuple[int, bytes], ...] = ()


ExpectedRecord = tuple[int, bytes, int, int, int, int | None]  # ts, data, wire, interface id, linktype, flags


def timestamp_ns(ticks: int, idb: Idb) -> int:
    """What if_tsresol and if_tsoffset make of ``ticks`` (pcapng spec), exactly, rounded down to the ns."""
    r = 6 if idb.tsresol is None else idb.tsresol
    unit = Fraction(1, 2 ** (r & 0x7F)) if r & 0x80 else Fraction(1, 10**r)
    return math.floor(ticks * unit * 10**9) + (idb.tsoffset or 0) * 10**9


@dataclass
class Rendered:
    data: bytes
    #: (start, end, records of this block) for every block, in file order
    blocks: list[tuple[int, int, list[ExpectedRecord]]] = field(default_factory=list)
    #: the last section's interfaces and statistics, as the reader must report them at the end
    interfaces: list[Interface] = field(default_factory=list)
    stats: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)

    @property
    def records(self) -> list[ExpectedRecord]:
        return [r for _, _, recs in self.blocks for r in recs]

    def records_before(self, offset: int) -> list[ExpectedRecord]:
        """The records of every block that ends at or before ``offset``."""
        return [r for _, end, recs in self.blocks if end <= offset for r in recs]

    @property
    def ends(self) -> set[int]:
        return {end for _, end, _ in self.blocks}


def render(sections: tuple[Section, ...]) -> Rendered:
    out = Rendered(b"")
    parts: list[bytes] = []
    pos = 0
    seed = 0

    def add(raw: bytes, recs: list[ExpectedRecord]) -> None:
        nonlocal pos
        parts.append(raw)
        out.blocks.append((pos, pos + len(raw), recs))
        pos += len(raw)

    for sec in sections:
        o = sec.order
        shb_body = struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options(o, sec.shb_options, True)
        add(block(o, SHB, shb_body), [])
        idbs: list[Idb] = []
        stats: dict[int, tuple[int | None, int | None]] = {}
        for b in (*sec.interfaces, *sec.blocks):
            seed += 1
            if isinstance(b, Idb):
                idbs.append(b)
                add(block(o, IDB, b.body(o)), [])
            elif isinstance(b, Epb):
                iface = b.pick % len(idbs)
                idb = idbs[iface]
                rec = (timestamp_ns(b.ticks, idb), payload(seed, b.caplen), b.wire, iface, idb.linktype, b.flags)
                add(block(o, PB if b.obsolete else EPB, b.body(o, iface, seed)), [rec])
            elif isinstance(b, Spb):
                snaplen = idbs[0].snaplen
                caplen = min(b.wire, snaplen or b.wire, 64)
                rec = (0, payload(seed, caplen), b.wire, 0, idbs[0].linktype, None)
                add(block(o, SPB, struct.pack(o + "I", b.wire) + payload(seed, caplen)), [rec])
            elif isinstance(b, Isb):
                iface = b.pick % len(idbs)
                opts: tuple[tuple[int, bytes], ...] = ()
                if b.received is not None:
                    opts += ((4, struct.pack(o + "Q", b.received)),)
                if b.dropped is not None:
                    opts += ((5, struct.pack(o + "Q", b.dropped)),)
                body = struct.pack(o + "III", iface, b.ticks >> 32, b.ticks & 0xFFFFFFFF) + options(o, opts, True)
                stats[iface] = (b.received, b.dropped)
                add(block(o, ISB, body), [])
            else:
                add(block(o, b.block_type, b.body), [])
        out.interfaces = [
            Interface(i.linktype, i.snaplen, i.name, 6 if i.tsresol is None else i.tsresol, i.tsoffset or 0)
            for i in idbs
        ]
        out.stats = stats
    out.data = b"".join(parts)
    return out


# --- pcapng: strategies --------------------------------------------------------------------------------
TICKS = extremes(0, 1, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, hi=2**64 - 1)
TSRESOL = st.one_of(st.none(), st.sampled_from([0, 6, 9, 10, 19, 127, 255, 0x80, 0x80 | 20, 0x80 | 63]),
                    st.integers(0, 255))
TSOFFSET = st.one_of(st.none(), extremes(0, 1, -1, 2**63 - 1, -(2**63), lo=-(2**63), hi=2**63 - 1))
#: option codes an IDB or EPB may carry besides the ones read (comments, custom options, hashes, ...)
OTHER_OPTION = st.tuples(st.sampled_from([1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 2988, 2989, 19372, 19373]),
                         st.binary(max_size=12))
UNKNOWN_TYPE = st.one_of(st.sampled_from([0, 4, 7, 8, 9, 10, 0x0BAD, 0x40000BAD, 0x80000001, 0xFFFFFFFF]),
                         st.integers(0, 2**32 - 1)).filter(lambda t: t not in KNOWN)
NAMES = st.one_of(st.none(), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", max_size=16))


@st.composite
def idbs(draw: st.DrawFn) -> Idb:
    extra = draw(st.lists(OTHER_OPTION.filter(lambda o: o[0] not in (2, 9, 14)), max_size=2))
    return Idb(
        linktype=draw(st.one_of(st.sampled_from([0, 1, 101, 113, 276]), st.integers(0, 65535))),
        snaplen=draw(SNAPLENS),
        tsresol=draw(TSRESOL),
        tsoffset=draw(TSOFFSET),
        name=draw(NAMES),
        extra=tuple(extra),
        end=draw(st.booleans()),
    )


@st.composite
def epbs(draw: st.DrawFn) -> Epb:
    return Epb(
        pick=draw(st.integers(0, 7)),
        ticks=draw(TICKS),
        caplen=draw(st.integers(0, 70)),
        wire=draw(WIRE),
        flags=draw(st.one_of(st.none(), extremes(0, 1, 2, 0b00101, 0b10001, 2**32 - 1))),
        extra=tuple(draw(st.lists(OTHER_OPTION.filter(lambda o: o[0] != 2), max_size=2))),
        obsolete=draw(st.integers(0, 4)) == 0,
    )


BLOCKS = st.one_of(
    epbs(),
    epbs(),
    epbs(),
    idbs(),
    st.builds(Spb, st.integers(0, 100)),
    st.builds(Isb, st.integers(0, 7), TICKS, st.one_of(st.none(), extremes(0, 2**64 - 1, hi=2**64 - 1)),
              st.one_of(st.none(), extremes(0, 2**64 - 1, hi=2**64 - 1))),
    st.builds(Unknown, UNKNOWN_TYPE, st.binary(max_size=24)),
)
SECTIONS = st.lists(
    st.builds(
        Section,
        order=st.sampled_from("<>"),
        interfaces=st.lists(idbs(), min_size=1, max_size=3).map(tuple),
        blocks=st.lists(BLOCKS, min_size=1, max_size=7).map(tuple),
        shb_options=st.lists(st.tuples(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=10)), max_size=2).map(tuple),
    ),
    min_size=1,
    max_size=3,
).map(tuple)


def check_exact(r: Rendered, out: Outcome) -> None:
    got = [(x.timestamp_ns, x.data, x.wire_len, x.interface_id, x.linktype, x.flags) for x in out.records]
    assert got == r.records


@settings(FUZZ, max_examples=250)
@given(SECTIONS)
def test_pcapng_extreme_but_valid_fields_read_back_exactly(sections: tuple[Section, ...]) -> None:
    """Either byte order, several sections, every if_tsresol (decimal and binary) and if_tsoffset from -2^63
    to 2^63-1, 64-bit tick counts, unknown blocks and options: every record exactly as crafted."""
    r = render(sections)
    out = tally(read_outcome(r.data))
    assert out.error is None, out.error
    assert_clean(out, r.data)
    check_exact(r, out)
    with open_reader(io.BytesIO(r.data)) as reader:
        list(reader)
        assert isinstance(reader, PcapngReader)
        assert reader.interfaces == r.interfaces
        assert reader.interface_stats == r.stats


@settings(FUZZ, max_examples=250)
@given(SECTIONS, st.booleans(), st.integers(0, 2**16))
def test_pcapng_cut_anywhere_yields_the_whole_blocks_before_it(
    sections: tuple[Section, ...], from_end: bool, where: int
) -> None:
    r = render(sections)
    # counted from either end: hypothesis favours small numbers, and cuts near the start only find no records
    cut = len(r.data) - where % (len(r.data) + 1) if from_end else where % (len(r.data) + 1)
    out = tally(read_outcome(r.data[:cut]))
    assert_clean(out, r.data)
    check_exact(Rendered(b"", [b for b in r.blocks if b[1] <= cut]), out)
    if cut in r.ends:
        assert out.error is None, out.error
    else:
        assert out.error is not None
        if cut:
            assert error_offset(out.error) == max([0, *(e for e in r.ends if e <= cut)])


#: Values a corrupted length or count field takes: zero-length blocks, lengths not a multiple of 4, one
#: past the limit, all ones.
BAD_WORDS = [0, 1, 4, 8, 12, 13, 16, 28, 0xFFFF, 0x10000, MAX_BLOCK_SIZE, MAX_BLOCK_SIZE + 4, 2**31, 2**32 - 4,
             2**32 - 1]


@dataclass(frozen=True)
class Damage:
    """One change to a well-formed file: ``kind`` at block ``index`` (mod the number of blocks)."""

    kind: str  # "total", "trailer", "word", "half", "cut", "bytes", "append"
    index: int
    position: int
    value: int
    junk: bytes = b""


DAMAGE = st.builds(
    Damage,
    kind=st.sampled_from(["total", "trailer", "word", "word", "half", "half", "cut", "bytes", "append"]),
    index=st.integers(0, 60),
    position=st.integers(0, 2**16),
    value=st.one_of(st.sampled_from(BAD_WORDS), st.integers(0, 2**32 - 1)),
    junk=st.binary(min_size=1, max_size=40),
)


def damage(r: Rendered, d: Damage) -> tuple[bytes, int | None]:
    """The damaged bytes, and the offset of the first block changed (None: anywhere, for random bytes)."""
    data = bytearray(r.data)
    start, end, _ = r.blocks[d.index % len(r.blocks)]
    # the byte order of the damaged block is its section's: read it back from the last SHB before it
    order = "<"
    for s, _e, _recs in r.blocks:
        if s <= start and data[s : s + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if data[s + 8 : s + 12] == b"\x4d\x3c\x2b\x1a" else ">"
    if d.kind == "total":
        struct.pack_into(order + "I", data, start + 4, d.value)
    elif d.kind == "trailer":
        struct.pack_into(order + "I", data, end - 4, d.value)
    elif d.kind == "word":
        struct.pack_into(order + "I", data, start + 8 + 4 * (d.position % max(1, (end - start - 12) // 4)), d.value)
    elif d.kind == "half":
        struct.pack_into(order + "H", data, start + 8 + 2 * (d.position % max(1, (end - start - 12) // 2)),
                         d.value & 0xFFFF)
    elif d.kind == "cut":
        return bytes(data[: start + d.position % (end - start)]), start
    elif d.kind == "append":
        return bytes(data) + d.junk, len(data)
    else:
        for k, b in enumerate(d.junk):
            data[(d.position * (k + 1) + d.value) % len(data)] = b
        return bytes(data), None
    return bytes(data), start


@settings(FUZZ, max_examples=700)
@given(SECTIONS, DAMAGE)
def test_pcapng_damaged_records_then_one_clean_error(sections: tuple[Section, ...], d: Damage) -> None:
    """Lengths that disagree, zero-length and oversized blocks, bad interface ids and captured lengths, option
    lengths that overrun their block, a corrupt byte-order magic or version: records, then one clean error,
    and every record of the blocks before the damage is still there."""
    r = render(sections)
    data, changed_at = damage(r, d)
    out = tally(read_outcome(data))
    assert_clean(out, data)
    if changed_at is not None:
        before = r.records_before(changed_at)
        got = [(x.timestamp_ns, x.data, x.wire_len, x.interface_id, x.linktype, x.flags) for x in out.records]
        assert got[: len(before)] == before


@settings(FUZZ, max_examples=300)
@given(st.sampled_from([b"\x0a\x0d\x0d\x0a", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                        b"\xa1\xb2\x3c\x4d", b""]),
       st.binary(max_size=300))
def test_garbage_behind_any_magic(magic: bytes, junk: bytes) -> None:
    data = magic + junk
    out = tally(read_outcome(data))
    assert_clean(out, data)


# --- every truncation of hand-crafted files --------------------------------------------------------------
def crafted_pcapng() -> Rendered:
    """Two sections (little- then big-endian) with every kind of block and time stamp option."""
    return render((
        Section("<", (Idb(1, 65535, tsresol=9, name="eth0"), Idb(113, 0, tsresol=0x80 | 20, tsoffset=-5)),
                (Epb(0, 1_700_000_000_123_456_789, 60, 60, flags=0b00101), Epb(1, 2**64 - 1, 33, 1500, obsolete=True),
                 Spb(42), Unknown(0x0BAD, b"custom"), Isb(0, 7, 100, 3), Epb(0, 0, 0, 0))),
        Section(">", (Idb(276, 262144, tsresol=255, tsoffset=2**63 - 1),),
                (Epb(0, 2**63, 17, 2**32 - 1, extra=((1, b"a comment"),)), Idb(1, 96, tsresol=0),
                 Epb(1, 2**32, 96, 96, flags=2))),
    ))


def crafted_pcap(order: str, nano: bool) -> PcapFile:
    recs = (PcapRecord(0, 0, 0, 0, 0), PcapRecord(2**32 - 1, 999_999_999 if nano else 999_999, 60, 2**32 - 1, 60),
            PcapRecord(2**31, 10**9, 77, 77, 77))
    return PcapFile(order, nano, 2, 4, -3600, 0, 65535, 1, recs)


@pytest.mark.parametrize("kind", ["pcap-le-us", "pcap-be-ns", "pcapng"])
def test_truncation_at_every_offset(kind: str) -> None:
    if kind == "pcapng":
        r = crafted_pcapng()
        data, ends = r.data, r.ends
        full = r.records
        assert len(full) == 6 and read_outcome(data).error is None
    else:
        spec = crafted_pcap("<" if "le" in kind else ">", kind.endswith("ns"))
        data = spec.build()
        want, _ = spec.expected()
        ends = {24}
        pos = 24
        for rec in spec.records:
            pos += 16 + rec.caplen
            ends.add(pos)
    for cut in range(len(data) + 1):
        out = read_outcome(data[:cut])
        assert_clean(out, data)
        if kind == "pcapng":
            check_exact(Rendered(b"", [b for b in r.blocks if b[1] <= cut]), out)
        else:
            n = sum(1 for e in ends if 24 < e <= cut)
            assert [(x.timestamp_ns, x.data, x.wire_len, x.linktype) for x in out.records] == want[:n]
        assert (out.error is None) == (cut in ends), (cut, out.error)


# --- memory: a huge declared length is never allocated ---------------------------------------------------
def pcap_declaring(caplen: int, snaplen: int) -> bytes:
    return struct.pack("<IHHiIII", PCAP_MAGIC[False], 2, 4, 0, 0, snaplen, 1) + struct.pack("<IIII", 1, 0, caplen,
                                                                                            caplen) + b"x" * 100


def pcapng_declaring(total: int | None = None, caplen: int | None = None, option_len: int | None = None) -> bytes:
    o = "<"
    shb = block(o, SHB, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    opt = b"" if option_len is None else struct.pack(o + "HH", 2, option_len) + b"eth0"
    idb = block(o, IDB, struct.pack(o + "HHI", 1, 0, 65535) + opt)
    epb = block(o, EPB, struct.pack(o + "IIIII", 0, 0, 1, 60 if caplen is None else caplen, 60) + bytes(60))
    if total is not None:
        epb = epb[:4] + struct.pack(o + "I", total) + epb[8:]
    return shb + idb + epb


HUGE = {
    "pcap caplen 2^32-1": pcap_declaring(2**32 - 1, 2**32 - 1),
    "pcap caplen 2^31, snaplen 2^31": pcap_declaring(2**31, 2**31),
    "pcap caplen 16 MiB + 1": pcap_declaring(CAPLEN_CEILING + 1, 2**32 - 1),
    "pcap caplen 16 MiB (allowed, file short)": pcap_declaring(CAPLEN_CEILING, 2**32 - 1),
    "pcapng block 2^32-4": pcapng_declaring(total=2**32 - 4),
    "pcapng block 2^31": pcapng_declaring(total=2**31),
    "pcapng block 16 MiB + 4": pcapng_declaring(total=MAX_BLOCK_SIZE + 4),
    "pcapng block 16 MiB (allowed, file short)": pcapng_declaring(total=MAX_BLOCK_SIZE),
    "pcapng caplen 2^32-1": pcapng_declaring(caplen=2**32 - 1),
    "pcapng option length 65535": pcapng_declaring(option_len=65535),
}


def read_measured(path: Path) -> tuple[Outcome, int]:
    """Read ``path`` to its end or its error, and the peak of memory allocated meanwhile (bytes)."""
    tracemalloc.start()
    try:
        out = read_outcome(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


@pytest.mark.parametrize("name", list(HUGE))
def test_huge_declared_lengths_are_not_allocated(tmp_path: Path, name: str) -> None:
    """Read from a real file (a buffered reader allocates what read(n) asks for, whatever the file holds):
    a length above the format's limit is refused before any allocation, and the largest legal one on a
    short file costs at most that limit (16 MiB), never the 4 GiB a 32-bit field can say."""
    path = tmp_path / "huge"
    path.write_bytes(HUGE[name])
    out, peak = read_measured(path)
    assert out.error is not None and out.records == []
    assert "byte offset" in str(out.error)
    budget = MAX_BLOCK_SIZE + (1 << 20) if "allowed" in name else 1 << 20
    assert peak <= budget, f"{name}: {peak} bytes allocated"


@settings(FUZZ, max_examples=40)
@given(st.sampled_from(["pcap", "pcapng-total", "pcapng-caplen"]),
       extremes(MAX_BLOCK_SIZE + 4, 2**31, 2**32 - 4, 2**32 - 1, lo=MAX_BLOCK_SIZE + 4))
def test_huge_lengths_fuzzed_stay_small(scratch: Path, kind: str, length: int) -> None:
    data = {"pcap": lambda: pcap_declaring(length, 2**32 - 1),
            "pcapng-total": lambda: pcapng_declaring(total=length & ~3),
            "pcapng-caplen": lambda: pcapng_declaring(caplen=length)}[kind]()
    path = scratch / "huge-fuzzed"
    path.write_bytes(data)
    out, peak = read_measured(path)
    assert out.error is not None and out.records == []
    assert peak <= 1 << 20, f"{kind} {length}: {peak} bytes allocated"


# --- the API at the boundary ----------------------------------------------------------------------------
class TextOnly:
    """A file object opened in text mode by mistake."""

    name = "text.pcap"

    def read(self, n: int = -1) -> str:
        return "\u00d4\u00c3\u00b2\u00a1"[: max(n, 0)]


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        (None, TypeError, "a savefile source must be a path, '-' or a binary file object, not NoneType"),
        (3, TypeError, "not int"),
        (b"/tmp/x.pcap", TypeError, "not bytes"),
        ("", AfPacketError, "cannot open"),
        ("/nonexistent/x.pcap", AfPacketError, "cannot open /nonexistent/x.pcap"),
        ("/", AfPacketError, "cannot open /"),
        ("/dev/null", AfPacketError, "empty file"),
        (TextOnly(), TypeError, "binary"),
    ],
    ids=["None", "int", "bytes path", "empty path", "missing", "directory", "empty", "text mode"],
)
def test_open_reader_refuses_what_it_cannot_read(source: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)), open_reader(source) as reader:  # type: ignore[arg-type]
        list(reader)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("how", ["close() first", "close() mid-iteration", "file object closed by its owner"])
def test_reading_a_closed_reader_is_a_savefile_error(tmp_path: Path, kind: str, how: str) -> None:
    """Python says ValueError ('read of closed file'); the reader's family says SavefileError."""
    path = tmp_path / f"two.{kind}"
    path.write_bytes(crafted_pcap("<", False).build() if kind == "pcap" else crafted_pcapng().data)
    if how == "file object closed by its owner":
        f = open(path, "rb")  # noqa: SIM115 - closed under the reader on purpose
        reader = open_reader(f)
        f.close()
        it = iter(reader)
    else:
        reader = open_reader(str(path))
        it = iter(reader)
        if how == "close() mid-iteration":
            next(it)
        reader.close()
    with pytest.raises(AfPacketError, match=r"cannot read: read of closed file at byte offset \d+"):
        list(it)


# --- `afpacket read` of the same files ----------------------------------------------------------------------
#: Printing options whose output is one line per record (the hex and ASCII dumps are not).
LINE_OPTIONS = [[], ["-tt"], ["-tttt"], ["-ttt"], ["-ttttt"], ["--time-stamp-precision=nano"], ["-#"], ["-e"],
                ["-q"], ["-t", "-#", "--time-stamp-precision=nano"]]


def check_cli(path: Path, out: Outcome, status: int, stdout: str, stderr: str) -> None:
    """One line per record (continuation lines, such as the hex dump tcpdump adds for a protocol it does
    not know, start with a tab), then (on an error) exactly one `afpacket:` line naming it; never a
    traceback."""
    assert "Traceback" not in stderr and "Traceback" not in stdout
    lines = [line for line in stdout.splitlines() if not line.startswith("\t")]
    assert len(lines) == len(out.records), (stdout, out)
    errors = [line for line in stderr.splitlines() if line.startswith("afpacket:")]
    if out.error is None:
        assert status == 0, stderr
        assert errors == []
        assert stderr.startswith(f"reading from file {path}, link-type ")
    else:
        assert status == 1, stderr
        assert errors == [f"afpacket: {out.error}"]
        assert stderr.splitlines()[-1] == errors[0]


@settings(FUZZ, max_examples=120)
@given(st.one_of(SECTIONS.map(lambda s: render(s).data),
                 st.tuples(SECTIONS, DAMAGE).map(lambda t: damage(render(t[0]), t[1])[0]),
                 pcap_files().map(PcapFile.build)),
       st.sampled_from(LINE_OPTIONS))
def test_read_command_prints_records_then_one_error_line(scratch: Path, data: bytes, options: list[str]) -> None:
    path = scratch / "fuzzed.pcapng"
    path.write_bytes(data)
    out = tally(read_outcome(str(path)))
    with time_limit(LIMIT):
        result = CliRunner().invoke(main, ["read", *options, str(path)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    check_cli(path, out, result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize(("snaplen", "linktype"), [(0, 1), (65535, 1), (2**31 - 1, 1), (2**31, 1), (2**32 - 1, 1),
                                                (0, 249), (2**32 - 1, 279), (0, 231)])
def test_read_reports_the_snapshot_length_tcpdump_reports(tmp_path: Path, snaplen: int, linktype: int) -> None:
    """A header snaplen of 0 or above INT_MAX is reported as the link type's maximum, as libpcap does."""
    path = tmp_path / "snap.pcap"
    path.write_bytes(PcapFile("<", False, 2, 4, 0, 0, snaplen, linktype, (PcapRecord(1, 0, 20, 20, 20),)).build())
    theirs = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True, text=True, timeout=60)
    ours = CliRunner().invoke(main, ["read", str(path)])
    said = re.search(r"snapshot length (\d+)", theirs.stderr)
    assert said is not None, theirs.stderr
    assert f"snapshot length {said.group(1)}" in ours.stderr.splitlines()[0], (ours.stderr, theirs.stderr)


SUBPROCESS_FILES = {
    "pcap cut inside a record": crafted_pcap("<", False).build()[:-10],
    "pcap big-endian ns, extreme seconds": crafted_pcap(">", True).build(),
    "pcap caplen 2^32-1": pcap_declaring(2**32 - 1, 2**32 - 1),
    "pcapng both byte orders, extreme time stamps": crafted_pcapng().data,
    "pcapng trailer mismatch": crafted_pcapng().data[:-4] + b"\x00\x00\x00\x01",
    "pcapng zero-length block": crafted_pcapng().data + struct.pack(">II", 6, 0),
    "pcapng option overruns its block": pcapng_declaring(option_len=200),
}


@pytest.mark.parametrize("name", list(SUBPROCESS_FILES))
def test_read_command_as_a_user_runs_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / "crafted.pcapng"
    data = SUBPROCESS_FILES[name]
    path.write_bytes(data)
    out = read_outcome(str(path))
    r = subprocess.run([*AFPACKET, "read", str(path)], capture_output=True, text=True, timeout=60,
                       encoding="latin-1")
    check_cli(path, out, r.returncode, r.stdout, r.stderr)
    if "extreme" in name:
        assert len(r.stdout.splitlines()) >= 3

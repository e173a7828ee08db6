"""Property tests: a reader given a cut-off or damaged file yields only records that were really in it,
and fails, if it fails, with SavefileError and nothing else."""

from __future__ import annotations

import io
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from afpacket import abi
from afpacket.errors import SavefileError
from afpacket.savefile import PcapngWriter, PcapWriter, Record, open_reader

T0 = 1_700_000_000_123_456_789


def _frames() -> list[bytes]:
    return [bytes((i * 7 + k) & 0xFF for k in range(14 + i * 5)) for i in range(8)]


def _pcap(nanosecond: bool) -> tuple[bytes, list[int]]:
    """The file, and the offset just past each record (unbuffered, so each write lands at once)."""
    buf = io.BytesIO()
    ends = []
    with PcapWriter(buf, nanosecond=nanosecond, unbuffered=True) as w:
        for i, f in enumerate(_frames()):
            w.write(T0 + i * 1001, f, len(f) + i)
            ends.append(buf.tell())
    return buf.getvalue(), ends


def _pcapng() -> tuple[bytes, list[int]]:
    buf = io.BytesIO()
    ends = []
    with PcapngWriter(buf, unbuffered=True) as w:
        w.add_interface("a")
        w.add_interface("b", 113, 128, tsresol=6)
        for i, f in enumerate(_frames()):
            w.write(T0 + i * 1001, f, len(f) + i, interface_id=i % 2, pkttype=abi.PACKET_HOST if i % 3 else None)
            ends.append(buf.tell())
        w.set_interface_stats(0, 5, 1)
    return buf.getvalue(), ends


def _block_ends(data: bytes) -> set[int]:
    """Offsets where a pcapng block ends (where a cut leaves a well-formed, shorter file)."""
    ends, pos = set(), 0
    while pos < len(data):
        pos += struct.unpack_from("<I", data, pos + 4)[0]
        ends.add(pos)
    return ends


_BUILT = {"pcap-us": _pcap(False), "pcap-ns": _pcap(True), "pcapng": _pcapng()}
FILES = {name: data for name, (data, _) in _BUILT.items()}
RECORD_ENDS = {name: ends for name, (_, ends) in _BUILT.items()}
CLEAN_CUTS = {
    "pcap-us": {24, *RECORD_ENDS["pcap-us"]},
    "pcap-ns": {24, *RECORD_ENDS["pcap-ns"]},
    "pcapng": _block_ends(FILES["pcapng"]),
}


def _read(data: bytes) -> tuple[list[Record], SavefileError | None]:
    got: list[Record] = []
    try:
        with open_reader(io.BytesIO(data)) as r:
            for rec in r:
                got.append(rec)
    except SavefileError as e:
        return got, e
    return got, None


FULL = {name: _read(data)[0] for name, data in FILES.items()}


def _key(r: Record) -> tuple[int, bytes, int, int]:
    return (r.timestamp_ns, r.data, r.wire_len, r.interface_id)


def test_the_intact_files_read_back_completely() -> None:
    for name, data in FILES.items():
        recs, err = _read(data)
        assert err is None and len(recs) == 8, name
        assert [r.data for r in recs] == _frames()


def test_truncation_at_every_offset_yields_the_whole_records_before_it() -> None:
    for name, data in FILES.items():
        for cut in range(len(data)):
            _check_cut(name, cut)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(FILES)), cut=st.integers(min_value=0))
def test_truncation_yields_a_prefix_then_savefile_error(name: str, cut: int) -> None:
    _check_cut(name, cut % len(FILES[name]))


def _check_cut(name: str, cut: int) -> None:
    data = FILES[name]
    recs, err = _read(data[:cut])
    full = FULL[name]
    # Exactly the records that lie wholly before the cut, in order: none past it, none lost before it.
    whole = sum(1 for end in RECORD_ENDS[name] if end <= cut)
    assert [_key(r) for r in recs] == [_key(r) for r in full[:whole]]
    if cut in CLEAN_CUTS[name]:
        assert err is None
    else:
        assert err is not None and "byte offset" in str(err)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(FILES)),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), min_size=1,
                   max_size=8),
)
def test_corruption_never_raises_anything_but_savefile_error(name: str, edits: list[tuple[int, int]]) -> None:
    data = bytearray(FILES[name])
    for pos, value in edits:
        data[pos % len(data)] = value
    recs, _err = _read(bytes(data))
    total = sum(r.caplen for r in recs)
    assert total <= len(data)
    for r in recs:
        assert bytes(r.data) in data  # every yielded packet is bytes that are in the file
        assert r.timestamp_ns >= 0 and r.wire_len >= 0


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(max_size=200), magic=st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a", b""]))
def test_garbage_after_a_magic_never_raises_anything_else(junk: bytes, magic: bytes) -> None:
    _read(magic + junk)


def test_pcapng_trailer_mismatch_is_reported_at_the_block() -> None:
    data = bytearray(FILES["pcapng"])
    recs, err = _read(bytes(data[:-4]) + struct.pack("<I", 12345))  # the last block is the ISB
    assert len(recs) == 8
    assert err is not None and "trailing length 12345 does not match" in str(err)

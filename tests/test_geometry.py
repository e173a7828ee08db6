"""Ring geometry: derived layouts satisfy the kernel's rules; bad ones name the rule and a fix."""

from __future__ import annotations

import pytest

from afpacket import RingGeometry, RingGeometryError, abi
from afpacket.geometry import PAGE_SIZE
from afpacket.ring.layout import layout


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("buffer_size", [64 << 10, 1 << 20, 4 << 20, 64 << 20])
@pytest.mark.parametrize("snaplen", [64, 1518, 9000, 65535, 262144])
def test_derived_capture_geometry_obeys_kernel_rules(version: int, buffer_size: int, snaplen: int) -> None:
    g = RingGeometry.for_capture(version, buffer_size, snaplen, mtu=1500)
    assert g.block_size % PAGE_SIZE == 0 and g.block_size & (g.block_size - 1) == 0
    assert g.frame_size % abi.TPACKET_ALIGNMENT == 0
    assert g.frame_size >= layout(version).hdrlen
    assert g.frame_nr == g.frames_per_block * g.block_nr
    assert g.block_nr >= 2
    if version != 3:
        # frames hold min(snaplen, MTU + link overhead) bytes after the header room
        assert g.frame_size >= min(snaplen, 1518) + layout(version).hdrlen


def test_v3_block_timeout_clamped_and_rxhash_requested() -> None:
    g = RingGeometry.for_capture(3, block_timeout_ms=100000, rxhash=True)
    assert g.block_timeout_ms == 65535
    assert g.feature_req_word == abi.TP_FT_REQ_FILL_RXHASH
    assert len(g.request()) == abi.TPACKET_REQ3.size
    assert len(RingGeometry.for_capture(2).request()) == abi.TPACKET_REQ.size


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(block_size=5000, block_nr=4, frame_size=2048, frame_nr=8), ["page size", "use 8192"]),
        (dict(block_size=12288, block_nr=4, frame_size=2048, frame_nr=24), ["power of two", "16384"]),
        (dict(block_size=4096, block_nr=4, frame_size=2001, frame_nr=8), ["TPACKET_ALIGNMENT", "use 2016"]),
        (dict(block_size=4096, block_nr=4, frame_size=32, frame_nr=512), ["smaller than the TPACKET_V2 header"]),
        (dict(block_size=4096, block_nr=4, frame_size=8192, frame_nr=4), ["larger than the block", "8192"]),
        (dict(block_size=4096, block_nr=4, frame_size=2048, frame_nr=7), ["must equal", "= 8"]),
        (dict(block_size=4096, block_nr=0, frame_size=2048, frame_nr=0), ["block count must be positive"]),
    ],
)
def test_invalid_geometry_names_the_rule(kwargs: dict[str, int], words: list[str]) -> None:
    g = RingGeometry(version=2, **kwargs)
    with pytest.raises(RingGeometryError) as exc:
        g.validate()
    for w in words:
        assert w in str(exc.value)


def test_fix_suggested_in_message_is_accepted() -> None:
    with pytest.raises(RingGeometryError, match="use 2016"):
        RingGeometry(version=2, block_size=4096, block_nr=4, frame_size=2001, frame_nr=8).validate()
    RingGeometry(version=2, block_size=4096, block_nr=4, frame_size=2016, frame_nr=8).validate()


def test_v3_tx_rejects_timeout_and_bad_inputs() -> None:
    with pytest.raises(RingGeometryError, match="V3 TX ring"):
        RingGeometry(version=3, block_size=4096, block_nr=1, frame_size=2048, frame_nr=2, block_timeout_ms=5,
                     tx=True).validate()
    with pytest.raises(RingGeometryError, match="version must be 1, 2 or 3"):
        RingGeometry.for_capture(4)
    with pytest.raises(RingGeometryError, match="snaplen must be positive"):
        RingGeometry.for_capture(3, snaplen=0)
    with pytest.raises(RingGeometryError, match="multiple of TPACKET_ALIGNMENT"):
        RingGeometry.for_transmit(2, frame_size=1000)


def test_shrunk_keeps_rules_and_stops() -> None:
    g = RingGeometry.for_capture(3, 64 << 20)
    seen = 0
    while (s := g.shrunk()) is not None:
        s.validate()
        assert s.block_nr < g.block_nr
        g = s
        seen += 1
    assert seen > 0 and g.block_nr >= 2

"""The struct layouts and constants in afpacket.abi, checked against the system's linux/if_packet.h."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from afpacket import abi
from afpacket.ring.layout import BLOCK, LAYOUTS, FrameLayout

# (C expression, value afpacket uses)
CHECKS: list[tuple[str, int]] = [
    ("sizeof(struct tpacket_hdr)", abi.TPACKET_HDR.size),
    ("sizeof(struct tpacket2_hdr)", abi.TPACKET2_HDR.size),
    ("sizeof(struct tpacket3_hdr)", abi.TPACKET3_HDR.size),
    ("sizeof(struct tpacket_block_desc)", abi.TPACKET_BLOCK_DESC.size),
    ("sizeof(struct tpacket_req)", abi.TPACKET_REQ.size),
    ("sizeof(struct tpacket_req3)", abi.TPACKET_REQ3.size),
    ("sizeof(struct sockaddr_ll)", abi.SOCKADDR_LL.size),
    ("sizeof(struct tpacket_stats)", abi.TPACKET_STATS.size),
    ("sizeof(struct tpacket_stats_v3)", abi.TPACKET_STATS_V3.size),
    ("sizeof(struct tpacket_auxdata)", abi.TPACKET_AUXDATA.size),
    ("sizeof(struct packet_mreq)", abi.PACKET_MREQ.size),
    ("sizeof(struct sock_fprog)", abi.SOCK_FPROG.size),
    ("sizeof(struct sock_filter)", abi.SOCK_FILTER.size),
    ("TPACKET_HDRLEN", abi.TPACKET_HDRLEN),
    ("TPACKET2_HDRLEN", abi.TPACKET2_HDRLEN),
    ("TPACKET3_HDRLEN", abi.TPACKET3_HDRLEN),
    ("TPACKET_ALIGNMENT", abi.TPACKET_ALIGNMENT),
    # the block descriptor (V3)
    ("sizeof(struct tpacket_block_desc)", BLOCK.size),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.block_status)", BLOCK.off_status),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.num_pkts)", BLOCK.off_num_pkts),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.offset_to_first_pkt)", BLOCK.off_first_pkt),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.blk_len)", BLOCK.off_blk_len),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.seq_num)", BLOCK.off_seq_num),
]

CONSTANTS = [
    "PACKET_ADD_MEMBERSHIP", "PACKET_DROP_MEMBERSHIP", "PACKET_RX_RING", "PACKET_STATISTICS",
    "PACKET_COPY_THRESH", "PACKET_AUXDATA", "PACKET_VERSION", "PACKET_HDRLEN", "PACKET_RESERVE",
    "PACKET_TX_RING", "PACKET_LOSS", "PACKET_VNET_HDR", "PACKET_TX_TIMESTAMP", "PACKET_TIMESTAMP",
    "PACKET_FANOUT", "PACKET_TX_HAS_OFF", "PACKET_QDISC_BYPASS", "PACKET_ROLLOVER_STATS",
    "PACKET_FANOUT_DATA", "PACKET_IGNORE_OUTGOING", "PACKET_MR_PROMISC", "PACKET_FANOUT_HASH",
    "PACKET_FANOUT_LB", "PACKET_FANOUT_CPU", "PACKET_FANOUT_ROLLOVER", "PACKET_FANOUT_RND",
    "PACKET_FANOUT_QM", "PACKET_FANOUT_CBPF", "PACKET_FANOUT_EBPF", "PACKET_FANOUT_FLAG_ROLLOVER",
    "PACKET_FANOUT_FLAG_UNIQUEID", "PACKET_FANOUT_FLAG_DEFRAG", "PACKET_HOST", "PACKET_BROADCAST",
    "PACKET_MULTICAST", "PACKET_OTHERHOST", "PACKET_OUTGOING", "TPACKET_V1", "TPACKET_V2", "TPACKET_V3",
    "TP_STATUS_KERNEL", "TP_STATUS_USER", "TP_STATUS_COPY", "TP_STATUS_LOSING", "TP_STATUS_CSUMNOTREADY",
    "TP_STATUS_VLAN_VALID", "TP_STATUS_BLK_TMO", "TP_STATUS_VLAN_TPID_VALID", "TP_STATUS_CSUM_VALID",
    "TP_STATUS_AVAILABLE", "TP_STATUS_SEND_REQUEST", "TP_STATUS_SENDING", "TP_STATUS_WRONG_FORMAT",
    "TP_STATUS_TS_SOFTWARE", "TP_STATUS_TS_RAW_HARDWARE", "TP_FT_REQ_FILL_RXHASH",
]


_STRUCT = {1: "struct tpacket_hdr", 2: "struct tpacket2_hdr", 3: "struct tpacket3_hdr"}
_FIELDS = {  # FrameLayout attribute -> C member, per version (None: the version has no such field)
    "off_status": ("tp_status", "tp_status", "tp_status"),
    "off_len": ("tp_len", "tp_len", "tp_len"),
    "off_snaplen": ("tp_snaplen", "tp_snaplen", "tp_snaplen"),
    "off_mac": ("tp_mac", "tp_mac", "tp_mac"),
    "off_net": ("tp_net", "tp_net", "tp_net"),
    "off_sec": ("tp_sec", "tp_sec", "tp_sec"),
    "off_frac": ("tp_usec", "tp_nsec", "tp_nsec"),
    "off_vlan_tci": (None, "tp_vlan_tci", "hv1.tp_vlan_tci"),
    "off_vlan_tpid": (None, "tp_vlan_tpid", "hv1.tp_vlan_tpid"),
    "off_rxhash": (None, None, "hv1.tp_rxhash"),
    "off_next": (None, None, "tp_next_offset"),
}


def _layout_checks(lay: FrameLayout) -> list[tuple[str, int]]:
    out = [(f"sizeof({_STRUCT[lay.version]})", lay.header.size)]
    out.append((("TPACKET_HDRLEN", "TPACKET2_HDRLEN", "TPACKET3_HDRLEN")[lay.version - 1], lay.hdrlen))
    out.append((("TPACKET_V1", "TPACKET_V2", "TPACKET_V3")[lay.version - 1], lay.kernel_enum))
    for attr, members in _FIELDS.items():
        member = members[lay.version - 1]
        if member is None:
            assert getattr(lay, attr) == -1, (lay.version, attr)
        else:
            out.append((f"offsetof({_STRUCT[lay.version]}, {member})", getattr(lay, attr)))
    return out


CHECKS += [c for lay in LAYOUTS.values() for c in _layout_checks(lay)]


@pytest.fixture(scope="module")
def c_values(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.fail("gcc is needed to check the ABI against linux/if_packet.h: apt-get install gcc")
    exprs = [e for e, _ in CHECKS] + CONSTANTS
    body = "\n".join(f'    printf("%s=%llu\\n", "{e}", (unsigned long long)({e}));' for e in exprs)
    src = (
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/filter.h>\n#include <linux/if_packet.h>\n"
        f"int main(void) {{\n{body}\n    return 0;\n}}\n"
    )
    d: Path = tmp_path_factory.mktemp("abi")
    (d / "abi.c").write_text(src)
    subprocess.run([cc, "-o", str(d / "abi"), str(d / "abi.c")], check=True)
    out = subprocess.run([str(d / "abi")], check=True, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in (line.split("=", 1) for line in out.splitlines())}


@pytest.mark.parametrize(("expr", "ours"), CHECKS, ids=[c[0] for c in CHECKS])
def test_layout_matches_kernel_header(c_values: dict[str, int], expr: str, ours: int) -> None:
    assert c_values[expr] == ours


@pytest.mark.parametrize("name", CONSTANTS)
def test_constant_matches_kernel_header(c_values: dict[str, int], name: str) -> None:
    assert c_values[name] == getattr(abi, name)


def test_sll_offset_is_aligned_header() -> None:
    for lay in LAYOUTS.values():
        assert lay.sll_offset == abi.tpacket_align(lay.header.size)
        assert lay.hdrlen == lay.sll_offset + abi.SOCKADDR_LL.size


def test_tx_header_words_land_on_the_fields() -> None:
    # The run of words one pack_into writes per TX frame must cover tp_status/len/snaplen/mac/net.
    for lay in LAYOUTS.values():
        buf = bytearray(lay.header.size)
        lay.tx_words.pack_into(buf, lay.tx_words_at, *lay.tx_header(1, 0x1234, 0x20))
        assert int.from_bytes(buf[lay.off_status : lay.off_status + 4], "little") == 1
        assert int.from_bytes(buf[lay.off_len : lay.off_len + 4], "little") == 0x1234
        assert int.from_bytes(buf[lay.off_snaplen : lay.off_snaplen + 4], "little") == 0x1234
        assert int.from_bytes(buf[lay.off_mac : lay.off_mac + 2], "little") == 0x20
        assert int.from_bytes(buf[lay.off_net : lay.off_net + 2], "little") == 0x20

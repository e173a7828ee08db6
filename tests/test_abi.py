"""The struct layouts and constants in afpacket.abi, checked against the system's linux/if_packet.h."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from afpacket import abi

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
    # field offsets the ring walkers read directly
    ("offsetof(struct tpacket_hdr, tp_status)", abi.OFF_STATUS[1]),
    ("offsetof(struct tpacket_hdr, tp_len)", abi.OFF_LEN[1]),
    ("offsetof(struct tpacket_hdr, tp_snaplen)", abi.OFF_SNAPLEN[1]),
    ("offsetof(struct tpacket_hdr, tp_mac)", abi.OFF_MAC[1]),
    ("offsetof(struct tpacket_hdr, tp_sec)", 20),
    ("offsetof(struct tpacket_hdr, tp_usec)", 24),
    ("offsetof(struct tpacket2_hdr, tp_status)", abi.OFF_STATUS[2]),
    ("offsetof(struct tpacket2_hdr, tp_len)", abi.OFF_LEN[2]),
    ("offsetof(struct tpacket2_hdr, tp_snaplen)", abi.OFF_SNAPLEN[2]),
    ("offsetof(struct tpacket2_hdr, tp_mac)", abi.OFF_MAC[2]),
    ("offsetof(struct tpacket2_hdr, tp_sec)", 16),
    ("offsetof(struct tpacket2_hdr, tp_nsec)", 20),
    ("offsetof(struct tpacket2_hdr, tp_vlan_tci)", 24),
    ("offsetof(struct tpacket2_hdr, tp_vlan_tpid)", 26),
    ("offsetof(struct tpacket3_hdr, tp_next_offset)", abi.V3_OFF_NEXT_OFFSET),
    ("offsetof(struct tpacket3_hdr, tp_sec)", 4),
    ("offsetof(struct tpacket3_hdr, tp_nsec)", 8),
    ("offsetof(struct tpacket3_hdr, tp_snaplen)", abi.OFF_SNAPLEN[3]),
    ("offsetof(struct tpacket3_hdr, tp_len)", abi.OFF_LEN[3]),
    ("offsetof(struct tpacket3_hdr, tp_status)", abi.OFF_STATUS[3]),
    ("offsetof(struct tpacket3_hdr, tp_mac)", abi.OFF_MAC[3]),
    ("offsetof(struct tpacket3_hdr, hv1.tp_rxhash)", 28),
    ("offsetof(struct tpacket3_hdr, hv1.tp_vlan_tci)", 32),
    ("offsetof(struct tpacket3_hdr, hv1.tp_vlan_tpid)", 36),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.block_status)", abi.BLOCK_OFF_STATUS),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.num_pkts)", abi.BLOCK_OFF_NUM_PKTS),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.offset_to_first_pkt)", abi.BLOCK_OFF_FIRST_PKT),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.seq_num)", abi.BLOCK_OFF_SEQ_NUM),
    ("offsetof(struct tpacket_block_desc, hdr.bh1.ts_last_pkt)", 40),
    ("offsetof(struct sockaddr_ll, sll_ifindex)", 4),
    ("offsetof(struct sockaddr_ll, sll_pkttype)", 10),
    ("offsetof(struct sockaddr_ll, sll_addr)", 12),
    ("offsetof(struct tpacket_auxdata, tp_vlan_tpid)", 18),
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
    for version, s in abi.HDR_STRUCT.items():
        assert abi.SLL_OFFSET[version] == abi.tpacket_align(s.size)
        assert abi.HDRLEN[version] == abi.SLL_OFFSET[version] + abi.SOCKADDR_LL.size

"""The kernel ABI of ``linux/if_packet.h``: constants and struct layouts, nothing else.

Every size and offset here is checked against the system header by ``tests/test_abi.py``, which
compiles a small C program with gcc; if this module and the kernel ever disagree, that test fails.

Layouts use native byte order and explicit padding (``=`` plus ``x`` bytes) so that they are the
same on every x86-64 and arm64 build of CPython, and so the offsets below can be read off the
format strings.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

# --- socket level and options (setsockopt(fd, SOL_PACKET, ...)) --------------------------------
SOL_PACKET: Final = 263
ETH_P_ALL: Final = 0x0003
ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_8021Q: Final = 0x8100
ETH_P_8021AD: Final = 0x88A8
ETH_P_IPV6: Final = 0x86DD

PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_DROP_MEMBERSHIP: Final = 2
PACKET_RECV_OUTPUT: Final = 3
PACKET_RX_RING: Final = 5
PACKET_STATISTICS: Final = 6
PACKET_COPY_THRESH: Final = 7
PACKET_AUXDATA: Final = 8
PACKET_ORIGDEV: Final = 9
PACKET_VERSION: Final = 10
PACKET_HDRLEN: Final = 11
PACKET_RESERVE: Final = 12
PACKET_TX_RING: Final = 13
PACKET_LOSS: Final = 14
PACKET_VNET_HDR: Final = 15
PACKET_TX_TIMESTAMP: Final = 16
PACKET_TIMESTAMP: Final = 17
PACKET_FANOUT: Final = 18
PACKET_TX_HAS_OFF: Final = 19
PACKET_QDISC_BYPASS: Final = 20
PACKET_ROLLOVER_STATS: Final = 21
PACKET_FANOUT_DATA: Final = 22
PACKET_IGNORE_OUTGOING: Final = 23

# PACKET_ADD_MEMBERSHIP types (struct packet_mreq.mr_type)
PACKET_MR_MULTICAST: Final = 0
PACKET_MR_PROMISC: Final = 1
PACKET_MR_ALLMULTI: Final = 2
PACKET_MR_UNICAST: Final = 3

# fanout modes and flags
PACKET_FANOUT_HASH: Final = 0
PACKET_FANOUT_LB: Final = 1
PACKET_FANOUT_CPU: Final = 2
PACKET_FANOUT_ROLLOVER: Final = 3
PACKET_FANOUT_RND: Final = 4
PACKET_FANOUT_QM: Final = 5
PACKET_FANOUT_CBPF: Final = 6
PACKET_FANOUT_EBPF: Final = 7
PACKET_FANOUT_FLAG_ROLLOVER: Final = 0x1000
PACKET_FANOUT_FLAG_UNIQUEID: Final = 0x2000
PACKET_FANOUT_FLAG_IGNORE_OUTGOING: Final = 0x4000
PACKET_FANOUT_FLAG_DEFRAG: Final = 0x8000

# sockaddr_ll.sll_pkttype
PACKET_HOST: Final = 0
PACKET_BROADCAST: Final = 1
PACKET_MULTICAST: Final = 2
PACKET_OTHERHOST: Final = 3
PACKET_OUTGOING: Final = 4
PACKET_LOOPBACK: Final = 5
PACKET_USER: Final = 6
PACKET_KERNEL: Final = 7

PKTTYPE_NAMES: Final = {
    PACKET_HOST: "host",
    PACKET_BROADCAST: "broadcast",
    PACKET_MULTICAST: "multicast",
    PACKET_OTHERHOST: "otherhost",
    PACKET_OUTGOING: "outgoing",
    PACKET_LOOPBACK: "loopback",
    PACKET_USER: "user",
    PACKET_KERNEL: "kernel",
}

# enum tpacket_versions
TPACKET_V1: Final = 0
TPACKET_V2: Final = 1
TPACKET_V3: Final = 2

# --- frame status words --------------------------------------------------------------------------
# RX (tp_status of a V1/V2 frame, block_status of a V3 block, flags of a V3 packet)
TP_STATUS_KERNEL: Final = 0
TP_STATUS_USER: Final = 1 << 0
TP_STATUS_COPY: Final = 1 << 1
TP_STATUS_LOSING: Final = 1 << 2
TP_STATUS_CSUMNOTREADY: Final = 1 << 3
TP_STATUS_VLAN_VALID: Final = 1 << 4
TP_STATUS_BLK_TMO: Final = 1 << 5
TP_STATUS_VLAN_TPID_VALID: Final = 1 << 6
TP_STATUS_CSUM_VALID: Final = 1 << 7
TP_STATUS_GSO_TCP: Final = 1 << 8
# TX
TP_STATUS_AVAILABLE: Final = 0
TP_STATUS_SEND_REQUEST: Final = 1 << 0
TP_STATUS_SENDING: Final = 1 << 1
TP_STATUS_WRONG_FORMAT: Final = 1 << 2
# both: which clock stamped the frame
TP_STATUS_TS_SOFTWARE: Final = 1 << 29
TP_STATUS_TS_SYS_HARDWARE: Final = 1 << 30
TP_STATUS_TS_RAW_HARDWARE: Final = 1 << 31

TP_FT_REQ_FILL_RXHASH: Final = 0x1

# SOF_TIMESTAMPING_* values accepted by PACKET_TIMESTAMP (linux/net_tstamp.h)
SOF_TIMESTAMPING_TX_SOFTWARE: Final = 1 << 1
SOF_TIMESTAMPING_SOFTWARE: Final = 1 << 4
SOF_TIMESTAMPING_RAW_HARDWARE: Final = 1 << 6

TPACKET_ALIGNMENT: Final = 16


def tpacket_align(x: int) -> int:
    """TPACKET_ALIGN(x): round up to the 16-byte alignment the kernel uses inside a frame."""
    return (x + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)


# --- struct layouts ------------------------------------------------------------------------------
# struct tpacket_hdr (V1). tp_status is an unsigned long: 8 bytes on 64-bit, so V1 is not
# "64-bit clean" — a 32-bit process on a 64-bit kernel would disagree with the kernel.
#   tp_status(L) tp_len(I) tp_snaplen(I) tp_mac(H) tp_net(H) tp_sec(I) tp_usec(I) [pad 4]
TPACKET_HDR: Final = struct.Struct("=QIIHHII4x")
# struct tpacket2_hdr
#   tp_status tp_len tp_snaplen tp_mac tp_net tp_sec tp_nsec tp_vlan_tci tp_vlan_tpid pad[4]
TPACKET2_HDR: Final = struct.Struct("=IIIHHIIHH4x")
# struct tpacket3_hdr
#   tp_next_offset tp_sec tp_nsec tp_snaplen tp_len tp_status tp_mac tp_net
#   hv1: tp_rxhash tp_vlan_tci(u32) tp_vlan_tpid(u16) pad(u16); pad[8]
TPACKET3_HDR: Final = struct.Struct("=IIIIIIHHIIH2x8x")
# struct tpacket_block_desc: version, offset_to_priv, then struct tpacket_hdr_v1:
#   block_status num_pkts offset_to_first_pkt blk_len seq_num(u64)
#   ts_first_pkt(sec, usec|nsec) ts_last_pkt(sec, usec|nsec)
TPACKET_BLOCK_DESC: Final = struct.Struct("=IIIIIIQIIII")
# struct tpacket_req and tpacket_req3
TPACKET_REQ: Final = struct.Struct("=IIII")
TPACKET_REQ3: Final = struct.Struct("=IIIIIII")
# struct sockaddr_ll: family(u16) protocol(be16, stored raw here) ifindex(i32) hatype(u16)
#   pkttype(u8) halen(u8) addr[8]
SOCKADDR_LL: Final = struct.Struct("=HHiHBB8s")
# struct tpacket_stats / tpacket_stats_v3
TPACKET_STATS: Final = struct.Struct("=II")
TPACKET_STATS_V3: Final = struct.Struct("=III")
# struct tpacket_auxdata: tp_status tp_len tp_snaplen tp_mac tp_net tp_vlan_tci tp_vlan_tpid
TPACKET_AUXDATA: Final = struct.Struct("=IIIHHHH")
# struct packet_mreq: mr_ifindex(int) mr_type(u16) mr_alen(u16) mr_address[8]
PACKET_MREQ: Final = struct.Struct("=iHH8s")
# struct sock_fprog on 64-bit: len(u16), pad, filter pointer
SOCK_FPROG: Final = struct.Struct("=H6xQ")
# struct sock_filter: code(u16) jt(u8) jf(u8) k(u32)
SOCK_FILTER: Final = struct.Struct("=HBBI")

# Field offsets inside the frame headers, the header sizes and the TX header words live in one
# object per version: afpacket.ring.layout.FrameLayout (checked against the C header too).
TPACKET_HDRLEN: Final = tpacket_align(TPACKET_HDR.size) + SOCKADDR_LL.size
TPACKET2_HDRLEN: Final = tpacket_align(TPACKET2_HDR.size) + SOCKADDR_LL.size
TPACKET3_HDRLEN: Final = tpacket_align(TPACKET3_HDR.size) + SOCKADDR_LL.size
BLOCK_DESC_SIZE: Final = TPACKET_BLOCK_DESC.size

# --- link layer ----------------------------------------------------------------------------------
ARPHRD_ETHER: Final = 1
ARPHRD_LOOPBACK: Final = 772
ARPHRD_NONE: Final = 0xFFFE
ETH_HLEN: Final = 14
VLAN_HLEN: Final = 4

AF_PACKET: Final = socket.AF_PACKET

# --- time stamping (linux/net_tstamp.h, linux/sockios.h, linux/ethtool.h) -------------------------
SOF_TIMESTAMPING_TX_HARDWARE: Final = 1 << 0
SOF_TIMESTAMPING_RX_HARDWARE: Final = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE: Final = 1 << 3
SOF_TIMESTAMPING_SYS_HARDWARE: Final = 1 << 5  # deprecated: kernels since 3.17 ignore it
SO_TIMESTAMPING: Final = 37  # SOL_SOCKET option (SO_TIMESTAMPING_OLD on 64-bit)
SIOCETHTOOL: Final = 0x8946
SIOCSHWTSTAMP: Final = 0x89B0
SIOCGHWTSTAMP: Final = 0x89B1
ETHTOOL_GET_TS_INFO: Final = 0x41
HWTSTAMP_TX_OFF: Final = 0
HWTSTAMP_FILTER_NONE: Final = 0
HWTSTAMP_FILTER_ALL: Final = 1
# struct hwtstamp_config: flags(int) tx_type(int) rx_filter(int)
HWTSTAMP_CONFIG: Final = struct.Struct("=iii")
# struct ethtool_ts_info: cmd so_timestamping phc_index(s32) tx_types tx_reserved[3] rx_filters rx_reserved[3]
ETHTOOL_TS_INFO: Final = struct.Struct("=IIiI12xI12x")

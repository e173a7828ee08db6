"""NTP (port 123) as tcpdump -n prints it: ``NTPv4, Client, length 48``; with -v the leap indicator, stratum,
poll and precision, root delay and dispersion, reference id, the four timestamps (NTP seconds with the UTC
date) and the originator's offsets, or a control message's header.
"""

from __future__ import annotations

import time

from .app_common import Stop, Truncated, finish, ipv4, printn, u8, u16, u32

_MODES = (
    "unspecified", "symmetric active", "symmetric passive", "Client", "Server", "Broadcast",
    "Control Message", "Reserved",
)
_LEAP = {0x00: "", 0x40: "+1s", 0x80: "-1s", 0xC0: "clock unsynchronized"}
_FMAXINT = 4294967296.0
_JAN_1970 = 2208988800  # NTP era 0 starts in 1900


def _timestamp(data: bytes, off: int) -> str:
    seconds, fraction = u32(data, off, off + 8), u32(data, off + 4, off + 8)
    text = f"{seconds}.{int(fraction / _FMAXINT * 1000000000.0):09d}"
    if seconds:
        text += time.strftime(" (%Y-%m-%dT%H:%M:%SZ)", time.gmtime(seconds - _JAN_1970))
    return text


def _delta(data: bytes, org: int, other: int) -> str:
    # The other timestamp minus the originator's, sign and magnitude as tcpdump computes them (32-bit parts).
    ou, ouf = u32(data, org, org + 8), u32(data, org + 4, org + 8)
    if ou == 0 and ouf == 0:
        return _timestamp(data, other)
    u, uf = u32(data, other, other + 8), u32(data, other + 4, other + 8)
    if u > ou:
        negative, whole, frac = False, u - ou - (1 if ouf > uf else 0), (uf - ouf) & 0xFFFFFFFF
    elif u < ou:
        negative, whole, frac = True, ou - u - (1 if uf > ouf else 0), (ouf - uf) & 0xFFFFFFFF
    elif uf > ouf:
        negative, whole, frac = False, 0, uf - ouf
    else:
        negative, whole, frac = True, 0, ouf - uf
    return f"{'-' if negative else '+'}{whole}.{int(frac / _FMAXINT * 1000000000.0):09d}"


def _short_fixed(data: bytes, off: int) -> str:
    return f"{u16(data, off, off + 4)}.{int(u16(data, off + 2, off + 4) / 65536.0 * 1000000.0):06d}"


def _signed(b: int) -> int:
    return b - 256 if b & 0x80 else b


def _time_message(data: bytes, end: int, length: int, out: list[str]) -> None:
    if length < 48:
        out.append(" (invalid)")
        if length > end:
            raise Stop
        return
    stratum = u8(data, 1, end)
    name = {0: "unspecified", 1: "primary reference"}.get(stratum) or (
        "secondary reference" if 2 <= stratum <= 15 else "reserved"
    )
    out.append(f", Stratum {stratum} ({name})")  # printed before the poll byte is read
    poll = _signed(u8(data, 2, end))
    out.append(f", poll {poll}")
    if -32 < poll < 32:
        out.append(f" ({1 << poll}s)" if poll >= 0 else f" (1/{1 << -poll}s)")
    out.append(f", precision {_signed(u8(data, 3, end))}")
    if end < 48:
        # tcpdump checks each field before printing it; a short capture stops at the first missing one.
        _partial(data, end, stratum, out)
        return
    out.append(f"\n\tRoot Delay: {_short_fixed(data, 4)}, Root dispersion: {_short_fixed(data, 8)}, Reference-ID: ")
    if not _refid(data, end, stratum, out):
        return
    out.append(
        f"\n\t  Reference Timestamp:  {_timestamp(data, 16)}"
        f"\n\t  Originator Timestamp: {_timestamp(data, 24)}"
        f"\n\t  Receive Timestamp:    {_timestamp(data, 32)}"
        f"\n\t  Transmit Timestamp:   {_timestamp(data, 40)}"
        f"\n\t    Originator - Receive Timestamp:  {_delta(data, 24, 32)}"
        f"\n\t    Originator - Transmit Timestamp: {_delta(data, 24, 40)}"
    )
    if length in (52, 68, 72):
        out.append(f"\n\tKey id: {u32(data, 48, end)}")
        if length > 52:
            words = (length - 52) // 4
            if 52 + 4 * words > end:
                raise Stop
            out.append("\n\tAuthentication: " + "".join(f"{u32(data, 52 + 4 * k, end):08x}" for k in range(words)))
    elif length > 48:
        out.append(f"\n\t({length - 48} more bytes after the header)")


def _refid(data: bytes, end: int, stratum: int, out: list[str]) -> bool:
    # The reference id's meaning depends on the stratum; False when tcpdump prints nothing after it.
    if stratum == 0:
        out.append("(unspec)")
    elif stratum == 1:
        if printn(data, 12, 4, end, out):
            raise Stop
    elif stratum in (62, 63):
        out.append(f"{ipv4(data, 12)} {'INFO_QUERY' if stratum == 62 else 'INFO_REPLY'}")
        return False
    else:
        out.append(f"0x{u32(data, 12, end):08x}")
    return True


def _partial(data: bytes, end: int, stratum: int, out: list[str]) -> None:
    if end < 8:
        raise Stop
    out.append(f"\n\tRoot Delay: {_short_fixed(data, 4)}")
    if end < 12:
        raise Stop
    out.append(f", Root dispersion: {_short_fixed(data, 8)}")
    if end < 16:
        raise Stop
    out.append(", Reference-ID: ")
    if not _refid(data, end, stratum, out):
        return
    for off, label in ((16, "Reference Timestamp:  "), (24, "Originator Timestamp: "),
                       (32, "Receive Timestamp:    "), (40, "Transmit Timestamp:   ")):
        if end < off + 8:
            raise Stop
        out.append(f"\n\t  {label}{_timestamp(data, off)}")


def _control_message(data: bytes, end: int, length: int, out: list[str]) -> None:
    if length < 12:
        out.append(" (invalid)")
        if length > end:
            raise Stop
        return
    control = u8(data, 1, end)
    out.append(
        f", {'Response' if control & 0x80 else 'Request'}, {'Error' if control & 0x40 else 'OK'}, "
        f"{'More' if control & 0x20 else 'Last'}, OpCode={control & 0x1F}\n"
    )
    out.append(f"\tSequence={u16(data, 2, end)}")
    status = u16(data, 4, end)
    out.append(f", Status={status:#x}" if status else ", Status=0")
    out.append(f", Assoc.={u16(data, 6, end)}")
    out.append(f", Offset={u16(data, 8, end)}")
    count = u16(data, 10, end)
    out.append(f", Count={count}")
    if 12 + count > length:
        out.append(" (invalid)")
        if length > end:
            raise Stop
        return
    if count:
        if 12 + count > end:
            raise Stop
        out.append("\n\tTO-BE-DONE: data not interpreted")


def ntp_text(payload: bytes, verbose: int, length: int | None = None) -> str:
    """What tcpdump prints for an NTP message (``length`` its length on the wire, the captured length when
    not given)."""
    end = len(payload)
    if length is None:
        length = end
    out: list[str] = []
    try:
        status = u8(payload, 0, end)
        mode = status & 7
        out.append(f"NTPv{(status >> 3) & 7}, {_MODES[mode]}, length {length}")
        if verbose:
            leap = status & 0xC0
            out.append(f"\n\tLeap indicator: {_LEAP[leap]} ({leap})")
            if mode <= 5:
                _time_message(payload, end, length, out)
            elif mode == 6:
                _control_message(payload, end, length, out)
    except (Stop, Truncated) as cut:
        # ntp_print's explicit checks (ND_TCHECK_*) stop at its trunc label; its GET_ reads jump out.
        return finish(out, " [|ntp]", cut)
    return "".join(out)

"""Line-oriented TCP protocols as tcpdump -n names them: HTTP, RTSP, FTP, SMTP, WHOIS and the SSH banner.

For HTTP and RTSP tcpdump prints the protocol name after every segment with payload (``: HTTP``) and the first
line only when the segment starts with a request method or a status code (``: HTTP: GET / HTTP/1.1``), so
body continuation segments end in ``: HTTP``. With -v it prints the payload length and every text line, each
on its own tab-indented line, up to the first byte that is not printable text. FTP, SMTP and WHOIS always
print the first line. SSH prints the version banner (``: SSH: SSH-2.0-OpenSSH_9.2p1``) when a segment starts
with one and nothing otherwise; TLS and everything else print nothing.
"""

from __future__ import annotations

import re

from .app_common import Truncated, finish
from .marks import Jumped

_HTTP_METHODS = frozenset((
    "GET", "PUT", "COPY", "HEAD", "LOCK", "MOVE", "POLL", "POST", "BCOPY", "BMOVE", "MKCOL", "TRACE", "LABEL",
    "MERGE", "DELETE", "SEARCH", "UNLOCK", "REPORT", "UPDATE", "NOTIFY", "BDELETE", "CONNECT", "OPTIONS",
    "CHECKIN", "PROPFIND", "CHECKOUT", "CCM_POST", "SUBSCRIBE", "PROPPATCH", "BPROPFIND", "BPROPPATCH",
    "UNCHECKOUT", "MKACTIVITY", "MKWORKSPACE", "UNSUBSCRIBE", "RPC_CONNECT", "VERSION-CONTROL", "BASELINE-CONTROL",
))
_RTSP_METHODS = frozenset((
    "DESCRIBE", "ANNOUNCE", "GET_PARAMETER", "OPTIONS", "PAUSE", "PLAY", "RECORD", "REDIRECT", "SETUP",
    "SET_PARAMETER", "TEARDOWN",
))
_MAX_TOKEN = 128  # longest token tcpdump reads (its buffer holds 129 bytes with the NUL)
_LF, _CR = 0x0A, 0x0D
# The scans below run in the regex engine rather than byte by byte in Python (they are on every HTTP
# segment's line); each function then decides by the byte where the scan stopped, as tcpdump's loops do.
_TOKEN = re.compile(rb"[\x21-\x7e]{1,%d}( *)" % _MAX_TOKEN)  # a token and the spaces after it
_TEXT = re.compile(rb"[\x20-\x7e\t]*")
_TOKEN_END = frozenset(b" \t\r\n")


def _token(data: bytes, idx: int, n: int) -> tuple[int, bytes]:
    """The whitespace-delimited token at ``idx`` and the index after it and the spaces that follow, or
    (0, b"") when it is not one (not ASCII, not printable, empty, too long, or not all captured); ``n`` is
    the payload's length on the wire."""
    captured = len(data)
    limit = min(n, captured)
    m = _TOKEN.match(data, idx, limit)
    if m is None:
        return 0, b""
    end = m.start(1)
    if end == n:  # the token runs to the payload's end
        pass
    elif end == captured or data[end] not in _TOKEN_END:
        # the capture stopped inside it, or it goes on with a byte that is not text (or is too long)
        return 0, b""
    return m.end(), data[idx:end]


def _line(data: bytes, idx: int, n: int, prefix: str, proto: str, out: list[str]) -> int:
    """Print the text line at ``idx`` after ``prefix``; the index of the next line, or 0 when the text ends
    here (at a byte that is not text, or with no line ending within the ``n`` bytes of the payload: then the
    line is printed cut short). A line running past the captured bytes stops the packet (Truncated)."""
    captured = len(data)
    stop = _TEXT.match(data, idx, min(n, captured)).end()  # type: ignore[union-attr]
    if stop >= n:
        out.append(prefix + data[idx:stop].decode("ascii") + f" [|{proto}]")
        return 0
    if stop >= captured:
        raise Truncated
    c = data[stop]
    if c == _LF:
        out.append(prefix + data[idx:stop].decode("ascii"))
        return stop + 1
    if c == _CR:
        if stop + 1 >= n:
            return 0
        if stop + 1 >= captured:
            raise Truncated
        if data[stop + 1] != _LF:
            return 0
        out.append(prefix + data[idx:stop].decode("ascii"))
        return stop + 2
    return 0


def text_protocol(
    payload: bytes, verbose: int, proto: str, methods: frozenset[str] | None, length: int | None = None
) -> str:
    """tcpdump's printer for line-based protocols: ``methods`` None prints every segment's first line; a
    set prints only segments that start with one of those methods or whose second token is a status code.
    ``length``: the payload's length on the wire, when the capture holds less."""
    n = len(payload) if length is None else length
    out = [": " + proto.upper()]
    show = methods is None
    try:
        if methods is not None:
            idx, token = _token(payload, 0, n)
            if idx:
                show = token.decode("ascii").upper() in methods
                if not show:  # a status code as the second token (a response line)?
                    idx, token = _token(payload, idx, n)
                    show = idx != 0 and len(token) == 3 and token.isdigit()
        if show:
            if verbose:
                out.append(f", length: {n}")
                idx = 0
                while idx < n:
                    idx = _line(payload, idx, n, "\n\t", proto, out)
                    if not idx:
                        break
            else:
                _line(payload, 0, n, ": ", proto, out)
    except Truncated as cut:
        return finish(out, f" [|{proto}]", cut)
    # A line with no ending before the payload's end prints the mark in place, without jumping.
    return finish(out, f" [|{proto}]")


def http_text(payload: bytes, verbose: int, length: int | None = None) -> str:
    """``: HTTP`` and, for a request or response line, ``: GET / HTTP/1.1`` (all lines with -v)."""
    return text_protocol(payload, verbose, "http", _HTTP_METHODS, length)


def rtsp_text(payload: bytes, verbose: int, length: int | None = None) -> str:
    """``: RTSP`` and, for a request or response line, ``: PLAY rtsp://... RTSP/1.0`` (as HTTP)."""
    return text_protocol(payload, verbose, "rtsp", _RTSP_METHODS, length)


#: ssh_print_version reads every byte with GET_U_1: a byte past the capture jumps out of the packet.
_SSH_CUT = Jumped(" [|ssh]")


def ssh_text(payload: bytes, length: int | None = None) -> str:
    """``: SSH: <banner>`` for a segment that starts with a complete SSH version line, else nothing; a
    segment whose first bytes were not captured ends the line with `` [|ssh]``, as in tcpdump."""
    captured = len(payload)
    n = captured if length is None else length
    for k, want in enumerate(b"SSH-"):
        if k >= captured:
            return _SSH_CUT
        if payload[k] != want:
            return ""
    for idx in range(4, n):
        if idx >= captured:
            return _SSH_CUT
        c = payload[idx]
        if c == _CR and idx + 1 < n and idx + 1 >= captured:
            return _SSH_CUT
        if c == _LF or (c == _CR and idx + 1 < n and payload[idx + 1] == _LF):
            return ": SSH: " + payload[:idx].decode("ascii")
        if not 0x20 <= c < 0x7F:
            return ""
    return ""


__all__ = ["http_text", "rtsp_text", "ssh_text", "text_protocol"]

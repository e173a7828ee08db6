"""tcpdump's raw-data dumps: ``-x`` (hex), ``-X`` (hex and ASCII), ``-A`` (ASCII), and the hex-and-ASCII
dump it prints for a payload it cannot decode (an unknown ethertype).

Line layout, as tcpdump 4.99 prints it: each line starts with ``"\\n\\t0xOOOO: "``; bytes go in pairs
(``" 4500 0054"``), an odd last byte alone; the ``-X`` form pads the hex to 40 columns and adds two
spaces and the bytes as ASCII (printable, space excluded, else ``.``). ``-A`` prints the bytes as text
after a newline: printable bytes, tab, space and newline as they are, others as ``.``, and a carriage
return only as ``.`` when more than one byte follows it and the next one is not a newline (at the end
of a line it is dropped).
"""

from __future__ import annotations

from typing import Final

#: byte -> itself when tcpdump's ND_ASCII_ISGRAPH (0x21..0x7e), else "."
_GRAPH: Final = bytes(b if 0x21 <= b <= 0x7E else 0x2E for b in range(256))
#: -A: printable, tab, space and newline kept; CR kept here and handled apart.
_ASCII: Final = bytes(b if 0x20 <= b <= 0x7E or b in (9, 10, 13) else 0x2E for b in range(256))


def hex_lines(data: bytes, indent: str = "\n\t") -> str:
    """The ``-x`` dump of ``data``."""
    h = data.hex()
    out = []
    for line in range(0, len(h), 32):
        chunk = h[line : line + 32]
        words = " ".join([chunk[i : i + 4] for i in range(0, len(chunk), 4)])
        out.append(f"{indent}0x{line >> 1:04x}:  {words}")
    return "".join(out)


def hex_ascii_lines(data: bytes, indent: str = "\n\t") -> str:
    """The ``-X`` dump of ``data`` (also what tcpdump prints for a payload it does not decode)."""
    h = data.hex()
    text = data.translate(_GRAPH).decode("ascii")
    out = []
    for line in range(0, len(h), 32):
        chunk = h[line : line + 32]
        words = " " + " ".join([chunk[i : i + 4] for i in range(0, len(chunk), 4)])
        out.append(f"{indent}0x{line >> 1:04x}: {words:<40}  {text[line >> 1 : (line >> 1) + 16]}")
    return "".join(out)


def ascii_text(data: bytes) -> str:
    """The ``-A`` dump of ``data``: a newline, then the bytes as text."""
    text = data.translate(_ASCII)
    if b"\r" in text:
        n = len(text)
        chars = bytearray()
        for i, b in enumerate(text):
            if b == 13:
                # tcpdump looks at what follows: "." only mid-line, nothing before "\n" or at the end.
                if n - i - 1 > 1 and text[i + 1] != 10:
                    chars.append(0x2E)
            else:
                chars.append(b)
        text = bytes(chars)
    return "\n" + text.decode("ascii")


def hex_print(b: bytes, off: int, ident: str, length: int) -> str:
    """tcpdump's print_unknown_data: 16-bit groups, 8 per line, each line opened by ``ident`` and the offset;
    cut to the captured bytes."""
    if off > len(b):
        return f"{ident}Dissector error: print_unknown_data called with pointer past end of packet"
    data = b[off : off + max(length, 0)]
    out = []
    oset = 0
    n = len(data)
    i = 0
    for j in range(0, n - 1, 2):
        if i % 8 == 0:
            out.append(f"{ident}0x{oset:04x}: ")
            oset += 16
        i += 1
        out.append(f" {data[j]:02x}{data[j + 1]:02x}")
    if n & 1:
        if i % 8 == 0:
            out.append(f"{ident}0x{oset:04x}: ")
        out.append(f" {data[n - 1]:02x}")
    return "".join(out)


def _char(c: int) -> str:
    # tcpdump's rule for one byte of packet text: high bit as "M-", control characters as "^X", DEL as "^?".
    prefix = ""
    if c & 0x80:
        c &= 0x7F
        prefix = "M-"
    if not 0x20 <= c <= 0x7E:
        return prefix + "^" + chr(c ^ 0x40)
    return prefix + chr(c)


#: Each byte value as tcpdump prints it inside a name or a string from the packet.
CHAR: tuple[str, ...] = tuple(_char(c) for c in range(256))

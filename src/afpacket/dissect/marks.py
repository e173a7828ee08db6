"""How a protocol printer in another module tells the line printer that tcpdump would have stopped.

tcpdump prints as it reads; a read past the captured bytes jumps straight out of every printer
(``longjmp``) and the line ends with `` [|proto]``. That jump also resets the link-header length, so
the ``-x``/``-A`` dump that follows starts at the first byte of the frame instead of after the link
header. Printers that return text cannot jump, so they say it with the type of the text they return:

* :class:`Jumped` -- tcpdump jumped out here (the text ends with its mark);
* :class:`Stopped` -- tcpdump printed the mark itself and returned normally (a ``goto trunc``).

A plain ``str`` means tcpdump returned normally (any mark inside it was printed in place). A printer
returns text of one of these types exactly when it stops, so the -x dump after its line starts where
tcpdump's does: after a :class:`Jumped` text at the frame's first byte, otherwise after the link header.
"""

from __future__ import annotations


class Jumped(str):
    """Printed text that ends where tcpdump's printer jumped out (a read past the captured bytes)."""


class Stopped(str):
    """Printed text whose `` [|proto]`` mark tcpdump printed without jumping out."""

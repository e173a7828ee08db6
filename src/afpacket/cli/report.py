"""What the commands show while they run and leave behind when they end.

:class:`LiveStatus` keeps one status line on a terminal's stderr (tshark's running count, tcpdump's
"Got N"): it must never reach a pipe or a file, where a stream of carriage returns would be garbage, and
it must cost next to nothing when called once per packet. :func:`write_stats_json` gives scripts the
closing summary as one JSON object, written so that a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from ..errors import AfPacketError

#: Seconds between two redraws: about 4 per second, enough to look live, too few to cost anything.
REDRAW_INTERVAL = 0.25


class LiveStatus:
    """A one-line status on a terminal, redrawn in place at most every :data:`REDRAW_INTERVAL` seconds.

    ``LiveStatus(LiveStatus.enabled_for(sys.stderr, quiet))`` shows it only on a terminal and not with
    ``-q``. In a per-packet loop, build the text only when it will be drawn::

        if status.due():
            status.update(f"{n} packets")

    :meth:`update` throttles on its own as well, and does nothing at all when disabled. Call
    :meth:`clear` before printing anything else on the stream (it erases the line, the next update
    redraws it), and :meth:`close` (or leave the ``with`` block) at the end.
    """

    __slots__ = ("_drawn", "_next", "enabled", "interval", "stream")

    def __init__(self, enabled: bool, stream: TextIO | None = None, interval: float = REDRAW_INTERVAL) -> None:
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        # The first line only after one interval: a command that ends sooner shows none, no flicker.
        self._next = time.monotonic() + interval
        self._drawn = False

    @staticmethod
    def enabled_for(stream: TextIO, quiet: bool) -> bool:
        """Whether a live line belongs on ``stream``: a terminal, and the user did not ask for quiet."""
        if quiet:
            return False
        try:
            return stream.isatty()
        except (AttributeError, ValueError, OSError):  # closed or not a real stream
            return False

    def due(self) -> bool:
        """True when the next :meth:`update` would redraw: enabled, and the interval has passed."""
        return self.enabled and time.monotonic() >= self._next

    def update(self, text: str) -> None:
        """Show ``text`` in place of the previous status, unless the last redraw is too recent."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        width = self._width()
        if width and len(text) >= width:
            text = text[: width - 1]  # a wrapped line could no longer be rewritten with "\r"
        try:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False  # the terminal went away; the command itself goes on
            return
        self._drawn = True

    def clear(self) -> None:
        """Erase the status line before other output; the next :meth:`update` draws it again."""
        if self._drawn:
            self._drawn = False
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        """Erase the status line for good, so that what follows starts on a clean line. Idempotent."""
        self.clear()
        self.enabled = False

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 0

    def __enter__(self) -> LiveStatus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finite(value: object) -> object:
    """JSON has no NaN or Infinity (a rate over zero seconds); such values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_stats_json(path: str, summary: Mapping[str, object]) -> None:
    """Write ``summary`` as one JSON object to ``path`` (``-``: stdout).

    The file is written next to its final name and renamed over it (``os.replace``), so a script polling
    for it reads either nothing or the whole object. Raises :class:`AfPacketError` naming the path when it
    cannot be written.
    """
    text = json.dumps(_finite(summary), indent=2, default=str) + "\n"
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        # 0o666 through the umask, like any file the user creates (a temp file module would make it 0600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:
        raise AfPacketError(f"cannot write the statistics to {path}: {e.strerror or e}") from None

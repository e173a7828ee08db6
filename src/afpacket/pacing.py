"""Rate pacing: when each frame may leave, on an absolute schedule.

Each deadline is computed from one monotonic start (``start + i / pps``, ``start + bits / bps`` or
``start + (ts - ts0) / multiplier``), never by adding up sleeps, so errors do not accumulate over a run:
a late wake-up is caught up by the following frames. Waiting sleeps until ~100 µs before the deadline and
busy-waits the rest, because ``time.sleep`` overshoots by tens of microseconds. Frames that are already
due are queued without a kick; the transmitter is kicked only right before a wait, so a high rate costs
one system call per wait, not per frame. ``burst`` frames share one deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

#: How long before a deadline sleeping stops and busy-waiting begins.
SPIN_SECONDS = 100e-6
#: The longest sleep between two checks of a wait's ``stop`` condition.
STOP_SLICE = 0.05


class _Sender(Protocol):
    def send(self, frame: bytes) -> None: ...
    def flush(self, wait: bool = True) -> None: ...


class Pacer:
    """An absolute schedule for frames: by packets/s, bits/s, or the frames' own timestamps.

    With none of ``pps``, ``bps``, ``multiplier`` given, every deadline is "now" (top speed).
    ``multiplier`` replays timestamps ``multiplier`` times faster (1.0 = original timing).
    """

    def __init__(
        self,
        *,
        pps: float | None = None,
        bps: float | None = None,
        multiplier: float | None = None,
        burst: int = 1,
        spin: float = SPIN_SECONDS,
    ) -> None:
        given = [x for x in (pps, bps, multiplier) if x is not None]
        if len(given) > 1:
            raise ValueError("give one of pps, bps or multiplier")
        for name, v in (("pps", pps), ("bps", bps), ("multiplier", multiplier)):
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be positive, got {v}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.pps, self.bps, self.multiplier, self.burst, self.spin = pps, bps, multiplier, burst, spin
        self.start = 0.0
        self._index = 0
        self._bits = 0
        self._ts0: int | None = None
        self._last = 0.0

    @property
    def topspeed(self) -> bool:
        return self.pps is None and self.bps is None and self.multiplier is None

    def begin(self, now: float | None = None) -> None:
        """Start the schedule (at the first deadline if not called)."""
        self.start = time.monotonic() if now is None else now
        self._index = 0
        self._bits = 0
        self._ts0 = None
        self._last = self.start

    def deadline(self, length: int = 0, timestamp_ns: int | None = None) -> float:
        """The monotonic time at which the next frame (``length`` bytes, captured at ``timestamp_ns``) is due."""
        if not self.start:
            self.begin()
        i = self._index
        self._index = i + 1
        if self.pps is not None:
            return self.start + (i // self.burst) * self.burst / self.pps
        if self.bps is not None:
            bits = self._bits
            self._bits = bits + length * 8
            return self.start + bits / self.bps
        if self.multiplier is not None and timestamp_ns is not None:
            if self._ts0 is None:
                self._ts0 = timestamp_ns
            due = self.start + max(0, timestamp_ns - self._ts0) / 1e9 / self.multiplier
            self._last = due
            return due
        return self.start

    def restart(self, delay: float = 0.0) -> None:
        """Make the next frame due ``delay`` seconds after the previous one's deadline.

        Used between the loops and files of a replay: a new file's timestamps start anywhere, so the
        timestamp origin moves to the next frame; a rate schedule (pps, bps) just shifts by ``delay``,
        so without a delay it continues as if the frames were one stream (as tcpreplay does).
        """
        if not self.start:
            self.begin()
        if self.multiplier is not None:
            self.start = self._last + delay
            self._ts0 = None
        else:
            self.start += delay
            self._last += delay

    def wait_until(self, deadline: float, stop: Callable[[], bool] | None = None) -> bool:
        """:func:`wait_until` with this pacer's spin time."""
        return wait_until(deadline, self.spin, stop)


def wait_until(deadline: float, spin: float = SPIN_SECONDS, stop: Callable[[], bool] | None = None) -> bool:
    """Sleep until ``spin`` seconds before ``deadline``, then busy-wait the rest; return True.

    With ``stop``, a long wait sleeps in slices of at most :data:`STOP_SLICE` seconds and calls ``stop()``
    between them: a gap of minutes in a replayed file must not delay Ctrl-C, a progress line or the end
    of ``--duration``. Returns False, early, as soon as ``stop()`` is true.
    """
    clock = time.monotonic
    rest = deadline - clock()
    if stop is None:
        if rest > spin:
            time.sleep(rest - spin)
    else:
        while rest > spin:
            if stop():
                return False
            time.sleep(min(rest - spin, STOP_SLICE))
            rest = deadline - clock()
    while clock() < deadline:
        pass
    return True


def paced_send(tx: _Sender, frames: Iterable[tuple[bytes, int | None]], pacer: Pacer) -> int:
    """Send ``(frame, timestamp_ns)`` pairs on ``pacer``'s schedule; return the count.

    Due frames are queued; the ring is kicked right before each wait, so a frame leaves when its
    deadline comes, not when the next one is queued. Ends with a flush (waiting for completion).
    """
    clock = time.monotonic
    send = tx.send
    flush = tx.flush
    spin = pacer.spin
    deadline_of = pacer.deadline
    count = 0
    pacer.begin()
    for frame, ts in frames:
        due = deadline_of(len(frame), ts)
        if due > clock():
            flush(False)
            wait_until(due, spin)
        send(frame)
        count += 1
    flush(True)
    return count

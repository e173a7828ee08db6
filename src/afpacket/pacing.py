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
from collections.abc import Iterable
from typing import Protocol

#: How long before a deadline sleeping stops and busy-waiting begins.
SPIN_SECONDS = 100e-6


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

    @property
    def topspeed(self) -> bool:
        return self.pps is None and self.bps is None and self.multiplier is None

    def begin(self, now: float | None = None) -> None:
        """Start the schedule (at the first deadline if not called)."""
        self.start = time.monotonic() if now is None else now
        self._index = 0
        self._bits = 0
        self._ts0 = None

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
            return self.start + max(0, timestamp_ns - self._ts0) / 1e9 / self.multiplier
        return self.start

    def skip_ahead(self, seconds: float) -> None:
        """Shift the timestamp origin so the next timestamp is due ``seconds`` after the previous one
        (used between loops of a replay)."""
        if self._ts0 is not None:
            self._ts0 -= int(seconds * 1e9 * (self.multiplier or 1.0))

    def wait_until(self, deadline: float) -> None:
        wait_until(deadline, self.spin)


def wait_until(deadline: float, spin: float = SPIN_SECONDS) -> None:
    """Sleep until ``spin`` seconds before ``deadline``, then busy-wait the rest."""
    clock = time.monotonic
    rest = deadline - clock()
    if rest > spin:
        time.sleep(rest - spin)
    while clock() < deadline:
        pass


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

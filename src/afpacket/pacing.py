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

    Give at most one of:

    - ``pps``: frames per second; frame ``i`` is due at ``start + i / pps``.
    - ``bps``: bits per second of frame data (link header included, no FCS, preamble or gap), so a
      frame is due once all the bits before it have had their time.
    - ``multiplier``: replay the frames' capture timestamps ``multiplier`` times faster (1.0 =
      original timing, 2.0 = twice as fast); frames without a timestamp are due at once.

    With none of them, every deadline is the start (top speed). ``burst`` frames share one deadline
    (with ``pps``), which trades smoothness for fewer waits at high rates. ``spin`` is how many seconds
    before a deadline sleeping stops and busy-waiting begins (see :func:`wait_until`).

    Raises ValueError when more than one rate is given, a rate is not positive, or ``burst`` < 1.

    Example, 1000 frames/s sent in bursts of 10::

        pacer = Pacer(pps=1000, burst=10)
        paced_send(tx, ((f, None) for f in frames), pacer)
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
        """True when no rate was given: every frame is due at once and no wait ever happens."""
        return self.pps is None and self.bps is None and self.multiplier is None

    def begin(self, now: float | None = None) -> None:
        """Start the schedule at monotonic time ``now`` (default: the current time).

        :meth:`deadline` calls it on first use when it has not been called; call it explicitly to
        start the clock before some slow setup, or with ``now`` to put the schedule on a known time.
        """
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
        """:func:`wait_until` ``deadline`` (monotonic seconds) with this pacer's spin time.

        ``stop``, when given, is polled during a long wait and ends it early; returns False then,
        True when the deadline was reached.
        """
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
    """Send ``(frame, timestamp_ns)`` pairs from ``frames`` through ``tx`` on ``pacer``'s schedule.

    ``tx`` is anything with ``send(frame)`` and ``flush(wait)``, such as a
    :class:`~afpacket.tx.Transmitter`; ``timestamp_ns`` is only used by a ``multiplier`` pacer and
    may be None. The pacer is (re)started here. Due frames are queued; the ring is kicked right before
    each wait, so a frame leaves when its deadline comes, not when the next one is queued. Ends with a
    flush that waits for completion, so on return every frame has left. Returns the number of frames
    sent; errors from ``tx`` (e.g. :class:`~afpacket.errors.TransmitError`) propagate.
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

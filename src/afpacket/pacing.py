"""Rate pacing: when each frame may leave, on an absolute schedule.

Each deadline is computed from one monotonic start (``start + i / pps``, ``start + bits / bps`` or
``start + (ts - ts0) / multiplier``), never by adding up sleeps, so errors do not accumulate over a run:
a late wake-up is caught up by the following frames. Waiting sleeps until ~100 µs before the deadline and
busy-waits the rest, because ``time.sleep`` overshoots by tens of microseconds. Frames that are already
due are queued without a kick; the transmitter is kicked only right before a wait, so a high rate costs
one system call per wait, not per frame. ``burst`` frames share one deadline.

No single gap lasts longer than ``max_gap`` (default :data:`MAX_GAP`, one hour): a file whose next
time stamp lies years ahead (a corrupt record, a clock jump), or a rate so low that one frame would wait
for days, waits that long at most. A capped gap moves the schedule's origin to that frame, so the
frames after it keep their own spacing; ``on_cap`` is told about each capped gap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from .errors import ArgumentError

#: How long before a deadline sleeping stops and busy-waiting begins.
SPIN_SECONDS = 100e-6
#: The longest sleep between two checks of a wait's ``stop`` condition.
STOP_SLICE = 0.05
#: The longest single gap between two frames, in seconds, unless ``max_gap`` says otherwise: longer
#: gaps in a replayed file (a far-future time stamp) or between paced frames are cut to this.
MAX_GAP = 3600.0
#: The longest one ``time.sleep`` call made without a ``stop`` check; longer waits sleep in pieces, so
#: that no wait, however long, makes ``time.sleep`` overflow.
_LONGEST_SLEEP = 86400.0


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

    ``max_gap`` (seconds, default :data:`MAX_GAP`) caps the wait between two consecutive deadlines: a
    frame due later than that after the one before is due ``max_gap`` after it instead, and the
    schedule continues from there (tcpreplay's ``--maxsleep``). ``on_cap(gap, max_gap)``, when given,
    is called for every capped gap with the gap the schedule asked for (``math.inf`` when it does not
    fit a float). :attr:`capped` counts them.

    Raises ArgumentError (a ValueError) when more than one rate is given, a rate is not a positive
    number, ``burst`` < 1, or ``max_gap`` is not a finite number > 0.

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
        max_gap: float = MAX_GAP,
        on_cap: Callable[[float, float], None] | None = None,
    ) -> None:
        given = [x for x in (pps, bps, multiplier) if x is not None]
        if len(given) > 1:
            raise ArgumentError("Pacer(): give one of pps, bps or multiplier")
        for name, v in (("pps", pps), ("bps", bps), ("multiplier", multiplier)):
            if v is not None and not v > 0:
                raise ArgumentError(f"Pacer(): {name} must be positive, got {v}")
        if burst < 1:
            raise ArgumentError(f"Pacer(): burst must be at least 1, got {burst}")
        if not (max_gap > 0 and math.isfinite(max_gap)):
            raise ArgumentError(f"Pacer(): max_gap must be a finite number of seconds > 0, got {max_gap}")
        self.pps, self.bps, self.multiplier, self.burst, self.spin = pps, bps, multiplier, burst, spin
        self.max_gap = max_gap
        self.on_cap = on_cap
        #: how many gaps were longer than ``max_gap`` and cut to it
        self.capped = 0
        self.start = 0.0
        self._begun = False  # begin() was called (a start of 0.0 is a valid monotonic time)
        self._index = 0
        self._index0 = 0
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
        self._begun = True
        self._index = 0
        self._index0 = 0
        self._bits = 0
        self._ts0 = None
        self._last = self.start

    def deadline(self, length: int = 0, timestamp_ns: int | None = None) -> float:
        """The monotonic time at which the next frame (``length`` bytes, captured at ``timestamp_ns``) is due.

        Never more than ``max_gap`` seconds after the previous frame's deadline (see the class).
        """
        if not self._begun:
            self.begin()
        i = self._index
        self._index = i + 1
        if self.pps is not None:
            due = self.start + ((i - self._index0) // self.burst) * self.burst / self.pps
        elif self.bps is not None:
            bits = self._bits
            self._bits = bits + length * 8
            due = self.start + bits / self.bps
        elif self.multiplier is not None and timestamp_ns is not None:
            if self._ts0 is None:
                self._ts0 = timestamp_ns
            due = self.start + max(0, timestamp_ns - self._ts0) / 1e9 / self.multiplier
        else:
            return self.start
        # "not <=" also catches inf and nan: a gap too long for a float is capped like any other.
        if not due - self._last <= self.max_gap:
            due = self._cap(due - self._last, i, length, timestamp_ns)
        self._last = due
        return due

    def _cap(self, gap: float, i: int, length: int, timestamp_ns: int | None) -> float:
        """Make the frame whose gap is ``gap`` due ``max_gap`` after the previous one, and start the
        schedule afresh from it (rare path: only for a gap longer than ``max_gap``)."""
        self.capped += 1
        due = self._last + self.max_gap
        self.start = due
        self._index0 = i
        self._bits = length * 8
        if timestamp_ns is not None:
            self._ts0 = timestamp_ns
        if self.on_cap is not None:
            self.on_cap(gap if math.isfinite(gap) else math.inf, self.max_gap)
        return due

    def restart(self, delay: float = 0.0) -> None:
        """Make the next frame due ``delay`` seconds after the previous one's deadline.

        Used between the loops and files of a replay: a new file's timestamps start anywhere, so the
        timestamp origin moves to the next frame; a rate schedule (pps, bps) just shifts by ``delay``,
        so without a delay it continues as if the frames were one stream (as tcpreplay does).
        """
        if not self._begun:
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
    of ``--duration``. Returns False, early, as soon as ``stop()`` is true. Without ``stop`` a wait of any
    length sleeps in pieces of at most a day, so ``time.sleep`` never overflows.
    """
    clock = time.monotonic
    rest = deadline - clock()
    if stop is None:
        while rest > spin:
            time.sleep(min(rest - spin, _LONGEST_SLEEP))
            rest = deadline - clock()
    else:
        while rest > spin:
            if stop():
                return False
            time.sleep(min(rest - spin, STOP_SLICE))
            rest = deadline - clock()
    while clock() < deadline:
        pass
    return True


def paced_send(
    tx: _Sender,
    frames: Iterable[tuple[bytes, int | None]],
    pacer: Pacer,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Send ``(frame, timestamp_ns)`` pairs from ``frames`` through ``tx`` on ``pacer``'s schedule.

    ``tx`` is anything with ``send(frame)`` and ``flush(wait)``, such as a
    :class:`~afpacket.tx.Transmitter`; ``timestamp_ns`` is only used by a ``multiplier`` pacer and
    may be None. The pacer is (re)started here. Due frames are queued; the ring is kicked right before
    each wait, so a frame leaves when its deadline comes, not when the next one is queued. ``stop``, when
    given, is polled during long waits (see :func:`wait_until`); once it returns True no further frame
    is sent. Ends with a flush that waits for completion, so on return every frame sent has left. Returns
    the number of frames sent; errors from ``tx`` (e.g. :class:`~afpacket.errors.TransmitError`)
    propagate.
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
            if not wait_until(due, spin, stop):
                break
        send(frame)
        count += 1
    flush(True)
    return count

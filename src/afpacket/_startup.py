"""The ``afpacket`` command's first act: hold stop signals until the command can act on them.

A stop signal (SIGINT, SIGTERM, SIGHUP) that arrives while Python is still importing the command's
modules would otherwise print a KeyboardInterrupt traceback (SIGINT) or kill the process before it has
said anything (SIGTERM, SIGHUP). ``afpacket/__init__.py`` imports this module first, and only when the
process *is* the afpacket command (``python -m afpacket`` or the installed ``afpacket`` script) does it
install a handler that just records the first such signal. The command then settles it
(:func:`settle`): ``capture`` takes the signal over with its own handlers (a capture that has not
opened its socket yet exits quietly, as the signal would; one that has ends with its summary), every
other subcommand gets the signals' previous handlers back. A library user importing afpacket is never
touched: a library must not take its host's signals.

What no Python program can cover is the interpreter's own start-up before the first line of afpacket
runs (``site`` and its ``.pth`` files, a few tens of milliseconds): SIGINT there is still Python's
KeyboardInterrupt.

A signal the process inherited as ignored (``nohup``, a background job of a script) stays ignored,
as tcpdump leaves it.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: the first stop signal that arrived before the command took over (0: none)
pending = 0
#: the handlers found at start-up, for the signals held here
_previous: dict[int, Any] = {}


def _hold(signum: int, frame: FrameType | None) -> None:
    global pending
    if not pending:
        pending = signum


def _is_default(handler: object) -> bool:
    return handler in (signal.SIG_DFL, signal.default_int_handler)


def is_command() -> bool:
    """This process runs the afpacket command: ``python -m afpacket ...`` or the console script."""
    argv = getattr(sys, "orig_argv", [])
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "-mafpacket" or (arg == "-m" and argv[i + 1 : i + 2] == ["afpacket"]):
            return True
        if arg.startswith(("-m", "-c")) or not arg.startswith("-"):
            break  # another module, a -c program or a script: what follows is its own
        i += 2 if arg in ("-X", "-W") else 1  # the interpreter options that take a value
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) != "afpacket":
        return False
    main = sys.modules.get("__main__")
    if getattr(main, "__file__", None) != script:
        return False
    try:
        with open(script, "rb") as f:
            head = f.read(2048)
    except OSError:
        return False
    return b"afpacket.cli" in head  # the entry point script pip writes: "from afpacket.cli import main"


def hold() -> None:
    """Record stop signals from now on instead of acting on them (the main thread only; a signal the
    process ignores stays ignored)."""
    try:
        for sig in STOP_SIGNALS:
            old = signal.getsignal(sig)
            if _is_default(old):
                _previous[sig] = old
                signal.signal(sig, _hold)
    except ValueError:  # not the main thread: nothing can be held
        pass


def settle(*, capture: bool) -> None:
    """Called by the command once its modules are loaded. For ``capture`` the held signals stay held
    (the capture installs its own handlers and reads :data:`pending`). For any other subcommand the
    previous handlers come back, after a signal that arrived meanwhile has ended the process quietly."""
    if capture or not _previous:
        return
    if pending:
        exit_by(pending)
    for sig, old in _previous.items():
        signal.signal(sig, old)
    _previous.clear()


def exit_by(signum: int) -> None:
    """End the process quietly as the signal's default action would (the shell shows 128 + signum, a
    parent sees it killed by that signal): a stop before anything was opened leaves nothing to report."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    try:
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
    finally:
        os._exit(128 + signum)


if is_command():
    hold()

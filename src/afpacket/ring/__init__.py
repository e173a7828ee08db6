"""The ring seam: per-version layouts, ring memory, and the kernels that walk it.

Every read or write of ring memory goes through one of two kernel modules with the same names and
behaviour: ``_kernels`` (C, compiled when afpacket is installed where gcc and the Python headers
exist) and ``_kernels_py`` (pure Python, always there). As multidict and msgpack do, the C one is
used when it imports; ``AFPACKET_NO_EXTENSIONS=1`` forces pure Python, and a failed import falls
back to it with a warning. :data:`IMPLEMENTATION` says which one is in use (``"c"`` or ``"python"``).

Tests run the whole suite against both: :func:`use` switches the kernels later captures and
transmitters take (each one keeps the kernels it was opened with).
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from . import _kernels_py

_NO_EXTENSIONS = os.environ.get("AFPACKET_NO_EXTENSIONS", "") not in ("", "0")


def _load_c() -> ModuleType | None:
    try:
        from . import _kernels  # type: ignore[attr-defined]
    except ImportError as e:
        warnings.warn(
            f"afpacket: the compiled ring kernels did not load ({e}); using the pure-Python core, which is "
            "several times slower. Reinstall where gcc and the Python headers exist (Debian: apt-get install "
            "gcc python3-dev) to build them, or set AFPACKET_NO_EXTENSIONS=1 to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return _kernels  # type: ignore[no-any-return]


_c: ModuleType | None = None if _NO_EXTENSIONS else _load_c()
kernels: ModuleType = _c if _c is not None else _kernels_py
#: "c" or "python": which kernels captures and transmitters use
IMPLEMENTATION: str = kernels.IMPLEMENTATION


def available() -> list[str]:
    """The implementations that can be used here: always ``"python"``, and ``"c"`` when it loaded."""
    out = ["python"]
    if _c is not None or _try_c() is not None:
        out.insert(0, "c")
    return out


def _try_c() -> ModuleType | None:
    try:
        from . import _kernels  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _kernels  # type: ignore[no-any-return]


def use(name: str) -> ModuleType:
    """Make later captures and transmitters use the kernels named ``name``; returns that module.

    ``name`` is ``"c"`` or ``"python"`` (see :func:`available`). Captures and transmitters already open
    keep the kernels they were opened with, so switching mid-run never mixes two cores on one ring.
    Raises ImportError when ``"c"`` is asked for but the compiled module is not built, and ValueError
    for any other name. The test suite uses it to run every test once per core.

    Example, timing the pure-Python core on a machine that has both::

        use("python")
    """
    global kernels, IMPLEMENTATION
    if name == "python":
        kernels = _kernels_py
    elif name == "c":
        mod = _c or _try_c()
        if mod is None:
            raise ImportError("the compiled ring kernels (afpacket.ring._kernels) are not built")
        kernels = mod
    else:
        raise ValueError(f"implementation must be 'c' or 'python', got {name!r}")
    IMPLEMENTATION = kernels.IMPLEMENTATION
    return kernels


def current() -> ModuleType:
    """The kernels module later captures and transmitters will take (as set by :func:`use`)."""
    return kernels

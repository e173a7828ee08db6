"""Builds the optional C ring kernels (afpacket.ring._kernels).

Everything else is in pyproject.toml. As multidict and msgpack do, a build failure (no compiler, no
Python headers) is reported and the install goes on with the pure-Python core; AFPACKET_NO_EXTENSIONS=1
skips the build, and AFPACKET_REQUIRE_EXTENSIONS=1 (CI) makes a failed build fail the install.
AFPACKET_SANITIZE=address builds it with AddressSanitizer (a test step).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CFLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers"]
LDFLAGS: list[str] = []
if os.environ.get("AFPACKET_SANITIZE") == "address":
    CFLAGS += ["-fsanitize=address", "-fno-omit-frame-pointer", "-O1", "-g"]
    LDFLAGS += ["-fsanitize=address"]


class OptionalBuildExt(build_ext):
    """Builds the extension if it can; otherwise warns and leaves the pure-Python core."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001 - any build failure means: use pure Python
            self._fallback(e)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            self._fallback(e)

    def _fallback(self, e: Exception) -> None:
        if os.environ.get("AFPACKET_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise e
        print(
            f"afpacket: building the C ring kernels failed ({e}); installing the pure-Python core. "
            "Install gcc and the Python headers (Debian: apt-get install gcc python3-dev) for the fast one.",
            file=sys.stderr,
        )


ext_modules = []
if os.environ.get("AFPACKET_NO_EXTENSIONS", "") in ("", "0"):
    ext_modules.append(
        Extension(
            "afpacket.ring._kernels",
            sources=["src/afpacket/ring/_kernels.c", "src/afpacket/flows/_table.c"],
            extra_compile_args=CFLAGS,
            extra_link_args=LDFLAGS,
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})

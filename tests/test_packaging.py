"""Installing: a wheel carries the C ring kernels where a compiler exists, and installs without them
(pure-Python core, with a warning at build time) where none does."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(out: Path, **env: str) -> Path:
    """``python -m build --wheel`` of the checkout into ``out`` (no isolation: the test extra installs
    setuptools, wheel and build). The source is copied first so the checkout's build/ stays clean."""
    src = out / "src-copy"
    src.mkdir(parents=True)
    for name in ("src", "setup.py", "pyproject.toml", "README.md"):
        subprocess.run(["cp", "-r", str(ROOT / name), str(src / name)], check=True)
    for so in (src / "src" / "afpacket" / "ring").glob("*.so"):
        so.unlink()
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(src)]
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("AFPACKET_")} | env
    r = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = out.glob("afpacket-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheels")
    with_cc = build_wheel(base / "cc")
    without = build_wheel(base / "nocc", CC="/bin/false", LDSHARED="/bin/false")
    return {"cc": with_cc, "nocc": without}


def test_wheel_carries_the_compiled_kernels(wheels: dict[str, Path]) -> None:
    names = zipfile.ZipFile(wheels["cc"]).namelist()
    assert any(n.startswith("afpacket/ring/_kernels") and n.endswith(".so") for n in names), names
    assert "afpacket/ring/_kernels_py.py" in names and "afpacket/py.typed" in names


def test_without_a_compiler_the_wheel_is_pure_python_and_works(wheels: dict[str, Path], tmp_path: Path) -> None:
    names = zipfile.ZipFile(wheels["nocc"]).namelist()
    assert not any(n.endswith(".so") for n in names), names
    zipfile.ZipFile(wheels["nocc"]).extractall(tmp_path / "site")
    code = "import afpacket; print(afpacket.IMPLEMENTATION, afpacket.__file__)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFPACKET_")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    cmd = [sys.executable, "-W", "always", "-c", code]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    impl, path = r.stdout.split()
    assert impl == "python" and path.startswith(str(tmp_path / "site")), r
    assert "compiled ring kernels did not load" in r.stderr

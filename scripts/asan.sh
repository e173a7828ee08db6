#!/usr/bin/env bash
# The C ring kernels under AddressSanitizer: a copy of the tree, the extension built with
# -fsanitize=address, and the kernel tests (synthetic rings and the fuzz test, comparing both cores;
# async_stream driven by asyncio; the flow table against its pure-Python specification)
# run against it with libasan preloaded. Any read outside a buffer aborts the run.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r src tests setup.py pyproject.toml README.md "$work/"
find "$work/src" -name '*.so' -delete
(cd "$work" && AFPACKET_SANITIZE=address AFPACKET_REQUIRE_EXTENSIONS=1 \
  python3 setup.py -q build_ext --inplace >/dev/null)
so="$(ls "$work"/src/afpacket/ring/_kernels*.so)"
# grep -c reads to the end: grep -q would quit early and nm's SIGPIPE fail the pipeline (pipefail)
nm -D "$so" | grep -c __asan_report >/dev/null || { echo "asan.sh: $so is not instrumented" >&2; exit 1; }
asan="$(gcc -print-file-name=libasan.so)"
cd "$work"
# CPython's own allocations are not ours to check for leaks; memory errors are.
LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONPATH="$work/src" AFPACKET_REQUIRE_EXTENSIONS=1 \
  python3 -m pytest -q -p no:cacheprovider tests/test_kernels.py tests/test_async_stream.py tests/test_flow_table.py "$@"

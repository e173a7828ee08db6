#!/usr/bin/env bash
# The whole test suite: set up (builds the C ring kernels), lint, type-check, the C kernels under
# AddressSanitizer, then pytest over real veth pairs, every test once per core (C and pure Python).
set -euo pipefail
cd "$(dirname "$0")/.."
export AFPACKET_REQUIRE_EXTENSIONS=1  # the C core must build and load here; a silent fallback fails
bash scripts/setup.sh
python3 -c 'import afpacket, sys; print("afpacket ring kernels:", afpacket.IMPLEMENTATION); sys.exit(afpacket.IMPLEMENTATION != "c")'
ruff check src tests benchmarks
mypy
bash scripts/asan.sh
python3 -m pytest -q -p no:cacheprovider "$@"

#!/usr/bin/env bash
# The whole test suite: set up, lint, type-check, then pytest over real veth pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ruff check src tests benchmarks
mypy
python3 -m pytest -q -p no:cacheprovider "$@"

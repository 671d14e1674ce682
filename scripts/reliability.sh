#!/usr/bin/env bash
# The reliability suite (docs/reliability.md) with its figures printed, at larger counts
# than CI runs. Usage: scripts/reliability.sh [R2 trials] [R5 commits per thread]
set -euo pipefail
cd "$(dirname "$0")/.."
export ORM_R2_TRIALS="${1:-100}"
export ORM_R5_COMMITS="${2:-5000}"
cargo test --release -p orm-tests --test integration -- --nocapture \
  reliability:: crash:: versioning:: properties:: threads::r5_ hostile_input::

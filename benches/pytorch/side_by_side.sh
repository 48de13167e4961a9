#!/usr/bin/env bash
# Ours and PyTorch alternately on the same machine, N times (default 3), so that a drift of
# the machine's speed (shared VMs drift by ±20% over minutes) falls on both sides alike.
#   benches/pytorch/side_by_side.sh /path/to/python-with-torch [N]
# Figures and how to read them: docs/performance.md ("Side by side with PyTorch").
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${1:?usage: $0 /path/to/python-with-torch [N]}"
runs="${2:-3}"
cargo bench -p pav-stages --bench policy --no-run
for i in $(seq 1 "$runs"); do
  echo "== ours, run $i ($(date +%T))"
  cargo bench -q -p pav-stages --bench policy 2>/dev/null | grep -E "tokens_per_s|speedup"
  echo "== PyTorch, run $i ($(date +%T))"
  "$python" benches/pytorch/transformer.py --threads 2 | grep -E "tokens_per_s"
done

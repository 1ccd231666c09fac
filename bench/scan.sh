#!/usr/bin/env bash
# Times one full scan of a simulated merchant: wall time and peak RSS of the
# scanning process (the simulator runs as its own process, on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-100000}
port=${PORT:-18181}
source bench/common.sh
cat >"$work/config.toml" <<TOML
[poomgo]
base_url = "http://127.0.0.1:$port"
api_key = "sim-key"
TOML
echo "scan of $orders simulated orders (page_size 500, concurrency 2):"
measure "$bin" scan --config "$work/config.toml"

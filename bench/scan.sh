#!/usr/bin/env bash
# Times one full scan of a simulated merchant: wall time and peak RSS of the
# scanning process (the simulator runs as its own process, on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-100000}
port=${PORT:-18181}
cargo build --release --quiet
bin=target/release/poomgo-notifier
work=$(mktemp -d)
trap 'kill $sim 2>/dev/null || true; rm -rf "$work"' EXIT
$bin sim --listen 127.0.0.1:$port --orders "$orders" >"$work/sim.log" 2>&1 &
sim=$!
for _ in $(seq 100); do grep -q 'api key' "$work/sim.log" 2>/dev/null && break; sleep 0.2; done
cat >"$work/config.toml" <<TOML
[poomgo]
base_url = "http://127.0.0.1:$port"
api_key = "sim-key"
TOML
echo "scan of $orders simulated orders (page_size 500, concurrency 2):"
/usr/bin/time -v $bin scan --config "$work/config.toml" 2>"$work/time.txt"
grep -E 'Elapsed \(wall|Maximum resident' "$work/time.txt"

#!/usr/bin/env bash
# Times a baseline poll and a change poll over a simulated merchant, each as
# its own process under /usr/bin/time -v (wall time, peak RSS). The simulator
# and a minimal webhook receiver run as separate processes on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
orders=${1:-100000}
fraction=${FRACTION:-0.05}
port=${PORT:-18282}
rport=$((port + 1))
source bench/common.sh
python3 - "$rport" >"$work/receiver.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)
cat >"$work/config.toml" <<TOML
[poomgo]
base_url = "http://127.0.0.1:$port"
api_key = "sim-key"
[plan]
# One window read every poll, so each poll reads the same pages (see README: Performance).
windows = []
created_every = 1
[store]
path = "$work/store"
cache_mb = ${CACHE_MB:-8}
[[targets]]
name = "erp"
kind = "webhook"
url = "http://127.0.0.1:$rport/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOML
echo "== baseline poll of $orders simulated orders"
measure "$bin" poll --config "$work/config.toml"
changed=$(curl -s -X POST "http://127.0.0.1:$port/_sim/advance" -H 'content-type: application/json' \
  -d "{\"steps\":1,\"fraction\":$fraction,\"new_orders\":0}")
invoices=$(curl -s "http://127.0.0.1:$port/_sim/stats")
echo "== change poll after advance $changed (merchant: $invoices)"
measure "$bin" poll --config "$work/config.toml"
echo "== store size: $(du -sh "$work/store" | cut -f1)"

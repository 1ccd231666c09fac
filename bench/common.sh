# Shared by the bench scripts (sourced, not run): builds the release binary,
# makes a work folder, starts the simulator with $orders orders on $port and
# waits until it serves; `measure CMD...` prints wall time and peak RSS of CMD.
cargo build --release --quiet
bin=$PWD/target/release/poomgo-notifier
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" sim --listen "127.0.0.1:$port" --orders "$orders" >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do grep -q 'api key' "$work/sim.log" 2>/dev/null && break; sleep 0.2; done

measure() {
  /usr/bin/time -v "$@" 2>"$work/time.txt"
  grep -E 'Elapsed \(wall|Maximum resident' "$work/time.txt"
}

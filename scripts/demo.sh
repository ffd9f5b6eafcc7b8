#!/usr/bin/env bash
# Builds sluice, starts the io_uring echo server and drives it with the echo client,
# printing messages/s and round-trip latency. Usage: bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo

cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF \
  -DSLUICE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" --target echo_server echo_client

out=$(mktemp)
build/demo/examples/echo_server --host 127.0.0.1 --port 0 >"$out" &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$out" && break
  sleep 0.05
done
line=$(head -n1 "$out")
echo "server: $line"
port=${line##*:}

for conns in 1 50; do
  echo
  build/demo/examples/echo_client --host 127.0.0.1 --port "$port" --conns "$conns" \
    --size 64 --seconds 3 | grep -v '^result'
done

kill -TERM "$server"
wait "$server"
echo
echo "server stopped cleanly on SIGTERM (exit $?)"
trap - EXIT
rm -f "$out"

#!/usr/bin/env bash
# The Windows echo server (IOCP, under Wine) serves the native Linux echo client over
# loopback. usage: wine_echo.sh ECHO_SERVER_EXE ECHO_CLIENT   (WINEPREFIX etc. set)
set -euo pipefail
server_exe=$1
client=$2
out=$(mktemp)
# Keep the wineserver up between programs (see scripts/test.sh); already running is fine.
wineserver -p 2>/dev/null || true
wine "$server_exe" --host 127.0.0.1 --port 0 >"$out" 2>&1 &
for _ in $(seq 200); do
  grep -q "listening on" "$out" && break
  sleep 0.05
done
line=$(grep -m1 "listening on" "$out" || true)
if [ -z "$line" ]; then
  echo "wine echo_server did not start:"; cat "$out"; wineserver -k || true; exit 1
fi
port=${line##*:}
port=${port%$'\r'}
rc=0
"$client" --host 127.0.0.1 --port "$port" --conns 20 --size 512 --seconds 2 || rc=$?
grep -q "backend iocp" "$out" || { echo "the server did not run on iocp:"; cat "$out"; rc=1; }
wineserver -k || true
rm -f "$out"
exit "$rc"

#!/usr/bin/env bash
# The Windows echo server (IOCP, under Wine) serves the native Linux echo client over
# loopback. usage: wine_echo.sh ECHO_SERVER_EXE ECHO_CLIENT   (WINEPREFIX etc. set)
set -euo pipefail
server_exe=$1
client=$2
out=$(mktemp)
# The wineserver of the programs before us (ctest's) lingers a few seconds after the
# last one exits, then exits itself; a wine process that starts just then fails with
# "wine client error:0: recvmsg: Connection reset by peer". Wait until it is gone, and
# should the start still meet that error, try once more.
# (Not a persistent wineserver for the whole step instead: the services the first wine
# program starts would then hold ctest's output pipe open, and ctest waits for them.)
line=""
for attempt in 1 2; do
  wineserver -w || true
  wine "$server_exe" --host 127.0.0.1 --port 0 >"$out" 2>&1 &
  for _ in $(seq 200); do
    grep -q "listening on" "$out" && break
    grep -q "wine client error" "$out" && break
    sleep 0.05
  done
  line=$(grep -m1 "listening on" "$out" || true)
  [ -n "$line" ] && break
  echo "wine echo_server did not start (attempt $attempt):"; cat "$out"
  wineserver -k || true
done
if [ -z "$line" ]; then
  rm -f "$out"; exit 1
fi
port=${line##*:}
port=${port%$'\r'}
rc=0
"$client" --host 127.0.0.1 --port "$port" --conns 20 --size 512 --seconds 2 || rc=$?
grep -q "backend iocp" "$out" || { echo "the server did not run on iocp:"; cat "$out"; rc=1; }
wineserver -k || true
rm -f "$out"
exit "$rc"

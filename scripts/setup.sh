#!/usr/bin/env bash
# Installs the Debian packages sluice needs that this machine lacks (Debian 12).
# Called by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail

# `bash scripts/setup.sh demo`: only what building the examples needs.
if [ "${1:-}" = "demo" ]; then
  packages=(g++ cmake ninja-build pkg-config liburing-dev libasio-dev libfmt-dev zlib1g-dev)
else
  packages=(
    g++ cmake ninja-build pkg-config          # toolchain
    liburing-dev libasio-dev libfmt-dev catch2 # the libraries sluice builds on
    zlib1g-dev                                # WebSocket permessage-deflate
    python3 python3-h11 curl nginx-light      # real peers used by the tests
    haproxy                                   # the PROXY protocol's load balancer
    python3-websockets python3-wsproto nodejs # WebSocket peers (and npm's ws, below)
    netbase                                   # /etc/services: resolve() of "http"
    util-linux procps                         # taskset, /proc readers for benchmarks
    libseccomp-dev                            # the io_uring-denied fallback test
    clang libclang-rt-14-dev                  # libFuzzer targets
    doxygen                                   # the API reference (warnings are errors)
    g++-mingw-w64-x86-64-posix wine wine64    # the Windows build, run under Wine
    libz-mingw-w64-dev                        # zlib for the Windows build
  )
fi
# `bash scripts/setup.sh bench`: also the reference servers and load generator the
# benchmarks compare against (not needed by the tests).
if [ "${1:-}" = "bench" ]; then
  packages+=(nginx-light wrk valgrind)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm: Debian's own package, unless the installed Node.js already brings one (NodeSource's
# nodejs does, and conflicts with Debian's npm).
if [ "${1:-}" != "demo" ] && ! command -v npm >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends npm
fi

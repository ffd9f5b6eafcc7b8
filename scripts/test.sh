#!/usr/bin/env bash
# Builds sluice and runs every test: once as a normal build with warnings as errors,
# then once more under AddressSanitizer + UndefinedBehaviorSanitizer, then the tests
# where threads meet the loop under ThreadSanitizer, then the Windows build under Wine,
# then the fuzzers.
# Usage: bash scripts/test.sh     (this is what .ci/run calls)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The npm peer of the WebSocket tests (the ws package), kept out of the source tree;
# the tests find it through SLUICE_NODE_MODULES (CMake), build/npm/node_modules here.
if [ ! -d build/npm/node_modules/ws ]; then
  mkdir -p build/npm
  npm install --no-audit --no-fund --prefix build/npm ws@8.18.0
fi

jobs=$(nproc)
# Each stage is announced with the time since the start, to see where CI time goes.
stamp() { echo "=== $* [$((SECONDS / 60))m$((SECONDS % 60))s]"; }

run_suite() { # name, cmake flags...
  local name=$1
  shift
  stamp "build: $name"
  cmake -S . -B "build/$name" -G Ninja -DSLUICE_WERROR=ON "$@" >/dev/null
  cmake --build "build/$name" -j "$jobs"
  stamp "test: $name"
  (cd "build/$name" && ctest --output-on-failure -j 1 --timeout 600)
  # What each backend ran: Catch2's own summary line per test executable.
  stamp "per-test counts: $name"
  awk '/^[0-9]+\/[0-9]+ Test: /{t=$3} /^(All tests passed|test cases:)/{print "  " t ": " $0}' \
    "build/$name/Testing/Temporary/LastTest.log"
}

run_suite release -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The API reference: every public name documented, or the build fails.
stamp "docs (Doxygen, warnings are errors)"
cmake --build build/release --target docs
# sluice used from outside its tree: installed (find_package, pkg-config --static) and
# as a subproject (add_subdirectory), and as the libsluice-dev package (cpack, apt-get);
# each consumer echoes through sluice.
stamp "consumers"
bash tests/consumer/run.sh build/release --deb
# The shared libraries (BUILD_SHARED_LIBS=ON): built with -fvisibility=hidden, so the
# suites below link only what the headers export; then the installed .so's consumed.
stamp "build: shared"
cmake -S . -B build/shared -G Ninja -DSLUICE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBUILD_SHARED_LIBS=ON -DSLUICE_BUILD_BENCHMARKS=OFF -DSLUICE_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build/shared -j "$jobs" --target runtime_tests conformance_tests
stamp "test: shared"
for t in runtime_tests conformance_tests; do
  SLUICE_BACKEND=uring "build/shared/tests/$t" | grep -E "^(All tests passed|test cases:)" |
    sed "s/^/  shared uring $t: /"
done
bash tests/consumer/run.sh build/shared
# ASan's leak checker needs ptrace-like access that some sandboxes deny; leaks are
# still reported where it can run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_suite asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON -DSLUICE_BUILD_BENCHMARKS=OFF

# ThreadSanitizer: the tests tagged [threads] (cross-thread stop and cancel,
# post_remote, loops run and stopped from other threads), on each backend.
stamp "build: tsan"
cmake -S . -B build/tsan -G Ninja -DSLUICE_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSLUICE_TSAN=ON -DSLUICE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/tsan -j "$jobs" --target runtime_tests conformance_tests
stamp "test: tsan"
for backend in uring asio; do
  for t in runtime_tests conformance_tests; do
    SLUICE_BACKEND=$backend TSAN_OPTIONS=halt_on_error=1 "build/tsan/tests/$t" "[threads]" |
      grep -E "^(All tests passed|test cases:)" | sed "s/^/  $backend $t [threads]: /"
  done
done

# Windows: the mingw-w64 build (IOCP backend), its tests run by ctest under Wine in a
# fresh prefix inside the build tree, then the Windows echo server against the native
# Linux echo client.
stamp "build: windows (mingw-w64)"
# Default options otherwise: the benchmarks turn themselves off there.
cmake -S . -B build/windows -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake \
  -DSLUICE_WERROR=ON -DCMAKE_BUILD_TYPE=Release >/dev/null

cmake --build build/windows -j "$jobs"
export WINEPREFIX="$PWD/build/windows/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
rm -rf "$WINEPREFIX"
wineboot -i >/dev/null 2>&1 || true
stamp "test: windows (under Wine)"
wine_rc=0
(cd build/windows && ctest --output-on-failure -j 1 --timeout 600) || wine_rc=$?
stamp "per-test counts: windows"
awk '/^[0-9]+\/[0-9]+ Test: /{t=$3} /^(All tests passed|test cases:)/{print "  " t ": " $0}' \
  build/windows/Testing/Temporary/LastTest.log
stamp "windows echo_server under Wine, native Linux echo_client"
bash tests/peers/wine_echo.sh build/windows/examples/echo_server.exe \
  build/release/examples/echo_client || wine_rc=1
wineserver -k || true
[ "$wine_rc" -eq 0 ] || exit 1

# libFuzzer on the HTTP parser, the framing decoder and the HTTP text helpers (URLs,
# targets, queries, routes, JSON escaping), a fixed time each; any crash
# or sanitizer report fails the run.
fuzz_seconds=${SLUICE_FUZZ_SECONDS:-30}
stamp "fuzz: ${fuzz_seconds} s per target"
CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DSLUICE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "$jobs"
for target in http1_fuzz framing_fuzz http_text_fuzz websocket_fuzz websocket_handshake_fuzz \
  proxy_protocol_fuzz; do
  corpus="build/fuzz/corpus-$target"
  mkdir -p "$corpus"
  cp tests/fuzz/seeds/"${target%_fuzz}"-* "$corpus"/ 2>/dev/null || true
  "build/fuzz/tests/fuzz/$target" -max_total_time="$fuzz_seconds" -print_final_stats=1 \
    "$corpus" 2>"build/fuzz/$target.log" || { tail -50 "build/fuzz/$target.log"; exit 1; }
  grep -E "stat::number_of_executed_units|Done" "build/fuzz/$target.log" | sed "s/^/  $target: /"
done
stamp "all tests passed"

#!/usr/bin/env bash
# Builds tests/consumer three ways against sluice and runs each: against the copy
# `cmake --install` put in a prefix (find_package, then pkg-config --static), and with
# sluice as a subproject (add_subdirectory). Usage: run.sh BUILD_DIR (a configured and
# built sluice tree, e.g. build/release).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "$1" && pwd)"
work="$build/consumers"
rm -rf "$work"
mkdir -p "$work"

cmake --install "$build" --prefix "$work/prefix" >/dev/null

echo "--- find_package(sluice) against the installed copy"
cmake -S "$here" -B "$work/package" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/package" >/dev/null
"$work/package/consumer"

echo "--- pkg-config --static sluice"
flags=$(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs --static sluice)
g++ "$here/main.cpp" -o "$work/pkg-config-consumer" $flags
"$work/pkg-config-consumer"

echo "--- add_subdirectory(sluice)"
cmake -S "$here" -B "$work/subproject" -G Ninja -DSLUICE_SOURCE_DIR="$src" >/dev/null
cmake --build "$work/subproject" >/dev/null
"$work/subproject/consumer"
